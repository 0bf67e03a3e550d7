"""kill -9 during a multi-client upload: every acknowledged instance survives, nothing dangles."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from tests import factories as f
from tests.conftest import TEST_CURATOR_TOKEN, RunningArchive, auth_headers, free_port
from tests.dicomweb.test_stow import multipart

pytestmark = pytest.mark.slow


def start_archive(data_dir: Path, db: str, http: int, dimse: int) -> subprocess.Popen[bytes]:
    env = os.environ | {"ARCHIVE_DATABASE_URL": db, "ARCHIVE_DATA_DIR": str(data_dir),
                        "ARCHIVE_HTTP_PORT": str(http), "ARCHIVE_DIMSE_PORT": str(dimse),
                        "ARCHIVE_CURATOR_TOKEN": TEST_CURATOR_TOKEN}
    log = os.environ.get("ARCHIVE_TEST_LOG", os.devnull)  # set to keep the server's log
    with open(log, "ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "archive", "serve"], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 90  # generous: a loaded CI machine restarts slowly
    while time.monotonic() < deadline:
        try:
            requests.post(f"http://127.0.0.1:{http}/dicom-web/studies", timeout=5)
            return proc
        except requests.RequestException:  # refused while starting, or slow to answer
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError("archive did not start")


def stow_client(url: str, n: int, tag: str, acked: dict[str, str], stop: threading.Event) -> None:
    for i in range(n):
        if stop.is_set():
            return
        data = f.to_bytes(f.image("crash", tag, i + 1, rows=128, columns=128))
        try:
            r = requests.post(url, data=multipart([data]), timeout=30, headers={
                "Content-Type": 'multipart/related; type="application/dicom"; boundary=XbOuNdArYx',
                **auth_headers()})
        except requests.RequestException:
            return
        if r.status_code == 200:
            acked[f.uid("crash", tag, i + 1, "sop")] = hashlib.sha256(data).hexdigest()


def dimse_client(port: int, n: int, acked: dict[str, str], stop: threading.Event) -> None:
    ae = AE(ae_title="CRASHSCU")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="ARCHIVE")
    if not assoc.is_established:
        return
    try:
        for i in range(n):
            if stop.is_set() or not assoc.is_established:
                return
            ds = f.image("crash", "dimse", i + 1, rows=128, columns=128)
            status = assoc.send_c_store(ds)
            if status and status.Status == 0:
                acked[ds.SOPInstanceUID] = "dimse"
    finally:
        if assoc.is_established:
            assoc.abort()


def test_kill_9_during_upload_loses_nothing_acknowledged(
    server: RunningArchive, tmp_path: Path
) -> None:
    # Reuse the fixture's fresh database, but run our own server process to kill.
    db, data_dir = server.database_url, tmp_path / "crash-data"
    http, dimse = free_port(), free_port()
    proc = start_archive(data_dir, db, http, dimse)
    acked: dict[str, str] = {}
    stop = threading.Event()
    url = f"http://127.0.0.1:{http}/dicom-web/studies"
    threads = [threading.Thread(target=stow_client, args=(url, 400, f"c{i}", acked, stop))
               for i in range(3)]
    threads.append(threading.Thread(target=dimse_client, args=(dimse, 400, acked, stop)))
    for t in threads:
        t.start()
    while len(acked) < 40:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop.set()
    for t in threads:
        t.join(60)
    assert len(acked) >= 40

    proc = start_archive(data_dir, db, http, dimse)  # restart: sweep runs before serving
    try:
        rows = {r["sop_uid"]: r for r in server.sql("SELECT sop_uid, blob_key, sha256 FROM instance")}
        blobs = data_dir / "storage" / "blobs"
        for sop, sha in acked.items():
            assert sop in rows, f"acknowledged {sop} missing after crash"
            path = blobs / rows[sop]["blob_key"][:2] / rows[sop]["blob_key"][2:4] / rows[sop]["blob_key"]
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            assert digest == rows[sop]["sha256"]
            if sha != "dimse":
                assert digest == sha
        on_disk = {p.name for p in blobs.glob("*/*/*")}
        assert on_disk == {r["blob_key"] for r in rows.values()}  # no dangling row, no orphan
        assert list((data_dir / "storage" / "spool").iterdir()) == []
        counts = server.sql("SELECT sum(num_instances) AS n FROM study")[0]["n"]
        assert counts == len(rows)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0


def test_sigterm_lets_in_flight_store_finish_and_exits_cleanly(
    server: RunningArchive, tmp_path: Path
) -> None:
    db, data_dir = server.database_url, tmp_path / "term-data"
    http, dimse = free_port(), free_port()
    proc = start_archive(data_dir, db, http, dimse)
    body = multipart([f.to_bytes(f.image("term", "se", i, rows=256, columns=256)) for i in range(1, 31)])
    result: dict[str, int] = {}

    def upload() -> None:
        r = requests.post(f"http://127.0.0.1:{http}/dicom-web/studies", data=body, timeout=60,
                          headers={"Content-Type":
                                   'multipart/related; type="application/dicom"; boundary=XbOuNdArYx',
                                   **auth_headers()})
        result["status"] = r.status_code

    t = threading.Thread(target=upload)
    t.start()
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    t.join(60)
    assert proc.wait(60) == 0
    assert result.get("status") == 200
    assert server.sql("SELECT count(*) AS n FROM instance")[0]["n"] == 30
