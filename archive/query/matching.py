"""One parse of a raw attribute value + VR into a typed Match (PS3.4 C.2.2.2).

Every door hands its values here as text (QIDO-RS query string, C-FIND identifier elements
rendered as DICOM strings), so the same value means the same thing whichever door it came in.
"""

from __future__ import annotations

import re

from archive.errors import InvalidQuery
from archive.query.fold import fold_tokens
from archive.query.spec import (
    Condition,
    DateTimeRange,
    Empty,
    FuzzyName,
    ListOf,
    Match,
    Range,
    SingleValue,
    Universal,
    Wildcard,
)

NUMERIC_VRS = frozenset({"IS", "DS", "US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"})
INTEGER_VRS = frozenset({"IS", "US", "SS", "UL", "SL", "UV", "SV"})
BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
# VRs whose values may not contain a backslash, so a backslash separates a list of values.
LISTABLE_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "IS", "LO", "PN", "SH", "TM", "DT", "UC",
                          "UI"}) | NUMERIC_VRS
# Wildcards are not defined for these VRs (C.2.2.2.4); a lone "*" still means universal.
NO_WILDCARD_VRS = frozenset({"DA", "TM", "DT", "UI", "AT"}) | NUMERIC_VRS

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")
DA_RE = re.compile(r"^\d{8}$")
TM_RE = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$")
DT_RE = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,6})?([+-]\d{4})?$")
DT_PART = r"\d{4,14}(?:\.\d{1,6})?(?:[+-]\d{4})?"
DT_RANGE_RE = re.compile(rf"^({DT_PART})?-({DT_PART})?$")


def parse_match(raw: str, vr: str, *, fuzzy: bool = False, name: str = "") -> Match:
    """Typed match for one attribute value; raises InvalidQuery naming the attribute."""
    label = name or vr
    value = raw.strip(" ")
    if value == "" or value == "*":
        return Universal()
    if value == '""':
        return Empty()
    if vr in BINARY_VRS:
        raise InvalidQuery(f"{label}: matching on {vr} values is not supported")
    if vr == "SQ":
        raise InvalidQuery(f"{label} is a sequence: match its items with a dotted path")
    if vr in NO_WILDCARD_VRS and ("*" in value or "?" in value):
        raise InvalidQuery(f"{label}: wildcards are not allowed for VR {vr}")
    if vr == "UI":
        return _uids(value, label)
    if vr == "DA":
        return _date(value, label)
    if vr == "TM":
        return _time(value, label)
    if vr == "DT":
        return _datetime(value, label)
    if vr in NUMERIC_VRS:
        return _numbers(value, vr, label)
    if vr == "PN" and fuzzy:
        tokens = fold_tokens(value.replace("*", " ").replace("?", " "))
        return FuzzyName(tokens) if tokens else Universal()
    if "\\" in value and vr in LISTABLE_VRS:
        parts = tuple(p.strip(" ") for p in value.split("\\"))
        if any("*" in p or "?" in p for p in parts):
            raise InvalidQuery(f"{label}: wildcards cannot be combined with a value list")
        return ListOf(parts)
    if "*" in value or "?" in value:
        return Wildcard(value)
    return SingleValue(value)


def _uids(value: str, label: str) -> Match:
    parts = [p.strip() for p in re.split(r"[\\,]", value) if p.strip()]
    for p in parts:
        if len(p) > 64 or not UID_RE.match(p):
            raise InvalidQuery(f"{label}: {p[:80]!r} is not a valid UID")
    return SingleValue(parts[0]) if len(parts) == 1 else ListOf(tuple(parts))


def _numbers(value: str, vr: str, label: str) -> Match:
    out: list[int | float] = []
    for p in value.split("\\"):
        p = p.strip()
        try:
            out.append(int(p) if vr in INTEGER_VRS else float(p))
        except ValueError:
            raise InvalidQuery(f"{label}: {p[:40]!r} is not a valid {vr} number") from None
    return SingleValue(out[0]) if len(out) == 1 else ListOf(tuple(out))


def _date_bound(text: str, label: str) -> str:
    text = text.strip()
    if not DA_RE.match(text) or not _valid_date(text):
        raise InvalidQuery(f"{label}: {text!r} is not a date YYYYMMDD")
    return text


def _valid_date(text: str) -> bool:
    import datetime as dt

    try:
        dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return False
    return True


def _date(value: str, label: str) -> Match:
    if "\\" in value:
        return ListOf(tuple(_date_bound(p, label) for p in value.split("\\")))
    if "-" not in value:
        return SingleValue(_date_bound(value, label))
    low, _, high = value.partition("-")
    if not low.strip() and not high.strip():
        raise InvalidQuery(f"{label}: empty date range {value!r}")
    lo = _date_bound(low, label) if low.strip() else None
    hi = _date_bound(high, label) if high.strip() else None
    if lo and hi and lo > hi:
        raise InvalidQuery(f"{label}: date range {value!r} ends before it starts")
    return Range(lo, hi)


