"""The /commons HTTP API: clinical data, harmonization, sites, cohorts and cohort roots.

A translation layer only: it reads requests, calls archive.commons, and writes JSON/CSV.
Writes (clinical data, mappings) need the curator token when one is configured. Each cohort is
also a DICOMweb service root, `/commons/cohorts/{id}/dicom-web`, on which every read route
sees only the cohort's frozen studies (archive.index.visibility); it is read-only.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from archive.commons import clinical, cohorts, facets, harmonize, sites
from archive.commons.rows import RowErrors
from archive.commons.selection import check_pairs
from archive.commons.suggest import service as suggest_service
from archive.core import Caller
from archive.errors import InvalidRequest, NotFound
from dicomweb.auth import caller_from_request, is_curator
from dicomweb.keys import CORE
from dicomweb.media_types import negotiate, parse_media_type
from dicomweb.urls import base_url

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_CLINICAL_BYTES = 256 * 1024**2
COHORT_ROOT = "/commons/cohorts/{cohort}/dicom-web"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data, default=str),
                        content_type="application/json")


def _csv(rows: list[dict[str, Any]], columns: list[str], name: str) -> web.Response:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    return web.Response(text=out.getvalue(), content_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{name}"'})


def _writer(request: web.Request) -> Caller:
    """Writes need the curator token whenever one is configured."""
    caller = caller_from_request(request)
    if request.app[CORE].settings.curator_token and not is_curator(request):
        raise web.HTTPForbidden(text=json.dumps(
            {"error": "this change needs the curator token (Authorization: Bearer ...)",
             "status": 403}), content_type="application/json")
    return caller


def _format(request: web.Request) -> str:
    fmt = request.rel_url.query.get("format")
    if fmt in ("csv", "json"):
        return fmt
    if fmt is not None:
        raise InvalidRequest("format must be csv or json")
    chosen = negotiate(request.headers.get("Accept"), ["application/json", "text/csv"])
    return "csv" if chosen == "text/csv" else "json"


# ---- clinical data -----------------------------------------------------------------------------
async def post_cases(request: web.Request) -> web.Response:
    _writer(request)
    core = request.app[CORE]
    if request.content_length and request.content_length > MAX_CLINICAL_BYTES:
        raise InvalidRequest(f"clinical batches are limited to {MAX_CLINICAL_BYTES} bytes")
    ctype = parse_media_type(request.headers.get("Content-Type", "application/json")).type
    body = await request.read()
    try:
        batch = clinical.parse(body, ctype, request.rel_url.query.get("table"))
        async with core.engine.begin() as conn:
            counts = await clinical.write(conn, batch)
    except RowErrors as exc:
        return _json({"error": exc.reason, "status": 400,
                      "errors": [e.as_dict() for e in exc.errors]}, status=400)
    return _json({"imported": counts})


async def get_case(request: web.Request) -> web.Response:
    core, case_id = request.app[CORE], request.match_info["case"]
    async with core.engine.connect() as conn:
        return _json(await clinical_case_view(conn, caller_from_request(request), case_id))


async def clinical_case_view(conn: Any, caller: Caller, case_id: str) -> dict[str, Any]:
    from archive.commons.caseview import case_view

    return await case_view(conn, caller, case_id)


# ---- harmonization -----------------------------------------------------------------------------
async def get_descriptions(request: web.Request) -> web.Response:
    status = request.rel_url.query.get("status", "unmapped")
    async with request.app[CORE].engine.connect() as conn:
        rows = await harmonize.list_descriptions(conn, caller_from_request(request), status)
    if status == "unmapped":  # the curators' worklist gains the top suggestions per row
        rows = await suggest_service(request.app[CORE]).annotate(request.app[CORE], rows)
    return _json({"status": status, "descriptions": rows})


async def get_mappings(request: web.Request) -> web.Response:
    async with request.app[CORE].engine.connect() as conn:
        rows = await harmonize.list_mappings(conn, request.rel_url.query.get("status"))
        version = await harmonize.current_version(conn)
    return _json({"mapping_version": version, "mappings": rows})


async def post_mapping(request: web.Request) -> web.Response:
    _writer(request)
    body = await _json_body(request)
    items = body if isinstance(body, list) else [body]
    results = []
    async with request.app[CORE].engine.begin() as conn:
        for item in items:
            if not isinstance(item, dict):
                raise InvalidRequest("each mapping must be a JSON object")
            unknown = set(item) - {"modality", "description", "loinc_code", "status", "replace"}
            if unknown:
                raise InvalidRequest(f"unknown mapping fields: {', '.join(sorted(unknown))}")
            results.append(await harmonize.set_mapping(
                conn, str(item.get("modality") or ""), str(item.get("description") or ""),
                item.get("loinc_code"), str(item.get("status") or "approved"),
                request.headers.get("X-Archive-Curator", "api"), bool(item.get("replace"))))
    return _json({"mappings": results})


async def get_terms(request: web.Request) -> web.Response:
    async with request.app[CORE].engine.connect() as conn:
        return _json({"terms": await harmonize.terms(conn)})


# ---- sites, datasets, facets -------------------------------------------------------------------
async def get_sites(request: web.Request) -> web.Response:
    async with request.app[CORE].engine.connect() as conn:
        return _json({"sites": await sites.list_sites(conn, caller_from_request(request))})


async def get_datasets(request: web.Request) -> web.Response:
    async with request.app[CORE].engine.connect() as conn:
        return _json({"datasets": await sites.list_datasets(conn, caller_from_request(request))})


async def get_facets(request: web.Request) -> web.Response:
    query = request.rel_url.query
    names = query.getall("field", [])
    if not names:
        raise InvalidRequest("field is required, e.g. ?field=commons.case.sex")
    pairs = check_pairs((k, v) for k, v in query.items() if k != "field")
    core = request.app[CORE]
    async with core.engine.connect() as conn:
        out = [await facets.facet(conn, core.extensions, caller_from_request(request), n, pairs)
               for n in names]
    return _json({"facets": out})


# ---- cohorts -----------------------------------------------------------------------------------
async def post_cohort(request: web.Request) -> web.Response:
    core = request.app[CORE]
    cohort = await cohorts.create(core, caller_from_request(request), await _json_body(request))
    cohort["dicomweb_root"] = _cohort_root(request, cohort["id"])
    return web.Response(status=201, text=json.dumps(cohort, default=str),
                        content_type="application/json",
                        headers={"Location": f"{base_url(request)}/commons/cohorts/{cohort['id']}"})


async def list_cohorts(request: web.Request) -> web.Response:
    async with request.app[CORE].engine.connect() as conn:
        return _json({"cohorts": await cohorts.list_all(conn, caller_from_request(request))})


async def get_cohort(request: web.Request) -> web.Response:
    cid = request.match_info["cohort"]
    async with request.app[CORE].engine.connect() as conn:
        cohort = await cohorts.get(conn, caller_from_request(request), cid)
    return _json(cohort | {"dicomweb_root": _cohort_root(request, cohort["id"])})


def _cohort_root(request: web.Request, cid: str) -> str:
    return base_url(request) + COHORT_ROOT.replace("{cohort}", cid)


MANIFEST_COLUMNS = ["case_id", "study_uid", "series_uid", "modality", "series_number",
                    "instances", "size_bytes", "study_url", "series_url"]


async def get_manifest(request: web.Request) -> web.Response:
    fmt, cid = _format(request), request.match_info["cohort"]
    caller = caller_from_request(request)
    async with request.app[CORE].engine.connect() as conn:
        cohort = await cohorts.get(conn, caller, cid)
        rows = await cohorts.series_rows(conn, caller, cid, with_instances=fmt == "json")
        clinical_rows = await cohorts.clinical_rows(conn, caller, cid) if fmt == "json" else []
    root = _cohort_root(request, cohort["id"])
    files = f"{base_url(request)}/commons/cohorts/{cohort['id']}/files"
    for r in rows:
        r["study_url"] = f"{root}/studies/{r['study_uid']}"
        r["series_url"] = f"{r['study_url']}/series/{r['series_uid']}"
        for inst in r.pop("instance_list", None) or []:
            inst["url"] = f"{r['series_url']}/instances/{inst['sop_uid']}"
            inst["file_url"] = f"{files}/{inst['sop_uid']}"
            r.setdefault("instance_list", []).append(inst)
    if fmt == "csv":
        return _csv(rows, MANIFEST_COLUMNS, f"cohort-{cohort['id']}-manifest.csv")
    return _json({"cohort": cohort | {"dicomweb_root": root}, "series": rows,
                  "clinical": clinical_rows})


async def get_clinical(request: web.Request) -> web.Response:
    fmt, cid = _format(request), request.match_info["cohort"]
    async with request.app[CORE].engine.connect() as conn:
        rows = await cohorts.clinical_rows(conn, caller_from_request(request), cid)
    if fmt == "csv":
        return _csv(rows, list(cohorts.CLINICAL_COLUMNS), f"cohort-{cid}-clinical.csv")
    return _json({"cohort": cid, "clinical": rows})


async def get_file(request: web.Request) -> web.StreamResponse:
    """A member instance exactly as stored (application/dicom; Range requests resume)."""
    core, cid, sop = request.app[CORE], request.match_info["cohort"], request.match_info["sop"]
    async with core.engine.connect() as conn:
        key, _size, sha = await cohorts.member_file(conn, caller_from_request(request), cid, sop)
    path = core.blobs.path(key)
    if not path.exists():
        raise NotFound(f"the stored file of {sop} is missing")
    return web.FileResponse(path, headers={
        "Content-Type": "application/dicom", "ETag": f'"{sha}"',
        "Content-Disposition": f'attachment; filename="{sop}.dcm"'})


async def get_openapi(request: web.Request) -> web.Response:
    from dicomweb.commons_openapi import document

    return _json(document(base_url(request)))


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from exc


# ---- cohort DICOMweb roots ---------------------------------------------------------------------
def _cohort_guard(handler: Handler) -> Handler:
    """404 for an unknown (or unreadable) cohort before the DICOMweb handler runs."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        async with request.app[CORE].engine.connect() as conn:
            await cohorts.get(conn, caller_from_request(request), request.match_info["cohort"])
        return await handler(request)
    return guarded


