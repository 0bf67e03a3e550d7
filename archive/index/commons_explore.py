"""Explore: every facet of the commons at once, counted as faceted search counts.

A facet's counts answer "how many studies (and cases) would match if I ticked this value too":
each facet is counted under the current filters *minus its own* (ticking Female does not zero
the Male count), so filters on other facets narrow it and its own filter does not.

One SQL statement, one pass over the visible studies. The values come from `study` and its
`study_facet` row (migration 0015: the case's columns, the LOINC term, the distinct body parts,
manufacturers and clinical-row values of the study, kept up to date by triggers and
`refresh_facets`), so no request joins patient, clinical, harmonization or series tables. Each
distinct filter subset the answer needs (all filters; all but facet k's, for each facet k that
has a filter) becomes a boolean column cN of a `base` row set. A filter block on `commons.` keys
whose values the row holds (study, case and LOINC fields) is evaluated on the row itself with
the very matching functions QIDO-RS uses (`commons_filters.match`); any other block (DICOM keys,
clinical-row keys) is `study.pk IN (study_select(block))` as a hash join, so the counts are
QIDO's counts either way. Rows in no subset are dropped before anything is counted. A window
marks each case's first study under each subset, so case counts need no DISTINCT.
Single-valued facets are then counted in one GROUPING SETS pass (`count(*) FILTER (WHERE cN)`
per subset); multi-valued ones (modalities, series attributes, clinical rows) by unnesting the
row's arrays.
Small cells: with a minimum cell count N every count below N becomes "< N" (`suppress`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    FromClause,
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    null,
    or_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.caller import Caller
from archive.errors import InvalidQuery
from archive.index.commons_fields import FIELDS, PREFIX, Field, field_for
from archive.index.commons_filters import match
from archive.index.commons_tables import study_facet
from archive.index.tables import study
from archive.index.visibility import visible_to

MAX_VALUES = 200
AGE_BIN = 10
# commons fields that make no sense as a facet (one value per case; quasi-identifiers; free text)
NOT_FACETS = frozenset({"commons.case.id", "commons.case.zip", "commons.case.age_at_index",
                        "commons.case.age_at_index_gt89", "commons.study_description"})
NUMERIC = ("int", "uint")
ROW_SCOPES = ("case", "loinc")  # fields with one value per study kept on the facet row
# every visible study and its facet row (one row per study; LEFT: a study whose row is not
# written yet still counts, with no case/LOINC/series values)
BASE_FROM: FromClause = study.outerjoin(study_facet, study_facet.c.study_pk == study.c.pk)
WORK_MEM = "32MB"  # the base rows, windows and hashes of 100,000 studies stay in memory

Count = int | str
# filter pairs → SELECT of matching visible study pks (archive.commons.selection.study_select,
# handed in by the service so the index never imports the query parser)
Selector = Callable[[list[tuple[str, str]]], Any]
# whether a filter key's condition is a per-study conjunct of its own (see _plan; decided by
# the service, which knows the query parser)
Independent = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class FacetDef:
    """A facet: its name (the filter key the page sends), the keys whose filters it ignores
    when counting itself, a label, and what it counts (`group`: studies, or cases), from a
    single-valued column over BASE_FROM (`column`) or an array of distinct values per study
    (`array`: the study's own values for study facets, its case's for case facets)."""

    name: str
    keys: frozenset[str]
    label: str
    group: str  # cases | studies
    column: ColumnElement[Any] | None = None
    array: ColumnElement[Any] | None = None


def row_column(key: str) -> Any:
    """The facet row's column for a commons key (`commons.case.sex` → `case_sex`), or None."""
    return study_facet.c.get(key.removeprefix(PREFIX).replace(".", "_"))


