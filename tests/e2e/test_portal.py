"""The research portal (/portal/) in headless Chromium against an archive holding the synthetic
commons (tests/archive/commons/synth.py), with the hosted OHIF viewer.

One browser run (tests/e2e/portal.mjs) ticks facets (by mouse and by keyboard), sorts the table,
reopens the URL in a new tab, saves a cohort and downloads its manifest, compares it with the
commons, pages through every result as an anonymous reader, and opens a study in OHIF from the
table; axe-core checks each view. The assertions here compare what the page showed with QIDO-RS
(dicomweb-client) and with the generator. Screenshots stay in test-artifacts/portal/.
"""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from tests.archive.commons import synth
from tests.archive.commons.conftest import CURATOR, Loaded, post_clinical, store
from tests.conftest import ServerThread, _admin, _with_db, key_headers, make_settings
from tests.e2e.browser import ARTIFACTS, BrowserTools, find_browser_tools

pytestmark = pytest.mark.e2e
SCRIPT = Path(__file__).with_name("portal.mjs")
FILTERS = {"commons.case.sex": "Female", "ModalitiesInStudy": "CR",
           "commons.case.covid19_positive": "Yes"}
CLICKS = [{"facet": "commons.case.sex", "value": "Female", "keyboard": False},
          {"facet": "ModalitiesInStudy", "value": "CR", "keyboard": False},
          {"facet": "commons.case.covid19_positive", "value": "Yes", "keyboard": True}]


@pytest.fixture(scope="module")
def tools() -> BrowserTools:
    t = find_browser_tools()
    if not (t.node_modules / "node_modules" / "axe-core" / "axe.min.js").exists():
        pytest.fail("axe-core missing from .local/node: run tools/e2e-deps.sh")
    return t


@pytest.fixture(scope="module")
def portal(pg_server_url: str, template_db: str, tools: BrowserTools,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    name = f"archive_p_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"'))
    url = _with_db(pg_server_url, name)
    settings = make_settings(tmp_path_factory.mktemp("portal"), url, curator_token=CURATOR,
                             viewer_dir=tools.viewer_dir)
    thread = ServerThread(settings, url)
    try:
        server = thread.start()
        commons = synth.build()
        assert post_clinical(server, commons).status_code == 200
        store(server, commons)
        yield Loaded(server, commons)
    finally:
        thread.stop()
        asyncio.run(_admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def qido(root: str, filters: dict[str, str],
         headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = DICOMwebClient(root, headers=headers).search_for_studies(
        search_filters=filters, get_remaining=True)
    return found


def reader_key(portal: Loaded) -> str:
    """The bearer token of a real reader API key: the browser signs in with it (a saved cohort
    belongs to its named creator)."""
    return key_headers(portal.server, "reader")["Authorization"].removeprefix("Bearer ")


def tally(found: list[dict[str, Any]]) -> tuple[int, int]:
    return len(found), len({d["00100020"]["Value"][0] for d in found})


def shown(step: dict[str, Any]) -> tuple[int, int]:
    return int(step["studies"].replace(",", "")), int(step["cases"].replace(",", ""))


@pytest.fixture(scope="module")
def report(portal: Loaded, tools: BrowserTools) -> dict[str, Any]:
    out = ARTIFACTS.parent / "portal"
    out.mkdir(parents=True, exist_ok=True)
    plan = {"base": portal.server.base, "out": str(out), "nodeModules": str(tools.node_modules),
            "chromium": tools.chromium, "clicks": CLICKS, "cohortName": "browser cohort",
            "token": reader_key(portal)}
    (out / "plan.json").write_text(json.dumps(plan, indent=1))
    with (out / "node.log").open("w") as log:
        subprocess.run([tools.node, str(SCRIPT), str(out / "plan.json")], stdout=log,
                       stderr=subprocess.STDOUT, timeout=600, check=False)
    result: dict[str, Any] = json.loads((out / "report.json").read_text())
    assert result.get("ok"), result.get("error") or (out / "node.log").read_text()
    return result


def test_counts_match_qido_before_and_after_filters(portal: Loaded,
                                                    report: dict[str, Any]) -> None:
    steps = report["steps"]
    assert steps["initial"]["statusRole"] == "status"
    assert shown(steps["initial"]) == tally(qido(portal.server.url, {}))
    filtered = qido(portal.server.url, FILTERS)
    assert filtered and shown(steps["filtered"]) == tally(filtered)
    assert sorted(steps["filtered"]["checked"]) == sorted(f"{k}={v}" for k, v in FILTERS.items())
    assert steps["filtered"]["focused"] == "Yes"  # the keyboard tick kept its focus


def test_url_round_trip(report: dict[str, Any]) -> None:
    steps = report["steps"]
    url = steps["sorted"]["url"]
    assert "commons.case.sex=Female" in url and "sort=case_id" in url and "order=desc" in url
    again = steps["roundtrip"]
    assert (again["studies"], again["cases"]) == (steps["filtered"]["studies"],
                                                  steps["filtered"]["cases"])
    assert sorted(again["checked"]) == sorted(steps["filtered"]["checked"])
    assert again["rows"] == steps["sorted"]["rows"]
    cases = [row[2] for row in steps["sorted"]["rows"]]
    assert cases == sorted(cases, reverse=True) and steps["sorted"]["ariaSort"] == "descending"


def test_saved_cohort_and_its_manifest(portal: Loaded, report: dict[str, Any]) -> None:
    steps = report["steps"]
    want = {d["0020000D"]["Value"][0] for d in qido(portal.server.url, FILTERS)}
    with open(steps["manifest"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["study_uid"] for r in rows} == want
    card = steps["cohortCard"]
    assert "made by the browser test" in card["text"]
    assert f"{len(want)} studies" in card["text"]
    assert card["root"].startswith(portal.server.base + "/commons/cohorts/")
    assert card["root"].endswith("/dicom-web")
    cohort_id = card["root"].split("/")[-2]
    assert card["cli"].startswith(f"archive cohort download {cohort_id} --url ")
    owner = {"Authorization": f"Bearer {reader_key(portal)}"}
    assert {d["0020000D"]["Value"][0] for d in qido(card["root"], {}, owner)} == want
    # private to its creator until published: an anonymous caller gets the same 404 as a miss
    assert requests.get(f"{card['root']}/studies", timeout=30).status_code == 404


def test_reader_never_sees_a_sequestered_case(portal: Loaded, report: dict[str, Any]) -> None:
    hidden = [s for s in portal.commons.studies if s.sequestered]
    hidden_cases = {s.case_id for s in hidden}
    seen = report["steps"]["harvest"]
    assert hidden
    for s in hidden:
        assert s.uid not in seen["studies"] and s.uid not in seen["cases"]
    for case_id in hidden_cases:
        assert case_id not in seen["studies"] and case_id not in seen["cases"], case_id
    visible = {s.case_id for s in portal.commons.studies if not s.sequestered}
    assert all(c in seen["cases"] for c in visible)  # the harvest did page through everything


def test_study_opens_in_ohif(report: dict[str, Any]) -> None:
    v = report["steps"]["viewer"]
    assert v["study"] in v["url"] and v["canvas"], v


def test_accessible_and_offline(report: dict[str, Any]) -> None:
    serious = {view: [v for v in found if v["impact"] in ("serious", "critical")]
               for view, found in report["axe"].items()}
    assert set(serious) == {"explore", "filtered", "cohorts"}
    assert all(not v for v in serious.values()), serious
    assert report["nonLoopback"] == []
    assert report["pageErrors"] == [] and report["failedRequests"] == [], report
    assert report["consoleErrors"] == [], report["consoleErrors"]
