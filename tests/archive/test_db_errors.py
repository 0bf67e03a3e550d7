"""Database errors are recognised by class: a real PostgreSQL deadlock, raised through
SQLAlchemy's asyncpg driver, becomes a retryable ArchiveUnavailable in the group committer."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from archive.errors import ArchiveUnavailable
from archive.group_commit import _db_error
from archive.index import engine as engine_module
from archive.index.db_errors import is_retryable
from archive.index.engine import create_engine


async def _deadlock(url: str) -> DBAPIError:
    engine = create_engine(url, pool_size=2)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE dl (id int PRIMARY KEY, v int)"))
            await conn.execute(text("INSERT INTO dl VALUES (1, 0), (2, 0)"))
        a_locked, b_locked = asyncio.Event(), asyncio.Event()

        async def worker(first: int, second: int, mine: asyncio.Event,
                         theirs: asyncio.Event) -> None:
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE dl SET v = v + 1 WHERE id = :i"), {"i": first})
                mine.set()
                await theirs.wait()
                await conn.execute(text("UPDATE dl SET v = v + 1 WHERE id = :i"), {"i": second})

        results = await asyncio.gather(worker(1, 2, a_locked, b_locked),
                                       worker(2, 1, b_locked, a_locked), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1, results  # PostgreSQL aborts exactly one of the two
        assert isinstance(errors[0], DBAPIError), repr(errors[0])
        return errors[0]
    finally:
        await engine.dispose()


def test_a_real_deadlock_is_retryable(database_url: str) -> None:
    exc = asyncio.run(_deadlock(database_url))
    assert is_retryable(exc)
    mapped = _db_error(exc)
    assert isinstance(mapped, ArchiveUnavailable)
    assert mapped.reason.startswith("index busy, retry")


def test_other_database_errors_are_not_retryable(database_url: str) -> None:
    async def bad() -> BaseException:
        engine = create_engine(database_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT * FROM no_such_table_mentioning_deadlock"))
        except DBAPIError as exc:
            return exc
        finally:
            await engine.dispose()
        pytest.fail("the query should have failed")

    exc = asyncio.run(bad())
    assert not is_retryable(exc)  # the message says "deadlock"; the class does not
    assert _db_error(exc) is exc


def test_an_idle_pooled_connection_that_died_is_replaced_not_handed_out(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool pings only connections idle for PING_AFTER_IDLE (not every checkout): one whose
    backend ended while it sat in the pool (a PostgreSQL restart, an idle-session kill) is
    replaced at checkout, and the query on the replacement succeeds."""
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE", 0.2)

    async def scenario() -> tuple[int, int, int]:
        engine = create_engine(database_url, pool_size=1)
        try:
            async with engine.connect() as conn:
                first = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            async with engine.connect() as conn:  # back in the pool moments ago: same session
                again = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            killer = await asyncpg.connect(database_url)
            try:
                await killer.execute("SELECT pg_terminate_backend($1)", first)
            finally:
                await killer.close()
            await asyncio.sleep(0.5)  # idle past PING_AFTER_IDLE: pinged, found dead, replaced
            async with engine.connect() as conn:
                after = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            return first, again, after
        finally:
            await engine.dispose()

    first, again, after = asyncio.run(scenario())
    assert again == first
    assert after != first
