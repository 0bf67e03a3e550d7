"""SQLAlchemy Core descriptions of the index tables (the migrations are the source of truth)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    Text,
    Time,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()

patient = Table(
    "patient",
    metadata,
    Column("pk", BigInteger, primary_key=True),
    Column("patient_id", Text, nullable=False),
    Column("issuer", Text, nullable=False),
    Column("patient_name", Text),
    Column("patient_birth_date", Date),
    Column("patient_sex", Text),
    Column("attrs", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
)

study = Table(
    "study",
    metadata,
    Column("pk", BigInteger, primary_key=True),
    Column("patient_pk", BigInteger, ForeignKey("patient.pk"), nullable=False),
    Column("study_uid", Text, nullable=False, unique=True),
    Column("study_date", Date),
    Column("study_time", Time),
    Column("accession_number", Text),
    Column("study_id", Text),
    Column("referring_physician_name", Text),
    Column("study_description", Text),
    Column("modalities", ARRAY(Text), nullable=False),
    Column("sop_classes", ARRAY(Text), nullable=False),
    Column("num_series", Integer, nullable=False),
    Column("num_instances", Integer, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("collection", Text, nullable=False),
    Column("site", Text),
    Column("dataset", Text),
    Column("attrs", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
)

series = Table(
    "series",
    metadata,
    Column("pk", BigInteger, primary_key=True),
    Column("study_pk", BigInteger, ForeignKey("study.pk"), nullable=False),
    Column("series_uid", Text, nullable=False, unique=True),
    Column("modality", Text),
    Column("series_number", Integer),
    Column("series_description", Text),
    Column("series_date", Date),
    Column("series_time", Time),
    Column("body_part", Text),
    Column("pps_start_date", Date),
    Column("pps_start_time", Time),
    Column("num_instances", Integer, nullable=False),
    Column("attrs", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
)

instance = Table(
    "instance",
    metadata,
    Column("pk", BigInteger, primary_key=True),
    Column("series_pk", BigInteger, ForeignKey("series.pk"), nullable=False),
    Column("sop_uid", Text, nullable=False, unique=True),
    Column("sop_class_uid", Text, nullable=False),
    Column("instance_number", Integer),
    Column("transfer_syntax", Text, nullable=False),
    Column("rows", Integer),
    Column("columns", Integer),
    Column("number_of_frames", Integer),
    Column("blob_key", Text, nullable=False, unique=True),
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("pixels", JSONB),
    Column("header", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True)),
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
