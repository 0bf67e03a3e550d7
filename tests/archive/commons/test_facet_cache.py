"""The in-memory facet table follows the database exactly, on a real PostgreSQL: rows a refresh
rewrote are fetched by revision, changes not refreshed yet are overlaid from their marks, and
deletions reach the table both ways."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from archive.commons.facet_cache import FacetCache
from archive.commons.facet_table import Table
from archive.index.engine import create_engine
from archive.index.facet_rows import snapshot


def value(cache: FacetCache, table: Table, pk: int, column: str) -> Any:
    (row,) = table.rows_of([pk])
    assert table.alive[row], f"study {pk} is not alive"
    return cache.dicts[column].values[table.scalars[column][row]]


@asynccontextmanager
async def database(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url, pool_size=2)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO patient (pk, patient_id, issuer, patient_name, attrs) VALUES "
                "(1, 'C1', '', 'A', '{}'), (2, 'C2', '', 'B', '{}')"))
            await conn.execute(text(
                "INSERT INTO clinical_case (case_id, sex, extra, created_at, updated_at) VALUES "
                "('C1', 'Female', '{}', now(), now())"))
            await conn.execute(text(
                "INSERT INTO study (pk, patient_pk, study_uid, collection, site, modalities, attrs)"
                " VALUES (1, 1, '1.1', 'public', 'NORTH', '{CT}', '{}'),"
                " (2, 2, '1.2', 'public', 'SOUTH', '{MR}', '{}')"))
        yield engine
    finally:
        await engine.dispose()


async def _write(engine: AsyncEngine, sql: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql))


async def _scenario(url: str) -> None:
    cache = FacetCache()
    async with database(url) as engine:
        async with snapshot(engine) as conn:  # refreshes first: both rows come by revision
            table = await cache.current(conn)
        assert value(cache, table, 1, "case_sex") == "Female"
        assert value(cache, table, 2, "collection") == "public"
        first_rev = cache.table.rev
        assert first_rev > 0

        # changed after the refresh that snapshot() runs: only the marks know (the overlay)
        async with snapshot(engine) as conn:
            await _write(engine, "UPDATE study SET collection = 'sequestered' WHERE pk = 2")
            await _write(engine, "UPDATE clinical_case SET sex = 'Male' WHERE case_id = 'C1'")
            await _write(engine, "INSERT INTO study (pk, patient_pk, study_uid, attrs) "
                                 "VALUES (3, 2, '1.3', '{}')")
            table = await cache.current(conn)  # REPEATABLE READ: none of that is visible yet
        assert value(cache, table, 2, "collection") == "public"
        assert len(table.rows_of([3])) == 0

        async with engine.connect() as conn:  # a snapshot that sees the writes, no refresh
            from archive.index.facet_rows import changed_rows, marked_rows

            marked = await marked_rows(conn)
            assert {r[0] for r in marked.rows} == {1, 2, 3}
            assert (await changed_rows(conn, cache.table.rev)).rows == []

        async with snapshot(engine) as conn:  # refreshed now: by revision
            table = await cache.current(conn)
        assert value(cache, table, 2, "collection") == "sequestered"
        assert value(cache, table, 1, "case_sex") == "Male"
        assert value(cache, table, 3, "patient_pk") == 2
        assert cache.table.rev > first_rev

        # a deletion: overlaid as gone before its refresh, fetched from study_facet_gone after
        await _write(engine, "DELETE FROM study WHERE pk = 1")
        async with engine.connect() as conn:
            table = await cache.current(conn)
        assert not table.alive[table.rows_of([1])[0]]
        assert cache.table.alive[cache.table.rows_of([1])[0]]  # the shared table: not yet
        async with snapshot(engine) as conn:
            table = await cache.current(conn)
        assert not cache.table.alive[cache.table.rows_of([1])[0]]
        assert table.alive[table.rows_of([2, 3])].all()


def test_cache_follows_refreshes_marks_and_deletions(database_url: str) -> None:
    asyncio.run(_scenario(database_url))
