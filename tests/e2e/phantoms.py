"""Synthetic studies with anatomy-like structure for the viewer test (a flat image counts as blank).

Each study has its own patient so the study list shows it by name and ID:
- CT: an axial series (a water cylinder with a bright sphere and an air ring), int16 with
  rescale to HU, explicit VR little endian.
- CR: one chest-like radiograph (lungs, spine, ribs), 12 bits stored.
- XA: one multi-frame instance (a contrast bolus moving along a vessel), 8 bits.
- MR: JPEG 2000 lossless (encapsulated) slices of a head-like phantom.
- US: one JPEG-LS lossless compressed image (a fan with speckle).
Pixels are deterministic (seeded noise); UIDs derive from the names (tests.factories.uid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    MRImageStorage,
    UltrasoundImageStorage,
    XRayAngiographicImageStorage,
)

from tests.factories import uid


@dataclass(frozen=True)
class Study:
    label: str
    patient_name: str  # DICOM PN, Family^Given
    patient_id: str
    datasets: list[Dataset]

    @property
    def uid(self) -> str:
        return str(self.datasets[0].StudyInstanceUID)

    @property
    def listed_as(self) -> list[str]:
        """What OHIF 3.13's study list shows for it: 'Family, Given' and the accession number."""
        family, given = self.patient_name.split("^")
        return [f"{family}, {given}", str(self.datasets[0].AccessionNumber)]


def _base(label: str, sop_class: str, modality: str, number: int, series: str = "1") -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid("e2e", label, series, number)
    ds.StudyInstanceUID = uid("e2e", label)
    ds.SeriesInstanceUID = uid("e2e", label, series)
    ds.PatientName = f"E2E{label.upper()}^Phantom"
    ds.PatientID = f"E2E-{label.upper()}"
    ds.PatientBirthDate = "19800101"
    ds.PatientSex = "O"
    ds.StudyDate = "20260115"
    ds.StudyTime = "093000"
    ds.SeriesDate = "20260115"
    ds.SeriesTime = "093100"
    ds.AccessionNumber = f"E2E{label.upper()}1"
    ds.ReferringPhysicianName = "Ref^Doc"
    ds.StudyID = "1"
    ds.StudyDescription = f"E2E {modality} phantom"
    ds.SeriesDescription = f"{modality} phantom series"
    ds.Modality = modality
    ds.SeriesNumber = int(series)
    ds.InstanceNumber = number
    ds.Manufacturer = "archive e2e"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return ds


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return xx - (size - 1) / 2, yy - (size - 1) / 2


def ct(slices: int = 12, size: int = 256) -> Study:
    xx, yy = _grid(size)
    r = np.hypot(xx, yy)
    out = []
    for k in range(slices):
        z = (k - (slices - 1) / 2) * 3.0
        hu = np.full((size, size), -1000.0, np.float32)
        hu[r < size * 0.45] = 40.0
        hu[(r > size * 0.39) & (r < size * 0.41)] = -800.0
        sphere = np.sqrt(max(0.0, (size * 0.3) ** 2 - (z * 4) ** 2))
        hu[np.hypot(xx - size * 0.06, yy + size * 0.04) < sphere] = 900.0
        hu[np.hypot(xx + size * 0.24, yy - size * 0.22) < size * 0.05] = 300.0
        hu += np.random.default_rng(k).normal(0, 8, hu.shape)
        ds = _base("ct", CTImageStorage, "CT", k + 1)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.FrameOfReferenceUID = uid("e2e", "ct", "for")
        ds.ImagePositionPatient = [-size * 0.35, -size * 0.35, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = z
        ds.SliceThickness = 3.0
        ds.PixelSpacing = [0.7, 0.7]
        ds.KVP = 120
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = np.clip(hu + 1024, 0, 4095).astype(np.int16).tobytes()
        out.append(ds)
    return Study("ct", "E2ECT^Phantom", "E2E-CT", out)


def cr(size: int = 512) -> Study:
    xx, yy = _grid(size)
    s = size / 1024
    img = np.full((size, size), 200.0, np.float32)
    body = (xx / (430 * s)) ** 2 + ((yy - 48 * s) / (470 * s)) ** 2 < 1
    img[body] = 2600.0
    for lx in (-182 * s, 182 * s):
        lung = ((xx - lx) / (150 * s)) ** 2 + ((yy + 32 * s) / (300 * s)) ** 2 < 1
        img[lung] = 900.0 + 0.8 * (yy[lung] / s + 332)
    img[(np.abs(xx) < 38 * s) & body] = 3400.0
    for k in range(9):
        y0 = (-262 + 62 * k) * s
        dx = np.abs(xx)
        arc = np.abs(yy - (y0 - 40 * s + 0.45 * dx - 0.0006 * dx**2 / s)) < 9 * s
        img[arc & (dx > 45 * s) & (dx < 420 * s) & body] += 700.0
    img += np.random.default_rng(7).normal(0, 25, img.shape)
    ds = _base("cr", ComputedRadiographyImageStorage, "CR", 1)
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.ImagerPixelSpacing = [0.35 / s, 0.35 / s]
    ds.PatientOrientation = ["R", "F"]
    ds.Rows = ds.Columns = size
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2000, 4000
    ds.PixelData = np.clip(img, 0, 4095).astype(np.uint16).tobytes()
    return Study("cr", "E2ECR^Phantom", "E2E-CR", [ds])


def xa_multiframe(frames: int = 8, size: int = 256) -> Study:
    xx, yy = _grid(size)
    planes = []
    for f in range(frames):
        img = np.full((size, size), 170.0, np.float32) - 0.2 * np.hypot(xx, yy)
        vessel = np.abs(yy - 0.3 * xx - 10 * np.sin(xx / 20)) < 6
        filled = vessel & (xx < -size / 2 + (f + 1) * size / frames)  # the bolus advances
        img[filled] = 50.0
        img[np.hypot(xx - 60, yy + 70) < 18] = 230.0  # a marker
        img += np.random.default_rng(100 + f).normal(0, 4, img.shape)
        planes.append(np.clip(img, 0, 255).astype(np.uint8))
    ds = _base("xa", XRayAngiographicImageStorage, "XA", 1)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "SINGLE PLANE"]
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.FrameTime = 66.7
    ds.Rows = ds.Columns = size
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelIntensityRelationship = "LIN"
    ds.KVP = 80
    ds.PixelData = np.stack(planes).tobytes()
    return Study("xa", "E2EXA^Phantom", "E2E-XA", [ds])


