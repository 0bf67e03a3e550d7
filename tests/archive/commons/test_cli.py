"""The commons CLI as a curator and a researcher run it (real processes, real database)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import requests
from dicomweb_client.api import DICOMwebClient

from tests import factories as f
from tests.conftest import TEST_CURATOR_TOKEN, RunningArchive, auth_headers


def archive(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    """The CLI, with the test archive's curator token in ARCHIVE_TOKEN (the commands that talk
    HTTP take it from there when --token is not given)."""
    env = os.environ | {"ARCHIVE_TOKEN": TEST_CURATOR_TOKEN}
    return subprocess.run([sys.executable, "-m", "archive", *args], capture_output=True,
                          text=True, timeout=timeout, check=False, env=env)


def db(server: RunningArchive) -> list[str]:
    return ["--database-url", server.database_url, "--data-dir",
            str(server.settings.data_dir)]


def store(server: RunningArchive, name: str, patient: str, description: str,
          instances: int = 1) -> None:
    DICOMwebClient(server.url, headers=auth_headers()).store_instances([
        f.image(name, "se1", n, rows=16, columns=16, patient_id=patient,
                study_description=description) for n in range(1, instances + 1)])


def test_clinical_import_reports_rows_and_writes_nothing_on_error(
        server: RunningArchive, tmp_path: Path) -> None:
    bad = tmp_path / "cases.csv"
    bad.write_text("case_id,sex,age_at_index\nK1,Male,30\nK2,alien,20\nK3,Female,-4\n")
    r = archive("clinical", "import", str(bad), *db(server))
    assert r.returncode == 1
    assert "line 3, column sex: 'alien' is not one of" in r.stderr
    assert "line 4, column age_at_index: -4 is outside 0..150" in r.stderr
    assert server.sql("SELECT count(*) AS n FROM clinical_case")[0]["n"] == 0
    bad.write_text("case_id,sex,age_at_index\nK1,Male,30\nK2,Female,20\n")
    r = archive("clinical", "import", str(bad), *db(server))
    assert r.returncode == 0, r.stderr
    tests = tmp_path / "tests.tsv"
    tests.write_text("case_id\ttest_result\tdays_from_index\nK1\tPositive\t1\n")
    r = archive("clinical", "import", str(tests), "--table", "tests", "--url", server.base)
    assert r.returncode == 0, r.stderr
    assert '"tests": 1' in r.stdout
    doc = requests.get(f"{server.base}/commons/cases/K1", timeout=30).json()
    assert doc["tests"][0]["test_result"] == "Positive"


def test_loinc_load_and_mapping_commands(server: RunningArchive, tmp_path: Path) -> None:
    store(server, "m1", "M1", "CT THORAX SPECIAL")
    r = archive("mapping", "list", "--status", "unmapped", *db(server))
    assert r.returncode == 0 and "ct thorax special\t" in r.stdout
    terms = tmp_path / "terms.csv"
    terms.write_text("loinc_code,long_common_name,modality,example_raw_descriptions\n"
                     "24627-2,CT Chest,CT,CT THORAX SPECIAL\n")
    r = archive("loinc", "load", str(terms), *db(server))
    assert r.returncode == 0, r.stderr
    assert '"studies_updated": 1' in r.stdout
    row = server.sql("SELECT loinc_code FROM study_harmonization")[0]
    assert row["loinc_code"] == "24627-2"
    r = archive("mapping", "set", "CT", "ct thorax special", "29252-4", *db(server))
    assert r.returncode == 1 and "already mapped to 24627-2" in r.stderr
    r = archive("mapping", "set", "CT", "ct thorax special", "29252-4", "--replace",
                *db(server))
    assert r.returncode == 0, r.stderr
    assert server.sql("SELECT loinc_code FROM study_harmonization")[0]["loinc_code"] == \
        "29252-4"
    r = archive("mapping", "list", "--status", "approved", *db(server))
    assert "ct thorax special\tCT THORAX SPECIAL\t29252-4" in r.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("loinc_code,long_common_name\nxx,Y\n")
    r = archive("loinc", "load", str(bad), *db(server))
    assert r.returncode == 1 and "line 2, column loinc_code" in r.stderr


def test_cohort_download_resumes_and_verifies(server: RunningArchive, tmp_path: Path) -> None:
    store(server, "d1", "D1", "CT CHEST", instances=3)
    store(server, "d2", "D2", "CT CHEST", instances=2)
    cohort = requests.post(f"{server.base}/commons/cohorts", timeout=30, headers=auth_headers(),
                           json={"filters": {"PatientID": "D?"}}).json()
    assert cohort["counts"]["instances"] == 5
    target = tmp_path / "out"
    args = ["cohort", "download", cohort["id"], "--to", str(target), "--url", server.base,
            "--parallel", "3", "--no-progress"]
    r = archive(*args)
    assert r.returncode == 0, r.stderr
    assert "downloaded 5, already complete 0, failed 0" in r.stdout
    files = sorted(target.glob("*/*/*/*.dcm"))
    assert len(files) == 5 and (target / "manifest.json").exists()
    keys = {row["sop_uid"]: row["blob_key"] for row in server.sql(
        "SELECT sop_uid, blob_key FROM instance")}
    for p in files:
        stored = server.core.blobs.path(keys[p.stem]).read_bytes()
        assert hashlib.sha256(p.read_bytes()).digest() == hashlib.sha256(stored).digest()
    # interrupt: one file half-downloaded (.part), one missing, one corrupted
    half = files[0].read_bytes()[:300]
    files[0].unlink()
    files[0].with_name(files[0].name + ".part").write_bytes(half)
    files[1].unlink()
    files[2].write_bytes(b"garbage")
    r = archive(*args)
    assert r.returncode == 0, r.stderr
    assert "downloaded 3, already complete 2, failed 0" in r.stdout
    for p in files:
        assert hashlib.sha256(p.read_bytes()).digest() == hashlib.sha256(
            server.core.blobs.path(keys[p.stem]).read_bytes()).digest()
    r = archive("cohort", "download", "00000000-0000-0000-0000-000000000000", "--to",
                str(target), "--url", server.base)
    assert r.returncode == 1 and "404" in r.stderr


def test_bulk_import_harmonizes_and_names_the_dataset(server: RunningArchive,
                                                      tmp_path: Path) -> None:
    """`archive import` goes through group commit, where hooks run before the recount."""
    for n, (modality, text) in enumerate([("CR", "XR CHEST 1 VIEW"), ("CR", "XR CHEST 1 VIEW"),
                                          ("CT", "ct chest wo contrast"), ("CT", "MYSTERY")]):
        f.write(f.image(f"bulk{n}", "se1", 1, modality=modality, rows=16, columns=16,
                        study_description=text), tmp_path / "in" / f"{n}.dcm")
    r = archive("import", str(tmp_path / "in"), "--site", "EAST", "--no-progress", *db(server))
    assert r.returncode == 0, r.stderr
    rows = server.sql("SELECT s.study_description, s.dataset, h.modality_norm, h.loinc_code "
                      "FROM study s JOIN study_harmonization h ON h.study_pk = s.pk")
    got = sorted((r["study_description"], r["modality_norm"], r["loinc_code"]) for r in rows)
    assert got == [("MYSTERY", "CT", None), ("XR CHEST 1 VIEW", "CR,DX", "36554-4"),
                   ("XR CHEST 1 VIEW", "CR,DX", "36554-4"),
                   ("ct chest wo contrast", "CT", "29252-4")]
    assert all(r["dataset"].startswith("EAST_2") for r in rows)
