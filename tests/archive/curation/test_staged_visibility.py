"""Readers never see staged or sequestered data, on any read route (real STOW-RS, QIDO-RS,
WADO-RS, cohorts); QC, LOINC suggestions and cohort releases (issue 16)."""

from __future__ import annotations

from collections.abc import Callable

import requests
from dicomweb_client.api import DICOMwebClient

from tests import factories as f
from tests.conftest import RunningArchive, key_headers

TOKEN = "curator-secret"
CURATOR = {"Authorization": f"Bearer {TOKEN}"}


def store(server: RunningArchive, study: str, patient: str, dataset: str,
          description: str = "CT CHEST WO CONTRAST") -> None:
    ds = f.image(study, "se1", 1, rows=8, columns=8, patient_id=patient,
                 study_description=description)
    DICOMwebClient(server.url, headers={**CURATOR, "X-Archive-Site": "NORTH",
                                        "X-Archive-Dataset": dataset}).store_instances([ds])


def studies(server: RunningArchive, headers: dict[str, str] | None = None) -> set[str]:
    found = DICOMwebClient(server.url, headers=headers).search_for_studies()
    return {d["0020000D"]["Value"][0] for d in found}


def test_staged_then_released(server_factory: Callable[..., RunningArchive]) -> None:
    server = server_factory(release_workflow=True, curator_token=TOKEN)
    requests.post(f"{server.base}/commons/cases", headers=CURATOR, timeout=30, json=[
        {"case_id": f"P{i}", "sex": "Female" if i % 2 else "Male", "covid19_positive": "Yes",
         "age_at_index": 40 + i} for i in range(10)])
    names = [f"st{i}" for i in range(10)]
    for i, name in enumerate(names):
        store(server, name, f"P{i}", "NORTH_1",
              description="CT THORAX PE STUDY" if i == 0 else "CT CHEST WO CONTRAST")
    store(server, "orphan", "NOCASE", "NORTH_1")
    uids = {f.uid(n) for n in [*names, "orphan"]}
    # staged: invisible to readers on every door, visible to the curator
    assert studies(server) == set()
    assert studies(server, CURATOR) == uids
    r = requests.get(f"{server.url}/studies/{f.uid('st1')}/metadata", timeout=30)
    assert r.status_code == 404
    datasets = requests.get(f"{server.base}/commons/datasets", timeout=30).json()["datasets"]
    assert datasets == []
    reader = key_headers(server, "reader")  # cohorts belong to a named creator
    reader_cohort = requests.post(f"{server.base}/commons/cohorts", headers=reader, timeout=30,
                                  json={"filters": {"commons.site": "NORTH"}}).json()
    assert reader_cohort["counts"]["studies"] == 0 and reader_cohort["release"] is None
    # QC: unmapped descriptions with suggestions, a study without a case, PHI in the headers
    qc = requests.get(f"{server.base}/commons/datasets/NORTH_1/qc", headers=CURATOR, timeout=120)
    assert qc.status_code == 200, qc.text
    report = qc.json()
    assert report["studies"] == 11
    unmapped = {u["description"]: u for u in report["unmapped"]}
    assert "ct thorax pe study" in unmapped
    assert unmapped["ct thorax pe study"]["suggestions"][0]["loinc_code"]
    assert report["studies_without_case"]["studies"] == [
        {"study_uid": f.uid("orphan"), "patient_id": "NOCASE"}]
    assert report["cases_without_clinical_data"]["case_ids"] == ["NOCASE"]
    keywords = {x["keyword"] for x in report["phi"]["findings"]}
    assert {"PatientName", "PatientID"} <= keywords and report["phi"]["scanned"] == 11
    assert requests.get(f"{server.base}/commons/datasets/NORTH_1/qc", headers=reader,
                        timeout=30).status_code == 403
    # release: open part visible, sequestered part never
    rel = requests.post(f"{server.base}/commons/datasets/NORTH_1/release", headers=CURATOR,
                        json={"notes": "north, first batch"}, timeout=120)
    assert rel.status_code == 201, rel.text
    parts = {r["case_id"]: r["partition"] for r in server.sql(
        "SELECT case_id, partition FROM case_partition")}
    assert len(parts) == 11 and 1 <= list(parts.values()).count("sequestered") <= 3
    open_uids = {f.uid(n) for n, p in zip([*names, "orphan"], [*(f"P{i}" for i in range(10)),
                                                                 "NOCASE"], strict=True)
                 if parts[p] == "open"}
    assert studies(server) == open_uids
    assert studies(server, CURATOR) == uids
    hidden = next(f.uid(n) for n, p in zip(names, (f"P{i}" for i in range(10)), strict=True)
                  if parts[p] == "sequestered")
    assert requests.get(f"{server.url}/studies/{hidden}/metadata", timeout=30).status_code == 404
    # a cohort built now records release 1 and keeps its studies after a later release
    c = requests.post(f"{server.base}/commons/cohorts", headers=reader, timeout=30,
                      json={"filters": {"commons.site": "NORTH"}}).json()
    assert c["release"] == 1 and c["counts"]["studies"] == len(open_uids)
    store(server, "late", "P1", "NORTH_2")
    assert requests.post(f"{server.base}/commons/datasets/NORTH_2/release", headers=CURATOR,
                         timeout=120).status_code == 201
    again = requests.get(f"{server.base}/commons/cohorts/{c['id']}", headers=reader,
                         timeout=30).json()
    assert again["release"] == 1 and again["counts"] == c["counts"]
    root = DICOMwebClient(f"{server.base}/commons/cohorts/{c['id']}/dicom-web", headers=reader)
    assert {d["0020000D"]["Value"][0] for d in root.search_for_studies()} == open_uids


