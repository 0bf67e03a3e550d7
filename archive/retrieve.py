"""Retrieve core: which stored instances a caller may have, and where their bytes are.

Every door (WADO-RS, WADO-URI, C-GET, C-MOVE, rendering) starts here, so visibility is applied
in exactly one read path: an instance of a study the caller may not see is simply not found
(404 / no match), never "forbidden", so its existence is not disclosed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text

from archive.blobs import BlobRef, blob_ref
from archive.core import Caller, Core
from archive.errors import ArchiveUnavailable, NotFound
from archive.index.visibility import visible_sql

# Retrieve order: series in series-number order, instances in instance-number order.
_ORDER = "se.series_number NULLS LAST, se.pk, i.instance_number NULLS LAST, i.pk"


@dataclass(frozen=True, slots=True)
class Located:
    """One retrievable instance: identity, file, encoding and (optionally) its header."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    blob: BlobRef
    size: int
    pixels: dict[str, Any] | None
    number_of_frames: int | None
    rows: int | None
    columns: int | None
    header: dict[str, Any] | None = None

    @property
    def path(self) -> Path:
        """The local file, for readers that need one; prefer `blob` (works on every backend)."""
        if self.blob.local is None:
            raise ArchiveUnavailable(f"instance {self.sop_uid} is not a local file")
        return self.blob.local

    @property
    def frames(self) -> int:
        return self.number_of_frames or (1 if self.pixels else 0)


@dataclass(frozen=True, slots=True)
class Scope:
    """A study, series or instance named by UIDs (series/instance may be None)."""

    study: str | None
    series: str | None = None
    instance: str | None = None

    @property
    def level(self) -> str:
        return "instance" if self.instance else "series" if self.series else "study"

    def where(self) -> tuple[str, dict[str, Any]]:
        parts: list[str] = []
        args: dict[str, Any] = {}
        for name, column in (("study", "st.study_uid"), ("series", "se.series_uid"),
                             ("instance", "i.sop_uid")):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{column} = :{name}")
                args[name] = value
        return " AND ".join(parts) or "TRUE", args

    def describe(self) -> str:
        return {"study": f"study {self.study}", "series": f"series {self.series}",
                "instance": f"instance {self.instance}"}[self.level]


FROM_VISIBLE = (
    "FROM instance i JOIN series se ON se.pk = i.series_pk JOIN study st ON st.pk = se.study_pk"
)


