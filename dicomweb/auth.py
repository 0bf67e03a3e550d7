"""request → Caller: who is asking over HTTP.

A request bearing `Authorization: Bearer <ARCHIVE_CURATOR_TOKEN>` may see sequestered
collections; everyone else may not (and is never told they exist).
"""

from __future__ import annotations

import hmac

from aiohttp import web

from archive.core import Caller
from dicomweb.keys import CORE


def is_curator(request: web.Request) -> bool:
    token = request.app[CORE].settings.curator_token
    header = request.headers.get("Authorization", "")
    if not token or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


def caller_from_request(request: web.Request) -> Caller:
    return Caller(
        may_see_sequestered=is_curator(request),
        cohort=request.match_info.get("cohort"),
        roles=frozenset({"curator"}) if is_curator(request) else frozenset(),
    )
