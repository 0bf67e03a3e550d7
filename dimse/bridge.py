"""The only place association threads meet the asyncio loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from archive.errors import ArchiveUnavailable

T = TypeVar("T")


def run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], timeout: float = 600) -> T:
    """Run a core coroutine on the server loop from a pynetdicom thread and wait for it.

    While the handler waits, its association's DUL reactor blocks in select() on the socket
    (the peer is waiting for our answer: nothing arrives), so the wait costs no polling
    (`dimse.tuning`)."""
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result(timeout)
    except FutureTimeout as exc:
        future.cancel()
        raise ArchiveUnavailable("archive did not answer in time") from exc
