#!/usr/bin/env python3
"""One command: the same load against this archive AND Orthanc, alternating, in one run.

    python -m bench.run                      # full data set (1,940 instances, 889 MB), ~30-40 min
    python -m bench.run --preset tiny        # smoke run (56 instances), a few minutes

Steps: snapshot the source tree (so edits during the run cannot change what is measured) →
generate the deterministic data set if missing → start our archive (embedded PostgreSQL, its
default deployment), Orthanc with its SQLite index and Orthanc with its PostgreSQL index →
for every ingest configuration run peerbench's `bench.py` against each server in turn (the order flips
every step), then every read phase the same way → machine ceilings (peerbench's `physical_limit.py`: an
fdatasync-only STOW sink, a static file server) → `report.py` turns everything into ratios:
results.json, table.md and PNG plots in the output folder. Every server is started and stopped
here, by PID; nothing else on the machine is touched.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.scripts import GEN_DATA, HARNESS, PHYSICAL_LIMIT, PHYSICAL_TMP, dcmtk_storescu

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
SRC_DIRS = ("archive", "dicomweb", "dimse", "storage")  # archive/ holds the migrations


def log(*a: object) -> None:
    print("[{}] run:".format(time.strftime("%H:%M:%S")), *a, file=sys.stderr, flush=True)


class Server:
    """A server under test: start/reset/stop through its shell script, PIDs from its pid file."""

    def __init__(self, label: str, script: str, args: list[str], env: dict[str, str],
                 state_dir: str, http: int, dimse: int, aet: str) -> None:
        self.label, self.script, self.args = label, str(HERE / script), args
        self.env = dict(os.environ, **env)
        self.pid_file = os.path.join(state_dir, "server.pids")
        self.dicomweb = f"http://127.0.0.1:{http}/dicom-web"
        self.dimse = f"127.0.0.1:{dimse}:{aet}"
        self.reset_cmd = " ".join(f"{k}={v}" for k, v in env.items()) + f" {self.script} reset"

    def _sh(self, *cmd: str) -> None:
        subprocess.run([self.script, *cmd], env=self.env, check=True, stdout=sys.stderr)

    def start(self) -> None:
        self._sh("start", *self.args)

    def stop(self) -> None:
        subprocess.run([self.script, "stop"], env=self.env, check=False, stdout=sys.stderr)

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in Path(self.pid_file).read_text().split()]
        except (OSError, ValueError):
            return []


class PeakMemory(threading.Thread):
    """Samples the servers' memory every 0.2 s: peak RSS of the main process, peak PSS of the tree."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids, self.stop_flag = pids, threading.Event()
        self.peak_main_rss = self.peak_tree_pss = 0

    def run(self) -> None:
        while not self.stop_flag.wait(0.2):
            tree = _tree(self.pids)
            if self.pids:
                self.peak_main_rss = max(self.peak_main_rss, _mem(self.pids[0], "Rss"))
            self.peak_tree_pss = max(self.peak_tree_pss, sum(_mem(p, "Pss") for p in tree))

    def result(self) -> dict[str, float]:
        self.stop_flag.set()
        self.join()
        return {"peak_main_rss_MB": round(self.peak_main_rss / 1e6, 1),
                "peak_tree_pss_MB": round(self.peak_tree_pss / 1e6, 1)}


def _tree(roots: list[int]) -> set[int]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            kids.setdefault(int(stat[stat.rfind(")") + 2:].split()[1]), []).append(int(d))
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        p = stack.pop()
        if p not in seen and os.path.exists(f"/proc/{p}"):
            seen.add(p)
            stack.extend(kids.get(p, []))
    return seen


