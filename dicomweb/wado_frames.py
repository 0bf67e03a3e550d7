"""WADO-RS frames, bulk data, rendered and thumbnail resources (PS3.18 §10.4, §8.3.5).

Frames are cut out of the stored file by offset (archive.frames); they go out as stored
(`transfer-syntax=*`: native → application/octet-stream, compressed → the codestream's own
media type), decoded to Explicit VR Little Endian (`application/octet-stream` without a
syntax, the standard's default), or losslessly re-encoded when a lossless image/* syntax is
asked for. Every Content-Type (response and each part) names the transfer syntax.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from archive.errors import InvalidRequest, NotAcceptable, NotFound
from archive.frames import check_frames, parse_frame_list, read_frame
from archive.render import RENDER_MEDIA, RenderParams, parse_params, render
from archive.retrieve import Located, locate
from archive.transcode import (
    DECODABLE,
    ENCODE_TARGETS,
    FRAME_MEDIA,
    MEDIA_DEFAULT_TS,
    decoded_frame,
    encoded_frame,
)
from archive.transfer_syntax import EXPLICIT_VR_LE, IMPLICIT_VR_LE, LOSSY, UNCOMPRESSED
from dicomweb.auth import caller_from_request
from dicomweb.keys import CORE
from dicomweb.multipart import closing, new_boundary, part_header
from dicomweb.wado_accept import Wanted, accept_of, wanted
from dicomweb.wado_scope import located_for, scope_of

OCTET = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class FramePlan:
    media: str
    ts: str
    mode: str  # "stored" | "decode" | "encode"
    multipart: bool


def _octet_plan(w: Wanted, stored: str) -> FramePlan | None:
    compressed = stored not in UNCOMPRESSED
    if w.ts == "*":
        if compressed:
            return FramePlan(FRAME_MEDIA.get(stored, OCTET), stored, "stored", w.multipart)
        return FramePlan(OCTET, EXPLICIT_VR_LE, "stored", w.multipart)
    if w.ts in (None, EXPLICIT_VR_LE, IMPLICIT_VR_LE):
        if compressed and stored not in DECODABLE:
            return None
        return FramePlan(OCTET, EXPLICIT_VR_LE, "decode" if compressed else "stored", w.multipart)
    return None


def _image_target(w: Wanted, stored: str) -> str | None:
    """The transfer syntax to send for an image/* media range (None: nothing fits)."""
    as_stored = stored if FRAME_MEDIA.get(stored) == w.media else None
    if w.ts == "*":
        return as_stored
    if w.ts is None and stored in LOSSY and as_stored:
        # PS3.18 §8.7.3: with no transfer-syntax asked, a server that holds only lossy pixel data
        # returns them as stored (image/jpeg of a JPEG Baseline instance: .50, not the lossless
        # default .70 of Table 8.7.3-5, which cannot be made from lossy pixels).
        return as_stored
    return w.ts or MEDIA_DEFAULT_TS.get(w.media)


def _image_plan(w: Wanted, stored: str) -> FramePlan | None:
    target = _image_target(w, stored)
    if target is None or FRAME_MEDIA.get(target) != w.media:
        return None
    if target == stored:
        return FramePlan(w.media, target, "stored", w.multipart)
    if target in ENCODE_TARGETS and stored in DECODABLE:
        return FramePlan(w.media, target, "encode", w.multipart)
    return None


def frame_plan(wants: list[Wanted], stored: str, count: int) -> FramePlan:
    for w in wants:
        if not w.multipart and count > 1 and w.media != "*/*":
            continue
        if w.media == "*/*":
            p = _octet_plan(Wanted(OCTET, True, w.ts), stored)
        elif w.media == OCTET:
            p = _octet_plan(w, stored)
        else:
            p = _image_plan(w, stored)
        if p is not None:
            return p
    raise NotAcceptable(
        f"cannot produce frames stored as {stored} in the requested media type; available: "
        f"multipart/related; type=\"application/octet-stream\" (transfer-syntax=* or "
        f"{EXPLICIT_VR_LE}) or the stored syntax's media type {FRAME_MEDIA.get(stored, OCTET)}"
    )


