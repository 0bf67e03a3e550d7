"""Dataset QC before a release (issue 16): what a curator checks, in one report.

- `unmapped`: study descriptions with no LOINC code yet, each with the top suggestions;
- `cases_without_clinical_data`: cases (patient ids) with images but no clinical case row, or
  a row without sex, age and COVID-19 status;
- `studies_without_case`: studies whose patient id matches no clinical case;
- `phi`: PS3.15 E.1 findings (archive.curation.phi) over the stored headers, by attribute,
  with example instances; at most `PHI_SCAN` instances are read (the report says how many);
- `duplicates`: instances of the dataset whose bytes (SHA-256) are stored more than once.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.commons.suggest import service
from archive.core import Core
from archive.curation.phi import PhiPolicy, findings
from archive.errors import NotFound
from archive.index.commons_tables import clinical_case, study_harmonization
from archive.index.tables import instance, patient, series, study

PHI_SCAN = 2000
EXAMPLES = 5
LIST_LIMIT = 1000


async def dataset_qc(core: Core, dataset: str) -> dict[str, Any]:
    async with core.engine.connect() as conn:
        in_dataset = study.c.dataset == dataset
        n = (await conn.execute(select(func.count()).select_from(study).where(in_dataset))).scalar_one()
        if not n:
            raise NotFound(f"no dataset {dataset}")
        unmapped = await _unmapped(conn, in_dataset)
        report = {"dataset": dataset, "studies": n,
                  "cases_without_clinical_data": await _cases_without_clinical(conn, in_dataset),
                  "studies_without_case": await _studies_without_case(conn, in_dataset),
                  "phi": await _phi(core, conn, in_dataset),
                  "duplicates": await _duplicates(conn, in_dataset)}
    report["unmapped"] = await service(core).annotate(core, unmapped)
    return report


async def _unmapped(conn: AsyncConnection, where: Any) -> list[dict[str, Any]]:
    h = study_harmonization
    rows = (await conn.execute(
        select(h.c.modality_norm.label("modality"), h.c.description_norm.label("description"),
               func.min(h.c.raw_description).label("example"), func.count().label("studies"))
        .select_from(h.join(study, study.c.pk == h.c.study_pk))
        .where(where, h.c.loinc_code.is_(None))
        .group_by(h.c.modality_norm, h.c.description_norm)
        .order_by(func.count().desc(), h.c.modality_norm, h.c.description_norm))).mappings().all()
    return [dict(r) for r in rows]


def _with_case() -> Any:
    return study.join(patient, patient.c.pk == study.c.patient_pk).outerjoin(
        clinical_case, clinical_case.c.case_id == patient.c.patient_id)


async def _cases_without_clinical(conn: AsyncConnection, where: Any) -> dict[str, Any]:
    empty = or_(clinical_case.c.case_id.is_(None), and_(
        clinical_case.c.sex.is_(None), clinical_case.c.age_at_index.is_(None),
        clinical_case.c.covid19_positive.is_(None)))
    rows = (await conn.execute(select(patient.c.patient_id).distinct().select_from(_with_case())
                               .where(where, empty).order_by(patient.c.patient_id))).all()
    return {"count": len(rows), "case_ids": [r.patient_id for r in rows[:LIST_LIMIT]]}


async def _studies_without_case(conn: AsyncConnection, where: Any) -> dict[str, Any]:
    rows = (await conn.execute(select(study.c.study_uid, patient.c.patient_id)
                               .select_from(_with_case())
                               .where(where, clinical_case.c.case_id.is_(None))
                               .order_by(study.c.pk))).all()
    return {"count": len(rows), "studies": [{"study_uid": r.study_uid, "patient_id": r.patient_id}
                                            for r in rows[:LIST_LIMIT]]}


def _instances() -> Any:
    return instance.join(series, series.c.pk == instance.c.series_pk).join(
        study, study.c.pk == series.c.study_pk)


async def _phi(core: Core, conn: AsyncConnection, where: Any) -> dict[str, Any]:
    total = (await conn.execute(select(func.count()).select_from(_instances())
                                .where(where))).scalar_one()
    rows = (await conn.execute(select(instance.c.sop_uid, instance.c.header)
                               .select_from(_instances()).where(where)
                               .order_by(instance.c.pk).limit(PHI_SCAN))).all()

    def scan() -> dict[str, Any]:
        by_key: Counter[tuple[str, str, str]] = Counter()
        examples: dict[tuple[str, str, str], list[str]] = {}
        flagged = 0
        for r in rows:
            found = findings(r.header, PhiPolicy(dates_shifted=True))
            flagged += bool(found)
            for f in {(f.keyword, str(f.category), f.reason) for f in found}:
                by_key[f] += 1
                if len(examples.setdefault(f, [])) < EXAMPLES:
                    examples[f].append(r.sop_uid)
        return {"instances": total, "scanned": len(rows), "instances_with_findings": flagged,
                "findings": [{"keyword": k[0], "category": k[1], "reason": k[2], "instances": n,
                              "examples": examples[k]} for k, n in by_key.most_common()]}
    return dict(await core.run_blocking(scan))


async def _duplicates(conn: AsyncConnection, where: Any) -> dict[str, Any]:
    mine = select(instance.c.sha256).select_from(_instances()).where(where).subquery()
    rows = (await conn.execute(
        select(instance.c.sha256, func.count().label("copies"),
               func.array_agg(instance.c.sop_uid).label("sop_uids"))
        .where(instance.c.sha256.in_(select(mine.c.sha256)))
        .group_by(instance.c.sha256).having(func.count() > 1)
        .order_by(func.count().desc()).limit(LIST_LIMIT))).all()
    return {"count": len(rows), "groups": [{"sha256": r.sha256, "copies": r.copies,
                                            "sop_uids": sorted(r.sop_uids)} for r in rows]}
