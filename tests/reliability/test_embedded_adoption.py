"""Issue 13: after kill -9 of `archive serve`, a restarted archive adopts the orphaned embedded
PostgreSQL and stops it on a clean exit (pgserver's user list no longer counts the dead one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.archive.test_embedded import postgres_processes
from tests.conftest import free_port


def _serve(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    http, dimse = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "archive", "serve", "--data-dir", str(data_dir),
         "--http-port", str(http), "--dimse-port", str(dimse)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{http}"
    for _ in range(600):
        try:
            if requests.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("archive did not start")


def test_restart_after_kill_stops_the_adopted_postgres(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pg = data_dir / "postgres"
    first, _ = _serve(data_dir)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert postgres_processes(pg), "the orphaned PostgreSQL should still run after kill -9"
    second, base = _serve(data_dir)
    try:
        assert requests.get(base + "/readyz", timeout=10).status_code == 200
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    for _ in range(100):
        if not postgres_processes(pg):
            break
        time.sleep(0.1)
    leftover = postgres_processes(pg)
    for p in leftover:  # do not leak a server from a failing run
        p.kill()
    assert not leftover, "adopted embedded PostgreSQL left running"
