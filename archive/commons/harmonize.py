"""LOINC harmonization of study descriptions, kept beside the study (never in the DICOM).

Every study has a study_harmonization row holding its key (normalized modality group and
normalized StudyDescription) and, when an *approved* mapping exists for that key, its LOINC
code and the mapping version that set it. The key is computed at ingest (index hook); when a
curator changes a mapping, every study with that key is updated by a queued job (below). Each
mapping change gets a new version from mapping_history, and the highest version is "the
mapping version" cohorts record.

A curator's mapping change is committed together with a re-apply job on the task queue
(archive.tasks, issue 15) instead of updating every study with that key in the request: a key
may cover a million studies. Any node or `archive worker` runs the job; callers that answer a
person (the /commons door, the CLI) wait briefly for it (archive.tasks.status.wait_done).
"""

from __future__ import annotations

from typing import Any

from archive.caller import Caller
from archive.commons.normalize import key
from archive.commons.playbook import Playbook
from archive.errors import InvalidRequest, NotFound
from archive.index import commons_harmonize as rows_of
from archive.index import task_queue as queue
from archive.index.handles import Connection
from archive.tasks import names

STATUSES = ("proposed", "approved", "rejected")
REAPPLY_TASK = names.REAPPLY_MAPPING  # the job archive.tasks.jobs.reapply_mapping runs


async def harmonize_study(conn: Connection, facts: Any, study_pk: int) -> None:
    """Index hook: (re)compute the study's key and code when its modalities or text changed."""
    row = await rows_of.study_key_row(conn, study_pk)
    m, d = key(row.modalities, row.study_description)
    if (m, d) == (row.modality_norm, row.description_norm):
        return
    await rows_of.apply_keys(conn, [{"pk": study_pk, "m": m, "d": d,
                                     "raw": row.study_description}])


async def current_version(conn: Connection) -> int:
    return await rows_of.current_version(conn)


async def set_mapping(conn: Connection, modality: str, description: str,
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
        if not await rows_of.term_exists(conn, code):
            raise InvalidRequest(f"LOINC code {code!r} is not in the term table "
                                 "(load it with `archive loinc load`)")
    existing = await rows_of.lock_mapping(conn, m, d)
    if (existing is not None and existing.status == "approved" and code is not None
            and existing.loinc_code != code and not replace):
        raise InvalidRequest(
            f"{m} {d!r} is already mapped to {existing.loinc_code}; a description maps to one "
            "code only - set replace=true to change it")
    version = await rows_of.record_version(conn, m, d, code, status, curator)
    await rows_of.upsert_mapping(conn, m, d, description, code, status, version, curator)
    job = await queue.defer(conn, REAPPLY_TASK, {"modality": m, "description": d},
                            lock=f"harmonize:{m}:{d}")
    updated = await rows_of.count_with_key(conn, m, d)
    return {"modality": m, "description": d, "loinc_code": code, "status": status,
            "version": version, "studies_updated": updated, "job": job}


async def reapply_all(conn: Connection) -> int:
    """Recompute every study's key and code (after a term load or for studies indexed before
    the commons extension was active). Returns the number of studies whose row changed."""
    rows = await rows_of.all_study_keys(conn)
    mappings = await rows_of.approved_mappings(conn)
    changed = []
    for r in rows:
        k = key(r.modalities, r.study_description)
        code, version = mappings.get(k, (None, None))
        if (k, code, version) != ((r.modality_norm, r.description_norm), r.loinc_code,
                                  r.mapping_version):
            changed.append({"pk": r.pk, "m": k[0], "d": k[1], "raw": r.study_description})
    if changed:
        await rows_of.apply_keys(conn, changed)
    return len(changed)


async def load_playbook(conn: Connection, book: Playbook, curator: str) -> dict[str, Any]:
    """Upsert the terms, add seed mappings for keys nobody has mapped yet, re-apply."""
    await rows_of.upsert_terms(conn, [t.row() for t in book.terms])
    version = await rows_of.record_version(conn, "*", "*", None, "approved", curator)
    added = 0
    for m in book.mappings:
        added += await rows_of.seed_mapping(conn, m.row(), version, curator)
    studies = await reapply_all(conn)
    return {"terms": len(book.terms), "mappings_added": added, "conflicts": book.conflicts,
            "studies_updated": studies, "version": version}


async def list_mappings(conn: Connection, status: str | None) -> list[dict[str, Any]]:
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}")
    return await rows_of.mappings(conn, status)


async def list_descriptions(conn: Connection, caller: Caller,
                            status: str) -> list[dict[str, Any]]:
    """Raw descriptions per key with study counts, most frequent first (curators' worklist)."""
    if status not in rows_of.DESCRIPTION_STATUSES:
        raise InvalidRequest("status must be unmapped, mapped or all")
    return await rows_of.descriptions(conn, caller, status)


async def terms(conn: Connection) -> list[dict[str, Any]]:
    return await rows_of.terms(conn)


async def term(conn: Connection, code: str) -> dict[str, Any]:
    found = await rows_of.term(conn, code)
    if found is None:
        raise NotFound(f"no LOINC term {code}")
    return found
