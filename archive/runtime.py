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
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from archive import commons, group_commit
from archive.config import Settings
from archive.console import check_data_dir, ensure_database, note_embedded_start
from archive.core import Core
from archive.identity import service as identity_service
from archive.index.engine import create_engine, embedded_postgres, upgrade
from archive.sweep import ensure_paired, sweep_orphans
from archive.transcode import warm
from archive.workers import WorkerPool, Workers
from storage.filesystem import FileBlobStore

log = logging.getLogger("archive.runtime")


def default_workers() -> Workers:
    """Fresh pools (not yet started): header parsing for ingest, codecs for transcoding."""
    return Workers(parse=WorkerPool("parse"), transcode=WorkerPool("transcode", warm=warm))


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


@asynccontextmanager
async def open_core(
    settings: Settings, *, workers: Workers | None = None, pool_size: int = 10
) -> AsyncIterator[Core]:
    """Database (embedded or URL) → migrations → orphan sweep → Core with its extensions and
    worker pools; on exit: group committer drained, pools and engine closed.

    `workers`: pools shared with other runtimes of this process (the caller then owns and
    closes them); by default the runtime owns fresh ones. Pools start lazily on first use."""
    check_data_dir(settings)  # one clear line, not a traceback, when it is not writable
    own_workers = workers is None
    pools = workers if workers is not None else default_workers()
    async with database(settings) as url:
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url, pool_size=pool_size)
        blobs = FileBlobStore(settings.storage_dir)
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
            core.idle.set()
            try:
                yield core
            finally:
                await group_commit.close(core)
                assert core.identity is not None
                await core.identity.close()  # flushes the audit trail
        finally:
            if own_workers:
                pools.close()
            blobs.close()
            await engine.dispose()
            lock.close()
