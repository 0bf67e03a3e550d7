#!/usr/bin/env python3
"""Portal facet counts at scale: GET /commons/explore over 100,000 studies, 3 filters active.

    python -m bench.portal_facets --database-url postgresql://postgres@127.0.0.1/postgres
    python -m bench.portal_facets --studies 100000 --repeat 40 --out facets.json

A scratch database is created (dropped afterwards unless --keep), migrated and filled directly
with INSERT ... SELECT generate_series, as bench/query.py does (this measures the facet queries,
not ingest): 2 studies per patient, one series each (body part, manufacturer), a clinical case
for 95% of patients (sex, race, ethnicity, age, COVID-19 status, site), one or two COVID-19
tests per case, a harmonized LOINC code for 90% of studies, 1% of studies sequestered. The
real server is started on it and `GET /commons/explore` (every facet, the totals and the age
histogram in one answer) is sent --repeat times with three filters whose values vary per
request (sex, modality, age range). p50/p95 in milliseconds are printed as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import requests

from archive.index.engine import sync_url, upgrade
from bench.query import _admin, _with_db, percentile, serving

TARGET_MS = 200.0
SITES = ["SITE_A", "SITE_B", "SITE_C", "SITE_D", "SITE_E"]
RACES = ["White", "Black or African American", "Asian", "Other", "Not Reported"]
MODALITIES = ["CR", "CT", "DX", "MR"]
BODY = ["CHEST", "ABDOMEN", "HEAD", "KNEE"]
MAKERS = ["GE MEDICAL SYSTEMS", "SIEMENS", "Philips", "Canon", "Agfa"]
LOINC = [("36554-4", "XR Chest Single view", "Chest", "XR.portable", ""),
         ("24627-2", "CT Chest", "Chest", "CT", ""), ("30745-4", "XR Chest 2 Views", "Chest", "XR", ""),
         ("24558-9", "CT Chest WO contrast", "Chest", "CT", "WO")]


def _arr(values: list[str]) -> str:
    return "ARRAY[" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def fill_statements(studies: int) -> list[str]:
    patients = max(1, studies // 2)
    sites, races, mods, body, makers = (_arr(SITES), _arr(RACES), _arr(MODALITIES), _arr(BODY),
                                        _arr(MAKERS))
    loinc_rows = ",".join(f"('{c}', '{n}', 'XR', '{s}', '{m}', '{w}', 'bench')"
                          for c, n, s, m, w in LOINC)
    return [
        "SET synchronous_commit = off",
        f"""INSERT INTO patient (pk, patient_id, issuer, patient_name, attrs)
            SELECT p, 'C' || lpad(p::text, 7, '0'), '', 'Case^' || p, '{{}}'::jsonb
            FROM generate_series(1, {patients}) AS p""",
        f"""INSERT INTO study (pk, patient_pk, study_uid, study_date, study_description,
                               modalities, sop_classes, num_series, num_instances, size_bytes,
                               collection, site, dataset, attrs)
            SELECT st, 1 + (st - 1) % {patients}, '1.2.826.0.1.3680043.10.9998.1.' || st,
                   date '2015-01-01' + (st * 13 % 3650),
                   CASE WHEN st % 3 = 0 THEN 'CHEST PA' ELSE 'CT CHEST W/O' END,
                   ARRAY[({mods})[1 + st % {len(MODALITIES)}]], ARRAY['1.2.840.10008.5.1.4.1.1.2'],
                   1, 1, 1000,
                   CASE WHEN st % 100 = 0 THEN 'sequestered' ELSE 'public' END,
                   ({sites})[1 + st % {len(SITES)}],
                   ({sites})[1 + st % {len(SITES)}] || '_2026030' || (st % 3), '{{}}'::jsonb
            FROM generate_series(1, {studies}) AS st""",
        f"""INSERT INTO series (pk, study_pk, series_uid, modality, series_number, body_part,
                                num_instances, attrs)
            SELECT st, st, '1.2.826.0.1.3680043.10.9998.2.' || st,
                   ({mods})[1 + st % {len(MODALITIES)}], 1, ({body})[1 + st % {len(BODY)}], 1,
                   jsonb_build_object('00080070', jsonb_build_object('vr', 'LO', 'Value',
                       jsonb_build_array(({makers})[1 + st % {len(MAKERS)}])))
            FROM generate_series(1, {studies}) AS st""",
        f"""INSERT INTO clinical_case (case_id, site, sex, race, ethnicity, age_at_index,
                                       age_at_index_gt89, zip, covid19_positive, index_event,
                                       extra, created_at, updated_at)
            SELECT 'C' || lpad(p::text, 7, '0'), ({sites})[1 + p % {len(SITES)}],
                   CASE WHEN p % 2 = 0 THEN 'Female' ELSE 'Male' END,
                   ({races})[1 + (p / 3) % {len(RACES)}],
                   CASE WHEN p % 4 = 0 THEN 'Hispanic or Latino' ELSE 'Not Hispanic or Latino' END,
                   CASE WHEN p % 37 = 0 THEN NULL ELSE 18 + p * 7 % 72 END, p % 37 = 0,
                   lpad((p % 1000)::text, 3, '0'),
                   CASE WHEN p % 5 < 3 THEN 'Yes' ELSE 'No' END, 'COVID-19 Test', '{{}}'::jsonb,
                   now(), now()
            FROM generate_series(1, {patients}) AS p WHERE p % 20 <> 19""",
        """INSERT INTO covid_test (case_id, test_name, test_method, test_result, days_from_index)
            SELECT case_id, 'COVID-19', CASE WHEN k = 1 THEN 'RT-PCR' ELSE 'Rapid antigen test' END,
                   CASE WHEN covid19_positive = 'Yes' AND k = 1 THEN 'Positive' ELSE 'Negative' END,
                   k * 3 - 2
            FROM clinical_case, generate_series(1, 2) AS k
            WHERE k = 1 OR right(case_id, 1) < '5'""",
        f"""INSERT INTO loinc_term (code, long_common_name, modality, body_system, method,
                                    contrast, source)
            VALUES {loinc_rows} ON CONFLICT (code) DO NOTHING""",
        f"""INSERT INTO study_harmonization (study_pk, modality_norm, description_norm,
                                             raw_description, loinc_code, mapping_version)
            SELECT st, 'x', 'x', 'x', ({_arr([c[0] for c in LOINC])})[1 + st % {len(LOINC)}], 1
            FROM generate_series(1, {studies}) AS st WHERE st % 10 <> 0""",
        "SELECT study_facet_refresh()",
        "VACUUM ANALYZE",
    ]


async def fill(url: str, studies: int) -> dict[str, float]:
    conn = await asyncpg.connect(sync_url(url))
    out: dict[str, float] = {}
    try:
        for statement in fill_statements(studies):
            t0 = time.perf_counter()
            await conn.execute(statement)
            out[" ".join(statement.split()[:3])] = round(time.perf_counter() - t0, 2)
    finally:
        await conn.close()
    return out


def params(i: int) -> dict[str, str]:
    """Three filters, varied per request so no cache answers everything."""
    low = 20 + i % 30
    return {"commons.case.sex": ("Female", "Male")[i % 2],
            "ModalitiesInStudy": MODALITIES[i % len(MODALITIES)],
            "commons.case.age_at_index": f"{low}..{low + 25}"}


def measure(base: str, repeat: int) -> dict[str, Any]:
    session = requests.Session()
    times, facets = [], 0
    for i in range(-3, repeat):  # 3 warm-up requests
        t0 = time.perf_counter()
        r = session.get(f"{base}/commons/explore", params=params(i), timeout=600)
        ms = (time.perf_counter() - t0) * 1000
        r.raise_for_status()
        facets = len(r.json()["facets"])
        if i >= 0:
            times.append(ms)
    return {"requests": repeat, "facets_per_answer": facets, "filters": 3,
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(percentile(times, 0.95), 1), "max_ms": round(max(times), 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                    help="PostgreSQL server (a scratch database is created on it)")
    ap.add_argument("--studies", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--keep", action="store_true", help="keep the scratch database")
    ap.add_argument("--reuse", metavar="NAME", help="measure this existing (filled) database")
    ap.add_argument("--out", type=Path, help="also write the JSON result here")
    args = ap.parse_args()
    name = args.reuse or f"bench_portal_{uuid.uuid4().hex[:8]}"
    url = _with_db(args.database_url, name)
    filled: dict[str, float] = {}
    if not args.reuse:
        asyncio.run(_admin(args.database_url, f'CREATE DATABASE "{name}"'))
    try:
        if not args.reuse:
            upgrade(url)
            filled = asyncio.run(fill(url, args.studies))
        load_before = os.getloadavg()
        with tempfile.TemporaryDirectory(prefix="archive-bench-portal-") as tmp, \
                serving(url, Path(tmp)) as settings:
            result = measure(f"http://127.0.0.1:{settings.http_port}", args.repeat)
        load_after = os.getloadavg()
    finally:
        if not args.keep and not args.reuse:
            asyncio.run(_admin(args.database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    out = {"studies": args.studies, **result, "target_p50_ms": TARGET_MS,
           "met": result["p50_ms"] <= TARGET_MS, "fill_seconds": filled,
           "load_average_before": [round(x, 2) for x in load_before],
           "load_average_after": [round(x, 2) for x in load_after],
           "database": name if args.keep or args.reuse else None,
           "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
