"""TLS after a PROXY protocol header: the first protocol of each connection to a
TLS server with ``proxy_protocol`` on (a load balancer that passes the
client's TLS through, such as AWS's Network Load Balancer or HAProxy's
``mode tcp``, and names the client first).

The header comes before the client's TLS ClientHello, so the server listens
in plain TCP: :class:`ProxyHeaderThenTLS` reads the header, never a byte past
it (it hands the transport buffers only as long as the header may still be),
then starts TLS on the connection with ``loop.start_tls()``, and gives the
TLS transport to the connection's :class:`HttpProtocol`, with the client's
address the header named. The header and the handshake together have
``open_timeout``.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, cast

from ..logs import peer, protocol_logger
from ..protocol.proxy_protocol import (
    ProxyHeader,
    ProxyProtocolError,
    parse_proxy_header,
    safe_to_read,
)
from .transports import break_transport_cycle

if TYPE_CHECKING:
    from .http_protocol import HttpProtocol
    from .server import Server

__all__ = ["ProxyHeaderThenTLS"]


class ProxyHeaderThenTLS(asyncio.BufferedProtocol):
    """Read the PROXY protocol header, start TLS, hand the connection to ``protocol``.

    While it works, the server counts the connection as in its TLS handshake:
    its task is in ``Server._handshaking``, which shutdown cancels (that
    closes the connection) and a rolling restart lets finish.
    """

    __slots__ = ("server", "protocol", "transport", "_received", "_header", "_buffer", "_task")

    def __init__(self, server: Server, protocol: HttpProtocol) -> None:
        self.server = server
        #: The connection's HTTP protocol, once TLS is up.
        self.protocol = protocol
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        #: The connection's bytes so far (the header's start).
        self._received = bytearray()
        #: The header, once it is whole; an exception if the connection cannot have one.
        self._header: asyncio.Future[ProxyHeader] = server.loop.create_future()
        self._buffer = bytearray()
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._task = self.server.loop.create_task(self._run())
        self.server.tls_handshake_started(self.protocol, self._task)

    def get_buffer(self, sizehint: int) -> memoryview:
        wanted = safe_to_read(self._received)
        if len(self._buffer) < wanted:
            self._buffer = bytearray(wanted)
        return memoryview(self._buffer)[:wanted]

    def buffer_updated(self, nbytes: int) -> None:
        if self._header.done():
            return
        self._received += self._buffer[:nbytes]
        try:
            header = parse_proxy_header(self._received)
        except ProxyProtocolError as exc:
            self._header.set_exception(exc)
            return
        if header is not None:
            assert header.length == len(self._received)  # (not a byte more was read)
            self.transport.pause_reading()  # (TLS reads on)
            self._header.set_result(header)

    def eof_received(self) -> bool:
        return False  # (closed: connection_lost() ends the wait)

    def connection_lost(self, exc: Exception | None) -> None:
        break_transport_cycle(self.transport)
        if not self._header.done():
            self._header.set_exception(ConnectionError("the connection closed"))

    async def _run(self) -> None:
        server = self.server
        held = _Held()
        try:
            async with asyncio.timeout(server.config.open_timeout):
                header = await self._header
                tls = await server.loop.start_tls(
                    self.transport,
                    held,
                    cast(ssl.SSLContext, server.ssl),
                    server_side=True,
                    ssl_handshake_timeout=server.config.open_timeout,
                )
                if tls is None:  # (typeshed allows it; asyncio's and uvloop's give one)
                    raise ConnectionError("start_tls() gave no transport")
        except (Exception, asyncio.CancelledError) as exc:
            # (A connection without a header, or not a TLS client, is closed
            # unanswered: a proxy's health check and a port scan are no news.)
            address = peer(self.protocol.remote_address or _peer_of(self.transport))
            protocol_logger.debug("%s: %s: closed", address, _reason(exc))
            self.transport.abort()
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        # TLS is up: the connection is the HTTP protocol's, the client the header's.
        tls.set_protocol(self.protocol)
        protocol = self.protocol
        protocol.connection_made(tls)
        protocol.proxied(header, _peer_of(self.transport))
        for data in held.data:
            if protocol.lost or protocol.closing:
                break
            protocol.data_received(data)
        if held.closed:
            protocol.connection_lost(held.error)
        elif held.eof and not protocol.eof_received():
            tls.close()


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
        return True  # (HttpProtocol decides, at the handover)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.error = exc


def _peer_of(transport: asyncio.BaseTransport) -> tuple[str, int] | None:
    name = transport.get_extra_info("peername")
    if isinstance(name, tuple) and len(name) >= 2:
        return (str(name[0]), int(name[1]))
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no PROXY protocol header and TLS handshake within open_timeout"
    if isinstance(exc, asyncio.CancelledError):
        return "the server is shutting down"
    return str(exc) or type(exc).__name__
