"""Explore (the research portal's data): faceted counts and results pages over the commons.

The service side of `/commons/explore`: it owns the transaction, narrows the caller to a
cohort when asked (NotFound for a cohort the caller may not read), hands the index the one
selection rule (`selection.study_select`: QIDO's parser, SQL and visibility), and applies the
small-cell rule (`--min-cell-count`) to every count it returns. SQL lives in
archive.index.commons_explore / commons_browse.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from archive.commons import cohorts
from archive.commons.selection import check_pairs, study_select
from archive.core import Caller, Core
from archive.errors import InvalidQuery
from archive.index import commons_browse, commons_explore
from archive.index.commons_explore import FACETS, suppress, suppress_facet
from archive.index.commons_fields import PREFIX
from archive.query.parse import resolve_path
from archive.query.spec import Level
from archive.query.sql import home_level

__all__ = ["FACETS", "explore", "facet_catalog", "page", "suppress", "suppress_facet"]


async def _scoped(core: Core, caller: Caller, cohort: str | None) -> Caller:
    """The caller, narrowed to a cohort's frozen studies when `cohort` is given."""
    if not cohort:
        return caller
    await cohorts.get(core, caller, cohort)  # NotFound for unknown or restricted cohorts
    return replace(caller, cohort=cohort)


def independent(key: str) -> bool:
    """Whether a key's condition is a per-study conjunct of its own (commons keys, study and
    patient attributes): blocks of such keys are evaluated apart and AND to the combined
    query. (Two series-level keys must match the same series, so they are kept together.)"""
    if key.startswith(PREFIX):
        return True
    try:
        path = resolve_path(key)
    except InvalidQuery:
        return False
    return len(path) == 1 and home_level(path[0].tag) in (Level.STUDY, Level.PATIENT)


def _selector(core: Core, caller: Caller) -> commons_explore.Selector:
    return lambda pairs: study_select(pairs, core.extensions, caller)


async def explore(core: Core, caller: Caller, pairs: list[tuple[str, str]],
                  wanted: list[str] | None, cohort: str | None = None) -> dict[str, Any]:
    """Totals, the age histogram and every facet (or the `wanted` ones) under `pairs`."""
    pairs = check_pairs(pairs)
    caller = await _scoped(core, caller, cohort)
    async with core.engine.connect() as conn:
        return await commons_explore.explore(conn, _selector(core, caller), caller, pairs,
                                             independent, core.settings.min_cell_count, wanted)


async def page(core: Core, caller: Caller, tab: str, pairs: list[tuple[str, str]],
               sort: str | None, descending: bool, offset: int, limit: int,
               cohort: str | None = None) -> dict[str, Any]:
    """One page of the `studies` or `cases` table; withheld below the minimum cell count."""
    pairs = check_pairs(pairs)
    caller = await _scoped(core, caller, cohort)
    min_cell = core.settings.min_cell_count
    select_for = _selector(core, caller)
    async with core.engine.connect() as conn:
        await commons_explore.custom_plans(conn)
        total = await commons_explore.count_matching(conn, select_for, caller, pairs)
        withheld = bool(min_cell) and total < min_cell
        rows = [] if withheld else await commons_browse.page(
            conn, select_for, caller, tab, pairs, sort, descending, offset, limit)
    return {"tab": tab, "total": suppress(total, min_cell), "withheld": withheld, "rows": rows}


def facet_catalog() -> list[dict[str, str]]:
    return [{"name": d.name, "label": d.label, "group": d.group} for d in FACETS.values()]
