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


def test_new_blob_directories_are_fsynced_into_their_parents(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file renamed into a directory created for it is acknowledged only after the new
    directories' entries are on disk (ab/ in blobs/, cd/ in ab/): the real fsync runs, the
    spy only records which directory each call flushed, and when."""
    import os

    events: list[tuple[str, str]] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        real_fsync(fd)
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))

    def rename(src: str | Path, dst: str | Path) -> None:
        real_rename(src, dst)
        events.append(("rename", str(dst)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    store = FileBlobStore(tmp_path)
    blobs = tmp_path / "blobs"
    for batch in (1, 3):  # commit (one file) and commit_many (several)
        events.clear()
        spooled = [asyncio.run(store.spool_stream(chunks(b"x" * n), limit=100))
                   for n in range(1, batch + 1)]
        keys = [store.commit(spooled[0])] if batch == 1 else store.commit_many(spooled)
        for key in keys:
            assert isinstance(key, str)
            ab, cd = blobs / key[:2], blobs / key[:2] / key[2:4]
            renamed = events.index(("rename", str(store.path(key))))
            assert ("fsync", str(blobs)) in events[:renamed]  # ab's entry in blobs/
            assert ("fsync", str(ab)) in events[:renamed]  # cd's entry in ab/
            assert ("fsync", str(cd)) in events[renamed:]  # the file's entry in cd/
    # once per directory and process: a second file in the same directory flushes only cd/
    events.clear()
    again = store.commit(asyncio.run(store.spool_stream(chunks(b"y"), limit=100)),
                         key=keys[0][:4] + "f" * 28)
    flushed = {path for kind, path in events if kind == "fsync"}
    assert str(blobs) not in flushed and str(store.path(again).parent) in flushed
