"""Harmonization: the shipped Playbook, normalization, coverage at ingest, mapping changes
re-applied to existing studies with the version recorded, and the stored DICOM untouched."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from archive.commons.normalize import key, normalize_description, normalize_modality
from archive.commons.playbook import read_playbook, shipped_playbook
from archive.commons.rows import RowErrors
from tests import factories as f
from tests.archive.commons.conftest import Loaded
from tests.conftest import RunningArchive, auth_headers


def test_normalization_follows_midrc() -> None:
    assert normalize_description("  XR  Chest 1 View ") == "xr chest 1 view"
    assert normalize_description(None) == normalize_description("(blank)") == "[blank]"
    assert normalize_modality(["DX"]) == normalize_modality("CR;DX") == "CR,DX"
    assert normalize_modality(["CR", "SR"]) == "CR,DX"  # structured reports say nothing
    assert normalize_modality(["PT", "CT"]) == normalize_modality("CTPT") == "CT,PT"
    assert normalize_modality(["MR", "CT"]) == "CT,MR"
    assert key(["CT"], "Thorax^CHEST_WO  (ADULT)") == key("CT", "THORAX^CHEST_WO (Adult)")


def test_shipped_playbook_has_one_code_per_key() -> None:
    book = read_playbook(shipped_playbook().read_text(encoding="utf-8"))
    assert len(book.terms) == 77
    keys = [(m.modality_norm, m.description_norm) for m in book.mappings]
    assert len(keys) == len(set(keys))
    # the modality-dependent MIDRC inconsistency is refused, not copied
    assert book.conflicts == ["CR,DX 'XR CHEST AP OR PA': kept 36554-4, not 41790-7"]
    methods = {t.code: t.method for t in book.terms}
    assert (methods["36589-0"], methods["79077-4"], methods["29252-4"]) == \
        ("XR.portable", "CT.angio", "CT")


def test_bad_playbook_rows_are_reported() -> None:
    text = "loinc_code,long_common_name\n12345-6,CT Thing\nnot-a-code,X\n12345-6,Again\n9-9,\n"
    with pytest.raises(RowErrors) as err:
        read_playbook(text)
    assert [(e.line, e.column) for e in err.value.errors] == [
        (3, "loinc_code"), (4, "loinc_code"), (5, "long_common_name")]


def test_coverage_of_the_synthetic_commons(loaded: Loaded) -> None:
    rows = loaded.server.sql(
        "SELECT s.study_uid, h.loinc_code, h.mapping_version FROM study s "
        "JOIN study_harmonization h ON h.study_pk = s.pk")
    got = {r["study_uid"]: r["loinc_code"] for r in rows}
    want = {s.uid: loaded.commons.code_of(s) for s in loaded.commons.studies}
    assert got == want
    mapped = sum(v is not None for v in want.values())
    assert 0.8 < mapped / len(want) < 1.0  # most, not all: the unmapped tail is real
    assert {r["mapping_version"] for r in rows if r["loinc_code"]} == {1}


def _store(server: RunningArchive, name: str, description: str, modality: str = "CT") -> bytes:
    ds = f.image(name, "se1", 1, modality=modality, rows=16, columns=16,
                 study_description=description)
    DICOMwebClient(server.url, headers=auth_headers()).store_instances([ds])
    return f.to_bytes(ds)


def mapping(server: RunningArchive, body: Any) -> requests.Response:
    return requests.post(f"{server.base}/commons/mappings", json=body, timeout=30,
                         headers=auth_headers())


def codes(server: RunningArchive) -> dict[str, tuple[str | None, int | None]]:
    return {r["study_description"]: (r["loinc_code"], r["mapping_version"]) for r in server.sql(
        "SELECT s.study_description, h.loinc_code, h.mapping_version FROM study s "
        "JOIN study_harmonization h ON h.study_pk = s.pk")}


def test_mapping_change_is_reapplied_and_versioned(server: RunningArchive) -> None:
    _store(server, "h1", "CT OUTSIDE CONSULT")
    _store(server, "h2", "ct outside  consult")
    _store(server, "h3", "CT CHEST WO CONTRAST")
    assert codes(server)["CT OUTSIDE CONSULT"] == (None, None)
    unmapped = requests.get(f"{server.base}/commons/descriptions?status=unmapped",
                            timeout=30).json()["descriptions"]
    assert [(d["modality"], d["description"], d["studies"]) for d in unmapped] == [
        ("CT", "ct outside consult", 2)]
    r = mapping(server, {"modality": "CT", "description": "CT Outside Consult",
                         "loinc_code": "25045-6"})
    assert r.status_code == 200, r.text
    result = r.json()["mappings"][0]
    assert result["studies_updated"] == 2 and result["version"] > 1
    assert codes(server)["ct outside  consult"] == ("25045-6", result["version"])
    assert codes(server)["CT CHEST WO CONTRAST"] == ("29252-4", 1)  # other keys untouched
    # one description maps to one code: a second code needs an explicit replace
    r = mapping(server, {"modality": "CT", "description": "ct outside consult",
                         "loinc_code": "24627-2"})
    assert r.status_code == 400 and "already mapped" in r.json()["error"]
    r = mapping(server, {"modality": "CT", "description": "ct outside consult",
                         "loinc_code": "24627-2", "replace": True})
    v2 = r.json()["mappings"][0]["version"]
    assert codes(server)["CT OUTSIDE CONSULT"] == ("24627-2", v2) and v2 > result["version"]
    # rejecting removes the code from every study with that key
    mapping(server, {"modality": "CT", "description": "CT OUTSIDE CONSULT",
                     "status": "rejected"})
    assert codes(server)["CT OUTSIDE CONSULT"][0] is None
    history = server.sql("SELECT count(*) AS n FROM mapping_history WHERE "
                         "description_norm = 'ct outside consult'")[0]["n"]
    assert history == 3


def test_proposed_mappings_do_not_apply_and_new_studies_get_approved_ones(
        server: RunningArchive) -> None:
    r = mapping(server, {"modality": "CR", "description": "CHEST PORTABLE ROUTINE",
                         "loinc_code": "36589-0", "status": "proposed"})
    assert r.status_code == 200
    _store(server, "p1", "Chest Portable Routine", modality="CR")
    assert codes(server)["Chest Portable Routine"] == (None, None)
    mapping(server, {"modality": "DX", "description": "chest portable routine",
                     "loinc_code": "36589-0"})
    assert codes(server)["Chest Portable Routine"][0] == "36589-0"
    _store(server, "p2", "CHEST PORTABLE ROUTINE", modality="CR")  # applied at ingest
    assert codes(server)["CHEST PORTABLE ROUTINE"][0] == "36589-0"


def test_bad_mappings_are_400(server: RunningArchive) -> None:
    for body in ({"modality": "CT", "description": "x", "loinc_code": "99999-9"},
                 {"modality": "CT", "description": "x"},
                 {"modality": "", "description": "x", "loinc_code": "24627-2"},
                 {"modality": "CT", "description": "x", "loinc_code": "24627-2",
                  "status": "maybe"},
                 {"modality": "CT", "description": "x", "colour": "red"}):
        assert mapping(server, body).status_code == 400, body


def test_harmonization_never_rewrites_the_stored_file(server: RunningArchive) -> None:
    original = f.to_bytes(f.image("b1", "se1", 1, rows=16, columns=16,
                                  study_description="CT OUTSIDE CONSULT"))
    body = b"--XbOuNdArYx\r\nContent-Type: application/dicom\r\n\r\n" + original + \
        b"\r\n--XbOuNdArYx--\r\n"
    r = requests.post(f"{server.url}/studies", data=body, timeout=30, headers={
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=XbOuNdArYx',
        **auth_headers()})
    assert r.status_code == 200
    mapping(server, {"modality": "CT", "description": "CT OUTSIDE CONSULT",
                     "loinc_code": "25045-6"})
    key_ = server.sql("SELECT blob_key FROM instance")[0]["blob_key"]
    stored = server.core.blobs.path(key_).read_bytes()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(original).digest()
    meta = DICOMwebClient(server.url).retrieve_study_metadata(f.uid("b1"))
    assert meta[0]["00081030"]["Value"] == ["CT OUTSIDE CONSULT"]
