"""Nightly fuzz run (issue 13): the CI fuzz tests with more, randomly seeded examples.

    python -m bench.fuzz [--examples N]

Runs tests/reliability/test_fuzz.py and test_schemathesis.py (the /commons OpenAPI) against
real archives (needs ARCHIVE_TEST_DATABASE_URL or
the embedded PostgreSQL) and prints each test's counts: tried / 4xx / 5xx / dropped.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=2000, help="examples per HTTP test")
    args = ap.parse_args(argv)
    report = Path(tempfile.mkdtemp(prefix="archive-fuzz-")) / "counts.txt"
    env = os.environ | {"ARCHIVE_FUZZ_LONG": "1", "ARCHIVE_FUZZ_EXAMPLES": str(args.examples),
                        "ARCHIVE_FUZZ_REPORT": str(report)}
    here = Path(__file__).resolve().parents[1] / "tests" / "reliability"
    tests = [str(here / "test_fuzz.py"), str(here / "test_schemathesis.py")]
    rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", *tests],
                         env=env)
    print(report.read_text() if report.exists() else "no counts recorded")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
