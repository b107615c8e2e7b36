"""A Router HTTP handler's streamed response (``stream()``): pieces sent as they
are made, a slow reader holding the producer, a client leaving, a failing
producer, HEAD, keep-alive and shutdown, through real sockets and clients."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import ssl
import struct
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import h11
import httpx
import pytest
import trustme

from wsserver import Request, Router
from wsserver.response import Response, StreamingResponse, stream, text
from wsserver.testing import HandshakeDenied, TestClient

from .conftest import StartServer
from .helpers import (
    body_of_answer,
    client_context,
    fast_reader,
    get_blocking,
    get_when_told,
    slow_reader,
    wait_for,
)


class Producer:
    """What a route's producer did: pieces made, whether its ``finally`` ran."""

    def __init__(self) -> None:
        self.made = 0
        self.started = False
        self.finished = asyncio.Event()
        self.go_on = asyncio.Event()
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.closed_in: list[str] = []


class Closable:
    """A body with a close() of its own (a file's wrapper), its pieces a generator's."""

    def __init__(self, producer: Producer, fail: bool) -> None:
        self.producer = producer
        self.fail = fail

    def __iter__(self) -> Iterator[bytes]:
        yield b"one"
        yield b"two"

    def close(self) -> None:
        self.producer.closed_in.append(threading.current_thread().name)
        if self.fail:
            raise OSError("the file would not close")


class AsyncClosable:
    """An async body with a close() of its own and no aclose(): an aiofiles
    file's (its close() a coroutine), or a wrapper's (a plain close())."""

    def __init__(self, producer: Producer, awaited: bool) -> None:
        self.producer = producer
        self.awaited = awaited

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"one"
        yield b"two"

    def close(self) -> Any:
        if not self.awaited:
            self.producer.closed_in.append("plain close")
            return None

        async def closing() -> None:
            await asyncio.sleep(0)
            self.producer.closed_in.append("awaited close")

        return closing()


def app(producer: Producer) -> Router:
    routes = Router()

    @routes.get("/events")
    async def events(request: Request) -> StreamingResponse:
        async def pieces() -> AsyncIterator[str]:
            producer.started = True
            try:
                yield "data: one\n\n"
                await producer.go_on.wait()  # the client has the first piece by now
                yield "data: two\n\n"
            finally:
                producer.finished.set()

        return stream(pieces(), content_type="text/event-stream", headers={"X-A": "1"})

    @routes.get("/endless")
    async def endless(request: Request) -> StreamingResponse:
        size = int(request.args.get("size", "10"))
        pause = float(request.args.get("pause", "0"))

        async def pieces() -> AsyncIterator[bytes]:
            producer.started = True
            try:
                while True:
                    producer.made += size
                    yield b"x" * size
                    await asyncio.sleep(pause)
            finally:
                producer.finished.set()

        return stream(pieces())

    @routes.get("/mixed")
    async def mixed(request: Request) -> StreamingResponse:
        return stream(["é", b"b", bytearray(b"c"), memoryview(b"d"), ""], headers={})

    @routes.get("/threaded")
    async def threaded(request: Request) -> StreamingResponse:
        def pieces() -> Iterator[str]:
            for _ in range(3):
                yield f"{threading.get_ident() != loop_thread};"

        loop_thread = threading.get_ident()
        return stream(pieces(), content_type="text/plain")

    @routes.get("/gated")
    async def gated(request: Request) -> StreamingResponse:
        def pieces() -> Iterator[str]:
            try:
                yield "first"
                producer.entered.set()
                producer.gate.wait(10)  # (in its thread, while the client leaves)
                yield "second"
            finally:
                producer.closed_in.append(threading.current_thread().name)

        return stream(pieces())

    @routes.get("/async-closable")
    async def async_closable(request: Request) -> StreamingResponse:
        return stream(AsyncClosable(producer, request.args.get("awaited") == "1"))

    @routes.get("/closable")
    async def closable(request: Request) -> StreamingResponse:
        return stream(Closable(producer, request.args.get("fail") == "1"))

    @routes.get("/sized")
    async def sized(request: Request) -> StreamingResponse:
        async def pieces() -> AsyncIterator[bytes]:
            yield b"abc"
            yield b"de"

        return stream(pieces(), headers={"Content-Length": "5"})

    @routes.get("/failing")
    async def failing(request: Request) -> StreamingResponse:
        async def pieces() -> AsyncIterator[bytes]:
            yield b"first"
            raise RuntimeError("the producer broke")

        return stream(pieces())

    @routes.get("/wrong-piece")
    async def wrong_piece(request: Request) -> StreamingResponse:
        return stream([b"ok", 5])  # type: ignore[list-item]

    @routes.get("/self-cancelled")
    async def self_cancelled(request: Request) -> StreamingResponse:
        async def pieces() -> AsyncIterator[bytes]:
            yield b"first"
            lookup: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            lookup.cancel()  # (by other code: a lookup it gave up, say)
            await lookup  # a CancelledError of its own, not its task's cancellation

        return stream(pieces())

    @routes.get("/plain")
    async def plain(request: Request) -> Response:
        return text("plain")

    return routes


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), 5)


