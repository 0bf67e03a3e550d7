"""Issue 13 HTTP connection timeouts (dicomweb/http_timeouts.py) against a real archive:
slowloris connections holding partial headers are answered 408 and closed after the
header-read timeout while normal clients are served, memory stays bounded, keep-alive idling is
not cut short, and a stalled JSON body on a non-STOW route gets 408."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import psutil
import requests

from dicomweb.http_timeouts import RESPONSE_408, TimedRequestHandler
from tests.conftest import TEST_CURATOR_TOKEN, RunningArchive

PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def _drain(s: socket.socket, wait: float) -> bytes:
    """Everything the server sends until it closes the connection (or `wait` passes)."""
    s.settimeout(wait)
    out = b""
    try:
        while chunk := s.recv(4096):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def _served(server: RunningArchive) -> bool:
    return requests.get(server.base + "/healthz", timeout=10).status_code == 200


def test_partial_header_connections_get_408_and_are_closed(
        server_factory: Callable[..., RunningArchive]) -> None:
    server = server_factory(http_header_read_timeout=3.0)
    port = server.settings.http_port
    proc = psutil.Process()  # the archive runs in this process (a thread of the test)
    before = proc.memory_info().rss
    held = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(PARTIAL)
            held.append(s)
        opened = time.monotonic()
        assert _served(server)  # a normal client meanwhile
        growth = proc.memory_info().rss - before
        assert growth < 48 * 1024**2, f"200 partial-header connections took {growth} bytes"
        answers = [_drain(s, 30) for s in held]  # each ends with EOF once closed
        elapsed = time.monotonic() - opened
    finally:
        for s in held:
            s.close()
    assert all(a == RESPONSE_408 for a in answers), {a[:60] for a in answers}
    assert elapsed < 25, elapsed  # closed by the 3 s timeout, not by a keep-alive hour
    assert _served(server)


def test_trickling_bytes_does_not_extend_the_header_timeout(
        server_factory: Callable[..., RunningArchive]) -> None:
    server = server_factory(http_header_read_timeout=2.0)
    with socket.create_connection(("127.0.0.1", server.settings.http_port), timeout=10) as s:
        s.sendall(PARTIAL)
        started, closed = time.monotonic(), False
        while time.monotonic() - started < 15 and not closed:
            try:
                s.sendall(b"a")  # one byte every 0.25 s: a classic slowloris
            except OSError:
                closed = True
                break
            s.settimeout(0.25)
            try:
                data = s.recv(4096)
                closed = data.startswith(b"HTTP/1.1 408") or data == b""
            except TimeoutError:
                pass
        assert closed and time.monotonic() - started < 10


def test_keep_alive_idle_is_not_a_header_timeout(
        server_factory: Callable[..., RunningArchive]) -> None:
    """Between requests the keep-alive timer rules; a later request's clock starts at its first
    byte, and its partial headers are timed out like the first request's."""
    server = server_factory(http_header_read_timeout=1.5)
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.settings.http_port), timeout=10) as s:
        s.sendall(request)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(3)  # idle for twice the header timeout
        s.sendall(request)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        s.sendall(PARTIAL)
        assert _drain(s, 15) == RESPONSE_408


def test_stalled_json_body_is_408(server_factory: Callable[..., RunningArchive]) -> None:
    """The body-idle backstop covers routes that read a whole body (not only STOW-RS)."""
    server = server_factory(http_body_idle_timeout=1.0)
    body = b'{"filters": {"commons.site": ["a"'
    head = (f"POST /commons/cohorts HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {TEST_CURATOR_TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body) * 4}\r\n\r\n").encode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.settings.http_port), timeout=30) as s:
        s.sendall(head + body)
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert time.monotonic() - started < 20
    assert _served(server)


def test_connections_use_the_timed_handler(server: RunningArchive) -> None:
    """Pins the aiohttp internals dicomweb/http_timeouts.py relies on (fails on an upgrade
    that changes them, rather than silently losing the timeouts)."""
    handler = TimedRequestHandler.__mro__[1]
    for attr in ("_messages", "_waiter", "_request_in_progress", "_force_close"):
        assert attr in handler.__slots__, attr  # type: ignore[attr-defined]
    assert callable(handler._handle_request)
    assert server.settings.http_header_read_timeout == 30.0
