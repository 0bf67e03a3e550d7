"""Stored digests by SOP Instance UID: how group commit recognises identical re-sends, and
journals the blob keys of everything else in the same statement."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from archive.index.driver import autocommit, statement

# One statement (one round trip; on the committer's autocommit lease it commits by itself):
# the digests already indexed for the batch's SOP instances, and a blob-journal "write" row
# (archive.index.blob_journal) for every entry that is not an identical re-send of one of them.
_DIGESTS_AND_JOURNAL = statement(
    """
    WITH batch AS (
        SELECT * FROM unnest(CAST(:keys AS text[]), CAST(:sops AS text[]),
                             CAST(:shas AS text[])) AS b(blob_key, sop_uid, sha256)
    ), found AS (
        SELECT i.sop_uid, i.sha256 FROM instance i WHERE i.sop_uid = ANY(CAST(:sops AS text[]))
    ), journaled AS (
        INSERT INTO blob_journal (blob_key, kind, owner)
        SELECT b.blob_key, 'write', :owner FROM batch b
        WHERE NOT EXISTS (SELECT 1 FROM found f
                          WHERE f.sop_uid = b.sop_uid AND f.sha256 = b.sha256)
        ON CONFLICT (blob_key) DO UPDATE SET kind = excluded.kind, owner = excluded.owner,
                                             created_at = now()
    )
    SELECT sop_uid, sha256 FROM found
    """
)


async def stored_digests_and_journal(
    conn: AsyncConnection, entries: Sequence[tuple[str, str, str]], owner: int
) -> dict[str, str]:
    """For entries (blob key, SOP Instance UID, sha256): {sop_uid: sha256} of those already
    indexed, having journaled as written by `owner` the key of every entry whose SOP instance
    is not indexed with the same digest (those are the blobs the caller will write).
    `conn` is an AUTOCOMMIT connection (the statement commits by itself, through the driver:
    archive.index.driver); errors come unwrapped (db_errors.DRIVER_ERRORS)."""
    if not entries:
        return {}
    keys, sops, shas = (list(col) for col in zip(*entries, strict=True))
    rows = await _DIGESTS_AND_JOURNAL.fetch(
        await autocommit(conn), {"keys": keys, "sops": sops, "shas": shas, "owner": owner})
    return {r["sop_uid"]: r["sha256"] for r in rows}
