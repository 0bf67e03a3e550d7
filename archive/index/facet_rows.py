"""The SQL behind the in-memory facet table (archive/commons/facet_cache.py).

A process keeps one row per study in memory: the study's visibility columns, its facet values
and the raw values of the `commons.` keys a filter can be evaluated on in memory. This module
reads those rows (all of them, those a refresh rewrote since revision R, or the current values
of studies whose change is marked but not yet refreshed) and answers the two questions a
request cannot answer from memory: which of a column's distinct values a filter value matches
(evaluated by the same SQL matching functions as QIDO-RS, over the values instead of the rows)
and which studies a block of other filters selects (`study_select`, QIDO's own SQL).

Every read of one request runs in one REPEATABLE READ snapshot (`snapshot`), so rows, marks and
selections agree with each other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Integer,
    Select,
    Text,
    bindparam,
    cast,
    column,
    func,
    literal,
    select,
    table,
    type_coerce,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.types import NullType

from archive.caller import Caller
from archive.index.commons_fields import PREFIX, Field, field_for
from archive.index.commons_filters import match
from archive.index.commons_tables import study_facet, study_facet_dirty, study_facet_gone
from archive.index.tables import patient, study
from archive.index.visibility import hidden_from, visible_to

Connection = AsyncConnection  # for the service's type hints (it never imports SQLAlchemy)
WORK_MEM = "32MB"
# the study's own columns a row carries (visibility, study-level facets and filters)
STUDY_COLUMNS = ("patient_pk", "collection", "site", "dataset", "study_date", "modalities")
# the facet row's columns (migration 0015's view and table; `rev` is the table's own)
FACET_COLUMNS = tuple(c.name for c in study_facet.c if c.name not in ("study_pk", "rev"))
# the view the refresh reads: current values of a marked study (same columns as the table)
_source = table("study_facet_source", column("study_pk", BigInteger),
                *[column(c.name, c.type) for c in study_facet.c if c.name != "rev"])
# which of a row's columns hold one value, which an array of values
ARRAY_COLUMNS = ("modalities", *tuple(c.name for c in study_facet.c if isinstance(c.type, ARRAY)))
SCALAR_COLUMNS = tuple(c for c in STUDY_COLUMNS + FACET_COLUMNS if c not in ARRAY_COLUMNS)
_SQL_TYPES = {"text": Text, "int": BigInteger, "uint": BigInteger, "bool": Boolean}


def filter_column(key: str) -> str | None:
    """The row column holding a `commons.` key's raw value when a filter on it can be evaluated
    in memory (one value per study, no fixed extra condition), else None. The study
    description is left to SQL: its distinct values are as many as the studies."""
    f = field_for(key) if key.startswith(PREFIX) else None
    if f is None or f.extra is not None or key == "commons.study_description":
        return None
    name = f.column.name if f.scope == "study" else \
        key.removeprefix(PREFIX).replace(".", "_") if f.scope in ("case", "loinc") else None
    return name if name in STUDY_COLUMNS or name in FACET_COLUMNS else None


@dataclass(frozen=True, slots=True)
class Rows:
    """Rows read at one snapshot: `names` (pk first), the row tuples, and the studies whose
    row is gone (deleted); `rev` is the highest revision seen (or the one asked for)."""

    names: tuple[str, ...]
    rows: Sequence[Sequence[Any]]
    gone: list[int]
    rev: int


@asynccontextmanager
async def snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A read-only REPEATABLE READ transaction, planned for its values (custom plans, no JIT),
    after bringing `study_facet` up to date with the marks committed so far."""
    async with engine.connect() as conn:
        await conn.execute(select(func.study_facet_refresh()))
        await conn.commit()
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ",
                                            postgresql_readonly=True)
        async with conn.begin():
            await conn.execute(select(func.set_config("plan_cache_mode", "force_custom_plan",
                                                      True),
                                      func.set_config("jit", "off", True),
                                      func.set_config("work_mem", WORK_MEM, True)))
            yield conn


def _raw(col: Any) -> Any:
    """A column as the driver decodes it: SQLAlchemy's ARRAY result processing re-walked every
    list (1.3 million per 100,000 rows: most of a full load's time)."""
    return type_coerce(col, NullType()).label(col.name)


def _row_select(facet: Any) -> Select[Any]:
    return select(study.c.pk, *[_raw(study.c[c]) for c in STUDY_COLUMNS],
                  *[_raw(facet.c[c]) for c in FACET_COLUMNS])


_CHANGED = (f"SELECT s.pk, {', '.join(f's.{c}' for c in STUDY_COLUMNS)}, "
            f"{', '.join(f'f.{c}' for c in FACET_COLUMNS)}, f.rev "
            f"FROM study s JOIN study_facet f ON f.study_pk = s.pk WHERE f.rev > $1")


