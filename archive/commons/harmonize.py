"""LOINC harmonization of study descriptions, kept beside the study (never in the DICOM).

Every study has a study_harmonization row holding its key (normalized modality group and
normalized StudyDescription) and, when an *approved* mapping exists for that key, its LOINC
code and the mapping version that set it. The key is computed at ingest (index hook); when a
curator changes a mapping, every study with that key is updated in the same transaction, so
the index never disagrees with the mapping table. Each mapping change gets a new version from
mapping_history, and the highest version is "the mapping version" cohorts record.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select, text, true
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.commons.normalize import key
from archive.commons.playbook import Playbook
from archive.core import Caller
from archive.errors import InvalidRequest, NotFound
from archive.index.commons_tables import (
    description_mapping,
    loinc_term,
    mapping_history,
    study_harmonization,
)
from archive.index.tables import study
from archive.index.visibility import visible_to

STATUSES = ("proposed", "approved", "rejected")

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
_REAPPLY_KEY = text(
    """
    UPDATE study_harmonization SET
        loinc_code = CASE WHEN CAST(:status AS text) = 'approved' THEN CAST(:code AS text) END,
        mapping_version = CASE WHEN CAST(:status AS text) = 'approved'
                               THEN CAST(:version AS bigint) END,
        applied_at = now()
    WHERE modality_norm = :m AND description_norm = :d
    """
)


async def harmonize_study(conn: AsyncConnection, facts: Any, study_pk: int) -> None:
    """Index hook: (re)compute the study's key and code when its modalities or text changed."""
    row = (await conn.execute(_CURRENT, {"pk": study_pk})).one()
    m, d = key(row.modalities, row.study_description)
    if (m, d) == (row.modality_norm, row.description_norm):
        return
    await conn.execute(_APPLY_ONE, {"pk": study_pk, "m": m, "d": d,
                                    "raw": row.study_description})


async def current_version(conn: AsyncConnection) -> int:
    return int((await conn.execute(
        select(func.coalesce(func.max(mapping_history.c.version), 0)))).scalar_one())


async def set_mapping(conn: AsyncConnection, modality: str, description: str,
                      loinc_code: str | None, status: str, curator: str | None,
                      replace: bool = False) -> dict[str, Any]:
    """Create or change the mapping of one key and re-apply it to every study with that key."""
    if status not in STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    if not (modality or "").strip():
        raise InvalidRequest("modality is required (e.g. CT, or CR,DX)")
    m, d = key(modality, description)
    code = (loinc_code or "").strip() or None
    if status != "rejected":
        if code is None:
            raise InvalidRequest("loinc_code is required unless the status is rejected")
        known = (await conn.execute(
            select(loinc_term.c.code).where(loinc_term.c.code == code))).first()
        if not known:
            raise InvalidRequest(f"LOINC code {code!r} is not in the term table "
                                 "(load it with `archive loinc load`)")
    existing = (await conn.execute(text(
        "SELECT loinc_code, status FROM description_mapping WHERE modality_norm = :m "
        "AND description_norm = :d FOR UPDATE"), {"m": m, "d": d})).first()
    if (existing is not None and existing.status == "approved" and code is not None
            and existing.loinc_code != code and not replace):
        raise InvalidRequest(
            f"{m} {d!r} is already mapped to {existing.loinc_code}; a description maps to one "
            "code only - set replace=true to change it")
    version = (await conn.execute(text(
        "INSERT INTO mapping_history (modality_norm, description_norm, loinc_code, status, "
        "curator) VALUES (:m, :d, :c, :s, :u) RETURNING version"),
        {"m": m, "d": d, "c": code, "s": status, "u": curator})).scalar_one()
    await conn.execute(text(
        """
        INSERT INTO description_mapping (modality_norm, description_norm, raw_example,
                                         loinc_code, status, version, curator)
        VALUES (:m, :d, :raw, :c, :s, :v, :u)
        ON CONFLICT (modality_norm, description_norm) DO UPDATE SET
            loinc_code = EXCLUDED.loinc_code, status = EXCLUDED.status,
            version = EXCLUDED.version, curator = EXCLUDED.curator, updated_at = now()
        """), {"m": m, "d": d, "raw": description, "c": code, "s": status, "v": version,
               "u": curator})
    updated = (await conn.execute(_REAPPLY_KEY, {"status": status, "code": code,
                                                 "version": version, "m": m, "d": d})).rowcount
    return {"modality": m, "description": d, "loinc_code": code, "status": status,
            "version": version, "studies_updated": updated}


