"""A Router HTTP route's streamed request body (``stream=True``, ``request.stream``):
pieces as they come, the client held back by a handler that does not read, the
route's own ``max_body_size``, 100-continue, a client that leaves or stalls, and
keep-alive after it, through real sockets and httpx."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json as stdlib_json
import logging
import os
import socket
import ssl
from collections.abc import AsyncIterator

import httpx
import pytest
import trustme

from wsserver import ClientDisconnected, Request, RequestTooLarge, Router
from wsserver.response import Response, StreamingResponse, json, stream, text
from wsserver.server.http_protocol import HttpProtocol
from wsserver.server.server import READ_SIZE

from .conftest import StartServer
from .helpers import (
    client_context,
    h11_holds,
    pipelined_answers,
    sends_on_then_ends,
    server_context,
    wait_for,
)


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One response's head and its Content-Length body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return head, await asyncio.wait_for(reader.readexactly(length), 5)


def upload_routes(**route: object) -> tuple[Router, list[object]]:
    """A route at /upload that reads its body as it comes and says what it got;
    ``seen`` has each piece's length as it arrived, then what ended it."""
    routes = Router()
    seen: list[object] = []

    @routes.post("/upload", stream=True, **route)  # type: ignore[arg-type]
    async def upload(request: Request) -> Response:
        assert request.stream is not None
        digest = hashlib.sha256()
        size = 0
        try:
            async for piece in request.stream:
                assert isinstance(piece, bytes) and piece
                seen.append(len(piece))
                digest.update(piece)
                size += len(piece)
        except (ClientDisconnected, RequestTooLarge, asyncio.CancelledError) as exc:
            seen.append(type(exc).__name__)
            raise
        seen.append("end")
        return json({"size": size, "sha256": digest.hexdigest(), "body": request.body.decode()})

    return routes, seen


