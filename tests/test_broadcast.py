"""broadcast(): one frame for many connections, never waiting on a slow one."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from typing import Any

import pytest
import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from wsserver import Request, Router, WebSocket, broadcast
from wsserver.protocol.frames import Opcode, serialize_frame

from .conftest import StartServer
from .helpers import MASK, RawClient, slow_reader, wait_for


def hub() -> tuple[Router, set[WebSocket]]:
    routes = Router()
    connected: set[WebSocket] = set()

    @routes.websocket("/")
    async def member(request: Request, ws: WebSocket) -> None:
        connected.add(ws)
        try:
            await ws.wait_closed()
        finally:
            connected.discard(ws)

    return routes, connected


async def wait_for_members(connected: set[WebSocket], n: int) -> None:
    for _ in range(200):
        if len(connected) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"only {len(connected)} of {n} connected")


async def test_every_client_receives(run_server: StartServer) -> None:
    routes, connected = hub()
    server = await run_server(routes, compression=None)
    clients = [await websockets.connect(f"ws://127.0.0.1:{server.port}/") for _ in range(5)]
    try:
        await wait_for_members(connected, 5)
        assert broadcast(connected, "hello all") == []
        assert broadcast(server.websockets, b"\x00bytes") == []
        for client in clients:
            assert await client.recv() == "hello all"
            assert await client.recv() == b"\x00bytes"
    finally:
        for client in clients:
            await client.close()


async def test_what_send_takes_and_nothing_else(run_server: StartServer) -> None:
    # An int was sent as that many NUL bytes, a list as bytes of its items.
    routes, connected = hub()
    server = await run_server(routes, compression=None)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as client:
        await wait_for_members(connected, 1)
        (ws,) = connected
        for wrong in (123, None, 1.5, {"a"}):
            with pytest.raises(TypeError, match=f"cannot send {type(wrong).__name__}"):
                broadcast(connected, wrong)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=f"cannot send {type(wrong).__name__}"):
                ws.send_nowait(wrong)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=f"cannot send {type(wrong).__name__}"):
                await server.publish("news", wrong)  # type: ignore[arg-type]
        ws.subscribe("news")
        reused = bytearray(b"first")
        assert broadcast(connected, [1, 2]) == []
        assert broadcast(connected, reused) == []
        reused[:] = b"later"
        assert ws.send_nowait({"a": 1})
        assert ws.send_nowait(memoryview(b"view"))
        assert await server.publish("news", {"topic": "news"}) == 1
        assert await server.publish("news", bytearray(b"published")) == 1
        received = [await client.recv() for _ in range(6)]
        assert received == [
            "[1, 2]",
            b"first",
            '{"a": 1}',
            b"view",
            '{"topic": "news"}',
            b"published",
        ]


async def test_the_servers_protocols_are_refused_naming_its_websockets(
    run_server: StartServer,
) -> None:
    # broadcast(server.connections, message) is the websockets library's
    # idiom (its Server.connections are its connections): here they are the
    # server's protocols, and broadcast() failed on an AttributeError,
    # "'WebSocketProtocol' object has no attribute 'deflate'".
    routes, connected = hub()
    server = await run_server(routes, compression=None)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as client:
        await wait_for_members(connected, 1)
        with pytest.raises(TypeError, match=r"server\.websockets.*not WebSocketProtocol"):
            broadcast(server.connections, "to the protocols")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="not str"):
            broadcast(["a connection's name"], "to a name")  # type: ignore[list-item]
        assert broadcast(server.websockets, "to the websockets") == []
        assert await client.recv() == "to the websockets"


async def test_an_attribute_error_of_a_websockets_own_send_is_not_taken_for_no_websocket(
    run_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (Review R2 of 114b9a4.) broadcast() turns an AttributeError of its loop
    # into the TypeError for what is no WebSocket: one raised inside a
    # WebSocket's own send (a bug there) goes up as it is.
    routes, connected = hub()
    server = await run_server(routes, compression=None)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/"):
        await wait_for_members(connected, 1)

        def broken(self: WebSocket, frame: bytes, length: int | None) -> bool:
            raise AttributeError("inside send")

        monkeypatch.setattr(WebSocket, "send_frame_nowait", broken)
        with pytest.raises(AttributeError, match="inside send"):
            broadcast(server.websockets, "x")
        with pytest.raises(AttributeError, match="inside send"):
            broadcast(iter(list(server.websockets)), "x")


async def test_mixed_compression_parameters(run_server: StartServer) -> None:
    routes, connected = hub()
    server = await run_server(routes, compression="deflate", compression_min_size=0)
    uri = f"ws://127.0.0.1:{server.port}/"
    no_takeover = ClientPerMessageDeflateFactory(server_no_context_takeover=True)
    clients = [
        await websockets.connect(uri),  # deflate with context takeover
        await websockets.connect(uri, extensions=[no_takeover]),
        await websockets.connect(uri, extensions=[no_takeover]),
        await websockets.connect(uri, compression=None),
    ]
    try:
        await wait_for_members(connected, 4)
        messages = [json.dumps({"n": i, "text": "repeat " * 50}) for i in range(3)]
        for message in messages:
            assert broadcast(connected, message) == []
        for client in clients:
            assert [await client.recv() for _ in messages] == messages
    finally:
        for client in clients:
            await client.close()


async def test_compressed_once_for_no_context_takeover_group(run_server: StartServer) -> None:
    routes, connected = hub()
    server = await run_server(routes, compression="deflate", compression_min_size=0)
    headers = [("Sec-WebSocket-Extensions", "permessage-deflate; server_no_context_takeover")]
    raw = [await RawClient.connect(server.port, headers=headers) for _ in range(3)]
    await wait_for_members(connected, 3)
    broadcast(connected, "x" * 1000)
    frames = [await client.recv_frame() for client in raw]
    assert all(f[2] for f in frames)  # RSV1: compressed
    assert len({f[3] for f in frames}) == 1  # byte-identical payloads
    assert len(frames[0][3]) < 100


async def test_payload_counters_count_the_message_not_the_compressed_frame(
    run_server: StartServer,
) -> None:
    # The shared compressed frame's length was counted as the payload: 1,000
    # bytes of "x" counted as a dozen in payload_out, whose definition (and
    # the compression ratio's) is the bytes before compression.
    routes, connected = hub()
    server = await run_server(routes, compression="deflate", compression_min_size=0)
    uri = f"ws://127.0.0.1:{server.port}/"
    no_takeover = ClientPerMessageDeflateFactory(server_no_context_takeover=True)
    clients = [
        await websockets.connect(uri, extensions=[no_takeover]),  # the shared frame
        await websockets.connect(uri),  # its own compressor
        await websockets.connect(uri, compression=None),  # the plain frame
    ]
    try:
        await wait_for_members(connected, 3)
        before = server.stats()
        assert broadcast(connected, "x" * 13000) == []
        for client in clients:
            assert await client.recv() == "x" * 13000
        after = server.stats()
        (route,) = after["routes"]
        sent = after["routes"][route]["payload_out"] - before["routes"][route]["payload_out"]
        assert sent == 3 * 13000
        compressed = after["compression"]["payload_out"] - before["compression"]["payload_out"]
        assert compressed == 2 * 13000
    finally:
        for client in clients:
            await client.close()


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_skips_closed_fragmenting_and_slow(
    run_server: StartServer, compression: str | None
) -> None:
    # With "deflate", every client keeps its compression context, so each
    # gets a copy compressed for it alone: the policy must hold on that path too.
    routes, connected = hub()
    server = await run_server(
        routes, compression=compression, compression_min_size=0, write_limit=16384
    )
    uri = f"ws://127.0.0.1:{server.port}/"
    fast = await websockets.connect(uri)
    closing = await websockets.connect(uri)
    offer = [("Sec-WebSocket-Extensions", "permessage-deflate")] if compression else []
    slow = await RawClient.connect(server.port, headers=offer)  # never reads
    await wait_for_members(connected, 3)
    assert all((ws.deflate is not None) == (compression is not None) for ws in connected)
    assert not any(ws.deflate and ws.deflate.server_no_context_takeover for ws in connected)
    by_port = {ws.remote_address[1]: ws for ws in connected}  # type: ignore[index]
    slow_ws = by_port[slow.writer.get_extra_info("sockname")[1]]
    (slow_protocol,) = [p for p in server.connections if getattr(p, "websocket", None) is slow_ws]
    # Fill the slow client's kernel buffers and then our write buffer
    # (with random bytes, which compression does not shrink).
    for _ in range(200):
        broadcast([slow_ws], os.urandom(65536))
        await asyncio.sleep(0)
    assert slow_protocol.transport.get_write_buffer_size() > 16384
    closing_ws = by_port[closing.local_address[1]]
    await closing.close()
    await closing_ws.wait_closed()
    fast_ws = by_port[fast.local_address[1]]
    skipped = broadcast([fast_ws, closing_ws, slow_ws], "to everyone")
    assert set(skipped) == {closing_ws, slow_ws}
    assert await fast.recv() == "to everyone"

    # A connection in the middle of a fragmented message is skipped too.
    gate = asyncio.Event()

    async def fragments() -> Any:
        yield "part one, "
        await gate.wait()
        yield "part two"

    sending = asyncio.create_task(fast_ws.send(fragments()))
    await asyncio.sleep(0.05)
    assert broadcast([fast_ws], "not now") == [fast_ws]
    gate.set()
    await sending
    assert await fast.recv() == "part one, part two"
    assert broadcast([fast_ws], "now") == []
    assert await fast.recv() == "now"
    await fast.close()
    slow.close()


async def test_a_client_slower_than_its_room_gets_its_pong_and_its_replies(
    run_server: StartServer,
) -> None:
    # Once its write buffer was over write_limit, send() and the pongs wait
    # for it to drain to a quarter of that; broadcast() took the connection
    # again as soon as it was back at write_limit, so a room publishing
    # faster than the client reads kept it topped up: the client's pings got
    # no pong (its keepalive drops it) and its handler hung in send(), for as
    # long as the room was busy.
    routes = Router()
    replied = asyncio.Event()

    @routes.websocket("/")
    async def member(request: Request, ws: WebSocket) -> None:
        ws.subscribe("busy")
        async for message in ws:
            await ws.send(f"reply to {message}")
            replied.set()

    server = await run_server(routes, compression=None)
    sock = await slow_reader(server.port, receive_buffer=8192)
    uri = f"ws://127.0.0.1:{server.port}/"
    async with websockets.connect(
        uri, sock=sock, ping_interval=None, max_size=None, max_queue=None
    ) as client:
        await wait_for(lambda: server._websockets, what="the connection")
        (protocol,) = server._websockets
        # A send buffer as small as the client's window: no kernel buffer of
        # megabytes between the two, as over a slow link.
        protocol.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 8192
        )
        busy = True

        async def room() -> None:
            while busy:
                await server.publish("busy", bytes(65536))
                await asyncio.sleep(0)

        async def reads_on() -> None:
            while True:
                await client.recv()

        publishing = asyncio.create_task(room())
        reading = None
        try:
            await wait_for(lambda: protocol.writing_paused, what="a backed-up client")
            pong = await client.ping()
            await client.send("hello")
            reading = asyncio.create_task(reads_on())
            await asyncio.wait_for(pong, 1)
            await asyncio.wait_for(replied.wait(), 1)
        finally:
            busy = False
            await publishing
            if reading is not None:
                reading.cancel()
        assert server.pubsub.skipped > 0  # (still bounded: skipped while it drained)


async def test_keeps_order_with_frames_held_for_coalescing(run_server: StartServer) -> None:
    # Three messages arrive with the request, so while the handler works
    # through them its replies are held to leave in one write; a broadcast
    # frame must go out after them, not ahead.
    routes = Router()

    @routes.websocket("/")
    async def replier(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(f"reply {message}")
            assert broadcast([ws], f"after {message}") == []

    server = await run_server(routes, compression=None)
    early = b"".join(serialize_frame(Opcode.TEXT, m, mask=MASK) for m in (b"1", b"2", b"3"))
    client = await RawClient.connect(server.port, first_frames=early)
    received = [(await client.recv_frame())[3] for _ in range(6)]
    assert received == [b"reply 1", b"after 1", b"reply 2", b"after 2", b"reply 3", b"after 3"]
    client.send(Opcode.CLOSE, b"\x03\xe8")
    await client.expect_close(1000)


async def test_never_waits(run_server: StartServer) -> None:
    routes, connected = hub()
    server = await run_server(routes, compression=None)
    raw = [await RawClient.connect(server.port) for _ in range(20)]  # none of them read
    await wait_for_members(connected, 20)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(100):
        broadcast(connected, b"z" * 100_000)
    assert loop.time() - start < 2  # synchronous: no await anywhere
    opcode, _, _, payload = await raw[0].recv_frame()
    assert opcode == Opcode.BINARY and payload == b"z" * 100_000
    for client in raw:
        client.close()
