"""`archive serve` and `archive worker` as real processes (each in its own process group, so a
test can SIGKILL it like a crashed machine), plus small SQL and STOW helpers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from archive.index.engine import sync_url
from tests.conftest import TEST_CURATOR_TOKEN, auth_headers, free_port

ROOT = Path(__file__).resolve().parents[2]
STALLED_SECONDS = "2"  # a killed worker is found after 2 s without a heartbeat


class Proc:
    """One archive process: `serve` (with free HTTP/DIMSE ports) or `worker`."""

    def __init__(self, command: str, data: Path, database_url: str, *extra: str,
                 env: dict[str, str] | None = None) -> None:
        self.command, self.data, self.db, self.extra = command, data, database_url, extra
        self.env = env or {}
        self.http, self.dimse = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data / f"{command}-{self.http}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}/dicom-web"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def start(self, wait: bool = True) -> Proc:
        self.data.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "archive", self.command, "--data-dir", str(self.data),
               "--database-url", self.db, *self.extra]
        if self.command == "serve":
            cmd += ["--http-port", str(self.http), "--dimse-port", str(self.dimse)]
        out = open(self.log, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env=os.environ | {"PYTHONPATH": str(ROOT), "ARCHIVE_CURATOR_TOKEN": TEST_CURATOR_TOKEN,
                              "ARCHIVE_JOB_STALLED_SECONDS": STALLED_SECONDS,
                              "ARCHIVE_LOG_FORMAT": "human"} | self.env)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, seconds: float = 120) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.tail()
            if self.command == "worker":
                if "worker ready" in self.log.read_text(errors="replace"):
                    return
            else:
                try:
                    if requests.get(self.url + "/studies?limit=1", timeout=5).status_code == 200:
                        return
                except requests.RequestException:
                    pass
            time.sleep(0.2)
        raise AssertionError(f"{self.command} did not start:\n{self.tail()}")

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group: no clean-up runs, like a machine that died."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(30)


def sql(url: str, statement: str, *args: Any) -> list[Any]:
    import asyncpg

    async def q() -> list[Any]:
        conn = await asyncpg.connect(sync_url(url))
        try:
            return list(await conn.fetch(statement, *args))
        finally:
            await conn.close()

    return asyncio.run(q())


def stow(url: str, data: bytes, timeout: float = 60) -> requests.Response:
    body = b"--B\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n--B--\r\n"
    return requests.post(url + "/studies", data=body, timeout=timeout, headers={
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=B',
        "Accept": "application/dicom+json", **auth_headers()})


def set_mapping(node: Proc, modality: str, description: str, code: str,
                replace: bool = False) -> requests.Response:
    return requests.post(f"{node.base}/commons/mappings", timeout=60, headers=auth_headers(),
                         json={"modality": modality, "description": description,
                               "loinc_code": code, "replace": replace})


def wait_for(check: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")
