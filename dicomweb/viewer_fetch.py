"""`archive viewer fetch`: get the prebuilt OHIF Viewer for `--viewer-dir` in one command.

The npm package @ohif/app ships its production build in dist/. `npm pack` downloads just that
tarball (no dependency install, no build); this module unpacks dist/ safely into a folder.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from archive.errors import ConfigError

DEFAULT_VERSION = "3.13.2"  # the version the browser test runs
SLIM_DROP = ("ort", "dicom-microscopy-viewer")  # 136 MB AI runtime, 20 MB microscopy viewer
STAMP = ".installed"


def stamp(version: str, slim: bool) -> str:
    return f"{version} slim={int(slim)}"


def unpack(tgz: Path, dest: Path, version: str, slim: bool) -> Path:
    """Unpack package/dist/ of an @ohif/app tarball into `dest` (replacing it)."""
    work = Path(tempfile.mkdtemp(prefix=".ohif-unpack-", dir=dest.parent))
    try:
        with tarfile.open(tgz) as tar:
            members = [m for m in tar.getmembers()
                       if m.name.startswith("package/dist/") or m.name == "package/package.json"]
            tar.extractall(work, members=members, filter="data")
        dist = work / "package" / "dist"
        if not (dist / "index.html").is_file() or not list(dist.glob("app.bundle.*.js")):
            raise ConfigError(f"{tgz.name} has no prebuilt dist/ (index.html + app.bundle.*.js)")
        if slim:
            for name in SLIM_DROP:
                shutil.rmtree(dist / name, ignore_errors=True)
        if (work / "package" / "package.json").exists():
            shutil.copy(work / "package" / "package.json", dist / ".package.json")
        (dist / STAMP).write_text(stamp(version, slim) + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        dist.rename(dest)
        return dest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fetch(dest: Path, version: str = DEFAULT_VERSION, slim: bool = False) -> Path:
    """`npm pack @ohif/app@VERSION` and unpack its dist/ to `dest`; a no-op when present."""
    dest = dest.resolve()
    marker = dest / STAMP
    if marker.exists() and marker.read_text().strip() == stamp(version, slim):
        return dest
    npm = shutil.which("npm")
    if npm is None:
        raise ConfigError("npm not found: install node and npm (e.g. apt-get install nodejs npm)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ohif-pack-", dir=dest.parent) as tmp:
        done = subprocess.run([npm, "pack", "--loglevel=error", f"@ohif/app@{version}"], cwd=tmp,
                              capture_output=True, text=True, check=False)
        packed = list(Path(tmp).glob("ohif-app-*.tgz"))
        if done.returncode != 0 or not packed:
            raise ConfigError(f"npm pack @ohif/app@{version} failed: {done.stderr.strip()[-500:]}")
        return unpack(packed[0], dest, version, slim)
