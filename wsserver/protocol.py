"""The asyncio glue: one :class:`ServerProtocol` per TCP connection.

It feeds received bytes to h11 until the upgrade request is complete, answers
it (101, or an HTTP error), then feeds bytes to the sans-I/O
:class:`~wsserver.connection.Connection` and writes what that produces. It owns
the timers (opening handshake, closing handshake, keepalive, the grace period
before failing a connection), flow control in both directions and the
handler's task.

Protocol violations: messages that arrived before the violation are still
delivered to the handler; the connection is failed as soon as the handler
reaches the violation in the receive queue, or after ``FAIL_DELAY`` seconds
if it does not read.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, cast

import h11

from .connection import CloseReceived, Connection, Pong, ProtocolFailure, State
from .deflate import PerMessageDeflate, negotiate
from .errors import ConnectionClosed, HandshakeError
from .handshake import (
    accept_response,
    check_origin,
    check_request,
    error_response,
    is_upgrade_request,
    select_subprotocol,
)
from .request import Headers, Request
from .response import Response, text
from .routing import Route
from .websocket import FAILURE, WebSocket

if TYPE_CHECKING:
    from .server import Server

__all__ = ["ServerProtocol", "FAIL_DELAY"]

logger = logging.getLogger("wsserver.server")
access_logger = logging.getLogger("wsserver.access")
protocol_logger = logging.getLogger("wsserver.protocol")

#: Longest wait, in seconds, between a protocol violation and failing the
#: connection, while the handler has not yet read the messages before it.
FAIL_DELAY = 0.25


#: Whether asyncio's socket transports reference themselves (see connection_lost).
_TRANSPORT_CYCLE = sys.version_info < (3, 12)


class ServerProtocol(asyncio.BufferedProtocol):
    """One server-side connection: HTTP upgrade, then WebSocket.

    A buffered protocol: the transport reads into the server's one receive
    buffer, which is parsed in place. (A plain protocol gets a new bytes
    object per read, which the allocator maps and unmaps for asyncio's
    256 KiB reads: three system calls per read, and page faults.)
    """

    __slots__ = (
        "server",
        "config",
        "loop",
        "transport",
        "remote_address",
        "_h11",
        "_awaiting_body",
        "_body_size",
        "_busy",
        "request",
        "conn",
        "ws",
        "handler_task",
        "status",
        "lost",
        "_lost_waiters",
        "writing_paused",
        "reading_paused",
        "_drain_waiters",
        "_pending",
        "_pending_size",
        "_transport_closing",
        "_close_timer",
        "_fail_timer",
        "_started",
    )

    def __init__(self, server: Server) -> None:
        self.server = server
        self.config = server.config
        self.loop = server.loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.remote_address: tuple[str, int] | None = None
        self._h11: h11.Connection | None = None
        #: The request (self.request) has a body: it is dispatched at its end.
        self._awaiting_body = False
        self._body_size = 0
        #: The HTTP handler or on_connect hook running (reading is paused).
        self._busy: asyncio.Task[None] | None = None
        self.request: Request | None = None
        self.conn: Connection | None = None
        self.ws: WebSocket | None = None
        self.handler_task: asyncio.Task[None] | None = None
        self.status = 0
        self.lost = False
        self._lost_waiters: list[asyncio.Future[None]] | None = None
        self.writing_paused = False
        self.reading_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._transport_closing = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._fail_timer: asyncio.TimerHandle | None = None
        self._started = self.loop.time()

    # ------------------------------------------------------- asyncio events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have the interface without the base class.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.remote_address = (str(peer[0]), int(peer[1]))
        limit = self.config.write_limit
        self.transport.set_write_buffer_limits(high=limit, low=limit // 4)
        self._h11 = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.config.max_header_size
        )
        self.server.register(self)
        self._arm_open_timer()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.server.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.server.read_buffer[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        """Process received bytes (what buffer_updated does with the buffer's)."""
        if self.conn is not None:
            self._ws_data(data)
        else:
            self._http_data(data)

    def eof_received(self) -> bool:
        conn = self.conn
        if conn is not None:
            conn.receive_eof()
            ws = self.ws
            assert ws is not None
            ws._recv_done = True
            ws._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if _TRANSPORT_CYCLE and getattr(self.transport, "_read_ready_cb", None) is not None:
            # asyncio before 3.12 keeps a bound method of the transport on the
            # transport (python/cpython#100348, fixed in 3.12): break that
            # cycle as 3.12 does, or every closed connection waits for the
            # cyclic GC. Its reader is already removed: it is not called again.
            self.transport._read_ready_cb = None  # type: ignore[attr-defined]
        if self._busy is not None:
            self._busy.cancel()
            self._busy = None
        self._stop_open_timer()
        server = self.server
        if server.ping_deadlines is not None:
            server.ping_deadlines.discard(self)
            if server.pong_deadlines is not None:
                server.pong_deadlines.discard(self)
        for timer in (self._close_timer, self._fail_timer):
            if timer is not None:
                timer.cancel()
        self._close_timer = self._fail_timer = None
        self._pending = []
        if self.conn is not None:
            self.conn.receive_eof()
        if self.ws is not None:
            self.ws._connection_lost()
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()
        if self._lost_waiters is not None:
            for waiter in self._lost_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._lost_waiters = None
        self.server.unregister(self)
        self._log_access()
        if self.handler_task is None or self.handler_task.done():
            self._release()

    def _release(self) -> None:
        """Once both the connection and its handler are over: drop the WebSocket.

        ``ws._protocol`` and ``self.ws`` point at each other; breaking the
        cycle lets reference counting free the connection's objects at once
        instead of leaving them to the garbage collector. A handler (or
        anyone) may keep ``ws``: it still reports the connection closed.
        """
        self.ws = None

    async def wait_lost(self) -> None:
        """Wait until the TCP connection is closed."""
        if self.lost:
            return
        if self._lost_waiters is None:
            self._lost_waiters = []
        waiter = self.loop.create_future()
        self._lost_waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._lost_waiters is not None and waiter in self._lost_waiters:
                self._lost_waiters.remove(waiter)

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    # ------------------------------------------------------------ HTTP phase

    def _http_data(self, data: bytes | memoryview) -> None:
        h = self._h11
        if h is None:
            return
        h.receive_data(bytes(data))  # h11 keeps what it has not parsed
        self._process_http()

    def _process_http(self) -> None:
        """Handle the requests h11 has buffered, one at a time (pipelining)."""
        h = self._h11
        while h is not None and self._busy is None and not self._transport_closing:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as exc:
                self.http_error(exc.error_status_hint, f"Bad request: {exc}")
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            kind = type(event)
            if kind is h11.Request:
                # A request without a body is dispatched at once (h11's
                # EndOfMessage for it is taken only if an HTTP response needs
                # it); one with a body once the body has arrived.
                if not self._start_request(event):  # type: ignore[arg-type]
                    return
                if not self._awaiting_body:
                    self._dispatch()
                    h = self._h11
            elif kind is h11.Data:
                self._body_size += len(event.data)  # type: ignore[union-attr]
                if self._body_size > self.config.max_header_size:
                    self.http_error(413, "Request bodies are not accepted here.")
                    return
            elif kind is h11.EndOfMessage and self._awaiting_body:
                self._awaiting_body = False
                self._dispatch()
                h = self._h11
            elif kind is h11.ConnectionClosed:
                self.close_transport()
                return

    def _start_request(self, event: h11.Request) -> bool:
        """Check a request's head and make ``self.request``; False if it was refused."""
        # One pass over the headers (h11 hands over lowercase names), also
        # measuring the head: h11 bounds a head only while it is incomplete,
        # so one that arrives whole in a single read is checked here.
        items = []
        head_size = len(event.method) + len(event.target) + 12
        body = False
        for name, value in event.headers:
            head_size += len(name) + len(value) + 4
            items.append((name.decode("latin-1"), value.decode("latin-1")))
            if (name == b"content-length" and value != b"0") or name == b"transfer-encoding":
                body = True
        if len(items) > self.config.max_headers:
            self.http_error(431, "Too many request headers.")
            return False
        if head_size > self.config.max_header_size:
            self.http_error(431, "Request header fields too large.")
            return False
        self.request = Request(
            event.method.decode("ascii", "replace"),
            event.target.decode("latin-1"),
            Headers.from_lowercase(items),
            remote_address=self.remote_address,
            http_version=event.http_version.decode("ascii", "replace"),
        )
        self._awaiting_body = body
        self._body_size = 0
        return True

    def _dispatch(self) -> None:
        """Route ``self.request``: handshake, HTTP handler, or an error response."""
        request = self.request
        assert request is not None
        upgrade = is_upgrade_request(request.headers)
        if not upgrade:
            # Plain HTTP: the timer limits the request, not the handler.
            self._stop_open_timer()
        found = self.server.router.resolve(request.path, request.host, request.method, upgrade)
        route = found.route
        if route is None:
            if found.status == 405:
                allow = ", ".join(found.allowed)
                self.send_response(text("Method Not Allowed", 405, [("Allow", allow)]))
            elif found.status == 426:
                self.send_response(
                    text(
                        "This is a WebSocket endpoint: send a WebSocket upgrade request.",
                        426,
                        [("Upgrade", "websocket"), ("Connection", "Upgrade")],
                    )
                )
            else:
                self.send_response(text("Not Found", 404))
            return
        request.match_info = found.params
        request.route = route
        if route.is_websocket:
            self._handshake(request, route, found.params)
        else:
            self._run_in_http_phase(self._http_handler(route, found.params))

    def _handshake(self, request: Request, route: Route, params: dict[str, Any]) -> None:
        headers = request.headers
        try:
            key = check_request(request.method, request.http_version, headers)
            origins = route.origins
            if origins is None and self.config.origins is not None:
                origins = frozenset(self.config.origins)
            check_origin(headers, origins)
            subprotocol = select_subprotocol(headers, route.subprotocols, route.require_subprotocol)
        except HandshakeError as exc:
            self.http_error(exc.status, exc.message, exc.headers)
            return
        if self.server.closing:
            self.http_error(503, "Server is shutting down.", [("Retry-After", "1")])
            return
        max_connections = self.config.max_connections
        if max_connections is not None and self.server.websocket_count >= max_connections:
            self.http_error(503, "Too many connections.", [("Retry-After", "1")])
            return
        deflate = extensions = None
        if self.config.compression == "deflate":
            agreed = negotiate(
                headers.getall("sec-websocket-extensions"), self.server.deflate_settings
            )
            if agreed is not None:
                deflate, extensions = agreed
        if route.on_connect is None:
            self._accept(request, route, params, key, subprotocol, extensions, deflate)
            return

        async def hook() -> None:
            assert route.on_connect is not None
            denial = route.on_connect(request)
            if inspect.isawaitable(denial):
                denial = await denial
            if denial is None:
                self._busy = None
                self._accept(request, route, params, key, subprotocol, extensions, deflate)
            elif isinstance(denial, Response):
                self.send_response(denial, close=True)
            else:
                raise TypeError(
                    f"on_connect hook returned {type(denial).__name__}, not a Response or None"
                )

        self._run_in_http_phase(hook())

    def _accept(
        self,
        request: Request,
        route: Route,
        params: dict[str, Any],
        key: str,
        subprotocol: str | None,
        extensions: str | None,
        deflate: PerMessageDeflate | None,
    ) -> None:
        """Send the 101 and switch to the WebSocket phase."""
        h = self._h11
        assert h is not None
        self.transport.resume_reading()
        # Written directly: h11's state does not matter past this point, and
        # its trailing data (frames sent right after the request) is kept.
        self.transport.write(accept_response(key, subprotocol, extensions))
        trailing, _ = h.trailing_data
        self._h11 = None
        self._stop_open_timer()
        self.status = 101
        conn = Connection(max_size=self.config.max_size, deflate=deflate)
        self.conn = conn
        self.ws = WebSocket(self, conn, request, subprotocol)
        self.server.websocket_opened(self)
        self.handler_task = self.loop.create_task(self._run_handler(route, params))
        self._schedule_keepalive()
        if trailing:
            self._ws_data(trailing)

    def _run_in_http_phase(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a handler or hook; reading pauses until it has answered."""
        self.transport.pause_reading()
        self._busy = self.loop.create_task(coro)
        self._busy.add_done_callback(self._http_task_done)

    def _http_task_done(self, task: asyncio.Task[None]) -> None:
        if self._busy is task:
            self._busy = None
        if task.cancelled() or self.lost:
            return
        exc = task.exception()
        if exc is not None:
            logger.error(
                "error while handling %s from %s",
                self.request.path if self.request else "-",
                self._peer(),
                exc_info=exc,
            )
            if self.conn is None:
                self.http_error(500, "Internal Server Error")
            return
        if self.conn is None and not self._transport_closing:
            self.transport.resume_reading()
            self._process_http()

    async def _http_handler(self, route: Route, params: dict[str, Any]) -> None:
        assert self.request is not None
        response = await route.handler(self.request, **params)
        if not isinstance(response, Response):
            raise TypeError(
                f"HTTP handler {route.name} returned {type(response).__name__}, not a Response"
            )
        self.send_response(response)

    def send_response(self, response: Response, *, close: bool = False) -> None:
        """Send an HTTP response; keep the connection alive when HTTP/1.1 allows."""
        if self._transport_closing or self.lost:
            return
        h = self._h11
        self.status = response.status
        headers = list(response.headers)
        if not any(name.lower() == "content-length" for name, _ in headers):
            headers.append(("Content-Length", str(len(response.body))))
        if close:
            headers.append(("Connection", "close"))
        if h is None or h.our_state is not h11.SEND_RESPONSE:
            self.http_error(response.status, "", headers, body=response.body)
            return
        if h.their_state is h11.SEND_BODY:
            # A request without a body is dispatched before h11 gives its
            # end: take it now so that the connection can stay open (if that
            # fails, the states below do not match and the connection closes).
            with contextlib.suppress(h11.RemoteProtocolError):
                h.next_event()
        try:
            data = h.send(h11.Response(status_code=response.status, headers=headers)) or b""
            if response.body and self.request is not None and self.request.method != "HEAD":
                data += h.send(h11.Data(data=response.body)) or b""
            data += h.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:
            logger.error("cannot send response %r: %s", response, exc)
            self.http_error(500, "Internal Server Error")
            return
        self.transport.write(data)
        states: Any = (h.our_state, h.their_state)
        if states == (h11.DONE, h11.DONE):
            h.start_next_cycle()
            self._arm_open_timer()
        else:
            self.close_transport()

    def http_error(
        self,
        status: int,
        message: str,
        headers: list[tuple[str, str]] | None = None,
        *,
        body: bytes | None = None,
    ) -> None:
        """Answer with an HTTP error and close the connection."""
        self.status = status
        self._stop_open_timer()
        if status >= 400:
            protocol_logger.debug("%s: HTTP %d: %s", self._peer(), status, message)
        self.transport.write(
            error_response(status, message if body is None else body, headers or [])
        )
        self.close_transport()

    def _arm_open_timer(self) -> None:
        deadlines = self.server.open_deadlines
        if deadlines is not None:
            deadlines.add(self)

    def _stop_open_timer(self) -> None:
        deadlines = self.server.open_deadlines
        if deadlines is not None:
            deadlines.discard(self)

    def on_open_timeout(self) -> None:
        """The request (or the next one on a kept-alive connection) took over open_timeout."""
        if self.conn is None and not self._transport_closing:
            self.status = self.status or 408
            protocol_logger.debug("%s: request not complete within open_timeout", self._peer())
            if self._busy is not None:
                self._busy.cancel()
            self.close_transport()

    # ------------------------------------------------------- WebSocket phase

    def _ws_data(self, data: bytes | memoryview) -> None:
        conn = self.conn
        ws = self.ws
        assert conn is not None and ws is not None
        events = conn.receive_data(data)
        if events:
            queue = ws._queue
            wake = False
            for event in events:
                kind = type(event)
                if kind is str or kind is bytes:
                    queue.append(event)
                    wake = True
                elif kind is Pong:
                    ws._pong_received(event.payload)  # type: ignore[union-attr]
                elif kind is CloseReceived:
                    ws._recv_done = True
                    wake = True
                elif kind is ProtocolFailure:
                    self._on_failure(event)  # type: ignore[arg-type]
                    wake = True
            if wake:
                ws._wake()
            if len(queue) >= self.config.max_queue and not self.reading_paused:
                self.reading_paused = True
                self.transport.pause_reading()
        out = conn.data_to_send()
        if out:
            self.write(out)
        if conn.state is State.CLOSED:
            self.close_transport()

    def accepts_broadcast(self) -> bool:
        """Whether :func:`wsserver.broadcast` sends to this connection now.

        Not when it is not open, is in the middle of sending a fragmented
        message, or holds more than ``write_limit`` unsent bytes.
        """
        # WebSocket.open's test, inlined (broadcast's per-client cost doubles
        # through the property): state OPEN already means no close frame sent.
        conn = self.conn
        return (
            conn is not None
            and conn.state is State.OPEN
            and conn.close_received is None
            and not conn.sending_fragments
            and not self.lost
            and self.transport.get_write_buffer_size() <= self.config.write_limit
        )

    def send_broadcast(self, frame: bytes) -> bool:
        """Write a whole data frame built once for many connections; False if skipped.

        The connection is skipped (nothing written) unless
        :meth:`accepts_broadcast`. The frame goes after any frames held for
        coalescing, at once otherwise.
        """
        if not self.accepts_broadcast():
            return False
        if self._pending:
            self.write([frame])
        else:
            self.transport.write(frame)
        return True

    def write(self, chunks: list[bytes]) -> None:
        """Send frames, coalescing those a handler writes while it works through a backlog.

        While received messages wait in the queue (pipelining), frames are
        held and leave together in one transport write (one syscall) once the
        handler has caught up, at the end of the loop iteration at the latest,
        or at once when ``write_limit`` bytes are held. Otherwise they are
        written at once.
        """
        if not chunks or self.lost:
            return
        pending = self._pending
        ws = self.ws
        if not pending and (ws is None or not ws._queue):
            if len(chunks) == 1:
                self.transport.write(chunks[0])
            else:
                self.transport.writelines(chunks)
            return
        if not pending:
            self.loop.call_soon(self.flush)
        pending += chunks
        for chunk in chunks:
            self._pending_size += len(chunk)
        if self._pending_size >= self.config.write_limit or ws is None or not ws._queue:
            self.flush()

    def flush(self) -> None:
        """Write the queued frames now."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        self._pending_size = 0
        if not self.lost:
            if len(pending) == 1:
                self.transport.write(pending[0])
            else:
                # One writev where the transport can (uvloop, asyncio >= 3.12);
                # asyncio 3.11 joins the chunks itself.
                self.transport.writelines(pending)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark."""
        while self.writing_paused and not self.lost:
            waiter = self.loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter

    def maybe_resume_reading(self) -> None:
        """Resume reading once the handler drained the queue to a quarter of max_queue."""
        ws = self.ws
        if (
            self.reading_paused
            and ws is not None
            and len(ws._queue) <= self.config.max_queue // 4
            and not self._transport_closing
        ):
            self.reading_paused = False
            self.transport.resume_reading()

    def _on_failure(self, event: ProtocolFailure) -> None:
        protocol_logger.debug(
            "%s: protocol error, closing with %d: %s", self._peer(), event.code, event.reason
        )
        ws = self.ws
        assert ws is not None
        if ws._queue:
            ws._queue.append(FAILURE)
            self._fail_timer = self.loop.call_later(FAIL_DELAY, self.fail_now)
        else:
            self.fail_now()

    def fail_now(self) -> None:
        """Fail the connection for the protocol violation that was received."""
        if self._fail_timer is not None:
            self._fail_timer.cancel()
            self._fail_timer = None
        conn = self.conn
        assert conn is not None
        failure = conn.failure
        if failure is not None and not self.lost:
            self._fail(failure.close_code, failure.reason)
        ws = self.ws
        if ws is not None:  # None: released, and already told of the loss
            ws._recv_done = True
            ws._wake()

    def _fail(self, code: int, reason: str) -> None:
        """Send a close frame, then half-close TCP and read (discarding) until the peer closes.

        After a violation the peer's close reply may be unrecognisable (it can
        arrive as the rest of a bad frame's payload), so the FIN tells the peer
        we are done; it closes its side and no unread data turns our close into
        a reset that could destroy the close frame.
        """
        conn = self.conn
        assert conn is not None
        if conn.close_sent is None:
            conn.fail(code, reason)
            self.write(conn.data_to_send())
        if conn.state is not State.CLOSED and self.transport.can_write_eof():
            self.flush()
            self.transport.write_eof()
        self._after_close_sent()

    def start_close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake (idempotent; bounded by close_timeout).

        Raises:
            ValueError: ``code`` or ``reason`` may not be sent.
        """
        conn = self.conn
        if conn is None or self.lost:
            return
        if conn.failure is not None and conn.close_sent is None:
            self.fail_now()
            return
        conn.send_close(code, reason)
        self.write(conn.data_to_send())
        self._after_close_sent()

    def _after_close_sent(self) -> None:
        conn = self.conn
        assert conn is not None
        if conn.state is State.CLOSED:
            self.close_transport()
        else:
            self._arm_close_timer()

    def close_transport(self) -> None:
        """Close TCP (after flushing), aborting it if that takes over close_timeout."""
        if self._transport_closing or self.lost:
            return
        self._transport_closing = True
        self.flush()
        transport = self.transport
        transport.close()
        # With nothing left to write, a plain TCP transport is gone at the
        # next loop iteration; TLS still exchanges close_notify.
        if transport.get_write_buffer_size() or self.server.ssl is not None:
            self._arm_close_timer()

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and not self.lost:
            self._close_timer = self.loop.call_later(
                self.config.close_timeout, self._on_close_timeout
            )

    def _on_close_timeout(self) -> None:
        self._close_timer = None
        protocol_logger.debug("%s: closing handshake timed out; aborting", self._peer())
        self.transport.abort()

    # -------------------------------------------------------------- keepalive

    def _schedule_keepalive(self) -> None:
        pings = self.server.ping_deadlines
        if pings is not None and not self.lost:
            pings.add(self)

    def on_ping_due(self) -> None:
        """ping_interval has passed since the connection opened or the last pong: ping."""
        ws = self.ws
        if ws is None or not ws.open:
            return
        pong = ws.ping()
        pong.add_done_callback(self._keepalive_answered)
        pongs = self.server.pong_deadlines
        if pongs is not None:
            pongs.add(self)

    def _keepalive_answered(self, future: asyncio.Future[float]) -> None:
        pongs = self.server.pong_deadlines
        if pongs is not None:
            pongs.discard(self)
        if not future.cancelled() and future.exception() is None:
            self._schedule_keepalive()

    def on_pong_timeout(self) -> None:
        """No pong within ping_timeout: fail the connection with 1011."""
        conn = self.conn
        ws = self.ws
        if conn is None or ws is None or self.lost:
            return
        protocol_logger.debug("%s: no pong within ping_timeout; closing", self._peer())
        if conn.close_sent is None:
            self._fail(1011, "keepalive ping timeout")
        ws._recv_done = True
        ws._wake()

    # ---------------------------------------------------------------- handler

    async def _run_handler(self, route: Route, params: dict[str, Any]) -> None:
        ws = self.ws
        assert ws is not None and self.request is not None
        try:
            await route.handler(self.request, ws, **params)
        except ConnectionClosed:
            self.start_close(1000)
        except asyncio.CancelledError:
            self.start_close(1001, "server shutting down")
            raise
        except Exception:
            logger.exception(
                "handler %s failed on %s from %s", route.name, self.request.path, self._peer()
            )
            self.start_close(1011, "internal server error")
        else:
            conn = self.conn
            # Usually the client closed first and the reply is out already.
            if conn is not None and conn.close_sent is None:
                self.start_close(1000)
        finally:
            if self.lost:
                self._release()

    def shutdown(self) -> None:
        """Server shutdown: 503 during the HTTP phase, close 1001 afterwards."""
        if self.lost or self._transport_closing:
            return
        if self.conn is None:
            self.http_error(503, "Server is shutting down.", [("Retry-After", "1")])
        else:
            self.start_close(1001, "server shutting down")

    # ---------------------------------------------------------------- logging

    def _peer(self) -> str:
        if self.remote_address is None:
            return "-"
        return f"{self.remote_address[0]}:{self.remote_address[1]}"

    def _log_access(self) -> None:
        if not access_logger.isEnabledFor(logging.INFO):
            return
        path = self.request.path if self.request is not None else "-"
        code = self.conn.close_code if self.conn is not None else "-"
        access_logger.info(
            "%s %s %s %.3fs close=%s",
            self._peer(),
            path,
            self.status or "-",
            self.loop.time() - self._started,
            code,
        )
