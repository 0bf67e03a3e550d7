"""Faceted counts over the in-memory facet table (archive.commons.facet_table), with NumPy.

Given the rows each subset of filter blocks selects (a boolean mask per subset, visibility
already applied), every facet is counted under its own subset (`plan_blocks`: all filters but
its own) as the SQL of migration 0015 counted it:

* studies per value: rows in the subset holding the value (an array column counts each of a
  study's distinct values once);
* cases per value of a case facet: patients with at least one study in the subset, each
  counted once (its case values are the same on each of its studies, so any one of its rows
  in the subset stands for it);
* cases per value of a clinical-row facet (tests, conditions, ...): cases with at least one
  study in the subset, counted by case id;
* totals: studies and patients in subset 0 (all filters).

A value is listed when its group's count (studies, or cases) is not zero; a study facet's case
count is not given (it would need a distinct count per value).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from archive.commons.facet_table import Codes, Dictionaries, Dictionary, Mask, Table
from archive.index.commons_explore import AGE_BIN, FACETS, FacetDef

Counts = dict[str, int | None]


@dataclass(frozen=True, slots=True)
class Labels:
    """A facet's value codes (one per row, or per pair of an array column) and their labels."""

    codes: Codes
    labels: list[str | None]
    rows: Codes | None = None  # array columns: the row of each code


def _text(v: Any) -> str | None:
    return None if v is None else str(v)


def _recode(codes: Codes, labels_of: list[str | None]) -> tuple[Codes, list[str | None]]:
    """Codes mapped through a per-code label (several codes may share a label)."""
    index: dict[str | None, int] = {None: 0}
    lut = np.fromiter((index.setdefault(lab, len(index)) for lab in labels_of), dtype=np.int32,
                      count=len(labels_of))
    labels: list[str | None] = [None] * len(index)
    for lab, c in index.items():
        labels[c] = lab
    return lut[codes], labels


def _age_bin(age: Any) -> str | None:
    return None if age is None else str(min(int(age) // AGE_BIN * AGE_BIN, 80))


def _year(day: Any) -> str | None:
    return str(day.year) if isinstance(day, date) else None


def labels_for(d: FacetDef, table: Table, dicts: Dictionaries) -> Labels:
    """The facet's codes and labels on this table (derived values: age bins, years)."""
    values = dicts[d.source].values
    if d.multi:
        pairs = table.arrays[d.source]
        return Labels(pairs.codes, [_text(v) for v in values], pairs.rows)
    codes = table.scalars[d.source]
    if d.derive == "year":
        return Labels(*_recode(codes, [_year(v) for v in values]))
    if d.derive == "age_bin":
        binned, labels = _recode(codes, [_age_bin(v) for v in values])
        gt89 = _true_codes(dicts["case_age_at_index_gt89"])
        over = np.isin(table.scalars["case_age_at_index_gt89"], gt89)
        labels.append("90+")
        return Labels(np.where(over, len(labels) - 1, binned).astype(np.int32), labels)
    return Labels(codes, [_text(v) for v in values])


def _true_codes(d: Dictionary) -> list[int]:
    return [c for c, v in enumerate(d.values) if v is True]


class Representatives:
    """One row per patient (or case) among a subset's rows, found once per subset."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._cache: dict[tuple[int, str], Mask] = {}

    def mask(self, subset: int, rows: Mask, by: str) -> Mask:
        key = (subset, by)
        if key not in self._cache:
            ids = self.table.scalars[by]
            picked = np.flatnonzero(rows & (ids != 0)) if by == "case_id" else \
                np.flatnonzero(rows)
            _, first = np.unique(ids[picked], return_index=True)
            rep = np.zeros(len(self.table), dtype=np.bool_)
            rep[picked[first]] = True
            self._cache[key] = rep
        return self._cache[key]


def _bincount(codes: Codes, n: int) -> Any:
    return np.bincount(codes, minlength=n)


def count_facet(d: FacetDef, lab: Labels, subset: int, rows: Mask,
                reps: Representatives) -> list[dict[str, Any]]:
    """The facet's values with their counts under the subset's rows."""
    n = len(lab.labels)
    studies: Any = None
    cases: Any = None
    if lab.rows is None:
        studies = _bincount(lab.codes[rows], n)
        if d.group == "cases":
            cases = _bincount(lab.codes[reps.mask(subset, rows, "patient_pk")], n)
    elif d.group == "studies":
        studies = _bincount(lab.codes[rows[lab.rows]], n)
    else:
        cases = _bincount(lab.codes[reps.mask(subset, rows, "case_id")[lab.rows]], n)
    main = studies if d.group == "studies" else cases
    out = []
    for c in np.flatnonzero(main).tolist():
        out.append({"value": lab.labels[c],
                    "studies": None if studies is None else int(studies[c]),
                    "cases": None if cases is None or d.group == "studies" else int(cases[c])})
    return out


def count_all(table: Table, dicts: Dictionaries, subsets: list[Mask], of: dict[str, int],
              names: list[str]) -> tuple[Counts, dict[str, list[dict[str, Any]]]]:
    """Totals (subset 0) and every named facet's values with their counts."""
    reps = Representatives(table)
    first = subsets[0]
    totals: Counts = {"studies": int(first.sum()),
                      "cases": int(reps.mask(0, first, "patient_pk").sum())}
    facets = {}
    for name in names:
        d = FACETS[name]
        s = of.get(name, 0)
        facets[name] = count_facet(d, labels_for(d, table, dicts), s, subsets[s], reps)
    return totals, facets

