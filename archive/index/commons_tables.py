"""SQLAlchemy Core descriptions of the commons tables (migration 0004 is the source of truth).

Kept in archive.index with the index tables: one MetaData, and only archive.index (and
archive.query.sql) describe tables."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, Table, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB

from archive.index.tables import metadata

clinical_case = Table(
    "clinical_case", metadata,
    Column("case_id", Text, primary_key=True),
    Column("site", Text), Column("sex", Text), Column("race", Text), Column("ethnicity", Text),
    Column("age_at_index", Integer), Column("age_at_index_gt89", Boolean), Column("zip", Text),
    Column("covid19_positive", Text), Column("index_event", Text), Column("extra", JSONB),
    Column("created_at", DateTime(timezone=True)), Column("updated_at", DateTime(timezone=True)),
)

covid_test = Table(
    "covid_test", metadata,
    Column("pk", BigInteger, primary_key=True), Column("case_id", Text),
    Column("test_name", Text), Column("test_method", Text), Column("test_result", Text),
    Column("days_from_index", Integer),
)

clinical_condition = Table(
    "clinical_condition", metadata,
    Column("pk", BigInteger, primary_key=True), Column("case_id", Text), Column("name", Text),
    Column("code", Text), Column("code_system", Text), Column("days_start", Integer),
    Column("days_end", Integer),
)

medication = Table(
    "medication", metadata,
    Column("pk", BigInteger, primary_key=True), Column("case_id", Text), Column("name", Text),
    Column("code", Text), Column("code_system", Text), Column("medication_type", Text),
    Column("days_start", Integer), Column("days_end", Integer),
)

clinical_procedure = Table(
    "clinical_procedure", metadata,
    Column("pk", BigInteger, primary_key=True), Column("case_id", Text), Column("name", Text),
    Column("code", Text), Column("code_system", Text), Column("days_start", Integer),
    Column("days_end", Integer),
)

observation = Table(
    "observation", metadata,
    Column("pk", BigInteger, primary_key=True), Column("case_id", Text), Column("name", Text),
    Column("answer", Text), Column("days", Integer),
)

case_study = Table(
    "case_study", metadata,
    Column("study_uid", Text, primary_key=True), Column("case_id", Text),
    Column("days_to_study", Integer),
)

# A view: study_pk → case_id and the study's day offset from the case's index event.
study_case = Table(
    "study_case", metadata,
    Column("study_pk", BigInteger), Column("case_id", Text), Column("days_to_study", Integer),
)

loinc_term = Table(
    "loinc_term", metadata,
    Column("code", Text, primary_key=True), Column("long_common_name", Text),
    Column("modality", Text), Column("body_system", Text), Column("method", Text),
    Column("contrast", Text), Column("source", Text),
    Column("loaded_at", DateTime(timezone=True)),
)

description_mapping = Table(
    "description_mapping", metadata,
    Column("id", BigInteger, primary_key=True), Column("modality_norm", Text),
    Column("description_norm", Text), Column("raw_example", Text), Column("loinc_code", Text),
    Column("status", Text), Column("version", BigInteger), Column("curator", Text),
    Column("updated_at", DateTime(timezone=True)),
)

study_harmonization = Table(
    "study_harmonization", metadata,
    Column("study_pk", BigInteger, primary_key=True), Column("modality_norm", Text),
    Column("description_norm", Text), Column("raw_description", Text),
    Column("loinc_code", Text), Column("mapping_version", BigInteger),
    Column("applied_at", DateTime(timezone=True)),
)

cohort = Table(
    "cohort", metadata,
    Column("id", Uuid, primary_key=True), Column("name", Text), Column("query", JSONB),
    Column("mapping_version", BigInteger), Column("num_cases", Integer),
    Column("num_studies", Integer), Column("num_series", Integer),
    Column("num_instances", Integer), Column("size_bytes", BigInteger),
    Column("restricted", Boolean), Column("created_by", Text),
    Column("created_at", DateTime(timezone=True)),
)

cohort_study = Table(
    "cohort_study", metadata,
    Column("cohort_id", Uuid, primary_key=True), Column("study_pk", BigInteger, primary_key=True),
)

cohort_instance = Table(
    "cohort_instance", metadata,
    Column("cohort_id", Uuid, primary_key=True),
    Column("instance_pk", BigInteger, primary_key=True),
)
