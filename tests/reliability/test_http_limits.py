"""Issue 13 HTTP limits against a real archive: part count and header size settings."""

from __future__ import annotations

from collections.abc import Callable

import requests

from tests import factories as f
from tests.conftest import RunningArchive
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
