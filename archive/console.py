"""What a person sees on the console: flags' help, the start-up banner, and one-line failures.

A fresh user meets the archive here first. Start-up problems they can fix themselves (a port in
use, a database that is missing or unreachable, a data directory they cannot write) are told in
one line on stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import socket

import archive
from archive import config
from archive.config import Settings

log = logging.getLogger("archive.server")

# --- flags ------------------------------------------------------------------------------------


def add_common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", choices=config.LOG_FORMATS,
                   help="human lines, JSON lines, or auto: JSON when stderr is not a terminal "
                        "(ARCHIVE_LOG_FORMAT)")


def add_serve_flags(s: argparse.ArgumentParser) -> None:
    s.add_argument("--public-url", metavar="URL",
                   help="externally visible base for the URLs the archive hands out, e.g. "
                        "https://pacs.example.org (ARCHIVE_PUBLIC_URL)")
    s.add_argument("--trusted-proxies", metavar="ADDR[,CIDR…]",
                   help="reverse proxies whose Forwarded / X-Forwarded-* headers are believed, "
                        "comma-separated (ARCHIVE_TRUSTED_PROXIES)")
    s.add_argument("--check-called-ae", action="store_true", default=None,
                   help="reject associations whose Called AE title is not ours "
                        "(ARCHIVE_CHECK_CALLED_AE)")


def add_version(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--version", action="version", version=f"archive {archive.__version__}")


def _shown(value: object) -> str:
    if value is None or value == () or value == "":
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def annotate_defaults(ap: argparse.ArgumentParser) -> None:
    """Every option's help ends with its variable and default, taken from `Settings()` itself.

    Written once here so the help cannot drift from the real defaults.
    """
    defaults = Settings()
    names = {f"--{name.replace('_', '-')}": name for name in config.PARSERS}
    names["--peer"] = "peers"
    for parser in _parsers(ap):
        for action in parser._actions:
            if not action.option_strings or action.help in (None, argparse.SUPPRESS):
                continue
            text = str(action.help)
            name = next((names[o] for o in action.option_strings if o in names), None)
            if name is not None:
                env = config.env_name(name)
                text = _without(text, f"({env}")
                text += f" ({env}; default: {_shown(getattr(defaults, name))})"
            elif "(ARCHIVE_" in text and "default" not in text.lower():
                env = text[text.index("(ARCHIVE_") + 1:].split(")")[0].split(",")[0]
                text = _without(text, f"({env}") + f" ({env}; default: {_shown(action.default)})"
            elif "default" not in text.lower() and action.dest not in ("help", "version"):
                text += f" (default: {_shown(action.default)})"
            action.help = text


def _without(text: str, start: str) -> str:
    """`text` minus the parenthetical beginning with `start` (the old hand-written default)."""
    if start not in text:
        return text
    head, _, rest = text.partition(start)
    tail = rest.split(")", 1)[1] if ")" in rest else ""
    return (head.rstrip() + tail).strip()


def _parsers(ap: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    out = [ap]
    for action in ap._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out += _parsers(sub)
    return out


# --- banner -----------------------------------------------------------------------------------


def banner(settings: Settings) -> str:
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else socket.gethostname()
    base = settings.public_url or f"http://{host}:{settings.http_port}"
    lines = [
        f"Imaging Commons Archive {archive.__version__} is running",
        f"  web page   {base}/",
        f"  DICOMweb   {base}/dicom-web",
        f"  DIMSE      AE {settings.ae_title} on {host}:{settings.dimse_port}",
    ]
    if settings.viewer_dir:
        lines.append(f"  viewer     {base}/viewer/")
    lines += [f"  data       {settings.data_dir.resolve()}", "Press Ctrl+C to stop."]
    return "\n".join(lines)


def announce(settings: Settings) -> None:
    """The one start-up message: a banner for people, fields for JSON logs."""
    host = settings.host
    log.info("serving", extra={
        "banner": banner(settings),
        "http": settings.public_url or f"http://{host}:{settings.http_port}",
        "dicomweb": f"{settings.public_url or f'http://{host}:{settings.http_port}'}/dicom-web",
        "dimse_port": settings.dimse_port, "ae_title": settings.ae_title,
    })


def note_embedded_start(settings: Settings) -> None:
    """Say why the first start pauses: initialising the embedded PostgreSQL takes seconds."""
    if not (settings.pg_dir / "PG_VERSION").exists():
        log.info("first start: initialising the embedded PostgreSQL in %s", settings.pg_dir)


# --- start-up failures ------------------------------------------------------------------------


class StartupError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


def check_data_dir(settings: Settings) -> None:
    d = settings.data_dir
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create data directory {d}: {exc.strerror}") from exc
    if not os.access(d, os.W_OK | os.X_OK):
        raise StartupError(f"data directory {d} is not writable; choose another with "
                           f"--data-dir or ARCHIVE_DATA_DIR")


async def ensure_database(url: str) -> None:
    """Create the configured database when the server is reachable and it does not exist yet."""
    import asyncpg

    from archive.index.engine import sync_url

    plain = sync_url(url)
    try:
        conn = await asyncpg.connect(plain, timeout=10)
    except asyncpg.InvalidCatalogNameError:
        pass  # the database is missing: create it below
    except (TimeoutError, OSError) as exc:
        raise StartupError(f"cannot reach the database server at {_where(plain)}: "
                           f"{_strerror(exc)}; is PostgreSQL running there? (leave "
                           f"--database-url unset to use the embedded one)") from exc
    except asyncpg.PostgresError as exc:
        raise StartupError(f"database {_where(plain)} refused the connection: {exc}") from exc
    else:
        await conn.close()
        return
    name, admin = _admin_url(plain)
    try:
        conn = await asyncpg.connect(admin, timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise StartupError(
            f"database {name!r} does not exist and could not be created ({exc}); create it with: "
            f"createdb -h HOST -U USER {name}") from exc
    log.info("created database %s", name)


def _admin_url(url: str) -> tuple[str, str]:
    base, _, query = url.partition("?")
    head, _, name = base.rpartition("/")
    return name, f"{head}/postgres" + (f"?{query}" if query else "")


def _where(url: str) -> str:
    """The URL without its password, for messages."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    return f"{host}:{parts.port or 5432}/{parts.path.lstrip('/')}"


def _strerror(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def explain(exc: BaseException, settings: Settings) -> str | None:
    """One line for a start-up failure a person can fix; None for a bug (keep the traceback)."""
    from archive.index.engine import EmbeddedPostgresFailed

    if isinstance(exc, (StartupError, EmbeddedPostgresFailed)):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        found = re.search(r"\('([^']*)', (\d+)", str(exc))
        if found is None:  # pynetdicom's bind error names no address
            return (f"HTTP port {settings.http_port} or DIMSE port {settings.dimse_port} is "
                    f"already in use; stop the other program or choose --http-port / "
                    f"--dimse-port")
        port = int(found.group(2))
        flag = "--dimse-port" if port == settings.dimse_port else "--http-port"
        return (f"cannot listen on {found.group(1)}:{port}: address already in use; stop the "
                f"other program or choose another {flag}")
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc}"
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES):
        return f"cannot write {exc.filename or settings.data_dir}: {exc.strerror}"
    return None
