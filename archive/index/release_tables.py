"""SQLAlchemy Core descriptions of the curation tables (migration 0009, issue 16).

On the project's MetaData beside the index and commons tables, so the autogenerate test checks
them against the migration too. `study_staged_idx` (staged studies by dataset) is an index of
the study table that this migration adds; it is declared here, next to the feature that uses it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from archive.index.tables import metadata, study

STAGED = "staged"  # study.collection of a study waiting for its dataset's release

data_release = Table(
    "data_release", metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("datasets", ARRAY(Text), nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("fraction", Float(precision=53), nullable=False),
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
    Column("overridden", Boolean, nullable=False, server_default=text("false")),
    Column("assigned_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint("partition = ANY (ARRAY['open'::text, 'sequestered'::text])",
                    name="case_partition_partition_check"),
)

partition_override = Table(
    "partition_override", metadata,
    Column("pk", BigInteger, primary_key=True),
    Column("case_id", Text, ForeignKey("case_partition.case_id"), nullable=False),
    Column("from_partition", Text, nullable=False),
    Column("to_partition", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("curator", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)

release_study = Table(
    "release_study", metadata,
    Column("study_pk", BigInteger, ForeignKey("study.pk", ondelete="CASCADE"), primary_key=True,
           autoincrement=False),
    Column("release_number", Integer, ForeignKey("data_release.number"), nullable=False),
    Index("release_study_release_idx", "release_number"),
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
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)

testset_case = Table(
    "testset_case", metadata,
    Column("cohort_id", Uuid, ForeignKey("testset.cohort_id", ondelete="CASCADE"),
           primary_key=True),
    Column("case_id", Text, primary_key=True),
    Index("testset_case_case_idx", "case_id"),
)

Index("study_staged_idx", study.c.dataset, postgresql_where=text("collection = 'staged'::text"))
