"""tables.py and the migrations agree: Alembic autogenerate finds nothing to change.

The database is the real one the migrations build (the session's upgraded template); the
target is the project's MetaData (archive.index.schema, also migrations/env.py's
target_metadata). A second test proves the comparison can fail: a description with one
column and one index fewer is reported.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine

from archive.index.engine import async_url
from archive.index.schema import include_object, metadata


def differences(url: str, target: MetaData) -> list[Any]:
    async def run() -> list[Any]:
        engine = create_async_engine(async_url(url))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={
                        "include_object": include_object, "compare_type": True}), target))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _has_trgm(url: str) -> bool:
    async def run() -> bool:
        engine = create_async_engine(async_url(url))
        try:
            async with engine.connect() as conn:
                found = await conn.exec_driver_sql(
                    "SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
                return found.first() is not None
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_tables_match_the_migrations(database_url: str) -> None:
    found = differences(database_url, metadata)
    if not _has_trgm(database_url):
        # Migration 0002 builds the trigram indexes only where pg_trgm exists (not in every
        # embedded PostgreSQL build); their absence there is the migrations' intent.
        found = [d for d in found if not (isinstance(d, tuple) and d[0] == "add_index"
                                          and str(d[1].name).endswith("_trgm_idx"))]
    assert found == []


def test_a_drifted_description_is_reported(database_url: str) -> None:
    drifted = MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(drifted)
    study = drifted.tables["study"]
    study._columns.remove(study.c.dataset)  # type: ignore[attr-defined]
    study.indexes.discard(next(i for i in study.indexes if i.name == "study_site_idx"))
    found = {(d[0], d[2] if d[0] == "remove_column" else d[1].name)
             for d in differences(database_url, drifted) if isinstance(d, tuple)}
    assert ("remove_column", "study") in found
    assert ("remove_index", "study_site_idx") in found
