"""`archive serve`: a core from `archive.runtime.open_core`, with both doors in front of it
(the DICOMweb app and the DIMSE listener). With the CLI, the only place that imports the doors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from archive import allocator, memtrace, tls
from archive.commons import explore
from archive.config import Settings
from archive.console import announce
from archive.core import Core
from archive.runtime import open_core
from archive.workers import Workers
from dicomweb.app import create_app
from dicomweb.http_timeouts import TimedAppRunner
from dimse.listener import Listener
from dimse.tuning import tune_pynetdicom

log = logging.getLogger("archive.server")


@asynccontextmanager
async def running(settings: Settings, workers: Workers | None = None) -> AsyncIterator[Core]:
    """Open the core, start both doors; on exit stop accepting, let in-flight stores finish,
    close cleanly. `workers`: pools shared with other archives in this process (tests)."""
    async with open_core(settings, workers=workers, jobs=settings.run_jobs) as core:
        assert core.workers is not None
        core.workers.start()  # spawn now, not on the first store or conversion
        tune_pynetdicom()
        # TimedAppRunner adds the header-read and body-idle timeouts (dicomweb/http_timeouts.py);
        # keep-alive idle as aiohttp's run_app (75 s, not RequestHandler's 3630 s): it also bounds
        # a stalled request whose first bytes arrived with the previous one (pipelined)
        runner = TimedAppRunner(create_app(core), access_log=None, shutdown_timeout=30,
                                keepalive_timeout=75,
                                max_line_size=settings.http_max_header_bytes,
                                max_field_size=settings.http_max_header_bytes,
                                header_timeout=settings.http_header_read_timeout,
                                body_idle_timeout=settings.http_body_idle_timeout)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.http_port,
                           ssl_context=tls.http_context(settings))
        await site.start()
        listener = Listener(core, asyncio.get_running_loop())
        announce(settings)  # the start-up banner (archive/console.py)
        tls.warn_if_exposed(settings)
        warming = asyncio.create_task(explore.warm(core))  # the portal's facet table
        try:
            yield core
        finally:
            warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warming
            await _stop(core, runner, listener)


async def _stop(core: Core, runner: web.AppRunner, listener: Listener) -> None:
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
    listener.abort_all()  # the runtime then drains the group committer
    log.info("stopped")


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with memtrace.tracing(settings.memtrace_dir, settings.memtrace_every_seconds), \
            allocator.tuned(settings.malloc_arena_max, settings.malloc_trim_seconds), \
            running(settings):
        await stop.wait()
