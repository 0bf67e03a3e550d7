#!/usr/bin/env python3
"""Profile the archive's ingest paths with py-spy: where the server's CPU goes per path.

    python -m bench.profile_ingest                       # stow_10x4 and storescu_x4
    python -m bench.profile_ingest --paths storescu_x1 --out /tmp/prof
    python -m bench.profile_ingest --paths storescu_x1 --gil   # only GIL holders: CPU, not waits

Starts a private archive (bench/ours.sh, embedded PostgreSQL) on its own ports, and for each path
empties it, starts `py-spy record --subprocesses` on the archive process (main process and parse
workers; PostgreSQL is not Python and is not sampled) and drives the path with peerbench's
`bench.py`. Writes OUT/<path>.txt (py-spy's collapsed stacks) and OUT/<path>-summary.md: the share
of samples per area of the code (inclusive) and the top functions by own time — the summaries
quoted in docs/performance.md. Samples are wall-clock samples of running (not idle) threads, so
shares are shares of the archive's CPU time.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.ingest_vs_orthanc import DATA_ARGS, PY, Server, contributor_key
from bench.scripts import GEN_DATA, HARNESS, dcmtk_storescu

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# Areas (first match wins, checked from the leaf up): what a frame's file/function belongs to.
AREAS: list[tuple[str, str]] = [
    ("pydicom header parse (worker)", r"pydicom/"),
    ("JSON encode/decode", r"json/|orjson|_dumps|to_json"),
    ("pickle (worker results)", r"pickle|_ForkingPickler|_recv_bytes|multiprocessing/connection"),
    ("SQLAlchemy", r"sqlalchemy/"),
    ("asyncpg", r"asyncpg/"),
    ("aiohttp / multipart", r"aiohttp/|multipart"),
    ("pynetdicom", r"pynetdicom/"),
    ("hashing / spool / fsync", r"hashlib|storage/filesystem|spool|fsync|fdatasync"),
    ("audit / identity", r"archive/identity/"),
    ("logging", r"logging/"),
    ("asyncio / threads", r"asyncio/|threading|concurrent/futures|selectors"),
]


# Leaf frames that are waits, not work (py-spy counts some blocked threads as active under load).
IDLE = re.compile(r"selectors\.py|Condition\.wait|watch \(archive/workers\.py|"
                  r"sleep \(dimse/bridge\.py|_wait_for_work \(dimse/tuning\.py|"
                  r"SemLock\.__enter__|_ConnectionBase\.recv|Event\.wait|_worker \(concurrent|"
                  r"_run_reactor \(pynetdicom/association\.py:714\)|service_actions|^\?$")


def summarize(collapsed: Path, top: int = 25) -> str:
    """Collapsed stacks → Markdown: busy samples per process role, inclusive share per area,
    top own-time functions. Waits (IDLE leaf frames) are counted apart."""
    total = idle = 0
    role: collections.Counter[str] = collections.Counter()
    area: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        procs = [f for f in frames if f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("process ")]
        leaf = frames[-1] if frames else "?"
        if IDLE.search(leaf):
            idle += count
            continue
        total += count
        role["parse workers" if any("spawn_main" in p for p in procs) else "main process"] += count
        own[_short(leaf)] += count
        for frame in reversed(frames):
            hit = next((name for name, pat in AREAS if re.search(pat, frame)), None)
            if hit:
                area[hit] += count
                break
        else:
            area["other"] += count
    total = total or 1
    lines = [f"{total} busy samples ({idle} waiting samples left out)", "",
             "| process | share of busy samples |", "|---|---|"]
    lines += [f"| {name} | {100 * c / total:.1f} % |" for name, c in role.most_common()]
    lines += ["", "| area (leaf-most match) | share |", "|---|---|"]
    lines += [f"| {name} | {100 * c / total:.1f} % |" for name, c in area.most_common()]
    lines += ["", "| own time: function (file:line) | share |", "|---|---|"]
    lines += [f"| `{name}` | {100 * c / total:.1f} % |" for name, c in own.most_common(top)]
    return "\n".join(lines) + "\n"


def _short(frame: str) -> str:
    frame = re.sub(r"\(/[^)]*?/(site-packages|python3\.\d+|ingest|src[^/]*)/", "(", frame)
    return frame.replace("/tmp/", "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="/tmp/ingest-bench-data")
    ap.add_argument("--paths", default="stow_10x4,storescu_x4")
    ap.add_argument("--out", type=Path, default=Path("/tmp/ingest-profile"))
    ap.add_argument("--src", default=str(ROOT))
    ap.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    ap.add_argument("--gil", action="store_true",
                    help="sample only the thread holding the GIL (where a process's CPU goes)")
    ap.add_argument("--summarize", type=Path, nargs="*", help="only summarise these raw files")
    a = ap.parse_args(argv)
    if a.summarize:
        for raw in a.summarize:
            print(f"## {raw.stem}\n\n{summarize(raw)}")
        return 0
    pyspy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    a.out.mkdir(parents=True, exist_ok=True)
    if not (Path(a.data) / "manifest.json").exists():
        subprocess.run([PY, str(GEN_DATA), "--out", a.data, *DATA_ARGS], check=True,
                       stdout=subprocess.DEVNULL)
    ours = Server("ours", "ours.sh", [], {"ARCHIVE_SRC": a.src,
                                          "BENCH_OURS_DIR": "/tmp/ingest-prof-ours",
                                          "OURS_HTTP_PORT": "18642", "OURS_DICOM_PORT": "18643"},
                  "/tmp/ingest-prof-ours", 18642, 18643, "ARCHIVE")
    ours.sh("start")
    try:
        for path in [p for p in a.paths.split(",") if p]:
            ours.sh("reset")
            token = contributor_key(ours)
            raw = a.out / f"{path}.txt"
            spy = subprocess.Popen([pyspy, "record", "--subprocesses", "--nonblocking", "-r",
                                    str(a.rate), "-f", "raw", "-o", str(raw), "-p",
                                    str(ours.pids()[0]), *(["--gil"] if a.gil else [])],
                                   stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            kind, cfg = path.split("_", 1)
            extra = ["--stow-config", cfg] if kind == "stow" else ["--concurrency", cfg.lstrip("x")]
            subprocess.run([PY, str(HARNESS), "--dicomweb", ours.dicomweb, "--dimse", ours.dimse,
                            "--data", a.data, "--phases", kind, "--no-verify", "--storescu",
                            dcmtk_storescu(), "--out", str(a.out / f"{path}.json"), *extra],
                           env=dict(os.environ, PEERBENCH_TOKEN=token), check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
            spy.wait(60)
            if raw.exists():
                summary = summarize(raw)
                (a.out / f"{path}-summary.md").write_text(summary)
                print(f"## {path}\n\n{summary}")
    finally:
        ours.sh("stop", check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