class TestStreamedRequestBody:
    async def test_pieces_reach_the_handler_as_they_come(self, run_server: StartServer) -> None:
        routes, seen = upload_routes()
        server = await run_server(routes)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )
        # The handler has the first piece while the rest is still to come.
        await wait_for(lambda: seen == [5])
        writer.write(b"6\r\n world\r\n0\r\n\r\n")
        head, body = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 200 ")
        expected = hashlib.sha256(b"hello world").hexdigest()
        assert stdlib_json.loads(body) == {"size": 11, "sha256": expected, "body": ""}
        assert seen == [5, 6, "end"]
        # The body was read to its end: the connection serves its next request.
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        head, body = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 200 ") and stdlib_json.loads(body)["size"] == 3
        assert b"connection: close" not in head.lower()
        writer.close()

    async def test_a_large_upload_with_httpx_goes_past_the_servers_max_body_size(
        self, run_server: StartServer
    ) -> None:
        # The route's own limit (None: none) instead of the server's 1 MiB.
        routes, seen = upload_routes(max_body_size=None)
        server = await run_server(routes, max_body_size=2**20)
        data = os.urandom(8 * 2**20)

        async def pieces() -> AsyncIterator[bytes]:
            for start in range(0, len(data), 300_000):
                yield data[start : start + 300_000]

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            for content in (data, pieces()):  # Content-Length, then chunked
                seen.clear()
                r = await client.post("/upload", content=content)
                assert r.status_code == 200
                assert r.json()["size"] == len(data)
                assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()
                assert seen[-1] == "end" and len(seen) > 2

    async def test_read_gives_the_rest_whole_and_a_request_without_body_streams_none(
        self, run_server: StartServer
    ) -> None:
        routes = Router()
        first_taken = asyncio.Event()

        @routes.route("/echo", methods=("GET", "PUT"), stream=True)
        async def echo(request: Request) -> Response:
            assert request.stream is not None
            first = await request.stream.__aiter__().__anext__() if request.method == "PUT" else b""
            first_taken.set()
            return text(repr((first, await request.stream.read(), await request.stream.read())))

        @routes.post("/whole")
        async def whole(request: Request) -> Response:
            return text(repr((request.stream, request.body)))

        server = await run_server(routes)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        # (The chunks at hand with the first are one piece: the rest comes after.)
        writer.write(
            b"PUT /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n"
        )
        await asyncio.wait_for(first_taken.wait(), 10)
        writer.write(b"3\r\ncde\r\n1\r\nf\r\n0\r\n\r\n")
        head, body = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert body == repr((b"ab", b"cdef", None)).encode()
        writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        _, body = await read_response(reader)
        assert body == repr((b"", b"", None)).encode()
        writer.write(b"POST /whole HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
        _, body = await read_response(reader)
        assert body == repr((None, b"ok")).encode()
        writer.close()

    async def test_sanics_read_loop_ends_at_the_none_after_the_body(
        self, run_server: StartServer
    ) -> None:
        # Sanic's documented loop: "while True: body = await request.stream.read();
        # if body is None: break". A read() after the end that gave b"" at once
        # spun it for ever without a turn for the loop: every client, and the
        # SIGTERM, went unanswered. (Bounded here, so that it fails, not hangs.)
        routes = Router()

        @routes.post("/upload", stream=True)
        async def upload(request: Request) -> Response:
            assert request.stream is not None
            reads: list[bytes] = []
            while len(reads) < 3:
                body = await request.stream.read()
                if body is None:
                    break
                reads.append(body)
            return text(repr(reads))

        server = await run_server(routes)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            r = await client.post("/upload", content=b"abc")
            assert r.text == repr([b"abc"])
            r = await client.post("/upload", content=b"")
            assert r.text == repr([b""])

    async def test_a_handler_that_does_not_read_holds_the_client_back(
        self, run_server: StartServer
    ) -> None:
        # Nothing is read for it while it does not ask: the client's sending
        # blocks once the sockets' buffers are full, well short of its body.
        routes = Router()
        go = asyncio.Event()
        got: list[int] = []

        @routes.post("/slow", stream=True, max_body_size=None)
        async def slow(request: Request) -> Response:
            await go.wait()
            assert request.stream is not None
            got.append(len(await request.stream.read()))
            return text("done")

        server = await run_server(routes, open_timeout=30)
        total = 96 * 2**20
        loop = asyncio.get_running_loop()
        sock = socket.create_connection(("127.0.0.1", server.port))
        piece = bytes(2**20)

        def send_until_blocked() -> int:
            head = f"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n"
            sock.sendall(head.encode())
            sock.settimeout(1.0)
            sent = 0
            try:
                while sent < total:
                    sent += sock.send(piece[: total - sent])
            except TimeoutError:
                pass
            return sent

        def send_the_rest(sent: int) -> bytes:
            sock.settimeout(30)
            while sent < total:
                sent += sock.send(piece[: total - sent])
            return sock.recv(65536)

        with sock:
            sent = await loop.run_in_executor(None, send_until_blocked)
            assert sent < 32 * 2**20, sent  # (the sockets' buffers: a few MiB)
            go.set()  # the handler reads now: the client can send the rest
            answer = await loop.run_in_executor(None, send_the_rest, sent)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"done")
        assert got == [total]

    async def test_the_routes_limit_answers_413(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.ERROR, logger="wsserver")
        routes, seen = upload_routes(max_body_size=10)
        server = await run_server(routes)
        # Declared over it: answered before the handler runs.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
        head, _ = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 413 ")
        assert seen == []
        writer.close()
        # Chunked, over it halfway: the handler's read raises, the client gets
        # 413 and the connection closes (the rest of the body is not read).
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"8\r\n12345678\r\n8\r\n12345678\r\n"
        )
        head, _ = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 413 ")
        assert b"connection: close" in head.lower()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert seen == [8, "RequestTooLarge"]
        # Within it: served.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            r = await client.post("/upload", content=b"0123456789")
            assert (r.status_code, r.json()["size"]) == (200, 10)
        assert not [r.getMessage() for r in caplog.records if r.name.startswith("wsserver")]

    async def test_a_chunk_announcing_more_than_the_routes_limit_gets_413_at_its_size_line(
        self, run_server: StartServer
    ) -> None:
        # As a Content-Length over the limit is refused before the handler
        # runs: a chunk whose size line announces more than is left of it was
        # read on until that much had come. Now the handler's read raises at
        # the size line (nothing of the chunk sent; the client waits).
        routes, seen = upload_routes(max_body_size=10)
        server = await run_server(routes)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"8\r\n12345678\r\n"
        )
        await wait_for(lambda: seen == [8])
        writer.write(b"3\r\n")  # (11 bytes in all)
        head, _ = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 413 ")
        assert b"connection: close" in head.lower()
        assert seen == [8, "RequestTooLarge"]
        writer.close()
        # One within it is read whole.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"8\r\n12345678\r\n2\r\n90\r\n0\r\n\r\n"
        )
        head, body = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 200 ") and stdlib_json.loads(body)["size"] == 10
        writer.close()

    async def test_a_routes_limit_for_a_body_read_whole(self, run_server: StartServer) -> None:
        routes = Router()

        @routes.post("/big", max_body_size=4 * 2**20)
        async def big(request: Request) -> Response:
            return text(str(len(request.body)))

        @routes.post("/small", max_body_size=4)
        async def small(request: Request) -> Response:
            return text(str(len(request.body)))

        server = await run_server(routes, max_body_size=2**20)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            r = await client.post("/big", content=bytes(3 * 2**20))
            assert (r.status_code, r.text) == (200, str(3 * 2**20))
            r = await client.post("/small", content=b"12345")
            assert r.status_code == 413

            async def chunked() -> AsyncIterator[bytes]:
                yield b"123"
                yield b"45"

            r = await client.post("/small", content=chunked())
            assert r.status_code == 413

    async def test_100_continue_is_sent_when_the_handler_reads(
        self, run_server: StartServer
    ) -> None:
        routes = Router()

        @routes.post("/upload", stream=True)
        async def upload(request: Request) -> Response:
            assert request.stream is not None
            if request.headers.get("authorization") != "yes":
                return text("no", 401)  # (the body never asked for)
            return text(str(len(await request.stream.read())))

        server = await run_server(routes)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        expect = b"Expect: 100-continue\r\nContent-Length: 4\r\n"
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: yes\r\n" + expect)
        writer.write(b"\r\n")
        continued = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert continued.startswith(b"HTTP/1.1 100 ")
        writer.write(b"data")
        head, body = await read_response(reader)
        assert (head.split(b" ")[1], body) == (b"200", b"4")
        # Refused without reading: no 100, and the connection closes after the
        # answer (the body it did not invite may come still).
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\n" + expect + b"\r\n")
        head, body = await read_response(reader)
        assert (head.split(b" ")[1], body) == (b"401", b"no")
        assert b"connection: close" in head.lower()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()

    async def test_an_unread_body_closes_the_connection_after_the_answer(
        self, run_server: StartServer
    ) -> None:
        routes = Router()

        @routes.post("/ignore", stream=True)
        async def ignore(request: Request) -> Response:
            return text("ignored")

        server = await run_server(routes)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /ignore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        head, body = await read_response(reader)
        assert (head.split(b" ")[1], body) == (b"200", b"ignored")
        assert b"connection: close" in head.lower()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()

    async def test_a_client_that_leaves_or_stalls_ends_the_handlers_read(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.ERROR, logger="wsserver")
        routes, seen = upload_routes()
        server = await run_server(routes, open_timeout=0.5)
        # Leaves halfway.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 40)
        await wait_for(lambda: seen == [40])
        writer.close()
        await wait_for(lambda: seen == [40, "CancelledError"])  # (as any handler whose client left)
        # Stalls halfway: 408 after open_timeout.
        seen.clear()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 40)
        head, _ = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 408 ")
        await wait_for(lambda: seen == [40, "ClientDisconnected"])
        writer.close()
        # A malformed chunk: 400.
        seen.clear()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n"
        )
        head, _ = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 400 ")
        await wait_for(lambda: seen == ["ClientDisconnected"])
        writer.close()
        # None of it is the handler's error; the server serves on.
        assert not [r.getMessage() for r in caplog.records if r.name.startswith("wsserver")]
        assert server.counters.handler_errors == 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            r = await client.post("/upload", content=b"fine")
            assert (r.status_code, r.json()["size"]) == (200, 4)

    @pytest.mark.parametrize(
        "framing, body",
        [
            (b"Content-Length: 5\r\n", b"hello"),
            (b"Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n"),
        ],
    )
    async def test_a_client_that_leaves_after_its_whole_body_ends_the_handler(
        self, run_server: StartServer, framing: bytes, body: bytes
    ) -> None:
        # The body read, the handler works on it (as a route without stream=True
        # does on its body read for it): a client that leaves meanwhile cancels
        # it. (The body comes while the handler waits for it: reading pauses
        # then, between its reads.)
        routes = Router()
        seen: list[object] = []

        @routes.post("/upload", stream=True)
        async def upload(request: Request) -> Response:
            assert request.stream is not None
            seen.append("reading")
            seen.append(await request.stream.read())
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                seen.append("CancelledError")
                raise
            return text("done")

        server = await run_server(routes)
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n")
        await wait_for(lambda: seen == ["reading"])
        await asyncio.sleep(0.2)  # (its read waits for the body: not asserted on)
        writer.write(body)
        await wait_for(lambda: seen == ["reading", b"hello"])
        writer.close()
        await wait_for(lambda: seen == ["reading", b"hello", "CancelledError"], timeout=15)

    async def test_a_client_that_leaves_before_its_body_is_read_ends_the_handler(
        self, run_server: StartServer
    ) -> None:
        # A handler that works before it reads (or never does) is cancelled as
        # the client leaves, as an ASGI application hears http.disconnect: what
        # comes is read meanwhile, within max_header_size (a large body is
        # still held back, as the test above has it).
        routes = Router()
        seen: list[object] = []

        @routes.post("/upload", stream=True)
        async def upload(request: Request) -> Response:
            seen.append("working")
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                seen.append("CancelledError")
                raise
            return text("done")

        server = await run_server(routes)
        for body in (b"Content-Length: 5\r\n\r\nhello", b"Content-Length: 5\r\n\r\nhe"):
            seen.clear()
            _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\n" + body)
            await wait_for(lambda: seen == ["working"])
            writer.close()
            await wait_for(lambda: seen == ["working", "CancelledError"], timeout=15)

    async def test_pipelined_requests_after_bodies_read_are_not_buffered_without_bound(
        self, run_server: StartServer
    ) -> None:
        # Small requests pipelined faster than they are served, each body
        # read whole by its handler: reading goes on after it (the client's
        # leaving seen), and that reset the bound (_kept = 0) while h11 held
        # the requests after it already: each body's end let one more read
        # (up to READ_SIZE) in, and h11's buffer grew to all the client sent.
        peak = 0
        routes = Router()

        @routes.post("/", stream=True)
        async def index(request: Request) -> Response:
            nonlocal peak
            assert request.stream is not None
            await request.stream.read()
            await asyncio.sleep(0)  # (after the body's end: what comes meanwhile is kept)
            peak = max(peak, h11_holds(server))
            return text("x")

        server = await run_server(routes)
        n = 14_000
        request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"  # 47: 643 KiB
        assert await pipelined_answers(server.port, request, n) == n
        bound = server.config.max_header_size + READ_SIZE
        assert peak <= bound, f"h11 held {peak} bytes of pipelined requests (bound {bound})"

    def test_what_a_route_takes(self) -> None:
        routes = Router()

        async def handler(request: Request) -> Response:
            return text("")

        for bad in (-1, 1.5, "none", True):
            with pytest.raises(ValueError, match="max_body_size"):
                routes.add_route(handler, f"/x{bad}", max_body_size=bad)  # type: ignore[arg-type]
        route = routes.add_route(handler, "/ok", methods=("POST",), stream=True, max_body_size=0)
        assert (route.stream, route.max_body_size) == (True, 0)
        assert routes.add_route(handler, "/default").max_body_size == "server"


