"""Sending one message to many connections: framed (and compressed) once.

Policy: :func:`broadcast` never waits. A connection is skipped when it is not
open, when it is in the middle of sending a fragmented message, or when its
write buffer is already above ``write_limit`` (a slow client), or was and has
not drained to a quarter of it since (while ``send()`` waits, and the client's
pongs with it): the message is dropped for that client rather than buffered
without bound, and what waits for the drain does not wait as long as others
publish. The skipped connections are returned so the caller can close them or
retry.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..protocol.deflate import PerMessageDeflate
from ..protocol.frames import Opcode, serialize_frame
from .websocket import Message, WebSocket, whole_message

__all__ = ["broadcast"]


def broadcast(connections: Iterable[WebSocket], message: Message) -> list[WebSocket]:
    """Send ``message`` to every connection without waiting; return those skipped.

    The frame is built once for all connections without compression, and
    compressed once per group of connections whose permessage-deflate
    parameters reset the server's context after each message. Connections
    that keep their compression context get their own compressed copy.

    Args:
        connections: the WebSockets to send to (e.g. ``server.websockets``).
        message: str for a text message, bytes (bytearray, memoryview) for a
            binary one, a dict or list for JSON text.

    Returns:
        The connections that were skipped: closing or closed, busy sending a
        fragmented message, or with a write buffer over ``write_limit`` (or
        not yet drained to a quarter of it since it was).

    Raises:
        TypeError: ``message`` is none of those (an int is not that many NUL
            bytes), or a connection is no WebSocket (``server.connections``
            are the server's protocols: ``server.websockets`` are these).
    """
    message = whole_message(message)
    if isinstance(message, str):
        opcode, payload = Opcode.TEXT, message.encode("utf-8")
    else:
        opcode, payload = Opcode.BINARY, message
    plain: bytes | None = None
    compressed: dict[tuple[int, int, int], bytes] = {}
    skipped: list[WebSocket] = []
    ws: object = None
    try:
        for ws in connections:
            deflate = ws.deflate
            if deflate is None or not deflate.should_compress(len(payload), True):
                if plain is None:
                    plain = serialize_frame(opcode, payload)
                frame, length = plain, None
            elif deflate.server_no_context_takeover:
                settings = deflate.settings
                key = (deflate.server_window_bits, settings.level, settings.mem_level)
                shared = compressed.get(key)
                if shared is None:
                    shared = compressed[key] = serialize_frame(
                        opcode, _compress_once(payload, deflate), rsv1=True
                    )
                frame, length = shared, len(payload)  # (counted before compression)
            else:
                # Its compressor carries context from message to message.
                if not ws.send_nowait(message):
                    skipped.append(ws)
                continue
            if not ws.send_frame_nowait(frame, length):
                skipped.append(ws)
    except AttributeError:
        if ws is None or isinstance(ws, WebSocket):
            raise
        # (The websockets library's idiom, broadcast(server.connections, ...):
        # here those are the server's protocols.)
        raise TypeError(
            "broadcast() sends to WebSocket connections (server.websockets, or those"
            f" a handler was given), not {type(ws).__name__}"
        ) from None
    for ws in skipped:
        ws.server.counters.broadcast_skipped += 1
    return skipped


def _compress_once(payload: bytes, like: PerMessageDeflate) -> bytes:
    """Compress ``payload`` as a fresh-context message with ``like``'s parameters."""
    fresh = PerMessageDeflate(
        server_no_context_takeover=True,
        server_window_bits=like.server_window_bits,
        settings=like.settings,
    )
    fresh.start_deflate(len(payload))
    return fresh.deflate(payload, True)
