"""The process's facet table: kept in memory, caught up with PostgreSQL on every explore.

One `FacetCache` per process (`Core.facets`, created on the first explore). Each request:

1. catches the shared table up inside the request's snapshot (rows a refresh rewrote since the
   table's revision, studies removed since; archive.index.facet_rows.changed_rows), under a
   lock so two requests do not both apply the same rows;
2. overlays, for this request only, the current values of the studies whose change is marked
   but not refreshed yet (`marked_rows`).

The table a request counts on is therefore the facet rows *as of its snapshot*: every committed
change is either refreshed (and fetched by 1) or still marked (and overlaid by 2). Visibility
and non-memory filters are SQL in the same snapshot (archive.commons.explore), so counts agree
with QIDO-RS.

Memory: about 150 bytes per study at the bench's shape (29 facets; bench/portal_facets.py
prints it), i.e. ~15 MB per 100,000 studies per process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from archive.commons.facet_table import Dictionaries, Table, apply, empty
from archive.index import facet_rows

COMPACT_DEAD_SHARE = 0.25  # rebuild from scratch once a quarter of the rows are deleted ones


@dataclass
class FacetCache:
    """The table, the value dictionaries and the catch-up lock of one process."""

    table: Table = field(default_factory=lambda: empty(facet_rows.SCALAR_COLUMNS,
                                                       facet_rows.ARRAY_COLUMNS))
    dicts: Dictionaries = field(default_factory=Dictionaries)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def current(self, conn: facet_rows.Connection) -> Table:
        """The table as of `conn`'s snapshot (see the module doc)."""
        async with self.lock:
            changed = await facet_rows.changed_rows(conn, self.table.rev)
            if changed.rows or changed.gone or changed.rev != self.table.rev:
                self.table = apply(self.table, changed.names, changed.rows, changed.gone,
                                   self.dicts, changed.rev)
            table = self.table
            if len(table) > 1000 and (~table.alive).mean() > COMPACT_DEAD_SHARE:
                self.table = empty(facet_rows.SCALAR_COLUMNS, facet_rows.ARRAY_COLUMNS)
        marked = await facet_rows.marked_rows(conn)
        if marked.rows or marked.gone:
            table = apply(table, marked.names, marked.rows, marked.gone, self.dicts)
        return table

    def nbytes(self) -> int:
        """Memory of the arrays (the dictionaries come on top: one entry per distinct value)."""
        t = self.table
        return int(t.pks.nbytes + t.order.nbytes + t.alive.nbytes
                   + sum(a.nbytes for a in t.scalars.values())
                   + sum(p.rows.nbytes + p.codes.nbytes for p in t.arrays.values()))
