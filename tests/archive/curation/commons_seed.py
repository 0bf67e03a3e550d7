"""Seed a running archive's index with a synthetic commons (thousands of cases) in one go.

Storing thousands of DICOM files would test ingest, not curation; the release workflow reads
only the index (patients, studies, clinical cases), so the rows go straight into the real
database the server uses, exactly as ingest under --release-workflow leaves them: staged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg

from archive.curation.strata import Case
from archive.index.engine import sync_url


def _modalities(value: object) -> list[str]:
    return sorted(str(value).split("+")) if value else ["OT"]


async def _seed(url: str, cases: Sequence[Case], dataset: str, study_prefix: str,
                clinical: bool) -> None:
    conn = await asyncpg.connect(sync_url(url))
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO patient (patient_id) SELECT unnest($1::text[]) "
                "ON CONFLICT DO NOTHING", [c.case_id for c in cases])
            if clinical:
                a = [c.attributes for c in cases]
                await conn.execute(
                    """INSERT INTO clinical_case (case_id, site, sex, race, ethnicity,
                                                  covid19_positive, age_at_index)
                       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                            $5::text[], $6::text[], $7::int[])
                       ON CONFLICT DO NOTHING""",
                    [c.case_id for c in cases], [x["site"] for x in a], [x["sex"] for x in a],
                    [x["race"] for x in a], [x["ethnicity"] for x in a],
                    [x["covid19_positive"] for x in a], [x["age"] for x in a])
            await conn.execute(
                """INSERT INTO study (patient_pk, study_uid, collection, site, dataset,
                                      modalities, num_series, num_instances)
                   SELECT p.pk, u.uid, 'staged', u.site, $5, string_to_array(u.mods, ','), 1, 1
                   FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
                        AS u(case_id, uid, site, mods)
                   JOIN patient p ON p.patient_id = u.case_id AND p.issuer = ''""",
                [c.case_id for c in cases],
                [f"2.25.{study_prefix}{i}" for i in range(len(cases))],
                [str(c.attributes["site"]) for c in cases],
                [",".join(_modalities(c.attributes["modality"])) for c in cases], dataset)
    finally:
        await conn.close()


def seed(url: str, cases: Sequence[Case], dataset: str, study_prefix: str,
         clinical: bool = True) -> None:
    """One staged study per case in `dataset` (and the cases' clinical rows)."""
    asyncio.run(_seed(url, cases, dataset, study_prefix, clinical))
