"""A private PostgreSQL cluster (initdb + pg_ctl from /usr/lib/postgresql/*/bin) that a test may
stop and start at will — never the shared server other tests use."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise FileNotFoundError(f"{name} not found under /usr/lib/postgresql/*/bin")
    return found[-1]


class Cluster:
    """initdb'd in a temporary directory, listening on 127.0.0.1:<free port>."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="reliab-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N")
        self.start()
        self._run(_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  "archive")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/archive"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout)

    def start(self) -> None:
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir}"
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                  str(self.dir / "log"), "-w", "start")

    def stop(self, mode: str = "fast", timeout: int = 30) -> None:
        """Raises CalledProcessError if the server did not stop within `timeout` seconds."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-t", str(timeout), "-w",
                  "stop", timeout=timeout + 10)

    def request_stop(self, mode: str = "smart") -> None:
        """Ask the postmaster to stop and return at once (pg_ctl -W)."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-W", "stop")

    def running(self) -> bool:
        """The postmaster is up: `pg_ctl status` exits 0 (3 once it has stopped)."""
        cmd = [_bin("pg_ctl"), "-D", str(self.data), "status"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0

    def close(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", _bin("pg_ctl"), "-D", str(self.data),
                        "-m", "immediate", "stop"] if os.geteuid() == 0 else
                       [_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)
