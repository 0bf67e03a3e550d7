"""Cohorts stay frozen: later studies, instances and mapping changes do not change them."""

from __future__ import annotations

from typing import Any

import requests
from dicomweb_client.api import DICOMwebClient

from tests import factories as f
from tests.conftest import RunningArchive, auth_headers


def store(server: RunningArchive, name: str, patient: str, site: str, number: int = 1,
          description: str = "CT CHEST WO CONTRAST") -> None:
    ds = f.image(name, "se1", number, rows=16, columns=16, patient_id=patient,
                 study_description=description)
    DICOMwebClient(server.url, headers=auth_headers(**{"X-Archive-Site": site})).store_instances([ds])


def cohort(server: RunningArchive, cid: str) -> dict[str, Any]:
    return requests.get(f"{server.base}/commons/cohorts/{cid}", timeout=30,
                        headers=auth_headers()).json()


def manifest(server: RunningArchive, cid: str) -> dict[str, Any]:
    return requests.get(f"{server.base}/commons/cohorts/{cid}/manifest?format=json", headers=auth_headers(),
                        timeout=30).json()


def test_cohort_freeze_is_stable_after_new_data(server: RunningArchive) -> None:
    requests.post(f"{server.base}/commons/cases", timeout=30, headers=auth_headers(), json=[
        {"case_id": p, "covid19_positive": "Yes"} for p in ("P1", "P2", "P3")])
    store(server, "c1", "P1", "NORTH")
    store(server, "c2", "P2", "NORTH")
    store(server, "c3", "P3", "SOUTH")
    r = requests.post(f"{server.base}/commons/cohorts", timeout=30, headers=auth_headers(), json={
        "name": "north positives", "query": "commons.site=NORTH&commons.case.covid19_positive=yes"})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["counts"] == {"cases": 2, "studies": 2, "series": 2, "instances": 2,
                                 "size_bytes": created["counts"]["size_bytes"]}
    assert created["mapping_version"] == 1
    before = manifest(server, created["id"])
    # new matching study, new instance in a member study, a mapping change
    store(server, "c4", "P3", "NORTH")
    store(server, "c1", "P1", "NORTH", number=2)
    requests.post(f"{server.base}/commons/mappings", timeout=30, headers=auth_headers(), json={
        "modality": "CT", "description": "CT CHEST WO CONTRAST", "loinc_code": "24627-2",
        "replace": True})
    after = cohort(server, created["id"])
    assert after["counts"] == created["counts"]
    assert after["mapping_version"] == 1 and after["query"] == created["query"]
    assert manifest(server, created["id"])["series"] == before["series"]
    root = created["dicomweb_root"]
    studies = DICOMwebClient(root, headers=auth_headers()).search_for_studies()
    assert {d["0020000D"]["Value"][0] for d in studies} == {f.uid("c1"), f.uid("c2")}
    # a new cohort with the same query sees the new data
    again = requests.post(f"{server.base}/commons/cohorts", timeout=30, headers=auth_headers(),
                          json={"query": created_query(created)}).json()
    assert again["counts"]["studies"] == 3 and again["mapping_version"] > 1


def created_query(c: dict[str, Any]) -> str:
    return "&".join(f"{k}={v}" for k, v in c["query"])


def test_cohort_list_and_clinical_table(server: RunningArchive) -> None:
    requests.post(f"{server.base}/commons/cases", timeout=30, headers=auth_headers(), json=[
        {"case_id": "Q1", "sex": "Female", "age_at_index": 50, "tests": [
            {"test_result": "Positive", "days_from_index": 0},
            {"test_result": "Negative", "days_from_index": 10}],
         "studies": [{"study_uid": f.uid("q1"), "days_to_study": 3}]}])
    store(server, "q1", "Q1", "WEST", description="CT CHEST WITHOUT CONTRAST")
    c = requests.post(f"{server.base}/commons/cohorts", timeout=30, headers=auth_headers(),
                      json={"filters": {"commons.case.sex": "female"}}).json()
    listed = requests.get(f"{server.base}/commons/cohorts", timeout=30,
                          headers=auth_headers()).json()["cohorts"]
    assert [x["id"] for x in listed] == [c["id"]]
    text = requests.get(f"{server.base}/commons/cohorts/{c['id']}/clinical?format=csv",
                        headers=auth_headers(),
                        timeout=30).text
    header, row = text.strip().split("\r\n")
    values = dict(zip(header.split(","), row.split(","), strict=True))
    assert values["loinc_code"] == "29252-4" and values["days_to_study"] == "3"
    assert values["days_from_study_to_pos_covid_test"] == "-3"
    assert values["days_from_study_to_neg_covid_test"] == "7"
