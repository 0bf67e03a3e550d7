"""PHI findings by the PS3.15 E.1 list, and de-identification with dicognito."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from archive.curation.phi import Category, DeidSettings, PhiPolicy, deidentify, findings

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def identified(patient: str = "DOE^JANE", pid: str = "MRN123", study_date: str = "20240105") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE
    ds.SOPClassUID = CT_IMAGE
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = patient, pid, "19600101"
    ds.PatientAge, ds.PatientSex = "064Y", "F"
    ds.StudyDate, ds.StudyTime, ds.SeriesDate = study_date, "101500", study_date
    ds.AccessionNumber, ds.StudyID = "ACC-99", "S1"
    ds.InstitutionName, ds.InstitutionAddress = "General Hospital", "1 Main St"
    ds.ReferringPhysicianName, ds.OperatorsName = "WHO^DR", "TECH^TOM"
    ds.OtherPatientIDs = "SSN-000-11-2222"
    ds.StudyDescription, ds.Modality = "CT CHEST WO", "CT"
    ds.BurnedInAnnotation = "NO"
    item = Dataset()
    item.RequestingPhysician = "ASK^DR"
    item.RequestedProcedureID = "RP-7"
    ds.RequestAttributesSequence = [item]
    block = ds.private_block(0x0029, "ACME 1.0", create=True)
    block.add_new(0x10, "LO", "patient nickname Janie")
    return ds


def _by_keyword(found: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in found:
        out.setdefault(f.keyword, []).append(f)
    return out


def test_identified_header_is_flagged_by_category() -> None:
    found = findings(identified())
    kinds = {f.category for f in found}
    assert kinds >= {Category.NAME, Category.ID, Category.DATE, Category.INSTITUTION,
                     Category.PHYSICIAN, Category.PRIVATE}
    by = _by_keyword(found)
    for keyword in ("PatientName", "PatientID", "AccessionNumber", "OtherPatientIDs", "InstitutionName",
                    "ReferringPhysicianName", "OperatorsName", "StudyDate", "PatientBirthDate"):
        assert keyword in by, keyword
    assert "PatientAge" not in by and "StudyDescription" not in by  # retained by option
    nested = [f for f in found if f.path.startswith("(0040,0275)[0].")]
    assert {f.keyword for f in nested} >= {"RequestingPhysician", "RequestedProcedureID"}
    private = [f for f in found if f.category == Category.PRIVATE]
    assert [f.path for f in private] == ["(0029,1010)"]


def test_burned_in_annotation_is_flagged() -> None:
    ds = identified()
    ds.BurnedInAnnotation = "YES"
    assert any(f.category == Category.BURNED_IN for f in findings(ds))


def test_dates_only_flagged_when_the_site_promised_shifting() -> None:
    ds = identified()
    assert not [f for f in findings(ds, PhiPolicy(dates_shifted=False)) if f.category == Category.DATE]
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    assert not [f for f in findings(ds) if f.category == Category.DATE]


def test_json_header_is_checked_like_a_dataset() -> None:
    ds = identified()
    del ds.file_meta
    from_json = findings(ds.to_json_dict())
    assert {f.path for f in from_json} == {f.path for f in findings(ds)}


SETTINGS = DeidSettings(secret="archive-secret")


def test_deidentified_copy_has_no_findings_and_keeps_research_attributes() -> None:
    ds = identified()
    clean = deidentify(ds, "MRN123", SETTINGS)
    assert ds.PatientName == "DOE^JANE"  # the input is not modified
    assert findings(clean) == []
    assert clean.PatientIdentityRemoved == "YES"
    assert clean.LongitudinalTemporalInformationModified == "MODIFIED"
    assert "113100" in [i.CodeValue for i in clean.DeidentificationMethodCodeSequence]
    assert (clean.StudyDescription, clean.PatientAge, clean.PatientSex) == ("CT CHEST WO", "064Y", "F")
    assert clean.SOPClassUID == CT_IMAGE
    assert clean.StudyInstanceUID != ds.StudyInstanceUID and clean.PatientID != "MRN123"
    assert "InstitutionName" not in clean and "OtherPatientIDs" not in clean
    assert not any(e.tag.is_private for e in clean)
    pydicom.dataset.validate_file_meta(clean.file_meta)


def _days(da: str) -> int:
    from datetime import date
    return date(int(da[:4]), int(da[4:6]), int(da[6:])).toordinal()


def test_uids_and_date_shift_are_consistent_per_patient() -> None:
    a1, a2 = identified(study_date="20240105"), identified(study_date="20240301")
    a2.StudyInstanceUID = a1.StudyInstanceUID  # second file of the same study
    c1, c2 = deidentify(a1, "MRN123", SETTINGS), deidentify(a2, "MRN123", SETTINGS)
    assert c1.StudyInstanceUID == c2.StudyInstanceUID
    assert c1.SOPInstanceUID != c2.SOPInstanceUID
    assert c1.PatientID == c2.PatientID
    shift = _days(c1.StudyDate) - _days("20240105")
    assert shift != 0 and _days(c2.StudyDate) - _days("20240301") == shift  # intervals kept
    again = deidentify(a1, "MRN123", SETTINGS)
    assert (again.StudyInstanceUID, again.StudyDate) == (c1.StudyInstanceUID, c1.StudyDate)
    other = deidentify(identified(pid="MRN999"), "MRN999", SETTINGS)
    assert _days(other.StudyDate) - _days("20240105") != shift  # another patient, another shift
    assert other.PatientID != c1.PatientID
    assert deidentify(a1, "MRN123", DeidSettings(secret="other")).StudyInstanceUID != c1.StudyInstanceUID


@pytest.mark.parametrize("keep", [True, False])
def test_private_attributes_follow_the_setting(keep: bool) -> None:
    clean = deidentify(identified(), "k", DeidSettings(secret="s", keep_private=keep))
    assert any(e.tag.is_private for e in clean) is keep