def time_bound(text: str, label: str, *, upper: bool) -> str:
    """HH[MM[SS[.F]]] → HHMMSS.ffffff; a partial upper bound covers its whole unit."""
    m = TM_RE.match(text.strip().replace(":", ""))
    if not m:
        raise InvalidQuery(f"{label}: {text!r} is not a time HHMMSS.FFFFFF")
    hh, mm, ss, frac = m.groups()
    fill = "59" if upper else "00"
    if int(hh) > 23 or (mm and int(mm) > 59) or (ss and int(ss) > 60):
        raise InvalidQuery(f"{label}: {text!r} is not a valid time")
    digits = (frac or ".")[1:]
    frac6 = digits + ("9" if upper else "0") * (6 - len(digits))
    return f"{hh}{mm or fill}{ss or fill}.{frac6}"


def _time(value: str, label: str) -> Match:
    if "-" not in value:
        # A single (possibly partial) time matches every time within its precision.
        return Range(time_bound(value, label, upper=False), time_bound(value, label, upper=True))
    low, _, high = value.partition("-")
    if not low.strip() and not high.strip():
        raise InvalidQuery(f"{label}: empty time range {value!r}")
    lo = time_bound(low, label, upper=False) if low.strip() else None
    hi = time_bound(high, label, upper=True) if high.strip() else None
    if lo and hi and lo > hi:
        raise InvalidQuery(f"{label}: time range {value!r} ends before it starts")
    return Range(lo, hi)


def datetime_bound(text: str, label: str, *, upper: bool) -> str:
    """YYYY[MM[DD[HH[MM[SS[.F]]]]]] (offset ignored) → YYYYMMDDHHMMSS.ffffff."""
    m = DT_RE.match(text.strip())
    if not m:
        raise InvalidQuery(f"{label}: {text!r} is not a date-time YYYYMMDDHHMMSS.FFFFFF")
    parts = m.groups()[:6]
    frac = (m.group(7) or ".")[1:]
    fills = (("9999", "12", "31", "23", "59", "59") if upper
             else ("0000", "01", "01", "00", "00", "00"))
    body = "".join(p if p else f for p, f in zip(parts, fills, strict=True))
    return f"{body}.{frac + ('9' if upper else '0') * (6 - len(frac))}"


def _datetime(value: str, label: str) -> Match:
    single = DT_RE.match(value)
    if single and single.group(8) and single.group(4):  # "YYYYMMDDHH...-ZZZZ": an offset
        return Range(datetime_bound(value, label, upper=False),
                     datetime_bound(value, label, upper=True))
    m = DT_RANGE_RE.match(value)
    if m and (m.group(1) or m.group(2)):
        lo = datetime_bound(m.group(1), label, upper=False) if m.group(1) else None
        hi = datetime_bound(m.group(2), label, upper=True) if m.group(2) else None
        if lo and hi and lo > hi:
            raise InvalidQuery(f"{label}: range {value!r} ends before it starts")
        return Range(lo, hi)
    low = datetime_bound(value, label, upper=False)
    return Range(low, datetime_bound(value, label, upper=True))


# Date and time attributes that describe one moment together (PS3.4 C.2.2.2.5.1).
DATE_TIME_PAIRS = (("00080020", "00080030"),   # Study Date / Study Time
                   ("00080021", "00080031"),   # Series Date / Series Time
                   ("00400244", "00400245"))   # Performed Procedure Step Start Date / Time


def combine_date_time(conditions: tuple[Condition, ...], ranged: frozenset[str]
                      ) -> tuple[Condition, ...]:
    """When a date and its time are BOTH given as ranges (`ranged`: tags whose value had a
    `-`), match them as one range of moments: date1+time1 to date2+time2 (PS3.4 C.2.2.2.5.1).
    A single time value keeps its per-day meaning, so it is left alone."""
    out = list(conditions)
    for date_tag, time_tag in DATE_TIME_PAIRS:
        dates = [c for c in out if c.tag == date_tag]
        times = [c for c in out if c.tag == time_tag]
        if len(dates) != 1 or len(times) != 1 or not {date_tag, time_tag} <= ranged:
            continue
        d, t = dates[0].match, times[0].match
        if not isinstance(d, Range) or not isinstance(t, Range):
            continue
        low = d.low + (t.low or "000000.000000") if d.low else None
        high = d.high + (t.high or "235959.999999") if d.high else None
        if low and high and low > high:
            raise InvalidQuery(f"date and time range {d.low}{t.low}-{d.high}{t.high} ends before "
                               f"it starts")
        out[out.index(dates[0])] = Condition(date_tag, "DA", DateTimeRange(time_tag, low, high))
        out[out.index(times[0])] = Condition(time_tag, "TM", Universal())  # still a return key
    return tuple(out)
