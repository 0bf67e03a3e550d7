"""Accept / Content-Type parsing and negotiation (PS3.18 §8.7)."""

from __future__ import annotations

from dataclasses import dataclass, field

from archive.errors import NotAcceptable


@dataclass(frozen=True, slots=True)
class MediaRange:
    type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    def matches(self, media_type: str) -> bool:
        if self.type in ("*/*", media_type):
            return True
        major = media_type.split("/")[0]
        return self.type == f"{major}/*"


def _split(text: str, sep: str) -> list[str]:
    """Split on `sep` outside double quotes."""
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [s.strip() for s in out if s.strip()]


def parse_media_type(text: str) -> MediaRange:
    parts = _split(text, ";")
    if not parts:
        return MediaRange("*/*")
    params: dict[str, str] = {}
    q = 1.0
    for p in parts[1:]:
        if "=" not in p:
            continue
        k, v = p.split("=", 1)
        k, v = k.strip().lower(), v.strip().strip('"')
        if k == "q":
            try:
                q = float(v)
            except ValueError:
                q = 0.0
        else:
            params[k] = v
    return MediaRange(parts[0].lower(), params, q)


def parse_accept(header: str | None) -> list[MediaRange]:
    """Media ranges ordered by preference; an absent header means */*."""
    if not header or not header.strip():
        return [MediaRange("*/*")]
    ranges = [parse_media_type(t) for t in _split(header, ",")]
    return sorted((r for r in ranges if r.q > 0), key=lambda r: -r.q)


def negotiate(header: str | None, offered: list[str]) -> str:
    """First offered media type the client accepts, else NotAcceptable (406)."""
    for r in parse_accept(header):
        for media in offered:
            if r.matches(media):
                return media
    raise NotAcceptable(f"cannot produce any of {header!r}; available: {', '.join(offered)}")
