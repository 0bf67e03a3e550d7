"""The memory flags of `archive serve`: glibc malloc tuning (archive/allocator.py) and the
tracemalloc diagnostic (archive/memtrace.py). Their ARCHIVE_* variables and TOML keys work too
(archive/config.py); values are parsed and checked there, so the flags take plain strings."""

from __future__ import annotations

import argparse

MEMORY_SETTINGS = ("malloc_arena_max", "malloc_trim_seconds", "memtrace_dir",
                   "memtrace_every_seconds")


def add_memory_flags(s: argparse.ArgumentParser) -> None:
    s.add_argument("--malloc-arena-max", metavar="N",
                   help="cap glibc's malloc arenas (0: glibc's default), so threads reuse each "
                        "other's free memory (ARCHIVE_MALLOC_ARENA_MAX, 2)")
    s.add_argument("--malloc-trim-seconds", metavar="SECONDS",
                   help="give malloc's free pages back to the kernel this often, or never "
                        "with 0 (ARCHIVE_MALLOC_TRIM_SECONDS, 60)")
    s.add_argument("--memtrace-dir", metavar="DIR",
                   help="diagnostic, off when unset: trace Python allocations and write "
                        "snapshots here; slows the server (ARCHIVE_MEMTRACE_DIR)")
    s.add_argument("--memtrace-every-seconds", metavar="SECONDS",
                   help="seconds between two --memtrace-dir snapshots "
                        "(ARCHIVE_MEMTRACE_EVERY_SECONDS, 300)")