async def locate(
    core: Core,
    caller: Caller,
    study: str | None,
    series: str | None = None,
    instance: str | None = None,
    *,
    with_header: bool = False,
) -> list[Located]:
    """Visible instances of a study / series / instance, in retrieve order; NotFound if none."""
    scope = Scope(study, series, instance)
    where, args = scope.where()
    header = ", i.header" if with_header else ""
    sql = text(
        f"""SELECT st.study_uid, se.series_uid, i.sop_uid, i.sop_class_uid, i.transfer_syntax,
                   i.blob_key, i.size_bytes, i.pixels, i.number_of_frames, i.rows, i.columns
                   {header}
            {FROM_VISIBLE} WHERE {where} AND {visible_sql(caller, "st")} ORDER BY {_ORDER}"""
    )
    async with core.engine.connect() as conn:
        rows = (await conn.execute(sql, args)).all()
    if not rows:
        raise NotFound(f"{scope.describe()} not found")
    return [
        Located(
            r.study_uid, r.series_uid, r.sop_uid, r.sop_class_uid, r.transfer_syntax,
            blob_ref(core, r.blob_key, r.size_bytes), r.size_bytes, r.pixels, r.number_of_frames, r.rows,
            r.columns, r.header if with_header else None,
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class Version:
    """What a conditional GET compares: count + newest change of the visible instances."""

    count: int
    last_modified: dt.datetime
    etag: str


_VERSION_COLUMNS = """count(*) AS n, max(greatest(i.updated_at, st.updated_at)) AS changed,
                      max(i.pk) AS top, sum(i.pk) AS total"""


def _version_of(row: Any, scope: Scope, variant: str) -> Version:
    if not row.n:
        raise NotFound(f"{scope.describe()} not found")
    seed = f"{variant}|{row.n}|{row.changed.isoformat()}|{row.top}|{row.total}"
    etag = '"' + hashlib.sha256(seed.encode()).hexdigest()[:32] + '"'
    return Version(row.n, row.changed, etag)


async def version(core: Core, caller: Caller, scope: Scope, variant: str) -> Version:
    """Validator of a resource's current state; `variant` distinguishes representations.

    The ETag changes when an instance is added, replaced or deleted (count, newest update,
    largest pk); it also covers the URL base (BulkDataURIs are absolute) via `variant`.
    """
    where, args = scope.where()
    sql = text(f"""SELECT {_VERSION_COLUMNS} {FROM_VISIBLE}
                   WHERE {where} AND {visible_sql(caller, "st")}""")
    async with core.engine.connect() as conn:
        row = (await conn.execute(sql, args)).one()
    return _version_of(row, scope, variant)


async def metadata_with_version(
    core: Core, caller: Caller, scope: Scope, variant: str, base: str
) -> tuple[Version, str]:
    """Validators and the JSON array in one round trip (for bounded scopes: series/instance)."""
    sql, args = metadata_sql(caller, scope, _VERSION_COLUMNS + ",")
    async with core.engine.connect() as conn:
        row = (await conn.execute(text(sql), args | {"base": base})).one()
    return _version_of(row, scope, variant), row.body or "[]"


def metadata_sql(caller: Caller, scope: Scope, columns: str = "") -> tuple[str, dict[str, Any]]:
    """`[` + the instances' DICOM JSON + `]` as one text value, built by PostgreSQL.

    `instance.metadata` is precomputed at ingest by a trigger (migration 0003: the header as
    JSON text with Pixel Data as a `bulk:` marker); each `bulk:` marker becomes an absolute
    BulkDataURI under the instance URL by one text replacement (the jsonb text form is
    canonical, so the pattern cannot occur inside an escaped string value). Python only
    forwards the bytes. Parameter `:base` is the JSON-escaped service root.
    """
    where, args = scope.where()
    sql = f"""
        SELECT {columns} '[' || string_agg({_DOC}, ',' ORDER BY {_ORDER}) || ']' AS body
        {FROM_VISIBLE} WHERE {where} AND {visible_sql(caller, "st")}"""
    return sql, args


def metadata_rows_sql(caller: Caller, scope: Scope) -> tuple[str, dict[str, Any]]:
    """The same documents one row per instance, for streaming very large studies."""
    where, args = scope.where()
    sql = f"""SELECT {_DOC} AS doc {FROM_VISIBLE}
              WHERE {where} AND {visible_sql(caller, "st")} ORDER BY {_ORDER}"""
    return sql, args


_DOC = """replace(i.metadata, '"BulkDataURI": "bulk:',
                  '"BulkDataURI": "' || :base || '/studies/' || st.study_uid || '/series/'
                  || se.series_uid || '/instances/' || i.sop_uid || '/bulkdata/')"""


def json_escape(value: str) -> str:
    return json.dumps(value)[1:-1]


@dataclass(frozen=True, slots=True)
class Keys:
    """A C-GET/C-MOVE identifier's unique keys; lists are UID list matching (PS3.4 C.2.2.2.2)."""

    patient_id: str | None = None
    studies: tuple[str, ...] = ()
    series: tuple[str, ...] = ()
    instances: tuple[str, ...] = ()


async def locate_keys(core: Core, caller: Caller, keys: Keys) -> list[Located]:
    """Visible instances matching retrieve keys (no NotFound: zero matches is a valid answer)."""
    parts: list[str] = []
    args: dict[str, Any] = {}
    for name, column in (("studies", "st.study_uid"), ("series", "se.series_uid"),
                         ("instances", "i.sop_uid")):
        values = getattr(keys, name)
        if values:
            parts.append(f"{column} = ANY(:{name})")
            args[name] = list(values)
    if keys.patient_id is not None:
        parts.append("st.patient_pk IN (SELECT pk FROM patient WHERE patient_id = :pid)")
        args["pid"] = keys.patient_id
    if not parts:
        return []
    sql = text(
        f"""SELECT st.study_uid, se.series_uid, i.sop_uid, i.sop_class_uid, i.transfer_syntax,
                   i.blob_key, i.size_bytes, i.pixels, i.number_of_frames, i.rows, i.columns
            {FROM_VISIBLE} WHERE {' AND '.join(parts)} AND {visible_sql(caller, "st")}
            ORDER BY st.pk, {_ORDER}"""
    )
    async with core.engine.connect() as conn:
        rows = (await conn.execute(sql, args)).all()
    return [
        Located(r.study_uid, r.series_uid, r.sop_uid, r.sop_class_uid, r.transfer_syntax,
                blob_ref(core, r.blob_key, r.size_bytes), r.size_bytes, r.pixels, r.number_of_frames, r.rows,
                r.columns)
        for r in rows
    ]
