"""Start-up sweep: remove blobs no index row points at (left by a crash between rename and
commit) and spool leftovers. Runs before the server accepts anything, so nothing is in flight."""

from __future__ import annotations

import itertools
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.filesystem import FileBlobStore

log = logging.getLogger("archive.sweep")
BATCH = 5000


async def sweep_orphans(engine: AsyncEngine, blobs: FileBlobStore) -> dict[str, int]:
    spool = blobs.clear_spool()
    removed = 0
    keys = iter(blobs.keys())
    while batch := list(itertools.islice(keys, BATCH)):
        async with engine.connect() as conn:
            known = set(
                (
                    await conn.execute(
                        text("SELECT blob_key FROM instance WHERE blob_key = ANY(:k)"), {"k": batch}
                    )
                ).scalars()
            )
        for key in batch:
            if key not in known:
                blobs.delete(key)
                removed += 1
    if removed or spool:
        log.info("swept orphans", extra={"orphan_blobs": removed, "spool_files": spool})
    return {"orphan_blobs": removed, "spool_files": spool}