def _producer(loc: Located, plan: FramePlan) -> Callable[[Located, int], bytes]:
    if plan.mode == "decode":
        return decoded_frame
    if plan.mode == "encode":
        return lambda loc, n: encoded_frame(loc, n, plan.ts)
    return read_frame


async def _send_frames(request: web.Request, loc: Located, numbers: list[int],
                       plan: FramePlan) -> web.StreamResponse:
    core = request.app[CORE]
    produce = _producer(loc, plan)
    ctype = f"{plan.media}; transfer-syntax={plan.ts}"
    if not plan.multipart:
        data = await core.run_blocking(produce, loc, numbers[0])
        return web.Response(body=data, headers={"Content-Type": ctype})
    boundary = new_boundary()
    resp = web.StreamResponse()
    resp.headers["Content-Type"] = (
        f'multipart/related; type="{plan.media}"; transfer-syntax={plan.ts}; boundary={boundary}')
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    base = request.url.with_query(None)
    for n in numbers:
        data = await core.run_blocking(produce, loc, n)
        location = str(base) if len(numbers) == 1 else f"{str(base).rsplit('/', 1)[0]}/{n}"
        await resp.write(part_header(boundary, ctype, {"Content-Location": location})
                         + data + b"\r\n")
    await resp.write(closing(boundary))
    await resp.write_eof()
    return resp


async def _instance(request: web.Request) -> Located:
    s = scope_of(request)
    found = await locate(request.app[CORE], caller_from_request(request), s.study, s.series,
                         s.instance, with_header=True)
    return found[0]


async def frames(request: web.Request) -> web.StreamResponse:
    """GET .../instances/{uid}/frames/{list}: 400 for a malformed list, 404 if out of range."""
    numbers = parse_frame_list(request.match_info["frames"])
    loc = await _instance(request)
    check_frames(loc, numbers)
    plan = frame_plan(wanted(accept_of(request)), loc.transfer_syntax, len(numbers))
    return await _send_frames(request, loc, numbers, plan)


async def bulkdata(request: web.Request) -> web.StreamResponse:
    """Bulk data of one instance: Pixel Data (as frames) or another large binary attribute."""
    tag = request.match_info["tag"].upper()
    if len(tag) != 8 or any(c not in "0123456789ABCDEF" for c in tag):
        raise InvalidRequest(f"bulk data tag must be 8 hex digits, not {tag!r}")
    loc = await _instance(request)
    if loc.pixels and loc.pixels["tag"] == tag:
        numbers = list(range(1, loc.frames + 1))
        plan = frame_plan(wanted(accept_of(request)), loc.transfer_syntax, len(numbers))
        if plan.media == OCTET and plan.multipart:
            return await _send_native_value(request, loc, numbers, plan)
        return await _send_frames(request, loc, numbers, plan)
    data = await request.app[CORE].run_blocking(_element_bytes, loc, int(tag, 16))
    boundary = new_boundary()
    body = part_header(boundary, OCTET) + data + b"\r\n" + closing(boundary)
    return web.Response(body=body, headers={
        "Content-Type": f'multipart/related; type="{OCTET}"; boundary={boundary}'})


async def _send_native_value(request: web.Request, loc: Located, numbers: list[int],
                             plan: FramePlan) -> web.StreamResponse:
    """Native Pixel Data as ONE part (the whole value), written frame by frame."""
    core = request.app[CORE]
    produce = _producer(loc, plan)
    boundary = new_boundary()
    resp = web.StreamResponse()
    resp.headers["Content-Type"] = (
        f'multipart/related; type="{OCTET}"; transfer-syntax={plan.ts}; boundary={boundary}')
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(part_header(boundary, f"{OCTET}; transfer-syntax={plan.ts}"))
    for n in numbers:
        await resp.write(await core.run_blocking(produce, loc, n))
    await resp.write(b"\r\n" + closing(boundary))
    await resp.write_eof()
    return resp