async def changed_rows(conn: AsyncConnection, since: int) -> Rows:
    """Rows a refresh wrote after revision `since` (every row when `since` < 0), and the
    studies removed after it. Read through the driver itself (same connection, same
    snapshot): at 100,000 rows of 35 columns, SQLAlchemy's row and ARRAY processing took
    longer than PostgreSQL and asyncpg together."""
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    records = await driver.fetch(_CHANGED, since)
    names = ("pk", *STUDY_COLUMNS, *FACET_COLUMNS)
    rev = max((r[-1] for r in records), default=since)
    gone = []
    if since >= 0:
        for pk, g_rev in await conn.execute(
                select(study_facet_gone.c.study_pk, study_facet_gone.c.rev)
                .where(study_facet_gone.c.rev > since)):
            gone.append(pk)
            rev = max(rev, g_rev)
    return Rows(names, [r[:-1] for r in records], gone, rev)


async def marked_rows(conn: AsyncConnection) -> Rows:
    """Current values of the studies marked as changed and not refreshed yet (read from the
    refresh's own view); a marked study that no longer exists is `gone`."""
    marks = study_facet_dirty
    by_case = (select(study.c.pk).select_from(study.join(patient, patient.c.pk ==
                                                         study.c.patient_pk))
               .where(patient.c.patient_id.in_(select(marks.c.case_id)
                                              .where(marks.c.case_id.is_not(None)))))
    pks = [pk for (pk,) in await conn.execute(
        select(marks.c.study_pk).where(marks.c.study_pk.is_not(None)).union(by_case))]
    if not pks:
        return Rows((), [], [], 0)
    stmt = (_row_select(_source)
            .select_from(study.join(_source, _source.c.study_pk == study.c.pk))
            .where(study.c.pk == func.any(cast(bindparam("pks", pks), ARRAY(BigInteger)))))
    result = await conn.execute(stmt)
    rows = list(result)
    found = {r[0] for r in rows}
    return Rows(tuple(result.keys()), rows, [pk for pk in pks if pk not in found], 0)


def _match_values(j: int, f: Field, raw: str, values: list[Any]) -> Select[Any]:
    """Positions (1-based) in `values` that filter value `raw` on field `f` matches, tagged j."""
    sql_type = _SQL_TYPES[f.kind]
    v = func.unnest(cast(bindparam(f"vals{j}", values, type_=ARRAY(sql_type)),
                         ARRAY(sql_type))).table_valued("v", with_ordinality="i").render_derived(f"vals{j}")
    cond: ColumnElement[bool] = match(replace(f, column=v.c.v), raw)
    return select(literal(j, Integer).label("j"), v.c.i).select_from(v).where(cond)


def is_universal(raw: str) -> bool:
    """An empty value (after separators) matches every row, a NULL one included."""
    return not raw.strip().strip(",\\")


def compile_checked(key: str, raw: str) -> None:
    """Raise InvalidQuery for a value the key does not accept (as QIDO-RS would)."""
    f = field_for(key)
    if f is not None and not is_universal(raw):
        match(f, raw)


async def matching_values(conn: AsyncConnection,
                          asks: list[tuple[str, str, list[Any]]]) -> list[set[int]]:
    """For each (key, raw value, distinct non-NULL values of its column): the positions
    (0-based) of the values it matches. One round trip for all of them."""
    parts = []
    for j, (key, raw, values) in enumerate(asks):
        f = field_for(key)
        if f is None:
            raise ValueError(f"not a commons key: {key}")
        parts.append(_match_values(j, f, raw, values))
    out: list[set[int]] = [set() for _ in asks]
    if not parts:
        return out
    stmt = parts[0] if len(parts) == 1 else union_all(*parts)
    for j, i in await conn.execute(stmt):
        out[j].add(i - 1)
    return out


async def selected_pks(conn: AsyncConnection, selects: list[Any]) -> list[list[int]]:
    """The study pks of each SELECT (study_select), in one round trip: one array per select."""
    if not selects:
        return []
    arrays = [select(func.coalesce(func.array_agg(s.subquery().c.pk),
                                   cast(literal("{}"), ARRAY(BigInteger)))).scalar_subquery()
              for s in selects]
    row = (await conn.execute(select(*arrays))).one()
    return [list(a) for a in row]


async def visibility(conn: AsyncConnection, caller: Caller) -> tuple[bool, list[int]]:
    """Which studies the caller may see, by the one rule (`visible_to`): (True, pks) when only
    the listed studies are visible (a cohort root), else (False, pks) with the studies that
    are NOT visible (sequestered, staged: few, found through the collection index)."""
    if caller.cohort is not None:
        rows = await conn.execute(select(study.c.pk).where(visible_to(caller).is_(True)))
        return True, [pk for (pk,) in rows]
    rows = await conn.execute(select(study.c.pk).where(hidden_from(caller)))
    return False, [pk for (pk,) in rows]


__all__ = [
    "ARRAY_COLUMNS",
    "SCALAR_COLUMNS",
    "Connection",
    "Rows",
    "changed_rows",
    "compile_checked",
    "filter_column",
    "is_universal",
    "marked_rows",
    "matching_values",
    "selected_pks",
    "snapshot",
    "visibility",
]
