"""Issue 11.1: real senders' multipart boundaries over RFC 2046's 70 characters are accepted."""

from __future__ import annotations

import logging

import pytest
import requests

from tests import factories as f
from tests.conftest import RunningArchive, auth_headers


def _body(boundary: str, part: bytes) -> bytes:
    return (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part
            + f"\r\n--{boundary}--\r\n".encode())


def _post(server: RunningArchive, boundary: str, part: bytes) -> requests.Response:
    ctype = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return requests.post(f"{server.url}/studies", data=_body(boundary, part),
                         headers={"Content-Type": ctype, "Accept": "application/dicom+json",
                                  **auth_headers()},
                         timeout=60)


def test_orthanc_length_boundary_of_73_characters_is_accepted(server: RunningArchive) -> None:
    boundary = "0123456789abcdef" * 4 + "ORTHANC-D"  # 73 characters, as Orthanc 1.10 sends
    assert len(boundary) == 73
    ds = f.image("longb")
    r = _post(server, boundary, f.to_bytes(ds))
    assert r.status_code == 200, r.text
    assert server.sql("SELECT sop_uid FROM instance")[0]["sop_uid"] == ds.SOPInstanceUID


def test_boundary_over_the_cap_is_refused_and_logged_at_info(
    server: RunningArchive, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="dicomweb")
    r = _post(server, "b" * 201, f.to_bytes(f.image("toolong")))
    assert r.status_code == 400
    assert "boundary is too long" in r.json()["error"]
    refusals = [rec for rec in caplog.records if rec.name == "dicomweb" and rec.levelno == logging.INFO
                and getattr(rec, "status", None) == 400]
    assert refusals and "boundary is too long" in refusals[0].getMessage()
