"""Clinical data in: JSON, CSV and TSV through POST /commons/cases; row-level errors; batches
all-or-nothing; re-import upserts; clinical rows link to images whichever arrives first."""

from __future__ import annotations

from typing import Any

import requests
from dicomweb_client.api import DICOMwebClient

from tests import factories as f
from tests.conftest import RunningArchive, auth_headers


def post(server: RunningArchive, body: Any, ctype: str = "application/json",
         table: str | None = None) -> requests.Response:
    params = {"table": table} if table else {}
    if ctype == "application/json":
        return requests.post(f"{server.base}/commons/cases", json=body, params=params,
                             headers=auth_headers(), timeout=60)
    return requests.post(f"{server.base}/commons/cases", data=body.encode(), params=params,
                         headers={"Content-Type": ctype, **auth_headers()}, timeout=60)


def count(server: RunningArchive, table: str) -> int:
    return int(server.sql(f"SELECT count(*) AS n FROM {table}")[0]["n"])


CASE = {"case_id": "A-1", "sex": "female", "age_at_index": 93, "covid19_positive": "yes",
        "zip": "021", "index_event": "COVID-19 Test",
        "tests": [{"test_method": "RT-PCR", "test_result": "Positive", "days_from_index": 0},
                  {"method": "Rapid antigen test", "result": "Negative",
                   "test_days_from_index": 9}],
        "conditions": [{"name": "COVID-19", "code": "U07.1", "code_system": "ICD-10-CM",
                        "days_start": 0, "days_end": 14}],
        "medications": [{"name": "dexamethasone", "medication_type": "Systemic steroids",
                         "days_start": 1, "days_end": 10}],
        "procedures": [{"name": "Breathing Support", "days_start": 2}],
        "observations": [{"name": "smoking_status", "answer": "Former", "days": 0}]}


def test_json_batch_imports_every_kind_and_applies_the_gt89_rule(server: RunningArchive) -> None:
    r = post(server, [CASE])
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == {"cases": 1, "tests": 2, "conditions": 1, "medications": 1,
                                    "procedures": 1, "observations": 1}
    doc = requests.get(f"{server.base}/commons/cases/A-1", timeout=30).json()
    assert (doc["sex"], doc["age_at_index"], doc["age_at_index_gt89"]) == ("Female", None, True)
    assert [t["test_result"] for t in doc["tests"]] == ["Positive", "Negative"]
    assert doc["observations"][0] == {"name": "smoking_status", "answer": "Former", "days": 0}


def test_reimport_upserts_instead_of_duplicating(server: RunningArchive) -> None:
    assert post(server, [CASE]).status_code == 200
    changed = CASE | {"sex": "Male", "tests": [{"test_result": "Negative",
                                                "days_from_index": 3}]}
    assert post(server, [changed]).status_code == 200
    assert count(server, "clinical_case") == 1 and count(server, "covid_test") == 1
    assert server.sql("SELECT sex FROM clinical_case")[0]["sex"] == "Male"
    assert count(server, "medication") == 1  # lists not sent are kept


def test_bad_json_rows_are_reported_and_nothing_is_written(server: RunningArchive) -> None:
    bad = [CASE, {"case_id": "B-2", "sex": "robot", "zip": "02139",
                  "tests": [{"test_result": "Positive", "days_from_index": "2020-03-01"}]},
           {"case_id": "B-3", "favourite_colour": "blue"}]
    r = post(server, bad)
    assert r.status_code == 400
    errors = {(e["line"], e["column"]) : e["reason"] for e in r.json()["errors"]}
    assert "not one of" in errors[(2, "sex")]
    assert "3 digits" in errors[(2, "zip")]
    assert "calendar date" in errors[(2, "tests[1].days_from_index")]
    assert errors[(3, "favourite_colour")] == "unknown column"
    assert count(server, "clinical_case") == 0 and count(server, "covid_test") == 0


CSV_CASES = "case_id,sex,age_at_index,covid19_positive\nC-1,Male,40,No\nC-2,Female,70,Yes\n"


