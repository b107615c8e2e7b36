"""What the protocols must do about asyncio's transports themselves."""

from __future__ import annotations

import asyncio
import sys

__all__ = ["break_transport_cycle"]

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
