"""Cohorts belong to their creator; a curator may publish one (issue 12).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29

* `cohort.owner`: "kind:subject" of the identity that created it (an API key's name, a token's
  subject). Cohorts made before this revision have no owner: they are marked published, so
  everyone who could read them before still can.
* `cohort.published_at`: set by `POST /commons/cohorts/{id}/publish`; a published cohort's root
  and manifest are readable by every reader (visibility of its studies still applies).
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE cohort ADD COLUMN IF NOT EXISTS owner text")
    op.execute("ALTER TABLE cohort ADD COLUMN IF NOT EXISTS published_at timestamptz")
    op.execute("UPDATE cohort SET published_at = created_at WHERE owner IS NULL")
    op.execute("CREATE INDEX IF NOT EXISTS cohort_owner_idx ON cohort (owner)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS cohort_owner_idx")
    op.execute("ALTER TABLE cohort DROP COLUMN IF EXISTS published_at")
    op.execute("ALTER TABLE cohort DROP COLUMN IF EXISTS owner")
