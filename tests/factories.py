"""Deterministic DICOM data sets for tests, built with pydicom (no random inputs)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    RLELossless,
    generate_uid,
)

ROOT = "1.2.826.0.1.3680043.10.1234."  # test UID root


def uid(*parts: object) -> str:
    """A deterministic valid UID from parts (same parts → same UID)."""
    return generate_uid(prefix=ROOT, entropy_srcs=[str(p) for p in parts])


def image(
    study: str = "s1",
    series: str = "se1",
    number: int = 1,
    *,
    modality: str = "CT",
    rows: int = 64,
    columns: int = 64,
    frames: int = 1,
    patient_id: str = "PAT1",
    patient_name: str = "Doe^John",
    study_date: str = "20260301",
    study_description: str = "CT CHEST W/O CONTRAST",
    transfer_syntax: str = ExplicitVRLittleEndian,
    seed: int = 0,
) -> Dataset:
    """An image with structured (non-flat) pixels; UIDs derive from the names given."""
    sop_class = {"CT": CTImageStorage, "MR": MRImageStorage,
                 "CR": ComputedRadiographyImageStorage}.get(modality, CTImageStorage)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid(study, series, number, "sop")
    ds.StudyInstanceUID = uid(study)
    ds.SeriesInstanceUID = uid(study, series)
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "M"
    ds.StudyDate = study_date
    ds.StudyTime = "101500"
    ds.AccessionNumber = f"ACC-{study}"
    ds.StudyID = "1"
    ds.StudyDescription = study_description
    ds.ReferringPhysicianName = "Ref^Doc"
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.SeriesDescription = f"{modality} series"
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [0, 0, float(number)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 1.0
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    yy, xx = np.mgrid[0:rows, 0:columns]
    planes = [((xx * 7 + yy * 3 + f * 11 + seed) % 4096).astype(np.uint16) for f in range(frames)]
    ds.PixelData = np.stack(planes).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    if transfer_syntax == RLELossless:
        ds.compress(RLELossless)
    elif transfer_syntax == ImplicitVRLittleEndian:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    elif transfer_syntax != ExplicitVRLittleEndian:
        ds.compress(transfer_syntax)
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def write(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_bytes(ds))
    return path


def series_of(n: int, study: str = "s1", series: str = "se1", **kw: object) -> list[Dataset]:
    return [image(study, series, i + 1, **kw) for i in range(n)]  # type: ignore[arg-type]
