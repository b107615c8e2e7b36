"""The HTTP phase's protocol: requests, the hand-over at the 101, the transport's settings."""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import ssl
from typing import Any

import pytest

from wsserver import Request, Router, WebSocket
from wsserver.app.response import text
from wsserver.protocol.frames import Opcode, serialize_frame
from wsserver.server.http_protocol import HttpProtocol
from wsserver.server.websocket_protocol import WebSocketProtocol

from .conftest import StartServer
from .helpers import MASK, RawClient, echo_routes, slow_reader, upgrade_request, wait_for
from .test_keepalive import tls_contexts


def phases(server: Any) -> list[str]:
    return sorted(type(p).__name__ for p in server.connections)


async def test_the_transport_is_handed_over_at_the_101(run_server: StartServer) -> None:
    routes = Router()

    @routes.websocket("/")
    async def echo(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    server = await run_server(routes, write_limit=40_000)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    await wait_for(lambda: phases(server) == ["HttpProtocol"], what="the accept")
    (http,) = server.connections
    assert isinstance(http, HttpProtocol)
    transport = http.transport
    writer.write(upgrade_request("/"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 ")
    # The same transport now feeds a WebSocketProtocol; the HTTP one is gone.
    await wait_for(lambda: phases(server) == ["WebSocketProtocol"], what="the hand-over")
    (ws_protocol,) = server.connections
    assert isinstance(ws_protocol, WebSocketProtocol)
    assert ws_protocol.transport is transport
    assert transport.get_protocol() is ws_protocol
    # Write flow control: send() waits above write_limit until a quarter is left.
    assert transport.get_write_buffer_limits() == (10_000, 40_000)
    writer.close()


def health_and_echo() -> Router:
    """GET /health answers "ok"; /ws echoes."""
    routes = echo_routes("/ws")

    @routes.get("/health")
    async def health(request: Request) -> Any:
        return text("ok")

    return routes


async def test_keep_alive_requests_then_an_upgrade_on_one_connection(
    run_server: StartServer,
) -> None:
    routes = health_and_echo()

    server = await run_server(routes)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    # Two requests and the upgrade pipelined, with a frame right behind it.
    writer.write(
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 2
        + upgrade_request("/ws")
        + serialize_frame(Opcode.TEXT, b"right behind", mask=MASK)
    )
    for _ in range(2):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert await reader.readexactly(2) == b"ok"
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 ")
    client = RawClient(reader, writer)
    assert await client.recv_frame() == (Opcode.TEXT, True, False, b"right behind")
    client.send(Opcode.CLOSE, b"\x03\xe8")
    assert (await client.recv_frame())[0] == Opcode.CLOSE
    await client.expect_eof()


async def test_on_connect_then_the_hand_over_keeps_frames_sent_meanwhile(
    run_server: StartServer,
) -> None:
    routes = Router()
    release = asyncio.Event()
    deciding = asyncio.Event()

    async def slow_check(request: Request) -> None:
        deciding.set()
        await release.wait()
        request.ctx.user = "checked"

    @routes.websocket("/", on_connect=slow_check)
    async def greet(request: Request, ws: WebSocket) -> None:
        await ws.send(request.ctx.user)
        async for message in ws:
            await ws.send(message)

    server = await run_server(routes)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/") + serialize_frame(Opcode.TEXT, b"early", mask=MASK))
    await asyncio.wait_for(deciding.wait(), 5)
    await asyncio.sleep(0.05)  # (the frame read meanwhile)
    assert phases(server) == ["HttpProtocol"]  # the hook is still deciding
    release.set()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 ")
    client = RawClient(reader, writer)
    assert await client.recv_frame() == (Opcode.TEXT, True, False, b"checked")
    assert await client.recv_frame() == (Opcode.TEXT, True, False, b"early")
    writer.close()


async def test_an_error_after_a_head_request_still_has_its_body(run_server: StartServer) -> None:
    routes = Router()

    @routes.get("/health")
    async def health(request: Request) -> Any:
        return text("ok")

    server = await run_server(routes)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 2\r\n" in head
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), head
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    body = await asyncio.wait_for(reader.readexactly(length), 5)
    assert body.startswith(b"Bad request")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_shutdown_while_on_connect_decides_answers_503_only() -> None:
    from wsserver import serve

    routes = Router()
    release = asyncio.Event()
    deciding = asyncio.Event()

    async def hook(request: Request) -> None:
        deciding.set()
        await release.wait()

    started: list[WebSocket] = []

    @routes.websocket("/", on_connect=hook)
    async def never(request: Request, ws: WebSocket) -> None:
        started.append(ws)

    server = serve(routes, "127.0.0.1", 0, ping_interval=None)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/"))
    await asyncio.wait_for(deciding.wait(), 5)
    # The hook wakes in the same loop iteration in which shutdown answers 503.
    release.set()
    await server.close(timeout=0.5)
    data = await asyncio.wait_for(reader.read(), 5)
    assert data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), data
    assert data.count(b"HTTP/1.1") == 1
    await asyncio.sleep(0.05)
    assert started == [], "a handler ran for a connection answered 503"
    writer.close()


async def test_handlers_cut_off_past_the_shutdown_s_grace_are_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # uvicorn says "Cancel 3 running task(s), timeout graceful shutdown
    # exceeded" (at ERROR); wsserver cancelled them without a word, so a stop
    # that took all of shutdown_timeout said nothing of why (what to fix, or
    # that --shutdown-timeout is too short for it).
    from wsserver import serve

    routes = Router()
    entered: list[str] = []

    @routes.get("/poll")
    async def poll(request: Request) -> Any:
        entered.append("poll")
        await asyncio.sleep(60)

    @routes.websocket("/feed")
    async def feed(request: Request, ws: WebSocket) -> None:
        entered.append("feed")
        await asyncio.sleep(60)  # (the shutdown's 1001 not heard)

    server = serve(
        routes, "127.0.0.1", 0, ping_interval=None, shutdown_timeout=0.3, close_timeout=0.5
    )
    await server.start()
    clients = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
    requests = [b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n"] * 2 + [upgrade_request("/feed")]
    for (_, writer), request in zip(clients, requests, strict=True):
        writer.write(request)
    await wait_for(lambda: len(entered) == 3, what="the three handlers")
    await asyncio.wait_for(server.close(), 5)
    for _, writer in clients:
        writer.close()
    said = [r for r in caplog.records if "still running" in r.getMessage()]
    assert [r.getMessage() for r in said] == [
        "shutdown: 3 handlers still running after shutdown_timeout (0.3 s): cancelled: "
        "the application's task for /poll (2), the WebSocket handler of /feed"
    ]
    assert said[0].levelname == "WARNING"


@pytest.mark.parametrize("kind", ["router", "asgi"])
async def test_a_handler_cut_off_while_its_client_never_answers_the_close_is_said_so(
    caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    # With close_timeout at least shutdown_timeout (the defaults: 10 s both),
    # a handler waiting in recv() for a client that never answers the 1001 is
    # cut off at the grace's end: the line named it as if its own work held
    # the stop. It says its client did not answer the close (and an ASGI
    # app's WebSocket is named as one, not as "the application's task").
    from wsserver import serve

    entered: list[str] = []
    routes = Router()

    @routes.websocket("/feed")
    async def feed(request: Request, ws: WebSocket) -> None:
        entered.append("feed")
        async for _ in ws:
            pass

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            raise RuntimeError("no lifespan here")
        await receive()
        await send({"type": "websocket.accept"})
        entered.append("feed")
        while (await receive())["type"] != "websocket.disconnect":
            pass

    server = serve(
        routes if kind == "router" else app,
        "127.0.0.1",
        0,
        ping_interval=None,
        shutdown_timeout=0.3,
        close_timeout=1,
    )
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/feed"))
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    await wait_for(lambda: entered == ["feed"], what="the handler")
    await asyncio.wait_for(server.close(), 10)
    writer.close()
    said = [r.getMessage() for r in caplog.records if "still running" in r.getMessage()]
    what = "WebSocket handler" if kind == "router" else "WebSocket application"
    assert said == [
        "shutdown: 1 handler still running after shutdown_timeout (0.3 s): cancelled: "
        f"the {what} of /feed, its client not answering the close"
    ]


async def test_a_control_character_in_any_header_value_gives_400(run_server: StartServer) -> None:
    routes = Router()

    @routes.get("/health")
    async def health(request: Request) -> Any:
        return text("ok")

    server = await run_server(routes)
    # In any header, those whose values are shared between requests included
    # (User-Agent), whether or not a valid value of theirs came before.
    for name in (b"X-Thing", b"User-Agent"):
        for value in (b"a\x1bb", b"\x7f", b"x\x01"):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + name + b": " + value
            writer.write(head + b"\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), 5)
            assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), (name, value, data)
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                b"GET /health HTTP/1.1\r\nHost: x\r\n" + name + b": ok\r\nConnection: close\r\n\r\n"
            )
            data = await asyncio.wait_for(reader.read(), 5)
            assert data.startswith(b"HTTP/1.1 200 OK\r\n"), (name, data)
            writer.close()
    # A tab inside a value is allowed.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Thing: a\tb\r\nConnection: close\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200 OK\r\n")
    writer.close()


# ------------------------------------------------------- limit_concurrency


async def _get(port: int, path: str = "/health") -> tuple[bytes, asyncio.StreamReader, Any]:
    """One keep-alive GET on a new connection: (response head and body, reader, writer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    fields = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
    body = await reader.readexactly(int(fields.get(b"content-length", b"0")))
    return head + body, reader, writer


async def test_limit_concurrency_answers_503_beyond_its_connections(
    run_server: StartServer,
) -> None:
    import websockets
    from websockets.exceptions import InvalidStatus

    routes = health_and_echo()

    server = await run_server(routes, limit_concurrency=2, metrics_path="/metrics")
    url = f"ws://127.0.0.1:{server.port}/ws"
    first = await websockets.connect(url)  # one
    answer, _, second = await _get(server.port)  # two, kept alive
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    answer, reader, writer = await _get(server.port)  # three: over the limit
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"\r\nretry-after: 1\r\n" in answer.lower()
    assert b"\r\nconnection: close\r\n" in answer.lower()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # and closed
    writer.close()
    try:  # an upgrade too
        await websockets.connect(url)
        raise AssertionError("the upgrade over the limit was accepted")
    except InvalidStatus as exc:
        assert exc.response.status_code == 503
    # The server's own endpoints still answer: overload is when they are needed.
    answer, _, writer = await _get(server.port, "/metrics")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    writer.close()
    await first.send("still served")
    assert await asyncio.wait_for(first.recv(), 5) == "still served"
    await first.close()
    second.close()
    for _ in range(200):
        if not server.connections:
            break
        await asyncio.sleep(0.01)
    answer, _, writer = await _get(server.port)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    writer.close()


async def test_limit_concurrency_counts_asgi_tasks_that_outlive_their_response(
    run_asgi: StartServer,
) -> None:
    release = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        await release.wait()  # background work after the response

    server = await run_asgi(app, limit_concurrency=2)
    for _ in range(2):
        answer, _, writer = await _get(server.port, "/")
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        writer.close()
    for _ in range(200):
        if not server.connections:
            break
        await asyncio.sleep(0.01)
    assert not server.connections and len(server.app_tasks) == 2
    answer, _, writer = await _get(server.port, "/")  # one connection, but two tasks
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    writer.close()
    release.set()
    for _ in range(200):
        if not server.app_tasks:
            break
        await asyncio.sleep(0.01)
    answer, _, writer = await _get(server.port, "/")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    writer.close()


async def test_limit_concurrency_does_not_count_tls_connections_it_closed(
    run_server: StartServer,
) -> None:
    # A pooled client (a requests.Session's idle connection) reads nothing
    # until it sends again, so it does not answer the close_notify that the
    # server sends at timeout_keep_alive: TLS waits for that answer (until
    # close_timeout). The connection, answered and closed, counted as load
    # all that time: the next client got 503 where over plain TCP it got 200.
    server_tls, client_tls = tls_contexts()
    server = await run_server(
        health_and_echo(), limit_concurrency=1, timeout_keep_alive=0.2, ssl=server_tls
    )

    def idle_pooled_client() -> ssl.SSLSocket:
        sock = client_tls.wrap_socket(
            socket.create_connection(("127.0.0.1", server.port)), server_hostname="127.0.0.1"
        )
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")
        # The server's close_notify comes (read by no one).
        assert select.select([sock], [], [], 5)[0] == [sock]
        return sock

    pooled = await asyncio.to_thread(idle_pooled_client)
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_tls, server_hostname="127.0.0.1"
        )
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
        writer.close()
    finally:
        pooled.close()
    await wait_for(lambda: not server.connections and server.lingering == 0, what="the closes")


@pytest.mark.parametrize("tls", [False, True])
async def test_limit_concurrency_counts_a_closed_connection_whose_answer_is_unsent(
    run_server: StartServer, tls: bool
) -> None:
    # A client that asks for a large answer and reads none of it: the server
    # writes it whole and closes (Connection: close; over TCP its end goes
    # after the answer, what comes dropped meanwhile). Over plain TCP the
    # transport holds the answer, and the connection is load until it is sent
    # (or close_timeout); over asyncio's TLS the TLS transport had passed it
    # on to the socket's transport under it, its own buffer empty: the
    # connection was taken for answered (no load), and every such client got
    # past limit_concurrency, each holding its whole answer in memory.
    routes = Router()

    @routes.get("/big")
    async def big(request: Request) -> Any:
        return text("x" * 8_000_000)

    server_tls, client_tls = tls_contexts()
    settings: dict[str, Any] = {"ssl": server_tls} if tls else {}
    server = await run_server(routes, limit_concurrency=1, close_timeout=2, **settings)

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if not tls:
            return await asyncio.open_connection("127.0.0.1", server.port)
        return await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_tls, server_hostname="127.0.0.1"
        )

    _reader, writer = await connect()
    writer.transport.pause_reading()  # (it reads nothing of the answer)
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await wait_for(
        lambda: (
            len(server.connections) == 1
            and all(p.transport.is_closing() or p.lingering for p in server.connections)
        ),
        what="the answer written, the connection closed",
    )
    await _the_next_client_is_over_the_limit(server, writer, connect, "/big")


async def _the_next_client_is_over_the_limit(
    server: Any, writer: asyncio.StreamWriter, connect: Any, path: str
) -> None:
    """The connection of ``writer`` (closed, its answer unsent) is load: with
    ``limit_concurrency=1``, a next client's GET of ``path`` gets 503."""
    await asyncio.sleep(0.1)
    assert server.lingering == 0, "a connection whose answer is unsent taken for no load"
    other_reader, other_writer = await connect()
    other_writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    answer = await asyncio.wait_for(other_reader.read(), 5)
    assert answer.startswith(b"HTTP/1.1 503 "), answer[:100]
    other_writer.close()
    writer.transport.abort()
    await wait_for(lambda: not server.connections and server.lingering == 0, what="the closes")


async def _the_next_client_is_served(connect: Any) -> None:
    """With ``limit_concurrency=1``, a next client's ``GET /`` is answered (the
    connection lingering meanwhile is no load)."""
    other_reader, other_writer = await connect()
    other_writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(other_reader.read(), 10)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer[:100]
    other_writer.close()


def _big_answers(size: int, headers: dict[str, str] | None = None) -> Router:
    """``GET /big`` and ``POST /big`` (its body not read, a stream=True route)
    answer ``size`` bytes, with ``headers``; ``GET /`` answers a few."""
    routes = Router()

    @routes.get("/big")
    async def big_answer(request: Request) -> Any:
        return text("x" * size, headers=headers)

    @routes.post("/big", stream=True)
    async def big_answer_unread(request: Request) -> Any:
        return text("x" * size, headers=headers)  # (its body not read)

    @routes.get("/")
    async def page(request: Request) -> Any:
        return text("hello")

    return routes


@pytest.mark.parametrize("refused", ["denied upgrade", "unread body"])
async def test_limit_concurrency_counts_a_lingering_connection_whose_answer_is_unsent(
    run_server: StartServer, refused: str
) -> None:
    # The same over plain TCP for a connection that lingers (its end sent
    # after the answer, what its client sends dropped): a denied upgrade
    # (since fa6bb6c) or a request whose body the handler left unread. It
    # was counted as no load at once, its large answer unsent, held in
    # memory: the next client got past limit_concurrency.
    routes = Router()
    big = "x" * 8_000_000

    async def on_connect(request: Request) -> Any:
        return text(big, status=401)

    @routes.websocket("/ws", on_connect=on_connect)
    async def handler(request: Request, ws: WebSocket) -> None:
        pass

    @routes.post("/big", stream=True)
    async def big_answer(request: Request) -> Any:
        return text(big)  # (its body not read)

    @routes.get("/")
    async def page(request: Request) -> Any:
        return text("hello")

    server = await run_server(routes, limit_concurrency=1, close_timeout=2)
    _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.transport.pause_reading()  # (it reads nothing of the answer)
    if refused == "denied upgrade":
        writer.write(upgrade_request("/ws"))
    else:
        writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc")
    (connection,) = server.connections
    assert isinstance(connection, HttpProtocol)
    await wait_for(lambda: connection.lingering, what="the answer written, lingering")
    await _the_next_client_is_over_the_limit(
        server, writer, lambda: asyncio.open_connection("127.0.0.1", server.port), "/"
    )


@pytest.mark.parametrize("write_limit", [None, 8 << 20], ids=["paused", "never paused"])
@pytest.mark.parametrize("ends", ["pipelined past a close", "unread body"])
async def test_a_lingering_connection_whose_answer_has_gone_is_no_load(
    run_server: StartServer, ends: str, write_limit: int | None
) -> None:
    # A client takes a large answer that ends its connection (closed on with
    # the answer unsent: load, above), having sent more past it (a pipelined
    # request, or a body left unread), reads it to the server's end, and
    # keeps its socket open. The server lingers for its end (b2528c2), and
    # the connection stayed load till close_timeout: with limit_concurrency=1
    # every next client got a 503 for 10 s, where before it was served once
    # the answer had gone. With a write_limit above the answer, writing was
    # never paused: resume_writing() came only once the limits were set to 0
    # at the close.
    size = 4_000_000
    limits: dict[str, Any] = {} if write_limit is None else {"write_limit": write_limit}
    server = await run_server(_big_answers(size), limit_concurrency=1, close_timeout=10, **limits)
    loop = asyncio.get_running_loop()
    sock = await slow_reader(server.port)
    try:
        if ends == "unread body":
            request = b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc"
        else:
            request = (
                b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
            )
        await loop.sock_sendall(sock, request)
        await wait_for(
            lambda: any(p.lingering for p in server.connections), what="closed on, lingering"
        )
        assert server.lingering == 0  # (its answer unsent: load)
        received = 0
        while chunk := await asyncio.wait_for(loop.sock_recv(sock, 65536), 5):
            received += len(chunk)
        assert received > size
        # Its answer all gone, the client's socket still open: no load.
        await wait_for(lambda: server.lingering == 1, timeout=3, what="counted as answered")
        await _the_next_client_is_served(lambda: asyncio.open_connection("127.0.0.1", server.port))
        assert len(server.connections) == 1  # (the first, still lingering)
    finally:
        sock.close()
    await wait_for(lambda: not server.connections and server.lingering == 0, what="the close")


async def test_a_tls_connection_answered_before_its_body_is_no_load_once_the_answer_has_gone(
    run_server: StartServer,
) -> None:
    # Over TLS, as over TCP (above): a handler answers before reading the
    # body, and the server lingers, dropping what comes, while the client
    # still sends (LINGER_QUIET). Its answer had not gone at the close (load
    # then); once it has, the connection is no load, as the README says. It
    # stayed load till the client's close or close_timeout: a client that
    # took the answer and still sent its body got every next client a 503.
    size = 4_000_000
    server_tls, client_tls = tls_contexts()
    server = await run_server(
        _big_answers(size), limit_concurrency=1, close_timeout=30, ssl=server_tls
    )

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_tls, server_hostname="127.0.0.1"
        )

    reader, writer = await connect()
    writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc")

    async def send_the_body_slowly() -> None:
        while True:
            await asyncio.sleep(0.5)
            writer.write(b"d")

    sending = asyncio.ensure_future(send_the_body_slowly())
    try:
        await wait_for(
            lambda: any(p.lingering for p in server.connections), what="closed on, lingering"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 "), head
        received = 0
        while received < size:
            received += len(await asyncio.wait_for(reader.read(65536), 10))
        # Its answer all gone, the client still sending: no load.
        await wait_for(lambda: server.lingering == 1, timeout=6, what="counted as answered")
        await _the_next_client_is_served(connect)
    finally:
        sending.cancel()
        writer.close()
    await wait_for(lambda: not server.connections and server.lingering == 0, 15, what="the close")


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
async def test_a_client_that_took_a_closing_answer_and_keeps_its_socket_is_no_load(
    run_server: StartServer, unix: bool, tmp_path: Any
) -> None:
    # A large answer with Connection: close, still going out as the server
    # closes: it sends its end after it and lingers, in case the client
    # pipelines as it reads (b2528c2). A client that reads it all, its end
    # too, and sends nothing more, but keeps its socket: since b2528c2 the
    # connection stayed, load (limit_concurrency) and a file descriptor,
    # until close_timeout, then was aborted; before, it closed once the
    # answer was sent. Once the client has acknowledged all of it, and sent
    # nothing past its request, the server closes (RFC 9112 9.6).
    size = 4 << 20
    routes = _big_answers(size, {"Connection": "close"})
    path = str(tmp_path / "s.sock")
    where: dict[str, Any] = {"uds": path} if unix else {}
    server = await run_server(routes, limit_concurrency=1, close_timeout=30, **where)

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if unix:
            return await asyncio.open_unix_connection(path)
        return await asyncio.open_connection("127.0.0.1", server.port)

    sock = socket.socket(socket.AF_UNIX if unix else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.setblocking(False)
    address: Any = path if unix else ("127.0.0.1", server.port)
    await asyncio.get_running_loop().sock_connect(sock, address)
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 16)
    try:
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200 ") and b"connection: close" in head.lower(), head
        body = await asyncio.wait_for(reader.read(), 10)  # (to the server's end)
        assert len(body) == size
        # It keeps its socket: the server's side closes all the same, well
        # within close_timeout, and the next client is served.
        await wait_for(lambda: not server.connections, timeout=10, what="the server's close")
        await _the_next_client_is_served(connect)
    finally:
        writer.close()


async def test_pipelined_requests_from_a_client_that_does_not_read_stay_bounded(
    run_server: StartServer,
) -> None:
    # 200 pipelined requests for 100 KB each, and the client reads nothing:
    # the server answered them all into its write buffer (96 MB for 1000).
    # Reading pauses while the write buffer is above write_limit.
    routes = Router()
    body = "x" * 100_000

    @routes.get("/big")
    async def big(request: Request) -> Any:
        return text(body)

    write_limit = 65536
    server = await run_server(routes, write_limit=write_limit)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * 200)
    await writer.drain()
    await asyncio.sleep(0.5)
    (http,) = server.connections
    assert isinstance(http, HttpProtocol)
    assert http.transport.get_write_buffer_size() <= write_limit + len(body) + 1000
    # Reading, the client gets every answer.
    for _ in range(200):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert await asyncio.wait_for(reader.readexactly(len(body)), 5) == body.encode()
    writer.close()


async def test_a_client_taking_its_pipelined_answers_slowly_is_not_idle(
    run_server: StartServer,
) -> None:
    # While reading waited for the client to take the answers before, the
    # keep-alive timer ran: a client reading steadily but slowly had its
    # connection closed with its later requests unanswered.

    routes = Router()
    body = "y" * 2_000_000

    @routes.get("/big")
    async def big(request: Request) -> Any:
        return text(body)

    server = await run_server(routes, timeout_keep_alive=0.3)
    sock = await slow_reader(server.port, 8192)
    reader, writer = await asyncio.open_connection(sock=sock, limit=65536)
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
    received = 0
    while received < 3 * len(body):
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        assert chunk, f"closed after {received} bytes"
        received += len(chunk) - chunk.count(b"HTTP/1.1 200 OK")  # (about: heads are small)
        await asyncio.sleep(0.02)
    writer.close()


@pytest.mark.parametrize("kind", ["asgi", "router"])
async def test_a_shutdown_at_any_turn_of_a_request_its_client_left_says_no_error(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A client sends its request and leaves (its FIN read with it); the
    # shutdown comes k turns of the loop later, for every k until the
    # connection is gone by itself. With the response begun (its head held)
    # and the app's task ended on ClientDisconnected, its done callback not
    # yet run, the connection was neither busy nor idle: a 503 was written
    # over the response under way, an ERROR ("cannot send response <Response
    # 503 ...>: can't handle event type Response ... state=SEND_BODY").
    from wsserver import serve

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"hi"})

    routes = Router()

    @routes.get("/")
    async def page(request: Request) -> Any:
        return text("hi")

    app: Any = routes if kind == "router" else asgi
    caplog.set_level(logging.WARNING)
    met = 0
    for turns in range(100):
        server = serve(app, "127.0.0.1", 0, ping_interval=None, lifespan="off")
        await server.start()
        # (Both in before the loop takes the connection.)
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(turns):
            await asyncio.sleep(0)
        gone = met and not server.connections  # (taken, answered and closed by itself)
        met += bool(server.connections)
        await asyncio.wait_for(server.close(timeout=5), 10)
        said = [f"{r.levelname} {r.getMessage()}" for r in caplog.records]
        assert said == [], (turns, said)
        if gone:
            break
    assert met >= 2, met  # (the shutdown came while the connection was there, several times)
