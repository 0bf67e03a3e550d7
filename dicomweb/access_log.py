"""One access-log line per HTTP request on logger `archive.access` (issue 12.5).

Address, identity, method, path, status, bytes and duration: enough to answer "who called what
from where" beside the audit trail (which records what was done to which study). The outermost
middleware but CORS, so refusals (401/403/404) and aiohttp's own 404/405 are logged too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from dicomweb.auth import IDENTITY

log = logging.getLogger("archive.access")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def who(request: web.Request) -> str:
    identity = request.get(IDENTITY)
    if identity is None:
        return "-"
    return f"{identity.subject}({identity.role_label})"


@web.middleware
async def access_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    status, size = 500, 0
    try:
        response = await handler(request)
        status = response.status
        size = response.body_length if response.prepared else (response.content_length or 0)
        return response
    except web.HTTPException as exc:
        status, size = exc.status, len(exc.body or b"") if isinstance(exc.body, bytes) else 0
        raise
    finally:
        if log.isEnabledFor(logging.INFO):
            ms = (time.perf_counter() - start) * 1000
            log.info("%s %s %s %s %d %d %.1fms", request.remote, who(request), request.method,
                     request.rel_url.path, status, size, ms,
                     extra={"peer": request.remote, "identity": who(request),
                            "method": request.method, "path": request.rel_url.path,
                            "status": status, "bytes": size, "duration_ms": round(ms, 1)})
