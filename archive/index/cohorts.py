"""Cohort reads and the freeze, as SQLAlchemy Core over the index and commons tables.

Member reads apply the one visibility rule with the cohort as the caller's root
(archive.index.visibility.visible_to), so a cohort never shows what its reader may not see.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Row,
    Select,
    Text,
    Uuid,
    cast,
    distinct,
    exists,
    false,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSON, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.caller import Caller
from archive.index.commons_tables import (
    clinical_case,
    cohort,
    cohort_instance,
    cohort_study,
    covid_test,
    loinc_term,
    study_case,
    study_harmonization,
)
from archive.index.release_tables import cohort_release, data_release
from archive.index.tables import instance, patient, series, study
from archive.index.visibility import SEQUESTERED, STAGED, visible_to

_MEMBER_INSTANCES = (cohort_instance.join(instance, instance.c.pk == cohort_instance.c.instance_pk)
                     .join(series, series.c.pk == instance.c.series_pk)
                     .join(study, study.c.pk == series.c.study_pk))


def _member(caller: Caller, cid: uuid.UUID) -> Caller:
    """The caller's rights, rooted at the cohort."""
    return Caller(may_see_sequestered=caller.may_see_sequestered, cohort=str(cid))


async def insert_cohort(conn: AsyncConnection, cid: uuid.UUID, name: str | None,
                        query: dict[str, Any], version: int, created_by: str | None,
                        owner: str | None = None) -> None:
    await conn.execute(insert(cohort).values(
        id=cid, name=name, query=query, mapping_version=version, num_cases=0, num_studies=0,
        num_series=0, num_instances=0, size_bytes=0, created_by=created_by, owner=owner))


async def publish(conn: AsyncConnection, cid: uuid.UUID) -> Row[Any] | None:
    """Mark a cohort published (idempotent: the first publication time is kept)."""
    await conn.execute(update(cohort).where(cohort.c.id == cid, cohort.c.published_at.is_(None))
                       .values(published_at=func.now()))
    return await cohort_row(conn, cid)


async def freeze(conn: AsyncConnection, cid: uuid.UUID, studies: Select[Any]) -> None:
    """Record the selected studies (a select of `pk`), their instances now, and the counts."""
    chosen = studies.subquery()
    await conn.execute(insert(cohort_study).from_select(
        ["cohort_id", "study_pk"], select(literal(cid, Uuid), chosen.c.pk)))
    cs, ci = cohort_study, cohort_instance
    await conn.execute(insert(ci).from_select(
        ["cohort_id", "instance_pk"],
        select(literal(cid, Uuid), instance.c.pk)
        .select_from(cs.join(series, series.c.study_pk == cs.c.study_pk)
                     .join(instance, instance.c.series_pk == series.c.pk))
        .where(cs.c.cohort_id == cid)))
    cs_study = cs.join(study, study.c.pk == cs.c.study_pk)
    ci_inst = ci.join(instance, instance.c.pk == ci.c.instance_pk)
    await conn.execute(update(cohort).where(cohort.c.id == cid).values(
        num_studies=select(func.count()).select_from(cs).where(cs.c.cohort_id == cid)
        .scalar_subquery(),
        num_cases=select(func.count(distinct(study.c.patient_pk))).select_from(cs_study)
        .where(cs.c.cohort_id == cid).scalar_subquery(),
        num_series=select(func.count(distinct(instance.c.series_pk))).select_from(ci_inst)
        .where(ci.c.cohort_id == cid).scalar_subquery(),
        num_instances=select(func.count()).select_from(ci).where(ci.c.cohort_id == cid)
        .scalar_subquery(),
        size_bytes=select(func.coalesce(func.sum(instance.c.size_bytes), 0))
        .select_from(ci_inst).where(ci.c.cohort_id == cid).scalar_subquery(),
        restricted=exists().select_from(cs_study)
        .where(cs.c.cohort_id == cid, study.c.collection.in_((SEQUESTERED, STAGED))),
    ))
    # the release it was built on (None before the first release): reproducible research
    await conn.execute(insert(cohort_release).values(
        cohort_id=cid, release_number=select(func.max(data_release.c.number)).scalar_subquery()))


_WITH_RELEASE = (select(cohort, cohort_release.c.release_number)
                 .select_from(cohort.outerjoin(cohort_release,
                                               cohort_release.c.cohort_id == cohort.c.id)))


async def cohort_row(conn: AsyncConnection, cid: uuid.UUID) -> Row[Any] | None:
    return (await conn.execute(_WITH_RELEASE.where(cohort.c.id == cid))).first()


