"""PostgreSQL restarted under load (issue 15): two `archive serve` nodes and one `archive
worker` on a private PostgreSQL cluster (tests/reliability/pg_cluster.py — never the shared
server), four clients storing through both nodes. While PostgreSQL is down, stores are refused
clearly (HTTP 503 + Retry-After, DIMSE 0xA700); when it is back, the nodes and the worker
recover without a restart, and every acknowledged instance is there, byte-identical, through
either node; the task queue runs jobs again."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from tests import factories as f
from tests.cluster.procs import Proc, set_mapping, sql, stow, wait_for
from tests.dicomweb.test_wado import parts
from tests.reliability.pg_cluster import Cluster

pytestmark = pytest.mark.slow
AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
CLIENTS = 4


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    yield c
    c.close()


class Load:
    """Four clients, each storing small instances through the nodes in turn until stopped."""

    def __init__(self, nodes: list[Proc]) -> None:
        self.nodes = nodes
        self.acked: dict[str, tuple[str, str, bytes]] = {}
        self.codes: list[int] = []
        self.odd: list[str] = []  # answers that are neither success nor 503
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(k,)) for k in range(CLIENTS)]

    def _client(self, k: int) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            ds = f.image(f"pgload{k}", "se1", i, rows=16, columns=16)
            data = f.to_bytes(ds)
            try:
                r = stow(self.nodes[(i + k) % len(self.nodes)].url, data, timeout=60)
                code = r.status_code
                if code not in (200, 503):
                    self.odd.append(f"{code} {r.text[:300]}")
            except requests.RequestException as exc:
                code = -1
                self.odd.append(repr(exc))
            self.codes.append(code)
            if code == 200:
                self.acked[ds.SOPInstanceUID] = (ds.StudyInstanceUID, ds.SeriesInstanceUID, data)
            elif code != 200:
                time.sleep(0.2)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(120)


def _stop(cluster: Cluster) -> None:
    try:
        cluster.stop("fast", timeout=90)  # a slow checkpoint on a loaded machine
    except subprocess.CalledProcessError as exc:
        raise AssertionError(f"{exc.stderr}\n{(cluster.dir / 'log').read_text()[-3000:]}") from exc


def c_store(node: Proc, n: int) -> int:
    ae = AE(ae_title="PGRESTART")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", node.dimse, ae_title="ARCHIVE")
    assert assoc.is_established
    try:
        return int(assoc.send_c_store(f.image("pg-dimse", number=n)).Status)
    finally:
        assoc.release()


def test_postgres_restart_mid_load(cluster: Cluster, tmp_path: Path) -> None:
    data = tmp_path / "archive"
    env = {"ARCHIVE_DB_IDLE_RELEASE_SECONDS": "1"}
    a, b = (Proc("serve", data, cluster.url, env=env) for _ in range(2))
    worker = Proc("worker", data, cluster.url, env=env)
    procs = [a, b, worker]
    try:
        a.start()
        b.start()
        worker.start()
        with Load([a, b]) as load:
            wait_for(lambda: len(load.acked) >= 8, 120, "stores before the outage")
            _stop(cluster)
            before = len(load.codes)
            for node in (a, b):  # clear answers while it is down
                r = stow(node.url, f.to_bytes(f.image("pg-down", "se1", node.http)))
                assert r.status_code == 503, (r.status_code, r.text)
                assert r.headers["Retry-After"].isdigit()
                assert c_store(node, node.http) == 0xA700
            wait_for(lambda: len(load.codes) >= before + 8, 120, "clients refused meanwhile")
            assert 503 in load.codes[before:]
            acked_at_restart = len(load.acked)
            cluster.start()
            wait_for(lambda: len(load.acked) >= acked_at_restart + 8, 180,
                     "stores through both nodes after the restart")
        assert set(load.codes) <= {200, 503}, load.odd
        assert c_store(a, 1) == 0x0000 and c_store(b, 2) == 0x0000
        for n, (sop, (study, series, body)) in enumerate(sorted(load.acked.items())):
            node = (a, b)[n % 2]
            r = requests.get(f"{node.url}/studies/{study}/series/{series}/instances/{sop}",
                             headers={"Accept": AS_STORED}, timeout=60)
            assert r.status_code == 200, (sop, r.status_code)
            assert [p for _, p in parts(r)] == [body], sop
        indexed = {r["sop_uid"] for r in sql(cluster.url, "SELECT sop_uid FROM instance")}
        assert set(load.acked) <= indexed
        # the task queue works again, without restarting anything
        r = set_mapping(a, "CT", "CT CHEST W/O CONTRAST", "24627-2", replace=True)
        assert r.status_code == 200, r.text
        wait_for(lambda: requests.get(f"{b.url}/studies", timeout=30, params={
            "commons.loinc_code": "24627-2", "StudyInstanceUID": f.image("pgload0").StudyInstanceUID,
        }).json(), 90, "the re-apply job after the restart")
        for p in procs:
            assert p.proc is not None and p.proc.poll() is None, p.tail()
        print(f"acknowledged {len(load.acked)}; answers {len(load.codes)}, "
              f"503s {load.codes.count(503)}")
    finally:
        for p in procs:
            p.stop()
