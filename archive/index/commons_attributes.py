"""`includefield=commons.…` → DICOM JSON elements in the private block "IMAGING COMMONS".

Private creator (0011,0010) = "IMAGING COMMONS"; its elements are (0011,10xx), listed per key
in fields.py and the README ("Commons"). Values from one case or one study have one value; values from
clinical rows (tests, conditions, ...) are multi-valued, one value per row, and the test
elements list the case's tests in the same order (by day), so they can be read side by side.
The harmonized code is also returned as a coded item: in the private sequence (0011,1007) and
in ProcedureCodeSequence (0008,1032) when the study's own header has none (never overriding
what the site sent). The stored DICOM is not changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.errors import InvalidQuery
from archive.index.commons_fields import FIELDS, PREFIX, SCOPES, Field

CREATOR_TAG = "00110010"
CREATOR = "IMAGING COMMONS"
CODED_ITEM_TAG = "00111007"
PROCEDURE_CODE_SEQUENCE = "00081032"
SINGLE_ROW_SCOPES = ("study", "loinc", "case")
_ORDER = {"test": ("days_from_index", "pk")}
LOINC_KEYS = frozenset(k for k in FIELDS if k.startswith("commons.loinc_"))


def requested_fields(keys: Iterable[str]) -> list[Field]:
    """`commons`, `commons.*` mean every returnable field; unknown keys are an error."""
    out: dict[str, Field] = {}
    for k in keys:
        if k in ("commons", "commons.*"):
            out |= {f.key: f for f in FIELDS.values() if f.tag}
        elif k in FIELDS and FIELDS[k].tag:
            out[k] = FIELDS[k]
        elif k.startswith(PREFIX):
            raise InvalidQuery(f"includefield: {k!r} is not a returnable commons attribute")
    return list(out.values())


def _element(f: Field, values: list[Any]) -> dict[str, Any]:
    if f.kind == "bool":
        values = ["YES" if v else "NO" for v in values if v is not None]
    else:
        values = [v for v in values if v is not None]
    elem: dict[str, Any] = {"vr": f.vr}
    if values:
        elem["Value"] = values
    return elem


async def _scope_values(conn: AsyncConnection, scope_name: str, fields: list[Field],
                        pks: list[int]) -> dict[int, dict[str, list[Any]]]:
    scope = SCOPES[scope_name]
    columns = [f.column.label(f"c{i}") for i, f in enumerate(fields)]
    stmt = select(scope.study_pk.label("study_pk"), *columns).select_from(scope.source).where(
        scope.study_pk.in_(pks))
    if scope_name == "test":
        from archive.index.commons_tables import covid_test

        stmt = stmt.order_by(covid_test.c.days_from_index, covid_test.c.pk)
    out: dict[int, dict[str, list[Any]]] = {}
    for row in (await conn.execute(stmt)).all():
        per = out.setdefault(row.study_pk, {f.key: [] for f in fields})
        for i, f in enumerate(fields):
            value, values = row[i + 1], per[f.key]
            if f.extra is not None:
                continue  # filled below from the test rows it qualifies
            if scope_name not in SINGLE_ROW_SCOPES or value not in values:
                values.append(value)
    return out


async def result_attributes(conn: AsyncConnection, study_pks: list[int],
                            requested: frozenset[str]) -> dict[int, dict[str, Any]]:
    """ResultAttributes provider for the `commons.` namespace."""
    fields = requested_fields(requested)
    if not fields or not study_pks:
        return {}
    by_scope: dict[str, list[Field]] = {}
    for f in fields:
        by_scope.setdefault(f.scope, []).append(f)
    values: dict[int, dict[str, list[Any]]] = {pk: {} for pk in study_pks}
    for scope_name, scope_fields in by_scope.items():
        found = await _scope_values(conn, scope_name, scope_fields, study_pks)
        for pk, per in found.items():
            values[pk] |= per
    if any(f.extra is not None for f in fields):
        await _qualified_tests(conn, study_pks, [f for f in fields if f.extra is not None],
                               values)
    out: dict[int, dict[str, Any]] = {}
    for pk in study_pks:
        elems = {CREATOR_TAG: {"vr": "LO", "Value": [CREATOR]}}
        for f in fields:
            assert f.tag is not None
            elems[f.tag] = _element(f, values[pk].get(f.key, []))
        out[pk] = elems
    if LOINC_KEYS & {f.key for f in fields}:
        await _coded_items(conn, study_pks, out)
    return out


async def _qualified_tests(conn: AsyncConnection, pks: list[int], fields: list[Field],
                           values: dict[int, dict[str, list[Any]]]) -> None:
    scope = SCOPES["test"]
    for f in fields:
        stmt = select(scope.study_pk, f.column).select_from(scope.source).where(
            scope.study_pk.in_(pks), f.extra)  # type: ignore[arg-type]
        for pk, v in (await conn.execute(stmt)).all():
            values[pk].setdefault(f.key, []).append(v)
        for pk in pks:
            values[pk][f.key] = sorted(v for v in values[pk].get(f.key, []) if v is not None)


async def _coded_items(conn: AsyncConnection, pks: list[int],
                       out: dict[int, dict[str, Any]]) -> None:
    rows = (await conn.execute(text(
        "SELECT h.study_pk, h.loinc_code, t.long_common_name, "
        "(s.attrs ? '00081032') AS has_own FROM study_harmonization h "
        "JOIN loinc_term t ON t.code = h.loinc_code JOIN study s ON s.pk = h.study_pk "
        "WHERE h.study_pk = ANY(:pks)"), {"pks": pks})).all()
    for r in rows:
        item = {"00080100": {"vr": "SH", "Value": [r.loinc_code]},
                "00080102": {"vr": "SH", "Value": ["LN"]},
                "00080104": {"vr": "LO", "Value": [r.long_common_name]}}
        out[r.study_pk][CODED_ITEM_TAG] = {"vr": "SQ", "Value": [item]}
        if not r.has_own:
            out[r.study_pk][PROCEDURE_CODE_SEQUENCE] = {"vr": "SQ", "Value": [item]}
