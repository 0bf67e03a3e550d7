"""The one mapping from archive errors to HTTP statuses (PS3.18 §8.6 status codes).

Only ArchiveError subclasses are mapped to 4xx/5xx with their reason; anything else is a bug:
logged with a request id and answered 500 without internals.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from archive import errors as e
from archive.identity import errors as auth
from archive.index.db_errors import is_unavailable
from dicomweb import cut

log = logging.getLogger("dicomweb")

STATUS: list[tuple[type[e.ArchiveError], int]] = [
    (auth.Unauthenticated, 401),
    (auth.MalformedCredentials, 400),  # RFC 6750 §3.1 invalid_request
    (auth.InvalidToken, 401),
    (auth.Forbidden, 403),
    (e.NotFound, 404),
    (e.Forbidden, 403),
    (e.NotAllowed, 405),
    (e.UnsupportedMediaType, 415),
    (e.NotAcceptable, 406),
    (e.PayloadTooLarge, 413),
    (e.StorageFull, 507),
    (e.ArchiveUnavailable, 503),
    (e.InvalidQuery, 400),
    (e.RequestTimeout, 408),
    (e.InvalidRequest, 400),
    (e.Conflict, 409),
    (e.StudyMismatch, 409),
    (e.DuplicateInstance, 409),
    (e.OwnershipConflict, 409),
    (e.InvalidInstance, 400),
    (e.ConfigError, 500),
    (e.ArchiveError, 400),
]


def status_for(exc: e.ArchiveError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def warning_header(reason: str, limit: int = 500) -> str:
    """PS3.18 §8.6.2 Warning value; one printable ASCII line, whatever the reason text holds."""
    one_line = " ".join(reason.split()).replace('"', "'")
    printable = "".join(c if " " <= c <= "~" else "?" for c in one_line)  # no control bytes
    return f'299 - "{printable[:limit]}"'


def error_response(status: int, reason: str, details: dict[str, object] | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps({"error": reason, "status": status} | (details or {}))
    return web.Response(
        status=status,
        text=body,
        content_type="application/json",
        headers={"Warning": warning_header(reason)}
        | ({"Retry-After": "30"} if status == 503 else {})  # unavailable: worth retrying
        | (headers or {}),
    )


RETRY_AFTER_SECONDS = 5


def challenge(exc: e.ArchiveError) -> str | None:
    """RFC 6750 §3 WWW-Authenticate for a 401: bare for missing credentials or another scheme,
    `invalid_token` (with its reason) for bad ones; `invalid_request` for a malformed header."""
    if isinstance(exc, auth.MalformedCredentials):
        return 'Bearer realm="archive", error="invalid_request"'
    if isinstance(exc, auth.UnsupportedScheme):
        return 'Bearer realm="archive"'  # RFC 6750 §3: no error code for another scheme
    if isinstance(exc, auth.InvalidToken):
        reason = " ".join(exc.reason.split()).replace('"', "'").replace("\\", "/")
        return (f'Bearer realm="archive", error="invalid_token", '
                f'error_description="{reason.encode("ascii", "replace").decode()[:200]}"')
    if isinstance(exc, auth.Unauthenticated):
        return 'Bearer realm="archive"'
    return None


def archive_error_response(exc: e.ArchiveError) -> web.Response:
    """The response for a typed core error: status, reason, the error's details, Allow,
    WWW-Authenticate."""
    headers = {"Allow": ",".join(sorted(exc.allowed))} if isinstance(exc, e.NotAllowed) else {}
    if (www := challenge(exc)) is not None:
        headers["WWW-Authenticate"] = www
    if status_for(exc) == 503:  # the database or storage is down: the client should come back
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return error_response(status_for(exc), exc.reason, exc.details(), headers or None)


def log_refusal(request: web.Request, status: int, reason: str) -> None:
    """Every 4xx is logged with its reason at INFO, so a refused sender can be diagnosed."""
    log.info("%s %s -> %d: %s", request.method, request.path, status, reason,
             extra={"status": status, "peer": request.remote})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    from dicomweb.keys import CORE

    core = request.app[CORE]
    core.requests_in_flight += 1
    try:
        return await handler(request)
    except e.ArchiveError as exc:
        core.metrics.errors.labels("http", type(exc).__name__).inc()
        if cut.started(request):  # a streaming handler failed after its 200: no status left
            cut.cut(request, "response", exc)
        elif status_for(exc) < 500:
            log_refusal(request, status_for(exc), exc.reason)
        return archive_error_response(exc)
    except web.HTTPException as exc:
        if 400 <= exc.status < 500:
            log_refusal(request, exc.status, exc.reason)
        raise
    except Exception as exc:
        if is_unavailable(exc):  # PostgreSQL down or shutting down: 503, retry later
            log.warning("%s %s -> 503: database unavailable: %s", request.method, request.path,
                        getattr(exc, "orig", exc))
            response = archive_error_response(e.ArchiveUnavailable("database unavailable, retry"))
        else:
            rid = uuid.uuid4().hex[:12]
            log.exception("unhandled error", extra={"request_id": rid, "path": request.path})
            response = error_response(500, f"internal error (request id {rid})")
        if cut.started(request):  # the status would land inside the body already sent
            cut.cut(request, "response", exc)
        return response
    finally:
        core.requests_in_flight -= 1
