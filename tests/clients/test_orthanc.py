"""Issue 11.1 with the real sender: Orthanc's DICOMweb client STOWs to the archive.

Orthanc 1.10 (Debian's `orthanc` + `orthanc-dicomweb`) uses a 73-character multipart boundary.
Skips when Orthanc is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests import factories as f
from tests.conftest import RunningArchive, auth_headers, free_port

PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


@pytest.fixture
def orthanc(server: RunningArchive, tmp_path: Path) -> Iterator[str]:
    exe = shutil.which("Orthanc")
    if exe is None or not PLUGIN.exists():
        pytest.skip("Orthanc with its DICOMweb plugin not installed "
                    "(apt-get install orthanc orthanc-dicomweb)")
    port = free_port()
    cfg = {
        "Name": "TEST-ORTHANC", "HttpPort": port, "DicomPort": free_port(),
        "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "StorageDirectory": str(tmp_path / "orthanc-storage"),
        "IndexDirectory": str(tmp_path / "orthanc-index"),
        "Plugins": [str(PLUGIN)],
        "DicomWeb": {"Enable": True, "Servers": {"archive": {
            "Url": server.url + "/", "HttpHeaders": auth_headers()}}},
    }
    (tmp_path / "orthanc.json").write_text(json.dumps(cfg))
    proc = subprocess.Popen([exe, str(tmp_path / "orthanc.json")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/system", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("Orthanc did not start")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def test_orthanc_dicomweb_stow_to_the_archive(server: RunningArchive, orthanc: str) -> None:
    datasets = f.series_of(2, "orthanc")
    ids = []
    for ds in datasets:
        r = requests.post(f"{orthanc}/instances", data=f.to_bytes(ds), timeout=30)
        assert r.ok, r.text
        ids.append(r.json()["ID"])
    r = requests.post(f"{orthanc}/dicom-web/servers/archive/stow",
                      json={"Resources": ids, "Synchronous": True}, timeout=120)
    assert r.ok, r.text
    stored = {row["sop_uid"] for row in server.sql("SELECT sop_uid FROM instance")}
    assert stored == {d.SOPInstanceUID for d in datasets}
