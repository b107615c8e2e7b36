"""The WebSocket phase's protocol, observed at the transport boundary.

A recording transport stands in for the socket so the test can count the
writes (each one a syscall on a real socket); the protocol, the connection
and the handler are the real ones.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from wsserver import Request, Router, State, WebSocket, serve
from wsserver.app.response import Response, raw
from wsserver.errors import WebsocketClosed
from wsserver.protocol.frames import (
    FrameParser,
    Opcode,
    parse_close,
    serialize_close,
    serialize_frame,
)
from wsserver.server import websocket_protocol
from wsserver.server.http_protocol import HttpProtocol
from wsserver.server.websocket_protocol import WebSocketProtocol

from .helpers import MASK, RawClient, slow_reader, upgrade_request, wait_for


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False
        self.protocol: asyncio.BaseProtocol | None = None

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


def frames_in(data: bytes) -> list[tuple[int, bytes]]:
    parser = FrameParser(masked=False)
    parser.feed(data)
    out = []
    while (piece := parser.next_piece()) is not None:
        out.append((piece[0], piece[3]))
    return out


async def upgraded() -> tuple[Any, RecordingTransport, Any]:
    routes = Router()

    @routes.websocket("/")
    async def echo(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    server = serve(routes, "127.0.0.1", 0, ping_interval=None, compression=None)
    await server.start()
    http = server._make_protocol()
    transport = RecordingTransport()
    http.connection_made(transport)
    http.data_received(upgrade_request("/"))
    assert transport.writes[0].startswith(b"HTTP/1.1 101 ")
    # The HTTP phase handed the transport over to the WebSocket phase.
    protocol = transport.get_protocol()
    assert isinstance(protocol, WebSocketProtocol)
    transport.writes.clear()
    await asyncio.sleep(0)  # the handler starts and waits in recv()
    return server, transport, protocol


async def test_pipelined_echoes_leave_in_one_write() -> None:
    server, transport, protocol = await upgraded()
    try:
        messages = [f"message {i}".encode() for i in range(50)]
        protocol.data_received(
            b"".join(serialize_frame(Opcode.BINARY, m, mask=MASK) for m in messages)
        )
        for _ in range(3):
            await asyncio.sleep(0)
        assert len(transport.writes) == 1
        assert frames_in(transport.writes[0]) == [(Opcode.BINARY, m) for m in messages]
    finally:
        await server.close(timeout=0.1)


async def test_single_message_is_written_without_delay() -> None:
    server, transport, protocol = await upgraded()
    try:
        for i in range(3):
            protocol.data_received(serialize_frame(Opcode.TEXT, b"ping %d" % i, mask=MASK))
            await asyncio.sleep(0)  # one loop step: the handler runs once
            assert frames_in(b"".join(transport.writes)) == [
                (Opcode.TEXT, b"ping %d" % j) for j in range(i + 1)
            ]
        assert len(transport.writes) == 3
    finally:
        await server.close(timeout=0.1)


async def test_held_frames_never_exceed_write_limit() -> None:
    server, transport, protocol = await upgraded()
    try:
        big = b"x" * 40_000
        protocol.data_received(
            b"".join(serialize_frame(Opcode.BINARY, big, mask=MASK) for _ in range(10))
        )
        for _ in range(3):
            await asyncio.sleep(0)
        # 400 KB echoed: with write_limit 64 KiB held at most, several writes.
        assert len(transport.writes) >= 5
        assert all(len(w) < 65536 + 40_014 for w in transport.writes)
        assert frames_in(b"".join(transport.writes)) == [(Opcode.BINARY, big)] * 10
    finally:
        await server.close(timeout=0.1)


# ------------------------------------------------------- through real sockets


async def websocket_protocol_of(server: Any, ws: WebSocket) -> WebSocketProtocol:
    for _ in range(100):
        for p in server.connections:
            if isinstance(p, WebSocketProtocol) and p.websocket is ws:
                return p
        await asyncio.sleep(0.01)
    raise AssertionError("no WebSocketProtocol for this WebSocket")


async def test_reading_pauses_at_max_queue_and_resumes_at_a_quarter() -> None:
    routes = Router()
    handlers: asyncio.Queue[WebSocket] = asyncio.Queue()

    @routes.websocket("/")
    async def idle(request: Request, ws: WebSocket) -> None:
        await handlers.put(ws)
        await ws.wait_closed()

    server = serve(routes, "127.0.0.1", 0, ping_interval=None, max_queue=12)
    await server.start()
    try:
        client = await RawClient.connect(server.port)
        ws = await asyncio.wait_for(handlers.get(), 5)
        protocol = await websocket_protocol_of(server, ws)
        # 20 messages, one per read (each of the first 12 seen taken before
        # the next is sent): reading stops once 12 wait.
        for i in range(20):
            client.send(Opcode.TEXT, b"m%d" % i)
            await client.writer.drain()
            if i < 12:
                async with asyncio.timeout(5):
                    while len(protocol.inbox) <= i:
                        await asyncio.sleep(0.001)
        for _ in range(100):
            if len(protocol.inbox) >= 12:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert len(protocol.inbox) == 12
        assert not protocol.transport.is_reading()  # type: ignore[attr-defined]
        # Taken one by one (no loop iteration between two: nothing new is
        # read), reading resumes exactly when 3 (a quarter of 12) are left.
        received = []
        while len(protocol.inbox) > 3:
            assert not protocol.transport.is_reading(), len(protocol.inbox)  # type: ignore[attr-defined]
            received.append(await ws.recv())
        assert protocol.transport.is_reading()  # type: ignore[attr-defined]
        while len(received) < 20:
            received.append(await asyncio.wait_for(ws.recv(), 5))
        assert received == [f"m{i}" for i in range(20)]
        client.close()
    finally:
        await server.close(timeout=0.1)


async def test_bursts_beyond_max_queue_do_not_pause_a_handler_that_keeps_up() -> None:
    # A client pipelining bursts of 40 messages (one write each) to an echo
    # handler with max_queue=24: every read leaves 40 waiting (more than
    # max_queue, less than twice it, where reading pauses at once), and the
    # handler takes them all in its turn, so reading is never paused (a pause
    # and a resume are two system calls on asyncio). A handler that does not
    # keep up is still paused (the test above).
    routes = Router()

    @routes.websocket("/")
    async def echo(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    server = serve(routes, "127.0.0.1", 0, ping_interval=None, max_queue=24)
    await server.start()
    try:
        client = await RawClient.connect(server.port)
        for burst in range(5):
            sent = [b"b%d.%d" % (burst, i) for i in range(40)]
            client.send_raw(b"".join(serialize_frame(Opcode.TEXT, m, mask=MASK) for m in sent))
            await client.writer.drain()
            echoed = [(await client.recv_frame())[3] for _ in sent]
            assert echoed == sent
        assert server.stats()["backpressure"]["read_pauses"] == 0
        client.close()
    finally:
        await server.close(timeout=0.1)


async def test_send_waits_when_the_101_took_the_write_buffer_over_write_limit() -> None:
    # A client that does not read pipelines requests on a kept-alive
    # connection, then an upgrade: its answers wait in the transport, and the
    # 101 takes them over write_limit. The transport tells the protocol that
    # wrote it (the HTTP one) that writing is paused, and tells nobody again
    # until its buffer drains: the WebSocket's send() must wait all the same,
    # not buffer without bound for a client that takes nothing.
    limit = 2**20
    routes = Router()
    sent: list[int] = []
    outcome: list[BaseException] = []

    @routes.get("/sized")
    async def sized(request: Request) -> Response:
        return raw(b"x" * int(request.args.get("n", "0")))

    @routes.websocket("/ws")
    async def feed(request: Request, ws: WebSocket) -> None:
        try:
            for i in range(40):
                await ws.send(b"y" * 65536)
                sent.append(i)
        except WebsocketClosed as exc:
            outcome.append(exc)

    server = serve(routes, "127.0.0.1", 0, ping_interval=None, write_limit=limit)
    await server.start()
    loop = asyncio.get_running_loop()
    sock = await slow_reader(server.port, 65536)  # (no autotuning)
    try:
        await wait_for(lambda: server.connections, what="the connection")
        (connection,) = server.connections
        # The kernel's buffers made small, whatever the system's (no autotuning).
        connection.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 65536
        )

        async def buffered_after(request: bytes, before: int = 0) -> int:
            """What waits in the connection's transport once ``request`` is answered."""
            await loop.sock_sendall(sock, request)
            size = -1
            async with asyncio.timeout(10):
                while True:  # (until its answer is all there, the kernel's buffers full)
                    await asyncio.sleep(0.1)
                    (http,) = [p for p in server.connections if isinstance(p, HttpProtocol)]
                    now = http.transport.get_write_buffer_size()
                    if now == size and now > before:
                        break
                    size = now
            assert not http._writing_paused
            return size

        def get(n: int) -> bytes:
            return b"GET /sized?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % n

        # The kernel's buffers filled (the client reads nothing), the rest waits.
        first = await buffered_after(get(limit // 2))
        n = limit - first - limit // 8
        second = await buffered_after(get(n), first)
        head = second - first - n - len(str(n))  # (less its Content-Length's digits)
        gap = limit - 60 - second - head
        assert await buffered_after(get(gap - len(str(gap))), second) == limit - 60
        # The 101 takes it over write_limit.
        await loop.sock_sendall(sock, upgrade_request("/ws"))
        await asyncio.sleep(0.5)
        assert len(sent) <= 1, f"send() did not wait: {len(sent)} messages buffered"
        sock.close()  # (a reset: unread bytes)
        await wait_for(lambda: outcome, what="send() failing")
    finally:
        sock.close()
        await server.close(timeout=0.1)


async def test_open_is_false_once_the_peers_close_arrived(monkeypatch: pytest.MonkeyPatch) -> None:
    # A violation behind a message that waits leaves the connection FAILING,
    # still open; the peer's close frame then arrives: it is not open any
    # more (the peer is closing), though our close frame is not sent yet.
    routes = Router()
    handlers: asyncio.Queue[WebSocket] = asyncio.Queue()
    gate = asyncio.Event()
    seen: list[Any] = []

    @routes.websocket("/")
    async def late_reader(request: Request, ws: WebSocket) -> None:
        await handlers.put(ws)
        await gate.wait()
        seen.append((ws.open, ws.client_state, ws.server_state, ws.closed))
        seen.append(await ws.recv())
        try:
            await ws.recv()  # the violation, reached: 1002 now
        except WebsocketClosed as exc:
            seen.append(exc)
        await ws.wait_closed()

    # The failure waits behind "before" until the handler takes it, or for
    # FAIL_DELAY: longer here than any stall of a loaded machine.
    monkeypatch.setattr(websocket_protocol, "FAIL_DELAY", 30)
    server = serve(routes, "127.0.0.1", 0, ping_interval=None)
    await server.start()
    try:
        client = await RawClient.connect(server.port)
        ws = await asyncio.wait_for(handlers.get(), 5)
        client.send(Opcode.TEXT, b"before")
        await client.writer.drain()
        await asyncio.sleep(0.02)
        client.send(0x7, b"")  # an unknown opcode: 1002, due once "before" is taken
        await client.writer.drain()
        await asyncio.sleep(0.02)
        assert ws.open and (ws.client_state, ws.server_state) == (State.OPEN, State.OPEN)
        client.send(Opcode.CLOSE, serialize_close(1000))
        await client.writer.drain()
        await wait_for(lambda: ws.client_state is State.CLOSING)
        gate.set()  # the failure still waits behind "before"
        await client.expect_close(1002)
        assert seen[0] == (False, State.CLOSING, State.OPEN, False)
        assert seen[1] == "before"
        assert isinstance(seen[2], WebsocketClosed)
    finally:
        await server.close(timeout=0.1)


async def test_a_violation_waits_for_a_handler_that_reads_slowly() -> None:
    # FAIL_DELAY is for a handler that does not read: one that takes the
    # messages before the violation, slowly, gets them all (and answers them)
    # before the 1002, rather than its sends failing after 0.25 s.
    routes = Router()

    @routes.websocket("/")
    async def slow_echo(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            await asyncio.sleep(0.05)
            await ws.send(message)

    server = serve(routes, "127.0.0.1", 0, ping_interval=None)
    await server.start()
    try:
        client = await RawClient.connect(server.port)
        sent = [f"message {n}".encode() for n in range(12)]  # 0.6 s of echoes
        for payload in sent:
            client.send(Opcode.TEXT, payload)
        client.send_raw(serialize_frame(Opcode.TEXT, b"unmasked"))  # 1002
        await client.writer.drain()
        echoed = []
        while True:
            opcode, _, _, payload = await client.recv_frame(5)
            if opcode == Opcode.CLOSE:
                break
            echoed.append(payload)
        assert echoed == sent
        assert parse_close(payload)[0] == 1002
    finally:
        await server.close(timeout=0.1)


async def test_a_slow_handler_delays_a_violation_s_failure_at_most_close_timeout() -> None:
    # Taking one message every 0.2 s of 5,000 queued before a violation kept
    # the connection (and the peer's stream after the violation) for ~1,000 s.
    routes = Router()

    @routes.websocket("/")
    async def slow(request: Request, ws: WebSocket) -> None:
        async for _ in ws:
            await asyncio.sleep(0.2)

    server = serve(routes, "127.0.0.1", 0, ping_interval=None, close_timeout=1.0)
    await server.start()
    try:
        client = await RawClient.connect(server.port)
        empty = serialize_frame(Opcode.TEXT, b"", mask=MASK)
        # In one read: 5,000 messages, then a violation (an unmasked frame: 1002).
        client.send_raw(empty * 5000 + serialize_frame(Opcode.TEXT, b"unmasked"))
        await client.writer.drain()
        started = asyncio.get_running_loop().time()
        await client.expect_close(1002)
        assert asyncio.get_running_loop().time() - started < 3.0
    finally:
        await server.close(timeout=0.1)
