#!/usr/bin/env python3
"""Ingest, this archive vs Orthanc, in ONE run on the same data (issue 14): one command.

    python -m bench.ingest_vs_orthanc                  # ~440 instances, 174 MB; a few minutes
    python -m bench.ingest_vs_orthanc --repeat 2 --out bench/results/X

Starts a private archive (bench/ours.sh, embedded PostgreSQL, its default deployment) and a
private Orthanc (bench/orthanc.sh: /usr/sbin/Orthanc + libOrthancDicomWeb.so, SQLite index,
TCP_NODELAY, the scalability profile — as ../shared/peerbench does) on their own ports and state
folders, then for every path, each server in turn (the order flips every step), each on an
emptied server:

  stow_10x4     STOW-RS, 10 instances/request, 4 requests in flight
  storescu_x4   DCMTK storescu, 4 associations
  storescu_x1   DCMTK storescu, 1 association (a PACS sending one study)

and finally `archive import` of the same folder (beside the idle server, on its emptied data
directory). Traffic is peerbench's unchanged `bench.py` (bench/peerbench/), which checks through
QIDO-RS that every instance arrived. Reported per run: instances/s, server CPU ms per instance
(bench.py's /proc sample of the server process tree over the ingest window, and psutil's over the
whole run as a cross-check), peak RSS (psutil: main process, and the whole server tree), the ratio
archive/Orthanc and the fraction of this machine's fsync ceiling (peerbench's
`physical_limit.py` disk test: write every file, then fsync them all — the most a durable
archive could reach here). Load average is recorded at start and end: the machine is shared, so
figures are only comparable inside one run.

Writes OUT/results.json and OUT/table.md (default bench/results/<UTC stamp>-ingest-vs-orthanc/).
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
from typing import Any

import psutil

from bench.scripts import GEN_DATA, HARNESS, PHYSICAL_LIMIT, dcmtk_storescu

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
# A modest data set: 4 patients × 3 studies (CT 36 slices, MR, CR/DX 1024²), some JPEG-LS / RLE.
DATA_ARGS = ["--patients", "4", "--studies-per-patient", "3", "--instances-per-series", "36",
             "--xr-rows", "1024", "--xr-cols", "1024"]
GOALS = {"stow_10x4": 1.2, "storescu_x4": 1.0, "storescu_x1": 1.0, "import": 1.5}


def log(*a: object) -> None:
    print("[{}] ingest_vs_orthanc:".format(time.strftime("%H:%M:%S")), *a, file=sys.stderr,
          flush=True)


class Server:
    """A server under test, driven through its shell script; PIDs come from its pid file."""

    def __init__(self, label: str, script: str, args: list[str], env: dict[str, str],
                 state: str, http: int, dimse: int, aet: str) -> None:
        self.label, self.script, self.args = label, str(HERE / script), args
        self.env = dict(os.environ, **env)
        self.state = state
        self.dicomweb = f"http://127.0.0.1:{http}/dicom-web"
        self.dimse = f"127.0.0.1:{dimse}:{aet}"

    def sh(self, *cmd: str, check: bool = True) -> None:
        subprocess.run([self.script, *cmd], env=self.env, check=check, stdout=sys.stderr)

    def pids(self) -> list[int]:
        try:
            return [int(x) for x in Path(self.state, "server.pids").read_text().split()]
        except (OSError, ValueError):
            return []


class TreeSampler(threading.Thread):
    """psutil every 0.1 s over process trees: CPU (user+system, per PID the last value seen, so
    processes that end are still counted) and peak RSS (main process; whole tree)."""

    def __init__(self, roots: list[int]) -> None:
        super().__init__(daemon=True)
        self.roots, self.halt = roots, threading.Event()
        self.cpu_start: dict[int, float] = {}
        self.cpu_last: dict[int, float] = {}
        self.role: dict[int, str] = {}
        self.peak_main = self.peak_tree = 0
        self._sample()
        self.cpu_start = dict(self.cpu_last)

    def _procs(self) -> list[psutil.Process]:
        procs = []
        for pid in self.roots:
            try:
                p = psutil.Process(pid)
                procs += [p, *p.children(recursive=True)]
            except psutil.Error:
                continue
        return procs

    def _sample(self) -> None:
        tree = 0
        for i, p in enumerate(self._procs()):
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    rss = p.memory_info().rss
            except psutil.Error:
                continue
            self.cpu_last[p.pid] = t.user + t.system
            if p.pid not in self.role:
                self.role[p.pid] = _role(p)
            tree += rss
            if i == 0:
                self.peak_main = max(self.peak_main, rss)
        self.peak_tree = max(self.peak_tree, tree)

    def run(self) -> None:
        while not self.halt.wait(0.1):
            self._sample()

    def result(self) -> dict[str, Any]:
        self.halt.set()
        self.join()
        self._sample()
        by_role: dict[str, float] = {}
        for pid, v in self.cpu_last.items():
            role = self.role.get(pid, "main")
            by_role[role] = by_role.get(role, 0.0) + v - self.cpu_start.get(pid, 0.0)
        return {"psutil_cpu_s": round(sum(by_role.values()), 2),
                "psutil_cpu_s_by_process": {k: round(v, 2) for k, v in sorted(by_role.items())},
                "peak_main_rss_MB": round(self.peak_main / 1e6, 1),
                "peak_tree_rss_MB": round(self.peak_tree / 1e6, 1)}


def _role(p: psutil.Process) -> str:
    """main (the server), parse workers (multiprocessing children) or postgres."""
    try:
        if p.name().startswith("postgres"):
            return "postgres"
        return "workers" if any("multiprocessing" in a for a in p.cmdline()) else "main"
    except psutil.Error:
        return "main"


def harness_run(s: Server, path: str, data: str, out: Path, storescu: str,
                timeout: float) -> dict[str, Any]:
    """Empty the server, then one measured ingest of the whole data set through `path`."""
    s.sh("reset")
    env = dict(os.environ, PEERBENCH_TOKEN=contributor_key(s)) if s.label == "ours" else None
    kind, cfg = path.split("_", 1)
    extra = ["--stow-config", cfg] if kind == "stow" else ["--concurrency", cfg.lstrip("x")]
    cmd = [PY, str(HARNESS), "--dicomweb", s.dicomweb, "--dimse", s.dimse, "--data", data,
           "--phases", kind, "--label", s.label, "--out", str(out), "--storescu", storescu,
           "--server-pid-file", str(Path(s.state, "server.pids")), "--timeout", str(timeout),
           *extra]
    load = os.getloadavg()
    mem = TreeSampler(s.pids())
    mem.start()
    with open(out.with_suffix(".log"), "w") as err:
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
    sampled = mem.result()
    if p.returncode != 0 or not out.exists():
        log(f"harness failed: {s.label} {path}, see {out.with_suffix('.log')}")
        return {"failed": True}
    res = json.loads(out.read_text())
    runs = next(iter(res["ingest"].values()))
    r = runs[-1]
    sysm = r.get("system", {})
    ok = r["instances_ok"]
    return {
        "instances_per_s": r["instances_per_s"], "MB_per_s": r["MB_per_s"],
        "instances_ok": ok, "instances_failed": r["instances_failed"], "wall_s": r["wall_s"],
        "verified": (r.get("verify") or {}).get("complete"),
        "server_cpu_ms_per_instance": round(1000 * sysm["server_cpu_s"] / ok, 2)
        if sysm.get("server_cpu_s") is not None and ok else None,
        "psutil_cpu_ms_per_instance": round(1000 * sampled["psutil_cpu_s"] / ok, 2) if ok else None,
        "psutil_cpu_ms_per_instance_by_process": {
            k: round(1000 * v / ok, 2) for k, v in sampled["psutil_cpu_s_by_process"].items()}
        if ok else None,
        "machine_busy_pct": sysm.get("machine_busy_pct"),
        "others_busy_pct_est": sysm.get("others_busy_pct_est"),
        "loadavg_before": load, **sampled,
    }


def archive_cli(ours: Server, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m archive ARGS --data-dir …` beside the private archive (same source tree)."""
    src = ours.env.get("ARCHIVE_SRC", str(ROOT))
    return subprocess.run([PY, "-m", "archive", *args, "--data-dir", str(Path(ours.state, "data"))],
                          cwd=src, env=dict(ours.env, PYTHONPATH=src), capture_output=True,
                          text=True, check=True)


