"""Alembic environment: runs migrations over asyncpg with the URL the archive hands it.

`target_metadata` is the project's MetaData (archive.index.schema), so `alembic revision
--autogenerate` drafts a migration from a change to tables.py, and
tests/migrations/test_autogenerate.py fails while the two disagree.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from archive.index.engine import async_url
from archive.index.schema import include_object
from archive.index.schema import metadata as target_metadata

config = context.config


def _url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        import os

        url = os.environ.get("ARCHIVE_DATABASE_URL", "")
    if not url:
        raise RuntimeError("no database URL: set ARCHIVE_DATABASE_URL")
    return async_url(url)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata,
                      include_object=include_object, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), literal_binds=True, target_metadata=target_metadata,
                      include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_main())
