"""C-STORE SCP with pynetdicom and DCMTK storescu; statuses; calling AE restriction."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless, RLELossless
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from archive.config import Peer
from tests import factories as f
from tests.conftest import RunningArchive, auth_headers
from tests.dcmtk import dcmtk


def associate(server: RunningArchive, aet: str = "TESTSCU", ts: list[str] | None = None):  # type: ignore[no-untyped-def]
    ae = AE(ae_title=aet)
    ae.add_requested_context(CTImageStorage, ts or [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    ae.add_requested_context(Verification)
    host, port, called = server.dimse
    return ae.associate(host, port, ae_title=called)


def test_c_echo_succeeds(server: RunningArchive) -> None:
    assoc = associate(server)
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0
    assoc.release()


def test_pynetdicom_c_store_is_indexed_and_byte_exact_in_negotiated_syntax(server: RunningArchive) -> None:
    ds = f.image("dimse1")
    assoc = associate(server, ts=[ImplicitVRLittleEndian])
    status = assoc.send_c_store(ds)
    assoc.release()
    assert status.Status == 0x0000
    row = server.sql("SELECT transfer_syntax, blob_key FROM instance WHERE sop_uid=$1",
                     ds.SOPInstanceUID)[0]
    assert row["transfer_syntax"] == ImplicitVRLittleEndian
    data = server.core.blobs.path(row["blob_key"]).read_bytes()
    assert data[128:132] == b"DICM"
    from pydicom import dcmread

    stored = dcmread(server.core.blobs.path(row["blob_key"]))
    assert stored.PixelData == ds.PixelData
    study = server.sql("SELECT site FROM study")[0]
    assert study["site"] == "TESTSCU"


@pytest.mark.parametrize(("ts", "flag"), [(RLELossless, "-xr"), (JPEGLSLossless, "-xt")])
def test_storescu_sends_compressed_files_that_arrive_unchanged(
    server: RunningArchive, tmp_path: Path, ts: str, flag: str
) -> None:
    ds = f.image("dcmtk", transfer_syntax=ts)
    path = f.write(ds, tmp_path / "in.dcm")
    host, port, aet = server.dimse
    proc = subprocess.run([dcmtk("storescu"), flag, "-aec", aet, "-aet", "DCMTK", host, str(port), str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    row = server.sql("SELECT transfer_syntax, blob_key FROM instance")[0]
    assert row["transfer_syntax"] == ts
    from pydicom import dcmread

    got = dcmread(server.core.blobs.path(row["blob_key"]))
    assert got.PixelData == ds.PixelData  # encapsulated bytes, not decoded


def test_storescu_folder_of_a_series(server: RunningArchive, tmp_path: Path) -> None:
    for d in f.series_of(5, "dcmtk2"):
        f.write(d, tmp_path / "s" / f"{d.InstanceNumber}.dcm")
    host, port, aet = server.dimse
    proc = subprocess.run([dcmtk("storescu"), "+sd", "-aec", aet, host, str(port), str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert server.sql("SELECT num_instances FROM study")[0]["num_instances"] == 5


def test_data_set_with_invalid_uid_gets_failure_status(server: RunningArchive) -> None:
    ds = f.image("baddimse")
    ds.StudyInstanceUID = "1.2.3.04"
    assoc = associate(server)
    status = assoc.send_c_store(ds)
    assoc.release()
    assert status.Status == 0xC000
    assert "StudyInstanceUID" in status.ErrorComment
    assert server.sql("SELECT count(*) AS n FROM instance")[0]["n"] == 0


def test_data_set_not_matching_its_sop_class_gets_a900(
    server: RunningArchive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command says CT Image Storage, the data set says MR: PS3.4 B.2.3 status A900."""
    from pynetdicom import _config

    ds = f.image("mismatch")
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.preamble = b"\0" * 128
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage  # the meta (and so the command): CT
    path = tmp_path / "mismatch.dcm"
    ds.save_as(path, enforce_file_format=False)
    # Send the file as is (command built from its meta), not re-encoded from the data set.
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    assoc = associate(server, ts=[ExplicitVRLittleEndian])
    try:
        status = assoc.send_c_store(path)
    finally:
        assoc.release()
    assert status.Status == 0xA900


def test_restricted_listener_rejects_unknown_calling_ae(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(restrict_peers=True, peers=(Peer("KNOWN", "127.0.0.1", 1),))
    assert not associate(server, aet="STRANGER").is_established
    assoc = associate(server, aet="KNOWN")
    assert assoc.is_established
    assoc.release()


def test_peer_site_is_recorded_for_its_studies(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(peers=(Peer("HOSPA", "127.0.0.1", 1, "SITE-A"),))
    assoc = associate(server, aet="HOSPA")
    assert assoc.send_c_store(f.image("site")).Status == 0
    assoc.release()
    assert server.sql("SELECT site FROM study")[0]["site"] == "SITE-A"


def test_same_instance_over_both_doors_is_stored_once(server: RunningArchive) -> None:
    from dicomweb_client.api import DICOMwebClient

    ds = f.image("both")
    DICOMwebClient(server.url, headers=auth_headers()).store_instances([ds])
    blob_before = server.sql("SELECT blob_key, sha256 FROM instance")[0]
    path = server.core.blobs.path(blob_before["blob_key"])
    assert hashlib.sha256(path.read_bytes()).hexdigest() == blob_before["sha256"]
    assoc = associate(server)
    # Re-encoded by another sender (the calling AE's own site): a replace of what another site
    # stored, so refused with "Not Authorized" (issue 12); still one row, the stored copy untouched.
    assert assoc.send_c_store(ds).Status == 0x0124
    assoc.release()
    assert server.sql("SELECT count(*) AS n FROM instance")[0]["n"] == 1
    assert server.sql("SELECT blob_key, sha256 FROM instance")[0] == blob_before
    assert hashlib.sha256(path.read_bytes()).hexdigest() == blob_before["sha256"]


def test_c_stores_on_one_association_are_taken_over_whole_and_hashed(server: RunningArchive) -> None:
    """pynetdicom's temporary file is taken over (linked, not copied, on one filesystem): every
    stored blob hashes to its recorded sha256, has the archive's usual file mode, and nothing is
    left in the spool after several C-STOREs on one association."""

    images = f.series_of(5, "takeover", "s1")
    assoc = associate(server)
    assert [assoc.send_c_store(ds).Status for ds in images] == [0] * 5
    assoc.release()
    rows = server.sql("SELECT blob_key, sha256, size_bytes FROM instance")
    assert len(rows) == 5
    for row in rows:
        path = server.core.blobs.path(row["blob_key"])
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        assert len(data) == row["size_bytes"]
        assert path.stat().st_mode & 0o777 == 0o600  # not readable by other local users
        assert path.parent.stat().st_mode & 0o777 == 0o700
    assert list(server.core.blobs.spool_dir().iterdir()) == []