def _age_bin() -> ColumnElement[Any]:
    """Ages in bins of AGE_BIN years ('0', '10', ... '80'), '90+' for ages over 89."""
    age = study_facet.c.case_age_at_index
    return case((study_facet.c.case_age_at_index_gt89.is_(True), literal("90+")),
                (age.is_(None), null()),
                else_=cast(func.least(age // AGE_BIN * AGE_BIN, 80), String))


def _year() -> ColumnElement[Any]:
    return func.split_part(cast(func.extract("year", study.c.study_date), String), ".", 1)


def _label(key: str) -> str:
    return key.removeprefix("commons.").replace("case.", "").replace("_", " ").replace(".", " ")


def _field_facet(f: Field) -> FacetDef:
    group = "studies" if f.scope in ("study", "loinc") else "cases"
    keys = frozenset({f.key})
    if f.scope == "study":
        return FacetDef(f.key, keys, _label(f.key), group, column=f.column)
    column = row_column(f.key)
    if column is None or f.extra is not None:
        raise RuntimeError(f"facet {f.key} has no column in study_facet (add it: a migration)")
    if f.scope in ROW_SCOPES:  # one value per study: the single pass
        return FacetDef(f.key, keys, _label(f.key), group, column=column)
    return FacetDef(f.key, keys, _label(f.key), group, array=column)  # clinical rows of a case


def _commons_facets() -> list[FacetDef]:
    return [_field_facet(f) for f in FIELDS.values() if f.key not in NOT_FACETS
            and (f.kind not in NUMERIC or f.key == "commons.mapping_version")]


FACETS: dict[str, FacetDef] = {d.name: d for d in (
    FacetDef("commons.case.age_at_index", frozenset({"commons.case.age_at_index",
                                                     "commons.case.age_at_index_gt89"}),
             "age at index", "cases", column=_age_bin()),
    *_commons_facets(),
    FacetDef("ModalitiesInStudy", frozenset({"ModalitiesInStudy", "00080061"}), "modality",
             "studies", array=study.c.modalities),
    FacetDef("BodyPartExamined", frozenset({"BodyPartExamined", "00180015"}), "body part",
             "studies", array=study_facet.c.body_parts),
    FacetDef("Manufacturer", frozenset({"Manufacturer", "00080070"}), "manufacturer", "studies",
             array=study_facet.c.manufacturers),
    FacetDef("StudyDate", frozenset({"StudyDate", "00080020"}), "study year", "studies",
             column=_year()),
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


def _plan(pairs: list[tuple[str, str]], names: list[str], independent: Independent) -> Plan:
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


def inline_condition(key: str, raw: str) -> ColumnElement[bool] | None:
    """A `commons.` filter as a condition on the study and its facet row, or None when the row
    does not hold the key's value (DICOM keys, clinical-row keys, days_to_study, unknown keys:
    those go through `study_select`, which also reports the errors). Same matching functions
    as QIDO-RS (`commons_filters.match`); a missing case or LOINC row (NULL) matches nothing, as
    QIDO's `study.pk IN (... WHERE condition)` does."""
    f = field_for(key) if key.startswith(PREFIX) else None
    if f is None or f.extra is not None:
        return None
    column = f.column if f.scope == "study" else (
        row_column(key) if f.scope in ROW_SCOPES else None)
    if column is None:
        return None
    if not raw.strip().strip(",\\"):
        return true()  # universal matching, as compile_filter
    return func.coalesce(match(replace(f, column=column), raw), false())


def _base(pairs: list[tuple[str, str]], plan: Plan, select_for: Selector, caller: Caller,
          single: list[FacetDef], multi: list[FacetDef]) -> CTE:
    """Every visible study in at least one subset: pk, patient, case, the single-valued facet
    values v0.., the arrays a0.. and a flag cN per subset."""
    blocks, subsets, _ = plan
    source, flags = BASE_FROM, list[ColumnElement[bool]]()
    for b, kept in enumerate(blocks):
        if not kept:
            flags.append(true())
            continue
        inline = [c for i in kept if (c := inline_condition(*pairs[i])) is not None]
        if len(inline) == len(kept):
            flags.append(and_(true(), *inline))
            continue
        m = select_for([pairs[i] for i in kept]).subquery(f"m{b}")  # a hash join per block
        source = source.outerjoin(m, m.c.pk == study.c.pk)
        flags.append(m.c.pk.is_not(None))
    subset_flags = [and_(true(), *[flags[b] for b in subset]) for subset in subsets]
    values = [cast(d.column, String).label(f"v{i}") for i, d in enumerate(single)]
    arrays = [d.array.label(f"a{i}") for i, d in enumerate(multi) if d.array is not None]
    return (select(study.c.pk, study.c.patient_pk, study_facet.c.case_id,
                   literal("").label("t"), *values, *arrays,
                   *[f.label(f"c{n}") for n, f in enumerate(subset_flags)])
            .select_from(source).where(visible_to(caller), or_(false(), *subset_flags))
            .cte("base"))


def _grouped(rows: Any, names: list[str], columns: list[Any], counts: list[Any]
             ) -> Select[Any]:
    """One GROUPING SETS scan of `rows`: a row per (facet, value) and the totals (facet '',
    grouped by the constant column t)."""
    grouped = [func.grouping(v) == 0 for v in columns]
    facet = case(*[(g, literal(n)) for g, n in zip(grouped, names, strict=True)],
                 else_=literal("")) if columns else literal("")
    value = case(*[(g, v) for g, v in zip(grouped, columns, strict=True)],
                 else_=cast(null(), String)) if columns else cast(null(), String)
    return (select(facet.label("facet"), value.label("value"), *counts).select_from(rows)
            .group_by(func.grouping_sets(rows.c.t, *columns)))


def _none(prefix: str, n_sub: int) -> list[Any]:
    return [cast(null(), Integer).label(f"{prefix}{n}") for n in range(n_sub)]


def _study_counts(base: CTE, single: list[FacetDef], n_sub: int) -> Select[Any]:
    """Studies per value of every single-valued facet (and in total) under each subset."""
    return _grouped(base, [d.name for d in single],
                    [base.c[f"v{i}"] for i in range(len(single))],
                    [func.count().filter(base.c[f"c{n}"]).label(f"s{n}") for n in range(n_sub)]
                    + _none("k", n_sub))


def _case_counts(base: CTE, single: list[FacetDef], n_sub: int) -> Select[Any]:
    """Cases per value of the case facets (and in total): a patient's case values are the same
    on each of its studies, so its studies are first folded into one row per patient that is
    in subset N when one of its studies is (hash aggregates; no window, no DISTINCT)."""
    idx = [i for i, d in enumerate(single) if d.group == "cases"]
    per = (select(base.c.t, *[base.c[f"v{i}"] for i in idx],
                  *[func.bool_or(base.c[f"c{n}"]).label(f"c{n}") for n in range(n_sub)])
           .group_by(base.c.patient_pk, base.c.t, *[base.c[f"v{i}"] for i in idx])
           .subquery("patients"))
    return _grouped(per, [single[i].name for i in idx], [per.c[f"v{i}"] for i in idx],
                    _none("s", n_sub) + [func.count().filter(per.c[f"c{n}"]).label(f"k{n}")
                                         for n in range(n_sub)])


def _array_pass(rows: Any, multi: list[FacetDef], group: str, n_sub: int) -> Select[Any]:
    """Multi-valued facets of one group, counted per row of `rows` holding the value: studies
    (modalities, series attributes: a study's distinct values) or cases (clinical rows)."""
    parts = [select(literal(d.name).label("facet"),
                    cast(func.unnest(rows.c[f"a{i}"]), String).label("value"),
                    *[rows.c[f"c{n}"].label(f"f{n}") for n in range(n_sub)])
             for i, d in enumerate(multi) if d.group == group]
    mv = union_all(*parts).subquery(f"mv_{group}")
    counts = [func.count().filter(mv.c[f"f{n}"]).label(f"{group[0]}{n}") for n in range(n_sub)]
    nulls = _none("k" if group == "studies" else "s", n_sub)
    return (select(mv.c.facet, mv.c.value,
                   *(counts + nulls if group == "studies" else nulls + counts))
            .group_by(mv.c.facet, mv.c.value))


def _case_arrays(base: CTE, multi: list[FacetDef], n_sub: int) -> Select[Any]:
    """Clinical-row facets: cases per value, a case counting when one of its studies matches
    (its arrays are the same on each of its studies: one row per case, then unnest)."""
    idx = [i for i, d in enumerate(multi) if d.group == "cases"]
    cases = (select(*[base.c[f"a{i}"] for i in idx],
                    *[func.bool_or(base.c[f"c{n}"]).label(f"c{n}") for n in range(n_sub)])
             .where(base.c.case_id.is_not(None))
             .group_by(base.c.case_id, *[base.c[f"a{i}"] for i in idx]).cte("cases"))
    return _array_pass(cases, multi, "cases", n_sub)


def explore_statement(pairs: list[tuple[str, str]], select_for: Selector, caller: Caller,
                      names: list[str], independent: Independent
                      ) -> tuple[Select[Any], dict[str, int]]:
    """The statement (rows: facet, value, sN/kN = studies/cases under subset N; a (facet,
    value) may come in two rows, one with the studies and one with the cases) and, per facet,
    the subset N that counts it (the totals row, facet '', uses subset 0)."""
    plan = _plan(pairs, names, independent)
    subsets, of = plan[1], plan[2]
    n_sub = len(subsets)
    single = [FACETS[n] for n in names if FACETS[n].column is not None]
    multi = [FACETS[n] for n in names if FACETS[n].array is not None]
    base = _base(pairs, plan, select_for, caller, single, multi)
    parts = [_study_counts(base, single, n_sub), _case_counts(base, single, n_sub)]
    if any(d.group == "studies" for d in multi):
        parts.append(_array_pass(base, multi, "studies", n_sub))
    if any(d.group == "cases" for d in multi):
        parts.append(_case_arrays(base, multi, n_sub))
    return union_all(*parts).subquery("counts").select(), of


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


async def _tune(conn: AsyncConnection) -> None:
    """For the explore statement only (SET LOCAL, one round trip): custom plans (as
    `custom_plans`), no JIT, whose compile of this many expressions took 5-8 s of a 7 s answer
    at 100,000 studies, and sorts and hashes in memory."""
    await conn.execute(select(func.set_config("plan_cache_mode", "force_custom_plan", True),
                              func.set_config("jit", "off", True),
                              func.set_config("work_mem", WORK_MEM, True)))


def facet_names(wanted: list[str] | None) -> list[str]:
    if not wanted:
        return list(FACETS)
    unknown = [n for n in wanted if n not in FACETS]
    if unknown:
        raise InvalidQuery(f"unknown facet {unknown[0]!r}; facets: {', '.join(FACETS)}")
    return wanted


async def explore(conn: AsyncConnection, select_for: Selector, caller: Caller,
                  pairs: list[tuple[str, str]], independent: Independent, min_cell: int = 0,
                  wanted: list[str] | None = None) -> dict[str, Any]:
    """Totals and every facet (values ordered by study count) under `pairs`."""
    names = facet_names(wanted)
    stmt, of = explore_statement(pairs, select_for, caller, names, independent)
    await refresh_facets(conn)
    await _tune(conn)
    merged: dict[tuple[str, Any], dict[str, Any]] = {}
    for r in (await conn.execute(stmt)).mappings():
        m = merged.setdefault((r["facet"], r["value"]), {})
        m.update((k, v) for k, v in r.items() if v is not None and k not in ("facet", "value"))
    facets: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    totals: dict[str, int | None] = {"studies": 0, "cases": 0}
    for (facet, value), m in merged.items():
        sub = of.get(facet, 0)
        counts = {"studies": m.get(f"s{sub}"), "cases": m.get(f"k{sub}")}
        if facet == "":
            totals = counts
            continue
        if FACETS[facet].group == "studies":
            counts["cases"] = None  # a study value's cases would need a DISTINCT per facet
        if counts[FACETS[facet].group]:
            facets[facet].append({"value": value, **counts})
    out = []
    for name in names:
        values = sorted(facets[name], key=_order(name))[:MAX_VALUES]
        d = FACETS[name]
        out.append({"name": name, "label": d.label, "group": d.group, "values": [
            {"value": v["value"], "studies": suppress(v["studies"], min_cell),
             "cases": suppress(v["cases"], min_cell)} for v in values]})
    return {"totals": {k: suppress(v, min_cell) for k, v in totals.items()},
            "min_cell_count": min_cell, "facets": out}


def _order(name: str) -> Callable[[dict[str, Any]], Any]:
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
