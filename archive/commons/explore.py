"""Explore: every facet of the commons at once, counted as faceted search counts.

A facet's counts answer "how many studies (and cases) would match if I ticked this value too":
each facet is counted under the current filters *minus its own* (ticking Female does not zero
the Male count), so filters on other facets narrow it and its own filter does not. Facets whose
keys carry no filter share one matching set. Everything is one SQL statement: one CTE per
distinct filter subset (at most 1 + the number of filtered facets), evaluated once each by
PostgreSQL, and a UNION ALL of per-facet GROUP BYs over them.

Matching sets come from `selection.study_select`, the same parser, SQL and visibility rule as
QIDO-RS and cohorts, so the counts are QIDO's counts. Small cells: with a minimum cell count N
every count below N is replaced by the text "< N" (`suppress`), before anything leaves the core.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    FromClause,
    Select,
    String,
    case,
    cast,
    func,
    literal,
    null,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.commons.fields import FIELDS, SCOPES, Field
from archive.commons.selection import check_pairs, study_select
from archive.commons.tables import clinical_case, study_case
from archive.core import Caller, Extensions
from archive.index.tables import series, study

MAX_VALUES = 200
AGE_BIN = 10
# commons fields that make no sense as a facet (one value per case; quasi-identifiers)
NOT_FACETS = frozenset({"commons.case.id", "commons.case.zip", "commons.case.age_at_index",
                        "commons.case.age_at_index_gt89", "commons.study_description"})
NUMERIC = ("int", "uint")

Count = int | str
# (matching studies CTE with columns pk, patient_pk) -> SELECT value, study pk, patient pk
Source = Callable[[CTE], tuple[FromClause, ColumnElement[Any], ColumnElement[Any] | None]]


@dataclass(frozen=True, slots=True)
class FacetDef:
    """A facet: its name (the filter key the page sends), the keys whose filters it ignores
    when counting itself, a label, and how its values reach matching studies."""

    name: str
    keys: frozenset[str]
    label: str
    group: str  # cases | studies (which tab shows it)
    source: Source


def _field_source(f: Field) -> Source:
    scope = SCOPES[f.scope]

    def source(m: CTE) -> tuple[FromClause, ColumnElement[Any], ColumnElement[Any] | None]:
        if f.scope == "study":
            return study.join(m, m.c.pk == study.c.pk), f.column, None
        return scope.source.join(m, m.c.pk == scope.study_pk), f.column, f.extra
    return source


def _modalities(m: CTE) -> tuple[FromClause, ColumnElement[Any], ColumnElement[Any] | None]:
    value = func.unnest(study.c.modalities)
    return study.join(m, m.c.pk == study.c.pk), value, None


def _series_column(column: ColumnElement[Any]) -> Source:
    def source(m: CTE) -> tuple[FromClause, ColumnElement[Any], ColumnElement[Any] | None]:
        return series.join(m, m.c.pk == series.c.study_pk), column, None
    return source


def _study_year(m: CTE) -> tuple[FromClause, ColumnElement[Any], ColumnElement[Any] | None]:
    year = cast(func.extract("year", study.c.study_date), String)
    return study.join(m, m.c.pk == study.c.pk), func.split_part(year, ".", 1), None


def _age_bins(m: CTE) -> tuple[FromClause, ColumnElement[Any], ColumnElement[Any] | None]:
    """Ages in bins of AGE_BIN years ('0', '10', ... '80'), '90+' for ages over 89."""
    age = clinical_case.c.age_at_index
    value = case(
        (clinical_case.c.age_at_index_gt89.is_(True), literal("90+")),
        (age.is_(None), null()),
        else_=cast(func.least(age // AGE_BIN * AGE_BIN, 80), String),
    )
    source = study_case.join(clinical_case, clinical_case.c.case_id == study_case.c.case_id)
    return source.join(m, m.c.pk == study_case.c.study_pk), value, None


def _label(key: str) -> str:
    return key.removeprefix("commons.").replace("case.", "").replace("_", " ").replace(".", " ")


def _commons_facets() -> list[FacetDef]:
    out = []
    for f in FIELDS.values():
        if f.key in NOT_FACETS or f.kind in NUMERIC and f.key != "commons.mapping_version":
            continue
        group = "studies" if f.scope in ("study", "loinc") else "cases"
        out.append(FacetDef(f.key, frozenset({f.key}), _label(f.key), group, _field_source(f)))
    return out


FACETS: dict[str, FacetDef] = {d.name: d for d in (
    FacetDef("commons.case.age_at_index", frozenset({"commons.case.age_at_index",
                                                     "commons.case.age_at_index_gt89"}),
             "age at index", "cases", _age_bins),
    *_commons_facets(),
    FacetDef("ModalitiesInStudy", frozenset({"ModalitiesInStudy", "00080061"}), "modality",
             "studies", _modalities),
    FacetDef("BodyPartExamined", frozenset({"BodyPartExamined", "00180015"}), "body part",
             "studies", _series_column(series.c.body_part)),
    FacetDef("Manufacturer", frozenset({"Manufacturer", "00080070"}), "manufacturer",
             "studies", _series_column(series.c.attrs["00080070"]["Value"][0].astext)),
    FacetDef("StudyDate", frozenset({"StudyDate", "00080020"}), "study year", "studies",
             _study_year),
)}


def suppress(n: int, min_cell: int) -> Count:
    """A count as published: "< N" when below the minimum cell count N (0 = off)."""
    return f"< {min_cell}" if min_cell and n < min_cell else n


def suppress_facet(facet: dict[str, Any], min_cell: int) -> dict[str, Any]:
    """A `/commons/facets` answer with its counts suppressed (see `suppress`)."""
    return facet | {"studies": suppress(facet["studies"], min_cell), "values": [
        v | {"studies": suppress(v["studies"], min_cell), "cases": suppress(v["cases"], min_cell)}
        for v in facet["values"]]}


def matching(pairs: list[tuple[str, str]], extensions: Extensions, caller: Caller,
             name: str) -> CTE:
    """The visible studies matching `pairs` (pk, patient_pk), as a named CTE."""
    pks = study_select(pairs, extensions, caller).subquery()
    return (select(study.c.pk, study.c.patient_pk)
            .where(study.c.pk.in_(select(pks.c.pk))).cte(name))


def _facet_select(d: FacetDef, m: CTE) -> Select[Any]:
    source, value, extra = d.source(m)
    v = cast(value, String).label("value")
    return (select(literal(d.name).label("facet"), v,
                   func.count(m.c.pk.distinct()).label("studies"),
                   func.count(m.c.patient_pk.distinct()).label("cases"))
            .select_from(source).where(true() if extra is None else extra).group_by(v))


def _total_select(m: CTE) -> Select[Any]:
    return select(literal("").label("facet"), cast(null(), String).label("value"),
                  func.count(m.c.pk.distinct()).label("studies"),
                  func.count(m.c.patient_pk.distinct()).label("cases")).select_from(m)


def explore_statement(pairs: list[tuple[str, str]], extensions: Extensions, caller: Caller,
                      names: list[str]) -> Select[Any]:
    """One statement: the totals row (facet '') and every facet's value counts."""
    pairs = check_pairs(pairs)
    ctes: dict[tuple[int, ...], CTE] = {}

    def cte_for(excluded: frozenset[str]) -> CTE:
        kept = tuple(i for i, (k, _) in enumerate(pairs) if k not in excluded)
        if kept not in ctes:
            ctes[kept] = matching([pairs[i] for i in kept], extensions, caller, f"m{len(ctes)}")
        return ctes[kept]

    parts = [_total_select(cte_for(frozenset()))]
    parts += [_facet_select(FACETS[n], cte_for(FACETS[n].keys)) for n in names]
    return union_all(*parts).subquery("counts").select()


