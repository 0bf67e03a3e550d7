"""pynetdicom tuning the archive needs. pynetdicom's configuration is module-level (no per-AE
switch), so this is process-wide by nature: the composition root (`archive.server.running`)
applies it once before it starts a listener, and nothing else patches pynetdicom.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import queue
import select
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import pynetdicom.association
import pynetdicom.dimse_messages
import pynetdicom.dul
import pynetdicom.transport
from pynetdicom import _config
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import AssociationSocket

from dimse import codec
from dimse.limits import receive_limit

log = logging.getLogger("dimse")


def tune_pynetdicom() -> None:
    """Idempotent: chunked C-STORE receive, cheap context copies, big reads, association and
    DUL reactors that wait for work instead of polling, pydicom-free command sets and file meta
    where the bytes allow (`dimse.codec`)."""
    # receive C-STORE data sets into temp files, not memory
    _config.STORE_RECV_CHUNKED_DATASET = True
    if not isinstance(pynetdicom.dul.time, _DulClock):
        pynetdicom.dul.time = _DulClock()  # type: ignore[assignment]
        DULServiceProvider.run_reactor = _dul_reactor_woken(  # type: ignore[method-assign,assignment]
            DULServiceProvider.run_reactor)
        DULServiceProvider.kill_dul = _kill_dul_waking  # type: ignore[method-assign]
        DULServiceProvider.stop_dul = _stop_dul_waking  # type: ignore[method-assign]
    if not isinstance(pynetdicom.association.time, _ReactorClock):
        pynetdicom.association.time = _ReactorClock()  # type: ignore[assignment]
        Association._run_reactor = _run_reactor_woken(  # type: ignore[method-assign,assignment]
            Association._run_reactor)
        Association.kill = _kill_waking(Association.kill)  # type: ignore[method-assign,assignment]
    setattr(pynetdicom.transport, "deepcopy", _copy_contexts)  # noqa: B010 - see _copy_contexts
    AssociationSocket.recv = _recv  # type: ignore[method-assign]
    _install_codecs()


def _install_codecs() -> None:
    """`dimse.codec`'s byte-identical fast paths in front of the pydicom functions that
    `pynetdicom.dimse_messages` calls (its own names: nothing else in pynetdicom changes)."""
    messages: Any = pynetdicom.dimse_messages
    if getattr(messages, "_archive_codecs", False):
        return
    messages.encode = codec.fast_encode(messages.encode)
    messages.create_file_meta = codec.fast_create_file_meta(messages.create_file_meta)
    messages.write_file_meta_info = codec.fast_write_file_meta_info(messages.write_file_meta_info)
    messages._archive_codecs = True


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


class _Wake(Protocol):
    def set(self) -> None: ...


class _WakingQueue(queue.Queue):  # type: ignore[type-arg]
    """A Queue that sets its reactor's wake (an Event, or a `_DulWake`) on every put, except a
    put by the reactor thread itself when that reactor looks at its queues before it blocks
    (`_archive_owner`: the DUL reactor, see `_wait_for_work`): it is awake, and the wake would
    cost a pipe write, an extra select() and a read for each PDU it receives or sends."""

    _archive_wake: _Wake
    _archive_owner: int | None = None  # thread ident whose own puts need no wake

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        if self._archive_owner != threading.get_ident():
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


# The DUL reactor (`DULServiceProvider.run_reactor`, one thread per association) reads the
# socket. Between PDUs it slept `_run_loop_delay` (1 ms) and polled the socket with select(0)
# and its queues: ~1,000 wake-ups a second per association while a peer sends an instance,
# each taking the GIL from the event loop and the parse workers' results (profile:
# docs/performance.md). It now blocks in select() on the socket and a wake pipe, which the
# queues it serves (primitives from the association thread; `event_queue`) and kill/stop write
# to; the timeout keeps the checks nothing signals (ARTIM timer) at this granularity.
DUL_POLL_S = 0.05


class _DulWake:
    """A pipe that wakes one DUL reactor blocked in select() (`set` is thread-safe)."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)
        self.closed = False
        # set() may race the reactor's close(): never write to a closed (maybe reused) fd
        self._lock = threading.Lock()

    def set(self) -> None:
        with self._lock:
            if self.closed:
                return
            try:
                os.write(self.w, b"\0")
            except BlockingIOError:  # full: the reactor wakes anyway
                pass

    def drain(self) -> None:
        try:
            while os.read(self.r, 4096):
                pass
        except OSError:  # BlockingIOError: empty
            pass

    def close(self) -> None:
        with self._lock:
            self.closed = True
            os.close(self.r)
            os.close(self.w)


