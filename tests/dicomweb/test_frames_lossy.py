"""Frames of a lossy JPEG Baseline instance asked for as image/jpeg (issue 10.10a).

PS3.18 Table 8.7.3-5 makes 1.2.840.10008.1.2.4.70 (lossless) the default syntax of image/jpeg, but
§8.7.3 lets a server that holds only lossy pixel data return them as stored: a JPEG Baseline
(1.2.840.10008.1.2.4.50) instance answers image/jpeg with its own codestream, not 406.
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
import requests
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

from tests import factories as f
from tests.conftest import RunningArchive
from tests.dicomweb.test_wado import inst_url, parts, store

LOSSLESS_JPEG = "1.2.840.10008.1.2.4.70"


def jpeg_baseline(study: str) -> tuple[pydicom.Dataset, bytes]:
    """An 8-bit grey image encoded by libjpeg (Pillow) as JPEG Baseline, and its codestream
    as stored in the fragment (padded to even length, as DICOM requires)."""
    ds = f.image(study, rows=48, columns=64)
    yy, xx = np.mgrid[0:48, 0:64]
    pixels = ((xx * 3 + yy * 2) % 256).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="JPEG", quality=90)
    codestream = buf.getvalue() + b"\0" * (len(buf.getvalue()) % 2)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    del ds.RescaleIntercept, ds.RescaleSlope, ds.WindowCenter, ds.WindowWidth
    ds.PixelData = encapsulate([codestream])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    return ds, codestream


def test_image_jpeg_frame_of_jpeg_baseline_is_returned_as_stored(server: RunningArchive) -> None:
    ds, codestream = jpeg_baseline("lossy1")
    store(server, [ds])
    url = inst_url(server, ds) + "/frames/1"

    r = requests.get(url, headers={"Accept": 'multipart/related; type="image/jpeg"'}, timeout=30)
    assert r.status_code == 200, r.text
    assert f"transfer-syntax={JPEGBaseline8Bit}" in r.headers["Content-Type"]
    (ctype, data), = parts(r)
    assert ctype.startswith("image/jpeg;") and JPEGBaseline8Bit in ctype
    assert data == codestream

    single = requests.get(url, headers={"Accept": "image/jpeg"}, timeout=30)
    assert single.status_code == 200
    assert single.headers["Content-Type"] == f"image/jpeg; transfer-syntax={JPEGBaseline8Bit}"
    assert single.content == codestream


def test_lossless_jpeg_asked_of_a_lossy_instance_is_still_406(server: RunningArchive) -> None:
    """Lossless JPEG asked for by name cannot be made from lossy pixels: 406 with a reason."""
    ds, _ = jpeg_baseline("lossy2")
    store(server, [ds])
    r = requests.get(inst_url(server, ds) + "/frames/1", timeout=30, headers={
        "Accept": f'multipart/related; type="image/jpeg"; transfer-syntax={LOSSLESS_JPEG}'})
    assert r.status_code == 406
    assert JPEGBaseline8Bit in r.text


def test_octet_stream_of_jpeg_baseline_is_decoded(server: RunningArchive) -> None:
    ds, codestream = jpeg_baseline("lossy3")
    store(server, [ds])
    r = requests.get(inst_url(server, ds) + "/frames/1", timeout=30,
                     headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    assert r.status_code == 200
    (_, data), = parts(r)
    expected = np.asarray(Image.open(io.BytesIO(codestream)))
    got = np.frombuffer(data, np.uint8).reshape(48, 64)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 2  # decoders round alike
