"""Identity: API keys (hashed) and the append-only audit trail (issue 12).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

* `api_key`: scripts' and gateways' bearer keys; only SHA-256 of the 256-bit random secret is
  stored (a fast hash is right for high-entropy secrets: there is nothing to brute-force).
  Names stay unique after revocation so the audit trail's actor names never become ambiguous.
* `audit_event`: one row per audited action, named after DICOM PS3.15 A.5 events. Append-only:
  a trigger refuses UPDATE, DELETE and TRUNCATE for every role (REVOKE alone does not bind the
  table owner, which is what the archive connects as).
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS api_key (
        pk bigserial PRIMARY KEY,
        name text NOT NULL UNIQUE,
        role text NOT NULL CHECK (role IN ('reader', 'contributor', 'curator', 'admin')),
        site text,
        secret_hash bytea NOT NULL UNIQUE,
        created timestamptz NOT NULL DEFAULT now(),
        expires timestamptz,
        revoked timestamptz
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS audit_event (
        pk bigserial PRIMARY KEY,
        time timestamptz NOT NULL,
        action text NOT NULL,
        event_action char(1) NOT NULL CHECK (event_action IN ('C', 'R', 'U', 'D', 'E')),
        outcome smallint NOT NULL CHECK (outcome IN (0, 4, 8, 12)),
        actor text NOT NULL,
        role text,
        kind text,
        site text,
        source text,
        study_uids text[] NOT NULL DEFAULT '{}',
        detail jsonb NOT NULL DEFAULT '{}'
    )
    """,
    "CREATE INDEX IF NOT EXISTS audit_event_time_idx ON audit_event (time)",
    "CREATE INDEX IF NOT EXISTS audit_event_actor_idx ON audit_event (actor, time)",
    "CREATE INDEX IF NOT EXISTS audit_event_study_idx ON audit_event USING gin (study_uids)",
    """
    CREATE OR REPLACE FUNCTION archive_audit_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $fn$
    BEGIN
        RAISE EXCEPTION 'audit_event is append-only' USING ERRCODE = 'insufficient_privilege';
    END
    $fn$
    """,
    "DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event",
    "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event "
    "FOR EACH ROW EXECUTE FUNCTION archive_audit_append_only()",
    "DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event",
    "CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event "
    "FOR EACH STATEMENT EXECUTE FUNCTION archive_audit_append_only()",
    "REVOKE UPDATE, DELETE, TRUNCATE ON audit_event FROM PUBLIC",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS audit_event")
    op.execute("DROP FUNCTION IF EXISTS archive_audit_append_only()")
    op.execute("DROP TABLE IF EXISTS api_key")
