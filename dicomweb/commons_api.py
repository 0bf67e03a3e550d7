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
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from archive.blobs import BlobRef
from archive.commons import cohorts, service
from archive.commons.explore import suppress_facet
from archive.errors import ArchiveError, InvalidRequest, NotAllowed, NotFound, UnsupportedMediaType
from dicomweb.auth import caller_from_request
from dicomweb.cut import cut
from dicomweb.guards import has_unstorable_text
from dicomweb.keys import CORE
from dicomweb.media_types import negotiate, parse_media_type
from dicomweb.urls import base_url

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_CLINICAL_BYTES = 256 * 1024**2
COHORT_ROOT = "/commons/cohorts/{cohort}/dicom-web"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data, default=str),
                        content_type="application/json")


def _csv(rows: list[dict[str, Any]], columns: Sequence[str], name: str) -> web.Response:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    return web.Response(text=out.getvalue(), content_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{name}"'})


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
    core, caller = request.app[CORE], caller_from_request(request)
    service.authorize_write(core, caller)  # before the body is read
    if request.content_length and request.content_length > MAX_CLINICAL_BYTES:
        raise InvalidRequest(f"clinical batches are limited to {MAX_CLINICAL_BYTES} bytes")
    ctype = parse_media_type(request.headers.get("Content-Type", "application/json")).type
    counts = await service.import_clinical(core, caller, await request.read(), ctype,
                                           request.rel_url.query.get("table"))
    return _json({"imported": counts})


async def get_case(request: web.Request) -> web.Response:
    return _json(await service.case(request.app[CORE], caller_from_request(request),
                                    request.match_info["case"]))


# ---- harmonization -----------------------------------------------------------------------------
async def get_descriptions(request: web.Request) -> web.Response:
    status = request.rel_url.query.get("status", "unmapped")
    rows = await service.descriptions(request.app[CORE], caller_from_request(request), status)
    return _json({"status": status, "descriptions": rows})


async def get_mappings(request: web.Request) -> web.Response:
    found = await service.mappings(request.app[CORE], request.rel_url.query.get("status"))
    return _json({"mapping_version": found.version, "mappings": found.mappings})


async def post_mapping(request: web.Request) -> web.Response:
    core, caller = request.app[CORE], caller_from_request(request)
    service.authorize_write(core, caller)  # before the body is read
    body = await _json_body(request)
    items = body if isinstance(body, list) else [body]
    results = await service.set_mappings(core, caller, items,
                                         request.headers.get("X-Archive-Curator", "api"))
    return _json({"mappings": results})


async def get_terms(request: web.Request) -> web.Response:
    return _json({"terms": await service.terms(request.app[CORE])})


# ---- sites, datasets, facets -------------------------------------------------------------------
async def get_sites(request: web.Request) -> web.Response:
    return _json({"sites": await service.list_sites(request.app[CORE],
                                                    caller_from_request(request))})


async def get_datasets(request: web.Request) -> web.Response:
    return _json({"datasets": await service.list_datasets(request.app[CORE],
                                                          caller_from_request(request))})


async def get_facets(request: web.Request) -> web.Response:
    query = request.rel_url.query
    out = await service.facet_counts(
        request.app[CORE], caller_from_request(request), query.getall("field", []),
        [(k, v) for k, v in query.items() if k != "field"])
    out = [suppress_facet(f, request.app[CORE].settings.min_cell_count) for f in out]
    return _json({"facets": out})


# ---- cohorts -----------------------------------------------------------------------------------
def require_json(request: web.Request) -> None:
    """A JSON body only: a cross-site form or `text/plain` POST (which a browser sends without
    a preflight) is refused with 415 before anything is read."""
    ctype = parse_media_type(request.headers.get("Content-Type", "")).type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaType(f"send the cohort as application/json, not {ctype or 'nothing'!r}")


async def post_cohort(request: web.Request) -> web.Response:
    core = request.app[CORE]
    require_json(request)
    cohort = await cohorts.create(core, caller_from_request(request), await _json_body(request))
    cohort["dicomweb_root"] = _cohort_root(request, cohort["id"])
    return web.Response(status=201, text=json.dumps(cohort, default=str),
                        content_type="application/json",
                        headers={"Location": f"{base_url(request)}/commons/cohorts/{cohort['id']}"})


async def list_cohorts(request: web.Request) -> web.Response:
    return _json({"cohorts": await cohorts.list_all(request.app[CORE],
                                                    caller_from_request(request))})


async def get_cohort(request: web.Request) -> web.Response:
    cohort = await cohorts.get(request.app[CORE], caller_from_request(request),
                               request.match_info["cohort"])
    return _json(cohort | {"dicomweb_root": _cohort_root(request, cohort["id"])})


async def publish_cohort(request: web.Request) -> web.Response:
    """Publish a cohort: every reader may then use its root and manifest (curators only)."""
    cohort = await cohorts.publish(request.app[CORE], caller_from_request(request),
                                   request.match_info["cohort"])
    return _json(cohort | {"dicomweb_root": _cohort_root(request, cohort["id"])})


def _cohort_root(request: web.Request, cid: str) -> str:
    return base_url(request) + COHORT_ROOT.replace("{cohort}", cid)


MANIFEST_COLUMNS = ["case_id", "study_uid", "series_uid", "modality", "series_number",
                    "instances", "size_bytes", "study_url", "series_url"]


async def get_manifest(request: web.Request) -> web.Response:
    fmt, cid = _format(request), request.match_info["cohort"]
    found = await cohorts.manifest(request.app[CORE], caller_from_request(request), cid,
                                   detailed=fmt == "json")
    cohort, rows = found.cohort, found.series
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
                  "clinical": found.clinical})


