"""Collection changes: move a study (with sequestration, its whole case) to another collection.

The study's patient row moves with it: patient-level attributes never cross collections, so the
moved studies get (or join) the patient row of the same (PatientID, scope) in the target
collection; a source row left without studies is removed.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from archive.errors import NotFound

SEQUESTERED = "sequestered"

_STUDY = text(
    "SELECT pk, patient_pk, collection FROM study WHERE study_uid = :uid FOR UPDATE"
)
_CASE = text(
    "SELECT pk, study_uid FROM study WHERE patient_pk = :patient_pk ORDER BY pk FOR UPDATE"
)
_TARGET_PATIENT = text(
    """
    INSERT INTO patient (patient_id, issuer, scope, collection, patient_name, patient_birth_date,
                         patient_sex, attrs)
    SELECT patient_id, issuer, scope, :collection, patient_name, patient_birth_date, patient_sex,
           attrs
    FROM patient WHERE pk = :patient_pk
    ON CONFLICT (patient_id, scope, collection) DO UPDATE SET updated_at = now()
    RETURNING pk
    """
)
_MOVE = text(
    """
    UPDATE study SET collection = :collection, patient_pk = :patient_pk, updated_at = now()
    WHERE pk = ANY(:pks)
    """
)
_DROP_EMPTY_PATIENT = text(
    """
    DELETE FROM patient p WHERE p.pk = :patient_pk
      AND NOT EXISTS (SELECT 1 FROM study s WHERE s.patient_pk = p.pk)
    """
)


async def move_study(conn: AsyncConnection, study_uid: str, collection: str) -> list[str]:
    """Move the study (into the sequestered collection: every study of its patient, the whole
    case) to `collection`; returns the moved study UIDs. The caller checks visibility/rights."""
    row = (await conn.execute(_STUDY, {"uid": study_uid})).first()
    if row is None:
        raise NotFound(f"no study {study_uid}")
    if collection == SEQUESTERED:
        case = (await conn.execute(_CASE, {"patient_pk": row.patient_pk})).all()
        pks, uids = [r.pk for r in case], [r.study_uid for r in case]
    else:
        pks, uids = [row.pk], [study_uid]
    target = (await conn.execute(_TARGET_PATIENT, {"collection": collection,
                                                    "patient_pk": row.patient_pk})).scalar_one()
    await conn.execute(_MOVE, {"collection": collection, "patient_pk": target, "pks": pks})
    if target != row.patient_pk:
        await conn.execute(_DROP_EMPTY_PATIENT, {"patient_pk": row.patient_pk})
    return uids
