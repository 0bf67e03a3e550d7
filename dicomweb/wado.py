"""WADO-RS (PS3.18 §10.4): retrieve instances and metadata, plus DELETE; route table for all
retrieve resources (frames/bulk data/rendered in dicomweb.wado_frames, WADO-URI in
dicomweb.wado_uri).

Transfer syntax (PS3.18 §8.7.3.5.2): without a `transfer-syntax` parameter instances are returned
in Explicit VR Little Endian (the standard's default for application/dicom since 2016c); with
`transfer-syntax=*` exactly as stored (zero-copy); a named syntax is produced by transcoding,
or 406 when it cannot be.
"""

from __future__ import annotations

import datetime as dt
from contextlib import aclosing
from email.utils import format_datetime, parsedate_to_datetime

from aiohttp import web

from archive.core import Caller, Core
from archive.delete import delete
from archive.errors import NotAcceptable
from archive.retrieve import (
    Located,
    Scope,
    Version,
    json_escape,
    locate,
    metadata_array,
    metadata_stream,
    metadata_with_version,
    version,
)
from archive.transcode import can_convert
from archive.transfer_syntax import EXPLICIT_VR_LE
from dicomweb.auth import caller_from_request
from dicomweb.dicom_json import resolve_bulk
from dicomweb.dicom_xml import to_xml
from dicomweb.keys import CORE
from dicomweb.multipart import closing, new_boundary, part_header
from dicomweb.urls import instance_url, service_root
from dicomweb.wado_accept import Wanted, accept_of, wanted
from dicomweb.wado_scope import located_for, scope_of
from dicomweb.wado_stream import multipart_dicom, single_dicom, zip_dicom

STRING_AGG_LIMIT = 2000  # instances: above this, metadata is streamed row by row


# --- retrieve instances ----------------------------------------------------------------------

def syntax_for(want: Wanted, stored: str) -> str | None:
    """The syntax to send an instance stored as `stored` in, for this Accept entry, or None."""
    if want.ts == "*":
        return stored
    target = want.ts or EXPLICIT_VR_LE
    return target if can_convert(stored, target) else None


def _representation(want: Wanted, count: int) -> str | None:
    if want.media == "application/zip" and not want.multipart:
        return "zip"
    if want.multipart and want.accepts("application/dicom"):
        return "multipart"
    if want.media == "application/dicom" and count == 1:
        return "single"
    return None


def plan(wants: list[Wanted], located: list[Located]) -> tuple[str, list[str]]:
    """Representation + per-instance syntax honouring the client's order of preference."""
    reps: dict[str, list[Wanted]] = {}
    for w in wants:
        rep = _representation(w, len(located))
        if rep:
            reps.setdefault(rep, []).append(w)
    reasons = []
    for rep, group in reps.items():
        syntaxes = []
        for loc in located:
            ts = next((t for w in group if (t := syntax_for(w, loc.transfer_syntax))), None)
            if ts is None:
                reasons.append(f"{loc.sop_uid} is stored as {loc.transfer_syntax}")
                break
            syntaxes.append(ts)
        else:
            return rep, syntaxes
    detail = f" ({reasons[0]})" if reasons else ""
    raise NotAcceptable(
        "cannot produce the requested media type / transfer syntax" + detail
        + "; available: multipart/related; type=\"application/dicom\" (transfer-syntax=* or"
        " a syntax we can transcode to), application/dicom for one instance, application/zip"
    )


async def retrieve(request: web.Request) -> web.StreamResponse:
    """Study, series or instance as multipart/related DICOM, single-part DICOM, or ZIP."""
    core = request.app[CORE]
    located = await located_for(request)
    rep, syntaxes = plan(wanted(accept_of(request)), located)
    if rep == "single":
        return await single_dicom(request, core, located[0], syntaxes[0])
    if rep == "zip":
        name = request.match_info.get("series") or request.match_info["study"]
        return await zip_dicom(request, core, located, name, syntaxes)
    return await multipart_dicom(request, core, located, syntaxes)


# --- metadata --------------------------------------------------------------------------------

def _metadata_format(header: str | None) -> str:
    for w in wanted(header):
        if w.accepts("application/dicom+json") or w.media == "application/json":
            return "json"
        if w.media == "application/dicom+xml":
            return "xml"
    raise NotAcceptable("metadata is available as application/dicom+json or multipart/related; "
                        "type=\"application/dicom+xml\"")


