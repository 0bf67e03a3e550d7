"""What C-GET and C-MOVE SCPs share: identifier → retrieve keys, and instance → data set.

Both services run on the same retrieve core as WADO-RS (archive.retrieve.locate_keys, which
applies visibility), so a caller sees the same instances through every door.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from archive.errors import InvalidQuery
from archive.instance import is_valid_uid
from archive.retrieve import Keys, Located
from archive.transcode import DECODABLE, transcode_file
from archive.transfer_syntax import EXPLICIT_VR_LE, IMPLICIT_VR_LE

PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
PATIENT_ROOTS = (PATIENT_ROOT_MOVE, PATIENT_ROOT_GET)
NATIVE_LE = frozenset({EXPLICIT_VR_LE, IMPLICIT_VR_LE})

# PS3.4 C.4.2.1.4 / C.4.3.1.3: unique keys required at each level.
_REQUIRED = {
    "STUDY": ("StudyInstanceUID",),
    "SERIES": ("StudyInstanceUID", "SeriesInstanceUID"),
    "IMAGE": ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"),
}


def _uids(identifier: Dataset, keyword: str) -> tuple[str, ...]:
    value = identifier.get(keyword)
    if value is None or value == "":
        return ()
    values = [str(v) for v in value] if isinstance(value, MultiValue | list) else [str(value)]
    bad = [v for v in values if not is_valid_uid(v)]
    if bad:
        raise InvalidQuery(f"invalid {keyword}: {bad[0][:64]!r}")
    return tuple(values)


def keys_from(identifier: Dataset | None, abstract_syntax: str) -> Keys:
    """The identifier's unique keys for its Query/Retrieve Level; InvalidQuery if malformed."""
    if identifier is None:
        raise InvalidQuery("missing identifier")
    level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    patient_root = abstract_syntax in PATIENT_ROOTS
    patient_id = str(identifier.get("PatientID", "") or "") or None
    if level == "PATIENT":
        if not patient_root:
            raise InvalidQuery("PATIENT level needs the Patient Root information model")
        if not patient_id:
            raise InvalidQuery("PATIENT level needs a PatientID")
        return Keys(patient_id=patient_id)
    if level not in _REQUIRED:
        raise InvalidQuery(f"unknown QueryRetrieveLevel {level!r}")
    found = {kw: _uids(identifier, kw) for kw in _REQUIRED[level]}
    missing = [kw for kw, v in found.items() if not v]
    if missing:
        raise InvalidQuery(f"{level} level needs {', '.join(missing)}")
    return Keys(
        patient_id=patient_id if patient_root else None,
        studies=found["StudyInstanceUID"],
        series=found.get("SeriesInstanceUID", ()),
        instances=found.get("SOPInstanceUID", ()),
    )


def accepted_syntaxes(contexts: Iterable[Any], sop_class: str) -> set[str]:
    return {str(cx.transfer_syntax[0]) for cx in contexts if cx.abstract_syntax == sop_class}


def dataset_for(loc: Located, accepted: set[str]) -> Dataset:
    """The instance to send: as stored when the peer accepted its syntax (or, for native
    little endian data, any native little endian one: pynetdicom re-encodes those); else
    decoded to Explicit VR Little Endian when the peer takes that; else as stored (the
    sub-operation then fails and is counted, PS3.4 C.4.3.3.1)."""
    ts = loc.transfer_syntax
    if ts in accepted or (ts in NATIVE_LE and accepted & NATIVE_LE):
        return dcmread(loc.path)
    if ts in DECODABLE and accepted & NATIVE_LE:
        return dcmread(io.BytesIO(transcode_file(loc, EXPLICIT_VR_LE)))
    return dcmread(loc.path)
