"""Find DCMTK's command-line tools, and skip a test with a clear reason when they are absent.

pynetdicom installs Python console scripts with the same names (storescu, findscu, getscu,
movescu, ...) into a venv's bin, where they shadow DCMTK on PATH and fail on DCMTK's options. So
a tool counts as DCMTK only if its `--version` prints DCMTK's banner ("$dcmtk: storescu v3.6.7"),
and /usr/bin (Debian's dcmtk package) is tried first.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest

PREFERRED = ("/usr/bin", "/usr/local/bin")
BANNERS = ("$dcmtk:", "OFFIS DCMTK")


def is_dcmtk(path: Path) -> bool:
    """True when `path --version` prints DCMTK's version banner."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=20,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return False
    return any(b in out.stdout + out.stderr for b in BANNERS)


def find_dcmtk(tool: str, dirs: Iterable[str]) -> str | None:
    """The first `dir/tool` that is DCMTK's, in the order given."""
    for d in dict.fromkeys(dirs):  # keep order, drop repeats
        p = Path(d) / tool
        if p.is_file() and os.access(p, os.X_OK) and is_dcmtk(p):
            return str(p)
    return None


@cache
def _located(tool: str) -> str | None:
    path_dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    return find_dcmtk(tool, [*PREFERRED, *path_dirs])


def dcmtk(tool: str) -> str:
    """Absolute path of DCMTK's `tool`; skips the calling test when DCMTK is not installed."""
    found = _located(tool)
    if found is None:
        pytest.skip(f"DCMTK's {tool} not found (none in /usr/bin, /usr/local/bin or PATH prints the "
                    f"DCMTK version banner; pynetdicom's same-named scripts do not count): "
                    f"apt-get install dcmtk")
    return found
