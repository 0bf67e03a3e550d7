#!/usr/bin/env python3
"""Ingest throughput: STOW-RS and C-STORE instances/s and MB/s on the generated data set, as JSON.

    python -m bench.ingest                       # starts a private archive (bench/ours.sh), full set
    python -m bench.ingest --preset tiny         # 56 instances, a smoke run
    python -m bench.ingest --dicomweb http://127.0.0.1:8080/dicom-web --dimse 127.0.0.1:11112:ARCHIVE \\
        --reset-cmd "..."                        # any running server (Orthanc too)

Runs peerbench's `bench.py` (STOW-RS K instances/request × N in flight, DCMTK storescu × N, pynetdicom × N),
each run on an emptied server, each checked afterwards through QIDO-RS, and prints one JSON object:
{"data": {...}, "runs": {"stow_10x4": {"instances_per_s", "MB_per_s", "server_cpu_ms_per_instance",
"verified", ...}, ...}}. The comparison with Orthanc lives in bench.run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.scripts import GEN_DATA, HARNESS, dcmtk_storescu

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=["full", "tiny"], default="full")
    ap.add_argument("--data", help="data set (default /tmp/archive-bench-data[-tiny], generated if missing)")
    ap.add_argument("--dicomweb", help="server under test; default: start our archive with bench/ours.sh")
    ap.add_argument("--dimse", help="HOST:PORT:AET of its C-STORE SCP")
    ap.add_argument("--reset-cmd", help="empties the server before each run (needed for several runs)")
    ap.add_argument("--server-pid-file", help="PIDs to sample server CPU from")
    ap.add_argument("--stow", default="10x4,1x1", help="STOW-RS runs, K instances/request × N in flight")
    ap.add_argument("--dimse-clients", default="storescu,cstore",
                    help="storescu (DCMTK), cstore (pynetdicom)")
    ap.add_argument("--concurrency", type=int, default=4, help="associations for C-STORE")
    ap.add_argument("--storescu", default=dcmtk_storescu(),
                    help="DCMTK storescu (not pynetdicom's app of the same name)")
    a = ap.parse_args(argv)
    data = a.data or "/tmp/archive-bench-data" + ("-tiny" if a.preset == "tiny" else "")
    if not (Path(data) / "manifest.json").exists():
        subprocess.run([sys.executable, str(GEN_DATA), "--out", data]
                       + (["--preset", "tiny"] if a.preset == "tiny" else []),
                       check=True, stdout=subprocess.DEVNULL)
    started = a.dicomweb is None
    if started:
        subprocess.run([str(HERE / "ours.sh"), "start"], check=True, stdout=sys.stderr)
        a.dicomweb = "http://127.0.0.1:{}/dicom-web".format(os.environ.get("OURS_HTTP_PORT", "18142"))
        a.dimse = "127.0.0.1:{}:ARCHIVE".format(os.environ.get("OURS_DICOM_PORT", "18143"))
        a.reset_cmd = "%s reset" % (HERE / "ours.sh")
        a.server_pid_file = os.path.join(os.environ.get("BENCH_OURS_DIR", "/tmp/archive-bench-ours"),
                                         "server.pids")
    phases = ["stow"] + [c for c in a.dimse_clients.split(",") if c and a.dimse]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ingest.json"
        cmd = [sys.executable, str(HARNESS), "--dicomweb", a.dicomweb, "--data", data,
               "--phases", ",".join(phases), "--stow-config", a.stow, "--concurrency",
               str(a.concurrency), "--storescu", a.storescu, "--out", str(out)]
        cmd += ["--dimse", a.dimse] if a.dimse else []
        cmd += ["--reset-cmd", a.reset_cmd] if a.reset_cmd else []
        cmd += ["--server-pid-file", a.server_pid_file] if a.server_pid_file else []
        try:
            subprocess.run(cmd, check=True, stdout=sys.stderr)
        finally:
            if started:
                subprocess.run([str(HERE / "ours.sh"), "stop"], check=False, stdout=sys.stderr)
        res = json.loads(out.read_text())
    print(json.dumps(summary(res), indent=1))
    return 0


def summary(res: dict) -> dict:
    runs = {}
    for label, rs in res["ingest"].items():
        r = rs[-1]
        sysm = r.get("system", {})
        runs[label] = {
            "instances_per_s": r["instances_per_s"], "MB_per_s": r["MB_per_s"],
            "instances_ok": r["instances_ok"], "instances_failed": r["instances_failed"],
            "wall_s": r["wall_s"],
            "server_cpu_ms_per_instance": round(1000 * sysm["server_cpu_s"] / r["instances_ok"], 2)
            if sysm.get("server_cpu_s") is not None and r["instances_ok"] else None,
            "machine_busy_pct": sysm.get("machine_busy_pct"),
            "others_busy_pct_est": sysm.get("others_busy_pct_est"),
            "verified": (r.get("verify") or {}).get("complete"),
        }
    return {"data": res["meta"]["dataset"], "target": res["meta"]["args"]["dicomweb"], "runs": runs}


if __name__ == "__main__":
    sys.exit(main())
