"""`archive import PATH…` through the real command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests import factories as f
from tests.conftest import RunningArchive


def run_import(db: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"ARCHIVE_DATABASE_URL": db, "ARCHIVE_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, "-m", "archive", "import", "--no-progress", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def test_import_of_a_folder_stores_everything_and_reports(server: RunningArchive, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for d in f.series_of(4, "imp", "a") + f.series_of(2, "imp", "b", modality="MR"):
        f.write(d, src / d.SeriesDescription / f"{d.InstanceNumber}.dcm")
    proc = run_import(server.database_url, server.settings.data_dir, str(src), "--site", "SITE-I",
                      "--dataset", "SITE-I_20260301")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stored 6, duplicates 0" in proc.stdout
    row = server.sql("SELECT num_series, num_instances, site, dataset FROM study")[0]
    assert dict(row) == {"num_series": 2, "num_instances": 6, "site": "SITE-I",
                         "dataset": "SITE-I_20260301"}
    again = run_import(server.database_url, server.settings.data_dir, str(src))
    assert "stored 0, duplicates 6" in again.stdout


def test_import_reports_failures_with_reasons_and_exits_non_zero(
    server: RunningArchive, tmp_path: Path
) -> None:
    src = tmp_path / "mixed"
    f.write(f.image("good"), src / "good.dcm")
    (src / "notes.txt").write_text("not an image")
    (src / "truncated.dcm").write_bytes(f.to_bytes(f.image("t", rows=128, columns=128))[:-3000])
    proc = run_import(server.database_url, server.settings.data_dir, str(src), str(tmp_path / "nope"))
    assert proc.returncode == 1
    assert "stored 1" in proc.stdout and "failed 2" in proc.stdout
    assert "skipped 1 (not DICOM: 1)" in proc.stdout  # notes.txt is not a failure (issue 11.3)
    assert "truncated" in proc.stdout
    assert "no such file" in proc.stdout
    assert server.sql("SELECT count(*) AS n FROM instance")[0]["n"] == 1
