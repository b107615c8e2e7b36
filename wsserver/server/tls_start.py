"""A TLS connection started by the server itself: the first protocol of each
connection to a TLS server that accepts in plain TCP and then calls
``loop.start_tls()``, rather than having the loop do TLS from the accept on.

Two kinds of server do:

- With ``proxy_protocol`` on (a load balancer that passes the client's TLS
  through, such as AWS's Network Load Balancer or HAProxy's ``mode tcp``,
  and names the client first), a PROXY protocol header comes before the
  client's ClientHello: :class:`TLSStart` reads the header, never a byte past
  it (it hands the transport buffers only as long as the header may still
  be), then starts TLS.
- Over asyncio's own loops: their TLS layer gives each connection a read
  buffer of 256 KiB as it is accepted, written whole (resident), and kept
  until the handshake ends, or fails at ``open_timeout``; so a thousand
  clients that connect and say nothing (a slow loris on the TLS port) held
  a quarter of a gigabyte. Started here, the connection reads into the
  buffer the server's connections share (see
  :func:`.transports.share_tls_read_buffer`) from its first byte: the one
  its TLS layer made is dropped before any read.

Once TLS is up, the TLS transport goes to the connection's
:class:`HttpProtocol` (with the client's address a header named). The
header and the handshake together have ``open_timeout``.
"""

from __future__ import annotations

import asyncio
import ssl
import types
from collections.abc import Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ..logs import logger, peer, protocol_logger
from ..protocol.proxy_protocol import (
    ProxyHeader,
    ProxyProtocolError,
    parse_proxy_header,
    safe_to_read,
)
from .transports import break_transport_cycle, peer_address, share_handshake_read_buffer

if TYPE_CHECKING:
    from .http_protocol import HttpProtocol
    from .server import Server

__all__ = ["TLSStart"]

T = TypeVar("T")


class TLSStart(asyncio.BufferedProtocol):
    """Read the PROXY protocol header (``proxy_header``), start TLS, hand the
    connection to ``protocol``.

    While it works, the server counts the connection as in its TLS handshake:
    its task is in ``Server._handshaking``, which shutdown cancels (that
    closes the connection) and a rolling restart lets finish.
    """

    __slots__ = (
        "server",
        "protocol",
        "transport",
        "_peer",
        "_received",
        "_header",
        "_buffer",
        "_task",
    )

    def __init__(self, server: Server, protocol: HttpProtocol, proxy_header: bool) -> None:
        self.server = server
        #: The connection's HTTP protocol, once TLS is up.
        self.protocol = protocol
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        #: The address of the peer (the balancer, with a header), read as the
        #: connection is made: a uvloop transport closed before anyone asked
        #: names none (its get_extra_info("peername") raises AttributeError).
        self._peer: tuple[str, int] | None = None
        #: The connection's bytes so far (the header's start).
        self._received = bytearray()
        #: The header, once it is whole; or why the connection has none. (Not
        #: an exception: its traceback's frames would refer to this protocol.)
        #: None: no header comes (TLS starts at once).
        self._header: asyncio.Future[ProxyHeader | str] | None = (
            server.loop.create_future() if proxy_header else None
        )
        self._buffer = bytearray()
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._peer = peer_address(transport)
        if self._header is None:
            # (Before the loop starts reading: the ClientHello is TLS's.)
            self.transport.pause_reading()
        self._task = task = self.server.loop.create_task(self._run())
        task.add_done_callback(self._done)
        self.server.tls_handshake_started(self.protocol, task)

    def get_buffer(self, sizehint: int) -> memoryview:
        wanted = safe_to_read(self._received)
        if len(self._buffer) < wanted:
            self._buffer = bytearray(wanted)
        return memoryview(self._buffer)[:wanted]

    def buffer_updated(self, nbytes: int) -> None:
        if self._header is None or self._header.done():
            return
        self._received += self._buffer[:nbytes]
        try:
            header = parse_proxy_header(self._received)
        except ProxyProtocolError as exc:
            self._header.set_result(str(exc))
            self.server.no_proxy_header(self._peer, str(exc))
            return
        if header is not None:
            assert header.length == len(self._received)  # (not a byte more was read)
            self.transport.pause_reading()  # (TLS reads on)
            self._header.set_result(header)

    def eof_received(self) -> bool:
        return False  # (closed: connection_lost() ends the wait)

    def connection_lost(self, exc: Exception | None) -> None:
        break_transport_cycle(self.transport)
        if self._header is not None and not self._header.done():
            self._header.set_result("the connection closed")

    async def _run(self) -> None:
        server = self.server
        held = _Held()
        tls: asyncio.Transport | None = None
        header: ProxyHeader | None = None  # (once read)
        try:
            async with asyncio.timeout(server.config.open_timeout):
                if self._header is not None:
                    read = await self._header
                    if isinstance(read, str):
                        return self._fail(read)
                    header = read
                starting = server.loop.start_tls(
                    self.transport,
                    held,
                    cast(ssl.SSLContext, server.ssl),
                    server_side=True,
                    ssl_handshake_timeout=server.config.open_timeout,
                )
                tls = await _first_step_then(starting, self._share_read_buffer)
        except asyncio.CancelledError:
            # (The server shuts down. Not raised on: the task would keep it,
            # its traceback, and so this protocol, for as long as the server
            # keeps the task.)
            return self._fail("the server is shutting down", header)
        except Exception as exc:
            # (A TLS handshake that failed, or took too long. asyncio's frames
            # in its traceback refer to it: a cycle that holds this protocol.)
            _drop_tracebacks(exc)
            if self._header is None:
                # (As the loop's own TLS would: a failure the context's
                # watch said, a timeout said here, the rest in silence.)
                if isinstance(exc, TimeoutError):
                    server.tls_handshake_overdue()
                return self._fail(None)
            if header is not None and isinstance(exc, TimeoutError):
                server.tls_handshake_timed_out()
            return self._fail(_reason(exc, header is not None), header)
        if tls is None:  # (typeshed allows it; asyncio's and uvloop's give one)
            return self._fail("start_tls() gave no transport", header)
        # TLS is up: the connection is the HTTP protocol's, the client the
        # header's, and what came meanwhile is its to read (one piece: it
        # may hand the connection on, to a WebSocket, on reading it).
        try:
            tls.set_protocol(self.protocol)
            protocol = self.protocol
            protocol.connection_made(tls)
            if header is not None:
                protocol.proxied(header, self._peer)
            if held.data and not (protocol.lost or protocol.closing):
                protocol.data_received(b"".join(held.data))
            if held.closed:
                protocol.connection_lost(held.error)
            elif held.eof:
                protocol.eof_received()  # (the TLS layer closes after it, whatever it says)
        except Exception:
            address = peer(self._peer)
            logger.exception("%s: handing the TLS connection over failed", address)
            tls.abort()

    def _share_read_buffer(self) -> None:
        share_handshake_read_buffer(self.transport, self.server.tls_read_buffer)

    def _fail(self, reason: str | None, header: ProxyHeader | None = None) -> None:
        """Close the connection, unanswered: one without a header, or not a TLS
        client's (a health check, a port scan) is no news but at DEBUG. Said of
        the client ``header`` (once read) names, if believed, as the
        connection's every later line is; else of the peer. (``reason`` None:
        said already, or not at all.)"""
        if reason is not None:
            address = self._peer
            if header is not None and header.source and self.server.believes_proxy_header(address):
                address = header.source
            protocol_logger.debug("%s: %s: closed", peer(address), reason)
        self.transport.abort()

    def _done(self, task: asyncio.Task[None]) -> None:
        # (Cancelled before it ran: closed all the same.)
        if task.cancelled():
            self.transport.abort()


