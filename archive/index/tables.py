"""SQLAlchemy Core descriptions of the index tables.

The migrations create the database; these descriptions must say exactly what they created
(names, types, nullability, keys, indexes): tests/migrations/test_autogenerate.py compares the
two with Alembic's autogenerate and fails on any difference. Change both together.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Computed,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    Time,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()

patient = Table(
    'patient', metadata,
    Column('pk', BigInteger, primary_key=True, autoincrement=True),
    Column('patient_id', Text, nullable=False, server_default=text("''::text")),
    Column('issuer', Text, nullable=False, server_default=text("''::text")),
    Column('patient_name', Text),
    Column('patient_birth_date', Date),
    Column('patient_sex', Text),
    Column('attrs', JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column('created_at', DateTime(timezone=True), nullable=False, server_default=text('now()')),
    Column('updated_at', DateTime(timezone=True), nullable=False, server_default=text('now()')),
    Column('patient_name_folded', Text, Computed('archive_fold_name(patient_name)', persisted=True)),
    # (migration 0010) the PatientID's namespace: IssuerOfPatientID, else the contributing site;
    # and the collection, so patient-level attributes never cross collections.
    Column('scope', Text, nullable=False, server_default=text("''::text")),
    Column('collection', Text, nullable=False, server_default=text("'public'::text")),
    PrimaryKeyConstraint('pk', name='patient_pkey'),
    UniqueConstraint('patient_id', 'scope', 'collection', name='patient_scope_key'),
    Index('patient_birth_date_idx', 'patient_birth_date'),
    Index('patient_id_pattern_idx', 'patient_id', postgresql_ops={'patient_id': 'text_pattern_ops'}),
    Index('patient_name_fold_trgm_idx', func.archive_fold_name(text('patient_name')).label('fold'),
          postgresql_ops={'fold': 'gin_trgm_ops'}, postgresql_using='gin'),
    Index('patient_name_folded_trgm_idx', 'patient_name_folded',
          postgresql_ops={'patient_name_folded': 'gin_trgm_ops'}, postgresql_using='gin'),
    Index('patient_name_idx', func.lower(text('patient_name'))),
    Index('patient_name_pattern_idx', func.lower(text('patient_name')).label('lname'),
          postgresql_ops={'lname': 'text_pattern_ops'}),
    Index('patient_name_trgm_idx', func.lower(text('patient_name')).label('lname'),
          postgresql_ops={'lname': 'gin_trgm_ops'}, postgresql_using='gin'),
    Index('patient_patient_id_idx', 'patient_id'),
)

study = Table(
    'study', metadata,
    Column('pk', BigInteger, primary_key=True, autoincrement=True),
    Column('patient_pk', BigInteger, nullable=False),
    Column('study_uid', Text, nullable=False),
    Column('study_date', Date),
    Column('study_time', Time),
    Column('accession_number', Text),
    Column('study_id', Text),
    Column('referring_physician_name', Text),
    Column('study_description', Text),
    Column('modalities', ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column('sop_classes', ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
    Column('num_series', Integer, nullable=False, server_default=text('0')),
    Column('num_instances', Integer, nullable=False, server_default=text('0')),
    Column('size_bytes', BigInteger, nullable=False, server_default=text('0')),
    Column('collection', Text, nullable=False, server_default=text("'public'::text")),
    Column('site', Text),
    Column('dataset', Text),
    Column('attrs', JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column('created_at', DateTime(timezone=True), nullable=False, server_default=text('now()')),
    Column('updated_at', DateTime(timezone=True), nullable=False, server_default=text('now()')),
    ForeignKeyConstraint(['patient_pk'], ['patient.pk'], name='study_patient_pk_fkey'),
    PrimaryKeyConstraint('pk', name='study_pkey'),
    UniqueConstraint('study_uid', name='study_study_uid_key'),
    Index('study_accession_idx', 'accession_number'),
    Index('study_accession_pattern_idx', 'accession_number',
          postgresql_ops={'accession_number': 'text_pattern_ops'}),
    Index('study_attrs_gin_idx', 'attrs', postgresql_ops={'attrs': 'jsonb_path_ops'},
          postgresql_using='gin'),
    Index('study_collection_idx', 'collection'),
    Index('study_dataset_idx', 'dataset'),
    Index('study_date_idx', 'study_date', 'pk'),
    Index('study_description_pattern_idx', 'study_description',
          postgresql_ops={'study_description': 'text_pattern_ops'}),
    Index('study_description_trgm_idx', 'study_description',
          postgresql_ops={'study_description': 'gin_trgm_ops'}, postgresql_using='gin'),
    Index('study_id_idx', 'study_id'),
    Index('study_modalities_idx', 'modalities', postgresql_using='gin'),
    Index('study_patient_idx', 'patient_pk'),
    Index('study_referring_pattern_idx', func.lower(text('referring_physician_name')).label('lref'),
          postgresql_ops={'lref': 'text_pattern_ops'}),
    Index('study_referring_trgm_idx', func.lower(text('referring_physician_name')).label('lref'),
          postgresql_ops={'lref': 'gin_trgm_ops'}, postgresql_using='gin'),
    Index('study_site_idx', 'site'),
    Index('study_visible_pk_idx', 'pk', postgresql_where=text("collection <> 'sequestered'::text")),
    # (migration 0020) what an ordinary reader lists: neither sequestered nor staged
    Index('study_listed_pk_idx', 'pk', postgresql_where=text(
        "collection <> 'sequestered'::text AND collection <> 'staged'::text")),
    Index('study_listed_patient_idx', 'patient_pk', 'pk', postgresql_where=text(
        "collection <> 'sequestered'::text AND collection <> 'staged'::text")),
)

series = Table(
    'series', metadata,
    Column('pk', BigInteger, primary_key=True, autoincrement=True),
    Column('study_pk', BigInteger, nullable=False),
    Column('series_uid', Text, nullable=False),
    Column('modality', Text),
    Column('series_number', Integer),
    Column('series_description', Text),
    Column('series_date', Date),
    Column('series_time', Time),
    Column('body_part', Text),
    Column('pps_start_date', Date),
    Column('pps_start_time', Time),
    Column('num_instances', Integer, nullable=False, server_default=text('0')),
    Column('attrs', JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column('created_at', DateTime(timezone=True), nullable=False, server_default=text('now()')),
    Column('updated_at', DateTime(timezone=True), nullable=False, server_default=text('now()')),
    ForeignKeyConstraint(['study_pk'], ['study.pk'], ondelete='CASCADE', name='series_study_pk_fkey'),
    PrimaryKeyConstraint('pk', name='series_pkey'),
    UniqueConstraint('series_uid', name='series_series_uid_key'),
    Index('series_attrs_gin_idx', 'attrs', postgresql_ops={'attrs': 'jsonb_path_ops'},
          postgresql_using='gin'),
    Index('series_body_part_idx', 'body_part'),
    Index('series_date_idx', 'series_date'),
    Index('series_modality_idx', 'modality'),
    Index('series_study_idx', 'study_pk', 'series_number', 'pk'),
)

instance = Table(
    'instance', metadata,
    Column('pk', BigInteger, primary_key=True, autoincrement=True),
    Column('series_pk', BigInteger, nullable=False),
    Column('sop_uid', Text, nullable=False),
    Column('sop_class_uid', Text, nullable=False),
    Column('instance_number', Integer),
    Column('transfer_syntax', Text, nullable=False),
    Column('rows', Integer),
    Column('columns', Integer),
    Column('number_of_frames', Integer),
    Column('blob_key', Text, nullable=False),
    Column('size_bytes', BigInteger, nullable=False),
    Column('sha256', Text, nullable=False),
    Column('pixels', JSONB),
    Column('header', JSONB, nullable=False),
    Column('created_at', DateTime(timezone=True), nullable=False, server_default=text('now()')),
    Column('updated_at', DateTime(timezone=True), nullable=False, server_default=text('now()')),
    # DICOM JSON as text, Pixel Data as a `bulk:` marker; set by a trigger (migration 0003).
    Column('metadata', Text, nullable=False),
    ForeignKeyConstraint(['series_pk'], ['series.pk'], ondelete='CASCADE', name='instance_series_pk_fkey'),
    PrimaryKeyConstraint('pk', name='instance_pkey'),
    UniqueConstraint('blob_key', name='instance_blob_key_key'),
    UniqueConstraint('sop_uid', name='instance_sop_uid_key'),
    Index('instance_series_idx', 'series_pk', 'instance_number', 'pk'),
    Index('instance_sop_class_idx', 'sop_class_uid'),
)

# Pairs this index with its blob store (migration 0006; see archive.sweep): one row.
storage_identity = Table(
    "storage_identity",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("stamp", Text, nullable=False),
    Column("stamped_at", DateTime(timezone=True), nullable=False),
)

# Blob keys that may have no index row: written but not yet indexed ("write"), or no longer
# referenced after a replace or delete ("unreferenced"). The only keys the sweep may delete.
blob_journal = Table(
    "blob_journal",
    metadata,
    Column("blob_key", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("owner", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
