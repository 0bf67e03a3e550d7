"""Waiting for queued jobs, for callers that answer a person (a curator's mapping change)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from archive.index import task_queue
from archive.index.handles import Engine

POLL_SECONDS = 0.05
WAIT_SECONDS = 10.0  # how long a person waits for a re-apply before the answer says "queued"


async def wait_done(engine: Engine, job_ids: Sequence[int], seconds: float) -> bool:
    """True once every job has succeeded (the worker deletes it), False after `seconds`
    — the jobs then stay queued and run whenever a worker is up; nothing is lost."""
    pending = [int(j) for j in job_ids]
    deadline = time.monotonic() + seconds
    while pending:
        async with engine.connect() as conn:
            states = await task_queue.states(conn, pending)
        pending = [j for j in pending if j in states]
        if not pending:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL_SECONDS)
    return True


async def wait_queued(engine: Engine, task: str, seconds: float) -> bool:
    """Wait for every job of `task` queued so far (e.g. after a CLI change was committed)."""
    async with engine.connect() as conn:
        ids = await task_queue.queued(conn, task)
    return await wait_done(engine, ids, seconds)
