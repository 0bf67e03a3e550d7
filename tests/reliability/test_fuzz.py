"""Issue 13 fuzzing, bounded in time (each test ≤ ~30 s; `python -m bench.fuzz` for nightly
runs: ARCHIVE_FUZZ_LONG=1, random seeds, ARCHIVE_FUZZ_EXAMPLES examples). Hypothesis
generates the inputs; a real archive answers.

Invariants: never a 5xx, never a connection dropped without a response, no traceback or ERROR
in the log for input errors, and the archive answers /healthz (and C-ECHO) after each batch.
Each test prints its counts: tried / 4xx / 5xx (docs/operations.md lists a nightly run).
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive.errors import ArchiveError
from archive.instance import read_instance
from tests import factories as f
from tests.conftest import RunningArchive
from tests.reliability.test_bad_input import CT, body_of, part
from tests.reliability.test_dimse_limits import _associate_rq, _echo_ok

LONG = bool(os.environ.get("ARCHIVE_FUZZ_LONG"))
EXAMPLES = int(os.environ.get("ARCHIVE_FUZZ_EXAMPLES", "2000" if LONG else "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not LONG,
                suppress_health_check=list(HealthCheck))
SEED = f.to_bytes(f.image("fuzz", rows=8, columns=8))


@pytest.fixture
def counts(server: RunningArchive, caplog: pytest.LogCaptureFixture,
           request: pytest.FixtureRequest) -> Iterator[Counter[str]]:
    caplog.set_level(logging.INFO)
    c: Counter[str] = Counter()
    yield c
    assert requests.get(server.base + "/healthz", timeout=10).status_code == 200
    bad = [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    line = (f"{request.node.name}: tried {c['tried']}, 4xx {c['4xx']}, 5xx {c['5xx']}, "
            f"2xx {c['2xx']}, dropped {c['dropped']}")
    print("\n" + line)
    if os.environ.get("ARCHIVE_FUZZ_REPORT"):  # the nightly run collects the counts here
        with open(os.environ["ARCHIVE_FUZZ_REPORT"], "a") as out:
            out.write(line + "\n")
    assert c["5xx"] == 0 and c["dropped"] == 0, c
    assert not bad, bad[:5]


def _count(c: Counter[str], send: object) -> None:
    c["tried"] += 1
    try:
        r = send()  # type: ignore[operator]
    except requests.ConnectionError:
        c["dropped"] += 1
        return
    c[f"{r.status_code // 100}xx"] += 1


PARAM_KEYS = st.sampled_from([
    "PatientName", "PatientID", "StudyDate", "StudyTime", "ModalitiesInStudy", "PixelSpacing",
    "WindowCenter", "PatientWeight", "InstanceNumber", "SeriesNumber", "StudyInstanceUID",
    "AccessionNumber", "00100010", "0020000D", "ReferencedSeriesSequence.SeriesInstanceUID",
    "limit", "offset", "fuzzymatching", "includefield", "commons.site", "commons.case.age_at_index",
    "AcquisitionDateTime", "x", ""])
VALUES = st.one_of(st.text(max_size=40), st.sampled_from([
    "NaN", "inf", "-Infinity", "1e999", "*", "?", '""', "-", "20260101-", "-20260101",
    "1\\2\\3", "2147483648", "-1", "0x10", "1.2.3", "\\", "%", "'", "$.a", "a\x00b", "20261399"]))


@pytest.mark.fuzz
@FUZZ
@given(params=st.dictionaries(PARAM_KEYS, VALUES, max_size=4),
       level=st.sampled_from(["studies", "series", "instances"]))
def test_qido_parameters_never_5xx(server: RunningArchive, counts: Counter[str],
                                   params: dict[str, str], level: str) -> None:
    _count(counts, lambda: requests.get(f"{server.url}/{level}", params=params, timeout=30))


def _mutate(data: bytes, cuts: list[tuple[int, bytes]]) -> bytes:
    out = bytearray(data)
    for pos, junk in cuts:
        p = pos % (len(out) + 1)
        out[p:p + len(junk)] = junk
    return bytes(out)


MUTATIONS = st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=12)), max_size=4)
HEADER_LINES = st.lists(st.binary(max_size=60).filter(lambda b: b"\r\n" not in b), max_size=4)


@pytest.mark.fuzz
@FUZZ
@given(cuts=MUTATIONS, lines=HEADER_LINES, truncate=st.integers(0, 2000))
def test_stow_bodies_never_5xx(server: RunningArchive, counts: Counter[str],
                               cuts: list[tuple[int, bytes]], lines: list[bytes],
                               truncate: int) -> None:
    body = _mutate(body_of(part(SEED, *lines)), cuts)
    body = body[:len(body) - truncate] if truncate < len(body) else body
    _count(counts, lambda: requests.post(server.url + "/studies", data=body, timeout=60,
                                         headers={"Content-Type": CT}))


@pytest.mark.fuzz
@settings(max_examples=EXAMPLES * 5, deadline=None, database=None, derandomize=not LONG)
@given(cuts=MUTATIONS, truncate=st.integers(0, 400))
def test_dicom_header_reader_fails_only_with_a_reason(tmp_path_factory: pytest.TempPathFactory,
                                                      cuts: list[tuple[int, bytes]],
                                                      truncate: int) -> None:
    data = _mutate(SEED, [(p % 700, j) for p, j in cuts])  # the header, not the pixels
    data = data[:len(data) - truncate]
    path = tmp_path_factory.mktemp("fuzz") / "x.dcm"
    path.write_bytes(data)
    try:
        read_instance(path, len(data))
    except ArchiveError as exc:
        assert exc.reason


PDU_TYPES = st.sampled_from([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x00, 0x08, 0xFF])


@pytest.mark.fuzz
@settings(max_examples=max(10, EXAMPLES // 3), deadline=None, database=None,
          derandomize=not LONG, suppress_health_check=list(HealthCheck))
@given(associate=st.booleans(), pdu_type=PDU_TYPES, length=st.integers(0, 2**32 - 1),
       payload=st.binary(max_size=300))
def test_raw_pdus_never_break_the_listener(server: RunningArchive, counts: Counter[str],
                                           associate: bool, pdu_type: int, length: int,
                                           payload: bytes) -> None:
    host, port, aet = server.dimse
    counts["tried"] += 1
    with socket.create_connection((host, port), timeout=10) as s:
        if associate:
            s.sendall(_associate_rq(aet))
            s.recv(65536)
        try:
            s.sendall(struct.pack(">BBL", pdu_type, 0, length) + payload)
            s.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and s.recv(65536):
                pass  # the archive answers (A-ABORT / A-ASSOCIATE-RJ) or closes
        except OSError:
            pass
    counts["4xx"] += 1  # a refusal is the only acceptable outcome for a random PDU
    if counts["tried"] % 20 == 0:
        assert _echo_ok(server)
