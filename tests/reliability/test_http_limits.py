"""Issue 13 HTTP limits against a real archive: part count and header size settings."""

from __future__ import annotations

from collections.abc import Callable

import requests

from tests import factories as f
from tests.conftest import TEST_CURATOR_TOKEN, RunningArchive
from tests.reliability.test_bad_input import body_of, part, stow


def test_part_count_and_header_size_limits(server_factory: Callable[..., RunningArchive]) -> None:
    server = server_factory(max_request_parts=2, http_max_header_bytes=1024)
    parts = [part(f.to_bytes(f.image("parts", number=i))) for i in range(1, 4)]
    r = stow(server, body_of(*parts))
    assert r.status_code == 413 and "parts" in r.json()["error"], r.text
    assert stow(server, body_of(*parts[:2])).status_code == 200
    r = stow(server, body_of(part(f.to_bytes(f.image("hdr")), b"X-Big: " + b"a" * 2000)))
    assert r.status_code == 400, r.text
    r = requests.get(server.url + "/studies", headers={"X-Big": "a" * 2000}, timeout=30)
    assert r.status_code in (400, 431), r.status_code
    assert requests.get(server.base + "/healthz", timeout=10).status_code == 200


def test_stalled_body_is_408(server_factory: Callable[..., RunningArchive]) -> None:
    """A truncated body no longer keeps the request waiting: 408 after the idle timeout."""
    import socket
    import time

    server = server_factory(http_body_idle_timeout=1.0)
    data = f.to_bytes(f.image("stall"))
    body = part(data)[: len(data) // 2]
    head = (f"POST /dicom-web/studies HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {TEST_CURATOR_TOKEN}\r\nContent-Type: "
            f'multipart/related; type="application/dicom"; boundary=B0UND\r\n'
            f"Content-Length: {len(data) * 2}\r\n\r\n").encode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.settings.http_port), timeout=30) as s:
        s.sendall(head + body)
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert time.monotonic() - started < 20
    assert not server.sql("SELECT 1 FROM instance")
