"""Issue 13 DIMSE limits against a real listener: a PDU announcing more than the maximum is
aborted before its bytes are read (server RSS stays flat), connections that never associate
are closed by ARTIM, the association limit leaves the listener usable afterwards, and one
calling AE title cannot take more than its share of associations."""

from __future__ import annotations

import socket
import struct
import time

import psutil
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from tests.conftest import RunningArchive


def _item(kind: int, value: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(value)) + value


def _associate_rq(called: str) -> bytes:
    """A minimal A-ASSOCIATE-RQ (PS3.8 §9.3.2) proposing Verification, built by hand so the
    test sends exactly these bytes."""
    context = struct.pack(">BBBB", 1, 0, 0, 0) + _item(0x30, Verification.encode()) \
        + _item(0x40, b"1.2.840.10008.1.2")
    body = struct.pack(">HH", 1, 0) + called.ljust(16).encode() + b"FUZZ".ljust(16) \
        + b"\0" * 32 + _item(0x10, b"1.2.840.10008.3.1.1.1") + _item(0x20, context) \
        + _item(0x50, _item(0x51, struct.pack(">L", 16384)))
    return struct.pack(">BBL", 0x01, 0, len(body)) + body


def _recv_pdu_type(s: socket.socket) -> int | None:
    try:
        head = s.recv(6)
    except (TimeoutError, ConnectionResetError):
        return None
    return head[0] if head else None


def _echo_ok(server: RunningArchive) -> bool:
    ae = AE(ae_title="CHECK")
    ae.add_requested_context(Verification)
    host, port, aet = server.dimse
    assoc = ae.associate(host, port, ae_title=aet)
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return int(status.Status) == 0


def test_oversized_pdu_is_aborted_and_memory_stays_bounded(server_factory) -> None:  # type: ignore[no-untyped-def]
    server: RunningArchive = server_factory(dimse_max_pdu=65536)
    proc = psutil.Process()  # the archive runs in this process (a thread of the test)
    before = proc.memory_info().rss
    host, port, aet = server.dimse
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(_associate_rq(aet))
        assert _recv_pdu_type(s) == 0x02  # A-ASSOCIATE-AC
        s.recv(65536)
        s.sendall(struct.pack(">BBL", 0x04, 0, 0x7FFFFFFF))  # P-DATA announcing 2 GiB
        sent, deadline = 0, time.monotonic() + 10
        try:
            while sent < 200 * 1024**2 and time.monotonic() < deadline:
                s.sendall(b"\0" * 1024**2)
                sent += 1024**2
        except OSError:
            pass  # aborted and closed by the archive: what we want
        growth = proc.memory_info().rss - before
    assert sent < 200 * 1024**2, "the archive kept reading a PDU over its maximum"
    assert growth < 64 * 1024**2, growth
    assert _echo_ok(server)


def test_silent_connections_are_closed_by_artim(server_factory) -> None:  # type: ignore[no-untyped-def]
    server: RunningArchive = server_factory(dimse_artim_timeout=1.0, dimse_max_associations=8)
    host, port, _ = server.dimse
    idle = [socket.create_connection((host, port), timeout=10) for _ in range(16)]
    try:
        time.sleep(3)
        closed = 0
        for s in idle:
            s.settimeout(5)
            try:
                closed += s.recv(1) == b""
            except OSError:
                closed += 1
        assert closed == len(idle)
        assert _echo_ok(server)
    finally:
        for s in idle:
            s.close()


def _associate(server: RunningArchive, calling: str):  # type: ignore[no-untyped-def]
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    host, port, aet = server.dimse
    return ae.associate(host, port, ae_title=aet)


def test_associations_per_calling_ae_are_limited(server_factory) -> None:  # type: ignore[no-untyped-def]
    """One calling AE title holding `dimse_max_associations_per_ae` associations gets the next
    one rejected (A-ASSOCIATE-RJ transient, service provider, local limit exceeded) while
    another AE still connects; a slot freed by a release is usable again."""
    server: RunningArchive = server_factory(dimse_max_associations_per_ae=2)
    held = [_associate(server, "GREEDY") for _ in range(2)]
    try:
        assert all(a.is_established for a in held)
        extra = _associate(server, "GREEDY")
        assert extra.is_rejected and not extra.is_established
        rj = extra.acceptor.primitive
        assert (rj.result, rj.result_source, rj.diagnostic) == (0x02, 0x03, 0x02), rj
        other = _associate(server, "OTHER")  # another AE is not locked out
        assert other.is_established and int(other.send_c_echo().Status) == 0
        other.release()
        assert int(held[0].send_c_echo().Status) == 0  # the held ones still work
        held.pop().release()
        deadline = time.monotonic() + 10
        again = _associate(server, "GREEDY")
        while not again.is_established and time.monotonic() < deadline:
            time.sleep(0.2)  # the released association's thread may still be winding down
            again = _associate(server, "GREEDY")
        assert again.is_established
        again.release()
    finally:
        for a in held:
            a.release()
    rejected = server.core.metrics.associations.labels("rejected")._value.get()
    assert rejected >= 1


def test_simultaneous_requests_of_one_ae_get_exactly_the_limit(server_factory) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    server: RunningArchive = server_factory(dimse_max_associations_per_ae=3)
    with ThreadPoolExecutor(8) as pool:
        assocs = list(pool.map(lambda _: _associate(server, "BURST"), range(8)))
    try:
        assert sum(a.is_established for a in assocs) == 3
        assert sum(a.is_rejected for a in assocs) == 5
    finally:
        for a in assocs:
            if a.is_established:
                a.release()
    assert _echo_ok(server)
