"""The one mapping from archive errors to DIMSE statuses (PS3.4 B.2.3, PS3.7 C)."""

from __future__ import annotations

from archive import errors as e

OUT_OF_RESOURCES = 0xA700
DATA_SET_DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
DUPLICATE_SOP_INSTANCE = 0x0111
PROCESSING_FAILURE = 0x0110


def store_status(exc: BaseException) -> int:
    """C-STORE failure status for an error raised by ingest."""
    if isinstance(exc, e.StorageFull | e.ArchiveUnavailable | e.PayloadTooLarge):
        return OUT_OF_RESOURCES
    if isinstance(exc, e.DataSetMismatch):
        return DATA_SET_DOES_NOT_MATCH
    if isinstance(exc, e.DuplicateInstance):
        return DUPLICATE_SOP_INSTANCE
    if isinstance(exc, e.InvalidInstance):
        return CANNOT_UNDERSTAND
    return PROCESSING_FAILURE


# C-FIND (PS3.4 C.4.1.1.4)
FIND_PENDING = 0xFF00
FIND_CANCELLED = 0xFE00
IDENTIFIER_DOES_NOT_MATCH = 0xA900
UNABLE_TO_PROCESS = 0xC001


def find_status(exc: BaseException) -> int:
    """C-FIND failure status for an error raised by the query core."""
    if isinstance(exc, e.InvalidQuery):
        return IDENTIFIER_DOES_NOT_MATCH
    if isinstance(exc, e.ArchiveUnavailable):
        return OUT_OF_RESOURCES
    return UNABLE_TO_PROCESS
