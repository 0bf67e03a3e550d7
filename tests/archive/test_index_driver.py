"""Statements sent through asyncpg itself (archive.index.driver) are part of SQLAlchemy's
transaction on the same connection: undone by its rollback, visible to the index hooks (which
run through SQLAlchemy), committed by its commit — and never sent before it has begun."""

from __future__ import annotations

import pytest

from archive.core import Caller
from archive.index.blob_journal import claim_for_index
from archive.index.driver import autocommit, in_transaction
from archive.index.writes import BatchEntry, Indexed, recount_in_transaction, upsert_batch
from archive.ingest import attribution_for, ingest, parse
from tests import factories as f
from tests.conftest import RunningArchive


class _Undo(Exception):
    pass


async def _entries(server: RunningArchive, uid: str, n: int) -> list[BatchEntry]:
    core = server.core
    out = []
    for i, ds in enumerate(f.series_of(n, uid)):
        spooled = core.blobs.spool_bytes(f.to_bytes(ds))
        try:
            facts, header_json = await parse(core, spooled)
        finally:
            core.blobs.discard(spooled)
        out.append(BatchEntry(facts, {"blob_key": f"{uid}-{i}", "size_bytes": spooled.size,
                                      "sha256": spooled.sha256},
                              attribution_for(core, facts, Caller()), header_json))
    return out


def _count(server: RunningArchive, study_uid: str) -> tuple[int, int, int]:
    row = server.sql(
        """SELECT (SELECT count(*) FROM study WHERE study_uid = $1) AS studies,
                  (SELECT count(*) FROM instance i JOIN series se ON se.pk = i.series_pk
                   JOIN study st ON st.pk = se.study_pk WHERE st.study_uid = $1) AS instances,
                  (SELECT count(*) FROM study_harmonization h JOIN study st
                   ON st.pk = h.study_pk WHERE st.study_uid = $1) AS keys""", study_uid)[0]
    return row["studies"], row["instances"], row["keys"]


def test_driver_writes_roll_back_with_the_transaction_and_the_hooks_see_them(
    server: RunningArchive,
) -> None:
    core = server.core
    hooks = core.extensions.index_hooks
    assert hooks, "the commons index hook is registered (it runs through SQLAlchemy)"

    async def write_then_fail() -> None:
        entries = await _entries(server, "drv-rollback", 3)
        async with core.engine.begin() as conn:
            await claim_for_index(conn, ["none"])  # through SQLAlchemy: BEGINs
            outcomes = await upsert_batch(conn, entries)  # through the driver
            assert outcomes is not None and all(isinstance(o, Indexed) for o in outcomes)
            first = outcomes[0]
            assert isinstance(first, Indexed)
            await recount_in_transaction(conn, list(first.series_pks))
            for hook in hooks:  # SQLAlchemy, same transaction: sees the driver's rows
                await hook(conn, entries[0].facts, first.study_pk)
            driver = await in_transaction(conn)
            seen = await driver.fetchrow(
                "SELECT st.num_instances, h.modality_norm FROM study st "
                "JOIN study_harmonization h ON h.study_pk = st.pk WHERE st.pk = $1",
                first.study_pk)
            assert seen is not None and seen["num_instances"] == 3
            assert seen["modality_norm"]
            raise _Undo

    with pytest.raises(_Undo):
        server.run(write_then_fail())
    uid = f.series_of(1, "drv-rollback")[0].StudyInstanceUID
    assert _count(server, uid) == (0, 0, 0)  # nothing the driver wrote survived the rollback


def test_driver_writes_commit_with_the_transaction(server: RunningArchive) -> None:
    core = server.core

    async def write() -> None:
        entries = await _entries(server, "drv-commit", 2)
        async with core.engine.begin() as conn:
            await claim_for_index(conn, ["none"])
            outcomes = await upsert_batch(conn, entries)
            assert outcomes is not None
            first = outcomes[0]
            assert isinstance(first, Indexed)
            await recount_in_transaction(conn, list(first.series_pks))
            for hook in core.extensions.index_hooks:
                await hook(conn, entries[0].facts, first.study_pk)

    server.run(write())
    uid = f.series_of(1, "drv-commit")[0].StudyInstanceUID
    assert _count(server, uid) == (1, 2, 1)
    assert server.sql("SELECT num_instances FROM study WHERE study_uid = $1",
                      uid)[0]["num_instances"] == 2


def test_the_driver_is_refused_before_the_transaction_has_begun(server: RunningArchive) -> None:
    """SQLAlchemy BEGINs on its first statement: a driver statement before it would commit by
    itself, so it is refused; and the autocommit accessor refuses a transactional connection."""
    core = server.core

    async def check() -> None:
        entries = await _entries(server, "drv-early", 1)
        async with core.engine.begin() as conn:
            with pytest.raises(RuntimeError, match="not inside a transaction"):
                await upsert_batch(conn, entries)
            with pytest.raises(RuntimeError, match="AUTOCOMMIT"):
                await autocommit(conn)
        async with core.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            assert not (await autocommit(conn)).is_in_transaction()

    server.run(check())
    uid = f.series_of(1, "drv-early")[0].StudyInstanceUID
    assert _count(server, uid) == (0, 0, 0)


def test_group_commit_through_the_driver_indexes_and_harmonizes(server: RunningArchive) -> None:
    core = server.core
    data = f.series_of(4, "drv-ingest")

    async def store() -> list[str]:
        out = []
        for ds in data:
            stored = await ingest(core, core.blobs.spool_bytes(f.to_bytes(ds)), Caller())
            out.append(stored.outcome)
        return out

    assert server.run(store()) == ["stored"] * 4
    assert _count(server, data[0].StudyInstanceUID) == (1, 4, 1)
    assert server.run(store()) == ["duplicate"] * 4  # the lease's digest lookup (driver)


def test_a_series_committed_under_another_study_meanwhile_fails_the_batch(
    server: RunningArchive,
) -> None:
    """The batch reads series owners before writing; a writer that commits the same
    SeriesInstanceUID under another study after that read is caught by the upsert itself
    (it returns the row's study), so no instance is filed under the other study's series: the
    batch fails and the group committer redoes it per instance, where the series is refused."""
    import dataclasses

    from archive.errors import DataSetMismatch
    from archive.index import writes

    core = server.core

    async def race() -> None:
        first = await _entries(server, "own-a", 1)
        async with core.engine.begin() as conn:
            await claim_for_index(conn, ["none"])
            assert await upsert_batch(conn, first) is not None  # study A's series, committed
        (entry,) = await _entries(server, "own-b", 1)
        taken = dataclasses.replace(entry.facts, series_uid=first[0].facts.series_uid)
        ok = [(dataclasses.replace(entry, facts=taken), entry.attribution)]
        async with core.engine.begin() as conn:
            await claim_for_index(conn, ["none"])
            driver = await in_transaction(conn)
            patients = await writes._upsert_patients(driver, ok)
            studies = await writes._upsert_studies(driver, ok, patients)
            with pytest.raises(DataSetMismatch, match="belongs to another study"):
                await writes._upsert_series(driver, ok, studies)
            raise _Undo

    with pytest.raises(_Undo):
        server.run(race())
    a = f.series_of(1, "own-a")[0].StudyInstanceUID
    assert _count(server, a)[:2] == (1, 1)  # study A keeps its one instance
