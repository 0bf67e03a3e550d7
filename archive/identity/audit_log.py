"""The audit trail's storage: a batched writer and the queries behind export and the admin API.

`AuditWriter.record` only appends to an in-memory queue (no await, no I/O), so a store or a
QIDO request pays a few microseconds; a background task writes whatever has gathered as one
INSERT (one array per column), every `batch_size` events or `flush_seconds`, whichever comes first. A full
queue drops events and counts them (and logs) rather than slowing the request path; a failed
INSERT is retried with back-off before its events are counted as dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Protocol

from archive.identity.audit import AuditAction, AuditEvent
from archive.index import audit_store
from archive.index.handles import Connection, Engine

log = logging.getLogger("archive.audit")
MAX_BATCH = 5000  # bounds one statement's size and the events a failed batch can lose


class AuditSink(Protocol):
    """Somewhere else written events go (e.g. syslog); must not block."""

    def send(self, events: Sequence[AuditEvent]) -> None: ...


class AuditWriter:
    def __init__(self, engine: Engine, *, batch_size: int = 500, flush_seconds: float = 0.2,
                 max_queue: int = 100_000, sinks: Sequence[AuditSink] = (),
                 retries: int = 5) -> None:
        self._engine = engine
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.flush_seconds = flush_seconds
        self._queue: asyncio.Queue[AuditEvent] = asyncio.Queue(max_queue)
        self._sinks = tuple(sinks)
        self._retries = retries
        self._full = asyncio.Event()
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.recorded = 0  # accepted into the queue
        self.written = 0  # committed to the table
        self.dropped = 0  # lost (queue full or the database kept failing)
        self.batches = 0  # INSERT statements issued
        self._failed = 0  # events of batches that could not be written

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-writer")

    def record(self, event: AuditEvent) -> None:
        """Queue one event; never blocks, never raises."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 10_000 == 0:
                log.error("audit queue full: events dropped", extra={"dropped": self.dropped})
            return
        self.recorded += 1
        if self._queue.qsize() >= self.batch_size:
            self._full.set()

    async def flush(self) -> None:
        """Wait until every event recorded so far is written (or dropped)."""
        target = self.recorded
        while self.written + self._failed < target and self._task is not None \
                and not self._task.done():
            self._full.set()
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), 1.0)

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._queue.qsize() < self.batch_size - 1 and self.flush_seconds > 0:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.flush_seconds)
            while len(batch) < self.batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(batch)
            self._progress.set()

    async def _write(self, batch: list[AuditEvent]) -> None:
        columns = _columns(batch)
        for attempt in range(self._retries + 1):
            try:
                async with self._engine.begin() as conn:
                    await audit_store.insert_events(conn, columns)
                break
            except Exception as exc:  # the database is down or refusing: retry, then drop
                if attempt == self._retries:
                    self.dropped += len(batch)
                    self._failed += len(batch)
                    log.error("audit events lost: cannot write", extra={
                        "events": len(batch), "error": repr(exc)})
                    return
                await asyncio.sleep(min(0.2 * 2**attempt, 5.0))
        self.written += len(batch)
        self.batches += 1
        for sink in self._sinks:
            sink.send(batch)


def _columns(batch: Sequence[AuditEvent]) -> dict[str, list[Any]]:
    return {
        "time": [e.time for e in batch], "action": [e.action.value for e in batch],
        "event_action": [e.event_action for e in batch],
        "outcome": [int(e.outcome) for e in batch], "actor": [e.actor for e in batch],
        "role": [e.role for e in batch], "kind": [e.kind for e in batch],
        "site": [e.site for e in batch], "source": [e.source for e in batch],
        "uids": ["\\".join(e.study_uids) for e in batch],
        "detail": [json.dumps(dict(e.detail), default=str) for e in batch],
    }


async def query_events(conn: Connection, *, actor: str | None = None,
                       study: str | None = None, action: str | None = None,
                       since: datetime | None = None, until: datetime | None = None,
                       after_pk: int = 0, limit: int = 1000) -> list[tuple[int, AuditEvent]]:
    """Events in time order, filtered; `(pk, event)` pairs so callers can page by pk."""
    rows = await audit_store.event_rows(
        conn, actor=actor, study=study, action=AuditAction.parse(action).value if action else None,
        since=since, until=until, after_pk=after_pk, limit=limit)
    return [(r["pk"], AuditEvent.from_row(r)) for r in rows]


async def iter_events(engine: Engine, page: int = 1000, **filters: object
                      ) -> AsyncIterator[AuditEvent]:
    """All matching events, fetched a page at a time (export of a long trail)."""
    after = 0
    while True:
        async with engine.connect() as conn:
            rows = await query_events(conn, after_pk=after, limit=page, **filters)  # type: ignore[arg-type]
        for _pk, event in rows:
            yield event
        if len(rows) < page:
            return
        after = rows[-1][0]
