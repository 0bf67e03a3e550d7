"""The archive's error tree.

The core knows no HTTP codes and no DIMSE statuses: each door maps these classes once
(`dicomweb/errors.py`, `dimse/statuses.py`). Anything not derived from ArchiveError is a bug and is
reported as a server failure, never as a client error.
"""

from __future__ import annotations

from enum import IntEnum


class FailureReason(IntEnum):
    """PS3.18 §10.5.3 / PS3.4 C.4.2 failure reasons (0008,1197) used in STOW-RS responses."""

    PROCESSING_FAILURE = 0x0110
    DUPLICATE_SOP_INSTANCE = 0x0111
    NO_SUCH_SOP_CLASS = 0x0118
    CLASS_INSTANCE_CONFLICT = 0x0119
    OUT_OF_RESOURCES = 0xA700
    DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    CANNOT_UNDERSTAND = 0xC000
    REFERENCED_TS_NOT_SUPPORTED = 0xC122
    NOT_AUTHORIZED = 0x0124  # PS3.7 C.5.x "Refused: Not Authorized"
    STUDY_MISMATCH = 0xC409  # PS3.18 Table 10.5.3-4 "Referenced Study UID mismatch" (dcm4che uses C409)


class ArchiveError(Exception):
    """Base of every error the archive reports to a caller; `reason` is safe to show them."""

    failure_reason: FailureReason = FailureReason.PROCESSING_FAILURE

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        # Set by ingest once the instance's identity is known, for STOW FailedSOPSequence items.
        self.sop_uid: str | None = None
        self.sop_class_uid: str | None = None

    def details(self) -> dict[str, object]:
        """Extra fields a door adds to its error body (e.g. per-row errors); none by default."""
        return {}


class ConfigError(ArchiveError):
    """A setting could not be parsed."""


class InvalidInstance(ArchiveError):
    """The data set cannot be understood: not DICOM, truncated, missing or invalid UIDs."""

    failure_reason = FailureReason.CANNOT_UNDERSTAND


class DataSetMismatch(InvalidInstance):
    """The data set does not match its SOP class (e.g. meta information contradicts the data set)."""

    failure_reason = FailureReason.DATA_SET_DOES_NOT_MATCH_SOP_CLASS


class UnsupportedTransferSyntax(InvalidInstance):
    failure_reason = FailureReason.REFERENCED_TS_NOT_SUPPORTED


class StudyMismatch(InvalidInstance):
    """Instance's StudyInstanceUID differs from the one in the STOW-RS URL (PS3.18 §10.5)."""

    failure_reason = FailureReason.STUDY_MISMATCH


class DuplicateInstance(ArchiveError):
    """A different instance arrived under an existing SOP Instance UID and policy is `reject`."""

    failure_reason = FailureReason.DUPLICATE_SOP_INSTANCE


class OwnershipConflict(ArchiveError):
    """The instance would change stored data the caller may not change: an instance, series or
    study stored by another site or in another collection. One fixed reason for every such case,
    so the answer never tells whether the other data is sequestered (no existence oracle)."""

    failure_reason = FailureReason.NOT_AUTHORIZED
    REASON = "conflicts with stored data this caller may not change"  # fits LO (64)

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(self.REASON)


class PayloadTooLarge(ArchiveError):
    failure_reason = FailureReason.OUT_OF_RESOURCES


class StorageFull(ArchiveError):
    failure_reason = FailureReason.OUT_OF_RESOURCES


class ArchiveUnavailable(ArchiveError):
    """The index or storage cannot be reached; retrying later may succeed."""

    failure_reason = FailureReason.OUT_OF_RESOURCES


class InvalidRequest(ArchiveError):
    """A request is malformed (bad multipart body, bad parameter)."""


class RequestTimeout(InvalidRequest):
    """The client stopped sending the request body (HTTP 408)."""


class UnsupportedMediaType(ArchiveError):
    pass


class NotAcceptable(ArchiveError):
    pass


class InvalidQuery(ArchiveError):
    """A query parameter or matching key is not valid (PS3.18 §8.3.4)."""


class NotFound(ArchiveError):
    """The requested study, series, instance or resource does not exist (or is not visible)."""


class Forbidden(ArchiveError):
    """The change needs a right the caller lacks (e.g. the curator token). Only for writes:
    reads of data the caller may not see are NotFound, so existence is not disclosed."""


class Conflict(ArchiveError):
    """The request is valid but the archive's state refuses it (e.g. nothing left to release)."""


class NotAllowed(ArchiveError):
    """The resource exists but does not support this method (e.g. a frozen cohort's root)."""

    def __init__(self, reason: str, allowed: tuple[str, ...]) -> None:
        super().__init__(reason)
        self.allowed = allowed
