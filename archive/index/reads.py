"""Retrieve reads: the visible instances of a scope, their validators and their metadata.

SQLAlchemy Core selects over archive.index.tables, each filtered by the one visibility rule
(archive.index.visibility.visible_to), so retrieve, delete and the cohort file door cannot
disagree with query about what a caller may see.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, Text, and_, bindparam, func, literal, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from archive.caller import Caller
from archive.index.tables import instance, patient, series, study
from archive.index.visibility import visible_to


@dataclass(frozen=True, slots=True)
class Scope:
    """A study, series or instance named by UIDs (series/instance may be None)."""

    study: str | None
    series: str | None = None
    instance: str | None = None

    @property
    def level(self) -> str:
        return "instance" if self.instance else "series" if self.series else "study"

    def describe(self) -> str:
        return {"study": f"study {self.study}", "series": f"series {self.series}",
                "instance": f"instance {self.instance}"}[self.level]


@dataclass(frozen=True, slots=True)
class Keys:
    """A C-GET/C-MOVE identifier's unique keys; lists are UID list matching (PS3.4 C.2.2.2.2)."""

    patient_id: str | None = None
    studies: tuple[str, ...] = ()
    series: tuple[str, ...] = ()
    instances: tuple[str, ...] = ()


# instance ⋈ series ⋈ study: every retrieve read starts from here.
JOINED = instance.join(series, series.c.pk == instance.c.series_pk).join(
    study, study.c.pk == series.c.study_pk)
# Retrieve order: series in series-number order, instances in instance-number order.
ORDER = (series.c.series_number.asc().nulls_last(), series.c.pk,
         instance.c.instance_number.asc().nulls_last(), instance.c.pk)
_LOCATED = (study.c.study_uid, series.c.series_uid, instance.c.sop_uid,
            instance.c.sop_class_uid, instance.c.transfer_syntax, instance.c.blob_key,
            instance.c.size_bytes, instance.c.pixels, instance.c.number_of_frames,
            instance.c.rows, instance.c.columns)


def in_scope(caller: Caller, scope: Scope) -> ColumnElement[bool]:
    """The scope's UIDs AND the caller's visibility (over JOINED)."""
    parts: list[ColumnElement[bool]] = [visible_to(caller)]
    for value, column in ((scope.study, study.c.study_uid), (scope.series, series.c.series_uid),
                          (scope.instance, instance.c.sop_uid)):
        if value is not None:
            parts.append(column == value)
    return and_(*parts)


async def located_rows(conn: AsyncConnection, caller: Caller, scope: Scope,
                       with_header: bool) -> Sequence[Row[Any]]:
    columns = (*_LOCATED, instance.c.header) if with_header else _LOCATED
    stmt = select(*columns).select_from(JOINED).where(in_scope(caller, scope)).order_by(*ORDER)
    return (await conn.execute(stmt)).all()


async def located_rows_for_keys(conn: AsyncConnection, caller: Caller,
                                keys: Keys) -> Sequence[Row[Any]]:
    """Rows matching C-GET/C-MOVE keys; none when the identifier names nothing."""
    parts: list[ColumnElement[bool]] = []
    for values, column in ((keys.studies, study.c.study_uid), (keys.series, series.c.series_uid),
                           (keys.instances, instance.c.sop_uid)):
        if values:
            parts.append(column.in_(list(values)))
    if keys.patient_id is not None:
        parts.append(study.c.patient_pk.in_(
            select(patient.c.pk).where(patient.c.patient_id == keys.patient_id)))
    if not parts:
        return []
    stmt: Select[Any] = (select(*_LOCATED).select_from(JOINED).where(*parts, visible_to(caller))
                         .order_by(study.c.pk, *ORDER))
    return (await conn.execute(stmt)).all()


_VERSION = (
    func.count().label("n"),
    func.max(func.greatest(instance.c.updated_at, study.c.updated_at)).label("changed"),
    func.max(instance.c.pk).label("top"),
    func.sum(instance.c.pk).label("total"),
)


def _document() -> ColumnElement[str]:
    """`instance.metadata` with each `bulk:` marker made an absolute BulkDataURI.

    The pattern is the marker as jsonb's text form writes it, and as ingest writes it
    (archive/index_json.py MARKER); in canonical JSON it cannot occur inside an escaped string
    value. Bind parameter `base` is the JSON-escaped service root.
    """
    url = (literal('"BulkDataURI": "', Text) + bindparam("base", type_=Text) + "/studies/"
           + study.c.study_uid + "/series/" + series.c.series_uid + "/instances/"
           + instance.c.sop_uid + "/bulkdata/")
    return func.replace(instance.c.metadata, '"BulkDataURI": "bulk:', url, type_=Text)


def _array_body() -> ColumnElement[str]:
    """`[` + the documents in retrieve order + `]`, built by PostgreSQL (NULL when none)."""
    agg = func.string_agg(_document(), aggregate_order_by(literal(","), *ORDER), type_=Text)
    return (literal("[", Text) + agg + "]").label("body")


async def version_row(conn: AsyncConnection, caller: Caller, scope: Scope) -> Row[Any]:
    stmt = select(*_VERSION).select_from(JOINED).where(in_scope(caller, scope))
    return (await conn.execute(stmt)).one()


async def version_and_body_row(conn: AsyncConnection, caller: Caller, scope: Scope,
                               base: str) -> Row[Any]:
    stmt = select(*_VERSION, _array_body()).select_from(JOINED).where(in_scope(caller, scope))
    return (await conn.execute(stmt, {"base": base})).one()


async def metadata_body(conn: AsyncConnection, caller: Caller, scope: Scope,
                        base: str) -> str | None:
    stmt = select(_array_body()).select_from(JOINED).where(in_scope(caller, scope))
    body: str | None = (await conn.execute(stmt, {"base": base})).scalar_one()
    return body


async def metadata_documents(engine: AsyncEngine, caller: Caller, scope: Scope, base: str,
                             batch: int = 500) -> AsyncGenerator[list[str], None]:
    """The same documents in batches over a server-side cursor (very large studies)."""
    stmt: Select[Any] = (select(_document().label("doc")).select_from(JOINED)
                         .where(in_scope(caller, scope)).order_by(*ORDER))
    async with engine.connect() as conn:
        result = await conn.stream(stmt, {"base": base})
        async for rows in result.partitions(batch):
            yield [r.doc for r in rows]
