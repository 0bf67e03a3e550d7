"""Read what ingest needs from a Part-10 file without decoding pixels, and check it.

`read_instance` is the only place that parses an incoming file. It returns `InstanceFacts`: the
identifiers, the per-level attribute blocks (DICOM JSON), the indexed column values, and where
Pixel Data sits in the file (so frames can later be served by offset without parsing again).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from archive import index_json
from archive.attributes import LEVEL_KEYWORDS, Level
from archive.errors import DataSetMismatch, InvalidInstance, UnsupportedTransferSyntax
from archive.transfer_syntax import DEFLATED_EXPLICIT_VR_LE, KNOWN_TRANSFER_SYNTAXES

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")
BULK_THRESHOLD = 1024  # bytes: larger binary values become BulkDataURI references
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


def is_valid_uid(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 64 and bool(UID_RE.match(value))


@dataclass(slots=True)
class PixelLayout:
    """Where Pixel Data's value starts and, if encapsulated, its fragments (offset, length)."""

    tag: int
    vr: str
    offset: int
    length: int  # -1 when encapsulated (undefined length)
    fragments: list[tuple[int, int]] = field(default_factory=list)
    offset_table: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "tag": f"{self.tag:08X}",
            "vr": self.vr,
            "offset": self.offset,
            "length": self.length,
            "fragments": self.fragments,
            "bot": self.offset_table,
        }


@dataclass(slots=True)
class InstanceFacts:
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    header: dict[str, Any]  # whole data set as DICOM JSON, bulk data as BulkDataURI markers
    level_attrs: dict[Level, dict[str, Any]]
    columns: dict[str, Any]
    pixels: PixelLayout | None
    charset: str | None
    header_json: str | None = None  # `header` encoded as the JSON the index stores
    # instance.metadata (WADO-RS), spliced from header_json's pieces (archive.index_json);
    # None: the index's trigger builds it
    metadata_json: str | None = None


def read_instance(path: Path, file_size: int) -> InstanceFacts:
    """Parse and validate one Part-10 file; raises InvalidInstance with a reason a person can act on."""
    with open(path, "rb") as fp:
        ds = _read_header(fp)
        if str(ds.file_meta.TransferSyntaxUID) == DEFLATED_EXPLICIT_VR_LE:
            # fp.tell() is a position in the compressed stream, useless for offsets: inflate the
            # whole data set instead. Frames of a deflated file cannot be served by file offset.
            fp.seek(0)
            ds = _read_header(fp, whole=True)
            pixels = None
            has_pixels = any(t in ds for t in PIXEL_TAGS)
        else:
            pixels = _scan_pixels(fp, ds, fp.tell(), file_size)
            has_pixels = pixels is not None
    facts = _validate(ds)
    _check_depth(ds)
    if not has_pixels and "Rows" in ds and "Columns" in ds and "FloatPixelData" not in ds:
        raise InvalidInstance("truncated: image attributes present but no Pixel Data")
    ts = str(ds.file_meta.TransferSyntaxUID)
    header, header_json, metadata_json = _header_and_json(
        ds, ts, (f"{pixels.tag:08X}", pixels.vr) if pixels is not None else None)
    level_attrs = {lvl: {t: v for t, v in header.items() if t in _LEVEL_TAGS[lvl]} for lvl in Level}
    return InstanceFacts(
        study_uid=facts[0],
        series_uid=facts[1],
        sop_uid=facts[2],
        sop_class_uid=facts[3],
        transfer_syntax=ts,
        header=header,
        level_attrs=level_attrs,
        columns=_columns(ds),
        pixels=pixels,
        charset=_charset(ds),
        header_json=header_json,
        metadata_json=metadata_json,
    )


