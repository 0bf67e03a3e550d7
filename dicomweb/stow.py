"""STOW-RS (PS3.18 §10.5): stream parts to the spool, ingest each, answer per §10.5.3.

Parts are spooled as they arrive; each complete part is ingested while the next one streams in
(at most a few at once), and the response is written only after every ingest has finished.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from typing import Any

from aiohttp import web

from archive.blobs import spool_stream
from archive.core import Caller, Core
from archive.errors import (
    ArchiveError,
    ArchiveUnavailable,
    FailureReason,
    InvalidRequest,
    PayloadTooLarge,
    StorageFull,
)
from archive.identity.audit import AuditAction, AuditEvent
from archive.identity.audit import Outcome as AuditOutcome
from archive.identity.errors import Forbidden
from archive.identity.roles import Permission, allows, upload_site
from archive.ingest import Stored, ingest
from archive.instance import is_valid_uid
from dicomweb import multipart
from dicomweb.auth import caller_from_request, identity_of
from dicomweb.dicom_xml import to_xml
from dicomweb.errors import log_refusal, status_for, warning_header
from dicomweb.keys import CORE, STOW_SLOTS
from dicomweb.media_types import negotiate, parse_media_type
from dicomweb.urls import instance_url, service_root, study_url

log = logging.getLogger("dicomweb.stow")
# Parts of one request ingested at once: enough for a whole request to share one group commit.
PARALLEL_INGESTS = 16


def caller_for(request: web.Request) -> Caller:
    """STOW-RS attribution from the identity: a contributor's upload goes to its own site
    (`site` parameter / X-Archive-Site naming another → 403); `collection` needs a curator (403
    below); `dataset` is the sender's label. Curators may attribute to any site."""
    q, h = request.rel_url.query, request.headers
    identity = identity_of(request)
    collection = q.get("collection") or h.get("X-Archive-Collection")
    if collection and not allows(identity, Permission.ASSIGN_COLLECTION):
        raise Forbidden(f"{identity.role_label} {identity.subject!r} may not choose a collection "
                        "(needs curator)")
    return replace(
        caller_from_request(request),
        site=upload_site(identity, q.get("site") or h.get("X-Archive-Site")),
        dataset=q.get("dataset") or h.get("X-Archive-Dataset"),
        collection=collection,
    )


async def store_instances(request: web.Request) -> web.StreamResponse:
    core = request.app[CORE]
    study = request.match_info.get("study")
    if study is not None and not is_valid_uid(study):
        raise InvalidRequest(f"invalid StudyInstanceUID in URL: {study!r}")
    accept = negotiate(
        request.headers.get("Accept"), ["application/dicom+json", "application/dicom+xml",
                                        "application/json"]
    )
    caller = caller_for(request)  # 403 before the body is read
    multipart.check_multipart(request, "application/dicom")
    async with request.app[STOW_SLOTS]:  # settings.max_stow_requests at once; others wait
        outcomes = await _receive(request, core, caller, study)
    _audit(request, core, outcomes)
    return _respond(request, outcomes, accept, study)


def _audit(request: web.Request, core: Core, outcomes: list[Outcome]) -> None:
    """One DICOM Instances Transferred (Create) event per stored study, with its counts."""
    if core.audit is None:
        return
    per_study: dict[str, int] = {}
    for o in outcomes:
        if isinstance(o, Stored):
            per_study[o.study_uid] = per_study.get(o.study_uid, 0) + 1
    failed = sum(1 for o in outcomes if not isinstance(o, Stored))
    identity = identity_of(request)
    for uid, count in per_study.items():
        core.audit.record(AuditEvent.now(
            AuditAction.INSTANCES_TRANSFERRED, identity, study_uids=[uid], event_action="C",
            detail={"instances": count, "door": "stow-rs"}))
    if failed:
        core.audit.record(AuditEvent.now(
            AuditAction.INSTANCES_TRANSFERRED, identity, event_action="C",
            outcome=AuditOutcome.MINOR_FAILURE, detail={"failed": failed, "door": "stow-rs"}))


Outcome = Stored | tuple[ArchiveError, dict[str, str]]


