"""C-MOVE SCP with pynetdicom and DCMTK movescu, to a pynetdicom Storage SCP in the test."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    MRImageStorage,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelMove,
)

from archive.config import Peer
from tests import factories as f
from tests.conftest import RunningArchive, free_port
from tests.dcmtk import dcmtk
from tests.dicomweb.test_wado import store


class Receiver:
    """A real Storage SCP (pynetdicom) that keeps what it receives."""

    def __init__(self, syntaxes: tuple[str, ...]) -> None:
        self.port = free_port()
        self.received: list[Dataset] = []
        ae = AE(ae_title="RECEIVER")
        for sop in (CTImageStorage, MRImageStorage):
            ae.add_supported_context(sop, list(syntaxes))
        self.server = ae.start_server(("127.0.0.1", self.port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self._store)])

    def _store(self, event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        self.received.append(ds)
        return 0x0000

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver_factory() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def make(syntaxes: tuple[str, ...] = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
             ) -> Receiver:
        r = Receiver(syntaxes)
        started.append(r)
        return r

    yield make
    for r in started:
        r.stop()


def c_move(server: RunningArchive, query: dict[str, Any], destination: str = "RECEIVER",
           model: Any = StudyRootQueryRetrieveInformationModelMove) -> list[Dataset]:
    ae = AE(ae_title="MOVER")
    ae.add_requested_context(model)
    host, port, aet = server.dimse
    assoc = ae.associate(host, port, ae_title=aet)
    assert assoc.is_established
    identifier = Dataset()
    for k, v in query.items():
        setattr(identifier, k, v)
    responses = [rsp for rsp, _ in assoc.send_c_move(identifier, destination, model)]
    assoc.release()
    return responses


def test_c_move_to_configured_peer(server_factory: Callable[..., RunningArchive],
                                   receiver_factory: Callable[..., Receiver]) -> None:
    rx = receiver_factory()
    server = server_factory(peers=(Peer("RECEIVER", "127.0.0.1", rx.port),))
    datasets = [*f.series_of(3, "move1"), f.image("move1", "se2", 1, modality="MR")]
    store(server, datasets)
    study = datasets[0].StudyInstanceUID
    rsps = c_move(server, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study})
    assert rsps[-1].Status == 0x0000
    assert rsps[-1].NumberOfCompletedSuboperations == 4
    assert sorted(d.SOPInstanceUID for d in rx.received) == \
        sorted(d.SOPInstanceUID for d in datasets)
    rx.received.clear()
    rsps = c_move(server, {"QueryRetrieveLevel": "IMAGE", "StudyInstanceUID": study,
                           "SeriesInstanceUID": datasets[0].SeriesInstanceUID,
                           "SOPInstanceUID": datasets[1].SOPInstanceUID})
    assert [d.InstanceNumber for d in rx.received] == [2]
    rx.received.clear()
    c_move(server, {"QueryRetrieveLevel": "PATIENT", "PatientID": "PAT1"},
           model=PatientRootQueryRetrieveInformationModelMove)
    assert len(rx.received) == 4


def test_unknown_move_destination_is_a801(server: RunningArchive) -> None:
    store(server, [f.image("move2")])
    rsps = c_move(server, {"QueryRetrieveLevel": "STUDY",
                           "StudyInstanceUID": f.image("move2").StudyInstanceUID},
                  destination="NOBODY")
    assert rsps[-1].Status == 0xA801


def test_c_move_decodes_for_a_native_only_destination(
    server_factory: Callable[..., RunningArchive], receiver_factory: Callable[..., Receiver]
) -> None:
    native, jls = receiver_factory(), receiver_factory((JPEGLSLossless, ExplicitVRLittleEndian))
    server = server_factory(peers=(Peer("RECEIVER", "127.0.0.1", native.port),
                                   Peer("JLSRX", "127.0.0.1", jls.port)))
    ds = f.image("move3", transfer_syntax=JPEGLSLossless)
    store(server, [ds])
    q = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": ds.StudyInstanceUID}
    assert c_move(server, q)[-1].Status == 0x0000
    got = native.received[0]
    assert got.file_meta.TransferSyntaxUID in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
    assert np.array_equal(got.pixel_array, f.image("move3").pixel_array)
    assert c_move(server, q, destination="JLSRX")[-1].Status == 0x0000
    assert jls.received[0].file_meta.TransferSyntaxUID == JPEGLSLossless


def test_dcmtk_movescu(server_factory: Callable[..., RunningArchive],
                       receiver_factory: Callable[..., Receiver]) -> None:
    rx = receiver_factory()
    server = server_factory(peers=(Peer("RECEIVER", "127.0.0.1", rx.port),))
    datasets = f.series_of(3, "movescu")
    store(server, datasets)
    host, port, aet = server.dimse
    run = subprocess.run(
        [dcmtk("movescu"), "-S", "-aec", aet, "-aem", "RECEIVER", "-k", "QueryRetrieveLevel=SERIES",
         "-k", f"StudyInstanceUID={datasets[0].StudyInstanceUID}",
         "-k", f"SeriesInstanceUID={datasets[0].SeriesInstanceUID}", host, str(port)],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert sorted(d.InstanceNumber for d in rx.received) == [1, 2, 3]
    bad = subprocess.run(
        [dcmtk("movescu"), "-v", "-S", "-aec", aet, "-aem", "NOBODY", "-k", "QueryRetrieveLevel=STUDY",
         "-k", f"StudyInstanceUID={datasets[0].StudyInstanceUID}", host, str(port)],
        capture_output=True, text=True, timeout=120,
    )
    # DCMTK names status 0xA801 (it was pynetdicom's same-named script that printed "a801").
    assert "refused: movedestinationunknown" in (bad.stdout + bad.stderr).lower()
