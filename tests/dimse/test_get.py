"""C-GET SCP with pynetdicom and DCMTK getscu, over data stored through STOW-RS."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    MRImageStorage,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelGet,
)

from tests import factories as f
from tests.conftest import RunningArchive
from tests.dcmtk import dcmtk
from tests.dicomweb.test_wado import store


def c_get(server: RunningArchive, query: dict[str, Any], *, model: Any = None,
          syntaxes: tuple[str, ...] = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
          ) -> tuple[list[Dataset], list[Dataset]]:
    """Run one C-GET; returns (received data sets, responses)."""
    model = model or StudyRootQueryRetrieveInformationModelGet
    received: list[Dataset] = []

    def on_store(event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        return 0x0000

    ae = AE(ae_title="GETTER")
    ae.add_requested_context(model)
    for sop in (CTImageStorage, MRImageStorage):
        for ts in syntaxes:  # one context per syntax, so the SCP may take any of them
            ae.add_requested_context(sop, ts)
    roles = [build_role(sop, scp_role=True) for sop in (CTImageStorage, MRImageStorage)]
    host, port, aet = server.dimse
    assoc = ae.associate(host, port, ae_title=aet, ext_neg=roles,
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    identifier = Dataset()
    for k, v in query.items():
        setattr(identifier, k, v)
    responses = [rsp for rsp, _ in assoc.send_c_get(identifier, model)]
    assoc.release()
    return received, responses


def test_c_get_study_series_image(server: RunningArchive) -> None:
    datasets = [*f.series_of(3, "get1"), f.image("get1", "se2", 1, modality="MR")]
    store(server, datasets)
    study = datasets[0].StudyInstanceUID
    got, rsps = c_get(server, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": study})
    assert sorted(d.SOPInstanceUID for d in got) == sorted(d.SOPInstanceUID for d in datasets)
    final = rsps[-1]
    assert final.Status == 0x0000 and final.NumberOfCompletedSuboperations == 4
    assert final.NumberOfFailedSuboperations == 0
    pending = [r for r in rsps if r.Status == 0xFF00]
    assert [r.NumberOfRemainingSuboperations for r in pending] == [3, 2, 1, 0]
    by_uid = {d.SOPInstanceUID: d for d in got}
    assert np.array_equal(by_uid[datasets[1].SOPInstanceUID].pixel_array, datasets[1].pixel_array)
    got, _ = c_get(server, {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": study,
                            "SeriesInstanceUID": datasets[3].SeriesInstanceUID})
    assert [d.Modality for d in got] == ["MR"]
    got, _ = c_get(server, {"QueryRetrieveLevel": "IMAGE", "StudyInstanceUID": study,
                            "SeriesInstanceUID": datasets[0].SeriesInstanceUID,
                            "SOPInstanceUID": [datasets[0].SOPInstanceUID,
                                               datasets[2].SOPInstanceUID]})
    assert {d.InstanceNumber for d in got} == {1, 3}


def test_c_get_patient_root_and_no_match(server: RunningArchive) -> None:
    store(server, [f.image("getp", patient_id="P-GET"), f.image("getq", patient_id="OTHER")])
    got, rsps = c_get(server, {"QueryRetrieveLevel": "PATIENT", "PatientID": "P-GET"},
                      model=PatientRootQueryRetrieveInformationModelGet)
    assert [d.PatientID for d in got] == ["P-GET"]
    got, rsps = c_get(server, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2.3.4"})
    assert got == [] and rsps[-1].Status == 0x0000


def test_c_get_bad_identifier_fails_with_a900(server: RunningArchive) -> None:
    _, rsps = c_get(server, {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": "1.2.3"})
    assert rsps[-1].Status == 0xA900
    _, rsps = c_get(server, {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2.abc"})
    assert rsps[-1].Status == 0xA900


def test_c_get_does_not_see_sequestered(server: RunningArchive) -> None:
    ds = f.image("getsec")
    store(server, [ds], **{"X-Archive-Collection": "sequestered"})
    got, rsps = c_get(server, {"QueryRetrieveLevel": "STUDY",
                               "StudyInstanceUID": ds.StudyInstanceUID})
    assert got == [] and rsps[-1].Status == 0x0000


def test_c_get_compressed_as_stored_or_decoded(server: RunningArchive) -> None:
    ds = f.image("getjls", transfer_syntax=JPEGLSLossless)
    plain = f.image("getjls")
    store(server, [ds])
    q = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": ds.StudyInstanceUID}
    got, _ = c_get(server, q, syntaxes=(JPEGLSLossless, ExplicitVRLittleEndian))
    assert got[0].file_meta.TransferSyntaxUID == JPEGLSLossless
    got, rsps = c_get(server, q)  # SCU takes only native syntaxes: decoded for it
    assert rsps[-1].Status == 0x0000
    assert got[0].file_meta.TransferSyntaxUID in (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
    assert np.array_equal(got[0].pixel_array, plain.pixel_array)


def test_dcmtk_getscu(server: RunningArchive, tmp_path: Path) -> None:
    datasets = f.series_of(3, "getscu")
    store(server, datasets)
    out = tmp_path / "out"
    out.mkdir()
    host, port, aet = server.dimse
    run = subprocess.run(
        [dcmtk("getscu"), "-S", "-aec", aet, "-od", str(out), "-k", "QueryRetrieveLevel=STUDY",
         "-k", f"StudyInstanceUID={datasets[0].StudyInstanceUID}", host, str(port)],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    files = sorted(out.iterdir())
    assert len(files) == 3
    assert {pydicom.dcmread(p).SOPInstanceUID for p in files} == \
        {d.SOPInstanceUID for d in datasets}