def test_suggestions_and_the_unmapped_report(server_factory: Callable[..., RunningArchive]) -> None:
    server = server_factory(curator_token=TOKEN)
    r = requests.get(f"{server.base}/commons/loinc/suggest", timeout=120, params={
        "modality": "CT", "description": "CT CHEST W/O CONTRAST", "limit": "3"})
    assert r.status_code == 200, r.text
    found = r.json()["suggestions"]
    assert len(found) == 3 and found[0]["loinc_code"] == "29252-4"
    assert set(found[0]) == {"loinc_code", "long_common_name", "score"}
    assert found[0]["score"] >= found[1]["score"] >= found[2]["score"]
    xr = requests.get(f"{server.base}/commons/loinc/suggest", timeout=60, params={
        "modality": "CR,DX", "description": "XR CHEST PA/LAT"}).json()["suggestions"]
    assert xr and all(s["long_common_name"].startswith(("XR", "Portable XR")) for s in xr)
    for bad in ({"modality": "CT"}, {"description": "x", "limit": "0"},
                {"description": "x", "limit": "many"}):
        assert requests.get(f"{server.base}/commons/loinc/suggest", params=bad,
                            timeout=30).status_code == 400
    # an unmapped description gets suggestions in the worklist; approving it teaches the
    # suggester: the same wording now ranks the approved code first
    odd = "RESEARCH THORAX PROTOCOL 7"
    store(server, "odd", "X1", "D1", description=odd)
    rows = requests.get(f"{server.base}/commons/descriptions?status=unmapped",
                        timeout=60).json()["descriptions"]
    row = next(x for x in rows if x["description"] == odd.casefold())
    assert len(row["suggestions"]) == 3
    ok = requests.post(f"{server.base}/commons/mappings", headers=CURATOR, timeout=30, json={
        "modality": "CT", "description": odd, "loinc_code": "24627-2"})
    assert ok.status_code == 200, ok.text
    after = requests.get(f"{server.base}/commons/loinc/suggest", timeout=60, params={
        "modality": "CT", "description": odd.lower()}).json()["suggestions"]
    assert after[0]["loinc_code"] == "24627-2"
    paths = requests.get(f"{server.base}/commons/openapi.json", timeout=30).json()["paths"]
    assert {"/commons/loinc/suggest", "/commons/testsets", "/commons/releases/{number}",
            "/commons/datasets/{dataset}/release"} <= set(paths)


def test_contributors_see_their_own_sites_staged_studies(
        server_factory: Callable[..., RunningArchive]) -> None:
    """The one visibility rule: staged studies show to curators and to an authenticated
    contributor of the study's site only (a site named without the role shows nothing)."""
    from sqlalchemy import select

    from archive.core import Caller
    from archive.index.tables import study
    from archive.index.visibility import visible_to

    server = server_factory(release_workflow=True, curator_token=TOKEN)
    for name, site in (("a", "NORTH"), ("b", "SOUTH")):
        ds = f.image(name, "se1", 1, rows=8, columns=8, patient_id=f"P-{name}")
        DICOMwebClient(server.url, headers=key_headers(server, "contributor", site)
                       ).store_instances([ds])

    def seen(caller: Caller) -> set[str]:
        async def q() -> set[str]:
            async with server.core.engine.connect() as conn:
                rows = await conn.execute(select(study.c.study_uid).where(visible_to(caller)))
                return {r.study_uid for r in rows}
        return server.run(q())

    assert seen(Caller()) == set()
    assert seen(Caller(site="NORTH")) == set()  # a claimed site is not a role
    assert seen(Caller(site="NORTH", roles=frozenset({"contributor"}))) == {f.uid("a")}
    assert seen(Caller(may_see_sequestered=True, roles=frozenset({"curator"}))) == {
        f.uid("a"), f.uid("b")}
