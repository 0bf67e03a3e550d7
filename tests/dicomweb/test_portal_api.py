"""The portal's JSON: /commons/explore (faceted counts), its results tables, /portal/ files.

Runs against the synthetic commons (tests/archive/commons/synth.py); expected counts are
computed in Python from the generator and cross-checked with QIDO-RS through dicomweb-client.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import requests

from tests.archive.commons.conftest import AUTH, CURATOR, Loaded, running_commons
from tests.archive.commons.synth import Case, Study
from tests.conftest import RunningArchive, ServerThread, key_headers, make_settings
from tests.dicomweb.test_commons_api import qido


@pytest.fixture(scope="module")
def loaded(pg_server_url: str, template_db: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    with running_commons(pg_server_url, template_db, tmp_path_factory.mktemp("commons")) as c:
        yield c


@pytest.fixture(scope="module")
def suppressed(loaded: Loaded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningArchive]:
    """A second archive on the same database and storage with --min-cell-count 20 (storage and
    database must belong together: the archive refuses to start on a foreign pair)."""
    db = loaded.server.database_url
    settings = replace(make_settings(tmp_path_factory.mktemp("mcc"), db, curator_token=CURATOR,
                                     min_cell_count=20), data_dir=loaded.server.settings.data_dir)
    t = ServerThread(settings, db)
    yield t.start()
    t.stop()


def explore(base: str, params: Any = None, **kw: Any) -> dict[str, Any]:
    r = requests.get(f"{base}/commons/explore", params=params, timeout=60, **kw)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def facet(answer: dict[str, Any], name: str) -> dict[str | None, Any]:
    f = next(f for f in answer["facets"] if f["name"] == name)
    return {v["value"]: v["studies"] for v in f["values"]}


def visible(loaded: Loaded, sequestered: bool = False) -> list[tuple[Case, Study]]:
    return [(c, s) for c in loaded.commons.cases for s in c.studies
            if sequestered or not s.sequestered]


def test_totals_match_qido_and_the_generator(loaded: Loaded) -> None:
    filters = {"commons.case.sex": "Female", "ModalitiesInStudy": "CR",
               "commons.case.covid19_positive": "Yes"}
    want = [(c, s) for c, s in visible(loaded) if c.has_clinical and c.sex == "Female"
            and s.modality == "CR" and c.covid19_positive == "Yes"]
    got = explore(loaded.server.base, filters)
    assert got["totals"] == {"studies": len(want), "cases": len({c.case_id for c, _ in want})}
    assert got["totals"]["studies"] == len(qido(loaded.server.url, filters))
    assert got["min_cell_count"] == 0


def test_a_facet_ignores_its_own_filter_and_obeys_the_others(loaded: Loaded) -> None:
    got = explore(loaded.server.base, [("commons.case.sex", "Female"),
                                       ("ModalitiesInStudy", "CT")])
    ct = [(c, s) for c, s in visible(loaded) if s.modality == "CT"]
    sexes = Counter(c.sex for c, _ in ct if c.has_clinical)
    assert {k: v for k, v in facet(got, "commons.case.sex").items() if k} == dict(sexes)
    female = [(c, s) for c, s in visible(loaded) if c.has_clinical and c.sex == "Female"]
    assert facet(got, "ModalitiesInStudy") == dict(Counter(s.modality for _, s in female))
    sites = Counter(s.site for c, s in female if s.modality == "CT")
    assert facet(got, "commons.site") == dict(sites)


def test_age_histogram_bins(loaded: Loaded) -> None:
    got = explore(loaded.server.base, {"commons.site": "SITE_A"})
    want: Counter[str] = Counter()
    for c, s in visible(loaded):
        if s.site == "SITE_A" and c.has_clinical:
            want["90+" if c.age > 89 else str(min(c.age // 10 * 10, 80))] += 1
    ages = facet(got, "commons.case.age_at_index")
    assert {k: v for k, v in ages.items() if k is not None} == dict(want)
    assert list(ages)[-1] in ("90+", None)  # histogram order, not count order


def test_free_text_description_is_case_insensitive(loaded: Loaded) -> None:
    want = {s.uid for _, s in visible(loaded) if "chest" in s.description.lower()}
    got = explore(loaded.server.base, {"commons.study_description": "*ChEsT*"})
    assert got["totals"]["studies"] == len(want) > 0
    assert qido(loaded.server.url, {"commons.study_description": "*ChEsT*"}) == want


def test_sequestered_studies_are_counted_only_for_curators(loaded: Loaded) -> None:
    anon = explore(loaded.server.base)
    cur = explore(loaded.server.base, headers=AUTH)
    assert anon["totals"]["studies"] == len(visible(loaded))
    assert cur["totals"]["studies"] == len(visible(loaded, sequestered=True))
    assert anon["totals"]["studies"] < cur["totals"]["studies"]
    hidden = {c.case_id for c, s in visible(loaded, True) if s.sequestered}
    rows = requests.get(f"{loaded.server.base}/commons/explore/cases",
                        params={"limit": 200}, timeout=60).json()["rows"]
    rows += requests.get(f"{loaded.server.base}/commons/explore/cases",
                         params={"limit": 200, "offset": 200}, timeout=60).json()["rows"]
    assert len(rows) == anon["totals"]["cases"]
    assert not hidden & {r["case_id"] for r in rows}


def test_studies_table_sorts_and_pages(loaded: Loaded) -> None:
    base = f"{loaded.server.base}/commons/explore/studies"
    params = {"ModalitiesInStudy": "CT", "sort": "case_id", "order": "desc", "limit": 7}
    first = requests.get(base, params=params, timeout=60).json()
    second = requests.get(base, params=params | {"offset": 7}, timeout=60).json()
    want = sorted((s for _, s in visible(loaded) if s.modality == "CT"),
                  key=lambda s: s.case_id, reverse=True)
    ids = [r["case_id"] for r in first["rows"] + second["rows"]]
    assert ids == [s.case_id for s in want][:14]
    assert first["total"] == len(want) and not first["withheld"]
    r = requests.get(base, params={"sort": "pk; DROP TABLE study"}, timeout=60)
    assert r.status_code == 400 and "sort must be one of" in r.text


def test_cohort_scope_and_description(loaded: Loaded) -> None:
    owner = key_headers(loaded.server, "reader")  # a cohort belongs to a named creator
    r = requests.post(f"{loaded.server.base}/commons/cohorts", headers=owner, timeout=60, json={
        "name": "females CR", "description": "for the comparison view",
        "filters": {"commons.case.sex": "Female", "ModalitiesInStudy": "CR"}})
    assert r.status_code == 201, r.text
    cohort = r.json()
    assert cohort["description"] == "for the comparison view"
    got = explore(loaded.server.base, {"cohort": cohort["id"]}, headers=owner)
    assert got["totals"] == {"studies": cohort["counts"]["studies"],
                             "cases": cohort["counts"]["cases"]}
    assert set(facet(got, "commons.case.sex")) == {"Female"}
    missing = requests.get(f"{loaded.server.base}/commons/explore",
                           params={"cohort": "00000000-0000-0000-0000-000000000000"}, timeout=60)
    assert missing.status_code == 404


def test_min_cell_count_everywhere(loaded: Loaded, suppressed: RunningArchive) -> None:
    got = explore(suppressed.base)
    assert got["min_cell_count"] == 20
    assert isinstance(got["totals"]["studies"], int)
    counts = [v[k] for f in got["facets"] for v in f["values"] for k in ("studies", "cases")]
    assert "< 20" in counts
    assert all(c is None or c == "< 20" or (isinstance(c, int) and c >= 20) for c in counts)
    small = explore(suppressed.base, {"commons.case.age_at_index": "30-31",
                                      "commons.site": "SITE_A"})
    assert small["totals"] == {"studies": "< 20", "cases": "< 20"}
    rows = requests.get(f"{suppressed.base}/commons/explore/studies", timeout=60, params={
        "commons.case.age_at_index": "30-31", "commons.site": "SITE_A"}).json()
    assert rows == {"tab": "studies", "total": "< 20", "withheld": True, "rows": []}
    f = requests.get(f"{suppressed.base}/commons/facets", timeout=60, params={
        "field": "commons.case.race", "commons.site": "SITE_A",
        "commons.case.age_at_index": "30-40"}).json()["facets"][0]
    assert all(v["studies"] == "< 20" for v in f["values"]), f


def test_filters_are_evaluated_once_unless_series_keys_would_split() -> None:
    from archive.commons.explore import independent
    from archive.index.commons_explore import plan_blocks as _plan

    names = ["commons.case.sex", "ModalitiesInStudy", "BodyPartExamined", "Manufacturer"]
    blocks, subsets, of = _plan([("commons.case.sex", "Female"), ("ModalitiesInStudy", "CT"),
                                 ("commons.case.race", "Asian")], names, independent)
    assert blocks == [(0,), (1,), (2,)]  # one study_select per filtered facet
    assert subsets[of["commons.case.sex"]] == (1, 2) and subsets[of["BodyPartExamined"]] == (0, 1, 2)
    # two series-level keys must match the same series: subsets are evaluated whole
    blocks, subsets, of = _plan([("BodyPartExamined", "CHEST"), ("Manufacturer", "GE")], names,
                                independent)
    assert blocks[0] == (0, 1) and blocks[of["Manufacturer"]] == (0,)


def test_bad_requests_are_400(loaded: Loaded) -> None:
    base = loaded.server.base
    for path, params in [("/commons/explore", {"facet": "nope"}),
                         ("/commons/explore", {"commons.case.age_at_index": "old"}),
                         ("/commons/explore", {"commons.nope": "x"}),
                         ("/commons/explore/studies", {"limit": "100000"}),
                         ("/commons/explore/cases", {"order": "sideways"})]:
        r = requests.get(base + path, params=params, timeout=60)
        assert r.status_code == 400, (path, params, r.status_code, r.text)


def test_portal_files_are_served_from_the_package(loaded: Loaded) -> None:
    base = loaded.server.base
    page = requests.get(f"{base}/portal/", timeout=60)
    assert page.status_code == 200 and 'role="status"' in page.text
    for src in ("static/app.js", "static/portal.css", "static/vendor/chart.umd.min.js"):
        assert src in page.text or src.endswith(".js")
        r = requests.get(f"{base}/portal/{src}", timeout=60)
        assert r.status_code == 200 and len(r.content) > 100, src
    assert requests.get(f"{base}/portal/static/../portal.py", timeout=60).status_code == 404
    cfg = requests.get(f"{base}/portal/config.json", timeout=60).json()
    assert cfg["viewer"] is False and cfg["min_cell_count"] == 0
    assert requests.get(f"{base}/portal", timeout=60, allow_redirects=False).status_code == 302


def test_min_cell_count_setting() -> None:
    from archive import config
    from archive.cli import parser, settings_from
    from archive.errors import ConfigError

    assert config.load(environ={}).min_cell_count == 0
    assert config.load(environ={"ARCHIVE_MIN_CELL_COUNT": "11"}).min_cell_count == 11
    args = parser().parse_args(["serve", "--min-cell-count", "5"])
    assert settings_from(args).min_cell_count == 5
    with pytest.raises(ConfigError):
        config.load(environ={"ARCHIVE_MIN_CELL_COUNT": "-1"})
