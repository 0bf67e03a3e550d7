"""QIDO-RS through raw HTTP and dicomweb-client against the matching corpus."""

from __future__ import annotations

from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from lxml import etree

from archive.errors import InvalidQuery
from archive.index.tables import study
from tests import factories as f
from tests.archive.query.cases import CASES, Case, resolve
from tests.archive.query.corpus import Corpus, running_with_corpus
from tests.conftest import RunningArchive, auth_headers

RESOURCE = {"STUDY": "/studies", "SERIES": "/series", "IMAGE": "/instances"}
NS = {"d": "http://dicom.nema.org/PS3.19/models/NativeDICOM"}


@pytest.fixture(scope="module")
def corpus(pg_server_url: str, template_db: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningArchive, Corpus]]:
    tmp: Path = tmp_path_factory.mktemp("qido")
    with running_with_corpus(pg_server_url, template_db, tmp, curator_token="s3cret") as pair:
        yield pair


def get(server: RunningArchive, path: str, params: Any = None, **headers: str) -> requests.Response:
    return requests.get(server.url + path, params=params, headers=headers, timeout=30)


def study_uids(body: list[dict[str, Any]]) -> list[str]:
    return [d["0020000D"]["Value"][0] for d in body]


@pytest.mark.parametrize("case", [c for c in CASES if "qido" in c.doors], ids=lambda c: c.id)
def test_matching_case(corpus: tuple[RunningArchive, Corpus], case: Case) -> None:
    server, c = corpus
    r = get(server, RESOURCE[case.level], resolve(case.keys, c.uids))
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/dicom+json"
    assert c.letters(study_uids(r.json())) == set(case.expected)


def test_dicomweb_client_searches(corpus: tuple[RunningArchive, Corpus]) -> None:
    server, c = corpus
    client = DICOMwebClient(server.url)
    studies = client.search_for_studies(search_filters={"PatientID": "PID-A"})
    assert c.letters(study_uids(studies)) == {"A"}
    assert studies[0]["00201206"]["Value"] == [2]
    assert studies[0]["00201208"]["Value"] == [4]
    assert studies[0]["00080061"]["Value"] == ["CT", "SR"]
    series = client.search_for_series(c.uids["A"])
    assert [s["00080060"]["Value"][0] for s in series] == ["CT", "SR"]
    assert all("00100010" not in s for s in series)  # study attributes not repeated
    assert all(s["00201209"]["Value"] == [2] for s in series)
    se = series[0]["0020000E"]["Value"][0]
    instances = client.search_for_instances(c.uids["A"], se)
    assert [i["00200013"]["Value"][0] for i in instances] == [1, 2]
    assert instances[0]["00081190"]["Value"][0].endswith(
        f"/studies/{c.uids['A']}/series/{se}/instances/{instances[0]['00080018']['Value'][0]}")
    assert len(client.search_for_instances(c.uids["A"])) == 4
    assert client.search_for_studies(search_filters={"PatientID": "nobody"}) == []


def test_ohif_request_forms(corpus: tuple[RunningArchive, Corpus]) -> None:
    server, c = corpus
    r = requests.get(
        server.url + "/studies?limit=101&offset=0&fuzzymatching=false"
        "&includefield=00081030%2C00080060&PatientName=*Smith*&00100020=", timeout=30)
    assert r.status_code == 200
    body = r.json()
    assert c.letters(study_uids(body)) == {"B", "C"}
    b = next(d for d in body if d["0020000D"]["Value"][0] == c.uids["B"])
    assert b["00081030"]["Value"] == ["MR BRAIN"]
    assert b["00100020"]["Value"] == ["PID-B"]
    assert "00080060" not in b  # a series attribute is not returned at study level
    assert b["00100010"]["Value"] == [{"Alphabetic": "SMITH^Anna"}]


