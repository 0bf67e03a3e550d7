"""Issue 13 "Data loss": storage and database are paired by an identity stamp, and the start-up
sweep deletes only blobs the journal proves were never acknowledged."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from archive.index import blob_journal
from archive.index.engine import create_engine
from archive.sweep import ensure_paired, sweep_orphans
from storage.filesystem import FileBlobStore
from tests import factories as f
from tests.conftest import RunningArchive, ServerThread, _admin, _with_db, make_settings
from tests.dicomweb.test_stow import multipart, post
from tests.dicomweb.test_wado import store


@pytest.fixture
def empty_database_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """A second, freshly migrated database that knows nothing of the first one's files."""
    name = f"archive_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    yield _with_db(pg_server_url, name)
    asyncio.run(_admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _files(storage: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (storage / "blobs").glob("*/*/*")}


def _start(tmp_path: Path, db: str) -> tuple[ServerThread, RunningArchive]:
    thread = ServerThread(make_settings(tmp_path, db), db)
    return thread, thread.start()


def test_restart_on_an_empty_database_refuses_and_keeps_every_file(
    tmp_path: Path, database_url: str, empty_database_url: str
) -> None:
    thread, server = _start(tmp_path, database_url)
    datasets = f.series_of(5, "pair1")
    try:
        store(server, datasets)
    finally:
        thread.stop()
    storage = server.settings.storage_dir
    before = _files(storage)
    assert len(before) == 5

    wrong = ServerThread(make_settings(tmp_path, empty_database_url), empty_database_url)
    with pytest.raises(RuntimeError, match="do not belong together"):
        wrong.start()
    wrong.stop()
    assert _files(storage) == before

    thread, server = _start(tmp_path, database_url)  # back on the right database
    try:
        ds = datasets[0]
        r = requests.get(f"{server.url}/studies/{ds.StudyInstanceUID}/series/"
                         f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}",
                         headers={"Accept": 'multipart/related; type="application/dicom"'},
                         timeout=60)
        assert r.status_code == 200
        assert f.to_bytes(ds) in r.content
        assert _files(storage) == before
    finally:
        thread.stop()


