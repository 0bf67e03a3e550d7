"""Task-based test sets as restricted cohorts (issue 16, service side).

A curator asks for `size` cases matching target proportions; the cases come from the
sequestered pool (released, sequestered cases), narrowed by the same filters cohorts take,
and by default not from cases another test set already drew. `archive.curation.testsets`
does the quota sampling; this module reads the pool, freezes the chosen cases' studies into a
cohort (restricted, because every study in it is sequestered: manifest, DICOMweb root and
download work as for any cohort, for curators only) and records the draw.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from archive.commons import cohorts
from archive.commons.harmonize import current_version
from archive.commons.releases import RELEASE_LOCK, cases_from_rows
from archive.commons.selection import check_pairs, pairs_from, study_select
from archive.core import Caller, Core
from archive.curation.testsets import Shortfall, draw_test_set, validate_targets
from archive.errors import InvalidRequest
from archive.index import cohorts as cohort_rows
from archive.index import releases as release_rows
from archive.index import testsets as rows_of
from archive.index.handles import Connection

MAX_SIZE = 100_000
FIELDS = {"name", "size", "filters", "query", "targets", "reuse", "seed"}


def _parse(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest('expected a JSON object {"name", "size", "targets", "filters"}')
    unknown = set(body) - FIELDS
    if unknown:
        raise InvalidRequest(f"unknown test set fields: {', '.join(sorted(unknown))}")
    name, size = body.get("name"), body.get("size")
    if not isinstance(name, str) or not name.strip() or len(name) > cohorts.MAX_NAME:
        raise InvalidRequest(f"name is required (text of at most {cohorts.MAX_NAME} characters)")
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
        raise InvalidRequest(f"size must be an integer within 1..{MAX_SIZE}")
    targets = body.get("targets") or {}
    if not isinstance(targets, dict) or not all(isinstance(v, dict) for v in targets.values()):
        raise InvalidRequest('targets must be {"attribute": {"value": proportion, ...}, ...}')
    try:
        clean = validate_targets(targets)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(str(exc)) from None
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed < 2**63):
        raise InvalidRequest("seed must be a non-negative 63-bit integer")
    pairs = check_pairs(pairs_from(body.get("filters")) + pairs_from(body.get("query")))
    return {"name": name.strip(), "size": size, "targets": clean, "pairs": pairs,
            "reuse": bool(body.get("reuse")),
            "seed": secrets.randbits(63) if seed is None else seed}


async def create(core: Core, caller: Caller, body: Any) -> dict[str, Any]:
    """Draw and freeze a test set; Shortfall (→ 409) when the pool cannot meet it."""
    req = _parse(body)
    chosen = study_select(req["pairs"], core.extensions, caller) if req["pairs"] else None
    cid = uuid.uuid4()
    async with core.engine.begin() as conn:
        await release_rows.lock(conn, RELEASE_LOCK + 1)
        pool = cases_from_rows(await rows_of.pool_rows(conn, chosen))
        used = set() if req["reuse"] else await rows_of.used_cases(conn)
        drawn = draw_test_set(pool.values(), req["size"], req["targets"], seed=req["seed"],
                              exclude=used)
        await _freeze(conn, cid, req, chosen, list(drawn.case_ids))
        distribution = drawn.distribution()
        await rows_of.record(conn, cid, req["name"], req["size"], req["seed"], req["targets"],
                             distribution, list(drawn.case_ids))
    made = await cohorts.get(core, caller, str(cid))
    return made | {"testset": {"name": req["name"], "size": req["size"], "seed": req["seed"],
                               "pool": len(pool), "excluded_used": len(used & set(pool)),
                               "distribution": distribution}}


async def _freeze(conn: Connection, cid: uuid.UUID, req: dict[str, Any], chosen: Any | None,
                  case_ids: list[str]) -> None:
    """A cohort of the drawn cases' pool studies (restricted: they are all sequestered)."""
    await cohort_rows.insert_cohort(
        conn, cid, req["name"], {"filters": [list(p) for p in req["pairs"]],
                                 "testset": req["name"]},
        await current_version(conn), "curator")
    await rows_of.freeze_cases(conn, cid, chosen, case_ids)


async def list_all(core: Core) -> list[dict[str, Any]]:
    async with core.engine.connect() as conn:
        rows = await rows_of.list_all(conn)
    return [{"cohort_id": str(r.cohort_id), "name": r.name, "size": r.size, "seed": r.seed,
             "targets": r.targets, "distribution": r.distribution,
             "created_at": r.created_at.isoformat()} for r in rows]


__all__ = ["Shortfall", "create", "list_all"]
