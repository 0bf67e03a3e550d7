"""Stratified sequestration over a synthetic commons of 4,000 cases (+ a 1,500-case batch).

Tolerances (stated in the issue's terms): every stratum within one case of f·n (whole cases
can do no better); every marginal cell (single attributes, pairs, site × sex × COVID-19) within
3 cases of f·n, cells of ≥ 100 cases within 1.5 percentage points and of ≥ 200 cases within one;
overall fraction within one case of the target.
"""

from __future__ import annotations

import json
import random

import pytest

from archive.curation.sequester import (
    Partition,
    build_report,
    coin_flip_assign,
    default_marginals,
    sequester,
)
from archive.curation.strata import DEFAULT_ATTRIBUTES, Case, age_bin, stratum_of
from tests.archive.curation.synthetic import synthetic_cases

F = 0.2


@pytest.fixture(scope="module")
def commons() -> list[Case]:
    return synthetic_cases(4000, seed=11)


@pytest.fixture(scope="module")
def first(commons: list[Case]):
    return sequester(commons, {}, seed=2026, fraction=F)


def test_age_bins_follow_cdc_groups() -> None:
    assert [age_bin(a) for a in (0, 17, 18, 29.9, 30, 49, 50, 64, 65, 74, 75, 84, 85, 89, ">89")] == [
        "0-17", "0-17", "18-29", "18-29", "30-39", "40-49", "50-64", "50-64", "65-74", "65-74",
        "75-84", "75-84", "85+", "85+", "85+"]
    assert age_bin(None) == age_bin("unknown") == age_bin(-3) == "Not Reported"
    assert stratum_of(Case("x", {"modality": ["DX", "CT", "DX"]}), ("modality",)) == ("CT+DX",)


def test_overall_and_every_stratum_on_target(commons: list[Case], first) -> None:
    rep = first.report
    assert set(first.assignments) == {c.case_id for c in commons}
    assert abs(rep.total_sequestered - F * len(commons)) <= 1
    assert rep.max_stratum_deviation() < 1.0
    assert len(rep.strata) > 1000  # most strata hold a single case: the hard regime
    assert rep.seed == 2026
    record = json.loads(json.dumps(rep.as_dict()))
    assert record["seed"] == 2026 and record["total"]["sequestered"] == rep.total_sequestered
    assert sum(r["sequestered"] for r in record["strata"]) == rep.total_sequestered


def test_every_marginal_within_tolerance(first) -> None:
    rep = first.report
    worst = max(abs(r.deviation(F)) for r in rep.marginals)
    assert worst <= 3.0, worst
    assert {r.attributes for r in rep.marginals} >= {("site", "sex", "covid19_positive"), ("race",)}
    assert rep.max_marginal_deviation(min_cases=100) <= 0.015
    assert rep.max_marginal_deviation(min_cases=200) <= 0.01


def test_beats_per_cell_coin_flips_on_marginals(commons: list[Case], first) -> None:
    flips = coin_flip_assign(commons, {}, seed=2026, fraction=F)
    base = build_report(commons, flips, flips, seed=2026, fraction=F, attributes=DEFAULT_ATTRIBUTES,
                        marginals=default_marginals(DEFAULT_ATTRIBUTES))
    assert base.max_stratum_deviation() < 1.0  # the baseline is per-cell exact too …
    ours = first.report
    worst_ours = max(abs(r.deviation(F)) for r in ours.marginals)
    worst_base = max(abs(r.deviation(F)) for r in base.marginals)
    assert worst_base > 4 * worst_ours  # … but drifts in the marginals
    assert base.marginal_error() > 4 * ours.marginal_error()


def test_same_seed_same_result_whatever_the_input_order(commons: list[Case], first) -> None:
    shuffled = commons[:]
    random.Random(5).shuffle(shuffled)
    again = sequester(shuffled, {}, seed=2026, fraction=F)
    assert again.assignments == first.assignments
    other = sequester(commons, {}, seed=2027, fraction=F)
    assert other.assignments != first.assignments


def test_second_batch_is_sticky_and_keeps_totals_on_target(commons: list[Case], first) -> None:
    batch2 = synthetic_cases(1500, seed=12, prefix="b2")
    # a returning patient shows up with new studies (new modality) but keeps the assignment
    returning = [Case(c.case_id, {**c.attributes, "modality": "MR"}) for c in commons[:50]]
    everything = returning + commons[50:] + batch2
    second = sequester(everything, first.assignments, seed=99, fraction=F)
    assert set(second.assignments) == {c.case_id for c in batch2}
    assert not set(second.assignments) & set(first.assignments)
    rep = second.report
    n = len(commons) + len(batch2)
    assert abs(rep.total_sequestered - F * n) <= 1.5
    assert rep.new_sequestered + rep.new_open == len(batch2)
    worst = max(abs(r.deviation(F)) for r in rep.marginals)
    assert worst <= 4.0, worst  # earlier cases are fixed, so a little less room than batch 1
    assert rep.max_marginal_deviation(min_cases=200) <= 0.01
    # the release is re-derivable from its recorded seed and inputs
    assert sequester(list(reversed(everything)), first.assignments, seed=99).assignments == second.assignments


def test_drift_left_by_earlier_batches_is_corrected() -> None:
    cases = [Case(f"c{i}", {"site": "S", "sex": "Female"}) for i in range(100)]
    old = {f"c{i}": Partition.OPEN for i in range(50)}  # an earlier batch sequestered nothing
    res = sequester(cases, old, seed=3, fraction=F, attributes=("site", "sex"))
    assert sum(p == Partition.SEQUESTERED for p in res.assignments.values()) == 20
    assert res.report.overall_fraction == pytest.approx(0.2)


def test_small_strata_keep_the_overall_fraction() -> None:
    # 1,000 strata of one case each: rounding each on its own would sequester none
    cases = [Case(f"s{i}", {"site": f"site{i}"}) for i in range(1000)]
    res = sequester(cases, {}, seed=8, fraction=F, attributes=("site",))
    assert res.report.total_sequestered == 200


def test_bad_fraction_and_unknown_marginal_are_refused(commons: list[Case]) -> None:
    with pytest.raises(ValueError):
        sequester(commons[:10], {}, seed=1, fraction=1.5)
    with pytest.raises(ValueError):
        sequester(commons[:10], {}, seed=1, marginals=[("zip",)])
