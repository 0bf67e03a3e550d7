"""bench/soak.py's RSS verdict (issue 13): what "flat" means is decided by code, not by eye."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.soak import rss_summary, rss_verdict

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def samples(minutes: float, mb: Any, start: int = 1) -> list[dict[str, Any]]:
    return [{"t_s": t * 10.0, "rss_main_mb": mb(t * 10.0 / 60), "rss_tree_mb": 400.0,
             "server_start": start} for t in range(int(minutes * 6) + 1)]


def test_warm_up_then_a_plateau_is_flat() -> None:
    rss = rss_summary(samples(45, lambda m: 150 + min(m, 10) * 0.8 + (m % 2) * 0.3))
    assert rss["1"]["verdict"] == "flat", rss
    assert rss_verdict(rss, 1.0).startswith("RSS FLAT")


def test_a_slow_steady_climb_is_not_flat() -> None:
    rss = rss_summary(samples(45, lambda m: 150 + 0.2 * m))  # 2 MB per 10 min
    assert rss["1"]["verdict"] == "growing"
    assert rss_verdict(rss, 1.0).startswith("RSS NOT FLAT")


def test_short_server_runs_are_not_judged() -> None:
    rss = rss_summary(samples(8, lambda m: 150 + m) + samples(8, lambda m: 150, start=2))
    assert {r["verdict"] for r in rss.values()} == {"too short"}
    assert "too short to judge" in rss_verdict(rss, 1.0)


def test_the_recorded_runs_before_and_after_the_allocator_fix() -> None:
    """The 30-min soak before archive/allocator.py climbed 2.6 MB per 10 min; the 60-min soak
    after it is flat (bench/results/, docs/operations.md "Soak test")."""
    before = json.loads((RESULTS / "soak-20261129T051458Z.json").read_text())["samples"]
    after = json.loads((RESULTS / "soak-20261129T065100Z.json").read_text())["samples"]
    assert rss_summary(before)["1"]["verdict"] == "growing"
    assert rss_summary(after)["1"]["verdict"] == "flat"
