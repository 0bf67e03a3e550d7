"""dimse.codec: the fast command-set and file-meta encodings give pydicom's bytes exactly, and
step aside (None) for anything they do not cover."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless, RLELossless
from pynetdicom import dimse_messages as messages
from pynetdicom import dimse_primitives as prim
from pynetdicom.dsutils import create_file_meta, encode

from dimse import codec
from dimse.tuning import tune_pynetdicom

CT = "1.2.840.10008.5.1.4.1.1.2"
UIDS = ["1.2.3", "1.2.34", "1.2.826.0.1.3680043.8.498.1234567890123456789012345678901234567",
        "1.2.826.0.1.3680043.8.498.12345678901234567890123456789012345678"]


def _message(cls: Any, primitive: Any) -> Any:
    msg = cls()
    msg.primitive_to_message(primitive)
    return msg


def _primitives() -> list[tuple[Any, Any]]:
    """Real command sets, as pynetdicom builds them, of every message the archive sends or
    receives on its services."""
    out: list[tuple[Any, Any]] = []
    for uid, status, comment in [(UIDS[0], 0x0000, None), (UIDS[2], 0xA700, "out of resources"),
                                 (UIDS[3], 0x0110, "odd"), (UIDS[1], 0xB000, None)]:
        p = prim.C_STORE()
        p.MessageIDBeingRespondedTo, p.AffectedSOPClassUID, p.AffectedSOPInstanceUID = 7, CT, uid
        p.Status = status
        if comment:
            p.ErrorComment = comment
        out.append((messages.C_STORE_RSP, p))
    rq = prim.C_STORE()
    rq.MessageID, rq.AffectedSOPClassUID, rq.AffectedSOPInstanceUID = 3, CT, UIDS[2]
    rq.Priority, rq.MoveOriginatorApplicationEntityTitle, rq.MoveOriginatorMessageID = 2, "MOVER", 9
    rq.DataSet = BytesIO(b"\x08\x00\x16\x00")
    out.append((messages.C_STORE_RQ, rq))
    echo = prim.C_ECHO()
    echo.MessageIDBeingRespondedTo, echo.AffectedSOPClassUID, echo.Status = 1, "1.2.840.10008.1.1", 0
    out.append((messages.C_ECHO_RSP, echo))
    for status, has_id in [(0xFF00, True), (0x0000, False), (0xFE00, False)]:
        find = prim.C_FIND()
        find.MessageIDBeingRespondedTo, find.AffectedSOPClassUID = 5, "1.2.840.10008.5.1.4.1.2.2.1"
        find.Status = status
        if has_id:
            find.Identifier = BytesIO(b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")
        out.append((messages.C_FIND_RSP, find))
    for cls, primitive in [(messages.C_MOVE_RSP, prim.C_MOVE()), (messages.C_GET_RSP, prim.C_GET())]:
        primitive.MessageIDBeingRespondedTo, primitive.Status = 11, 0xFF00
        primitive.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.2"
        primitive.NumberOfRemainingSuboperations, primitive.NumberOfCompletedSuboperations = 4, 1
        primitive.NumberOfFailedSuboperations, primitive.NumberOfWarningSuboperations = 0, 0
        out.append((cls, primitive))
    return out


@pytest.mark.parametrize(("cls", "primitive"), _primitives())
def test_command_sets_encode_exactly_as_pydicom(cls: Any, primitive: Any) -> None:
    command_set = _message(cls, primitive).command_set
    assert codec.encode_command_set(command_set) == encode(command_set, True, True)


def _command(**elements: Any) -> Dataset:
    ds = Dataset()
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize("ds", [
    _command(CommandField=0x8001, Status=0, ErrorComment=""),  # empty value: length 0
    _command(CommandField=0x8001, Status=0, ErrorComment="x" * 63),
    _command(CommandField=0x0021, MoveDestination="DEST1", Priority=0),
    _command(CommandGroupLength=0, CommandField=0x8030, Status=0),
])
def test_hand_built_command_sets_encode_exactly_as_pydicom(ds: Dataset) -> None:
    assert codec.encode_command_set(ds) == encode(ds, True, True)


@pytest.mark.parametrize("ds", [
    _command(CommandField=0x8001, Status=0xC000, ErrorComment="caf\u00e9"),  # not ASCII
    _command(CommandField=0x8001, Status=0xA900, OffendingElement=[0x00100010]),  # AT
    _command(CommandField=0x8001, Status=0, PatientName="A^B"),  # not group 0000
])
def test_anything_else_is_left_to_pydicom(ds: Dataset) -> None:
    assert codec.encode_command_set(ds) is None
    encoded = codec.fast_encode(encode)(ds, True, True)
    assert encoded == encode(ds, True, True)


def _pydicom_meta(sop_class: Any, sop_instance: Any, ts: Any) -> bytes:
    buffer = BytesIO()
    write_file_meta_info(buffer, create_file_meta(sop_class_uid=sop_class,  # type: ignore[arg-type]
                                                  sop_instance_uid=sop_instance,
                                                  transfer_syntax=ts))
    return buffer.getvalue()


@pytest.mark.parametrize("uid", UIDS)
@pytest.mark.parametrize("ts", [ImplicitVRLittleEndian, ExplicitVRLittleEndian, RLELossless,
                                JPEGLSLossless])
def test_file_meta_is_written_exactly_as_pydicom(uid: str, ts: str) -> None:
    assert codec.encode_file_meta(CT, uid, ts) == _pydicom_meta(CT, uid, ts)
    out = BytesIO()
    fast = codec.fast_create_file_meta(create_file_meta)
    codec.fast_write_file_meta_info(write_file_meta_info)(
        out, fast(sop_class_uid=CT, sop_instance_uid=uid, transfer_syntax=ts))
    assert out.getvalue() == _pydicom_meta(CT, uid, ts)


@pytest.mark.parametrize("uid", ["", None, "1.2.abc", "1." + "2" * 64, "1.2.3 "])
def test_file_meta_with_an_unusual_uid_goes_through_pydicom(uid: Any) -> None:
    assert codec.encode_file_meta(CT, uid, ImplicitVRLittleEndian) is None
    meta = codec.fast_create_file_meta(create_file_meta)(
        sop_class_uid=CT, sop_instance_uid=uid, transfer_syntax=ImplicitVRLittleEndian)
    assert not isinstance(meta, codec.EncodedFileMeta)


def test_tuning_installs_the_fast_paths_once() -> None:
    tune_pynetdicom()
    installed = messages.encode
    tune_pynetdicom()
    assert messages.encode is installed
    assert isinstance(messages.create_file_meta(sop_class_uid=CT, sop_instance_uid=UIDS[0],
                                                transfer_syntax=ImplicitVRLittleEndian),
                      codec.EncodedFileMeta)
