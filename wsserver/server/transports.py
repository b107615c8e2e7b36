"""What the protocols must do about asyncio's transports, and what they read off their sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import struct
import sys
from asyncio import selector_events, sslproto
from collections.abc import Sequence

try:
    import fcntl
    import termios
except ImportError:  # Windows
    _FIONREAD: int | None = None
    _TIOCOUTQ: int | None = None
else:
    _FIONREAD = termios.FIONREAD
    _TIOCOUTQ = getattr(termios, "TIOCOUTQ", None)

__all__ = [
    "TRANSPORT",
    "UNDER_TLS",
    "is_asyncio_tls",
    "under_tls_closing",
    "break_transport_cycle",
    "can_sendfile",
    "direct_fd",
    "peer_address",
    "peer_left",
    "reset",
    "share_handshake_read_buffer",
    "share_tls_read_buffer",
    "tcp_bytes_moved",
    "tcp_bytes_written",
    "unread_bytes",
    "unsent_bytes_held",
    "unsent_bytes",
    "write",
    "writelines",
]

#: Whether asyncio's socket transports reference themselves.
_TRANSPORT_CYCLE = sys.version_info < (3, 12)


def break_transport_cycle(transport: asyncio.BaseTransport) -> None:
    """Call from ``connection_lost``: let reference counting free the transport.

    asyncio before 3.12 keeps a bound method of a socket transport on the
    transport (python/cpython#100348, fixed in 3.12): this breaks that cycle as
    3.12 does, or every closed connection waits for the cyclic GC. The
    transport's reader is already removed then: the method is not called again.
    (The socket transport under a TLS one is out of reach by then: its own
    cycle, a few small objects, is left to the collector.)
    """
    if _TRANSPORT_CYCLE and getattr(transport, "_read_ready_cb", None) is not None:
        transport._read_ready_cb = None  # type: ignore[attr-defined]
    # Over TLS, the SSL protocol under the transport (asyncio's, uvloop's)
    # keeps the bound get_buffer() and buffer_updated() of the protocol over
    # it after its connection_lost(): a cycle through that protocol's
    # transport, holding the SSL protocol's 256 KiB buffer until a full
    # collection. Another protocol in its place takes them.
    if transport.get_extra_info("sslcontext") is not None:
        transport.set_protocol(_UNPLUGGED)


class _Unplugged(asyncio.BufferedProtocol):
    """What a closed TLS transport is left with (see :func:`break_transport_cycle`)."""

    def get_buffer(self, sizehint: int) -> bytearray:
        return bytearray(1)

    def buffer_updated(self, nbytes: int) -> None:
        pass


_UNPLUGGED = _Unplugged()


# ------------------------------------------------------------------ writing
#
# asyncio's selector transport (plain TCP and Unix sockets) spends about as long
# in its Python write() as the system call takes for a small frame, and before
# 3.12 its writelines() joins the chunks (a copy of a whole large payload behind
# its frame header). While the transport holds nothing unsent, nothing is lost by
# calling send()/writev() on its socket here, and what the kernel does not take
# is handed to the transport, which buffers it and goes on as usual (errors too:
# the transport meets them again and closes as it always does).

#: writev() takes at most this many chunks here; longer lists are joined.
_WRITEV_CHUNKS = 16
_BUSY = (BlockingIOError, InterruptedError)
#: asyncio's transport for plain sockets (private; typeshed does not declare it).
_SELECTOR_TRANSPORT: type = getattr(selector_events, "_SelectorSocketTransport", type(None))
#: asyncio's TLS transport (private too).
_TLS_TRANSPORT: type = getattr(sslproto, "_SSLProtocolTransport", type(None))
#: The state of asyncio's TLS protocol while it takes what is written: it
#: drops it in those that follow (no application writes before it).
_TLS_WRAPPED = sslproto.SSLProtocolState.WRAPPED

#: What :func:`direct_fd` gives for a transport to write with as it is
#: (uvloop's, and others: no socket of ours to write to) ...
TRANSPORT = -1
#: ... and for asyncio's TLS transport: written with too, while the socket's
#: transport under it is not closing (see :func:`write`).
UNDER_TLS = -2


def can_sendfile(transport: asyncio.BaseTransport) -> bool:
    """Whether ``loop.sendfile()`` sends on ``transport`` with the kernel's
    ``sendfile()`` (the file's bytes never pass through Python).

    asyncio's selector transport on POSIX: TLS transports would read the file
    into the loop's thread (a slow disk would hold every connection), and
    uvloop has no ``sendfile()``. And only over TCP where the kernel counts
    the bytes the peer acknowledged (:func:`tcp_bytes_moved`, Linux): the
    sign, while it sends, that a client takes what it is sent. (What it
    holds unsent says nothing then: the kernel refills it as the client
    takes from it. A Unix socket has no other count.)
    """
    return (
        type(transport) is _SELECTOR_TRANSPORT
        and hasattr(os, "sendfile")
        and not transport.is_closing()
        and tcp_bytes_moved(transport) is not None
    )


def is_asyncio_tls(transport: asyncio.BaseTransport) -> bool:
    """Whether ``transport`` is asyncio's TLS transport, with the socket's
    transport under it where :func:`under_tls_closing` looks."""
    return type(transport) is _TLS_TRANSPORT and hasattr(
        getattr(transport, "_ssl_protocol", None), "_transport"
    )


def direct_fd(transport: asyncio.BaseTransport) -> int:
    """The socket to write to directly (see :func:`write`), or :data:`TRANSPORT`
    (:data:`UNDER_TLS`) to use the transport.

    Only asyncio's own selector transport, on POSIX: TLS transports encrypt,
    and uvloop's transports already write from C.
    """
    if is_asyncio_tls(transport):
        return UNDER_TLS
    if type(transport) is not _SELECTOR_TRANSPORT or sys.platform == "win32":
        return TRANSPORT  # (Windows: a socket is no file descriptor for os.write)
    sock = transport.get_extra_info("socket")
    return TRANSPORT if sock is None else int(sock.fileno())


def write(transport: asyncio.WriteTransport, fd: int, data: bytes) -> None:
    """``transport.write(data)``, with one ``send`` on ``fd`` first when nothing waits.

    ``fd`` comes from :func:`direct_fd`. Nothing is written once the
    transport is closing: asyncio (uvloop too) would drop it, and log
    "socket.send() raised exception." for each write from the fifth on after
    the socket failed (a peer's reset: the protocol hears of it at the loop's
    next turn, and a handler sending from memory writes on until then). Over
    asyncio's TLS (:data:`UNDER_TLS`), nor once the socket's transport under
    it is closing: the TLS transport says so only a loop turn after that one
    (when told the connection is lost), and what is written through it
    meanwhile is dropped by that one, with the same warnings. The caller
    must not call this once ``connection_lost`` ran: the socket is closed
    then, and its number may be another connection's.
    """
    if transport.is_closing():
        return
    if fd >= 0 and not transport.get_write_buffer_size():
        try:
            sent = os.write(fd, data)
        except _BUSY:
            sent = 0
        except OSError:
            sent = 0  # the transport meets the error again and closes
        if sent == len(data):
            return
        if sent:
            data = memoryview(data)[sent:]  # type: ignore[assignment]
    elif fd == UNDER_TLS and under_tls_closing(transport):
        return
    transport.write(data)


def writelines(transport: asyncio.WriteTransport, fd: int, chunks: Sequence[bytes]) -> None:
    """``transport.writelines(chunks)``, with one ``writev`` on ``fd`` first (see :func:`write`)."""
    if transport.is_closing():
        return
    if fd < 0 or transport.get_write_buffer_size():
        if fd != UNDER_TLS or not under_tls_closing(transport):
            transport.writelines(chunks)
        return
    if len(chunks) > _WRITEV_CHUNKS:
        write(transport, fd, b"".join(chunks))
        return
    try:
        sent = os.writev(fd, chunks)
    except _BUSY:
        sent = 0
    except OSError:
        # An error the transport meets again, in one write (not one per chunk,
        # each of which it would warn about once the connection is lost).
        transport.writelines(chunks)
        return
    for chunk in chunks:
        size = len(chunk)
        if sent >= size:
            sent -= size
            continue
        transport.write(memoryview(chunk)[sent:] if sent else chunk)
        sent = 0


def share_tls_read_buffer(transport: asyncio.BaseTransport, buffer: memoryview) -> None:
    """Have asyncio's TLS ``transport`` read the socket into ``buffer`` (a
    bytearray's view), shared by every connection of the loop, rather than
    into one of its own.

    asyncio's TLS layer gives each connection a buffer of ``max_size`` (256
    KiB), written whole as it is made and kept for the connection's life: a
    TLS connection took 273 KiB of memory, against 5 KiB in plain TCP. It
    copies what a read put there out at once (into its TLS object's incoming
    buffer), before anything else runs, as the server's own reads are copied
    out of its one ``read_buffer``; so one buffer serves them all. Left as it
    is where the transport is not the one looked for (another Python's,
    uvloop's: its buffer is not made resident whole), or the socket's
    transport under it is not asyncio's selector transport, which reads into
    the buffer and hands it over in one go (another loop's, reusing asyncio's
    TLS layer, may hold it while it reads: two connections' bytes at once).
    """
    tls = getattr(transport, "_ssl_protocol", None)
    _share_read_buffer(tls, getattr(tls, "_transport", None), buffer)


def share_handshake_read_buffer(transport: asyncio.BaseTransport, buffer: memoryview) -> None:
    """:func:`share_tls_read_buffer`, from the TLS handshake's start: ``transport``
    is the socket's, to which ``loop.start_tls()`` just gave asyncio's TLS
    layer as its protocol (its first step, before it reads: call this right
    after that step, before the loop runs anything else, as
    :class:`.tls_start.TLSStart` does). The buffer the
    layer made is dropped at once: a connection in its handshake, a client
    silent for ``open_timeout`` as much as one that is slow, holds none.
    """
    _share_read_buffer(transport.get_protocol(), transport, buffer)


def _share_read_buffer(tls: object, under: object, buffer: memoryview) -> None:
    """Have ``tls`` (asyncio's TLS layer over ``under``) read into ``buffer``, if it
    is the one looked for (see :func:`share_tls_read_buffer`)."""
    if (
        type(tls) is not sslproto.SSLProtocol
        or type(under) is not _SELECTOR_TRANSPORT
        or not isinstance(getattr(tls, "_ssl_buffer", None), bytearray)
        or not hasattr(tls, "_ssl_buffer_view")
        or len(buffer) < tls.max_size
    ):
        return
    tls._ssl_buffer = buffer.obj  # type: ignore[attr-defined]
    tls._ssl_buffer_view = buffer


def under_tls_closing(transport: asyncio.BaseTransport) -> bool:
    """Whether the socket's transport under asyncio's TLS ``transport`` is
    closing (or gone), which ``transport.is_closing()`` tells a turn later
    (see :func:`is_asyncio_tls`): what is written through it then is dropped
    by that one, a warning each from the fifth write ("socket.send() raised
    exception."). Or whether the TLS layer itself takes no more writes: the
    peer ended TCP without a close_notify while the application's reading
    was paused, and asyncio keeps that EOF from it until it reads again,
    dropping every write meanwhile ("SSL connection is closed")."""
    tls = transport._ssl_protocol  # type: ignore[attr-defined]
    if tls._state is not _TLS_WRAPPED:
        return True
    under = tls._transport
    return under is None or bool(under.is_closing())


def unsent_bytes(transport: asyncio.BaseTransport) -> int | None:
    """How many bytes the kernel holds for the peer, not yet acknowledged (None: unknown).

    ``TIOCOUTQ`` (``SIOCOUTQ``) on the socket; the transport's own buffer
    comes on top of it.
    """
    return _ioctl_count(transport, _TIOCOUTQ)


#: Linux's ``SIOCOUTQNSD`` (not in termios): the send queue's bytes not sent yet.
_SIOCOUTQNSD = 0x894B if sys.platform == "linux" else None


def unsent_bytes_held(transport: asyncio.BaseTransport) -> int | None:
    """Of :func:`unsent_bytes`, those the kernel has not sent yet (None: unknown).

    ``SIOCOUTQNSD`` on a TCP socket (Linux): bytes held back, the peer's
    window shut (it reads nothing) or the network's not open to them yet;
    not those sent and not acknowledged yet, on their way (every write's,
    for a round trip).
    """
    return _ioctl_count(transport, _SIOCOUTQNSD)


def unread_bytes(transport: asyncio.BaseTransport) -> int | None:
    """How many received bytes wait unread, in the socket or the TLS layer (None: unknown).

    ``FIONREAD`` on the socket: what the kernel holds that asyncio has not
    read yet; for TLS, with the encrypted bytes its layer read on and holds
    (``get_read_buffer_size()``: it reads while the application is paused).
    Unknown where the platform has no ``FIONREAD`` (Windows) or the
    transport has no socket.
    """
    count = _ioctl_count(transport, _FIONREAD)
    buffered = getattr(transport, "get_read_buffer_size", None)
    if count is not None and buffered is not None:
        with contextlib.suppress(AttributeError, TypeError, ValueError):  # (it cannot tell)
            count += int(buffered())
    return count


#: poll()'s events for a peer that shut down its side (FIN), or a reset or error.
_LEFT = (
    getattr(select, "POLLRDHUP", 0) | getattr(select, "POLLHUP", 0) | getattr(select, "POLLERR", 0)
)


def peer_address(transport: asyncio.BaseTransport) -> tuple[str, int] | None:
    """The peer's ``(host, port)``; None when it has none (a Unix socket's)."""
    name = transport.get_extra_info("peername")
    if isinstance(name, tuple) and len(name) >= 2:
        return (str(name[0]), int(name[1]))
    return None


#: SO_LINGER's on, for no time: closing the socket resets the connection.
_LINGER_NONE = struct.pack("ii", 1, 0)


def reset(transport: asyncio.Transport) -> None:
    """Abort ``transport`` with a reset (RST), not a FIN, where its socket can
    (TCP): what it still holds is dropped, and the peer hears of an error
    rather than of an end."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_NONE)
    transport.abort()


def peer_left(transport: asyncio.BaseTransport) -> bool | None:
    """Whether the peer shut down its sending side or reset the connection, read or
    not (None: unknown).

    ``poll()`` with ``POLLRDHUP`` (Linux) on the socket: it tells even while
    asyncio is not reading, and so has not seen the end of the stream.
    """
    if not hasattr(select, "POLLRDHUP") or not hasattr(select, "poll"):
        return None
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    poller = select.poll()
    try:
        poller.register(sock.fileno(), select.POLLRDHUP)
        events = poller.poll(0)
    except (OSError, ValueError):
        return None
    return any(mask & _LEFT for _, mask in events)


def _ioctl_count(transport: asyncio.BaseTransport, request: int | None) -> int | None:
    if request is None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    try:
        answer = fcntl.ioctl(sock.fileno(), request, b"\0\0\0\0")
    except (OSError, ValueError):
        return None
    return int(struct.unpack("i", answer)[0])


#: Where Linux's ``struct tcp_info`` keeps ``tcpi_bytes_acked`` and, after
#: it, ``tcpi_bytes_received`` (two u64; Linux 4.1 and later).
_TCP_INFO_BYTES = struct.Struct("=QQ")
_TCP_INFO_OFFSET = 120
_TCP_INFO = getattr(socket, "TCP_INFO", None) if sys.platform == "linux" else None


def tcp_bytes_moved(transport: asyncio.BaseTransport) -> tuple[int, int] | None:
    """(bytes the peer acknowledged, bytes received from it) on a TCP transport, or None.

    Two counters that only grow, read from the kernel (Linux's ``TCP_INFO``):
    they move even while asyncio is not reading or cannot write. None where
    the platform does not tell (or the transport is not TCP).
    """
    if _TCP_INFO is None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 256)
    except OSError:
        return None
    if len(info) < _TCP_INFO_OFFSET + _TCP_INFO_BYTES.size:
        return None
    acked, received = _TCP_INFO_BYTES.unpack_from(info, _TCP_INFO_OFFSET)
    return int(acked), int(received)


def tcp_bytes_written(transport: asyncio.BaseTransport) -> int | None:
    """How many bytes were written to a TCP transport's socket, by whatever
    wrote them (the kernel's ``sendfile()`` too): those the peer acknowledged
    and those the kernel still holds for it (:func:`tcp_bytes_moved`,
    :func:`unsent_bytes`). A counter that only grows; None where unknown."""
    moved = tcp_bytes_moved(transport)
    held = unsent_bytes(transport)
    return None if moved is None or held is None else moved[0] + held
