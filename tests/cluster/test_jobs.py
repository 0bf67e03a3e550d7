"""The task queue across processes (issue 15): `archive serve --no-jobs` nodes leave jobs to an
`archive worker`; a mapping change made through one node is re-applied by the worker and seen
through the other; a job whose worker is killed with SIGKILL mid-run completes on another
worker, to the right result. Real processes, one real PostgreSQL database, one data directory
(the local-files backend: every process of one archive shares it)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import requests

from archive.index.engine import sync_url
from tests import factories as f
from tests.cluster.procs import Proc, set_mapping, sql, stow, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.stop()


def _studies_with(node: Proc, code: str) -> list[Any]:
    r = requests.get(f"{node.url}/studies", params={"commons.loinc_code": code}, timeout=30)
    assert r.status_code == 200, r.text
    return list(r.json())


def _store_studies(node: Proc, description: str, n: int, tag: str) -> None:
    for k in range(n):
        ds = f.image(f"{tag}{k}", "se1", 1, rows=16, columns=16, study_description=description)
        assert stow(node.url, f.to_bytes(ds)).status_code == 200


def test_a_mapping_change_through_one_node_is_reapplied_by_a_worker_and_seen_through_the_other(
        database_url: str, tmp_path: Path, procs: list[Proc]) -> None:
    data = tmp_path / "archive"
    a = Proc("serve", data, database_url, "--no-jobs")
    b = Proc("serve", data, database_url, "--no-jobs")
    procs += [a, b]
    a.start()
    b.start()
    _store_studies(a, "QUEUE TEST ALPHA", 2, "qa")
    # No process runs jobs yet: the change is saved with its job, which waits in the queue.
    r = set_mapping(a, "CT", "Queue Test Alpha", "25045-6")
    assert r.status_code == 200, r.text
    first = r.json()["mappings"][0]
    assert first["studies_updated"] == 2 and first["reapplied"] is False
    assert [x["status"] for x in sql(database_url, "SELECT status::text FROM procrastinate_jobs "
                                     "WHERE id = $1", first["job"])] == ["todo"]
    assert _studies_with(b, "25045-6") == []
    worker = Proc("worker", data, database_url)
    procs.append(worker)
    worker.start()
    found = wait_for(lambda: _studies_with(b, "25045-6"), 60, "the worker's re-apply")
    assert len(found) == 2
    assert "mapping re-applied" in worker.tail(20000)
    # With a worker running, a change through the other node answers once it is applied.
    r = set_mapping(b, "CT", "queue test alpha", "24627-2", replace=True)
    assert r.status_code == 200, r.text
    second = r.json()["mappings"][0]
    assert second["reapplied"] is True
    assert len(_studies_with(a, "24627-2")) == 2 and _studies_with(a, "25045-6") == []
    versions = {x["mapping_version"] for x in sql(
        database_url, "SELECT mapping_version FROM study_harmonization "
        "WHERE description_norm = 'queue test alpha'")}
    assert versions == {second["version"]}
    assert sql(database_url, "SELECT id FROM procrastinate_jobs WHERE task_name = "
               "'harmonize.reapply_key'") == []  # succeeded jobs are deleted


class RowLock:
    """Holds a row lock of one study's harmonization row in its own transaction, so the
    re-apply job that reaches it waits there: the job is provably mid-run when its worker dies."""

    def __init__(self, url: str, study_uid: str) -> None:
        self.url, self.study_uid = url, study_uid
        self.locked, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._hold()), daemon=True)

    async def _hold(self) -> None:
        conn = await asyncpg.connect(sync_url(self.url))
        try:
            async with conn.transaction():
                await conn.execute(
                    "SELECT 1 FROM study_harmonization h JOIN study s ON s.pk = h.study_pk "
                    "WHERE s.study_uid = $1 FOR UPDATE OF h", self.study_uid)
                self.locked.set()
                await asyncio.to_thread(self.release.wait, 120)  # the test's thread sets it
        finally:
            await conn.close()

    def __enter__(self) -> RowLock:
        self.thread.start()
        assert self.locked.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(30)


def test_a_job_whose_worker_is_killed_mid_run_completes_on_another_worker(
        database_url: str, tmp_path: Path, procs: list[Proc]) -> None:
    data = tmp_path / "archive"
    node = Proc("serve", data, database_url, "--no-jobs")
    procs.append(node)
    node.start()
    _store_studies(node, "QUEUE TEST KILL", 3, "qk")
    study_uid = sql(database_url, "SELECT study_uid FROM study ORDER BY pk LIMIT 1")[0]["study_uid"]
    w1 = Proc("worker", data, database_url)
    procs.append(w1)
    w1.start()
    answers: list[requests.Response] = []
    with RowLock(database_url, study_uid):
        change = threading.Thread(target=lambda: answers.append(
            set_mapping(node, "CT", "queue test kill", "29252-4")))
        change.start()
        # the job is running in w1 and waits for the locked row
        wait_for(lambda: sql(database_url, "SELECT 1 FROM procrastinate_jobs WHERE task_name = "
                             "'harmonize.reapply_key' AND status = 'doing'"), 30, "job started")
        wait_for(lambda: sql(database_url, "SELECT 1 FROM pg_locks WHERE NOT granted"), 30,
                 "the job to wait on the row lock")
        w1.kill()
        change.join(60)
    assert answers and answers[0].status_code == 200, answers
    assert answers[0].json()["mappings"][0]["reapplied"] is False  # its worker died
    job = answers[0].json()["mappings"][0]["job"]
    # w1's transaction died with it: nothing half-applied stays
    assert sql(database_url, "SELECT status::text AS s FROM procrastinate_jobs WHERE id = $1",
               job)[0]["s"] == "doing"
    w2 = Proc("worker", data, database_url)
    procs.append(w2)
    w2.start()
    wait_for(lambda: not sql(database_url, "SELECT 1 FROM procrastinate_jobs WHERE id = $1", job),
             90, "the stalled job to be retried and to succeed on the second worker")
    codes = sql(database_url, "SELECT loinc_code, mapping_version FROM study_harmonization "
                "WHERE description_norm = 'queue test kill'")
    version = sql(database_url, "SELECT version FROM description_mapping WHERE "
                  "description_norm = 'queue test kill'")[0]["version"]
    assert len(codes) == 3
    assert {(c["loinc_code"], c["mapping_version"]) for c in codes} == {("29252-4", version)}
    log = w2.tail(50000)
    assert "retrying the job of a stalled worker" in log and "mapping re-applied" in log
