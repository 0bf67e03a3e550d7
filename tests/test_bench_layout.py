"""bench/ is a package run with `python -m bench.…`; bench/peerbench/ holds unchanged copies."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PEERBENCH = REPO / "bench" / "peerbench"


def test_peerbench_copies_match_the_recorded_checksums() -> None:
    """The README records each copy's sha256; an edit to a copy shows up here."""
    rows = re.findall(r"^\| `([\w.]+\.py)` \|.*\| `([0-9a-f]{64})` \|$",
                      (PEERBENCH / "README.md").read_text(), re.M)
    assert {name for name, _ in rows} == {"bench.py", "gen_data.py", "physical_limit.py"}
    for name, digest in rows:
        assert hashlib.sha256((PEERBENCH / name).read_bytes()).hexdigest() == digest, name


def test_bench_code_does_not_patch_sys_path() -> None:
    own = list((REPO / "bench").glob("*.py"))
    assert own
    for p in own:
        assert "sys.path" not in p.read_text(), p


@pytest.mark.parametrize("module", ["bench.run", "bench.ingest", "bench.query", "bench.retrieve"])
def test_bench_modules_run_with_dash_m(module: str) -> None:
    out = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout
