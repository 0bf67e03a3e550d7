"""What a query asks, independent of the door it came through (QIDO-RS, C-FIND, cohort code).

A QuerySpec is a level, a list of typed matching conditions (PS3.4 C.2.2.2), the return keys,
and paging. Doors build it with `archive.query.parse.parse_query`; `archive.query.sql` turns it
into one SQL statement; `archive.query.results` shapes rows into DICOM JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archive.attributes import Level

__all__ = [
    "Condition",
    "DateTimeRange",
    "Empty",
    "FuzzyName",
    "Level",
    "ListOf",
    "Match",
    "QuerySpec",
    "Range",
    "Sequence",
    "SingleValue",
    "Universal",
    "Wildcard",
]


@dataclass(frozen=True, slots=True)
class Universal:
    """Zero-length value (or a lone `*`): matches everything; the key is only a return key."""


@dataclass(frozen=True, slots=True)
class Empty:
    """The value `""`: matches entities whose attribute is absent or empty (PS3.4 C.2.2.2.1)."""


@dataclass(frozen=True, slots=True)
class SingleValue:
    """Exact match; `value` is a str, or an int/float for numeric VRs."""

    value: str | int | float


@dataclass(frozen=True, slots=True)
class ListOf:
    """List of UID matching (PS3.4 C.2.2.2.2), also used for backslash lists of other VRs."""

    values: tuple[str | int | float, ...]


@dataclass(frozen=True, slots=True)
class Wildcard:
    """`*` = any sequence of characters, `?` = any single character (PS3.4 C.2.2.2.4)."""

    pattern: str


@dataclass(frozen=True, slots=True)
class Range:
    """Inclusive range of DA/TM/DT (or numeric) values; a missing bound is open (C.2.2.2.5).

    Bounds are normalised strings: DA `YYYYMMDD`, TM `HHMMSS.ffffff`, DT `YYYYMMDDHHMMSS.ffffff`.
    """

    low: str | None
    high: str | None


@dataclass(frozen=True, slots=True)
class DateTimeRange:
    """A date range and its time range matched as ONE range of moments (PS3.4 C.2.2.2.5.1):
    StudyDate=20260301-20260302 with StudyTime=2200-0600 is 1 March 22:00 to 2 March 06:00, not
    22:00-06:00 on each day. Held by the date's condition; `time_tag` names the paired time.

    Bounds are `YYYYMMDDHHMMSS.ffffff`; a missing bound is open.
    """

    time_tag: str
    low: str | None
    high: str | None


@dataclass(frozen=True, slots=True)
class FuzzyName:
    """Fuzzy PN matching: every folded token must start a word of the name (any order)."""

    tokens: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Sequence:
    """Sequence matching (C.2.2.2.6): one item must satisfy all nested conditions."""

    conditions: tuple[Condition, ...]


Match = (Universal | Empty | SingleValue | ListOf | Wildcard | Range | DateTimeRange | FuzzyName
         | Sequence)


@dataclass(frozen=True, slots=True)
class Condition:
    """One attribute (tag as 8 upper-case hex digits) with its VR and how to match it."""

    tag: str
    vr: str
    match: Match

    @property
    def constrains(self) -> bool:
        if isinstance(self.match, Sequence):
            return any(c.constrains for c in self.match.conditions)
        return not isinstance(self.match, Universal)


@dataclass(frozen=True, slots=True)
class QuerySpec:
    level: Level
    conditions: tuple[Condition, ...] = ()
    # SQLAlchemy boolean clauses over the study table from registered extension filters.
    extension_clauses: tuple[Any, ...] = ()
    includes: frozenset[str] = frozenset()  # tags asked for with includefield (or return keys)
    include_all: bool = False
    extension_includes: frozenset[str] = frozenset()  # e.g. "commons.site"
    limit: int | None = None
    offset: int = 0
    fuzzy: bool = False
    capped: bool = False  # the limit was lowered to the configured maximum
    root: str | None = None  # DICOMweb service root, for RetrieveURL
    # For QIDO-RS resources scoped by the URL: the fixed study/series, whose own attributes are
    # then not repeated (PS3.18 §10.6.3.3.1).
    scoped_to: Level | None = None

    def tags(self) -> frozenset[str]:
        """Top-level tags named by a condition (returned like C-FIND keys)."""
        return frozenset(c.tag for c in self.conditions)
