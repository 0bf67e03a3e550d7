"""The wheel users install works: build it, install it into a fresh venv, serve, answer QIDO.

An editable install hides packaging mistakes (files read from the source tree, such as the
Alembic migrations, which once lived outside the package). So this test builds the wheel from a
copy of the sources, installs it with `--no-deps` into a new venv under tmp, and runs that venv's
`archive serve` from a tmp working directory with no PYTHONPATH, so only the installed package can
be imported. The dependencies come from this interpreter's site-packages through a `.pth` file
(plain paths: that directory's own `.pth` files, such as an editable install of this repository,
are not run), which keeps the test fast and needs no network for them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import site
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import archive
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "archive", "dicomweb", "dimse", "storage")

pytestmark = pytest.mark.slow


def _clean_env() -> dict[str, str]:
    """This environment without anything that points at the source tree or a database."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("ARCHIVE_")}


def build_wheel(tmp: Path) -> Path:
    """`pip wheel` from a clean copy of the sources (no stale build/ or egg-info)."""
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"),
                    str(src)], check=True, cwd=tmp, env=_clean_env(), timeout=300)
    (wheel,) = (tmp / "dist").glob("imaging_commons_archive-*.whl")
    return wheel


def venv_with(tmp: Path, wheel: Path) -> Path:
    """A fresh venv holding only the wheel; dependencies are read from this interpreter's."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    (purelib,) = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True, env=_clean_env()).stdout.split()
    dep_dirs = [*site.getsitepackages(), site.getusersitepackages()]
    Path(purelib, "_outer_dependencies.pth").write_text(
        "".join(d + "\n" for d in dep_dirs if Path(d).is_dir()))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
                    str(wheel)], check=True, cwd=tmp, env=_clean_env(), timeout=300)
    return venv


def test_wheel_installs_and_serves(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    names = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)],
                           check=True, capture_output=True, text=True).stdout
    for data in ("archive/migrations/env.py", "archive/migrations/script.py.mako",
                 "archive/migrations/versions/0001_core_index.py", "archive/data/loinc_playbook.csv",
                 *portal_files()):
        assert data in names, f"{data} missing from the wheel"

    venv = venv_with(tmp_path, wheel)
    run = tmp_path / "run"
    run.mkdir()
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import archive; print(archive.__file__)"],
                           check=True, capture_output=True, text=True, cwd=run, env=_clean_env())
    assert where.stdout.strip().startswith(str(venv)), f"imported {where.stdout} instead of the wheel"
    version = subprocess.run([str(venv / "bin" / "archive"), "--version"], check=True,
                             capture_output=True, text=True, cwd=run, env=_clean_env())
    assert version.stdout.strip() == f"archive {archive.__version__}"

    http, dimse = free_port(), free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(venv / "bin" / "archive"), "serve", "--data-dir", str(tmp_path / "data"),
         "--http-port", str(http), "--dimse-port", str(dimse)],
        cwd=run, env=_clean_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        status = _first_status(f"http://127.0.0.1:{http}/dicom-web/studies", proc, deadline=180)
        assert status == 200, (tmp_path / "serve.log").read_text(errors="replace")[-4000:]
        served = portal_assets(f"http://127.0.0.1:{http}")
        assert {"static/app.js", "static/auth.js", "static/curate.js", "static/portal.css",
                "static/vendor/chart.umd.min.js", "static/vendor/oidc-client-ts.min.js"} <= served
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        log.close()
    assert code == 0, (tmp_path / "serve.log").read_text(errors="replace")[-4000:]
    assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists(), "embedded PostgreSQL not used"


PORTAL = REPO / "dicomweb" / "portal_static"


def portal_files() -> list[str]:
    """Every file of the portal (pages, scripts, vendored libraries and their licences) as a
    wheel member name."""
    return sorted(str(p.relative_to(REPO)) for p in PORTAL.rglob("*") if p.is_file())


def portal_assets(base: str) -> set[str]:
    """Fetch /portal/, then every asset its page names and every module its scripts import,
    from the wheel-installed server; each must be byte-identical to the source file. Returns
    the relative URLs fetched (no CDN: every one is served here)."""
    page = requests.get(f"{base}/portal/", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.content == (PORTAL / "index.html").read_bytes()
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text), "the page loads from elsewhere"
    todo = set(re.findall(r'(?:src|href)="(static/[^"]+)"', page.text))
    done: set[str] = set()
    while todo:
        rel = todo.pop()
        done.add(rel)
        r = requests.get(f"{base}/portal/{rel}", timeout=30)
        assert r.status_code == 200, (rel, r.status_code)
        assert r.content == (PORTAL / rel.removeprefix("static/")).read_bytes(), rel
        if rel.endswith(".js") and "/vendor/" not in rel:
            for imported in re.findall(r"from '\./([\w.-]+\.js)'", r.text):
                if f"static/{imported}" not in done:
                    todo.add(f"static/{imported}")
        if rel.endswith(".js"):
            assert r.headers["Content-Type"].startswith("text/javascript"), rel
    cfg = requests.get(f"{base}/portal/config.json", timeout=30).json()
    assert cfg["oidc"] is None and cfg["you"]["role"] == "reader"
    return done


def _first_status(url: str, proc: subprocess.Popen[bytes], deadline: float) -> int | None:
    """Poll until the server answers (or exits): the status of its first answer."""
    end = time.monotonic() + deadline
    while time.monotonic() < end and proc.poll() is None:
        try:
            return requests.get(url, timeout=5).status_code
        except requests.ConnectionError:
            time.sleep(0.2)
    return None
