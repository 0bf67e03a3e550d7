"""Storage faults on a real filesystem (a tiny tmpfs): full and read-only storage give every
door a clear "out of resources" answer with a reason — 507 on STOW-RS, 0xA700 on C-STORE —
never a 500, and nothing half-written is left in the spool."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from archive.blobs import archive_error
from archive.errors import ArchiveError
from dicomweb.errors import status_for
from dimse.statuses import store_status
from storage.base import (
    BlobMissing,
    NoSpace,
    ReadOnly,
    SpoolLimitExceeded,
    StorageError,
    Unavailable,
)
from tests import factories as f
from tests.conftest import RunningArchive
from tests.dicomweb.test_stow import multipart, post
from tests.dimse.test_store import associate


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def small_storage(tmp_path: Path) -> Iterator[Path]:
    """data/storage on its own 2 MB tmpfs (needs the right to mount; skipped otherwise)."""
    where = tmp_path / "data" / "storage"
    where.mkdir(parents=True)
    try:
        _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where))
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


def _fill(where: Path) -> None:
    with open(where / "filler", "wb", buffering=0) as out:
        for size in (65536, 4096, 1):  # down to the last byte
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError:
                pass


def _assert_refused(server: RunningArchive, phrase: str) -> None:
    data = f.to_bytes(f.image("fault", rows=256, columns=256))  # ~130 kB
    r = post(server, multipart([data]))
    assert r.status_code == 507, r.text
    assert phrase in r.headers["Warning"]
    assoc = associate(server)
    status = assoc.send_c_store(f.image("fault", "dimse", rows=256, columns=256))
    assoc.release()
    assert status.Status == 0xA700
    assert phrase in str(status.ErrorComment)
    assert list(server.core.blobs.spool_dir().iterdir()) == []
    assert server.sql("SELECT count(*) AS n FROM instance")[0]["n"] == 0


def test_full_storage_is_507_and_a700_with_a_reason(
    small_storage: Path, server_factory: Callable[..., RunningArchive]
) -> None:
    server = server_factory()
    _fill(small_storage)
    _assert_refused(server, "storage is full")


def test_read_only_storage_is_507_and_a700_with_a_reason(
    small_storage: Path, server_factory: Callable[..., RunningArchive]
) -> None:
    server = server_factory()
    _mount("-o", "remount,ro", str(small_storage))
    _assert_refused(server, "read-only")


@pytest.mark.parametrize(("error", "http", "dimse"), [
    (NoSpace("disk full"), 507, 0xA700),
    (ReadOnly("EROFS"), 507, 0xA700),
    (SpoolLimitExceeded("too big"), 413, 0xA700),
    (Unavailable("object store down"), 503, 0xA700),
    (StorageError("EIO"), 503, 0xA700),
    (BlobMissing("no blob"), 404, 0x0110),
])
def test_each_storage_error_has_one_archive_error(
    error: StorageError, http: int, dimse: int
) -> None:
    """archive.blobs is the one translation; the doors' own maps then apply unchanged."""
    mapped = archive_error(error)
    assert isinstance(mapped, ArchiveError) and str(error) in mapped.reason
    assert status_for(mapped) == http
    assert store_status(mapped) == dimse
