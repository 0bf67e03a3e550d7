"""Ending a response whose status line has already gone out, when its body cannot be finished.

Once a 200 and its headers are on the wire there is no status left to report an error with:
a 503 written now lands inside the body (aiohttp writes the new status line and JSON into the
open stream and keeps the connection alive), and with a declared Content-Length the client
then waits for bytes that never come — the 60 s stall of the object-store outage test. The
only honest signal left is to close the connection before the body is complete: a client sees
a short body (Content-Length) or a missing last chunk (chunked) and reports an error at once.
"""

from __future__ import annotations

import logging

from aiohttp import web

from archive.errors import ArchiveError

log = logging.getLogger("dicomweb.cut")


PREPARED = web.RequestKey("response_prepared", bool)


async def _mark(request: web.Request, response: web.StreamResponse) -> None:
    request[PREPARED] = True


def install(app: web.Application) -> None:
    """Mark every request whose response is prepared (its status is then decided)."""
    app.on_response_prepare.append(_mark)


def started(request: web.Request) -> bool:
    """Whether a response was prepared for this request: its status line is on its way, so an
    error can no longer be answered with a status of its own. (aiohttp may still hold the
    headers in a buffer, but replacing them would reuse the writer's framing: not safe.)"""
    return request.get(PREPARED, False)


def cut(request: web.Request, what: str, exc: BaseException) -> None:
    """Close the connection of a response that cannot be completed, and say why in the log."""
    reason = exc.reason if isinstance(exc, ArchiveError) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ConnectionError):  # the client went away
        log.info("%s %s aborted: %s", what, request.path, reason)
    else:
        log.warning("%s %s aborted after the response started, connection closed: %s",
                    what, request.path, reason)
    if request.transport is not None:
        request.transport.close()
