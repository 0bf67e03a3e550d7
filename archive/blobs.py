"""The core's use of the blob store, and the one place storage errors become archive errors.

Doors never call the store: they spool through these functions and see only ArchiveErrors
(`dicomweb/errors.py` and `dimse/statuses.py` then map those). Group commit maps the per-blob
outcomes of `commit_many` with `archive_error` too.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from archive.core import Core
from archive.errors import (
    ArchiveError,
    ArchiveUnavailable,
    NotFound,
    PayloadTooLarge,
    StorageFull,
)
from storage.base import (
    BlobMissing,
    BlobStore,
    LocalFiles,
    NoSpace,
    ReadOnly,
    Spooled,
    SpoolLimitExceeded,
    StorageError,
    Unavailable,
    local_path,
)


def archive_error(exc: StorageError) -> ArchiveError:
    """The archive error a caller sees for a storage error (507/503/413/404, 0xA700)."""
    if isinstance(exc, SpoolLimitExceeded):
        return PayloadTooLarge(str(exc))
    if isinstance(exc, NoSpace):
        return StorageFull(f"storage is full: {exc}")
    if isinstance(exc, ReadOnly):
        return StorageFull(f"storage is read-only: {exc}")
    if isinstance(exc, BlobMissing):
        return NotFound(f"the stored file is missing: {exc}")
    if isinstance(exc, Unavailable):
        return ArchiveUnavailable(f"storage unavailable: {exc}")
    return ArchiveUnavailable(f"storage error: {exc}")


def as_outcome(outcome: str | BaseException) -> str | BaseException:
    """A commit_many outcome with storage errors mapped (keys and other errors unchanged)."""
    return archive_error(outcome) if isinstance(outcome, StorageError) else outcome


@contextmanager
def mapped() -> Iterator[None]:
    """Raise a storage error inside the block as its archive error."""
    try:
        yield
    except StorageError as exc:
        raise archive_error(exc) from exc


async def spool_stream(core: Core, chunks: AsyncIterator[bytes]) -> Spooled:
    """Spool an incoming instance (STOW part) up to the instance size limit."""
    with mapped():
        return await core.blobs.spool_stream(chunks, core.settings.max_instance_bytes)


def spool_file(core: Core, source: Path, *, take_over: bool = False) -> Spooled:
    """Spool a local file (bulk import; C-STORE's received file with `take_over`). Blocking.

    An error reading `source` stays an OSError: it is the caller's file, not the store."""
    with mapped():
        return core.blobs.spool_file(source, core.settings.max_instance_bytes,
                                     take_over=take_over)


async def spool_file_async(core: Core, source: Path) -> Spooled:
    return await asyncio.to_thread(spool_file, core, source)


def local_file(core: Core, key: str) -> Path:
    """The local file of a blob for path-based readers (sendfile, `dcmread`); a backend without
    local files answers ArchiveUnavailable until those readers use `open`/`read_range`."""
    with mapped():
        return local_path(core.blobs, key)


@dataclass(frozen=True, slots=True)
class BlobRef:
    """One stored blob as readers see it, whatever the backend.

    `local` is set when the backend keeps local files (zero-copy sendfile, `dcmread` by path,
    `pread`); otherwise every read goes to `store` (ranged GETs on an object store). Picklable
    (the S3 store reopens itself in a worker process), so transcode workers get one too.
    Storage errors come out as archive errors.
    """

    key: str
    size: int
    local: Path | None
    store: BlobStore | None

    def open(self) -> BinaryIO:
        """A seekable reader (a local file, or a reader that fetches only the ranges read)."""
        if self.local is not None:
            try:
                return open(self.local, "rb")
            except FileNotFoundError as exc:
                raise NotFound(f"the stored file is missing: {self.key}") from exc
        assert self.store is not None
        with mapped():
            return self.store.open(self.key)

    def read_range(self, offset: int, length: int) -> bytes:
        """`length` bytes at `offset`: a pread locally, one ranged GET on an object store."""
        if self.local is not None:
            with self.open() as f:
                return os.pread(f.fileno(), length, offset)
        assert self.store is not None
        with mapped():
            return self.store.read_range(self.key, offset, length)

    async def chunks(self, offset: int = 0, length: int | None = None,
                     chunk: int = 1 << 20) -> AsyncGenerator[bytes, None]:
        """The blob (or a range) as a stream, without holding it in memory.

        Every byte asked for comes, or ArchiveUnavailable: a response declared with this length
        and ended short would otherwise look complete to the server and keep its client
        waiting for the rest."""
        end = self.size if length is None else offset + length
        if self.local is not None:
            while offset < end:
                data = await asyncio.to_thread(self.read_range, offset, min(chunk, end - offset))
                if not data:
                    break
                offset += len(data)
                yield data
        else:
            assert self.store is not None
            with mapped():
                async for data in self.store.stream(self.key, offset, end - offset, chunk):
                    offset += len(data)
                    yield data
        if offset < end:
            raise ArchiveUnavailable(f"stored blob {self.key} ended {end - offset} bytes early")

    def dataset(self, **kwargs: Any) -> Any:
        """The stored instance parsed by pydicom (`dcmread` keywords pass through)."""
        from pydicom import dcmread

        if self.local is not None:
            return dcmread(self.local, **kwargs)
        with self.open() as f, mapped():  # ranged GETs happen while pydicom reads
            return dcmread(f, **kwargs)


def blob_ref(core: Core, key: str, size: int) -> BlobRef:
    """How readers reach blob `key` in the configured store."""
    if isinstance(core.blobs, LocalFiles):
        with mapped():
            return BlobRef(key, size, local_path(core.blobs, key), None)
    return BlobRef(key, size, None, core.blobs)
