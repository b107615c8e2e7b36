"""Flow control, limits, shutdown and leaks, through real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import tracemalloc
import zlib
from asyncio.selector_events import _SelectorSocketTransport
from typing import Any

import pytest
import websockets

from wsserver import ConnectionClosedOK, Request, Router, WebSocket
from wsserver.app.response import StreamingResponse, text
from wsserver.asgi.http import HttpCycle
from wsserver.asgi.websocket import WebSocketSession
from wsserver.protocol.connection import Connection
from wsserver.protocol.frames import Opcode, serialize_close, serialize_frame
from wsserver.server.http_protocol import HttpProtocol
from wsserver.server.inbox import Inbox
from wsserver.server.websocket_protocol import WebSocketProtocol

from .conftest import StartServer
from .helpers import MASK, RawClient, answer_once_released, echo_routes, wait_for


def queue_len(server: Any) -> int:
    inboxes = [p.inbox for p in server.connections if isinstance(p, WebSocketProtocol)]
    return max((len(inbox) for inbox in inboxes), default=0)


def gated_reader() -> tuple[Router, asyncio.Event, list[str | bytes]]:
    """A route at / whose handler reads nothing until ``gate`` is set, then
    every message, into ``received``."""
    gate = asyncio.Event()
    received: list[str | bytes] = []
    routes = Router()

    @routes.websocket("/")
    async def slow(request: Request, ws: WebSocket) -> None:
        await gate.wait()
        async for message in ws:
            received.append(message)

    return routes, gate, received


class TestReceiveBackpressure:
    async def test_flood_against_slow_reader_stays_bounded(self, run_server: StartServer) -> None:
        routes, gate, received = gated_reader()

        max_queue, size, count = 8, 10_000, 2000  # 20 MB offered, beyond any kernel buffers
        server = await run_server(routes, max_queue=max_queue, compression=None)
        client = await RawClient.connect(server.port)
        payloads = [bytes([i % 256]) * size for i in range(count)]
        for payload in payloads:
            client.send(Opcode.BINARY, payload)
        client.send(Opcode.PING, b"while paused")
        peak = 0
        for _ in range(40):
            await asyncio.sleep(0.01)
            peak = max(peak, queue_len(server))
        # One read can complete a few more messages than max_queue, no more.
        assert max_queue <= peak <= max_queue + 65536 // size + 1
        # The rest waits in the client's own buffer, which does not shrink:
        # the server stopped reading.
        backlog = client.writer.transport.get_write_buffer_size()
        await asyncio.sleep(0.2)
        assert client.writer.transport.get_write_buffer_size() == backlog
        assert backlog > count * size // 2
        gate.set()
        opcode, _, _, payload = await client.recv_frame(timeout=10)
        assert (opcode, payload) == (Opcode.PONG, b"while paused")
        for _ in range(500):
            if len(received) == count:
                break
            await asyncio.sleep(0.01)
        assert received == payloads

    async def test_well_compressed_messages_in_one_read_stay_bounded(
        self, run_server: StartServer
    ) -> None:
        # Each message is max_size bytes that compress a thousandfold: one read
        # of a few KiB used to put them all in the inbox at once (1 MiB messages:
        # some 250 MiB per 256 KiB read), beyond max_queue.
        routes, gate, received = gated_reader()

        max_queue, max_size, count = 4, 100_000, 300
        server = await run_server(
            routes, max_queue=max_queue, max_size=max_size, compression="deflate"
        )
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        frames = b""
        for _ in range(count):
            data = compressor.compress(b"a" * max_size) + compressor.flush(zlib.Z_SYNC_FLUSH)
            frames += serialize_frame(Opcode.TEXT, data[:-4], rsv1=True, mask=MASK)
        assert len(frames) < 64 * 1024  # one read
        client = await RawClient.connect(
            server.port,
            headers=[("Sec-WebSocket-Extensions", "permessage-deflate")],
            first_frames=frames + serialize_frame(Opcode.PING, b"after them", mask=MASK),
        )
        (protocol,) = [p for p in server.connections if isinstance(p, WebSocketProtocol)]
        peak = 0
        for _ in range(30):
            await asyncio.sleep(0.01)
            held = [m for m in protocol.inbox.messages if isinstance(m, str)]
            peak = max(peak, sum(map(len, held)))
        assert max_queue * max_size <= peak <= (2 * max_queue + 2) * max_size
        gate.set()
        opcode, _, _, payload = await client.recv_frame(timeout=10)
        assert (opcode, payload) == (Opcode.PONG, b"after them")
        assert len(received) == count and set(received) == {"a" * max_size}
        client.send(Opcode.TEXT, b"and then")  # reading goes on
        for _ in range(200):
            if len(received) > count:
                break
            await asyncio.sleep(0.01)
        assert received[count:] == ["and then"]

    @pytest.mark.parametrize("how", ["returns", "closes and waits"])
    async def test_closing_with_reading_paused_still_reads_the_close_reply(
        self, run_server: StartServer, how: str
    ) -> None:
        # Reading paused at max_queue, then the handler closes (or returns):
        # the client's close reply was never read, every such close waited
        # close_timeout, was aborted and counted as 1006.
        routes = Router()

        @routes.websocket("/")
        async def handler(request: Request, ws: WebSocket) -> None:
            await ws.recv()
            await asyncio.sleep(0.3)  # the client goes on sending: reading pauses
            if how == "closes and waits":
                await ws.close(4000)
                await asyncio.sleep(0.5)

        server = await run_server(routes, max_queue=4, close_timeout=5)
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            for n in range(50):
                await ws.send(f"m{n}" * 1000)
            started = asyncio.get_running_loop().time()
            await asyncio.wait_for(ws.wait_closed(), 10)
            took = asyncio.get_running_loop().time() - started
        assert ws.close_code == (1000 if how == "returns" else 4000)
        assert took < 2, took
        for _ in range(100):
            if server.stats()["close_codes"]["received"]:
                break
            await asyncio.sleep(0.01)
        assert server.stats()["close_codes"]["received"] == {ws.close_code: 1}


class TestSendBackpressure:
    async def test_non_reading_client_blocks_send(self, run_server: StartServer) -> None:
        sent = 0
        done = asyncio.Event()
        routes = Router()

        @routes.websocket("/")
        async def firehose(request: Request, ws: WebSocket) -> None:
            nonlocal sent
            for _ in range(400):
                await ws.send(b"z" * 65536)
                sent += 1
            done.set()

        write_limit = 65536
        server = await run_server(routes, compression=None, write_limit=write_limit)
        client = await RawClient.connect(server.port)
        await asyncio.sleep(0.3)
        stalled_at = sent
        await asyncio.sleep(0.2)
        assert sent == stalled_at  # send() is blocked
        assert sent < 400
        (protocol,) = server._websockets
        assert protocol.transport.get_write_buffer_size() <= write_limit + 65536 + 14
        # Now read everything: every send completes.
        total = 0
        while total < 400:
            opcode, _, _, payload = await client.recv_frame(timeout=10)
            assert opcode == Opcode.BINARY and len(payload) == 65536
            total += 1
        await asyncio.wait_for(done.wait(), 5)

    @pytest.mark.parametrize("control", ["ping", "pong"])
    async def test_non_reading_client_blocks_ping_and_pong(
        self, run_server: StartServer, control: str
    ) -> None:
        # await ws.ping() and await ws.pong() wrote their frame and went on,
        # whatever the client took: a heartbeat loop towards a client that
        # reads nothing filled the write buffer without bound (20 MB a
        # connection in 3 s), where send() waits above write_limit, as the
        # websockets library's ping() and pong() do.
        count = 200_000  # 25 MB of 127-byte frames, beyond any kernel buffers
        peak = 0
        done = asyncio.Event()
        outcome: asyncio.Queue[str] = asyncio.Queue()
        routes = Router()

        @routes.websocket("/")
        async def heartbeat(request: Request, ws: WebSocket) -> None:
            nonlocal peak
            transport = ws._protocol.transport
            try:
                for i in range(count):
                    payload = b"%0125d" % i
                    if control == "ping":
                        await ws.ping(payload)
                    else:
                        await ws.pong(payload)
                    peak = max(peak, transport.get_write_buffer_size())
                done.set()
            except Exception as exc:
                outcome.put_nowait(type(exc).__name__)
                raise

        write_limit = 65536
        server = await run_server(routes, compression=None, write_limit=write_limit)
        client = await RawClient.connect(server.port)
        (protocol,) = server._websockets
        await wait_for(lambda: done.is_set() or protocol.writing_paused)
        await asyncio.sleep(0)
        assert not done.is_set()  # it waits for the client to take what was written
        assert peak <= write_limit + 2 + 125, peak
        client.writer.transport.abort()
        assert await asyncio.wait_for(outcome.get(), 5) == "ConnectionClosedError"

    async def test_ping_cancelled_while_waiting_to_drain_gives_its_payload_up(
        self, run_server: StartServer
    ) -> None:
        # await ws.ping(payload) waits while the write buffer is above
        # write_limit: cancelled there (asyncio.wait_for(ws.ping(b"hb"), 1) in
        # a heartbeat), the caller never got the pong waiter, so nobody waits
        # for that pong; the next ping with that payload is not refused as
        # 'already waiting for its pong'.
        outcome: asyncio.Queue[str] = asyncio.Queue()
        routes = Router()

        @routes.websocket("/")
        async def heartbeat(request: Request, ws: WebSocket) -> None:
            try:
                while not ws._protocol.writing_paused:  # (the client reads none of it)
                    ws._protocol.transport.write(b"x" * 65536)
                for _ in range(2):
                    with pytest.raises(TimeoutError):
                        await asyncio.wait_for(ws.ping(b"hb"), 0.05)
                outcome.put_nowait("ok")
            except Exception as exc:
                outcome.put_nowait(repr(exc))
                raise

        server = await run_server(routes, compression=None, write_limit=65536)
        client = await RawClient.connect(server.port)
        try:
            assert await asyncio.wait_for(outcome.get(), 5) == "ok"
        finally:
            client.writer.transport.abort()

    async def test_ping_flood_from_a_non_reading_client_stays_bounded(
        self, run_server: StartServer
    ) -> None:
        # Every ping asks for a pong: a client that sends pings and reads
        # nothing made the server buffer every pong (300 MB for 300 MB of
        # pings). Above write_limit only the latest ping is answered, once the
        # client reads again (RFC 6455 5.5.3 allows it). The pongs one read's
        # pings ask for are written together: one read's worth over the limit.
        write_limit = 65536
        server = await run_server(echo_routes(), compression=None, write_limit=write_limit)
        client = await RawClient.connect(server.port)
        (protocol,) = server._websockets
        ping = serialize_frame(Opcode.PING, b"p" * 125, mask=MASK)
        peak = 0
        for _ in range(120):  # 120,000 pings: 15 MB of pongs, beyond the kernel's buffers
            client.send_raw(ping * 1000)
            await client.writer.drain()
            await asyncio.sleep(0)
            peak = max(peak, protocol.transport.get_write_buffer_size())
        client.send(Opcode.PING, b"the last one")
        client.send(Opcode.TEXT, b"and a message")
        await client.writer.drain()
        await asyncio.sleep(0.2)
        peak = max(peak, protocol.transport.get_write_buffer_size())
        assert peak <= write_limit + len(server.read_buffer), peak
        # Reading again: the pongs written, the echo, and the latest ping's pong
        # (the echo may come first: messages are not held, only pongs).
        pongs: list[bytes] = []
        texts: list[bytes] = []
        while not (texts and pongs and pongs[-1] == b"the last one"):
            opcode, _, _, payload = await client.recv_frame(timeout=10)
            (pongs if opcode == Opcode.PONG else texts).append(payload)
        assert texts == [b"and a message"]
        assert len(pongs) < 120_001

    async def test_blocked_send_raises_when_connection_dies(self, run_server: StartServer) -> None:
        outcome: asyncio.Queue[str] = asyncio.Queue()
        routes = Router()

        @routes.websocket("/")
        async def firehose(request: Request, ws: WebSocket) -> None:
            try:
                while True:
                    await ws.send(b"z" * 65536)
            except ConnectionClosedOK:
                outcome.put_nowait("ok?!")
            except Exception as exc:
                outcome.put_nowait(type(exc).__name__)

        server = await run_server(routes, compression=None)
        client = await RawClient.connect(server.port)
        await asyncio.sleep(0.2)
        client.writer.transport.abort()
        assert await asyncio.wait_for(outcome.get(), 5) == "ConnectionClosedError"


class TestSlowloris:
    async def test_stalled_handshakes_dropped_others_served(self, run_server: StartServer) -> None:
        routes = echo_routes()
        server = await run_server(routes, open_timeout=1.5)
        stalled = []
        for _ in range(50):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
            stalled.append((reader, writer))
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("served")
            assert await ws.recv() == "served"
        assert loop.time() - start < 1.5  # before the stalled ones' open_timeout
        for reader, writer in stalled:
            data = await asyncio.wait_for(reader.read(), 5)  # a 408, then closed
            assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), data
            writer.close()

    async def test_a_stalled_head_s_408_closes_at_once(self, run_server: StartServer) -> None:
        # A head that stopped coming is no request still being sent: its 408
        # is followed by the close, not by close_timeout of lingering (which
        # the refusal of a head as it comes, a 431 or a folding's 400, takes).
        server = await run_server(echo_routes(), open_timeout=0.5, close_timeout=5.0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
        data = await asyncio.wait_for(reader.read(), 5)
        assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), data
        await wait_for(lambda: not server.connections, 1.0, "the connection closed")
        assert server.lingering == 0
        writer.close()


class TestShutdown:
    async def test_messages_received_before_shutdown_are_delivered(
        self, run_server: StartServer
    ) -> None:
        got: asyncio.Queue[Any] = asyncio.Queue()
        gate = asyncio.Event()
        routes = Router()

        @routes.websocket("/")
        async def handler(request: Request, ws: WebSocket) -> None:
            await gate.wait()
            async for message in ws:
                got.put_nowait(message)
            got.put_nowait(ws.close_code)

        server = await run_server(routes)
        client = await RawClient.connect(server.port)
        client.send(Opcode.TEXT, b"one")
        client.send(Opcode.TEXT, b"two")
        await asyncio.sleep(0.05)
        closing = asyncio.create_task(server.close())
        reason = await client.expect_close(1001)
        assert reason == "server shutting down"
        gate.set()
        await asyncio.wait_for(closing, 5)
        assert [got.get_nowait() for _ in range(3)] == ["one", "two", 1001]

    async def test_grace_period_then_cancel(self, run_server: StartServer) -> None:
        cancelled = asyncio.Event()
        routes = Router()

        @routes.websocket("/")
        async def stubborn(request: Request, ws: WebSocket) -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        server = await run_server(routes, shutdown_timeout=0.2)
        client = await RawClient.connect(server.port)
        loop = asyncio.get_running_loop()
        start = loop.time()
        closing = asyncio.create_task(server.close())
        await client.expect_close(1001)
        await asyncio.wait_for(closing, 5)
        assert cancelled.is_set()
        assert loop.time() - start < 2

    @pytest.mark.parametrize("cancelled", ["ends", "returns_nothing", "goes_on"])
    async def test_a_request_cut_off_at_shutdown_timeout_gets_503(
        self, run_server: StartServer, cancelled: str
    ) -> None:
        # Its handler is cancelled past shutdown_timeout, and its client told
        # (503, Retry-After), whatever the handler makes of the cancellation:
        # one that catches it and returns nothing got a 500, one that goes on
        # a bare close (the connections are cut at the end of the shutdown).
        entered = asyncio.Event()
        done = asyncio.Event()
        routes = Router()

        @routes.get("/slow")
        async def slow(request: Request) -> Any:
            entered.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                if cancelled == "ends":
                    raise
            while cancelled == "goes_on" and not done.is_set():
                with contextlib.suppress(asyncio.CancelledError):  # (the mistake)
                    await asyncio.sleep(0.05)
            return None

        server = await run_server(routes, shutdown_timeout=0.3)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(entered.wait(), 5)
        await asyncio.wait_for(server.close(), 5)
        answer = await asyncio.wait_for(reader.read(), 5)
        done.set()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
        assert b"\r\nRetry-After: 1\r\n" in answer

    @pytest.mark.parametrize("shutting_down", [False, True])
    async def test_a_handler_that_cancels_itself_gets_its_client_a_500(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture, shutting_down: bool
    ) -> None:
        # Cancelled by the application, not by the shutdown (whose grace is
        # far from over): its client was left waiting on an open connection
        # (a hang), or, during a shutdown, told 503 as if the shutdown had cut
        # it. Nothing of the response was written: a 500, as for a failure.
        entered = asyncio.Event()
        go = asyncio.Event()
        routes = Router()

        @routes.get("/own")
        async def own(request: Request) -> Any:
            entered.set()
            await go.wait()
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(1)
            return text("not reached")

        server = await run_server(routes, shutdown_timeout=20)
        answer = await answer_once_released(
            server, "/own", entered, go, shutting_down=shutting_down
        )
        assert answer.startswith(b"HTTP/1.1 500 Internal Server Error\r\n"), answer
        assert server.counters.handler_errors == 1
        assert any("was cancelled before it answered" in r.getMessage() for r in caplog.records)

    async def test_a_streamed_response_whose_handler_is_cancelled_is_cut_short(
        self, run_server: StartServer
    ) -> None:
        # Part of its body was sent: the connection is closed (the client sees
        # the body end too soon), not left open mid-response.
        routes = Router()
        tasks: list[asyncio.Task[Any]] = []

        async def pieces() -> Any:
            task = asyncio.current_task()
            assert task is not None
            tasks.append(task)
            yield b"first piece"
            await asyncio.sleep(30)
            yield b"never"

        @routes.get("/stream")
        async def stream(request: Request) -> Any:
            return StreamingResponse(pieces())

        server = await run_server(routes)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        got = await asyncio.wait_for(reader.readuntil(b"first piece"), 5)
        assert got.startswith(b"HTTP/1.1 200 OK\r\n")
        tasks[0].cancel()
        rest = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert not rest.endswith(b"0\r\n\r\n"), rest  # (cut short: no last chunk)

    async def test_a_stream_whose_producer_s_close_is_cancelled_leaves_no_hung_connection(
        self, run_server: StartServer
    ) -> None:
        # (From a review.) Its whole body was sent; the producer's aclose(),
        # cancelled by the application's own doing, ended the handler: the
        # kept-alive connection was neither closed nor read again, and the
        # client's next request on it waited for ever.
        routes = Router()

        class Pieces:
            """One piece; closing it (after its end: aclose() is called all the
            same) cancels the task that closes it."""

            def __init__(self) -> None:
                self.left = [b"all of it"]

            def __aiter__(self) -> Pieces:
                return self

            async def __anext__(self) -> bytes:
                if not self.left:
                    raise StopAsyncIteration
                return self.left.pop()

            async def aclose(self) -> None:
                task = asyncio.current_task()
                assert task is not None
                task.cancel()
                await asyncio.sleep(1)

        @routes.get("/stream")
        async def stream(request: Request) -> Any:
            return StreamingResponse(Pieces())

        server = await run_server(routes)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        first = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
        assert first.startswith(b"HTTP/1.1 200 OK\r\n") and b"all of it" in first
        writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        rest = await asyncio.wait_for(reader.read(), 5)  # an answer and a close, or a close
        writer.close()
        assert rest == b"" or rest.startswith(b"HTTP/1.1 "), rest

    async def test_handshake_during_shutdown_gets_503(self, run_server: StartServer) -> None:
        from .helpers import upgrade_request

        routes = Router()

        @routes.websocket("/")
        async def handler(request: Request, ws: WebSocket) -> None:
            await asyncio.sleep(60)

        server = await run_server(routes, shutdown_timeout=0.3)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        request = upgrade_request("/")
        writer.write(request[:20])  # a handshake under way when the shutdown starts
        await wait_for(lambda: len(server.connections) == 1)
        await asyncio.sleep(0.05)  # (its start read)
        closing = asyncio.create_task(server.close())
        await asyncio.sleep(0.05)
        writer.write(request[20:])
        data = await asyncio.wait_for(reader.read(), 5)
        assert data.startswith(b"HTTP/1.1 503 ")
        await asyncio.wait_for(closing, 5)

    async def test_half_sent_heads_do_not_hold_the_shutdown(self, run_server: StartServer) -> None:
        # Connections that sent part of a head and no more (slowloris) get
        # their 503 and are closed: the shutdown took close_timeout more,
        # waiting for them as for clients still sending a body.
        server = await run_server(echo_routes(), close_timeout=5.0, shutdown_timeout=5.0)
        clients = []
        for _ in range(20):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
            clients.append((reader, writer))
        await wait_for(lambda: len(server.connections) == 20)
        await asyncio.sleep(0.1)  # (their bytes read)
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.wait_for(server.close(), 10)
        assert loop.time() - start < 2.0
        for reader, writer in clients:
            data = await asyncio.wait_for(reader.read(), 5)
            assert data.startswith(b"HTTP/1.1 503 "), data
            writer.close()

    async def test_idle_connections_are_closed_without_an_answer(
        self, run_server: StartServer
    ) -> None:
        # Kept alive after a response, or connected and silent: nobody waits for a
        # response, and one sent unasked could be taken for the answer to the next request.
        routes = Router()

        @routes.get("/")
        async def page(request: Request) -> Any:
            return text("hello")

        server = await run_server(routes)
        kept, kept_writer = await asyncio.open_connection("127.0.0.1", server.port)
        kept_writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(kept.readuntil(b"hello"), 5)).startswith(b"HTTP/1.1 200")
        silent, silent_writer = await asyncio.open_connection("127.0.0.1", server.port)
        await asyncio.sleep(0.05)
        await asyncio.wait_for(server.close(), 5)
        assert await asyncio.wait_for(kept.read(), 5) == b""
        assert await asyncio.wait_for(silent.read(), 5) == b""
        kept_writer.close()
        silent_writer.close()


def server_objects(server: Any, kinds: tuple[type, ...]) -> list[Any]:
    """The objects of ``kinds`` alive, and the server's asyncio socket transports."""
    return [
        o
        for o in gc.get_objects()
        if type(o) in kinds
        or (  # the server's side only: the test's clients have theirs
            type(o) is _SelectorSocketTransport and o.get_extra_info("sockname")[1] == server.port
        )
    ]


