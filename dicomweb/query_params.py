"""QIDO-RS request → query pairs and response media type (PS3.18 §8.3.4, §8.7, §10.6.1).

aiohttp has already percent-decoded the query string. The `accept` query parameter (§8.3.3.1)
overrides the Accept header; `charset` is accepted and ignored (answers are always UTF-8).
"""

from __future__ import annotations

from aiohttp import web

from archive.errors import NotAcceptable
from dicomweb.media_types import parse_accept

JSON = "application/dicom+json"
XML = "application/dicom+xml"
CONTENT_NEGOTIATION = frozenset({"accept", "charset"})


def query_pairs(request: web.Request) -> list[tuple[str, str]]:
    """Every (key, value) of the query string, in order, minus content-negotiation parameters."""
    return [(k, v) for k, v in request.query.items() if k not in CONTENT_NEGOTIATION]


def response_type(request: web.Request) -> str:
    """JSON or XML (as multipart/related; type=application/dicom+xml), else NotAcceptable."""
    header = request.query.get("accept") or request.headers.get("Accept")
    for r in parse_accept(header):
        if r.type in ("*/*", "application/*", JSON, "application/json"):
            return JSON
        if r.type == "multipart/related" and r.params.get("type", XML).lower() == XML:
            return XML
        if r.type == XML:
            return XML
    raise NotAcceptable(
        f"QIDO-RS answers {JSON} or multipart/related; type=\"{XML}\", not {header!r}"
    )
