"""The commons services: what the /commons door (and any other) calls.

Each service opens its own connection or transaction on the core's engine and returns plain
values; the door only reads requests and writes responses. Rights are checked here too: a
change needs the curator role whenever a curator token is configured (Forbidden otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from archive.commons import clinical, harmonize, sites
from archive.commons.selection import check_pairs, study_select
from archive.core import Caller, Core
from archive.errors import Forbidden, InvalidRequest
from archive.index import commons_caseview, commons_facets
from archive.tasks.status import WAIT_SECONDS, wait_done

MAPPING_FIELDS = frozenset({"modality", "description", "loinc_code", "status", "replace"})


def authorize_write(core: Core, caller: Caller) -> None:
    """Writes need the curator token whenever one is configured."""
    if core.settings.curator_token and "curator" not in caller.roles:
        raise Forbidden("this change needs the curator token (Authorization: Bearer ...)")


async def import_clinical(core: Core, caller: Caller, body: bytes, content_type: str,
                          table: str | None) -> dict[str, int]:
    """Validate a whole batch (RowErrors lists every bad value), then write it in one go."""
    authorize_write(core, caller)
    batch = clinical.parse(body, content_type, table)
    async with core.engine.begin() as conn:
        return await clinical.write(conn, batch)


async def case(core: Core, caller: Caller, case_id: str) -> dict[str, Any]:
    async with core.engine.connect() as conn:
        return await commons_caseview.case_view(conn, caller, case_id, clinical.CHILD_TABLES)


async def descriptions(core: Core, caller: Caller, status: str) -> list[dict[str, Any]]:
    """The curators' worklist; unmapped rows carry the top LOINC suggestions (issue 16)."""
    async with core.engine.connect() as conn:
        rows = await harmonize.list_descriptions(conn, caller, status)
    if status != "unmapped":
        return rows
    from archive.commons.suggest import service as suggestions

    return await suggestions(core).annotate(core, rows)


@dataclass(frozen=True, slots=True)
class Mappings:
    version: int
    mappings: list[dict[str, Any]]


async def mappings(core: Core, status: str | None) -> Mappings:
    async with core.engine.connect() as conn:
        rows = await harmonize.list_mappings(conn, status)
        return Mappings(await harmonize.current_version(conn), rows)


async def set_mappings(core: Core, caller: Caller, items: Sequence[Any],
                       curator: str) -> list[dict[str, Any]]:
    """Apply mapping changes in one transaction (all or none), each with its re-apply job;
    wait (briefly) for the jobs, so the answer can say the studies carry the new codes."""
    authorize_write(core, caller)
    results: list[dict[str, Any]] = []
    async with core.engine.begin() as conn:
        for item in items:
            if not isinstance(item, dict):
                raise InvalidRequest("each mapping must be a JSON object")
            unknown = set(item) - MAPPING_FIELDS
            if unknown:
                raise InvalidRequest(f"unknown mapping fields: {', '.join(sorted(unknown))}")
            results.append(await harmonize.set_mapping(
                conn, str(item.get("modality") or ""), str(item.get("description") or ""),
                item.get("loinc_code"), str(item.get("status") or "approved"), curator,
                bool(item.get("replace"))))
    done = await wait_done(core.engine, [r["job"] for r in results], WAIT_SECONDS)
    return [{**r, "reapplied": done} for r in results]


async def terms(core: Core) -> list[dict[str, Any]]:
    async with core.engine.connect() as conn:
        return await harmonize.terms(conn)


async def list_sites(core: Core, caller: Caller) -> list[dict[str, Any]]:
    async with core.engine.connect() as conn:
        return await sites.list_sites(conn, caller)


async def list_datasets(core: Core, caller: Caller) -> list[dict[str, Any]]:
    async with core.engine.connect() as conn:
        return await sites.list_datasets(conn, caller)


async def facet_counts(core: Core, caller: Caller, names: Sequence[str],
                       filters: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    if not names:
        raise InvalidRequest("field is required, e.g. ?field=commons.case.sex")
    pairs = check_pairs(filters)
    async with core.engine.connect() as conn:
        return [await commons_facets.facet(conn, study_select(pairs, core.extensions, caller), n)
                for n in names]
