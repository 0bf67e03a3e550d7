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

from archive.commons.suggest import service
from archive.core import Core
from archive.curation.phi import PhiPolicy, findings
from archive.errors import NotFound
from archive.index import qc as rows_of
from archive.index.handles import Connection

PHI_SCAN = 2000
EXAMPLES = 5
LIST_LIMIT = 1000


async def dataset_qc(core: Core, dataset: str) -> dict[str, Any]:
    async with core.engine.connect() as conn:
        n = await rows_of.study_count(conn, dataset)
        if not n:
            raise NotFound(f"no dataset {dataset}")
        unmapped = await rows_of.unmapped(conn, dataset)
        cases = await rows_of.cases_without_clinical(conn, dataset)
        studies = await rows_of.studies_without_case(conn, dataset)
        report = {"dataset": dataset, "studies": n,
                  "cases_without_clinical_data": {"count": len(cases),
                                                  "case_ids": cases[:LIST_LIMIT]},
                  "studies_without_case": {
                      "count": len(studies),
                      "studies": [{"study_uid": r.study_uid, "patient_id": r.patient_id}
                                  for r in studies[:LIST_LIMIT]]},
                  "phi": await _phi(core, conn, dataset),
                  "duplicates": await _duplicates(conn, dataset)}
    report["unmapped"] = await service(core).annotate(core, unmapped)
    return report


async def _phi(core: Core, conn: Connection, dataset: str) -> dict[str, Any]:
    total, rows = await rows_of.instance_headers(conn, dataset, PHI_SCAN)

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


async def _duplicates(conn: Connection, dataset: str) -> dict[str, Any]:
    rows = await rows_of.duplicates(conn, dataset, LIST_LIMIT)
    return {"count": len(rows), "groups": [{"sha256": r.sha256, "copies": r.copies,
                                            "sop_uids": sorted(r.sop_uids)} for r in rows]}
