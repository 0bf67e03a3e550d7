"""The harmonization tables' SQL: study keys and codes, description mappings, LOINC terms.

`archive.commons.harmonize` owns the rules (the normalized key, statuses, one code per key,
playbook loading); these statements run in the caller's transaction and take plain values.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Row, and_, func, select, text, true
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.caller import Caller
from archive.index.commons_tables import (
    description_mapping,
    loinc_term,
    mapping_history,
    study_harmonization,
)
from archive.index.tables import study
from archive.index.visibility import visible_to

# Modalities come from the series rows, not study.modalities: ingest may recount the study's
# aggregates after the hooks run (group commit recounts once per batch).
_MODALITIES = "(SELECT array_agg(DISTINCT se.modality) FROM series se WHERE se.study_pk = s.pk)"
_CURRENT = text(
    f"SELECT {_MODALITIES} AS modalities, s.study_description, h.modality_norm, "
    "h.description_norm FROM study s LEFT JOIN study_harmonization h ON h.study_pk = s.pk "
    "WHERE s.pk = :pk"
)
_APPLY_ONE = text(
    """
    INSERT INTO study_harmonization (study_pk, modality_norm, description_norm, raw_description,
                                     loinc_code, mapping_version)
    SELECT :pk, :m, :d, :raw, dm.loinc_code, dm.version
    FROM (SELECT 1) AS one
    LEFT JOIN description_mapping dm
           ON dm.modality_norm = :m AND dm.description_norm = :d AND dm.status = 'approved'
    ON CONFLICT (study_pk) DO UPDATE SET
        modality_norm = EXCLUDED.modality_norm, description_norm = EXCLUDED.description_norm,
        raw_description = EXCLUDED.raw_description, loinc_code = EXCLUDED.loinc_code,
        mapping_version = EXCLUDED.mapping_version, applied_at = now()
    """
)
DESCRIPTION_STATUSES = ("unmapped", "mapped", "all")


# --- study keys --------------------------------------------------------------------------------
async def study_key_row(conn: AsyncConnection, study_pk: int) -> Row[Any]:
    """The study's modalities and description, and its stored key (None when not yet set)."""
    return (await conn.execute(_CURRENT, {"pk": study_pk})).one()


async def all_study_keys(conn: AsyncConnection) -> list[Row[Any]]:
    """Every study's pk, modalities, description, stored key, code and mapping version."""
    return list((await conn.execute(text(
        f"SELECT s.pk, {_MODALITIES} AS modalities, s.study_description, h.modality_norm, "
        "h.description_norm, "
        "h.loinc_code, h.mapping_version FROM study s "
        "LEFT JOIN study_harmonization h ON h.study_pk = s.pk"))).all())


async def apply_keys(conn: AsyncConnection, keys: list[dict[str, Any]]) -> None:
    """Store each study's key ({pk, m, d, raw}) with the code of its approved mapping."""
    await conn.execute(_APPLY_ONE, keys)


_REAPPLY_CURRENT = text(
    """
    UPDATE study_harmonization h SET loinc_code = dm.loinc_code, mapping_version = dm.version,
                                     applied_at = now()
    FROM (SELECT CAST(:m AS text) AS m, CAST(:d AS text) AS d) AS k
    LEFT JOIN description_mapping dm ON dm.modality_norm = k.m AND dm.description_norm = k.d
                                     AND dm.status = 'approved'
    WHERE h.modality_norm = k.m AND h.description_norm = k.d
      AND (h.loinc_code, h.mapping_version) IS DISTINCT FROM (dm.loinc_code, dm.version)
    """
)


async def reapply_current(conn: AsyncConnection, m: str, d: str) -> int:
    """Bring every study with key (m, d) to the key's mapping as it is *now* (approved code and
    version, else none); the number changed. Idempotent: a second run changes nothing."""
    return int((await conn.execute(_REAPPLY_CURRENT, {"m": m, "d": d})).rowcount)


async def count_with_key(conn: AsyncConnection, m: str, d: str) -> int:
    """Studies whose harmonization key is (m, d)."""
    return int((await conn.execute(select(func.count()).select_from(study_harmonization).where(
        and_(study_harmonization.c.modality_norm == m,
             study_harmonization.c.description_norm == d)))).scalar_one())


# --- mappings and versions ---------------------------------------------------------------------
async def current_version(conn: AsyncConnection) -> int:
    return int((await conn.execute(
        select(func.coalesce(func.max(mapping_history.c.version), 0)))).scalar_one())


async def lock_mapping(conn: AsyncConnection, m: str, d: str) -> Row[Any] | None:
    """The key's mapping (loinc_code, status), locked for this transaction, or None."""
    return (await conn.execute(text(
        "SELECT loinc_code, status FROM description_mapping WHERE modality_norm = :m "
        "AND description_norm = :d FOR UPDATE"), {"m": m, "d": d})).first()


async def record_version(conn: AsyncConnection, m: str, d: str, code: str | None, status: str,
                         curator: str | None) -> int:
    """A new mapping version in mapping_history (m, d = '*' for a playbook load)."""
    return int((await conn.execute(text(
        "INSERT INTO mapping_history (modality_norm, description_norm, loinc_code, status, "
        "curator) VALUES (:m, :d, :c, :s, :u) RETURNING version"),
        {"m": m, "d": d, "c": code, "s": status, "u": curator})).scalar_one())


