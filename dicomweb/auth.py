"""Who is asking over HTTP, and may they: one middleware for every request of the door.

`auth_middleware` authenticates each request once (RFC 6750 bearer: an OIDC JWT, an API key or
the legacy `--curator-token`; no header → the `--anonymous-role` identity; several headers or
an empty one → 400 `invalid_request`), keeps the Identity
on the request, then enforces the Permission the matched route declares in `dicomweb.routes`
(the one table). Bad credentials are a 401 `invalid_token` wherever they are sent, never a fall
back to anonymous. Handlers derive the core's `Caller` from the identity (`caller_from_request`);
what a permitted caller may *see* stays the core's visibility rule (404, never 403).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from archive.core import Caller
from archive.identity.errors import Unauthenticated
from archive.identity.roles import Identity, Permission, Role, allows, anonymous, require
from dicomweb.keys import CORE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
IDENTITY = "archive.identity"  # request key of the authenticated Identity
PERMISSIONS = web.AppKey("route_permissions", dict)  # (method, path template) → Permission
# Permissions that act in the caller's own name: an anonymous caller has no name to own with.
NEEDS_NAME = frozenset({Permission.CREATE_COHORT})


def register(app: web.Application, routes: list[tuple[str, str, Permission]]) -> None:
    """Record each route's declared permission for the middleware (GET also covers HEAD)."""
    table: dict[tuple[str, str], Permission] = app.setdefault(PERMISSIONS, {})  # type: ignore[arg-type]
    for method, path, permission in routes:
        # aiohttp's canonical form of `/viewer/{tail:.*}` is `/viewer/{tail}`
        table[(method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path))] = permission


def route_permission(request: web.Request) -> Permission | None:
    """The matched route's permission; None when no route matched (routing answers 404/405)."""
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return None
    method = "GET" if request.method == "HEAD" else request.method
    return request.app[PERMISSIONS].get((method, info.route.resource.canonical))


def identity_of(request: web.Request) -> Identity:
    """The request's identity (anonymous when the middleware did not run, e.g. a 404)."""
    found = request.get(IDENTITY)
    if isinstance(found, Identity):
        return found
    return anonymous(request.app[CORE].settings.anonymous_role, request.remote)


def enforce(identity: Identity, permission: Permission | None) -> None:
    """Unauthenticated (401) / Forbidden (403) unless `identity` has `permission`."""
    if permission is None:
        return
    if permission in NEEDS_NAME and identity.is_anonymous:
        raise Unauthenticated(f"{permission.label} needs credentials (Authorization: Bearer)")
    require(identity, permission)


def authorization_header(request: web.Request) -> str | None:
    """The one Authorization value; None when there is none. Several Authorization headers
    are one malformed credential (RFC 6750 §3.1 "repeats the same parameter": 400): a proxy
    may have checked one and we would act on another."""
    values = request.headers.getall("Authorization", [])
    if len(values) > 1:
        return ""  # what the authenticator calls malformed credentials
    return values[0] if values else None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    core = request.app[CORE]
    assert core.identity is not None, "the runtime starts the identity service"
    identity = await core.identity.authenticator.identify(
        authorization_header(request), request.remote)  # InvalidToken → 401 (or 400, see errors)
    request[IDENTITY] = identity
    permission = route_permission(request)
    if permission is None and request.match_info.http_exception is None:
        raise RuntimeError(f"route {request.path} declares no permission")  # a bug: 500
    enforce(identity, permission)
    return await handler(request)


def roles_of(identity: Identity) -> frozenset[str]:
    """The role labels an identity holds (each role includes the ones before it)."""
    if identity.role is None:
        return frozenset()
    return frozenset(r.label for r in Role if r <= identity.role)


def caller_from_request(request: web.Request) -> Caller:
    """The core's view of the caller: site, sequestered rights (curator+), roles, cohort."""
    identity = identity_of(request)
    return Caller(
        site=identity.site,
        may_see_sequestered=allows(identity, Permission.SEQUESTERED),
        cohort=request.match_info.get("cohort"),
        roles=roles_of(identity),
        actor=None if identity.is_anonymous else f"{identity.kind}:{identity.subject}",
    )
