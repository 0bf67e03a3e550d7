"""Curation commands (issue 16): `archive dataset release ID`, `archive dataset staged`,
`archive mapping import FILE.tsv`, and the serve flags of the release workflow.

They work on the database directly, like `archive import`: a release from the command line is
the same transaction as `POST /commons/datasets/{id}/release`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from archive.config import Settings

COMMANDS = ("dataset",)
SERVE_SETTINGS = ("release_workflow", "sequester_fraction", "strata_attributes", "deidentify",
                  "deidentify_site", "deidentify_secret")


def add_serve_flags(s: argparse.ArgumentParser) -> None:
    """`archive serve`: the release workflow and the ingest de-identification profile."""
    add_release_flags(s)
    s.add_argument("--deidentify", choices=("basic", "off"),
                   help="de-identify every instance before it is stored: PS3.15 E.1 Basic "
                        "Profile (ARCHIVE_DEIDENTIFY, off)")
    s.add_argument("--deidentify-site", metavar="SITE=basic|off,...",
                   help="per-site de-identification profile, overriding --deidentify "
                        "(ARCHIVE_DEIDENTIFY_SITE)")
    s.add_argument("--deidentify-secret",
                   help="secret keying the per-patient date shift and UID remapping "
                        "(ARCHIVE_DEIDENTIFY_SECRET; required with basic)")


def add_release_flags(s: argparse.ArgumentParser) -> None:
    s.add_argument("--release-workflow", action="store_true", default=None,
                   help="stage contributed datasets until a curator releases them "
                        "(ARCHIVE_RELEASE_WORKFLOW, off)")
    s.add_argument("--sequester-fraction",
                   help="share of new cases a release sequesters (ARCHIVE_SEQUESTER_FRACTION, 0.2)")
    s.add_argument("--strata-attributes", metavar="A,B,...",
                   help="case attributes a release stratifies on (ARCHIVE_STRATA_ATTRIBUTES, "
                        "site,sex,covid19_positive,age,race,ethnicity,modality)")


def add_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    ds = sub.add_parser("dataset", help="staged datasets and releases (commons curation)")
    dsub = ds.add_subparsers(dest="dataset_command", required=True)
    rel = dsub.add_parser("release", help="release a dataset: split its new cases open/"
                                          "sequestered and publish the open part")
    common(rel)
    add_release_flags(rel)
    rel.add_argument("dataset", help="dataset (batch) id, e.g. SITE_20260301")
    rel.add_argument("--notes", help="release notes")
    rel.add_argument("--seed", type=int, help="random seed (default: a fresh one, recorded)")
    rel.add_argument("--curator", default="cli", help="who released (recorded)")
    st = dsub.add_parser("staged", help="list datasets waiting for a release")
    common(st)


def add_mapping_import(masub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    imp = masub.add_parser("import", help="import a curated mapping table (MIDRC layout: "
                                          "Modality, StudyDescription, LOINC code, Long Common Name)")
    common(imp)
    imp.add_argument("file", type=Path)
    imp.add_argument("--replace", action="store_true",
                     help="let the file change approved mappings (otherwise they stop the import)")
    imp.add_argument("--curator", default="cli", help="who imported (recorded)")


def handles(args: argparse.Namespace) -> bool:
    return args.command in COMMANDS or (
        args.command == "mapping" and getattr(args, "mapping_command", None) == "import")


def main_for(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from archive.errors import ArchiveError
    from archive.runtime import open_core

    try:
        async with open_core(settings, pool_size=2) as core:
            _print(await _command(core, args))
    except ArchiveError as exc:
        print(f"archive: {exc.reason}", file=sys.stderr)
        for line in getattr(exc, "problems", ()):
            print(f"  {line}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"archive: {exc}", file=sys.stderr)
        return 1
    return 0


async def _command(core: Any, args: argparse.Namespace) -> Any:
    from archive.commons import releases

    if args.command == "dataset" and args.dataset_command == "release":
        body = {k: v for k, v in (("notes", args.notes), ("seed", args.seed)) if v is not None}
        return await releases.release(core, [args.dataset], body, args.curator)
    if args.command == "dataset":
        async with core.engine.connect() as conn:
            return {"staged": await releases.staged_datasets(conn)}
    from archive.commons.mapping_import import import_table
    from archive.curation.loinc_suggest import load_mapping_table

    rows = load_mapping_table(args.file)
    async with core.engine.begin() as conn:
        return await import_table(conn, rows, args.curator, f"mapping import {args.file.name}",
                                  args.replace)


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))
