"""Ingest policy: duplicates, replacement, concurrent stores of one study, spool hygiene."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib

import pytest

from tests import factories as f
from tests.conftest import RunningArchive
from tests.dicomweb.test_stow import multipart, post, stored_files


def test_identical_resend_succeeds_without_a_second_copy(server: RunningArchive) -> None:
    data = f.to_bytes(f.image("dup"))
    assert post(server, multipart([data])).status_code == 200
    r = post(server, multipart([data]))
    assert r.status_code == 200
    assert len(stored_files(server)) == 1
    assert server.sql("SELECT num_instances FROM study")[0]["num_instances"] == 1


def _changed(ds_bytes_seed: int) -> bytes:
    return f.to_bytes(f.image("dup2", seed=ds_bytes_seed))


def test_different_instance_same_uid_replaces_by_default_and_reports_it(server: RunningArchive) -> None:
    first, second = _changed(1), _changed(2)
    assert post(server, multipart([first])).status_code == 200
    r = post(server, multipart([second]))
    assert r.status_code == 202
    assert "replaced" in r.headers["Warning"]
    assert len(stored_files(server)) == 1
    key = server.sql("SELECT blob_key FROM instance")[0]["blob_key"]
    assert server.core.blobs.path(key).read_bytes() == second


def test_reject_policy_keeps_the_first_and_fails_the_second(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(duplicate_policy="reject")
    first, second = _changed(1), _changed(2)
    assert post(server, multipart([first])).status_code == 200
    r = post(server, multipart([second]))
    assert r.status_code == 409
    assert r.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0x0111]
    key = server.sql("SELECT blob_key FROM instance")[0]["blob_key"]
    assert server.core.blobs.path(key).read_bytes() == first
    assert len(stored_files(server)) == 1


def test_keep_policy_keeps_the_first_and_warns(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(duplicate_policy="keep")
    first, second = _changed(1), _changed(2)
    post(server, multipart([first]))
    r = post(server, multipart([second]))
    assert r.status_code == 202
    key = server.sql("SELECT blob_key FROM instance")[0]["blob_key"]
    assert server.core.blobs.path(key).read_bytes() == first


def test_concurrent_stores_of_one_study_keep_aggregates_right(server: RunningArchive) -> None:
    """8 clients store 3 series × 10 instances of one study, interleaved."""
    datasets = [f.image("conc", f"se{s}", i, modality=["CT", "MR", "CR"][s])
                for s in range(3) for i in range(1, 11)]
    bodies = [multipart([f.to_bytes(d) for d in datasets[i::8]]) for i in range(8)]
    with cf.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda b: post(server, b).status_code, bodies))
    assert statuses == [200] * 8
    study = server.sql("SELECT num_series, num_instances, modalities, sop_classes FROM study")
    assert len(study) == 1
    assert (study[0]["num_series"], study[0]["num_instances"]) == (3, 30)
    assert study[0]["modalities"] == ["CR", "CT", "MR"]
    assert len(study[0]["sop_classes"]) == 3
    series = server.sql("SELECT num_instances FROM series ORDER BY series_uid")
    assert [r["num_instances"] for r in series] == [10, 10, 10]


def test_every_index_row_points_at_a_file_with_its_hash(server: RunningArchive) -> None:
    post(server, multipart([f.to_bytes(d) for d in f.series_of(4, "hash")]))
    for row in server.sql("SELECT blob_key, sha256, size_bytes FROM instance"):
        data = server.core.blobs.path(row["blob_key"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        assert len(data) == row["size_bytes"]


def test_client_disconnect_mid_upload_leaves_no_stray_files(server: RunningArchive) -> None:
    import socket

    whole = f.to_bytes(f.image("disc", rows=256, columns=256))
    body = multipart([whole])
    head = (f"POST /dicom-web/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/related; type=\"application/dicom\"; boundary=XbOuNdArYx\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.settings.http_port)) as s:
        s.sendall(head + body[: len(body) // 2])
    # The server notices, cleans up, and keeps serving. The cut-off part may first be parsed
    # and rejected as truncated (in a parse worker that a loaded machine starts slowly).
    import time

    deadline = time.monotonic() + 60
    while list(server.core.blobs.spool_dir().iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(server.core.blobs.spool_dir().iterdir()) == []
    assert stored_files(server) == []
    assert server.sql("SELECT count(*) AS n FROM instance")[0]["n"] == 0
    assert post(server, multipart([f.to_bytes(f.image("after-disc"))])).status_code == 200


@pytest.mark.parametrize("path", ["/studies/not-a-uid", "/studies/1.2.3.04"])
def test_bad_study_uid_in_url_is_400(server: RunningArchive, path: str) -> None:
    r = post(server, multipart([f.to_bytes(f.image("u"))]), path=path)
    assert r.status_code == 400
