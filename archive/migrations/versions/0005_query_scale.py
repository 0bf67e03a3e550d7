"""Query at scale: a stored folded patient name and a partial index of visible studies.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21

* `patient.patient_name_folded` = archive_fold_name(patient_name), a STORED generated column:
  folding a name costs ~60 µs, so a fuzzy query that folded every patient per query took
  300 ms at 5,000 patients; the stored value is read like any column (and trigram-indexed
  when pg_trgm exists; without it a scan of the narrow column is a few ms).
* `study_visible_pk_idx` (pk) WHERE collection <> 'sequestered': the study list in pk order
  for callers without the sequestered right (every QIDO page, deep offsets) walks this index
  instead of the primary key plus a heap check per study.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TRIGRAM = """
DO $trgm$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX IF NOT EXISTS patient_name_folded_trgm_idx ON patient '
                'USING gin (patient_name_folded gin_trgm_ops)';
    END IF;
EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported THEN
    RAISE NOTICE 'pg_trgm not available: fuzzy name queries scan patient_name_folded';
END
$trgm$
"""

STATEMENTS = [
    "ALTER TABLE patient ADD COLUMN IF NOT EXISTS patient_name_folded text "
    "GENERATED ALWAYS AS (archive_fold_name(patient_name)) STORED",
    "CREATE INDEX IF NOT EXISTS study_visible_pk_idx ON study (pk) "
    "WHERE collection <> 'sequestered'",
    TRIGRAM,
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS patient_name_folded_trgm_idx")
    op.execute("DROP INDEX IF EXISTS study_visible_pk_idx")
    op.execute("ALTER TABLE patient DROP COLUMN IF EXISTS patient_name_folded")
