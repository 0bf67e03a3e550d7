"""The task queue's SQL: defer a job inside the caller's transaction, and read job states.

A job deferred here is committed (or rolled back) with the change that needs it, so a node dying
right after a mapping change can never leave the change without its re-apply job — procrastinate's
own `defer_async` would use a second connection, outside the transaction. The statements call
procrastinate's versioned SQL API (`procrastinate_defer_jobs_v1`, created by migration 0014).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_DEFER = text(
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(CAST(:queue AS varchar), "
    "CAST(:task AS varchar), 0, CAST(:lock AS text), NULL::text, CAST(:args AS jsonb), "
    "NULL::timestamptz)::procrastinate_job_to_defer_v1]))"
)
_QUEUED = text("SELECT id FROM procrastinate_jobs WHERE task_name = :task "
               "AND status IN ('todo', 'doing')")
_STATES = text("SELECT id, status::text AS status FROM procrastinate_jobs WHERE id = ANY(:ids)")


async def defer(conn: AsyncConnection, task: str, args: dict[str, Any], *,
                lock: str | None = None, queue: str = "default") -> int:
    """Queue `task(**args)` in this transaction (workers are notified at commit); its job id."""
    return int((await conn.execute(_DEFER, {"queue": queue, "task": task, "lock": lock,
                                            "args": json.dumps(args)})).scalar_one())


async def states(conn: AsyncConnection, ids: Sequence[int]) -> dict[int, str]:
    """Status of each job still recorded (todo, doing, failed, ...); a succeeded job is deleted
    by the worker, so an id missing here has run to completion."""
    rows = (await conn.execute(_STATES, {"ids": list(ids)})).all()
    return {int(r.id): str(r.status) for r in rows}


async def queued(conn: AsyncConnection, task: str) -> list[int]:
    """Ids of the jobs of `task` waiting or running."""
    return [int(i) for i in (await conn.execute(_QUEUED, {"task": task})).scalars()]
