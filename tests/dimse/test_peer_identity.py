"""DIMSE identities and the core's integrity rules, against real peers (pynetdicom, DCMTK).

Issue 12: the calling AE title is backed by the address it calls from; @SITE attribution; curator
AE titles only from their host; unknown AEs are contributors for their own AE-named site; a
replace or an upload into another site's (or collection's) study fails with the stored copy
untouched and the same answer whether the other study is sequestered or not; one PatientID from
two sites is two patients.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import requests
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from archive.config import Peer
from tests import factories as f
from tests.conftest import RunningArchive, auth_headers, key_headers
from tests.dcmtk import dcmtk
from tests.dicomweb.test_stow import multipart

STOW = {"Content-Type": 'multipart/related; type="application/dicom"; boundary=XbOuNdArYx'}


def _assoc(server: RunningArchive, aet: str) -> Any:
    ae = AE(ae_title=aet)
    ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
    ae.add_requested_context(Verification)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelFind)
    host, port, called = server.dimse
    return ae.associate(host, port, ae_title=called)


def store(server: RunningArchive, aet: str, ds: Dataset) -> tuple[int, str]:
    assoc = _assoc(server, aet)
    assert assoc.is_established, f"{aet} was not accepted"
    try:
        rsp = assoc.send_c_store(ds)
        return int(rsp.Status), str(rsp.get("ErrorComment", ""))
    finally:
        assoc.release()


def find_studies(server: RunningArchive, aet: str, patient_id: str) -> list[str]:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientID = patient_id
    ds.StudyInstanceUID = ""
    assoc = _assoc(server, aet)
    assert assoc.is_established
    try:
        return [str(ident.StudyInstanceUID)
                for st, ident in assoc.send_c_find(ds, StudyRootQueryRetrieveInformationModelFind)
                if st.Status in (0xFF00, 0xFF01)]
    finally:
        assoc.release()


def stow(server: RunningArchive, ds: Dataset, query: str = "") -> int:
    """STOW-RS `ds` as the test curator (any site via ?site=)."""
    r = requests.post(server.url + "/studies" + query, data=multipart([f.to_bytes(ds)]),
                      headers={**STOW, **auth_headers()}, timeout=30)
    return r.status_code


def stored_bytes(server: RunningArchive, sop_uid: str) -> bytes:
    row = server.sql("SELECT blob_key FROM instance WHERE sop_uid = $1", sop_uid)[0]
    return Path(server.core.blobs.path(row["blob_key"])).read_bytes()


def echoscu(server: RunningArchive, aet: str) -> subprocess.CompletedProcess[str]:
    host, port, called = server.dimse
    return subprocess.run([dcmtk("echoscu"), "-aet", aet, "-aec", called, host, str(port)],
                          capture_output=True, text=True, timeout=60)


def test_restricted_peers_check_the_host_and_attribute_to_the_site(server_factory: Any) -> None:
    server = server_factory(restrict_peers=True, peers=(
        Peer("NEAR", "127.0.0.1", 104, "SITE-A"), Peer("FARAWAY", "127.0.0.2", 104, "SITE-B")))
    assert echoscu(server, "NEAR").returncode == 0
    far = echoscu(server, "FARAWAY")  # a known AE title, but not from its configured host
    assert far.returncode != 0 and "reject" in (far.stdout + far.stderr).lower()
    assert not _assoc(server, "FARAWAY").is_established
    assert not _assoc(server, "STRANGER").is_established
    ds = f.image("restricted")
    assert store(server, "NEAR", ds)[0] == 0
    assert server.sql("SELECT site FROM study")[0]["site"] == "SITE-A"


def test_unknown_ae_is_a_contributor_for_its_own_site_only(server_factory: Any) -> None:
    server = server_factory(curator_aets=("CURATE",))
    ds = f.image("own", patient_id="P-OWN")
    assert store(server, "MODALITY1", ds)[0] == 0
    row = server.sql("SELECT site, collection FROM study")[0]
    assert (row["site"], row["collection"]) == ("MODALITY1", "public")
    # a curator AE title from an address nobody configured is just a contributor for "CURATE"
    changed = f.image("own", patient_id="P-OWN", seed=7)
    before = stored_bytes(server, ds.SOPInstanceUID)
    assert store(server, "CURATE", changed)[0] == 0x0124
    assert stored_bytes(server, ds.SOPInstanceUID) == before


def test_curator_ae_only_from_its_configured_host(server_factory: Any) -> None:
    server = server_factory(curator_aets=("CURATE", "ELSEWHERE"),
                            peers=(Peer("CURATE", "127.0.0.1", 104),
                                   Peer("ELSEWHERE", "127.0.0.2", 104)))
    hidden = f.image("hidden", patient_id="P-HID")
    assert stow(server, hidden, "?collection=sequestered&site=SITE-S") == 200
    assert find_studies(server, "CURATE", "P-HID") == [hidden.StudyInstanceUID]
    assert find_studies(server, "ELSEWHERE", "P-HID") == []  # not from its configured host
    assert find_studies(server, "STRANGER", "P-HID") == []


def test_cross_site_replace_is_refused_and_the_stored_copy_untouched(server_factory: Any) -> None:
    server = server_factory(peers=(Peer("SITEA", "127.0.0.1", 104, "A"),
                                   Peer("SITEB", "127.0.0.1", 104, "B")))
    original = f.image("cross", patient_id="P-X")
    assert store(server, "SITEA", original)[0] == 0
    before = stored_bytes(server, original.SOPInstanceUID)
    forged = f.image("cross", patient_id="P-X", seed=3)
    forged.PatientName = "Forged^Name"
    code, comment = store(server, "SITEB", forged)
    assert code == 0x0124 and "conflicts" in comment
    assert stored_bytes(server, original.SOPInstanceUID) == before
    assert server.sql("SELECT patient_name FROM patient")[0]["patient_name"] == "Doe^John"
    # a new instance into site A's study from site B fails the same way
    intruder = f.image("cross", "other-series", 1, patient_id="P-X")
    assert store(server, "SITEB", intruder) == (code, comment)
    assert server.sql("SELECT count(*) AS n FROM instance")[0]["n"] == 1
    # the same site may replace its own instance
    assert store(server, "SITEA", forged)[0] == 0
    assert stored_bytes(server, original.SOPInstanceUID) != before


def test_sequestered_conflict_answers_like_any_other(server_factory: Any) -> None:
    server = server_factory(peers=(Peer("SITEB", "127.0.0.1", 104, "B"),))
    public = f.image("pub-a", patient_id="P-1")
    hidden = f.image("seq-a", patient_id="P-2")
    assert stow(server, public, "?site=A") == 200
    assert stow(server, hidden, "?site=A&collection=sequestered") == 200
    answers = []
    for target in (public, hidden):
        for same_sop in (True, False):  # replace an instance / add one to the study
            ds = f.image("pub-a" if target is public else "seq-a",
                         "se1" if same_sop else "new", 1 if same_sop else 9, seed=5,
                         patient_id=target.PatientID)
            answers.append(store(server, "SITEB", ds))
    assert len(set(answers)) == 1 and answers[0][0] == 0x0124
    # and over STOW-RS, from a contributor of site B (a curator may see sequestered data): the
    # same failure status for both
    site_b = {**STOW, **key_headers(server, "contributor", "B")}
    stow_answers = set()
    for name in ("pub-a", "seq-a"):
        r = requests.post(server.url + "/studies", headers=site_b, timeout=30,
                          data=multipart([f.to_bytes(f.image(name, "se1", 1, seed=6))]))
        failed = r.json()["00081198"]["Value"]
        stow_answers.add((r.status_code, len(failed), failed[0]["00081197"]["Value"][0],
                          failed[0]["00000902"]["Value"][0]))
    assert len(stow_answers) == 1 and next(iter(stow_answers))[:2] == (409, 1)
    assert server.sql("SELECT count(*) AS n FROM instance")[0]["n"] == 2


def test_one_patient_id_from_two_sites_is_two_patients(server_factory: Any) -> None:
    server = server_factory(peers=(Peer("SITEA", "127.0.0.1", 104, "A"),
                                   Peer("SITEB", "127.0.0.1", 104, "B")))
    a = f.image("pa", patient_id="SAME-ID", patient_name="Alpha^Ann")
    b = f.image("pb", patient_id="SAME-ID", patient_name="Beta^Bob")
    assert store(server, "SITEA", a)[0] == 0
    assert store(server, "SITEB", b)[0] == 0
    rows = server.sql("SELECT scope, collection, patient_name FROM patient ORDER BY scope")
    assert [(r["scope"], r["patient_name"]) for r in rows] == [("A", "Alpha^Ann"), ("B", "Beta^Bob")]
    # a sequestered upload of the same PatientID never renames the public patient
    s = f.image("ps", patient_id="SAME-ID", patient_name="Secret^Sam")
    assert stow(server, s, "?site=A&collection=sequestered") == 200
    names = {r["patient_name"] for r in server.sql(
        "SELECT patient_name FROM patient WHERE collection = 'public'")}
    assert names == {"Alpha^Ann", "Beta^Bob"}
    # Patient Root C-FIND at PATIENT level: two patients, each with its own name
    ds = Dataset()
    ds.QueryRetrieveLevel = "PATIENT"
    ds.PatientID = "SAME-ID"
    ds.PatientName = ""
    assoc = _assoc(server, "SITEA")
    found = sorted(str(i.PatientName) for st, i in
                   assoc.send_c_find(ds, PatientRootQueryRetrieveInformationModelFind)
                   if st.Status in (0xFF00, 0xFF01))
    assoc.release()
    assert found == ["Alpha^Ann", "Beta^Bob"]
