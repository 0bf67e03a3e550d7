"""The test set tables' SQL: the sequestered pool, drawn cases, the frozen cohort's studies.

`archive.commons.testsets` owns the draw (archive.curation.testsets), the request rules and
the transaction; these statements take plain values. A filter arrives as `chosen`, a select
of study pks built by the query path (archive.query), or None for no filter.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.index import cohorts as cohort_rows
from archive.index.release_tables import case_partition, release_study, testset, testset_case
from archive.index.releases import case_rows
from archive.index.tables import patient, study
from archive.index.visibility import SEQUESTERED


def _pool(chosen: Any | None) -> ColumnElement[bool]:
    """Released, sequestered studies of sequestered cases (within `chosen`, when given)."""
    in_filter: ColumnElement[bool] = true()
    if chosen is not None:
        picked = chosen.subquery()
        in_filter = study.c.pk.in_(select(picked.c.pk))
    return and_(study.c.pk.in_(select(release_study.c.study_pk)),
                study.c.collection == SEQUESTERED, in_filter,
                patient.c.patient_id.in_(select(case_partition.c.case_id).where(
                    case_partition.c.partition == SEQUESTERED)))


async def pool_rows(conn: AsyncConnection, chosen: Any | None) -> list[Any]:
    """Case rows (archive.index.releases.case_rows) of the sequestered pool."""
    return await case_rows(conn, _pool(chosen))


async def used_cases(conn: AsyncConnection) -> set[str]:
    """Cases some test set already drew."""
    return {r.case_id for r in (await conn.execute(
        select(testset_case.c.case_id).distinct())).all()}


async def freeze_cases(conn: AsyncConnection, cid: uuid.UUID, chosen: Any | None,
                       case_ids: list[str]) -> None:
    """Freeze the cohort `cid` (inserted already) to the pool studies of `case_ids`."""
    await cohort_rows.freeze(conn, cid, select(study.c.pk)
                             .select_from(study.join(patient, patient.c.pk == study.c.patient_pk))
                             .where(_pool(chosen), patient.c.patient_id.in_(case_ids)))


async def record(conn: AsyncConnection, cid: uuid.UUID, name: str, size: int, seed: int,
                 targets: dict[str, Any], distribution: dict[str, Any],
                 case_ids: list[str]) -> None:
    """Record the draw and its cases."""
    await conn.execute(insert(testset).values(
        cohort_id=cid, name=name, size=size, seed=seed, targets=targets,
        distribution=distribution, created_at=func.now()))
    await conn.execute(insert(testset_case).values(
        [{"cohort_id": cid, "case_id": c} for c in case_ids]))


async def list_all(conn: AsyncConnection) -> list[Any]:
    return list((await conn.execute(select(testset).order_by(testset.c.created_at))).all())
