"""The Sanic-style document's patterns, written as the document writes them, through real sockets.

Each pattern is a small ``Router`` of its own, served by the ``run_server`` fixture and
driven by real clients (the ``websockets`` client, aiohttp for HTTP); the examples that
follow the document (:mod:`examples.welcome_echo`, :mod:`examples.stream`,
:mod:`examples.secure`) are checked message by message. The seed document is not in this
repository: where its strings are needed, these are the project's texts (see the examples'
docstrings).

Every test also checks that the server logged no error, its shutdown included
(:func:`server_errors`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from json import loads
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from examples import secure, stream, welcome_echo
from wsserver import Request, Router, Server, WebSocket
from wsserver.protocol.http import ErrorFormat, Response
from wsserver.response import text

from .conftest import StartServer
from .test_examples import TIMEOUT, expect_denied, http_get, iso_age, recv_json

#: The loggers whose ERROR records fail a test: the server's, and the examples'.
LOGGERS = ("wsserver", "examples")


class ServerErrors:
    """The ERROR records of :data:`LOGGERS` in every phase of a test."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        #: Records a test expected (and checked); the others fail it.
        self.expected: list[logging.LogRecord] = []

    def records(self) -> list[logging.LogRecord]:
        return [
            record
            for when in ("setup", "call", "teardown")
            for record in self.caplog.get_records(when)
            if record.levelno >= logging.ERROR and record.name.startswith(LOGGERS)
        ]


@pytest.fixture(autouse=True)
def server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[ServerErrors]:
    """Fail the test if the server logged an error it did not expect.

    An autouse fixture is set up before ``run_server`` and so torn down after it: what the
    servers log while they shut down is checked too.
    """
    caplog.set_level(logging.ERROR, logger="wsserver")
    errors = ServerErrors(caplog)
    yield errors
    unexpected = [r for r in errors.records() if r not in errors.expected]
    assert not unexpected, [r.getMessage() for r in unexpected]


@pytest.fixture(autouse=True)
def _reset_rate_limits() -> Iterator[None]:
    secure.message_times.clear()
    yield
    secure.message_times.clear()


Handler = Callable[[Request, WebSocket], Awaitable[None]]


async def feed(request: Request, ws: WebSocket) -> None:
    """The document's echo handler."""
    async for msg in ws:
        await ws.send(msg)


async def serve_one(run_server: StartServer, handler: Handler, **options: Any) -> str:
    """Serve ``handler`` alone at ``/ws`` (with the route ``options``); its URL."""
    routes = Router()
    routes.add_websocket_route(handler, "/ws", **options)
    server = await run_server(routes)
    return f"ws://127.0.0.1:{server.port}/ws"


async def close_normally(ws: Any) -> None:
    """Close from the client: the server answers 1000 with no reason."""
    await ws.close()
    assert (ws.close_code, ws.close_reason) == (1000, "")


async def expect_close(ws: Any, code: int, reason: str) -> None:
    """The server closes ``ws`` with ``code`` and ``reason`` before sending anything more."""
    with pytest.raises(ConnectionClosed) as info:
        message = await asyncio.wait_for(ws.recv(), TIMEOUT)
        pytest.fail(f"a message instead of the close: {message!r}")
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (code, reason)


def assert_shape(data: dict[str, Any], /, **types: type | tuple[type, ...]) -> None:
    """``data`` has exactly the keys of ``types``, each value of its type."""
    assert data.keys() == types.keys(), data
    for key, kind in types.items():
        assert isinstance(data[key], kind), (key, data)


def assert_recent(timestamp: str) -> None:
    """An ISO 8601 timestamp with a zone, of the last few seconds."""
    assert datetime.fromisoformat(timestamp).isoformat() == timestamp
    assert -1 < iso_age(timestamp) < 5, timestamp


# ====================================================== the handler patterns


async def test_echo_with_async_for(run_server: StartServer) -> None:
    async with websockets.connect(await serve_one(run_server, feed)) as ws:
        for message in ("hello", "", "é" * 300, b"\x00\xff"):
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == message
        await close_normally(ws)


