"""The HTTP phase of one TCP connection: the asyncio protocol every connection starts with.

It feeds received bytes to h11 and serves the requests that come, in order
(keep-alive, pipelining): an HTTP route's handler, an HTTP error, or an upgrade
request to a WebSocket route. An upgrade is decided by
:func:`wsserver.protocol.handshake.decide` (and the route's ``on_connect``
hook); once the ``101`` is written, the transport is handed to a new
:class:`~wsserver.server.websocket_protocol.WebSocketProtocol` with
``transport.set_protocol()``, together with the bytes that followed the
request, and this object is done. Every other answer is an HTTP response,
written by :meth:`HttpProtocol.send_response` (through
:func:`wsserver.protocol.http.render_response`).

The HTTP side knows the WebSocket side; the WebSocket side never refers back.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any

import h11
from h11._readers import ChunkedReader, request_line_re

from ..app.request import Request
from ..app.response import StreamingResponse
from ..app.routing import Resolution, Route
from ..app.static import FilePieces
from ..errors import (
    NOT_FAILURES,
    BadRequest,
    ClientDisconnected,
    HandshakeError,
    RequestTooLarge,
    only,
    passed_on,
    passes_through,
)
from ..logs import (
    HANDLER_EXIT_UNDONE,
    error_fields,
    log_access,
    log_client_gone,
    logger,
    peer,
    printable,
    protocol_logger,
    say_exit,
)
from ..protocol.connection import Connection
from ..protocol.handshake import Accept, decide, is_upgrade_request, over_capacity
from ..protocol.http import (
    ErrorFormat,
    Headers,
    Response,
    bad_request_message,
    bad_request_status,
    error_response,
    h11_response,
    is_tls_handshake,
    render_response,
    request_field,
    saying_close,
    shared_request_field,
    split_absolute_form,
    valid_host,
    with_defaults,
)
from ..protocol.proxy import forwarded
from ..protocol.proxy_protocol import (
    ProxyHeader,
    ProxyProtocolError,
    begins_proxy_header,
    parse_proxy_header,
)
from ..protocol.syntax import TOKEN
from ..protocol.tls_info import TLSInfo
from .app_tasks import start_app_task
from .request_body import RequestBody
from .streams import Producer
from .transports import (
    break_transport_cycle,
    can_sendfile,
    is_asyncio_tls,
    peer_address,
    reset,
    share_tls_read_buffer,
    tcp_bytes_moved,
    tcp_bytes_written,
    under_tls_closing,
    unread_bytes,
    unsent_bytes,
    unsent_bytes_held,
)
from .websocket import WebSocket
from .websocket_protocol import WebSocketProtocol

if TYPE_CHECKING:
    from .server import Server

__all__ = ["HttpProtocol"]


class _Region:
    """A file's bytes as h11 counts them, when the kernel sends them (see
    :meth:`HttpProtocol._send_file`): their number."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


#: h11's states of a client whose request has ended (its body all taken):
#: MUST_CLOSE for one that ends its connection (HTTP/1.0, ``Connection: close``).
_BODY_OVER = (h11.DONE, h11.MUST_CLOSE)

#: What HttpProtocol._kernel_sends() says when the kernel cannot send the file.
_NOT_AVAILABLE = -1

#: What a streamed response's producer has not made yet, and has no more of.
_NOTHING_YET: Any = object()
_NO_MORE: Any = object()


#: The bodies of the 414 and the 431 for a head over max_header_size (whole,
#: or still arriving and refused by h11).
TARGET_TOO_LONG = "Request target too long."
#: The body of the 501 for a method that runs past max_header_size (RFC 9112 3).
METHOD_TOO_LONG = "Request method too long."
HEAD_TOO_LARGE = "Request header fields too large."
#: The body of the 400 for a first line that is no request line (h11's words).
NO_REQUEST_LINE = "Bad request: illegal request line."

#: What h11 says of an empty line where a request line is due, whole or its CR alone.
_EMPTY_LINE_ERRORS = frozenset({"no request line received", "illegal request line"})

#: The empty line that ends a head (as h11 finds it: a bare LF ends a line too).
_HEAD_END = re.compile(rb"\n\r?\n")
#: That, or a line of the head that begins with whitespace (an obsolete line
#: folding: the group), whichever comes first.
_HEAD_END_OR_FOLD = re.compile(rb"\n(?:([ \t])|\r?\n)")

#: Pipelined requests that the server answers itself (404, 405, 426...:
#: no task) taken from h11 in one turn of the event loop: the rest wait
#: for the next turn, reading paused meanwhile, so that a read full of them
#: (some 6,900 in 256 KiB) never holds every other connection up.
ANSWERS_PER_TURN = 32

#: Pieces of a request body (chunks, each an event of h11's) taken in one
#: turn of the event loop: a read of one-byte chunks (some 43,000 in 256 KiB)
#: never holds every other connection up.
BODY_PIECES_PER_TURN = 1024

#: Pieces of a response body written without the loop getting a turn (no
#: wait in drain()): then it gets one, so that a producer that never waits
#: (rows from memory) to a client that takes all at once holds no other
#: connection up until its end.
PIECES_PER_TURN = 32

#: How often, in each ``timeout_keep_alive``, a response that waits on its
#: client looks whether the client took more of it: one that stopped taking is
#: closed between that time and an eighth more after it last took something.
TAKEN_CHECKS = 8


def next_event(
    h: h11.Connection, max_headers: int | None = None, max_size: int | None = None
) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
    """``h.next_event()``; a malformed request's ``h11.RemoteProtocolError`` without its traceback.

    h11 raises that error from a method of the error itself, whose frame the
    traceback keeps: a reference cycle that would hold the connection (our
    frames are in the traceback too) until the garbage collector finds it.
    A chunked body's trailers are bound as the head is: more than
    ``max_headers`` fields, or ``max_size`` bytes of them, raise that error
    (431). (h11 bounds them only while incomplete: whole in one read, they
    passed; and a section past ``max_size`` bytes is refused before h11
    parses it, see :func:`_trailers_over`.)
    """
    if (
        max_size is not None
        and len(h._receive_buffer._data) > max_size + 2
        and _trailers_over(h, max_size + 2)
    ):
        raise h11.RemoteProtocolError("trailer fields too large", 431)
    try:
        event = h.next_event()
    except h11.RemoteProtocolError as exc:
        raise exc.with_traceback(None) from None
    if type(event) is h11.EndOfMessage and event.headers and max_headers is not None:
        trailers = event.headers
        size = sum(len(name) + len(value) + 4 for name, value in trailers)
        if len(trailers) > max_headers or (max_size is not None and size > max_size):
            raise h11.RemoteProtocolError("trailer fields too large", 431)
    return event


#: Over TLS, which has no half-close: seconds without a byte from a client
#: after which an answer's lingering connection (see HttpProtocol._close_now())
#: closes, its client having sent all it would (Apache's lingering close reads
#: for 2 s).
LINGER_QUIET = 2.0

#: Over TCP, lingering for requests the client may pipeline past the end of a
#: closing answer: how often to look whether it has taken all of it (see
#: HttpProtocol._close_when_taken()).
LINGER_LOOK = 0.25

#: h11's states of a request, and of its response, once it is over (the
#: connection closing after it: MUST_CLOSE).
_ANSWERED = (h11.DONE, h11.MUST_CLOSE)

#: A last chunk's size (RFC 9112 7.1: zeros), at the start of its line.
_LAST_CHUNK = re.compile(rb"0+(?![0-9A-Fa-f])")

#: A method (a token) and nothing else: a request line's first bytes, all of them.
_METHOD_ONLY = re.compile(TOKEN.encode("ascii"))

#: What a chunk extension may not hold (RFC 9112 7.1.1: a token, or a quoted
#: string, whose whitespace may be a tab), as no header value may.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def _trailers_over(h: h11.Connection, limit: int) -> bool:
    """Whether what h11 holds (over ``limit`` bytes) is a chunked body's
    trailer section, or the last chunk that starts one, whose empty line is
    not within ``limit`` bytes: h11 would parse it whole, every field line
    checked and decoded (30,000 in 120 KB: some 50 ms), before
    :func:`next_event` measured it. (h11's reader, pinned 0.16: at a chunk's
    size line, or in the trailers.)"""
    reader: Any = h._reader
    if type(reader) is not ChunkedReader or reader._bytes_in_chunk:
        return False
    data = h._receive_buffer._data
    footer = reader._bytes_to_discard  # (the CR LF that ends the chunk before)
    if not data.startswith(footer):
        return False  # (h11 refuses it: 400)
    start = len(footer)
    if not reader._reading_trailer:
        if _LAST_CHUNK.match(data, start) is None:
            return False  # (a chunk of data is next)
        start = data.find(b"\r\n", start) + 2
        if start == 1:
            return False  # (the last chunk's line is not whole: h11 bounds it)
    if len(data) - start <= limit or data.startswith((b"\r\n", b"\n"), start):
        return False  # (within the limit, or no trailers)
    return _HEAD_END.search(data, start, start + limit) is None


def _chunk_left(h: h11.Connection) -> int:
    """The bytes of the chunk being read that its size line announced and
    that have not come yet: 0 between chunks, or for a body not chunked.
    (h11's reader, pinned 0.16, holds them from the size line on, before any
    of the chunk's data came.)"""
    reader: Any = h._reader
    return reader._bytes_in_chunk if type(reader) is ChunkedReader else 0


def _size_line_unended(h: h11.Connection) -> bool:
    """Whether h11 is at a chunked body's size line (not a chunk's data, nor
    the trailers) that has not ended yet. (h11's reader, pinned 0.16.)"""
    reader: Any = h._reader
    if type(reader) is not ChunkedReader or reader._bytes_in_chunk or reader._reading_trailer:
        return False
    return h._receive_buffer._data.find(b"\n", len(reader._bytes_to_discard)) < 0


def _chunk_extensions_next(h: h11.Connection) -> bytes:
    """The chunk extensions (``;name=value`` after a chunk's size, which h11
    reads past) of a chunk's size line that h11 holds whole and takes at its
    next event, with the line's CR; b"" if none is next. (h11's reader,
    pinned 0.16: at a chunk's size line once its data's CR LF is taken.)"""
    reader: Any = h._reader
    if type(reader) is not ChunkedReader or reader._bytes_in_chunk or reader._reading_trailer:
        return b""
    data = h._receive_buffer._data
    footer = reader._bytes_to_discard  # (the CR LF that ends the chunk before)
    if not data.startswith(footer):
        return b""  # (h11 refuses it: 400)
    end = data.find(b"\n", len(footer))
    if end < 0:
        return b""  # (not whole yet: h11 bounds one line)
    semicolon = data.find(b";", len(footer), end)
    return b"" if semicolon < 0 else bytes(data[semicolon:end])


def _ended_in(exc: BaseException, what: str) -> BaseException:
    """What to raise for the ``CancelledError`` or exception group that an
    application's ``what`` (its handler, its hook) ended in: its task's
    cancellation (a task group's too) goes on up as one (:func:`passes_through`,
    :func:`passed_on`); a ``CancelledError`` of its own (it awaited what other
    code cancelled) is its failure (500, logged), a ``RuntimeError``; any
    other group, itself."""
    if passes_through(exc):
        return passed_on(exc)
    if isinstance(exc, asyncio.CancelledError):
        failure = RuntimeError(f"{what} ended in a CancelledError")
        failure.__cause__ = exc
        return failure
    return exc


def _no_request_line(data: bytearray, start: int) -> bool:
    """Whether the first line of a head still arriving, if it ended in the
    bytes from ``start`` on (those h11 has not searched yet), is no request
    line. h11 reads a head only once its empty line came: a client that sent
    such a line and waits for an answer (an SSH or a Redis client on the
    wrong port, an HTTP/0.9 request) got a 408 at ``open_timeout`` instead
    of its 400. The first line is checked once, when its end comes; a later
    read looks for a line end from where h11 resumes its own search (two
    bytes before the read's), then for one before that."""
    end = data.find(b"\n", start)
    if end < 0 or (start and data.find(b"\n", 0, start) >= 0):
        return False  # (no line yet, or the first was checked when it came)
    line = data[: end - 1] if data[end - 1 : end] == b"\r" else data[:end]
    return request_line_re.fullmatch(line) is None


