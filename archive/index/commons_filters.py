"""`commons.` QIDO keys → a boolean clause over the study table (the FilterCompiler).

Each key becomes `study.pk IN (SELECT study_pk FROM <its scope> WHERE <match>)`, so keys on
clinical rows match when *some* row of the case matches. Two keys over tests therefore need
not match the same test; for "a positive test within N days of the study" use
`commons.days_from_study_to_pos_covid_test=-N..N`, which matches a single test row.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, select, true

from archive.errors import InvalidQuery
from archive.index.commons_fields import PREFIX, SCOPES, Field, field_for
from archive.index.commons_matching import bool_match, number_match, text_match
from archive.index.tables import study

MAX_VALUE = 4096


def match(f: Field, raw: str) -> ColumnElement[bool]:
    """The condition on a field's own column (before it is joined to studies)."""
    if len(raw) > MAX_VALUE:
        raise InvalidQuery(f"{f.key}: value too long")
    if f.kind == "text":
        cond = text_match(f.key, f.column, raw)
    elif f.kind == "bool":
        cond = bool_match(f.key, f.column, raw)
    else:
        cond = number_match(f.key, f.column, raw, signed=f.kind == "int")
    return cond if f.extra is None else and_(f.extra, cond)


def compile_filter(key: str, raw: str) -> ColumnElement[bool]:
    """FilterCompiler for the `commons.` namespace; InvalidQuery for unknown keys or values."""
    f = field_for(key)
    if f is None:
        raise InvalidQuery(f"unknown commons query key {key!r} (see GET /commons/openapi.json)")
    if not raw.strip().strip(",\\"):
        return true()  # universal matching: the key only asks for the attribute
    cond = match(f, raw)
    if f.scope == "study":
        return cond
    scope = SCOPES[f.scope]
    return study.c.pk.in_(select(scope.study_pk).select_from(scope.source).where(cond))


def is_commons_key(key: str) -> bool:
    return key.startswith(PREFIX)
