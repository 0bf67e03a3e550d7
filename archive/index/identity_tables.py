"""SQLAlchemy Core descriptions of the identity tables (API keys, audit trail; migration 0007),
on the project's one MetaData so the autogenerate test covers them."""

from __future__ import annotations

from sqlalchemy import (
    CHAR,
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from archive.index.tables import metadata

api_key = Table(
    "api_key", metadata,
    Column("pk", BigInteger, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("role", Text, nullable=False),
    Column("site", Text),
    Column("secret_hash", LargeBinary, nullable=False, unique=True),
    Column("created", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires", DateTime(timezone=True)),
    Column("revoked", DateTime(timezone=True)),
)

audit_event = Table(
    "audit_event", metadata,
    Column("pk", BigInteger, primary_key=True),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("action", Text, nullable=False),
    Column("event_action", CHAR(1), nullable=False),
    Column("outcome", SmallInteger, nullable=False),
    Column("actor", Text, nullable=False),
    Column("role", Text),
    Column("kind", Text),
    Column("site", Text),
    Column("source", Text),
    Column("study_uids", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'")),
    Index("audit_event_time_idx", "time"),
    Index("audit_event_actor_idx", "actor", "time"),
    Index("audit_event_study_idx", "study_uids", postgresql_using="gin"),
)