async def test_echo_with_while_true_recv(run_server: StartServer) -> None:
    """The loop never ends by itself: the client's close ends it with ConnectionClosedOK,
    which the server takes as the end of the handler (close 1000, nothing logged)."""
    ended = asyncio.Event()

    async def echo_loop(request: Request, ws: WebSocket) -> None:
        try:
            while True:
                data = await ws.recv()
                await ws.send(data)
        finally:
            ended.set()

    async with websockets.connect(await serve_one(run_server, echo_loop)) as ws:
        for message in ("ping", b"\x01\x02"):
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == message
        await close_normally(ws)
    await asyncio.wait_for(ended.wait(), TIMEOUT)


async def test_send_json_dumps_and_send_dict(run_server: StartServer) -> None:
    async def notify(request: Request, ws: WebSocket) -> None:
        await ws.send(json.dumps({"type": "welcome", "message": "hi", "count": 1}))
        await ws.send({"type": "update", "items": [1, 2], "ok": True})

    async with websockets.connect(await serve_one(run_server, notify)) as ws:
        first = await asyncio.wait_for(ws.recv(), TIMEOUT)
        second = await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert isinstance(first, str) and isinstance(second, str)  # both text frames
        assert json.loads(first) == {"type": "welcome", "message": "hi", "count": 1}
        assert json.loads(second) == {"type": "update", "items": [1, 2], "ok": True}
        await expect_close(ws, 1000, "")  # the handler returned


async def test_ping_pong_waiter_and_latency(run_server: StartServer) -> None:
    async def heartbeat(request: Request, ws: WebSocket) -> None:
        assert ws.latency == 0
        pong_waiter = await ws.ping(b"x")
        latency = await pong_waiter
        await ws.send({"latency": latency, "ws_latency": ws.latency})

    async with websockets.connect(await serve_one(run_server, heartbeat)) as ws:
        answer = await recv_json(ws)
        assert_shape(answer, latency=float, ws_latency=float)
        assert 0 < answer["latency"] < TIMEOUT
        assert answer["ws_latency"] == answer["latency"]
        await expect_close(ws, 1000, "")


async def test_close_with_code_and_reason(run_server: StartServer) -> None:
    async def refuse(request: Request, ws: WebSocket) -> None:
        await ws.close(code=1008, reason="Policy violation")

    async with websockets.connect(await serve_one(run_server, refuse)) as ws:
        await expect_close(ws, 1008, "Policy violation")


async def test_recv_timeout_raises_timeout_error_and_the_connection_stays_usable(
    run_server: StartServer,
) -> None:
    """The document's ``recv(timeout=...)``: ours raises TimeoutError rather than returning
    None (README, The WebSocket object)."""

    async def wait_a_little(request: Request, ws: WebSocket) -> None:
        try:
            data = await ws.recv(timeout=0.05)
        except TimeoutError:
            await ws.send("timeout")
            data = await ws.recv(timeout=TIMEOUT)
        await ws.send(f"got {data!s}")

    async with websockets.connect(await serve_one(run_server, wait_a_little)) as ws:
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "timeout"
        await ws.send("late")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "got late"
        await expect_close(ws, 1000, "")


# ===================================================== the route options


def tagged(label: str) -> Callable[[Any], Any]:
    """A decorator for ``apply=[...]`` that notes ``label`` in ``request.ctx.chain``."""

    def decorator(handler: Any) -> Any:
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Any:
            request.ctx.chain = [*getattr(request.ctx, "chain", []), label]
            return await handler(request, *args, **kwargs)

        return wrapper

    return decorator


def require_token(handler: Any) -> Any:
    """The document's kind of ``apply`` decorator: refuse a client without ``?token=``."""

    async def wrapper(request: Request, ws: WebSocket) -> None:
        if request.args.get("token") != "t":
            await ws.close(1008, "Token required")
            return
        await handler(request, ws)

    return wrapper


async def test_apply_on_a_websocket_route_in_order(run_server: StartServer) -> None:
    async def chain(request: Request, ws: WebSocket) -> None:
        await ws.send({"chain": request.ctx.chain})

    url = await serve_one(run_server, chain, apply=[tagged("first"), require_token, tagged("last")])
    # The first decorator wraps the handler, each next one wraps that: the last runs first.
    async with websockets.connect(url + "?token=t") as ws:
        assert await recv_json(ws) == {"chain": ["last", "first"]}
        await expect_close(ws, 1000, "")
    async with websockets.connect(url) as ws:
        await expect_close(ws, 1008, "Token required")


