#!/usr/bin/env python3
"""QIDO-RS latency with the index at 10k, 1M and 3M instances (issue 15 §5; goal: ≤ 2× of 10k).

    nice python -m bench.qido_scale --database-url postgresql://postgres@127.0.0.1:5432/postgres \\
        --instances 10000 1000000 3000000 --repeat 40 --out bench/results/qido-scale-3m/results.json

For each size a fresh database is created on that server, migrated by the project's own code
(`archive.index.engine.upgrade`, i.e. Alembic), and filled with `INSERT … SELECT
generate_series` inside PostgreSQL (no Python round trip per row; 3M instances in minutes),
shaped like real studies: 3 series × 10 instances per study, ~2.5 studies per patient (hashed,
so one patient's studies are not adjacent in pk order), study dates skewed to recent years,
CT/MR/CR/US/MG/PT/DX by realistic shares (a third series is SR in a fifth of studies), study
descriptions by modality, 12 contributing sites, a clinical case per patient for 80 % of them
(`commons.case.*`; the case id is the PatientID, as the commons import links them), and 3 % of
patients — with all their studies — in the sequestered collection, so the visibility rule every
query carries is exercised (the bench queries as the anonymous reader, who must not see them).
`instance.metadata` is written by the migrations' own trigger from `header` + `pixels`, as at
ingest; `VACUUM ANALYZE` ends the fill. The generated headers are small (~15 elements, ~1.4 kB
stored per instance); `bench.header_size` measures real ones for sizing.

Then one real `archive serve` process per database is started, and each query is sent to the
sizes *in turn* (10k, 1M, 3M, 10k, …), so a load change on this shared machine hits every size
alike. p50/p95 per query and size, the 3M÷10k and 1M÷10k ratios, the result counts, the table
and index sizes (pg_total_relation_size / pg_indexes_size) and the 1-minute load average are
written as JSON. `--keep` keeps the databases (then `--reuse NAME …` measures them again
without filling); by default they are dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import requests

from archive.index.engine import sync_url, upgrade
from bench.query import FAMILY, GIVEN, _admin, _url, _with_db, free_port, percentile

ROOT = Path(__file__).resolve().parents[1]
SERIES_PER_STUDY = 3
INSTANCES_PER_SERIES = 10
STUDIES_PER_PATIENT = 2.5
SEQUESTERED_EVERY = 33  # patient p with p % 33 == 0: ~3 % of patients and their studies
SITES = 12
UID_ROOT = "1.2.826.0.1.3680043.10.9998"
CHUNK_SERIES = 50_000  # instance rows are inserted 500k at a time
# (modality, share ‰ cumulative, SOP Class UID, rows)
MODALITIES = [("CT", 350, "1.2.840.10008.5.1.4.1.1.2", 512),
              ("MR", 550, "1.2.840.10008.5.1.4.1.1.4", 256),
              ("CR", 750, "1.2.840.10008.5.1.4.1.1.1", 2048),
              ("US", 850, "1.2.840.10008.5.1.4.1.1.6.1", 600),
              ("MG", 900, "1.2.840.10008.5.1.4.1.1.1.2", 3328),
              ("PT", 950, "1.2.840.10008.5.1.4.1.1.128", 128),
              ("DX", 1000, "1.2.840.10008.5.1.4.1.1.1.1", 2048)]
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.22"
REGIONS = ["CHEST", "ABDOMEN PELVIS", "HEAD", "BRAIN", "KNEE", "LUMBAR SPINE", "WHOLE BODY",
           "BREAST", "CHEST ANGIO", "NECK"]
CONTRAST = ["W/O CONTRAST", "W CONTRAST", "W/WO CONTRAST", ""]


def shape(instances: int) -> dict[str, int]:
    studies = max(1, instances // (SERIES_PER_STUDY * INSTANCES_PER_SERIES))
    return {"studies": studies, "series": studies * SERIES_PER_STUDY,
            "patients": max(1, round(studies / STUDIES_PER_PATIENT))}


def patient_of(st: int, patients: int) -> int:
    """The SQL fill's study → patient mapping (hashed: a patient's studies are spread out)."""
    return 1 + (st * 7919) % patients


def _arr(values: list[str]) -> str:
    return "ARRAY[" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + "]::text[]"


def _modality_case(frac: str) -> str:
    whens = " ".join(f"WHEN {frac} < {share} THEN '{m}'" for m, share, _c, _r in MODALITIES)
    return f"(CASE {whens} END)"


def _class_case(mod: str) -> str:
    whens = " ".join(f"WHEN '{m}' THEN '{c}'" for m, _s, c, _r in MODALITIES)
    return f"(CASE {mod} {whens} ELSE '{SR_CLASS}' END)"


def _rows_case(mod: str) -> str:
    whens = " ".join(f"WHEN '{m}' THEN {r}" for m, _s, _c, r in MODALITIES)
    return f"(CASE {mod} {whens} ELSE NULL END)"


E = "jsonb_build_object('vr','{vr}','Value',jsonb_build_array({v}))"
PN = "jsonb_build_object('vr','PN','Value',jsonb_build_array(jsonb_build_object('Alphabetic',{v})))"


def fill_statements(instances: int) -> list[tuple[str, str]]:
    """(label, SQL) in order; the instance insert is split into chunks of CHUNK_SERIES series."""
    sh = shape(instances)
    studies, patients, n_series = sh["studies"], sh["patients"], sh["series"]
    # Per study: a pseudo-random fraction → modality; another → date (sqrt: recent years denser).
    primary = _modality_case("((x.st::bigint * 40503) % 1000)")
    out: list[tuple[str, str]] = [
        ("settings", "SET synchronous_commit = off"),
        ("patient", f"""
        INSERT INTO patient (pk, patient_id, issuer, scope, collection, patient_name,
                             patient_birth_date, patient_sex, attrs)
        SELECT p, pid, '', site, coll, name, birth, sex, jsonb_build_object(
                 '00100010', {PN.format(v='name')}, '00100020', {E.format(vr='LO', v='pid')},
                 '00100030', {E.format(vr='DA', v="to_char(birth, 'YYYYMMDD')")},
                 '00100040', {E.format(vr='CS', v='sex')})
        FROM (SELECT p, 'PID' || lpad(p::text, 8, '0') AS pid,
                     'SITE' || lpad((1 + p % {SITES})::text, 2, '0') AS site,
                     CASE WHEN p % {SEQUESTERED_EVERY} = 0 THEN 'sequestered' ELSE 'public' END
                       AS coll,
                     ({_arr(FAMILY)})[1 + p % {len(FAMILY)}] || '^'
                       || ({_arr(GIVEN)})[1 + (p / 7) % {len(GIVEN)}] AS name,
                     date '1930-01-01' + (p * 37 % 32000) AS birth,
                     CASE WHEN p % 2 = 0 THEN 'M' ELSE 'F' END AS sex
              FROM generate_series(1, {patients}) AS p) AS q"""),
        ("study", f"""
        INSERT INTO study (pk, patient_pk, study_uid, study_date, study_time, accession_number,
                           study_id, referring_physician_name, study_description, modalities,
                           sop_classes, num_series, num_instances, size_bytes, collection, site,
                           dataset, attrs)
        SELECT st, pa.pk, uid, d, t, acc, '1', 'Ref^Doc', de, mods,
               ARRAY(SELECT DISTINCT {_class_case('m')} FROM unnest(mods) AS m ORDER BY 1),
               {SERIES_PER_STUDY}, {SERIES_PER_STUDY * INSTANCES_PER_SERIES},
               {SERIES_PER_STUDY * INSTANCES_PER_SERIES} * 520000, pa.collection, pa.scope,
               'BATCH-' || to_char(d, 'YYYY'),
               pa.attrs || jsonb_build_object(
                 '0020000D', {E.format(vr='UI', v='uid')},
                 '00080020', {E.format(vr='DA', v="to_char(d, 'YYYYMMDD')")},
                 '00080030', {E.format(vr='TM', v="to_char(t, 'HH24MISS')")},
                 '00080050', {E.format(vr='SH', v='acc')},
                 '00081030', {E.format(vr='LO', v='de')},
                 '00080090', {PN.format(v="'Ref^Doc'")},
                 '00200010', {E.format(vr='SH', v="'1'")},
                 '00080080', {E.format(vr='LO', v="'Hospital ' || pa.scope")})
        FROM (SELECT x.st, 1 + (x.st::bigint * 7919) % {patients} AS pp,
                     '{UID_ROOT}.1.' || x.st AS uid,
                     date '2005-01-01' + floor(7300 * sqrt(((x.st::bigint * 2654435761) % 1000003)
                                                           / 1000003.0))::int AS d,
                     time '07:00' + ((x.st * 37) % 720) * interval '1 minute' AS t,
                     'ACC' || lpad(x.st::text, 9, '0') AS acc,
                     {primary} || ' ' || ({_arr(REGIONS)})[1 + x.st % {len(REGIONS)}]
                       || rtrim(' ' || ({_arr(CONTRAST)})[1 + (x.st / 3) % {len(CONTRAST)}])
                       AS de,
                     ARRAY(SELECT DISTINCT m FROM unnest(ARRAY[{primary},
                           CASE WHEN x.st % 5 = 0 THEN 'SR' ELSE {primary} END]) AS m
                           ORDER BY 1) AS mods
              FROM generate_series(1, {studies}) AS x(st)) AS q
        JOIN patient pa ON pa.pk = q.pp"""),
        ("series", f"""
        INSERT INTO series (pk, study_pk, series_uid, modality, series_number, series_description,
                            series_date, series_time, body_part, num_instances, attrs)
        SELECT se, st.pk, uid, m, k, de, st.study_date, st.study_time, bp, {INSTANCES_PER_SERIES},
               jsonb_build_object(
                 '0020000E', {E.format(vr='UI', v='uid')}, '00080060', {E.format(vr='CS', v='m')},
                 '00200011', {E.format(vr='IS', v='k')}, '0008103E', {E.format(vr='LO', v='de')},
                 '00180015', {E.format(vr='CS', v='bp')},
                 '00080021', {E.format(vr='DA', v="to_char(st.study_date, 'YYYYMMDD')")})
        FROM (SELECT x.st, k, (x.st - 1) * {SERIES_PER_STUDY} + k AS se,
                     '{UID_ROOT}.2.' || ((x.st - 1) * {SERIES_PER_STUDY} + k) AS uid,
                     CASE WHEN k = {SERIES_PER_STUDY} AND x.st % 5 = 0 THEN 'SR'
                          ELSE {primary} END AS m,
                     split_part(({_arr(REGIONS)})[1 + x.st % {len(REGIONS)}], ' ', 1) AS bp
              FROM generate_series(1, {studies}) AS x(st),
                   generate_series(1, {SERIES_PER_STUDY}) AS k) AS q
        JOIN study st ON st.pk = q.st,
        LATERAL (SELECT q.m || ' ' || CASE q.k WHEN 1 THEN 'AXIAL' WHEN 2 THEN 'CORONAL'
                                                ELSE 'SAGITTAL' END AS de) AS d"""),
    ]
    for lo in range(1, n_series + 1, CHUNK_SERIES):
        hi = min(n_series, lo + CHUNK_SERIES - 1)
        rows = _rows_case("se.modality")
        out.append((f"instance {lo}-{hi}", f"""
        INSERT INTO instance (pk, series_pk, sop_uid, sop_class_uid, instance_number,
                              transfer_syntax, rows, columns, number_of_frames, blob_key,
                              size_bytes, sha256, pixels, header)
        SELECT i, se.pk, uid, cls, n, '1.2.840.10008.1.2.1', r, r, CASE WHEN r IS NULL THEN NULL
               ELSE 1 END, 'bench/' || substr(md5(uid), 1, 2) || '/' || md5(uid || 'k'),
               COALESCE(r * r * 2, 4000) + 1800, md5(uid) || md5(uid || 's'),
               CASE WHEN r IS NULL THEN NULL ELSE jsonb_build_object(
                 'tag', '7FE00010', 'vr', 'OW', 'offset', 1800, 'length', r * r * 2,
                 'fragments', NULL, 'bot', NULL) END,
               jsonb_build_object(
                 '00080016', {E.format(vr='UI', v='cls')}, '00080018', {E.format(vr='UI', v='uid')},
                 '00200013', {E.format(vr='IS', v='n')},
                 '00080008', jsonb_build_object('vr','CS','Value',
                                                jsonb_build_array('ORIGINAL','PRIMARY','AXIAL')),
                 '00200032', jsonb_build_object('vr','DS','Value',jsonb_build_array(-250, -250, n * 2.5)),
                 '00200037', jsonb_build_object('vr','DS','Value',jsonb_build_array(1,0,0,0,1,0)),
                 '00180050', {E.format(vr='DS', v='2.5')},
                 '00280002', {E.format(vr='US', v='1')},
                 '00280004', {E.format(vr='CS', v="'MONOCHROME2'")})
                 || CASE WHEN r IS NULL THEN '{{}}'::jsonb ELSE jsonb_build_object(
                 '00280010', {E.format(vr='US', v='r')}, '00280011', {E.format(vr='US', v='r')},
                 '00280030', jsonb_build_object('vr','DS','Value',jsonb_build_array(0.7, 0.7)),
                 '00280100', {E.format(vr='US', v='16')}, '00280101', {E.format(vr='US', v='12')},
                 '00280102', {E.format(vr='US', v='11')}, '00280103', {E.format(vr='US', v='0')})
                 END
        FROM series se, generate_series(1, {INSTANCES_PER_SERIES}) AS n,
             LATERAL (SELECT (se.pk - 1) * {INSTANCES_PER_SERIES} + n AS i,
                             '{UID_ROOT}.3.' || ((se.pk - 1) * {INSTANCES_PER_SERIES} + n) AS uid,
                             {_class_case('se.modality')} AS cls, {rows} AS r) AS v
        WHERE se.pk BETWEEN {lo} AND {hi}"""))
    out += [
        ("clinical_case", f"""
        INSERT INTO clinical_case (case_id, site, sex, race, ethnicity, age_at_index,
                                   age_at_index_gt89, zip, covid19_positive, index_event)
        SELECT p.patient_id, p.scope, CASE p.patient_sex WHEN 'M' THEN 'Male'
               ELSE 'Female' END,
               ({_arr(['White', 'Black or African American', 'Asian', 'Other', 'Not Reported'])})
                 [1 + p.pk % 5],
               CASE WHEN p.pk % 7 = 0 THEN 'Hispanic or Latino' ELSE 'Not Hispanic or Latino' END,
               least(89, 18 + p.pk % 75), 18 + p.pk % 75 > 89,
               lpad((100 + p.pk % 900)::text, 3, '0'),
               CASE WHEN p.pk % 4 = 0 THEN 'Yes' ELSE 'No' END, 'COVID-19 test'
        FROM patient p WHERE p.pk % 5 <> 0"""),
        ("case_study", """
        INSERT INTO case_study (study_uid, case_id, days_to_study)
        SELECT st.study_uid, 'PID' || lpad(st.patient_pk::text, 8, '0'), (st.pk % 200) - 100
        FROM study st WHERE st.patient_pk % 5 <> 0"""),
        ("sequences", "SELECT setval('patient_pk_seq', (SELECT max(pk) FROM patient)),"
                      " setval('study_pk_seq', (SELECT max(pk) FROM study)),"
                      " setval('series_pk_seq', (SELECT max(pk) FROM series)),"
                      " setval('instance_pk_seq', (SELECT max(pk) FROM instance))"),
        ("vacuum analyze", "VACUUM ANALYZE"),  # as autovacuum leaves a settled archive
    ]
    return out


async def fill(url: str, instances: int, nice: int = 10) -> dict[str, float]:
    """Run the fill statements on one connection whose PostgreSQL backend is reniced (the
    client's own `nice` does not reach the server process doing the work)."""
    conn = await asyncpg.connect(sync_url(url))
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    await asyncio.to_thread(subprocess.run, ["renice", "-n", str(nice), "-p", str(pid)],
                            capture_output=True, check=False)
    steps: dict[str, float] = {}
    try:
        for label, sql in fill_statements(instances):
            t0 = time.perf_counter()
            await conn.execute(sql)
            steps[label] = round(time.perf_counter() - t0, 1)
            print(f"  {instances}: {label} {steps[label]} s", file=sys.stderr, flush=True)
    finally:
        await conn.close()
    return steps


SIZES_SQL = """
SELECT c.relname, pg_total_relation_size(c.oid) AS total, pg_relation_size(c.oid) AS heap,
       pg_indexes_size(c.oid) AS indexes, c.reltuples::bigint AS rows
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r' AND pg_total_relation_size(c.oid) > 65536
ORDER BY 2 DESC
"""
INDEX_SQL = """
SELECT indexrelid::regclass::text AS name, pg_relation_size(indexrelid) AS bytes
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
WHERE c.relname IN ('patient', 'study', 'series', 'instance') ORDER BY 2 DESC
"""


async def sizes(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(sync_url(url))
    try:
        tables = {r["relname"]: {k: r[k] for k in ("total", "heap", "indexes", "rows")}
                  for r in await conn.fetch(SIZES_SQL)}
        indexes = {r["name"]: r["bytes"] for r in await conn.fetch(INDEX_SQL)}
        db = await conn.fetchval("SELECT pg_database_size(current_database())")
        visible = await conn.fetchval(
            "SELECT count(*) FROM study WHERE collection <> 'sequestered'")
    finally:
        await conn.close()
    return {"database_bytes": db, "tables": tables, "indexes": indexes, "visible_studies": visible}


def downgrade(url: str, revision: str) -> None:
    """Alembic downgrade with the project's migrations (to measure the schema before a change)."""
    from alembic import command
    from alembic.config import Config

    from archive.index.engine import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["database_url"] = url
    command.downgrade(cfg, revision)


async def _database_stamp(url: str) -> str:
    conn = await asyncpg.connect(sync_url(url))
    try:
        stamp = await conn.fetchval("SELECT stamp FROM storage_identity")
        if stamp is None:
            stamp = uuid.uuid4().hex
            await conn.execute("INSERT INTO storage_identity (id, stamp, stamped_at) "
                               "VALUES (1, $1, now())", stamp)
        return str(stamp)
    finally:
        await conn.close()


def pair(url: str, data_dir: Path) -> None:
    """Stamp the generated index and an empty blob store as one archive (archive.sweep pairs
    them by this stamp and refuses an index whose files are elsewhere). The generated rows
    point at no files: this bench measures queries, which never open a blob."""
    from dataclasses import replace

    from archive.config import Settings
    from archive.runtime import open_blobs

    stamp = asyncio.run(_database_stamp(url))
    blobs = open_blobs(replace(Settings(), data_dir=data_dir, database_url=url))
    try:
        blobs.write_stamp(stamp)
    finally:
        blobs.close()


def serve(url: str, work: Path, env: dict[str, str] | None = None, src: Path = ROOT
          ) -> tuple[subprocess.Popen[bytes], str]:
    """A real `archive serve` on the database (its own process, as in production); `env`
    adds settings (e.g. ARCHIVE_CURATOR_TOKEN for a writer); `src` is the source tree it runs
    (another checkout measures the code before a change). It migrates the database to its
    own head on start, as every node does."""
    http, dimse = free_port(), free_port()
    work.mkdir(parents=True, exist_ok=True)
    pair(url, work / "data")
    log = open(work / "serve.log", "ab")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "archive", "serve", "--data-dir", str(work / "data"),
         "--database-url", url, "--http-port", str(http), "--dimse-port", str(dimse),
         "--log-level", "WARNING"],
        env=os.environ | (env or {}) | {"PYTHONPATH": str(src)}, stdout=subprocess.DEVNULL,
        stderr=log, cwd=src)
    base = f"http://127.0.0.1:{http}/dicom-web"
    for _ in range(600):
        try:
            if requests.get(base + "/studies?limit=1", timeout=5).status_code == 200:
                return proc, base
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            raise RuntimeError((work / "serve.log").read_text()[-3000:])
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("archive did not start")