async def reapply_all(conn: AsyncConnection) -> int:
    """Recompute every study's key and code (after a term load or for studies indexed before
    the commons extension was active). Returns the number of studies whose row changed."""
    rows = (await conn.execute(text(
        f"SELECT s.pk, {_MODALITIES} AS modalities, s.study_description, h.modality_norm, "
        "h.description_norm, "
        "h.loinc_code, h.mapping_version FROM study s "
        "LEFT JOIN study_harmonization h ON h.study_pk = s.pk"))).all()
    mappings = {(r.modality_norm, r.description_norm): (r.loinc_code, r.version)
                for r in (await conn.execute(text(
                    "SELECT modality_norm, description_norm, loinc_code, version "
                    "FROM description_mapping WHERE status = 'approved'"))).all()}
    changed = []
    for r in rows:
        k = key(r.modalities, r.study_description)
        code, version = mappings.get(k, (None, None))
        if (k, code, version) != ((r.modality_norm, r.description_norm), r.loinc_code,
                                  r.mapping_version):
            changed.append({"pk": r.pk, "m": k[0], "d": k[1], "raw": r.study_description})
    if changed:
        await conn.execute(_APPLY_ONE, changed)
    return len(changed)


async def load_playbook(conn: AsyncConnection, book: Playbook, curator: str) -> dict[str, Any]:
    """Upsert the terms, add seed mappings for keys nobody has mapped yet, re-apply."""
    await conn.execute(text(
        """
        INSERT INTO loinc_term (code, long_common_name, modality, body_system, method, contrast,
                                source)
        VALUES (:code, :long_common_name, :modality, :body_system, :method, :contrast, :source)
        ON CONFLICT (code) DO UPDATE SET long_common_name = EXCLUDED.long_common_name,
            modality = EXCLUDED.modality, body_system = EXCLUDED.body_system,
            method = EXCLUDED.method, contrast = EXCLUDED.contrast, source = EXCLUDED.source,
            loaded_at = now()
        """), [t.row() for t in book.terms])
    version = (await conn.execute(text(
        "INSERT INTO mapping_history (modality_norm, description_norm, loinc_code, status, "
        "curator) VALUES ('*', '*', NULL, 'approved', :u) RETURNING version"),
        {"u": curator})).scalar_one()
    added = 0
    for m in book.mappings:
        added += (await conn.execute(text(
            """
            INSERT INTO description_mapping (modality_norm, description_norm, raw_example,
                                             loinc_code, status, version, curator)
            VALUES (:modality_norm, :description_norm, :raw_example, :loinc_code, 'approved',
                    :v, :u)
            ON CONFLICT (modality_norm, description_norm) DO NOTHING
            """), m.row() | {"v": version, "u": curator})).rowcount
    studies = await reapply_all(conn)
    return {"terms": len(book.terms), "mappings_added": added, "conflicts": book.conflicts,
            "studies_updated": studies, "version": version}


async def list_mappings(conn: AsyncConnection, status: str | None) -> list[dict[str, Any]]:
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}")
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


async def list_descriptions(conn: AsyncConnection, caller: Caller,
                            status: str) -> list[dict[str, Any]]:
    """Raw descriptions per key with study counts, most frequent first (curators' worklist)."""
    h, dm = study_harmonization, description_mapping
    where = {"unmapped": h.c.loinc_code.is_(None), "mapped": h.c.loinc_code.is_not(None),
             "all": true()}.get(status)
    if where is None:
        raise InvalidRequest("status must be unmapped, mapped or all")
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


async def terms(conn: AsyncConnection) -> list[dict[str, Any]]:
    t = loinc_term
    rows = (await conn.execute(
        select(t.c.code, t.c.long_common_name, t.c.modality, t.c.body_system, t.c.method,
               t.c.contrast).order_by(t.c.code))).mappings().all()
    return [dict(r) for r in rows]


async def term(conn: AsyncConnection, code: str) -> dict[str, Any]:
    row = (await conn.execute(select(loinc_term).where(loinc_term.c.code == code))
           ).mappings().first()
    if row is None:
        raise NotFound(f"no LOINC term {code}")
    return dict(row)
