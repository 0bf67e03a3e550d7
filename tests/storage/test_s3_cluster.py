"""Two `archive serve` processes on one database and one bucket; one is killed with SIGKILL
mid-upload. Every acknowledged instance stays readable byte-exact through the other, no index
row points at a missing object, and the orphans the dead node left are swept at its restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from archive.index.engine import sync_url
from storage.s3 import S3BlobStore
from tests import factories as f
from tests.conftest import TEST_CURATOR_TOKEN, auth_headers, free_port
from tests.dicomweb.test_wado import parts
from tests.s3 import BUCKET

AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
ROOT = Path(__file__).resolve().parents[2]


class Node:
    """`archive serve` in its own process (so it can be killed like a crashed machine)."""

    def __init__(self, data: Path, database_url: str, storage: list[str]) -> None:
        self.data, self.db, self.storage = data, database_url, storage
        self.http, self.dimse = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}/dicom-web"

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "archive", "serve", "--data-dir", str(self.data),
               "--database-url", self.db, "--http-port", str(self.http), "--dimse-port",
               str(self.dimse), *self.storage]
        log = open(self.data / "serve.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                     env=os.environ | {"PYTHONPATH": str(ROOT),
                                                      "ARCHIVE_CURATOR_TOKEN": TEST_CURATOR_TOKEN})
        for _ in range(600):
            try:
                if requests.get(self.url + "/studies?limit=1", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            assert self.proc.poll() is None, (self.data / "serve.log").read_text()[-3000:]
            time.sleep(0.2)
        raise AssertionError("node did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)


def _sql(url: str, statement: str, *args: Any) -> list[Any]:
    import asyncio

    import asyncpg

    async def q() -> list[Any]:
        conn = await asyncpg.connect(sync_url(url))
        try:
            return list(await conn.fetch(statement, *args))
        finally:
            await conn.close()

    return asyncio.run(q())


def _stow(url: str, data: bytes) -> requests.Response:
    body = b"--B\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n--B--\r\n"
    return requests.post(url + "/studies", data=body, timeout=60, headers={
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=B',
        "Accept": "application/dicom+json", **auth_headers()})


def _client(node: Node, study: str, n: int, acked: dict[str, bytes], stop: threading.Event) -> None:
    for i in range(1, n + 1):
        if stop.is_set():
            return
        ds = f.image(study, "se1", i, rows=256, columns=256)
        data = f.to_bytes(ds)
        try:
            if _stow(node.url, data).status_code == 200:
                acked[ds.SOPInstanceUID] = data
        except requests.RequestException:
            return  # the node died under this request: not acknowledged


def test_kill_9_mid_upload_loses_nothing_acknowledged(
    seaweed: Any, database_url: str, tmp_path: Path
) -> None:
    prefix = f"kill9-{uuid.uuid4().hex[:8]}"
    storage = ["--storage", f"s3://{BUCKET}/{prefix}", "--s3-endpoint", seaweed.endpoint,
               "--s3-region", "us-east-1", "--s3-path-style"]
    db = database_url  # freshly migrated, empty
    a, b = Node(tmp_path / "a", db, storage), Node(tmp_path / "b", db, storage)
    a.start()
    b.start()
    acked: dict[str, bytes] = {}
    stop = threading.Event()
    clients = [threading.Thread(target=_client, args=(a, f"kill9-{k}", 60, acked, stop))
               for k in range(2)]
    try:
        for c in clients:
            c.start()
        deadline = time.monotonic() + 60
        while len(acked) < 6 and time.monotonic() < deadline:
            time.sleep(0.1)
        a.kill()  # mid-upload: both clients are sending
        stop.set()
        for c in clients:
            c.join(90)
        assert len(acked) >= 6
        for sop, data in acked.items():  # every acknowledged instance, through the other node
            rows = _sql(db, "SELECT st.study_uid, se.series_uid FROM instance i "
                                       "JOIN series se ON se.pk = i.series_pk JOIN study st ON "
                                       "st.pk = se.study_pk WHERE i.sop_uid = $1", sop)
            assert rows, sop
            url = (f"{b.url}/studies/{rows[0]['study_uid']}/series/{rows[0]['series_uid']}"
                   f"/instances/{sop}")
            got = requests.get(url, headers={"Accept": AS_STORED}, timeout=60)
            assert [p for _, p in parts(got)] == [data], sop
        store = S3BlobStore(f"s3://{BUCKET}/{prefix}", tmp_path / "check",
                            endpoint=seaweed.endpoint, region="us-east-1", path_style=True)
        indexed = {r["blob_key"] for r in _sql(db, "SELECT blob_key FROM instance")}
        assert indexed <= set(store.keys())  # no index row without its object
        print(f"acknowledged {len(acked)}, indexed {len(indexed)}, "
              f"objects left by the killed node {len(set(store.keys()) - indexed)}")
        a.start()  # the dead node comes back: its start-up sweep removes what it left behind
        assert set(store.keys()) == indexed
        store.close()
    finally:
        stop.set()
        a.stop()
        b.stop()

