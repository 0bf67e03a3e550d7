"""The S3 backend against the BlobStore contract on a real object store (SeaweedFS), plus its
object-store duties: multipart uploads from the spool, range reads, typed errors."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from storage.base import BlobMissing, BlobStore, LocalFiles, Unavailable
from storage.factory import open_store
from storage.s3 import S3BlobStore, parse_url
from tests.s3 import BUCKET
from tests.storage.conformance import BlobStoreContract


def s3_store(seaweed: Any, where: Path, **kw: Any) -> S3BlobStore:
    prefix = "t-" + hashlib.sha256(str(where).encode()).hexdigest()[:16]
    return S3BlobStore(f"s3://{BUCKET}/{prefix}", where, endpoint=seaweed.endpoint,
                       region="us-east-1", path_style=True, **kw)


class TestS3BlobStore(BlobStoreContract):
    @pytest.fixture(autouse=True)
    def _seaweed(self, seaweed: Any) -> None:
        self.seaweed = seaweed

    def open_store(self, where: Path) -> BlobStore:
        return s3_store(self.seaweed, where)


def test_url_parsing() -> None:
    assert parse_url("s3://bucket/a/b/").prefix == "a/b"
    assert parse_url("s3://bucket").prefix == ""
    with pytest.raises(ValueError):
        parse_url("http://bucket/x")


def test_factory_chooses_the_backend(seaweed: Any, tmp_path: Path) -> None:
    store = open_store(f"s3://{BUCKET}/factory", tmp_path, s3_endpoint=seaweed.endpoint,
                       s3_region="us-east-1", s3_path_style=True)
    assert isinstance(store, S3BlobStore) and not isinstance(store, LocalFiles)
    assert store.spool_dir().parent == tmp_path  # spooling stays local
    store.close()
    assert isinstance(open_store("", tmp_path), LocalFiles)
    with pytest.raises(ValueError):
        open_store("ftp://x", tmp_path)


def test_large_blob_is_a_multipart_upload_read_back_in_ranges(seaweed: Any, tmp_path: Path) -> None:
    store = s3_store(seaweed, tmp_path, multipart_threshold=6 << 20, part_size=5 << 20)
    data = os.urandom(13 << 20)  # three parts
    source = tmp_path / "big.dcm"
    source.write_bytes(data)
    key = store.commit(store.spool_file(source, limit=len(data)))
    assert store.size(key) == len(data)
    assert store.read_range(key, (5 << 20) - 10, 20) == data[(5 << 20) - 10:(5 << 20) + 10]
    with store.open(key) as f:  # seekable ranged reader
        f.seek(12 << 20)
        assert f.read(100) == data[12 << 20:(12 << 20) + 100]
        f.seek(-5, os.SEEK_END)
        assert f.read() == data[-5:]

    async def whole() -> bytes:
        return b"".join([c async for c in store.stream(key, chunk=1 << 20)])

    assert hashlib.sha256(asyncio.run(whole())).digest() == hashlib.sha256(data).digest()
    store.close()


def test_missing_blob_and_unreachable_store_are_typed(seaweed: Any, tmp_path: Path) -> None:
    store = s3_store(seaweed, tmp_path)
    with pytest.raises(BlobMissing):
        store.read_range("0" * 32, 0, 10)
    dead = S3BlobStore(f"s3://{BUCKET}/x", tmp_path / "dead", endpoint="http://127.0.0.1:9",
                       path_style=True, region="us-east-1", timeout=3, max_retries=1)
    with pytest.raises(Unavailable):
        dead.commit(dead.spool_bytes(b"never"))
    with pytest.raises(Unavailable):
        list(dead.keys())
    dead.close()
    store.close()
