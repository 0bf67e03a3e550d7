"""The archive with `storage = "s3://…"` on a real object store (SeaweedFS): every door reads
blobs without local files, frames come from ranged GETs, and an object-store outage is a clear
503 / 0xA700 that loses nothing acknowledged and ends when the store returns."""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.encaps import generate_frames
from pydicom.uid import JPEGLSLossless

from archive.blobs import BlobRef
from archive.frames import read_frame
from archive.instance import read_instance
from archive.retrieve import Located
from storage.s3 import S3BlobStore
from tests import factories as f
from tests.conftest import RunningArchive
from tests.dicomweb.test_stow import multipart, post
from tests.dicomweb.test_wado import inst_url, parts
from tests.dimse.test_get import c_get
from tests.dimse.test_store import associate
from tests.s3 import BUCKET

AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'


@pytest.fixture
def s3_server(seaweed: Any, server_factory: Callable[..., RunningArchive]) -> RunningArchive:
    """An archive on the object store. "416" is in its prefix, so in every object URL: the
    outage test's probe once took a refused connection for a 416 (range past the end) because
    a random key or port held those digits; with them always there, that cannot come back
    unseen."""
    return server_factory(storage=f"s3://{BUCKET}/node-416-{uuid.uuid4().hex[:8]}",
                          s3_endpoint=seaweed.endpoint, s3_region="us-east-1",
                          s3_path_style=True)


def _stored_objects(server: RunningArchive) -> list[str]:
    return sorted(server.core.blobs.keys())


def test_stow_qido_wado_cget_round_trip_without_local_files(s3_server: RunningArchive) -> None:
    server = s3_server
    assert isinstance(server.core.blobs, S3BlobStore)
    native = f.image("s3rt", rows=32, columns=32, frames=50)
    jls = f.image("s3rt", "se2", 1, rows=40, columns=40, frames=3, transfer_syntax=JPEGLSLossless)
    plain = f.image("s3rt", "se2", 1, rows=40, columns=40, frames=3)
    r = post(server, multipart([f.to_bytes(native), f.to_bytes(jls)]))
    assert r.status_code == 200, r.text
    assert len(_stored_objects(server)) == 2
    assert list((server.settings.storage_dir / "blobs").glob("*/*/*")) == []  # nothing local
    client = DICOMwebClient(server.url)
    found = client.search_for_instances(native.StudyInstanceUID)
    assert {i["00080018"]["Value"][0] for i in found} == {native.SOPInstanceUID, jls.SOPInstanceUID}
    for ds in (native, jls):  # as stored, byte-exact
        got = requests.get(inst_url(server, ds), headers={"Accept": AS_STORED}, timeout=60)
        assert [b for _, b in parts(got)] == [f.to_bytes(ds)]
    size = 32 * 32 * 2
    frames = client.retrieve_instance_frames(native.StudyInstanceUID, native.SeriesInstanceUID,
                                             native.SOPInstanceUID, frame_numbers=[1, 25, 50])
    assert frames == [native.PixelData[size * (n - 1): size * n] for n in (1, 25, 50)]
    bulk = requests.get(inst_url(server, native) + "/bulkdata/7FE00010", timeout=60)
    assert [b for _, b in parts(bulk)] == [native.PixelData]
    stored_frame = requests.get(inst_url(server, jls) + "/frames/2", timeout=60, headers={
        "Accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"})
    assert parts(stored_frame)[0][1] == list(generate_frames(jls.PixelData, number_of_frames=3))[1]
    decoded = client.retrieve_instance_frames(jls.StudyInstanceUID, jls.SeriesInstanceUID,
                                              jls.SOPInstanceUID, frame_numbers=[2])
    assert decoded[0] == plain.PixelData[40 * 40 * 2: 40 * 40 * 4]  # transcode worker read S3
    whole = requests.get(inst_url(server, jls), timeout=60)  # default: decoded Explicit VR LE
    assert np.array_equal(pydicom.dcmread(io.BytesIO(parts(whole)[0][1])).pixel_array,
                          plain.pixel_array)
    png = requests.get(inst_url(server, native) + "/rendered", headers={"Accept": "image/png"},
                       timeout=60)
    assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).size == (32, 32)
    received, _ = c_get(server, {"QueryRetrieveLevel": "STUDY",
                                 "StudyInstanceUID": native.StudyInstanceUID})
    by_uid = {ds.SOPInstanceUID: ds for ds in received}
    assert by_uid[native.SOPInstanceUID].PixelData == native.PixelData
    assert np.array_equal(by_uid[jls.SOPInstanceUID].pixel_array, plain.pixel_array)


class _CountingStore(S3BlobStore):
    """The real S3 store, counting the bytes its ranged GETs return (an instrument, not a mock)."""

    fetched = 0

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        data = super().read_range(key, offset, length)
        self.fetched += len(data)
        return data


def test_one_frame_is_one_ranged_get(seaweed: Any, tmp_path: Path) -> None:
    ds = f.image("s3frames", rows=256, columns=256, frames=200)  # 26 MB of pixels
    path = f.write(ds, tmp_path / "big.dcm")
    store = _CountingStore(f"s3://{BUCKET}/frames-{uuid.uuid4().hex[:8]}", tmp_path / "spool",
                           endpoint=seaweed.endpoint, region="us-east-1", path_style=True)
    key = store.commit(store.spool_file(path, limit=1 << 30))
    facts = read_instance(path, path.stat().st_size)
    c = facts.columns
    size = path.stat().st_size
    assert facts.pixels is not None
    loc = Located(facts.study_uid, facts.series_uid, facts.sop_uid, facts.sop_class_uid,
                  facts.transfer_syntax, BlobRef(key, size, None, store), size,
                  facts.pixels.as_json(), c["number_of_frames"], c["rows"], c["columns"],
                  facts.header)
    frame = read_frame(loc, 123)
    assert frame == ds.PixelData[256 * 256 * 2 * 122: 256 * 256 * 2 * 123]
    assert store.fetched == len(frame)  # not the 26 MB object
    store.close()


def _stow_many(server: RunningArchive, datasets: list[pydicom.Dataset],
               out: dict[str, Any]) -> None:
    try:
        out["response"] = post(server, multipart([f.to_bytes(ds) for ds in datasets]))
    except requests.RequestException as exc:
        out["error"] = exc


def _acknowledged(response: requests.Response) -> set[str]:
    if response.status_code not in (200, 202):
        return set()
    seq = response.json().get("00081199", {}).get("Value", [])
    return {item["00081155"]["Value"][0] for item in seq}


def test_object_store_outage_is_503_and_a700_then_recovers(
    seaweed: Any, s3_server: RunningArchive
) -> None:
    server = s3_server
    datasets = [f.image("outage", "se1", n, rows=256, columns=256) for n in range(1, 41)]
    before = f.image("outage", "before", 1)
    assert post(server, multipart([f.to_bytes(before)])).status_code == 200
    result: dict[str, Any] = {}
    upload = threading.Thread(target=_stow_many, args=(server, datasets, result))
    upload.start()
    time.sleep(0.5)
    seaweed.stop()  # mid-upload
    try:
        upload.join(120)
        assert not upload.is_alive()
        response = result["response"]
        assert response.status_code in (200, 202, 409, 503), response.text
        acknowledged = _acknowledged(response)
        r = post(server, multipart([f.to_bytes(f.image("outage", "down", 1))]))
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] and "storage unavailable" in r.headers["Warning"]
        assoc = associate(server)  # a contributor of its own AE-named site: its own study
        status = assoc.send_c_store(f.image("outage-dimse", "se1", 1))
        assoc.release()
        assert status.Status == 0xA700 and "unavailable" in str(status.ErrorComment)
        for accept in (AS_STORED, 'multipart/related; type="application/dicom"'):
            # reading while the store is down: a clean 503 before any body
            down = requests.get(inst_url(server, before), headers={"Accept": accept}, timeout=60)
            assert down.status_code == 503, (accept, down.status_code)
            assert down.headers["Retry-After"]
    finally:
        seaweed.start()
    indexed = {row["sop_uid"] for row in server.sql("SELECT sop_uid FROM instance")}
    assert acknowledged <= indexed  # every acknowledged instance is indexed ...
    by_uid = {ds.SOPInstanceUID: ds for ds in [*datasets, before]}
    for sop in indexed:  # ... and every indexed one is readable, byte-exact
        got = requests.get(inst_url(server, by_uid[sop]), headers={"Accept": AS_STORED},
                           timeout=60)
        assert [b for _, b in parts(got)] == [f.to_bytes(by_uid[sop])], sop
    r = post(server, multipart([f.to_bytes(f.image("outage", "after", 1))]))
    assert r.status_code == 200, r.text  # the store is back: so is the archive
    assoc = associate(server)
    again = f.image("outage-dimse", "se2", 1)
    assert assoc.send_c_store(again).Status == 0x0000
    assoc.release()
    got = requests.get(inst_url(server, again), headers={"Accept": AS_STORED}, timeout=60)
    assert pydicom.dcmread(io.BytesIO(parts(got)[0][1])).PixelData == again.PixelData
    assert list(server.core.blobs.spool_dir().iterdir()) == []


