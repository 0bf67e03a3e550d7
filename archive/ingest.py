"""ingest(): the only write path, for STOW-RS, C-STORE and bulk import.

Order: parse and validate the spooled file → commit the blob (fsync + rename) → index it in one
transaction → only then report success. A crash after the rename leaves an orphan blob, which
`sweep_orphans` removes at the next start; there is never an index row without its file.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from archive.core import Caller, Core
from archive.errors import ArchiveError, ArchiveUnavailable, StorageFull, StudyMismatch
from archive.index.writes import Attribution, upsert_instance
from archive.instance import InstanceFacts, read_instance
from storage.base import Spooled
from storage.filesystem import NoSpace

log = logging.getLogger("archive.ingest")


@dataclass(frozen=True, slots=True)
class Stored:
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    outcome: str  # stored | replaced | duplicate | kept

    @property
    def warning(self) -> str | None:
        if self.outcome == "replaced":
            return "an instance with this SOPInstanceUID was replaced"
        if self.outcome == "kept":
            return "an instance with this SOPInstanceUID exists; the stored copy was kept"
        return None


async def ingest(
    core: Core, spooled: Spooled, caller: Caller, expected_study: str | None = None
) -> Stored:
    """Store one spooled instance durably, then index it. The spool file is consumed either way."""
    core.in_flight += 1
    core.idle.clear()
    try:
        return await asyncio.shield(_ingest(core, spooled, caller, expected_study))
    finally:
        core.in_flight -= 1
        if core.in_flight == 0:
            core.idle.set()


async def _ingest(
    core: Core, spooled: Spooled, caller: Caller, expected_study: str | None
) -> Stored:
    blobs = core.blobs
    key: str | None = None
    facts: InstanceFacts | None = None
    try:
        facts = await core.run_blocking(read_instance, spooled.path, spooled.size)
        if expected_study is not None and facts.study_uid != expected_study:
            raise StudyMismatch(
                f"StudyInstanceUID {facts.study_uid} differs from the request's {expected_study}"
            )
        if await _is_identical(core, facts.sop_uid, spooled.sha256):
            return _stored(facts, "duplicate")
        try:
            key = await core.run_blocking(blobs.commit, spooled)
        except NoSpace as exc:
            raise StorageFull(f"storage is full: {exc}") from exc
        indexed = await _index(core, facts, key, spooled, caller)
    except BaseException as exc:
        if key is not None:
            blobs.delete(key)
        if isinstance(exc, ArchiveError) and facts is not None:
            exc.sop_uid, exc.sop_class_uid = facts.sop_uid, facts.sop_class_uid
        raise
    finally:
        blobs.discard(spooled)
    if indexed.outcome in ("duplicate", "kept"):
        blobs.delete(key)
    elif indexed.replaced_blob_key:
        blobs.delete(indexed.replaced_blob_key)
    log.info(
        "instance %s", indexed.outcome,
        extra={"sop_uid": facts.sop_uid, "study_uid": facts.study_uid, "bytes": spooled.size,
               "site": caller.site, "ae_title": caller.ae_title},
    )
    return _stored(facts, indexed.outcome)


def _stored(facts: InstanceFacts, outcome: str) -> Stored:
    return Stored(facts.study_uid, facts.series_uid, facts.sop_uid, facts.sop_class_uid, outcome)


def attribution_for(core: Core, facts: InstanceFacts, caller: Caller) -> Attribution:
    peer = core.settings.peer(caller.ae_title) if caller.ae_title else None
    attribution = Attribution(
        collection=caller.collection or core.settings.default_collection,
        site=caller.site or (peer.site if peer else None) or caller.ae_title,
        dataset=caller.dataset,
    )
    for enrich in core.extensions.enrichers:
        attribution = enrich(facts, caller, attribution)
    return attribution


async def _index(core: Core, facts: InstanceFacts, key: str, spooled: Spooled, caller: Caller):  # type: ignore[no-untyped-def]
    blob = {"blob_key": key, "size_bytes": spooled.size, "sha256": spooled.sha256}
    attribution = attribution_for(core, facts, caller)
    try:
        async with core.engine.begin() as conn:
            indexed = await upsert_instance(
                conn, facts, blob, attribution, core.settings.duplicate_policy
            )
            for hook in core.extensions.index_hooks:
                await hook(conn, facts, indexed.study_pk)
            return indexed
    except (OperationalError, InterfaceError, OSError, ConnectionError) as exc:
        raise ArchiveUnavailable(f"index unavailable: {exc}") from exc
    except DBAPIError as exc:
        if "deadlock" in str(exc).lower() or "serializ" in str(exc).lower():
            raise ArchiveUnavailable(f"index busy, retry: {exc.orig}") from exc
        raise


async def _is_identical(core: Core, sop_uid: str, sha256: str) -> bool:
    """Cheap pre-check so an identical re-send writes no blob at all."""
    async with core.engine.connect() as conn:
        found = (
            await conn.execute(
                text("SELECT sha256 FROM instance WHERE sop_uid = :s"), {"s": sop_uid}
            )
        ).scalar()
    return found == sha256
