"""The /commons API and commons QIDO keys through real clients (dicomweb-client, requests).

Runs against the synthetic commons (tests/archive/commons/synth.py): three sites, 240 cases,
300 studies, clinical data posted before the images arrived.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from requests import HTTPError

from tests.archive.commons.conftest import AUTH, Loaded, running_commons
from tests.archive.commons.synth import Case, Study
from tests.conftest import key_headers


@pytest.fixture(scope="module")
def loaded(pg_server_url: str, template_db: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    with running_commons(pg_server_url, template_db, tmp_path_factory.mktemp("commons")) as c:
        yield c


def get(loaded: Loaded, path: str, **kw: Any) -> requests.Response:
    return requests.get(f"{loaded.server.base}{path}", timeout=60, **kw)


def uids(loaded: Loaded, pred: Any, sequestered: bool = False) -> set[str]:
    return {s.uid for c in loaded.commons.cases for s in c.studies
            if pred(c, s) and (sequestered or not s.sequestered)}


def qido(root: str, filters: dict[str, Any], **kw: Any) -> set[str]:
    client = DICOMwebClient(root, **kw)
    found = client.search_for_studies(search_filters=filters, get_remaining=True)
    return {d["0020000D"]["Value"][0] for d in found}


def with_offsets(c: Case, s: Study, result: str | None = None) -> list[int]:
    if s.days_to_study is None or not c.has_clinical:
        return []
    return [t["days_from_index"] - s.days_to_study for t in c.tests
            if result in (None, t["test_result"])]


# ---- QIDO-RS extension keys through dicomweb-client -------------------------------------------
CASES: list[tuple[dict[str, Any], Any]] = [
    ({"commons.loinc_code": "36554-4,29252-4"},
     lambda L, c, s: L.commons.code_of(s) in ("36554-4", "29252-4")),
    ({"commons.case.age_at_index": "40-65"},
     lambda L, c, s: c.has_clinical and 40 <= c.age <= 65),
    ({"commons.case.covid19_positive": "yes"},
     lambda L, c, s: c.has_clinical and c.covid19_positive == "Yes"),
    ({"commons.test.result": "Positive"},
     lambda L, c, s: c.has_clinical and any(t["test_result"] == "Positive" for t in c.tests)),
    ({"commons.test.days_from_study": "-3..3"},
     lambda L, c, s: any(-3 <= d <= 3 for d in with_offsets(c, s))),
    ({"commons.days_from_study_to_pos_covid_test": "0..7"},
     lambda L, c, s: any(0 <= d <= 7 for d in with_offsets(c, s, "Positive"))),
    ({"commons.site": "SITE_A"}, lambda L, c, s: s.site == "SITE_A"),
    # the DICOM grammar (PS3.18 §8.3.4): `\\` separates values, `a-b` is a range
    ({"commons.loinc_code": "36554-4\\29252-4", "commons.test.days_from_study": "-3-3"},
     lambda L, c, s: L.commons.code_of(s) in ("36554-4", "29252-4")
     and any(-3 <= d <= 3 for d in with_offsets(c, s))),
    ({"commons.dataset": "SITE_B_20260301"}, lambda L, c, s: s.site == "SITE_B"),
    ({"commons.case.sex": "Female", "ModalitiesInStudy": "CT"},
     lambda L, c, s: c.has_clinical and c.sex == "Female" and s.modality == "CT"),
    ({"commons.loinc_method": "XR*", "commons.case.age_at_index_gt89": "yes"},
     lambda L, c, s: c.has_clinical and c.age > 89 and s.modality == "CR"
     and L.commons.code_of(s) is not None),
]


@pytest.mark.parametrize(("filters", "pred"), CASES, ids=[str(c[0]) for c in CASES])
def test_qido_extension_keys(loaded: Loaded, filters: dict[str, Any], pred: Any) -> None:
    want = uids(loaded, lambda c, s: pred(loaded, c, s))
    assert want, "the synthetic commons must exercise the key"
    assert qido(loaded.server.url, filters) == want


def test_unknown_commons_key_is_400(loaded: Loaded) -> None:
    r = get(loaded, "/dicom-web/studies", params={"commons.no_such_key": "x"})
    assert r.status_code == 400
    assert "unknown commons query key" in r.json()["error"]
    with pytest.raises(HTTPError) as err:
        qido(loaded.server.url, {"commons.case.age_at_index": "old"})
    assert err.value.response.status_code == 400


def test_includefield_returns_private_block_and_coded_item(loaded: Loaded) -> None:
    c = next(c for c in loaded.commons.cases if c.has_clinical and c.age <= 89
             and not c.studies[0].sequestered and loaded.commons.code_of(c.studies[0]))
    s = c.studies[0]
    client = DICOMwebClient(loaded.server.url)
    [found] = client.search_for_studies(search_filters={
        "StudyInstanceUID": s.uid,
        "includefield": "commons.loinc_code,commons.loinc_long_common_name,commons.site,"
                        "commons.case.age_at_index,commons.test.result"})
    assert found["00110010"]["Value"] == ["IMAGING COMMONS"]
    assert found["00111001"]["Value"] == [loaded.commons.code_of(s)]
    assert found["00111010"]["Value"] == [s.site]
    assert found["00111024"]["Value"] == [c.age]
    results = sorted(c.tests, key=lambda t: t["days_from_index"])
    assert Counter(found["00111032"]["Value"]) == Counter(t["test_result"] for t in results)
    item = found["00081032"]["Value"][0]
    assert item["00080100"]["Value"] == [loaded.commons.code_of(s)]
    assert item["00080102"]["Value"] == ["LN"]
    assert item["00080104"]["Value"] == found["00111002"]["Value"]


# ---- sites, datasets, descriptions, facets ---------------------------------------------------
def test_sites_and_datasets_with_counts(loaded: Loaded) -> None:
    sites = {r["name"]: r for r in get(loaded, "/commons/sites").json()["sites"]}
    for site in ("SITE_A", "SITE_B", "SITE_C"):
        assert sites[site]["studies"] == len(uids(loaded, lambda c, s, x=site: s.site == x))
    datasets = {r["name"]: r for r in get(loaded, "/commons/datasets").json()["datasets"]}
    assert datasets["SITE_B_20260301"]["sites"] == ["SITE_B"]
    named = [n for n in datasets if n.startswith("SITE_A_")]
    assert len(named) == 1 and len(named[0]) == len("SITE_A_YYYYMMDD")


def test_curator_sees_sequestered_counts(loaded: Loaded) -> None:
    public = sum(r["studies"] for r in get(loaded, "/commons/sites").json()["sites"])
    curator = sum(r["studies"] for r in get(loaded, "/commons/sites", headers=AUTH)
                  .json()["sites"])
    assert curator - public == len([s for s in loaded.commons.studies if s.sequestered]) > 0


def test_unmapped_descriptions_listed_with_counts(loaded: Loaded) -> None:
    rows = get(loaded, "/commons/descriptions", params={"status": "unmapped"},
               headers=AUTH).json()["descriptions"]
    got = {(r["modality"], r["description"]): r["studies"] for r in rows}
    want = Counter(
        ("CR,DX" if s.modality == "CR" else s.modality, " ".join(s.description.split()).lower())
        for s in loaded.commons.studies if loaded.commons.code_of(s) is None)
    assert got == dict(want) and got


def test_facets_count_under_filters(loaded: Loaded) -> None:
    r = get(loaded, "/commons/facets", params={"field": "commons.case.sex",
                                                "commons.site": "SITE_C"})
    assert r.status_code == 200, r.text
    [facet] = r.json()["facets"]
    got = {v["value"]: v["studies"] for v in facet["values"]}
    want = Counter(c.sex for c in loaded.commons.cases for s in c.studies
                   if s.site == "SITE_C" and c.has_clinical and not s.sequestered)
    assert got == dict(want)
    r = get(loaded, "/commons/facets", params={"field": "commons.nope"})
    assert r.status_code == 400


def test_facets_over_loinc_codes_and_modalities(loaded: Loaded) -> None:
    r = get(loaded, "/commons/facets", params=[("field", "commons.loinc_code"),
                                                ("field", "ModalitiesInStudy"),
                                                ("commons.case.covid19_positive", "no")])
    assert r.status_code == 200, r.text
    codes, mods = r.json()["facets"]
    chosen = [(c, s) for c in loaded.commons.cases for s in c.studies
              if c.has_clinical and c.covid19_positive == "No" and not s.sequestered]
    want_codes = Counter(loaded.commons.code_of(s) for _, s in chosen)
    assert {v["value"]: v["studies"] for v in codes["values"]} == dict(want_codes)
    assert {v["value"]: v["studies"] for v in mods["values"]} == dict(
        Counter(s.modality for _, s in chosen))
    assert codes["studies"] == len(chosen)


# ---- cohorts --------------------------------------------------------------------------------
def make_cohort(loaded: Loaded, filters: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """A cohort made by a reader (or with `headers`) and, unless `headers`, published by the
    curator so that anonymous readers may use it."""
    headers = kw.pop("headers", None)
    r = requests.post(f"{loaded.server.base}/commons/cohorts",
                      json={"name": "test", "filters": filters}, timeout=60,
                      headers=headers or key_headers(loaded.server), **kw)
    assert r.status_code == 201, r.text
    if headers is None:
        published = requests.post(f"{loaded.server.base}/commons/cohorts/{r.json()['id']}/publish",
                                  headers=AUTH, timeout=30)
        assert published.status_code == 200, published.text
    return r.json()


def test_cohort_manifest_csv_json_and_clinical(loaded: Loaded) -> None:
    filters = {"commons.case.covid19_positive": "Yes", "ModalitiesInStudy": "CR"}
    want = uids(loaded, lambda c, s: c.has_clinical and c.covid19_positive == "Yes"
                and s.modality == "CR")
    cohort = make_cohort(loaded, filters)
    assert cohort["counts"]["studies"] == len(want) == cohort["counts"]["instances"]
    assert cohort["query"] == [[k, v] for k, v in filters.items()]
    path = f"/commons/cohorts/{cohort['id']}"
    text = get(loaded, f"{path}/manifest", headers={"Accept": "text/csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["study_uid"] for r in rows} == want
    assert all(r["series_url"].startswith(cohort["dicomweb_root"]) for r in rows)
    doc = get(loaded, f"{path}/manifest", params={"format": "json"}).json()
    assert sum(len(s["instance_list"]) for s in doc["series"]) == len(want)
    assert {r["study_uid"] for r in doc["clinical"]} == want
    assert all(r["covid19_positive"] == "Yes" for r in doc["clinical"])


def test_cohort_root_sees_only_its_studies(loaded: Loaded) -> None:
    cohort = make_cohort(loaded, {"commons.site": "SITE_C", "commons.case.sex": "Male"})
    want = uids(loaded, lambda c, s: s.site == "SITE_C" and c.has_clinical and c.sex == "Male")
    root = cohort["dicomweb_root"]
    assert qido(root, {}) == want
    assert qido(root, {"commons.site": "SITE_A"}) == set()
    outsider = next(s for s in loaded.commons.studies
                    if s.site == "SITE_A" and not s.sequestered)
    client = DICOMwebClient(root)
    assert client.search_for_series(search_filters={"StudyInstanceUID": outsider.uid}) == []
    assert requests.get(f"{root}/studies/{outsider.uid}/metadata", timeout=30).status_code == 404
    assert requests.get(f"{root}/studies/{outsider.uid}", timeout=30).status_code == 404
    member = sorted(want)[0]
    meta = client.retrieve_study_metadata(member)
    assert meta[0]["0020000D"]["Value"] == [member]
    [found] = client.search_for_studies(search_filters={"StudyInstanceUID": member})
    # URLs keep the cohort root (dicomweb-client sends Host without the port, so compare paths)
    assert urlparse(found["00081190"]["Value"][0]).path == \
        urlparse(f"{root}/studies/{member}").path


def test_cohort_root_is_read_only_and_unknown_cohorts_404(loaded: Loaded) -> None:
    cohort = make_cohort(loaded, {"commons.site": "SITE_A"})
    r = requests.post(f"{cohort['dicomweb_root']}/studies", data=b"x", timeout=30,
                      headers={"Content-Type": "multipart/related; type=application/dicom"})
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET,HEAD"
    assert r.json() == {"error": "a cohort is frozen: its DICOMweb root is read-only",
                        "status": 405}
    for bad in ("00000000-0000-0000-0000-000000000000", "1;DROP TABLE study", "x"):
        assert get(loaded, f"/commons/cohorts/{bad}").status_code == 404
        assert get(loaded, f"/commons/cohorts/{bad}/dicom-web/studies").status_code == 404


def test_file_download_is_byte_exact_and_resumable(loaded: Loaded) -> None:
    cohort = make_cohort(loaded, {"commons.site": "SITE_B"})
    doc = get(loaded, f"/commons/cohorts/{cohort['id']}/manifest?format=json").json()
    inst = doc["series"][0]["instance_list"][0]
    whole = requests.get(inst["file_url"], timeout=30).content
    assert len(whole) == inst["size_bytes"]
    import hashlib

    assert hashlib.sha256(whole).hexdigest() == inst["sha256"]
    tail = requests.get(inst["file_url"], headers={"Range": "bytes=100-"}, timeout=30)
    assert tail.status_code == 206 and tail.content == whole[100:]


def test_restricted_cohort_is_invisible_without_the_token(loaded: Loaded) -> None:
    cohort = make_cohort(loaded, {"commons.site": "*"}, headers=AUTH)
    assert cohort["restricted"] is True
    assert get(loaded, f"/commons/cohorts/{cohort['id']}").status_code == 404
    assert get(loaded, f"/commons/cohorts/{cohort['id']}", headers=AUTH).status_code == 200


def test_bad_cohort_filters_are_400(loaded: Loaded) -> None:
    for body in ({"filters": {"commons.case.age_at_index": "x"}}, {"filters": {"limit": "3"}},
                 {"filters": {"NoSuchKeyword": "1"}}, {"filtres": {}}, ["x"]):
        r = requests.post(f"{loaded.server.base}/commons/cohorts", json=body, timeout=30,
                          headers=key_headers(loaded.server))
        assert r.status_code == 400, (body, r.text)


# ---- cases and the OpenAPI document ----------------------------------------------------------
def test_get_case_joins_clinical_and_studies(loaded: Loaded) -> None:
    c = next(c for c in loaded.commons.cases if c.has_clinical and c.age > 89
             and not c.studies[0].sequestered)
    doc = get(loaded, f"/commons/cases/{c.case_id}").json()
    assert doc["age_at_index"] is None and doc["age_at_index_gt89"] is True
    assert len(doc["tests"]) == len(c.tests)
    assert {s["study_uid"] for s in doc["imaging_studies"]} == {s.uid for s in c.studies}
    hidden = next(c for c in loaded.commons.cases if c.studies[0].sequestered and c.has_clinical)
    assert get(loaded, f"/commons/cases/{hidden.case_id}").status_code == 404
    assert get(loaded, f"/commons/cases/{hidden.case_id}", headers=AUTH).status_code == 200


def test_openapi_lists_every_endpoint_and_key(loaded: Loaded) -> None:
    doc = get(loaded, "/commons/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert "/commons/cohorts/{cohort}/manifest" in doc["paths"]
    keys = {k["key"] for k in doc["x-commons-query-keys"]}
    assert {"commons.loinc_code", "commons.test.days_from_study", "commons.site"} <= keys


def _fill(path: str, s: Study) -> str:
    return (path.replace("{study}", s.uid).replace("{series}", _series(s))
            .replace("{instance}", _sop(s)).replace("{frames}", "1")
            .replace("{tag}", "7FE00010"))


def _series(s: Study) -> str:
    from tests import factories as f

    return f.uid(s.uid_name, "se1")


def _sop(s: Study) -> str:
    from tests import factories as f

    return f.uid(s.uid_name, "se1", 1, "sop")


def test_cohort_root_hides_other_studies_on_every_route(loaded: Loaded) -> None:
    """Every GET route of the cohort root, taken from the route table itself."""
    from dicomweb.routes import cohort_roots

    cohort = make_cohort(loaded, {"commons.site": "SITE_C"})
    member = next(s for s in loaded.commons.studies if s.site == "SITE_C" and not s.sequestered)
    outsider = next(s for s in loaded.commons.studies
                    if s.site == "SITE_A" and not s.sequestered)
    paths = sorted({r.path for r in cohort_roots() if r.method == "GET"})
    assert len(paths) > 15
    base = loaded.server.base
    for template in paths:
        path = template.replace("{cohort}", cohort["id"])
        params: dict[str, str] = {}
        if path.endswith("/wado"):
            params = {"requestType": "WADO", "studyUID": outsider.uid,
                      "seriesUID": _series(outsider), "objectUID": _sop(outsider),
                      "contentType": "application/dicom"}
        elif "{study}" not in template:
            params = {"StudyInstanceUID": outsider.uid}
        r = requests.get(base + _fill(path, outsider), params=params, timeout=30)
        if r.status_code == 200:
            assert r.json() == [], (template, r.text[:200])
        else:
            assert r.status_code in (204, 404), (template, r.status_code, r.text[:200])
        if "/rendered" in template or "/thumbnail" in template or "/bulkdata" in template:
            continue
        if path.endswith("/wado"):
            params |= {"studyUID": member.uid, "seriesUID": _series(member),
                       "objectUID": _sop(member)}
        elif "{study}" not in template:
            params = {"StudyInstanceUID": member.uid}
        r = requests.get(base + _fill(path, member), params=params, timeout=30)
        assert r.status_code == 200, (template, r.status_code, r.text[:200])


def _terms() -> dict[str, Any]:
    from archive.commons.playbook import read_playbook, shipped_playbook

    return {t.code: t for t in read_playbook(shipped_playbook().read_text("utf-8")).terms}


TERMS = _terms()


def _term(attr: str, pred: Any) -> Any:
    def check(L: Loaded, c: Case, s: Study) -> bool:
        code = L.commons.code_of(s)
        return code is not None and pred(getattr(TERMS[code], attr) or "")
    return check


def _clin(pred: Any) -> Any:
    return lambda L, c, s: c.has_clinical and pred(c, s)


def _any(rows: str, pred: Any) -> Any:
    return _clin(lambda c, s: any(pred(r) for r in getattr(c, rows)))


EVERY_KEY: dict[str, tuple[str, Any]] = {
    "commons.site": ("SITE_B", lambda L, c, s: s.site == "SITE_B"),
    "commons.dataset": ("SITE_A_*", lambda L, c, s: s.site == "SITE_A"),
    "commons.loinc_code": ("36554-4", lambda L, c, s: L.commons.code_of(s) == "36554-4"),
    "commons.loinc_long_common_name": ("*portable*",
                                       _term("long_common_name", lambda v: "Portable" in v)),
    "commons.loinc_system": ("Chest", _term("body_system", lambda v: v == "Chest")),
    "commons.loinc_method": ("CT.angio", _term("method", lambda v: v == "CT.angio")),
    "commons.loinc_contrast": ("W", _term("contrast", lambda v: v == "W")),
    "commons.mapping_version": ("1", lambda L, c, s: L.commons.code_of(s) is not None),
    "commons.case.id": ("A0001?", _clin(lambda c, s: c.case_id[:5] == "A0001")),
    "commons.case.site": ("SITE_C", _clin(lambda c, s: c.site == "SITE_C")),
    "commons.case.sex": ("male", _clin(lambda c, s: c.sex == "Male")),
    "commons.case.race": ("Black*", _clin(lambda c, s: c.race.startswith("Black"))),
    "commons.case.ethnicity": ("hispanic or latino",
                               _clin(lambda c, s: c.ethnicity == "Hispanic or Latino")),
    "commons.case.age_at_index": ("30..50", _clin(lambda c, s: 30 <= c.age <= 50)),
    "commons.case.age_at_index_gt89": ("no", _clin(lambda c, s: c.age <= 89)),
    "commons.case.zip": ("1*,2*", _clin(lambda c, s: c.zip[0] in "12")),
    "commons.case.covid19_positive": ("No", _clin(lambda c, s: c.covid19_positive == "No")),
    "commons.case.index_event": ("Study Enrollment",
                                 _clin(lambda c, s: c.index_event == "Study Enrollment")),
    "commons.days_to_study": ("0..10", _clin(lambda c, s: s.days_to_study is not None
                                             and 0 <= s.days_to_study <= 10)),
    "commons.test.name": ("COVID-19", _clin(lambda c, s: bool(c.tests))),
    "commons.test.method": ("RT-PCR", _any("tests", lambda t: t["test_method"] == "RT-PCR")),
    "commons.test.result": ("Negative", _any("tests", lambda t: t["test_result"] == "Negative")),
    "commons.test.days_from_index": ("15..", _any("tests", lambda t: t["days_from_index"] >= 15)),
    "commons.test.days_from_study": ("..-5", lambda L, c, s: any(
        d <= -5 for d in with_offsets(c, s))),
    "commons.days_from_study_to_pos_covid_test": ("-3..3", lambda L, c, s: any(
        -3 <= d <= 3 for d in with_offsets(c, s, "Positive"))),
    "commons.days_from_study_to_neg_covid_test": ("0..10", lambda L, c, s: any(
        0 <= d <= 10 for d in with_offsets(c, s, "Negative"))),
    "commons.condition.code": ("I10", _any("conditions", lambda r: r["code"] == "I10")),
    "commons.condition.name": ("covid*", _any("conditions", lambda r: r["name"] == "COVID-19")),
    "commons.medication.code": ("3264", _any("medications", lambda r: True)),
    "commons.medication.name": ("dexa*", _any("medications", lambda r: True)),
    "commons.medication.type": ("systemic steroids", _any("medications", lambda r: True)),
    "commons.procedure.code": ("5A1955Z", _any("procedures", lambda r: True)),
    "commons.procedure.name": ("Breathing Support", _any("procedures", lambda r: True)),
    "commons.study_description": ("*chest*", lambda L, c, s: "chest" in s.description.lower()),
    "commons.observation.smoking_status": ("Former,Current", _any(
        "observations", lambda r: r["answer"] in ("Former", "Current"))),
}


def test_every_commons_key_is_covered_below() -> None:
    from archive.index.commons_fields import FIELDS

    assert set(EVERY_KEY) == set(FIELDS) | {"commons.observation.smoking_status"}


@pytest.mark.parametrize("key", sorted(EVERY_KEY))
def test_every_commons_key_through_dicomweb_client(loaded: Loaded, key: str) -> None:
    value, pred = EVERY_KEY[key]
    want = uids(loaded, lambda c, s: pred(loaded, c, s))
    assert want, f"the synthetic commons must exercise {key}"
    assert qido(loaded.server.url, {key: value}) == want
    curator = uids(loaded, lambda c, s: pred(loaded, c, s), sequestered=True)
    assert qido(loaded.server.url, {key: value}, headers=AUTH) == curator


def test_includefield_values_also_in_dicom_xml(loaded: Loaded) -> None:
    s = next(s for s in loaded.commons.studies if loaded.commons.code_of(s) and not s.sequestered)
    r = get(loaded, "/dicom-web/studies", params={
        "StudyInstanceUID": s.uid, "includefield": "commons.loinc_code,commons.site"},
        headers={"Accept": "multipart/related; type=\"application/dicom+xml\""})
    assert r.status_code == 200, r.text[:300]
    assert b'tag="00110010"' in r.content and b"IMAGING COMMONS" in r.content
    assert f"<Value number=\"1\">{loaded.commons.code_of(s)}</Value>".encode() in r.content
