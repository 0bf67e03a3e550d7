"""Sites and datasets: who contributed a study, and in which submission batch it arrived.

Ingest takes the site from the calling AE title's peer entry or the STOW-RS `site` parameter /
X-Archive-Site header. When no dataset is named, the commons files the study under the MIDRC
batch convention `SITE_YYYYMMDD` (the UTC day it arrived), so every study has a dataset.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.core import Caller
from archive.index.visibility import visible_sql

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_dataset(site: str, today: dt.date | None = None) -> str:
    day = today or dt.datetime.now(dt.UTC).date()
    return f"{_SAFE.sub('_', site).strip('_') or 'SITE'}_{day:%Y%m%d}"


def attribute_dataset(facts: Any, caller: Caller, attribution: Any) -> Any:
    """Enricher: name the batch when the sender did not."""
    if attribution.dataset or not attribution.site:
        return attribution
    return replace(attribution, dataset=default_dataset(attribution.site))


async def _grouped(conn: AsyncConnection, caller: Caller, column: str) -> list[dict[str, Any]]:
    rows = (await conn.execute(text(
        f"""
        SELECT study.{column} AS name, count(*) AS studies,
               count(DISTINCT study.patient_pk) AS cases,
               COALESCE(sum(study.num_series), 0) AS series,
               COALESCE(sum(study.num_instances), 0) AS instances,
               COALESCE(sum(study.size_bytes), 0)::bigint AS size_bytes,
               min(study.created_at) AS first_received, max(study.created_at) AS last_received
        FROM study WHERE {visible_sql(caller)}
        GROUP BY study.{column} ORDER BY study.{column} NULLS LAST
        """))).mappings().all()
    return [dict(r) | {"first_received": r["first_received"].isoformat(),
                       "last_received": r["last_received"].isoformat()} for r in rows]


async def list_sites(conn: AsyncConnection, caller: Caller) -> list[dict[str, Any]]:
    return await _grouped(conn, caller, "site")


async def list_datasets(conn: AsyncConnection, caller: Caller) -> list[dict[str, Any]]:
    rows = await _grouped(conn, caller, "dataset")
    sites = {r.dataset: r.sites for r in (await conn.execute(text(
        f"SELECT dataset, array_agg(DISTINCT site) FILTER (WHERE site IS NOT NULL) AS sites "
        f"FROM study WHERE {visible_sql(caller)} GROUP BY dataset"))).all()}
    return [r | {"sites": sites.get(r["name"]) or []} for r in rows]
