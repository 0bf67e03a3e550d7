"""Sites and datasets through every door: a peer's C-STORE (DCMTK storescu), STOW-RS headers
and parameters; listed with counts and searchable."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

import requests
from dicomweb_client.api import DICOMwebClient

from archive.config import Peer
from tests import factories as f
from tests.conftest import auth_headers
from tests.dcmtk import dcmtk


def test_site_from_the_calling_peer_and_from_stow(server_factory: Any, tmp_path: Path) -> None:
    server = server_factory(peers=(Peer("HOSP_A_AE", "127.0.0.1", 104, "HOSP_A"),))
    path = f.write(f.image("site1", rows=16, columns=16), tmp_path / "a.dcm")
    host, port, aet = server.dimse
    proc = subprocess.run([dcmtk("storescu"), "-aet", "HOSP_A_AE", "-aec", aet, host, str(port),
                           str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    DICOMwebClient(server.url, headers={**auth_headers(), "X-Archive-Site": "HOSP_B",
                                        "X-Archive-Dataset": "HOSP_B_20260301"}
                   ).store_instances([f.image("site2", rows=16, columns=16)])
    body = f.to_bytes(f.image("site3", rows=16, columns=16))
    r = requests.post(f"{server.url}/studies?site=HOSP_B", timeout=30, data=(
        b"--XbOuNdArYx\r\nContent-Type: application/dicom\r\n\r\n" + body +
        b"\r\n--XbOuNdArYx--\r\n"), headers={
        "Content-Type": 'multipart/related; type="application/dicom"; boundary=XbOuNdArYx',
        **auth_headers()})
    assert r.status_code == 200, r.text
    today = dt.datetime.now(dt.UTC).date().strftime("%Y%m%d")
    sites = {s["name"]: s["studies"] for s in
             requests.get(f"{server.base}/commons/sites", timeout=30).json()["sites"]}
    assert sites == {"HOSP_A": 1, "HOSP_B": 2}
    datasets = {d["name"]: (d["studies"], d["sites"]) for d in
                requests.get(f"{server.base}/commons/datasets", timeout=30).json()["datasets"]}
    assert datasets == {f"HOSP_A_{today}": (1, ["HOSP_A"]), "HOSP_B_20260301": (1, ["HOSP_B"]),
                        f"HOSP_B_{today}": (1, ["HOSP_B"])}
    found = DICOMwebClient(server.url).search_for_studies(
        search_filters={"commons.dataset": "HOSP_B_*", "commons.site": "HOSP_B"})
    assert len(found) == 2