def test_required_and_computed_attributes(corpus: tuple[RunningArchive, Corpus]) -> None:
    server, c = corpus
    query = {"PatientID": "PID-A", "includefield": "SOPClassesInStudy"}
    d = get(server, "/studies", query).json()[0]
    for tag in ("00080020", "00080030", "00080050", "00080056", "00080061", "00080090",
                "00081190", "00100010", "00100020", "00100030", "00100040", "0020000D",
                "00200010", "00201206", "00201208"):
        assert tag in d, tag
    assert d["00081190"]["Value"] == [f"{server.url}/studies/{c.uids['A']}"]
    assert d["00080062"]["Value"] == ["1.2.840.10008.5.1.4.1.1.2"]
    assert d["00080030"] == {"vr": "TM", "Value": ["083000"]}
    assert "00081030" not in d  # not required, not asked for
    s = get(server, "/series", {"Modality": "SR"}).json()[0]
    assert s["00100020"]["Value"] == ["PID-A"]  # /series carries the study's attributes
    assert s["00201209"]["Value"] == [2]


def test_includefield_all_and_sequence_attributes(corpus: tuple[RunningArchive, Corpus]) -> None:
    server, c = corpus
    d = get(server, "/studies", [("PatientID", "PID-A"), ("includefield", "all")]).json()[0]
    assert d["00081032"]["Value"][0]["00080100"]["Value"] == ["P1"]
    assert d["00080080"]["Value"] == ["General Hospital"]
    assert "00280010" not in d  # instance attributes are not returned at study level
    i = get(server, f"/studies/{c.uids['B']}/instances", {"includefield": "all"}).json()[0]
    assert i["00280010"]["Value"] == [8]
    assert "00091001" in i  # private attribute from the instance header
    assert "7FE00010" not in i


def test_limit_offset_and_warning(server_factory: Any) -> None:
    server = server_factory(qido_max_limit=3)
    DICOMwebClient(server.url, headers=auth_headers()).store_instances(
        [f.image(f"page{i}") for i in range(5)])
    all_uids = study_uids(get(server, "/studies", {"limit": "3"}).json())
    r = get(server, "/studies")
    assert len(r.json()) == 3
    assert "additional results" in r.headers["Warning"] or "more results" in r.headers["Warning"]
    second = get(server, "/studies", {"offset": "3"})
    assert len(second.json()) == 2
    assert "Warning" not in second.headers
    assert not set(all_uids) & set(study_uids(second.json()))
    assert len(get(server, "/studies", {"limit": "2", "offset": "1"}).json()) == 2
    assert get(server, "/studies", {"offset": "10"}).json() == []


@pytest.mark.parametrize("query", [
    {"NoSuchKeyword": "x"}, {"StudyDate": "2024-01-01"}, {"StudyDate": "20240231"},
    {"StudyDate": "20240301-20240101"}, {"limit": "-1"}, {"offset": "x"},
    {"fuzzymatching": "maybe"}, {"StudyInstanceUID": "1.2.abc"}, {"StudyInstanceUID": "1.2.*"},
    {"PatientName.CodeValue": "x"}, {"InstanceNumber": "two"}, {"includefield": "Nope"},
    {"NumberOfPatientRelatedStudies": "3"}, {"ProcedureCodeSequence": "x"},
])
def test_invalid_queries_get_400_with_reason(corpus: tuple[RunningArchive, Corpus],
                                             query: dict[str, str]) -> None:
    server, _ = corpus
    r = get(server, "/studies", query)
    assert r.status_code == 400
    assert r.json()["error"]


def test_unacceptable_accept_gets_406(corpus: tuple[RunningArchive, Corpus]) -> None:
    server, _ = corpus
    assert get(server, "/studies", Accept="image/png").status_code == 406
    assert get(server, "/studies", Accept='multipart/related; type="application/dicom"'
               ).status_code == 406
    assert get(server, "/studies", {"accept": "application/dicom+json"},
               Accept="image/png").status_code == 200


