"""SQLAlchemy Core descriptions of the commons tables (migration 0004).

Kept in archive.index beside the index tables, on the same MetaData, so the one autogenerate
test (tests/migrations/test_autogenerate.py) checks them against the migrations too.
`study_case` is a view (study_pk → case_id and the study's day offset from the index event):
described for SELECTs, left out of the comparison (archive.index.schema.VIEWS).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from archive.index.tables import metadata

clinical_case = Table(
    'clinical_case', metadata,
    Column('case_id', Text, primary_key=True),
    Column('site', Text),
    Column('sex', Text),
    Column('race', Text),
    Column('ethnicity', Text),
    Column('age_at_index', Integer),
    Column('age_at_index_gt89', Boolean, nullable=False, server_default=text('false')),
    Column('zip', Text),
    Column('covid19_positive', Text),
    Column('index_event', Text),
    Column('extra', JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column('created_at', DateTime(timezone=True), nullable=False, server_default=text('now()')),
    Column('updated_at', DateTime(timezone=True), nullable=False, server_default=text('now()')),
    CheckConstraint('age_at_index >= 0 AND age_at_index <= 89', name='clinical_case_age_at_index_check'),
    CheckConstraint("zip ~ '^[0-9]{3}$'::text", name='clinical_case_zip_check'),
    PrimaryKeyConstraint('case_id', name='clinical_case_pkey'),
    Index('clinical_case_age_idx', 'age_at_index'),
    Index('clinical_case_covid_idx', func.lower(text('covid19_positive'))),
)

covid_test = Table(
    'covid_test', metadata,
    Column('pk', BigInteger, primary_key=True, autoincrement=True),
    Column('case_id', Text, nullable=False),
    Column('test_name', Text, nullable=False, server_default=text("'COVID-19'::text")),
    Column('test_method', Text),
    Column('test_result', Text),
    Column('days_from_index', Integer, nullable=False),
    ForeignKeyConstraint(['case_id'], ['clinical_case.case_id'], ondelete='CASCADE',
          name='covid_test_case_id_fkey'),
    PrimaryKeyConstraint('pk', name='covid_test_pkey'),
    Index('covid_test_case_idx', 'case_id'),
)

clinical_condition = Table(
    'clinical_condition', metadata,
    Column('pk', BigInteger, primary_key=True, autoincrement=True),
    Column('case_id', Text, nullable=False),
    Column('name', Text),
    Column('code', Text),
    Column('code_system', Text),
    Column('days_start', Integer),
    Column('days_end', Integer),
    ForeignKeyConstraint(['case_id'], ['clinical_case.case_id'], ondelete='CASCADE',
          name='clinical_condition_case_id_fkey'),
    PrimaryKeyConstraint('pk', name='clinical_condition_pkey'),
    Index('clinical_condition_case_idx', 'case_id'),
)

medication = Table(
    'medication', metadata,
    Column('pk', BigInteger, primary_key=True, autoincrement=True),
    Column('case_id', Text, nullable=False),
    Column('name', Text),
    Column('code', Text),
    Column('code_system', Text),
    Column('medication_type', Text),
    Column('days_start', Integer),
    Column('days_end', Integer),
    ForeignKeyConstraint(['case_id'], ['clinical_case.case_id'], ondelete='CASCADE',
          name='medication_case_id_fkey'),
    PrimaryKeyConstraint('pk', name='medication_pkey'),
    Index('medication_case_idx', 'case_id'),
)

clinical_procedure = Table(
    'clinical_procedure', metadata,
    Column('pk', BigInteger, primary_key=True, autoincrement=True),
    Column('case_id', Text, nullable=False),
    Column('name', Text),
    Column('code', Text),
    Column('code_system', Text),
    Column('days_start', Integer),
    Column('days_end', Integer),
    ForeignKeyConstraint(['case_id'], ['clinical_case.case_id'], ondelete='CASCADE',
          name='clinical_procedure_case_id_fkey'),
    PrimaryKeyConstraint('pk', name='clinical_procedure_pkey'),
    Index('clinical_procedure_case_idx', 'case_id'),
)

observation = Table(
    'observation', metadata,
    Column('pk', BigInteger, primary_key=True, autoincrement=True),
    Column('case_id', Text, nullable=False),
    Column('name', Text, nullable=False),
    Column('answer', Text),
    Column('days', Integer),
    ForeignKeyConstraint(['case_id'], ['clinical_case.case_id'], ondelete='CASCADE',
          name='observation_case_id_fkey'),
    PrimaryKeyConstraint('pk', name='observation_pkey'),
    Index('observation_case_idx', 'case_id'),
)

case_study = Table(
    'case_study', metadata,
    Column('study_uid', Text, primary_key=True),
    Column('case_id', Text, nullable=False),
    Column('days_to_study', Integer, nullable=False),
    ForeignKeyConstraint(['case_id'], ['clinical_case.case_id'], ondelete='CASCADE',
          name='case_study_case_id_fkey'),
    PrimaryKeyConstraint('study_uid', name='case_study_pkey'),
    Index('case_study_case_idx', 'case_id'),
)

study_case = Table(
    'study_case', metadata,
    Column('study_pk', BigInteger),
    Column('case_id', Text),
    Column('days_to_study', Integer),
)

loinc_term = Table(
    'loinc_term', metadata,
    Column('code', Text, primary_key=True),
    Column('long_common_name', Text, nullable=False),
    Column('modality', Text),
    Column('body_system', Text),
    Column('method', Text),
    Column('contrast', Text),
    Column('source', Text),
    Column('loaded_at', DateTime(timezone=True), nullable=False, server_default=text('now()')),
    CheckConstraint("code ~ '^[0-9]{1,7}-[0-9]$'::text", name='loinc_term_code_check'),
    PrimaryKeyConstraint('code', name='loinc_term_pkey'),
)

description_mapping = Table(
    'description_mapping', metadata,
    Column('id', BigInteger, primary_key=True, autoincrement=True),
    Column('modality_norm', Text, nullable=False),
    Column('description_norm', Text, nullable=False),
    Column('raw_example', Text),
    Column('loinc_code', Text),
    Column('status', Text, nullable=False),
    Column('version', BigInteger, nullable=False),
    Column('curator', Text),
    Column('updated_at', DateTime(timezone=True), nullable=False, server_default=text('now()')),
    CheckConstraint("status = 'rejected'::text OR loinc_code IS NOT NULL",
          name='description_mapping_check'),
    CheckConstraint("status = ANY (ARRAY['proposed'::text, 'approved'::text, 'rejected'::text])",
          name='description_mapping_status_check'),
    ForeignKeyConstraint(['loinc_code'], ['loinc_term.code'], name='description_mapping_loinc_code_fkey'),
    PrimaryKeyConstraint('id', name='description_mapping_pkey'),
    UniqueConstraint('modality_norm', 'description_norm',
          name='description_mapping_modality_norm_description_norm_key'),
)

mapping_history = Table(
    'mapping_history', metadata,
    Column('version', BigInteger, primary_key=True, autoincrement=True),
    Column('modality_norm', Text, nullable=False),
    Column('description_norm', Text, nullable=False),
    Column('loinc_code', Text),
    Column('status', Text, nullable=False),
    Column('curator', Text),
    Column('changed_at', DateTime(timezone=True), nullable=False, server_default=text('now()')),
    PrimaryKeyConstraint('version', name='mapping_history_pkey'),
)

study_harmonization = Table(
    'study_harmonization', metadata,
    Column('study_pk', BigInteger, primary_key=True),
    Column('modality_norm', Text, nullable=False),
    Column('description_norm', Text, nullable=False),
    Column('raw_description', Text),
    Column('loinc_code', Text),
    Column('mapping_version', BigInteger),
    Column('applied_at', DateTime(timezone=True), nullable=False, server_default=text('now()')),
    ForeignKeyConstraint(['loinc_code'], ['loinc_term.code'], name='study_harmonization_loinc_code_fkey'),
    ForeignKeyConstraint(['study_pk'], ['study.pk'], ondelete='CASCADE',
          name='study_harmonization_study_pk_fkey'),
    PrimaryKeyConstraint('study_pk', name='study_harmonization_pkey'),
    Index('study_harmonization_code_idx', 'loinc_code'),
    Index('study_harmonization_key_idx', 'modality_norm', 'description_norm'),
)

cohort = Table(
    'cohort', metadata,
    Column('id', Uuid, primary_key=True),
    Column('name', Text),
    Column('query', JSONB, nullable=False),
    Column('mapping_version', BigInteger, nullable=False),
    Column('num_cases', Integer, nullable=False),
    Column('num_studies', Integer, nullable=False),
    Column('num_series', Integer, nullable=False),
    Column('num_instances', Integer, nullable=False),
    Column('size_bytes', BigInteger, nullable=False),
    Column('restricted', Boolean, nullable=False, server_default=text('false')),
    Column('created_by', Text),
    Column('created_at', DateTime(timezone=True), nullable=False, server_default=text('now()')),
    Column('owner', Text),  # "kind:subject" of its creator (0011)
    Column('published_at', DateTime(timezone=True)),  # readable by every reader once set (0011)
    PrimaryKeyConstraint('id', name='cohort_pkey'),
    Index('cohort_owner_idx', 'owner'),
)

cohort_study = Table(
    'cohort_study', metadata,
    Column('cohort_id', Uuid, primary_key=True),
    Column('study_pk', BigInteger, primary_key=True),
    ForeignKeyConstraint(['cohort_id'], ['cohort.id'], ondelete='CASCADE',
          name='cohort_study_cohort_id_fkey'),
    ForeignKeyConstraint(['study_pk'], ['study.pk'], ondelete='CASCADE', name='cohort_study_study_pk_fkey'),
    PrimaryKeyConstraint('cohort_id', 'study_pk', name='cohort_study_pkey'),
)

cohort_instance = Table(
    'cohort_instance', metadata,
    Column('cohort_id', Uuid, primary_key=True),
    Column('instance_pk', BigInteger, primary_key=True),
    ForeignKeyConstraint(['cohort_id'], ['cohort.id'], ondelete='CASCADE',
          name='cohort_instance_cohort_id_fkey'),
    ForeignKeyConstraint(['instance_pk'], ['instance.pk'], ondelete='CASCADE',
          name='cohort_instance_instance_pk_fkey'),
    PrimaryKeyConstraint('cohort_id', 'instance_pk', name='cohort_instance_pkey'),
)

# Facet values of each study that do not live on the study row (migration 0015): maintained by
# triggers + `study_facet_refresh()` from the view `study_facet_source`; read by explore.
study_facet = Table(
    'study_facet', metadata,
    Column('study_pk', BigInteger, primary_key=True, autoincrement=False),
    *[Column(name, type_) for name, type_ in (
        ('case_id', Text), ('case_site', Text), ('case_sex', Text), ('case_race', Text),
        ('case_ethnicity', Text), ('case_age_at_index', Integer),
        ('case_age_at_index_gt89', Boolean), ('case_zip', Text),
        ('case_covid19_positive', Text), ('case_index_event', Text), ('loinc_code', Text),
        ('loinc_long_common_name', Text), ('loinc_system', Text), ('loinc_method', Text),
        ('loinc_contrast', Text), ('mapping_version', BigInteger))],
    *[Column(name, ARRAY(Text)) for name in (
        'body_parts', 'manufacturers', 'test_name', 'test_method', 'test_result',
        'condition_code', 'condition_name', 'medication_code', 'medication_name',
        'medication_type', 'procedure_code', 'procedure_name')],
    # (migration 0016) the refresh that wrote the row: readers catch up with `rev > R`
    Column('rev', BigInteger, nullable=False, server_default=text('0')),
    PrimaryKeyConstraint('study_pk', name='study_facet_pkey'),
    Index('study_facet_rev_idx', 'rev'),
)

# (migration 0016) studies whose facet row a refresh removed, with that refresh's revision
study_facet_gone = Table(
    'study_facet_gone', metadata,
    Column('study_pk', BigInteger, nullable=False),
    Column('rev', BigInteger, nullable=False),
    Index('study_facet_gone_rev_idx', 'rev'),
)

study_facet_dirty = Table(
    'study_facet_dirty', metadata,
    Column('study_pk', BigInteger),
    Column('case_id', Text),
)
