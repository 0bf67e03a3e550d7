"""Which attributes belong to which level, and which ones are indexed columns.

Sources: PS3.18 §10.6.3.3 Tables 10.6.3-3 (study), 10.6.3-4 (series), 10.6.3-5 (instance), and
PS3.4 C.6.1.1 / C.6.2.1 (Patient Root / Study Root keys). The per-level sets decide what is copied
into each level's `attrs` JSONB at ingest (so study-level QIDO never opens instance headers) and
what a level may return.
"""

from __future__ import annotations

from enum import StrEnum


class Level(StrEnum):
    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"


PATIENT_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "TypeOfPatientID",
    "IssuerOfPatientIDQualifiersSequence",
    "OtherPatientIDsSequence",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientSex",
    "PatientComments",
    "EthnicGroup",
    "PatientSpeciesDescription",
    "PatientBreedDescription",
    "ResponsiblePerson",
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
)

STUDY_KEYWORDS = (
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "IssuerOfAccessionNumberSequence",
    "ReferringPhysicianName",
    "TimezoneOffsetFromUTC",
    "StudyInstanceUID",
    "StudyID",
    "StudyDescription",
    "ProcedureCodeSequence",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord",
    "AdmittingDiagnosesDescription",
    "AdmittingDiagnosesCodeSequence",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "Occupation",
    "AdditionalPatientHistory",
    "ReasonForPerformedProcedureCodeSequence",
    "RequestingService",
    "InstitutionName",
)

SERIES_KEYWORDS = (
    "Modality",
    "SeriesDescription",
    "SeriesNumber",
    "SeriesInstanceUID",
    "SeriesDate",
    "SeriesTime",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "RequestAttributesSequence",
    "BodyPartExamined",
    "Laterality",
    "ProtocolName",
    "OperatorsName",
    "PerformingPhysicianName",
    "Manufacturer",
    "ManufacturerModelName",
    "StationName",
    "InstitutionalDepartmentName",
    "FrameOfReferenceUID",
    "PatientPosition",
    "ViewPosition",
)

INSTANCE_KEYWORDS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceNumber",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
    "ContentDate",
    "ContentTime",
    "AcquisitionDate",
    "AcquisitionTime",
)

LEVEL_KEYWORDS: dict[Level, tuple[str, ...]] = {
    Level.PATIENT: PATIENT_KEYWORDS,
    Level.STUDY: STUDY_KEYWORDS,
    Level.SERIES: SERIES_KEYWORDS,
    Level.IMAGE: INSTANCE_KEYWORDS,
}
