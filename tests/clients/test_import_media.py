"""Issue 11.3: `archive import` of a CD/USB folder skips non-DICOM files and gives real reasons."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pydicom.data import get_testdata_file

from tests import factories as f
from tests.conftest import RunningArchive


def _import(server: RunningArchive, *paths: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"ARCHIVE_DATABASE_URL": server.database_url,
                        "ARCHIVE_DATA_DIR": str(server.settings.data_dir)}
    return subprocess.run([sys.executable, "-m", "archive", "import", "--no-progress",
                           *map(str, paths)], env=env, capture_output=True, text=True, timeout=120)


def _cd(tmp_path: Path) -> Path:
    """A disc as hospitals burn them: DICOMDIR, README, autorun.inf, a viewer, and images."""
    cd = tmp_path / "cd"
    cd.mkdir()
    shutil.copy(str(get_testdata_file("DICOMDIR")), cd / "DICOMDIR")
    (cd / "README.TXT").write_text("Patient CD. Open VIEWER.EXE to view images.\r\n")
    (cd / "AUTORUN.INF").write_text("[autorun]\r\nopen=VIEWER.EXE\r\n")
    (cd / "VIEWER.EXE").write_bytes(b"MZ\x90\x00" + bytes(500))
    for i, ds in enumerate(f.series_of(3, "cd")):
        f.write(ds, cd / "DICOM" / "ST000000" / f"IM{i:06d}")
    return cd


def test_cd_folder_imports_with_skips_counted_and_exit_zero(
    server: RunningArchive, tmp_path: Path
) -> None:
    proc = _import(server, _cd(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stored 3," in proc.stdout
    assert "skipped 4 (DICOMDIR: 1, not DICOM: 3)" in proc.stdout
    assert "failed 0" in proc.stdout
    assert server.sql("SELECT count(*) AS n FROM instance")[0]["n"] == 3


def test_dicom_file_that_cannot_be_stored_still_fails_with_its_real_reason(
    server: RunningArchive, tmp_path: Path
) -> None:
    cd = _cd(tmp_path)
    shutil.copy(str(get_testdata_file("SC_rgb_jpeg.dcm")), cd / "SC_rgb_jpeg.dcm")
    proc = _import(server, cd)
    assert proc.returncode == 1
    assert "failed 1" in proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if "SC_rgb_jpeg.dcm" in ln)
    assert "implicit VR" in line and "explicit VR" in line, line
    assert "needs 65535 bytes" not in line
