"""Streaming bodies for WADO-RS: instances as multipart/related or ZIP, in constant memory.

When every instance goes out as stored, the response length is known from the index, so the
body is sent with Content-Length and each file with `loop.sendfile` (zero-copy); otherwise
(transcoding) the body is chunked and each transcoded instance is built off the event loop.
"""

from __future__ import annotations

import asyncio
import io
import logging
import zipfile
from collections.abc import Callable

from aiohttp import web

from archive.core import Core
from archive.retrieve import Located
from archive.transcode import transcode_file
from dicomweb.multipart import closing, new_boundary, part_header

CHUNK = 1024 * 1024
log = logging.getLogger("dicomweb.wado")


def _read(path: str, offset: int, size: int) -> bytes:
    with open(path, "rb") as fp:
        fp.seek(offset)
        return fp.read(size)


async def send_file(request: web.Request, resp: web.StreamResponse, core: Core,
                    loc: Located) -> None:
    """Write one stored file to the response: sendfile when possible, else chunked reads."""
    transport = request.transport
    if transport is not None and not resp.compression:
        with open(loc.path, "rb") as fp:
            try:
                await asyncio.get_running_loop().sendfile(transport, fp, 0, loc.size)
                return
            except NotImplementedError:
                pass
    offset = 0
    while offset < loc.size:
        chunk = await core.run_blocking(_read, str(loc.path), offset, min(CHUNK, loc.size - offset))
        if not chunk:
            raise ConnectionResetError(f"stored file {loc.path.name} ended early")
        await resp.write(chunk)
        offset += len(chunk)


async def multipart_dicom(
    request: web.Request, core: Core, located: list[Located], syntaxes: list[str]
) -> web.StreamResponse:
    """multipart/related; type="application/dicom" with one part per instance."""
    boundary = new_boundary()
    heads = [part_header(boundary, f"application/dicom; transfer-syntax={ts}")
             for ts in syntaxes]
    resp = web.StreamResponse()
    resp.headers["Content-Type"] = (
        f'multipart/related; type="application/dicom"; boundary={boundary}')
    as_stored = all(ts == loc.transfer_syntax for ts, loc in zip(syntaxes, located, strict=True))
    if as_stored:
        resp.content_length = sum(len(h) + loc.size + 2 for h, loc in zip(heads, located,
                                                                            strict=True)) + \
            len(closing(boundary))
    else:
        resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        for head, loc, ts in zip(heads, located, syntaxes, strict=True):
            await resp.write(head)
            if ts == loc.transfer_syntax:
                await send_file(request, resp, core, loc)
            else:
                await resp.write(await core.run_blocking(transcode_file, loc, ts))
            await resp.write(b"\r\n")
        await resp.write(closing(boundary))
        await resp.write_eof()
    except ConnectionError:  # the client went away mid-stream: nothing left to answer
        log.info("retrieve aborted by the client after %d bytes", resp.body_length)
    return resp


async def single_dicom(
    request: web.Request, core: Core, loc: Located, ts: str
) -> web.StreamResponse:
    """One instance as a single-part application/dicom body."""
    resp = web.StreamResponse()
    resp.headers["Content-Type"] = f"application/dicom; transfer-syntax={ts}"
    if ts == loc.transfer_syntax:
        resp.content_length = loc.size
        await resp.prepare(request)
        await send_file(request, resp, core, loc)
    else:
        data = await core.run_blocking(transcode_file, loc, ts)
        resp.content_length = len(data)
        await resp.prepare(request)
        await resp.write(data)
    await resp.write_eof()
    return resp


class _Sink(io.RawIOBase):
    """An unseekable file object collecting what ZipFile writes, drained after each write."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.buffer += data
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        out = bytes(self.buffer)
        self.buffer.clear()
        return out


async def zip_dicom(
    request: web.Request, core: Core, located: list[Located], name: str,
    syntax_of: Callable[[Located], str],
) -> web.StreamResponse:
    """application/zip of the instances (stored, no compression: DICOM rarely deflates well)."""
    resp = web.StreamResponse()
    resp.content_type = "application/zip"
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for loc in located:
            arcname = f"{loc.study_uid}/{loc.series_uid}/{loc.sop_uid}.dcm"
            ts = syntax_of(loc)
            with zf.open(arcname, "w", force_zip64=True) as entry:
                if ts == loc.transfer_syntax:
                    offset = 0
                    while offset < loc.size:
                        chunk = await core.run_blocking(_read, str(loc.path), offset, CHUNK)
                        if not chunk:
                            break
                        entry.write(chunk)
                        offset += len(chunk)
                        await resp.write(sink.take())
                else:
                    entry.write(await core.run_blocking(transcode_file, loc, ts))
            await resp.write(sink.take())
    await resp.write(sink.take())
    await resp.write_eof()
    return resp