async def test_apply_on_an_http_route_in_order(run_server: StartServer) -> None:
    from wsserver.response import json  # the document's import

    routes = Router()

    @routes.get("/api/chain", apply=[tagged("first"), tagged("second")])
    async def chain(request: Request) -> Any:
        return json({"chain": request.ctx.chain})

    server = await run_server(routes)
    status, headers, body = await http_get(server.port, "/api/chain")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert loads(body) == {"chain": ["second", "first"]}


async def test_response_json_is_the_documents_import(run_server: StartServer) -> None:
    from wsserver.response import json, json_response

    assert json is json_response
    routes = Router()

    @routes.get("/api/status")
    async def status(request: Request) -> Any:
        return json({"status": "ok", "connections": 0})

    @routes.get("/api/created")
    async def created(request: Request) -> Any:
        return json({"id": 7}, status=201, headers={"X-Note": "made"})

    server = await run_server(routes)
    code, headers, body = await http_get(server.port, "/api/status")
    assert code == 200 and headers["Content-Type"].startswith("application/json")
    assert loads(body) == {"status": "ok", "connections": 0}
    code, headers, body = await http_get(server.port, "/api/created")
    assert code == 201 and headers["X-Note"] == "made"
    assert loads(body) == {"id": 7}


def check_error_body(
    error_format: ErrorFormat, status: int, content_type: str, body: str | bytes | bytearray
) -> None:
    """An error response's body in ``error_format``."""
    text = body if isinstance(body, str) else bytes(body).decode()
    if error_format == "json":
        assert content_type.startswith("application/json"), content_type
        document = json.loads(text)
        assert_shape(document, error=str, status=int, message=str)
        assert document["status"] == status and document["error"] and document["message"]
    elif error_format == "html":
        assert content_type.startswith("text/html"), content_type
        assert text.startswith("<!doctype html>") and f"<h1>{status} " in text, text
    else:
        assert content_type.startswith("text/plain"), content_type
        assert text.endswith("\n") and not text.startswith(("<", "{")), text


ERROR_FORMATS: list[ErrorFormat] = ["text", "json", "html"]


@pytest.mark.parametrize("error_format", ERROR_FORMATS)
async def test_error_format_on_a_websocket_route(
    run_server: StartServer, error_format: ErrorFormat
) -> None:
    """A denied handshake (an Origin the route does not admit: 403) in the route's format."""
    url = await serve_one(
        run_server, feed, origins=["https://app.example"], error_format=error_format
    )
    denied = await expect_denied(url, 403, origin=Origin("https://evil.example"))
    response = denied.response
    check_error_body(error_format, 403, response.headers["Content-Type"], response.body)
    async with websockets.connect(url, origin=Origin("https://app.example")) as ws:
        await ws.send("fine")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "fine"
        await close_normally(ws)


@pytest.mark.parametrize("error_format", ERROR_FORMATS)
async def test_error_format_on_an_http_route(
    run_server: StartServer, server_errors: ServerErrors, error_format: ErrorFormat
) -> None:
    """A handler that raises: 500 in the route's format, and its traceback logged once."""
    routes = Router()

    @routes.get("/api/boom", error_format=error_format)
    async def boom(request: Request) -> Any:
        raise RuntimeError("boom")

    server = await run_server(routes)
    status, headers, body = await http_get(server.port, "/api/boom")
    assert status == 500
    check_error_body(error_format, 500, headers["Content-Type"], body)
    logged = server_errors.records()
    assert len(logged) == 1 and "/api/boom" in logged[0].getMessage()
    assert logged[0].exc_info is not None and logged[0].exc_info[0] is RuntimeError
    server_errors.expected += logged


async def test_error_format_on_a_plain_get_of_a_websocket_route(run_server: StartServer) -> None:
    """The README says ``error_format`` shapes the route's HTTP error responses; the 426 that
    answers a GET without the upgrade is one."""
    routes = Router()
    routes.add_websocket_route(feed, "/ws", error_format="json")
    server = await run_server(routes)
    status, headers, body = await http_get(server.port, "/ws")
    assert status == 426
    check_error_body("json", 426, headers["Content-Type"], body)


