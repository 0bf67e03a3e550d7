"""visible_to(): the one WHERE clause that every read path applies to the study table.

Sequestered collections are invisible (not forbidden) to callers without the right, and so
are staged studies (`--release-workflow`: waiting for their dataset's release) except to the
contributors of the study's own site; a cohort
root narrows visibility to the cohort's frozen studies. Query, retrieve, delete, export, the
commons services and DIMSE all go through here, so there is exactly one place to get this
right. It is a SQLAlchemy expression over `archive.index.tables.study`; there is no SQL-text
twin of it.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, and_, false, or_, select, true

from archive.caller import Caller
from archive.index.commons_tables import cohort_study
from archive.index.tables import study

SEQUESTERED = "sequestered"
STAGED = "staged"


def cohort_uuid(value: str) -> uuid.UUID | None:
    """A cohort id is a UUID; anything else names no cohort."""
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


def visible_to(caller: Caller) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    if not caller.may_see_sequestered:
        conditions.append(study.c.collection != SEQUESTERED)
        own_site = caller.site if "contributor" in caller.roles else None  # roles: authenticated
        conditions.append(study.c.collection != STAGED if own_site is None
                          else or_(study.c.collection != STAGED, study.c.site == own_site))
    if caller.cohort is not None:
        cid = cohort_uuid(caller.cohort)
        conditions.append(
            false() if cid is None else study.c.pk.in_(
                select(cohort_study.c.study_pk).where(cohort_study.c.cohort_id == cid))
        )
    return and_(true(), *conditions)


def hidden_from(caller: Caller) -> ColumnElement[bool]:
    """The studies `visible_to(caller)` hides, for a caller without a cohort root: NOT visible
    (NULL counted as hidden), narrowed first to the only collections the rule ever hides, so
    that PostgreSQL finds them through the collection index instead of reading every study
    (facet counts ask this on every request). tests/archive/test_visibility.py checks
    that the narrowing never drops a hidden study."""
    if caller.cohort is not None:
        raise ValueError("a cohort root hides all but its studies: ask visible_to")
    return and_(study.c.collection.in_((SEQUESTERED, STAGED)),
                visible_to(caller).is_not(True))
