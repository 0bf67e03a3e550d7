"""The resource a WADO-RS URL names: its UIDs, validated, and the instances it covers."""

from __future__ import annotations

from aiohttp import web

from archive.errors import InvalidRequest
from archive.instance import is_valid_uid
from archive.retrieve import Located, Scope, locate
from dicomweb.auth import caller_from_request
from dicomweb.keys import CORE


def scope_of(request: web.Request) -> Scope:
    """UIDs from the URL, validated so a malformed one is a 400 rather than a silent 404."""
    m = request.match_info
    scope = Scope(m.get("study"), m.get("series"), m.get("instance"))
    for name in ("study", "series", "instance"):
        value = getattr(scope, name)
        if value is not None and not is_valid_uid(value):
            raise InvalidRequest(f"invalid {name} UID in URL: {value[:80]!r}")
    return scope


async def located_for(request: web.Request, with_header: bool = False) -> list[Located]:
    """The instances (visible to the caller) under the URL's study/series/instance."""
    s = scope_of(request)
    return await locate(request.app[CORE], caller_from_request(request), s.study, s.series,
                        s.instance, with_header=with_header)
