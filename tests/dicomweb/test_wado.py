"""WADO-RS, WADO-URI and DELETE against the running archive, with dicomweb-client and HTTP."""

from __future__ import annotations

import io
import zipfile
from email.parser import BytesParser
from email.policy import HTTP

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from tests import factories as f
from tests.conftest import RunningArchive, auth_headers

OCTET_ANY = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


def store(server: RunningArchive, datasets: list[pydicom.Dataset], **headers: str) -> None:
    body = b""
    for ds in datasets:
        body += b"--B\r\nContent-Type: application/dicom\r\n\r\n" + f.to_bytes(ds) + b"\r\n"
    body += b"--B--\r\n"
    h = {"Content-Type": 'multipart/related; type="application/dicom"; boundary=B',
         "Accept": "application/dicom+json"} | auth_headers() | headers
    r = requests.post(server.url + "/studies", data=body, headers=h, timeout=120)
    assert r.status_code == 200, r.text


def parts(resp: requests.Response) -> list[tuple[str, bytes]]:
    """(Content-Type, body) of each part of a multipart/related response."""
    head = f"Content-Type: {resp.headers['Content-Type']}\r\n\r\n".encode()
    msg = BytesParser(policy=HTTP).parsebytes(head + resp.content)
    return [(p["Content-Type"], p.get_payload(decode=True)) for p in msg.iter_parts()]


def inst_url(server: RunningArchive, ds: pydicom.Dataset) -> str:
    return (f"{server.url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}")


@pytest.fixture
def ct(server: RunningArchive) -> list[pydicom.Dataset]:
    datasets = [*f.series_of(4, "wado1"), f.image("wado1", "se2", 1, modality="MR")]
    store(server, datasets)
    return datasets


def test_dicomweb_client_retrieves_study_series_instance(
    server: RunningArchive, ct: list[pydicom.Dataset]
) -> None:
    client = DICOMwebClient(server.url, headers=auth_headers())
    study = ct[0].StudyInstanceUID
    got = client.retrieve_study(study)
    assert sorted(d.SOPInstanceUID for d in got) == sorted(d.SOPInstanceUID for d in ct)
    series = client.retrieve_series(study, ct[0].SeriesInstanceUID)
    assert [d.InstanceNumber for d in series] == [1, 2, 3, 4]
    one = client.retrieve_instance(study, ct[1].SeriesInstanceUID, ct[1].SOPInstanceUID)
    assert np.array_equal(one.pixel_array, ct[1].pixel_array)
    any_ts = client.retrieve_study(study, media_types=(("application/dicom", "*"),))
    assert len(any_ts) == 5


def test_retrieve_as_stored_is_byte_identical_and_sized(
    server: RunningArchive, ct: list[pydicom.Dataset]
) -> None:
    url = f"{server.url}/studies/{ct[0].StudyInstanceUID}"
    r = requests.get(url, headers={"Accept": 'multipart/related; type="application/dicom"; '
                                             "transfer-syntax=*"}, timeout=30)
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == len(r.content)
    bodies = {pydicom.dcmread(io.BytesIO(b)).SOPInstanceUID: b for _, b in parts(r)}
    for ds in ct:
        assert bodies[ds.SOPInstanceUID] == f.to_bytes(ds)


def test_dicomweb_client_metadata_served_with_bulkdata_uri(
    server: RunningArchive, ct: list[pydicom.Dataset]
) -> None:
    client = DICOMwebClient(server.url, headers=auth_headers())
    study, series = ct[0].StudyInstanceUID, ct[0].SeriesInstanceUID
    meta = client.retrieve_series_metadata(study, series)
    assert [m["00200013"]["Value"][0] for m in meta] == [1, 2, 3, 4]
    # dicomweb-client rewrites BulkDataURIs (drops the port), so read ours directly
    raw = requests.get(f"{server.url}/studies/{study}/series/{series}/metadata", timeout=30).json()
    pixel = raw[0]["7FE00010"]
    assert pixel["vr"] == "OW" and meta[0]["7FE00010"]["vr"] == "OW"
    data = requests.get(pixel["BulkDataURI"], timeout=30)
    assert data.status_code == 200
    assert parts(data)[0][1] == ct[0].PixelData
    assert len(client.retrieve_study_metadata(study)) == 5
    inst = client.retrieve_instance_metadata(study, series, ct[2].SOPInstanceUID)
    assert inst["00080018"]["Value"] == [ct[2].SOPInstanceUID]
    assert inst["00280030"]["Value"] == [0.5, 0.5]
    assert inst["00083002"]["Value"] == [ExplicitVRLittleEndian]  # Available Transfer Syntax


