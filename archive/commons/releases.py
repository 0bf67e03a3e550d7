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

from archive.core import Caller, Core
from archive.curation.sequester import Partition, sequester
from archive.curation.strata import Case
from archive.errors import Conflict, Forbidden, InvalidRequest, NotFound
from archive.index import releases as rows_of
from archive.index.handles import Connection
from archive.index.release_tables import STAGED
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
        await rows_of.lock(conn, RELEASE_LOCK)
        targets = await rows_of.unreleased_rows(conn, datasets)
        if not targets:
            raise NothingToRelease(f"no unreleased study in dataset(s) {', '.join(datasets)}")
        target_cases = {r.case_id for r in targets}
        earlier = await rows_of.earlier_rows(conn)
        existing = await rows_of.partitions(conn)
        # a curator's explicit `sequestered` upload pre-assigns its (new) case
        pre = {r.case_id: Partition.SEQUESTERED for r in targets
               if r.collection == SEQUESTERED and r.case_id not in existing}
        existing |= {c: p.value for c, p in pre.items()}
        cases = cases_from_rows([*earlier, *targets])
        result = sequester(cases.values(), existing, seed=seed,
                           fraction=settings.sequester_fraction,
                           attributes=settings.strata_attributes)
        number = await rows_of.next_number(conn)
        counts = result.report.as_dict() | {
            "studies": len(targets), "cases_in_release": len(target_cases),
            "followed_earlier": len(target_cases - set(result.assignments))}
        await rows_of.insert_release(
            conn, number, sorted(set(datasets)), seed, settings.sequester_fraction,
            list(settings.strata_attributes), counts, notes, curator)
        await rows_of.assign_partitions(
            conn, {c: str(p) for c, p in (result.assignments | pre).items()}, number)
        await rows_of.publish(conn, [r.pk for r in targets], number,
                              settings.default_collection)
    return await get_release(core, number)


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
        r = await rows_of.get_release(conn, number)
    if r is None:
        raise NotFound(f"no release {number}")
    return _release_json(r, detail=True)


async def list_releases(core: Core) -> list[dict[str, Any]]:
    async with core.engine.connect() as conn:
        rows = await rows_of.list_releases(conn)
    return [_release_json(r, detail=False) for r in rows]


async def latest_release(conn: Connection) -> int | None:
    return await rows_of.latest_release(conn)


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
        await rows_of.lock(conn, RELEASE_LOCK)
        row = await rows_of.lock_partition(conn, case_id)
        if row is None:
            raise NotFound(f"case {case_id} has not been released")
        await rows_of.move_case(conn, case_id, row.partition, str(to), reason.strip(), curator,
                                core.settings.default_collection)
        history = await rows_of.overrides(conn, case_id)
    return {"case_id": case_id, "partition": str(to), "from": row.partition,
            "release_number": row.release_number,
            "overrides": [{"from": h.from_partition, "to": h.to_partition, "reason": h.reason,
                           "curator": h.curator, "at": h.created_at.isoformat()}
                          for h in history]}


async def staged_datasets(conn: Connection) -> list[str]:
    return await rows_of.staged_datasets(conn)
