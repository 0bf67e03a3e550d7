"""The api_key table's SQL: API keys stored by the SHA-256 of their secret (never the secret).

`archive.identity.apikeys` owns the rules (names, roles, expiry, the lookup cache); this module
only reads and writes rows, handing back plain mappings.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.index.identity_tables import api_key

KeyRow = Mapping[str, Any]  # name, role (label), site, created, expires, revoked


async def insert_key(conn: AsyncConnection, *, name: str, role: str, site: str | None,
                     digest: bytes, created: datetime, expires: datetime | None) -> bool:
    """Store a key in a savepoint; False when the name is taken (names are never reused)."""
    try:
        async with conn.begin_nested():
            await conn.execute(insert(api_key).values(
                name=name, role=role, site=site, secret_hash=digest, created=created,
                expires=expires))
    except IntegrityError:
        return False
    return True


async def all_keys(conn: AsyncConnection) -> list[KeyRow]:
    rows = await conn.execute(select(api_key).order_by(api_key.c.name))
    return [dict(r._mapping) for r in rows]


async def revoke(conn: AsyncConnection, name: str) -> bool:
    """Revoke the active key of this name; False when there is none."""
    res = await conn.execute(update(api_key).where(api_key.c.name == name,
                                                   api_key.c.revoked.is_(None))
                             .values(revoked=func.now()))
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def active_key(conn: AsyncConnection, digest: bytes) -> KeyRow | None:
    """The unrevoked, unexpired key whose secret hashes to `digest`, if any."""
    rows = await conn.execute(select(api_key).where(
        api_key.c.secret_hash == digest, api_key.c.revoked.is_(None),
        (api_key.c.expires.is_(None)) | (api_key.c.expires > func.now())))
    row = rows.first()
    return dict(row._mapping) if row is not None else None
