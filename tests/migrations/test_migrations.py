"""Migrations: `archive db upgrade` on an empty database, and a full downgrade/upgrade cycle."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from archive.index.engine import sync_url
from tests.conftest import _admin, _with_db

TABLES = {"patient", "study", "series", "instance"}


@pytest.fixture
def empty_db(pg_server_url: str) -> Iterator[str]:
    name = f"archive_mig_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(pg_server_url, f'CREATE DATABASE "{name}"'))
    yield _with_db(pg_server_url, name)
    asyncio.run(_admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def tables(url: str) -> set[str]:
    async def q() -> set[str]:
        conn = await asyncpg.connect(sync_url(url))
        try:
            rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            return {r["tablename"] for r in rows}
        finally:
            await conn.close()

    return asyncio.run(q())


def test_db_upgrade_command_creates_the_index(empty_db: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = os.environ | {"ARCHIVE_DATABASE_URL": empty_db, "ARCHIVE_DATA_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "archive", "db", "upgrade"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert tables(empty_db) >= TABLES
    again = subprocess.run([sys.executable, "-m", "archive", "db", "upgrade"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0  # idempotent


def test_every_migration_downgrades_and_upgrades_again(empty_db: str) -> None:
    from alembic import command
    from alembic.config import Config

    from archive.index.engine import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["database_url"] = empty_db
    command.upgrade(cfg, "head")
    command.downgrade(cfg, "base")
    assert not (TABLES & tables(empty_db))
    command.upgrade(cfg, "head")
    assert tables(empty_db) >= TABLES
