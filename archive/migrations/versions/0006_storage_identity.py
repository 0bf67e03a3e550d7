"""Storage identity stamp and blob journal: no start-up sweep can delete acknowledged data.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

* `storage_identity`: one row holding the stamp also written into the blob store (its
  `STORAGE_ID` file); the archive refuses to start when the two differ (archive.sweep).
* `blob_journal`: keys written to storage before their index row commits ("write", removed in
  the indexing transaction) and keys a replace or delete left unreferenced ("unreferenced",
  written in that transaction). The orphan sweep deletes only journaled keys with no index row,
  and "write" keys only once their writer is gone (its `owner` advisory lock is free) or after
  a grace period; it claims a key by deleting its row first, and the indexing transaction
  deletes the rows of its keys too, so a key is either indexed or swept, never both.
  A blob the journal does not name is never touched.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE storage_identity (
            id integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            stamp text NOT NULL,
            stamped_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE blob_journal (
            blob_key text PRIMARY KEY,
            kind text NOT NULL CHECK (kind IN ('write', 'unreferenced')),
            owner bigint,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE blob_journal")
    op.execute("DROP TABLE storage_identity")
