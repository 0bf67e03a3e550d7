"""GET /commons/cases/{case}: a case's clinical data and the imaging studies it links to.

A case whose studies include one the caller may not see (a sequestered case) is reported as
not found, like the studies themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, Table, not_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.caller import Caller
from archive.errors import NotFound
from archive.index.commons_tables import clinical_case, loinc_term, study_case, study_harmonization
from archive.index.tables import patient, study
from archive.index.visibility import visible_to


def _child_order(name: str, table: Table) -> tuple[Any, ...]:
    """Each kind of clinical row in its natural order (day first, then entry order)."""
    c = table.c
    if name == "tests":
        return (c.days_from_index, c.pk)
    if name == "observations":
        return (c.days.asc().nulls_last(), c.pk)
    if name == "studies":
        return (c.days_to_study, c.study_uid)
    return (c.days_start.asc().nulls_last(), c.pk)


async def case_view(conn: AsyncConnection, caller: Caller, case_id: str,
                    kinds: Mapping[str, Table]) -> dict[str, Any]:
    """The case row, its child rows per kind (`kinds`: list name → table) and its studies."""
    row = (await conn.execute(select(clinical_case).where(clinical_case.c.case_id == case_id))
           ).mappings().first()
    hidden = (await conn.execute(
        select(study.c.pk).select_from(study.join(patient, patient.c.pk == study.c.patient_pk))
        .where(patient.c.patient_id == case_id, not_(visible_to(caller))).limit(1))).first()
    if row is None or hidden:
        raise NotFound(f"no case {case_id}")
    out: dict[str, Any] = {k: v for k, v in row.items() if k not in ("extra",)}
    out["created_at"], out["updated_at"] = row["created_at"].isoformat(), \
        row["updated_at"].isoformat()
    for name, t in kinds.items():
        rows = (await conn.execute(select(t).where(t.c.case_id == case_id)
                                   .order_by(*_child_order(name, t)))).mappings().all()
        out[name] = [{k: v for k, v in r.items() if k not in ("pk", "case_id")} for r in rows]
    out["imaging_studies"] = [dict(r) for r in (await conn.execute(
        _imaging_studies(caller, case_id))).mappings().all()]
    return out


def _imaging_studies(caller: Caller, case_id: str) -> Select[Any]:
    sc, h, t = study_case, study_harmonization, loinc_term
    joined = (study.join(sc, sc.c.study_pk == study.c.pk)
              .outerjoin(h, h.c.study_pk == study.c.pk).outerjoin(t, t.c.code == h.c.loinc_code))
    return (select(study.c.study_uid, study.c.site, study.c.dataset, study.c.modalities,
                   study.c.study_description, sc.c.days_to_study, h.c.loinc_code,
                   t.c.long_common_name.label("loinc_long_common_name"), study.c.num_series,
                   study.c.num_instances)
            .select_from(joined).where(sc.c.case_id == case_id, visible_to(caller))
            .order_by(sc.c.days_to_study, study.c.pk))
