"""The clinical tables' SQL: case upserts, replacing a case's child rows, known-case checks.

`archive.commons.clinical` validates a batch and decides what to write; these statements run
in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.index.commons_tables import case_study, clinical_case


async def upsert_cases(conn: AsyncConnection, cases: list[dict[str, Any]]) -> None:
    """Insert cases, or replace the columns given for a case that exists."""
    for columns, group in _by_columns(cases):
        stmt = pg_insert(clinical_case)
        updates: dict[str, Any] = {c: stmt.excluded[c] for c in columns if c != "case_id"}
        updates["updated_at"] = func.now()
        await conn.execute(stmt.on_conflict_do_update(index_elements=["case_id"], set_=updates),
                           group)


async def known_cases(conn: AsyncConnection, wanted: set[str]) -> set[str]:
    """Those of `wanted` that are stored cases."""
    return set((await conn.execute(
        select(clinical_case.c.case_id).where(clinical_case.c.case_id.in_(wanted)))).scalars())


async def replace_children(conn: AsyncConnection, table: Table,
                           per_case: dict[str, list[dict[str, Any]]]) -> None:
    """The rows of `table` for each case in `per_case` become exactly the given rows. For
    case-study links, a study listed moves to its new case (a study links to one case)."""
    cases = list(per_case)
    if table is case_study:
        await conn.execute(delete(case_study).where(case_study.c.case_id.in_(cases)))
        uids = [r["study_uid"] for rows in per_case.values() for r in rows]
        await conn.execute(delete(case_study).where(case_study.c.study_uid.in_(uids)))
    else:
        await conn.execute(delete(table).where(table.c.case_id.in_(cases)))
    rows = [r | {"case_id": c} for c, rs in per_case.items() for r in rs]
    for columns, group in _by_columns(rows):
        await conn.execute(insert(table), [{c: r.get(c) for c in columns} for r in group])


def _by_columns(rows: Iterable[dict[str, Any]]) -> list[tuple[tuple[str, ...], list[dict]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(sorted(r)), []).append(r)
    return list(groups.items())
