"""Blob storage backends. Imports nothing from the rest of the project."""

from storage.base import BlobStore, Spooled
from storage.filesystem import FileBlobStore

__all__ = ["BlobStore", "FileBlobStore", "Spooled"]
