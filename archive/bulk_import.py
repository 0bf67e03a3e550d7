"""`archive import PATH…`: walk files and folders, ingest each through the same core."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from archive.config import Settings
from archive.core import Caller, Core
from archive.errors import ArchiveError
from archive.ingest import ingest
from archive.runtime import open_core
from storage.filesystem import NoSpace, SpoolLimitExceeded

PARALLEL = 4


def walk(paths: list[Path]) -> Iterator[Path]:
    for p in paths:
        if p.is_dir():
            for root, _dirs, files in os.walk(p):
                for name in sorted(files):
                    yield Path(root) / name
        elif p.exists():
            yield p


async def run_import(settings: Settings, args: argparse.Namespace) -> int:
    files = list(walk(args.paths))
    missing = [p for p in args.paths if not p.exists()]
    async with open_core(settings) as core:
        caller = Caller(site=args.site, dataset=args.dataset, collection=args.collection,
                        ae_title=None)
        counts, failures = await _import_all(core, files, caller, not args.no_progress)
    for p in missing:
        failures.append((p, "no such file or directory"))
    print(f"stored {counts['stored'] + counts['replaced']}, duplicates {counts['duplicate']}, "
          f"replaced {counts['replaced']}, failed {len(failures)}")
    for path, reason in failures:
        print(f"  failed: {path}: {reason}")
    return 1 if failures else 0


async def _import_all(
    core: Core, files: list[Path], caller: Caller, progress: bool
) -> tuple[Counter[str], list[tuple[Path, str]]]:
    counts: Counter[str] = Counter()
    failures: list[tuple[Path, str]] = []
    sem = asyncio.Semaphore(PARALLEL)
    bar = tqdm(total=len(files), unit="file", disable=not progress)

    async def one(path: Path) -> None:
        async with sem:
            try:
                spooled = await asyncio.to_thread(
                    core.blobs.spool_file, path, core.settings.max_instance_bytes
                )
                stored = await ingest(core, spooled, caller)
                counts[stored.outcome] += 1
            except ArchiveError as exc:
                failures.append((path, exc.reason))
            except (OSError, SpoolLimitExceeded, NoSpace) as exc:
                failures.append((path, str(exc)))
            finally:
                bar.update(1)

    await asyncio.gather(*(one(p) for p in files))
    bar.close()
    return counts, failures
