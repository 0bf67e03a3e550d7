"""The dataset QC report's reads (archive.commons.qc owns the report and the PHI scan).

Every function takes the dataset name and reads that dataset's studies, whatever their
collection (QC is for curators and runs before a release).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.index.commons_tables import clinical_case, study_harmonization
from archive.index.tables import instance, patient, series, study


def _in(dataset: str) -> ColumnElement[bool]:
    return study.c.dataset == dataset


async def study_count(conn: AsyncConnection, dataset: str) -> int:
    return int((await conn.execute(
        select(func.count()).select_from(study).where(_in(dataset)))).scalar_one())


async def unmapped(conn: AsyncConnection, dataset: str) -> list[dict[str, Any]]:
    """Normalized keys without a code: modality, description, example, studies (most first)."""
    h = study_harmonization
    rows = (await conn.execute(
        select(h.c.modality_norm.label("modality"), h.c.description_norm.label("description"),
               func.min(h.c.raw_description).label("example"), func.count().label("studies"))
        .select_from(h.join(study, study.c.pk == h.c.study_pk))
        .where(_in(dataset), h.c.loinc_code.is_(None))
        .group_by(h.c.modality_norm, h.c.description_norm)
        .order_by(func.count().desc(), h.c.modality_norm, h.c.description_norm))).mappings().all()
    return [dict(r) for r in rows]


def _with_case() -> Any:
    return study.join(patient, patient.c.pk == study.c.patient_pk).outerjoin(
        clinical_case, clinical_case.c.case_id == patient.c.patient_id)


async def cases_without_clinical(conn: AsyncConnection, dataset: str) -> list[str]:
    """Patient ids with no clinical case row, or one without sex, age and COVID-19 status."""
    empty = or_(clinical_case.c.case_id.is_(None), and_(
        clinical_case.c.sex.is_(None), clinical_case.c.age_at_index.is_(None),
        clinical_case.c.covid19_positive.is_(None)))
    rows = (await conn.execute(select(patient.c.patient_id).distinct().select_from(_with_case())
                               .where(_in(dataset), empty).order_by(patient.c.patient_id))).all()
    return [r.patient_id for r in rows]


async def studies_without_case(conn: AsyncConnection, dataset: str) -> list[Any]:
    """(study_uid, patient_id) of studies whose patient id matches no clinical case."""
    return list((await conn.execute(select(study.c.study_uid, patient.c.patient_id)
                                    .select_from(_with_case())
                                    .where(_in(dataset), clinical_case.c.case_id.is_(None))
                                    .order_by(study.c.pk))).all())


def _instances() -> Any:
    return instance.join(series, series.c.pk == instance.c.series_pk).join(
        study, study.c.pk == series.c.study_pk)


async def instance_headers(conn: AsyncConnection, dataset: str,
                           limit: int) -> tuple[int, list[Any]]:
    """The dataset's instance count and its first `limit` (sop_uid, header) rows."""
    total = (await conn.execute(select(func.count()).select_from(_instances())
                                .where(_in(dataset)))).scalar_one()
    rows = (await conn.execute(select(instance.c.sop_uid, instance.c.header)
                               .select_from(_instances()).where(_in(dataset))
                               .order_by(instance.c.pk).limit(limit))).all()
    return int(total), list(rows)


async def duplicates(conn: AsyncConnection, dataset: str, limit: int) -> list[Any]:
    """(sha256, copies, sop_uids) of the dataset's bytes stored more than once."""
    mine = select(instance.c.sha256).select_from(_instances()).where(_in(dataset)).subquery()
    return list((await conn.execute(
        select(instance.c.sha256, func.count().label("copies"),
               func.array_agg(instance.c.sop_uid).label("sop_uids"))
        .where(instance.c.sha256.in_(select(mine.c.sha256)))
        .group_by(instance.c.sha256).having(func.count() > 1)
        .order_by(func.count().desc()).limit(limit))).all())