def test_csv_and_tsv_tables(server: RunningArchive) -> None:
    assert post(server, CSV_CASES, "text/csv").status_code == 200
    tests = "case_id\ttest_method\ttest_result\ttest_days_from_index\nC-1\tRT-PCR\tNegative\t-2\n" \
            "C-2\tRT-PCR\tPositive\t0\nC-2\tRT-PCR\tNegative\t12\n"
    r = post(server, tests, "text/tab-separated-values", table="tests")
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == {"cases": 0, "tests": 3}
    assert count(server, "covid_test") == 3


def test_bad_csv_names_line_column_and_reason(server: RunningArchive) -> None:
    assert post(server, CSV_CASES, "text/csv").status_code == 200
    body = ("case_id,test_result,days_from_index\nC-1,Positive,0\nC-1,Maybe,1\n"
            "C-9,Negative,2\nC-2,Positive,soon\n")
    r = post(server, body, "text/csv", table="tests")
    assert r.status_code == 400
    errors = [(e["line"], e["column"], e["reason"]) for e in r.json()["errors"]]
    assert (3, "test_result", "'Maybe' is not one of: Positive, Negative, Indeterminate, "
            "Not Reported") in errors
    assert any(e[:2] == (5, "days_from_index") and "whole number" in e[2] for e in errors)
    assert count(server, "covid_test") == 0
    # the unknown case is caught against the database, still before anything is kept
    r = post(server, "case_id,test_result,days_from_index\nC-1,Positive,0\nC-9,Negative,2\n",
             "text/csv", table="tests")
    assert r.status_code == 400
    assert r.json()["errors"] == [{"line": 3, "column": "case_id",
                                   "reason": "case C-9 is not known: import its case row first "
                                             "(or in the same batch)"}]
    assert count(server, "covid_test") == 0


def test_unsupported_type_and_broken_json_are_400(server: RunningArchive) -> None:
    assert post(server, "x", "application/xml").status_code == 400
    r = requests.post(f"{server.base}/commons/cases", data=b"{nope",
                      headers={"Content-Type": "application/json", **auth_headers()}, timeout=30)
    assert r.status_code == 400 and "JSON" in r.json()["error"]


def _store(server: RunningArchive, patient: str, name: str) -> str:
    ds = f.image(name, "se1", 1, modality="CR", rows=16, columns=16, patient_id=patient,
                 study_description="XR CHEST 1 VIEW")
    DICOMwebClient(server.url, headers=auth_headers()).store_instances([ds])
    return str(ds.StudyInstanceUID)


def test_clinical_links_to_images_either_way(server: RunningArchive) -> None:
    before = _store(server, "L-1", "img-first")  # images first, clinical later
    assert post(server, [{"case_id": "L-1", "sex": "Male", "tests": [
        {"test_result": "Positive", "days_from_index": 4}],
        "studies": [{"study_uid": before, "days_to_study": 2}]}]).status_code == 200
    assert post(server, [{"case_id": "L-2", "sex": "Female"}]).status_code == 200
    after = _store(server, "L-2", "clinical-first")  # clinical first, images later
    rows = {r["study_pk"]: r for r in server.sql(
        "SELECT sc.study_pk, sc.case_id, sc.days_to_study, s.study_uid FROM study_case sc "
        "JOIN study s ON s.pk = sc.study_pk")}
    by_uid = {r["study_uid"]: r for r in rows.values()}
    assert by_uid[before]["case_id"] == "L-1" and by_uid[before]["days_to_study"] == 2
    assert by_uid[after]["case_id"] == "L-2"
    found = DICOMwebClient(server.url).search_for_studies(
        search_filters={"commons.days_from_study_to_pos_covid_test": "2"})
    assert [d["0020000D"]["Value"][0] for d in found] == [before]


def test_writes_need_the_curator_token_when_one_is_set(server_factory: Any) -> None:
    server = server_factory(curator_token="s3cret")
    refused = requests.post(f"{server.base}/commons/cases", json=[{"case_id": "T-1"}], timeout=30)
    assert refused.status_code == 401  # anonymous where a role is needed (issue 12)
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="archive"'
    # refused before the body is read: a malformed body is still a 401, not a 400
    bad = requests.post(f"{server.base}/commons/mappings", data=b"{not json", timeout=30)
    assert bad.status_code == 401
    r = requests.post(f"{server.base}/commons/cases", json=[{"case_id": "T-1"}],
                      headers={"Authorization": "Bearer s3cret"}, timeout=30)
    assert r.status_code == 200
