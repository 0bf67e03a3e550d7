"""Running the real OHIF Viewer in headless Chromium from pytest (the node side is ohif.mjs).

`browser_tools` skips only when node or Chromium is missing; the npm parts (the prebuilt
viewer and playwright-core) are installed into .local/ by tools/e2e-deps.sh, and a failure
there fails the test (CI has npm).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from tests.e2e.phantoms import Study
from tests.node import SKIP_REASON, env_with_node, find_node

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ARCHIVE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "ohif"
CHROMIUM = os.environ.get("ARCHIVE_E2E_CHROMIUM", "/usr/bin/chromium")
SCRIPT = Path(__file__).with_name("ohif.mjs")


@dataclass(frozen=True)
class BrowserTools:
    node: str
    chromium: str
    viewer_dir: Path
    node_modules: Path


def find_browser_tools() -> BrowserTools:
    node = find_node()
    if node is None:
        pytest.skip(f"{SKIP_REASON}: no browser test")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not found (apt-get install -y chromium): no browser test")
    done = subprocess.run([str(REPO / "tools" / "e2e-deps.sh")], capture_output=True, text=True,
                          timeout=900, check=False, env=env_with_node(node))
    if done.returncode != 0:
        pytest.fail(f"tools/e2e-deps.sh failed:\n{done.stdout}\n{done.stderr}")
    return BrowserTools(node, CHROMIUM, REPO / ".local" / "viewer", REPO / ".local" / "node")


def artifacts(name: str) -> Path:
    """A fresh screenshot folder for one run, kept after the test (test-artifacts/ohif/NAME)."""
    out = ARTIFACTS / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


def run_ohif(tools: BrowserTools, out: Path, *, viewer_url: str, dicomweb_root: str,
             studies: list[Study], config_patch: dict[str, Any] | None = None,
             search: dict[str, Any] | None = None, list_timeout: int = 60) -> dict[str, Any]:
    """Open the study list, an optional name search, and the viewer for each study."""
    plan = {
        "viewerUrl": viewer_url.rstrip("/"), "dicomwebRoot": dicomweb_root.rstrip("/"),
        "out": str(out), "configPatch": config_patch or {}, "search": search,
        "studies": [{"uid": s.uid, "label": s.label, "expect": s.listed_as} for s in studies],
        "nodeModules": str(tools.node_modules), "chromium": tools.chromium,
        "listTimeoutSeconds": list_timeout,
    }
    (out / "plan.json").write_text(json.dumps(plan, indent=1))
    with (out / "node.log").open("w") as log:
        subprocess.run([tools.node, str(SCRIPT), str(out / "plan.json")], stdout=log,
                       stderr=subprocess.STDOUT, timeout=600, check=False)
    report_path = out / "report.json"
    assert report_path.exists(), (out / "node.log").read_text()
    report: dict[str, Any] = json.loads(report_path.read_text())
    return report


def pixel_check(png: str | Path) -> dict[str, float]:
    """Independent of the browser: the centre 60% of the viewport screenshot has structure."""
    img = Image.open(png).convert("L")
    w, h = img.size
    centre = img.crop((int(w * 0.2), int(h * 0.2), int(w * 0.8), int(h * 0.8)))
    stat = ImageStat.Stat(centre)
    distinct = sum(1 for c in centre.histogram() if c)
    return {"std": stat.stddev[0], "distinct": distinct, "mean": stat.mean[0]}


def problems(report: dict[str, Any]) -> list[str]:
    """Everything that counts as a failure besides the pixel checks, readable in an assert."""
    out = [f"console error ({e['phase']}): {e['text'][:300]}" for e in report["consoleErrors"]]
    out += [f"page error ({e['phase']}): {e['text'][:300]}" for e in report["pageErrors"]]
    out += [f"failed request ({r['phase']}): {r['method']} {r['url']} Accept={r.get('accept')} "
            f"-> {r['status']} {r.get('error') or ''} {r.get('body', '')[:200]}"
            for r in report["failedRequests"]]
    out += [f"non-loopback request: {r['url']}" for r in report["nonLoopback"]]
    if report.get("error"):
        out.append(f"script error: {report['error'][:500]}")
    return out
