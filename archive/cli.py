"""`archive` command line: serve, worker, db upgrade, import."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from archive import cli_curation, cli_keys, cli_limits, cli_memory, config, console
from archive.errors import ConfigError
from archive.logs import configure


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML settings file (ARCHIVE_CONFIG)")
    p.add_argument("--data-dir", help="data directory (ARCHIVE_DATA_DIR, ./archive-data)")
    p.add_argument("--database-url", help="PostgreSQL URL (ARCHIVE_DATABASE_URL); embedded if unset")
    p.add_argument("--log-level", help="log level (ARCHIVE_LOG_LEVEL, INFO)")
    console.add_common_flags(p)


def _storage(p: argparse.ArgumentParser) -> None:
    """Where blobs live; credentials come from the AWS variables/profile chain, never flags."""
    p.add_argument("--storage", help="s3://BUCKET/PREFIX for an object store "
                                     "(ARCHIVE_STORAGE; default: files in the data directory)")
    p.add_argument("--s3-endpoint", help="S3 endpoint URL for non-AWS stores (ARCHIVE_S3_ENDPOINT)")
    p.add_argument("--s3-region", help="S3 region (ARCHIVE_S3_REGION; else AWS_REGION)")
    p.add_argument("--s3-path-style", action="store_true", default=None,
                   help="path-style S3 addressing (ARCHIVE_S3_PATH_STYLE)")
    p.add_argument("--s3-read-timeout", metavar="SECONDS",
                   help="give up an object-store read that stalls this long: 503 before a "
                        "response starts, a cut connection after (ARCHIVE_S3_READ_TIMEOUT, 30)")


def _jobs(p: argparse.ArgumentParser) -> None:
    """The task queue (archive/tasks/): `archive serve` and `archive worker` run jobs."""
    p.add_argument("--job-concurrency", help="jobs this node runs at once (ARCHIVE_JOB_CONCURRENCY, 2)")
    p.add_argument("--job-stalled-seconds", metavar="SECONDS",
                   help="a job worker silent this long is dead: its jobs are retried "
                        "(ARCHIVE_JOB_STALLED_SECONDS, 30)")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="archive", description="Imaging Commons Archive")
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the DICOMweb server and the DIMSE listener")
    _common(s)
    s.add_argument("--host", help="bind address (ARCHIVE_HOST, 127.0.0.1)")
    s.add_argument("--http-port", help="DICOMweb port (ARCHIVE_HTTP_PORT, 8080)")
    s.add_argument("--dimse-port", help="DIMSE port (ARCHIVE_DIMSE_PORT, 11112)")
    s.add_argument("--ae-title", help="our AE title (ARCHIVE_AE_TITLE, ARCHIVE)")
    s.add_argument("--peer", action="append", default=[], metavar="AET=HOST:PORT[@SITE]",
                   help="known DICOM node, repeatable (ARCHIVE_PEERS, comma-separated)")
    s.add_argument("--restrict-peers", action="store_true", default=None,
                   help="accept associations only from --peer AE titles (ARCHIVE_RESTRICT_PEERS)")
    s.add_argument("--duplicate-policy", choices=config.DUPLICATE_POLICIES,
                   help="different instance under an existing SOP Instance UID "
                        "(ARCHIVE_DUPLICATE_POLICY, replace)")
    s.add_argument("--max-request-bytes", help="STOW-RS request limit (ARCHIVE_MAX_REQUEST_BYTES)")
    s.add_argument("--cors-origin", help="allowed CORS origin or * (ARCHIVE_CORS_ORIGIN, off)")
    s.add_argument("--curator-token",
                   help="deprecated: visible in ps; use ARCHIVE_CURATOR_TOKEN or --curator-token-file")
    s.add_argument("--curator-token-file", metavar="PATH",
                   help="file holding the legacy curator bearer token (ARCHIVE_CURATOR_TOKEN_FILE)")
    s.add_argument("--curator-aets", metavar="AET[,AET…]",
                   help="calling AE titles that are curators, when they are --peers calling "
                        "from their host or over verified DICOM TLS (ARCHIVE_CURATOR_AETS)")
    s.add_argument("--default-collection", metavar="NAME",
                   help="collection of studies that arrive without one "
                        "(ARCHIVE_DEFAULT_COLLECTION, public)")
    s.add_argument("--tls-cert", metavar="PEM",
                   help="certificate chain: serve HTTPS, and DICOM TLS (ARCHIVE_TLS_CERT)")
    s.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert (ARCHIVE_TLS_KEY)")
    s.add_argument("--dimse-tls-port",
                   help="add a DICOM TLS listener on this port (ARCHIVE_DIMSE_TLS_PORT, off)")
    s.add_argument("--dimse-tls-ca", metavar="PEM",
                   help="CA bundle; DICOM TLS then requires client certificates (ARCHIVE_DIMSE_TLS_CA)")
    s.add_argument("--min-cell-count",
                   help="counts below N are shown as '< N' in the portal and /commons/explore "
                        "(ARCHIVE_MIN_CELL_COUNT, 0 = off)")
    s.add_argument("--viewer-dir", help="prebuilt OHIF dist/ served at /viewer/ (ARCHIVE_VIEWER_DIR)")
    s.add_argument("--portal-oidc-client-id",
                   help="public OIDC client of the portal's sign-in at --oidc-issuer "
                        "(ARCHIVE_PORTAL_OIDC_CLIENT_ID, off)")
    s.add_argument("--portal-oidc-scope",
                   help="scopes the portal asks for (ARCHIVE_PORTAL_OIDC_SCOPE, openid)")
    cli_keys.add_serve_flags(s)
    cli_limits.add_limit_flags(s)
    cli_memory.add_memory_flags(s)
    cli_curation.add_serve_flags(s)
    console.add_serve_flags(s)
    _storage(s)
    _jobs(s)
    s.add_argument("--no-jobs", dest="run_jobs", action="store_const", const=False, default=None,
                   help="do not run queued jobs in this node (ARCHIVE_RUN_JOBS=false)")
    w = sub.add_parser("worker", help="run queued background jobs only (no HTTP, no DIMSE)")
    _common(w)
    _storage(w)
    _jobs(w)
    db = sub.add_parser("db", help="database maintenance")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="apply migrations and exit")
    _common(up)
    imp = sub.add_parser("import", help="import DICOM files and folders (recursive)")
    _common(imp)
    imp.add_argument("paths", nargs="+", type=Path)
    _storage(imp)
    imp.add_argument("--site", help="contributing site recorded for imported studies")
    imp.add_argument("--dataset", help="dataset (batch) recorded for imported studies")
    imp.add_argument("--collection", help="collection (default: public)")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    from archive.cli_commons import add_commands

    add_commands(sub, _common)
    cli_keys.add_commands(sub, _common)
    cli_curation.add_commands(sub, _common)
    _viewer_parser(sub)
    console.add_version(ap)
    console.annotate_defaults(ap)
    return ap


def _viewer_parser(sub: Any) -> None:
    v = sub.add_parser("viewer", help="get the prebuilt OHIF Viewer for serve --viewer-dir")
    vsub = v.add_subparsers(dest="viewer_command", required=True)
    f = vsub.add_parser("fetch", help="npm pack @ohif/app and unpack its dist/ (needs npm)")
    f.add_argument("--to", type=Path, default=Path("ohif-viewer"),
                   help="target folder (default ./ohif-viewer)")
    f.add_argument("--ohif-version", default="3.13.2", help="@ohif/app version (tested: 3.13.2)")
    f.add_argument("--slim", action="store_true",
                   help="drop ort/ and dicom-microscopy-viewer/ (156 MB; viewing still works)")


def _viewer(args: argparse.Namespace) -> int:
    from dicomweb.viewer_fetch import fetch

    try:
        dest = fetch(args.to, args.ohif_version, args.slim)
    except ConfigError as exc:
        print(f"archive: {exc.reason}", file=sys.stderr)
        return 2
    print(f"OHIF {args.ohif_version} in {dest}; serve it with: archive serve --viewer-dir {dest}")
    return 0


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line gives (None: not given), by Settings field name."""
    keys = ("host", "http_port", "dimse_port", "ae_title", "data_dir", "database_url",
            "restrict_peers", "duplicate_policy", "max_request_bytes", "cors_origin",
            "viewer_dir", "curator_token", "log_level", "log_format", "public_url",
            "trusted_proxies", "check_called_ae", "min_cell_count",
            "storage", "s3_endpoint", "s3_region", "s3_path_style", "s3_read_timeout",
            "curator_token_file", "tls_cert", "tls_key",
            "dimse_tls_port", "dimse_tls_ca", "portal_oidc_client_id", "portal_oidc_scope",
            "run_jobs", "job_concurrency", "job_stalled_seconds", "curator_aets",
            "default_collection",
            *cli_keys.SERVE_SETTINGS, *cli_memory.MEMORY_SETTINGS,
            *cli_limits.LIMIT_SETTINGS, *cli_curation.SERVE_SETTINGS)
    overrides: dict[str, Any] = {k: getattr(args, k, None) for k in keys}
    peers = getattr(args, "peer", None)
    if peers:
        overrides["peers"] = tuple(config.parse_peer(p) for p in peers)
    return overrides