async def malformed_request(port: int) -> None:
    """Send a request h11 refuses (a header line without a colon); expect the 400."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n")
    assert (await reader.read()).startswith(b"HTTP/1.1 400 ")
    writer.close()


class TestNoLeaks:
    async def test_connect_close_cycles(self, run_server: StartServer) -> None:
        routes = echo_routes()
        server = await run_server(routes, ping_interval=5.0)
        loop = asyncio.get_running_loop()

        async def cycle(n: int) -> None:
            client = await RawClient.connect(server.port)
            client.send(Opcode.TEXT, b"x" * 100)
            await client.recv_frame()
            client.send(Opcode.CLOSE, serialize_close(1000))
            await client.expect_eof()
            client.close()

        async def cycles(n: int) -> None:
            for i in range(0, n, 20):
                await asyncio.gather(*(cycle(j) for j in range(i, i + 20)))
            for _ in range(100):
                if not server.connections:
                    break
                await asyncio.sleep(0.01)

        await cycles(200)  # warm up
        gc.collect()
        tasks_before = len(asyncio.all_tasks())
        # asyncio's list of pending timers (uvloop keeps its own, out of reach).
        scheduled = getattr(loop, "_scheduled", [])

        def live_timers() -> int:
            # asyncio drops cancelled handles from its heap lazily, in batches.
            return sum(not handle.cancelled() for handle in scheduled)

        timers_before = live_timers()
        tracemalloc.start()
        try:
            baseline = tracemalloc.get_traced_memory()[0]
            await cycles(1000)
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - baseline
        finally:
            tracemalloc.stop()
        assert not server.connections
        assert len(asyncio.all_tasks()) == tasks_before
        assert live_timers() <= timers_before
        assert grown < 300_000, f"memory grew by {grown} bytes over 1000 connections"

    async def test_connections_are_freed_without_the_garbage_collector(
        self, run_server: StartServer
    ) -> None:
        # A connection's objects hold no reference cycle once it is over, so
        # reference counting frees them at once: nothing is left for the
        # collector to find (which would cost time on busy servers), a
        # malformed request's included (h11's exception references itself),
        # and protocol violations' (the connection keeps the error).
        # asyncio's own socket transport too (before 3.12 it references
        # itself; the protocol breaks that cycle when the connection is lost).
        kinds = (HttpProtocol, WebSocketProtocol, Inbox, WebSocket, Request, Connection)
        handled: list[str] = []
        routes = Router()

        @routes.websocket("/echo")
        async def echo(request: Request, ws: WebSocket) -> None:
            handled.append("echo")
            async for message in ws:
                await ws.send(message)

        @routes.websocket("/bye")
        async def bye(request: Request, ws: WebSocket) -> None:
            handled.append("bye")
            await ws.send("bye")

        @routes.websocket("/wait")
        async def wait(request: Request, ws: WebSocket) -> None:
            handled.append("wait")
            await ws.wait_closed()
            await asyncio.sleep(0.01)  # the handler outlives the connection

        server = await run_server(routes, ping_interval=5.0)
        uri = f"ws://127.0.0.1:{server.port}"

        def leftovers() -> list[Any]:
            return server_objects(server, kinds)

        gc.collect()
        assert leftovers() == []
        gc.disable()
        try:
            for _ in range(5):
                async with websockets.connect(uri + "/echo") as client:
                    await client.send("x")
                    assert await client.recv() == "x"
                async with websockets.connect(uri + "/bye") as client:
                    assert await client.recv() == "bye"
                    await client.wait_closed()
                raw = await RawClient.connect(server.port, "/wait")
                raw.close()  # no closing handshake: the connection is lost
                await malformed_request(server.port)
                # A protocol violation (the connection keeps the error: 1002).
                raw = await RawClient.connect(server.port, "/echo")
                raw.send_raw(b"\x81\x02ab")  # unmasked
                await raw.expect_close(1002)
                raw.close()
                raw = await RawClient.connect(server.port, "/echo")
                raw.send(Opcode.TEXT, b"\xff")  # not UTF-8: raised from a UnicodeDecodeError
                await raw.expect_close(1007)
                raw.close()
            for _ in range(100):
                if not server.connections and len(handled) == 25 and not leftovers():
                    break
                await asyncio.sleep(0.01)
            assert len(handled) == 25 and not server.connections
            assert leftovers() == [], "objects left in reference cycles"
        finally:
            gc.enable()

    async def test_connections_whose_handler_failed_are_freed_without_the_garbage_collector(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        # A handler's task that ends in an exception keeps it, and its
        # traceback the frames that refer to the connection's objects: the
        # task must not be in a reference cycle itself (its context names
        # it, for close(): weakly). A handler that raised (a 500, a 1011),
        # one cancelled as its client left, one whose request.stream failed.
        kinds = (HttpProtocol, WebSocketProtocol, Inbox, WebSocket, Request, Connection)
        entered: list[str] = []
        routes = Router()

        @routes.get("/raise")
        async def fail(request: Request) -> Any:
            raise ValueError("the handler's own failure")

        @routes.get("/slow")
        async def slow(request: Request) -> Any:
            entered.append("slow")
            await asyncio.sleep(30)

        @routes.post("/upload", stream=True)
        async def upload(request: Request) -> Any:
            assert request.stream is not None
            entered.append("upload")
            return text(str(len(await request.stream.read())))

        @routes.websocket("/ws")
        async def ws_fail(request: Request, ws: WebSocket) -> None:
            await ws.recv()
            raise ValueError("the handler's own failure")

        server = await run_server(routes)
        # (Not logged: a record keeps the exception, and its traceback the frames.)
        caplog.set_level(logging.CRITICAL, logger="wsserver")
        gc.collect()
        assert server_objects(server, kinds) == []
        gc.disable()
        try:
            for _ in range(3):
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(b"GET /raise HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 500 ")
                writer.close()
                for request in (
                    b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc",
                ):
                    count = len(entered)
                    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                    writer.write(request)
                    await wait_for(lambda: len(entered) > count, what="the handler")  # noqa: B023
                    writer.close()  # the client leaves
                    await writer.wait_closed()
                client = await RawClient.connect(server.port, "/ws")
                client.send(Opcode.TEXT, b"x")
                await client.expect_close(1011)
                client.close()
            for _ in range(100):
                if not server.connections and not server_objects(server, kinds):
                    break
                await asyncio.sleep(0.01)
            assert not server.connections
            assert server_objects(server, kinds) == [], "objects left in reference cycles"
        finally:
            gc.enable()

    async def test_asgi_connections_are_freed_without_the_garbage_collector(
        self, run_asgi: StartServer
    ) -> None:
        # The same for an ASGI application: accepted, denied (403 and its own
        # HTTP response), lost, and plain HTTP requests. The scope's pub/sub
        # extension holds the session's subscribe(), so the session must not
        # hold the scope once the application has returned.
        kinds = (HttpProtocol, WebSocketProtocol, Inbox, WebSocket, Request, Connection)
        kinds += (WebSocketSession, HttpCycle)
        ran: list[str] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":
                return
            ran.append(scope["path"])
            if scope["type"] == "http":
                await receive()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"ok"})
                return
            await receive()  # websocket.connect
            if scope["path"] == "/deny":
                await send({"type": "websocket.close"})
                return
            if scope["path"] == "/respond":
                await send({"type": "websocket.http.response.start", "status": 401})
                await send({"type": "websocket.http.response.body", "body": b"no"})
                return
            await send({"type": "websocket.accept"})
            scope["extensions"]["wsserver.pubsub"]["subscribe"]("news")
            while True:
                event = await receive()
                if event["type"] == "websocket.disconnect":
                    return
                await send({"type": "websocket.send", "text": event["text"]})

        server = await run_asgi(app, ping_interval=5.0)
        uri = f"ws://127.0.0.1:{server.port}"
        gc.collect()
        assert server_objects(server, kinds) == []
        gc.disable()
        try:
            for _ in range(5):
                async with websockets.connect(uri + "/echo") as client:
                    await client.send("x")
                    assert await client.recv() == "x"
                for path, status in (("/deny", 403), ("/respond", 401)):
                    with pytest.raises(websockets.InvalidStatus) as denied:
                        await websockets.connect(uri + path)
                    assert denied.value.response.status_code == status
                raw = await RawClient.connect(server.port, "/lost")
                raw.close()  # no closing handshake: the connection is lost
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(b"GET /http HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert (await reader.read()).endswith(b"ok")
                writer.close()
                await malformed_request(server.port)
            for _ in range(100):
                if not server.connections and len(ran) == 25 and not server_objects(server, kinds):
                    break
                await asyncio.sleep(0.01)
            assert len(ran) == 25 and not server.connections
            assert server_objects(server, kinds) == [], "objects left in reference cycles"
        finally:
            gc.enable()
