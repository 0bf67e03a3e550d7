"""Live audit export as RFC 5424 syslog over TCP (RFC 6587 octet counting), carrying PS3.15 A.5
XML messages, as IHE ATNA audit repositories receive them (`--audit-syslog HOST:PORT`).

Sending runs in its own task with its own bounded queue: a slow or absent collector never
delays the database writer, and reconnects with back-off. Messages that do not fit the queue
are counted as dropped (the PostgreSQL trail still has them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Sequence

from archive.identity.audit import AuditEvent, Outcome, to_xml

log = logging.getLogger("archive.audit.syslog")
FACILITY_AUTHPRIV = 10  # RFC 5424 "security/authorization messages"
MSGID = "IHE+RFC-3881"  # IHE ITI TF-2 3.20.6.1
BOM = b"\xef\xbb\xbf"


def frame(event: AuditEvent, *, hostname: str | None = None, app_name: str = "archive",
          audit_source: str = "ARCHIVE") -> bytes:
    """One octet-counted RFC 5424 message: `LEN SP <PRI>1 TIMESTAMP HOST APP PROCID MSGID - MSG`."""
    severity = 5 if event.outcome is Outcome.SUCCESS else 4  # notice / warning
    header = (f"<{FACILITY_AUTHPRIV * 8 + severity}>1 "
              f"{event.time.isoformat(timespec='microseconds')} "
              f"{_field(hostname or socket.gethostname(), 255)} {_field(app_name, 48)} "
              f"{os.getpid()} {MSGID} - ")
    xml = to_xml(event, audit_source).split(b"?>", 1)[-1].lstrip()  # no XML declaration
    msg = header.encode("ascii") + BOM + xml
    return str(len(msg)).encode("ascii") + b" " + msg


def _field(text: str, limit: int) -> str:
    """PRINTUSASCII without spaces, as RFC 5424 header fields require; '-' when empty."""
    cleaned = "".join(c for c in text if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


def parse_target(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


class SyslogSender:
    """An AuditSink that streams events to a syslog collector over TCP."""

    def __init__(self, host: str, port: int, *, audit_source: str = "ARCHIVE",
                 max_queue: int = 10_000) -> None:
        self.host, self.port = host, port
        self.audit_source = audit_source
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.sent = 0
        self.dropped = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-syslog")

    def send(self, events: Sequence[AuditEvent]) -> None:
        for e in events:
            try:
                self._queue.put_nowait(frame(e, audit_source=self.audit_source))
                self._idle.clear()
            except asyncio.QueueFull:
                self.dropped += 1

    async def drain(self, seconds: float = 10.0) -> None:
        """Wait (bounded) until everything queued has been written: tests and shutdown."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._idle.wait()

    async def close(self) -> None:
        await self.drain(2.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                _reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError as exc:
                log.warning("audit syslog unreachable", extra={"target": f"{self.host}:{self.port}",
                                                               "error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 0.5
            try:
                await self._pump(writer)
            except OSError as exc:
                log.warning("audit syslog connection lost", extra={"error": str(exc)})
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()

    async def _pump(self, writer: asyncio.StreamWriter) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            writer.write(b"".join(batch))
            await writer.drain()
            self.sent += len(batch)
            if self._queue.empty():
                self._idle.set()
