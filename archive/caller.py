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

    @property
    def may_change_any_site(self) -> bool:
        """Curators and admins may replace instances and add to studies of any site/collection;
        everyone else (the safe default: no roles) only to what their own site stored."""
        return bool(self.roles & PRIVILEGED_ROLES)


PRIVILEGED_ROLES = frozenset({"curator", "admin"})


__all__ = ["PRIVILEGED_ROLES", "Caller"]
