"""QIDO-RS (PS3.18 §10.6): search for studies, series and instances.

The door only translates: URL + query string → `parse_query` → `search` (archive.query) →
`application/dicom+json` (a streamed JSON array) or `multipart/related;
type="application/dicom+xml"` (one Native DICOM Model part per match). No match is 200 with an
empty array (CP-2473 replaced the older 204).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

from aiohttp import web

from archive.query import BUFFERED, Level, more_results, parse_query, search, search_page
from archive.query.fastjson import dumps
from dicomweb.auth import caller_from_request
from dicomweb.dicom_xml import to_xml
from dicomweb.keys import CORE
from dicomweb.multipart import closing, part_header, start_multipart
from dicomweb.query_params import JSON, XML, query_pairs, response_type
from dicomweb.urls import service_root

FLUSH_BYTES = 64 * 1024
MORE = '299 {host}: "There are more results than the limit; request them with offset"'


async def _respond(
    request: web.Request, level: Level, scoped_to: Level | None = None
) -> web.StreamResponse:
    core = request.app[CORE]
    media = response_type(request)
    scope = {}
    if "study" in request.match_info:
        scope["StudyInstanceUID"] = request.match_info["study"]
    if "series" in request.match_info:
        scope["SeriesInstanceUID"] = request.match_info["series"]
    spec = parse_query(
        query_pairs(request), level, core.extensions,
        max_limit=core.settings.qido_max_limit, root=service_root(request),
        scope=scope, scoped_to=scoped_to,
    )
    caller = caller_from_request(request)
    headers: dict[str, str] = {}
    if spec.capped and spec.limit is not None and spec.limit <= BUFFERED:
        # The usual case: fetch limit + 1 rows to learn whether to warn, in one query.
        page, more = await search_page(core, spec, caller)
        if more:
            headers["Warning"] = MORE.format(host=request.host)
        return await _send(request, media, _from_list(page), headers)
    if await more_results(core, spec, caller):
        headers["Warning"] = MORE.format(host=request.host)
    async with aclosing(search(core, spec, caller)) as results:
        return await _send(request, media, results, headers)


async def _from_list(items: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for item in items:
        yield item


async def _send(
    request: web.Request, media: str, results: AsyncIterator[dict[str, Any]],
    headers: dict[str, str],
) -> web.StreamResponse:
    first = await anext(results, None)  # errors surface before any byte is sent
    if media == XML:
        return await _xml(request, first, results, headers)
    return await _json(request, first, results, headers)


async def _json(
    request: web.Request, first: dict[str, Any] | None,
    rest: AsyncIterator[dict[str, Any]], headers: dict[str, str],
) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers=headers)
    resp.headers["Content-Type"] = JSON
    await resp.prepare(request)
    if first is None:
        await resp.write(b"[]")
    else:
        # Coalesce results into ~64 KiB writes: one write (a send() each) per result cost
        # more than encoding it on a 100-result page.
        chunk = [b"[", _dumps(first)]
        size = len(chunk[1])
        async for dataset in rest:
            encoded = _dumps(dataset)
            chunk += (b",", encoded)
            size += len(encoded) + 1
            if size >= FLUSH_BYTES:
                await resp.write(b"".join(chunk))
                chunk, size = [], 0
        chunk.append(b"]")
        await resp.write(b"".join(chunk))
    await resp.write_eof()
    return resp


async def _xml(
    request: web.Request, first: dict[str, Any] | None,
    rest: AsyncIterator[dict[str, Any]], headers: dict[str, str],
) -> web.StreamResponse:
    resp, boundary = await start_multipart(request, XML)
    resp.headers.update(headers)
    if first is not None:
        await resp.write(part_header(boundary, XML) + to_xml(first) + b"\r\n")
        async for dataset in rest:
            await resp.write(part_header(boundary, XML) + to_xml(dataset) + b"\r\n")
    await resp.write(closing(boundary))
    await resp.write_eof()
    return resp


def _dumps(dataset: dict[str, Any]) -> bytes:
    return dumps(dataset)


def search_handler(level: Level, scoped_to: Level | None = None) -> Callable[
    [web.Request], Awaitable[web.StreamResponse]
]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await _respond(request, level, scoped_to)

    handle.__name__ = f"search_{level.value.lower()}"
    return handle
