"""Who is asking: a value every door builds and every use case takes.

Its own module (re-exported by `archive.core`) so that the index layer can read it without
importing the core that imports the index.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: built by each door (calling AE title, HTTP credentials, STOW parameters)."""

    ae_title: str | None = None
    site: str | None = None
    dataset: str | None = None
    collection: str | None = None
    may_see_sequestered: bool = False
    cohort: str | None = None
    roles: frozenset[str] = frozenset()
    actor: str | None = None  # "kind:subject" of an authenticated caller (cohort ownership)


__all__ = ["Caller"]
