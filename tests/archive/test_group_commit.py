"""Group commit: concurrent ingests share one flush, yet each succeeds or fails on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from archive.core import Caller
from archive.errors import DataSetMismatch
from archive.ingest import Stored, ingest
from tests import factories as f
from tests.conftest import RunningArchive


async def _ingest_all(server: RunningArchive, payloads: list[bytes]) -> list[object]:
    core = server.core
    spooled = [core.blobs.spool_bytes(p) for p in payloads]
    # gathered together, they reach the committer before its writer runs: one batch
    return await asyncio.gather(*(ingest(core, s, Caller()) for s in spooled),
                                return_exceptions=True)


def test_a_bad_instance_fails_alone_in_its_batch(server: RunningArchive) -> None:
    first = f.image("gc-a", "se1", 1)
    assert server.run(_ingest_all(server, [f.to_bytes(first)]))[0].outcome == "stored"
    good = f.series_of(8, "gc-b", "se1")
    bad = f.image("gc-c", "se9", 1)
    bad.SeriesInstanceUID = first.SeriesInstanceUID  # a series of another study
    payloads = [f.to_bytes(d) for d in good[:4]] + [f.to_bytes(bad)] + [
        f.to_bytes(d) for d in good[4:]]

    results = server.run(_ingest_all(server, payloads))

    assert isinstance(results[4], DataSetMismatch)
    stored = [r for r in results if isinstance(r, Stored)]
    assert len(stored) == 8 and {r.outcome for r in stored} == {"stored"}
    row = server.sql("SELECT num_series, num_instances FROM study WHERE study_uid=$1",
                     good[0].StudyInstanceUID)[0]
    assert (row["num_series"], row["num_instances"]) == (1, 8)
    assert server.sql("SELECT count(*) AS n FROM study WHERE study_uid=$1",
                      bad.StudyInstanceUID)[0]["n"] == 0
    # every indexed row has its file, and the failed instance left no blob behind
    keys = {r["blob_key"] for r in server.sql("SELECT blob_key FROM instance")}
    on_disk = {p.name for p in (server.settings.storage_dir / "blobs").glob("*/*/*")}
    assert keys == on_disk and len(keys) == 9


def test_identical_resends_in_one_batch_write_no_blob(server: RunningArchive) -> None:
    data = [f.to_bytes(d) for d in f.series_of(3, "gc-d")]
    server.run(_ingest_all(server, data))
    results = server.run(_ingest_all(server, data + data))
    assert {r.outcome for r in results if isinstance(r, Stored)} == {"duplicate"}
    assert len(list((server.settings.storage_dir / "blobs").glob("*/*/*"))) == 3


def test_rejected_duplicate_does_not_fail_its_neighbours(
    server_factory: Callable[..., RunningArchive],
) -> None:
    server = server_factory(duplicate_policy="reject")
    original = f.image("gc-e", "se1", 1)
    server.run(_ingest_all(server, [f.to_bytes(original)]))
    changed = f.image("gc-e", "se1", 1, study_description="changed")
    others = f.series_of(3, "gc-f")
    results = server.run(_ingest_all(server, [f.to_bytes(d) for d in others[:2]]
                                     + [f.to_bytes(changed), f.to_bytes(others[2])]))
    assert isinstance(results[2], Exception) and "already stored" in str(results[2])
    assert [r.outcome for r in results if isinstance(r, Stored)] == ["stored"] * 3