def _read_rest(resp: requests.Response) -> tuple[bytes, Exception | None]:
    """The rest of a streamed body, and the error that ended it early (None: it completed)."""
    body = bytearray()
    try:
        for chunk in resp.iter_content(1 << 20):
            body += chunk
    except requests.RequestException as exc:
        return bytes(body), exc
    return bytes(body), None


def test_a_stalled_store_ends_a_retrieve_in_bounded_time(
    seaweed: Any, server_factory: Callable[..., RunningArchive]
) -> None:
    """The store frozen (SIGSTOP) in the middle of a streamed retrieve: the archive gives the
    read up after s3_read_timeout and closes the connection short of its Content-Length (no
    503 written inside the body, no wait for the client's own timeout); a retrieve asked while
    the store is frozen is a 503 in bounded time; reads work again once the store runs."""
    stall = 2.0
    server = server_factory(storage=f"s3://{BUCKET}/node-{uuid.uuid4().hex[:8]}",
                            s3_endpoint=seaweed.endpoint, s3_region="us-east-1",
                            s3_path_style=True, s3_read_timeout=stall)
    ds = f.image("stall", rows=512, columns=512, frames=80)  # 42 MB: beyond the socket buffers
    assert post(server, multipart([f.to_bytes(ds)])).status_code == 200
    got = requests.get(inst_url(server, ds), headers={"Accept": AS_STORED}, stream=True,
                       timeout=(5, 60))
    assert got.status_code == 200
    first = got.raw.read(1 << 16)
    with seaweed.paused():
        started = time.monotonic()
        rest, error = _read_rest(got)
        cut_after = time.monotonic() - started
        started = time.monotonic()
        down = requests.get(inst_url(server, ds), headers={"Accept": AS_STORED}, timeout=60)
        refused_after = time.monotonic() - started
    body = first + rest
    assert error is not None, "the body completed although the store was frozen"
    assert len(body) < int(got.headers["Content-Length"])  # short: the client knows
    assert b"HTTP/1.1 503" not in body  # not a second response inside the first
    assert cut_after < stall + 12, cut_after  # the read timeout, not the client's 60 s
    assert down.status_code == 503 and down.headers["Retry-After"], down.status_code
    assert refused_after < stall + 12, refused_after
    again = requests.get(inst_url(server, ds), headers={"Accept": AS_STORED}, timeout=60)
    assert [b for _, b in parts(again)] == [f.to_bytes(ds)]


def test_the_orphan_sweep_works_on_the_object_store(s3_server: RunningArchive) -> None:
    """The journal-driven sweep (archive.sweep) deletes exactly the provable orphans in S3."""
    from tests.archive.test_storage_pairing import (
        test_the_sweep_deletes_only_what_the_journal_proves_unacknowledged as scenario,
    )

    scenario(s3_server)


