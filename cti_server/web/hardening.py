"""What every HTTP answer and connection of the server gets, whatever route it reaches.

- **No software name**: aiohttp adds ``Server: Python/3.x aiohttp/3.x`` to every response, the
  400 it sends for a request it cannot parse included. Each response's headers are written by a
  writer made here (:class:`_Writer`), which drops the header; an ``on_response_prepare`` hook
  would miss those 400s (they never reach the application).
- **No caching, sniffing, framing or referrers** (:func:`add_security_headers`): ``Cache-Control:
  no-store`` on every answer but the static files (customer pages, the desktop, the API answers
  carry personal data, and a shared or back-button cache must not keep them), plus ``nosniff``,
  ``no-referrer`` and ``DENY``; a header a route set itself (the UI's own policy) is kept.
- **Slow clients are dropped** (:class:`GuardedSite`): aiohttp 3.14 has no header or body read
  timeout, so a client that trickles its request (slowloris) holds a socket for an hour (its
  ``keepalive_timeout``, the only bound). Here a request's headers must be complete within
  ``header_timeout`` of the connection opening or of their first byte (a 408 when some had come,
  then the connection closes; a connection that sends nothing is closed silently); its body
  within ``body_timeout`` of the headers (the handler's read fails with a 408, and the connection
  closes after it). An idle keep-alive connection is aiohttp's to close (``idle_timeout``, longer
  than a proxy keeps its own idle connections to us, so that it never reuses one we close). The
  site, a ``BaseSite`` as ``TCPSite`` is, puts a guard in front of each
  connection's protocol and wraps the server's public ``request_factory``, which aiohttp calls
  once a request's headers are parsed. Websockets are untouched: an upgraded request is being
  served for as long as the socket lives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import RawRequestMessage, StreamWriter
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from multidict import CIMultiDict

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
"""Set on every answer unless the route set its own; static files keep their caching."""

_SLOW = b"request headers too slow"
TOO_SLOW = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_SLOW), _SLOW)
)

RequestFactory = Callable[
    [RawRequestMessage, StreamReader, RequestHandler, AbstractStreamWriter, "asyncio.Task[None]"],
    web.BaseRequest,
]


def add_security_headers(app: web.Application) -> None:
    """Every answer of ``app`` and of its sub-applications gets :data:`SECURITY_HEADERS`."""
    app.on_response_prepare.append(_security_headers)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    static = isinstance(request.match_info.route.resource, web.StaticResource)
    for name, value in SECURITY_HEADERS.items():
        if name == hdrs.CACHE_CONTROL and static:
            continue  # the browser phone's scripts and styles may be cached
        response.headers.setdefault(name, value)


@dataclass(frozen=True)
class ReadLimits:
    """Seconds a client has to send a request's headers, then its body."""

    headers: float
    body: float


class GuardedSite(web.BaseSite):
    """A TCP listener for ``runner`` whose connections must keep to :class:`ReadLimits`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: ReadLimits) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._limits = limits
        self._guards: dict[RequestHandler, _Guard] = {}

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        if server is None:
            raise RuntimeError("call runner.setup() before starting a site")
        server.request_factory = self._headers_read(server.request_factory)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: self._connect(server), self._host, self._port
        )

    def _connect(self, server: web.Server) -> _Guard:
        handler = server()
        guard = _Guard(handler, self._limits, forget=lambda: self._guards.pop(handler, None))
        self._guards[handler] = guard
        return guard

    def _headers_read(self, make_request: RequestFactory) -> RequestFactory:
        """aiohttp calls the request factory once a request's headers are parsed."""

        def _make_request(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: RequestHandler,
            _writer: AbstractStreamWriter,
            task: asyncio.Task[None],
        ) -> web.BaseRequest:
            guard = self._guards.get(protocol)
            writer = _Writer(protocol, guard.response_sent if guard else lambda: None)
            request = make_request(message, payload, protocol, writer, task)
            if guard is not None:
                guard.headers_complete(payload)
            return request

        return _make_request


