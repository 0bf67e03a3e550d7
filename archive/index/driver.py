"""Statements sent through asyncpg itself, on a connection SQLAlchemy holds (issue 14).

SQLAlchemy costs ~170 µs of CPU per statement on this hardware (compiling the cache key,
greenlet hops, result wrapping); asyncpg alone ~50 µs. The group commit sends ~10 statements
per batch, and a lone C-STORE is a batch of one, so its hot statements go to the driver
directly: `AsyncConnection.get_raw_connection().driver_connection` is the asyncpg Connection
under SQLAlchemy's (public API). Everything else — the transaction's BEGIN/COMMIT/ROLLBACK,
savepoints, the index hooks — stays with SQLAlchemy on the same connection, so both see one
transaction.

The catch: SQLAlchemy's asyncpg adapter BEGINs lazily, on its first statement. A statement
sent to the driver before that would run outside the transaction and commit by itself, so
`in_transaction` refuses a connection that is not inside one (the caller sends one statement
through SQLAlchemy first). Errors come back as asyncpg's own exceptions, not SQLAlchemy's
wrappers: `archive.index.db_errors.DRIVER_ERRORS` names them for the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from asyncpg import Connection as Driver
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["Driver", "Statement", "autocommit", "in_transaction", "statement"]


@dataclass(frozen=True, slots=True)
class Statement:
    """SQL with asyncpg's $n placeholders and the parameter name of each n."""

    sql: str
    names: tuple[str, ...]

    def args(self, params: dict[str, Any]) -> list[Any]:
        return [params[n] for n in self.names]

    async def fetch(self, driver: Driver, params: dict[str, Any]) -> list[Any]:
        return list(await driver.fetch(self.sql, *self.args(params)))

    async def execute(self, driver: Driver, params: dict[str, Any]) -> None:
        await driver.execute(self.sql, *self.args(params))


_NAMED = re.compile(r"(?<![:\w]):(\w+)")


def statement(sql: str) -> Statement:
    """`sql` written with SQLAlchemy's `:name` parameters, for the driver ($1, $2, …): one
    text serves both paths, so they cannot drift apart."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return Statement(_NAMED.sub(number, sql), tuple(names))


async def in_transaction(conn: AsyncConnection) -> Driver:
    """The asyncpg connection under `conn`, which must be inside its (SQLAlchemy) transaction
    already: a statement sent now is part of it and is undone by its rollback."""
    driver = await _driver(conn)
    if not driver.is_in_transaction():
        raise RuntimeError("the driver connection is not inside a transaction yet: send a "
                           "statement through SQLAlchemy first (its BEGIN is lazy)")
    return driver


async def autocommit(conn: AsyncConnection) -> Driver:
    """The asyncpg connection under `conn`, an AUTOCOMMIT connection: each statement commits
    by itself, as it would through SQLAlchemy."""
    sync = conn.sync_connection
    if sync is None or sync.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        raise RuntimeError("not an AUTOCOMMIT connection")
    return await _driver(conn)


async def _driver(conn: AsyncConnection) -> Driver:
    driver = (await conn.get_raw_connection()).driver_connection
    assert isinstance(driver, Driver)
    return driver
