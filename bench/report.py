#!/usr/bin/env python3
"""Turn one bench.run results.json into ratios: ratios.json, table.md and PNG plots.

    python -m bench.report bench/results/<stamp>/results.json

Every figure is "ours as a multiple of Orthanc's speed" (higher is better): throughput ratios are
ours/Orthanc, latency ratios Orthanc p50 / ours p50. Targets are those of issue 6.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

REF, PG = "orthanc-sqlite", "orthanc-postgres"

# (metric key, label, target vs Orthanc SQLite, target vs Orthanc PostgreSQL)
INGEST = [
    ("stow_10x4", "STOW-RS 10 inst/request × 4", 1.2, 2.5),
    ("stow_1x1", "STOW-RS 1 inst/request × 1", None, None),
    ("storescu_x4", "C-STORE DCMTK storescu × 4", 1.0, 2.0),
    ("cstore_x4", "C-STORE pynetdicom × 4", None, None),
]
QIDO_HEAVY = {"studies_all", "instances_of_series", "studies_all_includefield_all"}
WADO = [
    ("series_metadata", "series metadata p50", 10.0),
    ("study_metadata", "study metadata p50", 10.0),
    ("frame_uncompressed", "frame, uncompressed p50", 1.0),
    ("frame_native_compressed", "frame, compressed as stored p50", 1.0),
    ("frame_decompress_from_compressed", "frame, decoded from JPEG-LS/RLE p50", 2.0),
    ("instance_retrieve", "instance retrieve (CT) p50", None),
    ("instance_retrieve_large_xr", "instance retrieve (10 MB XR) p50", None),
    ("rendered_ct_jpeg", "rendered CT JPEG p50", None),
    ("rendered_xr_jpeg", "rendered XR JPEG p50", None),
    ("rendered_png", "rendered PNG p50", None),
    ("thumbnail_instance", "instance thumbnail p50", None),
    ("thumbnail_series", "series thumbnail p50", None),
]


def collect(results: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
    """server → metric → list of values (one per run)."""
    m: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for run in results["runs"]:
        res, who = run["result"], m[run["server"]]
        if res.get("failed"):
            continue
        for label, rs in res.get("ingest", {}).items():
            for r in rs:
                who["ingest:" + label].append(r["instances_per_s"])
                who["ingestMB:" + label].append(r["MB_per_s"])
                who["verified:" + label].append(bool(r.get("verify", {}).get("complete")))
                sysm = r.get("system", {})
                if sysm.get("server_cpu_s") is not None and r.get("instances_ok"):
                    who["cpu_ms:" + label].append(1000 * sysm["server_cpu_s"] / r["instances_ok"])
        mem = res.get("memory", {})
        if mem:
            who["peak_rss:" + run["phase"]].append(mem.get("peak_main_rss_MB"))
            who["peak_pss:" + run["phase"]].append(mem.get("peak_tree_pss_MB"))
        for sec in ("qido", "wado"):
            for name, r in res.get(sec, {}).items():
                if r.get("supported") is False:
                    who[f"{sec}:{name}"].append("unsupported (HTTP {})".format(r.get("status")))
                elif "median_ms" in r:
                    who[f"{sec}:{name}"].append(r["median_ms"])
                    who[f"wrong:{sec}:{name}"].append(r.get("wrong_results", 0))
                elif r.get("MB_per_s") is not None:
                    who[f"{sec}MB:{name}"].append(r["MB_per_s"])
                    who[f"wrong:{sec}:{name}"].append(r.get("wrong_results", 0) or 0)
        if res.get("qido_load"):
            who["qido_load"].append(res["qido_load"]["queries_per_s"])
    return m


def med(vals: list[Any]) -> Any:
    nums = [v for v in vals if isinstance(v, int | float)]
    if nums:
        return statistics.median(nums)
    return vals[0] if vals else None


def ratio(ours: Any, ref: Any, higher_better: bool) -> float | None:
    if not isinstance(ours, int | float) or not isinstance(ref, int | float) or not ours or not ref:
        return None
    return ours / ref if higher_better else ref / ours


def fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    s = f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return s + unit


def verdict(r: float | None, target: float | None) -> str:
    if target is None:
        return ""
    if r is None:
        return "not measured"
    return "met" if r >= target else "NOT met"


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    m = collect(results)
    ours, ref, pg = m.get("ours", {}), m.get(REF, {}), m.get(PG, {})
    phys = physical(results.get("physical", {}))
    out: list[dict[str, Any]] = []

    def add(group: str, label: str, o: Any, r: Any, unit: str, higher: bool,
            target: float | None, note: str = "", vs: str = REF) -> None:
        x = ratio(o, r, higher)
        out.append({"group": group, "metric": label, "ours": o, "reference": r, "vs": vs,
                    "unit": unit, "ratio": x, "target": target, "verdict": verdict(x, target),
                    "note": note})

    for key, label, t_ref, t_pg in INGEST:
        o = med(ours.get("ingest:" + key, []))
        wrong = "" if all(ours.get("verified:" + key, [True])) else "ours: index check failed"
        add("ingest", label + " (inst/s)", o, med(ref.get("ingest:" + key, [])), " /s", True, t_ref,
            wrong)
        if pg.get("ingest:" + key):
            add("ingest", label + " (inst/s)", o, med(pg["ingest:" + key]), " /s", True, t_pg, vs=PG)
        if key == "stow_10x4" and phys.get("sink_stow_10x4"):
            add("ingest", label + " vs fdatasync-only sink", o, phys["sink_stow_10x4"], " /s", True,
                0.75, vs="fdatasync sink")
        co, cr = med(ours.get("cpu_ms:" + key, [])), med(ref.get("cpu_ms:" + key, []))
        if co is not None:
            add("ingest", label + " server CPU ms/instance", co, cr, " ms", False, None)
    for key in sorted(k for k in ours if k.startswith("ingest:stow_10x") and k != "ingest:stow_10x4"):
        add("ingest", "STOW-RS 10 inst/request × {} (inst/s)".format(key.split("x")[-1]), med(ours[key]),
            med(ref.get(key, [])), " /s", True, None)
    for key in sorted(k for k in set(ours) | set(ref) if k.startswith("qido:")):
        name = key.split(":", 1)[1]
        wrong = med(ours.get("wrong:" + key, [])) or 0
        add("qido", name + " p50", med(ours.get(key, [])), med(ref.get(key, [])), " ms", False,
            4.0 if name in QIDO_HEAVY else 2.0, f"ours: {wrong} wrong answers" if wrong else "")
    if ours.get("qido_load") or ref.get("qido_load"):
        add("qido", "mixed query load × 4 clients (queries/s)", med(ours.get("qido_load", [])),
            med(ref.get("qido_load", [])), " q/s", True, 2.0)
    seq = "wadoMB:study_retrieve_sequential"
    add("wado", "study retrieve, sequential (MB/s)", med(ours.get(seq, [])), med(ref.get(seq, [])),
        " MB/s", True, None)
    if phys.get("static_study_MBs"):
        add("wado", "study retrieve vs static file server", med(ours.get(seq, [])),
            phys["static_study_MBs"], " MB/s", True, 0.8, vs="static server")
    add("wado", "all 30 studies, 4 in flight (MB/s)", med(ours.get("wadoMB:all_studies_concurrent", [])),
        med(ref.get("wadoMB:all_studies_concurrent", [])), " MB/s", True, None)
    for key, label, target in WADO:
        wrong = med(ours.get("wrong:wado:" + key, [])) or 0
        rwrong = med(ref.get("wrong:wado:" + key, [])) or 0
        note = "; ".join(x for x in (f"ours: {wrong} incomplete/wrong" if wrong else "",
                                     f"Orthanc: {rwrong} incomplete/wrong" if rwrong else "") if x)
        add("wado", label, med(ours.get("wado:" + key, [])), med(ref.get("wado:" + key, [])), " ms",
            False, target, note)
    for key in sorted(k for k in ours if k.startswith("peak_rss:")):
        phase = key.split(":", 1)[1]
        add("memory", "peak RSS of the server process during " + phase, med(ours[key]),
            med(ref.get(key, [])), " MB", False, None)
        add("memory", "peak PSS of the server process tree (workers, PostgreSQL) during " + phase,
            med(ours.get("peak_pss:" + phase, [])), med(ref.get("peak_pss:" + phase, [])), " MB",
            False, None)
    return out


def physical(ph: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    store = ph.get("http_sink_store_fdatasync", {}).get("ingest", {}).get("stow_10x4", [])
    if store:
        out["sink_stow_10x4"] = med([r["instances_per_s"] for r in store])
    wado = ph.get("http_sink_discard", {}).get("wado", {}).get("study_retrieve_sequential", {})
    if wado.get("MB_per_s"):
        out["static_study_MBs"] = wado["MB_per_s"]
    return out


def markdown(results: dict[str, Any], table: list[dict[str, Any]]) -> str:
    meta = results["meta"]
    mach = meta["machine"]
    ds = meta.get("dataset", {})
    lines = [
        "## Ours vs Orthanc, one run ({} → {} UTC)".format(
            meta["started_utc"], meta.get("finished_utc", "?")),
        "",
        "Command: `{}`  ".format(meta["command"]),
        "Machine: {}, {} CPUs ({}), {} GB RAM, kernel {}, Python {}; load average at start {}.  "
        .format(mach["node"], mach["cpus"], mach["cpu_model"], mach["mem_GB"], mach["kernel"],
                mach["python"], ", ".join(f"{x:.1f}" for x in mach["loadavg_at_start"])),
        "Data: {} instances, {:.0f} MB ({}).  ".format(ds.get("instances"), ds.get("bytes", 0) / 1e6,
                                                 ", ".join(f"{v}×{k}" for k, v in
                                                           ds.get("transfer_syntaxes", {}).items())),
        "Ours: source {} (git {}, {} uncommitted files), embedded PostgreSQL.  ".format(
            meta["source"]["path"], meta["source"]["git_head"][:10],
            meta["source"]["uncommitted_files"]),
        "Orthanc: {}; SQLite index unless the row says PostgreSQL; TCP_NODELAY; "
        "scalability profile (`bench/orthanc.sh`).  ".format(meta.get("orthanc")),
        "",
        "Ratio = ours as a multiple of the reference's speed (throughput ours/ref, latency ref/ours): "
        "higher is better.",
        "",
        "| group | metric | ours | reference | ref. | ratio | target | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r["group"], r["metric"], fmt(r["ours"], r["unit"]), fmt(r["reference"], r["unit"]),
            r["vs"], "{:.2f}×".format(r["ratio"]) if r["ratio"] is not None else "–",
            "≥ {:.2g}×".format(r["target"]) if r["target"] else "", " ".join(
                x for x in (r["verdict"], r["note"]) if x)))
    met = sum(1 for r in table if r["verdict"] == "met")
    total = sum(1 for r in table if r["target"])
    lines += ["", f"Targets met: {met} of {total}.", ""]
    return "\n".join(lines)


def plots(results: dict[str, Any], out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    m = collect(results)
    made = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for server in m:
        pts = sorted((int(k.split("x")[-1]), med(v)) for k, v in m[server].items()
                     if k.startswith("ingest:stow_10x") and med(v) is not None)
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=server)
    ax.set_xlabel("STOW-RS requests in flight (10 instances each)")
    ax.set_ylabel("instances/s")
    ax.set_title("Ingest throughput against concurrency")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "ingest_concurrency.png", dpi=100)
    made.append("ingest_concurrency.png")
    plt.close(fig)
    scale = results.get("scale")
    if scale:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, pts in scale.items():
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("instances in the index")
        ax.set_ylabel("QIDO-RS p50 (ms)")
        ax.set_title("Study-level QIDO latency against index size")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "qido_scale.png", dpi=100)
        made.append("qido_scale.png")
        plt.close(fig)
    return made


def main(argv: list[str]) -> int:
    path = Path(argv[0])
    results = json.loads(path.read_text())
    table = rows(results)
    out = path.parent
    (out / "ratios.json").write_text(json.dumps(table, indent=1))
    md = markdown(results, table)
    made = plots(results, out)
    md += "\n".join(f"![{p}]({p})" for p in made) + "\n"
    (out / "table.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
