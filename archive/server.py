"""Composition root: Settings → database, blob store, Core → DICOMweb app + DIMSE listener.

The only core module allowed to import the doors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from archive import commons, group_commit
from archive.config import Settings
from archive.console import announce, check_data_dir, ensure_database, note_embedded_start
from archive.core import Core
from archive.index.engine import create_engine, embedded_postgres, upgrade
from archive.ingest import start_parse_workers
from archive.sweep import sweep_orphans
from archive.transcode import start_transcode_workers
from storage.filesystem import FileBlobStore

log = logging.getLogger("archive.server")


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[str]:
    """The configured database URL, or an embedded PostgreSQL started for the server's lifetime."""
    check_data_dir(settings)  # one clear line, not a traceback, when it is not writable
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


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Core]:
    """Start everything; on exit stop accepting, let in-flight stores finish, close cleanly."""
    from dicomweb.app import create_app
    from dimse.listener import Listener

    async with database(settings) as url:
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)
        blobs = FileBlobStore(settings.storage_dir)
        await sweep_orphans(engine, blobs)
        core = Core(settings=settings, engine=engine, blobs=blobs)
        commons.register(core)
        core.idle.set()
        start_parse_workers()
        start_transcode_workers()
        runner = web.AppRunner(create_app(core), access_log=None, shutdown_timeout=30)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.http_port)
        await site.start()
        listener = Listener(core, asyncio.get_running_loop())
        announce(settings)  # the start-up banner (archive/console.py)
        try:
            yield core
        finally:
            await _stop(core, runner, listener)
            await engine.dispose()


async def _stop(core: Core, runner: web.AppRunner, listener: object) -> None:
    from dimse.listener import Listener

    assert isinstance(listener, Listener)
    listener.stop_accepting()
    for site in list(runner.sites):
        await site.stop()  # no new connections
    # aiohttp's own graceful shutdown stops reading request bodies, which would cut off
    # in-flight uploads; so drain requests first (up to 60 s), then shut the runner down.
    for _ in range(600):
        if core.requests_in_flight == 0:
            break
        await asyncio.sleep(0.1)
    await runner.cleanup()
    for _ in range(300):  # associations finish their current stores (up to 30 s)
        if not listener.ae.active_associations:
            break
        await asyncio.sleep(0.1)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(core.idle.wait(), 30)
    await group_commit.close(core)
    listener.abort_all()
    log.info("stopped")


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings):
        await stop.wait()
