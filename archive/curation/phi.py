"""PHI checks by the PS3.15 E.1 Basic Application Level Confidentiality Profile, and optional
de-identification.

`findings()` reads a header (a pydicom Dataset or the stored DICOM JSON) and lists what would
still identify a patient: names, identifiers, institution and physician names, dates the site
promised to shift, BurnedInAnnotation = YES, private attributes. The attribute list and actions
below are from PS3.15 Table E.1-1 (Basic Profile column), restricted to attributes found in
image headers; the commons keeps what its research needs through the standard's options
(Retain Patient Characteristics: age/sex/size/weight; Retain Longitudinal Temporal Information
with Modified Dates; descriptions kept for LOINC harmonization).

`deidentify()` applies the profile with `dicognito` (chosen over `deid`): dicognito implements
E.1 as code rather than as a recipe file the archive would have to write and keep in step with
the standard, remaps every UID (except class and transfer-syntax UIDs) deterministically from a
seed — so the same original UID always maps to the same new one, across files and batches —
shifts all dates and times by an offset derived from the same seed, and ships type hints
(py.typed); `deid` needs a hand-kept recipe for the E.1 actions and leaves UID remapping and
date shifting to custom functions. Seeding dicognito with (site secret, patient key) gives
exactly the per-patient date shift and consistent remapping the issue asks for. What dicognito
leaves (private attributes, some X-action attributes) is removed here from the same table.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pydicom
from pydicom.dataset import Dataset

BASIC_PROFILE = ("113100", "DCM", "Basic Application Confidentiality Profile")
MODIFIED_DATES = ("113107", "DCM", "Retain Longitudinal Temporal Information Modified Dates Option")
PATIENT_CHARACTERISTICS = ("113108", "DCM", "Retain Patient Characteristics Option")


class Category(StrEnum):
    NAME = "name"
    ID = "id"
    DATE = "date"
    INSTITUTION = "institution"
    PHYSICIAN = "physician"
    BURNED_IN = "burned_in"
    PRIVATE = "private"
    OTHER = "other"


# keyword → (E.1 Basic Profile action, category). X remove, Z empty, D dummy, U remapped UID.
E1: dict[str, tuple[str, Category]] = {
    "PatientName": ("Z", Category.NAME), "OtherPatientNames": ("X", Category.NAME),
    "PatientBirthName": ("X", Category.NAME), "PatientMotherBirthName": ("X", Category.NAME),
    "ResponsiblePerson": ("X", Category.NAME), "PersonName": ("D", Category.NAME),
    "ReferringPhysicianName": ("Z", Category.PHYSICIAN), "PerformingPhysicianName": ("X", Category.PHYSICIAN),
    "NameOfPhysiciansReadingStudy": ("X", Category.PHYSICIAN), "OperatorsName": ("X", Category.PHYSICIAN),
    "PhysiciansOfRecord": ("X", Category.PHYSICIAN), "RequestingPhysician": ("X", Category.PHYSICIAN),
    "ScheduledPerformingPhysicianName": ("X", Category.PHYSICIAN),
    "ReferringPhysicianAddress": ("X", Category.PHYSICIAN),
    "ReferringPhysicianTelephoneNumbers": ("X", Category.PHYSICIAN),
    "InstitutionName": ("X", Category.INSTITUTION), "InstitutionAddress": ("X", Category.INSTITUTION),
    "InstitutionalDepartmentName": ("X", Category.INSTITUTION),
    "InstitutionCodeSequence": ("X", Category.INSTITUTION), "StationName": ("X", Category.INSTITUTION),
    "DeviceSerialNumber": ("X", Category.INSTITUTION),
    "PatientID": ("Z", Category.ID), "OtherPatientIDs": ("X", Category.ID),
    "OtherPatientIDsSequence": ("X", Category.ID), "IssuerOfPatientID": ("X", Category.ID),
    "AccessionNumber": ("Z", Category.ID), "StudyID": ("Z", Category.ID),
    "MedicalRecordLocator": ("X", Category.ID), "AdmissionID": ("X", Category.ID),
    "RequestedProcedureID": ("X", Category.ID), "PerformedProcedureStepID": ("X", Category.ID),
    "ScheduledProcedureStepID": ("X", Category.ID),
    "PlacerOrderNumberImagingServiceRequest": ("X", Category.ID),
    "FillerOrderNumberImagingServiceRequest": ("X", Category.ID),
    "PatientAddress": ("X", Category.ID), "PatientTelephoneNumbers": ("X", Category.ID),
    "PatientTelecomInformation": ("X", Category.ID), "MilitaryRank": ("X", Category.OTHER),
    "BranchOfService": ("X", Category.OTHER), "Occupation": ("X", Category.OTHER),
    "PatientReligiousPreference": ("X", Category.OTHER), "AdditionalPatientHistory": ("X", Category.OTHER),
    "PatientComments": ("X", Category.OTHER), "MedicalAlerts": ("X", Category.OTHER),
    "Allergies": ("X", Category.OTHER), "CountryOfResidence": ("X", Category.OTHER),
    "RegionOfResidence": ("X", Category.OTHER), "CurrentPatientLocation": ("X", Category.OTHER),
    "ImageComments": ("X", Category.OTHER), "RequestAttributesSequence": ("X", Category.OTHER),
    "PatientBirthDate": ("Z", Category.DATE), "PatientBirthTime": ("X", Category.DATE),
    "StudyDate": ("Z", Category.DATE), "SeriesDate": ("X", Category.DATE),
    "AcquisitionDate": ("X", Category.DATE), "ContentDate": ("Z", Category.DATE),
    "StudyTime": ("Z", Category.DATE), "SeriesTime": ("X", Category.DATE),
    "AcquisitionTime": ("X", Category.DATE), "ContentTime": ("Z", Category.DATE),
    "AcquisitionDateTime": ("X", Category.DATE), "InstanceCreationDate": ("X", Category.DATE),
    "InstanceCreationTime": ("X", Category.DATE),
}
# Kept under PS3.15 options the commons uses (see module docstring).
PATIENT_TRAITS = frozenset({"PatientAge", "PatientSex", "PatientSize", "PatientWeight", "EthnicGroup"})
DESCRIPTIONS = frozenset({"StudyDescription", "SeriesDescription", "ProtocolName", "BodyPartExamined"})


@dataclass(frozen=True, slots=True)
class PhiPolicy:
    """What a site promised: shifted dates, and whether its headers claim de-identification."""

    dates_shifted: bool = True


@dataclass(frozen=True, slots=True)
class Finding:
    path: str  # "(0010,0010)" or "(0040,0275)[0].(0040,1001)" for nested items
    keyword: str
    category: Category
    action: str  # E.1 action the profile asks for (X, Z, D) or "-" for flags
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "keyword": self.keyword, "category": str(self.category),
                "action": self.action, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class DeidSettings:
    secret: str  # per-archive secret: without it, the date shift could be recomputed
    id_prefix: str = ""
    keep_private: bool = False
    retain_descriptions: bool = True
    retain_patient_characteristics: bool = True


def from_json(header: Mapping[str, Any]) -> Dataset:
    """A Dataset from the stored DICOM JSON header (bulk data is not needed for PHI checks)."""
    return Dataset.from_json(dict(header), bulk_data_uri_handler=lambda *_: b"")


def findings(header: Dataset | Mapping[str, Any], policy: PhiPolicy = PhiPolicy()) -> list[Finding]:
    """Everything in the header that still identifies a patient, by the E.1 attribute list."""
    ds = header if isinstance(header, Dataset) else from_json(header)
    claimed = str(ds.get("PatientIdentityRemoved", "")).upper() == "YES"
    dates_modified = str(ds.get("LongitudinalTemporalInformationModified", "")).upper() == "MODIFIED"
    out: list[Finding] = []
    _walk(ds, "", claimed, policy.dates_shifted and not dates_modified, out)
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        out.append(Finding("(0028,0301)", "BurnedInAnnotation", Category.BURNED_IN, "-",
                           "pixel data carry burned-in annotation; needs pixel cleaning or exclusion"))
    return out


def _walk(ds: Dataset, prefix: str, claimed: bool, dates_unshifted: bool, out: list[Finding]) -> None:
    for elem in ds:
        path = f"{prefix}({elem.tag.group:04X},{elem.tag.element:04X})"
        if elem.tag.is_private:
            if not elem.tag.is_private_creator:  # one finding per element, creators skipped
                out.append(Finding(path, elem.keyword or "private", Category.PRIVATE, "X",
                                   "private attribute (E.1: remove unless a safe private attribute)"))
            continue
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or ()):
                _walk(item, f"{path}[{i}].", claimed, dates_unshifted, out)
        finding = _check(elem, path, claimed, dates_unshifted)
        if finding is not None:
            out.append(finding)


def _check(elem: pydicom.DataElement, path: str, claimed: bool, dates_unshifted: bool) -> Finding | None:
    if elem.VR == "SQ" or elem.value in (None, "", b"") or elem.keyword in PATIENT_TRAITS | DESCRIPTIONS:
        return None
    action, category = E1.get(elem.keyword, ("", Category.OTHER))
    if category == Category.DATE or (not action and elem.VR in ("DA", "DT")):
        if dates_unshifted:
            return Finding(path, elem.keyword, Category.DATE, action or "D",
                           "site promised shifted dates but LongitudinalTemporalInformationModified "
                           "is not MODIFIED")
        return None
    if action == "X" or (action and not claimed):
        why = "E.1 removes it" if action == "X" else "PatientIdentityRemoved is not YES"
        return Finding(path, elem.keyword, category, action, why)
    if not action and elem.VR == "PN" and not claimed:
        return Finding(path, elem.keyword, Category.NAME, "D", "person name, and the header does not "
                       "claim de-identification")
    return None


def deidentify(ds: Dataset, patient_key: str, settings: DeidSettings) -> Dataset:
    """A de-identified copy of `ds`: E.1 Basic Profile, UIDs remapped, dates shifted per patient.

    `patient_key` is the patient's stable key at the contributing site (e.g. the original
    PatientID): all of that patient's files get the same date shift and UID mapping, so studies
    and series stay linked and intervals between studies stay true.
    """
    from dicognito.anonymizer import Anonymizer

    out = copy.deepcopy(ds)
    kept = {k: out[k] for k in _retained(settings) if k in out}
    seed = hashlib.sha256(f"{settings.secret}\x00{patient_key}".encode()).hexdigest()
    Anonymizer(id_prefix=settings.id_prefix, seed=seed).anonymize(out)
    for keyword, (action, _) in E1.items():
        if action == "X" and keyword in out:
            del out[keyword]
    if not settings.keep_private:
        out.remove_private_tags()
    for keyword, elem in kept.items():
        out[keyword] = elem
    _mark(out, settings)
    return out


def _retained(settings: DeidSettings) -> set[str]:
    keep: set[str] = set()
    if settings.retain_descriptions:
        keep |= DESCRIPTIONS
    if settings.retain_patient_characteristics:
        keep |= PATIENT_TRAITS
    return keep


def _mark(ds: Dataset, settings: DeidSettings) -> None:
    """Record in the header what was done (PS3.15 E.1: (0012,0062)/(0012,0063)/(0012,0064))."""
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    codes = [BASIC_PROFILE, MODIFIED_DATES]
    if settings.retain_patient_characteristics:
        codes.append(PATIENT_CHARACTERISTICS)
    items = []
    for value, scheme, meaning in codes:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = items
    note = "descriptions retained" if settings.retain_descriptions else "descriptions removed"
    ds.DeidentificationMethod = f"PS3.15 E.1 Basic Profile (dicognito); {note}"