def visible_study(i: int, studies: int, patients: int) -> int:
    """A study the anonymous reader may see (its patient is not sequestered)."""
    st = 1 + (i * 104729) % studies
    while patient_of(st, patients) % SEQUESTERED_EVERY == 0:
        st = 1 + st % studies
    return st


def queries(instances: int, visible: int) -> dict[str, Any]:
    """name → (i → (path, params)); values vary with i so no cache answers everything."""
    sh = shape(instances)
    studies, patients = sh["studies"], sh["patients"]

    def st(i: int) -> int:
        return visible_study(i, studies, patients)

    def se(i: int) -> int:
        return (st(i) - 1) * SERIES_PER_STUDY + 1 + i % SERIES_PER_STUDY

    def year(i: int) -> int:
        return 2017 + i % 8

    return {
        "study_by_patient_id": lambda i: ("/studies", {
            "PatientID": f"PID{patient_of(st(i), patients):08d}"}),
        "study_by_date_range": lambda i: ("/studies", {
            "StudyDate": f"{year(i)}0101-{year(i)}1231", "limit": "50"}),
        "study_by_modality_date": lambda i: ("/studies", {
            "ModalitiesInStudy": ["CT", "MR", "CR"][i % 3],
            "StudyDate": f"{year(i) - 1}0101-{year(i)}1231", "limit": "50"}),
        "study_by_fuzzy_name": lambda i: ("/studies", {
            "PatientName": GIVEN[i % len(GIVEN)], "fuzzymatching": "true", "limit": "50"}),
        "study_by_description": lambda i: ("/studies", {
            "StudyDescription": "*" + REGIONS[i % len(REGIONS)] + "*", "limit": "50"}),
        "study_includefield_all": lambda i: ("/studies", {
            "StudyDate": f"{year(i)}0101-{year(i)}1231", "includefield": "all",
            "limit": "50"}),
        "study_list_page": lambda i: ("/studies", {
            "limit": "50", "offset": str(50 * (i % 5)), "includefield": "00081030,00080060"}),
        "study_last_page": lambda i: ("/studies", {
            "limit": "50", "offset": str(max(0, visible - 50 - i))}),
        "commons_site": lambda i: ("/studies", {
            "commons.site": f"SITE{1 + i % SITES:02d}", "limit": "50"}),
        "commons_case_age_sex": lambda i: ("/studies", {
            "commons.case.sex": ["Female", "Male"][i % 2],
            "commons.case.age_at_index": f"{20 + i % 50}..{30 + i % 50}", "limit": "50"}),
        "series_of_study": lambda i: (f"/studies/{UID_ROOT}.1.{st(i)}/series", {}),
        "instances_of_series": lambda i: (
            f"/studies/{UID_ROOT}.1.{st(i)}/series/{UID_ROOT}.2.{se(i)}/instances", {}),
        "instances_of_study_includefield_all": lambda i: (
            f"/studies/{UID_ROOT}.1.{st(i)}/instances", {"includefield": "all"}),
    }


