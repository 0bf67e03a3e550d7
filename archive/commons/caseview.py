"""GET /commons/cases/{case}: a case's clinical data and the imaging studies it links to.

A case whose studies include one the caller may not see (a sequestered case) is reported as
not found, like the studies themselves.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.commons.clinical import KINDS
from archive.core import Caller
from archive.errors import NotFound
from archive.index.visibility import visible_sql

_CHILD_ORDER = {"tests": "days_from_index, pk", "observations": "days NULLS LAST, pk",
                "studies": "days_to_study, study_uid"}


async def case_view(conn: AsyncConnection, caller: Caller, case_id: str) -> dict[str, Any]:
    row = (await conn.execute(text("SELECT * FROM clinical_case WHERE case_id = :c"),
                              {"c": case_id})).mappings().first()
    hidden = (await conn.execute(text(
        f"SELECT 1 FROM study JOIN patient p ON p.pk = study.patient_pk "
        f"WHERE p.patient_id = :c AND NOT ({visible_sql(caller)}) LIMIT 1"),
        {"c": case_id})).first()
    if row is None or hidden:
        raise NotFound(f"no case {case_id}")
    out: dict[str, Any] = {k: v for k, v in row.items() if k not in ("extra",)}
    out["created_at"], out["updated_at"] = row["created_at"].isoformat(), \
        row["updated_at"].isoformat()
    for name, kind in KINDS.items():
        order = _CHILD_ORDER.get(name, "days_start NULLS LAST, pk")
        rows = (await conn.execute(text(
            f"SELECT * FROM {kind.table.name} WHERE case_id = :c ORDER BY {order}"),
            {"c": case_id})).mappings().all()
        out[name] = [{k: v for k, v in r.items() if k not in ("pk", "case_id")} for r in rows]
    out["imaging_studies"] = [dict(r) for r in (await conn.execute(text(
        f"""
        SELECT study.study_uid, study.site, study.dataset, study.modalities,
               study.study_description, sc.days_to_study, h.loinc_code,
               t.long_common_name AS loinc_long_common_name, study.num_series,
               study.num_instances
        FROM study JOIN study_case sc ON sc.study_pk = study.pk
        LEFT JOIN study_harmonization h ON h.study_pk = study.pk
        LEFT JOIN loinc_term t ON t.code = h.loinc_code
        WHERE sc.case_id = :c AND {visible_sql(caller)} ORDER BY sc.days_to_study, study.pk
        """), {"c": case_id})).mappings().all()]
    return out
