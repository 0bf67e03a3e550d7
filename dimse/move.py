"""Placeholder: owned by the C-MOVE work."""

from __future__ import annotations

import asyncio
from typing import Any

from pynetdicom import AE

from archive.core import Core


def service(ae: AE, core: Core, loop: asyncio.AbstractEventLoop) -> list[tuple[Any, Any]]:
    return []
