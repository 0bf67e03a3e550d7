"""What keeping a study's aggregates costs per batch, by study size (issue 14).

    python -m bench.aggregates_cost [--sizes 50,500,2000,5000] [--repeat 7]

A batch of the group commit used to recount each touched study from all its instance rows
(`_RECOUNT_SQL`), so its cost grew with the study; a batch of new instances now adds to the
aggregates (`_ADD_TO_AGGREGATES`). This fills one study of one series to each size in a private
embedded PostgreSQL (migrated like the archive's), then runs each statement for a batch of one
instance inside a transaction that is rolled back, and prints PostgreSQL's execution and
planning time (EXPLAIN ANALYZE, best of `--repeat`): a PACS sending a large study one C-STORE at
a time pays one such statement per instance.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

import asyncpg

from archive.index.driver import Statement
from archive.index.engine import embedded_postgres, sync_url, upgrade
from archive.index.writes import _ADD_TO_AGGREGATES, _RECOUNT_DRIVER

CT = "1.2.840.10008.5.1.4.1.1.2"


async def _timed(c: asyncpg.Connection, stmt: Statement, params: dict[str, Any],
                 repeat: int) -> tuple[float, float]:
    explain = await c.prepare("EXPLAIN (ANALYZE) " + stmt.sql)
    execution, planning = [], []
    for _ in range(repeat):
        tx = c.transaction()
        await tx.start()
        try:
            lines = [r[0] for r in await explain.fetch(*stmt.args(params))]
        finally:
            await tx.rollback()
        execution.append(float(next(x for x in lines if x.startswith("Execution Time")).split()[2]))
        planning.append(float(next(x for x in lines if x.startswith("Planning Time")).split()[2]))
    return min(execution), min(planning)


async def measure(url: str, sizes: list[int], repeat: int) -> list[str]:
    c = await asyncpg.connect(url)
    try:
        patient = await c.fetchval("INSERT INTO patient (patient_id, scope, collection, attrs) "
                                   "VALUES ('p', '', 'public', '{}') RETURNING pk")
        study = await c.fetchval("INSERT INTO study (patient_pk, study_uid, collection, attrs) "
                                 "VALUES ($1, '1.2', 'public', '{}') RETURNING pk", patient)
        series = await c.fetchval("INSERT INTO series (study_pk, series_uid, modality, attrs) "
                                  "VALUES ($1, '1.2.3', 'CT', '{}') RETURNING pk", study)
        out, n = [], 0
        for size in sizes:
            await c.execute(
                "INSERT INTO instance (series_pk, sop_uid, sop_class_uid, transfer_syntax, "
                "blob_key, size_bytes, sha256, header, metadata) SELECT $1, 'sop' || g, $4, "
                "'1.2.840.10008.1.2.1', 'k' || g, 500000, 'x', '{}', '{}' "
                "FROM generate_series($2::int, $3::int) g", series, n + 1, size, CT)
            await c.execute("UPDATE series SET num_instances = $2 WHERE pk = $1", series, size)
            await c.execute("ANALYZE instance")
            n = size
            recount = await _timed(c, _RECOUNT_DRIVER, {"series_pks": [series]}, repeat)
            add = await _timed(c, _ADD_TO_AGGREGATES,
                               {"series": [series], "sizes": [500000], "classes": [CT]}, repeat)
            out.append(f"| {size:,} | {recount[0]:.2f} + {recount[1]:.2f} | "
                       f"{add[0]:.2f} + {add[1]:.2f} |")
        return out
    finally:
        await c.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50,500,2000,5000")
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args(argv)
    sizes = sorted(int(s) for s in a.sizes.split(","))
    with tempfile.TemporaryDirectory() as tmp, embedded_postgres(Path(tmp) / "pg") as url:
        upgrade(url)
        rows = asyncio.run(measure(sync_url(url), sizes, a.repeat))
    print("| instances in the study | recount: execution + planning, ms | "
          "add: execution + planning, ms |\n|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
