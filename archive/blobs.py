"""The core's use of the blob store, and the one place storage errors become archive errors.

Doors never call the store: they spool through these functions and see only ArchiveErrors
(`dicomweb/errors.py` and `dimse/statuses.py` then map those). Group commit maps the per-blob
outcomes of `commit_many` with `archive_error` too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

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