async def _receive(
    request: web.Request, core: Core, caller: Caller, study: str | None
) -> list[Outcome]:
    budget = multipart.Budget(core.settings.max_request_bytes, core.settings.http_body_idle_timeout)
    sem = asyncio.Semaphore(PARALLEL_INGESTS)
    tasks: list[asyncio.Task[Outcome]] = []
    try:
        async for part in multipart.parts(request, core.settings.http_max_header_bytes,
                                         core.settings.http_body_idle_timeout):
            if len(tasks) >= core.settings.max_request_parts:
                raise PayloadTooLarge(
                    f"more than {core.settings.max_request_parts} parts in one request")
            ctype = parse_media_type(part.headers.get("Content-Type", "application/dicom")).type
            if ctype != "application/dicom":
                await multipart.release(part)
                err = InvalidRequest(f"part Content-Type {ctype!r} is not application/dicom")
                tasks.append(asyncio.create_task(_failed(err)))
                continue
            spooled = await spool_stream(core, multipart.part_chunks(part, budget))
            await sem.acquire()
            tasks.append(asyncio.create_task(_ingest_one(core, spooled, caller, study, sem)))
        if not tasks:
            raise InvalidRequest("multipart body contains no parts")
    finally:
        # Every complete part is stored or failed before we answer, even if the body broke off.
        done = await asyncio.gather(*tasks, return_exceptions=True)
    return [d if not isinstance(d, BaseException) else _as_failure(d) for d in done]


async def _failed(err: ArchiveError) -> Outcome:
    return (err, {})


def _as_failure(exc: BaseException) -> Outcome:
    if isinstance(exc, ArchiveError):
        return (exc, {})
    log.error("storing a part failed", exc_info=exc)
    return (_internal(), {})


def _internal() -> ArchiveError:
    """An unexpected exception is a bug: a processing failure (0x0110) with the traceback
    logged, never "out of resources" (0xA700), which tells the client to retry."""
    err = ArchiveError("internal error while storing")
    err.failure_reason = FailureReason.PROCESSING_FAILURE
    return err


async def _ingest_one(
    core: Core, spooled: Any, caller: Caller, study: str | None, sem: asyncio.Semaphore
) -> Outcome:
    try:
        return await ingest(core, spooled, caller, expected_study=study)
    except ArchiveError as exc:
        return (exc, {"sop": exc.sop_uid or "", "sop_class": exc.sop_class_uid or ""})
    except Exception:
        log.exception("ingest failed")
        return (_internal(), {})
    finally:
        sem.release()


def _archive_trouble(outcomes: list[Outcome]) -> int | None:
    """503 or 507 when every instance failed for one reason that is the archive's (storage
    unavailable or full) rather than the data's; None otherwise (then 409 stands)."""
    statuses = {status_for(o[0]) if isinstance(o[0], StorageFull | ArchiveUnavailable) else 0
                for o in outcomes if not isinstance(o, Stored)}
    return statuses.pop() if len(statuses) == 1 and 0 not in statuses else None


def _uid_attr(tag: str, value: str) -> dict[str, Any]:
    return {tag: {"vr": "UI", "Value": [value]}}


def _respond(
    request: web.Request, outcomes: list[Outcome], accept: str, study: str | None
) -> web.Response:
    root = service_root(request)
    referenced, failed, warnings = [], [], []
    for o in outcomes:
        if isinstance(o, Stored):
            item = _uid_attr("00081150", o.sop_class_uid) | _uid_attr("00081155", o.sop_uid)
            item["00081190"] = {"vr": "UR", "Value": [
                instance_url(root, o.study_uid, o.series_uid, o.sop_uid)]}
            if o.warning:
                warnings.append(f"{o.sop_uid}: {o.warning}")
            referenced.append(item)
        else:
            err, uids = o
            item = {"00081197": {"vr": "US", "Value": [int(err.failure_reason)]}}
            if uids.get("sop_class"):
                item |= _uid_attr("00081150", uids["sop_class"])
            if uids.get("sop"):
                item |= _uid_attr("00081155", uids["sop"])
            item["00000902"] = {"vr": "LO", "Value": [err.reason[:64]]}
            warnings.append(err.reason)
            failed.append(item)
    body: dict[str, Any] = {}
    studies = {o.study_uid for o in outcomes if isinstance(o, Stored)}
    if study or len(studies) == 1:
        body["00081190"] = {"vr": "UR", "Value": [study_url(root, study or studies.pop())]}
    if referenced:
        body["00081199"] = {"vr": "SQ", "Value": referenced}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    # PS3.18 §10.5.3: 200 all stored, 202 stored with warnings or partial failure, 409 none.
    status = 409 if failed and not referenced else (202 if warnings else 200)
    headers = {}
    if status == 409 and (ours := _archive_trouble(outcomes)):
        status = ours  # nothing stored because of the archive's storage, not the data: 503/507
        if ours == 503:
            headers["Retry-After"] = "30"
    if warnings:
        headers["Warning"] = warning_header("; ".join(warnings), limit=1000)
    if status == 409:
        log_refusal(request, status, "; ".join(warnings))
    if accept == "application/dicom+xml":
        return web.Response(status=status, body=to_xml(body), headers=headers,
                            content_type="application/dicom+xml")
    return web.Response(status=status, body=json.dumps(body).encode(), headers=headers,
                        content_type="application/dicom+json")