class _Writer(StreamWriter):
    """aiohttp's writer for one response, without the ``Server`` header, telling when it ends."""

    def __init__(self, protocol: RequestHandler, sent: Callable[[], None]) -> None:
        super().__init__(protocol, asyncio.get_running_loop())
        self._response_sent = sent

    async def write_headers(self, status_line: str, headers: CIMultiDict[str]) -> None:
        headers.popall(hdrs.SERVER, None)
        await super().write_headers(status_line, headers)

    async def write_eof(self, chunk: bytes = b"") -> None:
        try:
            await super().write_eof(chunk)
        finally:
            self._response_sent()


class _Guard(asyncio.Protocol):
    """One connection: aiohttp's handler behind deadlines for the headers and the body.

    The header clock runs from the connection's opening, and between requests from the first
    byte of the next one; while a request is served only its body is timed, and the bytes of a
    next request sent meanwhile (pipelining) start its clock once this one is answered. Half a
    request sent in the same packet as a whole one cannot be told apart from an idle connection
    here (the parser keeps it): aiohttp's idle timeout closes it, as it would an idle one.
    """

    def __init__(
        self, handler: RequestHandler, limits: ReadLimits, forget: Callable[[], object]
    ) -> None:
        self._handler = handler
        self._limits = limits
        self._forget = forget
        self._transport: asyncio.Transport | None = None
        self._serving = False
        self._started = False  # bytes of the next request's headers have arrived
        self._payload: StreamReader | None = None  # the body of the request being served
        self._headers_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._handler.connection_made(transport)
        self._start_headers_clock()  # a connection that never sends anything is dropped too

    def data_received(self, data: bytes) -> None:
        if data and not self._serving:
            self._started = True
            if self._headers_timer is None:
                self._start_headers_clock()
        elif data and self._payload is not None and self._payload.is_eof():
            self._started = True  # the next request, pipelined: timed once this one is answered
        self._handler.data_received(data)

    def eof_received(self) -> None:
        self._handler.eof_received()  # returns None: the transport closes once it is written

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clocks()
        self._forget()
        self._handler.connection_lost(exc)

    def headers_complete(self, payload: StreamReader) -> None:
        self._stop_clocks()
        self._serving, self._started, self._payload = True, False, payload
        if payload.is_eof():
            return
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self._limits.body, self._body_too_slow, payload)
        self._body_timer = timer
        payload.on_eof(timer.cancel)

    def response_sent(self) -> None:
        """Answered: aiohttp itself drains (for ``lingering_time``) a body left unread."""
        self._stop_clocks()
        self._serving, self._payload = False, None
        if self._started:
            self._start_headers_clock()

    def _start_headers_clock(self) -> None:
        loop = asyncio.get_running_loop()
        self._headers_timer = loop.call_later(self._limits.headers, self._headers_too_slow)

    def _stop_clocks(self) -> None:
        for timer in (self._headers_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._headers_timer = self._body_timer = None

    def _headers_too_slow(self) -> None:
        self._headers_timer = None
        if self._serving:
            return
        log.debug(
            "dropping %s: request headers not complete within %g s (http.header_timeout)",
            self._peer(),
            self._limits.headers,
        )
        if self._started and self._transport is not None:
            self._transport.write(TOO_SLOW)
        self._handler.force_close()  # sends what was written, then closes

    def _body_too_slow(self, payload: StreamReader) -> None:
        self._body_timer = None
        if payload.is_eof():
            return
        log.debug(
            "refusing a request from %s: body not complete within %g s (http.body_timeout)",
            self._peer(),
            self._limits.body,
        )
        timeout = web.HTTPRequestTimeout(text="request body too slow")
        timeout.force_close()
        payload.set_exception(timeout)  # the handler's read raises it: a 408
        payload.feed_eof()  # nothing left to drain once the handler has answered
        self._handler.close()  # read no more of this connection; close it after the answer

    def _peer(self) -> str:
        peer = self._transport.get_extra_info("peername") if self._transport else None
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "a client"
