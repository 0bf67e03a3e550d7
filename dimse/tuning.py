"""pynetdicom tuning the archive needs. pynetdicom's configuration is module-level (no per-AE
switch), so this is process-wide by nature: the composition root (`archive.server.running`)
applies it once before it starts a listener, and nothing else patches pynetdicom.
"""

from __future__ import annotations

import copy
import functools
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pynetdicom.association
import pynetdicom.transport
from pynetdicom import _config
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import AssociationSocket

from dimse import bridge
from dimse.limits import receive_limit

log = logging.getLogger("dimse")


def tune_pynetdicom() -> None:
    """Idempotent: chunked C-STORE receive, cheap context copies, big reads, the loop bridge,
    association reactors that wait for work instead of polling."""
    # receive C-STORE data sets into temp files, not memory
    _config.STORE_RECV_CHUNKED_DATASET = True
    bridge.install()
    if not isinstance(pynetdicom.association.time, _ReactorClock):
        pynetdicom.association.time = _ReactorClock()  # type: ignore[assignment]
        Association._run_reactor = _run_reactor_woken(  # type: ignore[method-assign,assignment]
            Association._run_reactor)
        Association.kill = _kill_waking(Association.kill)  # type: ignore[method-assign,assignment]
    setattr(pynetdicom.transport, "deepcopy", _copy_contexts)  # noqa: B010 - see _copy_contexts
    AssociationSocket.recv = _recv  # type: ignore[method-assign]


def _copy_contexts(obj: Any, memo: dict[int, Any] | None = None) -> Any:
    """pynetdicom deep-copies the AE's ~200 presentation contexts for every association: ~50 ms of
    CPU (each UID re-validated by regex) before the first PDU is answered. A context only needs its
    own transfer-syntax list; UIDs are immutable strings and can be shared."""
    if isinstance(obj, list) and obj and all(type(c) is PresentationContext for c in obj):
        copies = []
        for cx in obj:
            dup = copy.copy(cx)
            dup._transfer_syntax = list(cx._transfer_syntax)
            copies.append(dup)
        return copies
    return copy.deepcopy(obj, memo)


_RECV_MAX = 1 << 20


def _recv(self: AssociationSocket, nr_bytes: int) -> bytearray:
    """AssociationSocket.recv taking as much as the kernel has, up to 1 MiB per call.

    pynetdicom reads a PDU 4 KiB at a time: ~110 `recv` calls per 450 KB instance, each one
    releasing and re-taking the GIL — behind a busy event loop a wait of up to the switch interval
    (5 ms) per call. Same semantics: fewer bytes only when the peer closed; memory grows with
    the bytes that actually arrive, not with the length a peer announces."""
    assoc = getattr(self, "assoc", None)
    limit = receive_limit(getattr(assoc, "ae", None))
    if limit and nr_bytes > limit:  # a PDU longer than we announced: abort, read nothing
        log.warning("PDU of %d bytes announced, over the limit of %d: aborting association",
                    nr_bytes, limit)
        return bytearray()  # short read: pynetdicom treats the PDU as invalid and aborts
    data = bytearray()
    while len(data) < nr_bytes:
        part = self.socket.recv(min(nr_bytes - len(data), _RECV_MAX))  # type: ignore[union-attr]
        if not part:
            break
        data += part
    return data


# An association's reactor thread (`Association._run_reactor`) sleeps 1 ms between checks of its
# queues: ~1,000 wake-ups a second per open association, each taking the GIL from the event loop.
# Measured: 4 idle associations cost 15.6 % of a core (≈5 ms of CPU per instance during storescu
# × 4, issue 14). Instead it now waits on an Event that the queues it checks set when something
# arrives (a decoded DIMSE message, an ACSE primitive: release, abort) and `kill()` sets; the
# timeout keeps the checks nothing signals (DUL thread ended, idle timeout) at this granularity.
REACTOR_POLL_S = 0.05
_REACTOR_SLEEP = 0.001  # pynetdicom's reactor poll (association.py `time.sleep(0.001)`)


class _WakingQueue(queue.Queue):  # type: ignore[type-arg]
    """A Queue that sets its association's wake Event on every put."""

    _archive_wake: threading.Event

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._archive_wake.set()


class _ReactorClock:
    """Stands in for `time` inside pynetdicom.association: the reactor's 1 ms sleep becomes a
    wait on the association's wake Event (other sleeps and all other functions unchanged)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        wake = getattr(threading.current_thread(), "_archive_wake", None)
        if wake is None or seconds != _REACTOR_SLEEP \
                or sys._getframe(1).f_code.co_name != "_run_reactor":
            time.sleep(seconds)
        elif wake.wait(REACTOR_POLL_S):
            wake.clear()  # the reactor checks its queues right after this returns


def _run_reactor_woken(run: Callable[[Association], None]) -> Callable[[Association], None]:
    @functools.wraps(run)
    def wrapper(self: Association) -> None:
        wake = threading.Event()
        for q in (self.dimse.msg_queue, self.dul.to_user_queue):
            if type(q) is queue.Queue:
                q.__class__ = _WakingQueue
                setattr(q, "_archive_wake", wake)  # noqa: B010 - a Queue made a _WakingQueue
        setattr(self, "_archive_wake", wake)  # noqa: B010 - read by _ReactorClock.sleep
        wake.set()  # whatever was queued before this point is checked at once
        run(self)

    return wrapper


def _kill_waking(kill: Callable[[Association], None]) -> Callable[[Association], None]:
    @functools.wraps(kill)
    def wrapper(self: Association) -> None:
        kill(self)
        wake = getattr(self, "_archive_wake", None)
        if wake is not None:
            wake.set()

    return wrapper
