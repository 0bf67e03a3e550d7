"""The release tables' SQL: case rows, partitions, numbered releases, overrides, publishing.

`archive.commons.releases` owns the workflow (what is released, the sequestration draw,
authorization, the transaction and its advisory lock); these statements take plain values and
run in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.index.commons_tables import clinical_case
from archive.index.release_tables import (
    STAGED,
    case_partition,
    data_release,
    partition_override,
    release_study,
)
from archive.index.tables import patient, study
from archive.index.visibility import SEQUESTERED


async def lock(conn: AsyncConnection, key: int) -> None:
    """Hold the advisory lock `key` until the transaction ends."""
    await conn.execute(select(func.pg_advisory_xact_lock(key)))


def _released() -> ColumnElement[bool]:
    return study.c.pk.in_(select(release_study.c.study_pk))


async def case_rows(conn: AsyncConnection, where: Any) -> list[Any]:
    """One row per study (with its case's clinical attributes) for studies matching `where`."""
    q = (select(study.c.pk, patient.c.patient_id.label("case_id"), study.c.collection,
                study.c.site, study.c.modalities, clinical_case.c.site.label("case_site"),
                clinical_case.c.sex, clinical_case.c.race, clinical_case.c.ethnicity,
                clinical_case.c.covid19_positive, clinical_case.c.age_at_index,
                clinical_case.c.age_at_index_gt89)
         .select_from(study.join(patient, patient.c.pk == study.c.patient_pk)
                      .outerjoin(clinical_case, clinical_case.c.case_id == patient.c.patient_id))
         .where(where))
    return list((await conn.execute(q)).all())


async def unreleased_rows(conn: AsyncConnection, datasets: Sequence[str]) -> list[Any]:
    """Case rows of the datasets' studies no release holds yet."""
    return await case_rows(conn, and_(study.c.dataset.in_(list(datasets)), ~_released()))


async def earlier_rows(conn: AsyncConnection) -> list[Any]:
    """Case rows of released studies whose case has a partition."""
    return await case_rows(conn, and_(
        _released(), patient.c.patient_id.in_(select(case_partition.c.case_id))))


async def partitions(conn: AsyncConnection) -> dict[str, str]:
    """Every released case's partition."""
    return {r.case_id: r.partition for r in (await conn.execute(
        select(case_partition.c.case_id, case_partition.c.partition))).all()}


async def next_number(conn: AsyncConnection) -> int:
    return int((await conn.execute(
        select(func.coalesce(func.max(data_release.c.number), 0) + 1))).scalar_one())


async def insert_release(conn: AsyncConnection, number: int, datasets: list[str], seed: int,
                         fraction: float, attributes: list[str], counts: dict[str, Any],
                         notes: str | None, curator: str | None) -> None:
    await conn.execute(insert(data_release).values(
        number=number, created_at=func.now(), datasets=datasets, seed=seed,
        fraction=fraction, attributes=attributes, counts=counts, notes=notes,
        created_by=curator))


async def assign_partitions(conn: AsyncConnection, assignments: dict[str, str],
                            number: int) -> None:
    """Record new cases' partitions (a case that has one keeps it)."""
    if assignments:
        await conn.execute(pg_insert(case_partition).values(
            [{"case_id": c, "partition": p, "release_number": number, "overridden": False,
              "assigned_at": func.now()} for c, p in assignments.items()])
            .on_conflict_do_nothing(index_elements=["case_id"]))


async def publish(conn: AsyncConnection, pks: list[int], number: int, default: str) -> None:
    """Give each released study its case's collection and record its release."""
    sequestered_case = patient.c.patient_id.in_(
        select(case_partition.c.case_id).where(case_partition.c.partition == SEQUESTERED))
    in_batch = study.c.pk.in_(pks)
    await conn.execute(update(study).where(in_batch, study.c.patient_pk.in_(
        select(patient.c.pk).where(sequestered_case))).values(collection=SEQUESTERED))
    await conn.execute(update(study).where(
        in_batch, study.c.collection == STAGED, study.c.patient_pk.in_(
            select(patient.c.pk).where(~sequestered_case))).values(collection=default))
    await conn.execute(insert(release_study).from_select(
        ["study_pk", "release_number"],
        select(study.c.pk, literal(number))
        .where(in_batch)))


async def get_release(conn: AsyncConnection, number: int) -> Row[Any] | None:
    return (await conn.execute(
        select(data_release).where(data_release.c.number == number))).first()


async def list_releases(conn: AsyncConnection) -> list[Any]:
    return list((await conn.execute(select(data_release).order_by(data_release.c.number))).all())


async def latest_release(conn: AsyncConnection) -> int | None:
    return (await conn.execute(select(func.max(data_release.c.number)))).scalar_one()


async def lock_partition(conn: AsyncConnection, case_id: str) -> Row[Any] | None:
    """The case's partition row, locked for this transaction, or None (never released)."""
    return (await conn.execute(select(case_partition).where(
        case_partition.c.case_id == case_id).with_for_update())).first()


async def move_case(conn: AsyncConnection, case_id: str, from_partition: str, to: str,
                    reason: str, curator: str | None, default_collection: str) -> None:
    """Put a released case in partition `to`, record why, and re-collect its released studies."""
    await conn.execute(update(case_partition).where(case_partition.c.case_id == case_id)
                       .values(partition=to, overridden=True))
    await conn.execute(insert(partition_override).values(
        case_id=case_id, from_partition=from_partition, to_partition=to,
        reason=reason, curator=curator, created_at=func.now()))
    of_case = study.c.patient_pk.in_(select(patient.c.pk).where(patient.c.patient_id == case_id))
    if to == SEQUESTERED:
        await conn.execute(update(study).where(_released(), of_case)
                           .values(collection=SEQUESTERED))
    else:
        await conn.execute(update(study).where(_released(), of_case,
                                               study.c.collection == SEQUESTERED)
                           .values(collection=default_collection))


async def overrides(conn: AsyncConnection, case_id: str) -> list[Any]:
    """The case's partition overrides, oldest first."""
    return list((await conn.execute(select(partition_override).where(
        partition_override.c.case_id == case_id).order_by(partition_override.c.pk))).all())


async def staged_datasets(conn: AsyncConnection) -> list[str]:
    rows = (await conn.execute(select(study.c.dataset).where(study.c.collection == STAGED)
                               .group_by(study.c.dataset).order_by(study.c.dataset))).all()
    return [r.dataset for r in rows if r.dataset is not None]
