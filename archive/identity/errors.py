"""Typed authentication and authorization errors; each door maps them once.

* `Unauthenticated` → HTTP 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3), no error code:
  the caller sent no credentials (or is anonymous) where a role is needed.
* `InvalidToken` → HTTP 401 `WWW-Authenticate: Bearer error="invalid_token"`: credentials were
  sent and are bad. Never a silent fall back to anonymous.
* `Forbidden` → HTTP 403 with the reason: a valid identity without the permission.
"""

from __future__ import annotations

from archive.errors import ArchiveError


class Unauthenticated(ArchiveError):
    """A role is needed and the caller is anonymous."""


class InvalidToken(ArchiveError):
    """Bad, expired, wrong-issuer, wrong-audience, unsigned or badly signed credentials."""


class Forbidden(ArchiveError):
    """The identity is valid but lacks the permission; `reason` says which."""
