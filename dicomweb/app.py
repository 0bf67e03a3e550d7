"""create_app(core): the aiohttp application for the DICOMweb door."""

from __future__ import annotations

import asyncio

from aiohttp import web

from archive.core import Core
from dicomweb import auth, cors, cut, viewer
from dicomweb.access_log import access_log_middleware
from dicomweb.audit_trail import audit_middleware
from dicomweb.errors import error_middleware
from dicomweb.guards import guard_middleware
from dicomweb.keys import CORE, STOW_SLOTS
from dicomweb.ops import metrics_middleware
from dicomweb.routes import all_routes, route_defs, viewer_routes


def create_app(core: Core) -> web.Application:
    # client_max_size bounds only whole-body reads; STOW streams and counts bytes itself.
    # metrics and access log and audit (see every final status) → errors mapped once →
    # hostile-input guards → authentication and the route's permission → handler
    app = web.Application(middlewares=[metrics_middleware, access_log_middleware, audit_middleware,
                                       error_middleware, guard_middleware, auth.auth_middleware],
                          client_max_size=16 * 1024**2)
    app[CORE] = core
    cut.install(app)  # the error middleware must know when a status has already gone out
    app[STOW_SLOTS] = asyncio.Semaphore(max(1, core.settings.max_stow_requests))
    routes = all_routes() + (viewer_routes() if core.settings.viewer_dir else [])
    auth.register(app, [(r.method, r.path, r.permission) for r in routes])
    app.add_routes(route_defs(routes))
    viewer.install(app, core.settings.viewer_dir)  # /viewer/ when --viewer-dir is given
    cors.install(app, core.settings.cors_origin, exempt_prefix=viewer.MOUNT)
    return app
