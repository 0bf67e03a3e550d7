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

from archive.caller import Caller
from archive.index import commons_sites as site_rows
from archive.index.handles import Connection

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_dataset(site: str, today: dt.date | None = None) -> str:
    day = today or dt.datetime.now(dt.UTC).date()
    return f"{_SAFE.sub('_', site).strip('_') or 'SITE'}_{day:%Y%m%d}"


def attribute_dataset(facts: Any, caller: Caller, attribution: Any) -> Any:
    """Enricher: name the batch when the sender did not."""
    if attribution.dataset or not attribution.site:
        return attribution
    return replace(attribution, dataset=default_dataset(attribution.site))


async def list_sites(conn: Connection, caller: Caller) -> list[dict[str, Any]]:
    return await site_rows.grouped(conn, caller, "site")


async def list_datasets(conn: Connection, caller: Caller) -> list[dict[str, Any]]:
    rows = await site_rows.grouped(conn, caller, "dataset")
    sites = await site_rows.dataset_sites(conn, caller)
    return [r | {"sites": sites.get(r["name"]) or []} for r in rows]
