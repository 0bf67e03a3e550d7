"""The filesystem backend against the BlobStore contract, plus its filesystem-only duties."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import pytest

from storage.base import BlobStore, LocalFiles, NoSpace, local_path
from storage.filesystem import FileBlobStore, _write
from tests.storage.conformance import BlobStoreContract


class TestFileBlobStore(BlobStoreContract):
    def open_store(self, where: Path) -> BlobStore:
        return FileBlobStore(where)


def _fsync_threads() -> int:
    return sum(t.name.startswith("fsync") for t in threading.enumerate())


def test_the_fsync_pool_belongs_to_the_store(tmp_path: Path) -> None:
    before = _fsync_threads()
    store = FileBlobStore(tmp_path)
    spooled = [store.spool_bytes(b"x" * n) for n in range(1, 5)]
    assert all(isinstance(k, str) for k in store.commit_many(spooled))
    assert _fsync_threads() > before
    store.close()
    assert _fsync_threads() == before


def test_local_files_capability(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    key = store.commit(store.spool_bytes(b"local"))
    assert isinstance(store, LocalFiles)
    assert local_path(store, key).read_bytes() == b"local"


def test_a_full_disk_is_reported_as_no_space() -> None:
    with open("/dev/full", "wb", buffering=0) as f, pytest.raises(NoSpace) as err:
        _write(f, b"x" * 4096)
    assert isinstance(err.value.__cause__, OSError)
    assert err.value.__cause__.errno == errno.ENOSPC
