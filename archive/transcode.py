"""Transfer syntax conversion of whole instances and single frames.

Codec choice (see README, "Retrieve"): pydicom 3's pixel pipeline with the pylibjpeg plugins
(pylibjpeg-libjpeg: JPEG baseline/extended/lossless decode; pylibjpeg-openjpeg: JPEG 2000 and
HTJ2K decode, JPEG 2000 encode; pylibjpeg-rle: fast RLE) and pyjpegls (CharLS: JPEG-LS both
ways). They are pip wheels with no system libraries, maintained with pydicom, and cover every
compressed syntax we accept for decoding. python-gdcm would add little (JPEG lossless encoding)
for a large binary dependency with a different data model, so it is not used.

Lossy targets are never produced from other syntaxes (re-encoding lossily without being asked
by name would silently degrade data); a lossy syntax is only returned when it is the stored one.
"""

from __future__ import annotations

import asyncio
import io
import logging
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID

from archive.errors import NotAcceptable
from archive.frames import read_frame
from archive.retrieve import Located
from archive.transfer_syntax import (
    DEFLATED_EXPLICIT_VR_LE,
    EXPLICIT_VR_BE,
    EXPLICIT_VR_LE,
    HTJ2K,
    HTJ2K_LOSSLESS,
    HTJ2K_LOSSLESS_RPCL,
    IMPLICIT_VR_LE,
    JPEG_2000,
    JPEG_2000_LOSSLESS,
    JPEG_BASELINE,
    JPEG_EXTENDED,
    JPEG_LOSSLESS,
    JPEG_LOSSLESS_SV1,
    JPEG_LS_LOSSLESS,
    JPEG_LS_NEAR_LOSSLESS,
    KNOWN_TRANSFER_SYNTAXES,
    MPEG2_MPML,
    MPEG4_AVC,
    RLE_LOSSLESS,
)
from archive.workers import WorkerPool

# Syntaxes we can write from any decodable instance.
NATIVE_TARGETS = (EXPLICIT_VR_LE, IMPLICIT_VR_LE, DEFLATED_EXPLICIT_VR_LE)
ENCODE_TARGETS = (RLE_LOSSLESS, JPEG_LS_LOSSLESS, JPEG_2000_LOSSLESS)
# Every syntax we accept, except video (its frames are not images pydicom can decode).
DECODABLE = KNOWN_TRANSFER_SYNTAXES - {MPEG2_MPML, MPEG4_AVC}

# PS3.18 Table 8.7.3-5: media type of a compressed frame / bulk data in a given syntax.
FRAME_MEDIA = {
    JPEG_BASELINE: "image/jpeg",
    JPEG_EXTENDED: "image/jpeg",
    JPEG_LOSSLESS: "image/jpeg",
    JPEG_LOSSLESS_SV1: "image/jpeg",
    JPEG_LS_LOSSLESS: "image/jls",
    JPEG_LS_NEAR_LOSSLESS: "image/jls",
    JPEG_2000_LOSSLESS: "image/jp2",
    JPEG_2000: "image/jp2",
    HTJ2K_LOSSLESS: "image/jphc",
    HTJ2K_LOSSLESS_RPCL: "image/jphc",
    HTJ2K: "image/jphc",
    RLE_LOSSLESS: "image/dicom-rle",
    MPEG2_MPML: "video/mpeg",
    MPEG4_AVC: "video/mp4",
}
# Default syntax of each frame media type when the Accept names none (PS3.18 Table 8.7.3-5).
MEDIA_DEFAULT_TS = {
    "application/octet-stream": EXPLICIT_VR_LE,
    "image/jpeg": JPEG_LOSSLESS_SV1,
    "image/jls": JPEG_LS_LOSSLESS,
    "image/jp2": JPEG_2000_LOSSLESS,
    "image/jphc": HTJ2K_LOSSLESS,
    "image/dicom-rle": RLE_LOSSLESS,
}


# Fastest installed decoder per syntax (CharLS decodes JPEG-LS ~4x faster than libjpeg's).
PREFERRED_DECODER = {JPEG_LS_LOSSLESS: "pyjpegls", JPEG_LS_NEAR_LOSSLESS: "pyjpegls",
                     RLE_LOSSLESS: "pylibjpeg"}


def decoder_for(ts: str) -> str:
    """pydicom decoding plugin to use ("" lets pydicom choose among the available ones)."""
    from pydicom.pixels import get_decoder

    plugin = PREFERRED_DECODER.get(ts, "")
    if plugin and plugin not in get_decoder(UID(ts)).available_plugins:
        return ""
    return plugin


def can_convert(source: str, target: str) -> bool:
    if source == target:
        return True
    return source in DECODABLE and target in NATIVE_TARGETS + ENCODE_TARGETS


def require_convertible(source: str, target: str) -> None:
    if not can_convert(source, target):
        raise NotAcceptable(f"cannot convert instances stored as {source} to {target}")


log = logging.getLogger("archive.transcode")


def warm() -> None:
    """Load the codecs in a fresh transcode worker (so the first retrieve does not)."""
    for ts in (JPEG_LS_LOSSLESS, RLE_LOSSLESS, JPEG_2000_LOSSLESS, JPEG_LOSSLESS_SV1):
        decoder_for(ts)


