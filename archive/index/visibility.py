"""visible_to(): the one WHERE clause that every read path applies to the study table.

Sequestered collections are invisible (not forbidden) to callers without the right; a cohort
root narrows visibility to the cohort's studies. Query, retrieve, export and DIMSE all go
through here, so there is exactly one place to get this right.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, true

from archive.core import Caller
from archive.index.tables import study

SEQUESTERED = "sequestered"


def visible_to(caller: Caller) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    if not caller.may_see_sequestered:
        conditions.append(study.c.collection != SEQUESTERED)
    return and_(true(), *conditions)


def visible_sql(caller: Caller, alias: str = "study") -> str:
    """The same rule as a SQL fragment for hand-written statements (no user input inside)."""
    parts = ["TRUE"]
    if not caller.may_see_sequestered:
        parts.append(f"{alias}.collection <> '{SEQUESTERED}'")
    return " AND ".join(parts)