def settings_from(args: argparse.Namespace) -> config.Settings:
    if getattr(args, "curator_token", None):
        print("archive: warning: --curator-token is deprecated (any local user can read it with "
              "ps); use ARCHIVE_CURATOR_TOKEN or --curator-token-file PATH", file=sys.stderr)
    return config.load(overrides_from(args), toml_path=args.config)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "viewer":  # needs no settings
        return _viewer(args)
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        print(f"archive: {exc.reason}", file=sys.stderr)
        return 2
    quiet = ("archive.ingest",) if args.command == "import" else ()  # the progress bar says it
    configure(settings.log_level, settings.log_format, quiet)
    try:
        return _run(args, settings)
    except Exception as exc:
        line = console.explain(exc, settings)
        if line is None:
            raise
        print(f"archive: {line}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, settings: config.Settings) -> int:
    if args.command == "serve":
        from archive.server import serve

        try:
            asyncio.run(serve(settings))
        except ConfigError as exc:  # e.g. a bad --cors-origin or --viewer-dir found at startup
            print(f"archive: {exc.reason}", file=sys.stderr)
            return 2
        return 0
    if args.command == "db":
        return asyncio.run(_db_upgrade(settings))
    if args.command == "worker":
        from archive.runtime import run_worker

        asyncio.run(run_worker(settings))
        return 0
    if args.command == "import":
        from archive.bulk_import import run_import

        return asyncio.run(run_import(settings, args))
    if cli_curation.handles(args):
        return cli_curation.main_for(args, settings)
    if args.command in ("clinical", "loinc", "mapping", "cohort"):
        from archive.cli_commons import main_for

        return main_for(args, settings)
    if args.command in cli_keys.COMMANDS:
        return cli_keys.main_for(args, settings)
    return 2


async def _db_upgrade(settings: config.Settings) -> int:
    from archive.runtime import open_core

    async with open_core(settings, pool_size=1):
        pass  # opening a core migrates the database (and sweeps orphans when alone)
    print("database is at the latest revision")
    return 0


if __name__ == "__main__":
    sys.exit(main())
