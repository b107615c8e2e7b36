"""What the protocols must do about asyncio's transports, and what they read off their sockets."""

from __future__ import annotations

import asyncio
import socket
import struct
import sys

try:
    import fcntl
    import termios
except ImportError:  # Windows
    _FIONREAD: int | None = None
    _TIOCOUTQ: int | None = None
else:
    _FIONREAD = termios.FIONREAD
    _TIOCOUTQ = getattr(termios, "TIOCOUTQ", None)

__all__ = ["break_transport_cycle", "tcp_bytes_moved", "unread_bytes", "unsent_bytes"]

#: Whether asyncio's socket transports reference themselves.
_TRANSPORT_CYCLE = sys.version_info < (3, 12)


def break_transport_cycle(transport: asyncio.BaseTransport) -> None:
    """Call from ``connection_lost``: let reference counting free the transport.

    asyncio before 3.12 keeps a bound method of a socket transport on the
    transport (python/cpython#100348, fixed in 3.12): this breaks that cycle as
    3.12 does, or every closed connection waits for the cyclic GC. The
    transport's reader is already removed then: the method is not called again.
    """
    if _TRANSPORT_CYCLE and getattr(transport, "_read_ready_cb", None) is not None:
        transport._read_ready_cb = None  # type: ignore[attr-defined]


def unsent_bytes(transport: asyncio.BaseTransport) -> int | None:
    """How many bytes the kernel holds for the peer, not yet acknowledged (None: unknown).

    ``TIOCOUTQ`` (``SIOCOUTQ``) on the socket; the transport's own buffer
    comes on top of it.
    """
    return _ioctl_count(transport, _TIOCOUTQ)


def unread_bytes(transport: asyncio.BaseTransport) -> int | None:
    """How many received bytes wait in the transport's socket, unread (None: unknown).

    ``FIONREAD`` on the socket: what the kernel holds that asyncio has not
    read yet (for TLS, encrypted bytes). Unknown where the platform has no
    ``FIONREAD`` (Windows) or the transport has no socket.
    """
    return _ioctl_count(transport, _FIONREAD)


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
