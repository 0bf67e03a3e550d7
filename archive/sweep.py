"""Start-up storage checks: pair the blob store with the index, then sweep provable orphans.

Pairing (`ensure_paired`): the store and the index each carry an identity stamp (the store's
`read_stamp`, the index's `storage_identity` row). A fresh pair is stamped on first start; a
pre-stamp installation is stamped when the store's blobs are found in the index. Anything else
— an empty database in front of a full store, a stamp that differs — refuses to start with a
ConfigError, before any file is touched.

Sweeping (`sweep_orphans`): only keys named in the index's blob journal are candidates (see
archive.index.blob_journal): keys left unreferenced by a replace or delete, and keys written
but never indexed, once their writer is gone or they are older than the grace period. A blob
the journal does not name — e.g. one whose index row lives in another database — is never
deleted, so a restart can not delete acknowledged data. Spool files were never acknowledged.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid

from archive.errors import ConfigError
from archive.index import blob_journal as journal
from archive.index.handles import Engine
from storage.base import BlobStore, StorageError

log = logging.getLogger("archive.sweep")
BATCH = 5000
GRACE_SECONDS = 15 * 60.0  # a live writer's unindexed blob younger than this is never swept
SAMPLE = 200  # stored keys looked up to recognise an unstamped pair


def _mismatch(detail: str) -> ConfigError:
    return ConfigError(
        f"storage and database do not belong together ({detail}); refusing to start so that "
        "no stored file is touched: point --data-dir and --database-url at the same archive"
    )


async def ensure_paired(engine: Engine, blobs: BlobStore) -> str:
    """The pair's identity stamp; stamps a new or pre-stamp pair; ConfigError on a mismatch."""
    async with engine.begin() as conn:
        await journal.lock_stamp(conn)
        state = await journal.index_state(conn)
        stored = await asyncio.to_thread(blobs.read_stamp)
        if state.stamp and stored:
            if state.stamp != stored:
                raise _mismatch(f"storage stamp {stored}, database stamp {state.stamp}")
            return stored
        sample = await asyncio.to_thread(lambda: list(itertools.islice(blobs.keys(), SAMPLE)))
        if sample or state.has_instances:
            if not sample:
                raise _mismatch("the database indexes instances but the storage holds no files")
            if not await journal.known_keys(conn, sample):
                raise _mismatch("the storage holds files the database has never indexed")
            if state.stamp or stored:  # a half-finished stamping of this very pair
                log.warning("completing the identity stamp of a matching storage and database")
        stamp = state.stamp or stored or uuid.uuid4().hex
        if state.stamp is None:
            await journal.write_stamp(conn, stamp)
        if stored is None:
            await asyncio.to_thread(blobs.write_stamp, stamp)
        log.debug("storage and database stamped", extra={"stamp": stamp})
        return stamp


async def sweep_orphans(
    engine: Engine, blobs: BlobStore, grace_seconds: float = GRACE_SECONDS, *,
    clear_spool: bool = True,
) -> dict[str, int]:
    """Check the pairing, clear the spool, delete journaled orphans; counts of what went.

    `clear_spool=False` for the periodic sweep job (archive.tasks): it runs beside live
    ingests, whose spooled files are this node's own and not yet journaled."""
    await ensure_paired(engine, blobs)
    spool = await asyncio.to_thread(blobs.clear_spool) if clear_spool else 0
    removed = 0
    async with engine.connect() as conn:
        dead = await journal.dead_owners(conn)
        await conn.commit()
    while True:
        async with engine.begin() as conn:  # claimed (rows gone) before any blob is deleted
            keys = await journal.claim_for_sweep(conn, dead, grace_seconds, BATCH)
        if not keys:
            break
        try:
            await asyncio.to_thread(_delete_all, blobs, keys)
        except StorageError as exc:  # a claimed key whose delete failed is left behind
            log.warning("orphan sweep stopped: %s", exc)
            break
        removed += len(keys)
    if removed or spool:
        log.info("swept orphans", extra={"orphan_blobs": removed, "spool_files": spool})
    return {"orphan_blobs": removed, "spool_files": spool}


def _delete_all(blobs: BlobStore, keys: list[str]) -> None:
    for key in keys:
        blobs.delete(key)
