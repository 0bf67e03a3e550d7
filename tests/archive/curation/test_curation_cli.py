"""`archive dataset release|staged` and `archive mapping import` (real processes, real database)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import requests

from tests.archive.curation.commons_seed import seed
from tests.archive.curation.synthetic import synthetic_cases
from tests.conftest import RunningArchive


def archive(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "archive", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def db(server: RunningArchive) -> list[str]:
    return ["--database-url", server.database_url, "--data-dir", str(server.settings.data_dir)]


def test_dataset_release_from_the_command_line(
        server_factory: Callable[..., RunningArchive]) -> None:
    server = server_factory(release_workflow=True)
    seed(server.database_url, synthetic_cases(400, seed=3, prefix="cli"), "CLI_1", "7")
    staged = archive("dataset", "staged", *db(server))
    assert staged.returncode == 0, staged.stderr
    assert json.loads(staged.stdout) == {"staged": ["CLI_1"]}
    r = archive("dataset", "release", "CLI_1", "--seed", "42", "--notes", "from the shell",
                "--sequester-fraction", "0.25", *db(server))
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)
    assert made["number"] == 1 and made["seed"] == 42 and made["fraction"] == 0.25
    assert made["counts"]["new"]["sequestered"] == 100  # 25 % of 400, as whole cases allow
    listed = requests.get(f"{server.base}/commons/releases", timeout=30).json()["releases"]
    assert [x["notes"] for x in listed] == ["from the shell"]
    again = archive("dataset", "release", "CLI_1", *db(server))
    assert again.returncode == 1 and "no unreleased study" in again.stderr
    bad = archive("dataset", "release", "CLI_1", "--sequester-fraction", "2", *db(server))
    assert bad.returncode == 2 and "sequester fraction" in bad.stderr


def test_mapping_import_is_one_curator_action(server: RunningArchive, tmp_path: Path) -> None:
    table = tmp_path / "midrc.tsv"
    table.write_text(
        "Modality\tStudyDescription\tLOINC code\tLong Common Name\n"
        "CT\tCT LUNG NODULE FOLLOWUP 3MM\t24627-2\tCT Chest\n"
        "CR, DX\tXR RIBS BILAT W PA CHEST\t99999-9\tXR Ribs bilateral and Chest PA\n")
    r = archive("mapping", "import", str(table), *db(server))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["mappings"] == 2
    maps = requests.get(f"{server.base}/commons/mappings?status=approved",
                        timeout=30).json()["mappings"]
    keys = {(m["modality_norm"], m["description_norm"]): m["loinc_code"] for m in maps}
    assert keys[("CT", "ct lung nodule followup 3mm")] == "24627-2"
    assert keys[("CR,DX", "xr ribs bilat w pa chest")] == "99999-9"
    found = requests.get(f"{server.base}/commons/loinc/suggest", timeout=120, params={
        "modality": "DX", "description": "XR RIBS BILAT W PA CHEST"}).json()["suggestions"]
    assert found[0] == {"loinc_code": "99999-9", "long_common_name": "XR Ribs bilateral and Chest PA",
                        "score": found[0]["score"]}
    # a row contradicting an approved mapping stops the whole import (nothing written)
    clash = tmp_path / "clash.tsv"
    clash.write_text("Modality\tStudyDescription\tLOINC code\tLong Common Name\n"
                     "CT\tCT BRAND NEW ROW\t24627-2\tCT Chest\n"
                     "CT\tCT LUNG NODULE FOLLOWUP 3MM\t29252-4\tCT Chest WO contrast\n")
    r2 = archive("mapping", "import", str(clash), *db(server))
    assert r2.returncode == 1 and "line 3" in r2.stderr and "nothing was imported" in r2.stderr
    maps = requests.get(f"{server.base}/commons/mappings", timeout=30).json()["mappings"]
    assert not any(m["description_norm"] == "ct brand new row" for m in maps)
    assert archive("mapping", "import", str(clash), "--replace", *db(server)).returncode == 0
