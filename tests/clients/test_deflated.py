"""Issue 11.2: Deflated Explicit VR Little Endian is accepted on every door and round-trips."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_testdata_file

from tests.conftest import RunningArchive, auth_headers
from tests.dcmtk import dcmtk

DEFLATED = "1.2.840.10008.1.2.1.99"


def _deflated_file() -> Path:
    return Path(str(get_testdata_file("image_dfl.dcm")))


def _retrieve_as_stored(server: RunningArchive, ds: pydicom.Dataset) -> bytes:
    url = (f"{server.url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
           f"/instances/{ds.SOPInstanceUID}")
    r = requests.get(url, headers={"Accept": 'multipart/related; type="application/dicom"; '
                                             "transfer-syntax=*"}, timeout=30)
    assert r.status_code == 200, r.text
    boundary = r.headers["Content-Type"].split("boundary=")[1].strip('"').encode()
    part = r.content.split(b"--" + boundary)[1]
    return part.split(b"\r\n\r\n", 1)[1][:-2]


def _stored_row(server: RunningArchive) -> dict[str, object]:
    rows = server.sql("SELECT transfer_syntax, blob_key FROM instance")
    assert len(rows) == 1
    return dict(rows[0])


def test_stow_of_pydicom_image_dfl_is_stored_and_round_trips(server: RunningArchive) -> None:
    path = _deflated_file()
    ds = pydicom.dcmread(path)
    raw = path.read_bytes()
    boundary = "dfl-boundary"
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + raw
            + f"\r\n--{boundary}--\r\n".encode())
    r = requests.post(f"{server.url}/studies", data=body, timeout=60, headers={
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        **auth_headers()})
    assert r.status_code == 200, r.text
    assert _stored_row(server)["transfer_syntax"] == DEFLATED
    assert _retrieve_as_stored(server, ds) == raw


def test_deflated_pixel_data_is_offered_and_served_as_bulk_data(server: RunningArchive) -> None:
    ds = pydicom.dcmread(_deflated_file())
    client = DICOMwebClient(server.url, headers=auth_headers())
    assert "FailedSOPSequence" not in client.store_instances([ds])
    assert _stored_row(server)["transfer_syntax"] == DEFLATED
    meta = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                             ds.SOPInstanceUID)
    uri = meta["7FE00010"]["BulkDataURI"]
    assert client.retrieve_bulkdata(uri)[0] == ds.PixelData


def test_storescu_xd_sends_deflated_and_it_is_stored(server: RunningArchive) -> None:
    path = _deflated_file()
    host, port, aet = server.dimse
    proc = subprocess.run([dcmtk("storescu"), "-xd", "-aec", aet, "-aet", "DCMTK", host, str(port),
                           str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = _stored_row(server)
    assert row["transfer_syntax"] == DEFLATED
    original = pydicom.dcmread(path)
    stored = server.core.blobs.path(str(row["blob_key"])).read_bytes()
    assert pydicom.dcmread(io.BytesIO(stored)).PixelData == original.PixelData
    assert _retrieve_as_stored(server, original) == stored


def test_archive_import_of_a_deflated_file(server: RunningArchive, tmp_path: Path) -> None:
    env = os.environ | {"ARCHIVE_DATABASE_URL": server.database_url,
                        "ARCHIVE_DATA_DIR": str(server.settings.data_dir)}
    proc = subprocess.run([sys.executable, "-m", "archive", "import", "--no-progress",
                           str(_deflated_file())], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stored 1" in proc.stdout
    assert _stored_row(server)["transfer_syntax"] == DEFLATED
    ds = pydicom.dcmread(_deflated_file())
    assert _retrieve_as_stored(server, ds) == _deflated_file().read_bytes()


def test_deflated_instance_retrieved_as_explicit_vr_by_dicomweb_client(
    server: RunningArchive,
) -> None:
    path = _deflated_file()
    ds = pydicom.dcmread(path)
    client = DICOMwebClient(server.url, headers=auth_headers())
    assert "FailedSOPSequence" not in client.store_instances([ds])
    got = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert got.PixelData == ds.PixelData