@pytest.mark.parametrize("error_format", ERROR_FORMATS)
async def test_error_format_of_a_405_is_the_paths_route(
    run_server: StartServer, error_format: ErrorFormat
) -> None:
    """A method the path's routes do not take gets 405 in their error_format, with Allow."""
    routes = Router()

    async def page(request: Request) -> Response:
        return text("ok")

    routes.add_route(page, "/page", methods=["GET"], error_format=error_format)
    server = await run_server(routes)
    status, headers, body = await http_get(server.port, "/page", "DELETE")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    check_error_body(error_format, 405, headers["Content-Type"], body)


@pytest.mark.parametrize("error_format", ERROR_FORMATS)
@pytest.mark.parametrize("framing", ["length", "chunked", "stream"])
async def test_error_format_of_a_413_is_the_routes(
    run_server: StartServer, error_format: ErrorFormat, framing: str
) -> None:
    """A body over the route's max_body_size gets its 413 in the route's error_format (it was
    plain text but for a streamed route's that ran over as it read)."""
    routes = Router()

    async def upload(request: Request) -> Response:
        return text("ok")

    routes.add_route(
        upload,
        "/upload",
        methods=["POST"],
        error_format=error_format,
        max_body_size=10,
        stream=framing == "stream",
    )
    server = await run_server(routes)
    body = b"x" * 100
    framed = (
        b"Transfer-Encoding: chunked\r\n\r\n64\r\n" + body + b"\r\n0\r\n\r\n"
        if framing == "chunked"
        else b"Content-Length: 100\r\n\r\n" + body
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\n" + framed)
    answer = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    head, _, content = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), answer
    fields = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:])
    check_error_body(error_format, 413, fields["Content-Type"], content)


# ============================================================ the examples


async def test_welcome_echo(run_server: StartServer) -> None:
    server = await run_server(welcome_echo.routes)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == (
            "Welcome to the WebSocket echo server!"
        )
        exchanges: list[tuple[str | bytes, str | bytes]] = [
            ("hello", "Echo: hello"),
            ("", "Echo: "),
            ("café ☕", "Echo: café ☕"),
            (b"\x00\xff", b"Echo: \x00\xff"),
        ]
        for message, echo in exchanges:
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == echo
        await close_normally(ws)


