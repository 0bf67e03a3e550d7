"""Cohorts: a filter frozen into a fixed, versioned set of studies and instances.

Creating a cohort evaluates the filter once, in one snapshot, and records the member studies
and the instances they held at that moment, with the exact query, the mapping version and the
counts. Later data never changes a cohort: new matching studies are not added, and new
instances of member studies are not in its manifest. A cohort that holds sequestered studies
(made by a curator) is `restricted`: only callers who may see sequestered data can read it.

A cohort belongs to its creator (`Caller.actor`): only the owner and curators may read it, its
manifest and its DICOMweb root, until a curator publishes it. Anyone else gets the same 404 as
for a cohort that does not exist. A cohort's size is limited per role (MAX_STUDIES).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from archive.blobs import BlobRef, blob_ref
from archive.commons.harmonize import current_version
from archive.commons.selection import check_pairs, pairs_from, study_select
from archive.core import Caller, Core
from archive.errors import InvalidRequest, NotFound, PayloadTooLarge
from archive.index import cohorts as rows_of
from archive.index.visibility import cohort_uuid

MAX_NAME = 200
# Studies one cohort may hold, by the creator's highest role (curators: unlimited).
MAX_STUDIES = {"reader": 10_000, "contributor": 10_000}


def _parse_body(body: Any) -> tuple[str | None, list[tuple[str, str]], str | None]:
    if not isinstance(body, dict):
        raise InvalidRequest('expected a JSON object {"name": ..., "filters": {...}}')
    unknown = set(body) - {"name", "description", "filters", "query"}
    if unknown:
        raise InvalidRequest(f"unknown cohort fields: {', '.join(sorted(unknown))}")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
        raise InvalidRequest(f"name must be text of at most {MAX_NAME} characters")
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 4000):
        raise InvalidRequest("description must be text of at most 4000 characters")
    pairs = pairs_from(body.get("filters")) + pairs_from(body.get("query"))
    return name, check_pairs(pairs), description


async def create(core: Core, caller: Caller, body: Any) -> dict[str, Any]:
    """Evaluate the filter once, in one REPEATABLE READ snapshot, and freeze the result."""
    name, pairs, description = _parse_body(body)
    selection = study_select(pairs, core.extensions, caller)
    cid = uuid.uuid4()
    async with core.engine.connect() as conn:
        await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            version = await current_version(conn)
            await rows_of.insert_cohort(
                conn, cid, name, {"filters": [list(p) for p in pairs], "description": description}, version,
                "curator" if "curator" in caller.roles else None, caller.actor)
            await rows_of.freeze(conn, cid, selection)
            row = await rows_of.cohort_row(conn, cid)
            _check_size(caller, row.num_studies if row is not None else 0)
    return _readable(row, caller, str(cid))


def _check_size(caller: Caller, studies: int) -> None:
    """PayloadTooLarge (the transaction rolls back) above the creator's role's limit."""
    if "curator" in caller.roles:
        return
    limit = min((v for k, v in MAX_STUDIES.items() if k in caller.roles), default=0)
    if studies > limit:
        raise PayloadTooLarge(f"a cohort holds at most {limit} studies for your role "
                              f"({studies} match); narrow the filter or ask a curator")


async def publish(core: Core, caller: Caller, cohort_id: str) -> dict[str, Any]:
    """Make a cohort readable by every reader (the route needs the curator's permission)."""
    cid = cohort_uuid(cohort_id)
    async with core.engine.begin() as conn:
        row = None if cid is None else await rows_of.publish(conn, cid)
    return _readable(row, caller, cohort_id)


def _row(r: Any) -> dict[str, Any]:
    return {"id": str(r.id), "name": r.name, "release": r.release_number,
            "description": r.query.get("description"),
            "query": [tuple(p) for p in r.query["filters"]],
            "mapping_version": r.mapping_version,
            "counts": {"cases": r.num_cases, "studies": r.num_studies, "series": r.num_series,
                       "instances": r.num_instances, "size_bytes": r.size_bytes},
            "restricted": r.restricted, "created_at": r.created_at.isoformat(),
            "owner": r.owner,
            "published_at": r.published_at.isoformat() if r.published_at else None}


def _readable(row: Any, caller: Caller, cohort_id: str) -> dict[str, Any]:
    """The cohort, or NotFound (also for a restricted cohort the caller may not read)."""
    if row is None or (row.restricted and not caller.may_see_sequestered) \
            or not _may_read(row, caller):
        raise NotFound(f"no cohort {cohort_id}")
    return _row(row)


def _may_read(row: Any, caller: Caller) -> bool:
    """Published, or the caller's own, or the caller is a curator."""
    return (row.published_at is not None or "curator" in caller.roles
            or (caller.actor is not None and row.owner == caller.actor))


async def _get(conn: Any, caller: Caller, cohort_id: str) -> tuple[uuid.UUID, dict[str, Any]]:
    cid = cohort_uuid(cohort_id)
    row = None if cid is None else await rows_of.cohort_row(conn, cid)
    cohort = _readable(row, caller, cohort_id)
    assert cid is not None
    return cid, cohort


async def get(core: Core, caller: Caller, cohort_id: str) -> dict[str, Any]:
    """The cohort, or NotFound (also for a restricted cohort the caller may not read)."""
    async with core.engine.connect() as conn:
        return (await _get(conn, caller, cohort_id))[1]


async def list_all(core: Core, caller: Caller) -> list[dict[str, Any]]:
    async with core.engine.connect() as conn:
        return [_row(r) for r in await rows_of.cohort_rows(conn, caller)]


@dataclass(frozen=True, slots=True)
class Manifest:
    """A cohort, its frozen series (optionally with instances) and optionally its clinical rows."""

    cohort: dict[str, Any]
    series: list[dict[str, Any]]
    clinical: list[dict[str, Any]] = field(default_factory=list)


SERIES_COLUMNS = ("case_id", "study_uid", "series_uid", "modality", "series_number",
                  "instances", "size_bytes")


async def manifest(core: Core, caller: Caller, cohort_id: str, detailed: bool) -> Manifest:
    """The manifest; `detailed` adds each series' instances and the clinical rows."""
    async with core.engine.connect() as conn:
        cid, cohort = await _get(conn, caller, cohort_id)
        series = []
        for r in await rows_of.series_rows(conn, caller, cid, with_instances=detailed):
            item = {k: r[k] for k in SERIES_COLUMNS}
            if detailed:
                item["instance_list"] = r["instance_list"]
            series.append(item)
        clinical = await _clinical(conn, caller, cid) if detailed else []
    return Manifest(cohort, series, clinical)


CLINICAL_COLUMNS = (
    "case_id", "study_uid", "site", "dataset", "modalities", "study_description",
    "loinc_code", "loinc_long_common_name", "loinc_system", "loinc_contrast",
    "sex", "race", "ethnicity", "age_at_index", "age_at_index_gt89", "covid19_positive",
    "index_event", "zip", "days_to_study", "days_from_study_to_pos_covid_test",
    "days_from_study_to_neg_covid_test",
)


async def _clinical(conn: Any, caller: Caller, cid: uuid.UUID) -> list[dict[str, Any]]:
    return [{k: r[k] for k in CLINICAL_COLUMNS}
            for r in await rows_of.clinical_rows(conn, caller, cid)]


async def clinical_rows(core: Core, caller: Caller, cohort_id: str) -> list[dict[str, Any]]:
    """The cohort's studies joined with the case's clinical data (one row per study)."""
    async with core.engine.connect() as conn:
        cid, _ = await _get(conn, caller, cohort_id)
        return await _clinical(conn, caller, cid)


@dataclass(frozen=True, slots=True)
class MemberFile:
    """A frozen member instance's stored file."""

    blob: BlobRef
    size: int
    sha256: str


async def member_file(core: Core, caller: Caller, cohort_id: str, sop_uid: str) -> MemberFile:
    """The stored file of a frozen member instance, else NotFound."""
    async with core.engine.connect() as conn:
        cid, _ = await _get(conn, caller, cohort_id)
        row = await rows_of.member_file_row(conn, caller, cid, sop_uid)
    if row is None:
        raise NotFound(f"no instance {sop_uid} in cohort {cohort_id}")
    return MemberFile(blob_ref(core, row.blob_key, row.size_bytes), row.size_bytes, row.sha256)