def facet_names(wanted: list[str] | None) -> list[str]:
    from archive.errors import InvalidQuery

    if not wanted:
        return list(FACETS)
    unknown = [n for n in wanted if n not in FACETS]
    if unknown:
        raise InvalidQuery(f"unknown facet {unknown[0]!r}; facets: {', '.join(FACETS)}")
    return wanted


async def explore(conn: AsyncConnection, extensions: Extensions, caller: Caller,
                  pairs: list[tuple[str, str]], min_cell: int = 0,
                  wanted: list[str] | None = None) -> dict[str, Any]:
    """Totals and every facet (values ordered by study count) under `pairs`."""
    names = facet_names(wanted)
    rows = (await conn.execute(explore_statement(pairs, extensions, caller, names))).all()
    facets: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    totals = {"studies": 0, "cases": 0}
    for r in rows:
        if r.facet == "":
            totals = {"studies": r.studies, "cases": r.cases}
        else:
            facets[r.facet].append({"value": r.value, "studies": r.studies, "cases": r.cases})
    out = []
    for n in names:
        values = sorted(facets[n], key=_order(n))[:MAX_VALUES]
        d = FACETS[n]
        out.append({"name": n, "label": d.label, "group": d.group, "values": [
            {"value": v["value"], "studies": suppress(v["studies"], min_cell),
             "cases": suppress(v["cases"], min_cell)} for v in values]})
    return {"totals": {k: suppress(v, min_cell) for k, v in totals.items()},
            "min_cell_count": min_cell, "facets": out}


def _order(name: str) -> Callable[[dict[str, Any]], Any]:
    if name in ("commons.case.age_at_index", "StudyDate"):  # histograms: in value order
        return lambda v: (v["value"] is None, _bin_key(v["value"]))
    return lambda v: (-v["studies"], v["value"] is None, v["value"] or "")


def _bin_key(value: str | None) -> int:
    if value is None:
        return 0
    return 90 if value == "90+" else int(value)
