"""The audit_event table's SQL: batched inserts and filtered, pk-paged reads.

`archive.identity.audit_log` owns the writer (queue, batching, retries, sinks) and turns rows
into `AuditEvent`s; this module only runs the statements.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.index.identity_tables import audit_event

# One statement for any batch size: one array per column, unnested into rows. The plan is
# prepared once per connection (a multi-row VALUES would be a new statement for every size).
# UIDs never contain a backslash, so a study list travels as one backslash-joined string.
INSERT = text("""
    INSERT INTO audit_event (time, action, event_action, outcome, actor, role, kind, site, source,
                             study_uids, detail)
    SELECT t, a, ea, o, ac, r, k, si, so, string_to_array(u, E'\\\\'), d::jsonb
    FROM unnest(CAST(:time AS timestamptz[]), CAST(:action AS text[]),
                CAST(:event_action AS text[]), CAST(:outcome AS smallint[]),
                CAST(:actor AS text[]), CAST(:role AS text[]), CAST(:kind AS text[]),
                CAST(:site AS text[]), CAST(:source AS text[]), CAST(:uids AS text[]),
                CAST(:detail AS text[])) AS x(t, a, ea, o, ac, r, k, si, so, u, d)
""")


async def insert_events(conn: AsyncConnection, columns: Mapping[str, list[Any]]) -> None:
    """One batch, as one array per column: time, action, event_action, outcome, actor, role,
    kind, site, source, uids (backslash-joined study UIDs), detail (JSON text)."""
    await conn.execute(INSERT, dict(columns))


async def event_rows(conn: AsyncConnection, *, actor: str | None = None,
                     study: str | None = None, action: str | None = None,
                     since: datetime | None = None, until: datetime | None = None,
                     after_pk: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
    """Rows in pk (time) order after `after_pk`, filtered; `action` is the stored code."""
    q = select(audit_event).where(audit_event.c.pk > after_pk)
    if actor:
        q = q.where(audit_event.c.actor == actor)
    if study:
        q = q.where(audit_event.c.study_uids.contains([study]))
    if action:
        q = q.where(audit_event.c.action == action)
    if since:
        q = q.where(audit_event.c.time >= since)
    if until:
        q = q.where(audit_event.c.time < until)
    rows = await conn.execute(q.order_by(audit_event.c.pk).limit(limit))
    return [dict(r._mapping) for r in rows]
