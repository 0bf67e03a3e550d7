"""Core: the dependencies every use case takes, assembled once by `archive.runtime.open_core`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from archive.caller import Caller as Caller
from archive.config import Settings
from archive.index.handles import Engine
from archive.metrics import Metrics
from storage.base import BlobStore

if TYPE_CHECKING:
    from archive.identity.audit_log import AuditWriter
    from archive.identity.service import IdentityService
    from archive.index.writes import Attribution
    from archive.instance import InstanceFacts
    from archive.workers import Workers
    from storage.base import Spooled


# Namespaced query keys (e.g. "commons.site"): (key, raw value) → boolean clause over the study
# table (archive.index.tables.study); raises InvalidQuery for a key or value it does not accept.
FilterCompiler = Callable[[str, str], Any]
# Extra result attributes for includefield keys of a namespace: (connection, study pks, requested
# keys) → {study_pk: {tag: DICOM JSON element}} merged into each matching result.
ResultAttributes = Callable[[Any, list[int], frozenset[str]], Awaitable[dict[int, dict[str, Any]]]]
# An enricher may adjust a study's attribution at ingest (commons: site, collection, dataset).
Enricher = Callable[["InstanceFacts", Caller, "Attribution"], "Attribution"]
# A post-index hook runs inside the ingest transaction (commons: harmonization, linking).
IndexHook = Callable[[Any, "InstanceFacts", int], Awaitable[None]]
# A pre-store hook may replace a spooled instance before it is parsed for indexing and stored
# (commons: de-identification); it returns the new spooled file, or None to keep the original.
PreStoreHook = Callable[["Core", "Spooled", Caller], Awaitable["Spooled | None"]]


@dataclass(slots=True)
class Extensions:
    pre_store: list[PreStoreHook] = field(default_factory=list)
    enrichers: list[Enricher] = field(default_factory=list)
    index_hooks: list[IndexHook] = field(default_factory=list)
    filters: dict[str, FilterCompiler] = field(default_factory=dict)  # prefix "commons." → compiler
    result_attributes: dict[str, ResultAttributes] = field(default_factory=dict)  # prefix → provider


@dataclass(slots=True)
class Core:
    settings: Settings
    engine: Engine
    blobs: BlobStore  # the backend is chosen by the composition root only
    executor: Executor | None = None
    workers: Workers | None = None  # parse/transcode processes (None: threads)
    extensions: Extensions = field(default_factory=Extensions)
    in_flight: int = 0  # ingests running (any door)
    requests_in_flight: int = 0  # HTTP requests being handled (for graceful drain)
    committer: Any = None  # archive.group_commit.GroupCommitter, created on first ingest
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    metrics: Metrics = field(default_factory=Metrics)  # /metrics (issue 13)
    suggestions: Any = None  # archive.commons.suggest.SuggestionService: one per process
    facets: Any = None  # archive.commons.facet_cache.FacetCache: one per process, on first use
    identity: IdentityService | None = None  # authenticator + audit writer (archive.runtime)

    @property
    def audit(self) -> AuditWriter | None:
        """The batched audit writer, when the identity service runs (doors record events)."""
        return self.identity.audit if self.identity is not None else None

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