def responses(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The complete responses in ``data`` (h11 reads them, chunked or not)."""
    h = h11.Connection(h11.CLIENT)
    # (h11 wants the requests they answer: GETs, kept alive.)
    found: list[tuple[int, dict[str, str], bytes]] = []
    h.receive_data(data)
    while True:
        h.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        h.send(h11.EndOfMessage())
        head: Any = None
        body = b""
        while True:
            event = h.next_event()
            if event is h11.NEED_DATA:
                return found
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                headers = {n.decode().lower(): v.decode() for n, v in head.headers}
                found.append((head.status_code, headers, body))
                break
        if h.our_state is not h11.DONE or h.their_state is not h11.DONE:
            return found
        h.start_next_cycle()


class TestStreaming:
    async def test_each_piece_goes_out_as_it_is_made(self, run_server: StartServer) -> None:
        # The second piece waits for the client to have had the first: a
        # server that held the body until its end would never send either.
        producer = Producer()
        server = await run_server(app(producer))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            async with client.stream("GET", "/events") as response:
                assert response.status_code == 200
                assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
                assert response.headers["transfer-encoding"] == "chunked"
                assert response.headers["x-a"] == "1"
                assert "content-length" not in response.headers
                received = b""
                async for piece in response.aiter_raw():
                    received += piece
                    if received == b"data: one\n\n":
                        producer.go_on.set()
                assert received == b"data: one\n\ndata: two\n\n"
            await asyncio.wait_for(producer.finished.wait(), 5)
            r = await client.get("/mixed")
            assert (r.status_code, r.content) == (200, "é".encode() + b"bcd")
            assert r.headers["content-type"] == "application/octet-stream"
            r = await client.get("/sized")
            assert (r.headers["content-length"], r.content) == ("5", b"abcde")
            assert "transfer-encoding" not in r.headers
            r = await client.get("/threaded")
            # A plain iterable's pieces are made in a thread: making one may block.
            assert r.text == "True;True;True;"

    async def test_the_connection_serves_pipelined_requests_after_it(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        producer = Producer()
        producer.go_on.set()
        server = await run_server(app(producer), access_log=True)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        with caplog.at_level(logging.INFO, logger="wsserver.access"):
            writer.write(
                b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /mixed HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            data = await read_until_closed(reader)
        writer.close()
        got = responses(data)
        assert [(status, body) for status, _, body in got] == [
            (200, b"data: one\n\ndata: two\n\n"),
            (200, "é".encode() + b"bcd"),
            (200, b"plain"),
        ]
        lines = [r.getMessage() for r in caplog.records if r.name == "wsserver.access"]
        assert [line.split()[1:4] for line in lines] == [
            ["GET", "/events", "200"],
            ["GET", "/mixed", "200"],
            ["GET", "/plain", "200"],
        ]

    async def test_head_gets_the_head_only_and_the_producer_never_runs(
        self, run_server: StartServer
    ) -> None:
        producer = Producer()
        server = await run_server(app(producer))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            r = await client.head("/events")
            assert (r.status_code, r.content) == (200, b"")
            assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
            r = await client.get("/plain")  # the same connection, still in step
            assert r.text == "plain"
        assert not producer.started

    async def test_a_client_leaving_ends_the_producer(self, run_server: StartServer) -> None:
        producer = Producer()
        server = await run_server(app(producer))
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /endless?pause=0.01 HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"xxxxxxxxxx"), 5)
        writer.close()
        await asyncio.wait_for(producer.finished.wait(), 5)
        await wait_for(lambda: not server.connections, what="the connection gone")
        assert server.counters.handler_errors == 0

    async def test_a_plain_producer_is_closed_when_its_piece_in_a_thread_is_done(
        self, run_server: StartServer
    ) -> None:
        # The client left while next() ran in its thread: close() failed
        # ("generator already executing", ignored), and the generator's
        # finally ran only when the garbage collector found it.
        gc.disable()
        try:
            producer = Producer()
            server = await run_server(app(producer))
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /gated HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(reader.readuntil(b"first"), 5)
            await asyncio.to_thread(producer.entered.wait, 5)
            writer.close()
            await wait_for(lambda: not server.connections, what="the connection gone")
            assert producer.closed_in == []  # (its next() still runs)
            producer.gate.set()
            await wait_for(lambda: producer.closed_in != [], what="the generator closed")
            assert producer.closed_in[0] != threading.current_thread().name
        finally:
            gc.enable()

    async def test_a_body_with_a_close_of_its_own_is_closed(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Closing its iterator (a generator) left the object's own close()
        # uncalled: a file's wrapper kept its file open.
        producer = Producer()
        server = await run_server(app(producer))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/closable")).content == b"onetwo"
            assert (await client.head("/closable")).content == b""
        assert len(producer.closed_in) == 2
        # One whose close() fails: logged; the next response on the connection
        # is its own, not a 500 for the failure.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"GET /closable?fail=1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = await read_until_closed(reader)
        writer.close()
        assert [(status, body) for status, _, body in responses(data)] == [
            (200, b"onetwo"),
            (200, b"plain"),
        ]
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
            "closing a streamed response's producer failed"
        ]

    async def test_an_async_body_with_a_close_of_its_own_is_closed(
        self, run_server: StartServer
    ) -> None:
        # Only an aclose() was called: an async body whose close() is its
        # own (an aiofiles file's, a coroutine) kept its file open, after a
        # HEAD (never iterated) and after its last piece alike.
        producer = Producer()
        server = await run_server(app(producer))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            for awaited in ("0", "1"):
                response = await client.get("/async-closable", params={"awaited": awaited})
                assert response.content == b"onetwo"
                response = await client.head("/async-closable", params={"awaited": awaited})
                assert response.content == b""
        await wait_for(lambda: len(producer.closed_in) == 4, what=f"closed: {producer.closed_in}")
        assert producer.closed_in == ["plain close"] * 2 + ["awaited close"] * 2

    async def test_a_plain_producer_waiting_for_a_thread_is_closed_when_the_client_leaves(
        self, run_server: StartServer
    ) -> None:
        # Its next piece queued for the executor's one thread, busy: the
        # client left, and close() waited for a next() that never came.
        producer = Producer()
        server = await run_server(app(producer))
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        gate = threading.Event()
        busy = loop.run_in_executor(None, gate.wait, 10)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /closable HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)  # the head, no piece yet
        writer.close()
        await wait_for(lambda: producer.closed_in != [], what="the producer closed")
        assert not gate.is_set()  # (closed at once, not when a thread came free)
        gate.set()
        await busy

    async def test_a_slow_reader_holds_the_producer(self, run_server: StartServer) -> None:
        # The client reads nothing: the producer must wait for it, not fill
        # memory. Unheld, it would make gigabytes in this time.
        producer = Producer()
        server = await run_server(app(producer), write_limit=65536)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /endless?size=65536 HTTP/1.1\r\nHost: x\r\n\r\n")
        await wait_for(lambda: producer.made > 0, what="the producer started")
        await asyncio.sleep(1.0)
        held = producer.made
        assert held < 64 * 1024 * 1024, held  # (the kernel's socket buffers take some)
        await asyncio.sleep(0.3)
        assert producer.made - held <= 65536  # and it stays held
        # Reading resumes it.
        for _ in range(10):
            await asyncio.wait_for(reader.read(1 << 20), 5)
        await wait_for(lambda: producer.made > held + 65536, what="the producer going on")
        writer.close()
        await asyncio.wait_for(producer.finished.wait(), 5)

    async def test_a_client_that_takes_nothing_is_closed_after_timeout_keep_alive(
        self, run_server: StartServer
    ) -> None:
        # Not after twice that: its kernel took the last bytes in flight just
        # after writing paused, so the first timeout_keep_alive saw it take
        # something, and a second one was waited whole before it was closed.
        producer = Producer()
        server = await run_server(app(producer), timeout_keep_alive=0.5)
        loop = asyncio.get_running_loop()
        client = await slow_reader(server.port)
        try:
            await loop.sock_sendall(client, b"GET /endless?size=65536 HTTP/1.1\r\nHost: x\r\n\r\n")
            await wait_for(lambda: producer.made > 0, what="the producer started")
            started = loop.time()
            await asyncio.wait_for(producer.finished.wait(), 5)  # (closed: it ends)
            taken = loop.time() - started
        finally:
            client.close()
        assert 0.5 - 0.05 <= taken < 0.8, taken

    async def test_what_the_client_sends_meanwhile_is_kept_within_a_bound(
        self, run_server: StartServer
    ) -> None:
        # Reading goes on while the response streams (to see the client
        # leave), but what comes is not read without end: the client's
        # writes stall once max_header_size is kept (and the kernel's
        # buffers are full).
        producer = Producer()
        server = await run_server(app(producer), max_header_size=16384)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /endless?pause=0.05 HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"xxxxxxxxxx"), 5)
        writer.write(b"x" * (64 * 1024 * 1024))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(writer.drain(), 2)
        writer.transport.abort()
        await asyncio.wait_for(producer.finished.wait(), 5)

    async def test_a_failing_producer_cuts_the_body_short(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Once the head is out, no error response can follow: the connection
        # closes, and the client sees an incomplete body, not a 500 in it.
        server = await run_server(app(Producer()))
        for path, problem in (
            ("/failing", "the producer broke"),
            ("/wrong-piece", "a streamed body's pieces are str or bytes, not int"),
            ("/self-cancelled", "HTTP handler self_cancelled ended in a CancelledError"),
        ):
            caplog.clear()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            port = writer.get_extra_info("sockname")[1]
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            data = await read_until_closed(reader)
            writer.close()
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            assert b"500" not in body and b"Internal Server Error" not in body
            assert not body.endswith(b"0\r\n\r\n")  # no last chunk: the body is cut short
            assert responses(data) == []
            failures = [
                (r.getMessage(), str(r.exc_info[1]))
                for r in caplog.records
                if r.levelno >= logging.ERROR and r.exc_info
            ]
            assert failures == [(f"error while handling {path} from 127.0.0.1:{port}", problem)]
        assert server.counters.handler_errors == 3
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"http://127.0.0.1:{server.port}/failing")

    async def test_a_body_the_close_would_end_is_cut_short_with_a_reset(
        self, run_server: StartServer
    ) -> None:
        # An HTTP/1.0 client's streamed body (no Content-Length, no chunks)
        # ends where the connection does: a FIN after a failing producer, or
        # the shutdown, made what it had look whole (curl --http1.0 exited
        # 0; a proxy speaking HTTP/1.0, nginx's default, takes it whole). The
        # connection says the error (RFC 9112 8): it is reset.
        server = await run_server(app(Producer()))
        for path in ("/failing", "/wrong-piece"):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(f"GET {path} HTTP/1.0\r\n\r\n".encode())
            with pytest.raises(ConnectionResetError):
                await read_until_closed(reader)
            writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /endless?pause=0.02 HTTP/1.0\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"xxxxxxxxxx"), 5)
        await asyncio.wait_for(server.close(timeout=0.3), 5)
        with pytest.raises(ConnectionResetError):
            await read_until_closed(reader)
        writer.close()

    async def test_a_body_the_close_would_end_is_reset_when_its_client_stalls(
        self, run_server: StartServer
    ) -> None:
        # The client took nothing for timeout_keep_alive: it was closed with a
        # FIN after what waited for it, so a client that read on later (a
        # proxy speaking HTTP/1.0, whose own client was slow) took the body
        # cut short for whole, its end the connection's.
        producer = Producer()
        server = await run_server(app(producer), timeout_keep_alive=0.3, close_timeout=5.0)
        loop = asyncio.get_running_loop()
        client = await slow_reader(server.port)
        try:
            await loop.sock_sendall(client, b"GET /endless?size=65536 HTTP/1.0\r\n\r\n")
            await asyncio.wait_for(producer.finished.wait(), 5)  # (given up on)
            with pytest.raises(ConnectionResetError):
                while await asyncio.wait_for(loop.sock_recv(client, 1 << 20), 5):
                    pass
        finally:
            client.close()

    async def test_a_body_the_close_would_end_is_reset_when_the_upload_stops(
        self, run_server: StartServer
    ) -> None:
        # An echo of the upload as it comes, whose upload stopped: open_timeout
        # closed it with a FIN, so the HTTP/1.0 client took the echo of half
        # its body for the whole answer.
        routes = Router()

        @routes.post("/echo", stream=True)
        async def echo(request: Request) -> StreamingResponse:
            return stream(request.stream)

        server = await run_server(routes, open_timeout=0.3)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /echo HTTP/1.0\r\nContent-Length: 10\r\n\r\nhello")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\nhello"), 5)
        with pytest.raises(ConnectionResetError):
            await read_until_closed(reader)
        writer.close()

    async def test_shutdown_ends_a_never_ending_stream_without_a_503_in_it(
        self, run_server: StartServer
    ) -> None:
        producer = Producer()
        server = await run_server(app(producer))
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /endless?pause=0.02 HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"xxxxxxxxxx"), 5)
        await asyncio.wait_for(server.close(timeout=0.3), 5)
        rest = await read_until_closed(reader)
        writer.close()
        assert b"503" not in rest and not rest.endswith(b"0\r\n\r\n")
        assert producer.finished.is_set()

    async def test_the_test_client_reads_it_whole(self) -> None:
        producer = Producer()
        producer.go_on.set()
        async with TestClient(app(producer)) as client:
            r = await client.get("/events")
            assert (r.status, r.text) == (200, "data: one\n\ndata: two\n\n")


class TestMaking:
    def test_what_cannot_be_streamed_is_refused(self) -> None:
        for chunks in ("text", b"bytes", 5, None):
            with pytest.raises(TypeError, match="a streamed body is an iterable"):
                stream(chunks)  # type: ignore[arg-type]
        for status in (204, 304, 199, 600):
            with pytest.raises(ValueError, match="status"):
                stream([b"x"], status)
        with pytest.raises(ValueError, match="Transfer-Encoding"):
            stream([b"x"], headers={"transfer-encoding": "chunked"})
        with pytest.raises(ValueError, match="invalid response header"):
            stream([b"x"], headers={"X-A": "a\r\nB: c"})
        response = stream([b"x"], 201, [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
        assert response.status == 201
        assert response.headers == [
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("Content-Type", "application/octet-stream"),
        ]

    def test_a_function_given_says_to_call_it(self) -> None:
        # stream(ticks) for stream(ticks()), or Sanic's stream(streaming_fn)
        # whose streaming_fn(response) awaits response.write(): "not function"
        # said neither what was missing nor how a Sanic one is written here.
        async def ticks() -> AsyncIterator[str]:
            yield "a"

        async def streaming_fn(response: Any) -> None:
            await response.write("foo")

        with pytest.raises(TypeError, match=r"ticks\(\)"):
            stream(ticks)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"yield.*response\.write"):
            stream(streaming_fn)  # type: ignore[arg-type]
        assert stream(ticks()).status == 200  # (called: as before)

    async def test_an_on_connect_hook_cannot_answer_with_one(self) -> None:
        routes = Router()

        def refuse(request: Request) -> Any:
            return stream([b"no"])

        @routes.websocket("/ws", on_connect=refuse)
        async def ws(request: Request, ws: Any) -> None:
            pass

        async with TestClient(routes, raise_server_exceptions=False) as client:
            with pytest.raises(HandshakeDenied) as denied:
                await client.websocket("/ws")
            assert denied.value.status == 500
            assert client.server.counters.handler_errors == 1
        async with TestClient(routes) as client:
            with pytest.raises(TypeError, match="returned StreamingResponse"):
                await client.websocket("/ws")


# ------------------------------------- a producer that never waits (rows from memory)

#: The most pieces (of 1,000 bytes) a producer makes: it makes them until /ping
#: is answered, which the server could not do meanwhile when it was unfair.
PIECES = 500_000


class Rows:
    """/rows streams pieces of 1,000 bytes (or ``piece``) from a producer that
    never waits (until /ping is answered, PIECES at most),
    as a Router's ``stream()`` or an ASGI application's ``send()``s; /ping
    answers how many it had made by then."""

    def __init__(self, kind: str, piece: bytes = b"x" * 1000) -> None:
        self.piece = piece
        self.made = 0
        self.pinged = False
        self.started = threading.Event()
        self.ended = threading.Event()
        self.app: Any = self.router() if kind == "router" else self.asgi

    def router(self) -> Router:
        routes = Router()

        @routes.get("/rows")
        async def rows(request: Request) -> StreamingResponse:
            async def pieces() -> AsyncIterator[bytes]:
                self.started.set()
                try:
                    while not self.pinged and self.made < PIECES:
                        self.made += 1
                        yield self.piece
                finally:
                    self.ended.set()

            return stream(pieces())

        @routes.get("/ping")
        async def ping(request: Request) -> Response:
            self.pinged = True
            return text(str(self.made))

        return routes

    async def asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan here")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/ping":
            self.pinged = True
            await send({"type": "http.response.body", "body": str(self.made).encode()})
            return
        self.started.set()
        try:
            while not self.pinged and self.made < PIECES:
                self.made += 1
                await send({"type": "http.response.body", "body": self.piece, "more_body": True})
            await send({"type": "http.response.body"})
        except OSError:
            pass  # the client is gone
        finally:
            self.ended.set()


class SendsOnSet(threading.Event):
    """An event that, as it is set, sends ``data`` on the blocking socket ``sock``."""

    def __init__(self, sock: socket.socket, data: bytes) -> None:
        super().__init__()
        self.sock = sock
        self.data = data

    def set(self) -> None:
        self.sock.sendall(self.data)
        super().set()


def ping(port: int) -> int:
    """How many rows /ping says were made (a blocking client: for a thread)."""
    return int(get_blocking(port, "/ping"))


@pytest.mark.parametrize("kind", ["router", "asgi"])
async def test_a_producer_that_never_waits_ends_when_the_client_resets(
    kind: str, run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A write that failed on the reset closed the transport, but the server
    # heard of it (connection_lost) only at the loop's next turn, which the
    # producer never gave: it made all its rows, each write a warning from
    # asyncio ("socket.send() raised exception."), every other client held.
    rows = Rows(kind)
    server = await run_server(rows.app)
    seen: list[int] = []

    def client() -> None:
        s = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        s.sendall(b"GET /rows HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(100)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # a reset, its answer unread
        seen.append(ping(server.port))

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        await asyncio.to_thread(client)
        await asyncio.wait_for(asyncio.to_thread(rows.ended.wait), 60)
    assert rows.made < 10_000 and seen[0] < 10_000, (rows.made, seen)
    assert not [r for r in caplog.records if r.name == "asyncio"]


@pytest.mark.parametrize("kind", ["router", "asgi"])
async def test_a_tls_client_that_resets_a_stream_is_no_flood_of_warnings(
    kind: str, run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Over asyncio's TLS the transport says it is closing only a loop turn
    # after the socket's transport under it met the reset: the pieces written
    # meanwhile went on to the failed one, each from the fifth a warning
    # ("socket.send() raised exception."), 27 of them here.
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    rows = Rows(kind)
    server = await run_server(rows.app, ssl=server_tls)
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_context(ca)
        )
        writer.write(b"GET /rows HTTP/1.1\r\nHost: x\r\n\r\n")
        received = 0
        while received < 200_000:  # (it sends all along)
            received += len(await asyncio.wait_for(reader.read(65536), 5))
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # a reset
        await asyncio.wait_for(asyncio.to_thread(rows.ended.wait), 60)
    assert rows.made < PIECES
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []


@pytest.mark.parametrize("kind", ["router", "asgi"])
async def test_a_producer_that_never_waits_lets_other_clients_in(
    kind: str, run_server: StartServer
) -> None:
    # A client that takes everything at once (a process of its own, reading
    # as fast as it comes): drain() never waited, and the producer held the
    # loop until its end, every other client with it.
    rows = Rows(kind)
    server = await run_server(rows.app)
    request = b"GET /rows HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    async with (
        get_when_told(server.port, "/ping") as get,
        fast_reader(server.port, request) as reading,
    ):
        assert await reading() == b"started\n"
        made_by_then = int(await get())
        assert int(await reading()) > 100_000
    assert made_by_then < PIECES, "the ping waited for the whole stream"


@pytest.mark.parametrize("kind", ["router", "asgi"])
async def test_a_producer_of_empty_pieces_that_never_waits_lets_other_clients_in(
    kind: str, run_server: StartServer
) -> None:
    # Empty pieces (a template's empty output, rows filtered out) are not
    # written, and drain() was asked after written ones only: a producer of
    # them held the loop until its end, every other client with it.
    # The ping is sent as the producer begins (from its own first step, in
    # the loop's thread, on a connection made before): it waits in the
    # socket from then on, whatever the machine's load, for the loop's next
    # turn. (Sent from a thread once told, it came too late at times on a
    # loaded machine: the empty pieces were all made in the meantime.)
    rows = Rows(kind, piece=b"")
    server = await run_server(rows.app)
    pinging = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    rows.started = SendsOnSet(
        pinging, b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /rows HTTP/1.1\r\nHost: x\r\n\r\n")
    made_by_then = int(await asyncio.to_thread(body_of_answer, pinging))
    assert made_by_then < PIECES, "the ping waited for the whole stream"
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n0\r\n\r\n"), 5)
    assert answer.startswith(b"HTTP/1.1 200 ")  # (the head; no piece: all were empty)
    writer.close()
