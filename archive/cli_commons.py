"""Commons commands: `archive clinical import`, `archive loinc load`, `archive mapping set|list`,
`archive cohort download`.

Curator commands work on the database directly (like `archive import`) unless `--url` names a
running archive; `cohort download` always talks HTTP to a running archive, because that is
where researchers are: it fetches the cohort's files (byte-exact, as stored) in parallel,
resumes partial files with Range requests and verifies each against the manifest's SHA-256.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from archive.config import Settings

DEFAULT_URL = "http://127.0.0.1:8080"
COMMANDS = ("clinical", "loinc", "mapping", "cohort")
CHUNK = 1024 * 1024


def add_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the commons subcommands to the `archive` parser."""
    cl = sub.add_parser("clinical", help="clinical data (commons)")
    clsub = cl.add_subparsers(dest="clinical_command", required=True)
    imp = clsub.add_parser("import", help="import a clinical JSON/CSV/TSV file (all-or-nothing)")
    common(imp)
    imp.add_argument("file", type=Path)
    imp.add_argument("--table", help="CSV/TSV table: cases (default), tests, conditions, "
                                     "medications, procedures, observations, studies")
    _remote(imp)
    lo = sub.add_parser("loinc", help="LOINC Playbook terms (commons)")
    losub = lo.add_subparsers(dest="loinc_command", required=True)
    load = losub.add_parser("load", help="load/replace LOINC terms and seed mappings from CSV")
    common(load)
    load.add_argument("file", type=Path)
    ma = sub.add_parser("mapping", help="study description → LOINC mappings (commons)")
    masub = ma.add_subparsers(dest="mapping_command", required=True)
    st = masub.add_parser("set", help="set the mapping of one (modality, description)")
    common(st)
    st.add_argument("modality", help="e.g. CT or CR,DX")
    st.add_argument("description", help="raw StudyDescription (normalized for you)")
    st.add_argument("loinc_code", nargs="?", help="code (omit with --status rejected)")
    st.add_argument("--status", default="approved", choices=("proposed", "approved", "rejected"))
    st.add_argument("--replace", action="store_true", help="change an approved mapping's code")
    st.add_argument("--curator", default="cli", help="who made the change")
    ls = masub.add_parser("list", help="list mappings, or unmapped descriptions")
    common(ls)
    ls.add_argument("--status", help="proposed | approved | rejected | unmapped")
    from archive.cli_curation import add_mapping_import

    add_mapping_import(masub, common)
    co = sub.add_parser("cohort", help="cohorts (commons)")
    cosub = co.add_subparsers(dest="cohort_command", required=True)
    dl = cosub.add_parser("download", help="download a cohort from a running archive")
    common(dl)
    dl.add_argument("cohort_id")
    dl.add_argument("--to", type=Path, required=True, help="target directory")
    dl.add_argument("--url", default=DEFAULT_URL, help=f"archive base URL ({DEFAULT_URL})")
    dl.add_argument("--token", help="bearer token (default: $ARCHIVE_TOKEN)")
    dl.add_argument("--parallel", type=int, default=4, help="parallel downloads (4)")
    dl.add_argument("--no-progress", action="store_true", help="no progress bar")


def bearer_token(args: argparse.Namespace) -> str | None:
    """`--token`, else ARCHIVE_TOKEN: a secret need not appear on the command line (ps)."""
    return args.token or os.environ.get("ARCHIVE_TOKEN") or None


