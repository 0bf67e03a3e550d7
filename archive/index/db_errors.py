"""Database errors, recognised by exception class (not message text), for the core to map.

SQLAlchemy wraps the driver's exception: `DBAPIError.orig` is SQLAlchemy's asyncpg adapter
error, whose `__cause__` is asyncpg's own exception (e.g. DeadlockDetectedError).
"""

from __future__ import annotations

from asyncpg.exceptions import DataError as ServerDataError
from asyncpg.exceptions import (
    DeadlockDetectedError,
    OperatorInterventionError,
    PostgresConnectionError,
    PostgresError,
    SerializationError,
)
from asyncpg.exceptions._base import DataError as ArgumentDataError
from asyncpg.exceptions._base import InterfaceError as DriverInterfaceError
from asyncpg.exceptions._base import InternalClientError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

# The database cannot be reached (connection refused or lost): retry later.
UNAVAILABLE: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, OSError,
                                                 ConnectionError)
# Any error the database reported for a statement.
DatabaseError = DBAPIError
# Anything the database layer raises (a statement, the connection or the pool).
AnyDatabaseError = SQLAlchemyError
# What a statement sent through asyncpg itself raises (archive.index.driver), unwrapped: a
# statement error, or the connection failing (is_unavailable tells which).
DRIVER_ERRORS: tuple[type[BaseException], ...] = (PostgresError, DriverInterfaceError,
                                                  InternalClientError)
# Conflicts with a concurrent transaction: the same work may succeed when retried.
RETRYABLE: tuple[type[BaseException], ...] = (DeadlockDetectedError, SerializationError)


def causes(exc: BaseException) -> list[BaseException]:
    """`exc`, the driver error it wraps (`.orig`), and their causes, outermost first."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        cur = todo.pop(0)
        if cur is None or any(cur is s for s in seen):
            continue
        seen.append(cur)
        todo += [getattr(cur, "orig", None), cur.__cause__]
    return seen


def is_retryable(exc: BaseException) -> bool:
    """A deadlock or serialization failure, however deeply wrapped."""
    return any(isinstance(c, RETRYABLE) for c in causes(exc))


# A value the database cannot hold (SQLSTATE class 22, or an argument asyncpg cannot encode):
# the input's fault, so a 4xx / DICOM failure with a reason rather than an internal error.
BAD_VALUE: tuple[type[BaseException], ...] = (ServerDataError, ArgumentDataError, OverflowError)


def is_bad_value(exc: BaseException) -> bool:
    """The statement failed on a value (NUL in text, a number out of range, invalid JSON)."""
    return any(isinstance(c, BAD_VALUE) for c in causes(exc))


# PostgreSQL shutting down or restarting (class 57), a lost connection, a closed socket; and
# asyncpg's "cannot switch to state N; another operation is in progress" (InternalClientError),
# which bench/soak.py met only while PostgreSQL was down or restarting (a pooled connection left
# mid-operation by the outage) — answered 500 / 0x0110 / STOW 409 before.
GONE: tuple[type[BaseException], ...] = (*UNAVAILABLE, OperatorInterventionError,
                                         PostgresConnectionError, TimeoutError,
                                         InternalClientError)


def is_unavailable(exc: BaseException) -> bool:
    """The database is down, shutting down or unreachable: the request may succeed later
    (503 / 0xA700), unlike a statement error. A value error (BAD_VALUE) never counts."""
    found = causes(exc)
    if any(isinstance(c, BAD_VALUE) for c in found):
        return False
    return any(isinstance(c, (*GONE, DriverInterfaceError)) for c in found)
