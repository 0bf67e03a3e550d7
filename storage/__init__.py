"""Blob storage: the protocol and errors (`storage.base`) and its backends.

Only the composition root imports a backend (`storage.filesystem`); everything else uses
`storage.base`. Imports nothing from the rest of the project.
"""

from storage.base import BlobStore, LocalFiles, Spooled, StorageError

__all__ = ["BlobStore", "LocalFiles", "Spooled", "StorageError"]
