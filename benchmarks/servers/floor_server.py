"""The floor: an asyncio server with no WebSocket library at all.

What any server on asyncio has to do, and nothing else, for three scenarios:

- (i) broadcast, at ``/bcast``: on a ``broadcast:<size>:<tag>;`` trigger it
  builds the frame once and writes it to each client (one ``send`` system call
  per client).
- (b) small-message echo and (f) handshakes, at ``/``: every whole frame of a
  read is unmasked and written back, from the read callback itself (the
  default), or, with ``--tasks``, by a coroutine per connection that awaits a
  future per message, as a server whose handlers are coroutines must (the
  loop's wake-up of a task per message, nothing more).

It writes as wsserver does, straight to the socket while asyncio's transport
holds nothing (``os.write``; uvloop's transports write from C already). No
checks beyond what the load generator needs: no UTF-8 validation, no limits,
no fragmented messages, no frame over 64 KiB, a minimal parse of the upgrade
request. No server on the same event loop can go below it: a library's
distance from the floor is all it can still save.

``python -m benchmarks.servers.floor_server --port P [--loop uvloop] [--tasks]``
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import os
import struct
import sys
from typing import cast

from benchmarks.servers.common import BACKLOG, HOST, broadcast_payload, parse_args, run

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Largest request head or client frame this server buffers.
LIMIT = 64 * 1024
#: Every connection reads into this one buffer (a BufferedProtocol): a plain
#: Protocol gets a fresh 256 KiB bytes object per read, which the allocator
#: maps and unmaps each time.
READ_BUFFER = memoryview(bytearray(256 * 1024))
#: --tasks: a coroutine per connection answers the echo.
TASKS = False

SUBSCRIBERS: set[FloorProtocol] = set()


def frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked, final frame."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + payload


class FloorProtocol(asyncio.BufferedProtocol):
    """Handshake, then the client's frames: echo, broadcast triggers, ping, close."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.fd = -1
        self.buffer = b""
        self.upgraded = False
        self.echo = False
        self.queue: collections.deque[bytes] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if type(transport).__name__ == "_SelectorSocketTransport" and sys.platform != "win32":
            self.fd = transport.get_extra_info("socket").fileno()

    def connection_lost(self, exc: Exception | None) -> None:
        SUBSCRIBERS.discard(self)
        self.closed = True
        self.wake()

    def get_buffer(self, sizehint: int) -> memoryview:
        return READ_BUFFER

    def buffer_updated(self, nbytes: int) -> None:
        data = bytes(READ_BUFFER[:nbytes])
        self.buffer = self.buffer + data if self.buffer else data
        if len(self.buffer) > LIMIT:
            self.abort()
        elif not self.upgraded:
            self.handshake()
        else:
            self.frames()

    def write(self, data: bytes) -> None:
        """Write ``data``: to the socket directly while the transport holds nothing."""
        transport = self.transport
        assert transport is not None
        if self.fd >= 0 and not transport.get_write_buffer_size() and not transport.is_closing():
            try:
                sent = os.write(self.fd, data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # the transport meets the error again
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)

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
        path = request_line.split(" ")[1]
        assert self.transport is not None
        if key is None or path not in ("/", "/bcast"):
            self.transport.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            self.transport.close()
            return
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        self.write(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        self.upgraded = True
        if path == "/bcast":
            SUBSCRIBERS.add(self)
        else:
            self.echo = True
            if TASKS:
                asyncio.get_running_loop().create_task(self.echo_task())
        self.frames()

    def frames(self) -> None:
        """Handle every whole frame in the buffer (the client's frames are masked)."""
        buffer = self.buffer
        at = 0
        end = len(buffer)
        while end - at >= 6 and not self.closed:
            first, second = buffer[at], buffer[at + 1]
            n, start = second & 0x7F, at + 2
            if n == 126:
                if end - at < 8:
                    break
                (n,) = struct.unpack_from("!H", buffer, start)
                start += 2
            elif n == 127:
                self.abort()  # no client frame here is that large
                return
            if end < start + 4 + n:
                break
            mask = buffer[start : start + 4] * (n // 4 + 1)
            body = buffer[start + 4 : start + 4 + n]
            payload = (int.from_bytes(body, "big") ^ int.from_bytes(mask[:n], "big")).to_bytes(
                n, "big"
            )
            at = start + 4 + n
            self.frame(first & 0x0F, payload)
        self.buffer = buffer[at:] if at else buffer

    def frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x1 or opcode == 0x2:
            if self.echo:
                if TASKS:
                    self.queue.append(frame(opcode, payload))
                    self.wake()
                else:
                    self.write(frame(opcode, payload))
                return
            message = broadcast_payload(payload.decode("utf-8"))
            if message is not None:
                data = frame(0x1, message.encode("utf-8"))
                for peer in SUBSCRIBERS:
                    peer.write(data)
        elif opcode == 0x9:
            self.write(frame(0xA, payload))
        elif opcode == 0x8:
            # Echo the close frame (after the echoes a task has yet to write) and hang up.
            while self.queue:
                self.write(self.queue.popleft())
            self.write(frame(0x8, payload))
            SUBSCRIBERS.discard(self)
            self.closed = True
            self.wake()
            assert self.transport is not None
            self.transport.close()

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def echo_task(self) -> None:
        """--tasks: write each echo from this coroutine, woken once per message."""
        loop = asyncio.get_running_loop()
        queue = self.queue
        while True:
            while queue:
                self.write(queue.popleft())
            if self.closed:
                return
            self.waiter = loop.create_future()
            await self.waiter
            self.waiter = None


def main() -> None:
    global TASKS
    args = parse_args(__doc__ or "", {"--tasks": "answer the echo from a task per connection"})
    TASKS = args.tasks

    async def serve_forever() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(FloorProtocol, HOST, args.port, backlog=BACKLOG)
        async with server:
            await server.serve_forever()

    run(serve_forever, args.loop)


if __name__ == "__main__":
    main()
