"""glibc malloc, kept from hoarding: fewer arenas, free pages handed back to the kernel.

Measured with `archive.memtrace` under bench/soak.py (docs/operations.md "Soak test"): the
server's Python objects stayed flat (tracemalloc: a few MB) and so did the bytes malloc handed
out, while RSS climbed by ~40 MB in 11 minutes — following the memory glibc kept *free* inside
its arenas (10.8 → 46.6 MB, 58 MB at 24 minutes). Every thread that allocates (pynetdicom runs
each association in its own thread, the asyncio executor has several) gets one of up to
8 × cores arenas, a freed chunk is reused only by its own arena, and pages between live chunks
are never returned on their own.

Two documented knobs of glibc fix that, both applied by `archive serve` at start:
- `mallopt(M_ARENA_MAX, n)` (the MALLOC_ARENA_MAX environment variable, set from inside so a
  service file need not know): the threads share `n` arenas, so free chunks are reused;
- `malloc_trim(0)` every `malloc_trim_seconds`: returns every whole free page of every arena to
  the kernel (madvise), in a thread — ctypes releases the GIL, the event loop keeps running.

Both are no-ops on another C library (musl, macOS): they are looked up, not assumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
from collections.abc import AsyncIterator
from typing import Any

log = logging.getLogger("archive.allocator")
M_ARENA_MAX = -8  # glibc malloc.h


def _libc() -> Any | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    with contextlib.suppress(OSError):
        return ctypes.CDLL(name)
    return None


LIBC = _libc()


def is_glibc() -> bool:
    return LIBC is not None and hasattr(LIBC, "malloc_trim") and hasattr(LIBC, "mallopt")


def cap_arenas(n: int) -> bool:
    """At most `n` malloc arenas for threads created from now on (0: glibc's default)."""
    if n <= 0 or not is_glibc():
        return False
    assert LIBC is not None
    return bool(LIBC.mallopt(M_ARENA_MAX, n))


def trim() -> bool:
    """Give every whole free page of every arena back to the kernel; True if any was."""
    if not is_glibc():
        return False
    assert LIBC is not None
    return bool(LIBC.malloc_trim(0))


@contextlib.asynccontextmanager
async def tuned(arena_max: int, trim_seconds: float) -> AsyncIterator[None]:
    """Cap the arenas now, trim every `trim_seconds` (0: never) for the block's life."""
    cap_arenas(arena_max)
    if trim_seconds <= 0 or not is_glibc():
        yield
        return

    async def loop() -> None:
        while True:
            await asyncio.sleep(trim_seconds)
            await asyncio.to_thread(trim)

    task = asyncio.create_task(loop(), name="malloc-trim")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
