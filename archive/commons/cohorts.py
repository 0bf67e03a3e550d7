"""Cohorts: a filter frozen into a fixed, versioned set of studies and instances.

Creating a cohort evaluates the filter once, in one snapshot, and records the member studies
and the instances they held at that moment, with the exact query, the mapping version and the
counts. Later data never changes a cohort: new matching studies are not added, and new
instances of member studies are not in its manifest. A cohort that holds sequestered studies
(made by a curator) is `restricted`: only callers who may see sequestered data can read it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.commons.harmonize import current_version
from archive.commons.releases import record_cohort_release
from archive.commons.selection import check_pairs, pairs_from, study_select
from archive.core import Caller, Core
from archive.errors import InvalidRequest, NotFound
from archive.index.visibility import SEQUESTERED, STAGED, cohort_uuid, visible_sql

MAX_NAME = 200


def _parse_body(body: Any) -> tuple[str | None, list[tuple[str, str]]]:
    if not isinstance(body, dict):
        raise InvalidRequest('expected a JSON object {"name": ..., "filters": {...}}')
    unknown = set(body) - {"name", "filters", "query"}
    if unknown:
        raise InvalidRequest(f"unknown cohort fields: {', '.join(sorted(unknown))}")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
        raise InvalidRequest(f"name must be text of at most {MAX_NAME} characters")
    pairs = pairs_from(body.get("filters")) + pairs_from(body.get("query"))
    return name, check_pairs(pairs)


async def create(core: Core, caller: Caller, body: Any) -> dict[str, Any]:
    name, pairs = _parse_body(body)
    selection = study_select(pairs, core.extensions, caller)
    cid = uuid.uuid4()
    async with core.engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            version = await current_version(conn)
            await conn.execute(text(
                "INSERT INTO cohort (id, name, query, mapping_version, num_cases, num_studies, "
                "num_series, num_instances, size_bytes, created_by) "
                "VALUES (:id, :name, CAST(:q AS jsonb), :v, 0, 0, 0, 0, 0, :by)"),
                {"id": cid, "name": name, "v": version,
                 "q": json.dumps({"filters": [list(p) for p in pairs]}),
                 "by": "curator" if "curator" in caller.roles else None})
            compiled = selection.subquery()
            from sqlalchemy import insert, literal, select

            from archive.commons.tables import cohort_study

            await conn.execute(insert(cohort_study).from_select(
                ["cohort_id", "study_pk"], select(literal(cid), compiled.c.pk)))
            await _freeze_instances(conn, cid)
            await record_cohort_release(conn, cid)
        return await get(conn, caller, str(cid))


async def _freeze_instances(conn: AsyncConnection, cid: uuid.UUID) -> None:
    await conn.execute(text(
        "INSERT INTO cohort_instance (cohort_id, instance_pk) SELECT :id, i.pk FROM cohort_study "
        "cs JOIN series se ON se.study_pk = cs.study_pk JOIN instance i ON i.series_pk = se.pk "
        "WHERE cs.cohort_id = :id"), {"id": cid})
    await conn.execute(text(
        f"""
        UPDATE cohort c SET
            num_studies = (SELECT count(*) FROM cohort_study WHERE cohort_id = :id),
            num_cases = (SELECT count(DISTINCT s.patient_pk) FROM cohort_study cs
                         JOIN study s ON s.pk = cs.study_pk WHERE cs.cohort_id = :id),
            num_series = (SELECT count(DISTINCT i.series_pk) FROM cohort_instance ci
                          JOIN instance i ON i.pk = ci.instance_pk WHERE ci.cohort_id = :id),
            num_instances = (SELECT count(*) FROM cohort_instance WHERE cohort_id = :id),
            size_bytes = (SELECT COALESCE(sum(i.size_bytes), 0) FROM cohort_instance ci
                          JOIN instance i ON i.pk = ci.instance_pk WHERE ci.cohort_id = :id),
            restricted = EXISTS (SELECT 1 FROM cohort_study cs JOIN study s ON s.pk = cs.study_pk
                                 WHERE cs.cohort_id = :id
                                 AND s.collection IN ('{SEQUESTERED}', '{STAGED}'))
        WHERE c.id = :id
        """), {"id": cid})


_WITH_RELEASE = ("c.*, cr.release_number FROM cohort c "
                 "LEFT JOIN cohort_release cr ON cr.cohort_id = c.id")


def _row(r: Any) -> dict[str, Any]:
    return {"id": str(r.id), "name": r.name, "release": r.release_number,
            "query": [tuple(p) for p in r.query["filters"]],
            "mapping_version": r.mapping_version,
            "counts": {"cases": r.num_cases, "studies": r.num_studies, "series": r.num_series,
                       "instances": r.num_instances, "size_bytes": r.size_bytes},
            "restricted": r.restricted, "created_at": r.created_at.isoformat()}


async def get(conn: AsyncConnection, caller: Caller, cohort_id: str) -> dict[str, Any]:
    """The cohort, or NotFound (also for a restricted cohort the caller may not read)."""
    cid = cohort_uuid(cohort_id)
    row = None
    if cid is not None:
        row = (await conn.execute(text(
            f"SELECT {_WITH_RELEASE} WHERE c.id = :id"),
                                  {"id": cid})).first()
    if row is None or (row.restricted and not caller.may_see_sequestered):
        raise NotFound(f"no cohort {cohort_id}")
    return _row(row)


async def list_all(conn: AsyncConnection, caller: Caller) -> list[dict[str, Any]]:
    rows = (await conn.execute(text(
        f"SELECT {_WITH_RELEASE} WHERE (:all OR NOT c.restricted) ORDER BY c.created_at"),
        {"all": caller.may_see_sequestered})).all()
    return [_row(r) for r in rows]


def _member(caller: Caller, cohort_id: str) -> Caller:
    return Caller(may_see_sequestered=caller.may_see_sequestered, cohort=cohort_id)


async def series_rows(conn: AsyncConnection, caller: Caller, cohort_id: str,
                      with_instances: bool) -> list[dict[str, Any]]:
    """One row per frozen series: case, study, series, counts and sizes (instances optional)."""
    await get(conn, caller, cohort_id)
    cid = cohort_uuid(cohort_id)
    rows = (await conn.execute(text(
        f"""
        SELECT p.patient_id AS case_id, study.study_uid, se.series_uid, se.modality,
               se.series_number, count(i.pk) AS instances, sum(i.size_bytes)::bigint AS size_bytes,
               CASE WHEN :inst THEN json_agg(json_build_object(
                   'sop_uid', i.sop_uid, 'size_bytes', i.size_bytes, 'sha256', i.sha256)
                   ORDER BY i.instance_number NULLS LAST, i.pk) END AS instance_list
        FROM cohort_instance ci JOIN instance i ON i.pk = ci.instance_pk
        JOIN series se ON se.pk = i.series_pk JOIN study ON study.pk = se.study_pk
        JOIN patient p ON p.pk = study.patient_pk
        WHERE ci.cohort_id = :id AND {visible_sql(_member(caller, cohort_id))}
        GROUP BY p.patient_id, study.pk, study.study_uid, se.pk, se.series_uid, se.modality,
                 se.series_number
        ORDER BY p.patient_id, study.pk, se.series_number NULLS LAST, se.pk
        """), {"id": cid, "inst": with_instances})).mappings().all()
    out = []
    for r in rows:
        item = {k: r[k] for k in ("case_id", "study_uid", "series_uid", "modality",
                                  "series_number", "instances", "size_bytes")}
        if with_instances:
            item["instance_list"] = r["instance_list"]
        out.append(item)
    return out


CLINICAL_COLUMNS = (
    "case_id", "study_uid", "site", "dataset", "modalities", "study_description",
    "loinc_code", "loinc_long_common_name", "loinc_system", "loinc_contrast",
    "sex", "race", "ethnicity", "age_at_index", "age_at_index_gt89", "covid19_positive",
    "index_event", "zip", "days_to_study", "days_from_study_to_pos_covid_test",
    "days_from_study_to_neg_covid_test",
)


async def clinical_rows(conn: AsyncConnection, caller: Caller,
                        cohort_id: str) -> list[dict[str, Any]]:
    """The cohort's studies joined with the case's clinical data (one row per study)."""
    await get(conn, caller, cohort_id)
    rows = (await conn.execute(text(
        f"""
        SELECT p.patient_id AS case_id, study.study_uid, study.site, study.dataset,
               array_to_string(study.modalities, ';') AS modalities, study.study_description,
               h.loinc_code, t.long_common_name AS loinc_long_common_name,
               t.body_system AS loinc_system, t.contrast AS loinc_contrast,
               c.sex, c.race, c.ethnicity, c.age_at_index, c.age_at_index_gt89,
               c.covid19_positive, c.index_event, c.zip, sc.days_to_study,
               (SELECT string_agg((ct.days_from_index - sc.days_to_study)::text, ';'
                                  ORDER BY ct.days_from_index)
                FROM covid_test ct WHERE ct.case_id = c.case_id
                AND lower(ct.test_result) = 'positive') AS days_from_study_to_pos_covid_test,
               (SELECT string_agg((ct.days_from_index - sc.days_to_study)::text, ';'
                                  ORDER BY ct.days_from_index)
                FROM covid_test ct WHERE ct.case_id = c.case_id
                AND lower(ct.test_result) = 'negative') AS days_from_study_to_neg_covid_test
        FROM cohort_study cs JOIN study ON study.pk = cs.study_pk
        JOIN patient p ON p.pk = study.patient_pk
        LEFT JOIN study_harmonization h ON h.study_pk = study.pk
        LEFT JOIN loinc_term t ON t.code = h.loinc_code
        LEFT JOIN study_case sc ON sc.study_pk = study.pk
        LEFT JOIN clinical_case c ON c.case_id = sc.case_id
        WHERE cs.cohort_id = :id AND {visible_sql(_member(caller, cohort_id))}
        ORDER BY p.patient_id, study.pk
        """), {"id": cohort_uuid(cohort_id)})).mappings().all()
    return [{k: r[k] for k in CLINICAL_COLUMNS} for r in rows]


async def member_file(conn: AsyncConnection, caller: Caller, cohort_id: str,
                      sop_uid: str) -> tuple[str, int, str]:
    """(blob key, size, sha256) of a frozen member instance, else NotFound."""
    await get(conn, caller, cohort_id)
    row = (await conn.execute(text(
        f"""
        SELECT i.blob_key, i.size_bytes, i.sha256 FROM cohort_instance ci
        JOIN instance i ON i.pk = ci.instance_pk JOIN series se ON se.pk = i.series_pk
        JOIN study ON study.pk = se.study_pk
        WHERE ci.cohort_id = :id AND i.sop_uid = :sop AND {visible_sql(_member(caller, cohort_id))}
        """), {"id": cohort_uuid(cohort_id), "sop": sop_uid})).first()
    if row is None:
        raise NotFound(f"no instance {sop_uid} in cohort {cohort_id}")
    return row.blob_key, row.size_bytes, row.sha256
