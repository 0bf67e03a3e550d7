"""STOW-RS through dicomweb-client and raw HTTP: success, failures, bad bodies."""

from __future__ import annotations

import hashlib

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import JPEGLSLossless, RLELossless

from tests import factories as f
from tests.conftest import RunningArchive, auth_headers


def multipart(parts: list[bytes], boundary: str = "XbOuNdArYx", ctype: str = "application/dicom") -> bytes:
    out = b""
    for p in parts:
        out += f"--{boundary}\r\nContent-Type: {ctype}\r\n\r\n".encode() + p + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def post(server: RunningArchive, body: bytes, path: str = "/studies", **headers: str) -> requests.Response:
    h = {"Content-Type": 'multipart/related; type="application/dicom"; boundary=XbOuNdArYx',
         "Accept": "application/dicom+json"} | auth_headers() | headers
    return requests.post(server.url + path, data=body, headers=h, timeout=60)


def stored_files(server: RunningArchive) -> list[str]:
    return sorted(p.name for p in (server.settings.storage_dir / "blobs").glob("*/*/*"))


def test_store_instances_with_dicomweb_client_indexes_everything(server: RunningArchive) -> None:
    client = DICOMwebClient(server.url, headers=auth_headers())
    datasets = [*f.series_of(3, "stow1"), f.image("stow1", "se2", 1, modality="MR")]
    result = client.store_instances(datasets)
    refs = result.ReferencedSOPSequence
    assert {r.ReferencedSOPInstanceUID for r in refs} == {d.SOPInstanceUID for d in datasets}
    assert all(r.RetrieveURL.endswith(r.ReferencedSOPInstanceUID) for r in refs)
    assert "FailedSOPSequence" not in result
    row = server.sql("SELECT num_series, num_instances, modalities FROM study WHERE study_uid=$1",
                     datasets[0].StudyInstanceUID)[0]
    assert (row["num_series"], row["num_instances"], row["modalities"]) == (2, 4, ["CT", "MR"])


def test_stored_file_is_byte_identical_to_the_part(server: RunningArchive) -> None:
    data = f.to_bytes(f.image("bytes1"))
    assert post(server, multipart([data])).status_code == 200
    key = server.sql("SELECT blob_key FROM instance")[0]["blob_key"]
    assert hashlib.sha256(server.core.blobs.path(key).read_bytes()).hexdigest() == \
        hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("ts", [RLELossless, JPEGLSLossless])
def test_compressed_instances_are_stored_as_received(server: RunningArchive, ts: str) -> None:
    data = f.to_bytes(f.image("comp", transfer_syntax=ts))
    assert post(server, multipart([data])).status_code == 200
    row = server.sql("SELECT transfer_syntax, pixels FROM instance")[0]
    assert row["transfer_syntax"] == ts


def test_part_whose_study_differs_from_url_fails_and_others_are_stored(server: RunningArchive) -> None:
    good = f.image("url1")
    other = f.image("url2")
    r = post(server, multipart([f.to_bytes(good), f.to_bytes(other)]),
             path=f"/studies/{good.StudyInstanceUID}")
    assert r.status_code == 202
    body = r.json()
    failed = body["00081198"]["Value"]
    assert failed[0]["00081155"]["Value"] == [other.SOPInstanceUID]
    assert failed[0]["00081197"]["Value"] == [0xC409]
    assert len(body["00081199"]["Value"]) == 1


def test_all_parts_failing_gives_409_with_reasons(server: RunningArchive) -> None:
    r = post(server, multipart([b"not dicom at all" * 10, f.to_bytes(f.image("t"))[:400]]))
    assert r.status_code == 409
    failed = r.json()["00081198"]["Value"]
    assert len(failed) == 2
    assert all(item["00081197"]["Value"] == [0xC000] for item in failed)
    assert "DICOM" in failed[0]["00000902"]["Value"][0]
    assert stored_files(server) == []
    assert list(server.core.blobs.spool_dir().iterdir()) == []


def test_truncated_pixel_data_is_rejected(server: RunningArchive) -> None:
    data = f.to_bytes(f.image("trunc", rows=128, columns=128))
    r = post(server, multipart([data[:-5000]]))
    assert r.status_code == 409
    assert "truncated" in r.json()["00081198"]["Value"][0]["00000902"]["Value"][0]


@pytest.mark.parametrize(
    ("field", "value"),
    [("SOPInstanceUID", "1.2.abc"), ("StudyInstanceUID", "1.2.03.4"), ("SeriesInstanceUID", "9" * 70)],
)
def test_invalid_uids_are_rejected(server: RunningArchive, field: str, value: str) -> None:
    ds = f.image("baduid")
    setattr(ds, field, value)
    if field == "SOPInstanceUID":
        ds.file_meta.MediaStorageSOPInstanceUID = value
    r = post(server, multipart([f.to_bytes(ds)]))
    assert r.status_code == 409
    assert field in r.json()["00081198"]["Value"][0]["00000902"]["Value"][0]


def test_missing_uid_is_rejected(server: RunningArchive) -> None:
    ds = f.image("nouid")
    del ds.SeriesInstanceUID
    r = post(server, multipart([f.to_bytes(ds)]))
    assert r.status_code == 409


def test_wrong_media_type_is_415(server: RunningArchive) -> None:
    r = requests.post(server.url + "/studies", data=b"x",
                      headers={"Content-Type": "application/json", **auth_headers()},
                      timeout=10)
    assert r.status_code == 415
    r = post(server, b"x", **{"Content-Type": 'multipart/related; type="application/pdf"; boundary=a'})
    assert r.status_code == 415


@pytest.mark.parametrize(
    "body",
    [b"garbage without boundary", b"--XbOuNdArYx\r\nContent-Type: application/dicom\r\n\r\nabc",
     b"--XbOuNdArYx--\r\n", b""],
)
def test_malformed_multipart_is_4xx_and_server_keeps_serving(server: RunningArchive, body: bytes) -> None:
    r = post(server, body)
    assert 400 <= r.status_code < 500, r.text
    assert stored_files(server) == []
    assert post(server, multipart([f.to_bytes(f.image("after"))])).status_code == 200


def test_oversized_request_is_413(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(max_request_bytes=20_000)
    r = post(server, multipart([f.to_bytes(f.image("big", rows=128, columns=128))]))
    assert r.status_code == 413
    assert stored_files(server) == []
    assert list(server.core.blobs.spool_dir().iterdir()) == []


def test_xml_response_when_asked(server: RunningArchive) -> None:
    from lxml import etree

    r = post(server, multipart([f.to_bytes(f.image("xml"))]), Accept="application/dicom+xml")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/dicom+xml")
    doc = etree.fromstring(r.content)
    ns = {"n": "http://dicom.nema.org/PS3.19/models/NativeDICOM"}
    assert doc.xpath("//n:DicomAttribute[@keyword='ReferencedSOPSequence']", namespaces=ns)


def test_unexpected_error_is_a_processing_failure_not_out_of_resources(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug while storing a part is reported as 0x0110 with its traceback logged, never as
    0xA700 (out of resources), which tells a client to retry."""
    from dicomweb.stow import _as_failure

    try:
        raise RuntimeError("a bug")
    except RuntimeError as exc:
        with caplog.at_level("ERROR", logger="dicomweb.stow"):
            err, _uids = _as_failure(exc)
    assert int(err.failure_reason) == 0x0110
    assert any(r.exc_info and "a bug" in str(r.exc_info[1]) for r in caplog.records)
