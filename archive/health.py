"""Readiness (issue 13): can this archive do its work right now? The database answers a query
and storage accepts a write. Checked on every /readyz call, each bounded in time."""

from __future__ import annotations

import asyncio

from archive.core import Core
from archive.index.engine import ping

Check = tuple[bool, str]


async def database_check(core: Core) -> Check:
    try:
        await asyncio.wait_for(ping(core.engine), 3.0)
    except Exception as exc:  # any failure means "not ready"; the detail says which
        return False, f"database unreachable: {type(exc).__name__}: {str(exc)[:200]}"
    return True, "ok"


def _storage_write(core: Core) -> None:
    spooled = core.blobs.spool_bytes(b"readyz")  # a real write in the storage's spool
    core.blobs.discard(spooled)


async def storage_check(core: Core) -> Check:
    try:
        await asyncio.wait_for(asyncio.to_thread(_storage_write, core), 5.0)
    except Exception as exc:
        return False, f"storage not writable: {type(exc).__name__}: {str(exc)[:200]}"
    return True, "ok"


async def readiness(core: Core) -> dict[str, Check]:
    db, storage = await asyncio.gather(database_check(core), storage_check(core))
    return {"database": db, "storage": storage}
