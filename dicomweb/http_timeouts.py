"""HTTP connection timeouts aiohttp does not have (issue 13): a header-read timeout and a
body-idle backstop, installed through the runner's protocol factory.

Why: aiohttp bounds a connection that sends *nothing* only by its keep-alive timer (an hour
by default) and has no bound at all on a connection that sends part of its request headers
and then trickles or stops ("slowloris"): each such socket holds a file descriptor, a
protocol object and a parser buffer forever. nginx (`client_header_timeout`) and Apache
(`RequestReadTimeout`) bound this; we do the same here:

- **header-read timeout** (`http_header_read_timeout`): the request line and headers must be
  complete within N seconds — counted from the accept for a connection's first request and
  from the first byte for each later keep-alive request (the idle time between requests stays
  the keep-alive timer's business: 75 s, set in archive/server.py — which also bounds a next
  request whose first bytes arrived together with the previous one and then stalled, as those
  bytes cannot be told from body bytes here). Trickling bytes does not reset the clock. On expiry the
  connection is answered `408 Request Timeout` and closed — never dropped without a response.
- **body-idle timeout** (`http_body_idle_timeout`): while a handler is blocked reading a
  request body and no byte arrives for N seconds, the read fails with `RequestTimeout`, which
  the error middleware maps to 408 like any other typed error. STOW-RS has the same bound in
  its multipart reader (dicomweb/multipart.py); this backstop covers every other route
  (`request.json()`, `request.read()`) that would otherwise wait forever on a truncated body.

aiohttp exposes no hook for either, so this subclasses its `RequestHandler` (the per-connection
protocol) and hands it to the sites through `TimedAppRunner.server`; the attributes read here
(`_messages`, `_waiter`, `_request_in_progress`, the payload's `_waiter`) are pinned by
tests/reliability/test_http_timeouts.py, which fails if an aiohttp upgrade changes them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from archive.errors import RequestTimeout

log = logging.getLogger("dicomweb.http")

_TIMEOUT_BODY = b"request headers not received in time\n"
RESPONSE_408 = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                b"Content-Type: text/plain; charset=utf-8\r\n"
                b"Content-Length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY)


class TimedRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol, plus a header-read timer and a body-idle watchdog."""

    def __init__(self, manager: web.Server, *, header_timeout: float, body_idle_timeout: float,
                 **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.header_timeout = header_timeout
        self.body_idle_timeout = body_idle_timeout
        self._header_timer: asyncio.TimerHandle | None = None
        self._last_data = 0.0

    # -- header-read timeout ------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_header_timer()  # the first request's headers: counted from the accept

    def data_received(self, data: bytes) -> None:
        self._last_data = self._loop.time()
        super().data_received(data)
        if self._messages or self._request_in_progress:
            self._cancel_header_timer()  # headers complete (or these are body bytes)
        elif data and self._waiting_for_request():
            self._arm_header_timer()  # a later keep-alive request began: its clock starts

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _waiting_for_request(self) -> bool:
        """True while the connection sits between requests, its parser reading headers (not
        while a handler runs or aiohttp lingers over an unread body)."""
        waiter = self._waiter
        return waiter is not None and not waiter.done() and not self._messages \
            and not self._request_in_progress

    def _arm_header_timer(self) -> None:
        if self.header_timeout > 0 and self._header_timer is None:
            self._header_timer = self._loop.call_later(self.header_timeout, self._header_expired)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_expired(self) -> None:
        self._header_timer = None
        transport = self.transport
        if transport is None or self._force_close or not self._waiting_for_request():
            return
        log.info("closing a connection whose request headers took over %s s", self.header_timeout,
                 extra={"status": 408, "peer": transport.get_extra_info("peername")})
        transport.write(RESPONSE_408)  # no request was parsed, so no response was started
        self.force_close()  # closes the transport after flushing the 408

    # -- body-idle timeout --------------------------------------------------------------
    async def _handle_request(self, request: web.BaseRequest, start_time: float | None,
                              request_handler: Any) -> tuple[web.StreamResponse, bool]:
        watchdog = None
        if self.body_idle_timeout > 0 and not request.content.is_eof():
            self._last_data = self._loop.time()
            watchdog = self._loop.call_later(self._check_every(), self._check_body,
                                             request.content)
            self._body_watchdog = watchdog
        try:
            return await super()._handle_request(request, start_time, request_handler)
        finally:
            if watchdog is not None:
                self._body_watchdog.cancel()

    def _check_every(self) -> float:
        return max(0.05, self.body_idle_timeout / 4)

    def _check_body(self, payload: StreamReader) -> None:
        """Every timeout/4: a handler blocked reading a body that has been silent for the
        timeout gets `RequestTimeout`. Time the handler spent not reading (flow control
        paused the socket then) does not count against the client."""
        if payload.is_eof() or payload.exception() is not None or self.transport is None:
            return
        now = self._loop.time()
        if getattr(payload, "_waiter", None) is None:
            self._last_data = max(self._last_data, now)  # not reading: the client is not late
        elif now - self._last_data >= self.body_idle_timeout:
            payload.set_exception(RequestTimeout(
                f"request body stalled for {self.body_idle_timeout:g} s"))
            return
        self._body_watchdog = self._loop.call_later(self._check_every(), self._check_body, payload)


class TimedAppRunner(web.AppRunner):
    """An `AppRunner` whose sites create `TimedRequestHandler`s (one per connection)."""

    def __init__(self, app: web.Application, *, header_timeout: float, body_idle_timeout: float,
                 **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._timeouts = {"header_timeout": header_timeout, "body_idle_timeout": body_idle_timeout}

    @property
    def server(self) -> Any:
        """The protocol factory `TCPSite` hands to `loop.create_server`: aiohttp's `Server`
        stays the connections' manager (shutdown, connection tracking) and supplies the
        handler arguments it would have used itself."""
        manager = super().server
        if manager is None:
            return None
        return functools.partial(TimedRequestHandler, manager, loop=manager._loop,
                                 **self._timeouts, **manager._kwargs)
