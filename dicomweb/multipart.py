"""multipart/related reading (streamed, part by part) and writing (PS3.18 §8.6.1.2)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, ClientError, MultipartReader, web
from aiohttp.streams import EofStream

from archive.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from dicomweb.media_types import parse_media_type

CHUNK = 256 * 1024
MAX_BOUNDARY = 200  # RFC 2046 says 70; Orthanc's DICOMweb client sends 73, so be liberal


class LiberalMultipartReader(MultipartReader):
    """aiohttp's reader with a boundary cap of MAX_BOUNDARY instead of RFC 2046's 70.

    Real senders (Orthanc 1.10) exceed 70 characters; refusing them loses studies for no gain.
    """

    def _get_boundary(self) -> str:
        boundary: str = self._mimetype.parameters["boundary"]
        if len(boundary) > MAX_BOUNDARY:
            raise ValueError(f"boundary is too long ({len(boundary)} > {MAX_BOUNDARY} characters)")
        return boundary


class Budget:
    """Counts request bytes across parts so one request cannot exceed the configured limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise PayloadTooLarge(f"request larger than the limit of {self.limit} bytes")


def check_multipart(request: web.Request, expected_type: str) -> None:
    """415 unless Content-Type is multipart/related; type=<expected> with a boundary."""
    ctype = request.headers.get("Content-Type", "")
    mt = parse_media_type(ctype)
    if mt.type != "multipart/related":
        raise UnsupportedMediaType(
            f"Content-Type must be multipart/related; type=\"{expected_type}\", not {ctype!r}"
        )
    if mt.params.get("type", expected_type).lower() != expected_type:
        raise UnsupportedMediaType(f"multipart type must be {expected_type}")
    if not mt.params.get("boundary"):
        raise InvalidRequest("multipart Content-Type has no boundary")


async def parts(request: web.Request) -> AsyncIterator[BodyPartReader]:
    """Yield body parts; structural errors become InvalidRequest (400)."""
    try:
        reader = LiberalMultipartReader(request.headers, request.content)
        while True:
            part = await reader.next()
            if part is None:
                return
            if isinstance(part, MultipartReader):
                raise InvalidRequest("nested multipart bodies are not supported")
            yield part
    except (ValueError, AssertionError, RuntimeError) as exc:
        raise InvalidRequest(f"malformed multipart body: {exc}") from exc
    except (ClientError, ConnectionError, EofStream) as exc:
        raise InvalidRequest(f"request body ended early: {exc!r}") from exc


async def part_chunks(part: BodyPartReader, budget: Budget) -> AsyncIterator[bytes]:
    try:
        while True:
            chunk = await part.read_chunk(CHUNK)
            if not chunk:
                return
            budget.take(len(chunk))
            yield chunk
    except (ValueError, AssertionError, RuntimeError) as exc:
        raise InvalidRequest(f"malformed multipart body: {exc}") from exc
    except (ClientError, ConnectionError, EofStream) as exc:
        raise InvalidRequest(f"request body ended early: {exc!r}") from exc


def new_boundary() -> str:
    return uuid.uuid4().hex


async def start_multipart(
    request: web.Request, part_type: str, status: int = 200, extra: str = ""
) -> tuple[web.StreamResponse, str]:
    """Begin a streamed multipart/related response; caller writes parts then `end_multipart`."""
    boundary = new_boundary()
    resp = web.StreamResponse(status=status)
    resp.content_type = "multipart/related"
    resp.headers["Content-Type"] = (
        f'multipart/related; type="{part_type}"{extra}; boundary={boundary}'
    )
    await resp.prepare(request)
    return resp, boundary


def part_header(boundary: str, content_type: str, extra: dict[str, str] | None = None) -> bytes:
    lines = [f"--{boundary}", f"Content-Type: {content_type}"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode()
