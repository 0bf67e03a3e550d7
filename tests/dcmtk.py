"""Paths to DCMTK's command-line tools.

pynetdicom installs Python console scripts with the same names (storescu, findscu, ...) that can
shadow DCMTK on PATH, so tests call DCMTK by absolute path.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def dcmtk(tool: str) -> str:
    for d in ("/usr/bin", "/usr/local/bin"):
        p = Path(d) / tool
        if p.exists():
            return str(p)
    found = shutil.which(tool)
    if found and "pyenv" not in found and "site-packages" not in found:
        return found
    pytest.skip(f"DCMTK {tool} not installed (apt-get install dcmtk)")
    raise AssertionError  # unreachable
