"""`archive import PATH…`: walk files and folders, ingest each through the same core."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from pydicom.filereader import read_file_meta_info
from tqdm import tqdm

from archive.blobs import spool_file_async
from archive.config import Settings
from archive.core import Caller, Core
from archive.errors import ArchiveError
from archive.ingest import ingest
from archive.runtime import open_core

# Files in flight at once: each batch of the group commit then carries up to this many instances
# (one flush and one index transaction for all of them); 4 made batches of ≤ 4 (issue 14).
PARALLEL = 16
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage (PS3.10 DICOMDIR)


def skip_reason(path: Path) -> str | None:
    """Why a file on a CD/USB stick is not an instance to store, or None when it looks like one.

    DICOMDIR, README, autorun.inf, viewers' files and the like are reported as skipped, not as
    failures: only DICOM files that cannot be stored make `archive import` exit non-zero.
    """
    try:
        with open(path, "rb") as fp:
            head = fp.read(132)
    except OSError:
        return None  # let the import report the real error as a failure
    if head[128:132] != b"DICM" and head[:2] not in (b"\x02\x00", b"\x08\x00"):
        return "not DICOM"  # neither a preamble nor a group 0002/0008 element first
    if path.name.upper() == "DICOMDIR":
        return "DICOMDIR"
    try:
        meta = read_file_meta_info(path)
    except Exception:  # pydicom raises many types; ingest will give the real reason
        return None
    return "DICOMDIR" if meta.get("MediaStorageSOPClassUID") == DICOMDIR_CLASS else None


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
        # The local operator works on the database directly: as privileged as a curator.
        caller = Caller(site=args.site, dataset=args.dataset, collection=args.collection,
                        ae_title=None, roles=frozenset({"admin"}))
        counts, failures, skipped = await _import_all(core, files, caller, not args.no_progress)
    for p in missing:
        failures.append((p, "no such file or directory"))
    print(f"stored {counts['stored'] + counts['replaced']}, duplicates {counts['duplicate']}, "
          f"replaced {counts['replaced']}, skipped {sum(skipped.values())}{_why(skipped)}, "
          f"failed {len(failures)}")
    for path, reason in failures:
        print(f"  failed: {path}: {reason}")
    return 1 if failures else 0


def _why(skipped: Counter[str]) -> str:
    return f" ({', '.join(f'{why}: {n}' for why, n in sorted(skipped.items()))})" if skipped else ""


async def _import_all(
    core: Core, files: list[Path], caller: Caller, progress: bool
) -> tuple[Counter[str], list[tuple[Path, str]], Counter[str]]:
    counts: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    failures: list[tuple[Path, str]] = []
    sem = asyncio.Semaphore(PARALLEL)
    bar = tqdm(total=len(files), unit="file", disable=not progress)

    async def one(path: Path) -> None:
        async with sem:
            try:
                why = await asyncio.to_thread(skip_reason, path)
                if why:
                    skipped[why] += 1
                    return
                spooled = await spool_file_async(core, path)
                stored = await ingest(core, spooled, caller)
                counts[stored.outcome] += 1
            except ArchiveError as exc:
                failures.append((path, exc.reason))
            except OSError as exc:  # reading the source file
                failures.append((path, str(exc)))
            finally:
                bar.update(1)

    await asyncio.gather(*(one(p) for p in files))
    bar.close()
    return counts, failures, skipped
