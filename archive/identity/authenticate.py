"""Authorization header → Identity, for every HTTP door (RFC 6750 bearer tokens).

No header: the anonymous identity (`--anonymous-role`). Any credentials that are sent must be
valid: a bad, expired or unknown token raises InvalidToken (401 `invalid_token`), never a silent
fall back to anonymous. Two subclasses follow RFC 6750 §3 more closely: another scheme (Basic,
Digest, …) is `UnsupportedScheme` (401 with a bare challenge), a header that breaks the §2.1
syntax `Bearer 1*SP b64token` (an empty value, a tab for the space, spaces or non-ASCII inside
the token) is `MalformedCredentials` (400 `invalid_request`). Token kinds are told apart by
shape: the legacy static curator token (exact match, constant time), `arc_…` API keys, and
three-part JWTs for OIDC.
"""

from __future__ import annotations

import hmac
import re

from archive.identity.apikeys import ApiKeyStore, looks_like_key
from archive.identity.audit import AuditAction, AuditEvent, Outcome
from archive.identity.audit_log import AuditWriter
from archive.identity.errors import InvalidToken, MalformedCredentials, UnsupportedScheme
from archive.identity.oidc import MAX_TOKEN_CHARS, OidcValidator
from archive.identity.roles import Identity, Kind, Role, anonymous

STATIC_CURATOR = "curator-token"  # the legacy --curator-token's subject in audit and logs
# RFC 7235 §2.1 credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]; RFC 6750 §2.1
# b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
CREDENTIALS = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+)(?: +(.*))?", re.DOTALL)
B64TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")


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
        """The caller's identity; InvalidToken (with a reason) for any bad credentials.

        None means no Authorization header; an empty header is malformed credentials."""
        if authorization is None:
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
        parsed = CREDENTIALS.fullmatch(authorization.strip(" \t"))  # HTTP strips OWS already
        if parsed is None:
            raise MalformedCredentials("malformed Authorization header: use Bearer <token>")
        scheme, token = parsed.group(1), (parsed.group(2) or "").strip(" ")
        if scheme.lower() != "bearer":
            raise UnsupportedScheme("use Authorization: Bearer <token>")
        if self._curator_token is not None and hmac.compare_digest(
                token.encode("utf-8", "surrogatepass"), self._curator_token):
            # before the syntax check: a legacy token may hold characters b64token does not
            return Identity(STATIC_CURATOR, Role.CURATOR, Kind.STATIC, None, source)
        if not B64TOKEN.fullmatch(token):
            raise MalformedCredentials("malformed token: Bearer needs one RFC 6750 b64token")
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("malformed token: too long")
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