async def upsert_mapping(conn: AsyncConnection, m: str, d: str, raw: str, code: str | None,
                         status: str, version: int, curator: str | None) -> None:
    await conn.execute(text(
        """
        INSERT INTO description_mapping (modality_norm, description_norm, raw_example,
                                         loinc_code, status, version, curator)
        VALUES (:m, :d, :raw, :c, :s, :v, :u)
        ON CONFLICT (modality_norm, description_norm) DO UPDATE SET
            loinc_code = EXCLUDED.loinc_code, status = EXCLUDED.status,
            version = EXCLUDED.version, curator = EXCLUDED.curator, updated_at = now()
        """), {"m": m, "d": d, "raw": raw, "c": code, "s": status, "v": version,
               "u": curator})


async def seed_mapping(conn: AsyncConnection, mapping: dict[str, Any], version: int,
                       curator: str) -> int:
    """An approved mapping for a key nobody has mapped yet; 1 if added, 0 if the key exists."""
    return int((await conn.execute(text(
        """
        INSERT INTO description_mapping (modality_norm, description_norm, raw_example,
                                         loinc_code, status, version, curator)
        VALUES (:modality_norm, :description_norm, :raw_example, :loinc_code, 'approved',
                :v, :u)
        ON CONFLICT (modality_norm, description_norm) DO NOTHING
        """), mapping | {"v": version, "u": curator})).rowcount)


async def approved_mappings(conn: AsyncConnection) -> dict[tuple[str, str], tuple[str, int]]:
    """(modality_norm, description_norm) → (loinc_code, version) of every approved mapping."""
    return {(r.modality_norm, r.description_norm): (r.loinc_code, r.version)
            for r in (await conn.execute(text(
                "SELECT modality_norm, description_norm, loinc_code, version "
                "FROM description_mapping WHERE status = 'approved'"))).all()}


async def mappings(conn: AsyncConnection, status: str | None) -> list[dict[str, Any]]:
    dm, t = description_mapping, loinc_term
    stmt = (select(dm.c.modality_norm, dm.c.description_norm, dm.c.raw_example, dm.c.loinc_code,
                   t.c.long_common_name, dm.c.status, dm.c.version, dm.c.curator,
                   dm.c.updated_at)
            .select_from(dm.outerjoin(t, t.c.code == dm.c.loinc_code))
            .order_by(dm.c.modality_norm, dm.c.description_norm))
    if status is not None:
        stmt = stmt.where(dm.c.status == status)
    rows = (await conn.execute(stmt)).mappings().all()
    return [dict(r) | {"updated_at": r["updated_at"].isoformat()} for r in rows]


async def descriptions(conn: AsyncConnection, caller: Caller,
                       status: str) -> list[dict[str, Any]]:
    """Raw descriptions per key with study counts, most frequent first; `status` is one of
    DESCRIPTION_STATUSES."""
    h, dm = study_harmonization, description_mapping
    where = {"unmapped": h.c.loinc_code.is_(None), "mapped": h.c.loinc_code.is_not(None),
             "all": true()}[status]
    joined = h.join(study, study.c.pk == h.c.study_pk).outerjoin(dm, and_(
        dm.c.modality_norm == h.c.modality_norm, dm.c.description_norm == h.c.description_norm))
    rows = (await conn.execute(
        select(h.c.modality_norm.label("modality"), h.c.description_norm.label("description"),
               func.min(h.c.raw_description).label("example"), func.count().label("studies"),
               h.c.loinc_code, dm.c.status.label("mapping_status"),
               dm.c.loinc_code.label("proposed_code"))
        .select_from(joined).where(where, visible_to(caller))
        .group_by(h.c.modality_norm, h.c.description_norm, h.c.loinc_code, dm.c.status,
                  dm.c.loinc_code)
        .order_by(func.count().desc(), h.c.modality_norm, h.c.description_norm)
    )).mappings().all()
    return [dict(r) for r in rows]


# --- LOINC terms -------------------------------------------------------------------------------
async def upsert_terms(conn: AsyncConnection, rows: Iterable[dict[str, Any]]) -> None:
    await conn.execute(text(
        """
        INSERT INTO loinc_term (code, long_common_name, modality, body_system, method, contrast,
                                source)
        VALUES (:code, :long_common_name, :modality, :body_system, :method, :contrast, :source)
        ON CONFLICT (code) DO UPDATE SET long_common_name = EXCLUDED.long_common_name,
            modality = EXCLUDED.modality, body_system = EXCLUDED.body_system,
            method = EXCLUDED.method, contrast = EXCLUDED.contrast, source = EXCLUDED.source,
            loaded_at = now()
        """), list(rows))


async def term_exists(conn: AsyncConnection, code: str) -> bool:
    return (await conn.execute(
        select(loinc_term.c.code).where(loinc_term.c.code == code))).first() is not None


async def terms(conn: AsyncConnection) -> list[dict[str, Any]]:
    t = loinc_term
    rows = (await conn.execute(
        select(t.c.code, t.c.long_common_name, t.c.modality, t.c.body_system, t.c.method,
               t.c.contrast).order_by(t.c.code))).mappings().all()
    return [dict(r) for r in rows]


async def term(conn: AsyncConnection, code: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(loinc_term).where(loinc_term.c.code == code))
           ).mappings().first()
    return dict(row) if row is not None else None
