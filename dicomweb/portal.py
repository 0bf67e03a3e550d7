"""The research portal: Explore and Cohorts pages at /portal/, and the JSON they read.

A translation layer only. The pages are static files shipped inside the package
(`dicomweb/portal_static/`, no CDN, no build step) that call:

- `GET /commons/explore?<filters>[&facet=NAME...][&cohort=ID]`: totals and every facet at
  once (faceted-search counts, `archive.commons.explore`); `cohort` scopes it to a cohort's
  frozen studies (the cohort-vs-commons comparison);
- `GET /commons/explore/studies|cases?<filters>&sort=&order=asc|desc&offset=&limit=`: one page
  of the results table (`archive.commons.explore.page`);
- `GET /portal/config.json`: what the page needs to know about this server (viewer hosted,
  minimum cell count, service roots, the OpenID provider and public client of its sign-in) and
  about the caller (`you`: role, site, and which curator views to offer). The page shows
  controls by `you`, but every action it takes is a call to the same API as scripts use, which
  decides again (a reader who forges the page still gets 403).

Filters are QIDO-RS query pairs (DICOM keys and `commons.` keys), exactly what a cohort
freezes and what `/dicom-web/studies` answers, so the page's counts are QIDO's counts. With
`--min-cell-count N`, counts below N are "< N" and a table whose selection is smaller than N
is withheld (its rows would reveal the count).
"""

from __future__ import annotations

import json
import mimetypes
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from archive.commons import explore
from archive.errors import InvalidQuery
from archive.identity.roles import Permission, allows
from dicomweb.auth import caller_from_request, identity_of, roles_of
from dicomweb.keys import CORE
from dicomweb.urls import ROOT, base_url

MOUNT = "/portal"
STATIC = Path(str(resources.files("dicomweb") / "portal_static"))
RESERVED = frozenset({"facet", "cohort", "sort", "order", "offset", "limit", "tab"})
NO_CACHE = {"Cache-Control": "no-cache"}


def _json(data: Any, vary: str | None = None) -> web.Response:
    headers = {**NO_CACHE, "Vary": vary} if vary else NO_CACHE
    return web.Response(text=json.dumps(data, default=str), content_type="application/json",
                        headers=headers)


def filter_pairs(request: web.Request) -> list[tuple[str, str]]:
    """The query string's filter pairs (everything but the page's own parameters)."""
    return [(k, v) for k, v in request.rel_url.query.items() if k not in RESERVED]


def _int(request: web.Request, name: str, default: int) -> int:
    raw = request.rel_url.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidQuery(f"{name} must be an integer") from None


async def get_explore(request: web.Request) -> web.Response:
    q = request.rel_url.query
    return _json(await explore.explore(
        request.app[CORE], caller_from_request(request), filter_pairs(request),
        q.getall("facet", []) or None, q.get("cohort")))


def rows_handler(tab: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        q = request.rel_url.query
        order = q.get("order", "asc")
        if order not in ("asc", "desc"):
            raise InvalidQuery("order must be asc or desc")
        return _json(await explore.page(
            request.app[CORE], caller_from_request(request), tab, filter_pairs(request),
            q.get("sort"), order == "desc", _int(request, "offset", 0),
            _int(request, "limit", 25), q.get("cohort")))
    return handler


def oidc_client(request: web.Request) -> dict[str, str] | None:
    """The sign-in the page offers: the provider (--oidc-issuer) and the portal's public client;
    None unless both are configured. No secret: a browser cannot keep one (PKCE instead)."""
    settings = request.app[CORE].settings
    if not (settings.oidc_issuer and settings.portal_oidc_client_id):
        return None
    return {"issuer": settings.oidc_issuer, "client_id": settings.portal_oidc_client_id,
            "scope": settings.portal_oidc_scope,
            "redirect_uri": f"{base_url(request)}{MOUNT}/?view=signin",
            "post_logout_redirect_uri": f"{base_url(request)}{MOUNT}/"}


def you(request: web.Request) -> dict[str, Any]:
    """Who the page is talking for, as the archive sees the request's credentials."""
    identity = identity_of(request)
    return {"signed_in": not identity.is_anonymous, "kind": str(identity.kind),
            "subject": identity.subject,
            "role": identity.role.label if identity.role is not None else None,
            "roles": sorted(roles_of(identity)), "site": identity.site,
            "can": {"curate": allows(identity, Permission.MAPPING_WRITE),
                    "release": allows(identity, Permission.SEQUESTERED),
                    "audit": allows(identity, Permission.AUDIT_READ)}}


async def get_config(request: web.Request) -> web.Response:
    settings = request.app[CORE].settings
    return _json({"dicomweb_root": base_url(request) + ROOT, "base_url": base_url(request),
                  "viewer": settings.viewer_dir is not None,
                  "min_cell_count": settings.min_cell_count,
                  "facets": explore.facet_catalog(),
                  "oidc": oidc_client(request), "you": you(request)},
                 vary="Authorization")


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={
        **NO_CACHE, "Content-Type": "text/html; charset=utf-8"})


async def static(request: web.Request) -> web.StreamResponse:
    """A file of portal_static/ (never outside it)."""
    rel = request.match_info["tail"]
    path = (STATIC / rel).resolve()
    if any(p.startswith(".") for p in rel.split("/")) or STATIC.resolve() not in path.parents \
            or not path.is_file():
        raise web.HTTPNotFound(text=json.dumps({"error": f"no portal file {rel}", "status": 404}),
                               content_type="application/json")
    ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if path.suffix in (".js", ".mjs"):
        ctype = "text/javascript"
    return web.FileResponse(path, headers={**NO_CACHE, "Content-Type": ctype})


async def to_mount(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(MOUNT + "/" + (f"?{request.query_string}" if request.query_string else ""))


