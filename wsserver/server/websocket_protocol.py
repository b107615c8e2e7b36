"""The WebSocket phase of one TCP connection: the asyncio protocol after the 101.

:class:`~wsserver.server.http_protocol.HttpProtocol` hands the transport over
(``transport.set_protocol()``) once it has sent the ``101``, with the bytes
that followed the request. From then on this protocol feeds received bytes to
the sans-I/O :class:`~wsserver.protocol.connection.Connection`, puts the
messages in the connection's :class:`~wsserver.server.inbox.Inbox`, and writes
what the connection has to send (:meth:`WebSocketProtocol.send_pending`, the
one place that does). It owns what needs a clock or a socket: flow control in
both directions, the closing handshake's timeout, keepalive, the grace period
before failing a connection, and the handler's task.

Protocol violations: messages that arrived before the violation are still
delivered to the handler; the connection is failed as soon as the handler
reaches the violation in its inbox, or after ``FAIL_DELAY`` seconds if it does
not read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from ..app.request import Request
from ..app.response import Response, StreamingResponse
from ..app.routing import Route
from ..errors import NOT_FAILURES, ConnectionClosed, cancelled, only, passed_on
from ..logs import (
    HANDLER_EXIT_UNDONE,
    access_logger,
    error_fields,
    log_access,
    logger,
    peer,
    printable,
    protocol_logger,
    say_exit,
)
from ..protocol.connection import CloseReceived, Connection, Pong, ProtocolFailure, check_close
from ..protocol.state import ConnectionState
from .app_tasks import start_app_task
from .inbox import Inbox
from .stats import MESSAGE_FIELDS
from .transports import (
    break_transport_cycle,
    direct_fd,
    peer_left,
    tcp_bytes_moved,
    unread_bytes,
    unsent_bytes,
    write,
    writelines,
)
from .websocket import WebSocket

if TYPE_CHECKING:
    from .server import Server

__all__ = ["WebSocketProtocol", "FAIL_DELAY"]

#: The reasons of the close codes a server shutdown sends.
CLOSE_REASONS = {1001: "server shutting down", 1012: "server restarting"}

#: Longest wait, in seconds, between a protocol violation (or the handler's
#: last taking of a message before it) and failing the connection, while the
#: handler has not yet read the messages before it (and close_timeout after
#: the violation at most).
FAIL_DELAY = 0.25

_OPEN = ConnectionState.OPEN
_FAILING = ConnectionState.FAILING
_CLOSED = ConnectionState.CLOSED


class WebSocketProtocol(asyncio.BufferedProtocol):
    """One connection after the upgrade: frames, flow control, closing, keepalive, the handler.

    A buffered protocol, like the HTTP phase: the transport reads into the
    server's one receive buffer, which is parsed in place.

    Args:
        server: the server the connection belongs to.
        transport: the connection's transport, handed over after the 101.
        conn: the sans-I/O connection, with the agreed extensions.
        request: the upgrade request.
        subprotocol: the subprotocol agreed, or None.
        remote_address: the client's ``(host, port)`` (the request's: behind a trusted
            proxy, the one it names), or None; the log lines name it.
        started: the loop time at which the upgrade request began (for the
            access log: not the TCP connection's, which may have served
            HTTP requests before).
        writing_paused: whether the transport paused writing before the
            handover (the 101 took its buffer over ``write_limit``): it told
            the HTTP protocol, and tells this one only once it resumes.
    """

    __slots__ = (
        "server",
        "config",
        "loop",
        "transport",
        "_fd",
        "remote_address",
        "request",
        "conn",
        "inbox",
        "websocket",
        "handler_task",
        "lost",
        "writing_paused",
        "_lost_waiters",
        "_drain_waiters",
        "_held",
        "_held_size",
        "_transport_closing",
        "_aborted",
        "_input_held",
        "_unparsed",
        "_close_timer",
        "_fail_timer",
        "_started",
        "_resumed",
        "_progress",
        "_keepalive_pong",
        "route_name",
        "builtin",
        *MESSAGE_FIELDS,
    )

    def __init__(
        self,
        server: Server,
        transport: asyncio.Transport,
        conn: Connection,
        request: Request,
        subprotocol: str | None,
        remote_address: tuple[str, int] | None,
        started: float,
        writing_paused: bool = False,
    ) -> None:
        self.server = server
        self.config = server.config
        self.loop = server.loop
        self.transport = transport
        # Where writes go while the transport holds nothing (< 0: the transport; see transports).
        self._fd = direct_fd(transport)
        self.remote_address = remote_address
        self.request = request
        self.conn = conn
        self.inbox = Inbox(
            self.loop,
            self.config.max_queue,
            pause=self._pause_reading,
            resume=self._resume_reading,
            reached_failure=self.fail_now,
        )
        #: The handler's WebSocket; None once the connection and its handler are over.
        self.websocket: WebSocket | None = WebSocket(self, conn, self.inbox, request, subprotocol)
        self.handler_task: asyncio.Task[None] | None = None
        #: Whether the TCP connection is gone.
        self.lost = False
        #: Whether the transport's write buffer is above write_limit.
        self.writing_paused = writing_paused
        if writing_paused:
            conn.hold_pongs(True)  # (as pause_writing() does)
        self._lost_waiters: list[asyncio.Future[None]] | None = None
        self._drain_waiters: list[asyncio.Future[None]] = []
        # Frames held to leave in one write, while the handler works through a backlog.
        self._held: list[bytes] = []
        self._held_size = 0
        self._transport_closing = False
        #: Whether the transport was aborted (what it held not counted as sent).
        self._aborted = False
        # Whether reading is paused because received bytes wait to be parsed
        # (the connection's input_waiting), and their parse is scheduled.
        self._input_held = False
        # What data_received() was given beyond the piece that stopped at the
        # inflate limit: parsed after the held input.
        self._unparsed = b""
        self._close_timer: asyncio.TimerHandle | None = None
        self._fail_timer: asyncio.TimerHandle | None = None
        self._started = started
        # How often writing resumed (the peer drained our writes), and what
        # moved since the last keepalive ping (see _peer_made_progress).
        self._resumed = 0
        self._progress: tuple[object, ...] | None = None
        # The last keepalive ping's pong waiter: done once its pong is read,
        # a turn before _keepalive_answered takes the deadline off.
        self._keepalive_pong: asyncio.Future[float] | None = None
        #: What the statistics file this connection under (the route's name, or "asgi").
        self.route_name = "asgi"
        #: Whether it is the server's own endpoint's (the status page's feed),
        #: not one of the application's WebSockets (see Server.websocket_count).
        self.builtin = False
        # Counted as they pass (see wsserver.server.stats): messages, their
        # payload bytes (text: UTF-8), and bytes on the wire, each way.
        self.text_in = self.binary_in = self.text_out = self.binary_out = 0
        self.payload_in = self.payload_out = self.wire_in = self.wire_out = 0

    def start(
        self, handler: Coroutine[Any, Any, None] | asyncio.Task[None], received: bytes
    ) -> None:
        """Run the handler, and take the bytes that followed the request.

        ``handler`` is a Router handler's run (:meth:`run_handler`), or the
        task of an ASGI application that answered the handshake, which goes on.
        Called once the transport was handed over: reading resumes here if the
        HTTP phase had paused it (for an ``on_connect`` hook or an ASGI app).
        """
        self.transport.resume_reading()
        if isinstance(handler, asyncio.Task):
            self.handler_task = handler
            handler.add_done_callback(self._adopted_task_done)
        else:
            self.handler_task = start_app_task(self.loop, handler)
            # (It may outlive the connection: shutdown waits for it all the same.)
            self.server.app_task_started(self.handler_task)
        self.server.websocket_opened(self)
        self.server.counters.connection_opened(self)
        self._schedule_keepalive()
        if received:
            self.data_received(received)

    def _adopted_task_done(self, task: asyncio.Task[None]) -> None:
        if self.lost:
            self._drop_websocket()

    # ------------------------------------------------------- asyncio events

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.server.read_buffer

    def data_received(self, data: bytes | memoryview) -> None:
        """Process bytes received otherwise than into the buffer (with the
        upgrade request; none, to go on with held input)."""
        buffer = self.server.read_buffer
        size = len(buffer)
        for start in range(0, max(len(data), 1), size):  # (none: once)
            chunk = data[start : start + size]
            buffer[: len(chunk)] = chunk
            self.buffer_updated(len(chunk))
            if self._input_held and start + size < len(data):
                # Stopped at the inflate limit: the rest waits its turn, as
                # the kernel's bytes wait while reading is paused.
                self._unparsed = bytes(data[start + size :])
                return

    def buffer_updated(self, nbytes: int) -> None:
        """Process the ``nbytes`` bytes the transport read into the server's buffer.

        The body of every read (``data_received`` copies into the buffer
        and calls this): a call less per read than the other way round.
        """
        conn = self.conn
        self.wire_in += nbytes
        events = conn.receive_data(self.server.read_buffer[:nbytes])
        if events:
            inbox = self.inbox
            for event in events:
                kind = type(event)
                if kind is str:
                    inbox.put(event)  # type: ignore[arg-type]
                    self.text_in += 1
                    text: str = event  # type: ignore[assignment]
                    self.payload_in += len(text) if text.isascii() else len(text.encode())
                elif kind is bytes:
                    inbox.put(event)  # type: ignore[arg-type]
                    self.binary_in += 1
                    self.payload_in += len(event)  # type: ignore[arg-type]
                elif kind is Pong:
                    if self.websocket is not None:
                        self.websocket.pong_received(event.payload)  # type: ignore[union-attr]
                elif kind is CloseReceived:
                    inbox.end()
                elif kind is ProtocolFailure:
                    self._on_failure(event)  # type: ignore[arg-type]
            inbox.wake()
        if conn.out:  # (a pong, a close: rarely; a call less per message)
            self.send_pending()
        if conn.state is _CLOSED:
            self.close_transport()
        elif conn.input_waiting:
            self._hold_input()

    def eof_received(self) -> bool:
        self.conn.receive_eof()
        if self.websocket is not None:
            # Nothing reaches it now (asyncio closes the transport below):
            # out of its topics before its handler hears of the end.
            self.websocket.leave_topics()
        self.inbox.end()
        # asyncio closes the transport now, once what it holds is written: a
        # peer that half-closed and reads nothing would hold it for ever.
        self._arm_close_timer()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        break_transport_cycle(self.transport)
        server = self.server
        if server.ping_deadlines is not None:
            server.ping_deadlines.discard(self)
            if server.pong_deadlines is not None:
                server.pong_deadlines.discard(self)
        if server.compressor_deadlines is not None:
            server.compressor_deadlines.discard(self)
        for timer in (self._close_timer, self._fail_timer):
            if timer is not None:
                timer.cancel()
        self._close_timer = self._fail_timer = None
        self._held = []
        self._unparsed = b""
        self.conn.receive_eof()
        self.inbox.detach()
        if self.websocket is not None:
            self.websocket.connection_lost()
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()
        if self._lost_waiters is not None:
            for waiter in self._lost_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._lost_waiters = None
        server.unregister(self)
        lived = self.loop.time() - self._started
        server.counters.connection_closed(self, lived)
        # (Its fields are worked out only for a line that is written.)
        if self.config.access_log and access_logger.isEnabledFor(logging.INFO):
            code, reason = self.conn.why_closed
            log_access(
                self.request.remote_address,
                self.request.target.partition("?")[0],
                101,
                lived,
                code,
                None if code in _NO_REASON else reason,
                self.route_name,
                method=self.request.method,
                sent=self.wire_out,
            )
        if self.handler_task is None or self.handler_task.done():
            self._drop_websocket()

    def _drop_websocket(self) -> None:
        """Once both the connection and its handler are over: let go of the WebSocket.

        The WebSocket and this protocol reference each other; breaking the
        cycle lets reference counting free the connection's objects at once
        instead of leaving them to the garbage collector. A handler (or
        anyone) may keep the WebSocket: it still reports the connection closed.
        """
        self.websocket = None

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

    # ----------------------------------------------------------- flow control

    def pause_writing(self) -> None:
        self.writing_paused = True
        self.server.counters.write_pauses += 1
        self.conn.hold_pongs(True)  # a peer that reads nothing must not pile them up

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._resumed += 1
        self.conn.hold_pongs(False)
        self.send_pending()
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    async def drain(self) -> None:
        """Wait while the transport's write buffer is above its high-water mark:
        until it drained to its low-water mark (or the connection is lost).

        Once: not again if it is above by the time this task runs, filled
        meanwhile by what does not wait (``broadcast()``, ``publish()``), or
        a task sending to a client slower than its room would wait for as
        long as the room is busy.
        """
        if self.writing_paused and not self.lost:
            waiter = self.loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter

    def _pause_reading(self) -> None:
        """The inbox is full (max_queue): stop reading from the peer.

        Unless our close frame is sent: the peer's must be read, and the
        messages beyond max_queue are dropped instead (Inbox.stop_taking()).
        """
        if self.conn.close_sent is not None:
            self.inbox.stop_taking()
        elif not self._transport_closing and not self.lost:
            self.transport.pause_reading()
            self.server.counters.read_pauses += 1

    def _resume_reading(self) -> None:
        """The handler took the inbox down to a quarter of max_queue: read again
        (first, what was received and is not parsed yet, if anything)."""
        if self._input_held:
            self.loop.call_soon(self._parse_held_input)
        elif not self._transport_closing and not self.lost:
            self.transport.resume_reading()

    def _hold_input(self) -> None:
        """The connection stopped parsing with received bytes left (a read of
        well-compressed messages inflates a little at a time): read nothing
        more until they are parsed, after the application's turn, and not
        while the inbox is full."""
        if not self._input_held:
            self._input_held = True
            if not self._transport_closing and not self.lost:
                self.transport.pause_reading()
        if not self.inbox.paused:
            self.loop.call_soon(self._parse_held_input)

    def _parse_held_input(self) -> None:
        if self.lost or not self._input_held or self.inbox.paused:
            return  # (gone; parsed already; or the inbox's resume calls again)
        self._input_held = False
        rest, self._unparsed = self._unparsed, b""
        self.data_received(rest)  # holds again if there is still more
        if not self._input_held and not self.inbox.paused:
            self._resume_reading()

    # --------------------------------------------------------------- writing

    def send_pending(self) -> None:
        """Write what the connection has ready to send: the one place that does.

        Every change to the connection that produces bytes (a message, a ping,
        a pong answering one, a close frame) is followed by this call.

        While received messages wait in the inbox (pipelining), frames are
        held and leave together in one transport write (one system call) once
        the handler has caught up, at the end of the loop iteration at the
        latest, or at once when ``write_limit`` bytes are held. Otherwise they
        are written at once.
        """
        conn = self.conn
        chunks = conn.out  # (conn.data_to_send(), a call less on every message)
        if not chunks:
            return
        conn.out = []
        if self.lost:
            return
        if not self._held and not self.inbox.messages:
            if len(chunks) == 1:
                chunk = chunks[0]
                self.wire_out += len(chunk)
                if self._fd == -1:  # (TRANSPORT)
                    # (uvloop: a call less; closing: see transports.write)
                    if not self.transport.is_closing():
                        self.transport.write(chunk)
                else:
                    write(self.transport, self._fd, chunk)
            else:
                self.wire_out += sum(map(len, chunks))
                writelines(self.transport, self._fd, chunks)
            return
        self.wire_out += sum(map(len, chunks))
        self._hold(chunks)

    def _hold(self, chunks: list[bytes]) -> None:
        """Hold frames to write them with others (see :meth:`send_pending`)."""
        held = self._held
        if not held:
            self.loop.call_soon(self.flush)
        held += chunks
        for chunk in chunks:
            self._held_size += len(chunk)
        if self._held_size >= self.config.write_limit or not self.inbox.messages:
            self.flush()

    def flush(self) -> None:
        """Write the frames held for coalescing now."""
        held = self._held
        if not held:
            return
        self._held = []
        self._held_size = 0
        if not self.lost:
            if len(held) == 1:
                write(self.transport, self._fd, held[0])
            else:
                # One writev (here, or in uvloop and asyncio >= 3.12).
                writelines(self.transport, self._fd, held)

    def accepts_broadcast(self) -> bool:
        """Whether :func:`wsserver.broadcast` sends to this connection now.

        Not when it is not open, is in the middle of sending a fragmented
        message, or holds more than ``write_limit`` unsent bytes, nor once it
        held that many until it drained to a quarter of it (while ``send()``
        waits, and pongs are held): taken again at ``write_limit``, a client
        slower than a busy room would be kept topped up, and what waits for
        the drain would wait as long as the room is busy.
        """
        state = self.conn.state
        return (
            (state is _OPEN or state is _FAILING)
            and not self.conn.sending_fragments
            and not self.writing_paused
            and self.transport.get_write_buffer_size() <= self.config.write_limit
        )

    def send_frame_nowait(self, frame: bytes, payload_length: int | None = None) -> bool:
        """Write a whole data frame built once for many connections; False if skipped.

        Nothing is written unless :meth:`accepts_broadcast`. The frame goes
        after any frames held for coalescing, at once otherwise.
        ``payload_length`` is the message's length before compression (None:
        the frame's payload, not compressed).
        """
        if not self.accepts_broadcast():
            return False
        self.wire_out += len(frame)
        if frame[0] & 0x0F == 1:
            self.text_out += 1
        else:
            self.binary_out += 1
        self.payload_out += _payload_length(frame) if payload_length is None else payload_length
        if self._held:
            self._hold([frame])
        else:
            write(self.transport, self._fd, frame)
        return True

    def send_nowait(self, message: str | bytes) -> bool:
        """Send a message at once, framed (and compressed) for this connection; False if skipped.

        Nothing is sent unless :meth:`accepts_broadcast`.
        """
        if not self.accepts_broadcast():
            return False
        self.conn.send(message)
        if self.conn.deflate is not None:
            self.hold_compressor()
        self.count_sent(message)
        self.send_pending()
        return True

    def count_sent(self, payload: str | bytes | bytearray | memoryview, fin: bool = True) -> None:
        """Count what was sent: the payload's bytes, and a message when ``fin`` ends one."""
        if type(payload) is str:
            self.text_out += fin
            self.payload_out += len(payload) if payload.isascii() else len(payload.encode())
        elif type(payload) is bytes:
            self.binary_out += fin
            self.payload_out += len(payload)
        elif isinstance(payload, str):  # (a subclass: an enum's, say)
            self.text_out += fin
            self.payload_out += len(payload.encode())
        else:
            self.binary_out += fin
            self.payload_out += memoryview(payload).nbytes  # (not len(): a view's items)

    # ---------------------------------------------------------------- closing

    def _on_failure(self, event: ProtocolFailure) -> None:
        protocol_logger.debug(
            "%s: protocol error, closing with %d: %s",
            peer(self.remote_address),
            event.code,
            printable(event.reason),
        )
        if self.inbox.put_failure():
            waiting = len(self.inbox)
            latest = self.loop.time() + self.config.close_timeout
            self._fail_timer = self.loop.call_later(
                FAIL_DELAY, self._fail_if_stalled, waiting, latest
            )
        else:
            self.fail_now()

    def _fail_if_stalled(self, waiting: int, latest: float) -> None:
        """FAIL_DELAY after the violation (or after the handler last took a
        message before it): fail now, unless the handler took one meanwhile;
        and at ``latest`` (close_timeout after the violation) in any case."""
        now = len(self.inbox)
        if 0 < now < waiting and not self.lost and self.loop.time() < latest:
            self._fail_timer = self.loop.call_later(FAIL_DELAY, self._fail_if_stalled, now, latest)
        else:
            self.fail_now()

    def fail_now(self) -> None:
        """Fail the connection for the protocol violation that was received."""
        if self._fail_timer is not None:
            self._fail_timer.cancel()
            self._fail_timer = None
        failure = self.conn.failure
        if failure is not None and not self.lost:
            self._fail(failure.close_code, failure.reason)
        self.inbox.end()

    def _fail(self, code: int, reason: str) -> None:
        """Send a close frame, then half-close TCP and read (discarding) until the peer closes.

        After a violation the peer's close reply may be unrecognisable (it can
        arrive as the rest of a bad frame's payload), so the FIN tells the peer
        we are done; it closes its side and no unread data turns our close into
        a reset that could destroy the close frame.
        """
        conn = self.conn
        if conn.close_sent is None:
            conn.fail(code, reason)
            self.send_pending()
        if conn.state is not _CLOSED and self.transport.can_write_eof():
            self.flush()
            try:
                self.transport.write_eof()
            except OSError:
                # The peer reset the connection meanwhile (ENOTCONN): it is
                # gone, which the loop has not noticed yet.
                self.transport.abort()
        self._after_close_sent()

    def start_close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake (idempotent; bounded by close_timeout).

        Raises:
            TypeError: ``code`` is not an int, or ``reason`` not a str.
            ValueError: ``code`` or ``reason`` may not be sent.
        """
        check_close(code, reason)  # (the connection gone or not: the caller's mistake)
        conn = self.conn
        if self.lost:
            return
        if conn.failure is not None and conn.close_sent is None:
            self.fail_now()
            return
        conn.send_close(code, reason)
        self.send_pending()
        self._after_close_sent()

    def _after_close_sent(self) -> None:
        if self.websocket is not None:
            # Nothing reaches it now: out of presence at once, not once its
            # client answered (or close_timeout cut it off).
            self.websocket.leave_topics()
        if self.inbox.paused:
            self.inbox.stop_taking()  # the peer's close frame is to be read
        if self.conn.state is _CLOSED:
            self.close_transport()
        else:
            self._arm_close_timer()

    def close_transport(self) -> None:
        """Close TCP (after flushing), aborting it if that takes over close_timeout."""
        if self._transport_closing or self.lost:
            return
        self._transport_closing = True
        if self.websocket is not None:
            self.websocket.leave_topics()  # (the client's close answered: TLS may take a while)
        self.flush()
        transport = self.transport
        if transport.is_closing():
            # Closed by asyncio already (on the peer's EOF); closing an SSL
            # transport twice breaks it. Still bounded by close_timeout.
            self._arm_close_timer()
            return
        transport.close()
        # With nothing left to write, a plain TCP transport is gone at the
        # next loop iteration; TLS still exchanges close_notify.
        if self.server.ssl is not None or transport.get_write_buffer_size():
            self._arm_close_timer()

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and not self.lost:
            self._close_timer = self.loop.call_later(
                self.config.close_timeout, self._on_close_timeout
            )

    def _on_close_timeout(self) -> None:
        self._close_timer = None
        protocol_logger.debug(
            "%s: closing handshake timed out; aborting", peer(self.remote_address)
        )
        self.abort()

    def waits_for_close_answer(self) -> bool:
        """Whether its close frame went, its peer has not answered it, and its
        handler waits to receive (the answer, or close_timeout, ends that)."""
        conn = self.conn
        return (
            conn.close_sent is not None
            and conn.state is not _CLOSED
            and not self.lost
            and self.inbox.waited_on
        )

    def abort(self) -> None:
        """Close at once. What the transport still holds for the peer (and
        frames held to go with others) is dropped: not counted as sent
        (:attr:`wire_out`, the access line's and the metrics')."""
        if not self._aborted and not self.lost:
            dropped = self.wire_held
            self._aborted = True
            self.wire_out = max(0, self.wire_out - dropped)
        self.transport.abort()

    @property
    def wire_held(self) -> int:
        """Of :attr:`wire_out`, what has not gone to the socket yet: what the
        transport holds, and the frames held to go with others (0 once
        aborted, which took them off :attr:`wire_out`, or closed). A count of
        the open connections leaves them out, so that the wire bytes never go
        down when an abort drops them."""
        if self._aborted or self.lost:
            return 0
        return self.transport.get_write_buffer_size() + self._held_size

    def shutdown(self) -> None:
        """Server shutdown: close with the server's close code (1001, or 1012 for a restart)."""
        if not self.lost and not self._transport_closing:
            code = self.server.close_code
            self.start_close(code, CLOSE_REASONS.get(code, ""))

    # ------------------------------------------------------------ compression

    def hold_compressor(self) -> None:
        """After a send: the compressor is kept until ``compression_release_after`` passes idle."""
        deadlines = self.server.compressor_deadlines
        deflate = self.conn.deflate
        if deadlines is not None and deflate is not None and deflate.holds_compressor:
            deadlines.add(self)

    def release_compressor(self) -> None:
        """Nothing sent for ``compression_release_after``: free the compressor's memory.

        What it compressed last (its window) is kept, so compression goes on as
        before (see :mod:`wsserver.protocol.deflate`). In the middle of a
        fragmented message it is kept until the next deadline.
        """
        deflate = self.conn.deflate
        if self.lost or deflate is None:
            return
        if not deflate.release():
            self.hold_compressor()

    # -------------------------------------------------------------- keepalive

    def _schedule_keepalive(self) -> None:
        pings = self.server.ping_deadlines
        if pings is not None and not self.lost:
            pings.add(self)

    def on_ping_due(self) -> None:
        """ping_interval has passed since the connection opened or the last pong
        (or the last ping, without ping_timeout): ping."""
        ws = self.websocket
        if ws is None or not ws.open:
            return
        pongs = self.server.pong_deadlines
        if pongs is None:
            # ping_timeout=None: no pong is awaited, and the pings go on every
            # ping_interval all the same, as the websockets library's (the
            # traffic that keeps a proxy from taking the connection for idle),
            # each giving the last one up (not kept for a pong that may never come).
            last = self._keepalive_pong
            if last is not None and not last.done():
                last.cancel()
            self._keepalive_pong = ws.send_ping()
            self._schedule_keepalive()
            return
        pong = self._keepalive_pong = ws.send_ping()
        pong.add_done_callback(self._keepalive_answered)
        self._progress = self._progress_marks()
        pongs.add(self)

    def _keepalive_answered(self, future: asyncio.Future[float]) -> None:
        pongs = self.server.pong_deadlines
        if pongs is not None:  # (it is: only pings awaited with a timeout get this)
            pongs.discard(self)
        if not future.cancelled() and future.exception() is None:
            self._schedule_keepalive()

    def _progress_marks(self) -> tuple[object, ...]:
        """What moved so far, for _peer_made_progress to compare."""
        transport = self.transport
        unsent = unsent_bytes(transport) or 0
        backlog = transport.get_write_buffer_size() + unsent
        return (
            self._resumed,
            backlog,
            tcp_bytes_moved(transport),
            unread_bytes(transport),
            self.inbox.paused,
            self.wire_in,
            self.conn.receiving_frame,
        )

    def _peer_made_progress(self) -> bool:
        """Whether a late pong has an excuse, and the peer showed it is alive since the last marks.

        Three excuses. While a frame of the peer's is arriving (a large
        message on a slow uplink), its pong cannot come before that frame's
        end: a peer that keeps sending it is alive (and gets one more
        ``ping_timeout`` for the pong once the frame ended since the last
        marks). While our reading is paused (the handler is behind, its
        inbox full), the peer's pong can wait unread in our socket: then a
        peer that keeps sending (the kernel received more from it, or more
        waits unread) is alive, and so is one whose bytes wait unread while
        it has acknowledged all we sent and has not left (it waits for the
        handler; reading resumes when the handler catches up, and the pong is
        read then; one more ``ping_timeout`` when it resumed since the last
        marks, for what waits to be read). And
        while what we wrote is backed up (at least
        ``write_limit`` bytes not yet acknowledged), our ping waits behind it:
        then a peer that keeps draining it (the kernel saw more of our bytes
        acknowledged, or writing resumed) is alive. A peer that does neither
        is dropped, whatever the buffers hold.
        """
        before = self._progress
        now = self._progress = self._progress_marks()
        if before is None:
            return False
        resumed, backlog, moved, unread, was_paused, received, was_in_frame = before
        if now[0] != resumed:
            return True  # the transport's buffer drained a quarter of write_limit
        now_received = now[5]
        if (
            isinstance(received, int)
            and isinstance(now_received, int)
            and now_received > received
            and (was_in_frame or now[6])
        ):
            return True  # more of a frame that the pong must wait behind came
        now_moved, now_unread = now[2], now[3]
        if not isinstance(moved, tuple) or not isinstance(now_moved, tuple):
            moved = now_moved = None
        if self.inbox.paused or was_paused:
            # (Paused at the last marks, resumed since: what waited unread is
            # read at the loop's next turn, the pong among it perhaps.)
            if moved is not None and now_moved is not None and now_moved[1] > moved[1]:
                return True  # it sent more
            if isinstance(unread, int) and isinstance(now_unread, int) and now_unread > unread:
                return True
            if (
                isinstance(now_unread, int)
                and now_unread > 0
                and now[1] == 0
                and peer_left(self.transport) is False
            ):
                # It sent all it had and waits for the handler: its pong may
                # be among what waits unread, its host acknowledged every byte
                # we sent, the ping too, and it has not left (a FIN or a reset
                # waits unread too: its bytes then excuse nothing).
                return True
        backed_up = isinstance(backlog, int) and backlog >= self.config.write_limit
        return backed_up and moved is not None and now_moved is not None and now_moved[0] > moved[0]

    def on_pong_timeout(self) -> None:
        """No pong within ping_timeout: fail with 1011, unless the peer shows it is alive."""
        if self.lost:
            return
        pong = self._keepalive_pong
        if pong is not None and pong.done() and not pong.cancelled() and pong.exception() is None:
            return  # read in this turn of the loop: _keepalive_answered comes next
        pongs = self.server.pong_deadlines
        if pongs is not None and self._peer_made_progress():
            pongs.add(self)  # another ping_timeout for the pong to get through
            return
        protocol_logger.debug("%s: no pong within ping_timeout; closing", peer(self.remote_address))
        if self.conn.close_sent is None:
            self._fail(1011, "keepalive ping timeout")
            self.server.counters.keepalive_timeouts += 1
        self.inbox.end()

    # ---------------------------------------------------------------- handler

    async def run_handler(self, route: Route, params: dict[str, Any]) -> None:
        """Run a Router handler on this connection, and close it after (1011 if it failed)."""
        ws = self.websocket
        assert ws is not None
        try:
            returned = await route.handler(self.request, ws, **params)
        except BaseException as exc:  # (one of its own too: class Abort(BaseException))
            if only(exc, NOT_FAILURES):
                passed = passed_on(exc)
                if isinstance(passed, SystemExit):
                    what = f"the handler of {printable(self.request.path)}"
                    say_exit(passed, what, HANDLER_EXIT_UNDONE)
                raise passed  # noqa: B904 (itself, or a group's own)
            if only(exc, ConnectionClosed) and not ws.open:
                # This connection's close, a task group's too (another's,
                # escaping, is a failure).
                self.start_close(1000)
                return
            if cancelled(exc):
                if self.server.closing:
                    code = self.server.close_code  # shutdown
                    self.start_close(code, CLOSE_REASONS.get(code, ""))
                else:
                    self.start_close(1000)  # the application's own cancel
                raise passed_on(exc)  # noqa: B904
            # (A CancelledError of its own: it awaited what other code cancelled.)
            logger.exception(
                "handler %s failed on %s from %s",
                route.name,
                printable(self.request.path),
                peer(self.request.remote_address),
                extra=error_fields(
                    self.request.target.partition("?")[0],
                    self.request.remote_address,
                    route.name,
                ),
            )
            self.server.app_failed("the handler raised", exc, self.transport)
            self.start_close(1011, "internal server error")
        else:
            if isinstance(returned, (Response, StreamingResponse)):
                self.server.response_after_upgrade(route.uri, returned.status)
            # Usually the client closed first and the reply is out already.
            if self.conn.close_sent is None:
                self.start_close(1000)
        finally:
            if self.lost:
                self._drop_websocket()


#: The close codes no close frame carries: none came (1006), or one without a
#: code (1005). Their reason is unknown, not empty (null in a JSON access line).
_NO_REASON = frozenset({1005, 1006})


def _payload_length(frame: bytes) -> int:
    """The payload length a server frame's header says (frames we built: unmasked)."""
    length = frame[1] & 0x7F
    if length == 126:
        return int.from_bytes(frame[2:4], "big")
    if length == 127:
        return int.from_bytes(frame[2:10], "big")
    return length