async def transcode(workers: WorkerPool | None, loc: Located, target: str) -> bytes:
    """transcode_file() off the event loop, in a worker process of `workers` (a thread if
    there are none).

    If the pool breaks (a worker was killed, or a codec crashed on some data) the job is
    tried once more in a fresh pool, never in this process: a codec that crashes on this
    instance would take the whole archive down with it. A second break is a NotAcceptable."""
    loop = asyncio.get_running_loop()
    for attempt in (1, 2):
        pool = workers.get() if workers is not None else None
        if workers is None or pool is None:
            break
        try:
            return await loop.run_in_executor(pool, transcode_file, loc, target)
        except BrokenProcessPool as exc:
            workers.broken(pool)
            log.warning("transcode worker died converting %s (attempt %d)", loc.sop_uid, attempt)
            if attempt == 2:
                raise NotAcceptable(
                    f"instance {loc.sop_uid} stored as {loc.transfer_syntax} could not be"
                    f" converted to {target} (the converter stopped); ask for"
                    " transfer-syntax=* to receive it as stored") from exc
    return await loop.run_in_executor(None, transcode_file, loc, target)


def transcode_file(loc: Located, target: str) -> bytes:
    """The whole instance as Part-10 bytes in `target` (one instance in memory at a time).

    NotAcceptable when the stored data cannot be converted (unsupported pair, or a codec
    failing on this instance's pixel data), with the instance and the codec's reason."""
    require_convertible(loc.transfer_syntax, target)
    try:
        return _transcode(loc, target)
    except (OSError, MemoryError):  # the archive's own trouble, not the data's: a 500
        raise
    except Exception as exc:  # any codec / parser failure on this instance's data
        log.warning("transcoding %s from %s to %s failed: %s", loc.sop_uid,
                    loc.transfer_syntax, target, exc)
        why = " ".join(str(exc).split())  # one line: the reason also goes into a header
        raise NotAcceptable(
            f"instance {loc.sop_uid} stored as {loc.transfer_syntax} could not be converted to"
            f" {target} ({type(exc).__name__}: {why[:200]}); ask for transfer-syntax=*"
            " to receive it as stored") from exc


def _transcode(loc: Located, target: str) -> bytes:
    ds = dcmread(loc.path)
    source = UID(loc.transfer_syntax)
    if source.is_compressed:
        # → Explicit VR LE, YBR → RGB. A lossless change of encoding keeps the SOP Instance UID
        # (pydicom would mint a new one by default: the client would get another instance).
        ds.decompress(decoding_plugin=decoder_for(source), generate_instance_uid=False)
    elif source == EXPLICIT_VR_BE and "PixelData" in ds:
        ds.PixelData = _little_endian(ds)
    if target in ENCODE_TARGETS:
        ds.compress(target, generate_instance_uid=False)
    else:
        ds.file_meta.TransferSyntaxUID = UID(target)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _little_endian(ds: Dataset) -> bytes:
    arr = ds.pixel_array
    return bytes(arr.astype(arr.dtype.newbyteorder("<")).tobytes())


_PIXEL_MODULE = ("00280002", "00280004", "00280006", "00280010", "00280011", "00280100",
                 "00280101", "00280102", "00280103")


def frame_dataset(loc: Located, number: int) -> Dataset:
    """A one-frame data set carrying frame `number`'s stored bytes and the pixel module."""
    header = loc.header or {}
    ds = Dataset.from_json({t: header[t] for t in _PIXEL_MODULE if t in header})
    ds.NumberOfFrames = 1
    data = read_frame(loc, number)
    ts = UID(loc.transfer_syntax)
    ds.file_meta = FileMetaDataset()
    if ts.is_compressed:
        ds.file_meta.TransferSyntaxUID = ts
        ds.PixelData = encapsulate([data])
        ds["PixelData"].VR = "OB"
    else:
        ds.file_meta.TransferSyntaxUID = UID(EXPLICIT_VR_LE)  # read_frame returns LE bytes
        ds.PixelData = data
        ds["PixelData"].VR = "OW" if ds.get("BitsAllocated", 16) > 8 else "OB"
    return ds


def frame_array(loc: Located, number: int) -> np.ndarray[Any, Any]:
    """Decoded pixels of one frame (rows, columns[, samples]); RGB for colour JPEG/YBR."""
    if loc.transfer_syntax not in DECODABLE:
        raise NotAcceptable(f"cannot decode {loc.transfer_syntax}")
    from pydicom.pixels import pixel_array

    ds = frame_dataset(loc, number)
    return np.asarray(pixel_array(ds, decoding_plugin=decoder_for(loc.transfer_syntax)))


def decoded_frame(loc: Located, number: int) -> bytes:
    """Frame `number` as uncompressed little-endian bytes (application/octet-stream)."""
    if UID(loc.transfer_syntax).is_compressed:
        arr = frame_array(loc, number)
        return bytes(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    return read_frame(loc, number)


def encoded_frame(loc: Located, number: int, target: str) -> bytes:
    """Frame `number` re-encoded losslessly in `target` (RLE, JPEG-LS or JPEG 2000 lossless)."""
    if target == loc.transfer_syntax:
        return read_frame(loc, number)
    if target not in ENCODE_TARGETS or loc.transfer_syntax not in DECODABLE:
        raise NotAcceptable(f"cannot produce frames in {target} from {loc.transfer_syntax}")
    ds = frame_dataset(loc, number)
    if UID(loc.transfer_syntax).is_compressed:
        ds.decompress(decoding_plugin=decoder_for(loc.transfer_syntax),
                      generate_instance_uid=False)
    ds.compress(target, generate_instance_uid=False)
    from pydicom.encaps import generate_fragmented_frames

    return b"".join(next(generate_fragmented_frames(ds.PixelData, number_of_frames=1)))