class _Held(asyncio.Protocol):
    """The TLS connection's protocol between the handshake's end and the
    handover: what the client sent meanwhile is kept for HttpProtocol."""

    __slots__ = ("data", "eof", "closed", "error")

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.eof = False
        self.closed = False
        self.error: Exception | None = None

    def data_received(self, data: bytes) -> None:
        self.data.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        return False  # (TLS closes after an EOF: returning True would only be warned about)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc


@types.coroutine
def _first_step_then(
    coro: Coroutine[Any, Any, T], then: Callable[[], None]
) -> Generator[Any, Any, T]:
    """``await coro``, calling ``then()`` as soon as its first step is taken,
    before the loop runs anything else (what ``yield from`` does, with a call
    between its first step and the rest).

    ``loop.start_tls()``'s first step makes the connection's TLS layer and
    gives it the transport; its reads start a loop turn later. Between them,
    the layer's buffer is replaced by the shared one
    (:func:`.transports.share_handshake_read_buffer`): at once, not a turn
    later, or every connection the loop accepted together would have its
    256 KiB at the same moment (a hundred at a time: 25 MiB that the
    allocator may keep).
    """
    try:
        pending = coro.send(None)
    except StopIteration as done:
        then()
        return cast(T, done.value)
    then()
    while True:
        try:
            sent = yield pending
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # (a cancellation: start_tls() closes the connection)
            try:
                pending = coro.throw(exc)
            except StopIteration as done:
                return cast(T, done.value)
        else:
            try:
                pending = coro.send(sent)
            except StopIteration as done:
                return cast(T, done.value)


def _reason(exc: BaseException, header: bool) -> str:
    """Why the connection failed (``header``: after its PROXY header was read)."""
    if isinstance(exc, TimeoutError):
        if header:
            return "no TLS handshake within open_timeout"
        return "no PROXY protocol header and TLS handshake within open_timeout"
    return f"TLS: {exc}" if str(exc) else f"TLS: {type(exc).__name__}"


def _drop_tracebacks(exc: BaseException | None) -> None:
    """Let ``exc`` and the exceptions it chains go without their tracebacks."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__
