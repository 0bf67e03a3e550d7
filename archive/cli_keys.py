"""`archive keys create|list|revoke` and `archive audit export`.

Both work on the database directly (the embedded PostgreSQL in the data directory, or
--database-url), whether or not `archive serve` is running: the embedded server is shared
between processes, and the server re-reads keys every few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from archive.config import Settings

COMMANDS = ("keys", "audit")
# Settings that `archive serve` takes as flags (their ARCHIVE_* variables and TOML keys work too).
SERVE_SETTINGS = ("oidc_issuer", "oidc_audience", "oidc_roles_claim", "oidc_site_claim",
                  "anonymous_role", "audit_syslog")


def add_serve_flags(s: argparse.ArgumentParser) -> None:
    """The identity flags of `archive serve` (issue 12)."""
    s.add_argument("--oidc-issuer", metavar="URL",
                   help="accept OIDC bearer tokens from this issuer (ARCHIVE_OIDC_ISSUER)")
    s.add_argument("--oidc-audience",
                   help="required `aud` of OIDC access tokens (ARCHIVE_OIDC_AUDIENCE)")
    s.add_argument("--oidc-roles-claim",
                   help="claim with the roles, dotted paths allowed (ARCHIVE_OIDC_ROLES_CLAIM, roles)")
    s.add_argument("--oidc-site-claim",
                   help="claim with the contributing site (ARCHIVE_OIDC_SITE_CLAIM, site)")
    s.add_argument("--anonymous-role", choices=("reader", "none"),
                   help="rights of callers without credentials (ARCHIVE_ANONYMOUS_ROLE, reader)")
    s.add_argument("--audit-syslog", metavar="HOST:PORT",
                   help="also send audit events as RFC 5424 syslog over TCP (ARCHIVE_AUDIT_SYSLOG)")


def add_commands(sub: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add `keys` and `audit` to the `archive` parser."""
    from archive.identity.roles import ROLE_NAMES

    k = sub.add_parser("keys", help="API keys for scripts and gateways")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    cr = ksub.add_parser("create", help="create a key; its secret is printed once, last line")
    common(cr)
    cr.add_argument("--name", required=True, help="unique key name (recorded in the audit trail)")
    cr.add_argument("--role", required=True, choices=ROLE_NAMES)
    cr.add_argument("--site", help="contributing site (required for contributor keys)")
    cr.add_argument("--expires-days", type=int, help="expire after N days (default: never)")
    ls = ksub.add_parser("list", help="list keys (never their secrets)")
    common(ls)
    rv = ksub.add_parser("revoke", help="revoke a key by name")
    common(rv)
    rv.add_argument("name")
    a = sub.add_parser("audit", help="the audit trail")
    asub = a.add_subparsers(dest="audit_command", required=True)
    ex = asub.add_parser("export", help="write audit events to stdout")
    common(ex)
    ex.add_argument("--since", type=_when, help="ISO date/time (inclusive)")
    ex.add_argument("--until", type=_when, help="ISO date/time (exclusive)")
    ex.add_argument("--format", default="jsonl", choices=("jsonl", "ps3.15-xml"))
    ex.add_argument("--actor", help="only this actor (key name, token subject, AE title)")
    ex.add_argument("--study", help="only events about this Study Instance UID")
    ex.add_argument("--action", help="only this PS3.15 A.5 event, e.g. 'Query'")


def _when(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}") from exc
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def main_for(args: argparse.Namespace, settings: Settings) -> int:
    from archive.errors import ArchiveError

    try:
        return asyncio.run(_with_db(settings, args))
    except ArchiveError as exc:
        print(f"archive: {exc.reason}", file=sys.stderr)
        return 1


async def _with_db(settings: Settings, args: argparse.Namespace) -> int:
    from archive.runtime import open_core

    async with open_core(settings, pool_size=2) as core:
        if args.command == "audit":
            return await _export(core.engine, args)
        async with core.engine.begin() as conn:
            return await _keys(conn, args)


async def _keys(conn: Any, args: argparse.Namespace) -> int:
    from archive.identity import apikeys
    from archive.identity.roles import Role

    if args.keys_command == "create":
        key, secret = await apikeys.create_key(conn, args.name, Role.parse(args.role), args.site,
                                               args.expires_days)
        expires = key.expires.isoformat(timespec="seconds") if key.expires else "never"
        print(f"created key {key.name!r}: role {key.role.label}, site {key.site or '-'}, "
              f"expires {expires}")
        print("the secret below is shown only now; send it as 'Authorization: Bearer <secret>'")
        print(secret)
        return 0
    if args.keys_command == "revoke":
        if not await apikeys.revoke_key(conn, args.name):
            print(f"archive: no active key named {args.name!r}", file=sys.stderr)
            return 1
        print(f"revoked key {args.name!r}")
        return 0
    now = datetime.now(UTC)
    print("name\trole\tsite\tstatus\tcreated\texpires")
    for k in await apikeys.list_keys(conn):
        print("\t".join([k.name, k.role.label, k.site or "-", k.status(now),
                         k.created.isoformat(timespec="seconds"),
                         k.expires.isoformat(timespec="seconds") if k.expires else "never"]))
    return 0


async def _export(engine: Any, args: argparse.Namespace) -> int:
    from lxml import etree

    from archive.identity.audit import to_jsonl, to_xml_element
    from archive.identity.audit_log import iter_events

    events = iter_events(engine, actor=args.actor, study=args.study, action=args.action,
                         since=args.since, until=args.until)
    out = sys.stdout
    if args.format == "jsonl":
        async for e in events:
            out.write(to_jsonl(e) + "\n")
        return 0
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n<AuditMessages>\n')
    async for e in events:
        out.write(etree.tostring(to_xml_element(e), encoding="unicode") + "\n")
    out.write("</AuditMessages>\n")
    return 0