def test_metadata_does_not_open_files(server: RunningArchive, ct: list[pydicom.Dataset]) -> None:
    for p in (server.settings.storage_dir / "blobs").glob("*/*/*"):
        p.chmod(0)  # root ignores modes, so also move them away
        p.rename(p.with_suffix(".away"))
    url = f"{server.url}/studies/{ct[0].StudyInstanceUID}/metadata"
    r = requests.get(url, timeout=30)
    assert r.status_code == 200 and len(r.json()) == 5


def test_conditional_get_on_metadata(server: RunningArchive, ct: list[pydicom.Dataset]) -> None:
    url = f"{server.url}/studies/{ct[0].StudyInstanceUID}/series/{ct[0].SeriesInstanceUID}/metadata"
    first = requests.get(url, timeout=30)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert requests.get(url, headers={"If-None-Match": etag}, timeout=30).status_code == 304
    assert requests.get(url, headers={"If-Modified-Since": modified}, timeout=30).status_code == 304
    assert requests.get(url, headers={"If-None-Match": '"other"'}, timeout=30).status_code == 200
    store(server, [f.image("wado1", "se1", 9)])
    again = requests.get(url, headers={"If-None-Match": etag}, timeout=30)
    assert again.status_code == 200 and again.headers["ETag"] != etag
    assert len(again.json()) == 5


def test_metadata_as_xml(server: RunningArchive, ct: list[pydicom.Dataset]) -> None:
    url = f"{server.url}/studies/{ct[0].StudyInstanceUID}/metadata"
    r = requests.get(url, headers={"Accept": 'multipart/related; type="application/dicom+xml"'},
                     timeout=30)
    assert r.status_code == 200
    docs = parts(r)
    assert len(docs) == 5 and b"NativeDicomModel" in docs[0][1] and b"BulkData" in docs[0][1]


def test_sequestered_study_is_404_not_403(server: RunningArchive) -> None:
    ds = f.image("secret")
    store(server, [ds], **{"X-Archive-Collection": "sequestered"})
    for suffix in ("", "/metadata", "/rendered"):
        r = requests.get(f"{server.url}/studies/{ds.StudyInstanceUID}{suffix}", timeout=30)
        assert r.status_code == 404, suffix
    assert requests.get(inst_url(server, ds) + "/frames/1", timeout=30).status_code == 404


