"""Index side of storage safety: the identity stamp and the blob journal (migration 0006).

A new blob key is journaled "write" (with its writer's `owner` lock id) in a committed
statement before the blob reaches storage; the transaction that indexes it deletes that row and
journals as "unreferenced" every key it leaves without an index row (replaced, duplicate,
failed). Deletes journal their keys "unreferenced" in their own transaction. So every blob
without an index row this index caused is in the journal, and the sweep touches nothing else.

Claiming is by deleting the row: the sweep deletes rows (committed) before deleting blobs, and
the indexing transaction deletes the rows of its keys before indexing them, so for each key one
side wins: a key is indexed or swept, never both.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

WRITE = "write"
UNREFERENCED = "unreferenced"

_JOURNAL = text(
    """INSERT INTO blob_journal (blob_key, kind, owner)
       SELECT unnest(CAST(:keys AS text[])), :kind, :owner
       ON CONFLICT (blob_key) DO UPDATE SET kind = excluded.kind, owner = excluded.owner,
                                            created_at = now()"""
)
_CLAIM_FOR_INDEX = text(
    "DELETE FROM blob_journal WHERE blob_key = ANY(:keys) AND kind = 'write' RETURNING blob_key"
)
_OWNERS = text("SELECT DISTINCT owner FROM blob_journal WHERE kind = 'write' AND owner IS NOT NULL")
_CLAIM_FOR_SWEEP = text(
    """DELETE FROM blob_journal WHERE blob_key IN (
         SELECT j.blob_key FROM blob_journal j
         WHERE (j.kind = 'unreferenced' OR j.owner = ANY(:dead)
                OR j.created_at < now() - make_interval(secs => :grace))
           AND NOT EXISTS (SELECT 1 FROM instance i WHERE i.blob_key = j.blob_key)
         ORDER BY j.blob_key LIMIT :limit FOR UPDATE SKIP LOCKED)
       RETURNING blob_key"""
)


def new_owner() -> int:
    """A random advisory-lock id for one writer's lifetime (positive 63-bit)."""
    return secrets.randbits(62) + 1


async def hold_owner(conn: AsyncConnection, owner: int) -> None:
    """Take the session-level lock that tells sweeps this writer is alive."""
    await conn.execute(text("SELECT pg_advisory_lock(:o)"), {"o": owner})


async def journal(
    conn: AsyncConnection, keys: Sequence[str], kind: str, owner: int | None = None
) -> None:
    """Record keys that may be (or become) blobs without an index row."""
    if keys:
        await conn.execute(_JOURNAL, {"keys": list(keys), "kind": kind, "owner": owner})


async def claim_for_index(conn: AsyncConnection, keys: Sequence[str]) -> set[str]:
    """Inside the indexing transaction: take the keys' write rows; a key not returned was
    claimed by a sweep (its blob may be gone) and must not be indexed."""
    if not keys:
        return set()
    return set((await conn.execute(_CLAIM_FOR_INDEX, {"keys": list(keys)})).scalars())


async def dead_owners(conn: AsyncConnection) -> list[int]:
    """Writers with journaled writes whose lock nobody holds (their process or session ended)."""
    dead = []
    for owner in (await conn.execute(_OWNERS)).scalars():
        if (await conn.execute(text("SELECT pg_try_advisory_lock(:o)"), {"o": owner})).scalar():
            await conn.execute(text("SELECT pg_advisory_unlock(:o)"), {"o": owner})
            dead.append(int(owner))
    return dead


async def claim_for_sweep(
    conn: AsyncConnection, dead: list[int], grace_seconds: float, limit: int
) -> list[str]:
    """Delete and return journal rows whose blobs may be removed: unreferenced keys, writes of
    dead writers, and writes older than the grace period — never a key with an index row."""
    rows = await conn.execute(_CLAIM_FOR_SWEEP, {"dead": dead, "grace": float(grace_seconds),
                                                 "limit": limit})
    return list(rows.scalars())


@dataclass(frozen=True, slots=True)
class IndexState:
    stamp: str | None
    has_instances: bool


async def index_state(conn: AsyncConnection) -> IndexState:
    stamp = (await conn.execute(text("SELECT stamp FROM storage_identity"))).scalar()
    has = bool((await conn.execute(text("SELECT EXISTS (SELECT 1 FROM instance)"))).scalar())
    return IndexState(stamp, has)


async def known_keys(conn: AsyncConnection, keys: Sequence[str]) -> set[str]:
    rows = await conn.execute(
        text("SELECT blob_key FROM instance WHERE blob_key = ANY(:k)"), {"k": list(keys)})
    return set(rows.scalars())


async def lock_stamp(conn: AsyncConnection) -> None:
    """Serialise start-up pairing of several nodes (transaction-scoped advisory lock)."""
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('archive.storage_identity'))"))


async def write_stamp(conn: AsyncConnection, stamp: str) -> None:
    await conn.execute(
        text("INSERT INTO storage_identity (id, stamp) VALUES (1, :s) ON CONFLICT (id) DO NOTHING"),
        {"s": stamp},
    )