class TestStreamedRequestAndItsResponse:
    """What a stream=True route's body does next to its response: a streamed
    response reading it, a task reading it after the response, the next request."""

    async def test_a_streamed_response_may_read_the_body(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.ERROR, logger="wsserver")
        routes = Router()

        @routes.post("/echo", stream=True)
        async def echo(request: Request) -> StreamingResponse:
            body = request.stream
            assert body is not None

            async def back() -> AsyncIterator[bytes]:
                async for piece in body:
                    yield piece

            return stream(back())

        server = await run_server(routes, open_timeout=0.5)
        for request, echoed in (
            # The body came with the head: nothing of it may be lost.
            (b"Content-Length: 11\r\n\r\nhello world", b"hello world"),
            (b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", b"abcdef"),
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\n" + request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 ")
            rest = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
            pieces = rest.split(b"\r\n")[1:-3:2]
            assert b"".join(pieces) == echoed, rest
            writer.close()
        # A client that waits for 100 Continue is invited before the head.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        continued = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert continued.startswith(b"HTTP/1.1 100 ")
        writer.write(b"hello")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"hello" in await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
        writer.close()
        # The body stalls halfway while streamed back: cut short, the client's
        # doing, not the handler's error.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n0123456789")
        data = await asyncio.wait_for(reader.read(), 5)
        assert b"0123456789" in data and not data.endswith(b"0\r\n\r\n")
        writer.close()
        assert not [r.getMessage() for r in caplog.records if r.name.startswith("wsserver")]
        assert server.counters.handler_errors == 0

    async def test_a_body_read_after_the_response_is_not_the_next_requests(
        self, run_server: StartServer
    ) -> None:
        routes = Router()
        outcome: list[object] = []
        tasks: set[asyncio.Task[None]] = set()
        start_reading = asyncio.Event()

        @routes.post("/later", stream=True)
        async def later(request: Request) -> Response:
            body = request.stream
            assert body is not None

            async def consume() -> None:
                await start_reading.wait()
                try:
                    outcome.append(await body.read())
                except RuntimeError as exc:
                    outcome.append(str(exc))

            task = asyncio.create_task(consume())
            tasks.add(task)
            return text("accepted", 202)

        @routes.post("/next")
        async def next_(request: Request) -> Response:
            return text(request.body.decode())

        server = await run_server(routes)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nmine")
        head, body = await read_response(reader)
        assert (head.split(b" ")[1], body) == (b"202", b"accepted")
        writer.write(b"POST /next HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n")
        await asyncio.sleep(0.1)
        start_reading.set()  # (the task reads while the next request's body is to come)
        await wait_for(lambda: outcome)
        writer.write(b"secret-token")
        head, body = await read_response(reader)
        assert (head.split(b" ")[1], body) == (b"200", b"secret-token")
        assert outcome == ["request.stream read after its response was sent: the rest is gone"]
        writer.close()

    async def test_an_unread_body_all_there_keeps_the_connection(
        self, run_server: StartServer
    ) -> None:
        # Its answer keeps the connection: the next request reads its own body.
        routes = Router()

        @routes.post("/ignore", stream=True)
        async def ignore(request: Request) -> Response:
            return text("ignored")

        @routes.post("/read", stream=True)
        async def read(request: Request) -> Response:
            assert request.stream is not None
            return text((await request.stream.read()).decode())

        server = await run_server(routes)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        await asyncio.sleep(0.1)  # (all of it in before the handler answers)
        head, body = await read_response(reader)
        assert (head.split(b" ")[1], body) == (b"200", b"ignored")
        writer.write(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nworld")
        head, body = await read_response(reader)
        assert (head.split(b" ")[1], body) == (b"200", b"world")
        # A malformed chunk behind an unread body: the answer says it closes.
        writer.write(
            b"POST /ignore HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        )
        head, body = await read_response(reader)
        assert body == b"ignored" and b"connection: close" in head.lower()
        writer.close()

    async def test_a_failed_read_fails_again(self, run_server: StartServer) -> None:
        routes = Router()

        @routes.post("/twice", stream=True, max_body_size=4)
        async def twice(request: Request) -> Response:
            assert request.stream is not None
            failures = []
            for _ in range(2):
                try:
                    await request.stream.read()
                except RequestTooLarge as exc:
                    failures.append(str(exc))
            return text(repr(failures))

        server = await run_server(routes)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /twice HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"5\r\n12345\r\n0\r\n\r\n")
        _, body = await read_response(reader)
        assert body == repr(["the request's body is over 4 bytes"] * 2).encode()
        writer.close()


class TestAnAnswerBeforeTheBodysEnd:
    """A client still sending its body when the answer comes gets the answer:
    the server sends its end, drops what follows, and closes at the client's
    (closed at once, the unread bytes made the connection reset, and a client
    still writing lost the answer: httpx raised ReadError instead of a 413)."""

    async def test_httpx_gets_its_413_and_401(self, run_server: StartServer) -> None:
        await _httpx_gets_its_413_and_401(run_server, None, 2**20, 16 * 2**20, 16 * 2**20, 3)

    async def test_over_tls_httpx_gets_its_413_and_401(self, run_server: StartServer) -> None:
        # TLS has no half-close: the connection closed at once after the
        # answer, the client's bytes unread, and the reset lost the answer
        # (httpx: WriteError, http.client: SSLEOFError). It now reads and
        # drops them until the client closes (close_timeout at most).
        await _httpx_gets_its_413_and_401(run_server, trustme.CA(), 2**16, 4 * 2**20, 4 * 2**20, 2)

    @pytest.mark.parametrize(
        "sent",
        [
            b"POST /s HTTP/1.0\r\nContent-Length: 100000\r\n\r\n" + bytes(1000),
            b"GET /s HTTP/1.0\r\n\r\nGET /s HTTP/1.0\r\n\r\n",
        ],
        ids=["body unread", "pipelined"],
    )
    async def test_over_tls_an_answer_that_ends_at_the_close_is_not_held(
        self, run_server: StartServer, sent: bytes
    ) -> None:
        # An HTTP/1.0 client's streamed answer has no length: its close says
        # where it ends. TLS lingering (no half-close) held that close until
        # close_timeout, the client waiting for the rest meanwhile.
        ca = trustme.CA()
        server_tls = server_context(ca)
        routes = Router()

        async def pieces() -> AsyncIterator[bytes]:
            yield b"hello "
            yield b"world"

        @routes.route("/s", methods=["GET", "POST"], stream=True, max_body_size=None)
        async def answer(request: Request) -> StreamingResponse:
            return stream(pieces())  # (its body, if any, not read)

        server = await run_server(routes, ssl=server_tls, close_timeout=30)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_context(ca)
        )
        writer.write(sent)
        answer_bytes = await asyncio.wait_for(reader.read(), 10)  # (not close_timeout)
        assert answer_bytes.startswith(b"HTTP/1.1 200 ") and answer_bytes.endswith(
            b"\r\n\r\nhello world"
        ), answer_bytes
        writer.close()

    @pytest.mark.parametrize(
        ("sent", "status"),
        [
            (b"GET / HTTP/1.1\r\n\r\n", b"400"),  # (no Host)
            (b"garbage\r\n\r\n", b"400"),
            (b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n" + bytes(2000), b"413"),
        ],
        ids=["no host", "no request line", "body over the limit, all sent"],
    )
    async def test_over_tls_a_lingering_answer_closes_once_the_client_is_quiet(
        self, run_server: StartServer, sent: bytes, status: bytes
    ) -> None:
        # TLS has no half-close: lingering after an answer (the client may
        # still be sending) held every such connection until close_timeout,
        # then aborted it without a close_notify, though the client had sent
        # all it would (a scanner's garbage, a head refused): a client
        # reading to the end waited, and got an unexpected EOF.
        ca = trustme.CA()
        server_tls = server_context(ca)
        routes = Router()

        @routes.post("/s")
        async def small(request: Request) -> Response:
            return text("read whole")

        server = await run_server(routes, ssl=server_tls, close_timeout=30, max_body_size=1000)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_context(ca)
        )
        writer.write(sent)
        answer = await asyncio.wait_for(reader.read(), 10)  # (a clean end, not close_timeout's)
        assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer
        writer.close()

    async def test_over_tls_a_lingering_connection_the_client_closed_is_freed_at_once(
        self, run_server: StartServer
    ) -> None:
        # The look for the client's quiet (LINGER_QUIET) was scheduled and
        # never cancelled: a connection its client closed at once stayed in
        # memory, with its server, until the look came, 2 s on, and after
        # server.close() too, a timer left in the loop.
        import weakref

        from wsserver.server.http_protocol import LINGER_QUIET

        ca = trustme.CA()
        server_tls = server_context(ca)
        server = await run_server(Router(), ssl=server_tls, close_timeout=30)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_context(ca)
        )
        writer.write(b"garbage\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 400 "), head
        [protocol] = server.connections
        assert protocol.lingering
        connection = weakref.ref(protocol)
        del protocol
        writer.close()  # (its close_notify: the server's end follows)
        await wait_for(lambda: not server.connections, LINGER_QUIET / 2)
        await wait_for(lambda: (gc.collect(), connection() is None)[1], LINGER_QUIET / 2)

    async def test_the_server_ends_its_side_and_closes_at_the_clients(
        self, run_server: StartServer
    ) -> None:
        routes = Router()

        @routes.post("/small")
        async def small(request: Request) -> Response:
            return text("read whole")

        server = await run_server(routes, max_body_size=1000, close_timeout=5)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
        head, _ = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 413 ")
        assert await asyncio.wait_for(reader.read(), 5) == b""  # its end, after the answer
        await sends_on_then_ends(server, writer)  # (nothing resets)
        writer.close()