def _remote(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="send to a running archive (base URL) instead of the database")
    p.add_argument("--token", help="curator bearer token for --url (default: $ARCHIVE_TOKEN)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "cohort":
        return download(args)
    if args.command == "clinical" and args.url:
        return _post_clinical(args)
    return asyncio.run(_with_db(settings, args))


async def _with_db(settings: Settings, args: argparse.Namespace) -> int:
    from archive.runtime import open_core

    async with open_core(settings, pool_size=2) as core:
        async with core.engine.begin() as conn:
            code = await _db_command(conn, args)
        if code == 0 and args.command == "mapping" and args.mapping_command == "set":
            await _wait_reapplied(core)
        return code


async def _wait_reapplied(core: Any) -> None:
    """The change is committed with its re-apply job; a running node or `archive worker`
    runs it (archive.tasks) — wait for it briefly, else say it is queued."""
    from archive.commons.harmonize import REAPPLY_TASK
    from archive.tasks.status import WAIT_SECONDS, wait_queued

    if not await wait_queued(core.engine, REAPPLY_TASK, WAIT_SECONDS):
        print("archive: the mapping is saved; re-applying it to the studies is queued and runs "
              "when `archive serve` or `archive worker` is running", file=sys.stderr)


async def _db_command(conn: Any, args: argparse.Namespace) -> int:
    from archive.commons import clinical, harmonize
    from archive.commons.playbook import read_playbook
    from archive.commons.rows import RowErrors
    from archive.core import Caller
    from archive.errors import ArchiveError

    try:
        if args.command == "clinical":
            data = args.file.read_bytes()
            batch = clinical.parse(data, clinical.content_type_for(args.file.name), args.table)
            _print({"imported": await clinical.write(conn, batch)})
        elif args.command == "loinc":
            book = read_playbook(args.file.read_text(encoding="utf-8-sig"))
            _print(await harmonize.load_playbook(conn, book, f"loinc load {args.file.name}"))
        elif args.mapping_command == "set":
            _print(await harmonize.set_mapping(conn, args.modality, args.description,
                                               args.loinc_code, args.status, args.curator,
                                               args.replace))
        elif args.status == "unmapped":
            _table(await harmonize.list_descriptions(conn, Caller(may_see_sequestered=True),
                                                     "unmapped"))
        else:
            _table(await harmonize.list_mappings(conn, args.status))
    except RowErrors as exc:
        print(f"archive: {exc.reason}", file=sys.stderr)
        for e in exc.errors:
            print(f"  {e}", file=sys.stderr)
        raise _Abort(1) from exc
    except (ArchiveError, OSError) as exc:
        print(f"archive: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        raise _Abort(1) from exc
    return 0


class _Abort(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("(none)")
        return
    w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), delimiter="\t",
                       lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)


def _post_clinical(args: argparse.Namespace) -> int:
    import requests

    from archive.commons.clinical import content_type_for

    headers = {"Content-Type": content_type_for(args.file.name)}
    if token := bearer_token(args):
        headers["Authorization"] = f"Bearer {token}"
    params = {"table": args.table} if args.table else {}
    r = requests.post(f"{args.url.rstrip('/')}/commons/cases", data=args.file.read_bytes(),
                      headers=headers, params=params, timeout=600)
    body = r.json() if r.headers.get("Content-Type", "").startswith("application/json") else {}
    if r.status_code != 200:
        print(f"archive: {body.get('error', r.text)}", file=sys.stderr)
        for e in body.get("errors", []):
            print(f"  line {e['line']}, column {e['column']}: {e['reason']}", file=sys.stderr)
        return 1
    _print(body)
    return 0


# ---- cohort download -------------------------------------------------------------------------
def download(args: argparse.Namespace) -> int:
    import requests
    from tqdm import tqdm

    session = requests.Session()
    if token := bearer_token(args):
        session.headers["Authorization"] = f"Bearer {token}"
    base = args.url.rstrip("/")
    r = session.get(f"{base}/commons/cohorts/{args.cohort_id}/manifest",
                    params={"format": "json"}, timeout=600)
    if r.status_code != 200:
        print(f"archive: cannot read cohort {args.cohort_id}: {r.status_code} {r.text[:300]}",
              file=sys.stderr)
        return 1
    manifest = r.json()
    target: Path = args.to
    target.mkdir(parents=True, exist_ok=True)
    (target / "manifest.json").write_text(json.dumps(manifest, indent=1))
    _write_clinical(target / "clinical.csv", manifest.get("clinical", []))
    jobs = [(target / s["case_id"] / s["study_uid"] / s["series_uid"] / f"{i['sop_uid']}.dcm", i)
            for s in manifest["series"] for i in s["instance_list"]]
    total = sum(i["size_bytes"] for _, i in jobs)
    failures: list[str] = []
    counts = {"downloaded": 0, "skipped": 0}
    with tqdm(total=total, unit="B", unit_scale=True, disable=args.no_progress,
              desc=f"cohort {args.cohort_id[:8]}") as bar, \
            ThreadPoolExecutor(max(1, min(args.parallel, 32))) as pool:
        futures = {pool.submit(_fetch, session, path, inst, bar.update): path
                   for path, inst in jobs}
        for fut in as_completed(futures):
            try:
                counts[fut.result()] += 1
            except Exception as exc:  # report every file, keep going
                failures.append(f"{futures[fut]}: {exc}")
    print(f"{len(jobs)} files ({total} bytes): downloaded {counts['downloaded']}, already "
          f"complete {counts['skipped']}, failed {len(failures)} → {target}")
    for line in failures:
        print(f"  failed: {line}", file=sys.stderr)
    return 1 if failures else 0


def _write_clinical(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    with path.open("w", newline="") as fp:
        w = csv.DictWriter(fp, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fp:
        while block := fp.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _fetch(session: Any, path: Path, inst: dict[str, Any], progress: Callable[[int], Any]) -> str:
    """Download one file unless complete; a partial `.part` file is resumed with Range."""
    size, sha = inst["size_bytes"], inst["sha256"]
    if path.exists() and path.stat().st_size == size and _sha256(path) == sha:
        progress(size)
        return "skipped"
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with session.get(inst["file_url"], headers=headers, stream=True, timeout=600) as r:
        if r.status_code == 200:
            have = 0  # the server sent the whole file
        elif r.status_code != 206:
            raise RuntimeError(f"HTTP {r.status_code}")
        progress(have)
        with part.open("ab" if have else "wb") as fp:
            for block in r.iter_content(CHUNK):
                fp.write(block)
                progress(len(block))
    if _sha256(part) != sha:
        part.unlink()
        raise RuntimeError("checksum mismatch (partial file discarded; run again)")
    part.replace(path)
    return "downloaded"


def main_for(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return run(args, settings)
    except _Abort as exc:
        return exc.code
