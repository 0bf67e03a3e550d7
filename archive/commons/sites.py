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

from sqlalchemy import BigInteger, cast, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.core import Caller
from archive.index.tables import study
from archive.index.visibility import visible_to

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_dataset(site: str, today: dt.date | None = None) -> str:
    day = today or dt.datetime.now(dt.UTC).date()
    return f"{_SAFE.sub('_', site).strip('_') or 'SITE'}_{day:%Y%m%d}"


def attribute_dataset(facts: Any, caller: Caller, attribution: Any) -> Any:
    """Enricher: name the batch when the sender did not."""
    if attribution.dataset or not attribution.site:
        return attribution
    return replace(attribution, dataset=default_dataset(attribution.site))


async def _grouped(conn: AsyncConnection, caller: Caller, name: str) -> list[dict[str, Any]]:
    column = study.c[name]
    rows = (await conn.execute(
        select(column.label("name"), func.count().label("studies"),
               func.count(distinct(study.c.patient_pk)).label("cases"),
               func.coalesce(func.sum(study.c.num_series), 0).label("series"),
               func.coalesce(func.sum(study.c.num_instances), 0).label("instances"),
               cast(func.coalesce(func.sum(study.c.size_bytes), 0), BigInteger).label("size_bytes"),
               func.min(study.c.created_at).label("first_received"),
               func.max(study.c.created_at).label("last_received"))
        .where(visible_to(caller)).group_by(column).order_by(column.asc().nulls_last())
    )).mappings().all()
    return [dict(r) | {"first_received": r["first_received"].isoformat(),
                       "last_received": r["last_received"].isoformat()} for r in rows]


async def list_sites(conn: AsyncConnection, caller: Caller) -> list[dict[str, Any]]:
    return await _grouped(conn, caller, "site")


async def list_datasets(conn: AsyncConnection, caller: Caller) -> list[dict[str, Any]]:
    rows = await _grouped(conn, caller, "dataset")
    per_dataset = select(
        study.c.dataset,
        func.array_agg(distinct(study.c.site)).filter(study.c.site.is_not(None)).label("sites"),
    ).where(visible_to(caller)).group_by(study.c.dataset)
    sites = {r.dataset: r.sites for r in (await conn.execute(per_dataset)).all()}
    return [r | {"sites": sites.get(r["name"]) or []} for r in rows]