def _mem(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def snapshot_source(out: Path) -> dict[str, str]:
    """Copy the packages (migrations included) into OUT/src and run the archive from there."""
    src = out / "src"
    shutil.rmtree(src, ignore_errors=True)
    for d in SRC_DIRS:
        shutil.copytree(ROOT / d, src / d, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--short", "--", *SRC_DIRS],
                           capture_output=True, text=True).stdout.count("\n")
    return {"path": str(src), "git_head": head, "uncommitted_files": str(dirty)}


def contributor_key(ours: Server) -> str:
    """A contributor API key (site BENCH) on our archive as it is now (a reset empties its
    database): STOW-RS needs credentials since access control (issue 12)."""
    src = ours.env.get("ARCHIVE_SRC", str(ROOT))
    data_dir = Path(os.path.dirname(ours.pid_file), "data")
    out = subprocess.run([PY, "-m", "archive", "keys", "create", "--name", "bench", "--role",
                          "contributor", "--site", "BENCH", "--data-dir", str(data_dir)],
                         cwd=src, env=dict(ours.env, PYTHONPATH=src), capture_output=True,
                         text=True, check=True)
    return out.stdout.strip().splitlines()[-1].strip()


def harness(server: Server, data: str, phases: str, out: Path, a: argparse.Namespace,
            extra: list[str]) -> dict:
    cmd = [PY, str(HARNESS), "--dicomweb", server.dicomweb, "--dimse", server.dimse,
           "--data", data, "--phases", phases, "--label", server.label, "--out", str(out),
           "--server-pid-file", server.pid_file, "--storescu", a.storescu,
           "--concurrency", str(a.concurrency), "--qido-reps", str(a.qido_reps),
           "--qido-load-seconds", str(a.qido_load_seconds), "--wado-reps", str(a.wado_reps),
           "--wado-reps-small", str(a.wado_reps_small), "--timeout", str(a.timeout), *extra]
    log(f"{server.label}: {phases}")
    env = dict(os.environ, PEERBENCH_TOKEN=contributor_key(server)) \
        if server.label == "ours" else None
    mem = PeakMemory(server.pids())
    mem.start()
    t0 = time.time()
    with open(out.with_suffix(".log"), "w") as err:
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
    memory = mem.result()
    if p.returncode != 0 or not out.exists():
        log("harness failed for {} ({}), see {}".format(server.label, phases, out.with_suffix(".log")))
        return {"failed": True, "phases": phases}
    res = json.loads(out.read_text())
    res["memory"] = memory
    res["wall_s"] = round(time.time() - t0, 1)
    return res


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=["full", "tiny"], default="full")
    ap.add_argument("--data", help="data set folder (default /tmp/archive-bench-data[-tiny]; "
                                   "generated if missing)")
    ap.add_argument("--out", type=Path, help="output folder (default bench/results/<UTC timestamp>)")
    ap.add_argument("--servers", default="ours,orthanc-sqlite,orthanc-postgres")
    ap.add_argument("--ingest", default="stow_10x4,stow_1x1,storescu_x4,cstore_x4",
                    help="ingest runs for ours and orthanc-sqlite (stow_KxN, storescu_xN, cstore_xN)")
    ap.add_argument("--ingest-postgres", default="stow_10x4,storescu_x4",
                    help="ingest runs for orthanc-postgres")
    ap.add_argument("--sweep", default="1,2,8", help="extra STOW 10xN concurrencies (plot)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of the ingest runs")
    ap.add_argument("--read", default="qido;qido_load;wado_study;wado_all;wado_small,wado_instance",
                    help="read phases, ; between runs (a run may combine phases with ,)")
    ap.add_argument("--ceilings", default="disk,http", help="physical_limit parts to run ('' = none)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--qido-reps", type=int, default=30)
    ap.add_argument("--qido-load-seconds", type=float, default=10.0)
    ap.add_argument("--wado-reps", type=int, default=2)
    ap.add_argument("--wado-reps-small", type=int, default=30)
    ap.add_argument("--timeout", type=float, default=120.0, help="per-request timeout (s)")
    ap.add_argument("--storescu", default=dcmtk_storescu(),
                    help="DCMTK storescu (not pynetdicom's app of the same name)")
    ap.add_argument("--ours-database-url", help="PostgreSQL URL for ours (its database is re-created)")
    ap.add_argument("--no-snapshot", action="store_true", help="run ours from the checkout itself")
    return ap.parse_args(argv)


def servers(a: argparse.Namespace) -> list[Server]:
    out = []
    wanted = a.servers.split(",")
    if "ours" in wanted:
        args = ["--database-url", a.ours_database_url] if a.ours_database_url else []
        out.append(Server("ours", "ours.sh", args, {"ARCHIVE_SRC": a.src},
                          "/tmp/archive-bench-ours", 18142, 18143, "ARCHIVE"))
    if "orthanc-sqlite" in wanted:
        out.append(Server("orthanc-sqlite", "orthanc.sh", ["--tcp-nodelay"],
                          {"BENCH_ORTHANC_DIR": "/tmp/archive-bench-orthanc"},
                          "/tmp/archive-bench-orthanc", 18242, 18243, "ORTHANC"))
    if "orthanc-postgres" in wanted:
        out.append(Server("orthanc-postgres", "orthanc.sh", ["--tcp-nodelay", "--postgres"],
                          {"BENCH_ORTHANC_DIR": "/tmp/archive-bench-orthanc-pg", "HTTP_PORT": "18342",
                           "DICOM_PORT": "18343"},
                          "/tmp/archive-bench-orthanc-pg", 18342, 18343, "ORTHANC"))
    return out


