"""WADO-URI (PS3.18 §9): `?requestType=WADO&studyUID=&seriesUID=&objectUID=&contentType=`.

Served at `{root}/wado` and, for the main root, at the site's `/wado` (where most legacy
viewers expect it). contentType application/dicom returns the instance (transferSyntax
parameter honoured, default Explicit VR Little Endian per §9.1.2.1.7 / §8.7.3); image/jpeg
(the default for images), image/png and image/gif render one frame with windowCenter,
windowWidth, rows, columns, imageQuality and frameNumber.
"""

from __future__ import annotations

from aiohttp import web

from archive.errors import InvalidRequest, NotAcceptable
from archive.instance import is_valid_uid
from archive.render import RENDER_MEDIA, parse_params, render
from archive.retrieve import locate
from archive.transcode import require_convertible
from archive.transfer_syntax import EXPLICIT_VR_LE
from dicomweb.auth import caller_from_request
from dicomweb.keys import CORE
from dicomweb.wado_stream import single_dicom


def _uids(q: dict[str, str]) -> tuple[str, str, str]:
    if q.get("requestType") != "WADO":
        raise InvalidRequest("requestType=WADO is required")
    values = []
    for name in ("studyUID", "seriesUID", "objectUID"):
        value = q.get(name, "")
        if not is_valid_uid(value):
            raise InvalidRequest(f"{name} is missing or not a valid UID")
        values.append(value)
    return values[0], values[1], values[2]


def _content_type(q: dict[str, str], accept: str | None) -> str:
    offered = [t.split(";")[0].strip().lower() for t in q.get("contentType", "").split(",") if t]
    for media in offered or ["image/jpeg"]:
        if media == "application/dicom" or media in RENDER_MEDIA:
            return media
    raise NotAcceptable(f"contentType must be application/dicom or one of {RENDER_MEDIA}")


def _render_query(q: dict[str, str]) -> dict[str, str]:
    """Map WADO-URI presentation parameters onto the WADO-RS rendering ones."""
    out = {}
    if "windowCenter" in q or "windowWidth" in q:
        if not ("windowCenter" in q and "windowWidth" in q):
            raise InvalidRequest("windowCenter and windowWidth must be given together")
        out["window"] = f"{q['windowCenter']},{q['windowWidth']}"
    if "rows" in q or "columns" in q:
        rows, cols = q.get("rows", q.get("columns", "")), q.get("columns", q.get("rows", ""))
        out["viewport"] = f"{cols},{rows}"
    if "imageQuality" in q:
        out["quality"] = q["imageQuality"]
    return out


async def wado(request: web.Request) -> web.StreamResponse:
    q = dict(request.rel_url.query)
    study, series, sop = _uids(q)
    if q.get("anonymize", "").lower() == "yes":
        raise NotAcceptable("anonymize=yes is not supported")
    media = _content_type(q, request.headers.get("Accept"))
    core = request.app[CORE]
    [loc] = await locate(core, caller_from_request(request), study, series, sop,
                         with_header=True)
    if media == "application/dicom":
        ts = q.get("transferSyntax") or EXPLICIT_VR_LE
        if ts == "*":
            ts = loc.transfer_syntax
        require_convertible(loc.transfer_syntax, ts)
        return await single_dicom(request, core, loc, ts)
    params = parse_params(_render_query(q), media)
    try:
        frame = int(q.get("frameNumber", "1"))
    except ValueError as exc:
        raise InvalidRequest("frameNumber must be an integer") from exc
    if frame < 1:
        raise InvalidRequest("frameNumber starts at 1")
    data = await core.run_blocking(render, loc, frame, params)
    return web.Response(body=data, content_type=media)
