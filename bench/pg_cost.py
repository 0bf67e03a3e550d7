"""PostgreSQL's CPU per ingested instance, broken down per statement and per trigger function.

    python -m bench.pg_cost                       # STOW-RS 10x4 of /tmp/ingest-bench-data
    python -m bench.pg_cost --runs 3 --out bench/results/X/pg_cost.json
    python -m bench.pg_cost --path storescu_x1    # DCMTK storescu, one association
    python -m bench.pg_cost --embedded            # the embedded PostgreSQL: its CPU only

The embedded PostgreSQL (pgserver's build) has no pg_stat_statements, so this starts a private
PostgreSQL cluster of the system's build (initdb in a temporary folder, its own port) with
pg_stat_statements (track = all: statements inside trigger functions too; track_utility off) and
track_functions = all, starts a private archive on it (bench/ours.sh --database-url) and, per
run, empties the archive, resets the statistics, drives peerbench's bench.py (one ingest path:
STOW-RS K×N or DCMTK storescu ×N) and reads back:

* PostgreSQL's CPU: utime+stime of the postmaster and every child, live or reaped (the
  postmaster's cutime/cstime), from /proc, over the ingest window; and the archive process's;
* per statement: calls, total execution time (ms per instance), rows, shared blocks hit/dirtied;
* per function (triggers): self and total time.

Times in pg_stat_statements are wall time inside the executor (planning excluded), so they add up
to less than the backend's CPU: the rest is parsing, protocol, commit (WAL flush) and idle waits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.scripts import dcmtk_storescu

HERE = Path(__file__).resolve().parent
HARNESS = HERE / "peerbench" / "bench.py"
PGBIN = Path("/usr/lib/postgresql/15/bin")
TICK = os.sysconf("SC_CLK_TCK")

CONF = """
listen_addresses = '127.0.0.1'
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
pg_stat_statements.track_utility = off
pg_stat_statements.track_planning = on
pg_stat_statements.max = 5000
track_functions = all
"""


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    if os.geteuid() != 0:
        return cmd
    return ["su", "postgres", "-c", " ".join(cmd)]


def start_cluster(folder: Path, port: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    data = folder / "pg"
    subprocess.run(_as_postgres([str(PGBIN / "initdb"), "-D", str(data), "-U", "postgres",
                                 "--auth=trust", "-E", "UTF8"]),
                   check=True, stdout=subprocess.DEVNULL)
    with open(data / "postgresql.conf", "a") as f:
        f.write(CONF + f"port = {port}\nunix_socket_directories = '{folder}'\n")
    subprocess.run(_as_postgres([str(PGBIN / "pg_ctl"), "-D", str(data), "-l",
                                 str(folder / "pg.log"), "-w", "start"]),
                   check=True, stdout=subprocess.DEVNULL)


def stop_cluster(folder: Path) -> None:
    subprocess.run(_as_postgres([str(PGBIN / "pg_ctl"), "-D", str(folder / "pg"), "-m", "fast",
                                 "stop"]), check=False, stdout=subprocess.DEVNULL)


def _cpu(pid: int, children: bool) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    t = int(f[11]) + int(f[12]) + ((int(f[13]) + int(f[14])) if children else 0)
    return t / TICK


def postmaster(folder: Path, embedded: bool) -> int:
    """The PID of the private cluster's postmaster, or of the archive's embedded one."""
    if embedded:
        return int((folder / "ours" / "server.pids").read_text().split()[1])
    return int((folder / "pg" / "postmaster.pid").read_text().split()[0])


def pg_cpu(pm: int) -> float:
    """CPU seconds of a cluster so far: postmaster (with its reaped children) + live children."""
    total = _cpu(pm, children=True)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            if ppid == pm:
                total += _cpu(int(entry.name), children=False)
    return total


STATEMENTS = """
SELECT queryid, toplevel, calls, plans, total_exec_time, total_plan_time, rows,
       shared_blks_hit, shared_blks_read, shared_blks_dirtied, wal_bytes,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)
