"""The DIMSE door's audit events (issue 12.5), from real DCMTK and pynetdicom peers.

An archive with `--restrict-peers` and configured peers; DCMTK storescu / findscu / movescu /
echoscu and a pynetdicom C-GET SCU act on it; the events are read back through the admin API
`GET /commons/audit`, as an auditor would. Each must name the calling AE title as actor, with
its role, site and source address, the studies and the outcome.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, build_role
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelGet,
)

from archive.config import Peer
from tests import factories as f
from tests.conftest import RunningArchive, key_headers
from tests.dcmtk import dcmtk
from tests.dimse.test_move import Receiver, receiver_factory  # noqa: F401  (fixture)

HOST = "127.0.0.1"


def _events(archive: RunningArchive, want: Callable[[list[dict[str, Any]]], bool],
            **query: str) -> list[dict[str, Any]]:
    """Audit events matching `query`, polled until `want(events)` (C-STORE events are written
    when the association ends, which the peer does not wait for) or 20 s."""
    deadline = time.monotonic() + 20
    while True:
        r = requests.get(f"{archive.base}/commons/audit", params=query, timeout=30,
                         headers=key_headers(archive, "admin"))
        assert r.status_code == 200, r.text
        events: list[dict[str, Any]] = r.json()["events"]
        if want(events) or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


def _dcmtk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([dcmtk(args[0]), *args[1:]], capture_output=True, text=True,
                          timeout=120)


def _c_get(archive: RunningArchive, aet: str, study: str) -> list[Dataset]:
    received: list[Dataset] = []
    ae = AE(ae_title=aet)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(CTImageStorage)
    host, port, called = archive.dimse

    def on_store(event: Any) -> int:
        received.append(event.dataset)
        return 0x0000

    from pynetdicom import evt
    assoc = ae.associate(host, port, ae_title=called, ext_neg=[build_role(CTImageStorage,
                                                                          scp_role=True)],
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    q = Dataset()
    q.QueryRetrieveLevel, q.StudyInstanceUID = "STUDY", study
    statuses = [rsp.Status for rsp, _ in assoc.send_c_get(
        q, StudyRootQueryRetrieveInformationModelGet) if rsp is not None]
    assoc.release()
    assert statuses[-1] == 0x0000
    return received


def test_dimse_services_and_rejections_are_audited(
        server_factory: Callable[..., RunningArchive], receiver_factory: Callable[..., Receiver],  # noqa: F811
        tmp_path: Path) -> None:
    rx = receiver_factory()
    archive = server_factory(restrict_peers=True, check_called_ae=True, peers=(
        Peer("MODALITY", HOST, 104, "SITE_A"), Peer("OTHERSITE", HOST, 104, "SITE_B"),
        Peer("RECEIVER", HOST, rx.port), Peer("FARAWAY", "192.0.2.77", 104)))
    host, port, called = archive.dimse
    datasets = f.series_of(3, "dimse-audit")
    study = datasets[0].StudyInstanceUID
    for i, ds in enumerate(datasets):
        (tmp_path / f"{i}.dcm").write_bytes(f.to_bytes(ds))

    # C-STORE (DCMTK storescu): one Instances Transferred event for the association's study
    run = _dcmtk("storescu", "-aet", "MODALITY", "-aec", called, host, str(port),
                 *(str(tmp_path / f"{i}.dcm") for i in range(3)))
    assert run.returncode == 0, run.stderr
    stored = _events(archive, lambda ev: bool(ev), action="DICOM Instances Transferred",
                     actor="MODALITY")
    assert len(stored) == 1, stored
    (e,) = stored
    assert (e["study_uids"], e["outcome"], e["role"], e["site"], e["kind"], e["source"],
            e["event_action"]) == ([study], 0, "contributor", "SITE_A", "dimse", HOST, "C")
    assert e["detail"]["instances"] == 3 and e["detail"]["service"] == "C-STORE"
    assert e["detail"]["called_ae"] == called

    # another site adding to SITE_A's study: refused, a failed transfer and a Security Alert
    intruder = f.image("dimse-audit", "se9", 1)
    intruder.SeriesInstanceUID, intruder.SOPInstanceUID = generate_uid(), generate_uid()
    (tmp_path / "x.dcm").write_bytes(f.to_bytes(intruder))
    _dcmtk("storescu", "-aet", "OTHERSITE", "-aec", called, host, str(port), str(tmp_path / "x.dcm"))
    alerts = _events(archive, lambda ev: bool(ev), action="Security Alert", actor="OTHERSITE")
    assert len(alerts) == 1 and alerts[0]["outcome"] == 4, alerts
    assert (alerts[0]["site"], alerts[0]["source"], alerts[0]["detail"]["refused"]) == (
        "SITE_B", HOST, 1)
    failed = _events(archive, lambda ev: bool(ev), action="DICOM Instances Transferred",
                     actor="OTHERSITE")
    assert [(x["outcome"], x["detail"]["failed"]) for x in failed] == [(4, 1)]

    # C-FIND (DCMTK findscu): a Query with the matching keys and the match count
    run = _dcmtk("findscu", "-S", "-aet", "MODALITY", "-aec", called, "-k",
                 "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}", host, str(port))
    assert run.returncode == 0, run.stderr
    (q,) = _events(archive, lambda ev: bool(ev), action="Query", actor="MODALITY")
    assert (q["study_uids"], q["outcome"], q["role"], q["source"]) == ([study], 0, "contributor",
                                                                        HOST)
    assert (q["detail"]["matches"], q["detail"]["level"], q["detail"]["service"]) == (
        1, "STUDY", "C-FIND")
    assert f"0020000D={study}" in q["detail"]["query"]

    # C-MOVE (DCMTK movescu) and C-GET (pynetdicom): Begin Transferring DICOM Instances
    run = _dcmtk("movescu", "-S", "-aet", "MODALITY", "-aec", called, "-aem", "RECEIVER", "-k",
                 "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}", host, str(port))
    assert run.returncode == 0, run.stderr
    assert len(rx.received) == 3
    assert len(_c_get(archive, "OTHERSITE", study)) == 3
    begun = _events(archive, lambda ev: len(ev) >= 2, action="Begin Transferring DICOM Instances",
                    study=study)
    by_service = {x["detail"]["service"]: x for x in begun}
    assert set(by_service) == {"C-MOVE", "C-GET"}
    move, get = by_service["C-MOVE"], by_service["C-GET"]
    assert (move["actor"], move["site"], move["outcome"], move["detail"]["instances"],
            move["detail"]["destination"]) == ("MODALITY", "SITE_A", 0, 3, "RECEIVER")
    assert (get["actor"], get["site"], get["source"], get["detail"]["instances"]) == (
        "OTHERSITE", "SITE_B", HOST, 3)
    _dcmtk("movescu", "-S", "-aet", "MODALITY", "-aec", called, "-aem", "NOBODY", "-k",
           "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}", host, str(port))
    nowhere = _events(archive, lambda ev: any(x["outcome"] == 4 for x in ev),
                      action="Begin Transferring DICOM Instances", actor="MODALITY")
    assert any(x["outcome"] == 4 and x["detail"]["destination"] == "NOBODY" for x in nowhere)

    # rejected associations: an unknown AE title, a peer's title from another host, and (by
    # pynetdicom's own negotiation, --check-called-ae) a configured peer calling the wrong AE
    for aet, to in (("STRANGER", called), ("FARAWAY", called), ("OTHERSITE", "NOT_ME")):
        run = _dcmtk("echoscu", "-aet", aet, "-aec", to, host, str(port))
        assert run.returncode != 0
    rejected = _events(archive, lambda ev: len(ev) >= 3, action="User Authentication")
    by_actor = {x["actor"]: x for x in rejected}
    assert set(by_actor) == {"STRANGER", "FARAWAY", "OTHERSITE"}, rejected
    for aet, reason in (("STRANGER", "not a configured peer"), ("FARAWAY", "configured host"),
                        ("OTHERSITE", "called AE title 'NOT_ME'")):
        x = by_actor[aet]
        assert (x["outcome"], x["source"], x["kind"], x["role"]) == (4, HOST, "dimse", None)
        assert reason in x["detail"]["reason"] and x["detail"]["service"] == "A-ASSOCIATE"
