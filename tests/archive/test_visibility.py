"""`hidden_from` (the index-friendly form facet counts use) hides exactly what `visible_to` hides,
for every kind of caller, on studies of every collection and site (a real PostgreSQL)."""

from __future__ import annotations

import asyncio
import itertools

from sqlalchemy import select, text

from archive.caller import Caller
from archive.index.engine import create_engine
from archive.index.tables import study
from archive.index.visibility import hidden_from, visible_to

COLLECTIONS = ["public", "sequestered", "staged", "test-set", "other"]
SITES = ["NORTH", "SOUTH", None]
CALLERS = [
    Caller(),
    Caller(roles=frozenset({"reader"}), site="NORTH"),
    Caller(roles=frozenset({"contributor"}), site="NORTH"),
    Caller(roles=frozenset({"contributor"}), site=None),
    Caller(roles=frozenset({"curator"}), may_see_sequestered=True),
]


async def _compare(url: str) -> list[tuple[Caller, set[int], set[int]]]:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO patient (pk, patient_id, issuer, patient_name, attrs) "
                "VALUES (1, 'P1', '', 'P^1', '{}')"))
            for pk, (collection, site) in enumerate(itertools.product(COLLECTIONS, SITES), 1):
                await conn.execute(text(
                    "INSERT INTO study (pk, patient_pk, study_uid, collection, site, attrs) "
                    "VALUES (:pk, 1, :uid, :c, :s, '{}')"),
                    {"pk": pk, "uid": f"1.2.3.{pk}", "c": collection, "s": site})
        out = []
        async with engine.connect() as conn:
            for caller in CALLERS:
                hidden = {pk for (pk,) in await conn.execute(
                    select(study.c.pk).where(hidden_from(caller)))}
                not_visible = {pk for (pk,) in await conn.execute(
                    select(study.c.pk).where(visible_to(caller).is_not(True)))}
                out.append((caller, hidden, not_visible))
        return out
    finally:
        await engine.dispose()


def test_hidden_from_is_exactly_not_visible(database_url: str) -> None:
    results = asyncio.run(_compare(database_url))
    for caller, hidden, not_visible in results:
        assert hidden == not_visible, caller
    # the rule does hide something for readers, and nothing from a curator
    assert results[0][1] and results[-1][1] == set()