def contributor_key(ours: Server) -> str:
    """A contributor API key of site BENCH on the emptied archive: STOW-RS needs one (the
    ownership guard and audit events then run as for any contributing site)."""
    out = archive_cli(ours, "keys", "create", "--name", "bench", "--role", "contributor",
                      "--site", "BENCH")
    return out.stdout.strip().splitlines()[-1].strip()


def import_run(ours: Server, data: str, n: int) -> dict[str, Any]:
    """`archive import DATA` into the emptied data directory of the (idle) private archive."""
    ours.sh("reset")
    src = ours.env.get("ARCHIVE_SRC", str(ROOT))
    cmd = [PY, "-m", "archive", "import", "--data-dir", str(Path(ours.state, "data")),
           "--no-progress", data]
    env = dict(ours.env, PYTHONPATH=src)
    load = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=src, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    mem = TreeSampler([proc.pid, *ours.pids()[1:]])  # the import + the embedded PostgreSQL
    mem.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    sampled = mem.result()
    if proc.returncode != 0:
        log("archive import failed:", stdout[-500:], stderr[-500:])
    return {"instances_per_s": round(n / wall, 1), "wall_s": round(wall, 2),
            "output": stdout.strip().splitlines()[:1], "returncode": proc.returncode,
            "psutil_cpu_ms_per_instance": round(1000 * sampled["psutil_cpu_s"] / n, 2),
            "loadavg_before": load, **sampled}


