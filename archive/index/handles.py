"""The database handles the layers above the index hold and pass back in.

Services, the query path and the doors receive an engine or a connection from the core and
hand it to `archive.index` / `archive.query.sql` functions; only those build and run SQL, so
only they import SQLAlchemy. These names let the rest type the handles without doing so.
"""

from __future__ import annotations

from typing import TypeAlias

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

Engine: TypeAlias = AsyncEngine  # the pool: `async with engine.begin() as conn`
Connection: TypeAlias = AsyncConnection  # one connection (inside a transaction or not)

__all__ = ["Connection", "Engine"]
