"""A filter (query pairs, as in a QIDO-RS query string) → SELECT of matching study pks.

Cohorts and facets reuse the query core (`archive.query`): the same parser and SQL as QIDO-RS,
so DICOM attribute keys (any level), `commons.` keys and visibility behave identically. Paging
and return keys make no sense for a selection and are refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from archive.core import Caller, Extensions
from archive.errors import InvalidQuery
from archive.query.sql import StudyPks

NOT_FILTERS = ("includefield", "limit", "offset")
MAX_PAIRS = 100


def pairs_from(query: Any) -> list[tuple[str, str]]:
    """Accept {"key": "value" | ["v1", "v2"]} or a query string "a=1&b=2"."""
    if query is None:
        return []
    if isinstance(query, str):
        return parse_qsl(query.lstrip("?"), keep_blank_values=True)
    if not isinstance(query, Mapping):
        raise InvalidQuery("filters must be an object of key: value or a query string")
    out: list[tuple[str, str]] = []
    for k, v in query.items():
        values = v if isinstance(v, list) else [v]
        for item in values:
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise InvalidQuery(f"filter {k!r}: values must be strings or numbers")
            out.append((str(k), str(item)))
    return out


def check_pairs(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    pairs = list(pairs)
    if len(pairs) > MAX_PAIRS:
        raise InvalidQuery(f"at most {MAX_PAIRS} filter keys")
    for k, _ in pairs:
        if k in NOT_FILTERS:
            raise InvalidQuery(f"{k!r} is not a filter (a selection has no paging or fields)")
    return pairs


def study_select(pairs: list[tuple[str, str]], extensions: Extensions,
                 caller: Caller) -> StudyPks:
    from archive.query import Level, parse_query, study_pk_select

    spec = parse_query(check_pairs(pairs), Level.STUDY, extensions, max_limit=None, root=None)
    return study_pk_select(spec, caller)