def test_two_nodes_share_one_database_and_one_bucket(
    seaweed: Any, s3_server: RunningArchive, tmp_path: Path
) -> None:
    """A second node (own data dir and spool) on the same index and prefix pairs with the same
    stamp and serves, byte-exact, what the first stored — over both doors."""
    from dataclasses import replace

    from tests.conftest import ServerThread, make_settings

    first = s3_server
    settings = replace(make_settings(tmp_path / "node2", first.database_url),
                       storage=first.settings.storage, s3_endpoint=seaweed.endpoint,
                       s3_region="us-east-1", s3_path_style=True)
    node2 = ServerThread(settings, first.database_url)
    second = node2.start()
    try:
        assert second.core.blobs.read_stamp() == first.core.blobs.read_stamp()
        ds = f.image("twonodes", rows=64, columns=64, frames=4)
        assert post(first, multipart([f.to_bytes(ds)])).status_code == 200
        got = requests.get(inst_url(second, ds), headers={"Accept": AS_STORED}, timeout=60)
        assert [b for _, b in parts(got)] == [f.to_bytes(ds)]
        received, _ = c_get(second, {"QueryRetrieveLevel": "STUDY",
                                     "StudyInstanceUID": ds.StudyInstanceUID})
        assert [r.PixelData for r in received] == [ds.PixelData]
    finally:
        node2.stop()


def test_cohort_file_download_streams_from_the_object_store(
    seaweed: Any, pg_server_url: str, template_db: str, tmp_path: Path
) -> None:
    """The commons' per-file download (byte-exact, SHA-256, Range resume) without local files."""
    from tests.archive.commons.conftest import running_commons
    from tests.dicomweb.test_commons_api import (
        test_file_download_is_byte_exact_and_resumable as scenario,
    )

    with running_commons(pg_server_url, template_db, tmp_path,
                         storage=f"s3://{BUCKET}/commons-{uuid.uuid4().hex[:8]}",
                         s3_endpoint=seaweed.endpoint, s3_region="us-east-1",
                         s3_path_style=True) as loaded:
        assert isinstance(loaded.server.core.blobs, S3BlobStore)
        scenario(loaded)


def test_two_nodes_starting_at_once_on_a_new_database(
    seaweed: Any, pg_server_url: str, tmp_path: Path
) -> None:
    """Start-up is safe when several nodes start together: migrations run once (advisory
    lock), the store is stamped once, and both nodes serve."""
    from dataclasses import replace

    from tests.conftest import ServerThread, _admin, _with_db, make_settings

    name = f"archive_t_{uuid.uuid4().hex[:12]}"
    import asyncio

    asyncio.run(_admin(pg_server_url, f'CREATE DATABASE "{name}"'))  # not migrated
    url = _with_db(pg_server_url, name)
    storage = f"s3://{BUCKET}/fresh-{uuid.uuid4().hex[:8]}"
    nodes = [ServerThread(replace(make_settings(tmp_path / f"n{i}", url), storage=storage,
                                  s3_endpoint=seaweed.endpoint, s3_region="us-east-1",
                                  s3_path_style=True), url) for i in range(2)]
    try:
        for node in nodes:
            node.thread.start()  # both at once
        for node in nodes:
            node.ready.wait(120)
            assert node.error is None and node.archive is not None, repr(node.error)
        a, b = (node.archive for node in nodes)
        assert a is not None and b is not None
        assert a.core.blobs.read_stamp() == b.sql("SELECT stamp FROM storage_identity")[0]["stamp"]
        ds = f.image("together", rows=32, columns=32)
        assert post(b, multipart([f.to_bytes(ds)])).status_code == 200
        got = requests.get(inst_url(a, ds), headers={"Accept": AS_STORED}, timeout=60)
        assert [p for _, p in parts(got)] == [f.to_bytes(ds)]
    finally:
        for node in nodes:
            node.stop()
        asyncio.run(_admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
