"""Backend choice: the one place that names a storage backend for the composition root.

`archive.runtime` opens its `BlobStore` here, so the core (`archive`) imports only
`storage.base`; a new backend (S3) is added to this function, not to the core.
"""

from __future__ import annotations

from pathlib import Path

from storage.base import BlobStore
from storage.filesystem import FileBlobStore


def open_store(root: Path) -> BlobStore:
    """The blob store for a data directory's storage root (today: files under `root`)."""
    return FileBlobStore(root)
