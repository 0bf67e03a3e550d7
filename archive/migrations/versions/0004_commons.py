"""commons schema additions: clinical data, LOINC harmonization, cohorts.

Clinical rows are keyed on the case id (= the de-identified PatientID) and link to studies at
query time (study → patient.patient_id), so they may arrive before or after the images. Dates
are day offsets from the case's index event only. The LOINC terms and the Playbook mappings
are seeded from `archive/data/loinc_playbook.csv`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _run(sql: str) -> None:
    """asyncpg prepares each statement, so run them one at a time."""
    for statement in sql.split(";"):
        if statement.strip():
            op.execute(statement)


CLINICAL = """
CREATE TABLE clinical_case (
    case_id text PRIMARY KEY,
    site text,
    sex text,
    race text,
    ethnicity text,
    age_at_index integer CHECK (age_at_index BETWEEN 0 AND 89),
    age_at_index_gt89 boolean NOT NULL DEFAULT false,
    zip text CHECK (zip ~ '^[0-9]{3}$'),
    covid19_positive text,
    index_event text,
    extra jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX clinical_case_covid_idx ON clinical_case (lower(covid19_positive));
CREATE INDEX clinical_case_age_idx ON clinical_case (age_at_index);
CREATE TABLE covid_test (
    pk bigserial PRIMARY KEY,
    case_id text NOT NULL REFERENCES clinical_case(case_id) ON DELETE CASCADE,
    test_name text NOT NULL DEFAULT 'COVID-19',
    test_method text,
    test_result text,
    days_from_index integer NOT NULL
);
CREATE INDEX covid_test_case_idx ON covid_test (case_id);
CREATE TABLE clinical_condition (
    pk bigserial PRIMARY KEY,
    case_id text NOT NULL REFERENCES clinical_case(case_id) ON DELETE CASCADE,
    name text,
    code text,
    code_system text,
    days_start integer,
    days_end integer
);
CREATE INDEX clinical_condition_case_idx ON clinical_condition (case_id);
CREATE TABLE medication (
    pk bigserial PRIMARY KEY,
    case_id text NOT NULL REFERENCES clinical_case(case_id) ON DELETE CASCADE,
    name text,
    code text,
    code_system text,
    medication_type text,
    days_start integer,
    days_end integer
);
CREATE INDEX medication_case_idx ON medication (case_id);
CREATE TABLE clinical_procedure (
    pk bigserial PRIMARY KEY,
    case_id text NOT NULL REFERENCES clinical_case(case_id) ON DELETE CASCADE,
    name text,
    code text,
    code_system text,
    days_start integer,
    days_end integer
);
CREATE INDEX clinical_procedure_case_idx ON clinical_procedure (case_id);
CREATE TABLE observation (
    pk bigserial PRIMARY KEY,
    case_id text NOT NULL REFERENCES clinical_case(case_id) ON DELETE CASCADE,
    name text NOT NULL,
    answer text,
    days integer
);
CREATE INDEX observation_case_idx ON observation (case_id);
CREATE TABLE case_study (
    study_uid text PRIMARY KEY,
    case_id text NOT NULL REFERENCES clinical_case(case_id) ON DELETE CASCADE,
    days_to_study integer NOT NULL
);
CREATE INDEX case_study_case_idx ON case_study (case_id);
CREATE VIEW study_case AS
SELECT s.pk AS study_pk, c.case_id,
       COALESCE(cs.days_to_study,
                CASE WHEN c.index_event = 'First Imaging Study' THEN
                    s.study_date - (SELECT min(s2.study_date) FROM study s2
                                    WHERE s2.patient_pk = s.patient_pk)
                END) AS days_to_study
FROM study s
JOIN patient p ON p.pk = s.patient_pk
JOIN clinical_case c ON c.case_id = p.patient_id
LEFT JOIN case_study cs ON cs.study_uid = s.study_uid;
CREATE INDEX patient_patient_id_idx ON patient (patient_id)
"""

HARMONIZATION = """
CREATE TABLE loinc_term (
    code text PRIMARY KEY CHECK (code ~ '^[0-9]{1,7}-[0-9]$'),
    long_common_name text NOT NULL,
    modality text,
    body_system text,
    method text,
    contrast text,
    source text,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE description_mapping (
    id bigserial PRIMARY KEY,
    modality_norm text NOT NULL,
    description_norm text NOT NULL,
    raw_example text,
    loinc_code text REFERENCES loinc_term(code),
    status text NOT NULL CHECK (status IN ('proposed', 'approved', 'rejected')),
    version bigint NOT NULL,
    curator text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (modality_norm, description_norm),
    CHECK (status = 'rejected' OR loinc_code IS NOT NULL)
);
CREATE TABLE mapping_history (
    version bigserial PRIMARY KEY,
    modality_norm text NOT NULL,
    description_norm text NOT NULL,
    loinc_code text,
    status text NOT NULL,
    curator text,
    changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE study_harmonization (
    study_pk bigint PRIMARY KEY REFERENCES study(pk) ON DELETE CASCADE,
    modality_norm text NOT NULL,
    description_norm text NOT NULL,
    raw_description text,
    loinc_code text REFERENCES loinc_term(code),
    mapping_version bigint,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX study_harmonization_key_idx ON study_harmonization (modality_norm, description_norm);
CREATE INDEX study_harmonization_code_idx ON study_harmonization (loinc_code)
"""

COHORTS = """
CREATE TABLE cohort (
    id uuid PRIMARY KEY,
    name text,
    query jsonb NOT NULL,
    mapping_version bigint NOT NULL,
    num_cases integer NOT NULL,
    num_studies integer NOT NULL,
    num_series integer NOT NULL,
    num_instances integer NOT NULL,
    size_bytes bigint NOT NULL,
    restricted boolean NOT NULL DEFAULT false,
    created_by text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE cohort_study (
    cohort_id uuid NOT NULL REFERENCES cohort(id) ON DELETE CASCADE,
    study_pk bigint NOT NULL REFERENCES study(pk) ON DELETE CASCADE,
    PRIMARY KEY (cohort_id, study_pk)
);
CREATE TABLE cohort_instance (
    cohort_id uuid NOT NULL REFERENCES cohort(id) ON DELETE CASCADE,
    instance_pk bigint NOT NULL REFERENCES instance(pk) ON DELETE CASCADE,
    PRIMARY KEY (cohort_id, instance_pk)
)
"""

SEED_TERMS = """
INSERT INTO loinc_term (code, long_common_name, modality, body_system, method, contrast, source)
SELECT code, long_common_name, modality, body_system, method, contrast, source
FROM jsonb_to_recordset(CAST(:terms AS jsonb)) AS t(code text, long_common_name text,
     modality text, body_system text, method text, contrast text, source text)
"""

SEED_MAPPINGS = """
INSERT INTO description_mapping (modality_norm, description_norm, raw_example, loinc_code, status,
                                 version, curator)
SELECT modality_norm, description_norm, raw_example, loinc_code, 'approved', 1, 'playbook'
FROM jsonb_to_recordset(CAST(:mappings AS jsonb)) AS m(modality_norm text,
     description_norm text, raw_example text, loinc_code text)
"""


def _seed() -> None:
    import json

    from archive.commons.playbook import read_playbook, shipped_playbook

    book = read_playbook(shipped_playbook().read_text(encoding="utf-8"))
    op.execute(sa.text(SEED_TERMS).bindparams(terms=json.dumps([t.row() for t in book.terms])))
    op.execute(sa.text(SEED_MAPPINGS).bindparams(
        mappings=json.dumps([m.row() for m in book.mappings])))
    op.execute(
        "INSERT INTO mapping_history (modality_norm, description_norm, loinc_code, status, curator)"
        " VALUES ('*', '*', NULL, 'approved', 'playbook seed')"
    )


def upgrade() -> None:
    _run(CLINICAL)
    _run(HARMONIZATION)
    _run(COHORTS)
    _seed()


def downgrade() -> None:
    _run(
        "DROP TABLE cohort_instance; DROP TABLE cohort_study; DROP TABLE cohort;"
        "DROP TABLE study_harmonization; DROP TABLE mapping_history;"
        "DROP TABLE description_mapping; DROP TABLE loinc_term;"
        "DROP VIEW study_case; DROP TABLE case_study; DROP TABLE observation;"
        "DROP TABLE clinical_procedure; DROP TABLE medication; DROP TABLE clinical_condition;"
        "DROP TABLE covid_test; DROP TABLE clinical_case; DROP INDEX patient_patient_id_idx"
    )
