"""One parse of attribute values (PS3.4 C.2.2.2) and of query keys, without a server."""

from __future__ import annotations

import asyncpg
import pytest

from archive.core import Extensions
from archive.errors import InvalidQuery
from archive.index.engine import sync_url
from archive.query import Level, parse_query
from archive.query.fold import fold_name, fold_tokens
from archive.query.matching import parse_match
from archive.query.spec import (
    Empty,
    FuzzyName,
    ListOf,
    Range,
    Sequence,
    SingleValue,
    Universal,
    Wildcard,
)


@pytest.mark.parametrize("raw,vr,expected", [
    ("", "LO", Universal()),
    ("*", "UI", Universal()),
    ('""', "LO", Empty()),
    ("  PID-1 ", "LO", SingleValue("PID-1")),
    ("1.2.3\\1.2.4", "UI", ListOf(("1.2.3", "1.2.4"))),
    ("1.2.3,1.2.4", "UI", ListOf(("1.2.3", "1.2.4"))),
    ("CT\\MR", "CS", ListOf(("CT", "MR"))),
    ("Do?^J*", "PN", Wildcard("Do?^J*")),
    ("20240101", "DA", SingleValue("20240101")),
    ("20240101-20240131", "DA", Range("20240101", "20240131")),
    ("-20240131", "DA", Range(None, "20240131")),
    ("20240101-", "DA", Range("20240101", None)),
    ("10", "TM", Range("100000.000000", "105959.999999")),
    ("0800-0930", "TM", Range("080000.000000", "093059.999999")),
    ("2024-2025", "DT", Range("20240101000000.000000", "20251231235959.999999")),
    ("20240101120000-0500", "DT", Range("20240101120000.000000", "20240101120000.999999")),
    ("7", "IS", SingleValue(7)),
    ("1.5\\2", "DS", ListOf((1.5, 2.0))),
])
def test_parse_match(raw: str, vr: str, expected: object) -> None:
    assert parse_match(raw, vr) == expected


@pytest.mark.parametrize("raw,vr", [
    ("2024-01-01", "DA"), ("20240230", "DA"), ("20240301-20240101", "DA"), ("-", "DA"),
    ("25", "TM"), ("1.2.*", "UI"), ("1.02", "UI"), ("x", "IS"), ("2*", "IS"),
    ("abc", "OB"), ("x", "SQ"), ("A*\\B", "CS"),
])
def test_invalid_values_raise(raw: str, vr: str) -> None:
    with pytest.raises(InvalidQuery):
        parse_match(raw, vr)


def test_fuzzy_names_fold_accents_case_and_order() -> None:
    assert parse_match("José MÜLLER", "PN", fuzzy=True) == FuzzyName(("jose", "muller"))
    assert fold_tokens("Łukasz^Żółć") == ("lukasz", "zolc")
    assert fold_name("Müller^José") == " muller jose "


def test_parse_query_keys_paths_and_reserved_parameters() -> None:
    spec = parse_query(
        [("00100020", "P1"), ("ProcedureCodeSequence.CodeValue", "X"),
         ("00081032.00080102", "LOCAL"), ("includefield", "00081030,StudyDescription"),
         ("includefield", "all"), ("limit", "50"), ("offset", "5"), ("fuzzymatching", "true"),
         ("PatientName", "doe")],
        Level.STUDY, max_limit=20,
    )
    assert spec.limit == 20 and spec.capped and spec.offset == 5 and spec.include_all
    assert spec.includes == {"00081030"}
    by_tag = {c.tag: c for c in spec.conditions}
    assert by_tag["00100020"].match == SingleValue("P1")
    assert by_tag["00100010"].match == FuzzyName(("doe",))
    seq = by_tag["00081032"].match
    assert isinstance(seq, Sequence) and {c.tag for c in seq.conditions} == {"00080100",
                                                                              "00080102"}


def test_unknown_keys_and_unregistered_prefixes_are_rejected() -> None:
    for key in ("NotAKeyword", "commons.site", "0010002", "PatientID.CodeValue", "00020010"):
        with pytest.raises(InvalidQuery):
            parse_query([(key, "x")], Level.STUDY)
    seen: list[tuple[str, str]] = []
    ext = Extensions(filters={"commons.": lambda k, v: seen.append((k, v)) or True})
    spec = parse_query([("commons.site", "X")], Level.STUDY, ext)
    assert seen == [("commons.site", "X")] and len(spec.extension_clauses) == 1


async def test_sql_fold_function_matches_python(database_url: str) -> None:
    conn = await asyncpg.connect(sync_url(database_url))
    try:
        for name in ("Müller^José", "O'Brien-Smith^Ann=山田^太郎", "ÉLODIE  DURAND", "Łukasz^Ż"):
            assert await conn.fetchval("SELECT archive_fold_name($1)", name) == fold_name(name)
    finally:
        await conn.close()
