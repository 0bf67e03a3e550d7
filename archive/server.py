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
from archive.core import Core
from archive.errors import ConfigError
from archive.index.engine import create_engine, embedded_postgres, upgrade
from archive.ingest import start_parse_workers
from archive.sweep import sweep_orphans
from archive.transcode import start_transcode_workers
from storage.base import BlobStore
from storage.factory import open_store

log = logging.getLogger("archive.server")


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[str]:
    """The configured database URL, or an embedded PostgreSQL started for the server's lifetime."""
    if settings.database_url:
        yield settings.database_url
        return
    stack = contextlib.ExitStack()
    url = await asyncio.to_thread(stack.enter_context, embedded_postgres(settings.pg_dir))
    try:
        yield url
    finally:
        await asyncio.to_thread(stack.close)


def open_blobs(settings: Settings) -> BlobStore:
    """The blob store `settings.storage` names (local files by default; spool always local)."""
    try:
        return open_store(settings.storage, settings.storage_dir, s3_endpoint=settings.s3_endpoint,
                          s3_region=settings.s3_region, s3_path_style=settings.s3_path_style)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Core]:
    """Start everything; on exit stop accepting, let in-flight stores finish, close cleanly."""
    from dicomweb.app import create_app
    from dimse.listener import Listener

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with database(settings) as url:
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)
        blobs = open_blobs(settings)
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
        log.info("serving", extra={"http": f"http://{settings.host}:{settings.http_port}/dicom-web",
                                   "dimse_port": settings.dimse_port})
        try:
            yield core
        finally:
            await _stop(core, runner, listener)
            blobs.close()
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
