"""Keepalive against peers that are slow but alive, and peers that are gone (real sockets)."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import struct
import time

import pytest
import trustme
import websockets

from wsserver import Request, Router, WebSocket
from wsserver.protocol.frames import Opcode, parse_close, serialize_frame
from wsserver.server.websocket_protocol import WebSocketProtocol

from .conftest import StartServer
from .helpers import MASK, RawClient, upgrade_request, wait_for
from .tcp_proxy import Proxy


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server's context with a certificate for 127.0.0.1, and a client's that trusts it."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def echo_routes() -> Router:
    routes = Router()

    @routes.websocket("/")
    async def echo(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    return routes


async def test_a_slow_reader_that_keeps_reading_is_not_declared_dead(
    run_server: StartServer,
) -> None:
    # The client sends faster than it reads. The handler waits in send(), the
    # inbox fills, reading pauses: the client's pongs wait unread behind its
    # data, and its own reading (websockets pauses too) leaves our pings
    # unread for a while. It drains our writes all along: it is alive.
    # (The issue's reproduction, shortened: 200 x 256 KiB read at 20 a second,
    # --ping-interval 1 --ping-timeout 2.)
    interval, timeout = 0.5, 2.0
    server = await run_server(
        echo_routes(), ping_interval=interval, ping_timeout=timeout, max_queue=4, compression=None
    )
    size, count = 256 * 1024, 100
    async with websockets.connect(
        f"ws://127.0.0.1:{server.port}/", max_size=None, ping_interval=None, max_queue=4
    ) as client:

        async def send_all() -> None:
            for i in range(count):
                await client.send(bytes([i]) * size)

        sender = asyncio.create_task(send_all())
        received = []
        started = time.monotonic()
        for _ in range(count):
            received.append(await asyncio.wait_for(client.recv(), 10))
            await asyncio.sleep(0.05)  # reads at most 20 messages a second
        await sender
        assert time.monotonic() - started > interval + timeout  # a pong was late
    assert [m[0] for m in received] == list(range(count))
    assert all(len(m) == size for m in received)
    assert client.close_code == 1000


@pytest.mark.parametrize("tls", [False, True])
async def test_a_peer_waiting_on_a_handler_that_is_behind_is_not_declared_dead(
    run_server: StartServer, tls: bool
) -> None:
    # The handler is busy (3 ping_timeouts) while the client has sent more
    # than max_queue messages and waits. Reading is paused, the client's pongs
    # wait unread behind its messages, and nothing moves since it sent them
    # all: it was closed with 1011 "keepalive ping timeout", alive as it was
    # (its kernel acknowledged every ping).
    interval, timeout = 0.3, 0.4
    routes = Router()

    @routes.websocket("/")
    async def slow(request: Request, ws: WebSocket) -> None:
        await asyncio.sleep(interval + 3 * timeout)
        count = 0
        async for _ in ws:
            count += 1
            if count == 20:
                await ws.send(str(count))

    # (TLS: the pong waits in the TLS layer's buffer, which reads on: the
    # socket has nothing unread. It was closed with 1011 all the same.)
    server_tls, client_tls = tls_contexts() if tls else (None, None)
    server = await run_server(
        routes,
        ping_interval=interval,
        ping_timeout=timeout,
        max_queue=4,
        compression=None,
        ssl=server_tls,
    )
    async with websockets.connect(
        f"{'wss' if tls else 'ws'}://127.0.0.1:{server.port}/",
        ping_interval=None,
        compression=None,
        ssl=client_tls,
    ) as client:
        for _ in range(20):
            await client.send(b"x" * 1024)
        assert await asyncio.wait_for(client.recv(), 10) == "20"
    assert client.close_code == 1000
    assert server.counters.keepalive_timeouts == 0


@pytest.mark.parametrize("leaves", ["close", "reset"])
async def test_a_peer_that_left_while_the_handler_was_behind_is_dropped(
    run_server: StartServer, leaves: str
) -> None:
    # Its messages wait unread (reading paused: the inbox is full) and its
    # host had acknowledged our ping before it went: that excused the late
    # pong again and again, and the connection and its handler stayed forever.
    interval, timeout, close = 0.3, 0.4, 0.3
    routes = Router()

    @routes.websocket("/")
    async def never_reads(request: Request, ws: WebSocket) -> None:
        await asyncio.sleep(30)

    server = await run_server(
        routes,
        ping_interval=interval,
        ping_timeout=timeout,
        close_timeout=close,
        max_queue=4,
        compression=None,
    )
    client = await RawClient.connect(server.port, "/")
    frame = serialize_frame(Opcode.BINARY, b"x" * 1000, mask=MASK)
    for _ in range(20):  # a read each, until reading pauses; the rest waits unread
        client.writer.write(frame)
        await client.writer.drain()
        await asyncio.sleep(0.005)
    await asyncio.sleep(interval + 0.1)  # the first ping is out, and acknowledged
    if leaves == "reset":
        sock = client.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.writer.transport.abort() if leaves == "reset" else client.writer.close()
    started = time.monotonic()
    while server.connections and time.monotonic() - started < timeout + close + 3:
        await asyncio.sleep(0.05)
    assert not server.connections, "still open"
    assert server.counters.keepalive_timeouts == 1


async def test_a_peer_that_stops_reading_and_writing_is_dropped_in_time(
    run_server: StartServer,
) -> None:
    # Full buffers both ways: our reading is paused (the inbox is full) with
    # bytes waiting in the socket, our writes wait for a peer that never
    # reads. Nothing moves: it goes within ping_interval + ping_timeout +
    # close_timeout.
    interval, timeout, close = 0.3, 0.4, 0.3
    server = await run_server(
        echo_routes(),
        ping_interval=interval,
        ping_timeout=timeout,
        close_timeout=close,
        max_queue=2,
        compression=None,
    )
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, upgrade_request("/"))
    head = b""
    while b"\r\n\r\n" not in head:
        head += await asyncio.wait_for(loop.sock_recv(sock, 1), 5)
    assert head.startswith(b"HTTP/1.1 101 ")
    frame = serialize_frame(Opcode.BINARY, os.urandom(64 * 1024), mask=b"abcd")
    # Send while the server takes bytes (until its reading is paused and its
    # socket buffers are full); never read. Once nothing moves, the server
    # must give up within the bound: our sends then fail (it reset or closed).
    bound = interval + timeout + close
    last_progress = time.monotonic()
    gone = False
    while time.monotonic() < last_progress + bound + 4.0:
        try:
            if sock.send(frame):
                last_progress = time.monotonic()
        except BlockingIOError:
            pass
        except (ConnectionResetError, BrokenPipeError):
            gone = True
            break
        await asyncio.sleep(0.02)
    stalled_for = time.monotonic() - last_progress
    sock.close()
    assert gone, f"still connected {stalled_for:.1f} s after the last byte moved"
    assert stalled_for <= bound + 2.0, stalled_for  # (the timers' bound, on a busy machine)
    for _ in range(50):
        if not server.connections:
            break
        await asyncio.sleep(0.02)
    assert not server.connections


async def test_a_peer_sending_a_large_message_slowly_is_not_declared_dead(
    run_server: StartServer,
) -> None:
    # A client on a slow uplink sends one large message: a single frame that
    # takes longer than ping_interval + ping_timeout to arrive. Its pong to our
    # ping cannot come before that frame's end (no frame goes inside another),
    # yet its bytes arrive all along: it is alive. It got 1011 "keepalive ping
    # timeout" 0.4 s in, with its message still coming (aiohttp's server takes
    # any bytes received for a sign of life).
    interval, timeout = 0.2, 0.2
    routes = Router()

    @routes.websocket("/")
    async def size(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(str(len(message)))

    server = await run_server(
        routes, ping_interval=interval, ping_timeout=timeout, compression=None
    )
    size_sent = 300_000
    async with Proxy(server.port, client_rate=400_000) as proxy:  # ~0.75 s for the frame
        async with websockets.connect(
            f"ws://127.0.0.1:{proxy.port}/", ping_interval=None, compression=None
        ) as client:
            started = time.monotonic()
            await client.send(os.urandom(size_sent))
            assert await asyncio.wait_for(client.recv(), 5) == str(size_sent)
            assert time.monotonic() - started > interval + 2 * timeout  # pongs were late
        assert client.close_code == 1000
    assert server.counters.keepalive_timeouts == 0


async def test_a_peer_that_stops_in_the_middle_of_a_frame_is_dropped_in_time(
    run_server: StartServer,
) -> None:
    # Half a frame, then nothing: its pong cannot come before the frame's
    # end, but nothing of the frame comes either. It goes at the pong's deadline.
    interval, timeout = 0.2, 0.3
    server = await run_server(
        echo_routes(), ping_interval=interval, ping_timeout=timeout, compression=None
    )
    client = await RawClient.connect(server.port, "/")
    frame = serialize_frame(Opcode.BINARY, os.urandom(100_000), mask=MASK)
    client.send_raw(frame[:50_000])
    started = time.monotonic()
    while True:
        opcode, _, _, payload = await client.recv_frame(5)
        if opcode == Opcode.CLOSE:
            break
    assert parse_close(payload) == (1011, "keepalive ping timeout")
    assert time.monotonic() - started < interval + timeout + 1.0
    assert server.counters.keepalive_timeouts == 1
    client.writer.transport.abort()


@pytest.mark.parametrize("closed_first", [False, True])
async def test_what_comes_after_a_keepalive_timeout_stays_within_max_queue(
    run_server: StartServer, closed_first: bool
) -> None:
    # The inbox ended at the timeout (close 1011 sent, or the handler's own
    # close before it), and an ended inbox never paused nor dropped: a peer
    # sending on until close_timeout filled memory (1.1 GB in 3 s).
    routes = Router()
    held: list[WebSocket] = []
    pinged = asyncio.Event()

    @routes.websocket("/feed")
    async def feed(request: Request, ws: WebSocket) -> None:  # never reads
        held.append(ws)
        if closed_first:
            await pinged.wait()  # a ping is out, its pong due
            await ws.close(1000)
        await asyncio.sleep(30)

    server = await run_server(
        routes, max_queue=8, ping_interval=0.3, ping_timeout=0.3, close_timeout=5
    )
    client = await RawClient.connect(server.port, "/feed")
    while True:  # pings unanswered until the server closes
        opcode, _, _, payload = await client.recv_frame(5)
        if opcode == Opcode.PING:
            pinged.set()
        if opcode == Opcode.CLOSE:
            break
    assert parse_close(payload)[0] == (1000 if closed_first else 1011)
    await asyncio.sleep(0.5)  # past the pong's deadline in both cases
    frame = serialize_frame(Opcode.BINARY, b"x" * 1000, mask=MASK)
    for _ in range(40):
        client.writer.write(frame * 100)
        await client.writer.drain()
    await asyncio.sleep(0.2)
    (ws,) = held
    assert len(ws._inbox) <= 2 * 8, len(ws._inbox)
    client.writer.transport.abort()


async def test_a_pong_still_unread_when_reading_resumes_is_waited_for(
    run_server: StartServer,
) -> None:
    # The handler caught up (its inbox drained below the mark, reading
    # resumed) just before the pong's deadline: the pong still waited unread
    # in the socket, to be read at the loop's next turn, and the paused
    # inbox's excuses no longer counted: 1011 "keepalive ping timeout" to a
    # live client (seen in test_a_peer_waiting_on_a_handler_that_is_behind...
    # under load, where the handler wakes as the third deadline falls). The
    # deadlines are run by hand here, in that order.
    go = asyncio.Event()
    routes = Router()

    @routes.websocket("/")
    async def behind(request: Request, ws: WebSocket) -> None:
        await go.wait()
        await ws.send("caught up")
        async for _ in ws:
            pass

    server = await run_server(
        routes, ping_interval=60, ping_timeout=60, max_queue=4, compression=None
    )
    async with websockets.connect(
        f"ws://127.0.0.1:{server.port}/", ping_interval=None, compression=None
    ) as client:
        for _ in range(20):
            await client.send(b"x" * 1024)
        (protocol,) = server.connections
        assert isinstance(protocol, WebSocketProtocol)
        await wait_for(lambda: protocol.inbox.paused, what="reading paused")
        protocol.on_ping_due()
        await asyncio.sleep(0.2)  # (the client's pong waits unread)
        while protocol.inbox.paused:  # the handler catches up: reading resumes...
            protocol.inbox.get_nowait()
        protocol.on_pong_timeout()  # ...and the deadline falls before the read
        go.set()
        assert await asyncio.wait_for(client.recv(), 5) == "caught up"
        await wait_for(lambda: protocol not in (server.pong_deadlines or ()), what="the pong")
    assert client.close_code == 1000
    assert server.counters.keepalive_timeouts == 0


async def test_a_pong_read_as_its_deadline_falls_is_not_a_timeout(
    run_server: StartServer,
) -> None:
    # The pong is read in the same turn of the loop as its deadline falls
    # (the handler caught up, reading resumed, and the read came first): the
    # ping was answered, but the deadline was only taken off by the answer's
    # callback, a turn later, and the deadline closed with 1011 "keepalive
    # ping timeout" (seen in test_a_peer_waiting_on_a_handler_that_is_behind...
    # under load with uvloop). The read and the deadline are run by hand
    # here, in that order, with nothing between them.
    server = await run_server(echo_routes(), ping_interval=60, ping_timeout=60, compression=None)
    client = await RawClient.connect(server.port, "/")
    (protocol,) = server.connections
    assert isinstance(protocol, WebSocketProtocol)
    protocol.on_ping_due()
    opcode, _, _, payload = await client.recv_frame()
    assert opcode == Opcode.PING
    protocol.data_received(serialize_frame(Opcode.PONG, payload, mask=MASK))  # the read...
    protocol.on_pong_timeout()  # ...and the deadline, in the same turn
    await asyncio.sleep(0.2)
    assert server.counters.keepalive_timeouts == 0
    assert protocol.conn.close_sent is None
    assert protocol not in (server.pong_deadlines or ())
    assert protocol in (server.ping_deadlines or ())  # the next ping is due in ping_interval
    client.send(Opcode.TEXT, b"still here")
    assert await client.recv_frame() == (Opcode.TEXT, True, False, b"still here")
    client.close()


async def test_without_ping_timeout_pings_go_on_though_none_is_answered(
    run_server: StartServer,
) -> None:
    # ping_timeout=None waits for no pong, as the websockets library's: its
    # keepalive still pings every ping_interval (the traffic that keeps a
    # proxy's idle timer from closing the connection). One ping went, and
    # none after it until its pong came: a client that answers no ping (or
    # answers with another payload) was left silent, and cut by the proxy.
    routes = Router()

    @routes.websocket("/")
    async def handler(request: Request, ws: WebSocket) -> None:
        await ws.wait_closed()

    server = await run_server(routes, ping_interval=0.05, ping_timeout=None)
    client = await RawClient.connect(server.port)  # answers no ping
    payloads = set()
    for _ in range(4):
        opcode, _, _, payload = await client.recv_frame(10)
        assert opcode == Opcode.PING
        payloads.add(payload)
    assert len(payloads) == 4  # each a ping of its own
    # The pings given up on are not kept waiting for a pong that never comes.
    (ws,) = server.websockets
    assert len(ws._pings) <= 1
    client.send(Opcode.CLOSE, b"\x03\xe8")
    await client.expect_close(1000)