def statement(path: str, params: dict[str, str]) -> str:
    """The SQL `archive serve` runs for this QIDO-RS request (as the anonymous reader, limit + 1
    as `search_page` asks), compiled by the project's own parse and SQL code."""
    from dataclasses import replace

    from sqlalchemy.dialects import postgresql

    from archive.caller import Caller
    from archive.core import Extensions
    from archive.index.commons_fields import PREFIX
    from archive.index.commons_filters import compile_filter
    from archive.query import results, sql
    from archive.query.parse import parse_query
    from archive.query.spec import Level

    parts = path.strip("/").split("/")
    level = {"studies": Level.STUDY, "series": Level.SERIES, "instances": Level.IMAGE}[parts[-1]]
    scope = dict(zip(["StudyInstanceUID", "SeriesInstanceUID"], parts[1:-1:2], strict=False))
    scoped_to = {2: None, 3: Level.STUDY, 5: Level.SERIES}.get(len(parts))
    spec = parse_query(list(params.items()), level, Extensions(filters={PREFIX: compile_filter}),
                       max_limit=1000, root="http://x/dicom-web", scope=scope,
                       scoped_to=scoped_to)
    if spec.limit is not None:
        spec = replace(spec, limit=spec.limit + 1)
    caller = Caller()
    stmt = sql.page(spec, caller, results.columns(spec, caller))
    return str(stmt.compile(dialect=postgresql.dialect(),
                            compile_kwargs={"literal_binds": True}))


