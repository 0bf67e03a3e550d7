#!/usr/bin/env python3
"""What the audit trail costs ingest (STOW-RS) and QIDO-RS: the same load with it and without.

    python -m bench.audit_cost --database-url postgresql://postgres@127.0.0.1:5432/postgres
    python -m bench.audit_cost --rounds 3 --stow 200 --qido 400 --clients 4 --out result.md

A scratch database is created on the given server (dropped afterwards), the real archive
(`archive.server.running`) serves it from a thread of this process, and the load comes from a
separate client process (so client CPU does not count as the server's): STOW-RS of small
generated CT instances (10 per request) and QIDO-RS `/studies?PatientID=…` queries, each
`--clients` at a time. Rounds alternate audit on / off (on, off, off, on, …) so drift in the
machine's load hits both the same; each round reports throughput, p50/p95 latency, the server
process's CPU per request and the audit events written.

"Off" replaces the running writer's `record` with a no-op on the live server, which takes the
whole audit trail out of the path: building the event, queueing it, and the background batched
INSERTs into PostgreSQL. There is deliberately no `--audit-trail off` setting: an archive whose
audit can be switched off by configuration cannot answer "who saw study X" (issue 12.5), and
the figure is the same without one. The per-event cost of `record()` itself is also timed in a
tight loop (`record_us`), the part every request pays synchronously.

Timings on a shared machine are noisy: compare the on/off ratio of one run, not absolute
figures across runs; the load average at start and end is printed with the table.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import asyncpg

TOKEN = "audit-bench-curator-token"
PER_REQUEST = 10  # instances per STOW-RS request


# --- the client process ------------------------------------------------------------------------

def _instance(study: str, series: str, patient: str, n: int) -> bytes:
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = CTImageStorage, study, series
    ds.PatientID, ds.PatientName, ds.Modality, ds.InstanceNumber = patient, "Bench^Audit", "CT", n
    ds.StudyDate, ds.StudyDescription = "20260101", "audit bench"
    ds.Rows = ds.Columns = 32
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = (np.arange(32 * 32, dtype=np.uint16) * n).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _stow_body(round_id: str, request: int) -> tuple[bytes, str]:
    from pydicom.uid import generate_uid

    boundary = uuid.uuid4().hex
    study, series = generate_uid(), generate_uid()
    parts = [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
             + _instance(study, series, f"AB{round_id}-{request % 50}", n) + b"\r\n"
             for n in range(1, PER_REQUEST + 1)]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), boundary


def client(args: argparse.Namespace) -> None:
    """Send one phase's load and print {"seconds", "latencies"} as JSON (one process)."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    base = f"http://127.0.0.1:{args.port}/dicom-web"
    n = args.requests
    bodies = [_stow_body(args.round_id, i) for i in range(n)] if args.phase == "stow" else []
    local = threading.local()

    def one(i: int) -> float:
        session = getattr(local, "s", None) or requests.Session()
        local.s = session
        t0 = time.perf_counter()
        if args.phase == "stow":
            body, boundary = bodies[i]
            r = session.post(f"{base}/studies", data=body, timeout=120, headers={
                "Authorization": f"Bearer {TOKEN}", "Content-Type":
                f'multipart/related; type="application/dicom"; boundary={boundary}'})
        else:
            r = session.get(f"{base}/studies", timeout=60,
                            params={"PatientID": f"ABw-{i % 4}", "limit": "10"})
        if r.status_code != 200:
            raise SystemExit(f"{args.phase}: HTTP {r.status_code}: {r.text[:200]}")
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        latencies = list(pool.map(one, range(n)))
    print(json.dumps({"seconds": time.perf_counter() - t0, "latencies": latencies}))


