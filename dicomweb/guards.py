"""Request checks every route shares, run before any handler (issue 13: bad input is a 4xx).

NUL cannot be stored or matched by PostgreSQL and never belongs in a URL: in the path the
resource cannot exist (404), in the query string the request is malformed (400). A suffix
range of zero bytes (`Range: bytes=-0`) is unsatisfiable (RFC 9110 §14.1.2) → 416.
"""

from __future__ import annotations

import re

from aiohttp import web

from archive.errors import InvalidRequest, NotFound
from dicomweb.errors import Handler, error_response

EMPTY_SUFFIX = re.compile(r"^\s*bytes\s*=\s*-0*\s*$", re.IGNORECASE)


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if "\x00" in request.path:
        raise NotFound("no such resource (the path holds a NUL character)")
    if any("\x00" in k or "\x00" in v for k, v in request.rel_url.query.items()):
        raise InvalidRequest("query parameters must not contain NUL characters")
    if EMPTY_SUFFIX.match(request.headers.get("Range", "")):
        return error_response(416, "range not satisfiable: a suffix of zero bytes",
                              headers={"Content-Range": "bytes */*"})
    return await handler(request)


def has_unstorable_text(value: object) -> bool:
    """True if a decoded JSON value holds text PostgreSQL cannot store: NUL, or a lone UTF-16
    surrogate (`"\\ud800"` is valid JSON, but no UTF-8 encoding exists for it; found by
    Schemathesis as a 500 on every JSON POST of /commons)."""
    todo = [value]
    while todo:
        cur = todo.pop()
        if isinstance(cur, str):
            if "\x00" in cur or not _utf8(cur):
                return True
        elif isinstance(cur, dict):
            todo.extend(cur.keys())
            todo.extend(cur.values())
        elif isinstance(cur, list):
            todo.extend(cur)
    return False


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def has_nul(value: object) -> bool:
    """True if a decoded JSON value holds NUL in any string (key or value), however nested."""
    todo = [value]
    while todo:
        cur = todo.pop()
        if isinstance(cur, str) and "\x00" in cur:
            return True
        if isinstance(cur, dict):
            todo.extend(cur.keys())
            todo.extend(cur.values())
        elif isinstance(cur, list):
            todo.extend(cur)
    return False
