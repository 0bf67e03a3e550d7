"""The only place association threads meet the asyncio loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import Any, TypeVar

import pynetdicom.dul

from archive.errors import ArchiveUnavailable

T = TypeVar("T")

# While a handler waits for the core, its association's DUL reactor has nothing to read (the peer
# waits for our answer) yet polls its queues and socket every millisecond; with a few associations
# waiting ~50 ms per instance that was ~1/3 of the C-STORE CPU and a constant fight for the GIL.
# During the wait it polls this slowly instead, and is woken the moment the handler returns.
QUIET_POLL_S = 0.25


def run(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], timeout: float = 600) -> T:
    """Run a core coroutine on the server loop from a pynetdicom thread and wait for it."""
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result(timeout)
    except FutureTimeout as exc:
        future.cancel()
        raise ArchiveUnavailable("archive did not answer in time") from exc


def run_quietly(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], assoc: Any, timeout: float = 600
) -> T:
    """`run`, with the association's DUL reactor idle (not polling) until the answer is ready."""
    with _quiet(assoc):
        return run(loop, coro, timeout)


class _WakeableClock:
    """Stands in for `time` inside pynetdicom.dul: a reactor's idle sleep can be cut short.

    pynetdicom's DUL reactor sleeps `_run_loop_delay` between polls with `time.sleep`; a thread
    carrying a `_archive_wake` Event sleeps on that Event instead, so `_quiet` can wake it.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        wake = getattr(threading.current_thread(), "_archive_wake", None)
        if wake is None:
            time.sleep(seconds)
        elif wake.wait(seconds):
            wake.clear()


def install() -> None:
    """Make pynetdicom's DUL reactors wakeable (idempotent; same behaviour for other threads)."""
    if not isinstance(pynetdicom.dul.time, _WakeableClock):
        pynetdicom.dul.time = _WakeableClock()  # type: ignore[assignment]


@contextmanager
def _quiet(assoc: Any) -> Iterator[None]:
    dul = getattr(assoc, "dul", None)
    delay = getattr(dul, "_run_loop_delay", None)
    if not isinstance(dul, threading.Thread) or not isinstance(delay, float):
        yield
        return
    wake: threading.Event = dul.__dict__.setdefault("_archive_wake", threading.Event())
    dul._run_loop_delay = max(delay, QUIET_POLL_S)  # type: ignore[attr-defined]
    try:
        yield
    finally:
        dul._run_loop_delay = delay  # type: ignore[attr-defined]
        wake.set()
