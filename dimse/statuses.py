"""The one place DIMSE statuses are built: archive errors → status codes (PS3.4 B.2.3, C.4;
PS3.7 C) and the status data sets the handlers answer with.

Unexpected exceptions (bugs) are logged with their traceback by the handler and answered as a
processing failure, never as a retryable "out of resources".
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from archive import errors as e

SUCCESS = 0x0000
PENDING = 0xFF00
CANCEL = 0xFE00

# C-STORE (PS3.4 B.2.3)
OUT_OF_RESOURCES = 0xA700
DATA_SET_DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
DUPLICATE_SOP_INSTANCE = 0x0111
PROCESSING_FAILURE = 0x0110

# C-FIND (PS3.4 C.4.1.1.4)
FIND_PENDING = PENDING
FIND_CANCELLED = CANCEL
IDENTIFIER_DOES_NOT_MATCH = 0xA900
UNABLE_TO_PROCESS = 0xC001

# C-GET / C-MOVE (PS3.4 C.4.2.1.5, C.4.3.1.4)
UNABLE_TO_CALCULATE_MATCHES = 0xA701


def status(code: int, comment: str | None = None) -> Dataset:
    """A status data set; the comment (0000,0902) is cut to its 64-character limit."""
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = comment[:64]
    return ds


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


def store_failure(exc: e.ArchiveError) -> Dataset:
    return status(store_status(exc), exc.reason)


def find_status(exc: BaseException) -> int:
    """C-FIND failure status for an error raised by the query core."""
    if isinstance(exc, e.InvalidQuery):
        return IDENTIFIER_DOES_NOT_MATCH
    if isinstance(exc, e.ArchiveUnavailable):
        return OUT_OF_RESOURCES
    return UNABLE_TO_PROCESS


def find_failure(exc: e.ArchiveError) -> Dataset:
    return status(find_status(exc), exc.reason)


def unreadable_identifier(exc: Exception) -> Dataset:
    """C-FIND failure for an identifier pydicom cannot read: 0xC000 when it cannot be decoded."""
    code = CANNOT_UNDERSTAND if "decode" in str(exc).lower() else UNABLE_TO_PROCESS
    return status(code, f"cannot read the identifier: {exc}")


def retrieve_status(exc: e.ArchiveError) -> int:
    """C-GET/C-MOVE refusal: 0xA900 for a bad identifier ("Identifier does not match SOP
    Class"), otherwise 0xA701 (unable to calculate the number of matches)."""
    return IDENTIFIER_DOES_NOT_MATCH if isinstance(exc, e.InvalidQuery) else UNABLE_TO_CALCULATE_MATCHES


def retrieve_refusal(exc: e.ArchiveError) -> Dataset:
    """Failure status for a retrieve that cannot start."""
    return status(retrieve_status(exc), exc.reason)
