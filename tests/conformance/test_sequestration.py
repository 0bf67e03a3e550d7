"""The sequestered collection is invisible on every door to callers without the right.

Invisible means absent from query results and 404 (HTTP) / no matches or sub-operations (DIMSE),
never 403, so existence is not even confirmed. Curators (bearer token, curator AE title) see it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
)

from archive.config import Peer
from tests import factories as f
from tests.conftest import RunningArchive, free_port
from tests.dicomweb.test_stow import multipart

TOKEN = "curator-secret"
CURATOR = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def archive(server_factory) -> Iterator[tuple[RunningArchive, Dataset, Dataset, int]]:  # type: ignore[no-untyped-def]
    recv_port = free_port()
    server = server_factory(curator_token=TOKEN, curator_aets=("CURATOR",),
                            peers=(Peer("RECV", "127.0.0.1", recv_port),
                                   Peer("CURATOR", "127.0.0.1", 104)))
    public = f.image("pub", patient_id="P-PUB")
    hidden = f.image("seq", patient_id="P-SEQ")
    h = {"Content-Type": 'multipart/related; type="application/dicom"; boundary=XbOuNdArYx',
         **CURATOR}
    assert requests.post(server.url + "/studies", data=multipart([f.to_bytes(public)]),
                         headers=h, timeout=30).status_code == 200
    assert requests.post(server.url + "/studies?collection=sequestered",
                         data=multipart([f.to_bytes(hidden)]), headers=h, timeout=30).status_code == 200
    yield server, public, hidden, recv_port


def study_uids(server: RunningArchive, path: str = "/studies", **headers: str) -> set[str]:
    r = requests.get(server.url + path, headers={"Accept": "application/dicom+json"} | headers,
                     timeout=30)
    assert r.status_code in (200, 204), r.text
    return {item["0020000D"]["Value"][0] for item in (r.json() if r.status_code == 200 else [])}


def test_qido_hides_sequestered_studies_series_and_instances(archive) -> None:  # type: ignore[no-untyped-def]
    server, public, hidden, _ = archive
    assert study_uids(server) == {public.StudyInstanceUID}
    assert study_uids(server, f"/studies?PatientID={hidden.PatientID}") == set()
    assert study_uids(server, "/series") == {public.StudyInstanceUID}
    assert study_uids(server, "/instances") == {public.StudyInstanceUID}
    assert study_uids(server, f"/studies/{hidden.StudyInstanceUID}/series") == set()
    assert study_uids(server, **CURATOR) == {public.StudyInstanceUID, hidden.StudyInstanceUID}


def wado_paths(ds: Dataset) -> list[str]:
    st, se, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    inst = f"/studies/{st}/series/{se}/instances/{sop}"
    return [f"/studies/{st}", f"/studies/{st}/metadata", f"/studies/{st}/series/{se}",
            f"/studies/{st}/series/{se}/metadata", inst, f"{inst}/metadata", f"{inst}/frames/1",
            f"{inst}/rendered", f"{inst}/thumbnail", f"/studies/{st}/rendered"]


def test_wado_answers_404_for_sequestered_and_200_for_curators(archive) -> None:  # type: ignore[no-untyped-def]
    server, public, hidden, _ = archive
    for path in wado_paths(hidden):
        r = requests.get(server.url + path, timeout=30)
        assert r.status_code == 404, (path, r.status_code)
    for path in wado_paths(hidden)[:6]:
        assert requests.get(server.url + path, headers=CURATOR, timeout=30).status_code == 200, path
    for path in wado_paths(public)[:6]:
        assert requests.get(server.url + path, timeout=30).status_code == 200, path


def test_wado_uri_hides_sequestered(archive) -> None:  # type: ignore[no-untyped-def]
    server, public, hidden, _ = archive

    def get(ds: Dataset, **headers: str) -> int:
        params = {"requestType": "WADO", "studyUID": ds.StudyInstanceUID,
                  "seriesUID": ds.SeriesInstanceUID, "objectUID": ds.SOPInstanceUID,
                  "contentType": "application/dicom"}
        return requests.get(server.base + "/wado", params=params, headers=headers,
                            timeout=30).status_code

    assert (get(public), get(hidden), get(hidden, **CURATOR)) == (200, 404, 200)


def cfind(server: RunningArchive, aet: str, patient_id: str = "*") -> set[str]:
    ae = AE(ae_title=aet)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    host, port, called = server.dimse
    assoc = ae.associate(host, port, ae_title=called)
    assert assoc.is_established
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = ""
    q.PatientID = patient_id
    found = set()
    try:
        for status, ident in assoc.send_c_find(q, StudyRootQueryRetrieveInformationModelFind):
            if status and status.Status in (0xFF00, 0xFF01) and ident is not None:
                found.add(ident.StudyInstanceUID)
    finally:
        assoc.release()
    return found


def test_c_find_hides_sequestered_except_from_curator_ae(archive) -> None:  # type: ignore[no-untyped-def]
    server, public, hidden, _ = archive
    assert cfind(server, "RESEARCH") == {public.StudyInstanceUID}
    assert cfind(server, "RESEARCH", hidden.PatientID) == set()
    assert cfind(server, "CURATOR") == {public.StudyInstanceUID, hidden.StudyInstanceUID}


@pytest.mark.parametrize(("which", "aet", "expected"),
                         [("hidden", "RESEARCH", 0), ("public", "RESEARCH", 1), ("hidden", "CURATOR", 1)])
def test_c_get_sends_nothing_sequestered(archive, which: str, aet: str, expected: int) -> None:  # type: ignore[no-untyped-def]
    from pynetdicom import build_role

    server, public, hidden, _ = archive
    target = hidden if which == "hidden" else public
    received: list[str] = []

    def on_store(event):  # type: ignore[no-untyped-def]
        received.append(event.dataset.SOPInstanceUID)
        return 0x0000

    ae = AE(ae_title=aet)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    host, port, called = server.dimse
    assoc = ae.associate(host, port, ae_title=called, ext_neg=[build_role(CTImageStorage, scp_role=True)],
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = target.StudyInstanceUID
    try:
        statuses = [s.Status for s, _ in assoc.send_c_get(q, StudyRootQueryRetrieveInformationModelGet) if s]
    finally:
        assoc.release()
    assert len(received) == expected
    assert statuses


@pytest.mark.parametrize(("which", "aet", "expected"),
                         [("hidden", "RESEARCH", 0), ("public", "RESEARCH", 1), ("hidden", "CURATOR", 1)])
def test_c_move_sends_nothing_sequestered(archive, which: str, aet: str, expected: int) -> None:  # type: ignore[no-untyped-def]
    server, public, hidden, recv_port = archive
    target = hidden if which == "hidden" else public
    received: list[str] = []

    def on_store(event):  # type: ignore[no-untyped-def]
        received.append(event.dataset.SOPInstanceUID)
        return 0x0000

    receiver = AE(ae_title="RECV")
    receiver.add_supported_context(CTImageStorage)
    scp = receiver.start_server(("127.0.0.1", recv_port), block=False,
                                evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        ae = AE(ae_title=aet)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        host, port, called = server.dimse
        assoc = ae.associate(host, port, ae_title=called)
        q = Dataset()
        q.QueryRetrieveLevel = "STUDY"
        q.StudyInstanceUID = target.StudyInstanceUID
        try:
            list(assoc.send_c_move(q, "RECV", StudyRootQueryRetrieveInformationModelMove))
        finally:
            assoc.release()
    finally:
        scp.shutdown()
    assert len(received) == expected
