"""Audit events of the DIMSE door (issue 12.5), written by the same batched writer as HTTP.

What each service leaves, named after DICOM PS3.15 A.5.3 like the HTTP door's events:
* C-STORE → DICOM Instances Transferred (Create), one event per study per association with its
  instance count, written when the connection closes (as dcm4chee-arc does: a modality sending
  a 2,000-image study makes one event, not 2,000); failed instances make one failure event with
  their count and reasons; a store refused because the caller may not change the target
  (another site's study, `NOT_AUTHORIZED`) is also a Security Alert;
* C-FIND → Query, one per request, with the level, the matching keys and the match count;
* C-GET / C-MOVE → Begin Transferring DICOM Instances, when the sub-operations start (or fail
  to), with the studies, the instance count and the move destination;
* a rejected association → User Authentication (failure): an AE title that is not a configured
  peer or calls from another host under `--restrict-peers`, or pynetdicom's own rejection
  (called AE title, association limit).
The actor is the calling AE title with the role and site its identity has, the source its IP
address. Association threads are not the event loop, and the writer's queue is an asyncio
queue: events are handed over with `call_soon_threadsafe`, which costs the thread microseconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pynetdicom import AE, evt

from archive import errors as e
from archive.core import Core
from archive.identity import errors as auth
from archive.identity.audit import AuditAction, AuditEvent, Outcome
from archive.identity.roles import Identity, Kind

log = logging.getLogger("dimse.audit")
_TALLY = "archive_store_tally"
MAX_REASONS = 5  # distinct failure reasons kept per association


def record(core: Core, loop: asyncio.AbstractEventLoop | None, event: AuditEvent) -> None:
    """Queue `event` on the server loop's audit writer, from any thread; never raises."""
    writer = core.audit
    if writer is None:
        return
    try:
        if loop is None:
            writer.record(event)  # already on the loop (tests, or a handler run in it)
        else:
            loop.call_soon_threadsafe(writer.record, event)
    except RuntimeError:  # the loop is closed: the server is stopping
        log.warning("audit event lost at shutdown", extra={"action": event.action.value})


def _ae_title(assoc: Any, which: str) -> str:
    """The A-ASSOCIATE-RQ's `called_ae_title` or `calling_ae_title` (dimse.peers imports
    this module, so it does not use dimse.peers.calling_aet)."""
    primitive = getattr(assoc.requestor, "primitive", None)
    aet = getattr(primitive, which, "") if primitive is not None else ""
    return (aet.decode() if isinstance(aet, bytes) else str(aet)).strip()


def _called_ae(assoc: Any) -> str:
    return _ae_title(assoc, "called_ae_title")


def _door(service: str, assoc: Any, **more: Any) -> dict[str, Any]:
    return {"door": "dimse", "service": service, "called_ae": _called_ae(assoc), **more}


def rejected(core: Core, loop: asyncio.AbstractEventLoop | None, assoc: Any, aet: str,
             address: str, reason: str) -> None:
    """An association refused before any service: User Authentication, failure."""
    who = Identity(aet, None, Kind.DIMSE, None, address)
    record(core, loop, AuditEvent.now(AuditAction.USER_AUTHENTICATION, who,
                                      outcome=Outcome.MINOR_FAILURE,
                                      detail=_door("A-ASSOCIATE", assoc, reason=reason)))


@dataclass
class StoreTally:
    """What one association's C-STOREs did, gathered until its connection closes."""

    identity: Identity
    stored: Counter[str] = field(default_factory=Counter)  # study UID → instances
    failed: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # study UID or "" → not authorized
    reasons: list[str] = field(default_factory=list)

    def failure(self, exc: e.ArchiveError, study: str | None = None) -> None:
        self.failed += 1
        if exc.reason not in self.reasons and len(self.reasons) < MAX_REASONS:
            self.reasons.append(exc.reason)
        if isinstance(exc, e.Forbidden | auth.Forbidden | e.OwnershipConflict):
            self.refused[study or ""] += 1


def tally(assoc: Any, identity: Identity) -> StoreTally:
    found = assoc.__dict__.get(_TALLY)
    if not isinstance(found, StoreTally):
        found = assoc.__dict__[_TALLY] = StoreTally(identity)
    return found


