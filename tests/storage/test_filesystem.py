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
