"""OIDC bearer tokens: validate JWT access tokens against the issuer's discovery document + JWKS.

PyJWT (with `cryptography`) does the signature and claim checks: it is small, widely used and
lets us pass the exact key and algorithm, so we never run hand-written crypto. We fetch the
discovery document and JWKS ourselves over aiohttp, because PyJWT's `PyJWKClient` is blocking
and has no rate limit on refetches.

Rules (issue 12): asymmetric algorithms only (`none` and HS* are rejected before any key is
looked up, so an HMAC-with-the-public-key confusion cannot happen); `iss` must equal the
configured issuer, `aud` must contain the configured audience, `exp`/`nbf` get a small leeway.
An unknown `kid` triggers one JWKS refetch, at most once per `min_refetch_seconds`, so a flood
of forged kids cannot make us hammer the provider.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

from archive.config import Settings
from archive.errors import ConfigError
from archive.identity.errors import InvalidToken
from archive.identity.roles import Identity, Kind, Role

ASYMMETRIC_ALGORITHMS = frozenset({
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
})
MAX_TOKEN_CHARS = 16 * 1024


@dataclass(frozen=True, slots=True)
class OidcConfig:
    issuer: str
    audience: str
    roles_claim: str = "roles"
    site_claim: str = "site"
    leeway_seconds: float = 30.0
    min_refetch_seconds: float = 10.0  # like Keycloak's min-time-between-jwks-requests
    jwks_max_age_seconds: float = 3600.0
    http_timeout_seconds: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig | None:
        """None when OIDC is off; an issuer without an audience is a configuration error,
        because any token the provider issues for any client would otherwise be accepted."""
        if not settings.oidc_issuer:
            return None
        if not settings.oidc_audience:
            raise ConfigError("--oidc-issuer needs --oidc-audience (ARCHIVE_OIDC_AUDIENCE)")
        return cls(settings.oidc_issuer.rstrip("/"), settings.oidc_audience,
                   settings.oidc_roles_claim, settings.oidc_site_claim)


def claim_at(claims: dict[str, Any], path: str) -> Any:
    """A claim by dotted path (`realm_access.roles`); a literal key with dots wins."""
    if path in claims:
        return claims[path]
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def role_from(value: Any) -> Role:
    """The highest archive role named in a roles claim (list or space-separated string).

    A valid token that names no archive role is a reader: holding a token for this audience
    means the provider registered the user; anything more must be granted explicitly.
    """
    names = value.split() if isinstance(value, str) else value if isinstance(value, list) else []
    found = [Role[n.upper()] for n in names if isinstance(n, str) and n.upper() in Role.__members__]
    return max(found, default=Role.READER)


class KeySet:
    """The provider's JWKS, cached; refetched when stale or (rate-limited) on an unknown kid."""

    def __init__(self, config: OidcConfig, session: aiohttp.ClientSession,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._session = session
        self._clock = clock
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._jwks_uri: str | None = None
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # JWKS downloads so far (tests and metrics)

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        if self._needs_refresh(kid):
            async with self._lock:
                if self._needs_refresh(kid):  # another task may have refreshed meanwhile
                    await self._refresh()
        return self._known(kid)

    def _known(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _needs_refresh(self, kid: str | None) -> bool:
        if self._fetched_at is None:
            return True
        age = self._clock() - self._fetched_at
        if age > self.config.jwks_max_age_seconds:
            return True
        return self._known(kid) is None and age >= self.config.min_refetch_seconds

    async def _refresh(self) -> None:
        try:
            if self._jwks_uri is None:
                self._jwks_uri = await self._discover()
            jwks = await self._get_json(self._jwks_uri)
            keys = jwt.PyJWKSet.from_dict(jwks).keys
        except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWKSetError) as exc:
            self._fetched_at = self._clock()  # rate-limit retries against a failing provider
            raise InvalidToken(f"cannot load the issuer's signing keys: {exc}") from exc
        self.fetches += 1
        self._fetched_at = self._clock()
        self._keys = {k.key_id: k for k in keys if getattr(k, "public_key_use", "sig") in (None, "sig")}

    async def _discover(self) -> str:
        doc = await self._get_json(f"{self.config.issuer}/.well-known/openid-configuration")
        if doc.get("issuer", "").rstrip("/") != self.config.issuer:  # OIDC Discovery §4.3
            raise ValueError(f"discovery issuer {doc.get('issuer')!r} is not {self.config.issuer!r}")
        uri = doc.get("jwks_uri")
        if not isinstance(uri, str):
            raise ValueError("discovery document has no jwks_uri")
        return uri

    async def _get_json(self, url: str) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=self.config.http_timeout_seconds)
        async with self._session.get(url, timeout=timeout) as r:
            if r.status != 200:
                raise ValueError(f"GET {url}: HTTP {r.status}")
            data = await r.json(content_type=None)
        if not isinstance(data, dict):
            raise ValueError(f"GET {url}: not a JSON object")
        return data


_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.MissingRequiredClaimError, "missing claim"),
)


class OidcValidator:
    """Turns a bearer JWT into an Identity or raises InvalidToken(reason)."""

    def __init__(self, config: OidcConfig, session: aiohttp.ClientSession | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._own_session = session is None
        self._session = session or aiohttp.ClientSession()
        self.keys = KeySet(config, self._session, clock)

    async def close(self) -> None:
        if self._own_session:
            await self._session.close()

    async def validate(self, token: str, source: str | None = None) -> Identity:
        claims = await self.claims(token)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise InvalidToken("missing claim: sub")
        site = claim_at(claims, self.config.site_claim)
        return Identity(sub, role_from(claim_at(claims, self.config.roles_claim)), Kind.OIDC,
                        site if isinstance(site, str) and site else None, source)

    async def claims(self, token: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            raise InvalidToken("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.InvalidTokenError, ValueError, RecursionError) as exc:
            # RecursionError: a deeply nested JSON header (the fuzz in tests/identity found it)
            raise InvalidToken("malformed token") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS:  # a list: unhashable
            raise InvalidToken(f"algorithm {alg!r} not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("malformed token")
        key = await self.keys.key(kid)
        if key is None:
            raise InvalidToken("unknown signing key")
        if key.algorithm_name != alg and not _compatible(key, alg):
            raise InvalidToken(f"key {kid!r} does not sign with {alg}")
        return self._decode(token, key, alg)

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=[alg], audience=self.config.audience,
                issuer=self.config.issuer, leeway=self.config.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            reason = next((r for cls, r in _REASONS if isinstance(exc, cls)), "invalid token")
            if reason == "missing claim":
                reason = f"missing claim: {getattr(exc, 'claim', '?')}"
            raise InvalidToken(reason) from exc
        return claims


def _compatible(key: jwt.PyJWK, alg: str) -> bool:
    """A JWK without `alg` is usable with any algorithm of its key type (RFC 7517 §4.4)."""
    kty = key.key_type
    return ((kty == "RSA" and alg[:2] in ("RS", "PS")) or (kty == "EC" and alg.startswith("ES"))
            or (kty == "OKP" and alg == "EdDSA"))
