"""Placeholder: owned by the qido work (routes added there)."""

from __future__ import annotations

from aiohttp import web


def routes(prefix: str) -> list[web.RouteDef]:
    return []
