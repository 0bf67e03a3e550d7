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


# The study's aggregates as the full recount computes them (archive.index.writes._STUDY_AGGREGATES).
_RECOUNTED = """
    SELECT count(DISTINCT se.pk) AS num_series, count(i.pk) AS num_instances,
           COALESCE(sum(i.size_bytes), 0)::bigint AS size_bytes,
           COALESCE(array_agg(DISTINCT se.modality ORDER BY se.modality)
                    FILTER (WHERE se.modality IS NOT NULL), '{}') AS modalities,
           COALESCE(array_agg(DISTINCT i.sop_class_uid ORDER BY i.sop_class_uid), '{}')
               AS sop_classes
    FROM series se JOIN instance i ON i.series_pk = se.pk WHERE se.study_pk = st.pk"""


def _aggregates_match_a_recount(server: RunningArchive) -> None:
    stored = server.sql("SELECT study_uid, num_series, num_instances, size_bytes, modalities, "
                        "sop_classes FROM study ORDER BY study_uid")
    recounted = server.sql(f"SELECT st.study_uid, agg.* FROM study st, LATERAL ({_RECOUNTED}) "
                           "AS agg ORDER BY st.study_uid")
    assert [dict(r) for r in stored] == [dict(r) for r in recounted]
    series = server.sql("SELECT s.pk, s.num_instances, (SELECT count(*) FROM instance i "
                        "WHERE i.series_pk = s.pk) AS counted FROM series s")
    assert all(r["num_instances"] == r["counted"] for r in series), series


def test_batches_add_to_aggregates_exactly_what_a_recount_finds(server: RunningArchive) -> None:
    """A batch of new instances adds to its series' and study's aggregates instead of
    recounting the study (whose cost grows with it, issue 14): after batches that open new
    series and modalities in an existing study, a replace and a resend (both the per-instance
    path, which recounts), every aggregate equals what a full recount finds."""
    first = [f.image("agg", "se1", i, modality="CT") for i in range(1, 6)]
    second = [f.image("agg", "se1", i, modality="CT") for i in range(6, 9)] + [
        f.image("agg", "se2", i, modality="MR") for i in range(1, 5)] + [
        f.image("agg-b", "se1", i, modality="CR") for i in range(1, 3)]
    for batch in (first, second):
        results = server.run(_ingest_all(server, [f.to_bytes(d) for d in batch]))
        assert {r.outcome for r in results if isinstance(r, Stored)} == {"stored"}, results
        _aggregates_match_a_recount(server)
    replaced = f.image("agg", "se1", 1, modality="CT", rows=32, columns=32)  # same SOP UID
    third = [replaced, f.image("agg", "se3", 1, modality="CR"), second[0]]
    results = server.run(_ingest_all(server, [f.to_bytes(d) for d in third]))
    assert [r.outcome for r in results] == ["replaced", "stored", "duplicate"]  # type: ignore[union-attr]
    _aggregates_match_a_recount(server)
    fourth = [f.image("agg", "se3", i, modality="CR") for i in range(2, 4)]
    server.run(_ingest_all(server, [f.to_bytes(d) for d in fourth]))
    _aggregates_match_a_recount(server)
    # a batch of one opening a new series with a new modality: the series row is new to
    # this very statement's snapshot
    lone = f.image("agg", "se4", 1, modality="DX")
    assert server.run(_ingest_all(server, [f.to_bytes(lone)]))[0].outcome == "stored"
    _aggregates_match_a_recount(server)
    row = server.sql("SELECT num_series, num_instances, modalities FROM study WHERE study_uid=$1",
                     first[0].StudyInstanceUID)[0]
    assert (row["num_series"], row["num_instances"], row["modalities"]) == (
        4, 16, ["CR", "CT", "DX", "MR"])
