"""Where the unchanged peerbench scripts live, and which `storescu` they should drive.

bench/peerbench/ holds byte-for-byte copies of the shared peerbench files (see its README); the
project's benchmark code runs them as scripts by path rather than editing or importing them, so
the figures stay comparable with peerbench runs elsewhere.
"""

from __future__ import annotations

import shutil
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PEERBENCH = BENCH / "peerbench"
HARNESS = PEERBENCH / "bench.py"
GEN_DATA = PEERBENCH / "gen_data.py"
PHYSICAL_LIMIT = PEERBENCH / "physical_limit.py"
PHYSICAL_TMP = "/tmp/archive-bench-phys"


def dcmtk_storescu() -> str:
    """DCMTK's storescu: /usr/bin first, since pynetdicom installs a Python app of that name."""
    return shutil.which("storescu", path="/usr/bin") or shutil.which("storescu") or "storescu"