def _element_bytes(loc: Located, tag: int) -> bytes:
    from pydicom import dcmread

    # Pixel Data itself is read only when it has no recorded layout (a deflated file).
    ds = dcmread(loc.path, stop_before_pixels=tag not in (0x7FE00010, 0x7FE00008, 0x7FE00009))
    for elem in ds.iterall():
        if elem.tag == tag and isinstance(elem.value, bytes | bytearray):
            return bytes(elem.value)
    raise NotFound(f"instance has no bulk data element {tag:08X}")


# --- rendered / thumbnail --------------------------------------------------------------------

def _render_media(header: str | None) -> tuple[str, bool]:
    """Chosen image type and whether a multipart answer (several images) is acceptable."""
    for w in wanted(header):
        for media in RENDER_MEDIA:
            if w.media != "*/*" and w.accepts(media):
                return media, w.multipart
        if w.media == "*/*":
            return "image/jpeg", False
    raise NotAcceptable(f"rendered images are available as {', '.join(RENDER_MEDIA)}")


async def _representative(request: web.Request) -> Located:
    """The image a study/series thumbnail shows: the middle image of its first image series."""
    s = scope_of(request)
    core, caller = request.app[CORE], caller_from_request(request)
    found = [loc for loc in await locate(core, caller, s.study, s.series, s.instance)
             if loc.pixels]
    if not found:
        raise NotFound("no renderable image in this resource")
    first_series = [loc for loc in found if loc.series_uid == found[0].series_uid]
    pick = first_series[len(first_series) // 2]
    return (await locate(core, caller, pick.study_uid, pick.series_uid, pick.sop_uid,
                         with_header=True))[0]


async def _images(request: web.Request, thumbnail: bool) -> web.StreamResponse:
    media, multipart = _render_media(accept_of(request))
    params = parse_params(request.rel_url.query, media, thumbnail)
    m = request.match_info
    jobs: list[tuple[Located, int]]
    if "frames" in m:
        numbers = parse_frame_list(m["frames"])
        loc = await _instance(request)
        check_frames(loc, numbers)
        jobs = [(loc, n) for n in (numbers if multipart and not thumbnail else numbers[:1])]
    elif "instance" in m:
        loc = await _instance(request)
        jobs = [(loc, 1)]
    elif multipart and not thumbnail:
        jobs = await _all_images(request)
    else:
        jobs = [(await _representative(request), 1)]
    return await _send_images(request, jobs, params, multipart and len(jobs) > 1)


async def _all_images(request: web.Request) -> list[tuple[Located, int]]:
    return [(loc, 1) for loc in await located_for(request, with_header=True) if loc.pixels]


async def _send_images(request: web.Request, jobs: list[tuple[Located, int]],
                       params: RenderParams, multipart: bool) -> web.StreamResponse:
    core = request.app[CORE]
    if not jobs:
        raise NotFound("no renderable image in this resource")
    if not multipart:
        data = await core.run_blocking(render, jobs[0][0], jobs[0][1], params)
        return web.Response(body=data, content_type=params.media)
    boundary = new_boundary()
    resp = web.StreamResponse()
    resp.headers["Content-Type"] = f'multipart/related; type="{params.media}"; boundary={boundary}'
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for loc, n in jobs:
        data = await core.run_blocking(render, loc, n, params)
        await resp.write(part_header(boundary, params.media) + data + b"\r\n")
    await resp.write(closing(boundary))
    await resp.write_eof()
    return resp


async def rendered(request: web.Request) -> web.StreamResponse:
    return await _images(request, thumbnail=False)


async def thumbnail(request: web.Request) -> web.StreamResponse:
    return await _images(request, thumbnail=True)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
