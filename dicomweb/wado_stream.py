"""Streaming bodies for WADO-RS: instances as multipart/related or ZIP, in constant memory.

When every instance goes out as stored, the response length is known from the index, so the
body is sent with Content-Length and each file with `loop.sendfile` (zero-copy); otherwise
(transcoding) the body is chunked and each transcoded instance is built off the event loop.

Whatever fails once the 200 is out (the object store stalls or goes away, a conversion fails,
the client leaves) ends the same way: the connection is closed short of the body's end
(dicomweb/cut.py), since a status can no longer be sent and a kept-alive connection would leave
the client waiting for the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import zipfile

from aiohttp import web

from archive.core import Core
from archive.errors import ArchiveError, ArchiveUnavailable, NotAcceptable
from archive.retrieve import Located
from archive.transcode import transcode
from dicomweb.cut import cut
from dicomweb.multipart import closing, new_boundary, part_header

CHUNK = 1024 * 1024
LOOKAHEAD = 2  # conversions in flight per response: keeps two cores busy, memory bounded
log = logging.getLogger("dicomweb.wado")


def _zero_copy(request: web.Request, resp: web.StreamResponse) -> asyncio.Transport | None:
    """The transport to sendfile() into, or None when the bytes must go through the writer.

    sendfile() bypasses aiohttp's writer, so it is only correct when the writer adds nothing
    around the body: a declared Content-Length, no chunked framing, no compression. (Raw file
    bytes inside a chunked body corrupt it: the client reads DICOM as chunk sizes and hangs.)
    """
    transport = request.transport
    if transport is None or resp.chunked or resp.compression or resp.content_length is None:
        return None
    return transport  # type: ignore[return-value]


async def send_file(request: web.Request, resp: web.StreamResponse, core: Core,
                    loc: Located) -> None:
    """Write one stored file to the response: sendfile when it is a local file and the body
    allows it, else streamed reads (a streamed GET on an object store)."""
    transport = _zero_copy(request, resp)
    if transport is not None and loc.blob.local is not None:
        with open(loc.blob.local, "rb") as fp:
            try:
                sent = await asyncio.get_running_loop().sendfile(transport, fp, 0, loc.size)
            except NotImplementedError:
                pass
            else:
                if sent < loc.size:  # a truncated file: the declared length will not come
                    raise ArchiveUnavailable(f"stored file {loc.blob.key} ended early")
                return
    async for chunk in loc.blob.chunks(0, loc.size, CHUNK):
        await resp.write(chunk)


async def reachable(located: list[Located]) -> None:
    """Before the 200 goes out: one byte of the first instance from a remote store, so an
    object store that is down (or a missing object) is a clean 503 / 404, not a cut body.

    A streamed GET, not a ranged one in a thread: its wait is bounded by the store's read
    timeout and cancelled with the request, where a blocking GET would hold a thread and the
    request for the client's whole timeout when the store accepts connections but stalls."""
    if located and located[0].blob.local is None:
        async with contextlib.aclosing(located[0].blob.chunks(0, 1)) as probe:
            async for _ in probe:
                break


class Transcodes:
    """Transcoded bodies of the instances that need it, produced ahead of the writer.

    Each conversion runs in a transcode worker process (never on the event loop); while instance
    i is written, the next LOOKAHEAD are being converted, so at most LOOKAHEAD + 1 converted
    instances are in memory whatever the study's size. `first()` lets the caller wait for the
    first conversion before the response starts, so an instance that cannot be converted
    there is a clean 406.
    """

    def __init__(self, core: Core, located: list[Located], syntaxes: list[str]) -> None:
        self.workers = core.workers.transcode if core.workers is not None else None
        self.jobs = [(i, loc, ts) for i, (loc, ts) in enumerate(zip(located, syntaxes,
                                                                     strict=True))
                     if ts != loc.transfer_syntax]
        self.next = 0
        self.pending: dict[int, asyncio.Future[bytes]] = {}
        self._launch()

    def _launch(self) -> None:
        while len(self.pending) < LOOKAHEAD and self.next < len(self.jobs):
            i, loc, ts = self.jobs[self.next]
            self.next += 1
            self.pending[i] = asyncio.ensure_future(transcode(self.workers, loc, ts))

    def wanted(self, index: int) -> bool:
        """Whether instance `index` is sent converted (the pending jobs are always the
        earliest ones not yet taken, so the writer's next converted instance is among them)."""
        return index in self.pending

    async def first(self) -> None:
        """Wait for the first conversion (raises its NotAcceptable) without consuming it."""
        if self.pending:
            await next(iter(self.pending.values()))

    async def take(self, index: int) -> bytes:
        job = self.pending.pop(index)
        self._launch()
        return await job

    def cancel(self) -> None:
        for fut in self.pending.values():
            if fut.done() and not fut.cancelled():
                fut.exception()  # retrieved: a failure nobody will send is not logged twice
            fut.cancel()
        self.pending.clear()
        self.next = len(self.jobs)