class _DulClock:
    """Stands in for `time` inside pynetdicom.dul: the reactor's idle sleep becomes a select()
    on its socket and wake pipe; every other sleep (e.g. `stop_dul` waiting in another thread)
    is unchanged."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        dul = threading.current_thread()
        wake = dul.__dict__.get("_archive_wake") if isinstance(dul, DULServiceProvider) else None
        if wake is None or sys._getframe(1).f_code.co_name != "run_reactor":
            time.sleep(seconds)
            return
        _wait_for_work(dul, wake, seconds)  # type: ignore[arg-type]


def _wait_for_work(dul: DULServiceProvider, wake: _DulWake, seconds: float) -> None:
    """Block until the peer sent something, another thread queued work, or DUL_POLL_S passed."""
    if dul._kill_thread or dul.to_provider_queue.queue or dul.event_queue.queue:
        return  # work queued before this thread looked: no sleep
    transport = dul.socket
    sock = getattr(transport, "socket", None)
    if sock is None or not getattr(transport, "_is_connected", False) or sock.fileno() < 0:
        time.sleep(seconds)  # no socket (yet, or any more): pynetdicom's own pace
        return
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return  # decrypted bytes already buffered: select() would not see them
    try:
        ready, _, _ = select.select([sock, wake.r], [], [], DUL_POLL_S)
    except (OSError, ValueError):  # closed under us: the reactor finds out on its next check
        return
    if wake.r in ready:
        wake.drain()


def _dul_reactor_woken(run: Callable[[DULServiceProvider], None],
                       ) -> Callable[[DULServiceProvider], None]:
    @functools.wraps(run)
    def wrapper(self: DULServiceProvider) -> None:
        wake = _DulWake()
        for q in (self.to_provider_queue, self.event_queue):
            if type(q) is queue.Queue:
                q.__class__ = _WakingQueue
                setattr(q, "_archive_wake", wake)  # noqa: B010 - a Queue made a _WakingQueue
                # this thread checks both queues before it blocks (_wait_for_work)
                setattr(q, "_archive_owner", threading.get_ident())  # noqa: B010
        setattr(self, "_archive_wake", wake)  # noqa: B010 - read by _DulClock.sleep
        try:
            run(self)
        finally:
            del self._archive_wake  # type: ignore[attr-defined]
            wake.close()  # later puts (a late primitive) find it closed and do nothing

    return wrapper


def _wake_dul(dul: DULServiceProvider) -> None:
    wake = dul.__dict__.get("_archive_wake")
    if wake is not None:
        wake.set()


def _kill_dul_waking(self: DULServiceProvider) -> None:
    """DULServiceProvider.kill_dul, waking the reactor so it ends now, not at its next poll."""
    self._kill_thread = True
    _wake_dul(self)


def _stop_dul_waking(self: DULServiceProvider) -> bool:
    """DULServiceProvider.stop_dul (stop the reactor if in Sta1), waking it."""
    if self.state_machine.current_state == "Sta1":
        self._kill_thread = True
        _wake_dul(self)
        while self.is_alive():
            time.sleep(self._run_loop_delay)
        return True
    return False


def let_dul_read(assoc: Association, wait_s: float = 0.05) -> None:
    """Give the association's DUL reactor a turn at its socket. pynetdicom's reactor reads the
    peer only when it has nothing left to send, so a C-FIND handler that keeps the send queue
    full (answers come 64 at a time) would not learn of a C-CANCEL until it had sent every
    answer. Called between batches: wait (bounded) until the queue is empty, then leave the
    GIL for a moment, in which the reactor reads what the peer sent."""
    outgoing = assoc.dul.to_provider_queue
    deadline = time.monotonic() + wait_s
    while outgoing.qsize() and time.monotonic() < deadline:
        time.sleep(0.0005)
    time.sleep(0.001)