def ingest_args(run: str) -> list[str]:
    kind, cfg = run.split("_", 1)
    if kind == "stow":
        return ["--stow-config", cfg]
    return ["--concurrency", cfg.lstrip("x")]


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: stop the servers
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = a.out or HERE / "results" / stamp
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    data = a.data or ("/tmp/archive-bench-data" + ("-tiny" if a.preset == "tiny" else ""))
    if not (Path(data) / "manifest.json").exists():
        log("generating data set in", data)
        gen = [PY, str(GEN_DATA), "--out", data]
        subprocess.run(gen + (["--preset", "tiny"] if a.preset == "tiny" else []), check=True,
                       stdout=subprocess.DEVNULL)
    source = {"path": str(ROOT), "git_head": "", "uncommitted_files": "?"}
    if not a.no_snapshot:
        source = snapshot_source(out)
    a.src = source["path"]
    meta = {"command": " ".join(["python", "-m", "bench.run", *(argv if argv is not None else sys.argv[1:])]),
            "started_utc": stamp, "data": data,
            "dataset": json.loads((Path(data) / "manifest.json").read_text()),
            "source": source,
            "machine": {"node": platform.node(), "cpus": os.cpu_count(), "kernel": platform.release(),
                        "cpu_model": _cpu_model(), "python": platform.python_version(),
                        "mem_GB": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                        "loadavg_at_start": os.getloadavg()},
            "orthanc": _orthanc_version()}
    results: dict = {"meta": meta, "runs": []}
    srv = servers(a)
    try:
        for s in srv:
            s.start()
        step = 0

        def record(s: Server, phase: str, res: dict) -> None:
            results["runs"].append({"server": s.label, "phase": phase, "result": res})
            (out / "results.json").write_text(json.dumps(results, indent=1, default=str))

        def alternate(runs: list[tuple[str, list[str], list[Server]]]) -> None:
            """Each run against each server in turn; the order flips from one run to the next."""
            nonlocal step
            for name, extra, who in runs:
                order = who if step % 2 == 0 else list(reversed(who))
                step += 1
                kind = name.split("_")[0]
                ingest = kind in ("stow", "storescu", "cstore")
                for s in order:
                    f = raw / f"{step:02d}-{s.label}-{name}.json"
                    more = ["--reset-cmd", s.reset_cmd] if ingest else []
                    if ingest and s.label == "ours":  # reset here: its API key must outlive it
                        s._sh("reset")
                        more = []
                    record(s, name, harness(s, data, kind if ingest else name, f, a, extra + more))

        main_two = [s for s in srv if s.label in ("ours", "orthanc-sqlite")]
        pg = [s for s in srv if s.label == "orthanc-postgres"]
        for _ in range(a.repeat):
            alternate([(run, ingest_args(run),
                        main_two + (pg if run in a.ingest_postgres.split(",") else []))
                       for run in a.ingest.split(",") if run])
        alternate([(f"stow_10x{n}", ["--stow-config", f"10x{n}"], main_two)
                   for n in a.sweep.split(",") if n])
        # read phases run on the data left by the last ingest (the harness re-sends it if incomplete)
        alternate([(ph, [], main_two) for ph in a.read.split(";") if ph])
    finally:
        for s in srv:
            s.stop()
    if a.ceilings:
        log("machine ceilings")
        skip = ",".join({"disk", "tcp", "http", "dimse"} - set(a.ceilings.split(",")))
        with open(out / "physical.log", "w") as err:
            subprocess.run([PY, str(PHYSICAL_LIMIT), "--data", data, "--tmp", PHYSICAL_TMP, "--out",
                            str(out / "physical.json"), "--repeat", "1", "--concurrency",
                            str(a.concurrency), "--stow-config", "10x4,1x1", "--skip", skip],
                           stdout=subprocess.DEVNULL, stderr=err, check=False)
        if (out / "physical.json").exists():
            results["physical"] = json.loads((out / "physical.json").read_text())
    results["meta"]["finished_utc"] = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    results["meta"]["loadavg_at_end"] = os.getloadavg()
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    subprocess.run([PY, "-m", "bench.report", str(out / "results.json")], check=False, cwd=ROOT)
    log("wrote", out)
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _orthanc_version() -> str:
    try:
        v = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\\n", "orthanc",
                            "orthanc-dicomweb", "orthanc-postgresql"], capture_output=True, text=True)
        return v.stdout.strip().replace("\n", "; ")
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