def _abort(request: web.Request, loc: Located, exc: Exception) -> None:
    """A conversion failed after the 200 went out: close the connection without the final
    chunk and boundary, so the client sees an incomplete response instead of a complete-looking
    one missing an instance (and never waits for bytes that will not come)."""
    cut(request, f"retrieve of instance {loc.sop_uid}", exc)


def _after_start(request: web.Request, resp: web.StreamResponse, exc: Exception) -> None:
    """An error while streaming: re-raised before the 200 (the client gets its status),
    the connection closed after it (dicomweb/cut.py)."""
    if not resp.prepared:
        raise exc
    cut(request, "retrieve", exc)


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
    transcodes = Transcodes(core, located, syntaxes)
    try:
        if transcodes.jobs:
            resp.enable_chunked_encoding()
            await transcodes.first()
        else:  # everything as stored: the length is known, files go out zero-copy
            resp.content_length = sum(len(h) + loc.size + 2 for h, loc in zip(heads, located,
                                                                                strict=True)) \
                + len(closing(boundary))
        await reachable(located)
        await resp.prepare(request)
        if await _write_parts(request, resp, core, located, heads, transcodes):
            await resp.write(closing(boundary))
            await resp.write_eof()
    except (ArchiveError, ConnectionError) as exc:  # the store failed, or the client left
        _after_start(request, resp, exc)
    finally:
        transcodes.cancel()
    return resp


async def _write_parts(request: web.Request, resp: web.StreamResponse, core: Core,
                       located: list[Located], heads: list[bytes],
                       transcodes: Transcodes) -> bool:
    """Every part in order; False when a conversion failed and the connection was closed."""
    for index, (head, loc) in enumerate(zip(heads, located, strict=True)):
        if transcodes.wanted(index):
            try:
                data = await transcodes.take(index)
            except NotAcceptable as exc:
                _abort(request, loc, exc)
                return False
            await resp.write(head + data + b"\r\n")
            del data
        else:
            await resp.write(head)
            await send_file(request, resp, core, loc)
            await resp.write(b"\r\n")
    return True


async def single_dicom(
    request: web.Request, core: Core, loc: Located, ts: str
) -> web.StreamResponse:
    """One instance as a single-part application/dicom body."""
    resp = web.StreamResponse()
    resp.headers["Content-Type"] = f"application/dicom; transfer-syntax={ts}"
    if ts == loc.transfer_syntax:
        resp.content_length = loc.size
        await reachable([loc])
        await resp.prepare(request)
        try:
            await send_file(request, resp, core, loc)
        except (ArchiveError, ConnectionError) as exc:
            _after_start(request, resp, exc)
            return resp
    else:
        data = await transcode(core.workers.transcode if core.workers else None, loc, ts)
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
    request: web.Request, core: Core, located: list[Located], name: str, syntaxes: list[str],
) -> web.StreamResponse:
    """application/zip of the instances (stored, no compression: DICOM rarely deflates well)."""
    resp = web.StreamResponse()
    resp.content_type = "application/zip"
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    resp.enable_chunked_encoding()
    transcodes = Transcodes(core, located, syntaxes)
    try:
        await transcodes.first()
        await reachable(located)
        await resp.prepare(request)
        if await _write_zip(request, resp, core, located, transcodes):
            await resp.write_eof()
    except (ArchiveError, ConnectionError) as exc:
        _after_start(request, resp, exc)
    finally:
        transcodes.cancel()
    return resp


async def _write_zip(request: web.Request, resp: web.StreamResponse, core: Core,
                     located: list[Located], transcodes: Transcodes) -> bool:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for index, loc in enumerate(located):
            arcname = f"{loc.study_uid}/{loc.series_uid}/{loc.sop_uid}.dcm"
            data = None
            if transcodes.wanted(index):
                try:
                    data = await transcodes.take(index)
                except NotAcceptable as exc:
                    _abort(request, loc, exc)
                    return False
            with zf.open(arcname, "w", force_zip64=True) as entry:
                if data is not None:
                    entry.write(data)
                    del data
                else:
                    async for chunk in loc.blob.chunks(0, loc.size, CHUNK):
                        entry.write(chunk)
                        await resp.write(sink.take())
            await resp.write(sink.take())
    await resp.write(sink.take())
    return True
