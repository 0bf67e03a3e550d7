"""Commons curation: numbered releases, sticky case partitions, overrides, test sets (issue 16).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29

* `data_release`: one row per numbered release (datasets, seed, fraction, strata attributes,
  counts by partition and stratum as JSON, notes). Append-only by use: a release is a record.
* `case_partition`: each case (patient id) is open or sequestered, decided once by the release
  that first saw it (sticky); later batches of the case follow it. A curator override changes
  it and is recorded in `partition_override` with its reason.
* `release_study`: which release published each study (a study is released once).
* `cohort_release`: the release a cohort was built on (reproducible research).
* `testset` / `testset_case`: task-based test sets; each is a restricted cohort, and its cases
  are not drawn again by default.
Staged studies carry `collection = 'staged'` (no new study column: the visibility rule stays a
comparison on `collection`, and the partial index of visible studies still applies).
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

STATEMENTS = [
    """
    CREATE TABLE IF NOT EXISTS data_release (
        number integer PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now(),
        datasets text[] NOT NULL,
        seed bigint NOT NULL,
        fraction double precision NOT NULL,
        attributes text[] NOT NULL,
        counts jsonb NOT NULL,
        notes text,
        created_by text
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS case_partition (
        case_id text PRIMARY KEY,
        partition text NOT NULL CHECK (partition IN ('open', 'sequestered')),
        release_number integer NOT NULL REFERENCES data_release (number),
        overridden boolean NOT NULL DEFAULT false,
        assigned_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS partition_override (
        pk bigserial PRIMARY KEY,
        case_id text NOT NULL REFERENCES case_partition (case_id),
        from_partition text NOT NULL,
        to_partition text NOT NULL,
        reason text NOT NULL,
        curator text,
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS release_study (
        study_pk bigint PRIMARY KEY REFERENCES study (pk) ON DELETE CASCADE,
        release_number integer NOT NULL REFERENCES data_release (number)
    )
    """,
    "CREATE INDEX IF NOT EXISTS release_study_release_idx ON release_study (release_number)",
    """
    CREATE TABLE IF NOT EXISTS cohort_release (
        cohort_id uuid PRIMARY KEY REFERENCES cohort (id) ON DELETE CASCADE,
        release_number integer REFERENCES data_release (number)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS testset (
        cohort_id uuid PRIMARY KEY REFERENCES cohort (id) ON DELETE CASCADE,
        name text NOT NULL,
        size integer NOT NULL,
        seed bigint NOT NULL,
        targets jsonb NOT NULL,
        distribution jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS testset_case (
        cohort_id uuid NOT NULL REFERENCES testset (cohort_id) ON DELETE CASCADE,
        case_id text NOT NULL,
        PRIMARY KEY (cohort_id, case_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS testset_case_case_idx ON testset_case (case_id)",
    "CREATE INDEX IF NOT EXISTS study_staged_idx ON study (dataset) WHERE collection = 'staged'",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS study_staged_idx")
    for table in ("testset_case", "testset", "cohort_release", "release_study",
                  "partition_override", "case_partition", "data_release"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
