"""Audit events named after DICOM PS3.15 A.5, and their two renderings: JSON and A.5 XML.

The XML follows the DICOM audit message schema (PS3.15 A.5.1, derived from RFC 3881): one
`AuditMessage` with EventIdentification, the requesting ActiveParticipant, the archive as
AuditSourceIdentification and one ParticipantObjectIdentification per study. Codes are DCM
(PS3.16 CID 400 Audit Event ID, 402 Audit Active Participant Role ID, 404 Audit Participant
Object ID Type).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

from lxml import etree

from archive.identity.roles import Identity


class AuditAction(StrEnum):
    """PS3.15 A.5.3 events (value = Code Meaning of CID 400)."""

    APPLICATION_ACTIVITY = "Application Activity"
    AUDIT_LOG_USED = "Audit Log Used"
    BEGIN_TRANSFERRING = "Begin Transferring DICOM Instances"
    INSTANCES_ACCESSED = "DICOM Instances Accessed"
    INSTANCES_TRANSFERRED = "DICOM Instances Transferred"
    STUDY_DELETED = "DICOM Study Deleted"
    EXPORT = "Export"
    IMPORT = "Import"
    NETWORK_ENTRY = "Network Entry"
    QUERY = "Query"
    SECURITY_ALERT = "Security Alert"
    USER_AUTHENTICATION = "User Authentication"

    @property
    def code(self) -> str:
        return _CODES[self]

    @property
    def default_event_action(self) -> str:
        """EventActionCode: C(reate) R(ead) U(pdate) D(elete) E(xecute)."""
        return _ACTIONS.get(self, "E")

    @classmethod
    def parse(cls, text: str) -> AuditAction:
        for a in cls:
            if text in (a.value, a.name, a.name.lower(), a.code):
                return a
        raise ValueError(f"unknown audit action {text!r}")


_CODES = {a: str(110100 + i) for i, a in enumerate([
    AuditAction.APPLICATION_ACTIVITY, AuditAction.AUDIT_LOG_USED, AuditAction.BEGIN_TRANSFERRING,
    AuditAction.INSTANCES_ACCESSED, AuditAction.INSTANCES_TRANSFERRED, AuditAction.STUDY_DELETED,
    AuditAction.EXPORT, AuditAction.IMPORT, AuditAction.NETWORK_ENTRY])}
_CODES.update({AuditAction.QUERY: "110112", AuditAction.SECURITY_ALERT: "110113",
               AuditAction.USER_AUTHENTICATION: "110114"})
_ACTIONS = {AuditAction.AUDIT_LOG_USED: "R", AuditAction.INSTANCES_ACCESSED: "R",
            AuditAction.INSTANCES_TRANSFERRED: "R", AuditAction.STUDY_DELETED: "D",
            AuditAction.EXPORT: "R", AuditAction.IMPORT: "C"}


class Outcome(IntEnum):
    """EventOutcomeIndicator (RFC 3881 / PS3.15 A.5.1)."""

    SUCCESS = 0
    MINOR_FAILURE = 4  # e.g. rejected credentials, a refused request
    SERIOUS_FAILURE = 8
    MAJOR_FAILURE = 12


@dataclass(frozen=True, slots=True)
class AuditEvent:
    time: datetime
    action: AuditAction
    actor: str
    role: str | None = None
    kind: str | None = None
    site: str | None = None
    source: str | None = None
    study_uids: tuple[str, ...] = ()
    outcome: Outcome = Outcome.SUCCESS
    event_action: str = "E"
    detail: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def now(cls, action: AuditAction, identity: Identity, *, study_uids: Iterable[str] = (),
            outcome: Outcome = Outcome.SUCCESS, event_action: str | None = None,
            detail: Mapping[str, Any] | None = None) -> AuditEvent:
        """An event happening now, by `identity` (who, role, site, from where)."""
        return cls(datetime.now(UTC), action, identity.subject,
                   identity.role_label if identity.role is not None else None,
                   str(identity.kind), identity.site, identity.source, tuple(study_uids), outcome,
                   event_action or action.default_event_action, dict(detail or {}))

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time.isoformat(), "action": self.action.value,
                "event_action": self.event_action, "outcome": int(self.outcome),
                "actor": self.actor, "role": self.role, "kind": self.kind, "site": self.site,
                "source": self.source, "study_uids": list(self.study_uids),
                "detail": dict(self.detail)}

    @classmethod
    def from_row(cls, m: Mapping[str, Any]) -> AuditEvent:
        return cls(m["time"], AuditAction(m["action"]), m["actor"], m["role"], m["kind"],
                   m["site"], m["source"], tuple(m["study_uids"] or ()), Outcome(m["outcome"]),
                   m["event_action"].strip(), dict(m["detail"] or {}))


def to_jsonl(event: AuditEvent) -> str:
    return json.dumps(event.to_json(), separators=(",", ":"), default=str)


def _code(parent: etree._Element, tag: str, code: str, meaning: str,
          system: str = "DCM") -> etree._Element:
    return etree.SubElement(parent, tag, {"csd-code": code, "codeSystemName": system,
                                          "originalText": meaning})


def to_xml_element(event: AuditEvent, audit_source: str = "ARCHIVE") -> etree._Element:
    """The event as a PS3.15 A.5 `AuditMessage` element."""
    msg = etree.Element("AuditMessage")
    ev = etree.SubElement(msg, "EventIdentification", {
        "EventActionCode": event.event_action,
        "EventDateTime": event.time.astimezone(UTC).isoformat(timespec="milliseconds"),
        "EventOutcomeIndicator": str(int(event.outcome))})
    _code(ev, "EventID", event.action.code, event.action.value)
    if event.action is AuditAction.USER_AUTHENTICATION:
        _code(ev, "EventTypeCode", "110122", "Login")
    reason = event.detail.get("reason")
    if reason:
        etree.SubElement(ev, "EventOutcomeDescription").text = str(reason)
    who = {"UserID": event.actor or "unknown", "UserIsRequestor": "true"}
    name = " ".join(f"{k}={v}" for k, v in (("role", event.role), ("site", event.site),
                                           ("kind", event.kind)) if v)
    if name:
        who["UserName"] = name
    if event.source:
        who.update(NetworkAccessPointID=event.source, NetworkAccessPointTypeCode="2")
    ap = etree.SubElement(msg, "ActiveParticipant", who)
    if event.action in (AuditAction.INSTANCES_TRANSFERRED, AuditAction.BEGIN_TRANSFERRING):
        stored = event.event_action == "C"
        _code(ap, "RoleIDCode", "110153" if stored else "110152",
              "Source Role ID" if stored else "Destination Role ID")
    src = etree.SubElement(msg, "AuditSourceIdentification", {"AuditSourceID": audit_source})
    _code(src, "AuditSourceTypeCode", "4", "Application Server", "RFC-3881")
    for uid in event.study_uids:
        po = etree.SubElement(msg, "ParticipantObjectIdentification", {
            "ParticipantObjectID": uid, "ParticipantObjectTypeCode": "2",
            "ParticipantObjectTypeCodeRole": "3"})
        _code(po, "ParticipantObjectIDTypeCode", "110180", "Study Instance UID")
    query = event.detail.get("query")
    if event.action is AuditAction.QUERY and query is not None:
        _query_object(msg, str(query), str(event.detail.get("sop_class", STUDY_ROOT_FIND)))
    return msg


STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


def _query_object(msg: etree._Element, query: str, sop_class: str) -> None:
    """A.5.3.10: the SOP class queried, with the query itself base64-encoded."""
    po = etree.SubElement(msg, "ParticipantObjectIdentification", {
        "ParticipantObjectID": sop_class, "ParticipantObjectTypeCode": "2",
        "ParticipantObjectTypeCodeRole": "3"})
    _code(po, "ParticipantObjectIDTypeCode", "110181", "SOP Class UID")
    etree.SubElement(po, "ParticipantObjectQuery").text = base64.b64encode(
        query.encode()).decode("ascii")


def to_xml(event: AuditEvent, audit_source: str = "ARCHIVE") -> bytes:
    return etree.tostring(to_xml_element(event, audit_source), encoding="UTF-8",
                          xml_declaration=True)
