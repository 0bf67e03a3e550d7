"""Issue 13: bad input gets a clear 4xx with a reason, never a 5xx, a dropped connection or a
traceback in the log — against a real archive (real PostgreSQL, real HTTP)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
import requests
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests import factories as f
from tests.conftest import RunningArchive, auth_headers

CT = 'multipart/related; type="application/dicom"; boundary=B0UND'


@pytest.fixture
def tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """Records logged with a traceback or at ERROR; a test asserts the list stays empty."""
    caplog.set_level(logging.INFO)
    found: list[logging.LogRecord] = []
    yield found
    found.extend(r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR)
    assert not found, [r.getMessage() for r in found]


def stow(server: RunningArchive, body: bytes) -> requests.Response:
    return requests.post(server.url + "/studies", data=body, timeout=60,
                         headers=auth_headers(**{"Content-Type": CT,
                                                 "Accept": "application/dicom+json"}))


def body_of(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--B0UND--\r\n"


def part(data: bytes, *header_lines: bytes) -> bytes:
    head = b"\r\n".join([b"Content-Type: application/dicom", *header_lines])
    return b"--B0UND\r\n" + head + b"\r\n\r\n" + data + b"\r\n"


DICOM = f.to_bytes(f.image("bad-input"))

MULTIPART_CASES = {
    "long part header": body_of(part(DICOM, b"X-Long: " + b"a" * 9000)),
    "2000 part headers": body_of(part(DICOM, *[b"X-H%d: v" % i for i in range(2000)])),
    "truncated part header": b"--B0UND\r\nContent-Type: application/dic",
    "header line without a colon": body_of(part(DICOM, b"no colon here")),
}


@pytest.mark.parametrize("name", list(MULTIPART_CASES))
def test_malformed_multipart_is_400(server: RunningArchive, tracebacks: list[object],
                                    name: str) -> None:
    r = stow(server, MULTIPART_CASES[name])
    assert r.status_code == 400, (r.status_code, r.text)
    assert "multipart" in r.json()["error"] or "header" in r.json()["error"]


@pytest.mark.parametrize("params", [{"PixelSpacing": "NaN"}, {"WindowCenter": "inf"},
                                    {"PatientWeight": "nan"}, {"PatientWeight": "-Infinity"},
                                    {"PatientName": "a\x00b"}])
def test_non_finite_or_nul_qido_values_are_400(server: RunningArchive, tracebacks: list[object],
                                               params: dict[str, str]) -> None:
    r = requests.get(server.url + "/instances", params=params, timeout=30)
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.json()["error"]


def test_nul_in_commons_filter_is_400(server: RunningArchive, tracebacks: list[object]) -> None:
    r = requests.get(server.base + "/commons/facets",
                     params={"field": "commons.site", "commons.site": "A\x00"}, timeout=30)
    assert r.status_code == 400, (r.status_code, r.text)
    r = requests.post(server.base + "/commons/cohorts", timeout=30,
                      json={"name": "x\x00", "filters": {"commons.site": "A\x00B"}})
    assert r.status_code in (400, 401, 403), (r.status_code, r.text)


def test_viewer_nul_path_is_404(server: RunningArchive, tracebacks: list[object]) -> None:
    r = requests.get(server.base + "/viewer/%00", timeout=30)
    assert r.status_code == 404, (r.status_code, r.text)


def _hostile(name: str, **attrs: object) -> Dataset:
    ds = f.image(name, rows=8, columns=8)
    for k, v in attrs.items():
        setattr(ds, k, v)
    return ds


def test_failure_reason_with_control_bytes_is_still_answered(server: RunningArchive,
                                                             tracebacks: list[object]) -> None:
    """A part whose failure reason quotes control bytes: the response is sent, others stored."""
    good = f.to_bytes(f.image("ctl-good"))
    bad = b"\x01\x02\x1b[31m\x7fnot dicom\x00\r\x0b" + b"\x00" * 200
    r = stow(server, body_of(part(good), part(bad)))
    assert r.status_code in (202, 409, 400), (r.status_code, r.text)
    assert all(32 <= ord(c) < 127 for c in r.headers.get("Warning", ""))
    assert server.sql("SELECT count(*) AS n FROM instance")[0]["n"] == 1


def _deep(depth: int) -> Dataset:
    ds = _hostile("deep")
    item = Dataset()
    top = item
    for _ in range(depth):
        inner = Dataset()
        item.ReferencedSeriesSequence = Sequence([inner])
        item = inner
    ds.ReferencedSeriesSequence = Sequence([top])
    return ds


def _hostile_cases() -> dict[str, bytes]:
    nul = _hostile("nul")
    nul.StudyDescription = "abc\x00def"
    nul.PatientName = "Doe\x00^John"
    big_is = _hostile("bigis")
    big_is.add_new(0x00200013, "IS", "99999999999")  # InstanceNumber > 2**31
    bad_ds = _hostile("dsnan")
    bad_ds.add_new(0x00181050, "DS", "nan")  # SliceThickness
    bad_ds.add_new(0x00101030, "DS", "inf")  # PatientWeight
    return {"nul": f.to_bytes(nul), "big IS": f.to_bytes(big_is), "DS nan": f.to_bytes(bad_ds),
            "deep": f.to_bytes(_deep(190))}


@pytest.mark.parametrize("name", ["nul", "big IS", "DS nan", "deep"])
def test_hostile_values_are_stored_or_refused_with_a_reason(
        server: RunningArchive, tracebacks: list[object], name: str) -> None:
    r = stow(server, body_of(part(_hostile_cases()[name])))
    assert r.status_code in (200, 409, 400), (r.status_code, r.text)
    text = r.text.lower()
    assert "internal error" not in text and "traceback" not in text
    if r.status_code == 200:
        q = requests.get(server.url + "/instances", timeout=30)
        assert q.status_code == 200


def _store(server: RunningArchive, ds: Dataset) -> str:
    r = stow(server, body_of(part(f.to_bytes(ds))))
    assert r.status_code == 200, r.text
    return f"{server.url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}" \
           f"/instances/{ds.SOPInstanceUID}"


def _raw_get(server: RunningArchive, path: str, headers: str = "") -> bytes:
    """The raw response bytes of one GET on a fresh connection (to count status lines)."""
    with socket.create_connection(("127.0.0.1", server.settings.http_port), timeout=30) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n".encode())
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_huge_dimensions_with_tiny_pixels_fail_before_the_status_line(
        server: RunningArchive, tracebacks: list[object]) -> None:
    ds = _hostile("huge", Rows=65535, Columns=65535)
    ds.PixelData = b"\x00" * 128
    url = _store(server, ds)
    path = url.removeprefix(server.base)
    for suffix in ("/frames/1", "/rendered", "/thumbnail", "/frames/1/rendered"):
        raw = _raw_get(server, path + suffix, "Accept: */*\r\n")
        assert raw.count(b"HTTP/1.1 ") == 1, raw[:300]
        status = int(raw.split(b" ", 2)[1])
        assert 400 <= status < 500, raw[:300]


def test_zero_bits_allocated_renders_4xx(server: RunningArchive, tracebacks: list[object]) -> None:
    ds = _hostile("bits0", BitsAllocated=0, BitsStored=0, HighBit=0)
    url = _store(server, ds)
    for suffix in ("/rendered", "/thumbnail", "/frames/1/rendered"):
        r = requests.get(url + suffix, timeout=30)
        assert 400 <= r.status_code < 500, (suffix, r.status_code, r.text[:200])


def test_head_on_frames_logs_no_traceback(server: RunningArchive,
                                          tracebacks: list[object]) -> None:
    url = _store(server, f.image("head"))
    r = requests.head(url + "/frames/1", timeout=30)
    assert r.status_code in (200, 405, 406), r.status_code
    r = requests.head(url + "/frames/9", timeout=30)
    assert r.status_code in (404, 405), r.status_code


def test_empty_suffix_range_is_416(server: RunningArchive, tracebacks: list[object]) -> None:
    url = _store(server, f.image("range"))
    r = requests.get(url, headers={"Range": "bytes=-0", "Accept": "application/dicom"}, timeout=30)
    assert r.status_code in (200, 416), r.status_code
    r = requests.get(server.base + "/commons/openapi.json", headers={"Range": "bytes=-0"},
                     timeout=30)
    assert r.status_code in (200, 416), r.status_code
