"""The per-study facet rows (migration 0021) follow every change that moves a facet count.

`/commons/explore` counts from `study_facet`, kept by triggers that mark what changed and a
refresh that explore runs before it counts. After each kind of change (clinical import and
re-import, a curator's mapping, a study delete, a collection move, a new series) the explore
answer shows the change and the table equals its definition, the view `study_facet_source`.
"""

from __future__ import annotations

from typing import Any

import requests
from dicomweb_client.api import DICOMwebClient

from tests import factories as f
from tests.conftest import RunningArchive

TOKEN = "curator-secret"
CURATOR = {"Authorization": f"Bearer {TOKEN}"}


def explore(server: RunningArchive, params: Any = None, **kw: Any) -> dict[str, Any]:
    r = requests.get(f"{server.base}/commons/explore", params=params, timeout=60, **kw)
    assert r.status_code == 200, r.text
    return r.json()


def values(answer: dict[str, Any], facet: str, unit: str = "studies") -> dict[Any, Any]:
    """A facet's counts by value; None (no value: no case, no series attribute) left out."""
    (got,) = [x for x in answer["facets"] if x["name"] == facet]
    return {v["value"]: v[unit] for v in got["values"] if v["value"] is not None}


def assert_in_sync(server: RunningArchive) -> None:
    """The table equals its view, row for row, for every study (after a refresh)."""
    from archive.index.commons_tables import study_facet

    cols = ", ".join(c.name for c in study_facet.c if c.name != "rev")  # rev: the table's own
    server.sql("SELECT study_facet_refresh()")
    for a, b in (("study_facet", "study_facet_source"), ("study_facet_source", "study_facet")):
        extra = server.sql(f"SELECT study_pk FROM (SELECT {cols} FROM {a} EXCEPT "
                           f"SELECT {cols} FROM {b}) d")
        assert extra == [], f"{a} has rows {b} has not: {extra}"
    assert server.sql("SELECT count(*) AS n FROM study_facet_dirty")[0]["n"] == 0


def store(server: RunningArchive, *images: Any) -> None:
    DICOMwebClient(server.url, headers=CURATOR).store_instances(list(images))


def cases(server: RunningArchive, body: Any) -> None:
    r = requests.post(f"{server.base}/commons/cases", json=body, headers=CURATOR,
                      timeout=60)
    assert r.status_code == 200, r.text


def test_clinical_import_and_reimport_move_the_counts(server_factory: Any) -> None:
    server = server_factory(curator_token=TOKEN)
    store(server, f.image("a1", patient_id="F-1", modality="CR"),
          f.image("a2", patient_id="F-1", modality="CT"), f.image("b1", patient_id="F-2"))
    before = explore(server)
    assert before["totals"] == {"studies": 3, "cases": 2}
    assert values(before, "commons.case.sex") == {}  # images first: no clinical data yet
    (sex,) = [x for x in before["facets"] if x["name"] == "commons.case.sex"]
    assert sex["values"] == [{"value": None, "studies": 3, "cases": 2}]
    cases(server, [{"case_id": "F-1", "sex": "female", "age_at_index": 41,
                    "tests": [{"test_result": "Positive", "days_from_index": 0}]}])
    got = explore(server)
    assert values(got, "commons.case.sex") == {"Female": 2}
    assert values(got, "commons.case.sex", "cases") == {"Female": 1}
    assert values(got, "commons.case.age_at_index", "cases") == {"40": 1}
    assert values(got, "commons.test.result", "cases") == {"Positive": 1}
    filtered = explore(server, {"commons.case.sex": "FEMALE", "ModalitiesInStudy": "CR"})
    assert filtered["totals"] == {"studies": 1, "cases": 1}
    assert values(filtered, "ModalitiesInStudy") == {"CR": 1, "CT": 1}  # its own filter off
    # re-import: new values replace the old ones, tests sent replace the case's tests
    cases(server, [{"case_id": "F-1", "sex": "Male",
                    "tests": [{"test_result": "Negative", "days_from_index": 2}]},
                   {"case_id": "F-2", "sex": "Female"}])
    again = explore(server)
    assert values(again, "commons.case.sex") == {"Male": 2, "Female": 1}
    assert values(again, "commons.test.result", "cases") == {"Negative": 1}
    assert explore(server, {"commons.case.sex": "female"})["totals"]["studies"] == 1
    assert_in_sync(server)


