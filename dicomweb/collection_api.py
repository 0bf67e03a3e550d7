"""PUT /commons/studies/{study}/collection — translate the request; archive.curation decides."""

from __future__ import annotations

import json

from aiohttp import web

from archive.curation.collection import change_collection
from archive.errors import Forbidden, InvalidRequest
from dicomweb.auth import caller_from_request
from dicomweb.guards import has_unstorable_text
from dicomweb.keys import CORE


async def put_collection(request: web.Request) -> web.Response:
    """Body `{"collection": "sequestered"}`; answers the moved study UIDs (the whole case when
    sequestering). 403 below curator, 404 for a study the caller cannot see."""
    core, caller = request.app[CORE], caller_from_request(request)
    if not caller.may_change_any_site:  # before the body is read
        raise Forbidden("a collection change needs the curator role")
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from exc
    if has_unstorable_text(body):  # PostgreSQL cannot hold it: a 400, not a 500 later
        raise InvalidRequest("body must not contain NUL characters or lone surrogates")
    if not isinstance(body, dict) or "collection" not in body:
        raise InvalidRequest('body must be a JSON object {"collection": NAME}')
    result = await change_collection(core, caller, request.match_info["study"],
                                     body["collection"], request.remote)
    return web.json_response(result)
