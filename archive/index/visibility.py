"""visible_to(): the one WHERE clause that every read path applies to the study table.

Sequestered collections are invisible (not forbidden) to callers without the right; a cohort
root narrows visibility to the cohort's frozen studies. Query, retrieve, export and DIMSE all go
through here, so there is exactly one place to get this right.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, and_, false, select, true

from archive.core import Caller
from archive.index.tables import study

SEQUESTERED = "sequestered"


def cohort_uuid(value: str) -> uuid.UUID | None:
    """A cohort id is a UUID; anything else names no cohort (and is never embedded in SQL)."""
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


def visible_to(caller: Caller) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    if not caller.may_see_sequestered:
        conditions.append(study.c.collection != SEQUESTERED)
    if caller.cohort is not None:
        from archive.commons.tables import cohort_study

        cid = cohort_uuid(caller.cohort)
        conditions.append(
            false() if cid is None else study.c.pk.in_(
                select(cohort_study.c.study_pk).where(cohort_study.c.cohort_id == cid))
        )
    return and_(true(), *conditions)


def visible_sql(caller: Caller, alias: str = "study") -> str:
    """The same rule as a SQL fragment for hand-written statements (no user input inside:
    the cohort id is parsed as a UUID and re-printed canonically before it is embedded)."""
    parts = ["TRUE"]
    if not caller.may_see_sequestered:
        parts.append(f"{alias}.collection <> '{SEQUESTERED}'")
    if caller.cohort is not None:
        cid = cohort_uuid(caller.cohort)
        parts.append(
            "FALSE" if cid is None else
            f"{alias}.pk IN (SELECT study_pk FROM cohort_study WHERE cohort_id = '{cid}'::uuid)"
        )
    return " AND ".join(parts)