class HttpProtocol(asyncio.BufferedProtocol):
    """One TCP connection until it is upgraded (or closed): h11, limits, HTTP routes.

    A buffered protocol: the transport reads into the server's one receive
    buffer, which is parsed in place. (A plain protocol gets a new bytes
    object per read, which the allocator maps and unmaps for asyncio's
    256 KiB reads: three system calls per read, and page faults.)
    """

    __slots__ = (
        "server",
        "config",
        "heads_streaming",
        "loop",
        "transport",
        "remote_address",
        "_proxy_header",
        "_proxy_tls",
        "_proxy_unnamed",
        "_tls",
        "_h11",
        "_awaiting_body",
        "_body_buffer",
        "_asks_upgrade",
        "_head_refused",
        "_head",
        "_found",
        "_reading_body",
        "_body_size",
        "_chunk_extensions",
        "_app_task",
        "request",
        "status",
        "_sent",
        "_aborted",
        "lost",
        "_transport_closing",
        "_turn_paused",
        "_close_timer",
        "_close_taken",
        "_lingering",
        "_request_coming",
        "_linger_heard",
        "_quiet_timer",
        "_closed_answered",
        "_started",
        "_asgi_task",
        "http_task",
        "_read_waiters",
        "_cycle",
        "_body_ahead",
        "_body_fault",
        "_lost_future",
        "_sending",
        "_resume_after_file",
        "_writing_paused",
        "_drain_waiter",
        "_pieces_this_turn",
        "_body_pieces",
        "_close_after_response",
        "_ends_with_close",
        "_idle",
        "_builtin",
        "_kept",
        "_streaming",
        "_watching",
        "_unsent",
        "_logged",
        "_held_line",
        "_request_head",
        "_request_started",
        "_tls_hello",
        "_proxy_hello",
        "_over_asyncio_tls",
        "__weakref__",  # (the server's set of connections in their TLS handshake)
    )

    def __init__(self, server: Server) -> None:
        self.server = server
        self.config = server.config
        self.loop = server.loop
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.remote_address: tuple[str, int] | None = None
        #: The PROXY protocol header received so far; None when none is (still) due.
        self._proxy_header = bytearray() if server.proxy_protocol_peers is not None else None
        #: That header said the client came to the proxy over TLS (the scheme is https).
        self._proxy_tls = False
        #: A trusted balancer's header named no client (v1 UNKNOWN; v2 LOCAL,
        #: UNSPEC, AF_UNIX): the peer is the balancer, but what comes is not its
        #: own, so the X-Forwarded-* headers in it are not believed.
        self._proxy_unnamed = False
        #: Whether the connection's first bytes begin a TLS handshake (None: none
        #: came yet). Read as they come: h11 may have taken them by its error.
        self._tls_hello: bool | None = None
        #: Whether they begin a PROXY protocol header (read with _tls_hello).
        self._proxy_hello = False
        #: Over asyncio's TLS transport, whose is_closing() says a reset a loop
        #: turn late: writes look under it (see transports.under_tls_closing()).
        self._over_asyncio_tls = False
        #: What this connection's TLS is (request.tls), once a request asked.
        self._tls: TLSInfo | None = None
        self._h11 = self._new_h11()
        #: The request (self.request) has a body: it is dispatched at its end.
        self._awaiting_body = False
        self._body_size = 0
        #: The bytes of the request's chunk extensions so far (see _next_event()).
        self._chunk_extensions = 0
        #: An HTTP request's body, read for the handler (None for an upgrade's,
        #: which is dropped): one buffer, as a list of h11's pieces took some
        #: 90 bytes a byte of a body sent one byte a chunk.
        self._body_buffer: bytearray | None = None
        #: The request asks to upgrade to WebSocket (HTTP/1.1; Upgrade names it).
        self._asks_upgrade = False
        #: A head was refused as it came, before h11 parsed it (see
        #: _refuse_bad_head()): its client may still be sending (see _request_unread()).
        self._head_refused = False
        #: The request under way is a HEAD request (its answer has no body,
        #: even one refused before self.request was made).
        self._head = False
        #: Where a Router sends the request (found with its head, used at dispatch).
        self._found: Resolution | None = None
        #: An ASGI application's HTTP request whose body has not all arrived:
        #: open_timeout bounds it from the application's first ask, while it waits.
        self._reading_body = False
        #: The HTTP handler or on_connect hook running (reading is paused meanwhile).
        self._app_task: asyncio.Task[None] | None = None
        self.request: Request | None = None
        #: The status of the last response (0: none yet), for the access log.
        self.status = 0
        #: The bytes of the last response's body on the wire (chunked framing
        #: included), for the access log.
        self._sent = 0
        #: Whether the transport was aborted (what it held not counted as sent).
        self._aborted = False
        #: Whether the TCP connection is gone.
        self.lost = False
        self._transport_closing = False
        #: Whether reading is paused until the pipelined requests h11 holds
        #: are answered (see ANSWERS_PER_TURN), or the next one's dispatch
        #: finds room (see end_response()).
        self._turn_paused = False
        self._close_timer: asyncio.TimerHandle | None = None
        #: What the client had taken of our answers when the close timer was
        #: last armed (see _on_close_timeout()).
        self._close_taken: tuple[int, int] | None = None
        self._lingering = False
        #: Lingering for the rest of a request still coming (see _request_unread()),
        #: not only for what the client may pipeline past the end.
        self._request_coming = False
        #: While lingering: whether the client sent since the last look (over
        #: TLS), or at all (over TCP).
        self._linger_heard = False
        #: While lingering: the next look (see _close_when_quiet(), and over
        #: TCP _close_when_taken()).
        self._quiet_timer: asyncio.TimerHandle | None = None
        #: Closed with nothing left to write, waiting for the client's end
        #: (lingering) or its TLS close_notify (see _close_now()): counted in
        #: server.lingering.
        self._closed_answered = False
        self._started = self._request_started = self.loop.time()
        #: The current request's access line is written (or, before any, none is due yet).
        self._logged = False
        #: A response's line held until its body has gone (see _response_ended()):
        #: what the transport held of it then, and the socket's count then.
        self._held_line: tuple[int, int | None] | None = None
        #: The head of the request under way until self.request is made of it:
        #: one refused for it is logged with its method and path.
        self._request_head: h11.Request | None = None
        # An ASGI application's run on this connection (see run_asgi()).
        self._asgi_task: asyncio.Task[None] | None = None
        #: A Router HTTP handler's run, while it works on a request (the
        #: server gives it shutdown_timeout to finish).
        self.http_task: asyncio.Task[None] | None = None
        #: receive_body() calls waiting for data (the application's concurrency
        #: may make several): reading goes on while there are.
        self._read_waiters: list[asyncio.Future[None]] = []
        #: Responses ended on this connection (a receive_body() of an earlier
        #: request's sees it changed).
        self._cycle = 0
        #: HEAD responses an ASGI app streams on after, ended with their head
        #: (each app but the latest one's is told its client left).
        self.heads_streaming = 0
        #: Pieces of the request body read ahead of the application (see start_response()).
        self._body_ahead: list[tuple[bytes, bool]] | None = None
        #: A malformed chunk found while taking those before it (see _body_at_hand()).
        self._body_fault: h11.RemoteProtocolError | None = None
        self._lost_future: asyncio.Future[None] | None = None
        #: An ASGI application streams its response: reading goes on (see
        #: stream_started()), whatever receive() does.
        self._streaming = False
        #: A Router handler or hook runs: reading goes on, so that a client
        #: leaving is seen (see _run_app_task()).
        self._watching = False
        #: loop.sendfile() sending a file (see _kernel_sends()): reading
        #: waits to resume, and the transport to close, until it is done.
        self._sending: asyncio.Future[int] | None = None
        self._resume_after_file = False
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._pieces_this_turn = 0
        self._body_pieces = 0  # taken by receive_body() since the loop last had a turn
        self._close_after_response = False
        #: The response under way has a body that ends where the connection
        #: does (an HTTP/1.0 client's, without a Content-Length): see cut_short().
        self._ends_with_close = False
        #: Kept alive between requests (timeout_keep_alive runs).
        self._idle = False
        #: The current request is for the server's own endpoints.
        self._builtin = False
        #: Bytes received while the ASGI application works on the request (bounded).
        self._kept = 0
        #: What the client had taken when the keep-alive wait began or last went on
        #: (see _taken()), if answers were still waiting for it; None otherwise.
        self._unsent: tuple[int, int] | None = None

    # ------------------------------------------------------- asyncio events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have the interface without the base class.
        # (Not through typing.cast(), a call at run time.)
        self.transport = transport  # type: ignore[assignment]
        self.remote_address = peer_address(transport)
        self._over_asyncio_tls = self.server.ssl is not None and is_asyncio_tls(transport)
        if self._over_asyncio_tls:
            share_tls_read_buffer(transport, self.server.tls_read_buffer)
        limit = self.config.write_limit
        self.transport.set_write_buffer_limits(high=limit, low=limit // 4)
        self.server.register(self)
        self._arm_open_timer()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.server.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.server.read_buffer[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        """Process received bytes (what buffer_updated does with the buffer's)."""
        if self._lingering:
            self._linger_heard = True
            return  # (the rest of a body that was answered: dropped, see close_transport())
        if self._proxy_header is not None:
            data = self._read_proxy_header(data)
            if not data:
                return
        if self._tls_hello is None:
            self._tls_hello = is_tls_handshake(data)
            self._proxy_hello = begins_proxy_header(data)
        if (
            self._idle
            and not self._writing_paused  # (paused: see _wait_idle())
            # (Empty lines alone, skipped by _process(), begin no request: the
            # keep-alive rule still runs from the answer, not restarted.)
            and (data[0] not in b"\r\n" or bytes(data).lstrip(b"\r\n"))
        ):
            self._end_idle()
        self._h11.receive_data(bytes(data))  # h11 keeps what it has not parsed
        if self._read_waiters:
            # An ASGI application waits for its request body: what it takes
            # next is here; reading waits until it asks again.
            self._wake_readers()
            if not self.closing and not self._streaming:
                self.transport.pause_reading()
        elif self._app_task is not None and (
            self._app_task is self._asgi_task or self._streaming or self._watching
        ):
            # An ASGI app works on the request, a handler or hook on its
            # request (a stream=True body: before its first read, after its
            # end), or a handler streams its response: keep what comes (a
            # pipelined request, frames after an upgrade request) for later,
            # reading on so as to notice the client leaving (which cancels a
            # handler), up to a bound.
            self._kept += len(data)
            if self._kept > self.config.max_header_size:
                self.transport.pause_reading()
        else:
            self._process()

    def _read_proxy_header(self, data: bytes | memoryview) -> bytes:
        """Take the PROXY protocol header that starts the connection
        (``proxy_protocol``); what follows it, once it is whole.

        The client's address it names becomes this connection's peer, if the
        proxy that sent it is trusted (``forwarded_allow_ips``). A connection
        that does not start with a valid header is closed, unanswered: it
        came past the proxy, or the proxy sends none.
        """
        buffer = self._proxy_header
        assert buffer is not None
        buffer += data
        try:
            header = parse_proxy_header(buffer)
        except ProxyProtocolError as exc:
            protocol_logger.debug("%s: %s: closed", peer(self.remote_address), exc)
            self.server.no_proxy_header(self.remote_address, str(exc))
            self._transport_closing = True
            self.transport.abort()  # (no more reads come)
            return b""
        if header is None:
            return b""
        self.proxied(header, self.remote_address)
        return bytes(buffer[header.length :])

    def proxied(self, header: ProxyHeader, proxy: tuple[str, int] | None) -> None:
        """The connection's PROXY protocol header is read (here, or before its
        TLS handshake: see tls_start): none is due any more, and the client it
        names is this connection's peer, if ``proxy`` (the peer that sent it;
        None: a Unix socket's) is trusted; else that is said (see
        :meth:`Server.proxy_header_untrusted`)."""
        self._proxy_header = None
        if self.server.believes_proxy_header(proxy):
            if header.source is not None:
                self.remote_address = header.source
            else:
                self._proxy_unnamed = True
            self._proxy_tls = header.tls
        elif self.server.proxy_protocol_peers is not None and header.source is not None:
            self.server.proxy_header_untrusted(proxy, header.source)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._held_line is not None:
            self._log_held_line(exc)
        if self._closed_answered:
            self.server.lingering -= 1
        break_transport_cycle(self.transport)
        # (This request's: not an earlier one's work past its answer, which
        # a client leaving does not cancel.)
        deciding = self._app_task is self._asgi_task and self._deciding_upgrade()
        if self._app_task is not None:
            if self._app_task is not self._asgi_task:
                self._app_task.cancel()  # an ASGI application hears http.disconnect instead
            self._app_task = None
        self._wake_readers()
        for future in (self._lost_future, self._drain_waiter):
            if future is not None and not future.done():
                future.set_result(None)
        if not deciding:
            # (One deciding keeps its bound: on_open_timeout() cancels it then.)
            self._stop_open_timer()
        if self._idle:
            self._idle = False
            self.server.keep_alive_deadlines.discard(self)
        for timer in (self._close_timer, self._quiet_timer):
            if timer is not None:
                timer.cancel()
        self._close_timer = self._quiet_timer = None
        self.server.unregister(self)
        if not self._logged and self._request_begun():
            self._log_access()  # a request left unanswered

    def _next_event(self, h: h11.Connection) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        """:func:`next_event`, with this server's bounds on a body's trailers,
        and on its chunk extensions (no control character but HTAB, RFC 9112
        7.1.1, 400; a bare CR one too, RFC 9112 2.2): all of a request's, max_header_size bytes
        (413 beyond; h11 bounds one line, not their sum: 1-byte chunks with
        long extensions held some 1,000 times their data on the wire)."""
        config = self.config
        extensions = _chunk_extensions_next(h)
        if extensions:
            self._chunk_extensions += len(extensions)
            if self._chunk_extensions > config.max_header_size:
                raise h11.RemoteProtocolError("chunk extensions too large", 413)
            if _CONTROL.search(extensions, 0, len(extensions) - 1):
                # (As in a field: a bare CR may end the line for a proxy in front.)
                raise h11.RemoteProtocolError("illegal chunk extension", 400)
        # (h11 drops its reader on an error, and refuses an incomplete line
        # only past max_header_size + 1: looked at only then.)
        unended = len(h._receive_buffer._data) > config.max_header_size and _size_line_unended(h)
        try:
            return next_event(h, config.max_headers, config.max_header_size)
        except h11.RemoteProtocolError as exc:
            if exc.error_status_hint == 431 and unended:
                # h11 refused a size line still arriving, over its bound: one
                # whose extension runs past the limit, refused as it would be
                # whole (else no size line: h11's 400 when whole).
                if b";" in h._receive_buffer._data:
                    raise h11.RemoteProtocolError("chunk extensions too large", 413) from None
                raise h11.RemoteProtocolError("illegal chunk header", 400) from None
            raise

    def _head_begun_not_ended(self) -> bool:
        """Whether h11 holds part of a next request's head, and not all of it.

        (A whole one it holds unread while the client does not take the
        answers before it: writing paused, _process() waits for it.)"""
        h = self._h11
        if h.their_state is not h11.IDLE or self._writing_paused or not self._held():
            return False
        held = h._receive_buffer._data  # (h11 is pinned to 0.16)
        return b"\n\r\n" not in held and b"\n\n" not in held

    def _held(self) -> int:
        """The bytes h11 holds unparsed (a next request, pipelined or begun).

        Read from its private buffer (h11 is pinned to 0.16): the public
        ``trailing_data`` copies them, on every request."""
        return len(self._h11._receive_buffer)

    def _request_begun(self) -> bool:
        """Whether a byte of a request came: a connection that sent none (a TCP
        health check, a browser's preconnect) accessed nothing and gets no
        access line, however it ended."""
        h = self._h11
        return self.request is not None or h.their_state is not h11.IDLE or bool(h.trailing_data[0])

    def _response_ended(self) -> None:
        """The current request's response is all written: time it, and log it.

        Unless the transport holds more of it than it takes (writing paused: a
        body larger than the kernel takes at once, for a client slower than
        that): then once it has gone (resume_writing()) or the connection
        ended, so that its line says what went (:meth:`_log_held_line`), not
        what a client that reset the connection, or was aborted, never got.
        """
        if self._writing_paused and not self.lost:
            self._logged = True  # (answered: no line of a request left unanswered)
            transport = self.transport
            tls = transport.get_extra_info("ssl_object") is not None
            # (Over TLS the socket's count is of records, not of the body's bytes.)
            written = None if tls else tcp_bytes_written(transport)
            self._held_line = (transport.get_write_buffer_size(), written)
            return
        self.server.counters.http_seconds.observe(self.loop.time() - self._request_started)
        self._log_access()

    def _log_held_line(self, failed: Exception | None) -> None:
        """Write the line :meth:`_response_ended` held, its body gone or the
        connection ended: aborted by the server (what the transport dropped
        then taken off, see :meth:`_drop_unsent`), or ``failed`` (a reset: the
        transport's bytes and the kernel's were dropped). What went then is
        what the client acknowledged, where the socket tells; else what had
        left the transport when the line was held."""
        held, written = self._held_line  # type: ignore[misc]
        self._held_line = None
        if failed is None:
            if not self._aborted:
                elapsed = self.loop.time() - self._request_started
                self.server.counters.http_seconds.observe(elapsed)
        elif not self._aborted:
            moved = None if written is None else tcp_bytes_moved(self.transport)
            if moved is not None and written is not None:
                # (The body ended where the transport's bytes then would,
                # written + held in the stream, and began _sent before.)
                went = moved[0] - (written + held - self._sent)
            else:
                went = self._sent - held
            self._sent = min(self._sent, max(0, went))
        self._log_access()

    def _log_access(self) -> None:
        """The access line of the current request's response (one per response),
        or of a request left unanswered."""
        self._logged = True
        if self.config.access_log:
            request = self.request
            if request is not None:
                method: str | None = request.method
                path: str | None = request.target.partition("?")[0]
            else:
                method, path = self._refused_request_line()
            route = None
            if request is not None:
                # Found from its head: also a request refused or left before
                # its handler (a body too large or too slow, a client gone).
                found = self._found
                route = request.route or (found.route if found is not None else None)
            log_access(
                self.client_address,
                path,
                self.status,
                self.loop.time() - self._request_started,
                None,
                route=None if route is None else route.name,
                method=method,
                sent=self._sent,
            )

    def _refused_request_line(self) -> tuple[str | None, str | None]:
        """The method and path of a request refused for its head (None: none
        came whole). The path as sent, without its query or fragment; none for
        a target that is not a path (an authority may hold a password), nor
        for one too long to be taken (a 414's: not written whole to the log)."""
        head = self._request_head
        if head is None:
            return None, None
        target = head.target
        path = None
        if (target[:1] == b"/" or target == b"*") and len(target) <= self.config.max_header_size:
            path = target.partition(b"?")[0].partition(b"#")[0].decode("latin-1")
        return head.method.decode("ascii", "replace"), path

    # ------------------------------------------------------------- requests

    def _process(self) -> None:
        """Handle the requests h11 has buffered, one at a time (pipelining)."""
        h = self._h11
        transport = self.transport
        requests = pieces = 0
        while self._app_task is None and not self._transport_closing:
            if transport.is_closing():
                return  # (a write failed: the client is gone, connection_lost() comes)
            if requests == ANSWERS_PER_TURN or pieces == BODY_PIECES_PER_TURN:
                # The others' turn: the rest in the next one.
                transport.pause_reading()
                self._turn_paused = True
                self.loop.call_soon(self._next_turn)
                return
            if self._writing_paused:
                # A client that does not read its answers gets no more of
                # them: reading waits until it took them (resume_writing()).
                self.transport.pause_reading()
                return
            if h.their_state is h11.IDLE and self._refuse_bad_head(h):
                return
            try:
                event = self._next_event(h)
            except h11.RemoteProtocolError as exc:
                if self._skipped_empty_line(exc):
                    h = self._h11
                    continue
                if exc.error_status_hint == 431 and h.our_state is h11.IDLE:
                    # (Not a body's line: no request yet.)
                    self._head_too_large(h)
                    return
                # (On a TLS port: TLS inside TLS, no such mistake.) Not read
                # from h11's buffer: a ClientHello's random bytes may hold an
                # empty line, and h11 took all before it as a request's head.
                if self._tls_hello and self.server.ssl is None:
                    self.server.tls_on_plain_port(self.remote_address)
                elif self._proxy_hello and self.server.proxy_protocol_peers is None:
                    self.server.proxy_header_unasked(self.remote_address)
                self.http_error(bad_request_status(exc), bad_request_message(exc))
                return
            if event is h11.NEED_DATA:
                if self._awaiting_body and self._body_over(self._body_buffer is None):
                    return  # (a chunk's size line announced too much)
                if self._turn_paused:  # (all answered: read on)
                    self._turn_paused = False
                    transport.resume_reading()
                return
            if event is h11.PAUSED:
                # A next request waits for this one's answer: not read meanwhile.
                self.transport.pause_reading()
                return
            kind = type(event)
            if kind is h11.Request:
                requests += 1
                # A request without a body is dispatched at once (h11's
                # EndOfMessage for it is taken only if an HTTP response needs
                # it); one with a body once the body has arrived.
                if not self._start_request(event):  # type: ignore[arg-type]
                    return
                found = self._resolve_builtin()
                self._builtin = found is not None
                if (
                    self.config.limit_concurrency is not None
                    and not self._builtin
                    and self._over_concurrency()
                ):
                    self.http_error(503, "Exceeded concurrency limit.", [("Retry-After", "1")])
                    return
                if self.server.asgi is not None and not self._builtin:
                    if not (self._awaiting_body and self._asgi_websocket()):
                        # HTTP: the application reads the body itself (run_asgi()).
                        body = self._awaiting_body
                        self._awaiting_body = False
                        self._dispatch_asgi(body)
                        return
                    # An upgrade's body is read and dropped first (below).
                else:
                    self._found = found or self._resolve()
                if not self._awaiting_body:
                    if self._dispatch():
                        return  # upgraded: the WebSocket protocol has the transport
                elif self._streams_body():
                    # The handler reads the body itself (request.stream).
                    self._awaiting_body = False
                    if self._declared_over(self._body_limit(False)):
                        self._body_too_large()
                        return
                    self._reading_body = True
                    self._dispatch()
                elif not self._start_body():
                    return
            elif kind is h11.Data:
                pieces += 1
                data = event.data  # type: ignore[union-attr]
                self._body_size += len(data)
                self._arm_open_timer()  # a body that comes has open_timeout for its next piece
                parts = self._body_buffer
                if self._body_over(parts is None):
                    return
                if parts is not None:
                    parts += data
            elif kind is h11.EndOfMessage and self._awaiting_body:
                self._awaiting_body = False
                parts = self._body_buffer
                if parts is not None:
                    assert self.request is not None
                    self.request.body = bytes(parts)
                    self._body_buffer = None
                if self._found is None:  # an ASGI application's upgrade
                    self._dispatch_asgi(False)
                    return
                if self._dispatch():
                    return
            elif kind is h11.ConnectionClosed:
                self.close_transport()
                return

    def _next_turn(self) -> None:
        """Go on with the pipelined requests (after :data:`ANSWERS_PER_TURN`),
        unless another call has taken them meanwhile (resume_writing(): the
        rest, an upgrade among them, whose WebSocket now has the transport)."""
        if self._app_task is None and not self.closing and self.status != 101:
            self._process()

    def _refuse_bad_head(self, h: h11.Connection) -> bool:
        """Whether the next request's head, in h11's buffer, is refused before
        h11 parses it (and answered): one that runs past ``max_header_size``
        (h11 refuses such a head only while it is incomplete: one that came
        whole in one read it parsed whole, every field line checked and
        decoded, however large: 30,000 in 120 KB held the loop some 50 ms,
        and one over the limit in whitespace h11 trims was served); or one
        with an obsolete line folding, which h11 joins (RFC 9112 5.2 lets a
        server refuse it: ``Transfer-Encoding:`` then `` chunked`` on the
        next line is a chunked body here, and maybe none to a proxy in
        front); or one still arriving whose first line is no request line
        (see _no_request_line()). Empty lines before a request line are
        h11's to take (see _skipped_empty_line()), and so are a TLS
        handshake's bytes."""
        buffer = h._receive_buffer  # (h11 is pinned to 0.16)
        data = buffer._data
        if not data or data[0] in b"\r\n":
            return False
        limit = self.config.max_header_size + 2  # (the CR LF that ends it is not counted)
        # (From where h11's own search found no empty line: a head that comes
        # a few bytes a read is searched once, not from its start each time.
        # One search, for the head's end or a folding before it: this is
        # every request's.)
        start = buffer._multiple_lines_search
        found = _HEAD_END_OR_FOLD.search(data, start, limit)
        if found is None:
            if len(data) <= limit and not _no_request_line(data, start):
                return False  # (not whole yet: h11 bounds it meanwhile)
        elif found.lastindex is None:
            return False  # (its end, and no folding before it)
        if self._tls_hello:
            # No head: a TLS handshake's bytes, whose random ones may look
            # like a folding (or run past the limit). h11 refuses its first
            # line, and _process() tells it as TLS on a plain port.
            return False
        self._head_refused = True
        if found is not None:
            self.http_error(400, "Obsolete line folding in the request head (RFC 9112 5.2).")
        elif len(data) > limit:
            self._head_too_large(h)
        else:
            self.http_error(400, NO_REQUEST_LINE)
        return True

    def _head_too_large(self, h: h11.Connection) -> None:
        """Answer a head over ``max_header_size``: 414 if its request line alone
        is (no line end within it; h11's own buffer: pinned 0.16), 501 if its
        method alone is (RFC 9112 3: longer than any implemented), 400 if it
        begins with no method and a space (no request line), else 431."""
        data = h._receive_buffer._data
        limit = self.config.max_header_size
        if data.find(b"\n", 0, limit) < 0:
            space = data.find(b" ", 0, limit)
            if space < 0 and _METHOD_ONLY.fullmatch(data, 0, limit) is not None:
                self.http_error(501, METHOD_TOO_LONG)
            elif space < 0 or _METHOD_ONLY.fullmatch(data, 0, space) is None:
                self.http_error(400, NO_REQUEST_LINE)
            else:
                self.http_error(414, TARGET_TOO_LONG)
        else:
            self.http_error(431, HEAD_TOO_LARGE)

    def _new_h11(self) -> h11.Connection:
        # (h11 refuses an incomplete head past this: max_header_size and one
        # byte of the CR LF that would end it, which the limit does not count,
        # as for a head that comes whole, see _refuse_bad_head().)
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self.config.max_header_size + 1)

    def _skipped_empty_line(self, error: h11.RemoteProtocolError) -> bool:
        """Whether ``error`` was h11 refusing an empty line where a request
        line was due, which RFC 9112 2.2 has a server ignore (a client may
        send one after a request's body). h11 took the line ("no request
        line"), or, for a CR that ended a read, refused the byte ("illegal
        request line"); a new h11 connection, in the same state, takes what
        came after the empty lines (all of them at once: one copy of the
        buffer, not one for each line of a flood of them)."""
        h = self._h11
        message = str(error)
        if h.our_state is not h11.IDLE or message not in _EMPTY_LINE_ERRORS:
            return False
        data, closed = h.trailing_data
        rest = data.lstrip(b"\r\n")
        if message == "illegal request line" and len(rest) == len(data):
            return False  # (no empty line: a request line that is none)
        data = rest
        self._h11 = h = self._new_h11()
        if data:
            h.receive_data(data)
        if closed:
            h.receive_data(b"")  # (h11's end of file)
        elif not data and self._cycle and not self._idle:
            # Nothing after them, between requests: kept alive still (the
            # keep-alive rule, not a request's open_timeout; no request
            # under way for a shutdown to answer or a restart to wait for).
            self._wait_idle()
        return True

    def _start_request(self, event: h11.Request) -> bool:
        """Check a request's head and make ``self.request``; False if it was refused."""
        if self._idle:
            self._end_idle()  # pipelined: it was here already
        self.request = None
        self.status = self._sent = 0
        self._asks_upgrade = False
        self._head = event.method == b"HEAD"
        self._logged = False
        self._request_head = event
        self._request_started = self.loop.time()
        server = self.server
        server.requests += 1
        limit = server.request_limit
        if limit is not None and server.requests >= limit:
            # This process is to be replaced: its connections end with their
            # response (a kept-alive one would be idle when it stops).
            self._close_after_response = True
            if server.requests == limit:
                server.request_limit_reached()
        if not event.http_version.startswith(b"1."):
            self.http_error(505, "This server speaks HTTP/1.1 (and 1.0) only.")
            return False
        if event.method == b"CONNECT":
            self.http_error(501, "CONNECT is not supported: this server is no proxy.")
            return False
        target = event.target
        authority = None
        if target[:1] != b"/":
            try:
                absolute = split_absolute_form(target)
            except ValueError as exc:
                self.http_error(400, str(exc))
                return False
            if absolute is not None:
                authority, target = absolute
            elif target != b"*" or event.method != b"OPTIONS":
                # Authority-form is CONNECT's, asterisk-form OPTIONS' (RFC 9112 3.2).
                self.http_error(400, "Invalid request target.")
                return False
        elif b"#" in target:
            # Never part of a target (RFC 9112 3.2): a client strips it.
            self.http_error(400, "Fragment in the request target.")
            return False
        # One pass over the headers (h11 hands over lowercase names), also
        # measuring the head: h11 bounds a head only while it is incomplete,
        # so one that arrives whole in a single read is checked here.
        items = []
        line_size = head_size = len(event.method) + len(event.target) + 12
        body = False
        length = chunked = False
        # h11's Headers is a Sequence whose iteration costs a call per header
        # and an IndexError at its end: its list of (raw name, name, value)
        # is read instead (h11 is pinned to 0.16).
        for _, name, value in event.headers._full_items:
            head_size += len(name) + len(value) + 4
            # (The shared pair looked up first: request_field() is a call more.)
            field = shared_request_field((name, value)) or request_field(name, value)
            if field is None:
                self.http_error(400, "Control character in a header value.")
                return False
            items.append(field)
            if name == b"content-length":
                length = True
                body = body or value != b"0"
            elif name == b"transfer-encoding":
                body = chunked = True
            elif name == b"host" and not valid_host(value):
                self.http_error(400, "Invalid Host header.")
                return False
        if chunked and (length or event.http_version == b"1.0"):
            # Two framings, or one HTTP/1.0 does not have: a proxy in front
            # may have framed it otherwise (request smuggling). RFC 9112 6.1.
            self.http_error(400, "Ambiguous message framing (Transfer-Encoding).")
            return False
        if authority is not None:
            # The target's authority stands instead of any Host header (RFC 9112 3.2.2).
            host = request_field(b"host", authority) if valid_host(authority) else None
            if host is None:
                self.http_error(400, "Invalid host in the request target.")
                return False
            items = [item for item in items if item[0] != "host"]
            items.append(host)
        if len(items) > self.config.max_headers:
            self.http_error(431, "Too many request headers.")
            return False
        if head_size > self.config.max_header_size:
            if line_size > self.config.max_header_size:
                self.http_error(414, TARGET_TOO_LONG)  # (RFC 9110 15.5.15)
            else:
                self.http_error(431, HEAD_TOO_LARGE)
            return False
        headers = Headers.from_lowercase(items)
        client = self.remote_address
        scheme = "https" if self.server.ssl is not None or self._proxy_tls else "http"
        trusted = self.server.trusted_proxies
        if (
            trusted is not None
            and (client[0] if client else None) in trusted
            and not self._proxy_unnamed
        ):
            said = forwarded(headers, trusted)
            client = said.client or client
            if said.scheme is not None:
                scheme = "https" if said.scheme in ("https", "wss") else "http"
        self.request = Request(
            event.method.decode("ascii", "replace"),
            target.decode("latin-1"),
            headers,
            remote_address=client,
            # (RFC 9110 2.5: a later 1.x is read as the latest this server
            # speaks, 1.1.)
            http_version="1.0" if event.http_version == b"1.0" else "1.1",
            scheme=scheme,
        )
        self._request_head = None
        self.request.server = self.server
        if not headers.get("host"):  # (HTTP/1.0's may be missing; any may be empty)
            local = self.local_address
            if local is not None and local[1] is not None:
                self.request.local_address = (local[0], local[1])
        if self.server.ssl is not None:
            if self._tls is None:
                self._tls = self.server.tls_of(self.transport)
            self.request.tls = self._tls
        self._awaiting_body = body
        # (The loop had a turn since the last request's body: its pieces are
        # not this one's to count against BODY_PIECES_PER_TURN.)
        self._body_size = self._chunk_extensions = self._body_pieces = 0
        # (RFC 9110 7.8: Upgrade is ignored in HTTP/1.0.)
        if event.http_version != b"1.0":
            self._asks_upgrade = is_upgrade_request(headers)
        elif is_upgrade_request(headers):
            self.server.websocket_over_http10(self.client_address)
        self._found = None
        return True

    def _dispatch(self) -> bool:
        """Route ``self.request``: handshake, HTTP handler, or an error; True once upgraded."""
        request = self.request
        found = self._found
        assert request is not None and found is not None
        self._found = None
        route = found.route
        upgrade = route.is_websocket if route is not None else self._asks_upgrade
        if not upgrade:
            # Plain HTTP: the timer limits the request, not the handler.
            self._stop_open_timer()
        if route is None:
            format = found.error_format
            if found.status == 405:
                allow = ", ".join(found.allowed)
                response = error_response(405, None, [("Allow", allow)], format)
            elif found.status == 200:  # (OPTIONS *)
                response = Response(b"", 200, [("Allow", ", ".join(found.allowed))])
            elif found.status == 426:
                # (An upgrade request over HTTP/1.0, Upgrade ignored: a proxy's.)
                http10 = request.http_version == "1.0" and is_upgrade_request(request.headers)
                if not http10 and "sec-websocket-key" in request.headers:
                    # (The rest of a handshake: a proxy dropped its Upgrade.)
                    self.server.websocket_upgrade_dropped(self.client_address)
                response = error_response(
                    426,
                    "This is a WebSocket endpoint: "
                    + (
                        "WebSocket upgrade requires HTTP/1.1."
                        if http10
                        else "send a WebSocket upgrade request."
                    ),
                    [("Upgrade", "websocket"), ("Connection", "Upgrade")],
                    format,
                )
            else:
                response = error_response(404)
            if upgrade:
                self.deny(response)  # a handshake's outcome too (closing: see below)
            else:
                self.send_response(response)
            return False
        request.match_info = found.params
        request.route = route
        if not route.is_websocket:
            if self._asks_upgrade:
                # An upgrade request answered without a 101 ends the
                # connection: a proxy in front that takes it for a tunnel
                # once it passed the request, without looking for the 101,
                # would let a client send any request past its rules
                # ("WebSocket smuggling"), as after a refused upgrade.
                self._close_after_response = True
            if route.stream:
                limit = self._limit_of(route)
                request.stream = RequestBody(self, limit, coming=self._reading_body)
            # (A stream route's body is read as its handler asks; until it
            # does, what comes is kept within max_header_size, as for an ASGI
            # application, so that a client that leaves is seen.)
            self._run_app_task(self._http_handler(route, found.params))
            self.http_task = self._app_task
            return False
        return self._handshake(request, route, found.params)

    def _answers_upgrade_as_http(self) -> bool:
        """Whether the current request, an upgrade request (``_asks_upgrade``),
        went to an HTTP route: its answer, whatever its status, is a refused
        handshake's too (the connection ends after it, as after a refused
        upgrade), counted as deny()'s are."""
        request = self.request
        return request is not None and request.route is not None and not request.route.is_websocket

    def _over_concurrency(self) -> bool:
        """Whether this request is beyond ``limit_concurrency``: more connections
        than it allows (this one included), or as many application tasks running."""
        limit = self.config.limit_concurrency
        assert limit is not None
        server = self.server
        busy = len(server.connections) - server.lingering  # (those answered are no load)
        return busy > limit or len(server.app_tasks) >= limit

    def _body_limit(self, dropped: bool) -> int | None:
        """The most body a request may have (None: no limit): one for an HTTP
        route's handler its ``max_body_size`` (the route's, else the server's),
        one read and dropped (an upgrade's, or before an error answer)
        ``max_header_size``."""
        if dropped:
            return self.config.max_header_size
        found = self._found
        return self._limit_of(found.route if found is not None else None)

    def _body_over(self, dropped: bool) -> bool:
        """Whether the body read (and, ``dropped``, dropped) so far, with what
        the size line of the chunk being read announced still to come, is over
        its :meth:`_body_limit`: then it is answered (413, or the error answer
        it gets), as a ``Content-Length`` over it is at the head, not once
        that much has come."""
        limit = self._body_limit(dropped)
        if limit is None or self._body_size + _chunk_left(self._h11) <= limit:
            return False
        if self._error_answer_only():
            self._answer_leaving_the_body()  # its answer, not a 413
        else:
            self._body_too_large()
        return True

    def _limit_of(self, route: Route | None) -> int | None:
        """The ``max_body_size`` of ``route``'s requests."""
        if route is None or route.max_body_size == "server":
            return self.config.max_body_size
        return route.max_body_size

    def _streams_body(self) -> bool:
        """Whether the request's route reads its body as it comes (``stream=True``)."""
        found = self._found
        return found is not None and found.route is not None and found.route.stream

    def _start_body(self) -> bool:
        """Before reading a request's body: refuse one declared too large (413),
        else say ``100 Continue`` if the client waits for it. False if refused
        (or answered).

        Kept for an HTTP route's handler; an upgrade's is dropped. So is one
        that only gets a Router's error answer (404, 405, ...): at once if the
        client waits for 100 Continue (it has not sent the body, and is not
        invited to), else once it has been read.
        """
        found = self._found
        route = found.route if found is not None else None
        if self._error_answer_only() and (
            self._h11.they_are_waiting_for_100_continue
            or self._declared_over(self.config.max_header_size)
        ):
            # Its answer at once, not a 413 for a body it never needed.
            self._answer_leaving_the_body()
            return False
        kept = route is not None and not route.is_websocket
        self._body_buffer = bytearray() if kept else None
        if self._declared_over(self._body_limit(not kept)):
            # Refused now rather than once that much has come.
            self._body_too_large()
            return False
        # The head is whole: the body has open_timeout for its first piece
        # (as for each next one), not what is left of the head's.
        self._arm_open_timer()
        self._send_continue()
        return True

    def _error_answer_only(self) -> bool:
        """Whether the request gets only a Router's error answer (404, 405, ...)."""
        found = self._found
        return found is not None and found.route is None

    def _answer_leaving_the_body(self) -> None:
        """Answer now, the body (or its rest) unread: the connection closes after."""
        self._awaiting_body = False
        self._close_after_response = True
        self._dispatch()

    def _send_continue(self) -> None:
        """Answer ``Expect: 100-continue`` (once, and only while the client waits)."""
        h = self._h11
        if h.they_are_waiting_for_100_continue and not self.closing:
            self.transport.write(
                h.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"))
                or b""
            )

    def _declared_over(self, limit: int | None) -> bool:
        """Whether the request's ``Content-Length`` is over ``limit`` (None: no limit)."""
        assert self.request is not None
        length = self.request.headers.get("content-length", "0")
        return limit is not None and length.isdigit() and int(length) > limit

    def _resolve_builtin(self) -> Resolution | None:
        """Where the request goes among the server's own endpoints (metrics, status), if one."""
        builtins = self.server.builtins
        request = self.request
        assert request is not None
        if builtins is None or request.target == "*":  # (OPTIONS *: the application's)
            return None
        found = builtins.resolve(
            request.path, request.host, request.method, self._asks_upgrade, request.scheme
        )
        return None if found.status == 404 else found

    def _resolve(self) -> Resolution:
        """Where the application's Router sends the request."""
        request = self.request
        router = self.server.router
        assert request is not None and router is not None
        return router.resolve(
            request.path, request.host, request.method, self._asks_upgrade, request.scheme
        )

    def _deciding_upgrade(self) -> bool:
        """Whether an ASGI application is deciding this WebSocket upgrade (nothing answered)."""
        return (
            self._asgi_task is not None
            and self.status == 0
            and self.request is not None
            and self._asgi_websocket()
        )

    def _asgi_websocket(self) -> bool:
        """Whether an ASGI application gets the request as a WebSocket (a GET that
        asks to upgrade); any other request is HTTP, Upgrade header or not."""
        assert self.request is not None
        return self._asks_upgrade and self.request.method == "GET"

    def _dispatch_asgi(self, body: bool) -> None:
        """Run the ASGI application on ``self.request``: an HTTP request (``body``:
        one is to come, for the application to read) or an upgrade."""
        request = self.request
        asgi = self.server.asgi
        assert request is not None and asgi is not None
        if not self._asgi_websocket():
            # The body, if any, has open_timeout from when the application
            # first asks for it (receive_body(); on_open_timeout()).
            self._stop_open_timer()
            self._reading_body = body
            if self._asks_upgrade:
                # An upgrade offer on another method than GET: the app's
                # answer ends the connection, as an HTTP route's does (see
                # _dispatch(): "WebSocket smuggling").
                self._close_after_response = True
            if self._declared_over(self.config.max_body_size):
                self.http_error(413, "Request body too large.")
                return
            self.run_asgi(asgi.http(self, request))
            return
        config = self.config
        server = self.server
        verdict = decide(
            request.method,
            request.http_version,
            request.headers,
            origins=None if config.origins is None else frozenset(config.origins),
            deflate=server.deflate_settings if config.compression == "deflate" else None,
            shutting_down=server.refusing,
            open_connections=server.websocket_count,
            max_connections=config.max_connections,
        )
        if isinstance(verdict, Accept):
            self._arm_open_timer()  # the app's answer has open_timeout (see _handshake())
            self.run_asgi(asgi.websocket(self, request, verdict))
        else:
            self.deny(verdict)

    # ------------------------------------------------------------- upgrades

    def _handshake(self, request: Request, route: Route, params: dict[str, Any]) -> bool:
        """Answer an upgrade request; True when it was accepted at once."""
        server = self.server
        config = self.config
        origins = route.origins
        if origins is None and config.origins is not None:
            origins = frozenset(config.origins)
        verdict = decide(
            request.method,
            request.http_version,
            request.headers,
            subprotocols=route.subprotocols,
            require_subprotocol=route.require_subprotocol,
            origins=origins,
            deflate=server.deflate_settings if config.compression == "deflate" else None,
            shutting_down=server.refusing,
            open_connections=self._open_websockets(),
            max_connections=config.max_connections,
            error_format=route.error_format,
        )
        if not isinstance(verdict, Accept):
            self.deny(verdict)
            return False
        if route.on_connect is None:
            self._upgrade_to_route(verdict, request, route, params)
            return True
        accept = verdict

        async def hook() -> None:
            assert route.on_connect is not None
            try:
                answer = route.on_connect(request)
                if inspect.isawaitable(answer):
                    try:
                        answer = await answer
                    except (asyncio.CancelledError, BaseExceptionGroup) as exc:
                        raise _ended_in(exc, f"the on_connect hook of {route.name}")  # noqa: B904
            except (BadRequest, HandshakeError) as exc:  # (as from an HTTP route's handler)
                answer = _answer_to(exc, route)
            final = accept.answered(answer, request.subprotocols)
            if self._transport_closing:
                return  # shut down (503) while the hook decided
            if isinstance(final, Accept):
                final = self.over_capacity(route.error_format) or final
            if isinstance(final, Accept):
                self._app_task = None
                self._upgrade_to_route(final, request, route, params)
            else:
                self.deny(final)

        # The request is whole: the hook's answer has open_timeout from now,
        # not what is left of the time the request took to come.
        self._arm_open_timer()
        self._run_app_task(hook())
        return False

    def over_capacity(self, error_format: ErrorFormat = "text") -> Response | None:
        """The 503 if ``max_connections`` WebSockets are open now, else None (see
        :func:`~wsserver.protocol.handshake.over_capacity`)."""
        return over_capacity(self._open_websockets(), self.config.max_connections, error_format)

    def _open_websockets(self) -> int:
        """The open WebSockets ``max_connections`` bounds this upgrade among: the
        application's; for the status page's feed, the server's own endpoint,
        the feeds, a bound of their own (a page left open takes no place of
        the application's, and a full server still shows its page)."""
        server = self.server
        return server.own_websocket_count if self._builtin else server.websocket_count

    def deny(self, response: Response, *, close: bool = True) -> None:
        """Refuse an upgrade request with ``response`` (and close, unless ``close`` is False)."""
        protocol_logger.debug(
            "%s: HTTP %d: %s",
            peer(self.client_address),
            response.status,
            printable(response.body.decode("utf-8", "replace").rstrip("\n")),
        )
        self.send_response(response, close=close)
        # The status sent: a 500 in its place when h11 refused the response
        # (an on_connect hook's, say); the one meant when the client is gone.
        self.server.counters.handshakes[self.status or response.status] += 1

    def _upgrade_to_route(
        self, accept: Accept, request: Request, route: Route, params: dict[str, Any]
    ) -> None:
        """Send the 101 and run the route's handler on the new WebSocket."""
        protocol, received = self._upgrade(accept, request)
        protocol.route_name = route.name
        protocol.builtin = self._builtin
        protocol.start(protocol.run_handler(route, params), received)

    def upgrade_session(self, accept: Accept, request: Request) -> WebSocket:
        """Send the 101 for an ASGI application, whose running task goes on with the WebSocket.

        Called from within the application's task (its ``websocket.accept``).

        Raises:
            ClientDisconnected: the connection closed while the application decided.
        """
        task = self._asgi_task
        if self.lost or self._transport_closing or task is None:
            raise ClientDisconnected(
                "the connection closed before the handshake was answered", self
            )
        # The task is the WebSocket's from here: nothing of this object's
        # phase is left to do when it ends, and this object can be freed.
        self._app_task = self._asgi_task = None
        task.remove_done_callback(self._asgi_task_done)
        protocol, received = self._upgrade(accept, request)
        protocol.start(task, received)
        assert protocol.websocket is not None
        return protocol.websocket

    def _upgrade(self, accept: Accept, request: Request) -> tuple[WebSocketProtocol, bytes]:
        """Send the 101 and hand the transport over to a WebSocketProtocol.

        Returns the new protocol, and the bytes that followed the request (to
        give to it once its handler runs).
        """
        # RFC 9110 7.8: a client that also expects 100-continue gets it first.
        self._send_continue()
        # Written directly: h11's state does not matter past this point, and
        # its trailing data (frames sent right after the request) is kept.
        self.transport.write(accept.response(self.server.response_headers()))
        received, _ = self._h11.trailing_data
        self._stop_open_timer()
        self.status = 101
        counters = self.server.counters
        counters.handshakes[101] += 1
        counters.handshake_seconds.observe(self.loop.time() - self._request_started)
        server = self.server
        server.unregister(self)
        protocol = WebSocketProtocol(
            server,
            self.transport,
            Connection(max_size=self.config.max_size, deflate=accept.deflate),
            request,
            accept.subprotocol,
            request.remote_address,  # (behind a trusted proxy, the client it names)
            self._request_started,
            # (Paused by the 101, or a 100 Continue before it: the transport
            # tells no other protocol until its buffer drains.)
            writing_paused=self._writing_paused,
        )
        self.transport.set_protocol(protocol)
        return protocol, received

    # ---------------------------------------------------------- HTTP routes

    def _run_app_task(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a handler or hook until it has answered. Reading goes on
        meanwhile (what comes is kept, within a bound, see data_received()), so
        that a client that leaves cancels it."""
        self._watching = True
        self._read_on_while_app_works()
        self._app_task = start_app_task(self.loop, coro)
        self._app_task.add_done_callback(self._app_task_done)

    def _read_on_while_app_works(self) -> None:
        """An application starts on the request: read on meanwhile, so that
        the client leaving is seen (what comes is kept, see data_received()),
        up to ``max_header_size`` bytes. What h11 holds already (a body's
        first bytes, pipelined requests) counts against that bound: else each
        request's run would let one more read in."""
        self._kept = self._held()
        if self._kept > self.config.max_header_size:
            self.transport.pause_reading()
        elif self._turn_paused:
            # Paused by _process() for the others' turn: read on, else the
            # client's leaving would go unseen while the application works.
            self._turn_paused = False
            self.transport.resume_reading()

    def _app_task_done(self, task: asyncio.Task[None]) -> None:
        if self._app_task is task:
            self._app_task = None
            self._watching = False
        cut_off = False
        if self.http_task is task:
            self.http_task = None
            # Past shutdown_timeout: the client still gets an answer, also from
            # a handler that caught its CancelledError and returned nothing
            # (or failed): not the 500 of its mistake. (What it did is logged.)
            cut_off = self.answer_cut_off(task)
            if task.cancelled() and not cut_off:
                self._cancelled_unanswered("the handler")
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not only(exc, NOT_FAILURES):
            # Counted and logged whether or not the client is still there.
            # (Not a sys.exit(): no failure, said where it was raised.)
            logger.error(
                "error while handling %s from %s",
                printable(self.request.path) if self.request else "-",
                peer(self.client_address),
                exc_info=exc,
                extra=self._error_fields(),
            )
            self.server.app_failed("the handler raised", exc, self.transport)
        if cut_off or self.lost or self.status == 101:
            return
        if exc is not None:
            self._internal_error()
            return
        if not self._transport_closing:
            self.transport.resume_reading()
            self._process()

    async def _http_handler(self, route: Route, params: dict[str, Any]) -> None:
        assert self.request is not None
        try:
            response = await self._handler_response(route, params)
            if isinstance(response, StreamingResponse):
                await self._send_stream(response)
            else:
                self.send_response(response)
        except SystemExit as exc:
            say_exit(exc, f"the handler of {printable(self.request.path)}", HANDLER_EXIT_UNDONE)
            raise
        except RequestTooLarge as exc:
            # Its request.stream (read by the handler, or by a streamed
            # response's producer) went over the route's limit: the rest of
            # the body stays unread.
            if self._h11.our_state is h11.SEND_RESPONSE and not self.closing:
                self._close_after_response = True
                self.send_response(
                    error_response(413, "Request body too large.", format=route.error_format)
                )
            else:  # (after the head: the response was cut short)
                protocol_logger.debug("%s: %s", peer(self.client_address), exc)
        except (BadRequest, HandshakeError) as exc:
            # A streamed response's producer's, before its head (it reads the
            # body first, for a client that waits for 100 Continue): the answer
            # the handler's own raise gets. After the head, the body was cut
            # short: the handler's failure.
            if self._h11.our_state is not h11.SEND_RESPONSE or self.closing:
                raise
            self.send_response(_answer_to(exc, route))
        except (asyncio.CancelledError, BaseExceptionGroup) as exc:
            # (A CancelledError here is a streamed response's producer's: the
            # handler's own is _handler_response()'s.)
            raise _ended_in(exc, f"HTTP handler {route.name}")  # noqa: B904
        except ClientDisconnected as exc:
            if exc.origin is not self or not self.closing:
                raise  # (another connection's, or this one is there: the handler's failure)
            # Its request.stream could not be read to its end: the client was
            # answered (408, 400) or is gone.
            log_client_gone(self.request.path, exc)

    async def _handler_response(
        self, route: Route, params: dict[str, Any]
    ) -> Response | StreamingResponse:
        """What ``route``'s handler answers (a ``BadRequest`` it raised: a 400; a
        ``HandshakeError``: its status, message and headers, as from an
        ``on_connect`` hook)."""
        assert self.request is not None
        try:
            response = await route.handler(self.request, **params)
        except (BadRequest, HandshakeError) as exc:
            return _answer_to(exc, route)
        except asyncio.CancelledError as exc:
            raise _ended_in(exc, f"HTTP handler {route.name}")  # noqa: B904
        if not isinstance(response, (Response, StreamingResponse)):
            raise TypeError(
                f"HTTP handler {route.name} returned {type(response).__name__}, not a Response"
            )
        return response

    async def _send_stream(self, response: StreamingResponse) -> None:
        """Send a handler's streamed response: the head, each piece as it comes
        (once the client took enough of the last: :meth:`drain`), the end.

        Reading goes on meanwhile (:meth:`stream_started`), within a bound
        (:meth:`data_received`), so that a client leaving is seen: its
        connection_lost() cancels this task where it waits.
        """
        h = self._h11
        if h.their_state is h11.SEND_BODY and not self._reading_body:
            # (As in send_response(): the end of a request without a body.)
            with contextlib.suppress(h11.RemoteProtocolError):
                self._next_event(h)
        producer = Producer(response.chunks)
        pieces = producer.pieces()
        first: Any = _NOTHING_YET
        try:
            if self._reading_body and h.they_are_waiting_for_100_continue and not self._head:
                # A stream=True route's body the client will send once invited:
                # the head waits for the first piece, so that a producer that
                # reads request.stream sends 100 Continue (h11 sends none once
                # a response has begun), and one that does not never invites it.
                first = await anext(pieces, _NO_MORE)
            self.start_response(response.status, response.headers)  # (if refused: a 500)
            try:
                if not self._head:
                    self._kept = 0
                    self.stream_started()
                    if first is not _NOTHING_YET or not await self._send_file(
                        response.chunks, pieces
                    ):
                        await self._stream_body(pieces, first)
                if not self.closing:
                    self._write(h11.EndOfMessage())  # (refused if short of its Content-Length)
            except BaseException:
                # The head is out: no other answer can follow (a failing
                # producer, a cancel at shutdown). The body is cut short, and
                # the client can tell.
                self.cut_short()
                raise
        finally:
            try:
                await producer.close()
            except BaseException:
                # Cancelled while closing it (the response whole or cut short):
                # the connection goes no further, rather than idle for ever.
                self.close_transport()
                raise
        if self.closing:
            return  # the client is gone (its access line comes with connection_lost())
        self._streaming = False
        self._response_ended()
        self._next_cycle_or_close()

    async def send_pieces(self, chunks: Any) -> None:
        """Send ``chunks`` as the response body's next pieces, each once the
        client took enough of the last; a plain iterable's are taken in a
        thread (:class:`~.streams.Producer`). It is closed, whatever happens.

        Raises:
            ClientDisconnected: the client is gone.
            RuntimeError: a file's pieces (:class:`~.static.FilePieces`) ended
                before their count: the file shrank. The response is cut
                short (see :meth:`cut_short`), and the connection closed.
        """
        producer = Producer(chunks)
        pieces = producer.pieces()
        try:
            if not await self._send_file(chunks, pieces):
                await self._stream_body(pieces, _NOTHING_YET)
                if type(chunks) is FilePieces and chunks.left > 0 and not self.closing:
                    self.cut_short()
                    raise RuntimeError("cannot send this response: the file is shorter than it was")
        finally:
            await producer.close()
        if self.closing:
            raise ClientDisconnected("the client is gone", self)

    async def _send_file(self, chunks: Any, pieces: AsyncIterator[Any]) -> bool:
        """Send a file's pieces (:class:`~.static.FilePieces`; ``pieces``, its
        producer's) with the kernel's ``sendfile()``: its bytes never pass
        through Python. False, with nothing sent, where that cannot be (TLS,
        uvloop, a Unix socket: see :func:`.transports.can_sendfile`; another
        producer): the pieces are then read in a thread as usual. Where the
        kernel cannot send that file (its file system), ``pieces`` are sent.

        As :meth:`drain` does, a client that takes nothing for
        ``timeout_keep_alive`` is closed; one that left is closed (the caller
        sees :attr:`closing`).

        Raises:
            RuntimeError: the file ended before the ``Content-Length`` said
                (it shrank): the response is cut short, and the connection closed.
        """
        if type(chunks) is not FilePieces or chunks.left <= 0 or not can_sendfile(self.transport):
            return False
        file, count, offset = chunks.file, chunks.left, chunks.offset
        region = _Region(count)
        try:
            parts: Any = self._h11.send_with_data_passthrough(h11.Data(data=region))  # type: ignore[arg-type]
        except h11.LocalProtocolError as exc:
            raise RuntimeError(f"cannot send this response: {exc}") from None
        for part in parts or ():
            if part is not region:
                self._write_raw(part)  # (chunked encoding's framing)
                continue
            # loop.sendfile() first waits for the transport's buffer to empty,
            # where a cancel would leave the transport broken: it is emptied
            # here (as drain() waits, a stalled client closed), so that the
            # sendfile starts at once.
            await self._drain_all()
            if self.closing:
                return True
            written = tcp_bytes_written(self.transport)
            try:
                sent = await self._kernel_sends(file, offset, count)
            except BaseException:
                self._count_cut_short(written, file, offset)  # (cancelled: shutdown)
                raise
            if sent is None:
                self._count_cut_short(written, file, offset)
                return True
            if sent == _NOT_AVAILABLE:
                # (h11 counted them already: they go out as they are.)
                await self._stream_body(pieces, _NOTHING_YET, raw=True)
                if self.closing:
                    return True
                sent = count - chunks.left
            else:
                self._sent += sent
                protocol_logger.debug(
                    "%s: %d bytes of a file sent with sendfile()", peer(self.client_address), sent
                )
            if sent < count:
                self.cut_short()
                raise RuntimeError("cannot send this response: the file is shorter than it was")
        return True

    def _count_cut_short(self, written: int | None, file: Any, offset: int) -> None:
        """Count what went of a file whose ``sendfile()`` was cut short, from
        ``offset``: the bytes written to the socket since it counted
        ``written`` (its transport may be closed, its socket is not yet).
        asyncio moves the file's position past what went where sendfile()
        failed, but leaves it where it was when cancelled (a stalled client,
        shutdown): that is the measure only where the socket has none."""
        now = tcp_bytes_written(self.transport)
        if written is not None and now is not None:
            self._sent += max(0, now - written)
            return
        with contextlib.suppress(OSError, ValueError):
            self._sent += max(0, file.tell() - offset)

    def _write_raw(self, data: bytes) -> None:
        if self.closing:
            raise ClientDisconnected("the client is gone", self)
        if self._over_asyncio_tls and under_tls_closing(self.transport):
            return  # (the client is gone: the next write, a turn later, says so)
        self.transport.write(data)
        self._sent += len(data)

    async def _drain_all(self) -> None:
        """Wait until the transport's buffer is empty (:meth:`drain`, with no
        bytes allowed to wait)."""
        transport = self.transport
        if not transport.get_write_buffer_size():
            return
        low, high = transport.get_write_buffer_limits()
        transport.set_write_buffer_limits(high=0, low=0)  # (pause_writing() at once)
        try:
            await self.drain()
        finally:
            if not transport.is_closing():
                transport.set_write_buffer_limits(high=high, low=low)

    async def _kernel_sends(self, file: Any, offset: int, count: int) -> int | None:
        """``loop.sendfile()``: how many bytes it sent; :data:`_NOT_AVAILABLE`
        (none sent) where the kernel cannot send that file; or None when the
        client took nothing for ``timeout_keep_alive`` or left (the connection
        is closed then).

        asyncio pauses reading meanwhile and resumes it after, if it was on:
        nothing here resumes it in between (:meth:`_resume_reading`).
        """
        # (Not asyncio's fallback: it puts a protocol of its own in ours'
        # place, whose writing's pauses ours never hears of.)
        sending = self._sending = asyncio.ensure_future(
            self.loop.sendfile(self.transport, file, offset, count, fallback=False)
        )
        # (Its failure is read below, unless this task is cancelled first: the
        # client left as it began, "Transport is closing". Read, asyncio does
        # not log it as an error.)
        sending.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            await self._wait_while_taken(sending)
        finally:
            try:
                if not sending.done():
                    sending.cancel()
                    await asyncio.wait((sending,))  # (asyncio puts the transport back)
            finally:  # (cancelled again meanwhile, too)
                self._sending = None
                if self._resume_after_file and not self.closing:
                    self.transport.resume_reading()
                self._resume_after_file = False
                if self._transport_closing and not self.lost:
                    self._close_now()  # (put off by close_transport())
        if sending.cancelled():
            # (The client took nothing: cut short, as in drain(). Else the
            # connection is closing already, and this does nothing.)
            self.cut_short()
            return None
        failed = sending.exception()
        if isinstance(failed, asyncio.SendfileNotAvailableError):
            return _NOT_AVAILABLE
        if failed is not None:
            # (The client reset the connection, or closed it: reading is
            # paused meanwhile, so this is where that is heard.)
            protocol_logger.debug(
                "%s: sending a file failed: %r", peer(self.client_address), failed
            )
            self.transport.abort()
            self.close_transport()
            return None
        return sending.result()

    def _resume_reading(self) -> None:
        """Resume reading; while ``loop.sendfile()`` sends (it paused reading,
        and resumes it after if it was on), once it is done."""
        if self._sending is not None:
            self._resume_after_file = True
        else:
            self.transport.resume_reading()

    async def _stream_body(
        self, pieces: AsyncIterator[Any], first: Any, *, raw: bool = False
    ) -> None:
        """Write a streamed body's pieces (``first``, if taken already, then
        the others), each once the client took enough of the last (``raw``:
        as they are, h11 having counted them, see :meth:`_send_file`)."""
        while True:
            piece = first if first is not _NOTHING_YET else await anext(pieces, _NO_MORE)
            first = _NOTHING_YET
            if piece is _NO_MORE or self.closing:
                return
            if isinstance(piece, str):
                data = piece.encode("utf-8")
            elif isinstance(piece, (bytes, bytearray, memoryview)):
                data = bytes(piece)
            else:
                raise TypeError(
                    f"a streamed body's pieces are str or bytes, not {type(piece).__name__}"
                )
            if data:
                if raw:
                    self._write_raw(data)
                else:
                    self.send_body(data)
            # (An empty piece too: a producer of them gives the loop its turns.)
            await self.drain()

    # ------------------------------------------------------------ ASGI

    def run_asgi(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run an ASGI application's coroutine for the current request.

        Reading goes on while the application works or decides, so that a
        client leaving is noticed (as a Router handler's), even one whose
        request body the application has not read (or never will); what
        arrives meanwhile is kept for later (the body, for the application to
        pull with :meth:`receive_body`; a pipelined request; frames for the
        WebSocket), and reading pauses once more than ``max_header_size``
        bytes came (:meth:`data_received`; it resumes as the application asks
        for more of the body, at the answer, or at the 101). Its task is the
        server's to wait for on shutdown; it is not cancelled when the client
        goes away (it hears ``http.disconnect`` or ``websocket.disconnect``),
        and it may outlive its response (background work) while the
        connection serves its next request.
        """
        self._read_on_while_app_works()
        self._streaming = False
        task = self._asgi_task = self._app_task = start_app_task(self.loop, coro)
        self.server.app_task_started(task)
        task.add_done_callback(self._asgi_task_done)

    def _asgi_task_done(self, task: asyncio.Task[None]) -> None:
        if self._asgi_task is task:
            self._asgi_task = None
        if self._app_task is task:
            self._app_task = None
            if not self.lost and self.status != 101:
                if task.cancelled() and (
                    self.answer_cut_off(task) or self._cancelled_unanswered("the ASGI application")
                ):
                    return  # (answered, as a Router handler's client is)
                # Otherwise ended mid-request (mid-response: cut short).
                self.cut_short()

    @property
    def cycle(self) -> int:
        """How many requests this connection has done with (answered, or not
        to be): a request body's reader tells its own request's end by it."""
        return self._cycle

    @property
    def lingering(self) -> bool:
        """Whether the connection is answered and drops what its client still
        sends until it closes (see :meth:`close_transport`)."""
        return self._lingering

    @property
    def request_coming(self) -> bool:
        """Whether it lingers for the rest of a request still coming (a body
        answered before it was all in): not only for requests the client may
        pipeline past the end, which it sends only till it reads that end."""
        return self._lingering and self._request_coming

    @property
    def body_ended(self) -> bool:
        """Whether the current request's body has all been taken from h11
        (which then says DONE, or MUST_CLOSE for a request that ends its
        connection: HTTP/1.0, ``Connection: close``)."""
        return self._h11.their_state in _BODY_OVER

    @property
    def closing(self) -> bool:
        """Whether the connection is closing or gone: nothing more can be sent.

        (The transport's own word counts: a write that failed on a reset
        closes it at once, its connection_lost() only at the loop's next
        turn, which a producer that never waits would not give it.)
        """
        return self.lost or self._transport_closing or self.transport.is_closing()

    @property
    def client_address(self) -> tuple[str, int] | None:
        """The client's ``(host, port)`` as the access log gives it: the current
        request's (behind a trusted proxy, the one it names), else the peer's."""
        request = self.request
        return self.remote_address if request is None else request.remote_address

    @property
    def local_address(self) -> tuple[str, int | None] | None:
        """The listening side's ``(host, port)``, or ``(path, None)`` for a Unix socket."""
        name = self.transport.get_extra_info("sockname")
        if isinstance(name, tuple) and len(name) >= 2:
            return (str(name[0]), int(name[1]))
        if isinstance(name, str) and name:
            return (name, None)
        return None

    def body_announced(self) -> int:
        """The bytes of the request body still to come that the size line of the
        chunk being read announced (0 between chunks, or for a body not
        chunked): a reader with a limit refuses the body at that line, as it
        would a ``Content-Length`` over it."""
        return _chunk_left(self._h11)

    async def receive_body(self, room: int | None = None) -> tuple[bytes, bool] | None:
        """The next piece of the request body and whether more follows; None if the client left.

        ``room``: how much more of the body the caller takes (None: any). A
        chunk whose size line announces more is not waited for: ``(b"", True)``
        comes back at once, and :meth:`body_announced` says it, for the caller
        to refuse the body.

        Answers ``Expect: 100-continue`` the first time. Past what was read
        ahead while the application worked (``max_header_size`` bytes, see
        :meth:`run_asgi`), reads the socket only while waiting here: an
        application that does not ask is not sent more.
        """
        h = self._h11
        deadlines = self.server.open_deadlines
        if self._reading_body and deadlines is not None and self not in deadlines:
            deadlines.add(self)  # the application's first ask: the client's time starts
        self._send_continue()
        cycle = self._cycle
        while not self.closing and self._cycle == cycle:  # (its response not ended)
            ahead = self._body_ahead
            if ahead:  # (read ahead of the application, see start_response())
                piece = ahead.pop(0)
                if not piece[1]:
                    self._reading_body = False
                    self._stop_open_timer()
                    self._body_taken()
                return piece
            fault = self._body_fault
            if fault is not None:  # (found while taking the pieces before it)
                self._body_fault = None
                self._bad_body(fault)
                return None
            if h.their_state in _BODY_OVER or h.their_state is h11.IDLE:
                return None  # (the body has ended: what h11 has next is no part of it)
            if self._body_pieces >= BODY_PIECES_PER_TURN:
                # Pieces all at hand: the others' turn first (before one is
                # taken, which a cancellation meanwhile would lose).
                self._body_pieces = 0
                await asyncio.sleep(0)
                continue
            try:
                event = self._next_event(h)
                kind = type(event)
                if kind is h11.Data:
                    most = BODY_PIECES_PER_TURN - self._body_pieces  # (this one in)
                    self._body_pieces += 1
                    data, event = self._body_at_hand(h, event, room, most)  # type: ignore[arg-type]
                    kind = type(event)
                    if kind is not h11.EndOfMessage:
                        if self._reading_body and deadlines is not None:
                            deadlines.add(self)  # it comes: open_timeout for its next piece
                        return data, True
                else:
                    data = b""
            except h11.RemoteProtocolError as exc:
                self._bad_body(exc)
                return None
            if kind is h11.EndOfMessage:
                if self._reading_body:
                    self._reading_body = False
                    self._stop_open_timer()
                self._body_taken()
                return data, False
            if event is not h11.NEED_DATA:
                return None  # ConnectionClosed
            if room is not None and _chunk_left(h) > room:
                return b"", True  # (refused by the caller: more than it takes)
            if self._reading_body and deadlines is not None:
                # The client's time for the next piece runs from now: what
                # the application took to ask is not the client's.
                deadlines.add(self)
            self._body_pieces = 0
            await self._wait_for_data(cycle)
        return None

    def _bad_body(self, exc: h11.RemoteProtocolError) -> None:
        """The request body is malformed: its 4xx if the response has not
        started, else the connection closes."""
        if self._h11.our_state is h11.SEND_RESPONSE:
            self.http_error(bad_request_status(exc), bad_request_message(exc))
        else:
            self.close_transport()

    def _body_at_hand(
        self, h: h11.Connection, event: h11.Data, room: int | None, most: int
    ) -> tuple[bytes, h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]]:
        """A piece of the body with what follows it that h11 already holds: the
        chunks that came with it (``most`` of them, within ``room``) and the
        body's end. One event for a body that came whole, as uvicorn gives,
        not one per chunk and an empty last one. Returns the piece and the
        event after it: EndOfMessage, or NEED_DATA for more to come.

        A chunk beyond ``room`` is kept for the next ask (as read ahead, see
        :meth:`_body_still_coming`), and a malformed one is said at the next
        ask: what came before either is the caller's first.
        """
        data = bytes(event.data)
        reader: Any = h._reader  # (h11 is pinned to 0.16)
        if type(reader) is not ChunkedReader:
            # A Content-Length body's last bytes: its end is at hand.
            ended = getattr(reader, "_remaining", None) == 0
            return data, (self._next_event(h) if ended else h11.NEED_DATA)
        pieces = [data]
        size = len(data)
        end: h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED] = h11.NEED_DATA
        while event.chunk_end and len(pieces) < most:
            try:
                after = self._next_event(h)
            except h11.RemoteProtocolError as exc:
                self._body_fault = exc
                break
            if type(after) is not h11.Data:
                if type(after) is h11.EndOfMessage:
                    end = after
                break  # (else NEED_DATA)
            event = after
            piece = bytes(event.data)
            if room is not None and size + len(piece) > room:
                self._body_ahead = [(piece, True)]  # (refused by the caller)
                break
            pieces.append(piece)
            size += len(piece)
        self._body_pieces += len(pieces) - 1
        return b"".join(pieces), end  # (one piece: itself, not a copy)

    def _body_taken(self) -> None:
        """The application has the whole request body. While an ASGI
        application or a ``stream=True`` route's handler works on it (or its
        response streams), read on: what comes now is a next request's (or
        the client's leaving, which cancels a handler, as for a body read for
        it), within a bound of its own (the body's bytes counted to it, and
        reading may have paused on them). What h11 holds past the body (the
        next requests, come with its end) counts to it: else each body's end
        would let one more read in."""
        task = self._app_task
        at_work = task is not None and (task is self._asgi_task or task is self.http_task)
        if (self._streaming or at_work) and not self.closing:
            self._kept = self._held()
            if self._kept <= self.config.max_header_size:
                self._resume_reading()

    async def _wait_for_data(self, cycle: int) -> None:
        """Read the socket until data comes (or the client leaves, or the response ends).

        A future of its own, among those of the other receive() calls that
        wait (the application's own concurrency): one cancelled leaves the
        others waiting. Reading pauses when none waits any more.
        """
        waiter = self.loop.create_future()
        self._read_waiters.append(waiter)
        self._resume_reading()
        try:
            await waiter
        finally:
            waiters = self._read_waiters
            if waiter in waiters:  # (not woken: cancelled)
                waiters.remove(waiter)
                if (
                    not waiters
                    and not self.closing
                    and self._cycle == cycle
                    and not self._streaming
                ):
                    self.transport.pause_reading()

    def _wake_readers(self) -> None:
        waiters = self._read_waiters
        self._read_waiters = []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def watch_disconnect(self) -> asyncio.Future[None]:
        """A future done when the connection is lost; reads meanwhile, to notice it,
        within the bound on what is kept while the application works (see
        data_received(): once it holds, reading stays paused, however often
        this is asked, as by a framework that polls receive() for the
        disconnect before each event it streams)."""
        future = self._lost_future
        if future is None:
            future = self._lost_future = self.loop.create_future()
            if self.lost:
                future.set_result(None)
        if (
            not self.closing
            and not self._read_waiters
            and self._kept <= self.config.max_header_size
        ):
            self._resume_reading()
        return future

    def stream_started(self) -> None:
        """An ASGI application's response streams: read on until it ends (within
        the bound of data_received()), so that the client leaving is seen and
        the application's next send() raises."""
        self._streaming = True
        self.watch_disconnect()

    def ends_with_response(self) -> bool:
        """Whether the connection closes after the response under way (its head
        sent): the request said so (HTTP/1.0, ``Connection: close``), the
        response did, or the server does (a body still coming, a shutdown)."""
        return self._close_after_response or self._h11.their_state is h11.MUST_CLOSE

    def start_response(self, status: int, headers: list[tuple[str, str]]) -> None:
        """Send a response's head (streamed: :meth:`send_body`, then :meth:`end_response`).

        Raises:
            RuntimeError: h11 refused it (say, a malformed Content-Length).
        """
        self.status, self._sent = status, 0
        headers = with_defaults(headers, self.server.response_headers())
        # (Asked also of a response that closes its connection anyway, a
        # shutdown's: a request without a body ends here, h11's end of it
        # taken, so that the close does not wait for a body still to come.)
        if self._body_still_coming() and not self._close_after_response:
            # RFC 9112 9.6: say so now, since the connection will close after it.
            self._close_after_response = True
        if self._close_after_response:
            headers = saying_close(headers)
        self._write(h11_response(status, headers))
        counters = self.server.counters
        counters.http_responses[status] += 1  # (not one refused: its 500 is)
        if self._asks_upgrade and self._answers_upgrade_as_http():
            counters.handshakes[status] += 1
        self._ends_with_close = (
            self._h11.their_http_version == b"1.0"
            and not self._head
            and status != 204
            and status != 304  # (no body: the head is the whole response)
            and not any(name.lower() == "content-length" for name, _ in headers)
        )

    def _body_still_coming(self) -> bool:
        """Whether the request's body has not all arrived (unread by the application).

        What has arrived is read ahead, for the application's receive_body()
        to take still: the answer to a body that is all here can keep the
        connection open.
        """
        h = self._h11
        if self._body_fault is not None:  # (malformed: the connection ends with this answer)
            return True
        if h.their_state is not h11.SEND_BODY:
            return False
        ahead = self._body_ahead
        if ahead is None:
            ahead = self._body_ahead = []
        try:
            event = self._next_event(h)
            if type(event) is h11.Data:
                data, event = self._body_at_hand(h, event, None, BODY_PIECES_PER_TURN)
                ahead.append((data, type(event) is not h11.EndOfMessage))
            elif type(event) is h11.EndOfMessage:
                ahead.append((b"", False))
        except h11.RemoteProtocolError as exc:
            # Said at the application's next ask: h11 may take the body for
            # ended (trailers over their bound come with its end).
            self._body_fault = exc
            return True
        return type(event) is not h11.EndOfMessage

    def send_informational(self, status: int, headers: list[tuple[str, str]]) -> bool:
        """Send a ``1xx`` response ahead of the final one (``103 Early Hints``,
        RFC 8297), where that can be: not to an HTTP/1.0 client (RFC 9110
        15.2), nor once the final head is out, nor while the client waits for
        ``100 Continue`` (which another ``1xx`` would stand in for, in h11's
        eyes, though it is none). True if it was sent.

        Raises:
            ClientDisconnected: the client is gone.
        """
        h = self._h11
        if (
            h.our_state is not h11.SEND_RESPONSE
            or h.their_http_version == b"1.0"
            or h.they_are_waiting_for_100_continue
        ):
            return False
        self._write(h11_response(status, headers))
        return True

    def send_body(self, data: bytes) -> None:
        """Send a piece of the response body."""
        self._write(h11.Data(data=data))

    def end_response(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        """End the response (with ``trailers``, a chunked one only); go on to the
        next request, or close when that cannot be."""
        h = self._h11
        try:
            self._write(h11.EndOfMessage(headers=trailers) if trailers else h11.EndOfMessage())
        except RuntimeError:
            # (Short of its Content-Length: its client would wait for the rest
            # as long as the application runs, one that caught this too.)
            self.cut_short()
            raise
        self._response_ended()
        # The rest of a body the application did not read: what h11 has
        # already is skipped; if more is still to come, the connection closes
        # (and then nothing of it is taken: lingering drops it, without h11).
        while h.their_state is h11.SEND_BODY and not self._close_after_response:
            try:
                event = self._next_event(h)
            except h11.RemoteProtocolError:
                break
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
        self._app_task = None  # the application may go on; the connection does too
        self._streaming = False
        # (An application's receive() still waiting hears disconnect: _next_cycle_or_close().)
        if self._next_cycle_or_close():
            # The next request is dispatched a turn later: a read meanwhile
            # (uvloop reads before the callbacks) goes to h11 with no app at
            # work, unbounded. Past the bound h11 holds already, reading
            # waits for the dispatch to find room (_read_on_while_app_works()),
            # else for all held to be answered (_process()).
            if self._held() > self.config.max_header_size:
                self.transport.pause_reading()
                self._turn_paused = True
            else:
                self.transport.resume_reading()
            self.loop.call_soon(self._process)

    def _write(
        self, event: h11.InformationalResponse | h11.Response | h11.Data | h11.EndOfMessage
    ) -> None:
        if self.closing:
            raise ClientDisconnected("the client is gone", self)
        try:
            data = self._h11.send(event)
        except h11.LocalProtocolError as exc:
            raise RuntimeError(f"cannot send this response: {exc}") from None
        if data:
            if self._over_asyncio_tls and under_tls_closing(self.transport):
                return  # (the client is gone: the next write, a turn later, says so)
            self.transport.write(data)
            if type(event) is h11.Data or type(event) is h11.EndOfMessage:
                self._sent += len(data)

    def pause_writing(self) -> None:
        self._writing_paused = True
        if not self._lingering:  # (lingering: only to be told the end, see _close_now())
            self.server.counters.write_pauses += 1

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._lingering and not self.transport.get_write_buffer_size():
            self._count_answered()  # its answer has all gone from the transport (see _close_now())
        if self._held_line is not None:
            self._log_held_line(None)  # (its body gone but what the kernel and the transport take)
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        if self._app_task is None and not self.closing:
            if self._idle and self._held():
                self._end_idle()  # (the next request, held: see _wait_idle())
            self.transport.resume_reading()  # paused by _process(), if at all
            self._process()

    async def drain(self) -> None:
        """Wait while the write buffer is above ``write_limit`` (a client that reads slowly).

        A client that takes nothing of what waits for ``timeout_keep_alive``
        is closed (the application then hears that it is gone): one that
        stops reading holds neither the connection nor the application.
        Every PIECES_PER_TURN calls that did not wait, the loop gets a turn.
        """
        if not self._writing_paused:
            self._pieces_this_turn += 1
            if self._pieces_this_turn >= PIECES_PER_TURN:
                self._pieces_this_turn = 0
                await asyncio.sleep(0)
            return
        self._pieces_this_turn = 0
        while self._writing_paused and not self.closing:
            if self._drain_waiter is None or self._drain_waiter.done():
                self._drain_waiter = self.loop.create_future()
            # (One future, however many wait: a wait that ends leaves it be.)
            if not await self._wait_while_taken(self._drain_waiter):
                # (Cut short: a body whose end is the connection's is reset,
                # else a client that reads on later would take it for whole.)
                self.cut_short()

    async def _wait_while_taken(self, future: asyncio.Future[Any]) -> bool:
        """Wait for ``future`` (left as it is, whatever ends the wait) while
        the client takes what waits for it: False, ``future`` not done, once
        it took nothing for ``timeout_keep_alive``.

        Whether it took more is looked at :data:`TAKEN_CHECKS` times in that
        time, not once at its end: a client that stopped taking during one
        such time would otherwise be given the whole of the next one too (as
        right after writing paused, where its kernel still takes the bytes
        on their way), twice ``timeout_keep_alive`` in all.
        """
        step = self.config.timeout_keep_alive / TAKEN_CHECKS
        taken = self._taken()
        idle = 0
        while not future.done():
            await asyncio.wait((future,), timeout=step)
            if future.done():
                break
            now = self._taken()
            if _took_more(taken, now):
                taken, idle = now, 0
                continue
            idle += 1
            if idle >= TAKEN_CHECKS:
                protocol_logger.debug(
                    "%s: the client took nothing of the response within timeout_keep_alive",
                    peer(self.client_address),
                )
                return False
        return True

    # ------------------------------------------------------------ responses

    def send_response(self, response: Response, *, close: bool = False) -> None:
        """Send an HTTP response; keep the connection alive when HTTP/1.1 allows.

        ``close`` ends the connection after the response, whatever the request said.
        """
        if self._transport_closing or self.lost:
            return
        if self._held_line is not None:
            # The line of a response still going (see _response_ended()),
            # before this one takes its fields: a shutdown's 503 to a request
            # pipelined behind it. (What it says went: all written, as then.)
            self._log_held_line(None)
        h = self._h11
        self.status = response.status
        if h.their_state is h11.SEND_BODY and not self._reading_body:
            # A request without a body is dispatched before h11 gives its
            # end: take it now so that the connection can stay open (if that
            # fails, the states below do not match and the connection closes).
            # (A body being read is left to _body_still_coming(), below.)
            with contextlib.suppress(h11.RemoteProtocolError):
                self._next_event(h)
        # Without a body only in answer to a HEAD request (not, say, to a
        # malformed request that follows one on a kept-alive connection).
        head = h.our_state is h11.SEND_RESPONSE and self._head
        close = close or self._close_after_response
        if not close and self._reading_body and self._body_still_coming():
            # (A streamed request's body, unread: RFC 9112 9.6, say so now.)
            close = True
        defaults = self.server.response_headers()
        try:
            data = render_response(h, response, close=close, head=head, defaults=defaults)
        except h11.LocalProtocolError as exc:
            # The application's response (a Content-Length its body does not
            # match, a Transfer-Encoding h11 cannot write): its failure.
            logger.error(
                "cannot send response %r to %s from %s: %s",
                response,
                printable(self.request.path) if self.request else "-",
                peer(self.client_address),
                exc,
                extra=self._error_fields(),
            )
            self.server.app_failed("its response could not be sent", exc, self.transport)
            # h11 may be past answering on this connection: a new one can.
            h = self._h11 = h11.Connection(h11.SERVER)
            self.status = 500
            response = error_response(500, "Internal Server Error")
            data = render_response(h, response, close=True, defaults=defaults)
        counters = self.server.counters
        counters.http_responses[self.status] += 1
        if self._asks_upgrade and self._answers_upgrade_as_http():
            counters.handshakes[self.status] += 1
        self.transport.write(data)
        self._sent = len(data) - data.find(b"\r\n\r\n") - 4  # (after the head: what h11 framed)
        if self._logged:
            self.request = None  # an answer to no new request (a 503 at shutdown, say)
        self._response_ended()
        self._next_cycle_or_close(close)

    def _next_cycle_or_close(self, close: bool = False) -> bool:
        """After a response: wait for the next request if h11 allows (both sides
        done) and nothing says close; else close. True if kept alive."""
        h = self._h11
        states: Any = (h.our_state, h.their_state)
        # The request is over: a body's reader still waiting (or one that
        # comes later) gets nothing more of this connection.
        self._reading_body = False
        self._body_ahead = None
        self._body_fault = None
        self._cycle += 1
        self._wake_readers()
        if states == (h11.DONE, h11.DONE) and not (close or self._close_after_response):
            h.start_next_cycle()
            self._head = False
            self._wait_idle()
            return True
        self.close_transport()
        return False

    def _body_too_large(self) -> None:
        """413, in the error format of the route the request is for."""
        found = self._found
        route = found.route if found is not None else None
        format = route.error_format if route is not None else "text"
        self.http_error(413, "Request body too large.", format=format)

    def http_error(
        self,
        status: int,
        message: str,
        headers: list[tuple[str, str]] | None = None,
        *,
        format: ErrorFormat = "text",
    ) -> None:
        """Answer with an HTTP error saying ``message`` and close the connection."""
        self._stop_open_timer()
        if self._asks_upgrade and not self._logged and not self._answers_upgrade_as_http():
            # An upgrade request refused before its route was reached (a
            # limit): a handshake's answer too, as deny()'s are. (One an
            # HTTP route took is counted as its answer is sent.)
            self.server.counters.handshakes[status] += 1
        if status >= 400:
            protocol_logger.debug(
                "%s: HTTP %d: %s", peer(self.client_address), status, printable(message)
            )
        self.send_response(error_response(status, message, headers, format), close=True)

    def close_transport(self) -> None:
        """Close TCP (after what was written), aborting it if that takes over close_timeout."""
        if self._transport_closing or self.lost:
            return
        self._transport_closing = True
        self._wake_readers()  # (a request body's reader learns that it ends here)
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)  # (a response's writer, waiting on the client, learns it too)
        if self._sending is not None:
            # loop.sendfile() has the socket (its own writer on it, which a
            # close now would leave behind): closed once that has ended.
            self._sending.cancel()
            return
        self._close_now()

    def cut_short(self) -> None:
        """Close; if a response is under way (its head sent, not its end), cut
        short so that the client can tell: short of its Content-Length, or of
        the last chunk. An HTTP/1.0 client's body without a Content-Length
        ends where the connection does: it is reset (RFC 9112 8: an error said
        by the connection), as a FIN would make what came look whole."""
        if (
            self._ends_with_close
            and self._h11.our_state is h11.SEND_BODY
            and not self._transport_closing
            and not self.lost
        ):
            self._drop_unsent()
            reset(self.transport)
        self.close_transport()

    def _close_now(self) -> None:
        transport = self.transport
        if transport.is_closing():
            # Closed by asyncio already (TLS: on the peer's EOF); closing an
            # SSL transport twice breaks it.
            return
        written = not self._answer_unsent()
        tls = self.server.ssl is not None
        self._request_coming = self._request_unread()
        if transport.can_write_eof():
            lingering = self._request_coming or self._pipelined_past_the_end(written)
        else:
            # Over TLS (no half-close: the client is not told the end till
            # it closes), only for a request still coming: not for requests
            # pipelined past the end (read already, no reset to fear), nor
            # for an answer whose end the close says (an HTTP/1.0 client's
            # without a Content-Length): their clients wait for that end.
            lingering = tls and self._request_coming and not self._ends_with_close
        if lingering and tls:
            # TLS has no half-close (its close_notify ends both ways): the
            # answer is sent, what comes dropped, until the client closes,
            # having read it, or has sent nothing for LINGER_QUIET seconds
            # (all it would: a refused head, a body sent whole), or at
            # close_timeout.
            self._lingering = True
            transport.resume_reading()
            self._quiet_timer = self.loop.call_later(LINGER_QUIET, self._close_when_quiet)
        elif lingering:
            # Answered while the client may still be sending its request (a
            # body: 413, or a handler that did not read it; what follows a
            # head or chunk h11 could not read: 431, 400; frames after an
            # upgrade request that was denied, sent without waiting for the
            # 101): closing with its bytes unread would reset the connection,
            # and a client still writing loses the answer (RFC 9112 9.6).
            # Send our end (FIN) after the answer, drop what comes, and close
            # at the client's EOF, or abort after close_timeout (the
            # websockets library, too, ends its side after a denial and
            # discards until the client's end).
            try:
                transport.write_eof()
            except OSError:  # (reset meanwhile: nothing to wait for)
                transport.abort()
                return
            self._lingering = True
            transport.resume_reading()
            if not written:
                # Told (resume_writing()) once the answer has all gone from
                # the transport, when it is no load (see below): a client
                # that took it and keeps its socket open is not load till
                # close_timeout.
                transport.set_write_buffer_limits(high=0, low=0)
            if not self._request_coming:
                # (For what the client may pipeline as it reads: none, once
                # it has taken the answer, if it sent nothing meanwhile.)
                self._quiet_timer = self.loop.call_later(LINGER_LOOK, self._close_when_taken)
        else:
            transport.close()
        # With nothing left to write, a plain TCP transport is gone at the
        # next loop iteration; one that lingers waits for the client's end,
        # and TLS still exchanges close_notify, which a client answers only
        # when it reads (a pooled one, when it sends again): no load
        # meanwhile (limit_concurrency). One whose answer waits to go is
        # load (the answer held in memory) until it closes, or, lingering,
        # until the answer has gone (resume_writing(); over TLS, a look of
        # _close_when_quiet()).
        if written and (lingering or tls):
            self._count_answered()
        if lingering or tls or not written:
            self._arm_close_timer()

    def _count_answered(self) -> None:
        """Closed, its answer gone: no load for ``limit_concurrency`` while it
        waits for the client's end (see _close_now()); counted once."""
        if not self._closed_answered and not self.lost:
            self._closed_answered = True
            self.server.lingering += 1

    def _close_when_quiet(self) -> None:
        """Over TLS, lingering: close (its close_notify) once the client has
        sent nothing since the last look, LINGER_QUIET seconds ago. Its answer
        gone by then (unsent at the close), it is no load from then on."""
        self._quiet_timer = None
        if self.lost or self.transport.is_closing():
            return
        if not self._answer_unsent():
            self._count_answered()
        if self._linger_heard:
            self._linger_heard = False
            self._quiet_timer = self.loop.call_later(LINGER_QUIET, self._close_when_quiet)
            return
        self.transport.close()

    def _close_when_taken(self) -> None:
        """Lingering for requests the client may pipeline past the end (see
        _pipelined_past_the_end()): close once it has acknowledged all of the
        answer, our end too, having sent nothing past its request (RFC 9112
        9.6: all the linger is for). A client that reads it all and keeps its
        socket is then no load (``limit_concurrency``) and holds no file
        descriptor till close_timeout; one that sent on keeps its linger till
        it closes, or close_timeout. Looked at every LINGER_LOOK seconds;
        not where the kernel cannot tell what the client acknowledged."""
        self._quiet_timer = None
        transport = self.transport
        if self.lost or transport.is_closing() or self._linger_heard or self._held():
            return
        waiting = unsent_bytes(transport)
        if waiting is None:
            return
        if waiting or transport.get_write_buffer_size():
            self._quiet_timer = self.loop.call_later(LINGER_LOOK, self._close_when_taken)
            return
        if not unread_bytes(transport):  # (else what came is read next: the client sent on)
            transport.close()

    def _request_unread(self) -> bool:
        """Whether the client may still be sending the request being closed
        on: h11 reads its body, failed on what it read (a head's line, a
        chunk: more may follow), or holds a head refused as it came, before
        it was parsed (see _refuse_bad_head()); or the request asked to
        upgrade (denied: frames may follow it, sent without waiting for the
        101). Not a head that stopped coming (its 408), nor one cut off by
        the shutdown (its 503), nor pipelined requests waiting for a client
        that takes no answers (no answer ended: h11 waits for the next
        request): no more of those is on its way, and the shutdown would
        wait close_timeout for their clients."""
        state = self._h11.their_state
        return (
            state is h11.SEND_BODY
            or state is h11.ERROR
            or self._head_refused
            or (self._asks_upgrade and not self._idle)
        )

    def _pipelined_past_the_end(self, written: bool) -> bool:
        """Whether the client may pipeline past the request whose answer ends
        the connection (Connection: close, HTTP/1.0, the handler's): it sends
        on, not yet told, and the kernel would answer that with a reset that
        drops what of the answer it holds unsent (RFC 9112 9.6). So when h11
        holds bytes past the request, or the answer still goes out, from the
        transport's buffer (``written`` false) or the kernel's send queue:
        reading is paused for a client slow to take it, and what it
        pipelines as it does waits unread in the kernel."""
        h = self._h11
        return (
            h.their_state in _ANSWERED
            and h.our_state in _ANSWERED
            and (self._held() > 0 or not written or bool(_held_for_client(self.transport)))
        )

    def _arm_close_timer(self) -> None:
        self._close_taken = self._taken()
        self._close_timer = self.loop.call_later(self.config.close_timeout, self._on_close_timeout)

    def _answer_unsent(self) -> bool:
        """Whether what was written waits to go: in the transport's buffer, or,
        over TLS, where the kernel's queue tells that some waits (what the TLS
        layer passed on to the socket's transport under it is in neither buffer
        size). What the kernel holds back, where it tells: not what is on its
        way, which every answer is for a round trip."""
        transport = self.transport
        return bool(
            transport.get_write_buffer_size()
            or (self.server.ssl is not None and _held_for_client(transport))
        )

    def _on_close_timeout(self) -> None:
        """close_timeout since the close: abort. Unless the client took more of
        what it was sent meanwhile and some still waits for it (a large answer
        that ends the connection, taken at its pace): then it has close_timeout
        more, as often as it does. One that takes nothing for that long is
        aborted, and so is one that has taken it all (TLS: only its
        close_notify is waited for, which a client reading nothing more does
        not send)."""
        self._close_timer = None
        before = self._close_taken
        if before is not None and not self.lost:
            now = self._taken()
            if now[1] < 0 and _took_more(before, now):
                self._arm_close_timer()
                return
        protocol_logger.debug("%s: closing timed out; aborting", peer(self.client_address))
        self.abort()

    def abort(self) -> None:
        """Close at once: what the transport still holds for the client is dropped."""
        self._drop_unsent()
        self.transport.abort()

    def _drop_unsent(self) -> None:
        """The transport is about to drop what it holds: that is not sent.

        The response's bytes counted (:attr:`_sent`, the access line's) are
        those written to the transport; the last of them are what it holds
        (a client that took nothing for timeout_keep_alive, a shutdown: up to
        ``write_limit`` and a piece of a file, on the paths that write pieces:
        uvloop, TLS, a Unix socket, a stream)."""
        if not self._aborted and not self.lost:
            self._aborted = True
            held = self.transport.get_write_buffer_size()
            self._sent = max(0, self._sent - held)

    # --------------------------------------------------------------- timers

    def _arm_open_timer(self) -> None:
        deadlines = self.server.open_deadlines
        if deadlines is not None:
            deadlines.add(self)

    def _stop_open_timer(self) -> None:
        deadlines = self.server.open_deadlines
        if deadlines is not None:
            deadlines.discard(self)

    def _wait_idle(self) -> None:
        """A response is out and the connection kept alive: wait timeout_keep_alive for more."""
        self._stop_open_timer()
        self._idle = True
        self._unsent = self._taken() if self._answer_unsent() else None
        self.server.keep_alive_deadlines.add(self)
        if self._held() and not self._writing_paused:
            # The next request began already (kept while the handler ran):
            # it has open_timeout to arrive whole, as one begun now would.
            # (Writing paused, it waits for the client to take the answers
            # before it: the keep-alive rule holds until then, and
            # resume_writing() starts its open_timeout.)
            self._end_idle()

    def _end_idle(self) -> None:
        """The next request is coming: it has open_timeout to arrive whole (and
        an access line of its own if it never does)."""
        self._idle = False
        self.server.keep_alive_deadlines.discard(self)
        self._arm_open_timer()
        self.request = None
        self.status = self._sent = 0
        self._asks_upgrade = False
        self._logged = False
        self._request_started = self.loop.time()

    def on_keep_alive_timeout(self) -> None:
        """No new request within timeout_keep_alive: close.

        Unless the client is still taking its answers (a large one, or those
        before its pipelined requests, which wait for it: see _process()):
        then it is not idle, and the wait goes on as long as it takes some in
        each timeout_keep_alive. One that takes nothing for that long is closed.
        """
        if self._idle and not self._transport_closing:
            if self._unsent is not None:
                taken = self._taken()
                if _took_more(self._unsent, taken):
                    self._unsent = taken
                    self.server.keep_alive_deadlines.add(self)
                    return
            self.close_transport()

    def _taken(self) -> tuple[int, int]:
        """How much of our answers the client has taken, by two measures that
        grow as it takes: the bytes it acknowledged (the kernel's count; -1
        where unknown), and less what waits for it (the transport's buffer and
        the kernel's queue; with TLS, not always what the TLS layer handed its
        TCP transport, whence the first).
        """
        transport = self.transport
        moved = tcp_bytes_moved(transport)
        waiting = transport.get_write_buffer_size() + (unsent_bytes(transport) or 0)
        return (-1 if moved is None else moved[0], -waiting)

    def _warn_unanswered(self, outcome: str = "; its client left") -> None:
        logger.warning(
            "%s: the application did not answer the handshake for %s within open_timeout (%s s)%s",
            peer(self.client_address),
            printable(self.request.path if self.request is not None else "?"),
            self.config.open_timeout,
            outcome,
        )

    def on_open_timeout(self) -> None:
        """The request (or the next one on a kept-alive connection) took over open_timeout.

        For an ASGI application's request whose body is not all in (timed
        from the application's first ask for it): the connection closes if
        the application waits for the body (it hears ``http.disconnect``); if
        it is at work meanwhile, the wait starts over (reading goes on only
        within the bound of :meth:`data_received`, about ``max_header_size``
        bytes, so the client holds little of ours).
        """
        if self.lost:
            # The client left while an ASGI application decided its upgrade:
            # the application still has open_timeout, not for ever (it is not
            # cancelled when its client leaves, and one stuck would be held
            # and counted by limit_concurrency for good).
            task = self._asgi_task
            if task is not None and self._deciding_upgrade():
                self._warn_unanswered()
                task.cancel()
            return
        if self._reading_body and not self._transport_closing:
            if not self._read_waiters:
                self._arm_open_timer()
            else:
                self._body_timed_out()  # (the application hears http.disconnect)
            return
        if self.status != 101 and not self._transport_closing:
            task = self._app_task
            # (self.status may be an earlier request's, on a kept-alive connection.)
            unanswered = self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE)
            if task is not None and unanswered:
                # The request is in: the application (an on_connect hook, an
                # ASGI app) did not answer the handshake in time. The client
                # gets an answer all the same, and the operator a word.
                self._warn_unanswered(": 503")
                task.cancel()
                self.deny(
                    error_response(
                        503, "The application did not answer in time.", format=self._error_format()
                    )
                )
                return
            if task is None and self._h11.their_state is h11.SEND_BODY:
                self._body_timed_out()
                return
            if task is None and unanswered and self._head_begun_not_ended():
                # Part of a request's head came, and no more (RFC 9110 15.5.9).
                # (A connection that sent nothing is closed without a word.)
                self.http_error(408, "Request not complete within open_timeout.")
                return
            protocol_logger.debug(
                "%s: request not complete within open_timeout", peer(self.client_address)
            )
            if task is not None:
                task.cancel()
            self.close_transport()

    def _body_timed_out(self) -> None:
        """A request's body stopped coming for open_timeout: 408 (if nothing of
        the response was sent) and close."""
        if self._h11.our_state is h11.SEND_RESPONSE:
            self.http_error(408, "Request body not complete within open_timeout.")
        else:
            protocol_logger.debug(
                "%s: request body not complete within open_timeout", peer(self.client_address)
            )
            self.cut_short()  # (the response under way too: see cut_short())

    @property
    def busy(self) -> bool:
        """Whether a request waits for its answer, or this new connection has not sent one yet.

        Not a connection idle between requests, nor one whose response is
        already being sent (streamed): those need no more time to be answered.
        """
        if self.lost or self._transport_closing:
            return False
        h = self._h11
        if h.our_state is h11.SEND_RESPONSE:
            return True  # a request under way, not answered yet
        if h.our_state is h11.IDLE:
            if self._idle:  # (kept alive: a next request held while an answer goes out?)
                return self._next_request_held()
            # A new connection (nothing answered yet), or a request arriving.
            return not self.status or self._next_request_held() or h.their_state is not h11.IDLE
        return False

    def _next_request_held(self) -> bool:
        """Whether h11 holds a byte of a next request, unparsed: not empty
        lines alone, which RFC 9112 2.2 has a server ignore where a request
        line is due (old clients send one after a POST's body), and which
        wait there while an answer before them goes out (writing paused)."""
        held = self._h11._receive_buffer._data  # (h11 is pinned to 0.16)
        return bool(held) and bool(held.lstrip(b"\r\n"))

    def tasks(self) -> list[asyncio.Task[None]]:
        """The application's tasks at work on this connection (handler, hook, ASGI app)."""
        return [t for t in (self._app_task, self._asgi_task, self.http_task) if t is not None]

    def shutdown(self) -> None:
        """Server shutdown: answer 503 (an on_connect hook still running is cancelled).

        A connection with no request under way is closed without an answer.

        A Router HTTP handler, or an ASGI application, working on a request is
        let finish (the server gives it ``shutdown_timeout``; then it is
        cancelled, and its client gets the 503 if nothing of the response
        was written); the connection
        closes after its response (a WebSocket an ASGI application accepts
        meanwhile is closed with 1001).
        """
        if self.lost or self._transport_closing:
            return
        task = self._app_task
        at_work = task is not None and (task is self._asgi_task or task is self.http_task)
        if task is not None and at_work and not task.done():
            self._close_after_response = True
            return
        if self.body_coming:
            # An upload under way: its handler gets the shutdown's grace too
            # (an ASGI application's runs already); the server waits for the
            # body within it, and answers 503 if it has not come by then.
            self._close_after_response = True
            return
        if self.server.close_code == 1012 and self.busy:
            # A restart: this connection's request is served (its WebSocket,
            # if it upgrades, then gets the 1012), and it closes after.
            self._close_after_response = True
            return
        if self.idle:
            # Kept alive between requests: nobody waits for an answer. (A
            # restart keeps it a moment, for a request already on its way.)
            if self.server.draining:
                self._close_after_response = True
            else:
                self.close_transport()
            return
        if at_work:
            # Its task has just ended, its done callback still to come: that
            # settles the request (sends the handler's answer, or cuts short
            # the response the application began); a 503 would go over it.
            self._close_after_response = True
            return
        self._shutting_down()

    @property
    def body_coming(self) -> bool:
        """Whether a request's body is on its way to its Router HTTP handler,
        which runs once it is all in (not a ``stream=True`` route's)."""
        h = self._h11
        return (
            self._awaiting_body
            and self._body_buffer is not None
            and self._app_task is None
            and not (self.lost or self._transport_closing or self._lingering)
            and h.our_state is h11.SEND_RESPONSE
            and h.their_state is h11.SEND_BODY
        )

    def body_cut_off(self) -> None:
        """The shutdown's grace is over and the body has not all come: 503."""
        if self.body_coming:
            self._shutting_down()

    def restart_begun(self) -> None:
        """A restart (``close(code=1012)``) began: the request under way, or
        the next one on its way, is answered with ``Connection: close``, and
        the connection closes after it (no more of its requests are taken)."""
        if not (self.lost or self._transport_closing):
            self._close_after_response = True

    @property
    def idle(self) -> bool:
        """Whether the connection is open between requests: nothing of a
        request arrived, none being answered, nor any application at work
        (one whose task has just ended, its callback still to come, is not)."""
        task = self._app_task
        if self.lost or self._transport_closing or (task is not None and not task.done()):
            return False
        h = self._h11
        return h.their_state is h11.IDLE and not self._next_request_held()

    def answer_cut_off(self, task: asyncio.Task[Any]) -> bool:
        """Answer 503 if the shutdown cancelled ``task`` (past ``shutdown_timeout``)
        before anything of its response was written; whether it did.

        Whatever the task made of its cancellation: ended by it, or caught it
        and returned (nothing), failed, or went on (the server's shutdown asks
        this of those, before it cuts the connections). Not one the application
        cancelled itself meanwhile: its mistakes are its own (a 500).
        """
        if (
            task not in self.server.cut_off
            or self.closing
            or self._h11.our_state is not h11.SEND_RESPONSE
        ):
            return False
        self._shutting_down()
        return True

    def _cancelled_unanswered(self, what: str) -> bool:
        """A request's task that ended cancelled, not by the shutdown (by the
        application itself, say): a 500 for its client, if still there and
        nothing of the response was written; whether it was sent. (Cut short
        midway, the response's writer closes the connection.)"""
        if self.lost or self.closing or self._h11.our_state is not h11.SEND_RESPONSE:
            return False
        logger.error(
            "%s was cancelled before it answered %s from %s (not by the server): 500",
            what,
            printable(self.request.path) if self.request else "-",
            peer(self.client_address),
            extra=self._error_fields(),
        )
        self.server.app_failed(f"{what} was cancelled before it answered", None, self.transport)
        self._internal_error()
        return True

    def _error_fields(self) -> dict[str, object]:
        """The fields of an application's error line (see error_fields()) for
        the request at hand."""
        request = self.request
        if request is None:
            return error_fields(None, self.client_address)
        route = request.route.name if request.route else None
        return error_fields(request.target.partition("?")[0], self.client_address, route)

    def _error_format(self) -> ErrorFormat:
        """The error format of the request at hand: its route's, once routed."""
        route = self.request.route if self.request is not None else None
        format: ErrorFormat = "text" if route is None else route.error_format
        return format

    def _internal_error(self) -> None:
        """The 500 of the request at hand, in its route's error format."""
        self.http_error(500, "Internal Server Error", format=self._error_format())

    def _shutting_down(self) -> None:
        """The 503 of a request the shutdown leaves unanswered (in its route's error format)."""
        self.http_error(
            503, "Server is shutting down.", [("Retry-After", "1")], format=self._error_format()
        )


def _held_for_client(transport: asyncio.BaseTransport) -> int | None:
    """The bytes the kernel holds back for the client (see unsent_bytes_held()),
    or where it cannot tell, all it holds that the client did not acknowledge."""
    held = unsent_bytes_held(transport)
    return unsent_bytes(transport) if held is None else held


def _took_more(before: tuple[int, int], now: tuple[int, int]) -> bool:
    """Whether the client took more of our answers (see HttpProtocol._taken())."""
    return now[0] > before[0] or now[1] > before[1]


def _answer_to(exc: BadRequest | HandshakeError, route: Route) -> Response:
    """What a handler's raise of ``exc`` is answered with, in ``route``'s error
    format: a BadRequest's 400 and message; a HandshakeError's status, message
    and headers (an ``abort(404)``, as from an ``on_connect`` hook). A
    ``BadRequest()`` without a message says "Bad Request", as Sanic's."""
    if isinstance(exc, HandshakeError):
        return error_response(exc.status, exc.message, exc.headers, format=route.error_format)
    return error_response(400, str(exc) or None, format=route.error_format)
