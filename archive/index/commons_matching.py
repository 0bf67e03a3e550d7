"""Matching rules for commons query values: the DICOM grammar, plus the older commons one.

One query string mixes `commons.*` keys with DICOM keys, so commons values accept the standard
grammar of PS3.18 §8.3.4 / PS3.4 C.2.2.2:
- a backslash separates alternatives (any may match), as in a multi-valued matching key;
- a range is `a-b`, either end may be left open (`a-`, `-b`);
- `*` and `?` are wildcards in text values; text matching ignores case (the clinical vocabularies
  are enumerations such as Yes/No that clients spell either way);
- an empty value matches everything (universal matching, PS3.4 C.2.2.2.3).
The older commons grammar stays accepted as an alias: `,` also separates alternatives and
`a..b` is also a range. Day offsets are signed, so a lone `-3` there is the number −3 (not the
open range "up to 3"): write `..3`, or `-3-3` for a closed range around zero.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, true

from archive.errors import InvalidQuery

_INT = r"[+-]?[0-9]{1,9}"
_RANGE = re.compile(rf"^({_INT})?\.\.({_INT})?$")
_DASH_RANGE = re.compile(r"^([0-9]{1,9})?-([0-9]{1,9})?$")
_SIGNED_DASH_RANGE = re.compile(rf"^({_INT})?-({_INT})?$")
_SEPARATORS = re.compile(r"[,\\]")
TRUE_WORDS = {"yes", "true", "1", "y"}
FALSE_WORDS = {"no", "false", "0", "n"}


def alternatives(raw: str) -> list[str]:
    """Values separated by `\\` (the DICOM value separator) or `,` (the commons alias)."""
    return [v.strip() for v in _SEPARATORS.split(raw) if v.strip()]


def _range(v: str, signed: bool) -> re.Match[str] | None:
    """`a..b` or `a-b` (ends optional); on signed fields a lone integer is not a range."""
    if signed:
        if re.fullmatch(_INT, v):
            return None
        return _RANGE.match(v) or _SIGNED_DASH_RANGE.match(v)
    return _RANGE.match(v) or _DASH_RANGE.match(v)


def like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def text_match(key: str, column: Any, raw: str) -> ColumnElement[bool]:
    values = alternatives(raw)
    if not values:
        return true()
    clauses: list[ColumnElement[bool]] = []
    for v in values:
        if len(v) > 256:
            raise InvalidQuery(f"{key}: value longer than 256 characters")
        if "*" in v or "?" in v:
            clauses.append(func.lower(column).like(like_pattern(v.lower()), escape="\\"))
        else:
            clauses.append(func.lower(column) == v.lower())
    return or_(false(), *clauses)


def parse_int(key: str, text: str) -> int:
    if not re.fullmatch(_INT, text):
        raise InvalidQuery(f"{key}: {text!r} is not an integer")
    return int(text)


def number_match(key: str, column: Any, raw: str, signed: bool = True) -> ColumnElement[bool]:
    values = alternatives(raw)
    if not values:
        return true()
    clauses = []
    for v in values:
        m = _range(v, signed)
        if m and (m.group(1) or m.group(2)):
            low, high = m.group(1), m.group(2)
            parts = []
            if low is not None:
                parts.append(column >= int(low))
            if high is not None:
                parts.append(column <= int(high))
            if low is not None and high is not None and int(low) > int(high):
                raise InvalidQuery(f"{key}: range {v!r} is empty (lower end above upper end)")
            clauses.append(and_(*parts))
        elif m:
            raise InvalidQuery(f"{key}: {v!r} is a range without ends")
        else:
            try:
                clauses.append(column == parse_int(key, v))
            except InvalidQuery:
                raise InvalidQuery(
                    f"{key}: {v!r} is not an integer or a range (a-b or a..b)") from None
    return or_(false(), *clauses)


def parse_bool(key: str, raw: str) -> bool | None:
    v = raw.strip().lower()
    if not v:
        return None
    if v in TRUE_WORDS:
        return True
    if v in FALSE_WORDS:
        return False
    raise InvalidQuery(f"{key}: {raw!r} is not yes or no")


def bool_match(key: str, column: Any, raw: str) -> ColumnElement[bool]:
    value = parse_bool(key, raw)
    return true() if value is None else column.is_(value)
