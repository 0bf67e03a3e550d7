"""Retrieve core: which stored instances a caller may have, and where their bytes are.

Every door (WADO-RS, WADO-URI, C-GET, C-MOVE, rendering) starts here, so visibility is applied
in exactly one read path: an instance of a study the caller may not see is simply not found
(404 / no match), never "forbidden", so its existence is not disclosed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archive.blobs import local_file
from archive.core import Caller, Core
from archive.errors import NotFound
from archive.index import reads
from archive.index.reads import Keys, Scope

__all__ = ["Keys", "Located", "Scope", "Version", "json_escape", "locate", "locate_keys",
           "metadata_array", "metadata_stream", "metadata_with_version", "version"]


@dataclass(frozen=True, slots=True)
class Located:
    """One retrievable instance: identity, file, encoding and (optionally) its header."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax: str
    path: Path
    size: int
    pixels: dict[str, Any] | None
    number_of_frames: int | None
    rows: int | None
    columns: int | None
    header: dict[str, Any] | None = None

    @property
    def frames(self) -> int:
        return self.number_of_frames or (1 if self.pixels else 0)


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
    async with core.engine.connect() as conn:
        rows = await reads.located_rows(conn, caller, scope, with_header)
    if not rows:
        raise NotFound(f"{scope.describe()} not found")
    return [
        Located(
            r.study_uid, r.series_uid, r.sop_uid, r.sop_class_uid, r.transfer_syntax,
            local_file(core, r.blob_key), r.size_bytes, r.pixels, r.number_of_frames, r.rows,
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
    async with core.engine.connect() as conn:
        row = await reads.version_row(conn, caller, scope)
    return _version_of(row, scope, variant)


async def metadata_with_version(
    core: Core, caller: Caller, scope: Scope, variant: str, base: str
) -> tuple[Version, str]:
    """Validators and the JSON array in one round trip (for bounded scopes: series/instance).

    `base` is the JSON-escaped service root (see json_escape)."""
    async with core.engine.connect() as conn:
        row = await reads.version_and_body_row(conn, caller, scope, base)
    return _version_of(row, scope, variant), row.body or "[]"


async def metadata_array(core: Core, caller: Caller, scope: Scope, base: str) -> str:
    """`[` + the instances' DICOM JSON + `]` as one text value, built by PostgreSQL.

    `instance.metadata` is precomputed at ingest by a trigger (migration 0003: the header as
    JSON text with Pixel Data as a `bulk:` marker); each marker becomes an absolute BulkDataURI
    under the instance URL. Python only forwards the bytes. `base` is the JSON-escaped root.
    """
    async with core.engine.connect() as conn:
        body = await reads.metadata_body(conn, caller, scope, base)
    return body or "[]"


def metadata_stream(core: Core, caller: Caller, scope: Scope,
                    base: str) -> AsyncGenerator[list[str], None]:
    """The same documents in batches, for streaming very large studies."""
    return reads.metadata_documents(core.engine, caller, scope, base)


def json_escape(value: str) -> str:
    return json.dumps(value)[1:-1]


async def locate_keys(core: Core, caller: Caller, keys: Keys) -> list[Located]:
    """Visible instances matching retrieve keys (no NotFound: zero matches is a valid answer)."""
    async with core.engine.connect() as conn:
        rows = await reads.located_rows_for_keys(conn, caller, keys)
    return [
        Located(r.study_uid, r.series_uid, r.sop_uid, r.sop_class_uid, r.transfer_syntax,
                local_file(core, r.blob_key), r.size_bytes, r.pixels, r.number_of_frames, r.rows,
                r.columns)
        for r in rows
    ]
