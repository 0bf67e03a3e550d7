"""Choose the blob-store backend from the `storage` setting (the composition root calls this).

`""` (the default) keeps blobs on the local filesystem under `local_root`;
`s3://BUCKET/PREFIX` keeps them in an S3-compatible object store and only the spool under
`local_root`. Imports a backend's client only when that backend is chosen.
"""

from __future__ import annotations

from pathlib import Path

from storage.base import BlobStore


def open_store(
    storage: str,
    local_root: Path,
    *,
    s3_endpoint: str | None = None,
    s3_region: str | None = None,
    s3_path_style: bool = False,
    s3_read_timeout: float = 30.0,
) -> BlobStore:
    """The configured store; ValueError for a `storage` value no backend understands."""
    if not storage or storage in ("file", "filesystem"):
        from storage.filesystem import FileBlobStore

        return FileBlobStore(local_root)
    if storage.startswith("s3://"):
        from storage.s3 import S3BlobStore

        return S3BlobStore(storage, local_root, endpoint=s3_endpoint, region=s3_region,
                           path_style=s3_path_style, read_timeout=s3_read_timeout)
    raise ValueError(f"storage must be empty (local filesystem) or s3://BUCKET/PREFIX, "
                     f"not {storage!r}")