async def _read_only(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMethodNotAllowed(
        request.method, ["GET", "HEAD"], text=json.dumps(
            {"error": "a cohort is frozen: its DICOMweb root is read-only", "status": 405}),
        content_type="application/json")


def cohort_root_routes() -> list[web.RouteDef]:
    from dicomweb.routes import dicomweb_routes  # lazily: routes imports this module

    out = []
    for rd in dicomweb_routes(COHORT_ROOT):
        handler = _cohort_guard(rd.handler) if rd.method in ("GET", "HEAD") else _read_only
        out.append(web.RouteDef(rd.method, rd.path, handler, rd.kwargs))
    return out


def routes(prefix: str) -> list[web.RouteDef]:
    p = prefix
    return [
        web.get(f"{p}/openapi.json", get_openapi),
        web.post(f"{p}/cases", post_cases),
        web.get(f"{p}/cases/{{case}}", get_case),
        web.get(f"{p}/descriptions", get_descriptions),
        web.get(f"{p}/mappings", get_mappings),
        web.post(f"{p}/mappings", post_mapping),
        web.get(f"{p}/loinc", get_terms),
        web.get(f"{p}/sites", get_sites),
        web.get(f"{p}/datasets", get_datasets),
        web.get(f"{p}/facets", get_facets),
        web.post(f"{p}/cohorts", post_cohort),
        web.get(f"{p}/cohorts", list_cohorts),
        web.get(f"{p}/cohorts/{{cohort}}", get_cohort),
        web.get(f"{p}/cohorts/{{cohort}}/manifest", get_manifest),
        web.get(f"{p}/cohorts/{{cohort}}/clinical", get_clinical),
        web.get(f"{p}/cohorts/{{cohort}}/files/{{sop}}", get_file),
        *cohort_root_routes(),
    ]