@pytest.mark.parametrize("ts", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_lossless_transcoding_round_trip(server: RunningArchive, ts: str) -> None:
    ds = f.image("tc", rows=32, columns=48, frames=2, transfer_syntax=ts)
    plain = f.image("tc", rows=32, columns=48, frames=2)
    store(server, [ds])
    client = DICOMwebClient(server.url, headers=auth_headers())
    got = client.retrieve_instance(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                                   media_types=(("application/dicom", ExplicitVRLittleEndian),))
    assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(got.pixel_array, plain.pixel_array)
    # no transfer-syntax parameter: the standard's default, Explicit VR Little Endian
    (_ctype, body), = parts(requests.get(inst_url(server, ds), timeout=30))
    got = pydicom.dcmread(io.BytesIO(body))
    assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(got.pixel_array, plain.pixel_array)
    # and back: uncompressed stored → each lossless syntax
    store(server, [f.image("tc2", rows=32, columns=48)])
    src = f.image("tc2", rows=32, columns=48)
    again = client.retrieve_instance(src.StudyInstanceUID, src.SeriesInstanceUID,
                                     src.SOPInstanceUID, media_types=(("application/dicom", ts),))
    assert again.file_meta.TransferSyntaxUID == ts
    assert np.array_equal(again.pixel_array, src.pixel_array)


def test_unproducible_syntax_is_406(server: RunningArchive, ct: list[pydicom.Dataset]) -> None:
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'
    r = requests.get(f"{server.url}/studies/{ct[0].StudyInstanceUID}", headers={"Accept": accept},
                     timeout=30)
    assert r.status_code == 406
    r = requests.get(f"{server.url}/studies/{ct[0].StudyInstanceUID}",
                     headers={"Accept": "application/pdf"}, timeout=30)
    assert r.status_code == 406


def test_single_part_and_zip(server: RunningArchive, ct: list[pydicom.Dataset]) -> None:
    r = requests.get(inst_url(server, ct[0]), headers={"Accept": "application/dicom"}, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/dicom")
    assert pydicom.dcmread(io.BytesIO(r.content)).SOPInstanceUID == ct[0].SOPInstanceUID
    z = requests.get(f"{server.url}/studies/{ct[0].StudyInstanceUID}",
                     headers={"Accept": "application/zip"}, timeout=30)
    assert z.status_code == 200
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        names = zf.namelist()
        assert len(names) == 5
        assert pydicom.dcmread(io.BytesIO(zf.read(names[0]))).StudyInstanceUID == \
            ct[0].StudyInstanceUID


def test_implicit_stored_is_returned_explicit_by_default(server: RunningArchive) -> None:
    ds = f.image("impl", transfer_syntax=ImplicitVRLittleEndian)
    store(server, [ds])
    r = requests.get(inst_url(server, ds), timeout=30)
    (ctype, body), = parts(r)
    assert ExplicitVRLittleEndian in ctype
    got = pydicom.dcmread(io.BytesIO(body))
    assert got.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert np.array_equal(got.pixel_array, ds.pixel_array)


def test_frames_of_a_500_frame_instance(server: RunningArchive) -> None:
    ds = f.image("mf", rows=32, columns=32, frames=500)
    store(server, [ds])
    client = DICOMwebClient(server.url, headers=auth_headers())
    frames = client.retrieve_instance_frames(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                             ds.SOPInstanceUID, frame_numbers=[1, 250, 500])
    size = 32 * 32 * 2
    base = inst_url(server, ds)
    whole = requests.get(base + "/bulkdata/7FE00010", timeout=30)
    assert [b for _, b in parts(whole)] == [ds.PixelData]  # one part: the whole value
    for data, n in zip(frames, [1, 250, 500], strict=True):
        assert data == ds.PixelData[size * (n - 1): size * n]
    r = requests.get(inst_url(server, ds) + "/frames/250", headers={"Accept": OCTET_ANY},
                     timeout=30)
    assert "transfer-syntax=1.2.840.10008.1.2.1" in r.headers["Content-Type"]
    assert parts(r)[0][1] == ds.PixelData[size * 249: size * 250]
    assert requests.get(inst_url(server, ds) + "/frames/501", timeout=30).status_code == 404
    assert requests.get(inst_url(server, ds) + "/frames/0", timeout=30).status_code == 400
    assert requests.get(inst_url(server, ds) + "/frames/1,x", timeout=30).status_code == 400


@pytest.mark.parametrize(("ts", "media"), [(JPEGLSLossless, "image/jls"),
                                           (RLELossless, "image/dicom-rle")])
def test_compressed_frames_as_stored_and_decoded(server: RunningArchive, ts: str,
                                                 media: str) -> None:
    ds = f.image("cf", rows=40, columns=40, frames=3, transfer_syntax=ts)
    plain = f.image("cf", rows=40, columns=40, frames=3)
    store(server, [ds])
    url = inst_url(server, ds) + "/frames/2"
    # OHIF's Accept, unquoted
    r = requests.get(url, headers={"Accept": "multipart/related; type=application/octet-stream; "
                                             "transfer-syntax=*"}, timeout=30)
    assert r.status_code == 200
    assert f"transfer-syntax={ts}" in r.headers["Content-Type"]
    (ctype, data), = parts(r)
    assert ctype.startswith(media)
    from pydicom.encaps import generate_frames
    assert data == list(generate_frames(ds.PixelData, number_of_frames=3))[1]
    decoded = DICOMwebClient(server.url).retrieve_instance_frames(
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, frame_numbers=[2])
    assert decoded[0] == plain.PixelData[40 * 40 * 2: 40 * 40 * 4]


def test_rendered_and_thumbnails(server: RunningArchive, ct: list[pydicom.Dataset]) -> None:
    client = DICOMwebClient(server.url, headers=auth_headers())
    ds = ct[0]
    jpeg = client.retrieve_instance_rendered(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                             ds.SOPInstanceUID)
    img = Image.open(io.BytesIO(jpeg))
    assert img.format == "JPEG" and img.size == (64, 64)
    base = inst_url(server, ds)
    r = requests.get(base + "/rendered?viewport=32,16&window=100,200,linear",
                     headers={"Accept": "image/png"}, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (16, 16)
    series = f"{server.url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    for url in (series + "/rendered?viewport=256,256", series + "/thumbnail?viewport=256,256",
                base + "/thumbnail?viewport=256,256", base + "/frames/1/rendered",
                f"{server.url}/studies/{ds.StudyInstanceUID}/thumbnail"):
        r = requests.get(url, headers={"Accept": "image/jpeg"}, timeout=30)
        assert r.status_code == 200, url
        assert Image.open(io.BytesIO(r.content)).format == "JPEG"
    assert requests.get(base + "/rendered?viewport=0,0", timeout=30).status_code == 400
    assert requests.get(base + "/rendered?window=1", timeout=30).status_code == 400


def test_rendering_applies_window(server: RunningArchive) -> None:
    ds = f.image("win", rows=16, columns=16)
    store(server, [ds])
    url = inst_url(server, ds) + "/rendered"
    narrow = requests.get(url + "?window=-1000,2", headers={"Accept": "image/png"}, timeout=30)
    pixels = np.asarray(Image.open(io.BytesIO(narrow.content)))
    hu = ds.pixel_array.astype(float) - 1024  # RescaleIntercept -1024
    assert (pixels[hu >= -999] == 255).all() and (pixels[hu <= -1002] == 0).all()
    assert pixels[0, 0] == 0


def test_wado_uri(server: RunningArchive, ct: list[pydicom.Dataset]) -> None:
    ds = ct[0]
    q = (f"requestType=WADO&studyUID={ds.StudyInstanceUID}&seriesUID={ds.SeriesInstanceUID}"
         f"&objectUID={ds.SOPInstanceUID}")
    for base in (server.url + "/wado", server.base + "/wado"):
        r = requests.get(f"{base}?{q}&contentType=application/dicom", timeout=30)
        assert r.status_code == 200
        assert pydicom.dcmread(io.BytesIO(r.content)).SOPInstanceUID == ds.SOPInstanceUID
        j = requests.get(f"{base}?{q}", timeout=30)
        assert j.headers["Content-Type"] == "image/jpeg"
        assert Image.open(io.BytesIO(j.content)).size == (64, 64)
    r = requests.get(f"{server.base}/wado?{q}&rows=32&windowCenter=40&windowWidth=400", timeout=30)
    assert Image.open(io.BytesIO(r.content)).size == (32, 32)
    assert requests.get(f"{server.base}/wado?studyUID=1.2", timeout=30).status_code == 400


def test_delete_instance_series_study(server: RunningArchive, ct: list[pydicom.Dataset]) -> None:
    study = ct[0].StudyInstanceUID
    blobs = lambda: sorted((server.settings.storage_dir / "blobs").glob("*/*/*"))  # noqa: E731
    assert len(blobs()) == 5
    r = requests.delete(inst_url(server, ct[0]), timeout=30, headers=auth_headers())
    assert r.status_code == 200 and r.json()["deletedInstances"] == 1
    assert len(blobs()) == 4
    row = server.sql("SELECT num_instances, num_series FROM study WHERE study_uid=$1", study)[0]
    assert (row["num_instances"], row["num_series"]) == (4, 2)
    assert requests.get(inst_url(server, ct[0]), timeout=30).status_code == 404
    mr_series = f"{server.url}/studies/{study}/series/{ct[4].SeriesInstanceUID}"
    r = requests.delete(mr_series, timeout=30, headers=auth_headers())
    assert r.json() == {"deletedInstances": 1, "deletedSeries": 1, "deletedStudies": 0}
    row = server.sql("SELECT num_instances, num_series, modalities FROM study")[0]
    assert (row["num_instances"], row["num_series"], row["modalities"]) == (3, 1, ["CT"])
    r = requests.delete(f"{server.url}/studies/{study}", timeout=30, headers=auth_headers())
    assert r.json()["deletedStudies"] == 1
    assert blobs() == [] and server.sql("SELECT count(*) AS n FROM instance")[0]["n"] == 0
    gone = requests.delete(f"{server.url}/studies/{study}", timeout=30, headers=auth_headers())
    assert gone.status_code == 404


def test_bad_uid_is_400_unknown_is_404(server: RunningArchive) -> None:
    assert requests.get(f"{server.url}/studies/abc", timeout=30).status_code == 400
    assert requests.get(f"{server.url}/studies/1.2.3/metadata", timeout=30).status_code == 404


def _stow_stream(server: RunningArchive, datasets: object) -> None:
    def body():  # type: ignore[no-untyped-def]
        for ds in datasets:  # type: ignore[attr-defined]
            yield b"--B\r\nContent-Type: application/dicom\r\n\r\n" + f.to_bytes(ds) + b"\r\n"
        yield b"--B--\r\n"

    r = requests.post(server.url + "/studies", data=body(), timeout=300, headers={
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=B',
        **auth_headers()})
    assert r.status_code == 200, r.text


def test_memory_stays_bounded_while_streaming_a_large_study(server: RunningArchive) -> None:
    """~170 MB study streamed to a client that discards it: server RSS must not follow it.

    (The 1 GB figure is measured by bench/retrieve.py; this keeps the suite quick.)"""
    import threading

    import psutil

    n, rows, cols = 16, 2048, 2560
    _stow_stream(server, (f.image("huge", number=i + 1, rows=rows, columns=cols)
                          for i in range(n)))
    proc = psutil.Process()
    baseline = proc.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            done.wait(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    total = 0
    with requests.get(f"{server.url}/studies/{f.image('huge').StudyInstanceUID}", stream=True,
                      headers={"Accept": 'multipart/related; type="application/dicom"; '
                                         "transfer-syntax=*"}, timeout=300) as r:
        for chunk in r.iter_content(1 << 20):
            total += len(chunk)
    done.set()
    sampler.join()
    assert total > n * rows * cols * 2
    assert peak - baseline < 48 * 1024**2, f"RSS grew {(peak - baseline) / 1e6:.0f} MB"


def test_large_metadata_is_streamed_row_by_row(server: RunningArchive, ct: list[pydicom.Dataset],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from dicomweb import wado

    url = f"{server.url}/studies/{ct[0].StudyInstanceUID}/metadata"
    whole = requests.get(url, timeout=30)
    monkeypatch.setattr(wado, "STRING_AGG_LIMIT", 2)  # the study has 5 instances
    streamed = requests.get(url, timeout=30)
    assert streamed.headers.get("Transfer-Encoding") == "chunked"
    assert streamed.json() == whole.json()


def test_accept_query_parameter_overrides_header(server: RunningArchive,
                                                 ct: list[pydicom.Dataset]) -> None:
    """OHIF's default thumbnail strategy: `?accept=image/jpeg` with a multipart Accept header."""
    series = f"{server.url}/studies/{ct[0].StudyInstanceUID}/series/{ct[0].SeriesInstanceUID}"
    r = requests.get(series + "/thumbnail?accept=image/jpeg", headers={"Accept": OCTET_ANY},
                     timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"
    assert requests.get(series + "/thumbnail", headers={"Accept": OCTET_ANY},
                        timeout=30).status_code == 406


def test_client_leaving_mid_stream_does_not_hurt_the_server(server: RunningArchive) -> None:
    import socket

    datasets = [f.image("gone", number=i + 1, rows=1024, columns=1024) for i in range(4)]
    _stow_stream(server, datasets)
    path = f"/dicom-web/studies/{datasets[0].StudyInstanceUID}"
    with socket.create_connection(("127.0.0.1", server.settings.http_port)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: multipart/related; "
                  f"type=\"application/dicom\"; transfer-syntax=*\r\n\r\n".encode())
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
    r = requests.get(f"{server.url}{path[len('/dicom-web'):]}", timeout=60)
    assert r.status_code == 200 and len(parts(r)) == 4


DEFAULT_ACCEPT = 'multipart/related; type="application/dicom"'


def _corrupt(ds: pydicom.Dataset) -> pydicom.Dataset:
    """`ds` (JPEG-LS) with a codestream that starts right but cannot be decoded."""
    from pydicom.encaps import encapsulate

    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7\x00\x0b" + bytes(range(256)) * 8])
    return ds


def test_mixed_compressed_study_with_default_accept_is_transcoded(server: RunningArchive) -> None:
    """Regression: a study mixing uncompressed, JPEG-LS and RLE instances, retrieved with the
    default Accept (Explicit VR LE, PS3.18 §8.7.3.5.2), used to hang: stored files were sent
    with sendfile() inside the chunked body. All parts must arrive decoded, and the event loop
    must keep answering other requests while the instances are transcoded."""
    import threading
    import time

    datasets = (
        [f.image("mix", "plain", i + 1, rows=512, columns=512, seed=i) for i in range(3)]
        + [f.image("mix", "jls", i + 1, rows=512, columns=512, seed=10 + i,
                   transfer_syntax=JPEGLSLossless) for i in range(8)]
        + [f.image("mix", "rle", i + 1, rows=256, columns=256, seed=20 + i,
                   transfer_syntax=RLELossless) for i in range(4)]
    )
    store(server, datasets)
    expected = {ds.SOPInstanceUID: ds.pixel_array for ds in datasets}
    url = f"{server.url}/studies/{datasets[0].StudyInstanceUID}"
    result: dict[str, object] = {}

    def retrieve() -> None:
        try:
            result["response"] = requests.get(url, headers={"Accept": DEFAULT_ACCEPT},
                                              timeout=120)
        except requests.RequestException as exc:
            result["error"] = exc
        result["end"] = time.monotonic()

    worker = threading.Thread(target=retrieve)
    worker.start()
    answered: list[tuple[float, float]] = []  # (latency, when) of QIDO requests meanwhile
    while worker.is_alive() or not answered:
        start = time.monotonic()
        assert requests.get(f"{server.url}/studies", timeout=30).status_code == 200
        answered.append((time.monotonic() - start, time.monotonic()))
    worker.join()
    assert "error" not in result, result.get("error")
    r = result["response"]
    assert isinstance(r, requests.Response) and r.status_code == 200
    got = parts(r)
    assert len(got) == len(datasets)
    for ctype, body in got:
        assert ctype.startswith("application/dicom;") and ExplicitVRLittleEndian in ctype
        ds = pydicom.dcmread(io.BytesIO(body))
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert np.array_equal(ds.pixel_array, expected.pop(ds.SOPInstanceUID))
    assert not expected
    assert answered[0][1] < result["end"], "no other request was answered during the retrieve"  # type: ignore[operator]
    assert max(latency for latency, _ in answered) < 10, answered


def test_instance_that_cannot_be_decoded_ends_the_retrieve_cleanly(
    server: RunningArchive,
) -> None:
    """A codec failure is a 406 with the reason when it is the first conversion; later in the
    stream the connection is closed (the client sees an incomplete body), never a hang."""
    bad = _corrupt(f.image("bad1", transfer_syntax=JPEGLSLossless))
    store(server, [bad])
    r = requests.get(f"{server.url}/studies/{bad.StudyInstanceUID}",
                     headers={"Accept": DEFAULT_ACCEPT}, timeout=60)
    assert r.status_code == 406 and bad.SOPInstanceUID in r.text
    as_stored = requests.get(f"{server.url}/studies/{bad.StudyInstanceUID}", timeout=60,
                             headers={"Accept": DEFAULT_ACCEPT + "; transfer-syntax=*"})
    assert as_stored.status_code == 200 and len(parts(as_stored)) == 1

    later = [f.image("bad2", number=1, transfer_syntax=JPEGLSLossless),
             f.image("bad2", number=2),
             *(f.image("bad2", number=n, transfer_syntax=RLELossless) for n in (3, 4, 5)),
             _corrupt(f.image("bad2", number=6, transfer_syntax=JPEGLSLossless))]
    store(server, later)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{server.url}/studies/{later[0].StudyInstanceUID}",
                     headers={"Accept": DEFAULT_ACCEPT}, timeout=60).raise_for_status()
    good = requests.get(f"{server.url}/studies/{later[0].StudyInstanceUID}/series/"
                        f"{later[0].SeriesInstanceUID}/instances/{later[0].SOPInstanceUID}",
                        headers={"Accept": DEFAULT_ACCEPT}, timeout=60)
    assert good.status_code == 200 and len(parts(good)) == 1


@pytest.mark.parametrize("accept", ['multipart/related; type="application/dicom"; '
                                    "transfer-syntax=*", "application/zip"])
def test_a_truncated_stored_file_ends_the_retrieve_at_once(
    server: RunningArchive, accept: str
) -> None:
    """A blob shorter than the index says (a truncated file) cannot fill the body the 200
    announced: the connection is closed short of its end and the client sees the error at
    once. (Before, sendfile sent what there was, the response ended as if complete on a
    kept-alive connection, and the client waited for the rest until its own timeout.)"""
    import os
    import time

    ds = f.image("truncated", rows=64, columns=64)
    store(server, [ds])
    [blob] = [p for p in (server.settings.storage_dir / "blobs").rglob("*") if p.is_file()]
    os.truncate(blob, blob.stat().st_size // 2)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(inst_url(server, ds), headers={"Accept": accept} | auth_headers(),
                     timeout=30)
    assert time.monotonic() - started < 10
