"""DELETE of a study, series or instance: rows first (one transaction), files after commit.

Crash safety follows ingest's rule "never a row without its file": the index rows are removed
and the aggregates recounted in one transaction; the blobs are unlinked only after the commit.
A crash in between leaves orphan blobs, which the start-up sweep (archive.sweep) removes.
The study row is locked first, so a concurrent store into the same study waits for us.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.core import Caller, Core
from archive.errors import NotFound
from archive.index import blob_journal
from archive.index.visibility import visible_sql
from archive.index.writes import RECOUNT_SERIES, RECOUNT_STUDY
from archive.retrieve import FROM_VISIBLE, Scope

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
    scope = Scope(study, series, instance)
    where, args = scope.where()
    async with core.engine.begin() as conn:
        study_row = (
            await conn.execute(
                text(f"SELECT st.pk, st.patient_pk FROM study st WHERE st.study_uid = :study "
                     f"AND {visible_sql(caller, 'st')} FOR UPDATE"),
                {"study": study},
            )
        ).first()
        if study_row is None:
            raise NotFound(f"study {study} not found")
        rows = (
            await conn.execute(
                text(f"SELECT i.pk, i.blob_key, i.series_pk {FROM_VISIBLE} WHERE {where} "
                     f"AND {visible_sql(caller, 'st')}"),
                args,
            )
        ).all()
        if not rows:
            raise NotFound(f"{scope.describe()} not found")
        series_pks = sorted({r.series_pk for r in rows})
        await conn.execute(text("DELETE FROM instance WHERE pk = ANY(:p)"),
                           {"p": [r.pk for r in rows]})
        # the journal names them for the sweep if we die before unlinking (archive.sweep)
        await blob_journal.journal(conn, [r.blob_key for r in rows], blob_journal.UNREFERENCED)
        gone_series = (
            await conn.execute(
                text("DELETE FROM series s WHERE s.pk = ANY(:p) AND NOT EXISTS "
                     "(SELECT 1 FROM instance i WHERE i.series_pk = s.pk) RETURNING s.pk"),
                {"p": series_pks},
            )
        ).scalars().all()
        remaining = [pk for pk in series_pks if pk not in set(gone_series)]
        if remaining:
            await conn.execute(RECOUNT_SERIES, {"series_pks": remaining})
        # (writes.recount would miss the study when all its touched series are gone)
        studies = await _drop_or_recount_study(conn, study_row.pk, study_row.patient_pk)
    keys = [r.blob_key for r in rows]
    for key in keys:  # after commit: a crash here leaves orphans for the start-up sweep
        core.blobs.delete(key)
    log.info("deleted", extra={"study_uid": study, "instances": len(keys)})
    return Deleted(len(keys), len(gone_series), studies)


async def _drop_or_recount_study(conn: AsyncConnection, study_pk: int, patient_pk: int) -> int:
    """Recount a study that still has series; otherwise drop it (and its patient if unused)."""
    left = (
        await conn.execute(text("SELECT count(*) FROM series WHERE study_pk = :s"), {"s": study_pk})
    ).scalar_one()
    if left:
        await conn.execute(RECOUNT_STUDY, {"study_pk": study_pk})
        return 0
    await conn.execute(text("DELETE FROM study WHERE pk = :s"), {"s": study_pk})
    await conn.execute(
        text("DELETE FROM patient p WHERE p.pk = :p AND NOT EXISTS "
             "(SELECT 1 FROM study st WHERE st.patient_pk = p.pk)"),
        {"p": patient_pk},
    )
    return 1
