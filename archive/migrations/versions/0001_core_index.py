"""Core index: patient, study, series, instance.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _run(sql: str) -> None:
    """asyncpg prepares each statement, so run them one at a time."""
    for statement in sql.split(";"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    _run(
        """
        CREATE TABLE patient (
            pk bigserial PRIMARY KEY,
            patient_id text NOT NULL DEFAULT '',
            issuer text NOT NULL DEFAULT '',
            patient_name text,
            patient_birth_date date,
            patient_sex text,
            attrs jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (patient_id, issuer)
        );
        CREATE TABLE study (
            pk bigserial PRIMARY KEY,
            patient_pk bigint NOT NULL REFERENCES patient(pk),
            study_uid text NOT NULL UNIQUE,
            study_date date,
            study_time time,
            accession_number text,
            study_id text,
            referring_physician_name text,
            study_description text,
            modalities text[] NOT NULL DEFAULT '{}',
            sop_classes text[] NOT NULL DEFAULT '{}',
            num_series integer NOT NULL DEFAULT 0,
            num_instances integer NOT NULL DEFAULT 0,
            size_bytes bigint NOT NULL DEFAULT 0,
            collection text NOT NULL DEFAULT 'public',
            site text,
            dataset text,
            attrs jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX study_patient_idx ON study (patient_pk);
        CREATE INDEX study_date_idx ON study (study_date, pk);
        CREATE INDEX study_accession_idx ON study (accession_number);
        CREATE INDEX study_modalities_idx ON study USING gin (modalities);
        CREATE INDEX study_collection_idx ON study (collection);
        CREATE INDEX study_site_idx ON study (site);
        CREATE INDEX study_dataset_idx ON study (dataset);
        CREATE INDEX patient_name_idx ON patient (lower(patient_name));

        CREATE TABLE series (
            pk bigserial PRIMARY KEY,
            study_pk bigint NOT NULL REFERENCES study(pk) ON DELETE CASCADE,
            series_uid text NOT NULL UNIQUE,
            modality text,
            series_number integer,
            series_description text,
            series_date date,
            series_time time,
            body_part text,
            pps_start_date date,
            pps_start_time time,
            num_instances integer NOT NULL DEFAULT 0,
            attrs jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX series_study_idx ON series (study_pk, series_number, pk);
        CREATE INDEX series_modality_idx ON series (modality);

        CREATE TABLE instance (
            pk bigserial PRIMARY KEY,
            series_pk bigint NOT NULL REFERENCES series(pk) ON DELETE CASCADE,
            sop_uid text NOT NULL UNIQUE,
            sop_class_uid text NOT NULL,
            instance_number integer,
            transfer_syntax text NOT NULL,
            rows integer,
            columns integer,
            number_of_frames integer,
            blob_key text NOT NULL UNIQUE,
            size_bytes bigint NOT NULL,
            sha256 text NOT NULL,
            pixels jsonb,
            header jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX instance_series_idx ON instance (series_pk, instance_number, pk);
        CREATE INDEX instance_sop_class_idx ON instance (sop_class_uid);
        """
    )


def downgrade() -> None:
    _run("DROP TABLE instance; DROP TABLE series; DROP TABLE study; DROP TABLE patient;")