def mr_jpeg2000(slices: int = 3, size: int = 256) -> Study:
    xx, yy = _grid(size)
    out = []
    for k in range(slices):
        img = np.zeros((size, size), np.float32)
        head = (xx / (size * 0.36)) ** 2 + (yy / (size * 0.44)) ** 2
        img[head < 1] = 300.0
        img[head < 0.85] = 900.0 + 200 * np.cos(xx[head < 0.85] / 9) * np.sin(yy[head < 0.85] / 11)
        for vx in (-0.08, 0.08):  # ventricles
            v = ((xx - vx * size) / (size * 0.05)) ** 2 + (yy / (size * 0.14 - k * 2)) ** 2 < 1
            img[v] = 1800.0
        img += np.random.default_rng(200 + k).normal(0, 15, img.shape)
        ds = _base("mr", MRImageStorage, "MR", k + 1)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "SE", "NONE", ""
        ds.MRAcquisitionType = "2D"
        ds.EchoTime, ds.RepetitionTime, ds.EchoTrainLength = 90, 4000, 1
        ds.FrameOfReferenceUID = uid("e2e", "mr", "for")
        ds.ImagePositionPatient = [-90.0, -90.0, k * 5.0]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.7, 0.7]
        ds.SliceThickness = 5.0
        ds.Rows = ds.Columns = size
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.WindowCenter, ds.WindowWidth = 1000, 2000
        ds.PixelData = np.clip(img, 0, 4095).astype(np.uint16).tobytes()
        ds.compress(JPEG2000Lossless)
        out.append(ds)
    return Study("mr", "E2EMR^Phantom", "E2E-MR", out)


def us_jpegls(size: int = 256) -> Study:
    xx, yy = _grid(size)
    ang = np.arctan2(xx, yy + size / 2)
    dist = np.hypot(xx, yy + size / 2)
    fan = (np.abs(ang) < 0.6) & (dist < size * 0.95) & (dist > size * 0.15)
    rng = np.random.default_rng(300)
    img = np.zeros((size, size), np.float32)
    img[fan] = 60 + 40 * rng.rayleigh(1.0, int(fan.sum()))
    cyst = np.hypot(xx - 10, yy - 20) < 25
    img[fan & cyst] = 8.0
    img[fan & (np.abs(dist - size * 0.7) < 3)] = 220.0
    ds = _base("us", UltrasoundImageStorage, "US", 1)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL"]
    ds.Rows = ds.Columns = size
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.clip(img, 0, 255).astype(np.uint8).tobytes()
    ds.compress(JPEGLSLossless)
    return Study("us", "E2EUS^Phantom", "E2E-US", [ds])


def all_studies() -> list[Study]:
    return [ct(), cr(), xa_multiframe(), mr_jpeg2000(), us_jpegls()]
