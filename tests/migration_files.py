"""A migration file loaded as a module, for tests that reuse its SQL or its upgrade()."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from archive.index.engine import MIGRATIONS_DIR


def load_migration(filename: str) -> ModuleType:
    """`archive/migrations/versions/<filename>` (migration files are not importable by name:
    their names start with digits, and alembic loads them by path)."""
    path = MIGRATIONS_DIR / "versions" / filename
    spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
