"""DELETE of a study, series or instance: rows first (one transaction), files after commit.

Crash safety follows ingest's rule "never a row without its file": the index rows are removed
and the aggregates recounted in one transaction (archive.index.deletes); the blobs are unlinked
only after the commit. A crash in between leaves orphan blobs, which the start-up sweep
(archive.sweep) removes. Only instances the caller may see are removed; anything else is
"not found", as on every read path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from archive.core import Caller, Core
from archive.index import blob_journal
from archive.index.deletes import remove_scope
from archive.index.reads import Scope

log = logging.getLogger("archive.delete")


@dataclass(frozen=True, slots=True)
class Deleted:
    instances: int
    series: int
    studies: int


async def delete(
    core: Core, caller: Caller, study: str, series: str | None = None, instance: str | None = None
) -> Deleted:
    """Remove the visible instances of the scope, then empty series/studies/patients."""
    async with core.engine.begin() as conn:
        removed = await remove_scope(conn, caller, Scope(study, series, instance))
        # the journal names them for the sweep if we die before unlinking (archive.sweep)
        await blob_journal.journal(conn, list(removed.blob_keys), blob_journal.UNREFERENCED)
    for key in removed.blob_keys:  # after commit: a crash here leaves orphans for the sweep
        core.blobs.delete(key)
    log.info("deleted", extra={"study_uid": study, "instances": len(removed.blob_keys)})
    return Deleted(len(removed.blob_keys), removed.series, removed.studies)
