"""Patient scope: a patient is (PatientID, scope, collection) (issue 12 §4).

Revision ID: 0010
Revises: 0007
Create Date: 2026-11-29

Until now one patient row stood for a PatientID across every site and collection, so the last
writer's PatientName showed on everyone's studies. A patient is now scoped by
* `scope`: IssuerOfPatientID when present, else the contributing site (study.site), and
* `collection`: patient-level attributes never cross collections.

Splitting keeps every value: each existing row keeps the (scope, collection) of its oldest study;
for every other (scope, collection) among its studies a copy of the row (same attributes: which
site wrote them is not recorded) is made and those studies are re-pointed. Patient rows without
studies keep scope = issuer and collection 'public'.
"""

from alembic import op

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = None

_SCOPE = "COALESCE(NULLIF(p.issuer, ''), s.site, '')"

UPGRADE = [
    "ALTER TABLE patient ADD COLUMN IF NOT EXISTS scope text NOT NULL DEFAULT ''",
    "ALTER TABLE patient ADD COLUMN IF NOT EXISTS collection text NOT NULL DEFAULT 'public'",
    "ALTER TABLE patient DROP CONSTRAINT IF EXISTS patient_patient_id_issuer_key",
    "UPDATE patient SET scope = issuer",
    # every (patient, scope, collection) its studies need, the oldest study's group first
    f"""
    CREATE TEMP TABLE patient_split AS
    SELECT p.pk AS old_pk, {_SCOPE} AS scope, s.collection,
           row_number() OVER (PARTITION BY p.pk ORDER BY min(s.pk)) AS n,
           NULL::bigint AS new_pk
    FROM patient p JOIN study s ON s.patient_pk = p.pk
    GROUP BY p.pk, {_SCOPE}, s.collection
    """,
    """
    UPDATE patient p SET scope = ps.scope, collection = ps.collection
    FROM patient_split ps WHERE ps.old_pk = p.pk AND ps.n = 1
    """,
    "UPDATE patient_split SET new_pk = old_pk WHERE n = 1",
    "UPDATE patient_split SET new_pk = nextval(pg_get_serial_sequence('patient', 'pk')) WHERE n > 1",
    """
    INSERT INTO patient (pk, patient_id, issuer, scope, collection, patient_name,
                         patient_birth_date, patient_sex, attrs, created_at, updated_at)
    SELECT ps.new_pk, p.patient_id, p.issuer, ps.scope, ps.collection, p.patient_name,
           p.patient_birth_date, p.patient_sex, p.attrs, p.created_at, p.updated_at
    FROM patient_split ps JOIN patient p ON p.pk = ps.old_pk WHERE ps.n > 1
    """,
    f"""
    UPDATE study s SET patient_pk = ps.new_pk
    FROM patient p, patient_split ps
    WHERE p.pk = s.patient_pk AND ps.old_pk = p.pk AND ps.n > 1
      AND ps.scope = {_SCOPE} AND ps.collection = s.collection
    """,
    "DROP TABLE patient_split",
    "ALTER TABLE patient ADD CONSTRAINT patient_scope_key UNIQUE (patient_id, scope, collection)",
]

# Down: merge the split rows back into one per (PatientID, issuer); the lowest pk survives.
DOWNGRADE = [
    """
    CREATE TEMP TABLE patient_merge AS
    SELECT pk, min(pk) OVER (PARTITION BY patient_id, issuer) AS keep FROM patient
    """,
    """
    UPDATE study s SET patient_pk = pm.keep FROM patient_merge pm
    WHERE s.patient_pk = pm.pk AND pm.pk <> pm.keep
    """,
    "DELETE FROM patient p USING patient_merge pm WHERE p.pk = pm.pk AND pm.pk <> pm.keep",
    "DROP TABLE patient_merge",
    "ALTER TABLE patient DROP CONSTRAINT IF EXISTS patient_scope_key",
    "ALTER TABLE patient ADD CONSTRAINT patient_patient_id_issuer_key UNIQUE (patient_id, issuer)",
    "ALTER TABLE patient DROP COLUMN IF EXISTS collection",
    "ALTER TABLE patient DROP COLUMN IF EXISTS scope",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
