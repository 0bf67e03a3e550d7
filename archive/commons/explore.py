"""Explore (the research portal's data): faceted counts and results pages over the commons.

The service side of `/commons/explore`: it narrows the caller to a cohort when asked (NotFound
for a cohort the caller may not read) and applies the small-cell rule (`--min-cell-count`) to
every count it returns. Facet counts are computed in memory (facet_cache, facet_count) over
the rows of one REPEATABLE READ snapshot, in which SQL decides what the table cannot: who may
see which study (`visible_to`), which values a filter matches (QIDO's matching functions) and
which studies the other filters select (`selection.study_select`: QIDO's parser and SQL). The
results tables stay SQL (archive.index.commons_browse).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any

import numpy as np

from archive.commons import cohorts
from archive.commons.facet_cache import FacetCache
from archive.commons.facet_count import count_all
from archive.commons.facet_table import Mask, Table
from archive.commons.selection import check_pairs, study_select
from archive.core import Caller, Core
from archive.errors import InvalidQuery
from archive.index import commons_browse, commons_explore, facet_rows
from archive.index.commons_explore import (
    FACETS,
    MAX_VALUES,
    facet_names,
    plan_blocks,
    suppress,
    suppress_facet,
    value_order,
)
from archive.index.commons_fields import PREFIX
from archive.query.parse import resolve_path
from archive.query.spec import Level
from archive.query.sql import home_level

log = logging.getLogger("archive.commons.explore")
# a column with more distinct values than this (case ids, say) is filtered in SQL instead
MAX_DISTINCT = 4096

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


def _cache(core: Core) -> FacetCache:
    """The Core's facet table, created on first use (one per process)."""
    if core.facets is None:
        core.facets = FacetCache()
    assert isinstance(core.facets, FacetCache)
    return core.facets


async def warm(core: Core) -> None:
    """Load the facet table in the background after start-up, so the portal's first visitor
    does not wait for it (a full load of 100,000 studies takes seconds). Best effort: a
    database that is not reachable yet is simply the first explore's job."""
    try:
        async with facet_rows.snapshot(core.engine) as conn:
            await _cache(core).current(conn)
    except Exception as exc:  # an optimisation only: the first explore reports real errors
        log.debug("facet table not loaded at start-up: %s", exc)


async def explore(core: Core, caller: Caller, pairs: list[tuple[str, str]],
                  wanted: list[str] | None, cohort: str | None = None) -> dict[str, Any]:
    """Totals, the age histogram and every facet (or the `wanted` ones) under `pairs`."""
    pairs = check_pairs(pairs)
    caller = await _scoped(core, caller, cohort)
    names = facet_names(wanted)
    blocks, subsets, of = plan_blocks(pairs, names, independent)
    cache = _cache(core)
    async with facet_rows.snapshot(core.engine) as conn:
        table = await cache.current(conn)
        visible = await _visible(conn, table, caller)
        masks = await _block_masks(conn, table, cache, blocks, pairs, _selector(core, caller))
    rows = [visible & np.logical_and.reduce([masks[b] for b in s] + [visible]) for s in subsets]
    totals, counted = await asyncio.to_thread(count_all, table, cache.dicts, rows, of, names)
    return _answer(names, totals, counted, core.settings.min_cell_count)


async def _visible(conn: facet_rows.Connection, table: Table, caller: Caller) -> Mask:
    """The rows the caller may see (visible_to, in SQL, in the request's snapshot)."""
    only, pks = await facet_rows.visibility(conn, caller)
    return table.mask_of(pks) if only else table.alive & ~table.mask_of(pks)


async def _block_masks(conn: facet_rows.Connection, table: Table, cache: FacetCache,
                       blocks: list[tuple[int, ...]], pairs: list[tuple[str, str]],
                       select_for: commons_explore.Selector) -> list[Mask]:
    """Each block's rows: in memory when every filter of the block is on a column the table
    holds (its value matched against the column's distinct values by QIDO's own SQL
    matching), else the block's `study_select` in SQL."""
    masks: list[Mask | None] = [None] * len(blocks)
    asks: list[tuple[int, str, str, list[Any]]] = []  # (block, key, raw, distinct values)
    in_sql: list[int] = []
    for b, kept in enumerate(blocks):
        cols = [facet_rows.filter_column(pairs[i][0]) for i in kept]
        if any(c is None or len(cache.dicts[c]) > MAX_DISTINCT for c in cols):
            in_sql.append(b)
            continue
        masks[b] = table.alive.copy()
        for i, col in zip(kept, cols, strict=True):
            key, raw = pairs[i]
            facet_rows.compile_checked(key, raw)  # InvalidQuery → 400, as QIDO-RS
            if not facet_rows.is_universal(raw):
                asks.append((b, key, raw, cache.dicts[str(col)].values[1:]))
    matched = await facet_rows.matching_values(conn, [(k, r, v) for _, k, r, v in asks])
    for (b, key, _, values), positions in zip(asks, matched, strict=True):
        col = str(facet_rows.filter_column(key))
        lut = np.zeros(len(values) + 1, dtype=np.bool_)
        lut[[p + 1 for p in positions]] = True
        mask = masks[b]
        assert mask is not None
        mask &= lut[table.scalars[col]]
    selected = await facet_rows.selected_pks(
        conn, [select_for([pairs[i] for i in blocks[b]]) for b in in_sql])
    for b, pks in zip(in_sql, selected, strict=True):
        masks[b] = table.mask_of(pks)
    return [m for m in masks if m is not None]


def _answer(names: list[str], totals: dict[str, int | None],
            counted: dict[str, list[dict[str, Any]]], min_cell: int) -> dict[str, Any]:
    """The JSON answer: values ordered (by count; histograms by value), small cells hidden."""
    out = []
    for name in names:
        values = sorted(counted[name], key=value_order(name))[:MAX_VALUES]
        d = FACETS[name]
        out.append({"name": name, "label": d.label, "group": d.group, "values": [
            {"value": v["value"], "studies": suppress(v["studies"], min_cell),
             "cases": suppress(v["cases"], min_cell)} for v in values]})
    return {"totals": {k: suppress(v, min_cell) for k, v in totals.items()},
            "min_cell_count": min_cell, "facets": out}


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
