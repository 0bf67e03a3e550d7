"""Absolute URLs for RetrieveURL and BulkDataURI: the base a client can actually reach.

Order of precedence (issue 11.4):
1. `--public-url`, the externally visible base, when configured;
2. `Forwarded` (RFC 7239) or `X-Forwarded-{Proto,Host,Port,Prefix}`, but only when the
   connection comes from a `--trusted-proxies` address (anyone else could spoof them);
3. the address and port the connection arrived on (never the Host header, which clients such as
   dicomweb-client may send without the port).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from aiohttp import web

from dicomweb.keys import CORE

ROOT = "/dicom-web"


def base_url(request: web.Request) -> str:
    """`scheme://host[:port][/prefix]` as the client sees it."""
    settings = request.app[CORE].settings
    if settings.public_url:
        return settings.public_url
    if _trusted(request.remote, settings.trusted_proxies):
        forwarded = forwarded_base(request.headers)
        if forwarded:
            return forwarded
    return listening_base(request)


def listening_base(request: web.Request) -> str:
    """The scheme, local address and port of this connection."""
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    if not sock:
        return f"{request.scheme}://{request.host}"
    host, port = str(sock[0]), int(sock[1])
    if ":" in host:
        host = f"[{host}]"
    return f"{request.scheme}://{host}:{port}"


def _trusted(peer: str | None, proxies: tuple[str, ...]) -> bool:
    if not peer or not proxies:
        return False
    try:
        addr = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(net) for net in proxies)


def forwarded_base(headers: Mapping[str, str]) -> str | None:
    """The client-facing base from a trusted proxy's headers; None when it sent none."""
    proto = host = None
    if "Forwarded" in headers:
        first = _forwarded_pairs(headers["Forwarded"].split(",")[0])
        proto, host = first.get("proto"), first.get("host")
    proto = proto or _first(headers.get("X-Forwarded-Proto"))
    host = host or _first(headers.get("X-Forwarded-Host"))
    if not host:
        return None
    port = _first(headers.get("X-Forwarded-Port"))
    if port and port.isdigit() and not _has_port(host):
        host = f"{host}:{port}"
    prefix = (headers.get("X-Forwarded-Prefix") or "").rstrip("/")
    return f"{proto or 'http'}://{host}{prefix}"


def _forwarded_pairs(element: str) -> dict[str, str]:
    """`for=…;proto=https;host="a:443"` → {"for": …, "proto": "https", "host": "a:443"}."""
    out = {}
    for pair in element.split(";"):
        name, sep, value = pair.partition("=")
        if sep:
            out[name.strip().lower()] = value.strip().strip('"')
    return out


def _first(value: str | None) -> str | None:
    return value.split(",")[0].strip() or None if value else None


def _has_port(host: str) -> bool:
    return host.rsplit("]", 1)[-1].count(":") == 1 if host.startswith("[") else ":" in host


def service_root(request: web.Request) -> str:
    """The DICOMweb root this request came through (a cohort root keeps its own prefix)."""
    root = request.match_info.get("root_prefix", "")
    if not root and request.match_info.get("cohort"):  # a cohort root (dicomweb/commons_api.py)
        root = f"/commons/cohorts/{request.match_info['cohort']}"
    return f"{base_url(request)}{root}{ROOT}"


def study_url(root: str, study: str) -> str:
    return f"{root}/studies/{study}"


def series_url(root: str, study: str, series: str) -> str:
    return f"{root}/studies/{study}/series/{series}"


def instance_url(root: str, study: str, series: str, sop: str) -> str:
    return f"{root}/studies/{study}/series/{series}/instances/{sop}"
