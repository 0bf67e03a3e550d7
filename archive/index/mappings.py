"""The LOINC term and approved-mapping reads and writes the suggester and the importer need.

`archive.commons.suggest` and `archive.commons.mapping_import` own the rules (what a
suggester learns from, what an import accepts); these statements take plain values and run
in the caller's connection.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.index.commons_tables import description_mapping, loinc_term


async def add_terms(conn: AsyncConnection, terms: dict[str, str], source: str) -> None:
    """Add codes the term table lacks (code -> Long Common Name); known codes are kept."""
    if terms:
        await conn.execute(pg_insert(loinc_term).values(
            [{"code": c, "long_common_name": name, "source": source, "loaded_at": func.now()}
             for c, name in terms.items()]).on_conflict_do_nothing(index_elements=["code"]))


async def approved_mappings(conn: AsyncConnection) -> list[Any]:
    """Approved mappings with a code: modality_norm, raw_example, description_norm,
    loinc_code and the term's long_common_name (None when the term table lacks it)."""
    return list((await conn.execute(
        select(description_mapping.c.modality_norm, description_mapping.c.raw_example,
               description_mapping.c.description_norm, description_mapping.c.loinc_code,
               loinc_term.c.long_common_name)
        .select_from(description_mapping.outerjoin(
            loinc_term, loinc_term.c.code == description_mapping.c.loinc_code))
        .where(description_mapping.c.status == "approved",
               description_mapping.c.loinc_code.is_not(None)))).all())


async def terms(conn: AsyncConnection) -> list[Any]:
    """Every term row: code, long_common_name, modality."""
    return list((await conn.execute(select(loinc_term.c.code, loinc_term.c.long_common_name,
                                           loinc_term.c.modality))).all())
