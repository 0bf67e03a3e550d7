"""`archive serve` with no database URL runs (and stops) an embedded PostgreSQL in the data dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests
from dicomweb_client.api import DICOMwebClient

from tests import factories as f
from tests.conftest import TEST_CURATOR_TOKEN, auth_headers, free_port


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "postgres" in (p.info["name"] or "") and str(data_dir) in cmd:
            found.append(p)
    return found


def test_serve_without_database_url_uses_embedded_postgres(tmp_path: Path) -> None:
    data_dir, http, dimse = tmp_path / "data", free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_")}
    env["ARCHIVE_CURATOR_TOKEN"] = TEST_CURATOR_TOKEN
    log_path = tmp_path / "serve.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "archive", "serve", "--data-dir", str(data_dir),
         "--http-port", str(http), "--dimse-port", str(dimse)],
        env=env, stdout=subprocess.DEVNULL, stderr=log)

    def said() -> str:  # the server's own words, for a failure message
        return log_path.read_text(errors="replace")[-3000:]

    try:
        url = f"http://127.0.0.1:{http}/dicom-web"
        for _ in range(300):
            assert proc.poll() is None, f"archive serve exited {proc.returncode}:\n{said()}"
            try:
                requests.post(url + "/studies", timeout=1)
                break
            except (requests.ConnectionError, requests.Timeout):  # not up, or busy starting
                time.sleep(0.1)
        result = DICOMwebClient(url, headers=auth_headers()).store_instances([f.image("emb")])
        assert len(result.ReferencedSOPSequence) == 1
        assert (data_dir / "postgres" / "PG_VERSION").exists()
        assert postgres_processes(data_dir / "postgres")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        log.close()
    assert code == 0, said()
    for _ in range(50):
        if not postgres_processes(data_dir / "postgres"):
            break
        time.sleep(0.1)
    assert not postgres_processes(data_dir / "postgres"), "embedded PostgreSQL left running"


def test_embedded_postgres_that_cannot_start_is_one_line_with_initdbs_reason(tmp_path: Path) -> None:
    """initdb refusing (here: a stray file in the cluster's directory) is a problem the user can
    fix: one line naming the program and what it said, exit code 2 — not a traceback."""
    data_dir = tmp_path / "data"
    (data_dir / "postgres").mkdir(parents=True)
    (data_dir / "postgres" / "stray.txt").write_text("not a cluster")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_")}
    done = subprocess.run(
        [sys.executable, "-m", "archive", "serve", "--data-dir", str(data_dir),
         "--http-port", str(free_port()), "--dimse-port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("archive: the embedded PostgreSQL could not start (initdb exited with 1: ")
    assert "exists but is not empty" in last and "--database-url" in last
    assert "Traceback" not in done.stderr