async def _httpx_gets_its_413_and_401(
    run_server: StartServer,
    ca: trustme.CA | None,
    limit: int,
    body: int,
    streamed: int,
    rounds: int,
) -> None:
    """httpx posts ``body`` bytes, over ``limit`` (413), streams ``streamed`` bytes to a
    route that answers 401 without reading them, then posts a small body: each
    answer read, ``rounds`` times on one client (over TLS with ``ca``)."""
    routes = Router()

    @routes.post("/small")
    async def small(request: Request) -> Response:
        return text("read whole")

    @routes.post("/private", stream=True, max_body_size=None)
    async def private(request: Request) -> Response:
        return text("no", 401)  # (its body not read)

    tls = None if ca is None else server_context(ca)
    server = await run_server(routes, max_body_size=limit, ssl=tls)
    piece = 2**16

    async def pieces() -> AsyncIterator[bytes]:
        for _ in range(streamed // piece):
            yield bytes(piece)

    scheme = "http" if ca is None else "https"
    verify: ssl.SSLContext | bool = True if ca is None else client_context(ca)
    async with httpx.AsyncClient(
        base_url=f"{scheme}://127.0.0.1:{server.port}", verify=verify
    ) as client:
        for _ in range(rounds):
            r = await client.post("/small", content=bytes(body))
            assert r.status_code == 413
            r = await client.post("/private", content=pieces())
            assert (r.status_code, r.text) == (401, "no")
            r = await client.post("/small", content=b"fine")
            assert (r.status_code, r.text) == (200, "read whole")


class TestStreamedBodiesEdges:
    @pytest.mark.parametrize(
        "request_line",
        [
            b"POST /two HTTP/1.1\r\n",
            b"POST /two HTTP/1.1\r\nConnection: close\r\n",
            b"POST /two HTTP/1.0\r\n",
        ],
        ids=["kept alive", "closing", "HTTP/1.0"],
    )
    async def test_two_readers_of_one_body_share_it_and_the_request_is_answered(
        self, run_server: StartServer, request_line: bytes
    ) -> None:
        # The one that finds the body taken sees its end: no false "client
        # gone", which left the request unanswered and the connection hanging.
        # (Also where the request ends its connection: h11 then says
        # MUST_CLOSE, not DONE, after the body, and that reader waited for
        # more of it for good.)
        routes = Router()

        @routes.post("/two", stream=True)
        async def two(request: Request) -> Response:
            assert request.stream is not None
            got = await asyncio.gather(request.stream.read(), request.stream.read())
            return text(repr(sorted(got)))

        server = await run_server(routes, open_timeout=2)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request_line + b"Host: x\r\nContent-Length: 3\r\n\r\n")
        await asyncio.sleep(0.1)
        writer.write(b"abc")
        head, body = await read_response(reader)
        assert (head.split(b" ")[1], body) == (b"200", repr([b"", b"abc"]).encode())
        writer.close()

    async def test_a_streamed_response_that_does_not_read_invites_no_body(
        self, run_server: StartServer
    ) -> None:
        routes = Router()

        @routes.post("/refuse", stream=True)
        async def refuse(request: Request) -> StreamingResponse:
            async def why() -> AsyncIterator[str]:
                yield "not "
                yield "you"

            return stream(why(), 403)

        @routes.post("/limited", stream=True, max_body_size=4)
        async def limited(request: Request) -> StreamingResponse:
            body = request.stream
            assert body is not None

            async def back() -> AsyncIterator[bytes]:
                yield await body.read()

            return stream(back())

        server = await run_server(routes)
        expect = b"Host: x\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n"
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /refuse HTTP/1.1\r\n" + expect)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 403 ")  # (no 100 before it)
        assert await asyncio.wait_for(reader.read(), 5) == b"4\r\nnot \r\n3\r\nyou\r\n0\r\n\r\n"
        writer.close()
        # Its producer reads past the limit before anything was sent: a 413.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        chunked = expect.replace(b"Content-Length: 1000000", b"Transfer-Encoding: chunked")
        writer.write(b"POST /limited HTTP/1.1\r\n" + chunked)
        continued = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert continued.startswith(b"HTTP/1.1 100 ")
        writer.write(b"a\r\n0123456789\r\n0\r\n\r\n")
        head, _ = await read_response(reader)
        assert head.startswith(b"HTTP/1.1 413 ")
        writer.close()

    async def test_a_streamed_response_refusing_the_body_before_its_head_answers_so(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Its producer reads first (a client that waits for 100 Continue:
        # curl -F with a file over 1 KiB) and raises what a handler's answer
        # is made of: a form that does not parse, a HandshakeError. Nothing
        # was sent: the 400 (or its status) a handler's raise gets, as a 413
        # for a body over the limit, not a 500 and a logged traceback.
        from wsserver import HandshakeError

        routes = Router()

        @routes.post("/parts", stream=True)
        async def parts(request: Request) -> StreamingResponse:
            async def names() -> AsyncIterator[str]:
                async for part in request.multipart():
                    yield f"{part.name}\n"

            return stream(names(), content_type="text/plain")

        @routes.post("/quota", stream=True, error_format="json")
        async def quota(request: Request) -> StreamingResponse:
            body = request.stream
            assert body is not None

            async def check() -> AsyncIterator[bytes]:
                if len(await body.read() or b"") > 3:
                    raise HandshakeError(507, "Over your quota.", [("Retry-After", "60")])
                yield b"stored"

            return stream(check())

        server = await run_server(routes)
        for path, content_type, body in (
            (b"/parts", b"multipart/form-data; boundary=xyz", b"no boundary in here"),
            (b"/quota", b"application/octet-stream", b"0123456789"),
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nExpect: 100-continue\r\n"
                b"Content-Length: %d\r\n\r\n" % (path, content_type, len(body))
            )
            continued = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert continued.startswith(b"HTTP/1.1 100 ")
            writer.write(body)
            head, answer = await read_response(reader)
            if path == b"/parts":
                assert head.startswith(b"HTTP/1.1 400 "), head
                assert answer == b"The multipart form has no part (its boundary is not in it).\n"
            else:
                assert head.startswith(b"HTTP/1.1 507 "), head
                assert b"\r\nRetry-After: 60\r\n" in head
                assert stdlib_json.loads(answer)["message"] == "Over your quota."
            writer.close()
        assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert server.counters.handler_errors == 0

    async def test_connections_are_freed_without_the_garbage_collector(
        self, run_server: StartServer
    ) -> None:
        # request.stream holds its connection weakly: the connection holds the
        # request, which holds it.
        from wsserver.server.request_body import RequestBody

        from .test_robustness import server_objects

        routes, seen = upload_routes(max_body_size=5)
        server = await run_server(routes)
        kinds = (HttpProtocol, Request, RequestBody)
        gc.collect()
        gc.disable()
        try:
            for body in (b"abc", b"too long"):  # read whole; over the limit (a failed read)
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(
                    b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
                )
                await asyncio.wait_for(reader.read(), 5)
                writer.close()
                await writer.wait_closed()
            await wait_for(lambda: not server.connections and not server_objects(server, kinds))
        finally:
            gc.enable()
        assert seen == [3, "end", "RequestTooLarge"]

    async def test_the_clients_time_for_a_piece_runs_from_the_handlers_ask(
        self, run_server: StartServer
    ) -> None:
        # open_timeout ran from the last piece: a handler that worked on it for
        # most of that time left the client almost none (a 408).
        routes = Router()
        asking = asyncio.Event()

        @routes.post("/slow", stream=True)
        async def slow(request: Request) -> Response:
            assert request.stream is not None
            pieces = request.stream.__aiter__()
            first = await pieces.__anext__()
            await asyncio.sleep(0.9)  # (work on it)
            asking.set()
            second = await pieces.__anext__()
            return text((first + second).decode())

        server = await run_server(routes, open_timeout=1.0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc")
        await asyncio.wait_for(asking.wait(), 5)
        await asyncio.sleep(0.5)
        writer.write(b"def")
        head, body = await read_response(reader)
        assert (head.split(b" ")[1], body) == (b"200", b"abcdef")
        writer.close()

    async def test_an_answered_connection_is_no_load_and_shutdown_lets_it_finish(
        self, run_server: StartServer
    ) -> None:
        routes = Router()

        @routes.route("/small", methods=("GET", "POST"))
        async def small(request: Request) -> Response:
            return text("read whole")

        server = await run_server(routes, max_body_size=1000, limit_concurrency=1)
        size = 4 * 2**20

        async def slowly() -> AsyncIterator[bytes]:
            for _ in range(size // 2**16):
                await asyncio.sleep(0.02)
                yield bytes(2**16)

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            upload = asyncio.create_task(
                client.post("/small", content=slowly(), headers={"Content-Length": str(size)})
            )
            await wait_for(lambda: server.lingering == 1)
            # Answered, it only drops what comes: another client is served
            # (limit_concurrency counted it, and answered 503).
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as other:
                r = await other.get("/small")
                assert (r.status_code, r.text) == (200, "read whole")
            # A shutdown now lets the client finish sending and read its answer
            # (it was aborted: httpx raised ReadError).
            await server.close(timeout=10)
            r = await asyncio.wait_for(upload, 10)
            assert r.status_code == 413
        assert server.lingering == 0
