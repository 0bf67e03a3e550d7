"""C-FIND SCP with pynetdicom and DCMTK findscu: the matching cases, models, charsets, cancel."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom import dcmread
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind as PATIENT_ROOT,
)
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind as STUDY_ROOT,
)

from archive.config import Peer
from tests import factories as f
from tests.archive.query.cases import CASES, Case, resolve
from tests.archive.query.corpus import Corpus, running_with_corpus
from tests.conftest import RunningArchive, auth_headers
from tests.dcmtk import dcmtk


@pytest.fixture(scope="module")
def corpus(pg_server_url: str, template_db: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningArchive, Corpus]]:
    tmp: Path = tmp_path_factory.mktemp("cfind")
    # a curator AE title counts only as a configured peer calling from its host (issue 12)
    with running_with_corpus(pg_server_url, template_db, tmp, curator_aets=("CURATOR",),
                             peers=(Peer("CURATOR", "127.0.0.1", 104),)) as pair:
        yield pair


def _tag(key: str) -> int:
    if len(key) == 8 and all(ch in "0123456789ABCDEFabcdef" for ch in key):
        return int(key, 16)
    tag = tag_for_keyword(key)
    assert tag is not None, key
    return tag


def identifier(pairs: list[tuple[str, str]], level: str, charset: str = "ISO_IR 192") -> Dataset:
    """Query keys (keywords, tags, dotted paths) → a C-FIND identifier."""
    ds = Dataset()
    ds.SpecificCharacterSet = charset
    ds.QueryRetrieveLevel = level
    ds.StudyInstanceUID = ""
    for key, value in pairs:
        *parents, leaf = key.split(".")
        target = ds
        for part in parents:
            tag = _tag(part)
            if tag not in target:
                target.add_new(tag, "SQ", [Dataset()])
            target = target[tag].value[0]
        tag = _tag(leaf)
        if tag >> 16 & 1:  # private: its creator must come along
            block = target.private_block(tag >> 16, "ACME 1.0", create=True)
            block.add_new(tag & 0xFF, "LO", value)
        elif tag == 0x0020000D and value:
            target.StudyInstanceUID = value
        else:
            target.add_new(tag, dictionary_VR(tag), value)
    return ds


def find(server: RunningArchive, ds: Dataset, model: Any = STUDY_ROOT,
         aet: str = "FINDTEST") -> tuple[int, list[Dataset]]:
    ae = AE(ae_title=aet)
    ae.add_requested_context(model)
    host, port, called = server.dimse
    assoc = ae.associate(host, port, ae_title=called)
    assert assoc.is_established
    answers, final = [], None
    try:
        for status, ident in assoc.send_c_find(ds, model):
            if status.Status in (0xFF00, 0xFF01):
                answers.append(ident)
            else:
                final = status.Status
    finally:
        assoc.release()
    assert final is not None
    return final, answers


@pytest.mark.parametrize("case", [c for c in CASES if "pynetdicom" in c.doors], ids=lambda c: c.id)
def test_matching_case_pynetdicom(corpus: tuple[RunningArchive, Corpus], case: Case) -> None:
    server, c = corpus
    status, answers = find(server, identifier(resolve(case.keys, c.uids), case.level))
    assert status == 0x0000
    assert c.letters([str(a.StudyInstanceUID) for a in answers]) == set(case.expected)


def findscu(server: RunningArchive, pairs: list[tuple[str, str]], level: str, out: Path,
            model: str = "-S") -> list[Dataset]:
    host, port, called = server.dimse
    args = [dcmtk("findscu"), model, "-aet", "FINDSCU", "-aec", called, "-X", "-od", str(out),
            "-k", f"QueryRetrieveLevel={level}", "-k", "SpecificCharacterSet=ISO_IR 192",
            "-k", "StudyInstanceUID"]
    for key, value in pairs:
        parts = [p if not p[:4].isdigit() else f"({p[:4]},{p[4:]})" for p in key.split(".")]
        name = "[0].".join(parts)  # DCMTK's path syntax: Sequence[0].Key
        if key.startswith("0009"):
            # DCMTK knows no VR for this private tag, sends it as UN, and parses a UN value as
            # backslash-separated hex bytes.
            args += ["-k", "(0009,0010)=ACME 1.0"]
            value = "\\".join(f"{b:02x}" for b in value.encode())
        if key == "StudyInstanceUID" and value:
            args[args.index("StudyInstanceUID")] = f"StudyInstanceUID={value}"
            continue
        args += ["-k", f"{name}={value}" if value else name]
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([*args, host, str(port)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


@pytest.mark.parametrize("case", [c for c in CASES if "findscu" in c.doors], ids=lambda c: c.id)
def test_matching_case_findscu(corpus: tuple[RunningArchive, Corpus], case: Case,
                               tmp_path: Path) -> None:
    server, c = corpus
    answers = findscu(server, resolve(case.keys, c.uids), case.level, tmp_path)
    assert c.letters([str(a.StudyInstanceUID) for a in answers]) == set(case.expected)


def test_answers_carry_exactly_the_requested_keys(corpus: tuple[RunningArchive, Corpus]) -> None:
    server, _c = corpus
    ds = identifier([("PatientID", "PID-A"), ("PatientName", ""), ("ModalitiesInStudy", ""),
                     ("NumberOfStudyRelatedInstances", ""), ("StudyDescription", ""),
                     ("RetrieveAETitle", ""), ("ProcedureCodeSequence.CodeValue", "")], "STUDY")
    status, answers = find(server, ds)
    assert status == 0 and len(answers) == 1
    a = answers[0]
    assert str(a.PatientName) == "Müller^José"
    assert a.SpecificCharacterSet == "ISO_IR 192"
    assert list(a.ModalitiesInStudy) == ["CT", "SR"]
    assert int(a.NumberOfStudyRelatedInstances) == 4
    assert a.RetrieveAETitle == server.settings.ae_title
    assert a.ProcedureCodeSequence[0].CodeValue == "P1"
    assert "CodeMeaning" not in a.ProcedureCodeSequence[0]  # trimmed to the requested sub-keys
    assert "StudyDate" not in a and "AccessionNumber" not in a
    assert a.QueryRetrieveLevel == "STUDY"


def test_latin1_query_matches_and_answer_is_utf8(corpus: tuple[RunningArchive, Corpus]) -> None:
    server, c = corpus
    ds = identifier([("PatientName", "MÜLLER*")], "STUDY", charset="ISO_IR 100")
    status, answers = find(server, ds)
    assert status == 0
    assert c.letters([str(a.StudyInstanceUID) for a in answers]) == {"A"}
    assert str(answers[0].PatientName) == "Müller^José"
    assert answers[0].SpecificCharacterSet == "ISO_IR 192"


def test_patient_root_levels(corpus: tuple[RunningArchive, Corpus]) -> None:
    server, c = corpus
    ds = Dataset()
    ds.QueryRetrieveLevel = "PATIENT"
    ds.PatientID = "PID-*"
    ds.PatientName = ""
    ds.NumberOfPatientRelatedStudies = ""
    ds.NumberOfPatientRelatedInstances = ""
    status, answers = find(server, ds, PATIENT_ROOT)
    assert status == 0
    by_id = {a.PatientID: a for a in answers}
    assert set(by_id) == {"PID-A", "PID-B", "PID-C"}  # PID-S is sequestered
    assert int(by_id["PID-A"].NumberOfPatientRelatedStudies) == 1
    assert int(by_id["PID-A"].NumberOfPatientRelatedInstances) == 4
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientID = "PID-B"
    ds.StudyInstanceUID = ""
    status, answers = find(server, ds, PATIENT_ROOT)
    assert status == 0 and [a.StudyInstanceUID for a in answers] == [c.uids["B"]]
    assert answers[0].PatientID == "PID-B"


@pytest.mark.parametrize("level,keys,model", [
    ("PATIENT", {}, STUDY_ROOT),
    ("FRAME", {}, STUDY_ROOT),
    ("STUDY", {"StudyDate": "20240301-20240101"}, STUDY_ROOT),
    ("STUDY", {"StudyInstanceUID": "1.2.x"}, STUDY_ROOT),
])
def test_bad_identifiers_fail_with_a900(corpus: tuple[RunningArchive, Corpus], level: str,
                                        keys: dict[str, str], model: Any) -> None:
    server, _ = corpus
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for k, v in keys.items():
        setattr(ds, k, v)
    status, answers = find(server, ds, model)
    assert status == 0xA900 and answers == []


def test_sequestered_visible_only_to_curator_aet(corpus: tuple[RunningArchive, Corpus]) -> None:
    server, c = corpus
    ds = identifier([("PatientID", "PID-S")], "STUDY")
    assert find(server, ds)[1] == []
    _status, answers = find(server, ds, aet="CURATOR")
    assert [a.StudyInstanceUID for a in answers] == [c.uids["S"]]


def test_c_cancel_stops_the_answers(server: RunningArchive) -> None:
    DICOMwebClient(server.url, headers=auth_headers()).store_instances([f.image("cancel", "se", 1)])
    server.sql(
        "INSERT INTO instance (series_pk, sop_uid, sop_class_uid, instance_number, transfer_syntax,"
        " blob_key, size_bytes, sha256, header) SELECT series_pk, sop_uid || '.' || g,"
        " sop_class_uid, g, transfer_syntax, blob_key || g, size_bytes, sha256, header"
        " FROM instance, generate_series(2, 3000) AS g"
    )
    ae = AE(ae_title="CANCELLER")
    ae.add_requested_context(STUDY_ROOT)
    host, port, called = server.dimse
    assoc = ae.associate(host, port, ae_title=called)
    cx = next(x for x in assoc.accepted_contexts if x.abstract_syntax == STUDY_ROOT).context_id
    ds = identifier([("SOPInstanceUID", "")], "IMAGE")
    pending, final = 0, None
    for status, _ident in assoc.send_c_find(ds, STUDY_ROOT, msg_id=7):
        if status.Status == 0xFF00:
            pending += 1
            if pending == 1:
                assoc.send_c_cancel(7, cx)
        else:
            final = status.Status
    assoc.release()
    assert final == 0xFE00
    assert 1 <= pending < 3000
