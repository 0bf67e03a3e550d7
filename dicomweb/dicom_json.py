"""DICOM JSON helpers shared by QIDO-RS, WADO-RS metadata and STOW-RS responses."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

BULK_PREFIX = "bulk:"


def resolve_bulk(header: dict[str, Any], instance_url: str) -> dict[str, Any]:
    """Replace ingest's `bulk:TAG` markers with absolute BulkDataURIs under the instance URL.

    Returns a new dict; nested sequence items are handled, the stored header is not mutated.
    """

    def walk(ds: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for tag, el in ds.items():
            uri = el.get("BulkDataURI")
            if isinstance(uri, str) and uri.startswith(BULK_PREFIX):
                out[tag] = {"vr": el["vr"], "BulkDataURI": f"{instance_url}/bulkdata/{uri[5:]}"}
            elif el.get("vr") == "SQ" and el.get("Value"):
                out[tag] = {"vr": "SQ", "Value": [walk(item) for item in el["Value"]]}
            else:
                out[tag] = el
        return out

    return walk(header)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """`application/dicom+json` without a charset parameter (dicomweb-client matches exactly)."""
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        content_type="application/dicom+json",
        headers=headers,
    )
