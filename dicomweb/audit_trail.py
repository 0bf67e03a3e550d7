"""Audit events for what HTTP requests did, named after DICOM PS3.15 A.5 (issue 12.5).

One middleware maps each answered request to its event from the route that served it: QIDO →
Query, WADO retrieve → Begin Transferring, metadata/frames/rendered/bulkdata → DICOM Instances
Accessed, cohort manifest/file/clinical → Export, DELETE → Study Deleted, clinical data and
mapping changes → Import, a 403 → Security Alert, a 401 for missing credentials → User
Authentication. STOW-RS records its own per-study events (dicomweb.stow). Recording only queues
the event (archive.identity.audit_log.AuditWriter), so it costs a request microseconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from archive.identity.audit import AuditAction, AuditEvent, Outcome
from dicomweb.auth import identity_of
from dicomweb.keys import CORE

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
QIDO_ENDS = ("/studies", "/series", "/instances")
ACCESS_ENDS = ("/metadata", "/rendered", "/thumbnail")
EXPORT_PARTS = ("/manifest", "/clinical", "/files/")
CHANGES = {"/commons/cases": "clinical data", "/commons/mappings": "mappings"}
# curator actions that change what studies are and who sees them (issues 12.4 and 16): audited
# as DICOM Instances Accessed with EventActionCode U(pdate), the body's reason in the detail
CURATOR_CHANGES = {
    "/commons/studies/{study}/collection": "collection change",
    "/commons/cases/{case}/partition": "partition override",
    "/commons/datasets/{dataset}/release": "dataset release",
    "/commons/testsets": "test set drawn",
}


def action_for(method: str, template: str) -> AuditAction | None:
    """The PS3.15 event a successful request on route `template` stands for, if any."""
    if template.startswith("/commons/cohorts/{cohort}/dicom-web") and method != "GET":
        return None  # a cohort's root is read-only (405): nothing happened
    if method == "DELETE":
        return AuditAction.STUDY_DELETED
    if method in ("POST", "PUT") and template in CURATOR_CHANGES:
        return AuditAction.INSTANCES_ACCESSED
    if method == "POST":
        return AuditAction.IMPORT if template in CHANGES else None  # STOW audits itself
    if template.startswith("/commons/cohorts/{cohort}") and "/dicom-web" not in template:
        return AuditAction.EXPORT if any(p in template for p in EXPORT_PARTS) else None
    if template.endswith(QIDO_ENDS):
        return AuditAction.QUERY
    if template.endswith("/wado"):
        return AuditAction.BEGIN_TRANSFERRING
    if template.endswith(ACCESS_ENDS) or "/frames/" in template or "/bulkdata/" in template:
        return AuditAction.INSTANCES_ACCESSED
    if "{study}" in template:
        return AuditAction.BEGIN_TRANSFERRING
    return None


def _template(request: web.Request) -> str | None:
    info = request.match_info
    if info.http_exception is not None or info.route.resource is None:
        return None
    return info.route.resource.canonical


def _studies(request: web.Request) -> list[str]:
    uid = request.match_info.get("study") or request.rel_url.query.get("studyUID")
    return [uid] if uid else []


def record(request: web.Request, status: int) -> None:
    core = request.app[CORE]
    if core.audit is None or request.method in ("OPTIONS",):
        return
    identity = identity_of(request)
    if status == 403:
        core.audit.record(AuditEvent.now(
            AuditAction.SECURITY_ALERT, identity, study_uids=_studies(request),
            outcome=Outcome.MINOR_FAILURE,
            detail={"method": request.method, "path": request.rel_url.path, "status": status}))
        return
    if status == 401 and "Authorization" not in request.headers:  # bad tokens: Authenticator
        core.audit.record(AuditEvent.now(
            AuditAction.USER_AUTHENTICATION, identity, outcome=Outcome.MINOR_FAILURE,
            detail={"reason": "no credentials", "path": request.rel_url.path}))
        return
    template = _template(request)
    action = action_for(request.method if request.method != "HEAD" else "GET", template or "") \
        if template else None
    if action is None:
        return
    outcome = Outcome.SUCCESS if status < 400 else (
        Outcome.MINOR_FAILURE if status < 500 else Outcome.SERIOUS_FAILURE)
    detail: dict[str, object] = {"path": request.rel_url.path, "status": status}
    if action is AuditAction.QUERY:
        detail["query"] = request.rel_url.query_string
    if action is AuditAction.IMPORT:
        detail["what"] = CHANGES.get(template or "", "")
    if request.match_info.get("cohort"):
        detail["cohort"] = request.match_info["cohort"]
    change = CURATOR_CHANGES.get(template or "") if request.method in ("POST", "PUT") else None
    if change:
        detail["what"] = change
        detail.update({k: v for k, v in request.match_info.items() if k in ("case", "dataset")})
    core.audit.record(AuditEvent.now(action, identity, study_uids=_studies(request),
                                     outcome=outcome, event_action="U" if change else None,
                                     detail=detail))


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        record(request, exc.status)
        raise
    record(request, response.status)
    return response
