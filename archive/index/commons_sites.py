"""Per-site and per-dataset totals of the studies a caller may see (`archive.commons.sites`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, cast, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.caller import Caller
from archive.index.tables import study
from archive.index.visibility import visible_to


async def grouped(conn: AsyncConnection, caller: Caller, name: str) -> list[dict[str, Any]]:
    """Studies, cases, series, instances, bytes and first/last arrival per value of the study
    column `name` ("site" or "dataset")."""
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


async def dataset_sites(conn: AsyncConnection, caller: Caller) -> dict[str | None, list[str]]:
    """The sites that contributed to each dataset."""
    per_dataset = select(
        study.c.dataset,
        func.array_agg(distinct(study.c.site)).filter(study.c.site.is_not(None)).label("sites"),
    ).where(visible_to(caller)).group_by(study.c.dataset)
    return {r.dataset: r.sites for r in (await conn.execute(per_dataset)).all()}
