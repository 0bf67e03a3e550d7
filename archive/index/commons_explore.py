"""Explore (the research portal's data): which facets exist and how a filter set is evaluated.

A facet's counts answer "how many studies (and cases) would match if I ticked this value too":
each facet is counted under the current filters *minus its own* (ticking Female does not zero
the Male count), so filters on other facets narrow it and its own filter does not. `plan_blocks`
groups the filters into blocks evaluated once each and names the subsets of blocks the answer
needs (subset 0: all filters; per filtered facet: all but its own).

The counting itself is done in memory (archive.commons.facet_count over the rows that
archive.index.facet_rows reads); this module defines the facets (`FACETS`: the row column each
one's values come from), the small-cell rule, and the SQL of the results table's total.
Small cells: with a minimum cell count N every count below N becomes "< N" (`suppress`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CTE, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.caller import Caller
from archive.errors import InvalidQuery
from archive.index.commons_fields import FIELDS, PREFIX, Field
from archive.index.tables import study

MAX_VALUES = 200
AGE_BIN = 10
# commons fields that make no sense as a facet (one value per case; quasi-identifiers; free text)
NOT_FACETS = frozenset({"commons.case.id", "commons.case.zip", "commons.case.age_at_index",
                        "commons.case.age_at_index_gt89", "commons.study_description"})
NUMERIC = ("int", "uint")
ROW_SCOPES = ("case", "loinc")  # fields with one value per study kept on the facet row

Count = int | str
# filter pairs → SELECT of matching visible study pks (archive.commons.selection.study_select,
# handed in by the service so the index never imports the query parser)
Selector = Callable[[list[tuple[str, str]]], Any]
# whether a filter key's condition is a per-study conjunct of its own (see plan_blocks; decided by
# the service, which knows the query parser)
Independent = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class FacetDef:
    """A facet: its name (the filter key the page sends), the keys whose filters it ignores
    when counting itself, a label, what it counts (`group`: studies, or cases), and where its
    values come from: the row column `source` (archive.index.facet_rows: the study's columns
    and its `study_facet` row), one value per study or (`multi`) an array of distinct values
    (the study's own for study facets, its case's clinical rows for case facets); `derive`
    names a value computed from the column (age bins, years)."""

    name: str
    keys: frozenset[str]
    label: str
    group: str  # cases | studies
    source: str
    multi: bool = False
    derive: str | None = None  # age_bin | year


def row_column(key: str) -> str:
    """The facet row's column for a commons key (`commons.case.sex` → `case_sex`)."""
    return key.removeprefix(PREFIX).replace(".", "_")


def _label(key: str) -> str:
    return key.removeprefix("commons.").replace("case.", "").replace("_", " ").replace(".", " ")


def _field_facet(f: Field) -> FacetDef:
    group = "studies" if f.scope in ("study", "loinc") else "cases"
    keys = frozenset({f.key})
    if f.scope == "study":
        return FacetDef(f.key, keys, _label(f.key), group, f.column.name)
    if f.extra is not None:
        raise RuntimeError(f"facet {f.key} has no column in study_facet (add it: a migration)")
    # one value per study (case, LOINC), or the clinical rows of a case (an array)
    return FacetDef(f.key, keys, _label(f.key), group, row_column(f.key),
                    multi=f.scope not in ROW_SCOPES)


def _commons_facets() -> list[FacetDef]:
    return [_field_facet(f) for f in FIELDS.values() if f.key not in NOT_FACETS
            and (f.kind not in NUMERIC or f.key == "commons.mapping_version")]


FACETS: dict[str, FacetDef] = {d.name: d for d in (
    FacetDef("commons.case.age_at_index", frozenset({"commons.case.age_at_index",
                                                     "commons.case.age_at_index_gt89"}),
             "age at index", "cases", "case_age_at_index", derive="age_bin"),
    *_commons_facets(),
    FacetDef("ModalitiesInStudy", frozenset({"ModalitiesInStudy", "00080061"}), "modality",
             "studies", "modalities", multi=True),
    FacetDef("BodyPartExamined", frozenset({"BodyPartExamined", "00180015"}), "body part",
             "studies", "body_parts", multi=True),
    FacetDef("Manufacturer", frozenset({"Manufacturer", "00080070"}), "manufacturer", "studies",
             "manufacturers", multi=True),
    FacetDef("StudyDate", frozenset({"StudyDate", "00080020"}), "study year", "studies",
             "study_date", derive="year"),
)}


