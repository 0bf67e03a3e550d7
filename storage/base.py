"""The blob-store seam: what ingest and retrieve need from a place that keeps files.

Keys are opaque surrogates chosen by the store (never UIDs), so a hostile UID cannot name a path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(slots=True)
class Spooled:
    """An incoming file written to the store's spool area, not yet committed."""

    path: Path
    size: int
    sha256: str


class BlobStore(Protocol):
    def spool_dir(self) -> Path: ...

    async def spool_stream(self, chunks: AsyncIterator[bytes], limit: int) -> Spooled: ...

    def spool_file(self, source: Path, limit: int) -> Spooled: ...

    def commit(self, spooled: Spooled) -> str: ...

    def discard(self, spooled: Spooled) -> None: ...

    def path(self, key: str) -> Path: ...

    def delete(self, key: str) -> None: ...

    def keys(self) -> Iterable[str]: ...
