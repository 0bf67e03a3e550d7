"""Explore's results tables: one page of matching studies, or of matching cases, sorted.

The same matching set as the facet counts (`commons_explore.matching`: QIDO's parser and visibility),
joined to the columns a researcher scans: case demographics next to each study, or per case
the number of its matching studies. Sorting is by a fixed list of columns (never by a name
sent in the request), always with the primary key last so pages are stable.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.caller import Caller
from archive.errors import InvalidQuery
from archive.index.commons_explore import Selector, matching
from archive.index.commons_tables import clinical_case, loinc_term, study_case, study_harmonization
from archive.index.tables import patient, study

MAX_PAGE = 200
cc, sh = clinical_case, study_harmonization

STUDY_SORT: dict[str, Any] = {
    "study_date": study.c.study_date, "case_id": patient.c.patient_id,
    "study_description": study.c.study_description, "site": study.c.site,
    "modalities": study.c.modalities, "age_at_index": cc.c.age_at_index, "sex": cc.c.sex,
    "covid19_positive": cc.c.covid19_positive, "num_series": study.c.num_series,
    "num_instances": study.c.num_instances,
}
CASE_SORT: dict[str, Any] = {
    "case_id": patient.c.patient_id, "sex": cc.c.sex, "race": cc.c.race,
    "ethnicity": cc.c.ethnicity, "age_at_index": cc.c.age_at_index, "site": cc.c.site,
    "covid19_positive": cc.c.covid19_positive, "studies": func.count(study.c.pk),
}


def _order(table: dict[str, Any], sort: str, descending: bool, tiebreak: Any) -> list[Any]:
    if sort not in table:
        raise InvalidQuery(f"sort must be one of {', '.join(table)}, not {sort!r}")
    col = table[sort]
    return [(col.desc() if descending else col.asc()).nulls_last(), tiebreak]


def _bounds(offset: int, limit: int) -> tuple[int, int]:
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise InvalidQuery(f"offset must be >= 0 and limit 1..{MAX_PAGE}")
    return offset, limit


def studies_page(pairs: list[tuple[str, str]], select_for: Selector, caller: Caller,
                 sort: str, descending: bool, offset: int, limit: int) -> Select[Any]:
    m = matching(pairs, select_for, caller, "m")
    offset, limit = _bounds(offset, limit)
    source = (study.join(m, m.c.pk == study.c.pk)
              .join(patient, patient.c.pk == study.c.patient_pk)
              .outerjoin(study_case, study_case.c.study_pk == study.c.pk)
              .outerjoin(cc, cc.c.case_id == study_case.c.case_id)
              .outerjoin(sh, sh.c.study_pk == study.c.pk)
              .outerjoin(loinc_term, loinc_term.c.code == sh.c.loinc_code))
    return (select(study.c.study_uid, patient.c.patient_id.label("case_id"),
                   study.c.study_date, study.c.study_description, study.c.modalities,
                   study.c.site, study.c.num_series, study.c.num_instances,
                   cc.c.sex, cc.c.age_at_index, cc.c.age_at_index_gt89, cc.c.covid19_positive,
                   loinc_term.c.long_common_name.label("loinc_long_common_name"))
            .select_from(source)
            .order_by(*_order(STUDY_SORT, sort, descending, study.c.pk))
            .offset(offset).limit(limit))


def cases_page(pairs: list[tuple[str, str]], select_for: Selector, caller: Caller,
               sort: str, descending: bool, offset: int, limit: int) -> Select[Any]:
    m = matching(pairs, select_for, caller, "m")
    offset, limit = _bounds(offset, limit)
    source = (study.join(m, m.c.pk == study.c.pk)
              .join(patient, patient.c.pk == study.c.patient_pk)
              .outerjoin(cc, cc.c.case_id == patient.c.patient_id))
    return (select(patient.c.patient_id.label("case_id"), cc.c.sex, cc.c.race, cc.c.ethnicity,
                   cc.c.age_at_index, cc.c.age_at_index_gt89, cc.c.site,
                   cc.c.covid19_positive, func.count(study.c.pk).label("studies"),
                   func.min(study.c.study_uid).label("first_study_uid"))
            .select_from(source)
            .group_by(patient.c.pk, patient.c.patient_id, cc.c.case_id)
            .order_by(*_order(CASE_SORT, sort, descending, patient.c.pk))
            .offset(offset).limit(limit))


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


async def page(conn: AsyncConnection, select_for: Selector, caller: Caller, tab: str,
               pairs: list[tuple[str, str]], sort: str | None, descending: bool, offset: int,
               limit: int) -> list[dict[str, Any]]:
    """Rows of the `studies` or `cases` tab (plain JSON values)."""
    if tab == "studies":
        stmt = studies_page(pairs, select_for, caller, sort or "study_date", descending,
                            offset, limit)
    elif tab == "cases":
        stmt = cases_page(pairs, select_for, caller, sort or "case_id", descending, offset,
                          limit)
    else:
        raise InvalidQuery("tab must be studies or cases")
    rows = (await conn.execute(stmt)).mappings().all()
    return [{k: _plain(v) for k, v in r.items()} for r in rows]
