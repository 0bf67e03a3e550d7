#!/usr/bin/env python3
"""Query latency at scale: fill an index with generated rows, then time QIDO-RS and C-FIND.

    python -m bench.query --instances 10000 1000000 --database-url postgresql://postgres@127.0.0.1/postgres
    python -m bench.query --instances 10000          # embedded PostgreSQL in a temp directory

For each size: a scratch database is created (and dropped afterwards unless --keep), migrated,
and filled directly with INSERT ... SELECT generate_series (not through ingest: this measures
queries, and 1,000,000 instances fill in a few minutes on 2 cores). Layout per study: 4 series
x 25 instances (so 1M instances = 10,000 studies, 40,000 series, 5,000 patients), realistic
names (some with accents), dates over ten years, CT/MR/CR/US/SR series, a small JSON header per
instance. Then the real server (`archive.server.running`) is started on that database and each
query is sent --repeat times over HTTP (and C-FIND with pynetdicom), with varying values;
p50/p95 in milliseconds are printed as JSON (and written to --out).

Side by side with Orthanc (same data, stored through STOW-RS into both, same queries, alternating):

    BENCH_ORTHANC_DIR=/tmp/qb-orthanc HTTP_PORT=18142 DICOM_PORT=18143 \
        bench/orthanc.sh start --tcp-nodelay
    python -m bench.query --compare-orthanc http://127.0.0.1:18142/dicom-web \
        --orthanc-dimse 127.0.0.1:18143:ORTHANC --instances 10000 --database-url ...

Generated instances are tiny (8x8 pixels) so the run measures the index, not the disk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import requests

from archive.config import Settings
from archive.index.engine import embedded_postgres, sync_url, upgrade

SERIES_PER_STUDY = 4
INSTANCES_PER_SERIES = 25
STUDIES_PER_PATIENT = 2
UID_ROOT = "1.2.826.0.1.3680043.10.9999"
FAMILY = ["Smith", "Müller", "García", "Nguyen", "Kowalski", "Rossi", "Dubois", "Jansen",
          "Smithson", "Andersson", "Łukasiewicz", "O'Brien", "Tanaka", "Silva", "Novak",
          "Schmidt", "Brown", "Martín", "Johansson", "Ivanova", "Lefèvre", "Costa", "Kim",
          "Ferreira", "Horváth", "Wagner", "Moreau", "Bianchi", "Yilmaz", "Petrov"]
GIVEN = ["Anna", "José", "John", "Maria", "Lena", "Piotr", "Chloé", "Ali", "Sven", "Mei",
         "Søren", "Éric", "Ines", "Omar", "Zoë", "Ivan", "Sara", "Tomás", "Nora", "Hugo"]
DESCRIPTIONS = ["CT CHEST W/O CONTRAST", "MR BRAIN", "CT ABDOMEN PELVIS", "XR CHEST PA LAT",
                "US ABDOMEN", "CT HEAD", "MR KNEE", "CT ANGIO CHEST"]
MODALITIES = ["CT", "MR", "CR", "US", "SR"]


def _sql_array(values: list[str]) -> str:
    return "ARRAY[" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def fill_statements(instances: int) -> list[str]:
    per_study = SERIES_PER_STUDY * INSTANCES_PER_SERIES
    studies = max(1, instances // per_study)
    patients = max(1, studies // STUDIES_PER_PATIENT)
    fam, giv, desc, mods = (_sql_array(FAMILY), _sql_array(GIVEN), _sql_array(DESCRIPTIONS),
                            _sql_array(MODALITIES))
    pn = "jsonb_build_object('vr','PN','Value',jsonb_build_array(jsonb_build_object('Alphabetic',{})))"
    s = "jsonb_build_object('vr','{}','Value',jsonb_build_array({}))"
    return [
        "SET synchronous_commit = off",
        f"""INSERT INTO patient (pk, patient_id, issuer, patient_name, patient_birth_date,
                                 patient_sex, attrs)
            SELECT p, pid, '', name, birth, sex, jsonb_build_object(
                '00100010', {pn.format('name')}, '00100020', {s.format('LO', 'pid')},
                '00100030', {s.format('DA', "to_char(birth, 'YYYYMMDD')")},
                '00100040', {s.format('CS', 'sex')})
            FROM (SELECT p, 'PID' || lpad(p::text, 7, '0') AS pid,
                         ({fam})[1 + p % {len(FAMILY)}] || '^' || ({giv})[1 + (p / 7) % {len(GIVEN)}]
                         AS name,
                         date '1930-01-01' + (p * 37 % 30000) AS birth,
                         CASE WHEN p % 2 = 0 THEN 'M' ELSE 'F' END AS sex
                  FROM generate_series(1, {patients}) AS p) AS x""",
        f"""INSERT INTO study (pk, patient_pk, study_uid, study_date, study_time, accession_number,
                               study_id, referring_physician_name, study_description, modalities,
                               sop_classes, num_series, num_instances, size_bytes, collection,
                               attrs)
            SELECT st, pa.pk, uid, d, t, acc, '1', 'Ref^Doc', de,
                   ARRAY(SELECT DISTINCT ({mods})[1 + (st + k) % {len(MODALITIES)}]
                         FROM generate_series(1, {SERIES_PER_STUDY}) AS k ORDER BY 1),
                   ARRAY['1.2.840.10008.5.1.4.1.1.2'], {SERIES_PER_STUDY}, {per_study},
                   {per_study} * 526000, CASE WHEN st % 100 = 0 THEN 'sequestered' ELSE 'public' END,
                   pa.attrs || jsonb_build_object(
                     '0020000D', {s.format('UI', 'uid')},
                     '00080020', {s.format('DA', "to_char(d, 'YYYYMMDD')")},
                     '00080030', {s.format('TM', "to_char(t, 'HH24MISS')")},
                     '00080050', {s.format('SH', 'acc')}, '00081030', {s.format('LO', 'de')},
                     '00080080', {s.format('LO', "CASE WHEN st % 3 = 0 THEN 'General Hospital' "
                                                 "ELSE 'City Clinic' END")})
            FROM (SELECT st, 1 + (st - 1) % {patients} AS pp, '{UID_ROOT}.1.' || st AS uid,
                         date '2015-01-01' + (st * 13 % 3650) AS d,
                         time '07:00' + (st % 600) * interval '1 minute' AS t,
                         'ACC' || lpad(st::text, 8, '0') AS acc,
                         ({desc})[1 + st % {len(DESCRIPTIONS)}] AS de
                  FROM generate_series(1, {studies}) AS st) AS x
            JOIN patient pa ON pa.pk = x.pp""",
        f"""INSERT INTO series (pk, study_pk, series_uid, modality, series_number,
                                series_description, series_date, num_instances, attrs)
            SELECT se, st, uid, m, k, m || ' series ' || k, date '2015-01-01' + (st * 13 % 3650),
                   {INSTANCES_PER_SERIES}, jsonb_build_object(
                     '0020000E', {s.format('UI', 'uid')}, '00080060', {s.format('CS', 'm')},
                     '00200011', {s.format('IS', 'k')},
                     '0008103E', {s.format('LO', "m || ' series ' || k")})
            FROM (SELECT st, k, (st - 1) * {SERIES_PER_STUDY} + k AS se,
                         '{UID_ROOT}.2.' || ((st - 1) * {SERIES_PER_STUDY} + k) AS uid,
                         ({mods})[1 + (st + k) % {len(MODALITIES)}] AS m
                  FROM generate_series(1, {studies}) AS st,
                       generate_series(1, {SERIES_PER_STUDY}) AS k) AS x""",
        f"""INSERT INTO instance (pk, series_pk, sop_uid, sop_class_uid, instance_number,
                                  transfer_syntax, rows, columns, number_of_frames, blob_key,
                                  size_bytes, sha256, header)
            SELECT i, se, uid, '1.2.840.10008.5.1.4.1.1.2', n, '1.2.840.10008.1.2.1', 512, 512, 1,
                   'bench/' || i, 526000, md5(uid), jsonb_build_object(
                     '00080016', {s.format('UI', "'1.2.840.10008.5.1.4.1.1.2'")},
                     '00080018', {s.format('UI', 'uid')}, '00200013', {s.format('IS', 'n')},
                     '00280010', {s.format('US', '512')}, '00280011', {s.format('US', '512')},
                     '00280100', {s.format('US', '16')}, '00280101', {s.format('US', '12')},
                     '00200032', jsonb_build_object('vr','DS','Value',jsonb_build_array(0, 0, n)),
                     '00180050', {s.format('DS', '1.0')},
                     '00280030', jsonb_build_object('vr','DS','Value',jsonb_build_array(0.5, 0.5)),
                     '00080008', jsonb_build_object('vr','CS','Value',
                                                    jsonb_build_array('ORIGINAL','PRIMARY','AXIAL')))
            FROM (SELECT se, n, (se - 1) * {INSTANCES_PER_SERIES} + n AS i,
                         '{UID_ROOT}.3.' || ((se - 1) * {INSTANCES_PER_SERIES} + n) AS uid
                  FROM generate_series(1, {studies * SERIES_PER_STUDY}) AS se,
                       generate_series(1, {INSTANCES_PER_SERIES}) AS n) AS x""",
        "SELECT setval('patient_pk_seq', (SELECT max(pk) FROM patient))",
        "SELECT setval('study_pk_seq', (SELECT max(pk) FROM study))",
        "SELECT setval('series_pk_seq', (SELECT max(pk) FROM series))",
        "SELECT setval('instance_pk_seq', (SELECT max(pk) FROM instance))",
        "VACUUM ANALYZE",  # as autovacuum would leave a settled archive (index-only scans)
    ]


def _with_db(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    head, _, _old = base.rpartition("/")
    return f"{head}/{name}" + (f"?{query}" if query else "")


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(sync_url(_with_db(url, "postgres")))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _fill(url: str, instances: int) -> dict[str, float]:
    conn = await asyncpg.connect(sync_url(url))
    timings: dict[str, float] = {}
    try:
        for statement in fill_statements(instances):
            t0 = time.perf_counter()
            await conn.execute(statement)
            words = statement.split()
            label = " ".join(words[:3])
            timings[label] = round(time.perf_counter() - t0, 2)
    finally:
        await conn.close()
    return timings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(url: str, data_dir: Path) -> Iterator[Settings]:
    """The real archive on `url`, in a background thread."""
    from archive.server import running

    settings = replace(Settings(), http_port=free_port(), dimse_port=free_port(),
                       data_dir=data_dir, database_url=url, log_level="WARNING")
    ready, stop_box, errors = threading.Event(), {}, []

    async def main() -> None:
        stop = asyncio.Event()
        stop_box["stop"], stop_box["loop"] = stop, asyncio.get_running_loop()
        try:
            async with running(settings):
                ready.set()
                await stop.wait()
        except BaseException as exc:
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    ready.wait(120)
    if errors:
        raise RuntimeError(f"archive did not start: {errors[0]!r}")
    try:
        yield settings
    finally:
        stop_box["loop"].call_soon_threadsafe(stop_box["stop"].set)
        thread.join(60)


def queries(instances: int) -> dict[str, Callable[[int], tuple[str, dict[str, str]]]]:
    """name → (i → (path, params)); values vary with i so caches do not answer everything."""
    studies = max(1, instances // (SERIES_PER_STUDY * INSTANCES_PER_SERIES))
    patients = max(1, studies // STUDIES_PER_PATIENT)

    def st(i: int) -> int:
        return 1 + (i * 7919) % studies

    def se(i: int) -> int:
        return (st(i) - 1) * SERIES_PER_STUDY + 1 + i % SERIES_PER_STUDY

    return {
        "study_by_patient_id": lambda i: ("/studies", {"PatientID": f"PID{1 + (i * 31) % patients:07d}"}),
        "study_by_date_range": lambda i: ("/studies", {
            "StudyDate": f"{2016 + i % 8}0{1 + i % 9}01-{2016 + i % 8}0{1 + i % 9}28", "limit": "100"}),
        "study_by_modality": lambda i: ("/studies", {
            "ModalitiesInStudy": MODALITIES[i % 4], "limit": "100"}),
        "study_by_name_prefix": lambda i: ("/studies", {
            "PatientName": FAMILY[i % len(FAMILY)][:3] + "*", "limit": "100"}),
        "study_by_name_infix": lambda i: ("/studies", {
            "PatientName": "*" + FAMILY[i % len(FAMILY)][1:4] + "*", "limit": "100"}),
        "study_by_fuzzy_name": lambda i: ("/studies", {
            "PatientName": GIVEN[i % len(GIVEN)], "fuzzymatching": "true", "limit": "100"}),
        "study_by_json_attribute": lambda i: ("/studies", {
            "InstitutionName": "General*", "limit": "100", "offset": str(i % 10 * 10)}),
        "ohif_study_list_page": lambda i: ("/studies", {
            "limit": "101", "offset": "0", "fuzzymatching": "false",
            "includefield": "00081030,00080060"}),
        "study_deep_page": lambda i: ("/studies", {
            "limit": "100", "offset": str(max(0, studies - 200 - i))}),
        "series_of_study": lambda i: (f"/studies/{UID_ROOT}.1.{st(i)}/series", {}),
        "instances_of_series": lambda i: (
            f"/studies/{UID_ROOT}.1.{st(i)}/series/{UID_ROOT}.2.{se(i)}/instances", {}),
        "instance_by_sop_uid": lambda i: ("/instances", {
            "SOPInstanceUID": f"{UID_ROOT}.3.{(se(i) - 1) * INSTANCES_PER_SERIES + 1}"}),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def _url(base: str, path: str, params: dict[str, str]) -> str:
    """`*`, `^` and `,` unencoded: Orthanc's DICOMweb plugin does not decode `%2A` in values."""
    from urllib.parse import urlencode

    return base + path + ("?" + urlencode(params, safe="*^,") if params else "")


