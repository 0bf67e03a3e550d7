"""Stored digests by SOP Instance UID: how group commit recognises identical re-sends."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.index.tables import instance


async def stored_digests(conn: AsyncConnection, sop_uids: Iterable[str]) -> dict[str, str]:
    """{sop_uid: sha256} for those of `sop_uids` already indexed (one lookup per batch)."""
    uids = list(set(sop_uids))
    rows = (await conn.execute(
        select(instance.c.sop_uid, instance.c.sha256).where(instance.c.sop_uid.in_(uids)))).all()
    return {r.sop_uid: r.sha256 for r in rows}
