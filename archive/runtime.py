"""The one composition root of the core: open a `Core` from `Settings`, and close it.

`archive serve`, `archive import`, `archive db upgrade` and the commons commands all start
through `open_core`, so a database, its migrations, the orphan sweep, the worker pools and the
group committer are set up (and torn down) the same way whichever door is in front.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from archive import commons, group_commit
from archive.config import Settings
from archive.console import check_data_dir, ensure_database, note_embedded_start
from archive.core import Core
from archive.errors import ConfigError
from archive.identity import service as identity_service
from archive.index.engine import create_engine, embedded_postgres, release_idle, upgrade
from archive.sweep import ensure_paired, sweep_orphans
from archive.tasks.runner import running_jobs
from archive.transcode import warm
from archive.workers import WorkerPool, Workers, warm_parse
from storage.base import BlobStore
from storage.factory import open_store

log = logging.getLogger("archive.runtime")


def default_workers() -> Workers:
    """Fresh pools (not yet started): header parsing for ingest, codecs for transcoding."""
    return Workers(parse=WorkerPool("parse", warm=warm_parse),
                   transcode=WorkerPool("transcode", warm=warm))


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[str]:
    """The configured database URL, or an embedded PostgreSQL started for the runtime's life."""
    if settings.database_url:
        await ensure_database(settings.database_url)  # created if missing, or says how
        yield settings.database_url
        return
    note_embedded_start(settings)
    stack = contextlib.ExitStack()
    url = await asyncio.to_thread(stack.enter_context, embedded_postgres(settings.pg_dir))
    try:
        yield url
    finally:
        await asyncio.to_thread(stack.close)


class DataDirLock:
    """A lock file in the data directory, held shared for the runtime's life.

    `archive import` may run beside a server on the same data directory: an orphan sweep then
    would delete the server's spooled and not-yet-indexed files. So a runtime sweeps only when
    it can take the lock exclusively (no other runtime uses the directory), then shares it."""

    def __init__(self, data_dir: Path) -> None:
        self._fp = (data_dir / ".archive.lock").open("a+b")

    def try_exclusive(self) -> bool:
        try:
            fcntl.flock(self._fp, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def share(self) -> None:
        fcntl.flock(self._fp, fcntl.LOCK_SH)  # waits while another runtime sweeps

    def close(self) -> None:
        self._fp.close()  # releases the lock


def open_blobs(settings: Settings) -> BlobStore:
    """The blob store `settings.storage` names (local files by default; spool always local)."""
    try:
        return open_store(settings.storage, settings.storage_dir, s3_endpoint=settings.s3_endpoint,
                          s3_region=settings.s3_region, s3_path_style=settings.s3_path_style,
                          s3_read_timeout=settings.s3_read_timeout)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


@asynccontextmanager
async def open_core(
    settings: Settings, *, workers: Workers | None = None, pool_size: int = 10,
    jobs: bool = False,
) -> AsyncIterator[Core]:
    """Database (embedded or URL) → migrations → orphan sweep → Core with its extensions and
    worker pools; on exit: group committer drained, pools and engine closed.

    `workers`: pools shared with other runtimes of this process (the caller then owns and
    closes them); by default the runtime owns fresh ones. Pools start lazily on first use.
    `jobs`: also run this node's task-queue worker (archive.tasks) on the core, stopped first
    on exit (`archive serve` unless --no-jobs; `archive worker`)."""
    check_data_dir(settings)  # one clear line, not a traceback, when it is not writable
    own_workers = workers is None
    pools = workers if workers is not None else default_workers()
    async with database(settings) as url:
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url, pool_size=pool_size)
        blobs = open_blobs(settings)
        lock = DataDirLock(settings.data_dir)
        try:
            if lock.try_exclusive():
                await sweep_orphans(engine, blobs)  # checks the pairing first
            else:  # another runtime uses the directory (and swept it): only check the pairing
                await ensure_paired(engine, blobs)
            lock.share()
            core = Core(settings=settings, engine=engine, blobs=blobs, workers=pools,
                        identity=identity_service.start(settings, engine))
            commons.register(core)
            _register_gauges(core)
            core.idle.set()
            releaser = asyncio.create_task(release_idle(  # lets a PostgreSQL shutdown finish
                engine, settings.db_idle_release_seconds,
                lambda: group_commit.release_if_idle(core)))
            try:
                if jobs:
                    async with running_jobs(core, url):
                        yield core
                else:
                    yield core
            finally:
                releaser.cancel()
                await group_commit.close(core)
                assert core.identity is not None
                await core.identity.close()  # flushes the audit trail
        finally:
            if own_workers:
                pools.close()
            blobs.close()
            await engine.dispose()
            lock.close()


async def run_worker(settings: Settings) -> None:
    """`archive worker`: a node that only runs jobs (no HTTP, no DIMSE) until SIGTERM/SIGINT,
    on the same settings and composition root as `archive serve`."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with open_core(settings, pool_size=settings.job_concurrency + 2, jobs=True):
        log.info("worker ready", extra={"concurrency": settings.job_concurrency})
        await stop.wait()


def _register_gauges(core: Core) -> None:
    """Pool usage and queue depths, read when /metrics is scraped."""
    def pool() -> Any:
        return core.engine.pool  # replaced by each idle release (dispose): read it afresh

    m = core.metrics
    m.gauge("archive_db_pool_checked_out", "database connections in use",
            lambda: pool().checkedout())
    m.gauge("archive_db_pool_size", "database connections open (in use or idle)",
            lambda: pool().checkedout() + pool().checkedin())
    m.gauge("archive_ingest_queue_depth", "instances waiting for the group commit",
            lambda: len(getattr(core.committer, "_pending", ())))
    m.gauge("archive_ingests_in_flight", "ingests running (any door)", lambda: core.in_flight)
    m.gauge("archive_http_requests_in_flight", "HTTP requests being handled",
            lambda: core.requests_in_flight)
