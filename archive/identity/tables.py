"""SQLAlchemy Core descriptions of the identity tables (created by migration 0007)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData()

api_key = Table(
    "api_key", metadata,
    Column("pk", BigInteger, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("role", Text, nullable=False),
    Column("site", Text),
    Column("secret_hash", LargeBinary, nullable=False, unique=True),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("expires", DateTime(timezone=True)),
    Column("revoked", DateTime(timezone=True)),
)

audit_event = Table(
    "audit_event", metadata,
    Column("pk", BigInteger, primary_key=True),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("action", Text, nullable=False),
    Column("event_action", Text, nullable=False),
    Column("outcome", SmallInteger, nullable=False),
    Column("actor", Text, nullable=False),
    Column("role", Text),
    Column("kind", Text),
    Column("site", Text),
    Column("source", Text),
    Column("study_uids", ARRAY(Text), nullable=False),
    Column("detail", JSONB, nullable=False),
)
