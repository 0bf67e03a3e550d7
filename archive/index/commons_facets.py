"""Facet counts for a cohort-builder page: per value of one field, how many studies and cases
match the other filters. The caller builds `matching` with `archive.commons.selection`
(the same filters, parser and visibility as QIDO-RS and cohorts); this module counts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.errors import InvalidQuery
from archive.index.commons_fields import SCOPES, field_for
from archive.index.tables import study

DICOM_FACETS = ("ModalitiesInStudy",)
MAX_VALUES = 1000


async def facet(conn: AsyncConnection, studies: Select[Any], name: str) -> dict[str, Any]:
    """Counts per value of field `name` over `studies` (a SELECT of study pks)."""
    matching = studies.subquery()
    if name == "ModalitiesInStudy":
        value = func.unnest(study.c.modalities).label("value")
        stmt = (select(value, func.count(study.c.pk.distinct()).label("studies"),
                       func.count(study.c.patient_pk.distinct()).label("cases"))
                .where(study.c.pk.in_(select(matching.c.pk))).group_by("value"))
    else:
        f = field_for(name)
        if f is None:
            raise InvalidQuery(f"unknown facet field {name!r}: a commons.* key or "
                               f"{', '.join(DICOM_FACETS)}")
        scope = SCOPES[f.scope]
        value = f.column.label("value")
        where = [scope.study_pk.in_(select(matching.c.pk))]
        if f.extra is not None:
            where.append(f.extra)
        source = scope.source
        cases = study.c.patient_pk if f.scope == "study" else scope.case_id
        if cases is None:  # loinc scope: count cases through the study
            source = scope.source.join(study, study.c.pk == scope.study_pk)
            cases = study.c.patient_pk
        stmt = (select(value, func.count(scope.study_pk.distinct()).label("studies"),
                       func.count(cases.distinct()).label("cases"))
                .select_from(source).where(*where).group_by(value))
    rows = (await conn.execute(
        stmt.order_by(func.count().desc(), value).limit(MAX_VALUES))).all()
    total = (await conn.execute(select(func.count()).select_from(matching))).scalar_one()
    return {"field": name, "studies": total,
            "values": [{"value": r.value, "studies": r.studies, "cases": r.cases}
                       for r in rows]}