def ceiling(data: str, out: Path) -> dict[str, Any]:
    """peerbench's physical_limit.py, disk part: write all files then fsync them all."""
    with open(out / "physical.log", "w") as err:
        subprocess.run([PY, str(PHYSICAL_LIMIT), "--data", data, "--tmp", "/tmp/ingest-bench-phys",
                        "--out", str(out / "physical.json"), "--repeat", "1",
                        "--skip", "tcp,http,dimse"], stdout=subprocess.DEVNULL, stderr=err,
                       check=False)
    try:
        disk = json.loads((out / "physical.json").read_text())["disk"][0]
    except (OSError, KeyError, IndexError, ValueError):
        return {}
    return {"batched_fsync_instances_per_s": disk["write_then_fsync_all"]["instances_per_s"],
            "fdatasync_each_instances_per_s": disk["write_fdatasync_each_file"]["instances_per_s"]}


def median(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def table(res: dict[str, Any]) -> str:
    """The ratio table (Markdown)."""
    meta, runs, ceil = res["meta"], res["runs"], res.get("ceiling", {})
    limit = ceil.get("batched_fsync_instances_per_s")

    def best(server: str, path: str, key: str) -> float | None:
        vals = [r["result"][key] for r in runs if r["server"] == server and r["path"] == path
                and r["result"].get(key) is not None]
        return round(median(vals), 2) if vals else None

    def frac(v: float | None) -> str:
        return f"{v / limit:.2f}" if v is not None and limit else "–"

    lines = [
        f"command: `{meta['command']}`  ",
        f"date: {meta['started_utc']} → {meta.get('finished_utc', '?')}  ",
        f"machine: {meta['machine']['cpus']} cores, {meta['machine']['cpu_model']}; SHARED with "
        f"other sessions — load average {meta['machine']['loadavg_at_start']} at start, "
        f"{meta.get('loadavg_at_end')} at end  ",
        f"data: {meta['dataset']['instances']} instances, "
        f"{meta['dataset']['bytes'] / 1e6:.0f} MB (peerbench gen_data.py {' '.join(DATA_ARGS)})  ",
        f"archive source: {meta['source']}; Orthanc: {meta['orthanc']}  ",
        f"fsync ceiling (physical_limit.py disk, write all + fsync all): {limit} instances/s; "
        f"fdatasync per file: {ceil.get('fdatasync_each_instances_per_s')} instances/s  ",
        f"median of {meta['repeat']} run(s) per cell",
        "",
        "| path | archive inst/s | Orthanc inst/s | ratio | goal | met | archive CPU ms/inst |"
        " Orthanc CPU ms/inst | archive peak RSS MB (main / tree) | Orthanc peak RSS MB |"
        " archive / ceiling | Orthanc / ceiling |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for path in meta["paths"]:
        a, o = best("ours", path, "instances_per_s"), best("orthanc", path, "instances_per_s")
        ratio = a / o if a and o else None
        goal = GOALS.get(path)
        lines.append(
            f"| {path} | {a} | {o} | {ratio:.2f}× | {f'≥ {goal}×' if goal else '–'} | "
            f"{'–' if goal is None else 'yes' if ratio >= goal else 'no'} | "
            f"{best('ours', path, 'server_cpu_ms_per_instance')} | "
            f"{best('orthanc', path, 'server_cpu_ms_per_instance')} | "
            f"{best('ours', path, 'peak_main_rss_MB')} / {best('ours', path, 'peak_tree_rss_MB')} | "
            f"{best('orthanc', path, 'peak_tree_rss_MB')} | {frac(a)} | {frac(o)} |"
            if ratio is not None else f"| {path} | {a} | {o} | – | | | | | | | | |")
    imp = [r["result"] for r in runs if r["path"] == "import"]
    stow = best("orthanc", "stow_10x4", "instances_per_s")
    if imp:
        rate = round(median([r["instances_per_s"] for r in imp]), 2)
        ratio = rate / stow if stow else None
        lines.append(
            f"| archive import (vs Orthanc STOW 10×4) | {rate} | {stow} | "
            f"{f'{ratio:.2f}×' if ratio else '–'} | ≥ 1.5× | "
            f"{'yes' if ratio and ratio >= 1.5 else 'no'} | "
            f"{round(median([r['psutil_cpu_ms_per_instance'] for r in imp]), 2)} (psutil, incl. start-up) |"
            f" – | {median([r['peak_main_rss_MB'] for r in imp])} / "
            f"{median([r['peak_tree_rss_MB'] for r in imp])} | – | {frac(rate)} | – |")
    lines += ["", "CPU ms/inst: server process tree (archive: main process + parse workers + "
              "embedded PostgreSQL; Orthanc: one process) over the ingest window, from /proc by "
              "peerbench bench.py; psutil's figure over the whole run (incl. the QIDO check) is in "
              "results.json. `archive import` rate includes its start-up (database, workers)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/tmp/ingest-bench-data",
                    help="data set folder (generated if missing)")
    ap.add_argument("--out", type=Path, help="output folder")
    ap.add_argument("--paths", default="stow_10x4,storescu_x4,storescu_x1")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each path against each server")
    ap.add_argument("--no-import", action="store_true", help="skip `archive import`")
    ap.add_argument("--no-ceiling", action="store_true", help="skip the fsync ceiling")
    ap.add_argument("--timeout", type=float, default=120.0, help="per-request timeout (s)")
    ap.add_argument("--storescu", default=dcmtk_storescu(), help="DCMTK storescu")
    ap.add_argument("--src", default=str(ROOT), help="archive source tree to run")
    a = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: stop the servers
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = a.out or HERE / "results" / f"{stamp}-ingest-vs-orthanc"
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    if not (Path(a.data) / "manifest.json").exists():
        log("generating data set in", a.data)
        subprocess.run([PY, str(GEN_DATA), "--out", a.data, *DATA_ARGS], check=True,
                       stdout=subprocess.DEVNULL)
    dataset = json.loads((Path(a.data) / "manifest.json").read_text())
    dataset = {k: v for k, v in dataset.items() if not isinstance(v, (list, dict))}
    def git_head(tree: str) -> str:
        return subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()

    head = git_head(a.src) or f"? (a snapshot; the bench tree is at {git_head(str(ROOT))})"
    dirty = subprocess.run(["git", "-C", a.src, "status", "--short", "--", "archive", "dicomweb",
                            "dimse", "storage"], capture_output=True, text=True).stdout.count("\n")
    paths = [p for p in a.paths.split(",") if p]
    cmdline = " ".join(["python", "-m", "bench.ingest_vs_orthanc",
                        *(argv if argv is not None else sys.argv[1:])])
    res: dict[str, Any] = {"meta": {
        "command": cmdline, "started_utc": stamp, "data": a.data, "dataset": dataset,
        "paths": paths, "repeat": a.repeat,
        "source": f"{a.src} @ {head}" + (f" + {dirty} uncommitted files" if dirty else ""),
        "orthanc": _orthanc_version(),
        "machine": {"cpus": os.cpu_count(), "cpu_model": _cpu_model(),
                    "kernel": platform.release(), "loadavg_at_start": os.getloadavg(),
                    "shared": True}}, "runs": []}
    ours = Server("ours", "ours.sh", [], {"ARCHIVE_SRC": a.src,
                                          "BENCH_OURS_DIR": "/tmp/ingest-bench-ours",
                                          "OURS_HTTP_PORT": "18442", "OURS_DICOM_PORT": "18443"},
                  "/tmp/ingest-bench-ours", 18442, 18443, "ARCHIVE")
    orthanc = Server("orthanc", "orthanc.sh", ["--tcp-nodelay"],
                     {"BENCH_ORTHANC_DIR": "/tmp/ingest-bench-orthanc", "HTTP_PORT": "18542",
                      "DICOM_PORT": "18543"}, "/tmp/ingest-bench-orthanc", 18542, 18543,
                     "ORTHANC")

    def save() -> None:
        (out / "results.json").write_text(json.dumps(res, indent=1, default=str))

    try:
        for s in (ours, orthanc):
            s.sh("start", *s.args)
        step = 0
        for _ in range(a.repeat):
            for path in paths:
                order = [ours, orthanc] if step % 2 == 0 else [orthanc, ours]
                step += 1
                for s in order:
                    log(f"{s.label}: {path}")
                    r = harness_run(s, path, a.data, raw / f"{step:02d}-{s.label}-{path}.json",
                                    a.storescu, a.timeout)
                    log(f"  {r.get('instances_per_s')} inst/s, "
                        f"{r.get('server_cpu_ms_per_instance')} ms CPU/inst, "
                        f"verified {r.get('verified')}")
                    res["runs"].append({"server": s.label, "path": path, "result": r})
                    save()
        if not a.no_import:
            orthanc.sh("stop", check=False)
            for _ in range(a.repeat):
                log("ours: archive import")
                r = import_run(ours, a.data, dataset["instances"])
                log(f"  {r['instances_per_s']} inst/s ({r['output']})")
                res["runs"].append({"server": "ours", "path": "import", "result": r})
                save()
    finally:
        for s in (ours, orthanc):
            s.sh("stop", check=False)
    if not a.no_ceiling:
        log("fsync ceiling (physical_limit.py disk)")
        res["ceiling"] = ceiling(a.data, out)
        shutil.rmtree("/tmp/ingest-bench-phys", ignore_errors=True)
    res["meta"]["finished_utc"] = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    res["meta"]["loadavg_at_end"] = os.getloadavg()
    save()
    (out / "table.md").write_text(table(res))
    print(table(res))
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
                            "orthanc-dicomweb"], capture_output=True, text=True)
        return v.stdout.strip().replace("\n", "; ")
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
