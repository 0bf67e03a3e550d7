"""The BlobStore contract (storage.base), as tests any backend runs.

A backend's test module subclasses `BlobStoreContract` and implements `open_store(where)`,
returning a store at `where` (a directory for the filesystem, a bucket prefix for an object
store); opening the same `where` twice must give the same contents:

    class TestMyStore(BlobStoreContract):
        def open_store(self, where: Path) -> BlobStore: ...
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from storage.base import BlobMissing, BlobStore, SpoolLimitExceeded, StorageError

PAYLOAD = bytes(range(256)) * 4099  # ~1 MB, not a multiple of any chunk size


async def _chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def _collect(it: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in it])


class BlobStoreContract:
    def open_store(self, where: Path) -> BlobStore:
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[BlobStore]:
        store = self.open_store(tmp_path / "store")
        yield store
        store.close()

    def _commit(self, store: BlobStore, data: bytes) -> str:
        return store.commit(asyncio.run(store.spool_stream(_chunks(data), limit=len(data))))

    def test_streamed_spool_commits_under_an_opaque_key(self, store: BlobStore) -> None:
        spooled = asyncio.run(store.spool_stream(_chunks(PAYLOAD), limit=len(PAYLOAD)))
        assert (spooled.size, spooled.sha256) == (len(PAYLOAD), hashlib.sha256(PAYLOAD).hexdigest())
        assert spooled.path.read_bytes() == PAYLOAD  # parsers read the local spool file
        key = store.commit(spooled)
        assert "/" not in key and "." not in key
        assert not spooled.path.exists()
        with store.open(key) as f:
            assert f.read() == PAYLOAD
        assert store.size(key) == len(PAYLOAD)
        assert list(store.keys()) == [key]

    def test_over_limit_spool_leaves_nothing(self, store: BlobStore, tmp_path: Path) -> None:
        with pytest.raises(SpoolLimitExceeded):
            asyncio.run(store.spool_stream(_chunks(PAYLOAD), limit=1000))
        source = tmp_path / "big.dcm"
        source.write_bytes(PAYLOAD)
        with pytest.raises(SpoolLimitExceeded):
            store.spool_file(source, limit=1000)
        assert list(store.spool_dir().iterdir()) == []
        assert list(store.keys()) == []

    @pytest.mark.parametrize("take_over", [False, True])
    def test_spool_file_keeps_the_exact_bytes(
        self, store: BlobStore, tmp_path: Path, take_over: bool
    ) -> None:
        source = tmp_path / "in.dcm"
        source.write_bytes(PAYLOAD)
        spooled = store.spool_file(source, limit=len(PAYLOAD), take_over=take_over)
        source.unlink()  # the caller's name goes away (as pynetdicom's does)
        assert spooled.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
        key = store.commit(spooled)
        assert store.read_range(key, 0, len(PAYLOAD) + 10) == PAYLOAD

    def test_spool_file_source_errors_are_not_storage_errors(
        self, store: BlobStore, tmp_path: Path
    ) -> None:
        with pytest.raises(FileNotFoundError):
            store.spool_file(tmp_path / "absent.dcm", limit=100)

    def test_byte_ranges_and_streams(self, store: BlobStore) -> None:
        key = self._commit(store, PAYLOAD)
        assert store.read_range(key, 1000, 5000) == PAYLOAD[1000:6000]
        assert store.read_range(key, len(PAYLOAD) - 3, 100) == PAYLOAD[-3:]
        assert asyncio.run(_collect(store.stream(key))) == PAYLOAD
        part = asyncio.run(_collect(store.stream(key, offset=777, length=300_000, chunk=4096)))
        assert part == PAYLOAD[777:300_777]

    def test_commit_many_uses_journaled_keys_and_fails_items_alone(self, store: BlobStore) -> None:
        datas = [b"first" * 100, b"second" * 100, b"third" * 100]
        spooled = [store.spool_bytes(d) for d in datas]
        keys = [store.new_key() for _ in datas]
        assert len(set(keys)) == 3
        store.discard(spooled[1])  # its spool file is gone: that item alone fails
        outcomes = store.commit_many(spooled, keys)
        assert outcomes[0] == keys[0] and outcomes[2] == keys[2]
        assert isinstance(outcomes[1], BaseException)
        assert store.read_range(keys[0], 0, 10_000) == datas[0]
        assert store.read_range(keys[2], 0, 10_000) == datas[2]
        assert sorted(store.keys()) == sorted([keys[0], keys[2]])

    def test_delete_is_idempotent_and_reads_of_a_missing_blob_fail_typed(
        self, store: BlobStore
    ) -> None:
        key = self._commit(store, b"gone soon")
        store.delete(key)
        store.delete(key)
        assert list(store.keys()) == []
        with pytest.raises(BlobMissing):
            store.open(key)
        with pytest.raises(BlobMissing):
            store.size(key)
        assert issubclass(BlobMissing, StorageError)

    def test_discard_and_clear_spool(self, store: BlobStore) -> None:
        kept = store.spool_bytes(b"in flight")
        dropped = store.spool_bytes(b"not wanted")
        store.discard(dropped)
        store.discard(dropped)
        assert not dropped.path.exists()
        assert store.clear_spool(older_than=3600) == 0  # young spool files are in flight
        assert kept.path.exists()
        assert store.clear_spool() == 1
        assert not kept.path.exists()

    def test_keys_can_skip_young_blobs(self, store: BlobStore) -> None:
        key = self._commit(store, b"just written")
        assert list(store.keys(older_than=3600)) == []
        assert list(store.keys()) == [key]

    def test_identity_stamp_persists(self, store: BlobStore, tmp_path: Path) -> None:
        assert store.read_stamp() is None
        store.write_stamp("stamp-one")
        store.write_stamp("stamp-two")
        again = self.open_store(tmp_path / "store")
        try:
            assert again.read_stamp() == "stamp-two"
            assert list(again.keys()) == []  # the stamp is not a blob
        finally:
            again.close()

    def test_blobs_survive_reopening(self, store: BlobStore, tmp_path: Path) -> None:
        key = self._commit(store, PAYLOAD)
        store.close()
        again = self.open_store(tmp_path / "store")
        try:
            assert list(again.keys()) == [key]
            assert again.read_range(key, 0, len(PAYLOAD)) == PAYLOAD
        finally:
            again.close()
