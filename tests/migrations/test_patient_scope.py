"""Migration 0010 splits today's one-row-per-PatientID patients by site and collection, losing
nothing, and its downgrade merges them back."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from archive.index.engine import sync_url
from tests.migrations.test_migrations import empty_db  # noqa: F401 - fixture


def _sql(url: str, statement: str) -> list[Any]:
    async def q() -> list[Any]:
        conn = await asyncpg.connect(sync_url(url))
        try:
            if ";" in statement.strip().rstrip(";"):  # a script: no results
                await conn.execute(statement)
                return []
            return list(await conn.fetch(statement))
        finally:
            await conn.close()

    return asyncio.run(q())


def test_patient_rows_split_by_site_and_collection(empty_db: str) -> None:  # noqa: F811
    from alembic import command
    from alembic.config import Config

    from archive.index.engine import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["database_url"] = empty_db
    command.upgrade(cfg, "0007")
    _sql(empty_db, """
        INSERT INTO patient (pk, patient_id, issuer, patient_name) VALUES
            (1, 'SAME', '', 'Last^Writer'), (2, 'ISS', 'HOSP-X', 'Issued^Id'), (3, 'LONE', '', 'No^Study');
        INSERT INTO study (patient_pk, study_uid, site, collection) VALUES
            (1, '1.1', 'A', 'public'), (1, '1.2', 'A', 'public'), (1, '1.3', 'B', 'public'),
            (1, '1.4', 'A', 'sequestered'), (2, '2.1', 'A', 'public'), (2, '2.2', 'B', 'public');
        SELECT setval(pg_get_serial_sequence('patient', 'pk'), 3);
    """)
    command.upgrade(cfg, "0010")
    rows = _sql(empty_db, """
        SELECT p.pk, p.patient_id, p.scope, p.collection, p.patient_name,
               array_agg(s.study_uid ORDER BY s.study_uid) AS studies
        FROM patient p LEFT JOIN study s ON s.patient_pk = p.pk
        GROUP BY p.pk ORDER BY p.patient_id, p.scope, p.collection""")
    got = [(r["patient_id"], r["scope"], r["collection"], r["patient_name"], r["studies"])
           for r in rows]
    assert got == [
        ("ISS", "HOSP-X", "public", "Issued^Id", ["2.1", "2.2"]),  # an issuer keeps one patient
        ("LONE", "", "public", "No^Study", [None]),
        ("SAME", "A", "public", "Last^Writer", ["1.1", "1.2"]),
        ("SAME", "A", "sequestered", "Last^Writer", ["1.4"]),
        ("SAME", "B", "public", "Last^Writer", ["1.3"]),
    ]
    assert next(r["pk"] for r in rows if r["studies"] == ["1.1", "1.2"]) == 1  # oldest keeps its pk
    assert _sql(empty_db, "SELECT count(*) AS n FROM study")[0]["n"] == 6
    command.downgrade(cfg, "0007")
    merged = _sql(empty_db, "SELECT patient_id, count(*) AS n FROM patient GROUP BY 1 ORDER BY 1")
    assert [(r["patient_id"], r["n"]) for r in merged] == [("ISS", 1), ("LONE", 1), ("SAME", 1)]
    assert _sql(empty_db, "SELECT count(DISTINCT patient_pk) AS n FROM study "
                          "WHERE study_uid LIKE '1.%'")[0]["n"] == 1
