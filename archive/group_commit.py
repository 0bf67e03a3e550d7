"""Group commit: many instances made durable and indexed per flush, each acknowledged only after.

Ingests hand over a parsed instance and its spool file; a writer takes everything pending and
  1. answers identical re-sends from one index lookup (no blob is written for them),
  2. journals their new blob keys (one committed statement, archive.index.blob_journal), then
     makes the files durable with one flush (BlobStore.commit_many: the filesystem backend
     fsyncs them in parallel, renames them into place and fsyncs each directory),
  3. indexes them in ONE transaction, a savepoint each (a bad instance fails alone), in
     patient → study → series order (two writers always lock rows in the same order), adds a
     batch of new instances to its series' and studies' aggregates (anything else recounts
     every touched series and study once), and commits,
and only then resolves each caller's future. While one flush runs the next batch gathers, so
under load each disk flush and each commit carries many instances; an instance arriving alone
waits for nobody. The guarantees of `archive.ingest` are unchanged: success means the file is
fsynced and the index row committed; a crash leaves at worst journaled orphan blobs (which the
start-up sweep removes), never a row without its file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from archive.blobs import as_outcome
from archive.core import Core
from archive.errors import ArchiveError, ArchiveUnavailable, InvalidInstance
from archive.index import blob_journal
from archive.index.db_errors import (
    DRIVER_ERRORS,
    UNAVAILABLE,
    DatabaseError,
    is_bad_value,
    is_retryable,
    is_unavailable,
)
from archive.index.digests import stored_digests_and_journal
from archive.index.handles import Connection
from archive.index.writes import (
    Attribution,
    BatchEntry,
    Indexed,
    recount_in_transaction,
    upsert_batch,
    upsert_instance,
)
from archive.instance import InstanceFacts
from storage.base import Spooled

log = logging.getLogger("archive.group_commit")

MAX_BATCH = 64
WRITERS = 2
# What ends a lease connection: the database went away, or the session broke.
_LEASE_ERRORS: tuple[type[BaseException], ...] = (*UNAVAILABLE, DatabaseError, ConnectionError,
                                                  *DRIVER_ERRORS)
# A statement failed: through SQLAlchemy (wrapped) or through the driver (archive.index.driver).
_STATEMENT_ERRORS: tuple[type[BaseException], ...] = (DatabaseError, *DRIVER_ERRORS)

class _RetryIsolated(Exception):
    """An instance of an optimistic (savepoint-free) batch failed: redo it isolated."""


@dataclass(slots=True)
class _Item:
    facts: InstanceFacts
    spooled: Spooled
    attribution: Attribution
    future: asyncio.Future[tuple[Indexed, str | None]]
    header_json: str | None = None  # facts.header encoded by the parse worker
    key: str | None = None
    error: BaseException | None = None
    indexed: Indexed | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class GroupCommitter:
    """Per-core, per-loop batcher of the ingest write path (blob durability + index)."""

    def __init__(self, core: Core, loop: asyncio.AbstractEventLoop) -> None:
        self.core, self.loop = core, loop
        self._pending: list[_Item] = []
        self._wake = asyncio.Event()
        self._writers = [loop.create_task(self._writer()) for _ in range(WRITERS)]
        # The connection holding this writer's journal lock (see archive.index.blob_journal).
        self._lease: Connection | None = None
        self._owner = 0
        self._lease_lock = asyncio.Lock()
        self._flushing = 0

    async def release_if_idle(self) -> None:
        """Drop the journal lease when nothing is queued or being written: an idle archive then
        holds no database session, so a PostgreSQL "smart" shutdown can complete."""
        if self._pending or self._flushing or self._lease is None or self._lease_lock.locked():
            return
        async with self._lease_lock:
            await self._drop_lease()

    async def submit(
        self, facts: InstanceFacts, spooled: Spooled, attribution: Attribution,
        header_json: str | None = None,
    ) -> tuple[Indexed, str | None]:
        """Durably store and index one instance; returns (indexed, blob key or None).
        `header_json`: the header as JSON when the parse worker encoded it (facts.header is
        then empty)."""
        future: asyncio.Future[tuple[Indexed, str | None]] = self.loop.create_future()
        self._pending.append(_Item(facts, spooled, attribution, future, header_json))
        self._wake.set()
        return await future

    async def close(self) -> None:
        for task in self._writers:
            task.cancel()
        for task in self._writers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop_lease()

    async def _writer(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            self._flushing += 1
            try:
                await self._flush(batch)
            except BaseException as exc:
                for item in batch:
                    if not item.future.done():
                        self._fail(item, exc if isinstance(exc, Exception) else
                                   ArchiveUnavailable("ingest interrupted"))
                if not isinstance(exc, Exception):
                    raise
            finally:
                self._flushing -= 1

    async def _flush(self, batch: list[_Item]) -> None:
        metrics, started = self.core.metrics, self.loop.time()
        todo = await self._skip_identical_and_journal(batch)
        if todo:
            await self._make_durable(todo)
            await self._index([i for i in todo if i.error is None])
            done = [i for i in todo if i.error is None and i.indexed is not None]
            metrics.batch_size.observe(len(todo))
            metrics.instances_stored.inc(len(done))
            metrics.bytes_stored.inc(sum(i.spooled.size for i in done))
        metrics.ingest_seconds.observe(self.loop.time() - started)
        for item in batch:
            if item.future.done():
                continue
            if item.error is not None:
                self._fail(item, item.error)
            else:
                assert item.indexed is not None
                item.future.set_result((item.indexed, item.key))

    async def _skip_identical_and_journal(self, batch: list[_Item]) -> list[_Item]:
        """Answer identical re-sends from the index without writing a blob, and journal new
        keys for the rest (see archive.index.blob_journal) — one statement on this writer's
        autocommit lease connection, so a batch checks out no pooled connection (and pings
        none) before its index transaction, and the journal is committed before any blob is."""
        blobs = self.core.blobs
        stored: dict[str, str] = {}
        for item in batch:
            item.key = item.key or blobs.new_key()

        async def lookup_and_journal(conn: Connection) -> None:
            nonlocal stored
            stored = await stored_digests_and_journal(
                conn, [(i.key or "", i.facts.sop_uid, i.spooled.sha256) for i in batch],
                self._owner)

        await self._on_lease(lookup_and_journal)
        todo: list[_Item] = []
        for item in batch:
            if stored.get(item.facts.sop_uid) == item.spooled.sha256:
                item.key = None  # never journaled, never written
                item.future.set_result((Indexed("duplicate"), None))
            else:
                todo.append(item)
        return todo

    async def _make_durable(self, items: list[_Item]) -> None:
        """Commit the blobs under their journaled keys (one flush for the batch)."""
        blobs = self.core.blobs
        keys = [i.key or "" for i in items]
        outcomes = await self.core.run_blocking(
            blobs.commit_many, [i.spooled for i in items], keys)
        for item, outcome in zip(items, outcomes, strict=True):
            outcome = as_outcome(outcome)  # storage errors → archive errors
            if isinstance(outcome, BaseException):
                item.error, item.key = outcome, None
            else:
                item.key = outcome

    async def _on_lease(self, work: Callable[[Connection], Awaitable[None]]) -> None:
        """Run `work` on this writer's lease connection, which holds its journal lock (a sweep
        on another node leaves journaled keys alone while the lock is held and they are younger
        than its grace). A lease that died (PostgreSQL restarted) is renewed once."""
        async with self._lease_lock:
            for _attempt in range(2):
                reused = self._lease is not None
                try:
                    if self._lease is None:
                        owner, conn = blob_journal.new_owner(), await self.core.engine.connect()
                        self._lease = conn
                        # autocommit: each statement on the lease commits by itself (no BEGIN
                        # and COMMIT round trips); the lock below is session-level anyway
                        await conn.execution_options(isolation_level="AUTOCOMMIT")
                        await blob_journal.hold_owner(conn, owner)
                        self._owner = owner
                    await work(self._lease)
                    return
                except _LEASE_ERRORS as exc:
                    await self._drop_lease()
                    if not reused:
                        raise ArchiveUnavailable(f"index unavailable: {exc}") from exc

    async def _drop_lease(self) -> None:
        conn, self._lease = self._lease, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()  # closes the session, so its lock is released
            with contextlib.suppress(Exception):
                await conn.close()

    async def _index(self, items: list[_Item]) -> None:
        """Index the batch in one transaction. First without savepoints (two statements fewer
        per instance); if any instance fails, the batch is redone with a savepoint each so
        that it fails alone."""
        if not items:
            return
        ordered = sorted(items, key=_lock_order)
        try:
            try:
                await self._index_once(ordered, isolate=False)
            except _RetryIsolated as retry:
                # expected and handled (a deadlock with the other writer, a bad value): a
                # debug line; an INFO line per redo went to the console of `archive import`
                log.debug("batch of %d redone with savepoints: %s", len(ordered), retry.__cause__)
                for item in ordered:
                    item.indexed, item.error = None, None
                await self._index_once(ordered, isolate=True)
        except UNAVAILABLE as exc:
            for item in items:
                item.indexed, item.error = None, ArchiveUnavailable(f"index unavailable: {exc}")
        except _STATEMENT_ERRORS as exc:
            for item in items:
                item.indexed, item.error = None, _db_error(exc)

    async def _index_once(self, ordered: list[_Item], isolate: bool) -> None:
        policy = self.core.settings.duplicate_policy
        hooks = self.core.extensions.index_hooks
        async with self.core.engine.begin() as conn:
            series_pks: set[int] = set()
            claimed = await blob_journal.claim_for_index(conn, [i.key or "" for i in ordered])
            if not isolate and await self._index_batch(conn, ordered, claimed, series_pks):
                ordered = []  # indexed with a few multi-row statements; recount and journal below
            for item in ordered:
                assert item.key is not None
                if item.key not in claimed:  # a sweep took it: the blob may be gone
                    item.error = ArchiveUnavailable("stored file was swept before indexing, retry")
                    continue
                blob = {"blob_key": item.key, "size_bytes": item.spooled.size,
                        "sha256": item.spooled.sha256}
                try:
                    async with conn.begin_nested() if isolate else contextlib.nullcontext():
                        indexed = await upsert_instance(
                            conn, item.facts, blob, item.attribution, policy, recount_now=False,
                            header_json=item.header_json,
                        )
                        for hook in hooks:
                            await hook(conn, item.facts, indexed.study_pk)
                except UNAVAILABLE:
                    raise
                except Exception as exc:  # this instance fails alone
                    if not isolate:
                        raise _RetryIsolated from exc
                    item.error = _db_error(exc)
                    continue
                item.indexed = indexed
                series_pks.update(indexed.series_pks)
            if series_pks:  # inside the transaction: claim_for_index began it
                await recount_in_transaction(conn, sorted(series_pks))
            await blob_journal.journal(conn, _unreferenced(ordered, claimed),
                                       blob_journal.UNREFERENCED)

    async def _index_batch(self, conn: Connection, ordered: list[_Item], claimed: set[str],
                           series_pks: set[int]) -> bool:
        """The batch's new instances with a few multi-row statements (`upsert_batch`); False
        when the batch needs the per-instance path (an already indexed SOP instance). Index
        hooks run once per touched study, after its rows are written. A database error raises
        _RetryIsolated: the transaction is rolled back and the batch redone per instance."""
        for item in ordered:
            if item.key not in claimed:  # a sweep took it: the blob may be gone
                item.error = ArchiveUnavailable("stored file was swept before indexing, retry")
        todo = [i for i in ordered if i.error is None]
        if not todo:
            return True
        entries = [BatchEntry(i.facts, {"blob_key": i.key, "size_bytes": i.spooled.size,
                                        "sha256": i.spooled.sha256}, i.attribution,
                              i.header_json)
                   for i in todo]
        try:
            outcomes = await upsert_batch(conn, entries)
            if outcomes is None:
                for item in ordered:
                    item.error = None
                return False
            last: dict[int, _Item] = {}
            for item, outcome in zip(todo, outcomes, strict=True):
                if isinstance(outcome, Indexed):
                    item.indexed = outcome
                    series_pks.update(outcome.series_pks)
                    last[outcome.study_pk] = item
                else:
                    item.error = outcome
            for study_pk, item in last.items():
                for hook in self.core.extensions.index_hooks:
                    await hook(conn, item.facts, study_pk)
        except UNAVAILABLE:
            raise
        except Exception as exc:
            if isinstance(exc, DRIVER_ERRORS) and is_unavailable(exc):
                raise  # the connection failed: no retry on it (_index reports unavailable)
            raise _RetryIsolated from exc
        return True

    def _fail(self, item: _Item, exc: BaseException) -> None:
        if item.key is not None:
            self.core.blobs.delete(item.key)
            item.key = None
        item.future.set_exception(exc)


def _unreferenced(items: list[_Item], claimed: set[str]) -> list[str]:
    """Keys this indexing transaction leaves without an index row (for the sweep's journal)."""
    keys = []
    for item in items:
        if item.key in claimed and (item.error is not None or item.indexed is None
                                    or item.indexed.outcome in ("duplicate", "kept")):
            keys.append(item.key)
        if item.indexed is not None and item.indexed.replaced_blob_key:
            keys.append(item.indexed.replaced_blob_key)
    return keys


def _lock_order(item: _Item) -> tuple[str, str, str, str, str]:
    c = item.facts.columns
    return (str(c.get("patient_id") or ""), str(c.get("issuer") or ""), item.facts.study_uid,
            item.facts.series_uid, item.facts.sop_uid)


def _db_error(exc: BaseException) -> BaseException:
    if isinstance(exc, ArchiveError):
        return exc
    if is_retryable(exc):  # deadlock / serialization failure: matched by asyncpg's class
        return ArchiveUnavailable(f"index busy, retry: {getattr(exc, 'orig', exc)}")
    if is_unavailable(exc):  # PostgreSQL shutting down mid-batch: retry later, not "internal"
        return ArchiveUnavailable(f"index unavailable, retry: {getattr(exc, 'orig', exc)}"[:300])
    if is_bad_value(exc):  # NUL in text, a number out of range: the instance's fault
        return InvalidInstance(f"a value cannot be indexed: {getattr(exc, 'orig', exc)}"[:300])
    return exc


def committer(core: Core) -> GroupCommitter:
    """The group committer of this core (created on first use, on the running loop)."""
    loop = asyncio.get_running_loop()
    found = core.committer
    if not isinstance(found, GroupCommitter) or found.loop is not loop or loop.is_closed():
        found = core.committer = GroupCommitter(core, loop)
    return found


async def release_if_idle(core: Core) -> None:
    """The core's committer drops its journal lease if idle (see GroupCommitter)."""
    found = core.committer
    if isinstance(found, GroupCommitter):
        await found.release_if_idle()


async def close(core: Core) -> None:
    """Stop the writers of this core (after in-flight ingests have finished)."""
    found, core.committer = core.committer, None
    if isinstance(found, GroupCommitter):
        await found.close()