def not_modified(request: web.Request, ver: Version) -> bool:
    """Conditional GET (RFC 9110 §13.1.2, §13.1.3): If-None-Match wins over If-Modified-Since."""
    inm = request.headers.get("If-None-Match")
    if inm is not None:
        tags = [t.strip().removeprefix("W/") for t in inm.split(",")]
        return "*" in tags or ver.etag in tags
    ims = request.headers.get("If-Modified-Since")
    if ims:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        return ver.last_modified.replace(microsecond=0) <= since
    return False


def validators(ver: Version) -> dict[str, str]:
    return {
        "ETag": ver.etag,
        "Last-Modified": format_datetime(ver.last_modified.astimezone(dt.UTC), usegmt=True),
        "Cache-Control": "private, no-cache",
        "Vary": "Accept, Authorization",
    }


async def metadata(request: web.Request) -> web.StreamResponse:
    """Study/series/instance metadata from the index only: no DICOM file is opened."""
    core, caller, scope = request.app[CORE], caller_from_request(request), scope_of(request)
    fmt = _metadata_format(accept_of(request))
    root = service_root(request)
    variant = f"{fmt}|{root}"
    conditional = "If-None-Match" in request.headers or "If-Modified-Since" in request.headers
    if fmt == "json" and scope.level != "study" and not conditional:
        ver, text_body = await metadata_with_version(core, caller, scope, variant,
                                                     json_escape(root))
        return web.Response(body=text_body.encode(), headers=validators(ver),
                            content_type="application/dicom+json")
    ver = await version(core, caller, scope, variant)
    headers = validators(ver)
    if not_modified(request, ver):
        return web.Response(status=304, headers=headers)
    if fmt == "xml":
        return await _metadata_xml(request, core, caller, scope, root, headers)
    if ver.count > STRING_AGG_LIMIT:
        return await _stream_json(request, core, caller, scope, json_escape(root), headers)
    body = await metadata_array(core, caller, scope, json_escape(root))
    return web.Response(body=body.encode(), headers=headers,
                        content_type="application/dicom+json")


async def _stream_json(request: web.Request, core: Core, caller: Caller, scope: Scope,
                       base: str, headers: dict[str, str]) -> web.StreamResponse:
    resp = web.StreamResponse(headers=headers)
    resp.content_type = "application/dicom+json"
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    sep = b"["
    async with aclosing(metadata_stream(core, caller, scope, base)) as batches:
        async for batch in batches:
            await resp.write(sep + b",".join(doc.encode() for doc in batch))
            sep = b","
    await resp.write(b"]" if sep == b"," else b"[]")
    await resp.write_eof()
    return resp


async def _metadata_xml(request: web.Request, core: Core, caller: Caller, scope: Scope,
                        root: str, headers: dict[str, str]) -> web.StreamResponse:
    located = await locate(core, caller, scope.study, scope.series, scope.instance,
                           with_header=True)
    boundary = new_boundary()
    resp = web.StreamResponse(headers=headers)
    resp.headers["Content-Type"] = (
        f'multipart/related; type="application/dicom+xml"; boundary={boundary}')
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for loc in located:
        header = dict(loc.header or {})
        header["00083002"] = {"vr": "UI", "Value": [loc.transfer_syntax]}
        if loc.pixels:
            tag = loc.pixels["tag"]
            header[tag] = {"vr": loc.pixels["vr"], "BulkDataURI": f"bulk:{tag}"}
        url = instance_url(root, loc.study_uid, loc.series_uid, loc.sop_uid)
        await resp.write(part_header(boundary, "application/dicom+xml")
                         + to_xml(resolve_bulk(header, url)) + b"\r\n")
    await resp.write(closing(boundary))
    await resp.write_eof()
    return resp


# --- delete ----------------------------------------------------------------------------------

async def remove(request: web.Request) -> web.Response:
    """DELETE a study, series or instance (not in the base standard; as dcm4chee and Orthanc)."""
    scope = scope_of(request)
    assert scope.study is not None
    gone = await delete(request.app[CORE], caller_from_request(request), scope.study,
                        scope.series, scope.instance)
    return web.json_response({"deletedInstances": gone.instances, "deletedSeries": gone.series,
                              "deletedStudies": gone.studies})