async def explain(url: str, sql_text: str) -> str:
    conn = await asyncpg.connect(sync_url(url))
    try:
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql_text)
    finally:
        await conn.close()
    return "\n".join(r[0] for r in rows)


def measure(servers: dict[int, str], visible: dict[int, int], repeat: int) -> dict[str, Any]:
    """Every query, every size in turn (round-robin), `repeat` samples each after a warm-up."""
    session = requests.Session()
    qs = {n: queries(n, visible[n]) for n in servers}
    names = list(next(iter(qs.values())))
    samples: dict[str, dict[int, list[float]]] = {q: {n: [] for n in servers} for q in names}
    counts: dict[str, dict[int, list[int]]] = {q: {n: [] for n in servers} for q in names}
    for q in names:
        for i in range(-2, repeat):  # two warm-up rounds
            for n, base in servers.items():
                path, params = qs[n][q](abs(i))
                t0 = time.perf_counter()
                r = session.get(_url(base, path, params), timeout=300,
                                headers={"Accept": "application/dicom+json"})
                elapsed = (time.perf_counter() - t0) * 1000
                if r.status_code not in (200, 204):
                    raise RuntimeError(f"{q} at {n}: HTTP {r.status_code} {r.text[:300]}")
                if i >= 0:
                    samples[q][n].append(elapsed)
                    counts[q][n].append(len(r.json()) if r.status_code == 200 else 0)
    out: dict[str, Any] = {}
    smallest = min(servers)
    for q in names:
        row: dict[str, Any] = {}
        for n in servers:
            v = samples[q][n]
            row[str(n)] = {"p50_ms": round(statistics.median(v), 2),
                           "p95_ms": round(percentile(v, 0.95), 2),
                           "mean_results": round(statistics.mean(counts[q][n]), 1), "n": len(v)}
        for n in servers:
            if n != smallest:
                row[f"p50_ratio_{n}_over_{smallest}"] = round(
                    row[str(n)]["p50_ms"] / row[str(smallest)]["p50_ms"], 2)
        out[q] = row
    return out


