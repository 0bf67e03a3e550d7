"""Filesystem blob store: keys are surrogates, writes are atomic, spool is cleaned."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.filesystem import FileBlobStore, SpoolLimitExceeded


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


def test_commit_moves_spool_into_a_sharded_surrogate_key(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    spooled = asyncio.run(store.spool_stream(chunks(b"abc", b"def"), limit=100))
    key = store.commit(spooled)
    assert len(key) == 32 and store.path(key).read_bytes() == b"abcdef"
    assert store.path(key).relative_to(tmp_path / "blobs").parts[:2] == (key[:2], key[2:4])
    assert not spooled.path.exists()
    assert list(store.keys()) == [key]


@pytest.mark.parametrize("hostile", ["../../etc/passwd", "1.2.3", "/abs", "A" * 32])
def test_paths_cannot_be_named_by_callers(tmp_path: Path, hostile: str) -> None:
    with pytest.raises(ValueError):
        FileBlobStore(tmp_path).path(hostile)


def test_over_limit_stream_leaves_no_spool_file(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    with pytest.raises(SpoolLimitExceeded):
        asyncio.run(store.spool_stream(chunks(b"x" * 60, b"y" * 60), limit=100))
    assert list(store.spool_dir().iterdir()) == []


def test_spool_is_cleared_at_start(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    (store.spool_dir() / "leftover.part").write_bytes(b"half")
    assert store.clear_spool() == 1
    assert list(store.spool_dir().iterdir()) == []


def test_files_and_directories_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """Issue 12: 0600 files in 0700 directories, the spool too, even under umask 000."""
    import os

    old = os.umask(0)
    try:
        store = FileBlobStore(tmp_path / "store")
        streamed = asyncio.run(store.spool_stream(chunks(b"a" * 10, b"b"), 1 << 20))
        assert streamed.path.stat().st_mode & 0o777 == 0o600
        src = tmp_path / "src.dcm"
        src.write_bytes(b"x" * 100)
        copied = store.spool_file(src, 1 << 20)
        assert copied.path.stat().st_mode & 0o777 == 0o600
        keys = [store.commit(store.spool_bytes(b"one")), store.commit(streamed),
                store.commit(copied)]
        store.write_stamp("stamp")
    finally:
        os.umask(old)
    for key in keys:
        path = store.path(key)
        assert path.stat().st_mode & 0o777 == 0o600
        for parent in path.parents:
            if parent == tmp_path:
                break
            assert parent.stat().st_mode & 0o777 == 0o700, parent
    assert store.spool_dir().stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "store" / "STORAGE_ID").stat().st_mode & 0o777 == 0o600
