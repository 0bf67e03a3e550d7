#!/usr/bin/env python3
"""Index bytes per instance for real headers (the sizing input bench.qido_scale cannot give).

    python -m bench.header_size --database-url postgresql://postgres@127.0.0.1:5432/postgres

bench.qido_scale fills the index with small generated headers (~15 elements); real instances
carry hundreds. This stores pydicom's bundled real CT (GE, 257 elements) and MR (72 elements)
test files — N copies each with fresh UIDs — through STOW-RS into a real `archive serve` on a
fresh database, then reports PostgreSQL's own figures: the average stored (compressed) size of
`instance.header`, `instance.metadata` and `pixels`, and the instance table's total bytes
(heap + TOAST + indexes) per instance. The database is dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import requests

from archive.index.engine import sync_url, upgrade
from bench.qido_scale import serve
from bench.query import _admin, _with_db

TOKEN = uuid.uuid4().hex  # a curator token for this run's server: anonymous writes are refused


def _datasets(name: str, n: int) -> list[bytes]:
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    path = get_testdata_file(name)
    if path is None:
        raise RuntimeError(f"pydicom test file {name} not found")
    out = []
    study, series = generate_uid(), ""
    for k in range(n):
        ds = pydicom.dcmread(path)
        series = generate_uid() if k % 50 == 0 else series
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out


def _stow(base: str, parts: list[bytes]) -> None:
    body = b"".join(b"--B\r\nContent-Type: application/dicom\r\n\r\n" + p + b"\r\n" for p in parts)
    r = requests.post(base + "/studies", data=body + b"--B--\r\n", timeout=300, headers={
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=B',
        "Accept": "application/dicom+json", "Authorization": f"Bearer {TOKEN}"})
    r.raise_for_status()


async def _figures(url: str, sop_class: str) -> dict[str, Any]:
    conn = await asyncpg.connect(sync_url(url))
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, avg(pg_column_size(header))::int AS header_bytes,"
            " avg(pg_column_size(metadata))::int AS metadata_bytes,"
            " avg(pg_column_size(pixels))::int AS pixels_bytes,"
            " avg(octet_length(metadata))::int AS metadata_text_bytes"
            " FROM instance WHERE sop_class_uid = $1", sop_class)
        return dict(row)
    finally:
        await conn.close()


async def _table(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(sync_url(url))
    try:
        await conn.execute("VACUUM ANALYZE instance")
        row = await conn.fetchrow(
            "SELECT count(*) AS n, pg_total_relation_size('instance') AS total,"
            " pg_indexes_size('instance') AS indexes FROM instance")
        return dict(row)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", required=True)
    ap.add_argument("--copies", type=int, default=500, help="instances per test file")
    args = ap.parse_args(argv)
    server = sync_url(args.database_url)
    name = f"header_size_{uuid.uuid4().hex[:6]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = _with_db(server, name)
    work = Path(tempfile.mkdtemp(prefix="archive-bench-header-size-"))
    proc = None
    try:
        upgrade(url)
        proc, base = serve(url, work, {"ARCHIVE_CURATOR_TOKEN": TOKEN})
        result: dict[str, Any] = {"copies": args.copies}
        for file, cls in (("CT_small.dcm", "1.2.840.10008.5.1.4.1.1.2"),
                          ("MR_small.dcm", "1.2.840.10008.5.1.4.1.1.4")):
            blobs = _datasets(file, args.copies)
            for i in range(0, len(blobs), 50):
                _stow(base, blobs[i:i + 50])
            result[file] = asyncio.run(_figures(url, cls))
        table = asyncio.run(_table(url))
        result["instance_table"] = table | {
            "bytes_per_instance": round(table["total"] / max(1, table["n"])),
            "index_bytes_per_instance": round(table["indexes"] / max(1, table["n"]))}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(60)
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
