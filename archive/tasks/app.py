"""A node's procrastinate App: the connection to the queue and the tasks any worker may run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from procrastinate import App, JobContext, PsycopgConnector, RetryStrategy

from archive.index.engine import sync_url
from archive.tasks import jobs
from archive.tasks.names import REAPPLY_MAPPING, REFRESH_FACETS, RETRY_STALLED, SWEEP_ORPHANS

SWEEP_CRON = "*/15 * * * *"  # the journaled-orphan sweep, cluster-wide (one node runs each)
RETRY_STALLED_CRON = "* * * * * */5"  # every 5 s: a cheap indexed query
REFRESH_FACETS_CRON = "* * * * * */30"  # facet rows' catch-up: one EXISTS probe when none due
# Transient failures (PostgreSQL restarting, object store away) are retried with growing waits.
RETRY = RetryStrategy(max_attempts=20, linear_wait=5)

Wrap = Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]


def build_app(url: str, *, concurrency: int, stalled_seconds: float,
              around: Wrap | None = None) -> App:
    """An App on `url` (closed: open it with `open_async`) with every task registered.

    `around` wraps each job function (the runner counts running jobs with it)."""
    wrap: Wrap = around or (lambda fn: fn)
    connector = PsycopgConnector(conninfo=sync_url(url), min_size=1, max_size=concurrency + 3,
                                 timeout=10, kwargs={"application_name": "archive-jobs"})
    app = App(connector=connector)
    app.task(name=REAPPLY_MAPPING, pass_context=True, retry=RETRY)(wrap(jobs.reapply_mapping))
    sweep = app.task(name=SWEEP_ORPHANS, pass_context=True, retry=RETRY,
                     queueing_lock=SWEEP_ORPHANS)(wrap(jobs.sweep))
    app.periodic(cron=SWEEP_CRON)(sweep)
    refresh = app.task(name=REFRESH_FACETS, pass_context=True, retry=RETRY,
                       queueing_lock=REFRESH_FACETS)(wrap(jobs.refresh_facets))
    app.periodic(cron=REFRESH_FACETS_CRON)(refresh)

    async def retry_stalled(context: JobContext, timestamp: int) -> int:
        return await jobs.retry_stalled(app, stalled_seconds)

    stalled = app.task(name=RETRY_STALLED, pass_context=True,
                       queueing_lock=RETRY_STALLED)(wrap(retry_stalled))
    app.periodic(cron=RETRY_STALLED_CRON)(stalled)
    return app
