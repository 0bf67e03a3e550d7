"""Stratum keys for cases: CDC age bins × sex × race × ethnicity × COVID-19 × site × modality.

One function turns a case's raw attributes into the tuple of stratum values, so sequestration,
its report and test-set quotas agree on what "the same stratum" means. Missing values become
`NOT_REPORTED`, as in MIDRC's dictionary, rather than being dropped: a case without a race is
still a case and must be split like the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

NOT_REPORTED = "Not Reported"
# CDC age groups used by MIDRC (lower bound, label); ages are whole years at the index event.
AGE_BINS: tuple[tuple[int, str], ...] = (
    (0, "0-17"), (18, "18-29"), (30, "30-39"), (40, "40-49"),
    (50, "50-64"), (65, "65-74"), (75, "75-84"), (85, "85+"))
DEFAULT_ATTRIBUTES: tuple[str, ...] = (
    "site", "sex", "covid19_positive", "age", "race", "ethnicity", "modality")
AttrValue = str | int | float | bool | Sequence[str] | None


@dataclass(frozen=True, slots=True)
class Case:
    """A patient (case) as the curation code sees it: an id and its raw attributes."""

    case_id: str
    attributes: Mapping[str, AttrValue] = field(default_factory=dict)


def age_bin(age: AttrValue) -> str:
    """CDC bin for an age in years; ages above 89 arrive capped at 89 or as '>89'/'90+'."""
    if age is None or isinstance(age, bool):
        return NOT_REPORTED
    text = str(age).strip().rstrip("Yy").strip()
    if text.startswith(">") or text.endswith("+"):
        return AGE_BINS[-1][1]
    try:
        years = float(text)
    except ValueError:
        return NOT_REPORTED
    if years < 0:
        return NOT_REPORTED
    label = AGE_BINS[0][1]
    for lower, name in AGE_BINS:
        if years >= lower:
            label = name
    return label


def modality_value(value: AttrValue) -> str:
    """A case seen in several modalities is one stratum value (sorted, '+'-joined)."""
    if value is None:
        return NOT_REPORTED
    if isinstance(value, str):
        parts = value.replace(",", "\\").replace("+", "\\").split("\\")
    elif isinstance(value, Sequence):
        parts = [str(p) for p in value]
    else:
        parts = [str(value)]
    mods = sorted({p.strip().upper() for p in parts if p and p.strip()})
    return "+".join(mods) if mods else NOT_REPORTED


def stratum_value(attribute: str, value: AttrValue) -> str:
    if attribute in ("age", "age_at_index"):
        return age_bin(value)
    if attribute == "modality":
        return modality_value(value)
    if value is None:
        return NOT_REPORTED
    if isinstance(value, bool):
        return "Yes" if value else "No"
    text = str(value).strip()
    return text or NOT_REPORTED


def stratum_of(case: Case, attributes: Sequence[str] = DEFAULT_ATTRIBUTES) -> tuple[str, ...]:
    return tuple(stratum_value(a, case.attributes.get(a)) for a in attributes)