async def get_clinical(request: web.Request) -> web.Response:
    fmt, cid = _format(request), request.match_info["cohort"]
    rows = await cohorts.clinical_rows(request.app[CORE], caller_from_request(request), cid)
    if fmt == "csv":
        return _csv(rows, cohorts.CLINICAL_COLUMNS, f"cohort-{cid}-clinical.csv")
    return _json({"cohort": cid, "clinical": rows})


async def get_file(request: web.Request) -> web.StreamResponse:
    """A member instance exactly as stored (application/dicom; Range requests resume)."""
    sop = request.match_info["sop"]
    found = await cohorts.member_file(request.app[CORE], caller_from_request(request),
                                      request.match_info["cohort"], sop)
    ref = found.blob
    headers = {"Content-Type": "application/dicom", "ETag": f'"{found.sha256}"',
               "Content-Disposition": f'attachment; filename="{sop}.dcm"'}
    if ref.local is not None:
        if not ref.local.exists():
            raise NotFound(f"the stored file of {sop} is missing")
        return web.FileResponse(ref.local, headers=headers)
    return await _stream_blob(request, ref, headers)


async def _stream_blob(request: web.Request, ref: BlobRef,
                       headers: dict[str, str]) -> web.StreamResponse:
    """An object-store blob streamed to the client; one `bytes=a-b` range resumes (206)."""
    try:
        span = request.http_range
    except ValueError:
        span = slice(None, None)
    start, stop = span.start or 0, ref.size if span.stop is None else min(span.stop, ref.size)
    if start < 0:
        start, stop = max(0, ref.size + start), ref.size
    partial = (start, stop) != (0, ref.size)
    if partial and start >= stop:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{ref.size}"})
    resp = web.StreamResponse(status=206 if partial else 200, headers=headers)
    resp.headers["Accept-Ranges"] = "bytes"
    if partial:
        resp.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{ref.size}"
    resp.content_length = stop - start
    chunks = ref.chunks(start, stop - start)
    first = await anext(chunks, b"")  # a missing blob is still a clean error here
    await resp.prepare(request)
    try:
        await resp.write(first)
        async for chunk in chunks:
            await resp.write(chunk)
        await resp.write_eof()
    except (ArchiveError, ConnectionError) as exc:  # the 200 is out: close short of the end
        cut(request, f"download of {ref.key}", exc)
    return resp


async def get_openapi(request: web.Request) -> web.Response:
    from dicomweb.commons_openapi import document

    return _json(document(base_url(request)))


async def _json_body(request: web.Request) -> Any:
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from exc
    if has_unstorable_text(body):  # PostgreSQL cannot hold it: refuse here, not a 500 later
        raise InvalidRequest("body must not contain NUL characters or lone surrogates")
    return body


# ---- cohort DICOMweb roots ---------------------------------------------------------------------
def cohort_guard(handler: Handler) -> Handler:
    """404 for an unknown (or unreadable) cohort before the DICOMweb handler runs."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        await cohorts.get(request.app[CORE], caller_from_request(request),
                          request.match_info["cohort"])
        return await handler(request)
    return guarded


async def read_only(request: web.Request) -> web.StreamResponse:
    raise NotAllowed("a cohort is frozen: its DICOMweb root is read-only", ("GET", "HEAD"))