def test_serve_against_the_wrong_database_exits_2_with_one_line(
    tmp_path: Path, database_url: str, empty_database_url: str
) -> None:
    thread, server = _start(tmp_path, database_url)
    try:
        store(server, f.series_of(2, "pair2"))
    finally:
        thread.stop()
    before = _files(server.settings.storage_dir)
    env = os.environ | {"ARCHIVE_DATABASE_URL": empty_database_url,
                        "ARCHIVE_DATA_DIR": str(server.settings.data_dir),
                        "ARCHIVE_HTTP_PORT": "0", "ARCHIVE_DIMSE_PORT": "0"}
    proc = subprocess.run([sys.executable, "-m", "archive", "serve"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("archive: ")]
    assert len(lines) == 1 and "do not belong together" in lines[0]
    assert "Traceback" not in proc.stderr
    assert _files(server.settings.storage_dir) == before


def test_a_fresh_pair_is_stamped_alike(server: RunningArchive) -> None:
    stamp = (server.settings.storage_dir / "STORAGE_ID").read_text().strip()
    assert server.sql("SELECT stamp FROM storage_identity")[0]["stamp"] == stamp


def test_a_pre_stamp_installation_is_adopted_and_a_foreign_stamp_refused(
    server: RunningArchive, empty_database_url: str
) -> None:
    store(server, f.series_of(3, "pair3"))
    blobs, engine = server.core.blobs, server.core.engine
    server.sql("DELETE FROM storage_identity")
    (server.settings.storage_dir / "STORAGE_ID").unlink()
    stamp = server.run(ensure_paired(engine, blobs))  # its files are in its index: adopted
    assert blobs.read_stamp() == stamp
    assert server.sql("SELECT stamp FROM storage_identity")[0]["stamp"] == stamp

    server.sql("UPDATE storage_identity SET stamp = 'another-archive'")
    with pytest.raises(Exception, match="do not belong together"):
        server.run(ensure_paired(engine, blobs))

    other = create_engine(empty_database_url)  # an index with rows but a storage without files
    server.sql("UPDATE storage_identity SET stamp = $1", stamp)
    empty = FileBlobStore(server.settings.data_dir / "elsewhere")
    try:
        with pytest.raises(Exception, match="holds no files"):
            server.run(ensure_paired(engine, empty))
        server.run(ensure_paired(other, empty))  # both empty: a fresh pair
    finally:
        empty.close()
        server.run(other.dispose())


def _plant(server: RunningArchive, data: bytes) -> str:
    """A blob on disk, as a crash would leave it; its key is returned."""
    blobs = server.core.blobs
    return blobs.commit(blobs.spool_bytes(data))


async def _journal(server: RunningArchive, keys: list[str], kind: str, owner: int | None,
                   age_seconds: float = 0) -> None:
    async with server.core.engine.begin() as conn:
        await blob_journal.journal(conn, keys, kind, owner)
        await conn.execute(text("UPDATE blob_journal SET created_at = now() - "
                                "make_interval(secs => :a) WHERE blob_key = ANY(:k)"),
                           {"a": age_seconds, "k": keys})


def test_the_sweep_deletes_only_what_the_journal_proves_unacknowledged(
    server: RunningArchive,
) -> None:
    store(server, f.series_of(2, "pair4"))
    indexed = {r["blob_key"] for r in server.sql("SELECT blob_key FROM instance")}
    unknown = _plant(server, b"a blob this index never journaled")
    dead_write = _plant(server, b"written by a process that died before indexing")
    young_live = _plant(server, b"in flight on a live node")
    old_live = _plant(server, b"left by a live node long ago")
    deleted = _plant(server, b"unreferenced by a committed delete")
    live_owner = blob_journal.new_owner()

    async def scenario() -> dict[str, int]:
        async with server.core.engine.connect() as holder:  # a live writer holds its lock
            await blob_journal.hold_owner(holder, live_owner)
            await holder.commit()
            await _journal(server, [dead_write], blob_journal.WRITE, blob_journal.new_owner())
            await _journal(server, [young_live], blob_journal.WRITE, live_owner, age_seconds=5)
            await _journal(server, [old_live], blob_journal.WRITE, live_owner, age_seconds=3600)
            await _journal(server, [deleted], blob_journal.UNREFERENCED, None)
            # a journaled key that did get indexed is never a candidate
            await _journal(server, sorted(indexed)[:1], blob_journal.UNREFERENCED, None)
            result = await sweep_orphans(server.core.engine, server.core.blobs, grace_seconds=600)
            await holder.invalidate()
        return result

    result = server.run(scenario())
    left = set(server.core.blobs.keys())
    assert indexed | {unknown, young_live} <= left
    assert not {dead_write, old_live, deleted} & left
    assert result["orphan_blobs"] == 3
    journal = {r["blob_key"] for r in server.sql("SELECT blob_key FROM blob_journal")}
    assert journal == {young_live, sorted(indexed)[0]}


def test_ingest_leaves_no_journal_rows_and_a_replace_journals_the_old_blob(
    server_factory: object,
) -> None:
    server = server_factory(duplicate_policy="replace")  # type: ignore[operator]
    ds = f.image("pair5")
    store(server, [ds])
    old = server.sql("SELECT blob_key FROM instance")[0]["blob_key"]
    assert server.sql("SELECT count(*) AS n FROM blob_journal")[0]["n"] == 0
    ds.PatientName = "Changed^Name"
    assert post(server, multipart([f.to_bytes(ds)])).status_code == 202  # replaced
    rows = server.sql("SELECT blob_key, kind FROM blob_journal")
    assert [(r["blob_key"], r["kind"]) for r in rows] == [(old, "unreferenced")]
    assert old not in set(server.core.blobs.keys())

