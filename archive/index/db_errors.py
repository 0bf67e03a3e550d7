"""Database errors, recognised by exception class (not message text), for the core to map.

SQLAlchemy wraps the driver's exception: `DBAPIError.orig` is SQLAlchemy's asyncpg adapter
error, whose `__cause__` is asyncpg's own exception (e.g. DeadlockDetectedError).
"""

from __future__ import annotations

from asyncpg.exceptions import DeadlockDetectedError, SerializationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

# The database cannot be reached (connection refused or lost): retry later.
UNAVAILABLE: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, OSError,
                                                 ConnectionError)
# Any error the database reported for a statement.
DatabaseError = DBAPIError
# Anything the database layer raises (a statement, the connection or the pool).
AnyDatabaseError = SQLAlchemyError
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
