"""Issue 13 operations endpoints against a real archive: /healthz, /readyz (503 when storage
cannot be written), /metrics counting real requests and ingests."""

from __future__ import annotations

import os

import pytest
import requests

from tests import factories as f
from tests.conftest import RunningArchive
from tests.reliability.test_bad_input import body_of, part, stow


def test_healthz_and_readyz(server: RunningArchive) -> None:
    r = requests.get(server.base + "/healthz", timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "ok"
    r = requests.get(server.base + "/readyz", timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["checks"]["database"]["ok"] and r.json()["checks"]["storage"]["ok"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories")
def test_readyz_is_503_when_storage_is_read_only(server: RunningArchive) -> None:
    spool = server.core.blobs.spool_dir()
    spool.chmod(0o500)
    try:
        r = requests.get(server.base + "/readyz", timeout=10)
    finally:
        spool.chmod(0o700)
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert not r.json()["checks"]["storage"]["ok"]


def test_metrics_count_requests_and_ingest(server: RunningArchive) -> None:
    data = f.to_bytes(f.image("metrics"))
    assert stow(server, body_of(part(data))).status_code == 200
    assert requests.get(server.url + "/studies", timeout=10).status_code == 200
    assert requests.get(server.url + "/studies/1.2.3", timeout=10).status_code == 404
    r = requests.get(server.base + "/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    assert 'archive_http_requests_total{method="POST",route="/dicom-web/studies",status="200"} 1.0' \
        in text
    assert 'route="/dicom-web/studies/{study}",status="404"' in text
    assert "archive_instances_stored_total 1.0" in text
    assert f"archive_bytes_stored_total {float(len(data))}" in text
    assert "archive_ingest_batch_size_count 1.0" in text
    assert 'archive_errors_total{door="http",kind="NotFound"} 1.0' in text
    assert "archive_db_pool_checked_out" in text and "archive_ingest_queue_depth 0.0" in text
