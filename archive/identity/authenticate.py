"""Authorization header → Identity, for every HTTP door (RFC 6750 bearer tokens).

No header: the anonymous identity (`--anonymous-role`). Any credentials that are sent must be
valid: a bad, expired or unknown token raises InvalidToken (401 `invalid_token`), never a silent
fall back to anonymous. Token kinds are told apart by shape: the legacy static curator token
(exact match, constant time), `arc_…` API keys, and three-part JWTs for OIDC.
"""

from __future__ import annotations

import hmac

from archive.identity.apikeys import ApiKeyStore, looks_like_key
from archive.identity.audit import AuditAction, AuditEvent, Outcome
from archive.identity.audit_log import AuditWriter
from archive.identity.errors import InvalidToken
from archive.identity.oidc import MAX_TOKEN_CHARS, OidcValidator
from archive.identity.roles import Identity, Kind, Role, anonymous

STATIC_CURATOR = "curator-token"  # the legacy --curator-token's subject in audit and logs


class Authenticator:
    def __init__(self, *, anonymous_role: str = "reader", curator_token: str | None = None,
                 keys: ApiKeyStore | None = None, oidc: OidcValidator | None = None,
                 audit: AuditWriter | None = None) -> None:
        anonymous(anonymous_role)  # validates the value once
        self.anonymous_role = anonymous_role
        self._curator_token = curator_token.encode() if curator_token else None
        self._keys = keys
        self._oidc = oidc
        self._audit = audit

    async def identify(self, authorization: str | None, source: str | None = None) -> Identity:
        """The caller's identity; InvalidToken (with a reason) for any bad credentials."""
        if not authorization:
            return anonymous(self.anonymous_role, source)
        try:
            return await self._identify(authorization, source)
        except InvalidToken as exc:
            if self._audit is not None:
                self._audit.record(AuditEvent.now(
                    AuditAction.USER_AUTHENTICATION, Identity("unknown", None, Kind.ANONYMOUS,
                                                              None, source),
                    outcome=Outcome.MINOR_FAILURE, detail={"reason": exc.reason}))
            raise

    async def _identify(self, authorization: str, source: str | None) -> Identity:
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer":
            raise InvalidToken("use Authorization: Bearer <token>")
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("malformed token")
        if self._curator_token is not None and hmac.compare_digest(
                token.encode("utf-8", "surrogatepass"), self._curator_token):
            return Identity(STATIC_CURATOR, Role.CURATOR, Kind.STATIC, None, source)
        if looks_like_key(token):
            if self._keys is None:
                raise InvalidToken("API keys are not enabled")
            return await self._keys.identify(token, source)
        if token.count(".") == 2:
            if self._oidc is None:
                raise InvalidToken("OIDC is not configured (--oidc-issuer)")
            return await self._oidc.validate(token, source)
        raise InvalidToken("unknown token")

    async def close(self) -> None:
        if self._oidc is not None:
            await self._oidc.close()
