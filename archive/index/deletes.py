"""Index side of DELETE: lock the visible study, remove the scope's rows, drop what is empty.

Runs inside the caller's transaction (archive.delete owns it and unlinks the blobs after the
commit). The study row is locked first, so a concurrent store into the same study waits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.caller import Caller
from archive.errors import NotFound
from archive.index.reads import JOINED, Scope, in_scope
from archive.index.tables import instance, patient, series, study
from archive.index.visibility import visible_to
from archive.index.writes import RECOUNT_SERIES, RECOUNT_STUDY


@dataclass(frozen=True, slots=True)
class Removed:
    """What the transaction removed: the blobs to unlink after commit, and the counts."""

    blob_keys: tuple[str, ...]
    series: int
    studies: int


async def remove_scope(conn: AsyncConnection, caller: Caller, scope: Scope) -> Removed:
    """Remove the visible instances of the scope, then empty series/studies/patients."""
    study_row = (await conn.execute(
        select(study.c.pk, study.c.patient_pk)
        .where(study.c.study_uid == scope.study, visible_to(caller)).with_for_update()
    )).first()
    if study_row is None:
        raise NotFound(f"study {scope.study} not found")
    rows = (await conn.execute(
        select(instance.c.pk, instance.c.blob_key, instance.c.series_pk)
        .select_from(JOINED).where(in_scope(caller, scope))
    )).all()
    if not rows:
        raise NotFound(f"{scope.describe()} not found")
    series_pks = sorted({r.series_pk for r in rows})
    await conn.execute(delete(instance).where(instance.c.pk.in_([r.pk for r in rows])))
    empty = ~exists().where(instance.c.series_pk == series.c.pk)
    gone = set((await conn.execute(
        delete(series).where(series.c.pk.in_(series_pks), empty).returning(series.c.pk)
    )).scalars().all())
    remaining = [pk for pk in series_pks if pk not in gone]
    if remaining:
        await conn.execute(RECOUNT_SERIES, {"series_pks": remaining})
    # (writes.recount would miss the study when all its touched series are gone)
    studies = await _drop_or_recount_study(conn, study_row.pk, study_row.patient_pk)
    return Removed(tuple(r.blob_key for r in rows), len(gone), studies)


async def _drop_or_recount_study(conn: AsyncConnection, study_pk: int, patient_pk: int) -> int:
    """Recount a study that still has series; otherwise drop it (and its patient if unused)."""
    left = (await conn.execute(
        select(func.count()).select_from(series).where(series.c.study_pk == study_pk)
    )).scalar_one()
    if left:
        await conn.execute(RECOUNT_STUDY, {"study_pk": study_pk})
        return 0
    await conn.execute(delete(study).where(study.c.pk == study_pk))
    await conn.execute(delete(patient).where(
        patient.c.pk == patient_pk, ~exists().where(study.c.patient_pk == patient.c.pk)))
    return 1
