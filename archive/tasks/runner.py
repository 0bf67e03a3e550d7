"""The job worker of a node: procrastinate's worker, supervised.

It runs inside `archive serve` (unless `--no-jobs` / ARCHIVE_RUN_JOBS=false) and is all that
`archive worker` runs, on the node's own `Core` (same settings, engine and blob store).

Supervised because the queue lives in PostgreSQL: when PostgreSQL restarts, procrastinate's
worker stops (its listener's connection is gone) — the runner starts it again, with growing
pauses, until the database is back; no node needs a restart.

Cycled because PostgreSQL's "smart" shutdown waits for every session to end, and a worker keeps
a LISTEN session open forever. So, like the index pool's idle release (archive.index.engine.
release_idle), every `db_idle_release_seconds` with no job running the worker stops, closes its
pool and starts again on fresh connections (jobs queued meanwhile are fetched at start; none is
missed). During a shutdown the fresh connection is refused, and the runner waits.

Quiet during an outage: an unreachable database is expected (a restart, a failover), so the
runner says so in one WARNING when the outage begins and one INFO line when the worker runs
again; procrastinate's own ERROR records with tracebacks for the same cause (its listener and
side tasks failing, each retry of the connection) are dropped by `OutageFilter` (kept, demoted
to DEBUG, when archive.tasks logs at DEBUG). Any other error still logs as procrastinate says.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import psycopg_pool

from archive.core import Core
from archive.index.db_errors import causes, is_unavailable
from archive.tasks.app import build_app

log = logging.getLogger("archive.tasks")
MAX_PAUSE = 30.0
RESTART_PAUSE = 0.2  # between two cycles of a healthy worker


# psycopg (procrastinate's driver) when the database is down, restarting or unreachable
PSYCOPG_GONE: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg.InterfaceError,
                                                 psycopg_pool.PoolTimeout)


def is_outage(exc: BaseException) -> bool:
    """The database is unreachable (for procrastinate's psycopg or the core's asyncpg)."""
    return is_unavailable(exc) or any(isinstance(c, PSYCOPG_GONE) for c in causes(exc))


class OutageFilter(logging.Filter):
    """Drops (or, at DEBUG, demotes) procrastinate's records about a database outage: its
    listener, side tasks and deferrer each log an ERROR with a traceback when PostgreSQL goes
    away; the runner reports the outage once instead (`on_outage`, called with each such
    error). `seen` keeps the last one: when procrastinate stops its worker over it (without
    raising), the runner names it as the cause."""

    def __init__(self, on_outage: Callable[[BaseException], None] | None = None) -> None:
        super().__init__()
        self.seen: BaseException | None = None
        self.on_outage = on_outage

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or record.levelno < logging.WARNING or not is_outage(exc):
            return True
        self.seen = exc
        if self.on_outage is not None:
            self.on_outage(exc)
        if not log.isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def _reason(exc: BaseException) -> str:
    return exc.__class__.__name__ + (f": {exc}" if str(exc) else "")


class WorkerStopped(RuntimeError):
    """procrastinate stopped its worker by itself (a side task failed); the cause, when known,
    is the outage error it logged."""


class JobRunner:
    """Runs this node's worker until cancelled; `busy` counts jobs running right now."""

    def __init__(self, core: Core, url: str, quiet: OutageFilter | None = None) -> None:
        self.core, self.url = core, url
        self.quiet = quiet or OutageFilter()
        self.quiet.on_outage = self._outage
        self.busy = 0
        self.cycles = 0
        s = core.settings
        self.stalled = s.job_stalled_seconds
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.down_since: float | None = None  # monotonic time the current outage began

    def _outage(self, exc: BaseException) -> None:
        """One WARNING per outage, from whichever notices it first: procrastinate's records
        (a short outage the next worker start rides out raises nothing) or a failed start."""
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("job worker paused: the database is unreachable (%s); retrying until "
                        "it is back", _reason(exc))

    def _failed(self, exc: Exception, pause: float) -> None:
        """A worker start or life failed; an outage already reported goes to DEBUG."""
        if not is_outage(exc):
            log.warning("job worker stopped (%s); starting again in %.0f s", _reason(exc), pause)
        elif self.down_since is None:
            self._outage(exc)
        else:
            log.debug("job worker: database still unreachable (%s); next try in %.0f s",
                      _reason(exc), pause)

    def _running(self) -> None:
        """A worker started: if an outage was reported, say that it is over."""
        if self.down_since is not None:
            log.info("job worker running again after a database outage of %.0f s",
                     time.monotonic() - self.down_since)
            self.down_since = None

    def _around(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(fn)
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.busy += 1
            try:
                return await fn(*args, **kwargs)
            finally:
                self.busy -= 1
        return counted

    async def run(self) -> None:
        pause = 1.0
        while True:
            try:
                healthy = await self._cycle()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # PostgreSQL away, pool timeout, …
                self._failed(exc, pause)
                healthy = False
            if healthy:
                pause = 1.0
                await asyncio.sleep(RESTART_PAUSE)
            else:
                await asyncio.sleep(pause)
                pause = min(pause * 2, MAX_PAUSE)

    async def _cycle(self) -> bool:
        """One worker life; True when it ended because it was idle long enough (a release)."""
        s = self.core.settings
        app = build_app(self.url, concurrency=s.job_concurrency, stalled_seconds=self.stalled,
                        around=self._around)
        try:
            await app.open_async()  # a cancel during the pool's opening still closes it below
            self.cycles += 1
            self._running()
            self.quiet.seen = None  # an outage logged from now on is this worker's
            worker = asyncio.create_task(app.run_worker_async(
                name=self.name, concurrency=s.job_concurrency, install_signal_handlers=False,
                additional_context={"core": self.core}, delete_jobs="successful",
                update_heartbeat_interval=max(self.stalled / 3, 0.5),
                stalled_worker_timeout=self.stalled, listen_notify=True,
                fetch_job_polling_interval=5.0))
            worker.add_done_callback(_retrieve)  # also when we are cancelled before it ends
            try:
                return await self._until_idle(worker, s.db_idle_release_seconds)
            finally:
                if not worker.done():
                    worker.cancel()  # graceful: running jobs finish first
                await asyncio.wait({worker})  # never raises: what stopped it is raised above
        finally:
            with contextlib.suppress(Exception):
                await app.close_async()

    async def _until_idle(self, worker: asyncio.Task[None], release: float) -> bool:
        started = time.monotonic()
        while True:
            await asyncio.wait({worker}, timeout=release if release > 0 else None)
            if worker.done():
                worker.result()  # raises what stopped it
                cause, self.quiet.seen = self.quiet.seen, None
                raise WorkerStopped("the worker stopped (its database connection failed)") \
                    from cause
            if self.busy == 0 and time.monotonic() - started >= release:
                return True


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a finished worker's exception as seen: the runner raises and logs it when it
    matters; at shutdown it does not, and asyncio would print a stray traceback."""
    if not task.cancelled():
        task.exception()


@contextlib.asynccontextmanager
async def running_jobs(core: Core, url: str) -> Any:
    """Run this node's job worker for the duration of the block."""
    if not log.isEnabledFor(logging.DEBUG):  # procrastinate says "Starting worker" each cycle
        logging.getLogger("procrastinate").setLevel(logging.WARNING)
        # psycopg's pool warns at each failed connection attempt; the runner says it once
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    quiet = OutageFilter()
    runner = JobRunner(core, url, quiet)
    noisy = [logging.getLogger(name) for name in (
        "procrastinate.worker", f"procrastinate.worker.{runner.name}", "procrastinate.utils",
        "procrastinate.periodic", "procrastinate.manager", "procrastinate.psycopg_connector")]
    for logger in noisy:  # a logger's filters see only its own records, not its children's
        logger.addFilter(quiet)
    task = asyncio.create_task(runner.run(), name="job-runner")
    # debug: `archive serve` starts quietly with its banner first (tests/clients/test_console.py);
    # `archive worker` says "worker ready" itself
    log.debug("job worker started", extra={"worker": runner.name,
                                           "concurrency": core.settings.job_concurrency})
    try:
        yield runner
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for logger in noisy:
            logger.removeFilter(quiet)
