"""create_app(core): the aiohttp application for the DICOMweb door."""

from __future__ import annotations

from aiohttp import web

from archive.core import Core
from dicomweb import cors, viewer
from dicomweb.errors import error_middleware
from dicomweb.keys import CORE
from dicomweb.routes import all_routes, route_defs


def create_app(core: Core) -> web.Application:
    # client_max_size bounds only whole-body reads; STOW streams and counts bytes itself.
    app = web.Application(middlewares=[error_middleware], client_max_size=16 * 1024**2)
    app[CORE] = core
    app.add_routes(route_defs(all_routes()))
    viewer.install(app, core.settings.viewer_dir)  # /viewer/ when --viewer-dir is given
    cors.install(app, core.settings.cors_origin, exempt_prefix=viewer.MOUNT)
    return app