def time_http(base: str, instances: int, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    session = requests.Session()
    for name, make in queries(instances).items():
        path, params = make(0)
        session.get(_url(base, path, params), timeout=120).raise_for_status()  # warm-up
        samples, counts = [], []
        for i in range(1, repeat + 1):
            path, params = make(i)
            t0 = time.perf_counter()
            r = session.get(_url(base, path, params), timeout=120)
            body = r.json()
            samples.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
            counts.append(len(body))
        out[name] = {"p50_ms": round(statistics.median(samples), 2),
                     "p95_ms": round(percentile(samples, 0.95), 2),
                     "mean_results": round(statistics.mean(counts), 1), "n": repeat}
    return out


def time_cfind(settings: Settings, instances: int, repeat: int) -> dict[str, Any]:
    from pydicom.dataset import Dataset
    from pynetdicom import AE
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    studies = max(1, instances // (SERIES_PER_STUDY * INSTANCES_PER_SERIES))
    patients = max(1, studies // STUDIES_PER_PATIENT)
    ae = AE(ae_title="BENCH")
    ae.add_requested_context(FIND)
    assoc = ae.associate("127.0.0.1", settings.dimse_port, ae_title=settings.ae_title)
    samples: dict[str, list[float]] = {"cfind_study_by_patient_id": [],
                                       "cfind_study_by_name_prefix": []}
    counts: dict[str, list[int]] = {k: [] for k in samples}
    try:
        for i in range(repeat):
            for name in samples:
                ds = Dataset()
                ds.SpecificCharacterSet = "ISO_IR 192"
                ds.QueryRetrieveLevel = "STUDY"
                ds.StudyInstanceUID = ""
                ds.PatientName = FAMILY[i % len(FAMILY)][:3] + "*" if "name" in name else ""
                ds.PatientID = f"PID{1 + (i * 31) % patients:07d}" if "patient_id" in name else ""
                t0 = time.perf_counter()
                n = sum(1 for status, _ident in assoc.send_c_find(ds, FIND)
                        if status.Status == 0xFF00)
                samples[name].append((time.perf_counter() - t0) * 1000)
                counts[name].append(n)
    finally:
        assoc.release()
    return {k: {"p50_ms": round(statistics.median(v), 2), "p95_ms": round(percentile(v, 0.95), 2),
                "mean_results": round(statistics.mean(counts[k]), 1), "n": len(v)}
            for k, v in samples.items()}


def bench_size(server_url: str, instances: int, repeat: int, keep: bool, tmp: Path,
               reuse: str | None = None) -> dict[str, Any]:
    name = reuse or f"archive_bench_{instances}_{uuid.uuid4().hex[:6]}"
    url = _with_db(server_url, name)
    fill_s: float | None = None
    steps: dict[str, float] = {}
    try:
        if not reuse:
            asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
            upgrade(url)
            t0 = time.perf_counter()
            steps = asyncio.run(_fill(url, instances))
            fill_s = round(time.perf_counter() - t0, 1)
            print(f"filled {instances} instances in {fill_s}s", file=sys.stderr, flush=True)
        with serving(url, tmp / name) as settings:
            base = f"http://127.0.0.1:{settings.http_port}/dicom-web"
            load_before = os.getloadavg()[0]
            result = {"instances": instances, "database": name, "fill_seconds": fill_s,
                      "fill_steps": steps,
                      "qido": time_http(base, instances, repeat),
                      "cfind": time_cfind(settings, instances, repeat),
                      "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}
        return result
    finally:
        if not keep:
            asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def study_datasets(st: int, patients: int) -> list[Any]:
    """The same study the SQL fill writes (names, dates, modalities), as real DICOM data sets."""
    import datetime as dt

    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    p = 1 + (st - 1) % patients
    study_date = dt.date(2015, 1, 1) + dt.timedelta(days=st * 13 % 3650)
    study_time = (dt.datetime(2000, 1, 1, 7) + dt.timedelta(minutes=st % 600)).time()
    out = []
    for k in range(1, SERIES_PER_STUDY + 1):
        se = (st - 1) * SERIES_PER_STUDY + k
        modality = MODALITIES[(st + k) % len(MODALITIES)]
        for n in range(1, INSTANCES_PER_SERIES + 1):
            i = (se - 1) * INSTANCES_PER_SERIES + n
            ds = Dataset()
            ds.SpecificCharacterSet = "ISO_IR 192"
            ds.SOPClassUID = CTImageStorage
            ds.SOPInstanceUID = f"{UID_ROOT}.3.{i}"
            ds.StudyInstanceUID = f"{UID_ROOT}.1.{st}"
            ds.SeriesInstanceUID = f"{UID_ROOT}.2.{se}"
            ds.PatientID = f"PID{p:07d}"
            ds.PatientName = f"{FAMILY[p % len(FAMILY)]}^{GIVEN[(p // 7) % len(GIVEN)]}"
            ds.PatientBirthDate = (dt.date(1930, 1, 1) + dt.timedelta(days=p * 37 % 30000)
                                   ).strftime("%Y%m%d")
            ds.PatientSex = "M" if p % 2 == 0 else "F"
            ds.StudyDate = study_date.strftime("%Y%m%d")
            ds.StudyTime = study_time.strftime("%H%M%S")
            ds.AccessionNumber = f"ACC{st:08d}"
            ds.StudyID = "1"
            ds.ReferringPhysicianName = "Ref^Doc"
            ds.StudyDescription = DESCRIPTIONS[st % len(DESCRIPTIONS)]
            ds.InstitutionName = "General Hospital" if st % 3 == 0 else "City Clinic"
            ds.Modality = modality
            ds.SeriesNumber = k
            ds.SeriesDescription = f"{modality} series {k}"
            ds.InstanceNumber = n
            ds.ImagePositionPatient = [0, 0, n]
            ds.Rows = ds.Columns = 8
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
            ds.PixelData = np.full((8, 8), n, dtype=np.uint16).tobytes()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            out.append(ds)
    return out


def stow_all(base: str, instances: int) -> float:
    """Store the generated data set through STOW-RS (one study per request); seconds taken."""
    import io

    studies = max(1, instances // (SERIES_PER_STUDY * INSTANCES_PER_SERIES))
    patients = max(1, studies // STUDIES_PER_PATIENT)
    session = requests.Session()
    t0 = time.perf_counter()
    for st in range(1, studies + 1):
        parts = []
        for ds in study_datasets(st, patients):
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            parts.append(b"--QBOUNDARY\r\nContent-Type: application/dicom\r\n\r\n"
                         + buf.getvalue() + b"\r\n")
        r = session.post(base + "/studies", data=b"".join(parts) + b"--QBOUNDARY--\r\n",
                         timeout=300, headers={
                             "Content-Type": 'multipart/related; type="application/dicom"; '
                                             "boundary=QBOUNDARY",
                             "Accept": "application/dicom+json"})
        r.raise_for_status()
    return round(time.perf_counter() - t0, 1)


def compare_orthanc(server_url: str, orthanc: str, orthanc_dimse: str | None, instances: int,
                    repeat: int, tmp: Path, keep: bool = False, reuse: str | None = None,
                    orthanc_filled: bool = False) -> dict[str, Any]:
    """The same data stored into both servers by STOW-RS; the same queries, alternating."""
    name = reuse or f"archive_bench_cmp_{instances}_{uuid.uuid4().hex[:6]}"
    if not reuse:
        asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    url = _with_db(server_url, name)
    try:
        with serving(url, tmp / name) as settings:
            ours = f"http://127.0.0.1:{settings.http_port}/dicom-web"
            stow = {"ours_s": None if reuse else stow_all(ours, instances),
                    "orthanc_s": None if orthanc_filled else stow_all(orthanc, instances)}
            print(f"stored {instances} instances: {stow}", file=sys.stderr, flush=True)
            rounds: dict[str, dict[str, Any]] = {"ours": {}, "orthanc": {}}
            for label, base in (("ours", ours), ("orthanc", orthanc), ("ours2", ours),
                                ("orthanc2", orthanc)):
                part = time_http(base, instances, max(1, repeat // 2))
                for q, r in part.items():
                    rounds[label.rstrip("2")].setdefault(q, []).append(r)
            result: dict[str, Any] = {"instances": instances, "stow_seconds": stow, "qido": {}}
            for q in rounds["ours"]:
                a = _merge(rounds["ours"][q])
                b = _merge(rounds["orthanc"][q])
                result["qido"][q] = {"ours": a, "orthanc": b,
                                     "p50_ratio_orthanc_over_ours": round(b["p50_ms"] / a["p50_ms"], 2)}
            if orthanc_dimse:
                _host, port, aet = orthanc_dimse.split(":")
                peer = replace(settings, dimse_port=int(port), ae_title=aet)
                result["cfind"] = {"ours": time_cfind(settings, instances, repeat),
                                   "orthanc": time_cfind(peer, instances, repeat)}
        result["database"] = name
        return result
    finally:
        if not keep:
            asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"p50_ms": round(statistics.median([p["p50_ms"] for p in parts]), 2),
            "p95_ms": round(max(p["p95_ms"] for p in parts), 2),
            "mean_results": parts[0]["mean_results"], "n": sum(p["n"] for p in parts)}


def _reuse(names: list[str] | None, k: int) -> str | None:
    return names[k] if names and k < len(names) else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, nargs="+", default=[10_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--database-url", default=os.environ.get("ARCHIVE_BENCH_DATABASE_URL"),
                    help="PostgreSQL server to create scratch databases on (default: embedded)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch databases")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--plot", type=Path, help="write a PNG of QIDO p50 against index size here")
    ap.add_argument("--compare-orthanc", metavar="DICOMWEB_URL",
                    help="store the data into this (empty) Orthanc and ours by STOW, compare")
    ap.add_argument("--orthanc-dimse", metavar="HOST:PORT:AET", help="also compare C-FIND")
    ap.add_argument("--orthanc-filled", action="store_true",
                    help="Orthanc already holds the generated data: do not store it again")
    ap.add_argument("--reuse-db", nargs="+",
                    help="existing (kept) databases of ours, one per --instances size")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="archive-bench-query-"))
    results = []
    if args.compare_orthanc:
        if not args.database_url:
            ap.error("--compare-orthanc needs --database-url")
        for k, n in enumerate(args.instances):
            results.append(compare_orthanc(sync_url(args.database_url), args.compare_orthanc,
                                           args.orthanc_dimse, n, args.repeat, tmp, args.keep,
                                           _reuse(args.reuse_db, k), args.orthanc_filled))
    elif args.database_url:
        for k, n in enumerate(args.instances):
            results.append(bench_size(sync_url(args.database_url), n, args.repeat, args.keep, tmp,
                                      _reuse(args.reuse_db, k)))
    else:
        with embedded_postgres(tmp / "pg") as url:
            for n in args.instances:
                results.append(bench_size(url, n, args.repeat, args.keep, tmp))
    text = json.dumps({"machine_cpus": os.cpu_count(), "results": results}, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    if args.plot:
        plot_scale(results, args.plot)
    return 0


def plot_scale(results: list[dict[str, Any]], path: Path) -> None:
    """QIDO-RS p50 of each query against the number of instances in the index (log x axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["instances"] for r in results]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in results[0]["qido"]:
        ax.plot(sizes, [r["qido"][name]["p50_ms"] for r in results], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("instances in the index")
    ax.set_ylabel("QIDO-RS p50 (ms)")
    ax.set_title("QIDO-RS latency against index size")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
