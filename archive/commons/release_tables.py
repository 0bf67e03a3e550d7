"""SQLAlchemy Core descriptions of the curation tables (migration 0009 is the source of truth)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from archive.index.tables import metadata

STAGED = "staged"  # study.collection of a study waiting for its dataset's release

data_release = Table(
    "data_release", metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("datasets", ARRAY(Text), nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("fraction", Float, nullable=False),
    Column("attributes", ARRAY(Text), nullable=False),
    Column("counts", JSONB, nullable=False),
    Column("notes", Text),
    Column("created_by", Text),
)

case_partition = Table(
    "case_partition", metadata,
    Column("case_id", Text, primary_key=True),
    Column("partition", Text, nullable=False),
    Column("release_number", Integer, ForeignKey("data_release.number"), nullable=False),
    Column("overridden", Boolean, nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
)

partition_override = Table(
    "partition_override", metadata,
    Column("pk", BigInteger, primary_key=True),
    Column("case_id", Text, ForeignKey("case_partition.case_id"), nullable=False),
    Column("from_partition", Text, nullable=False),
    Column("to_partition", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("curator", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

release_study = Table(
    "release_study", metadata,
    Column("study_pk", BigInteger, ForeignKey("study.pk", ondelete="CASCADE"), primary_key=True),
    Column("release_number", Integer, ForeignKey("data_release.number"), nullable=False),
)

cohort_release = Table(
    "cohort_release", metadata,
    Column("cohort_id", Uuid, ForeignKey("cohort.id", ondelete="CASCADE"), primary_key=True),
    Column("release_number", Integer, ForeignKey("data_release.number")),
)

testset = Table(
    "testset", metadata,
    Column("cohort_id", Uuid, ForeignKey("cohort.id", ondelete="CASCADE"), primary_key=True),
    Column("name", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("targets", JSONB, nullable=False),
    Column("distribution", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

testset_case = Table(
    "testset_case", metadata,
    Column("cohort_id", Uuid, ForeignKey("testset.cohort_id", ondelete="CASCADE"),
           primary_key=True),
    Column("case_id", Text, primary_key=True),
)