async def cohort_rows(conn: AsyncConnection, caller: Caller) -> Sequence[Row[Any]]:
    """Every cohort the caller may read: their own and published ones (curators: all);
    restricted ones only with the sequestered right."""
    stmt = _WITH_RELEASE.order_by(cohort.c.created_at)
    if not caller.may_see_sequestered:
        stmt = stmt.where(not_(cohort.c.restricted))
    if "curator" not in caller.roles:
        mine = cohort.c.owner == caller.actor if caller.actor else false()
        stmt = stmt.where(or_(cohort.c.published_at.is_not(None), mine))
    return (await conn.execute(stmt)).all()


async def series_rows(conn: AsyncConnection, caller: Caller, cid: uuid.UUID,
                      with_instances: bool) -> Sequence[Any]:
    """One row per frozen series the reader may see (with a JSON list of its instances)."""
    i = instance
    columns: list[Any] = [
        patient.c.patient_id.label("case_id"), study.c.study_uid, series.c.series_uid,
        series.c.modality, series.c.series_number, func.count(i.c.pk).label("instances"),
        cast(func.sum(i.c.size_bytes), BigInteger).label("size_bytes")]
    if with_instances:
        columns.append(func.json_agg(aggregate_order_by(
            func.json_build_object("sop_uid", i.c.sop_uid, "size_bytes", i.c.size_bytes,
                                   "sha256", i.c.sha256),
            i.c.instance_number.asc().nulls_last(), i.c.pk), type_=JSON).label("instance_list"))
    stmt = (select(*columns)
            .select_from(_MEMBER_INSTANCES.join(patient, patient.c.pk == study.c.patient_pk))
            .where(cohort_instance.c.cohort_id == cid, visible_to(_member(caller, cid)))
            .group_by(patient.c.patient_id, study.c.pk, study.c.study_uid, series.c.pk,
                      series.c.series_uid, series.c.modality, series.c.series_number)
            .order_by(patient.c.patient_id, study.c.pk, series.c.series_number.asc().nulls_last(),
                      series.c.pk))
    return (await conn.execute(stmt)).mappings().all()


def _days_to_tests(result: str) -> ColumnElement[Any]:
    """`;`-joined days from the study to the case's tests with this result (correlated)."""
    ct, sc = covid_test, study_case
    return (select(func.string_agg(cast(ct.c.days_from_index - sc.c.days_to_study, Text),
                                   aggregate_order_by(literal(";"), ct.c.days_from_index)))
            .where(ct.c.case_id == clinical_case.c.case_id,
                   func.lower(ct.c.test_result) == result)
            .scalar_subquery())


async def clinical_rows(conn: AsyncConnection, caller: Caller,
                        cid: uuid.UUID) -> Sequence[Any]:
    """The cohort's visible studies joined with the case's clinical data (one row per study)."""
    h, t, sc, c = study_harmonization, loinc_term, study_case, clinical_case
    joined = (cohort_study.join(study, study.c.pk == cohort_study.c.study_pk)
              .join(patient, patient.c.pk == study.c.patient_pk)
              .outerjoin(h, h.c.study_pk == study.c.pk).outerjoin(t, t.c.code == h.c.loinc_code)
              .outerjoin(sc, sc.c.study_pk == study.c.pk)
              .outerjoin(c, c.c.case_id == sc.c.case_id))
    stmt = (select(
        patient.c.patient_id.label("case_id"), study.c.study_uid, study.c.site, study.c.dataset,
        func.array_to_string(study.c.modalities, ";").label("modalities"),
        study.c.study_description, h.c.loinc_code,
        t.c.long_common_name.label("loinc_long_common_name"),
        t.c.body_system.label("loinc_system"), t.c.contrast.label("loinc_contrast"),
        c.c.sex, c.c.race, c.c.ethnicity, c.c.age_at_index, c.c.age_at_index_gt89,
        c.c.covid19_positive, c.c.index_event, c.c.zip, sc.c.days_to_study,
        _days_to_tests("positive").label("days_from_study_to_pos_covid_test"),
        _days_to_tests("negative").label("days_from_study_to_neg_covid_test"),
    ).select_from(joined)
        .where(cohort_study.c.cohort_id == cid, visible_to(_member(caller, cid)))
        .order_by(patient.c.patient_id, study.c.pk))
    return (await conn.execute(stmt)).mappings().all()


async def member_file_row(conn: AsyncConnection, caller: Caller, cid: uuid.UUID,
                          sop_uid: str) -> Row[Any] | None:
    """(blob_key, size_bytes, sha256) of a frozen member instance the reader may see."""
    stmt: Select[Any] = (select(instance.c.blob_key, instance.c.size_bytes, instance.c.sha256)
                         .select_from(_MEMBER_INSTANCES)
                         .where(cohort_instance.c.cohort_id == cid, instance.c.sop_uid == sop_uid,
                                visible_to(_member(caller, cid))))
    return (await conn.execute(stmt)).first()
