"""Typed authentication and authorization errors; each door maps them once.

* `Unauthenticated` → HTTP 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3), no error code:
  the caller sent no credentials (or is anonymous) where a role is needed.
* `InvalidToken` → HTTP 401 `WWW-Authenticate: Bearer error="invalid_token"`: credentials were
  sent and are bad. Never a silent fall back to anonymous.
* `UnsupportedScheme` (an InvalidToken) → HTTP 401 with a bare `WWW-Authenticate: Bearer`:
  credentials of another scheme (Basic, Digest, …); RFC 6750 §3 says such an answer SHOULD NOT
  carry an error code. Still a refusal, never anonymous.
* `MalformedCredentials` (an InvalidToken) → HTTP 400 `error="invalid_request"` (RFC 6750
  §3.1): a Bearer header that breaks the RFC 6750 §2.1 syntax (empty, spaces or non-ASCII in the
  token, a tab for a space), or several Authorization headers in one request.
* `Forbidden` → HTTP 403 with the reason: a valid identity without the permission.
"""

from __future__ import annotations

from archive.errors import ArchiveError


class Unauthenticated(ArchiveError):
    """A role is needed and the caller is anonymous."""


class InvalidToken(ArchiveError):
    """Bad, expired, wrong-issuer, wrong-audience, unsigned or badly signed credentials."""


class UnsupportedScheme(InvalidToken):
    """Credentials were sent, in a scheme other than Bearer."""


class MalformedCredentials(InvalidToken):
    """The Authorization header is not a well-formed RFC 6750 bearer credential."""


class Forbidden(ArchiveError):
    """The identity is valid but lacks the permission; `reason` says which."""