def _xml_parts(r: requests.Response) -> list[etree._Element]:
    msg = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {r.headers['Content-Type']}\r\n\r\n".encode() + r.content)
    return [etree.fromstring(p.get_payload(decode=True)) for p in msg.iter_parts()]


def test_xml_response_parses_with_lxml(corpus: tuple[RunningArchive, Corpus]) -> None:
    server, c = corpus
    r = get(server, "/studies", {"PatientName": "smith*"},
            Accept='multipart/related; type="application/dicom+xml"')
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith('multipart/related; type="application/dicom+xml"')
    docs = _xml_parts(r)
    uids = {d.findtext("d:DicomAttribute[@keyword='StudyInstanceUID']/d:Value", namespaces=NS)
            for d in docs}
    assert c.letters(sorted(uids)) == {"B", "C"}
    family = docs[0].xpath("//d:DicomAttribute[@tag='00100010']/d:PersonName/d:Alphabetic/"
                           "d:FamilyName/text()", namespaces=NS)
    assert family and family[0].lower().startswith("smith")
    empty = get(server, "/studies", {"PatientID": "nobody"},
                Accept='multipart/related; type="application/dicom+xml"')
    assert empty.status_code == 200 and _xml_parts(empty) == []


def test_sequestered_study_is_invisible_without_the_right(
        corpus: tuple[RunningArchive, Corpus]) -> None:
    server, c = corpus
    for path in ("/studies", "/series", "/instances", f"/studies/{c.uids['S']}/series"):
        assert c.uids["S"] not in study_uids(get(server, path).json())
    r = get(server, "/studies", {"PatientID": "PID-S"}, Authorization="Bearer s3cret")
    assert c.letters(study_uids(r.json())) == {"S"}


def test_extension_filters_and_result_attributes(corpus: tuple[RunningArchive, Corpus]) -> None:
    """A namespaced key goes to the registered compiler; includefield to the provider."""
    server, c = corpus
    ext = server.core.extensions

    def compile_test(key: str, value: str) -> Any:
        if key != "test.accession":
            raise InvalidQuery(f"unknown key {key}")
        return study.c.accession_number == value

    async def provide(conn: Any, pks: list[int], keys: frozenset[str]) -> dict[int, dict]:
        return {pk: {"77771001": {"vr": "LO", "Value": [f"pk{pk}"]}} for pk in pks}

    ext.filters["test."] = compile_test
    ext.result_attributes["test."] = provide
    try:
        for path in ("/studies", "/series", "/instances"):
            r = get(server, path, {"test.accession": "ACC-B", "includefield": "test.tag"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert c.letters(study_uids(body)) == {"B"}
            assert all(d["77771001"]["Value"][0].startswith("pk") for d in body)
        assert get(server, "/studies", {"test.other": "x"}).status_code == 400
        assert get(server, "/studies", {"other.key": "x"}).status_code == 400
    finally:
        del ext.filters["test."]
        del ext.result_attributes["test."]


def test_empty_result_is_200_with_empty_array(corpus: tuple[RunningArchive, Corpus]) -> None:
    server, _ = corpus
    r = get(server, "/studies", {"PatientID": "nobody"})
    assert (r.status_code, r.content) == (200, b"[]")
    r = get(server, "/studies/1.2.3/series")
    assert (r.status_code, r.json()) == (200, [])
    head = requests.head(server.url + "/studies", timeout=30)
    assert head.status_code == 200 and head.content == b""


def test_unindexed_attributes_are_read_from_an_instance(
        corpus: tuple[RunningArchive, Corpus]) -> None:
    """A private tag asked for at study level comes from an instance of that study; a known
    lower-level attribute (SOPInstanceUID) is not returned at series level."""
    server, _ = corpus
    d = get(server, "/studies", {"PatientID": "PID-A", "includefield": "00091001"}).json()[0]
    assert d["00091001"]["Value"] == ["alpha"]
    s = get(server, "/series", {"Modality": "SR", "includefield": "SOPInstanceUID"}).json()[0]
    assert "00080018" not in s
