"""Accept-header negotiation for WADO-RS (PS3.18 §8.7): media type + transfer syntax.

Each acceptable media range becomes a `Wanted` (part media type, multipart or single part,
requested transfer syntax). Resources pick the first `Wanted` they can honour for each
instance, which keeps client preference order.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from dicomweb.media_types import parse_accept


@dataclass(frozen=True, slots=True)
class Wanted:
    media: str  # media type of the body (single part) or of each part (multipart)
    multipart: bool
    ts: str | None  # None: the media type's default; "*": as stored; else a UID

    def accepts(self, media: str) -> bool:
        if self.media in ("*/*", media):
            return True
        return self.media.endswith("/*") and media.startswith(self.media[:-1])


def wanted(header: str | None) -> list[Wanted]:
    """Acceptable representations in preference order; no Accept means anything."""
    out = []
    for r in parse_accept(header):
        ts = r.params.get("transfer-syntax")
        ts = ts.strip() if ts else None
        if r.type == "multipart/related":
            part = r.params.get("type", "*/*").strip().lower()
            out.append(Wanted(part, True, ts))
        else:
            out.append(Wanted(r.type, r.type == "*/*", ts))
    return out


def accept_of(request: web.Request) -> str | None:
    """The `accept` query parameter (PS3.18 §8.3.3.1) overrides the Accept header when given;
    OHIF asks for `.../thumbnail?accept=image/jpeg` with a multipart Accept header."""
    return request.rel_url.query.get("accept") or request.headers.get("Accept")
