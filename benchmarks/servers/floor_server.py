"""The floor of (i): an asyncio server with no WebSocket library at all.

It answers the upgrade of ``/bcast`` with a bare minimum of parsing, and on a
``broadcast:<size>:<tag>;`` trigger builds the frame once and hands it to each
client's ``transport.write``: the work every asyncio server has to do for a
broadcast (one write, one ``send`` system call per client), and nothing else.
No server on asyncio can broadcast faster; the gap between a library's figure
and this one is all the library can still save. It serves only scenario (i):
no echo, no compression, no checks beyond what the load generator needs.

``python -m benchmarks.servers.floor_server --port P [--loop uvloop]``
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
from typing import cast

from benchmarks.servers.common import BACKLOG, HOST, broadcast_payload, parse_args, run

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Largest request head or client frame this server buffers.
LIMIT = 64 * 1024

SUBSCRIBERS: set[asyncio.Transport] = set()


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final text frame."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class FloorProtocol(asyncio.Protocol):
    """Handshake, then frames from the client: text triggers and close."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            SUBSCRIBERS.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > LIMIT:
            self.abort()
        elif not self.upgraded:
            self.handshake()
        else:
            self.frames()

    def abort(self) -> None:
        assert self.transport is not None
        self.transport.abort()

    def handshake(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head, self.buffer = self.buffer[:end].decode("latin-1"), self.buffer[end + 4 :]
        request_line, *lines = head.split("\r\n")
        key = None
        for line in lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip()
        assert self.transport is not None
        if key is None or request_line.split(" ")[1] != "/bcast":
            self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            self.transport.close()
            return
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        self.transport.write(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        self.upgraded = True
        SUBSCRIBERS.add(self.transport)
        self.frames()

    def frames(self) -> None:
        """Handle every whole frame in the buffer (the client's frames are masked)."""
        while len(self.buffer) >= 2:
            first, second = self.buffer[0], self.buffer[1]
            n, at = second & 0x7F, 2
            if n == 126:
                if len(self.buffer) < 4:
                    return
                (n,) = struct.unpack_from("!H", self.buffer, 2)
                at = 4
            elif n == 127:
                self.abort()  # no client frame here is that large
                return
            if len(self.buffer) < at + 4 + n:
                return
            mask = self.buffer[at : at + 4] * (n // 4 + 1)
            body = self.buffer[at + 4 : at + 4 + n]
            payload = (int.from_bytes(body, "big") ^ int.from_bytes(mask[:n], "big")).to_bytes(
                n, "big"
            )
            self.buffer = self.buffer[at + 4 + n :]
            self.frame(first & 0x0F, payload)

    def frame(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        if opcode == 0x1:
            message = broadcast_payload(payload.decode("utf-8"))
            if message is not None:
                frame = text_frame(message.encode("utf-8"))
                for transport in SUBSCRIBERS:
                    transport.write(frame)
        elif opcode == 0x8:
            # Echo the close frame and hang up.
            self.transport.write(bytes((0x88, len(payload))) + payload)
            SUBSCRIBERS.discard(self.transport)
            self.transport.close()


def main() -> None:
    args = parse_args(__doc__ or "")

    async def serve_forever() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(FloorProtocol, HOST, args.port, backlog=BACKLOG)
        async with server:
            await server.serve_forever()

    run(serve_forever, args.loop)


if __name__ == "__main__":
    main()