def test_a_mapping_change_reaches_the_loinc_facets(server_factory: Any) -> None:
    server = server_factory(curator_token=TOKEN)
    store(server, f.image("m1", study_description="CT OUTSIDE CONSULT", rows=16, columns=16),
          f.image("m2", study_description="ct outside  consult", rows=16, columns=16))
    assert "25045-6" not in values(explore(server), "commons.loinc_code")
    r = requests.post(f"{server.base}/commons/mappings", headers=CURATOR, timeout=30,
                      json={"modality": "CT", "description": "CT Outside Consult",
                            "loinc_code": "25045-6"})
    assert r.status_code == 200, r.text
    got = explore(server)
    assert values(got, "commons.loinc_code")["25045-6"] == 2
    assert explore(server, {"commons.loinc_code": "25045-6"})["totals"]["studies"] == 2
    assert_in_sync(server)
    requests.post(f"{server.base}/commons/mappings", headers=CURATOR, timeout=30,
                  json={"modality": "CT", "description": "CT OUTSIDE CONSULT",
                        "status": "rejected"})
    assert "25045-6" not in values(explore(server), "commons.loinc_code")
    assert_in_sync(server)


def test_delete_and_collection_change(server_factory: Any) -> None:
    server = server_factory(curator_token=TOKEN)
    one, two = f.image("d1", patient_id="D-1"), f.image("d2", patient_id="D-1", modality="MR")
    store(server, one, two, f.image("d3", patient_id="D-2"))
    cases(server, [{"case_id": "D-1", "sex": "Female"}, {"case_id": "D-2", "sex": "Male"}])
    assert values(explore(server), "commons.case.sex") == {"Female": 2, "Male": 1}
    # sequestering moves the whole case (new patient rows): hidden from readers, counted
    # for curators, with its clinical values intact
    url = f"{server.base}/commons/studies/{one.StudyInstanceUID}/collection"
    r = requests.put(url, json={"collection": "sequestered"}, headers=CURATOR, timeout=30)
    assert r.status_code == 200, r.text
    assert values(explore(server), "commons.case.sex") == {"Male": 1}
    assert values(explore(server, headers=CURATOR), "commons.case.sex") == {"Female": 2,
                                                                            "Male": 1}
    assert_in_sync(server)
    assert requests.put(url, json={"collection": "public"}, headers=CURATOR,
                        timeout=30).status_code == 200
    assert values(explore(server), "commons.case.sex") == {"Female": 1, "Male": 1}
    # a delete takes the study out of every count; its row goes on the next refresh
    r = requests.delete(f"{server.url}/studies/{one.StudyInstanceUID}", headers=CURATOR,
                        timeout=30)
    assert r.status_code in (200, 202, 204), r.text
    got = explore(server, headers=CURATOR)
    assert got["totals"]["studies"] == 2
    assert values(got, "commons.case.sex") == {"Female": 1, "Male": 1}
    assert_in_sync(server)
    assert server.sql("SELECT count(*) AS n FROM study_facet")[0]["n"] == 2


def test_series_attributes_follow_new_series(server_factory: Any) -> None:
    server = server_factory(curator_token=TOKEN)
    store(server, f.image("s1", "se1", modality="CT"))
    assert values(explore(server), "BodyPartExamined") == {}
    part = f.image("s1", "se2", modality="CT")
    part.BodyPartExamined = "CHEST"
    part.Manufacturer = "ACME"
    store(server, part)
    got = explore(server)
    assert values(got, "BodyPartExamined") == {"CHEST": 1}
    assert values(got, "Manufacturer")["ACME"] == 1
    assert_in_sync(server)


def test_facet_rows_catch_up_without_an_explore(server_factory: Any) -> None:
    """The periodic job (archive.tasks, every 30 s) applies the triggers' marks on a node that
    only ingests: the mark queue does not grow without bound."""
    import time

    server = server_factory(curator_token=TOKEN)
    ds = f.image("facet-catch-up", patient_id="P-CATCH-UP")
    store(server, ds)
    deadline = time.monotonic() + 120

    def facet_rows() -> int:
        return int(server.sql("SELECT count(*) AS n FROM study_facet f JOIN study s "
                              "ON s.pk = f.study_pk WHERE s.study_uid = $1",
                              ds.StudyInstanceUID)[0]["n"])

    while facet_rows() == 0 or server.sql("SELECT count(*) AS n FROM study_facet_dirty")[0]["n"]:
        assert time.monotonic() < deadline, "the facet marks were never applied"
        time.sleep(1)
    assert_in_sync(server)
