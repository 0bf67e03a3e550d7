"""HTTP for commons curation (issue 16): dataset QC and release, releases, case overrides,
test sets, LOINC suggestions. Translation only: archive.commons.{releases,qc,testsets,suggest}
decide.

Who may call what (dicomweb/routes.py `CURATION` lists it): QC, release, overrides and test
sets are curator actions (the curator credential is required; with none configured nobody may);
the release list and LOINC suggestions are reads. Errors are typed and mapped in
dicomweb/errors.py, except a test set's shortfall, whose 409 body lists the unmet quotas.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from archive.commons import qc, releases, testsets
from archive.commons.suggest import parse_limit, service
from archive.curation.testsets import Shortfall
from archive.errors import InvalidRequest
from dicomweb.auth import caller_from_request
from dicomweb.guards import has_unstorable_text
from dicomweb.keys import CORE
from dicomweb.urls import base_url

MAX_DESCRIPTION = 1024


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(data, default=str),
                        content_type="application/json", headers=headers)


def _curator(request: web.Request) -> str:
    """The curator's name for the record; Forbidden (403) unless the caller is a curator."""
    releases.authorize_curator(caller_from_request(request))
    return request.headers.get("X-Archive-Curator", "curator")


async def _body(request: web.Request, required: bool = True) -> Any:
    raw = await request.read()
    if not raw.strip() and not required:
        return None
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from exc
    if has_unstorable_text(body):  # PostgreSQL cannot hold it: refuse here, not a 500 later
        raise InvalidRequest("body must not contain NUL characters or lone surrogates")
    return body


async def get_qc(request: web.Request) -> web.Response:
    _curator(request)
    return _json(await qc.dataset_qc(request.app[CORE], request.match_info["dataset"]))


async def post_release(request: web.Request) -> web.Response:
    curator = _curator(request)
    body = await _body(request, required=False)
    made = await releases.release(request.app[CORE], [request.match_info["dataset"]], body,
                                  curator)
    return _json(made, status=201,
                 headers={"Location": f"{base_url(request)}/commons/releases/{made['number']}"})


async def list_releases(request: web.Request) -> web.Response:
    return _json({"releases": await releases.list_releases(request.app[CORE])})


async def get_release(request: web.Request) -> web.Response:
    raw = request.match_info["number"]
    if not raw.isdigit() or len(raw) > 9:
        raise InvalidRequest(f"a release number is a positive integer, not {raw!r}")
    return _json(await releases.get_release(request.app[CORE], int(raw)))


async def post_partition(request: web.Request) -> web.Response:
    curator = _curator(request)
    return _json(await releases.override(request.app[CORE], request.match_info["case"],
                                         await _body(request), curator))


async def post_testset(request: web.Request) -> web.Response:
    _curator(request)
    core = request.app[CORE]
    try:
        made = await testsets.create(core, caller_from_request(request), await _body(request))
    except Shortfall as exc:
        return _json({"error": str(exc), "status": 409,
                      "shortfall": [g.as_dict() for g in exc.gaps]}, status=409)
    root = f"{base_url(request)}/commons/cohorts/{made['id']}"
    made["dicomweb_root"] = f"{root}/dicom-web"
    return _json(made, status=201, headers={"Location": root})


async def list_testsets(request: web.Request) -> web.Response:
    _curator(request)
    return _json({"testsets": await testsets.list_all(request.app[CORE])})


async def get_suggest(request: web.Request) -> web.Response:
    q = request.rel_url.query
    description = q.get("description")
    if not description or not description.strip():
        raise InvalidRequest("description is required, e.g. ?modality=CT&description=CT+CHEST")
    if len(description) > MAX_DESCRIPTION:
        raise InvalidRequest(f"description is limited to {MAX_DESCRIPTION} characters")
    core = request.app[CORE]
    found = await service(core).suggest(core, q.get("modality") or None, description,
                                        parse_limit(q.get("limit")))
    return _json({"modality": q.get("modality"), "description": description,
                  "suggestions": [s.as_dict() for s in found]})
