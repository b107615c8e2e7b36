"""The WebSocket object that handlers receive: send, recv, ping, pong, close.

It is the application's view of one connection. Received messages come from
the connection's :class:`~wsserver.server.inbox.Inbox`; what it sends goes to
the sans-I/O :class:`~wsserver.protocol.connection.Connection`, whose bytes the
:class:`~wsserver.server.websocket_protocol.WebSocketProtocol` writes out
(:meth:`~wsserver.server.websocket_protocol.WebSocketProtocol.send_pending`).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterable, Coroutine, Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..app.request import Request
from ..app.response import json_text
from ..broker.base import check_topic
from ..errors import OK_CLOSE_CODES, Close, ConcurrencyError, WebsocketClosed, closed_error
from ..protocol.connection import Connection
from ..protocol.deflate import PerMessageDeflate
from ..protocol.frames import MAX_CONTROL_PAYLOAD
from ..protocol.state import CLIENT_SIDE, OPEN_STATES, SERVER_SIDE, ConnectionState, State
from .inbox import Inbox

if TYPE_CHECKING:
    from ..broker.base import Broker
    from .server import Server
    from .websocket_protocol import WebSocketProtocol

__all__ = ["WebSocket", "State", "Subscribed", "BytesLike", "Message"]

if sys.version_info >= (3, 12):
    from collections.abc import Buffer as BytesLike
else:

    class BytesLike(Protocol):
        """A bytes-like object (``collections.abc.Buffer`` from Python 3.12):
        bytes, a bytearray, a memoryview, an ``array.array``. The same as
        typeshed's ``typing_extensions.Buffer``: a type checker knows a NumPy
        array as one only from 3.12 (numpy's stubs give it ``__buffer__`` there),
        so under 3.11 ``arr.tobytes()`` is what checks (any array runs)."""

        def __buffer__(self, flags: int, /) -> memoryview: ...


#: What is sent as it is: a str as text, any bytes-like object as binary.
Data = str | BytesLike
#: A message whole: ``Data``, or a dict or list sent as JSON text.
Message = Data | dict[str, Any] | list[Any]
#: A frame's payload as the connection takes it (what ``Data`` is made into).
Payload = str | bytes | bytearray | memoryview
#: What ``send(..., encoding=...)`` accepts.
Encoding = Literal["text", "bytes", "json"]

_CLOSED = ConnectionState.CLOSED

#: A connection's topics until it subscribes to one.
_NO_TOPICS: frozenset[str] = frozenset()


class Subscribed:
    """What :meth:`WebSocket.subscribe` returns: awaiting it waits until the
    subscription is in effect at the broker (nothing need await it)."""

    __slots__ = ("_broker",)

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    def __await__(self) -> Generator[Any, None, None]:
        return self._broker.subscriptions_sent().__await__()


#: Messages (or fragments) sent without the loop getting a turn (no wait for
#: the write buffer to drain): then it gets one, so that a handler sending
#: from memory to a client that takes all at once holds no other connection
#: up until it is done.
SENDS_PER_TURN = 256


class _FragmentLock(asyncio.Lock):
    """The lock a fragmented send holds until its message's end, and the task
    holding it (its iterable runs in that task: a send() there would wait for
    itself). Made at a connection's first fragmented send."""

    owner: asyncio.Task[Any] | None = None

    def check_not_owner(self) -> None:
        """Raise ConcurrencyError if the calling task holds the lock."""
        if self.locked() and self.owner is not None and self.owner is asyncio.current_task():
            raise ConcurrencyError(
                "send() in the iterable of this task's fragmented send() would wait for itself"
            )


class WebSocket:
    """One accepted WebSocket connection, as seen by its handler.

    Handlers receive it as ``ws`` in ``async def handler(request, ws, **params)``.
    Messages are str (text) or bytes (binary). ``async for message in ws``
    ends quietly when the connection closes normally.
    """

    __slots__ = (
        "_protocol",
        "_conn",
        "_inbox",
        "_loop",
        "request",
        "subprotocol",
        "deflate",
        "latency",
        "_recv_busy",
        "_pings",
        "_fragment_lock",
        "_sends",
        "_topics",
        # (A registry of connections may hold them weakly: aiohttp's
        # weakref.WeakSet of open WebSockets, a WeakKeyDictionary of state.)
        "__weakref__",
    )

    def __init__(
        self,
        protocol: WebSocketProtocol,
        conn: Connection,
        inbox: Inbox,
        request: Request,
        subprotocol: str | None,
    ) -> None:
        self._protocol = protocol
        self._conn = conn
        self._inbox = inbox
        self._loop = protocol.loop
        #: The HTTP request that opened this connection.
        self.request = request
        #: The negotiated subprotocol, or None.
        self.subprotocol = subprotocol
        #: The permessage-deflate agreement, or None.
        self.deflate: PerMessageDeflate | None = conn.deflate
        #: Round-trip time of the last ping answered, in seconds.
        self.latency = 0.0
        self._recv_busy = False
        self._pings: dict[bytes, tuple[asyncio.Future[float], float]] = {}
        self._fragment_lock: _FragmentLock | None = None
        self._sends = 0  # since the loop last had a turn (see SENDS_PER_TURN)
        #: The topics this connection is subscribed to (see :meth:`subscribe`);
        #: a set once it has subscribed (an empty set is 216 bytes per idle
        #: connection: until then, one empty frozenset shared by all), made
        #: a frozenset when :attr:`topics` gives them, a set again at a change.
        self._topics: set[str] | frozenset[str] = _NO_TOPICS

    def __repr__(self) -> str:
        return f"<WebSocket {self.request.path} {self.server_state.name}>"

    # ------------------------------------------------------------- receiving

    def recv(self, timeout: float | None = None) -> Coroutine[Any, Any, str | bytes]:
        """Wait for the next message (``await ws.recv()``): str for text, bytes for binary.

        Messages that arrived before the connection closed are returned
        first.

        Args:
            timeout: seconds to wait; None waits until a message arrives.

        Raises:
            asyncio.TimeoutError: no message within ``timeout``; the connection
                stays usable.
            WebsocketClosed: the connection is closed and no message is left
                (:class:`~wsserver.errors.ConnectionClosedOK` for a normal close).
            ConcurrencyError: another task is already in ``recv()``.
            TypeError: ``timeout`` is not a number (when recv() has to wait).
            ValueError: ``timeout`` is NaN (when recv() has to wait).
        """
        return self._receive(timeout, False)

    async def _receive(self, timeout: float | None, iterating: bool) -> str | bytes:
        """The body of ``recv()`` and of ``async for``, one coroutine per message."""
        if self._recv_busy:
            raise ConcurrencyError("recv() is already waiting in another task")
        inbox = self._inbox
        if inbox.messages:  # (recv_nowait(), without two calls when none waits)
            message = inbox.get_nowait()
            if message is not None:
                return message
        # Slow path, in this same coroutine: an idle connection keeps one
        # frame less alive while it waits. (next_message() and
        # done_waiting() are the same steps as calls, for the ASGI session;
        # written out here: a call less each, on every message.)
        loop = self._loop
        deadline = None if timeout is None else _deadline(loop, timeout)
        self._recv_busy = True
        try:
            while True:
                if inbox.ended:
                    if iterating and self._conn.close_code in OK_CLOSE_CODES:
                        raise StopAsyncIteration
                    raise self._closed_error()
                # About to wait: send what the handler wrote meanwhile.
                self._protocol.flush()
                waiter = inbox.waiter()
                try:
                    if deadline is None:
                        await waiter
                    else:
                        remaining = deadline - loop.time()
                        if remaining <= 0:
                            raise TimeoutError
                        # A timer that fails the waiter, not asyncio.wait_for:
                        # on Python 3.11 that returns the inner future's
                        # result when a cancel comes as it completes (a
                        # message arriving), and the cancel is lost.
                        timer = loop.call_later(remaining, _time_out, waiter)
                        try:
                            await waiter
                        finally:
                            timer.cancel()
                            if waiter.done() and not waiter.cancelled():
                                waiter.exception()  # (timed out as a cancel came: retrieved)
                finally:
                    inbox.forget_waiter()
                message = inbox.get_nowait()
                if message is not None:
                    return message
        finally:
            self._recv_busy = False

    def next_message(self) -> str | bytes | asyncio.Future[None] | None:
        """The next message if one waits; else a future that the next one (or the end)
        resolves; None once no message will come (:meth:`ended_with` says how it ended).

        What ``recv()`` does, in calls, for the ASGI session's ``receive()``
        (a coroutine less per message, and no exception at the end): given a
        future, ``await`` it, call :meth:`done_waiting` however the wait ended,
        then call this again.

        Raises:
            ConcurrencyError: another task is waiting already.
        """
        if self._recv_busy:
            raise ConcurrencyError("recv() is already waiting in another task")
        inbox = self._inbox
        if inbox.messages:
            message = inbox.get_nowait()
            if message is not None:
                return message
        if inbox.ended:
            return None
        # About to wait: send what the handler wrote meanwhile.
        self._protocol.flush()
        self._recv_busy = True
        return inbox.waiter()

    def ended_with(self) -> tuple[int, str]:
        """The close code and reason of a connection whose messages are over, as
        ``recv()``'s WebsocketClosed carries them (1006: lost without a closing handshake)."""
        return self._conn.close_code, self._conn.close_reason

    def done_waiting(self) -> None:
        """The wait on :meth:`next_message`'s future is over (woken, timed out or cancelled)."""
        self._inbox.forget_waiter()
        self._recv_busy = False

    def recv_nowait(self) -> str | bytes | None:
        """The next message if one has arrived, without waiting; None if none waits.

        None says nothing about the connection: ``await`` :meth:`recv` to
        wait for a message, or to learn that the connection closed.

        Raises:
            ConcurrencyError: another task is waiting in ``recv()``.
        """
        if self._recv_busy:
            raise ConcurrencyError("recv() is already waiting in another task")
        return self._inbox.get_nowait()

    def __aiter__(self) -> WebSocket:
        return self

    def __anext__(self) -> Coroutine[Any, Any, str | bytes]:
        # Like recv(), but a normal close ends the iteration.
        return self._receive(None, True)

    # --------------------------------------------------------------- sending

    async def send(
        self,
        data: Message | Iterable[Data] | AsyncIterable[Data],
        encoding: Encoding | None = None,
        *,
        compress: bool = True,
    ) -> None:
        """Send one message.

        A str is sent as text; bytes and any other bytes-like object
        (bytearray, memoryview, ``array.array``, a NumPy array) as binary; a
        dict or list as JSON text. An iterable or async iterable of str or of
        bytes(-like objects) is sent as one fragmented message, a frame per
        item (not a set, nor a mapping that is no dict: its keys); an empty
        one sends nothing, as the websockets library's ``send()``.

        Args:
            data: what to send.
            encoding: ``"text"``, ``"bytes"`` or ``"json"`` forces the type:
                bytes are decoded as UTF-8 for text, str encoded for bytes,
                anything JSON-serialisable dumped for json.
            compress: False sends this message uncompressed even when
                permessage-deflate is on (for already-compressed payloads).

        While the write buffer is above ``write_limit`` (a client that reads
        slowly), this waits until it drains to a quarter of it.

        Raises:
            WebsocketClosed: the connection is closing or closed (also when it
                closes while this waits for the buffer to drain).
            TypeError: ``data`` has a type that cannot be sent.
            ValueError: unknown ``encoding``.
            ConcurrencyError: called from the iterable of a fragmented
                ``send()`` in progress in this task (it would wait for itself;
                another task's ``send()`` waits for the message's end).
        """
        kind = type(data)
        lock = self._fragment_lock
        if (
            (kind is str or kind is bytes)
            and encoding is None
            and (lock is None or not lock.locked())
        ):
            # The common case, without the general dispatch below.
            self._send_frame(data, True, compress)  # type: ignore[arg-type]
            protocol = self._protocol
            if protocol.writing_paused:
                await protocol.drain()
                if protocol.lost:
                    raise self._closed_error()
            else:  # (_after_send(), inline: a coroutine less on the hot path)
                self._sends += 1
                if self._sends >= SENDS_PER_TURN:
                    self._sends = 0
                    await asyncio.sleep(0)
            return
        payload = _encode(data, encoding)
        if payload is None:
            await self._send_fragments(data, compress)  # type: ignore[arg-type]
            return
        if lock is not None and lock.locked():
            lock.check_not_owner()
            async with lock:
                self._send_frame(payload, True, compress)
        else:
            self._send_frame(payload, True, compress)
        await self._after_send()

    def send_now(self, payload: str | bytes) -> bool:
        """Send one whole message now, without waiting; True when the caller should drain.

        The ASGI session's ``websocket.send`` (one whole message at a time,
        never fragmented): a coroutine less per message than :meth:`send`.
        When it returns True the write buffer is above ``write_limit``, or
        SENDS_PER_TURN messages went without the loop getting a turn:
        ``await`` :meth:`drained` before sending more.

        Raises:
            WebsocketClosed: the connection is closing or closed.
            ConcurrencyError: a fragmented message is being sent (:meth:`send`
                waits for its end; this cannot).
        """
        lock = self._fragment_lock
        if lock is not None and lock.locked():
            raise ConcurrencyError("a fragmented message is being sent")
        self._send_frame(payload, True, True)
        if self._protocol.writing_paused:
            return True
        self._sends += 1
        return self._sends >= SENDS_PER_TURN  # (drained() gives the loop its turn)

    async def drained(self) -> None:
        """Wait until the write buffer is down to a quarter of ``write_limit``
        (not above it: give the loop a turn).

        Raises:
            WebsocketClosed: the connection closed meanwhile.
        """
        protocol = self._protocol
        if protocol.writing_paused:
            await protocol.drain()
        else:
            self._sends = 0
            await asyncio.sleep(0)
        if protocol.lost:
            raise self._closed_error()

    async def _after_send(self) -> None:
        """Wait while the write buffer is above ``write_limit``; else, once
        every SENDS_PER_TURN sends, give the loop a turn.

        Raises:
            WebsocketClosed: the connection closed while this waited to drain.
        """
        if self._protocol.writing_paused:
            await self._protocol.drain()
            if self._protocol.lost:
                raise self._closed_error()
        else:
            self._sends += 1
            if self._sends >= SENDS_PER_TURN:
                self._sends = 0
                await asyncio.sleep(0)

    def _sending_ended(self) -> bool:
        """Whether nothing can be sent any more: our close frame went, or TCP ended."""
        conn = self._conn
        return conn.close_sent is not None or self._protocol.lost or conn.state is _CLOSED

    def _send_frame(self, payload: Payload, fin: bool, compress: bool) -> None:
        conn = self._conn
        protocol = self._protocol
        if conn.close_sent is not None or protocol.lost or conn.state is _CLOSED:
            raise self._closed_error()
        conn.send(payload, fin, compress=compress)
        if conn.deflate is not None:
            protocol.hold_compressor()
        # Counted here rather than in a call (this is the hot path of every send);
        # the rarer kinds (a str subclass, a view) by count_sent().
        if type(payload) is str:
            protocol.text_out += fin
            protocol.payload_out += len(payload) if payload.isascii() else len(payload.encode())
        elif type(payload) is bytes:
            protocol.binary_out += fin
            protocol.payload_out += len(payload)
        else:
            protocol.count_sent(payload, fin)
        protocol.send_pending()

    async def _send_fragments(
        self, data: Iterable[Data] | AsyncIterable[Data], compress: bool
    ) -> None:
        lock = self._fragment_lock
        if lock is None:
            lock = self._fragment_lock = _FragmentLock()
        lock.check_not_owner()
        async with lock:
            lock.owner = asyncio.current_task()
            first: Payload | None = None
            try:
                if isinstance(data, AsyncIterable):
                    async for item in data:
                        first = self._send_fragment(item, first, compress)
                        await self._after_send()
                else:
                    for item in data:
                        first = self._send_fragment(item, first, compress)
                        await self._after_send()
            except BaseException as exc:
                if first is not None and not (
                    isinstance(exc, WebsocketClosed) and self._sending_ended()
                ):
                    # Half a message is on the wire: the connection cannot go
                    # on. (Another connection's close, from the iterator, too.)
                    self._protocol.start_close(1011, "error while sending a fragmented message")
                raise
            finally:
                lock.owner = None
            if first is not None:
                self._send_frame("" if isinstance(first, str) else b"", True, compress)

    def _send_fragment(self, item: Data, first: Payload | None, compress: bool) -> Payload:
        if not isinstance(item, (str, bytes, bytearray, memoryview)):
            view = _bytes_like(item)
            if view is None:
                raise TypeError(f"fragments must be str or bytes, not {type(item).__name__}")
            item = view
        if first is not None and isinstance(item, str) != isinstance(first, str):
            raise TypeError("fragments of one message must all be str or all be bytes")
        self._send_frame(item, False, compress)
        return item if first is None else first

    def send_nowait(self, message: Message) -> bool:
        """Send a message at once, without waiting, unless the connection cannot take it now.

        This is :func:`~wsserver.broadcast`'s policy for one connection: the
        message is sent only while the connection is open, is not in the
        middle of sending a fragmented message, and holds at most
        ``write_limit`` unsent bytes (and, once it held more, until it
        drained to a quarter of that, as :meth:`send` waits).

        Returns:
            Whether the message was sent (False: it was dropped).

        Raises:
            TypeError: ``message`` is not a str, bytes-like, dict or list (see
                :meth:`send`).
        """
        if type(message) is str or type(message) is bytes:
            return self._protocol.send_nowait(message)
        return self._protocol.send_nowait(whole_message(message))

    def send_frame_nowait(self, frame: bytes, payload_length: int | None = None) -> bool:
        """Like :meth:`send_nowait`, for a whole frame built once for many connections.

        ``frame`` must suit this connection (compressed only if it agreed to
        permessage-deflate with the parameters the frame was made with):
        :func:`~wsserver.broadcast` builds such frames. ``payload_length``,
        for a compressed frame, is the message's length before compression
        (what the payload counters count).
        """
        return self._protocol.send_frame_nowait(frame, payload_length)

    # --------------------------------------------------------------- control

    async def ping(self, data: Data | None = None) -> asyncio.Future[float]:
        """Send a ping; return a future (the pong waiter) that resolves to the round-trip time.

        ``pong_waiter = await ws.ping()``, then ``latency = await pong_waiter``
        (seconds; :attr:`latency` keeps the last one). Without ``data`` a
        random 4-byte payload is used, so several pings may be in flight. A
        pong answers its ping and every ping sent before it. The waiter fails
        with :class:`WebsocketClosed` if the connection closes first.

        Raises:
            WebsocketClosed: the connection is closing or closed.
            ValueError: a ping with this payload is already waiting (one whose
                waiter was cancelled waits no more), or the payload is longer
                than 125 bytes (checked first: on a closed connection too).
            TypeError: ``data`` is neither str nor bytes-like.

        While the write buffer is above ``write_limit`` (a client that reads
        slowly), this waits until it drains to a quarter of it, as
        :meth:`send` does (:meth:`send_ping` does not wait); cancelled while
        it waits, the ping sent is given up, as a cancelled waiter's.
        """
        pong_waiter = self.send_ping(data)
        try:
            await self._after_send()
        except BaseException:
            # (Cancelled or closed while it waited: nobody has the waiter,
            # so the ping is given up, and its payload may be sent again.)
            pong_waiter.cancel()
            raise
        return pong_waiter

    def send_ping(self, data: Data | None = None) -> asyncio.Future[float]:
        """:meth:`ping` without the ``await``: send it now, return the pong waiter."""
        pings = self._pings
        if pings:
            self._forget_given_up_pings()
        if data is None:
            payload = os.urandom(4)
            while payload in pings:
                payload = os.urandom(4)
        else:
            payload = control_payload(data, "ping")
            waiting = pings.get(payload)
            if waiting is not None:
                if not waiting[0].cancelled():
                    raise ValueError("a ping with this payload is already waiting for its pong")
                del pings[payload]  # (given up on: sent again, it is the latest)
        if self._sending_ended():
            raise self._closed_error()
        conn = self._conn
        conn.send_ping(payload)
        self._protocol.send_pending()
        future: asyncio.Future[float] = self._loop.create_future()
        future.add_done_callback(_consume_exception)
        self._pings[payload] = (future, time.perf_counter())
        return future

    def _forget_given_up_pings(self) -> None:
        """Forget the oldest pings whose waiter was cancelled (``asyncio.wait_for``
        timed out): nobody waits for them. One sent after a ping still awaited
        is kept, as long as that one waits: its pong answers that ping too."""
        pings = self._pings
        while pings:
            oldest = next(iter(pings))
            if not pings[oldest][0].cancelled():
                break
            del pings[oldest]

    def pong_received(self, payload: bytes) -> None:
        """Resolve the ping that ``payload`` answers, and every ping sent before it.

        Called by the protocol for each pong that arrives.
        """
        pings = self._pings
        if payload not in pings:
            return
        now = time.perf_counter()
        # The pong acknowledges this ping and every one sent before it.
        for key in list(pings):
            future, sent = pings.pop(key)
            if not future.done():
                future.set_result(now - sent)
            if key == payload:
                self.latency = now - sent
                break

    async def pong(self, data: Data = b"") -> None:
        """Send an unsolicited pong (a one-way heartbeat).

        While the write buffer is above ``write_limit``, this waits until it
        drains to a quarter of it, as :meth:`send` does.

        Raises:
            WebsocketClosed: the connection is closing or closed.
            TypeError: ``data`` is neither str nor bytes-like.
            ValueError: the payload is longer than 125 bytes (a control
                frame's; checked first: on a closed connection too).
        """
        payload = control_payload(data, "pong")
        if self._sending_ended():
            raise self._closed_error()
        conn = self._conn
        conn.send_pong(payload)
        self._protocol.send_pending()
        await self._after_send()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection and wait until it is closed (bounded by close_timeout).

        Calling it again, or on a closed connection, only waits.

        Raises:
            TypeError: ``code`` is not an int, or ``reason`` not a str.
            ValueError: ``code`` is not a code that may be sent, or ``reason``
                is longer than 123 bytes in UTF-8.
        """
        self._protocol.start_close(code, reason)
        await self.wait_closed()

    def start_close(self, code: int = 1000, reason: str = "") -> None:
        """Start closing the connection, without waiting (:meth:`close` waits).

        Raises:
            TypeError: ``code`` is not an int, or ``reason`` not a str.
            ValueError: ``code`` is not a code that may be sent, or ``reason``
                is longer than 123 bytes in UTF-8.
        """
        self._protocol.start_close(code, reason)

    async def wait_closed(self) -> None:
        """Wait until the TCP connection is closed."""
        await self._protocol.wait_lost()

    # ------------------------------------------------------------ properties

    @property
    def open(self) -> bool:
        """Whether messages can still be sent and received.

        Neither close frame has gone either way, and TCP is up. (A connection
        whose peer broke the protocol stays open until its close frame is
        sent: the messages before the violation are still delivered.)
        """
        return self._conn.state in OPEN_STATES

    @property
    def closed(self) -> bool:
        """Whether the closing handshake is over or the TCP connection is lost."""
        return self._conn.state is _CLOSED

    @property
    def server_state(self) -> State:
        """OPEN until the server sends its close frame, then CLOSING, then CLOSED."""
        return SERVER_SIDE[self._conn.state]

    @property
    def client_state(self) -> State:
        """OPEN until the client's close frame arrives, then CLOSING, then CLOSED."""
        return CLIENT_SIDE[self._conn.state]

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is closing or closed, else None.

        It is the client's close code, else the one the server sent, else 1006.
        """
        if self.open:
            return None
        return self._conn.close_code

    @property
    def close_reason(self) -> str | None:
        """The reason that goes with :attr:`close_code`."""
        if self.open:
            return None
        return self._conn.close_reason

    @property
    def remote_address(self) -> tuple[str, int] | None:
        """The client's ``(host, port)``."""
        return self.request.remote_address

    def _closed_error(self) -> WebsocketClosed:
        conn = self._conn
        rcvd, sent = conn.close_received, conn.close_sent
        return closed_error(
            conn.close_code,
            conn.close_reason,
            None if rcvd is None else Close(*rcvd),
            None if sent is None else Close(*sent),
            None if rcvd is None or sent is None else conn.close_received_first,
        )

    # ---------------------------------------------------------------- topics

    @property
    def server(self) -> Server:
        """The server this connection belongs to (to publish, or ask for presence)."""
        return self._protocol.server

    @property
    def topics(self) -> frozenset[str]:
        """The topics this connection is subscribed to, as they are now.

        A frozenset that :meth:`subscribe` and :meth:`unsubscribe` leave as
        it is: a handler may leave every topic as it reads them (``for topic
        in ws.topics: ws.unsubscribe(topic)``). The first change after it is
        read copies them (what a connection subscribes to is at most
        ``max_topics``).
        """
        topics = self._topics
        if type(topics) is not frozenset:
            self._topics = topics = frozenset(topics)
        return topics

    def subscribe(self, topic: str) -> Subscribed:
        """Receive what is published to ``topic``, in this process and the others.

        Messages published with :meth:`Server.publish` (here, or in any
        process sharing the broker) are sent to this connection as they come,
        with :func:`~wsserver.broadcast`'s policy (skipped when it is slow).
        Closing the connection unsubscribes it, as soon as the server's close
        frame is sent (or its reply to the client's).

        The subscription holds here at once, and reaches the broker (Redis)
        a moment later, before any message this process publishes after it.
        ``await ws.subscribe(topic)`` also waits until the broker confirmed
        it (at most the broker's timeout; at once while it is unreachable),
        so that what another process publishes once told of it (by this
        client, say, after an answer) is heard.

        Raises:
            WebsocketClosed: the connection is closing or closed.
            TypeError: ``topic`` is not a str (checked first).
            ValueError: ``topic`` is not valid Unicode text (a lone surrogate),
                or over ``max_topic_size``; or the connection has
                ``max_topics`` topics already.
        """
        if not isinstance(topic, str):
            check_topic(topic)  # (says what a topic is: not "unhashable type: 'list'")
        if self._sending_ended():
            raise self._closed_error()
        topics = self._topics
        if topic not in topics:
            pubsub = self._protocol.server.pubsub
            if len(topics) >= pubsub.max_topics:
                raise ValueError(
                    f"a connection subscribes to at most max_topics ({pubsub.max_topics}) topics"
                )
            pubsub.subscribe(self, topic)  # (checks the topic)
            if type(topics) is not set:  # (none yet, or given by ``topics``)
                self._topics = topics = set(topics)
            topics.add(topic)
        return Subscribed(self._protocol.server.pubsub.broker)

    def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic``'s messages (nothing happens if not subscribed).

        Raises:
            TypeError: ``topic`` is not a str (none is subscribed to).
        """
        if not isinstance(topic, str):
            check_topic(topic)
        topics = self._topics
        if topic in topics:
            if type(topics) is not set:  # (given by ``topics``: left as it is)
                self._topics = topics = set(topics)
            topics.discard(topic)
            self._protocol.server.pubsub.unsubscribe(self, topic)

    def leave_topics(self) -> None:
        """Leave every topic: the protocol calls this once nothing can be sent
        any more (its close frame went, the client ended TCP, or TCP is
        closed), when no message can reach the connection and
        :meth:`subscribe` refuses it."""
        if self._topics:
            pubsub = self._protocol.server.pubsub
            for topic in self._topics:
                pubsub.unsubscribe(self, topic)
            self._topics = _NO_TOPICS

    def connection_lost(self) -> None:
        """Fail the pings still waiting for a pong: the protocol calls this once TCP is closed.

        The connection also leaves its topics (if it had not when its close frame went).
        """
        self.leave_topics()
        if self._pings:
            error = self._closed_error()
            for future, _ in self._pings.values():
                if not future.done():
                    future.set_exception(error)
            self._pings.clear()


def _deadline(loop: asyncio.AbstractEventLoop, timeout: float) -> float:
    """When ``recv(timeout=...)`` gives up: ``timeout`` seconds from now.

    Checked before the wait begins: a NaN would become a timer that never
    fires, and one that puts asyncio's heap of timers out of order (every
    other timer of the loop then late); uvloop refuses it from call_later().

    Raises:
        TypeError: ``timeout`` is not a number.
        ValueError: ``timeout`` is NaN.
    """
    try:
        deadline = loop.time() + timeout
    except TypeError:
        raise TypeError(
            f"timeout must be a number of seconds or None, not {type(timeout).__name__}"
        ) from None
    if deadline != deadline:
        raise ValueError("timeout must be a number of seconds or None, not NaN")
    return deadline


def _time_out(waiter: asyncio.Future[None]) -> None:
    """``recv(timeout=...)``'s timer: the wait is over, with TimeoutError
    (a message that came meanwhile stays in the inbox)."""
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _consume_exception(future: asyncio.Future[Any]) -> None:
    """Keep asyncio from logging the exception of a ping nobody awaited."""
    if not future.cancelled():
        future.exception()


def control_payload(data: Any, what: str) -> bytes:
    """A ping's or pong's payload: a str (UTF-8) or bytes-like; TypeError for
    anything else, ValueError for over 125 bytes (``what``: "ping" or "pong",
    said in it), checked before whether the connection is still open, as
    close() checks its code and reason. TestClient's ping makes its payload
    with it too."""
    if isinstance(data, str):
        payload = data.encode("utf-8")
    else:
        try:
            payload = bytes(memoryview(data))  # (any bytes-like object: not an int's NUL bytes)
        except TypeError:
            raise TypeError(
                f"a {what}'s data is str or bytes-like, not {type(data).__name__}"
            ) from None
    if len(payload) > MAX_CONTROL_PAYLOAD:
        raise ValueError(
            f"a {what} carries at most {MAX_CONTROL_PAYLOAD} bytes (a control frame's"
            f" payload), not {len(payload)}"
        )
    return payload


def whole_message(data: Any) -> str | bytes:
    """What :meth:`WebSocket.send_nowait`, :func:`~wsserver.broadcast` and
    ``publish()`` send for ``data``: a str as text, bytes (a copy of another
    bytes-like object: a bytearray, a memoryview, an array) as binary, a dict
    or list as JSON text.

    Raises:
        TypeError: anything else (an int is not that many NUL bytes).
    """
    if isinstance(data, (str, bytes)):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, (dict, list)):
        return json_text(data)
    view = _bytes_like(data)
    if view is not None:
        return view.tobytes()
    raise TypeError(f"cannot send {type(data).__name__}")


def _bytes_like(data: Any) -> memoryview | None:
    """A view of ``data`` if it is bytes-like (bytes, an ``array.array``, a
    NumPy array: what ``memoryview()`` takes), else None."""
    try:
        return memoryview(data)
    except TypeError:
        return None


def _encode(data: Any, encoding: str | None) -> Payload | None:
    """The payload for ``data``, or None when it is an iterable to fragment."""
    if encoding is None:
        if isinstance(data, (str, bytes, bytearray, memoryview)):
            return data
        if isinstance(data, (dict, list)):
            return json_text(data)
        view = _bytes_like(data)  # (an array: iterable, but bytes-like first)
        if view is not None:
            return view
        if isinstance(data, Mapping):  # (iterable: its keys, which are no fragments)
            raise TypeError(
                f"cannot send {type(data).__name__} (a mapping: dict(...) of it is sent as JSON)"
            )
        if isinstance(data, (Iterable, AsyncIterable)) and not isinstance(data, (set, frozenset)):
            return None
        raise TypeError(f"cannot send {type(data).__name__}")
    if encoding == "text":
        if isinstance(data, str):
            return data
        if isinstance(data, (bytes, bytearray, memoryview)):
            return bytes(data).decode("utf-8")
        if isinstance(data, (dict, list)):
            return json_text(data)
        view = _bytes_like(data)
        if view is not None:
            return view.tobytes().decode("utf-8")
        raise TypeError(f"cannot send {type(data).__name__} as text")
    if encoding == "bytes":
        if isinstance(data, str):
            return data.encode("utf-8")
        if isinstance(data, (bytes, bytearray, memoryview)):
            return data
        if isinstance(data, (dict, list)):
            return json_text(data).encode("utf-8")
        view = _bytes_like(data)
        if view is not None:
            return view
        raise TypeError(f"cannot send {type(data).__name__} as bytes")
    if encoding == "json":
        return json_text(data)
    raise ValueError(f"encoding must be 'text', 'bytes' or 'json', not {encoding!r}")
