"""Blob storage: the protocol and errors (`storage.base`) and its backends.

Backends: `storage.filesystem` (local files) and `storage.s3` (S3-compatible object stores);
the composition root picks one with `storage.factory.open_store`, everything else uses
`storage.base`. Imports nothing from the rest of the project.
"""

from storage.base import BlobStore, LocalFiles, Spooled, StorageError

__all__ = ["BlobStore", "LocalFiles", "Spooled", "StorageError"]
