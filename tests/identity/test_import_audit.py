"""`archive import` (on the database directly) leaves Import events naming the local user.

The CLI runs as a separate process against a running archive's database and data directory,
as an operator would; the events are read back through the admin API `GET /commons/audit`.
"""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

import requests

from tests import factories as f
from tests.archive.commons.test_cli import archive, db
from tests.conftest import RunningArchive, key_headers


def test_archive_import_is_audited_with_site_dataset_and_local_user(
        server: RunningArchive, tmp_path: Path) -> None:
    for n in range(3):
        f.write(f.image("imported", "se1", n + 1, rows=16, columns=16), tmp_path / "in" / f"{n}.dcm")
    f.write(f.image("imported2", "se1", 1, rows=16, columns=16), tmp_path / "in" / "x.dcm")
    (tmp_path / "in" / "broken.dcm").write_bytes(b"\x08\x00" + b"\x00" * 50)  # fails to store
    r = archive("import", str(tmp_path / "in"), "--site", "WEST", "--dataset", "WEST_CD_7",
                "--no-progress", *db(server))
    assert r.returncode == 1 and "stored 4" in r.stdout and "failed 1" in r.stdout, r.stdout

    got = requests.get(f"{server.base}/commons/audit", params={"action": "Import"}, timeout=30,
                       headers=key_headers(server, "admin"))
    assert got.status_code == 200, got.text
    events = got.json()["events"]
    user = getpass.getuser()
    assert {e["actor"] for e in events} == {user}
    assert all((e["kind"], e["role"], e["site"], e["source"], e["event_action"]) ==
               ("local", "admin", "WEST", socket.gethostname(), "C") for e in events)
    assert all((e["detail"]["site"], e["detail"]["dataset"], e["detail"]["door"]) ==
               ("WEST", "WEST_CD_7", "archive import") for e in events)
    ok = {e["study_uids"][0]: e["detail"]["instances"] for e in events if e["outcome"] == 0}
    assert ok == {f.image("imported").StudyInstanceUID: 3, f.image("imported2").StudyInstanceUID: 1}
    (failed,) = [e for e in events if e["outcome"] != 0]
    assert (failed["outcome"], failed["detail"]["failed"], failed["study_uids"]) == (4, 1, [])
