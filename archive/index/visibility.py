"""visible_to(): the one WHERE clause that every read path applies to the study table.

Sequestered collections are invisible (not forbidden) to callers without the right; a cohort
root narrows visibility to the cohort's frozen studies. Query, retrieve, export and DIMSE all go
through here, so there is exactly one place to get this right.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, and_, false, or_, select, true

from archive.core import Caller
from archive.index.tables import study

SEQUESTERED = "sequestered"
STAGED = "staged"  # waiting for its dataset's release (--release-workflow): curators and the
# contributors of the study's own site see it, nobody else


def _sees_staged_of(caller: Caller) -> str | None:
    """The site whose staged studies a contributor sees (roles come from authentication only)."""
    return caller.site if "contributor" in caller.roles else None


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
        own = _sees_staged_of(caller)
        conditions.append(study.c.collection != STAGED if own is None
                          else or_(study.c.collection != STAGED, study.c.site == own))
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
        # (conservative twin: no site text is ever embedded, so contributors' own staged
        # studies show only through visible_to)
        parts.append(f"{alias}.collection <> '{STAGED}'")
    if caller.cohort is not None:
        cid = cohort_uuid(caller.cohort)
        parts.append(
            "FALSE" if cid is None else
            f"{alias}.pk IN (SELECT study_pk FROM cohort_study WHERE cohort_id = '{cid}'::uuid)"
        )
    return " AND ".join(parts)
