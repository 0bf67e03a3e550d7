"""The blob-store seam: everything the core needs from a place that keeps files.

The core (`archive`) sees storage only through `BlobStore` and the errors below; a backend
(`storage.filesystem` today, an object store next) is chosen by the composition root alone.
Keys are opaque surrogates chosen by the store (never UIDs), so a hostile UID cannot name a path.

The write path is: spool (stream or file) → commit or commit_many (durable under a key) →
the index commits → success. `discard` drops a spool file that will not be committed.
Blocking methods are called from worker threads; `spool_stream` and `stream` are async.
A backend whose blobs are local files may also implement `LocalFiles` (zero-copy sendfile,
`dcmread` by path); callers must use `local_path()` and not assume it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable


class StorageError(Exception):
    """Base of every error a backend raises; the core maps these once (archive.blobs)."""


class NoSpace(StorageError):
    """The store is full (ENOSPC, quota, bucket quota)."""


StorageFull = NoSpace


class ReadOnly(StorageError):
    """The store refuses writes (read-only mount, permissions, write-protected bucket)."""


class SpoolLimitExceeded(StorageError):
    """More bytes arrived than the caller allowed."""


class Unavailable(StorageError):
    """The store cannot be reached right now (network, object store down); retry may succeed."""


class BlobMissing(StorageError):
    """No blob under this key."""


@dataclass(slots=True)
class Spooled:
    """An incoming file in the store's spool area, not yet committed.

    `path` is a local file the parser reads (every backend spools locally first, so parsing
    never waits on the network); `size` and `sha256` were computed while spooling.
    """

    path: Path
    size: int
    sha256: str


class BlobStore(Protocol):
    """What the core calls. Every method may raise a StorageError subclass."""

    # -- writing ------------------------------------------------------------------------------
    def spool_dir(self) -> Path:
        """The local directory of spool files (parsed before commit; see Spooled)."""
        ...

    def spool_bytes(self, data: bytes) -> Spooled:
        """Spool a small in-memory payload."""
        ...

    async def spool_stream(self, chunks: AsyncIterator[bytes], limit: int) -> Spooled:
        """Write a byte stream to the spool, hashing it; nothing is left behind on failure."""
        ...

    def spool_file(self, source: Path, limit: int, *, take_over: bool = False) -> Spooled:
        """Spool a local file. `take_over`: the caller deletes `source` afterwards, so the store
        may hard-link instead of copying. Errors reading `source` stay plain OSError."""
        ...

    def new_key(self) -> str:
        """A fresh key, so the caller can journal it before the blob exists."""
        ...

    def commit(self, spooled: Spooled, key: str | None = None) -> str:
        """Make a spooled file durable under `key` (or a fresh key) and return the key."""
        ...

    def commit_many(
        self, spooled: list[Spooled], keys: list[str] | None = None
    ) -> list[str | BaseException]:
        """Commit several spool files with one flush; the key or the error for each, in order."""
        ...

    def discard(self, spooled: Spooled) -> None:
        """Remove a spool file that will not be committed (no error if already gone)."""
        ...

    def clear_spool(self, older_than: float = 0.0) -> int:
        """Remove spool files older than `older_than` seconds (never acknowledged data)."""
        ...

    # -- reading ------------------------------------------------------------------------------
    def open(self, key: str) -> BinaryIO:
        """A seekable binary reader of the blob (BlobMissing if absent)."""
        ...

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """`length` bytes from `offset` (fewer at the end); a ranged GET on an object store."""
        ...

    def stream(
        self, key: str, offset: int = 0, length: int | None = None, chunk: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """The blob (or a byte range of it) as an async stream of chunks."""
        ...

    def size(self, key: str) -> int:
        ...

    # -- removing and listing -----------------------------------------------------------------
    def delete(self, key: str) -> None:
        """Remove a blob; no error if it is already gone."""
        ...

    def keys(self, older_than: float = 0.0) -> Iterator[str]:
        """Every stored key whose blob was written more than `older_than` seconds ago."""
        ...

    # -- pairing with an index (see archive.sweep) ----------------------------------------------
    def read_stamp(self) -> str | None:
        """The identity stamp written into this store, or None if it has none."""
        ...

    def write_stamp(self, stamp: str) -> None:
        """Durably record the identity stamp of the index this store belongs to."""
        ...

    def close(self) -> None:
        """Release threads and connections; the store is not used afterwards."""
        ...


@runtime_checkable
class LocalFiles(Protocol):
    """Optional capability: blobs are files on a local filesystem."""

    def path(self, key: str) -> Path: ...


def local_path(store: BlobStore, key: str) -> Path:
    """The local file of a blob, for readers that need one (sendfile, mmap, `dcmread` by path).

    Raises Unavailable for a backend without local files; such readers must then use
    `open`/`read_range`/`stream` instead.
    """
    if isinstance(store, LocalFiles):
        return store.path(key)
    raise Unavailable(f"{type(store).__name__} keeps no local files")
