"""Byte-identical fast paths for the two pydicom encodings pynetdicom does on every C-STORE.

pynetdicom encodes each DIMSE command set with pydicom twice (once to measure the Command
Group Length, once to send it), and writes the received instance's File Meta Information
through `create_file_meta` + `write_file_meta_info`. On this archive's C-STORE path that is
≈0.5 ms of GIL per instance (py-spy, `bench/results/2026-11-29b-dimse3/`), mostly pydicom's
general machinery (buffers, element objects, validation) for a handful of fixed-size elements.

Both encoders here cover only the plain cases — group 0000 / 0002 elements with single ASCII
string or integer values — and produce exactly the bytes pydicom would (tests/dimse/test_codec.py
compares them); anything else returns None and the caller falls back to pydicom. The wire and the
stored files are therefore unchanged. `dimse.tuning.tune_pynetdicom` installs them.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import Any, BinaryIO

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

_IMPLICIT_HEAD = struct.Struct("<HHI")  # group, element, 32-bit length (Implicit VR LE)
_TEXT_VRS = frozenset({"AE", "CS", "SH", "LO", "ST", "LT"})  # padded with a space
_INT_FORMATS = {"US": struct.Struct("<H"), "UL": struct.Struct("<I")}
_UID = re.compile(r"[0-9.]{1,64}")


def _ascii(value: str, pad: bytes) -> bytes | None:
    if not value.isascii():
        return None  # pydicom's character-set handling decides
    raw = value.encode("ascii")
    return raw + pad if len(raw) % 2 else raw


def _value(vr: str, value: Any) -> bytes | None:
    """One element's value as pydicom writes it in Implicit VR LE, or None (not handled)."""
    if value is None or (isinstance(value, str) and value == ""):
        return b""  # pydicom writes an empty element (length 0)
    if vr in _INT_FORMATS:
        if type(value) is not int:
            return None
        try:
            return _INT_FORMATS[vr].pack(value)
        except struct.error:
            return None
    if not isinstance(value, str):  # a list (multi-valued), bytes, a tag...
        return None
    if vr == "UI":
        return _ascii(value, b"\0")
    if vr in _TEXT_VRS:
        return _ascii(value, b" ")
    return None


def encode_command_set(ds: Dataset) -> bytes | None:
    """A DIMSE command set in Implicit VR Little Endian, as pydicom's `write_dataset` encodes it,
    or None when an element is outside the plain cases."""
    parts: list[bytes] = []
    for elem in ds.elements():
        if type(elem) is not DataElement or elem.tag >> 16:
            return None  # a raw (received) element, or not group 0000
        value = _value(elem.VR, elem.value)
        if value is None:
            return None
        parts.append(_IMPLICIT_HEAD.pack(0, elem.tag & 0xFFFF, len(value)))
        parts.append(value)
    return b"".join(parts)


def fast_encode(fallback: Callable[..., bytes | None]) -> Callable[..., bytes | None]:
    """pynetdicom's `dsutils.encode` with the command-set fast path in front (it is only ever
    asked for Implicit VR LE by `dimse_messages`, which encodes nothing but command sets)."""
    def encode(ds: Dataset, is_implicit_vr: bool, is_little_endian: bool,
               deflated: bool = False) -> bytes | None:
        if is_implicit_vr and is_little_endian and not deflated:
            encoded = encode_command_set(ds)
            if encoded is not None:
                return encoded
        return fallback(ds, is_implicit_vr, is_little_endian, deflated)

    return encode


def _explicit(element: int, vr: bytes, value: bytes) -> bytes:
    """A group 0002 element in Explicit VR LE (OB: 4-byte length after two reserved bytes)."""
    if vr == b"OB":
        return struct.pack("<HH2s2xI", 2, element, vr, len(value)) + value
    return struct.pack("<HH2sH", 2, element, vr, len(value)) + value


def _uid_element(element: int, uid: Any) -> bytes | None:
    if not isinstance(uid, str) or not _UID.fullmatch(uid):
        return None  # missing or invalid: pydicom's path (and its validation warnings) decides
    value = _ascii(uid, b"\0")
    return None if value is None else _explicit(element, b"UI", value)


_META_VERSION = _explicit(0x0001, b"OB", b"\x00\x01")
_META_TAIL = (_uid_element(0x0012, PYNETDICOM_IMPLEMENTATION_UID) or b"") + _explicit(
    0x0013, b"SH", _ascii(PYNETDICOM_IMPLEMENTATION_VERSION, b" ") or b"")


def encode_file_meta(sop_class_uid: Any, sop_instance_uid: Any, transfer_syntax: Any,
                     ) -> bytes | None:
    """pynetdicom's File Meta Information for a received instance (its `create_file_meta` with
    the default implementation UID and version), as `write_file_meta_info` writes it; None
    when a UID is not a plain valid UID."""
    uids = [_uid_element(element, uid) for element, uid in
            ((0x0002, sop_class_uid), (0x0003, sop_instance_uid), (0x0010, transfer_syntax))]
    if any(u is None for u in uids):
        return None
    body = _META_VERSION + b"".join(uids) + _META_TAIL  # type: ignore[arg-type]
    return _explicit(0x0000, b"UL", struct.pack("<I", len(body))) + body


class EncodedFileMeta:
    """What `create_file_meta` returns on the fast path: the encoded bytes, for
    `write_file_meta_info` below (pynetdicom passes one straight to the other)."""

    __slots__ = ("encoded",)

    def __init__(self, encoded: bytes) -> None:
        self.encoded = encoded


def fast_create_file_meta(fallback: Callable[..., Any]) -> Callable[..., Any]:
    def create_file_meta(*, sop_class_uid: Any, sop_instance_uid: Any, transfer_syntax: Any,
                         **other: Any) -> Any:
        encoded = None if other else encode_file_meta(sop_class_uid, sop_instance_uid,
                                                      transfer_syntax)
        if encoded is None:
            return fallback(sop_class_uid=sop_class_uid, sop_instance_uid=sop_instance_uid,
                            transfer_syntax=transfer_syntax, **other)
        return EncodedFileMeta(encoded)

    return create_file_meta


def fast_write_file_meta_info(fallback: Callable[..., None]) -> Callable[..., None]:
    def write_file_meta_info(fp: BinaryIO, file_meta: Any, enforce_standard: bool = True,
                             ) -> None:
        if isinstance(file_meta, EncodedFileMeta):
            fp.write(file_meta.encoded)
        else:
            fallback(fp, file_meta, enforce_standard)

    return write_file_meta_info