def _read_header(fp: BinaryIO, whole: bool = False) -> Dataset:
    """The data set up to Pixel Data (or all of it when `whole`, for deflated files)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = dcmread(fp, stop_before_pixels=not whole)
            except InvalidDicomError:
                # No 128-byte preamble (pydicom.dcmwrite's default): accept when group 0002
                # is present, as most archives do; the file is kept as received.
                fp.seek(0)
                if fp.read(2) != b"\x02\x00":
                    raise
                fp.seek(0)
                ds = dcmread(fp, stop_before_pixels=not whole, force=True)
            # Force every value to be read now, so a truncated header fails here, not later.
            for _ in ds.iterall():
                pass
    except InvalidDicomError as exc:
        raise InvalidInstance(f"not a DICOM Part-10 file: {exc}") from exc
    except Exception as exc:  # pydicom raises many types on corrupt input
        raise InvalidInstance(f"cannot parse DICOM header: {exc}") from exc
    if not getattr(ds, "file_meta", None) or "TransferSyntaxUID" not in ds.file_meta:
        raise InvalidInstance("missing File Meta Information (0002,0010) Transfer Syntax UID")
    ts = str(ds.file_meta.TransferSyntaxUID)
    if ts not in KNOWN_TRANSFER_SYNTAXES:
        raise UnsupportedTransferSyntax(f"unsupported transfer syntax {ts}")
    return ds


def _validate(ds: Dataset) -> tuple[str, str, str, str]:
    values = []
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        value = ds.get(keyword)
        if value is None or value == "":
            raise InvalidInstance(f"missing {keyword}")
        if not is_valid_uid(str(value)):
            raise InvalidInstance(f"invalid {keyword}: {str(value)[:80]!r}")
        values.append(str(value))
    meta = ds.file_meta
    msi = meta.get("MediaStorageSOPInstanceUID")
    if msi and str(msi) != values[2]:
        raise DataSetMismatch("MediaStorageSOPInstanceUID differs from SOPInstanceUID")
    msc = meta.get("MediaStorageSOPClassUID")
    if msc and str(msc) != values[3]:
        raise DataSetMismatch("MediaStorageSOPClassUID differs from SOPClassUID")
    return values[0], values[1], values[2], values[3]


def _scan_pixels(fp: BinaryIO, ds: Dataset, start: int, file_size: int) -> PixelLayout | None:
    """Locate Pixel Data; detect truncation; list fragments of encapsulated data."""
    if start >= file_size:
        return None
    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    little = ts != "1.2.840.10008.1.2.2"
    explicit = ts != "1.2.840.10008.1.2"
    fp.seek(start)
    head = fp.read(8)
    if len(head) < 8:
        raise InvalidInstance("truncated inside Pixel Data element header")
    order = "<" if little else ">"
    group, elem = struct.unpack(order + "HH", head[:4])
    tag = (group << 16) | elem
    if tag not in PIXEL_TAGS:
        return None
    if explicit:
        vr = head[4:6].decode("ascii", "replace")
        if not (vr.isascii() and vr.isalpha() and vr.isupper()):
            raise InvalidInstance(
                f"malformed Pixel Data element: encoded as implicit VR (no VR field) although "
                f"the transfer syntax {ts} is explicit VR"
            )
        if vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
            rest = fp.read(4)
            if len(rest) < 4:
                raise InvalidInstance("truncated inside Pixel Data element header")
            (length,) = struct.unpack(order + "L", rest)
            value_offset = start + 12
        else:
            (length,) = struct.unpack(order + "H", head[6:8])
            value_offset = start + 8
    else:
        vr = "OW" if ds.get("BitsAllocated", 16) > 8 else "OB"
        (length,) = struct.unpack(order + "L", head[4:8])
        value_offset = start + 8
    if length != 0xFFFFFFFF:
        if value_offset + length > file_size:
            raise InvalidInstance(
                f"truncated: Pixel Data needs {length} bytes, file has {file_size - value_offset}"
            )
        return PixelLayout(tag, vr, value_offset, length)
    layout = PixelLayout(tag, "OB", value_offset, -1)
    _scan_fragments(fp, value_offset, file_size, layout)
    return layout


def _scan_fragments(fp: BinaryIO, pos: int, file_size: int, layout: PixelLayout) -> None:
    fp.seek(pos)
    first = True
    while True:
        head = fp.read(8)
        if len(head) < 8:
            raise InvalidInstance("truncated: encapsulated Pixel Data has no sequence delimiter")
        group, elem, length = struct.unpack("<HHL", head)
        pos += 8
        if (group, elem) == (0xFFFE, 0xE0DD):
            return
        if (group, elem) != (0xFFFE, 0xE000) or length == 0xFFFFFFFF:
            raise InvalidInstance("malformed encapsulated Pixel Data item")
        if pos + length > file_size:
            raise InvalidInstance("truncated: Pixel Data fragment runs past end of file")
        if first:
            data = fp.read(length)
            layout.offset_table = list(struct.unpack(f"<{length // 4}L", data[: length // 4 * 4]))
            first = False
        else:
            layout.fragments.append((pos, length))
            fp.seek(length, 1)
        pos += length


def _bulk_marker(elem: DataElement) -> str:
    return f"bulk:{elem.tag:08X}"


def _header_and_json(
    ds: Dataset, transfer_syntax: str, pixels: tuple[str, str] | None
) -> tuple[dict[str, Any], str, str | None]:
    """DICOM JSON (PS3.18 Annex F) of the data set, large binaries as `bulk:` markers (doors
    turn a `bulk:TAG` marker into an absolute BulkDataURI), its compact JSON text, both
    storable (`_storable`), and the instance's WADO-RS metadata text (archive.index_json; None
    when the index must build it). Nearly every header is storable as it is: the C
    encoder says so (no NaN/Infinity: `allow_nan=False`; no NUL: never escaped otherwise)
    while producing the text the index needs anyway, which costs a fraction of walking the
    header in Python (`_storable`: ~10 % of a parse worker's time per instance, issue 14)."""
    try:
        raw = ds.to_json_dict(BULK_THRESHOLD, _bulk_marker)
    except Exception as exc:  # malformed values (bad PN/IS/DS encodings)
        raise InvalidInstance(f"cannot convert header to DICOM JSON: {exc}") from exc
    try:
        parts = index_json.pieces(raw, strict=True)
        if not any("\\u0000" in p for p in parts):  # a literal backslash-u0000 only costs
            return raw, *index_json.encode(raw, parts, transfer_syntax, pixels)  # the slow path
    except ValueError:  # NaN or ±Infinity
        pass
    header = _storable(raw)
    return header, *index_json.encode(header, index_json.pieces(header, strict=False),
                                      transfer_syntax, pixels)


MAX_SEQUENCE_DEPTH = 32  # real IODs nest a handful of levels; hostile files nest hundreds


def _check_depth(ds: Dataset) -> None:
    """Refuse absurdly nested sequences: every later step (JSON, pickling between processes,
    the index) recurses over them, and a few hundred levels exhaust Python's stack."""
    todo: list[tuple[Dataset, int]] = [(ds, 0)]
    while todo:
        cur, depth = todo.pop()
        if depth > MAX_SEQUENCE_DEPTH:
            raise InvalidInstance(f"sequences nested deeper than {MAX_SEQUENCE_DEPTH} levels")
        for elem in cur:
            if elem.VR == "SQ" and elem.value is not None:
                todo.extend((item, depth + 1) for item in elem.value)


def _storable(value: Any) -> Any:
    """The header JSON as PostgreSQL's jsonb accepts it: no NUL in strings (jsonb refuses
    \\u0000) and no NaN/Infinity numbers (not JSON) — such values are dropped, not refused,
    so a file with one odd value is still archived byte-for-byte."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _level_tags() -> dict[Level, frozenset[str]]:
    from pydicom.datadict import tag_for_keyword

    out: dict[Level, frozenset[str]] = {}
    for lvl, kws in LEVEL_KEYWORDS.items():
        tags = {f"{tag_for_keyword(k):08X}" for k in kws if tag_for_keyword(k) is not None}
        tags.add("00080005")  # SpecificCharacterSet travels with every level
        out[lvl] = frozenset(tags)
    return out


_LEVEL_TAGS = _level_tags()


def parse_da(value: object) -> dt.date | None:
    text = str(value or "").strip().replace(".", "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def parse_tm(value: object) -> dt.time | None:
    text = str(value or "").strip().replace(":", "")
    if not text:
        return None
    main, _, frac = text.partition(".")
    if not main.isdigit() or len(main) not in (2, 4, 6):
        return None
    try:
        h, m, s = int(main[:2]), int(main[2:4] or 0), int(main[4:6] or 0)
        us = int((frac + "000000")[:6]) if frac.isdigit() else 0
        return dt.time(h, m, min(s, 59), us)
    except ValueError:
        return None


INT32 = 2**31


def _int(value: object) -> int | None:
    """An integer column value; None when absent, malformed or outside int32 (IS allows 2^31)."""
    try:
        number = int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is None or -INT32 <= number < INT32 else None


def _text(value: object) -> str | None:
    """A text column value without NUL (PostgreSQL text cannot hold it)."""
    text = "" if value is None else str(value).replace("\x00", "")
    return text or None


def _columns(ds: Dataset) -> dict[str, Any]:
    g = ds.get
    return {
        "patient_id": _text(g("PatientID")) or "",
        "issuer": _text(g("IssuerOfPatientID")) or "",
        "patient_name": _text(g("PatientName")),
        "patient_birth_date": parse_da(g("PatientBirthDate")),
        "patient_sex": _text(g("PatientSex")),
        "study_date": parse_da(g("StudyDate")),
        "study_time": parse_tm(g("StudyTime")),
        "accession_number": _text(g("AccessionNumber")),
        "study_id": _text(g("StudyID")),
        "referring_physician_name": _text(g("ReferringPhysicianName")),
        "study_description": _text(g("StudyDescription")),
        "modality": _text(g("Modality")),
        "series_number": _int(g("SeriesNumber")),
        "series_description": _text(g("SeriesDescription")),
        "series_date": parse_da(g("SeriesDate")),
        "series_time": parse_tm(g("SeriesTime")),
        "body_part": _text(g("BodyPartExamined")),
        "pps_start_date": parse_da(g("PerformedProcedureStepStartDate")),
        "pps_start_time": parse_tm(g("PerformedProcedureStepStartTime")),
        "instance_number": _int(g("InstanceNumber")),
        "rows": _int(g("Rows")),
        "columns": _int(g("Columns")),
        "number_of_frames": _int(g("NumberOfFrames")) or (1 if "Rows" in ds else None),
    }


def _charset(ds: Dataset) -> str | None:
    cs = ds.get("SpecificCharacterSet")
    if cs is None:
        return None
    if isinstance(cs, str):
        return cs
    return "\\".join(str(c) for c in cs)
