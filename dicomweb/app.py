"""create_app(core): the aiohttp application for the DICOMweb door."""

from __future__ import annotations

from aiohttp import web

from archive.core import Core
from dicomweb import auth, cors, viewer
from dicomweb.access_log import access_log_middleware
from dicomweb.audit_trail import audit_middleware
from dicomweb.errors import error_middleware
from dicomweb.keys import CORE
from dicomweb.routes import all_routes, route_defs, viewer_routes


def create_app(core: Core) -> web.Application:
    # client_max_size bounds only whole-body reads; STOW streams and counts bytes itself.
    # access log and audit (see every final status) → errors mapped once → authentication and
    # the route's permission → handler
    app = web.Application(middlewares=[access_log_middleware, audit_middleware, error_middleware,
                                       auth.auth_middleware], client_max_size=16 * 1024**2)
    app[CORE] = core
    routes = all_routes() + (viewer_routes() if core.settings.viewer_dir else [])
    auth.register(app, [(r.method, r.path, r.permission) for r in routes])
    app.add_routes(route_defs(routes))
    viewer.install(app, core.settings.viewer_dir)  # /viewer/ when --viewer-dir is given
    cors.install(app, core.settings.cors_origin, exempt_prefix=viewer.MOUNT)
    return app