ORDER BY total_exec_time DESC
"""
FUNCTIONS = ("SELECT funcname, calls, total_time, self_time FROM pg_stat_user_functions "
             "ORDER BY self_time DESC")


async def _query(url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


def _contributor_key(a: argparse.Namespace, folder: Path, env: dict[str, str]) -> str:
    """STOW-RS needs a contributor key (site BENCH), created on the emptied archive."""
    cmd = [sys.executable, "-m", "archive", "keys", "create", "--name", "bench", "--role",
           "contributor", "--site", "BENCH", "--data-dir", str(folder / "ours" / "data")]
    if not a.embedded:
        cmd += ["--database-url", f"postgresql://postgres@127.0.0.1:{a.port}/archive"]
    out = subprocess.run(cmd, cwd=a.src, env=env | {"PYTHONPATH": a.src}, capture_output=True,
                         text=True, check=True)
    return out.stdout.strip().splitlines()[-1].strip()


def one_run(a: argparse.Namespace, folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """Empty the archive, reset the statistics, STOW the data set, read the statistics."""
    admin = f"postgresql://postgres@127.0.0.1:{a.port}/postgres"
    db = f"postgresql://postgres@127.0.0.1:{a.port}/archive"
    subprocess.run([str(HERE / "ours.sh"), "reset"], check=True, env=env, stdout=sys.stderr)
    server = int((folder / "ours" / "archive.pid").read_text())
    pm = postmaster(folder, a.embedded)
    key = _contributor_key(a, folder, env)
    if not a.embedded:
        asyncio.run(_query(admin, "SELECT pg_stat_statements_reset()"))
        asyncio.run(_query(db, "SELECT pg_stat_reset()"))
    load = os.getloadavg()
    pg0, ar0, t0 = pg_cpu(pm), _cpu(server, True), time.time()
    out = folder / "bench.json"
    kind, cfg = a.path.split("_", 1)
    extra = ["--stow-config", cfg] if kind == "stow" else [
        "--concurrency", cfg.lstrip("x"), "--storescu", a.storescu,
        "--dimse", f"127.0.0.1:{a.dicom_port}:ARCHIVE"]
    subprocess.run([sys.executable, str(HARNESS), "--dicomweb",
                    f"http://127.0.0.1:{a.http_port}/dicom-web", "--data", a.data,
                    "--phases", kind, "--out", str(out), *extra,
                    "--server-pid-file", str(folder / "ours" / "server.pids"), "--no-echo"],
                   check=True, stdout=sys.stderr, env=env | {"PEERBENCH_TOKEN": key})
    pg1, ar1, t1 = pg_cpu(pm), _cpu(server, True), time.time()
    run = next(iter(json.loads(out.read_text())["ingest"].values()))[-1]
    n = run["instances_ok"]
    if not n:
        raise SystemExit(f"no instance stored: {run.get('errors')}")
    server_cpu = (run.get("system") or {}).get("server_cpu_s")
    result: dict[str, Any] = {
        "instances": n, "instances_per_s": run["instances_per_s"], "window_s": round(t1 - t0, 1),
        "load_average_before": load,
        "pg_cpu_ms_per_instance": round(1000 * (pg1 - pg0) / n, 3),
        "archive_main_cpu_ms_per_instance": round(1000 * (ar1 - ar0) / n, 3),
        # bench.py's figure: the server.pids trees (archive + parse workers, and the embedded
        # PostgreSQL when there is one) over the ingest window
        "server_cpu_ms_per_instance": round(1000 * server_cpu / n, 3) if server_cpu else None}
    if not a.embedded:
        result |= _statistics(admin, db, n)
    return result


def _statistics(admin: str, db: str, n: int) -> dict[str, Any]:
    stmts = asyncio.run(_query(admin, STATEMENTS, "archive"))
    funcs = asyncio.run(_query(db, FUNCTIONS))
    for s in stmts:
        s["exec_ms_per_instance"] = round(s["total_exec_time"] / n, 4)
        s["plan_ms_per_instance"] = round(s["total_plan_time"] / n, 4)
        s["queryid"] = str(s["queryid"])
    for f in funcs:
        f["self_ms_per_instance"] = round(f["self_time"] / n, 4)
    top = [s for s in stmts if s["toplevel"]]
    return {"statements_exec_ms_per_instance": round(sum(s["total_exec_time"] for s in top) / n, 3),
            "statements_plan_ms_per_instance": round(sum(s["total_plan_time"] for s in top) / n, 3),
            "statements": stmts[:40], "functions": funcs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="/tmp/ingest-bench-data")
    ap.add_argument("--path", default="stow_10x4",
                    help="stow_KxN (K instances/request, N in flight) or storescu_xN")
    ap.add_argument("--storescu", default=dcmtk_storescu(), help="DCMTK storescu")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--embedded", action="store_true",
                    help="the archive's embedded PostgreSQL: its CPU only, no statistics")
    ap.add_argument("--port", type=int, default=55433, help="the private cluster's port")
    ap.add_argument("--http-port", type=int, default=18652)
    ap.add_argument("--dicom-port", type=int, default=18653)
    ap.add_argument("--src", default=str(HERE.parent), help="archive source tree to run")
    ap.add_argument("--out", help="results JSON (default: stdout)")
    a = ap.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="pg-cost-"))
    env = os.environ | {"BENCH_OURS_DIR": str(folder / "ours"), "OURS_HTTP_PORT": str(a.http_port),
                        "OURS_DICOM_PORT": str(a.dicom_port), "ARCHIVE_SRC": a.src,
                        "PY": sys.executable}
    start = [str(HERE / "ours.sh"), "start"]
    try:
        if not a.embedded:
            start_cluster(folder, a.port)
            asyncio.run(_query(f"postgresql://postgres@127.0.0.1:{a.port}/postgres",
                               "CREATE EXTENSION pg_stat_statements"))
            start += ["--database-url", f"postgresql://postgres@127.0.0.1:{a.port}/archive"]
        subprocess.run(start, check=True, env=env, stdout=sys.stderr)
        runs = []
        for _ in range(a.runs):
            runs.append(one_run(a, folder, env))
            print(json.dumps({k: v for k, v in runs[-1].items()
                              if k not in ("statements", "functions")}), file=sys.stderr)
    finally:
        subprocess.run([str(HERE / "ours.sh"), "stop"], check=False, env=env, stdout=sys.stderr)
        if not a.embedded:
            stop_cluster(folder)
        shutil.rmtree(folder, ignore_errors=True)
    result = {"src": a.src, "path": a.path, "embedded": a.embedded, "runs": runs}
    text = json.dumps(result, indent=1, default=str)
    if a.out:
        Path(a.out).write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
