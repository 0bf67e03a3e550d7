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


def test_tables_match_the_migrations(database_url: str) -> None:
    assert differences(database_url, metadata) == []


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
