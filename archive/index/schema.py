"""The project's one MetaData, complete: every table the migrations create is described here.

Alembic's env (`target_metadata`) and the autogenerate test import this module; it imports both
table modules so none is missing because nobody happened to import it. Views are described as
tables for SELECTs but are not migration targets (`include_object` leaves them out).
"""

from __future__ import annotations

from typing import Any

from archive.index import (  # noqa: F401 (registers its tables)
    commons_tables,
    identity_tables,
    release_tables,
)
from archive.index.tables import metadata

__all__ = ["VIEWS", "include_object", "metadata"]

VIEWS = frozenset({commons_tables.study_case.name})


def include_object(obj: Any, name: str | None, type_: str, reflected: bool,
                   compare_to: Any) -> bool:
    """Autogenerate filter: compare tables, columns, indexes and constraints, never views."""
    if type_ == "table" and (name or "").startswith("procrastinate_"):
        return False  # the task queue's tables: migration 0014 applies procrastinate's schema
    return not (type_ == "table" and name in VIEWS)
