"""Operations endpoints (issue 13): liveness, readiness and Prometheus metrics.

/healthz answers as long as the process serves HTTP; /readyz only when the database answers a
query and storage is writable, so a load balancer stops sending work during an outage;
/metrics is the Prometheus exposition of the core's registry (archive/metrics.py).
"""

from __future__ import annotations

import json

from aiohttp import web

from archive.health import readiness
from archive.metrics import CONTENT_TYPE
from dicomweb.errors import Handler
from dicomweb.keys import CORE


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text='{"status": "ok"}', content_type="application/json")


async def readyz(request: web.Request) -> web.Response:
    checks = await readiness(request.app[CORE])
    ready = all(ok for ok, _ in checks.values())
    body = {"status": "ready" if ready else "unavailable",
            "checks": {name: {"ok": ok, "detail": detail} for name, (ok, detail) in checks.items()}}
    headers = {} if ready else {"Retry-After": "5"}
    return web.Response(status=200 if ready else 503, text=json.dumps(body),
                        content_type="application/json", headers=headers)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[CORE].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request by method, route template (not the raw path: bounded labels) and
    the status it was answered with."""
    m = request.app[CORE].metrics
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except Exception as exc:
        m.errors.labels("http", type(exc).__name__).inc()
        raise
    finally:
        m.http_requests.labels(request.method, route, str(status)).inc()
