"""The `commons.` filter compiler, run directly against PostgreSQL on the synthetic commons.

Each expected set is computed in Python from the generator's own records, not from SQL.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from archive.commons.playbook import Term, read_playbook, shipped_playbook
from archive.core import Caller
from archive.errors import InvalidQuery
from archive.index.commons_filters import compile_filter
from archive.index.tables import study
from archive.index.visibility import visible_to
from tests.archive.commons.conftest import Loaded
from tests.archive.commons.synth import Case, Study


def matching(loaded: Loaded, key: str, value: str, curator: bool = True) -> set[str]:
    core = loaded.server.core
    clause = compile_filter(key, value)

    async def run() -> set[str]:
        stmt = select(study.c.study_uid).where(
            clause, visible_to(Caller(may_see_sequestered=curator)))
        async with core.engine.connect() as conn:
            return set((await conn.execute(stmt)).scalars())

    return loaded.server.run(run())


def expected(loaded: Loaded, pred: Callable[[Case, Study], bool]) -> set[str]:
    return {s.uid for c in loaded.commons.cases for s in c.studies if pred(c, s)}


def clinical(pred: Callable[[Case, Study], bool]) -> Callable[[Case, Study], bool]:
    return lambda c, s: c.has_clinical and pred(c, s)


def test_site_and_dataset(loaded: Loaded) -> None:
    assert matching(loaded, "commons.site", "SITE_A,SITE_C") == expected(
        loaded, lambda c, s: s.site in ("SITE_A", "SITE_C"))
    assert matching(loaded, "commons.dataset", "SITE_B_2026*") == expected(
        loaded, lambda c, s: s.site == "SITE_B")
    assert matching(loaded, "commons.site", "site_?") == expected(loaded, lambda c, s: True)


def test_loinc_code_list(loaded: Loaded) -> None:
    got = matching(loaded, "commons.loinc_code", "36554-4,29252-4")
    want = expected(loaded, lambda c, s: loaded.commons.code_of(s) in ("36554-4", "29252-4"))
    assert got == want and want


def test_loinc_term_fields(loaded: Loaded) -> None:
    book = read_playbook(shipped_playbook().read_text(encoding="utf-8"))
    terms = {t.code: t for t in book.terms}

    def term_is(pred: Callable[[Term], bool]) -> Callable[[Case, Study], bool]:
        def check(c: Case, s: Study) -> bool:
            code = loaded.commons.code_of(s)
            return code is not None and pred(terms[code])
        return check

    assert matching(loaded, "commons.loinc_method", "CT") == expected(
        loaded, term_is(lambda t: t.method == "CT"))
    assert matching(loaded, "commons.loinc_long_common_name", "XR Chest*") == expected(
        loaded, term_is(lambda t: t.long_common_name.startswith("XR Chest")))
    assert matching(loaded, "commons.loinc_contrast", "WO") == expected(
        loaded, term_is(lambda t: t.contrast == "WO"))
    assert matching(loaded, "commons.loinc_system", "chest>*") == expected(
        loaded, term_is(lambda t: (t.body_system or "").startswith("Chest>")))


def test_age_ranges_and_gt89(loaded: Loaded) -> None:
    want = expected(loaded, clinical(lambda c, s: 40 <= c.age <= 65))
    assert matching(loaded, "commons.case.age_at_index", "40-65") == want
    assert matching(loaded, "commons.case.age_at_index", "40..65") == want
    assert matching(loaded, "commons.case.age_at_index", "85..") == expected(
        loaded, clinical(lambda c, s: 85 <= c.age <= 89))
    assert matching(loaded, "commons.case.age_at_index_gt89", "yes") == expected(
        loaded, clinical(lambda c, s: c.age > 89))


def test_case_enumerations_ignore_case(loaded: Loaded) -> None:
    assert matching(loaded, "commons.case.covid19_positive", "yes") == expected(
        loaded, clinical(lambda c, s: c.covid19_positive == "Yes"))
    assert matching(loaded, "commons.case.sex", "FEMALE") == expected(
        loaded, clinical(lambda c, s: c.sex == "Female"))
    assert matching(loaded, "commons.case.race", "Asian,White") == expected(
        loaded, clinical(lambda c, s: c.race in ("Asian", "White")))


def test_test_keys(loaded: Loaded) -> None:
    assert matching(loaded, "commons.test.result", "Positive") == expected(
        loaded, clinical(lambda c, s: any(t["test_result"] == "Positive" for t in c.tests)))
    assert matching(loaded, "commons.test.method", "rapid*") == expected(
        loaded, clinical(lambda c, s: any(t["test_method"] == "Rapid antigen test"
                                          for t in c.tests)))


def _offsets(c: Case, s: Study, result: str | None = None) -> list[int]:
    if s.days_to_study is None:
        return []
    return [t["days_from_index"] - s.days_to_study for t in c.tests
            if result is None or t["test_result"] == result]


def test_days_from_study_is_signed_and_per_study(loaded: Loaded) -> None:
    assert matching(loaded, "commons.test.days_from_study", "-3..3") == expected(
        loaded, clinical(lambda c, s: any(-3 <= d <= 3 for d in _offsets(c, s))))
    assert matching(loaded, "commons.test.days_from_study", "..-10") == expected(
        loaded, clinical(lambda c, s: any(d <= -10 for d in _offsets(c, s))))
    assert matching(loaded, "commons.days_from_study_to_pos_covid_test", "0..5") == expected(
        loaded, clinical(lambda c, s: any(0 <= d <= 5 for d in _offsets(c, s, "Positive"))))


def test_days_to_study(loaded: Loaded) -> None:
    assert matching(loaded, "commons.days_to_study", "-2,7..9") == expected(
        loaded, clinical(lambda c, s: s.days_to_study is not None
                         and (s.days_to_study == -2 or 7 <= s.days_to_study <= 9)))


def test_dicom_value_grammar_matches_the_commons_alias(loaded: Loaded) -> None:
    """PS3.18 §8.3.4 / PS3.4 C.2.2.2: `\\` separates values, `a-b` is a range (ends optional).
    The commons grammar (`,` lists, `a..b` ranges) stays an alias with the same meaning."""
    key = "commons.test.days_from_study"
    assert matching(loaded, "commons.site", "SITE_A\\SITE_C") == matching(
        loaded, "commons.site", "SITE_A,SITE_C")
    closed = matching(loaded, key, "-3-3")
    assert closed == matching(loaded, key, "-3..3") == expected(
        loaded, clinical(lambda c, s: any(-3 <= d <= 3 for d in _offsets(c, s))))
    assert closed
    assert matching(loaded, key, "-10--2") == expected(
        loaded, clinical(lambda c, s: any(-10 <= d <= -2 for d in _offsets(c, s))))
    assert matching(loaded, key, "--10") == matching(loaded, key, "..-10")
    assert matching(loaded, key, "2-") == matching(loaded, key, "2..")
    assert matching(loaded, "commons.case.age_at_index", "85-") == expected(
        loaded, clinical(lambda c, s: 85 <= c.age <= 89))
    # on a signed field a lone negative number is that number, not an open range
    assert matching(loaded, "commons.days_to_study", "-2\\7-9") == expected(
        loaded, clinical(lambda c, s: s.days_to_study is not None
                         and (s.days_to_study == -2 or 7 <= s.days_to_study <= 9)))


def test_sequestered_studies_stay_hidden_under_every_key(loaded: Loaded) -> None:
    hidden = expected(loaded, lambda c, s: s.sequestered)
    assert hidden
    assert not matching(loaded, "commons.site", "*", curator=False) & hidden
    assert matching(loaded, "commons.site", "*", curator=True) >= hidden


def test_empty_value_is_universal(loaded: Loaded) -> None:
    assert matching(loaded, "commons.case.sex", "") == expected(loaded, lambda c, s: True)


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("commons.nope", "1", "unknown commons query key"),
    ("commons.case.age_at_index", "forty", "not an integer"),
    ("commons.case.age_at_index", "70..40", "empty"),
    ("commons.test.days_from_study", "5-3", "empty"),
    ("commons.test.days_from_study", "3-x", "not an integer"),
    ("commons.test.days_from_index", "-", "without ends"),
    ("commons.case.age_at_index_gt89", "maybe", "not yes or no"),
    ("commons.test.days_from_index", "..", "without ends"),
])
def test_bad_keys_and_values_are_invalid_queries(key: str, value: str, reason: str) -> None:
    with pytest.raises(InvalidQuery, match=reason):
        compile_filter(key, value)
