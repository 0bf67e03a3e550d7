"""CORS (Fetch standard) so that a browser viewer on another origin can use the archive directly.

Without it, OHIF or any web viewer served from a different host/port than the archive is
blocked by the browser ("blocked by CORS policy") and users resort to reverse proxies.
`--cors-origin` / ARCHIVE_CORS_ORIGIN turns it on: `*` for any origin, or a comma-separated
list of exact origins (`https://viewer.example.org,http://localhost:3000`). Off by default.

Two pieces:
- `cors_middleware` answers preflights (OPTIONS with Access-Control-Request-Method) for every
  route the app has, with the methods that route really allows.
- `add_cors_headers` runs on `on_response_prepare`, i.e. for EVERY response just before its
  headers go out: handler results, streamed multipart responses, mapped ArchiveErrors and
  aiohttp's own 404/405. So a browser can read the status and reason of a failure too,
  instead of an opaque "CORS error".
The viewer pages under /viewer/ are same-origin with the archive and get no CORS headers.

Credentials are bearer tokens only (issue 12): the archive sets no cookies and never sends
`Access-Control-Allow-Credentials`, so browsers attach no cookies or HTTP authentication to a
cross-site request and a page on another origin cannot act for a visitor; state-changing
requests need `Authorization: Bearer`, which only a script holding the token can send. The
methods a preflight allows are explicit: those of the matched route, within ALL_METHODS.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from archive.errors import ConfigError
from dicomweb.errors import error_response

# What OHIF and dicomweb-client send beyond the CORS-safelisted set: Accept with quoted
# multipart parameters, Authorization (bearer tokens), Content-Type (STOW-RS multipart).
ALLOW_HEADERS = ("Accept", "Authorization", "Content-Type")
# Response headers a script may read (Content-Type/-Length are safelisted; listed for old browsers).
EXPOSE_HEADERS = (
    "Content-Type", "Content-Length", "Content-Location", "Content-Disposition",
    "Warning", "ETag", "Last-Modified", "Location", "WWW-Authenticate",
)
ALL_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE")
MAX_AGE = "7200"  # seconds; Chromium caps preflight caching at 2 h
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 header field name

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """Which origins may call us: any (`*`) or an exact set (scheme://host[:port], lower case)."""

    any_origin: bool
    origins: frozenset[str]
    exempt_prefix: str | None = None  # paths served same-origin only (the hosted viewer)

    def allow(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for this request's Origin, or None (denied)."""
        if not origin:
            return None
        if self.any_origin:
            return "*"
        return origin if origin.lower().rstrip("/") in self.origins else None

    def applies(self, path: str) -> bool:
        if self.exempt_prefix is None:
            return True
        return not (path == self.exempt_prefix or path.startswith(self.exempt_prefix + "/"))


def parse_origins(setting: str) -> CorsPolicy:
    """`*` or a comma-separated list of origins; anything else is a configuration error."""
    items = [s.strip() for s in setting.split(",") if s.strip()]
    if not items:
        raise ConfigError("--cors-origin is empty; give * or a list of origins")
    if "*" in items:
        return CorsPolicy(any_origin=True, origins=frozenset())
    origins = set()
    for item in items:
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            raise ConfigError(
                f"bad --cors-origin entry {item!r}: expected * or scheme://host[:port] "
                "(an origin has no path)"
            )
        origins.add(f"{parts.scheme}://{parts.netloc}".lower())
    return CorsPolicy(any_origin=False, origins=frozenset(origins))


POLICY = web.AppKey("cors_policy", CorsPolicy)


def _allowed_methods(request: web.Request) -> list[str] | None:
    """Methods the matched resource allows; None when no route has this path (404)."""
    exc = request.match_info.http_exception
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return sorted(exc.allowed_methods)
    if exc is not None:
        return None
    return list(ALL_METHODS)  # an explicit OPTIONS / catch-all route matched


def _requested_headers(request: web.Request) -> list[str]:
    raw = request.headers.get("Access-Control-Request-Headers", "")
    names = [h.strip() for h in raw.split(",") if h.strip()]
    return [h for h in names if _TOKEN.match(h)]


def preflight(request: web.Request, policy: CorsPolicy) -> web.StreamResponse | None:
    """The answer to a CORS preflight, or None when this request is not one."""
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return None
    if "Origin" not in request.headers or not policy.applies(request.path):
        return None
    allow_origin = policy.allow(request.headers["Origin"])
    if allow_origin is None:
        return error_response(403, f"origin {request.headers['Origin']!r} is not in --cors-origin")
    methods = _allowed_methods(request)
    if methods is None:
        return error_response(404, f"no resource at {request.path}")
    headers = list(dict.fromkeys([*ALLOW_HEADERS, *_requested_headers(request)]))
    # on_response_prepare adds Allow-Origin/Vary/Expose to this response as to any other
    return web.Response(status=204, headers={
        "Access-Control-Allow-Methods": ", ".join(dict.fromkeys([*methods, "OPTIONS"])),
        "Access-Control-Allow-Headers": ", ".join(headers),
        "Access-Control-Max-Age": MAX_AGE,
    })


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    answer = preflight(request, request.app[POLICY])
    if answer is not None:
        return answer
    return await handler(request)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: CORS headers on every response (success or error)."""
    policy = request.app[POLICY]
    if not policy.applies(request.path):
        return
    if not policy.any_origin:
        response.headers.add("Vary", "Origin")  # the answer depends on the Origin header
    allow_origin = policy.allow(request.headers.get("Origin"))
    if allow_origin is None:
        return
    response.headers["Access-Control-Allow-Origin"] = allow_origin
    response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSE_HEADERS)
    # pages with Cross-Origin-Embedder-Policy: require-corp may embed our images (<img> thumbnails)
    response.headers.setdefault("Cross-Origin-Resource-Policy", "cross-origin")


def install(app: web.Application, setting: str | None, exempt_prefix: str | None = None) -> None:
    """Turn CORS on for `app` when `setting` (settings.cors_origin) is given."""
    if not setting:
        return
    policy = parse_origins(setting)
    app[POLICY] = CorsPolicy(policy.any_origin, policy.origins, exempt_prefix)
    app.middlewares.insert(0, cors_middleware)  # outermost: before errors and routing checks
    app.on_response_prepare.append(add_cors_headers)
