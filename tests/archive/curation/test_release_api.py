"""Releases over a synthetic commons of 3,000 cases, against a running archive (issue 16).

Tolerances (stated in docs/commons.md): every stratum is within one case of its target share
(whole cases cannot do better); every marginal cell of at least 100 cases is within 2.5
percentage points of the 20 % target; the release as a whole within 0.1 point.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests

from archive.curation.sequester import Partition, sequester
from archive.curation.strata import DEFAULT_ATTRIBUTES, Case, stratum_of
from tests.archive.curation.commons_seed import seed
from tests.archive.curation.synthetic import synthetic_cases
from tests.conftest import RunningArchive, key_headers

TOKEN = "curator-secret"
CURATOR = {"Authorization": f"Bearer {TOKEN}"}


def release(server: RunningArchive, dataset: str, **body: Any) -> requests.Response:
    return requests.post(f"{server.base}/commons/datasets/{dataset}/release", json=body or None,
                         headers=CURATOR, timeout=300)


def partitions(server: RunningArchive) -> dict[str, str]:
    return {r["case_id"]: r["partition"] for r in server.sql(
        "SELECT case_id, partition FROM case_partition")}


@pytest.fixture
def commons(server_factory: Callable[..., RunningArchive]) -> tuple[RunningArchive, list[Case]]:
    server = server_factory(release_workflow=True, curator_token=TOKEN)
    cases = synthetic_cases(3000, seed=11)
    seed(server.database_url, cases[:2000], "BATCH_1", "1")
    return server, cases


def test_release_is_stratified_sticky_and_reproducible(
        commons: tuple[RunningArchive, list[Case]]) -> None:
    server, cases = commons
    assert requests.get(f"{server.base}/commons/releases", timeout=30).json() == {"releases": []}
    r = release(server, "BATCH_1", notes="first batch")
    assert r.status_code == 201, r.text
    rel = r.json()
    assert rel["number"] == 1 and rel["datasets"] == ["BATCH_1"] and rel["notes"] == "first batch"
    counts = rel["counts"]
    assert counts["new"]["open"] + counts["new"]["sequestered"] == 2000
    assert abs(counts["overall_fraction"] - 0.2) <= 0.001
    first = partitions(server)
    assert len(first) == 2000
    # measured independently of the service's own report: per stratum and per marginal cell
    _check_balance(cases[:2000], first)
    # the studies follow their case: sequestered collection or the default one, none staged
    by_coll = Counter(r["collection"] for r in server.sql("SELECT collection FROM study"))
    assert by_coll == {"sequestered": counts["new"]["sequestered"],
                       "public": counts["new"]["open"]}
    # reproducible: the recorded seed re-derives the same assignment from the same input
    again = sequester(cases[:2000], {}, seed=rel["seed"], fraction=rel["fraction"],
                      attributes=tuple(rel["attributes"]))
    assert {c: str(p) for c, p in again.assignments.items()} == first
    # second batch: 1,000 new cases plus new studies of 400 earlier cases
    seed(server.database_url, cases[2000:], "BATCH_2", "2")
    seed(server.database_url, cases[:400], "BATCH_2", "3", clinical=False)
    assert release(server, "BATCH_1").status_code == 409  # nothing left to release there
    r2 = release(server, "BATCH_2")
    assert r2.status_code == 201, r2.text
    assert r2.json()["number"] == 2 and r2.json()["counts"]["followed_earlier"] == 400
    second = partitions(server)
    assert {c: second[c] for c in first} == first  # sticky
    _check_balance(cases, second)
    rows = server.sql(
        "SELECT p.patient_id, s.collection FROM study s JOIN patient p ON p.pk = s.patient_pk "
        "WHERE s.dataset = 'BATCH_2'")
    for row in rows:  # earlier cases' new studies follow the case
        want = "sequestered" if second[row["patient_id"]] == "sequestered" else "public"
        assert row["collection"] == want
    listed = requests.get(f"{server.base}/commons/releases", timeout=30).json()["releases"]
    assert [x["number"] for x in listed] == [1, 2] and "strata" not in listed[0]["counts"]
    one = requests.get(f"{server.base}/commons/releases/1", timeout=30).json()
    assert one["seed"] == rel["seed"] and one["counts"]["strata"]
    assert requests.get(f"{server.base}/commons/releases/9", timeout=30).status_code == 404


def _check_balance(cases: list[Case], assigned: dict[str, str]) -> None:
    strata: dict[tuple[str, ...], list[int]] = {}
    margins: dict[tuple[str, str], list[int]] = {}
    for c in cases:
        seq = assigned[c.case_id] == Partition.SEQUESTERED
        key = stratum_of(c, DEFAULT_ATTRIBUTES)
        strata.setdefault(key, [0, 0])[seq] += 1
        for a, v in zip(DEFAULT_ATTRIBUTES, key, strict=True):
            margins.setdefault((a, v), [0, 0])[seq] += 1
    for key, (n_open, n_seq) in strata.items():
        assert abs(n_seq - 0.2 * (n_open + n_seq)) < 1.0 + 1e-9, key
    for cell, (n_open, n_seq) in margins.items():
        n = n_open + n_seq
        if n >= 100:
            assert abs(n_seq / n - 0.2) <= 0.025, (cell, n_seq, n)
    total = sum(assigned[c.case_id] == "sequestered" for c in cases)
    assert abs(total / len(cases) - 0.2) <= 0.001


def test_release_needs_the_curator_and_a_known_dataset(
        commons: tuple[RunningArchive, list[Case]]) -> None:
    server, _ = commons
    r = requests.post(f"{server.base}/commons/datasets/BATCH_1/release",
                      headers=key_headers(server, "reader"), timeout=30)
    assert r.status_code == 403
    assert release(server, "NO_SUCH").status_code == 409
    assert release(server, "BATCH_1", seed="x").status_code == 400
    assert server.sql("SELECT count(*) AS n FROM data_release")[0]["n"] == 0


def test_testsets_meet_quotas_or_refuse_with_the_shortfall(
        commons: tuple[RunningArchive, list[Case]]) -> None:
    server, _ = commons
    assert release(server, "BATCH_1", seed=5).status_code == 201
    targets = {"covid19_positive": {"Yes": 0.5, "No": 0.5}, "sex": {"Female": 0.5, "Male": 0.5}}
    r = requests.post(f"{server.base}/commons/testsets", headers=CURATOR, timeout=120, json={
        "name": "covid balanced", "size": 100, "targets": targets})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["restricted"] and made["counts"]["cases"] == 100
    dist = made["testset"]["distribution"]
    assert dist["covid19_positive"]["Yes"]["count"] == 50 and dist["sex"]["Male"]["count"] == 50
    cases = {r["patient_id"] for r in server.sql(
        "SELECT p.patient_id FROM cohort_study cs JOIN study s ON s.pk = cs.study_pk "
        "JOIN patient p ON p.pk = s.patient_pk WHERE cs.cohort_id = $1::uuid", made["id"])}
    seq = {c for c, p in partitions(server).items() if p == "sequestered"}
    assert len(cases) == 100 and cases <= seq
    # a reader never sees the test set; a curator reads its manifest and DICOMweb root
    assert requests.get(f"{server.base}/commons/cohorts/{made['id']}", timeout=30).status_code == 404
    assert requests.get(f"{server.base}/commons/cohorts/{made['id']}/manifest", headers=CURATOR,
                        timeout=30).status_code == 200
    # a second set does not reuse the first one's cases
    r2 = requests.post(f"{server.base}/commons/testsets", headers=CURATOR, timeout=120, json={
        "name": "second", "size": 100, "targets": targets})
    assert r2.status_code == 201, r2.text
    cases2 = {r["patient_id"] for r in server.sql(
        "SELECT p.patient_id FROM cohort_study cs JOIN study s ON s.pk = cs.study_pk "
        "JOIN patient p ON p.pk = s.patient_pk WHERE cs.cohort_id = $1::uuid", r2.json()["id"])}
    assert not cases & cases2
    # the pool (~400 sequestered cases) cannot give 300 COVID-positive cases: 409 + shortfall
    r3 = requests.post(f"{server.base}/commons/testsets", headers=CURATOR, timeout=120, json={
        "name": "too many", "size": 600, "targets": {"covid19_positive": {"Yes": 0.5, "No": 0.5}}})
    assert r3.status_code == 409, r3.text
    gaps = r3.json()["shortfall"]
    assert gaps and all(g["needed"] > g["available"] for g in gaps)
    assert requests.post(f"{server.base}/commons/testsets", headers=key_headers(server, "reader"),
                         timeout=30, json={
        "name": "x", "size": 1}).status_code == 403
    bad = requests.post(f"{server.base}/commons/testsets", headers=CURATOR, timeout=30, json={
        "name": "x", "size": 10, "targets": {"sex": {"Female": 0.7, "Male": 0.7}}})
    assert bad.status_code == 400
    # the filters cohorts take narrow the pool: only cases with a CT study
    ct = requests.post(f"{server.base}/commons/testsets", headers=CURATOR, timeout=120, json={
        "name": "CT only", "size": 20, "filters": {"ModalitiesInStudy": "CT"}})
    assert ct.status_code == 201, ct.text
    mods = server.sql(
        "SELECT s.modalities FROM cohort_study cs JOIN study s ON s.pk = cs.study_pk "
        "WHERE cs.cohort_id = $1::uuid", ct.json()["id"])
    assert len(mods) == 20 and all("CT" in r["modalities"] for r in mods)
    listed = requests.get(f"{server.base}/commons/testsets", headers=CURATOR, timeout=30).json()
    assert [t["name"] for t in listed["testsets"]] == ["covid balanced", "second", "CT only"]


def test_override_moves_one_case_with_a_reason(
        commons: tuple[RunningArchive, list[Case]]) -> None:
    server, _ = commons
    assert release(server, "BATCH_1").status_code == 201
    case = next(c for c, p in partitions(server).items() if p == "open")
    url = f"{server.base}/commons/cases/{case}/partition"
    assert requests.post(url, headers=CURATOR, json={"partition": "sequestered"},
                         timeout=30).status_code == 400  # no reason
    r = requests.post(url, headers=CURATOR, timeout=30, json={
        "partition": "sequestered", "reason": "site asked: patient in their own test set"})
    assert r.status_code == 200, r.text
    assert r.json()["overrides"][0]["reason"].startswith("site asked")
    assert partitions(server)[case] == "sequestered"
    colls = {r["collection"] for r in server.sql(
        "SELECT s.collection FROM study s JOIN patient p ON p.pk = s.patient_pk "
        "WHERE p.patient_id = $1", case)}
    assert colls == {"sequestered"}
