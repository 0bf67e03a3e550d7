"""Staged datasets and numbered releases (issue 16): the service side of the curator workflow.

Under `--release-workflow` every new study arrives with `collection = 'staged'` (the enricher
below), which the one visibility rule hides from readers. `release()` publishes datasets:

1. the dataset's unreleased studies are grouped into cases (patient ids);
2. cases seen before keep their partition (sticky); new cases are split open/sequestered by
   `archive.curation.sequester` over *all* released cases and the new ones, so earlier drift
   is corrected, with a seed recorded in the release;
3. each study gets its case's collection (`sequestered`, or the default collection) and a
   `release_study` row; the release row records datasets, seed, counts by partition/stratum.

Everything runs in one transaction holding an advisory lock, so two releases (or a release
and an override) never number or assign concurrently.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import and_, func, insert, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.core import Caller, Core
from archive.curation.sequester import Partition, sequester
from archive.curation.strata import Case
from archive.errors import Conflict, Forbidden, InvalidRequest, NotFound
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

RELEASE_LOCK = 716_016  # pg advisory lock key: one release (or override) at a time
MAX_NOTES = 4000


class NothingToRelease(Conflict):
    """The named datasets hold no unreleased study (→ 409)."""


def authorize_curator(caller: Caller) -> None:
    """Curation (QC, release, overrides, test sets) is for curators only, always: it shows
    staged and sequestered data, so there is no open mode as for clinical writes."""
    if "curator" not in caller.roles:
        raise Forbidden("this is a curator action (Authorization: Bearer <curator token>)")


def staging_enricher(default_collection: str) -> Any:
    """Enricher: with the release workflow on, a new study is staged until its release.

    Only a study's first instance sets its collection (the index keeps it afterwards), so
    later instances of a released study do not re-stage it. An explicit `sequestered`
    collection (a curator's upload) is kept: it is hidden already.
    """
    def stage(facts: Any, caller: Caller, attribution: Any) -> Any:
        if attribution.collection == SEQUESTERED:
            return attribution
        return replace(attribution, collection=STAGED)
    return stage


@dataclass(frozen=True, slots=True)
class StudyRow:
    pk: int
    case_id: str
    collection: str
    site: str | None
    modalities: tuple[str, ...]


async def _case_rows(conn: AsyncConnection, where: Any) -> list[Any]:
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


def cases_from_rows(rows: Iterable[Any]) -> dict[str, Case]:
    """Case attributes for the strata: clinical values, site, the union of its modalities."""
    acc: dict[str, dict[str, Any]] = {}
    for r in rows:
        a = acc.setdefault(r.case_id, {"sites": set(), "modality": set()})
        a["sites"].add(r.site)
        a["modality"].update(r.modalities or ())
        age: Any = ">89" if r.age_at_index_gt89 else r.age_at_index
        a.update(sex=r.sex, race=r.race, ethnicity=r.ethnicity,
                 covid19_positive=r.covid19_positive, age=age, case_site=r.case_site)
    out = {}
    for cid, a in acc.items():
        sites = sorted(s for s in a.pop("sites") if s)
        a["site"] = a.pop("case_site") or (sites[0] if sites else None)
        a["modality"] = sorted(a["modality"]) or None
        out[cid] = Case(cid, a)
    return out


def _parse_body(body: Any) -> tuple[str | None, int | None]:
    if body is None:
        return None, None
    if not isinstance(body, dict):
        raise InvalidRequest('expected a JSON object {"notes": ..., "seed": ...}')
    unknown = set(body) - {"notes", "seed"}
    if unknown:
        raise InvalidRequest(f"unknown release fields: {', '.join(sorted(unknown))}")
    notes, seed = body.get("notes"), body.get("seed")
    if notes is not None and (not isinstance(notes, str) or len(notes) > MAX_NOTES):
        raise InvalidRequest(f"notes must be text of at most {MAX_NOTES} characters")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed < 2**63):
        raise InvalidRequest("seed must be a non-negative 63-bit integer")
    return notes, seed


async def release(core: Core, datasets: Sequence[str], body: Any = None,
                  curator: str | None = None) -> dict[str, Any]:
    """Release the datasets' unreleased studies; the new numbered release, or NothingToRelease."""
    notes, seed = _parse_body(body)
    seed = secrets.randbits(63) if seed is None else seed
    settings = core.settings
    async with core.engine.begin() as conn:
        await conn.execute(select(func.pg_advisory_xact_lock(RELEASE_LOCK)))
        unreleased = and_(study.c.dataset.in_(list(datasets)),
                          study.c.pk.not_in(select(release_study.c.study_pk)))
        targets = await _case_rows(conn, unreleased)
        if not targets:
            raise NothingToRelease(f"no unreleased study in dataset(s) {', '.join(datasets)}")
        target_cases = {r.case_id for r in targets}
        earlier = await _case_rows(conn, and_(
            study.c.pk.in_(select(release_study.c.study_pk)),
            patient.c.patient_id.in_(select(case_partition.c.case_id))))
        existing: dict[str, str] = {r.case_id: r.partition for r in (await conn.execute(
            select(case_partition.c.case_id, case_partition.c.partition))).all()}
        # a curator's explicit `sequestered` upload pre-assigns its (new) case
        pre = {r.case_id: Partition.SEQUESTERED for r in targets
               if r.collection == SEQUESTERED and r.case_id not in existing}
        existing |= {c: p.value for c, p in pre.items()}
        cases = cases_from_rows([*earlier, *targets])
        result = sequester(cases.values(), existing, seed=seed,
                           fraction=settings.sequester_fraction,
                           attributes=settings.strata_attributes)
        number = int((await conn.execute(
            select(func.coalesce(func.max(data_release.c.number), 0) + 1))).scalar_one())
        counts = result.report.as_dict() | {
            "studies": len(targets), "cases_in_release": len(target_cases),
            "followed_earlier": len(target_cases - set(result.assignments))}
        await conn.execute(insert(data_release).values(
            number=number, created_at=func.now(), datasets=sorted(set(datasets)), seed=seed,
            fraction=settings.sequester_fraction, attributes=list(settings.strata_attributes),
            counts=counts, notes=notes, created_by=curator))
        rows = [{"case_id": c, "partition": str(p), "release_number": number}
                for c, p in (result.assignments | pre).items()]
        if rows:
            await conn.execute(pg_insert(case_partition).values(
                [r | {"overridden": False, "assigned_at": func.now()} for r in rows])
                .on_conflict_do_nothing(index_elements=["case_id"]))
        await _publish(conn, [r.pk for r in targets], number, settings.default_collection)
    return await get_release(core, number)


async def _publish(conn: AsyncConnection, pks: list[int], number: int, default: str) -> None:
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


def _release_json(r: Any, detail: bool) -> dict[str, Any]:
    counts = dict(r.counts)
    if not detail:
        counts = {k: v for k, v in counts.items() if k not in ("strata", "marginals")}
    return {"number": r.number, "created_at": r.created_at.isoformat(),
            "datasets": list(r.datasets), "seed": r.seed, "fraction": r.fraction,
            "attributes": list(r.attributes), "notes": r.notes, "created_by": r.created_by,
            "counts": counts}


async def get_release(core: Core, number: int) -> dict[str, Any]:
    async with core.engine.connect() as conn:
        r = (await conn.execute(select(data_release).where(data_release.c.number == number))).first()
    if r is None:
        raise NotFound(f"no release {number}")
    return _release_json(r, detail=True)


async def list_releases(core: Core) -> list[dict[str, Any]]:
    async with core.engine.connect() as conn:
        rows = (await conn.execute(select(data_release).order_by(data_release.c.number))).all()
    return [_release_json(r, detail=False) for r in rows]


async def latest_release(conn: AsyncConnection) -> int | None:
    return (await conn.execute(select(func.max(data_release.c.number)))).scalar_one()


async def override(core: Core, case_id: str, body: Any, curator: str | None) -> dict[str, Any]:
    """Move one released case to the other partition, with a reason (recorded)."""
    if not isinstance(body, dict) or set(body) - {"partition", "reason"}:
        raise InvalidRequest('expected {"partition": "open" | "sequestered", "reason": "..."}')
    try:
        to = Partition(str(body.get("partition")))
    except ValueError:
        raise InvalidRequest("partition must be open or sequestered") from None
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_NOTES:
        raise InvalidRequest("a reason (non-empty text) is required to override a case")
    async with core.engine.begin() as conn:
        await conn.execute(select(func.pg_advisory_xact_lock(RELEASE_LOCK)))
        row = (await conn.execute(select(case_partition).where(
            case_partition.c.case_id == case_id).with_for_update())).first()
        if row is None:
            raise NotFound(f"case {case_id} has not been released")
        await conn.execute(update(case_partition).where(case_partition.c.case_id == case_id)
                           .values(partition=str(to), overridden=True))
        await conn.execute(insert(partition_override).values(
            case_id=case_id, from_partition=row.partition, to_partition=str(to),
            reason=reason.strip(), curator=curator, created_at=func.now()))
        released = study.c.pk.in_(select(release_study.c.study_pk))
        of_case = study.c.patient_pk.in_(select(patient.c.pk).where(patient.c.patient_id == case_id))
        if to == Partition.SEQUESTERED:
            await conn.execute(update(study).where(released, of_case)
                               .values(collection=SEQUESTERED))
        else:
            await conn.execute(update(study).where(released, of_case,
                                                   study.c.collection == SEQUESTERED)
                               .values(collection=core.settings.default_collection))
        history = (await conn.execute(select(partition_override).where(
            partition_override.c.case_id == case_id).order_by(partition_override.c.pk))).all()
    return {"case_id": case_id, "partition": str(to), "from": row.partition,
            "release_number": row.release_number,
            "overrides": [{"from": h.from_partition, "to": h.to_partition, "reason": h.reason,
                           "curator": h.curator, "at": h.created_at.isoformat()}
                          for h in history]}


async def staged_datasets(conn: AsyncConnection) -> list[str]:
    rows = (await conn.execute(select(study.c.dataset).where(study.c.collection == STAGED)
                               .group_by(study.c.dataset).order_by(study.c.dataset))).all()
    return [r.dataset for r in rows if r.dataset is not None]
