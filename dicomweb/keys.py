"""Typed application keys shared by the DICOMweb handlers."""

from __future__ import annotations

import asyncio

from aiohttp import web

from archive.core import Core

CORE = web.AppKey("core", Core)
STOW_SLOTS = web.AppKey("stow_slots", asyncio.Semaphore)  # settings.max_stow_requests