def suppress(n: int | None, min_cell: int) -> Count | None:
    """A count as published: "< N" when below the minimum cell count N (0 = off)."""
    return f"< {min_cell}" if min_cell and n is not None and n < min_cell else n


def suppress_facet(facet: dict[str, Any], min_cell: int) -> dict[str, Any]:
    """A `/commons/facets` answer with its counts suppressed (see `suppress`)."""
    return facet | {"studies": suppress(facet["studies"], min_cell), "values": [
        v | {"studies": suppress(v["studies"], min_cell), "cases": suppress(v["cases"], min_cell)}
        for v in facet["values"]]}


def matching(pairs: list[tuple[str, str]], select_for: Selector, caller: Caller,
             name: str) -> CTE:
    """The visible studies matching `pairs` (pk, patient_pk), as a named CTE."""
    pks = select_for(pairs).subquery()
    return (select(study.c.pk, study.c.patient_pk)
            .where(study.c.pk.in_(select(pks.c.pk))).cte(name))


def _facet_of(key: str) -> str:
    return next((d.name for d in FACETS.values() if key in d.keys), "")


Plan = tuple[list[tuple[int, ...]], list[tuple[int, ...]], dict[str, int]]


def plan_blocks(pairs: list[tuple[str, str]], names: list[str], independent: Independent) -> Plan:
    """Blocks of filter pairs evaluated together (one `study_select` each), the subsets of
    blocks the answer needs (subset 0: all filters; per filtered facet: all but its own),
    and which subset counts each facet. Pairs are blocked by the facet they belong to, so each
    filter is evaluated once; if that would split series-level keys across blocks, each subset
    is evaluated as one block instead (exactly QIDO's combined query)."""
    owner: dict[str, list[int]] = {}
    for i, (k, _) in enumerate(pairs):
        owner.setdefault(_facet_of(k), []).append(i)
    mixed = [b for b, idx in owner.items() if not all(independent(pairs[i][0]) for i in idx)]
    if len(mixed) <= 1:
        order = list(owner)
        blocks = [tuple(owner[b]) for b in order]
        subsets = [tuple(range(len(blocks)))]
        of: dict[str, int] = {}
        for n in names:
            kept = tuple(j for j, b in enumerate(order) if b != n)
            if kept not in subsets:
                subsets.append(kept)
            of[n] = subsets.index(kept)
        return blocks, subsets, of
    blocks = [tuple(range(len(pairs)))]
    of = {}
    for n in names:
        kept_pairs = tuple(i for i, (k, _) in enumerate(pairs) if k not in FACETS[n].keys)
        if kept_pairs not in blocks:
            blocks.append(kept_pairs)
        of[n] = blocks.index(kept_pairs)
    return blocks, [(b,) for b in range(len(blocks))], of


async def custom_plans(conn: AsyncConnection) -> None:
    """Plan this transaction's statements for their actual values: the driver prepares each
    statement once per connection, and after five runs PostgreSQL may switch to a generic
    plan that cannot see how selective a filter value is (as archive.query.custom_plans)."""
    await conn.execute(select(func.set_config("plan_cache_mode", "force_custom_plan", True)))


async def refresh_facets(conn: AsyncConnection) -> int:
    """Bring `study_facet` up to date with every change committed so far (the marks left by
    the triggers of migration 0015) and commit; how many rows were rewritten (0: none was
    due, the usual case: one EXISTS probe)."""
    n = int((await conn.execute(text("SELECT study_facet_refresh()"))).scalar_one())
    await conn.commit()
    return n


def facet_names(wanted: list[str] | None) -> list[str]:
    if not wanted:
        return list(FACETS)
    unknown = [n for n in wanted if n not in FACETS]
    if unknown:
        raise InvalidQuery(f"unknown facet {unknown[0]!r}; facets: {', '.join(FACETS)}")
    return wanted


def value_order(name: str) -> Callable[[dict[str, Any]], Any]:
    if name in ("commons.case.age_at_index", "StudyDate"):  # histograms: in value order
        return lambda v: (v["value"] is None, _bin_key(v["value"]))
    unit = FACETS[name].group
    return lambda v: (-(v[unit] or 0), v["value"] is None, v["value"] or "")


def _bin_key(value: str | None) -> int:
    if value is None:
        return 0
    return 90 if value == "90+" else int(value)


async def count_matching(conn: AsyncConnection, select_for: Selector, caller: Caller,
                         pairs: list[tuple[str, str]]) -> int:
    """How many visible studies match `pairs` (the results table's total)."""
    m = matching(pairs, select_for, caller, "m")
    return int((await conn.execute(select(func.count()).select_from(m))).scalar_one())