# --- the server side ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    name = f"audit_bench_{uuid.uuid4().hex[:8]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(server_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def serving(url: str, data_dir: Path) -> Iterator[tuple[Any, Any]]:
    """The real archive on `url` in a background thread; yields (settings, core)."""
    from archive.config import Settings
    from archive.server import running

    settings = replace(Settings(), http_port=free_port(), dimse_port=free_port(),
                       data_dir=data_dir, database_url=url, log_level="WARNING",
                       curator_token=TOKEN)
    ready, errors = threading.Event(), []
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"], box["loop"] = stop, asyncio.get_running_loop()
        try:
            async with running(settings) as core:
                box["core"] = core
                ready.set()
                await stop.wait()
        except BaseException as exc:
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    ready.wait(180)
    if errors or "core" not in box:
        raise RuntimeError(f"archive did not start: {errors[:1]!r}")
    try:
        yield settings, box["core"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(90)


def run_phase(port: int, phase: str, requests_: int, clients: int, round_id: str
              ) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.audit_cost", "--client", "--port", str(port),
           "--phase", phase, "--requests", str(requests_), "--clients", str(clients),
           "--round-id", round_id]
    cpu0 = time.process_time()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    cpu = time.process_time() - cpu0
    if done.returncode != 0:
        raise RuntimeError(f"client failed: {done.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    out["server_cpu_s"] = cpu
    return out


def record_cost(writer: Any, n: int = 20_000) -> tuple[float, float, float]:
    """µs per `record()` of a typical STOW event, timed on the server's loop thread; then, per
    event, the server process's CPU and the wall time of writing them (the background batched
    INSERTs; PostgreSQL's own CPU is another process and not counted)."""
    from archive.identity.audit import AuditAction, AuditEvent
    from archive.identity.roles import Identity, Kind, Role

    who = Identity("gw", Role.CONTRIBUTOR, Kind.API_KEY, "SITE_A", "127.0.0.1")

    async def timed() -> tuple[float, float, float]:
        await writer.flush()
        events = [AuditEvent.now(AuditAction.INSTANCES_TRANSFERRED, who, study_uids=["1.2.3"],
                                 event_action="C", detail={"instances": 10}) for _ in range(n)]
        t0 = time.perf_counter()
        for e in events:
            writer.record(e)
        t1, cpu1 = time.perf_counter(), time.process_time()
        await writer.flush()
        return ((t1 - t0) / n * 1e6, (time.process_time() - cpu1) / n * 1e6,
                (time.perf_counter() - t1) / n * 1e6)

    return asyncio.run_coroutine_threadsafe(timed(), writer_loop(writer)).result(120)


def writer_loop(writer: Any) -> asyncio.AbstractEventLoop:
    task = writer._task  # the writer's background task runs on the server's loop
    return task.get_loop()


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table = []
    for phase in ("stow", "qido"):
        for audit in ("on", "off"):
            mine = [r for r in rows if r["phase"] == phase and r["audit"] == audit]
            lat = sorted(x for r in mine for x in r["latencies"])
            n = len(lat)
            secs = sum(r["seconds"] for r in mine)
            table.append({
                "phase": phase, "audit": audit, "requests": n,
                "req_per_s": n / secs, "instances_per_s": n * PER_REQUEST / secs
                if phase == "stow" else None,
                "p50_ms": statistics.median(lat) * 1e3, "p95_ms": lat[int(n * 0.95) - 1] * 1e3,
                "server_cpu_ms_per_req": sum(r["server_cpu_s"] for r in mine) / n * 1e3,
                "events_written": sum(r["events"] for r in mine)})
    return table


def markdown(table: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"# Audit trail cost on ingest and QIDO — {meta['date']}", "",
             f"Command: `{meta['command']}`  ", f"Load average at start / end: {meta['load_start']} "
             f"/ {meta['load_end']} (2 shared cores; timings under load)  ",
             f"Per audit event: `AuditWriter.record()` on the request path "
             f"{meta['record_us']:.2f} µs; the background batched INSERT "
             f"{meta['insert_cpu_us']:.1f} µs of server CPU ({meta['insert_us']:.0f} µs wall, "
             "PostgreSQL's work included)  ", "",
             "| phase | audit | requests | req/s | p50 ms | p95 ms | server CPU ms/req | "
             "audit events written |", "|---|---|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['phase']} | {r['audit']} | {r['requests']} | {r['req_per_s']:.1f} | "
                     f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['server_cpu_ms_per_req']:.2f} | "
                     f"{r['events_written']} |")
    lines.append("")
    for phase in ("stow", "qido"):
        on, off = (next(r for r in table if r["phase"] == phase and r["audit"] == a)
                   for a in ("on", "off"))
        lines.append(f"- {phase}: throughput with audit {on['req_per_s'] / off['req_per_s']:.1%} "
                     f"of without; p50 {on['p50_ms'] - off['p50_ms']:+.2f} ms; server CPU "
                     f"{on['server_cpu_ms_per_req'] - off['server_cpu_ms_per_req']:+.2f} ms/request")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", default=os.environ.get("ARCHIVE_TEST_DATABASE_URL"),
                    help="a PostgreSQL server where a scratch database may be created")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per audit mode")
    ap.add_argument("--stow", type=int, default=20, help="STOW-RS requests per round (10 instances each)")
    ap.add_argument("--qido", type=int, default=300, help="QIDO-RS requests per round")
    ap.add_argument("--clients", type=int, default=4, help="concurrent requests")
    ap.add_argument("--out", type=Path, help="also write the markdown table here")
    # the client process's own arguments
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--requests", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--round-id", default="0", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        client(args)
        return
    if not args.database_url:
        ap.error("--database-url (or ARCHIVE_TEST_DATABASE_URL) is needed")
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows: list[dict[str, Any]] = []
    with scratch_database(args.database_url) as url, TemporaryDirectory(
            prefix="archive-bench-audit-") as tmp, serving(url, Path(tmp) / "data") as (st, core):
        writer = core.audit
        real_record = writer.record
        # warm-up: pools, prepared statements, the first index pages
        run_phase(st.http_port, "stow", 4, args.clients, "w")
        run_phase(st.http_port, "qido", 40, args.clients, "w")
        modes = [("on", "off"), ("off", "on")]
        for rnd in range(args.rounds):
            for audit in modes[rnd % 2]:
                writer.record = real_record if audit == "on" else (lambda event: None)
                for phase, n in (("stow", args.stow), ("qido", args.qido)):
                    before = writer.written
                    out = run_phase(st.http_port, phase, n, args.clients, f"{rnd}{audit}")
                    asyncio.run_coroutine_threadsafe(writer.flush(), writer_loop(writer)).result(60)
                    rows.append(out | {"phase": phase, "audit": audit, "round": rnd,
                                       "events": writer.written - before})
                    print(f"round {rnd} audit {audit} {phase}: {n / out['seconds']:.1f} req/s",
                          file=sys.stderr)
        writer.record = real_record
        record_us, insert_cpu_us, insert_us = record_cost(writer)
    meta = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python -m bench.audit_cost " + " ".join(
                a for a in sys.argv[1:] if not a.startswith("postgresql")),
            "load_start": load_start, "load_end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "record_us": record_us, "insert_cpu_us": insert_cpu_us, "insert_us": insert_us}
    table = summarize(rows)
    text = markdown(table, meta)
    print(text)
    print(json.dumps({"meta": meta, "table": table}))
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
