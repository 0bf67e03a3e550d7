"""ingest(): the only write path, for STOW-RS, C-STORE and bulk import.

Order: parse and validate the spooled file → commit the blob (fsync + rename) → index it in one
transaction → only then report success. A crash after the rename leaves an orphan blob, which
`sweep_orphans` removes at the next start; there is never an index row without its file.
The blob commit and the index transaction are shared with concurrent ingests (group commit,
`archive.group_commit`): one disk flush and one COMMIT per batch, each ingest answered only
after its batch is durable.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from archive import group_commit
from archive.core import Caller, Core
from archive.errors import ArchiveError, StudyMismatch
from archive.index.writes import Attribution
from archive.instance import InstanceFacts
from archive.workers import parse_for_index
from storage.base import Spooled

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
    facts: InstanceFacts | None = None
    try:
        facts, header_json = await parse(core, spooled)
        if expected_study is not None and facts.study_uid != expected_study:
            raise StudyMismatch(
                f"StudyInstanceUID {facts.study_uid} differs from the request's {expected_study}"
            )
        for hook in core.extensions.pre_store:  # e.g. de-identification: a new file to store
            replaced = await hook(core, spooled, caller)
            if replaced is not None:
                blobs.discard(spooled)
                spooled = replaced
                facts, header_json = await parse(core, spooled)
        # blob durability + index, batched with concurrent ingests (see archive.group_commit)
        indexed, key = await group_commit.committer(core).submit(
            facts, spooled, attribution_for(core, facts, caller), header_json
        )
    except BaseException as exc:
        if isinstance(exc, ArchiveError) and facts is not None:
            exc.sop_uid, exc.sop_class_uid = facts.sop_uid, facts.sop_class_uid
        raise
    finally:
        blobs.discard(spooled)
    if indexed.outcome in ("duplicate", "kept"):
        if key is not None:
            blobs.delete(key)
    elif indexed.replaced_blob_key:
        blobs.delete(indexed.replaced_blob_key)
    log.info(
        "instance %s", indexed.outcome,
        extra={"sop_uid": facts.sop_uid, "study_uid": facts.study_uid, "bytes": spooled.size,
               "site": caller.site, "ae_title": caller.ae_title},
    )
    return _stored(facts, indexed.outcome)


async def parse(core: Core, spooled: Spooled) -> tuple[InstanceFacts, str]:
    """Parse a spooled instance in a worker process: header parsing is the biggest CPU cost of
    ingest, and in worker processes it runs beside the event loop instead of holding its GIL.
    Returns the facts (header left out) and the header as the JSON the index stores."""
    workers = core.workers.parse if core.workers is not None else None
    pool = workers.get() if workers is not None else None
    if workers is None or pool is None:
        parsed = await core.run_blocking(parse_for_index, spooled.path, spooled.size)
    else:
        try:
            parsed = await asyncio.get_running_loop().run_in_executor(
                pool, parse_for_index, spooled.path, spooled.size
            )
        except BrokenProcessPool:
            workers.broken(pool)  # a worker died (e.g. killed): a new pool next time
            parsed = await core.run_blocking(parse_for_index, spooled.path, spooled.size)
    return parsed.facts, parsed.header_json


def _stored(facts: InstanceFacts, outcome: str) -> Stored:
    return Stored(facts.study_uid, facts.series_uid, facts.sop_uid, facts.sop_class_uid, outcome)


def attribution_for(core: Core, facts: InstanceFacts, caller: Caller) -> Attribution:
    peer = core.settings.peer(caller.ae_title) if caller.ae_title else None
    attribution = Attribution(
        collection=caller.collection or core.settings.default_collection,
        site=caller.site or (peer.site if peer else None) or caller.ae_title,
        dataset=caller.dataset,
        privileged=caller.may_change_any_site,
    )
    for enrich in core.extensions.enrichers:
        attribution = enrich(facts, caller, attribution)
    return attribution
