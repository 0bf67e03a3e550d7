"""Task-based test sets: quotas met exactly, or refused with the shortfall per quota."""

from __future__ import annotations

import pytest

from archive.curation.sequester import Partition, sequester
from archive.curation.strata import Case, stratum_value
from archive.curation.testsets import Shortfall, draw_test_set, validate_targets
from tests.archive.curation.synthetic import synthetic_cases

TARGET = {"covid19_positive": {"Yes": 0.5, "No": 0.5}, "sex": {"Female": 0.5, "Male": 0.5}}


@pytest.fixture(scope="module")
def pool() -> list[Case]:
    """The sequestered part of a 4,000-case synthetic commons (~800 cases)."""
    cases = synthetic_cases(4000, seed=21)
    split = sequester(cases, {}, seed=4, fraction=0.2).assignments
    return [c for c in cases if split[c.case_id] == Partition.SEQUESTERED]


def _count(pool: list[Case], ids: tuple[str, ...], attr: str, value: str) -> int:
    by_id = {c.case_id: c for c in pool}
    return sum(stratum_value(attr, by_id[i].attributes.get(attr)) == value for i in ids)


def test_quotas_met_exactly_on_every_marginal(pool: list[Case]) -> None:
    target = {**TARGET, "age": {"18-29": 0.1, "30-39": 0.1, "40-49": 0.2, "50-64": 0.3, "65-74": 0.3}}
    ts = draw_test_set(pool, 150, target, seed=1)
    assert len(ts.case_ids) == len(set(ts.case_ids)) == 150
    for attr, props in target.items():
        for value, p in props.items():
            assert _count(pool, ts.case_ids, attr, value) == round(150 * p)
    dist = ts.distribution()
    assert dist["covid19_positive"]["Yes"] == {"target": 0.5, "achieved": 0.5, "count": 75}
    assert sum(ts.quotas.values()) == 150


def test_odd_size_is_apportioned_by_largest_remainder(pool: list[Case]) -> None:
    ts = draw_test_set(pool, 101, {"covid19_positive": {"Yes": 0.3, "No": 0.7}}, seed=2)
    assert _count(pool, ts.case_ids, "covid19_positive", "Yes") == 30
    assert _count(pool, ts.case_ids, "covid19_positive", "No") == 71


def test_same_seed_same_draw_and_exclusion_of_used_cases(pool: list[Case]) -> None:
    a = draw_test_set(pool, 100, TARGET, seed=9)
    assert draw_test_set(list(reversed(pool)), 100, TARGET, seed=9).case_ids == tuple(a.case_ids)
    b = draw_test_set(pool, 100, TARGET, seed=9, exclude=a.case_ids)
    assert not set(a.case_ids) & set(b.case_ids)
    reused = draw_test_set(pool, 100, TARGET, seed=9, exclude=())
    assert set(reused.case_ids) == set(a.case_ids)


def test_shortfall_names_each_missing_quota(pool: list[Case]) -> None:
    # only cases whose every targeted attribute has a targeted value are eligible
    have_yes = sum(c.attributes["covid19_positive"] == "Yes" and c.attributes["sex"] in ("Female", "Male")
                   for c in pool)
    size = 2 * have_yes + 40
    with pytest.raises(Shortfall) as err:
        draw_test_set(pool, size, TARGET, seed=1)
    gaps = {(g.attributes, g.values): g for g in err.value.gaps}
    yes = gaps[(("covid19_positive",), ("Yes",))]
    assert (yes.needed, yes.available) == (size // 2, have_yes)
    assert yes.as_dict()["missing"] == size // 2 - have_yes
    assert "covid19_positive=Yes" in str(err.value)


def test_used_cases_count_against_the_pool(pool: list[Case]) -> None:
    first = draw_test_set(pool, 300, TARGET, seed=1)
    with pytest.raises(Shortfall):
        draw_test_set(pool, 600, TARGET, seed=2, exclude=first.case_ids)


def test_joint_infeasibility_is_refused_even_when_marginals_exist() -> None:
    # every COVID-positive case is female and every negative one male: 50/50 sex with
    # 100 % positive cannot be met although each marginal alone has enough cases
    pool = [Case(f"p{i}", {"covid19_positive": "Yes", "sex": "Female"}) for i in range(50)]
    pool += [Case(f"n{i}", {"covid19_positive": "No", "sex": "Male"}) for i in range(50)]
    with pytest.raises(Shortfall) as err:
        draw_test_set(pool, 20, {"covid19_positive": {"Yes": 1.0}, "sex": {"Female": 0.5, "Male": 0.5}},
                      seed=1)
    assert any(g.values == ("Male",) for g in err.value.gaps)


def test_bad_targets_are_refused() -> None:
    with pytest.raises(ValueError, match="sum"):
        validate_targets({"sex": {"Female": 0.7, "Male": 0.7}})
    with pytest.raises(ValueError):
        validate_targets({"sex": {"Female": -0.5, "Male": 1.5}})
    with pytest.raises(ValueError):
        draw_test_set([], 0, TARGET, seed=1)


def test_many_attributes_jointly_met_quickly() -> None:
    """Five attributes, 384 joint cells: IPF + integer repair still meets every marginal."""
    import time

    pool = synthetic_cases(4000, seed=3)
    target = {"covid19_positive": {"Yes": 0.5, "No": 0.5}, "sex": {"Female": 0.5, "Male": 0.5},
              "age": {"18-29": 0.1, "30-39": 0.1, "40-49": 0.2, "50-64": 0.3, "65-74": 0.2, "75-84": 0.1},
              "race": {"White": 0.5, "Black or African American": 0.3, "Asian": 0.1, "Other": 0.1},
              "site": {"site-A": 0.3, "site-B": 0.3, "site-C": 0.2, "site-D": 0.2}}
    started = time.perf_counter()
    ts = draw_test_set(pool, 333, target, seed=1)
    assert time.perf_counter() - started < 10
    for attr, props in ts.distribution().items():
        counts = [v["count"] for v in props.values()]
        assert sum(counts) == 333
        for value, row in props.items():
            assert abs(row["count"] - 333 * target[attr][value]) < 1, (attr, value)
            assert _count(pool, ts.case_ids, attr, value) == row["count"]
