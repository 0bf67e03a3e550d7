"""--deidentify basic per site: what is stored is the E.1 de-identified file (real STOW-RS,
WADO-RS retrieve of the stored bytes), consistent per patient; other sites are untouched."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from dicomweb_client.api import DICOMwebClient

from archive.errors import ConfigError
from tests import factories as f
from tests.conftest import RunningArchive, auth_headers


def test_north_is_deidentified_south_is_not(server_factory: Callable[..., RunningArchive]) -> None:
    server = server_factory(deidentify_site=(("NORTH", "basic"),), deidentify_secret="s3cret")
    north = DICOMwebClient(server.url, headers=auth_headers(**{"X-Archive-Site": "NORTH"}))
    south = DICOMwebClient(server.url, headers=auth_headers(**{"X-Archive-Site": "SOUTH"}))
    a1 = f.image("n1", "se1", 1, rows=8, columns=8, patient_id="MRN-77", patient_name="Doe^Jane")
    a2 = f.image("n1", "se1", 2, rows=8, columns=8, patient_id="MRN-77", patient_name="Doe^Jane")
    a1.InstitutionName = a2.InstitutionName = "General Hospital"
    north.store_instances([a1])
    north.store_instances([a2], study_instance_uid=f.uid("n1"))  # the original UID in the URL
    south.store_instances([f.image("s1", "se1", 1, rows=8, columns=8, patient_id="MRN-9")])
    found = {d["0020000D"]["Value"][0]: d for d in DICOMwebClient(server.url).search_for_studies()}
    assert f.uid("s1") in found and f.uid("n1") not in found and len(found) == 2
    new_uid = next(u for u in found if u != f.uid("s1"))
    stored = DICOMwebClient(server.url).retrieve_study(new_uid)
    assert len(stored) == 2  # both instances of the patient: one remapped study, one series
    assert len({ds.SeriesInstanceUID for ds in stored}) == 1
    for ds in stored:
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.PatientID != "MRN-77" and str(ds.PatientName) != "Doe^Jane"
        assert "InstitutionName" not in ds
        assert ds.StudyDate != "20260301"  # shifted
        assert ds.StudyDescription == "CT CHEST W/O CONTRAST"  # kept for harmonization
        assert ds.SOPInstanceUID not in (a1.SOPInstanceUID, a2.SOPInstanceUID)
    # the same original file again maps to the same instance (deterministic remapping)
    north.store_instances([a1])
    assert len(DICOMwebClient(server.url).retrieve_study(new_uid)) == 2
    kept = DICOMwebClient(server.url).retrieve_study_metadata(f.uid("s1"))[0]
    assert kept["00100020"]["Value"] == ["MRN-9"]
    assert kept["00100010"]["Value"] == [{"Alphabetic": "Doe^John"}]


def test_basic_profile_needs_a_secret(server_factory: Callable[..., RunningArchive]) -> None:
    with pytest.raises(RuntimeError, match="deidentify-secret"):
        server_factory(deidentify="basic")
    assert ConfigError  # the start-up failure is the archive's ConfigError (exit 2 from serve)
