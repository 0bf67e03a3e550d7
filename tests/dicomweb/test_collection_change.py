"""PUT /commons/studies/{uid}/collection: curator-only, moves the whole case when sequestering."""

from __future__ import annotations

from typing import Any

import requests

from tests import factories as f
from tests.conftest import key_headers
from tests.dicomweb.test_stow import multipart

TOKEN = "curator-secret"
CURATOR = {"Authorization": f"Bearer {TOKEN}"}
STOW = {"Content-Type": 'multipart/related; type="application/dicom"; boundary=XbOuNdArYx'}


def _visible(server: Any, **headers: str) -> set[str]:
    r = requests.get(server.url + "/studies", headers={"Accept": "application/dicom+json"} | headers,
                     timeout=30)
    return {s["0020000D"]["Value"][0] for s in (r.json() if r.status_code == 200 else [])}


def test_a_public_study_is_sequestered_with_its_whole_case(server_factory: Any) -> None:
    server = server_factory(curator_token=TOKEN)
    first, second = f.image("case-1", patient_id="P-CASE"), f.image("case-2", patient_id="P-CASE")
    other = f.image("other", patient_id="P-OTHER")
    for ds in (first, second, other):
        assert requests.post(server.url + "/studies?site=A", data=multipart([f.to_bytes(ds)]),
                             headers=STOW | CURATOR, timeout=30).status_code == 200
    url = f"{server.base}/commons/studies/{first.StudyInstanceUID}/collection"
    body = {"collection": "sequestered"}
    assert requests.put(url, json=body, timeout=30).status_code == 401  # anonymous
    assert requests.put(url, json=body, headers=key_headers(server, "reader"),
                        timeout=30).status_code == 403  # not a curator
    assert _visible(server) == {first.StudyInstanceUID, second.StudyInstanceUID,
                                other.StudyInstanceUID}
    r = requests.put(url, json=body, headers=CURATOR, timeout=30)
    assert r.status_code == 200, r.text
    assert sorted(r.json()["moved"]) == sorted([first.StudyInstanceUID, second.StudyInstanceUID])
    assert _visible(server) == {other.StudyInstanceUID}
    assert len(_visible(server, **CURATOR)) == 3
    rows = server.sql("SELECT p.collection, count(*) AS n FROM study s JOIN patient p "
                      "ON p.pk = s.patient_pk WHERE p.patient_id = 'P-CASE' GROUP BY 1")
    assert [(r["collection"], r["n"]) for r in rows] == [("sequestered", 2)]
    # back to public: only that study moves, with a public patient row of its own
    back = requests.put(url, json={"collection": "public"}, headers=CURATOR, timeout=30)
    assert back.json()["moved"] == [first.StudyInstanceUID]
    assert first.StudyInstanceUID in _visible(server)
    missing = f"{server.base}/commons/studies/1.2.3.999/collection"
    assert requests.put(missing, json=body, headers=CURATOR, timeout=30).status_code == 404
    assert requests.put(url, json={"collection": "../x"}, headers=CURATOR,
                        timeout=30).status_code == 400
    # each change is in the audit trail: who, which study, an update (EventActionCode U)
    trail = requests.get(f"{server.base}/commons/audit", timeout=30,
                         params={"study": first.StudyInstanceUID},
                         headers=key_headers(server, "admin")).json()["events"]
    changes = [e for e in trail if e["detail"].get("what") == "collection change"
               and e["outcome"] == 0]
    assert len(changes) == 2 and all(e["event_action"] == "U" for e in changes), trail
