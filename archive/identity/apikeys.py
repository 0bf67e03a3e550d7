"""API keys for scripts and gateways: `Authorization: Bearer arc_…`, stored hashed.

A key is 32 random bytes (256 bits), so SHA-256 of it is a safe, constant-cost digest: there is
no password to guess, and lookup by digest is one indexed query. Keys are managed by the CLI
directly in the database (`archive keys …`); the server re-reads a key at most every
`cache_seconds`, so a revocation takes effect within seconds whether or not it ran in-process.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from archive.errors import ArchiveUnavailable, InvalidRequest
from archive.identity.errors import InvalidToken
from archive.identity.roles import Identity, Kind, Role
from archive.index import api_keys as rows_of
from archive.index.db_errors import AnyDatabaseError
from archive.index.handles import Connection, Engine

PREFIX = "arc_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    name: str
    role: Role
    site: str | None
    created: datetime
    expires: datetime | None
    revoked: datetime | None

    def status(self, now: datetime) -> str:
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and self.expires <= now:
            return "expired"
        return "active"


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def looks_like_key(token: str) -> bool:
    return token.startswith(PREFIX)


def _row(m: rows_of.KeyRow) -> ApiKey:
    return ApiKey(m["name"], Role.parse(m["role"]), m["site"], m["created"], m["expires"],
                  m["revoked"])


async def create_key(conn: Connection, name: str, role: Role, site: str | None = None,
                     expires_days: int | None = None) -> tuple[ApiKey, str]:
    """Store a new key; returns it and its secret (shown once, never stored)."""
    if not NAME.match(name):
        raise InvalidRequest(f"bad key name {name!r}: 1-64 of A-Z a-z 0-9 _ . @ -")
    if role is Role.CONTRIBUTOR and not site:
        raise InvalidRequest("a contributor key needs --site (contributors store into their site)")
    if expires_days is not None and expires_days <= 0:
        raise InvalidRequest("--expires-days must be a positive number of days")
    now = datetime.now(UTC)
    expires = now + timedelta(days=expires_days) if expires_days else None
    secret = new_secret()
    if not await rows_of.insert_key(conn, name=name, role=role.label, site=site or None,
                                    digest=secret_hash(secret), created=now, expires=expires):
        raise InvalidRequest(f"a key named {name!r} exists (names are never reused)")
    return ApiKey(name, role, site or None, now, expires, None), secret


async def list_keys(conn: Connection) -> list[ApiKey]:
    return [_row(r) for r in await rows_of.all_keys(conn)]


async def revoke_key(conn: Connection, name: str) -> bool:
    """Revoke by name; False when no active key has that name."""
    return await rows_of.revoke(conn, name)


async def find_key(conn: Connection, secret: str) -> ApiKey | None:
    """The active (unrevoked, unexpired) key with this secret, if any."""
    row = await rows_of.active_key(conn, secret_hash(secret))
    return _row(row) if row is not None else None


class ApiKeyStore:
    """The server's view of the keys: one indexed lookup per key per `cache_seconds`."""

    def __init__(self, engine: Engine, cache_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._ttl = cache_seconds
        self._clock = clock
        self._cache: dict[bytes, tuple[float, ApiKey]] = {}

    async def identify(self, secret: str, source: str | None = None) -> Identity:
        key = await self._lookup(secret)
        if key is None:
            raise InvalidToken("unknown, revoked or expired API key")
        if key.expires is not None and key.expires <= datetime.now(UTC):
            raise InvalidToken("unknown, revoked or expired API key")
        return Identity(key.name, key.role, Kind.API_KEY, key.site, source)

    async def _lookup(self, secret: str) -> ApiKey | None:
        digest = secret_hash(secret)
        now = self._clock()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        try:
            async with self._engine.connect() as conn:
                key = await find_key(conn, secret)
        except (OSError, AnyDatabaseError) as exc:  # 503, not 401: the key may well be valid
            raise ArchiveUnavailable("cannot check API keys: the index is unreachable") from exc
        if key is None:
            self._cache.pop(digest, None)
            return None
        if len(self._cache) > 10_000:  # bounded: valid keys only, so this is rare
            self._cache.clear()
        self._cache[digest] = (now, key)
        return key
