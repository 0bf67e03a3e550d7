"""`GET /commons/audit?actor=&study=&action=&since=&until=`: the audit trail for admins.

A translation layer: it parses the filters, asks the identity service, writes JSON. Reading the
trail is itself audited (PS3.15 A.5.3.2 Audit Log Used). Pages with `after` (the last `pk`) and
`limit` (at most 5000).
"""

from __future__ import annotations

import json
from datetime import datetime

from aiohttp import web

from archive.errors import InvalidRequest
from archive.identity.audit import AuditAction, AuditEvent
from dicomweb.auth import identity_of
from dicomweb.keys import CORE

MAX_LIMIT = 5000


def _time(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{name} must be an ISO 8601 date or date-time, not {text!r}") from None


def _int(text: str | None, name: str, default: int, top: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or not 0 <= int(text) <= top:
        raise InvalidRequest(f"{name} must be an integer from 0 to {top}")
    return int(text)


async def get_audit(request: web.Request) -> web.Response:
    core, q = request.app[CORE], request.rel_url.query
    assert core.identity is not None
    action = q.get("action") or None
    if action is not None:
        try:
            AuditAction.parse(action)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
    rows = await core.identity.events(
        actor=q.get("actor") or None, study=q.get("study") or None, action=action,
        since=_time(q.get("since"), "since"), until=_time(q.get("until"), "until"),
        after=_int(q.get("after"), "after", 0, 2**62), limit=_int(q.get("limit"), "limit", 1000,
                                                                     MAX_LIMIT) or 1)
    core.identity.audit.record(AuditEvent.now(
        AuditAction.AUDIT_LOG_USED, identity_of(request),
        detail={"filters": dict(q.items())}))
    body = {"events": [e.to_json() | {"pk": pk} for pk, e in rows],
            "next": rows[-1][0] if rows else None}
    return web.Response(text=json.dumps(body, default=str), content_type="application/json")