async def test_welcome_echo_page(run_server: StartServer) -> None:
    server = await run_server(welcome_echo.routes)
    status, headers, body = await http_get(server.port, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    for part in (
        "<title>wsserver welcome echo</title>",
        '<input id="message"',
        '<button id="send"',
        '<ul id="log">',
        'location.protocol === "https:" ? "wss:" : "ws:"',
        'new URL("ws", location.href)',
    ):
        assert part in body, part
    assert "://cdn" not in body and "<script src" not in body  # self-contained
    status, headers, body = await http_get(server.port, "/", method="HEAD")
    assert (status, body) == (200, "") and headers["Content-Type"].startswith("text/html")


def stream_url(server: Server) -> str:
    return f"ws://127.0.0.1:{server.port}/ws/data-stream?interval=0.05"


async def next_of_type(ws: Any, kind: str) -> dict[str, Any]:
    """The next message of type ``kind``; readings in between must be ``data``."""
    while (message := await recv_json(ws))["type"] != kind:
        assert message["type"] == "data", message
    return message


DATA_SHAPE: dict[str, type | tuple[type, ...]] = {
    "type": str,
    "timestamp": str,
    "value": float,
    "sensor_id": str,
    "temperature": float,
    "humidity": float,
    "unit": str,
    "seq": int,
}


async def test_stream_messages(run_server: StartServer) -> None:
    server = await run_server(stream.routes)
    async with websockets.connect(stream_url(server)) as ws:
        connected = await recv_json(ws)
        assert_shape(connected, type=str, message=str, timestamp=str, sensors=list, interval=float)
        assert connected["type"] == "connected" and connected["interval"] == 0.05
        assert connected["sensors"] and all(isinstance(s, str) for s in connected["sensors"])
        assert_recent(connected["timestamp"])

        data = await next_of_type(ws, "data")
        assert_shape(data, **DATA_SHAPE)
        assert data["sensor_id"] in connected["sensors"]
        assert_recent(data["timestamp"])

        await ws.send(json.dumps({"type": "subscribe", "sensor_id": "sensor_1"}))
        subscribed = await next_of_type(ws, "subscribed")
        assert_shape(subscribed, type=str, sensor_id=str, message=str)
        assert subscribed["sensor_id"] == "sensor_1"
        data = await next_of_type(ws, "data")
        assert_shape(data, **DATA_SHAPE)
        assert data["sensor_id"] == "sensor_1"

        await ws.send("{not json")
        assert await next_of_type(ws, "error") == {
            "type": "error",
            "message": "Invalid message format",
        }
        assert (await next_of_type(ws, "data"))["sensor_id"] == "sensor_1"  # it goes on
        await close_normally(ws)


def secure_url(server: Server, path: str, query: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}{query}"


@pytest.mark.parametrize(
    ("query", "headers", "reason", "status"),
    [
        ("", None, "Authentication required", 401),
        ("?token=", None, "Authentication required", 401),
        ("", {"Authorization": "Bearer "}, "Authentication required", 401),
        ("", {"Authorization": "Basic dXNlcjpwYXNz"}, "Authentication required", 401),
        ("?token=wrong", None, "Invalid token", 403),
        ("", {"Authorization": "Bearer wrong"}, "Invalid token", 403),
        ("", {"Authorization": "wrong"}, "Invalid token", 403),
    ],
)
async def test_secure_refusals_on_both_paths(
    run_server: StartServer,
    query: str,
    headers: dict[str, str] | None,
    reason: str,
    status: int,
) -> None:
    server = await run_server(secure.routes)
    # The document's: the 101, then close 1008 with the reason.
    url = secure_url(server, "/ws/secure", query)
    async with websockets.connect(url, additional_headers=headers) as ws:
        await expect_close(ws, 1008, reason)
    # Ours: no WebSocket at all, an HTTP status instead.
    url = secure_url(server, "/ws/secure/handshake", query)
    denied = await expect_denied(url, status, additional_headers=headers)
    assert denied.response.headers["Content-Type"].startswith("text/plain")
    assert ("WWW-Authenticate" in denied.response.headers) == (status == 401)


@pytest.mark.parametrize("path", ["/ws/secure", "/ws/secure/handshake"])
@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("?token=valid_token", None),
        ("", {"Authorization": "Bearer valid_token"}),
        ("", {"Authorization": "valid_token"}),
    ],
)
async def test_secure_accepted_messages_on_both_paths(
    run_server: StartServer, path: str, query: str, headers: dict[str, str] | None
) -> None:
    server = await run_server(secure.routes)
    async with websockets.connect(
        secure_url(server, path, query), additional_headers=headers
    ) as ws:
        assert await recv_json(ws) == {
            "type": "authenticated",
            "user": "demo_user",
            "message": "Authenticated as demo_user",
        }
        await ws.send("hello")
        echoed = await recv_json(ws)
        assert_shape(echoed, type=str, user=str, message=str, timestamp=str)
        assert (echoed["type"], echoed["user"], echoed["message"]) == (
            "message",
            "demo_user",
            "hello",
        )
        assert_recent(echoed["timestamp"])
        await ws.send(b"\x01")
        assert await recv_json(ws) == {
            "type": "error",
            "message": "Binary messages are not supported",
        }
        await close_normally(ws)


async def send_within_the_limit(ws: Any) -> None:
    """Send RATE_LIMIT messages, each answered."""
    assert (await recv_json(ws))["type"] == "authenticated"
    for i in range(secure.RATE_LIMIT):
        await ws.send(f"m{i}")
        assert (await recv_json(ws))["message"] == f"m{i}"


async def test_secure_rate_limit_closes_the_documents_connection(
    run_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secure, "RATE_LIMIT", 3)
    server = await run_server(secure.routes)
    async with websockets.connect(secure_url(server, "/ws/secure", "?token=valid_token")) as ws:
        await send_within_the_limit(ws)
        await ws.send("one too many")
        await expect_close(ws, 1008, "Rate limit exceeded")


async def test_secure_rate_limit_answers_an_error_on_the_handshake_path(
    run_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secure, "RATE_LIMIT", 3)
    server = await run_server(secure.routes)
    url = secure_url(server, "/ws/secure/handshake", "?token=valid_token")
    async with websockets.connect(url) as ws:
        await send_within_the_limit(ws)
        for _ in range(2):  # the connection stays open, and stays limited
            await ws.send("one too many")
            refused = await recv_json(ws)
            assert_shape(refused, type=str, message=str, retry_after=(int, float))
            assert refused["type"] == "error"
            assert refused["message"].startswith("Rate limit exceeded")
            assert 0 < refused["retry_after"] <= secure.RATE_WINDOW
        await close_normally(ws)
