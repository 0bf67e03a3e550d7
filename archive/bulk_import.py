"""`archive import PATH…`: walk files and folders, ingest each through the same core.

The import works on the database directly, with no HTTP identity, so the audit trail records
who ran it from the operating system: the local user (`getpass.getuser()`), the host, and the
`--site` / `--dataset` / `--collection` it stamped, as PS3.15 A.5.3.9 Import events (data
entering the archive from outside its network doors, e.g. a CD) — one per study with its
instance count, and one failure event with the count of files that could not be stored.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from pydicom.filereader import read_file_meta_info
from tqdm import tqdm

from archive.blobs import spool_file_async
from archive.config import Settings
from archive.core import Caller, Core
from archive.errors import ArchiveError
from archive.identity.audit import AuditAction, AuditEvent, Outcome
from archive.identity.roles import Identity, Kind, Role
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
        per_study: Counter[str] = Counter()
        counts, failures, skipped = await _import_all(core, files, caller, not args.no_progress,
                                                      per_study)
        for p in missing:
            failures.append((p, "no such file or directory"))
        audit_import(core, args, per_study, failures)  # written when the core closes
    print(f"stored {counts['stored'] + counts['replaced']}, duplicates {counts['duplicate']}, "
          f"replaced {counts['replaced']}, skipped {sum(skipped.values())}{_why(skipped)}, "
          f"failed {len(failures)}")
    for path, reason in failures:
        print(f"  failed: {path}: {reason}")
    return 1 if failures else 0


def local_user() -> str:
    """The operating-system user running the command (the actor of its audit events)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment or the password database
        return f"uid:{os.getuid()}"


def audit_import(core: Core, args: argparse.Namespace, per_study: Counter[str],
                 failures: list[tuple[Path, str]]) -> None:
    """Import events for what this run stored (per study) and for what it could not."""
    if core.audit is None:
        return
    who = Identity(local_user(), Role.ADMIN, Kind.LOCAL, args.site, socket.gethostname())
    common = {"door": "archive import", "site": args.site, "dataset": args.dataset,
              "collection": args.collection, "paths": [str(p) for p in args.paths[:10]]}
    for uid, n in per_study.items():
        core.audit.record(AuditEvent.now(AuditAction.IMPORT, who, study_uids=[uid],
                                         detail={**common, "instances": n}))
    if failures:
        core.audit.record(AuditEvent.now(
            AuditAction.IMPORT, who, outcome=Outcome.MINOR_FAILURE,
            detail={**common, "failed": len(failures),
                    "reasons": sorted({why for _, why in failures})[:5]}))


def _why(skipped: Counter[str]) -> str:
    return f" ({', '.join(f'{why}: {n}' for why, n in sorted(skipped.items()))})" if skipped else ""


async def _import_all(
    core: Core, files: list[Path], caller: Caller, progress: bool,
    per_study: Counter[str] | None = None,
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
                if per_study is not None:
                    per_study[stored.study_uid] += 1
            except ArchiveError as exc:
                failures.append((path, exc.reason))
            except OSError as exc:  # reading the source file
                failures.append((path, str(exc)))
            finally:
                bar.update(1)

    await asyncio.gather(*(one(p) for p in files))
    bar.close()
    return counts, failures, skipped
