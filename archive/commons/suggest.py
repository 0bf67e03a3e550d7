"""Suggested LOINC codes as a service: one `Suggester` per process, learning from approvals.

The suggester (archive.curation.loinc_suggest) embeds every Playbook term and exemplar once,
which takes a moment, so the process keeps one, owned by the Core (`core.suggestions`), and
rebuilds it only when the mapping version moves (a curator approved, changed or imported a
mapping): the approved descriptions become exemplars, so it learns from its curators. Codes a
curator imported beyond the shipped table (`archive mapping import`) become terms too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from archive.commons.harmonize import current_version
from archive.core import Core
from archive.curation.loinc_suggest import (
    ApprovedMapping,
    PlaybookTerm,
    Suggester,
    Suggestion,
    modality_groups,
    shipped_terms,
)
from archive.curation.loinc_text import features
from archive.errors import InvalidRequest
from archive.index import mappings as rows_of
from archive.index.handles import Connection

MAX_LIMIT = 20


class SuggestionService:
    """Holds the process's Suggester and the mapping version it was built at."""

    def __init__(self) -> None:
        self._suggester: Suggester | None = None
        self._version = -1
        self._lock = asyncio.Lock()

    async def suggester(self, core: Core) -> Suggester:
        async with core.engine.connect() as conn:
            version = await current_version(conn)
            if self._suggester is not None and version == self._version:
                return self._suggester
            approved, extra = await _approved(conn), await _imported_terms(conn)
        async with self._lock:
            if self._suggester is None or version != self._version:
                terms = shipped_terms()
                known = {t.loinc_code for t in terms}
                terms += [t for t in extra if t.loinc_code not in known]
                self._suggester = await core.run_blocking(Suggester, terms, approved)
                self._version = version
            return self._suggester

    async def suggest(self, core: Core, modality: str | None, description: str,
                      limit: int = 3) -> list[Suggestion]:
        suggester = await self.suggester(core)
        return await core.run_blocking(suggester.suggest, modality, description, limit)

    async def annotate(self, core: Core, rows: Sequence[dict[str, Any]], limit: int = 3,
                       modality_key: str = "modality",
                       description_key: str = "example") -> list[dict[str, Any]]:
        """Each unmapped-report row with its top `limit` suggestions added."""
        suggester = await self.suggester(core)

        def run() -> list[dict[str, Any]]:
            return [dict(r) | {"suggestions": [s.as_dict() for s in suggester.suggest(
                r.get(modality_key), str(r.get(description_key) or ""), limit)]} for r in rows]
        return list(await core.run_blocking(run))


def service(core: Core) -> SuggestionService:
    """The Core's suggestion service, created on first use (one per process)."""
    if core.suggestions is None:
        core.suggestions = SuggestionService()
    assert isinstance(core.suggestions, SuggestionService)
    return core.suggestions


def parse_limit(raw: str | None, default: int = 3) -> int:
    if raw is None:
        return default
    try:
        n = int(raw)
    except ValueError:
        raise InvalidRequest(f"limit must be an integer, not {raw!r}") from None
    if not 1 <= n <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be within 1..{MAX_LIMIT}")
    return n


async def _approved(conn: Connection) -> list[ApprovedMapping]:
    rows = await rows_of.approved_mappings(conn)
    return [ApprovedMapping(r.modality_norm, r.raw_example or r.description_norm, r.loinc_code,
                            r.long_common_name or "") for r in rows]


async def _imported_terms(conn: Connection) -> list[PlaybookTerm]:
    rows = await rows_of.terms(conn)
    return [PlaybookTerm(r.code, r.long_common_name or "",
                         modality_groups(r.modality or "") | features(r.long_common_name or "").modalities)
            for r in rows if r.long_common_name]