def table(result: dict[str, Any]) -> str:
    """The figures as a Markdown table (p50 / p95 ms; ratios of p50 to the smallest size)."""
    sizes_ = [int(n) for n in result["sizes"]]
    small = min(sizes_)
    head = ["query"] + [f"{n:,} p50 / p95 ms (results)" for n in sizes_] + [
        f"{n:,} ÷ {small:,}" for n in sizes_ if n != small]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for q, row in result["qido"].items():
        cells = [q] + [f"{row[str(n)]['p50_ms']} / {row[str(n)]['p95_ms']} "
                       f"({row[str(n)]['mean_results']:g})" for n in sizes_]
        cells += [str(row[f"p50_ratio_{n}_over_{small}"]) for n in sizes_ if n != small]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database-url", required=True,
                    help="PostgreSQL server to create the scratch databases on")
    ap.add_argument("--instances", type=int, nargs="+", default=[10_000, 1_000_000, 3_000_000])
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    ap.add_argument("--reuse", nargs="+", metavar="DB",
                    help="kept databases, one per --instances size (no fill)")
    ap.add_argument("--fill-only", action="store_true", help="fill (and keep), do not measure")
    ap.add_argument("--archive-src", type=Path, default=ROOT,
                    help="source tree of the archive to serve (default: this one)")
    ap.add_argument("--downgrade-to", metavar="REVISION",
                    help="first downgrade the (reused) databases to this Alembic revision")
    ap.add_argument("--nice", type=int, default=10,
                    help="niceness of the PostgreSQL backend that fills (0 on a crowded machine)")
    ap.add_argument("--explain", nargs="+", metavar="QUERY",
                    help="print EXPLAIN ANALYZE of these bench queries at each size (no serve)")
    ap.add_argument("--out", type=Path, help="write the JSON here (and a .md table beside it)")
    args = ap.parse_args(argv)
    server = sync_url(args.database_url)
    names = args.reuse or [f"qido_scale_{n}_{uuid.uuid4().hex[:6]}" for n in args.instances]
    if len(names) != len(args.instances):
        ap.error("--reuse needs one database per --instances size")
    work = Path(tempfile.mkdtemp(prefix="archive-bench-qido-scale-"))
    result: dict[str, Any] = {"machine_cpus": os.cpu_count(), "command": " ".join(sys.argv),
                              "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "shape": {"series_per_study": SERIES_PER_STUDY,
                                        "instances_per_series": INSTANCES_PER_SERIES,
                                        "studies_per_patient": STUDIES_PER_PATIENT,
                                        "sequestered_patients": f"1/{SEQUESTERED_EVERY}"},
                              "sizes": {}}
    procs: list[subprocess.Popen[bytes]] = []
    keep = args.keep or args.fill_only or bool(args.reuse)
    try:
        for n, name in zip(args.instances, names, strict=True):
            url = _with_db(server, name)
            if args.downgrade_to:
                downgrade(url, args.downgrade_to)
            entry: dict[str, Any] = {"database": name, **shape(n)}
            if not args.reuse:
                asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
                t0 = time.perf_counter()
                upgrade(url)  # the project's migrations (Alembic), as `archive serve` runs them
                entry["migrate_s"] = round(time.perf_counter() - t0, 1)
                t0 = time.perf_counter()
                entry["fill_steps_s"] = asyncio.run(fill(url, n, args.nice))
                entry["fill_s"] = round(time.perf_counter() - t0, 1)
                entry["load_average_after_fill"] = round(os.getloadavg()[0], 2)
            entry["sizes"] = asyncio.run(sizes(url))
            result["sizes"][str(n)] = entry
            print(f"{n}: {json.dumps({k: v for k, v in entry.items() if k != 'sizes'})}",
                  file=sys.stderr, flush=True)
        if args.explain:
            for q in args.explain:
                for n, name in zip(args.instances, names, strict=True):
                    visible = result["sizes"][str(n)]["sizes"]["visible_studies"]
                    path, params = queries(n, visible)[q](1)
                    text = statement(path, params)
                    plan = asyncio.run(explain(_with_db(server, name), text))
                    print(f"== {q} at {n}: {path} {params}\n{text}\n{plan}\n", flush=True)
            return 0
        if not args.fill_only:
            servers: dict[int, str] = {}
            for n, name in zip(args.instances, names, strict=True):
                proc, base = serve(_with_db(server, name), work / name, src=args.archive_src)
                procs.append(proc)
                servers[n] = base
            visible = {n: result["sizes"][str(n)]["sizes"]["visible_studies"] for n in servers}
            load = [round(os.getloadavg()[0], 2)]
            t0 = time.perf_counter()
            result["qido"] = measure(servers, visible, args.repeat)
            result["measure_s"] = round(time.perf_counter() - t0, 1)
            load.append(round(os.getloadavg()[0], 2))
            result["load_average_1min_before_after"] = load
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not keep:
            for name in names:
                asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        if "qido" in result:
            args.out.with_suffix(".md").write_text(table(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