def store_events(t: StoreTally, called: Mapping[str, Any]) -> list[AuditEvent]:
    """An association's C-STORE tally as audit events."""
    events = [AuditEvent.now(AuditAction.INSTANCES_TRANSFERRED, t.identity, study_uids=[uid],
                             event_action="C", detail={**called, "instances": n})
              for uid, n in t.stored.items()]
    if t.failed:
        events.append(AuditEvent.now(
            AuditAction.INSTANCES_TRANSFERRED, t.identity, event_action="C",
            outcome=Outcome.MINOR_FAILURE,
            study_uids=[u for u in t.refused if u],
            detail={**called, "failed": t.failed, "reasons": t.reasons}))
    if t.refused:
        events.append(AuditEvent.now(
            AuditAction.SECURITY_ALERT, t.identity, study_uids=[u for u in t.refused if u],
            outcome=Outcome.MINOR_FAILURE,
            detail={**called, "refused": sum(t.refused.values()), "reasons": t.reasons}))
    return events


def on_end(event: Any, core: Core, loop: asyncio.AbstractEventLoop) -> None:
    """EVT_RELEASED / EVT_ABORTED (the reactor thread, after every handler) and EVT_CONN_CLOSE
    (a dropped connection): write the association's C-STORE events, once."""
    t = event.assoc.__dict__.pop(_TALLY, None)  # one pop wins between the two threads
    if not isinstance(t, StoreTally):
        return
    for audit_event in store_events(t, _door("C-STORE", event.assoc)):
        record(core, loop, audit_event)


def on_rejected(event: Any, core: Core, loop: asyncio.AbstractEventLoop) -> None:
    """EVT_REJECTED: pynetdicom refused the association during negotiation."""
    assoc = event.assoc
    if not assoc.is_acceptor:
        return
    called = _called_ae(assoc)
    reason = (f"called AE title {called!r} is not {core.settings.ae_title!r}"
              if core.settings.check_called_ae and called != core.settings.ae_title
              else "association refused in negotiation (association limit or AE title)")
    rejected(core, loop, assoc, _ae_title(assoc, "calling_ae_title"),
             str(assoc.requestor.address), reason)


def query(core: Core, loop: asyncio.AbstractEventLoop, assoc: Any, identity: Identity, *,
          level: str, pairs: Iterable[tuple[str, str]], studies: Iterable[str], matches: int,
          status: int) -> None:
    """One C-FIND request: Query, with its matching keys and how it ended."""
    outcome = Outcome.SUCCESS if status in (0x0000, 0xFE00) else Outcome.MINOR_FAILURE
    keys = "&".join(f"{k}={v}" for k, v in pairs if v)[:2000]
    record(core, loop, AuditEvent.now(
        AuditAction.QUERY, identity, study_uids=studies, outcome=outcome,
        detail=_door("C-FIND", assoc, level=level, query=keys, matches=matches,
                     status=f"0x{status:04X}")))


def begin_transferring(core: Core, loop: asyncio.AbstractEventLoop, assoc: Any,
                       identity: Identity, service: str, studies: Iterable[str], *,
                       instances: int, destination: str | None = None,
                       refused: e.ArchiveError | None = None) -> None:
    """A C-GET / C-MOVE starting its sub-operations (or refused before it could)."""
    detail = _door(service, assoc, instances=instances)
    if destination is not None:
        detail["destination"] = destination
    if refused is not None:
        detail["reason"] = refused.reason
    record(core, loop, AuditEvent.now(
        AuditAction.BEGIN_TRANSFERRING, identity, study_uids=list(dict.fromkeys(studies)),
        outcome=Outcome.SUCCESS if refused is None else Outcome.MINOR_FAILURE, detail=detail))


def service(ae: AE, core: Core, loop: asyncio.AbstractEventLoop) -> list[Any]:
    """The listener's audit handlers (dimse.listener.services)."""
    return [(evt.EVT_RELEASED, on_end, [core, loop]), (evt.EVT_ABORTED, on_end, [core, loop]),
            (evt.EVT_CONN_CLOSE, on_end, [core, loop]),
            (evt.EVT_REJECTED, on_rejected, [core, loop])]
