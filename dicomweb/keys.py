"""Typed application keys shared by the DICOMweb handlers."""

from __future__ import annotations

from aiohttp import web

from archive.core import Core

CORE = web.AppKey("core", Core)
