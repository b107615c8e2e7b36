"""ASGI applications on wsserver: every WebSocket and HTTP event of the spec, through real sockets.

Raw ``async def app(scope, receive, send)`` applications, so that each event is
seen exactly as the server makes it; real clients (``websockets``, ``httpx``)
and a raw socket where bytes matter. Starlette and FastAPI are in
``test_asgi_frameworks.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import gc
import json
import logging
import os
import socket
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import h11
import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wsserver import serve
from wsserver.asgi.application import is_asgi_app
from wsserver.asgi.http import caused_by_disconnect
from wsserver.asgi.lifespan import LifespanFailure
from wsserver.errors import ClientDisconnected
from wsserver.protocol.frames import Opcode, parse_close, serialize_close, serialize_frame
from wsserver.server.http_protocol import BODY_PIECES_PER_TURN, HttpProtocol
from wsserver.server.server import READ_SIZE

from .helpers import (
    RawClient,
    answer_once_released,
    cancelled_elsewhere,
    errors_logged,
    exchange,
    h11_holds,
    open_descriptors_of,
    pipelined_answers,
    slow_reader,
    upgrade_request,
    wait_for,
)

TIMEOUT = 5
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Any:
    """Fail a test that logged an error it did not expect (tests that expect one clear it)."""
    caplog.set_level(logging.INFO, logger="wsserver")
    yield caplog
    assert not errors_logged(caplog)


def expect_logged_error(caplog: pytest.LogCaptureFixture, text: str) -> None:
    """Exactly the errors expected were logged (each naming ``text``); forget them."""
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all(text in r.getMessage() for r in errors), [r.getMessage() for r in errors]
    caplog.clear()


async def lifespan_unsupported(scope: dict[str, Any]) -> bool:
    """For apps written without lifespan: say so the way the spec allows (raise)."""
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan here")
    return False


# =================================================================== WebSocket


async def test_websocket_scope(run_asgi: Any) -> None:
    scopes: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["pool"] = "the pool"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        scopes.append(scope)
        assert (await receive()) == {"type": "websocket.connect"}
        scope["state"]["mine"] = True  # a copy: the next connection does not see it
        await send({"type": "websocket.accept", "subprotocol": "chat.v2"})
        await receive()

    server = await run_asgi(app, root_path="/api")
    locals_ = []
    for _ in range(2):
        async with websockets.connect(
            f"ws://127.0.0.1:{server.port}/caf%C3%A9/x%2Fy?q=a%20b&r=1",
            subprotocols=["chat.v1", "chat.v2"],
            additional_headers=[("X-Twice", "1"), ("x-twice", "2")],
        ) as ws:
            assert ws.subprotocol == "chat.v2"
            locals_.append(ws.local_address)
    first, second = scopes
    assert first["type"] == "websocket"
    assert first["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    assert first["http_version"] == "1.1" and first["scheme"] == "ws"
    assert first["root_path"] == "/api"
    assert first["path"] == "/api/café/x/y"
    assert first["raw_path"] == b"/api/caf%C3%A9/x%2Fy"
    assert first["query_string"] == b"q=a%20b&r=1"
    headers = first["headers"]
    assert all(isinstance(n, bytes) and isinstance(v, bytes) for n, v in headers)
    assert all(n == n.lower() for n, _ in headers)
    assert [v for n, v in headers if n == b"x-twice"] == [b"1", b"2"]
    assert (b"sec-websocket-protocol", b"chat.v1, chat.v2") in headers
    assert first["subprotocols"] == ["chat.v1", "chat.v2"]
    assert [tuple(s["client"]) for s in scopes] == [(a[0], a[1]) for a in locals_]
    assert tuple(first["server"]) == ("127.0.0.1", server.port)
    assert first["extensions"]["websocket.http.response"] == {}
    assert set(first["extensions"]) == {"websocket.http.response", "wsserver.pubsub"}
    assert first["state"] == {"pool": "the pool", "mine": True}
    assert second["state"] == {"pool": "the pool", "mine": True}
    assert second["state"] is not first["state"]


async def test_no_101_until_the_app_accepts(run_asgi: Any) -> None:
    answer = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        assert (await receive())["type"] == "websocket.connect"
        await answer.wait()
        await send({"type": "websocket.accept", "headers": [(b"x-decided", b"yes")]})
        while (await receive())["type"] != "websocket.disconnect":
            pass

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/"))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.3)
    answer.set()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"\r\nx-decided: yes\r\n" in head
    writer.close()


async def test_frames_sent_while_the_app_decides_reach_it_after_accept(run_asgi: Any) -> None:
    # Reading goes on while the application decides; what arrives (frames a
    # client sent early, in a write of their own) is kept for the WebSocket.
    answer = asyncio.Event()
    received: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        assert (await receive())["type"] == "websocket.connect"
        await answer.wait()
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            received.append(event)
            if event["type"] == "websocket.disconnect":
                return

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/"))
    await asyncio.sleep(0.1)
    early = serialize_frame(Opcode.TEXT, b"early", mask=b"abcd")
    early += serialize_frame(Opcode.BINARY, b"\x00\x01", mask=b"wxyz")
    writer.write(early)
    await asyncio.sleep(0.1)
    protocol = next(iter(server.connections))
    assert isinstance(protocol, HttpProtocol)  # still deciding
    assert protocol.transport.is_reading()
    assert protocol._h11.trailing_data[0] == early  # read already, kept
    answer.set()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    writer.write(serialize_frame(Opcode.CLOSE, serialize_close(1000), mask=b"abcd"))
    await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    assert received == [
        {"type": "websocket.receive", "text": "early"},
        {"type": "websocket.receive", "bytes": b"\x00\x01"},
        {"type": "websocket.disconnect", "code": 1000, "reason": ""},
    ]


def accepting_when(answer: asyncio.Event, received: list[bytes]) -> Any:
    """An ASGI app that accepts once ``answer`` is set, then keeps each binary message."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        assert (await receive())["type"] == "websocket.connect"
        await answer.wait()
        await send({"type": "websocket.accept"})
        while (event := await receive())["type"] == "websocket.receive":
            received.append(event["bytes"])

    return app


async def accept_then_collect(
    answer: asyncio.Event,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    received: list[bytes],
    expected: list[bytes],
    timeout: float = TIMEOUT,
) -> bytes:
    """Let an :func:`accepting_when` app accept, check that it got ``expected``,
    close; the 101's head."""
    answer.set()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101 ")
    await wait_for(lambda: len(received) == len(expected), timeout, "every frame")
    assert received == expected
    writer.write(serialize_frame(Opcode.CLOSE, serialize_close(1000), mask=b"abcd"))
    await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    return head


async def test_reading_pauses_beyond_max_header_size_while_the_app_decides(
    run_asgi: Any,
) -> None:
    # What arrives while the app decides is bounded: reading pauses once more
    # than max_header_size came, and resumes at the 101; nothing is lost.
    answer = asyncio.Event()
    received: list[bytes] = []
    app = accepting_when(answer, received)

    server = await run_asgi(app, max_header_size=1024, compression=None)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/"))
    await wait_until(lambda: len(server.connections) == 1)
    protocol = next(iter(server.connections))
    assert isinstance(protocol, HttpProtocol)
    await wait_until(lambda: protocol.request is not None)  # the app decides
    assert protocol.transport.is_reading()
    payloads = [bytes([i]) * 600 for i in range(8)]
    for payload in payloads:
        writer.write(serialize_frame(Opcode.BINARY, payload, mask=b"abcd"))
        await asyncio.sleep(0.02)  # a read each
    assert not protocol.transport.is_reading()
    kept = len(protocol._h11.trailing_data[0])
    assert 1024 < kept < 8 * 606  # the rest waits in the kernel
    await accept_then_collect(answer, reader, writer, received, payloads)


async def test_frames_kept_while_the_app_decides_may_be_more_than_one_read(
    run_asgi: Any,
) -> None:
    # What came after the upgrade request is handed to the WebSocket phase at
    # the 101 in pieces of the server's read buffer (frames cut between two):
    # with a large max_header_size it can be more than one buffer's worth.
    answer = asyncio.Event()
    received: list[bytes] = []
    app = accepting_when(answer, received)

    server = await run_asgi(app, max_header_size=4 * READ_SIZE, compression=None)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    payloads = [bytes([i]) * (READ_SIZE // 3 + 1000 * i) for i in range(1, 8)]
    writer.write(
        upgrade_request("/")
        + b"".join(serialize_frame(Opcode.BINARY, p, mask=b"abcd") for p in payloads)
    )
    await wait_for(lambda: server.connections, TIMEOUT, "the connection")
    protocol = next(iter(server.connections))
    await wait_for(
        lambda: len(protocol._h11.trailing_data[0]) > 2 * READ_SIZE, TIMEOUT, "the frames read"
    )
    await accept_then_collect(answer, reader, writer, received, payloads)


async def test_the_inflate_limit_holds_for_frames_kept_while_the_app_decides(
    run_asgi: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Compressed frames kept with the upgrade request, several read buffers'
    # worth: taking them over at the 101 inflates about max_size, as one read
    # does, and the rest waits for the application's turn.
    import zlib

    from wsserver.server import websocket_protocol

    taken_at_start: list[int] = []
    start = websocket_protocol.WebSocketProtocol.start

    def observed_start(self: Any, handler: Any, received: bytes) -> None:
        start(self, handler, received)
        taken_at_start.append(len(self.inbox))

    monkeypatch.setattr(websocket_protocol.WebSocketProtocol, "start", observed_start)
    answer = asyncio.Event()
    received: list[bytes] = []
    app = accepting_when(answer, received)

    max_size = 100_000
    server = await run_asgi(app, max_header_size=4 * READ_SIZE, max_size=max_size)
    compressor = zlib.compressobj(wbits=-15)
    deflated = compressor.compress(bytes(max_size)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    frame = serialize_frame(Opcode.BINARY, deflated[:-4], mask=b"abcd", rsv1=True)
    count = 3 * READ_SIZE // len(frame) + 1
    offer = ("Sec-WebSocket-Extensions", "permessage-deflate; client_no_context_takeover")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/", [offer]) + frame * count)
    await wait_for(lambda: server.connections, TIMEOUT, "the connection")
    protocol = next(iter(server.connections))
    await wait_for(
        lambda: len(protocol._h11.trailing_data[0]) > 2 * READ_SIZE, TIMEOUT, "the frames read"
    )
    expected = [bytes(max_size)] * count
    head = await accept_then_collect(answer, reader, writer, received, expected, 4 * TIMEOUT)
    assert b"permessage-deflate" in head
    assert taken_at_start == [1]  # one max_size inflated before the app's turn


async def test_a_client_leaving_while_the_app_decides_is_noticed(run_asgi: Any) -> None:
    # The connection is dropped when the client goes, not when the app answers;
    # the app's accept then raises an OSError (ClientDisconnected), not logged.
    answer = asyncio.Event()
    outcome: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        assert (await receive())["type"] == "websocket.connect"
        await answer.wait()
        try:
            await send({"type": "websocket.accept"})
        except OSError as exc:
            outcome.append(type(exc).__name__)
            raise

    server = await run_asgi(app)
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/"))
    await wait_for(lambda: server.connections, TIMEOUT, "the connection")
    writer.close()
    await wait_for(lambda: not server.connections, TIMEOUT, "the connection dropped")
    assert outcome == []
    answer.set()
    await wait_for(lambda: outcome, TIMEOUT, "the app's accept")
    assert outcome == ["ClientDisconnected"]


async def test_close_before_accept_is_403(run_asgi: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        await send({"type": "websocket.close", "code": 1008})
        # The client never had a WebSocket: it is gone, and sending says so.
        assert (await receive())["type"] == "websocket.disconnect"
        with pytest.raises(OSError):
            await send({"type": "websocket.send", "text": "too late"})

    server = await run_asgi(app)
    with pytest.raises(InvalidStatus) as caught:
        await websockets.connect(f"ws://127.0.0.1:{server.port}/")
    assert caught.value.response.status_code == 403


async def test_denial_response_extension_is_sent_exactly(run_asgi: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"X")],
            }
        )
        await send(
            {"type": "websocket.http.response.body", "body": b'{"error":', "more_body": True}
        )
        await send({"type": "websocket.http.response.body", "body": b' "who are you"}'})

    server = await run_asgi(app)
    with pytest.raises(InvalidStatus) as caught:
        await websockets.connect(f"ws://127.0.0.1:{server.port}/")
    response = caught.value.response
    assert response.status_code == 401 and response.reason_phrase == "Unauthorized"
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["WWW-Authenticate"] == "X"
    assert json.loads(response.body) == {"error": "who are you"}


async def test_a_denial_or_a_response_that_cannot_be_sent_gets_a_500(
    run_asgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A 204 denial with a body, a header value with a trailing space (h11
    # refuses it): the client got no response at all, the connection closed.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        if scope["type"] == "http":
            headers = [(b"x-a", b"bar ")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"x"})
            return
        await receive()
        await send({"type": "websocket.http.response.start", "status": 204, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no content?"})

    server = await run_asgi(app)
    with pytest.raises(InvalidStatus) as caught:
        await websockets.connect(f"ws://127.0.0.1:{server.port}/")
    assert caught.value.response.status_code == 500
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/")
    assert response.status_code == 500
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2  # each the application's mistake, said once
    expect_logged_error(caplog, "ASGI application failed")


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        # The server frames the body: the app's Transfer-Encoding is ignored
        # (www.rst), as on an HTTP response.
        ([(b"transfer-encoding", b"gzip")], b"abcdef", 400),
        ([(b"transfer-encoding", b"chunked")], b"abcdef", 400),
        ([(b"content-length", b"6")], b"abcdef", 400),
        # A length that is not the body's: the app's send() raises, a 500 instead.
        ([(b"content-length", b"3")], b"abcdef", 500),
        ([(b"content-length", b"9")], b"abcdef", 500),
        ([(b"content-length", b"six")], b"abcdef", 500),
    ],
    ids=["te-gzip", "te-chunked", "length", "length-short", "length-long", "length-nonsense"],
)
async def test_a_denial_is_framed_by_the_server(
    run_asgi: Any,
    caplog: pytest.LogCaptureFixture,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    expected: int,
) -> None:
    raised: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        await send({"type": "websocket.http.response.start", "status": 400, "headers": headers})
        try:
            await send({"type": "websocket.http.response.body", "body": body})
        except (RuntimeError, ValueError) as exc:
            raised.append(exc)
            raise

    server = await run_asgi(app)
    raw = await exchange(server.port, upgrade_request())
    head, _, sent = raw.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {expected} ".encode()), raw
    assert b"transfer-encoding" not in head.lower()
    if expected == 400:
        assert sent == body and b"\r\ncontent-length: 6" in head.lower(), raw
        assert not raised
    else:
        assert raised and "Content-Length" in str(raised[0])
        expect_logged_error(caplog, "ASGI application failed")


async def test_an_unknown_message_after_a_denial_is_the_apps_mistake_not_a_disconnect(
    run_asgi: Any,
) -> None:
    # After the app's denial, any message raised ClientDisconnected ("the
    # WebSocket is closed"), a misspelt type too: the app's mistake read as
    # the client's leaving (which a framework swallows). A close stays
    # nothing to do, and a send the ClientDisconnected www.rst asks for.
    raised: dict[str, BaseException] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        await send({"type": "websocket.close"})  # (denied: 403)
        await send({"type": "websocket.close"})
        for kind in ("websocket.sendd", "websocket.send"):
            try:
                await send({"type": kind, "text": "x"})
            except Exception as exc:
                raised[kind] = exc

    server = await run_asgi(app)
    raw = await exchange(server.port, upgrade_request())
    assert raw.startswith(b"HTTP/1.1 403 "), raw
    await wait_for(lambda: len(raised) == 2, what="the app's sends")
    assert type(raised["websocket.sendd"]) is RuntimeError, raised
    assert "websocket.sendd" in str(raised["websocket.sendd"])
    assert isinstance(raised["websocket.send"], ClientDisconnected), raised


@pytest.mark.parametrize("last", ["body", "trailers"])
async def test_a_response_shorter_than_its_length_closes_its_connection_at_once(
    run_asgi: Any, last: str
) -> None:
    # The app sends 8 of the 10 bytes its Content-Length says, then ends the
    # body; its send() raises, and it goes on (it caught the error). The
    # response was taken for complete: the client waited for the 2 bytes
    # missing as long as the app ran, its connection neither ended nor closed.
    raised: list[BaseException] = []
    release = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        headers = [(b"content-length", b"10")]
        trailers = last == "trailers"
        await send(
            {"type": "http.response.start", "status": 200, "headers": headers, "trailers": trailers}
        )
        await send({"type": "http.response.body", "body": b"12345", "more_body": True})
        try:
            await send({"type": "http.response.body", "body": b"678"})
            if trailers:
                await send({"type": "http.response.trailers", "headers": []})
        except RuntimeError as exc:
            raised.append(exc)
        await asyncio.wait_for(release.wait(), TIMEOUT)

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n")
        raw = await asyncio.wait_for(reader.read(), 2)  # (the app goes on for TIMEOUT)
    finally:
        release.set()
        writer.close()
    assert raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"\r\n\r\n12345678"), raw
    assert raised and "Too little data" in str(raised[0])


@pytest.mark.parametrize("given", [b"keep-alive", b"Keep-Alive, x-option", b"close"])
async def test_a_denial_says_connection_close_once_whatever_connection_the_app_gave(
    run_asgi: Any, given: bytes
) -> None:
    # A denial closes the connection: the app's "connection: keep-alive" went
    # out next to the server's "Connection: close" (h11 merges the two only
    # when the request itself asked to close), a response that contradicts
    # itself (http.client reads the first).
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        headers = [(b"connection", given)]
        await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"no"})

    server = await run_asgi(app)
    raw = await exchange(server.port, upgrade_request())
    assert raw.startswith(b"HTTP/1.1 403 "), raw
    said = connection_options(raw)
    assert said == (["close", "x-option"] if b"x-option" in given else ["close"]), raw


@pytest.mark.parametrize("given", [b"keep-alive", b"Keep-Alive, x-option"])
async def test_an_http_response_the_server_closes_on_says_connection_close_once(
    run_asgi: Any, given: bytes
) -> None:
    # The same for an http.response.start (streamed, not rendered whole): a
    # response to a request whose body the app leaves unread closes its
    # connection, and the app's "connection: keep-alive" went out next to it.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        headers = [(b"connection", given), (b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc")
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert raw.startswith(b"HTTP/1.1 200 "), raw
    said = connection_options(raw)
    assert said == (["close", "x-option"] if b"x-option" in given else ["close"]), raw


def connection_options(raw: bytes) -> list[str]:
    """The options of a response's ``Connection`` headers (lowercase, sorted)."""
    head = raw.partition(b"\r\n\r\n")[0].decode().lower()
    values = [
        line.split(":", 1)[1] for line in head.split("\r\n") if line.startswith("connection:")
    ]
    return sorted(option.strip() for value in values for option in value.split(","))


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echo each message back as it came, recording every event in the scope's state."""
    if await lifespan_unsupported(scope):
        return
    events = ECHO_EVENTS.setdefault(scope["path"], [])
    event = await receive()
    events.append(event)
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        events.append(event)
        if event["type"] == "websocket.disconnect":
            return
        if event.get("text") == "close please":
            await send({"type": "websocket.close", "code": 4000, "reason": "as asked"})
            continue
        await send({"type": "websocket.send", **{k: v for k, v in event.items() if k != "type"}})


ECHO_EVENTS: dict[str, list[dict[str, Any]]] = {}


async def test_receive_and_send_text_and_bytes(run_asgi: Any) -> None:
    server = await run_asgi(echo_app)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/messages") as ws:
        for message in ["hello", "", "café ☕", b"\x00\xff", b""]:
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == message
    events = ECHO_EVENTS.pop("/messages")
    assert events[0] == {"type": "websocket.connect"}
    received = events[1:-1]
    # Exactly one of text and bytes, of the right type.
    assert received == [
        {"type": "websocket.receive", "text": "hello"},
        {"type": "websocket.receive", "text": ""},
        {"type": "websocket.receive", "text": "café ☕"},
        {"type": "websocket.receive", "bytes": b"\x00\xff"},
        {"type": "websocket.receive", "bytes": b""},
    ]
    assert events[-1] == {"type": "websocket.disconnect", "code": 1000, "reason": ""}


async def test_an_accepted_connection_keeps_nothing_of_its_http_phase(run_asgi: Any) -> None:
    # Once the app accepted, the HTTP phase's objects (the HttpProtocol, and
    # h11's parser with it) are freed while the WebSocket stays open: an idle
    # ASGI connection costs the server less memory. Freed by reference
    # counting (no collection here), as it would be in the server.
    def count(kind: type) -> int:
        return sum(1 for o in gc.get_objects() if type(o) is kind)

    gc.collect()  # what earlier tests left
    server = await run_asgi(echo_app)
    parsers = count(h11.Connection)  # (an earlier test's may still be referenced)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/phase") as ws:
        await ws.send("x")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "x"
        ours = [o for o in gc.get_objects() if type(o) is HttpProtocol and o.server is server]
        assert ours == []
        assert count(h11.Connection) == parsers
        # ... and the connection goes on as before.
        await ws.send(b"y")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == b"y"
    ECHO_EVENTS.pop("/phase")


async def test_app_close_sends_code_and_reason(run_asgi: Any) -> None:
    server = await run_asgi(echo_app)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/closing") as ws:
        await ws.send("close please")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert ws.close_code == 4000 and ws.close_reason == "as asked"
    await asyncio.sleep(0.05)
    assert ECHO_EVENTS.pop("/closing")[-1] == {
        "type": "websocket.disconnect",
        "code": 4000,
        "reason": "as asked",
    }


async def test_app_close_reason_is_cut_to_what_a_close_frame_holds(run_asgi: Any) -> None:
    # www.rst: a reason "can be any string"; a close frame holds 123 bytes.
    reason = "é" * 100  # 200 bytes in UTF-8; cut at a character's boundary: 122
    raised: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        await send({"type": "websocket.accept"})
        for code in (0, False, 1005, "1000"):  # (invalid: raised, nothing sent)
            try:
                await send({"type": "websocket.close", "code": code})
            except (TypeError, ValueError) as exc:
                raised.append(exc)
        await send({"type": "websocket.close", "code": 1008, "reason": reason})

    server = await run_asgi(app)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert ws.close_code == 1008 and ws.close_reason == "é" * 61
    assert [type(exc) for exc in raised] == [ValueError, TypeError, ValueError, TypeError]


async def test_disconnect_codes(run_asgi: Any) -> None:
    server = await run_asgi(echo_app)
    # The client's code and reason.
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/coded") as ws:
        await ws.close(4321, "bye now")
    # A close frame without a code: 1005.
    raw = await RawClient.connect(server.port, "/bare")
    raw.send(Opcode.CLOSE, b"")
    await raw.expect_close(1005)
    # TCP lost without a close frame: 1006.
    raw = await RawClient.connect(server.port, "/lost")
    raw.writer.transport.abort()
    for _ in range(100):
        if ECHO_EVENTS.get("/lost", [{}])[-1].get("type") == "websocket.disconnect":
            break
        await asyncio.sleep(0.01)
    assert ECHO_EVENTS.pop("/coded")[-1] == {
        "type": "websocket.disconnect",
        "code": 4321,
        "reason": "bye now",
    }
    bare = ECHO_EVENTS.pop("/bare")[-1]
    assert bare["code"] == 1005
    lost = ECHO_EVENTS.pop("/lost")[-1]
    assert lost == {
        "type": "websocket.disconnect",
        "code": 1006,
        "reason": "",
    }
    # Plain ints, as the ASGI spec says (an enum's repr is not what an app logs).
    assert type(bare["code"]) is int and type(lost["code"]) is int
    assert repr(lost["code"]) == "1006"


async def test_send_after_disconnect_raises_oserror_not_logged(run_asgi: Any) -> None:
    raised: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        try:
            await send({"type": "websocket.send", "text": "anyone?"})
        except OSError as exc:
            raised.append(exc)
            raise  # propagates to the server, which must not log it

    server = await run_asgi(app)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        await ws.close()
    for _ in range(100):
        if raised:
            break
        await asyncio.sleep(0.01)
    assert len(raised) == 1 and isinstance(raised[0], ClientDisconnected)


async def test_app_failing_before_accept_is_500_after_is_1011(
    run_asgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        if scope["path"] == "/after":
            await send({"type": "websocket.accept"})
            await receive()
        raise ValueError("the app broke")

    server = await run_asgi(app)
    with pytest.raises(InvalidStatus) as caught:
        await websockets.connect(f"ws://127.0.0.1:{server.port}/before")
    assert caught.value.response.status_code == 500
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/after") as ws:
        await ws.send("trigger")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert ws.close_code == 1011
    expect_logged_error(caplog, "ASGI application failed")


async def test_app_returning_without_answer_is_500(
    run_asgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()

    server = await run_asgi(app)
    with pytest.raises(InvalidStatus) as caught:
        await websockets.connect(f"ws://127.0.0.1:{server.port}/")
    assert caught.value.response.status_code == 500
    expect_logged_error(caplog, "without answering the handshake")


async def test_an_app_ending_in_its_own_cancelled_error_is_answered_for(
    run_asgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A CancelledError the server did not cause (the app's task was not
    # cancelled) is the app failing: 500 before answering, 1011 after. Nothing
    # answered for it: no response, and an accepted WebSocket stayed open.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        if scope["type"] == "websocket":
            await receive()
            if scope["path"] == "/after":
                await send({"type": "websocket.accept"})
        await cancelled_elsewhere()

    server = await run_asgi(app)
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/")
    assert response.status_code == 500
    with pytest.raises(InvalidStatus) as caught:
        await websockets.connect(f"ws://127.0.0.1:{server.port}/before")
    assert caught.value.response.status_code == 500
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/after") as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert ws.close_code == 1011
    expect_logged_error(caplog, "ASGI application failed")


async def test_an_app_cancelled_by_itself_after_accepting_has_its_websocket_closed(
    run_asgi: Any,
) -> None:
    # Its task cancelled, not by the server (a "kick" that cancels the
    # handler's task, say): the app is gone, and so must the WebSocket be
    # (www.rst: "if the application dies the socket should be closed"), with
    # 1000 as a Router handler's own cancel. It stayed open, answering pings,
    # with nothing behind it.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        await send({"type": "websocket.accept"})
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(30)

    server = await run_asgi(app)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert ws.close_code == 1000
    await wait_for(lambda: not server.connections, TIMEOUT, "the connection closed")


async def test_another_connections_disconnect_is_this_apps_error(
    run_asgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A broadcast to a member that left raises ClientDisconnected for that
    # member; escaping the app of a connection still there, it is that app's
    # failure (500, 1011, logged), not this client leaving (it was taken for
    # it: no response, a 1000 close, a DEBUG line).
    members: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        if scope["path"] == "/member":
            await receive()
            await send({"type": "websocket.accept"})
            members.append(send)
            await receive()  # until it leaves
            return
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await receive()
        for member in members:
            await member({"type": "websocket.send", "text": "to everyone"})

    server = await run_asgi(app)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/member"):
        pass
    await wait_for(lambda: not server.connections, what="the member gone")
    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://127.0.0.1:{server.port}/broadcast")
    assert response.status_code == 500
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/speaker") as ws:
        await ws.send("hello all")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert ws.close_code == 1011
    expect_logged_error(caplog, "ASGI application failed")


@pytest.mark.parametrize(
    ("close", "problem"),
    [
        ({"code": 1000, "reason": b"bye"}, "close reason must be str, not bytes"),
        ({"code": "1000"}, "close code must be an int, not str"),
        ({"code": 1005}, "invalid close code 1005"),
    ],
)
async def test_bad_close_raises_to_the_app_and_the_client_gets_1011(
    run_asgi: Any, caplog: pytest.LogCaptureFixture, close: dict[str, Any], problem: str
) -> None:
    errors: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        await send({"type": "websocket.accept"})
        try:
            await send({"type": "websocket.close", **close})
        except (TypeError, ValueError) as exc:
            errors.append(exc)
            raise

    server = await run_asgi(app)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert ws.close_code == 1011
    assert len(errors) == 1 and problem in str(errors[0])
    expect_logged_error(caplog, "ASGI application failed")


@pytest.mark.parametrize(
    ("accept", "problem"),
    [
        ({"subprotocol": "never-offered"}, "was not offered"),
        ({"headers": [(b"x-evil", b"a\r\nSet-Cookie: b=c")]}, "invalid header"),
        ({"headers": [(b"sec-websocket-protocol", b"x")]}, "writes the"),
        ({"headers": [(b"content-length", b"5")]}, "no content-length header"),
        ({"headers": [(b"Transfer-Encoding", b"chunked")]}, "no Transfer-Encoding header"),
    ],
)
async def test_bad_accept_is_refused_not_sent(
    run_asgi: Any, caplog: pytest.LogCaptureFixture, accept: dict[str, Any], problem: str
) -> None:
    errors: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        try:
            await send({"type": "websocket.accept", **accept})
        except ValueError as exc:
            errors.append(exc)
            raise

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/", [("Sec-WebSocket-Protocol", "chat")]))
    response = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    assert response.startswith(b"HTTP/1.1 500 ")
    assert b"Set-Cookie" not in response and b"x-evil" not in response
    assert len(errors) == 1 and problem in str(errors[0])
    expect_logged_error(caplog, "ASGI application failed")


async def test_invalid_handshake_never_reaches_the_app(run_asgi: Any) -> None:
    called: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        called.append(scope["type"])

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    response = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    assert response.startswith(b"HTTP/1.1 400 ")
    assert called == []


async def test_our_limits_apply_max_size(run_asgi: Any) -> None:
    server = await run_asgi(echo_app, max_size=1000)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/big", max_size=None) as ws:
        await ws.send("x" * 1000)
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "x" * 1000
        await ws.send("x" * 1001)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert ws.close_code == 1009
    await asyncio.sleep(0.05)
    assert ECHO_EVENTS.pop("/big")[-1]["code"] == 1009


async def test_reading_pauses_at_max_queue_until_the_app_receives(run_asgi: Any) -> None:
    go = asyncio.Event()
    got: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        await send({"type": "websocket.accept"})
        await go.wait()
        while (event := await receive())["type"] == "websocket.receive":
            got.append(event["text"])

    server = await run_asgi(app, max_queue=4)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        (protocol,) = server._websockets
        # One message per read: the server has read each before the next is
        # sent (a read's whole batch is queued before reading pauses, so 50
        # messages arriving in one read would all be queued).
        for i in range(50):
            await ws.send(f"m{i}")
            inbox = protocol.inbox
            await wait_until(lambda: inbox.paused or len(inbox) == i + 1)  # noqa: B023
        await asyncio.sleep(0.2)
        # Paused once max_queue were waiting; the rest stayed unread.
        assert protocol.inbox.paused and len(protocol.inbox) == 4
        go.set()
        for _ in range(200):
            if len(got) == 50:
                break
            await asyncio.sleep(0.01)
        assert got == [f"m{i}" for i in range(50)]


async def test_send_waits_while_the_client_does_not_read(run_asgi: Any) -> None:
    sent = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal sent
        if await lifespan_unsupported(scope):
            return
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            await send({"type": "websocket.send", "bytes": b"x" * 65536})
            sent += 1

    server = await run_asgi(app, compression=None)
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/"))
    await asyncio.sleep(0.5)  # the client reads nothing
    stalled = sent
    await asyncio.sleep(0.3)
    assert sent == stalled < 200  # ~13 MiB would be buffered otherwise
    writer.transport.abort()


async def test_compression_is_on_by_default_for_asgi_and_can_be_turned_off(
    run_asgi: Any,
) -> None:
    server = await run_asgi(echo_app)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/deflate") as ws:
        assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
        await ws.send("compressible " * 100)
        assert await ws.recv() == "compressible " * 100
    off = await run_asgi(echo_app, compression=None)
    async with websockets.connect(f"ws://127.0.0.1:{off.port}/plain") as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
    ECHO_EVENTS.clear()


async def test_keepalive_pings_are_ours(run_asgi: Any) -> None:
    server = await run_asgi(echo_app, ping_interval=0.1, ping_timeout=1)
    raw = await RawClient.connect(server.port, "/pinged")
    opcode, *_ = await raw.recv_frame()
    assert opcode == Opcode.PING
    raw.send(Opcode.CLOSE, serialize_close(1000))
    await raw.expect_close(1000)
    ECHO_EVENTS.clear()


async def test_shutdown_closes_asgi_websockets_with_1001(run_asgi: Any) -> None:
    server = await run_asgi(echo_app)
    raw = await RawClient.connect(server.port, "/shutdown")
    closing = asyncio.create_task(server.close(timeout=2))
    opcode, _, _, payload = await raw.recv_frame()
    assert opcode == Opcode.CLOSE and parse_close(payload)[0] == 1001
    raw.send(Opcode.CLOSE, serialize_close(1001))
    await raw.expect_eof()
    await closing
    assert ECHO_EVENTS.pop("/shutdown")[-1]["code"] == 1001


# ======================================================================== HTTP


async def body_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer with what was received: the events and the body (JSON), in several pieces."""
    if await lifespan_unsupported(scope):
        return
    events = []
    body = b""
    while True:
        event = await receive()
        events.append({k: v if k != "body" else len(v) for k, v in event.items()})
        body += event.get("body", b"")
        if not event.get("more_body"):
            break
    answer = json.dumps(
        {
            "method": scope["method"],
            "path": scope["path"],
            "scheme": scope["scheme"],
            "http_version": scope["http_version"],
            "events": events,
            "body": body.decode("latin-1"),
        }
    ).encode()
    await send({"type": "http.response.start", "status": 201, "headers": [(b"x-app", b"1")]})
    half = len(answer) // 2
    await send({"type": "http.response.body", "body": answer[:half], "more_body": True})
    await send({"type": "http.response.body", "body": answer[half:]})


async def test_http_request_and_streamed_response(run_asgi: Any) -> None:
    server = await run_asgi(body_app)

    async def upload() -> AsyncIterator[bytes]:
        for piece in (b"first,", b"second,", b"third"):
            yield piece
            await asyncio.sleep(0.05)

    async with httpx.AsyncClient() as client:
        response = await client.post(f"http://127.0.0.1:{server.port}/up%20load", content=upload())
    assert response.status_code == 201 and response.reason_phrase == "Created"
    assert response.headers["x-app"] == "1"
    assert response.headers["transfer-encoding"] == "chunked"  # no Content-Length, 2 pieces
    answer = response.json()
    assert answer["method"] == "POST" and answer["path"] == "/up load"
    assert answer["scheme"] == "http" and answer["http_version"] == "1.1"
    assert answer["body"] == "first,second,third"
    assert all(e["type"] == "http.request" for e in answer["events"])
    assert [e["more_body"] for e in answer["events"]][-1] is False
    assert len(answer["events"]) >= 3  # streamed as it came


async def test_a_head_response_without_a_body_says_no_length_it_does_not_know(
    run_asgi: Any,
) -> None:
    # An app that sends no body for HEAD (and no Content-Length) got
    # "Content-Length: 0", where GET gives 1000: RFC 9110 8.6 forbids a length
    # other than GET's.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        body = b"" if scope["method"] == "HEAD" else b"x" * 1000
        await send({"type": "http.response.body", "body": body})

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert b"content-length" not in head.lower()
        get = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)  # kept alive
        assert get.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 1000\r\n" in get
        assert await asyncio.wait_for(reader.readexactly(1000), TIMEOUT) == b"x" * 1000
    finally:
        writer.close()


@pytest.mark.parametrize("how", ["sends", "listens"])
async def test_a_head_of_an_endless_stream_ends_with_its_head(run_asgi: Any, how: str) -> None:
    # A HEAD's answer is its head (RFC 9110 9.3.2): for an app that streams
    # (server-sent events, more_body for ever), the client has it whole, yet
    # the response went on until the app's last piece, which never came: the
    # kept-alive connection's next request got no answer, and the app's sends,
    # dropped, never failed. The response ends with its head now; the app's
    # pieces after it are dropped, and once the client is gone its send raises.
    # An app that listens for the end (sse-starlette's way) hears it at once,
    # and its return then is no failure.
    told = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        if scope["path"] != "/events":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"next"})
            return
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        event = {"type": "http.response.body", "body": b"data: x\n\n", "more_body": True}
        if how == "listens":
            await send(event)
            while (await receive())["type"] != "http.disconnect":
                pass
            told.set()
            return
        try:
            while True:
                await send(event)
                await asyncio.sleep(0.01)
        except ClientDisconnected:
            told.set()

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"HEAD /events HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 200 ") and b"text/event-stream" in head
        writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")  # (kept alive)
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\nnext"), TIMEOUT)
        assert answer.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 4\r\n" in answer
    finally:
        writer.close()
    await asyncio.wait_for(told.wait(), TIMEOUT)
    await asyncio.sleep(0.1)  # (its return logged, if it were a failure)
    assert server.stats()["handler_errors"] == 0


async def test_heads_of_an_endless_stream_do_not_pile_up_on_one_connection(
    run_asgi: Any,
) -> None:
    # The app of a HEAD answered with its head streams on, its pieces
    # dropped, until its client leaves: each HEAD of an endless stream
    # (server-sent events under Starlette, which stops only when send()
    # raises) on one kept-alive connection left one more such app running,
    # as many as the client sent HEADs, each at work for nobody (and each
    # counted by limit_concurrency). Once another HEAD's app streams on,
    # the earlier one's send() raises: one at most on a connection.
    live: set[object] = set()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        if scope["path"] != "/events":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"next"})
            return
        me = object()
        live.add(me)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            while True:
                await send(
                    {"type": "http.response.body", "body": b"data: x\n\n", "more_body": True}
                )
                await asyncio.sleep(0.01)
        finally:
            live.discard(me)

    server = await run_asgi(app, timeout_keep_alive=30.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        for _ in range(5):
            writer.write(b"HEAD /events HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            assert head.startswith(b"HTTP/1.1 200 "), head
        writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\nnext"), TIMEOUT)
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        # (Within timeout_keep_alive: the client is still there.)
        await wait_for(lambda: len(live) == 1, timeout=TIMEOUT, what="the HEADs' apps to end")
    finally:
        writer.close()
    assert server.stats()["handler_errors"] == 0


async def test_each_scope_has_its_own_asgi_dict(run_asgi: Any) -> None:
    # One dict was shared by every scope: a middleware lowering spec_version
    # for one request lowered it for every later one.
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        seen.append(scope["asgi"]["spec_version"])
        scope["asgi"]["spec_version"] = "2.0"
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    server = await run_asgi(app)
    async with httpx.AsyncClient() as client:
        for _ in range(2):
            await client.get(f"http://127.0.0.1:{server.port}/")
    assert seen == ["2.5", "2.5"]


async def test_an_absolute_form_target_makes_an_origin_form_scope(run_asgi: Any) -> None:
    scopes: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        scopes.append(scope)
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET http://real.example/a%20b?x=1 HTTP/1.1\r\nHost: fake\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 204 ")
    writer.close()
    [scope] = scopes
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/a b", b"/a%20b", b"x=1")
    assert [value for name, value in scope["headers"] if name == b"host"] == [b"real.example"]


async def test_single_body_gets_content_length_and_head_gets_no_body(run_asgi: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"hello"})

    server = await run_asgi(app)
    async with httpx.AsyncClient() as client:
        got = await client.get(f"http://127.0.0.1:{server.port}/")
        head = await client.head(f"http://127.0.0.1:{server.port}/")
    assert got.headers["content-length"] == "5" and got.content == b"hello"
    assert "transfer-encoding" not in got.headers
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == "5"


async def test_keep_alive_and_pipelining(run_asgi: Any) -> None:
    server = await run_asgi(body_app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /two HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /three HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nde\r\n0\r\n\r\n"
    )
    paths = []
    for _ in range(3):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 201 Created\r\n"), head
        body = b""
        while True:  # chunked
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            body += (await reader.readexactly(size + 2))[:-2]
            if size == 0:
                break
        answer = json.loads(body)
        paths.append((answer["path"], answer["body"]))
    writer.close()
    assert paths == [("/one", "abc"), ("/two", ""), ("/three", "de")]


async def test_expect_100_continue(run_asgi: Any) -> None:
    server = await run_asgi(body_app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert interim.startswith(b"HTTP/1.1 100 ")
    writer.write(b"data")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 201 ")
    writer.close()


async def test_max_body_size(run_asgi: Any) -> None:
    server = await run_asgi(body_app, max_body_size=10)
    async with httpx.AsyncClient() as client:
        ok = await client.post(f"http://127.0.0.1:{server.port}/", content=b"x" * 10)
        declared = await client.post(f"http://127.0.0.1:{server.port}/", content=b"x" * 11)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b"xxxx"

        streamed = await client.post(f"http://127.0.0.1:{server.port}/", content=chunks())
    assert ok.status_code == 201
    assert declared.status_code == 413 and streamed.status_code == 413


async def test_a_declared_body_over_max_body_size_gets_413_at_once(run_asgi: Any) -> None:
    called: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        called.append(scope["path"])
        await receive()

    server = await run_asgi(app, max_body_size=10)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 413 ")  # not 100 Continue, and the app is not run
    assert called == []
    writer.close()


async def test_a_body_over_max_body_size_gets_413_after_a_start_not_yet_written(
    run_asgi: Any,
) -> None:
    # The head waits for the first body: until then a 413 can still take its place.
    heard: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200})
        while True:
            event = await receive()
            heard.append(event["type"])
            if event["type"] == "http.disconnect" or not event.get("more_body"):
                break
        await send({"type": "http.response.body", "body": b"read it all"})

    server = await run_asgi(app, max_body_size=10)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(4):
        writer.write(b"4\r\nxxxx\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 413 "), head
    writer.close()
    assert heard[-1] == "http.disconnect"


async def test_an_answer_that_leaves_the_body_unread_says_connection_close(
    run_asgi: Any,
) -> None:
    # RFC 9110 10.1.1 / RFC 9112 9.6: answering before the body has come, the
    # server says it closes; with the body already there, the connection stays.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 401})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    server = await run_asgi(app)
    waiting = await exchange(
        server.port,
        b"POST /waiting HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    head, _, body = waiting.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 ") and b"\r\nconnection: close" in head.lower()
    assert body == b"/waiting"  # and then the server closed
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /sent HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    answers = b""
    while answers.count(b"HTTP/1.1 401 ") < 2 or not answers.endswith(b"/next"):
        answers += await asyncio.wait_for(reader.read(65536), TIMEOUT)
    assert b"connection: close" not in answers.lower()
    writer.close()


async def test_a_client_that_takes_nothing_of_a_streamed_response_is_closed(
    run_asgi: Any,
) -> None:
    # The application's send() waits above write_limit; a client that takes
    # nothing for timeout_keep_alive is closed rather than held forever.
    ended: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        except BaseException as exc:
            ended.set_result(exc)
            raise

    server = await run_asgi(app, timeout_keep_alive=1.0, close_timeout=0.5)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(("127.0.0.1", server.port))
    try:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        exc = await asyncio.wait_for(ended, TIMEOUT)
        assert isinstance(exc, OSError), exc  # ClientDisconnected
        # (Within it and some: not after twice that, as it was. A second, not
        # half of one: a run beside other busy processes took 0.85 s of 0.5.)
        assert 1.0 - 0.05 <= time.monotonic() - started < 1.6
        await wait_for(lambda: not server.connections, what="the connection gone")
    finally:
        client.close()


async def test_a_client_that_reads_a_streamed_response_slowly_gets_all_of_it(
    run_asgi: Any,
) -> None:
    pieces = 40

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200})
        for _ in range(pieces):
            await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        await send({"type": "http.response.body", "body": b"end"})

    server = await run_asgi(app, timeout_keep_alive=0.5, write_limit=65536)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, limit=2**20)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    received = b""
    while not received.endswith(b"end\r\n0\r\n\r\n"):
        chunk = await asyncio.wait_for(reader.read(32768), TIMEOUT)
        assert chunk, received[-200:]
        received += chunk
        await asyncio.sleep(0.02)  # ~1.6 MB/s: a piece in 40 ms, well within 0.5 s
    writer.close()
    assert received.count(b"x") == pieces * 65536


async def test_receive_called_twice_at_once_gives_both_an_event(run_asgi: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        events = await asyncio.wait_for(asyncio.gather(receive(), receive()), TIMEOUT)
        body = b"".join(event.get("body", b"") for event in events)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": body})

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
    for piece in (b"hello", b"world"):
        await asyncio.sleep(0.2)  # both wait for the body meanwhile
        writer.write(piece)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert await asyncio.wait_for(reader.readexactly(10), TIMEOUT) == b"helloworld"
    writer.close()


async def test_a_receive_waiting_while_the_response_starts_gets_the_body_read_ahead(
    run_asgi: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy's shape: one task reads the body, another streams the answer.
    # The rest of the body came, and the answer started before the reading
    # task woke: the head's read-ahead took the body, and the waiting
    # receive() never looked there (it waited for ever, and took the next
    # request's head for a disconnect).
    answer_now = asyncio.Event()
    reads = 0
    data_received = HttpProtocol.data_received

    def first_the_answer(self: HttpProtocol, data: bytes | memoryview) -> None:
        nonlocal reads
        reads += 1
        if reads == 2:  # the rest of the body: the answering task is woken first
            answer_now.set()
        data_received(self, data)

    monkeypatch.setattr(HttpProtocol, "data_received", first_the_answer)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        body: list[bytes] = []

        async def read() -> None:
            while True:
                event = await receive()
                body.append(event.get("body", b""))
                if not event.get("more_body"):
                    return

        reading = asyncio.create_task(read())
        await answer_now.wait()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"[", "more_body": True})
        await asyncio.wait_for(reading, TIMEOUT)
        await send({"type": "http.response.body", "body": b"".join(body) + b"]"})

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n\r\nAAAA")
    await asyncio.sleep(0.2)
    writer.write(b"BBBB")
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n0\r\n\r\n"), TIMEOUT)
    assert answer.endswith(b"\r\n1\r\n[\r\n9\r\nAAAABBBB]\r\n0\r\n\r\n"), answer
    writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 200 "), head
    writer.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
@pytest.mark.parametrize("apart", [False, True])
@pytest.mark.parametrize("answer_first", [False, True])
async def test_a_body_that_comes_whole_is_one_request_event(
    run_asgi: Any, apart: bool, answer_first: bool, chunked: bool
) -> None:
    # A body all at hand was two events: the body with "more_body": True,
    # then an empty last one, where uvicorn gives one (an application that
    # reads once, as many small ones do, saw more coming); a chunked one was
    # an event per chunk, then an empty last one.
    # (Also when the answer starts first: the body is read ahead then.)
    events: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        first = answer_first and scope["method"] == "POST"
        if first:
            await asyncio.sleep(0.4)  # (the body here)
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b"o", "more_body": True})
        while True:
            event = await receive()
            events.append(event)
            if not event.get("more_body"):
                break
        if first:
            await send({"type": "http.response.body", "body": b"k"})
            return
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    if chunked:
        head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        body = b"2\r\nhe\r\n1;x=y\r\nl\r\n2\r\nlo\r\n0\r\nTrailer: t\r\n\r\n"
    else:
        head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
        body = b"hello"
    if apart:
        writer.write(head)
        await asyncio.sleep(0.2)
        writer.write(body)
    else:
        writer.write(head + body)
    end = b"k\r\n0\r\n\r\n" if answer_first else b"ok"
    answer = await asyncio.wait_for(reader.readuntil(end), TIMEOUT)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert events == [{"type": "http.request", "body": b"hello", "more_body": False}], events
    # (And the connection is kept for the next request.)
    events.clear()
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = await asyncio.wait_for(reader.readuntil(b"ok"), TIMEOUT)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    writer.close()


async def test_a_body_that_comes_whole_is_one_event_on_a_kept_alive_connection_too(
    run_asgi: Any,
) -> None:
    # The chunks taken in one turn of the loop (BODY_PIECES_PER_TURN) were
    # counted on from one request to the next on a kept-alive connection
    # (the count went back to 0 only when a receive() waited): a whole body
    # of 5 chunks after one of BODY_PIECES_PER_TURN - 1 (or some hundred
    # requests of 10 chunks) came as two events, the first saying more_body.
    events: list[list[dict[str, Any]]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        taken = [await receive()]
        while taken[-1].get("more_body"):
            taken.append(await receive())
        events.append(taken)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    for count in (BODY_PIECES_PER_TURN - 1, 5):
        writer.write(head + b"1\r\na\r\n" * count + b"0\r\n\r\n")
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\nok"), TIMEOUT)
        assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert [[(e["body"], e["more_body"]) for e in taken] for taken in events] == [
        [(b"a" * (BODY_PIECES_PER_TURN - 1), False)],
        [(b"aaaaa", False)],
    ]
    writer.close()


async def test_an_answer_after_a_first_piece_closes_when_what_came_with_it_is_malformed(
    run_asgi: Any,
) -> None:
    # The chunks at hand with the first are taken with it, and a malformed
    # one among them (here, trailers over max_headers) is said at the next
    # receive(): an application that answers without asking again must not
    # have the connection kept for a next request, as if the body were fine.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        event = await receive()
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": event["body"]})

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n" + b"X: a\r\n" * 101 + b"\r\n"
    )
    answer = await asyncio.wait_for(reader.read(), TIMEOUT)  # (to its end: closed)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert b"\r\nconnection: close\r\n" in answer.lower(), answer
    assert answer.endswith(b"\r\n\r\nabc"), answer
    writer.close()


async def test_a_malformed_end_read_ahead_as_the_answer_starts_is_a_disconnect(
    run_asgi: Any,
) -> None:
    # The body's end came with trailers over max_headers while the
    # application worked, and was read ahead as its answer started: h11 took
    # the body for ended, and the application's next receive() waited for
    # its own answer to complete (the client for ever, the application with
    # it) where a malformed body found there is the connection's end.
    events: list[dict[str, Any]] = []
    ended = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        events.append(await receive())
        await asyncio.sleep(0.2)  # (the rest of the body comes meanwhile)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})
        events.append(await receive())
        ended.set()

    server = await run_asgi(app)
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    await asyncio.sleep(0.05)
    writer.write(b"0\r\n" + b"X: a\r\n" * 101 + b"\r\n")
    await asyncio.wait_for(ended.wait(), TIMEOUT)
    assert [event["type"] for event in events] == ["http.request", "http.disconnect"], events
    assert events[0]["body"] == b"abc", events
    writer.close()


async def test_a_receive_cancelled_leaves_the_other_waiting_one_its_event(
    run_asgi: Any,
) -> None:
    outcome: list[Any] = []
    gave_up = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        first = asyncio.create_task(receive())
        await asyncio.sleep(0.05)
        second = asyncio.create_task(receive())
        await asyncio.sleep(0.05)
        first.cancel()  # the app gives up one of them (a wait_for's timeout, say)
        gave_up.set()
        try:
            outcome.append(await asyncio.wait_for(second, TIMEOUT))
        except BaseException as exc:
            outcome.append(exc)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
    await asyncio.wait_for(gave_up.wait(), TIMEOUT)
    writer.write(b"0123456789")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 200 "), head
    writer.close()
    # (The whole body, its end with it: see test_a_body_that_comes_whole_is_one_request_event.)
    assert outcome == [{"type": "http.request", "body": b"0123456789", "more_body": False}], outcome


@pytest.mark.parametrize("pipelined", [True, False])
async def test_a_receive_still_waiting_when_the_response_ended_leaves_the_next_request(
    run_asgi: Any, pipelined: bool
) -> None:
    # A listener's receive() waited while the main task took the body's rest
    # and answered: woken after, it took the next request's head for its
    # disconnect, and that request was never answered.
    paths: list[str] = []
    heard: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        paths.append(scope["path"])
        if scope["path"] != "/a":
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": b"next-ok"})
            return
        await receive()  # AAAAA

        async def listener() -> None:
            heard.append((await receive())["type"])

        listening = asyncio.ensure_future(listener())  # waits second
        await receive()  # waits first, wakes first: BBBBB
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"a-ok"})
        await listening

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nAAAAA")
    await asyncio.sleep(0.2)
    next_request = b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
    writer.write(b"BBBBB" + (next_request if pipelined else b""))
    if not pipelined:
        await asyncio.wait_for(reader.readuntil(b"a-ok"), TIMEOUT)
        await asyncio.sleep(0.2)
        writer.write(next_request)
    await asyncio.wait_for(reader.readuntil(b"next-ok"), TIMEOUT)
    writer.close()
    assert paths == ["/a", "/b"] and heard == ["http.disconnect"]


async def test_http_disconnect_when_the_client_goes_away(run_asgi: Any) -> None:
    heard: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        assert (await receive())["type"] == "http.request"
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"streaming...", "more_body": True})
        heard.set_result(await receive())  # long polling: wait for the client to leave
        with pytest.raises(OSError):
            await send({"type": "http.response.body", "body": b"more"})

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"streaming..."), TIMEOUT)
    writer.close()
    assert await asyncio.wait_for(heard, TIMEOUT) == {"type": "http.disconnect"}


class LateSend:
    """A streaming app's send() once the client has left, and what became of it."""

    def __init__(self) -> None:
        self._go = asyncio.Event()
        self._outcome: list[str] = []

    async def send(self, send: Any) -> None:
        """In the app: wait for the word, send a piece, and note whether it raised."""
        await self._go.wait()
        try:
            await send({"type": "http.response.body", "body": b"data: tick\n\n", "more_body": True})
        except OSError as exc:
            self._outcome.append(type(exc).__name__)
        else:
            self._outcome.append("sent")

    async def outcome_once_the_client_left(self, server: Any) -> str:
        """In the test, after closing the client: let the app send once the server saw it."""
        await wait_for(lambda: not server.connections, what="the server to see the client leave")
        self._go.set()
        await wait_for(lambda: self._outcome, what="the app's send")
        (outcome,) = self._outcome
        return outcome


@pytest.mark.parametrize("more", [True, False], ids=["streamed", "complete"])
async def test_a_send_notices_the_client_leaving_without_receive(run_asgi: Any, more: bool) -> None:
    # Server-sent events: the app only sends (Starlette on spec 2.4+ does not
    # listen for http.disconnect; it counts on send() raising). Reading was
    # paused, so the client's FIN went unseen: the next send "succeeded", and
    # only the one after that failed. After a complete response, a message is
    # ignored while the connection lasts (above); once the client is gone, it
    # raises as any other send does (www.rst, "Disconnected Client").
    late = LateSend()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"data: hello\n\n", "more_body": more})
        await late.send(send)

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"data: hello"), TIMEOUT)
    writer.close()
    assert await late.outcome_once_the_client_left(server) == "ClientDisconnected"


@pytest.mark.parametrize("size", [3, 200_000])
async def test_a_streamed_response_notices_the_client_leaving_after_the_app_read_its_body(
    run_asgi: Any, size: int
) -> None:
    # The app streams while it reads the request's body: each receive()
    # paused reading again once served, and the client's FIN went unseen.
    late = LateSend()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"started\n", "more_body": True})
        body = b""
        while True:
            await asyncio.sleep(0.01)  # (slowly: what comes meanwhile waits, within a bound)
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        got = b"got " + str(len(body)).encode()
        await send({"type": "http.response.body", "body": got, "more_body": True})
        await late.send(send)

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode()
    writer.write(head + b"a" * size)  # (all of it here before the app reads: over the bound)
    await asyncio.wait_for(reader.readuntil(b"started"), TIMEOUT)
    await asyncio.wait_for(reader.readuntil(f"got {size}".encode()), TIMEOUT)
    writer.close()
    assert await late.outcome_once_the_client_left(server) == "ClientDisconnected"


async def test_an_app_that_goes_on_when_cancelled_is_named_at_shutdown(
    run_asgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    stop = asyncio.Event()
    entered = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        entered.set()
        while not stop.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # (the mistake)
                await asyncio.sleep(0.05)

    server = await run_asgi(app, shutdown_timeout=0.2)
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /stubborn HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(entered.wait(), TIMEOUT)
    await asyncio.wait_for(server.close(), TIMEOUT)
    stop.set()
    writer.close()
    said = [r.getMessage() for r in caplog.records if "left running" in r.getMessage()]
    assert said == [
        "shutdown: the application's task for /stubborn went on when cancelled "
        "(it caught the CancelledError); left running"
    ]


async def test_http_app_failing_before_a_response_is_500(
    run_asgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        raise RuntimeError("boom")

    server = await run_asgi(app)
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/")
    assert response.status_code == 500
    expect_logged_error(caplog, "ASGI application failed")


@pytest.mark.parametrize(
    "header",
    [(b"x-split", b"a\r\nSet-Cookie: evil=1"), (b"x-nul", b"a\x00b"), (b"bad name", b"v")],
)
async def test_response_splitting_is_refused_not_sent(
    run_asgi: Any, caplog: pytest.LogCaptureFixture, header: tuple[bytes, bytes]
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200, "headers": [header]})
        await send({"type": "http.response.body", "body": b"never"})

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    response = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    assert response.startswith(b"HTTP/1.1 500 ")
    assert b"evil" not in response and b"never" not in response
    expect_logged_error(caplog, "ASGI application failed")


async def test_messages_after_a_complete_response_are_ignored(run_asgi: Any) -> None:
    returned: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"whole"})
        await send({"type": "http.response.body", "body": b"EXTRA"})  # www.rst: ignored
        returned.append("normally")

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.2)
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    assert data.count(b"HTTP/1.1 200 OK\r\n") == 2 and data.count(b"whole") == 2
    assert b"EXTRA" not in data
    assert returned == ["normally", "normally"]  # not an error for the app


async def test_header_bytes_beyond_ascii_go_out_as_they_came(run_asgi: Any) -> None:
    # ASGI headers are bytes; a latin-1 one (obs-text) made h11 fail encoding
    # its str as ASCII: the client got no response at all, the log a traceback.
    disposition = 'attachment; filename="caf\xe9.txt"'.encode("latin-1")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        headers = [(b"content-disposition", disposition)]
        if scope["path"] == "/streamed":
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
            await send({"type": "http.response.body", "body": b"y"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"xy"})

    server = await run_asgi(app)
    async with httpx.AsyncClient() as client:
        for path in ("/", "/streamed"):
            response = await client.get(f"http://127.0.0.1:{server.port}{path}")
            assert response.status_code == 200 and response.content == b"xy"
            assert (b"content-disposition", disposition) in response.headers.raw


async def test_background_work_after_the_response_does_not_hold_the_connection(
    run_asgi: Any,
) -> None:
    release = asyncio.Event()
    finished = asyncio.Event()
    clients: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        clients.append(scope["client"])
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": scope["path"].encode()})
        if scope["path"] == "/slow":
            await release.wait()  # e.g. Starlette's BackgroundTasks
            finished.set()

    server = await run_asgi(app)
    async with httpx.AsyncClient() as client:
        first = await asyncio.wait_for(client.get(f"http://127.0.0.1:{server.port}/slow"), TIMEOUT)
        second = await asyncio.wait_for(
            client.get(f"http://127.0.0.1:{server.port}/next"), TIMEOUT
        )  # not waiting for the background work, which goes on
    assert (first.text, second.text) == ("/slow", "/next")
    assert clients[0] == clients[1]  # the same kept-alive connection
    assert not finished.is_set()
    release.set()
    await asyncio.wait_for(finished.wait(), TIMEOUT)


# ==================================================================== lifespan


def lifespan_app(fail: str | None = None, record: list[str] | None = None) -> App:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if record is not None:
                    record.append(message["type"])
                if message["type"] == "lifespan.startup":
                    if fail == "failed":
                        await send({"type": "lifespan.startup.failed", "message": "no database"})
                        return
                    if fail == "raise":
                        raise RuntimeError("lifespan not supported")
                    scope["state"]["ready"] = True
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": json.dumps(scope.get("state")).encode()})

    return app


async def test_lifespan_startup_state_and_shutdown(run_asgi: Any) -> None:
    record: list[str] = []
    server = await run_asgi(lifespan_app(record=record))
    assert record == ["lifespan.startup"]
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/")
    assert response.json() == {"ready": True}
    await server.close()
    assert record == ["lifespan.startup", "lifespan.shutdown"]


async def test_lifespan_startup_failed_stops_the_server() -> None:
    server = serve(lifespan_app(fail="failed"), "127.0.0.1", 0)
    with pytest.raises(LifespanFailure, match="no database"):
        await server.start()
    assert not server.sockets  # it never listened


async def test_a_lifespan_failure_without_a_message_says_what_the_app_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # lifespan.rst: the failures' "message" is optional. Without one, the
    # startup's was said as "ASGI lifespan startup failed: startup failed",
    # and the shutdown's as "ASGI lifespan shutdown failed: ", nothing after it.
    def failing(at: str) -> App:
        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            assert scope["type"] == "lifespan"
            await receive()
            if at == "startup":
                await send({"type": "lifespan.startup.failed"})
                return
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.failed"})

        return app

    with pytest.raises(LifespanFailure) as raised:
        await serve(failing("startup"), "127.0.0.1", 0).start()
    assert str(raised.value) == "lifespan.startup.failed (no message)"
    server = serve(failing("shutdown"), "127.0.0.1", 0)
    await server.start()
    await server.close()
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert said == ["ASGI lifespan shutdown failed: lifespan.shutdown.failed (no message)"]
    expect_logged_error(caplog, "lifespan.shutdown.failed (no message)")


async def test_an_unasked_lifespan_failure_without_a_message_is_said_alike(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A lifespan.shutdown.failed after the startup, unasked (Starlette's way
    # of saying its task group died), without a message, was said as
    # "lifespan.shutdown.failed", where an asked one says "... (no message)".
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.failed"})

    server = serve(app, "127.0.0.1", 0)
    await server.start()
    await asyncio.wait_for(server.close(), TIMEOUT)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert said == [
        "ASGI lifespan failed after its startup: lifespan.shutdown.failed (no message):"
        " its shutdown will not be sent"
    ]
    expect_logged_error(caplog, "lifespan.shutdown.failed (no message)")


def hanging_startup(began: asyncio.Event, ended: list[str]) -> App:
    """An app whose lifespan startup waits for ever (a database that does not
    answer): ``began`` set once it waits, "cancelled" in ``ended`` once cancelled."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        began.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise

    return app


async def test_a_start_cancelled_during_the_lifespan_startup_cancels_it() -> None:
    # (serve_forever() cancelled, a stop signal): the application's startup
    # was left waiting until the loop's end, nobody to answer it.
    began = asyncio.Event()
    ended: list[str] = []
    app = hanging_startup(began, ended)

    server = serve(app, "127.0.0.1", 0)
    serving = asyncio.create_task(server.serve_forever())
    await asyncio.wait_for(began.wait(), TIMEOUT)
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(serving, TIMEOUT)
    await wait_for(lambda: ended == ["cancelled"], what="the startup cancelled")
    assert not server.sockets


async def test_close_during_a_lifespan_startup_that_hangs_stops_the_start() -> None:
    # (An embedding program's SIGTERM handler calls server.close().) close()
    # waited for the start, which waited for the startup: for ever, where
    # the command's stop signals cancel it; await start() returns unstarted.
    began = asyncio.Event()
    ended: list[str] = []
    app = hanging_startup(began, ended)

    server = serve(app, "127.0.0.1", 0)
    starting = asyncio.create_task(server.start())
    await asyncio.wait_for(began.wait(), TIMEOUT)
    await asyncio.wait_for(server.close(), TIMEOUT)
    assert ended == ["cancelled"]  # (its task ended before close() returned)
    assert await asyncio.wait_for(starting, TIMEOUT) is server
    assert server.closing and server.sockets == ()  # (it never listened)


@pytest.mark.parametrize("event", ["lifespan.startup", "lifespan.shutdown"])
async def test_a_lifespan_that_answers_failed_once_given_up_on_is_let_say_so(
    caplog: pytest.LogCaptureFixture, event: str
) -> None:
    # Starlette's lifespan answers whatever stops it (BaseException) with
    # lifespan.startup.failed (or shutdown.failed), then re-raises: here the
    # cancellation of a startup that waits on a database (a stop signal, a
    # close()), or of a shutdown past its time. That answer, no longer waited
    # for, raised RuntimeError("... no answer is due now") into the app, which
    # replaced its CancelledError: after a SIGTERM during a FastAPI app's
    # startup, `python -m wsserver` logged "Task exception was never
    # retrieved" with that RuntimeError's traceback.
    raised: list[str] = []
    waiting = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = False
        try:
            await receive()
            if event == "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
                started = True
                await receive()
            waiting.set()
            await asyncio.sleep(30)  # a database that does not answer
        except BaseException:
            failed = "lifespan.shutdown.failed" if started else "lifespan.startup.failed"
            try:
                await send({"type": failed, "message": "Traceback ..."})
            except RuntimeError as exc:
                raised.append(str(exc))
            raise

    server = serve(app, "127.0.0.1", 0, shutdown_timeout=0.1, close_timeout=0.1)
    if event == "lifespan.startup":
        starting = asyncio.create_task(server.start())
        await asyncio.wait_for(waiting.wait(), TIMEOUT)
        starting.cancel()  # (what a stop signal does)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(starting, TIMEOUT)
    else:
        await server.start()
        await asyncio.wait_for(server.close(), TIMEOUT)
        expect_logged_error(caplog, "no answer to lifespan.shutdown within 0.2 s")
    assert raised == []
    await asyncio.sleep(0)
    assert [t for t in asyncio.all_tasks() if "Lifespan" in repr(t.get_coro())] == []


@pytest.mark.parametrize("cancelled_in", ["the broker's attach", "the lifespan startup"])
async def test_a_start_cancelled_undoes_what_had_started(cancelled_in: str) -> None:
    # The broker is attached before the lifespan startup (which may publish):
    # cancelled while it attaches (Redis waits up to 1 s there), the
    # application never started; cancelled in the lifespan startup, the
    # broker is detached again.
    from wsserver.broker import MemoryBroker

    steps: list[str] = []
    reached = asyncio.Event()  # (the step the start is cancelled in)

    class SlowBroker(MemoryBroker):
        async def attach(self, node: Any) -> None:
            steps.append("attach")
            if cancelled_in == "the broker's attach":
                reached.set()
                await asyncio.sleep(30)

        async def detach(self, node: Any) -> None:
            steps.append("detach")
            await super().detach(node)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        steps.append((await receive())["type"])
        reached.set()
        await asyncio.sleep(30)

    server = serve(app, "127.0.0.1", 0, broker=SlowBroker())
    starting = asyncio.create_task(server.start())
    await asyncio.wait_for(reached.wait(), TIMEOUT)
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    if cancelled_in == "the broker's attach":
        assert steps == ["attach", "detach"]
    else:
        assert steps == ["attach", "lifespan.startup", "detach"]
    await server.close()
    assert not server.sockets


async def test_lifespan_auto_runs_without_it_when_the_app_raises(run_asgi: Any) -> None:
    server = await run_asgi(lifespan_app(fail="raise"))
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/")
    # An empty state of its own then (there was none: middleware writing to
    # scope["state"] failed with a KeyError, where uvicorn gives {}).
    assert response.status_code == 200 and response.json() == {}


async def test_lifespan_on_makes_a_raising_app_fail_and_off_never_calls_it() -> None:
    server = serve(lifespan_app(fail="raise"), "127.0.0.1", 0, lifespan="on")
    with pytest.raises(LifespanFailure, match="lifespan not supported"):
        await server.start()
    record: list[str] = []
    server = serve(lifespan_app(record=record), "127.0.0.1", 0, lifespan="off")
    await server.start()
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/")
    assert response.json() == {}
    await server.close()
    assert record == []


async def test_lifespan_on_starts_an_app_that_returns_on_the_lifespan_scope(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As uvicorn's --lifespan on does: only a failure (startup.failed, or an
    # app that raises) stops the start. An app that returns has no lifespan.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"served"})

    server = serve(app, "127.0.0.1", 0, lifespan="on")
    await server.start()
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{server.port}/")
        assert response.text == "served"
    finally:
        await server.close()
    said = [r for r in caplog.records if "lifespan" in r.getMessage()]
    assert [(r.levelname, r.getMessage()) for r in said] == [
        (
            "WARNING",
            "ASGI lifespan: the application returned without answering lifespan.startup "
            "(--lifespan on); running without lifespan events",
        )
    ]


def test_serve_takes_asgi_apps_of_every_shape() -> None:
    class App:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...

    async def function(scope: Any, receive: Any, send: Any) -> None: ...

    for app in (App(), function):
        server = serve(app, "127.0.0.1", 0)
        assert server.asgi is not None and server.router is None
        assert server.config.compression == "deflate"
    assert serve(function, compression=None).config.compression is None


# ================================================== found in review (each failed first)


async def test_long_poll_hears_the_client_leave_after_it_pipelined_more(run_asgi: Any) -> None:
    heard: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()  # the (empty) body
        heard.set_result(await receive())  # long poll: wait for the client to go away

    server = await run_asgi(app)
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.1)
    writer.write(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")  # pipelined meanwhile
    await asyncio.sleep(0.1)
    writer.close()
    assert await asyncio.wait_for(heard, TIMEOUT) == {"type": "http.disconnect"}
    await wait_until(lambda: not server.app_tasks and not server.connections)


async def test_pipelined_requests_between_cycles_are_not_buffered_without_bound(
    run_asgi: Any,
) -> None:
    # Small requests pipelined faster than they are answered, each 1-byte
    # body read whole: the answer's end resumed reading, and the next
    # request's dispatch waits for a turn of the loop (end_response()); a
    # read that came first (uvloop reads before the callbacks) went to h11
    # unbounded, each cycle one more, and h11's buffer grew to all the
    # client sent.
    peak = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal peak
        if await lifespan_unsupported(scope):
            return
        while (await receive()).get("more_body"):
            pass
        await asyncio.sleep(0)  # (after the body's end: what comes meanwhile is kept)
        peak = max(peak, h11_holds(server))
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]}
        )
        await send({"type": "http.response.body", "body": b"x"})

    server = await run_asgi(app)
    n = 14_000
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"  # 47: 643 KiB
    assert await pipelined_answers(server.port, request, n) == n
    bound = server.config.max_header_size + READ_SIZE
    assert peak <= bound, f"h11 held {peak} bytes of pipelined requests (bound {bound})"


async def wait_until(condition: Callable[[], object], timeout: float = TIMEOUT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_an_app_that_returns_once_the_client_left_is_not_an_error(
    run_asgi: Any,
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        assert (await receive())["type"] == "http.disconnect"  # and returns, nothing to say

    server = await run_asgi(app)
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.1)
    writer.close()
    await wait_until(lambda: not server.app_tasks)
    # (the autouse fixture fails the test if an error was logged)


@pytest.mark.parametrize("status", [204, 304])
async def test_no_content_length_is_added_to_204_and_304(run_asgi: Any, status: int) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": status, "headers": [(b"etag", b"x")]})
        await send({"type": "http.response.body"})

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)  # still in step
    writer.close()
    assert first.startswith(f"HTTP/1.1 {status} ".encode()) and second == first
    assert b"content-length" not in first.lower()


async def test_a_204s_content_length_is_left_out(run_asgi: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        headers = [(b"content-length", b"8")]  # (RFC 9110 8.6: a 204 has none)
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body"})

    server = await run_asgi(app)
    raw = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2, wait=0.5)
    assert raw.count(b"HTTP/1.1 204 No Content\r\n") == 2, raw
    assert b"content-length" not in raw.lower() and raw.endswith(b"<still open>")


@pytest.mark.parametrize(
    ("status", "headers", "pieces", "error"),
    [
        (200, [(b"content-length", b"5")], [b"0123456789"], "10 bytes, and Content-Length says 5"),
        (200, [(b"content-length", b"5")], [b"012"], "3 bytes, and Content-Length says 5"),
        (200, [(b"content-length", b"5")], [b"012345", b""], "6 bytes to begin with"),
        (200, [(b"content-length", b"five")], [b"01234"], "invalid Content-Length"),
        (200, [(b"content-length", b"5, 6")], [b"01234"], "invalid Content-Length"),
        (204, [], [b"body"], "a 204 response has no body"),
        (304, [(b"content-length", b"4")], [b"body"], "a 304 response has no body"),
        (205, [], [b"body"], "a 205 response has no body"),  # (RFC 9110 15.3.6)
    ],
    ids=["longer", "shorter", "longer-first-piece", "nonsense", "two-lengths", "204", "304", "205"],
)
async def test_a_first_body_that_does_not_fit_its_head_gets_a_500(
    run_asgi: Any,
    caplog: pytest.LogCaptureFixture,
    status: int,
    headers: list[tuple[bytes, bytes]],
    pieces: list[bytes],
    error: str,
) -> None:
    # Nothing was sent (the head waits for the first body): a 500 can take
    # the response's place, rather than a head cut short.
    raised: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": status, "headers": headers})
        try:
            for piece in pieces[:-1]:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": pieces[-1]})
        except (RuntimeError, ValueError) as exc:
            raised.append(exc)
            raise

    server = await run_asgi(app)
    raw = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 500 Internal Server Error\r\n"), raw
    assert raised and error in str(raised[0]), raised
    expect_logged_error(caplog, "ASGI application failed")

    # HEAD: no body goes, and a length is GET's (any body the app sends is dropped).
    raw = await exchange(server.port, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", wait=0.5)
    if "invalid" in error:
        assert raw.startswith(b"HTTP/1.1 500 "), raw
        expect_logged_error(caplog, "ASGI application failed")
    else:
        assert raw.startswith(f"HTTP/1.1 {status} ".encode()) and raw.endswith(
            b"\r\n\r\n<still open>"
        )


async def test_lifespan_shutdown_runs_when_listening_fails() -> None:
    record: list[str] = []
    taken = serve(lifespan_app(), "127.0.0.1", 0, lifespan="off")
    await taken.start()
    try:
        server = serve(lifespan_app(record=record), "127.0.0.1", taken.port)
        with pytest.raises(OSError):
            await server.start()
        assert record == ["lifespan.startup", "lifespan.shutdown"]
    finally:
        await taken.close()


async def test_a_failed_lifespan_startup_leaves_no_task_behind() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        raise RuntimeError("database unreachable")  # Starlette re-raises after saying so

    server = serve(app, "127.0.0.1", 0)
    with pytest.raises(LifespanFailure):
        await server.start()
    await asyncio.sleep(0)
    lifespan_tasks = [t for t in asyncio.all_tasks() if "Lifespan" in repr(t.get_coro())]
    assert lifespan_tasks == []


@pytest.mark.parametrize("root_path", ["/my app", "/日本", "/a\x00b", "/a?b"])
def test_root_path_must_be_a_plain_path(root_path: str) -> None:
    from wsserver.config import Config
    from wsserver.errors import ConfigError

    with pytest.raises(ConfigError, match="root_path"):
        Config(root_path=root_path)
    assert Config(root_path="/api/v1").root_path == "/api/v1"


# ================================================ after the client left, and bad bodies


class WebSocketDisconnect(Exception):
    """What a framework (Starlette) makes of websocket.disconnect: named so."""


@pytest.mark.parametrize("kind", ["websocket", "http"])
async def test_an_apps_own_error_after_the_client_left_is_still_its_error(
    run_asgi: Any, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    # The client leaving excuses what comes of it, not a bug in the clean-up.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            assert (await receive())["type"] == "websocket.disconnect"
        else:
            await receive()
            assert (await receive())["type"] == "http.disconnect"
        if scope["path"] == "/framework":
            raise WebSocketDisconnect(1000)
        {}["never-added"]

    server = await run_asgi(app)
    for path in ["/framework", "/bug"]:
        if kind == "websocket":
            async with websockets.connect(f"ws://127.0.0.1:{server.port}{path}"):
                pass
        else:
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await asyncio.sleep(0.1)
            writer.close()
        await wait_for(lambda: not server.app_tasks and not server.connections, what="the end")
        if path == "/framework":
            assert not errors_logged(caplog) and server.stats()["handler_errors"] == 0
    expect_logged_error(caplog, "ASGI application failed")
    assert server.stats()["handler_errors"] == 1


@pytest.mark.parametrize("how", ["raises", "returns"])
async def test_an_app_that_stops_after_its_response_start_gets_a_500_in_its_place(
    run_asgi: Any, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    # The head waits for the first body: nothing was written, and a 500 can
    # still be sent instead of closing the connection on the client.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if how == "raises":
            raise RuntimeError("after the start")

    server = await run_asgi(app)
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/")
    assert response.status_code == 500
    expect_logged_error(
        caplog, "ASGI application failed" if how == "raises" else "did not finish its response"
    )
    assert server.stats()["handler_errors"] == 1


@pytest.mark.parametrize("how", ["raises", "returns"])
async def test_a_body_the_close_would_end_is_cut_short_with_a_reset(
    run_asgi: Any, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    # An HTTP/1.0 client's body without a Content-Length ends where the
    # connection does: a FIN after an app that stopped halfway made what came
    # look whole (curl --http1.0 exited 0). It is reset (RFC 9112 8); an
    # HTTP/1.1 client's chunked body, or a HEAD's head, ends with a FIN.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        if how == "raises":
            raise RuntimeError("halfway")

    server = await run_asgi(app)
    for request, reset in (
        (b"GET / HTTP/1.0\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False),
        (b"HEAD / HTTP/1.0\r\n\r\n", False),
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request)
        if reset:
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(), 5)
        else:
            received = await asyncio.wait_for(reader.read(), 5)
            assert received.startswith(b"HTTP/1.1 200 ") and not received.endswith(b"0\r\n\r\n")
        writer.close()
        expect_logged_error(
            caplog, "ASGI application failed" if how == "raises" else "did not finish its response"
        )


@pytest.mark.parametrize("status", [204, 304])
async def test_a_bodiless_response_left_halfway_is_not_reset(
    run_asgi: Any, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    # A 204's or a 304's head is the whole response, however the connection
    # ends: an app that stops after it leaves no body cut short, and a reset
    # (which may drop the head still unsent) would say an error where none is.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        raise RuntimeError("after the head")

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    received = await asyncio.wait_for(reader.read(), 5)
    assert received.startswith(b"HTTP/1.1 %d " % status), received
    writer.close()
    expect_logged_error(caplog, "ASGI application failed")


@pytest.mark.parametrize("piece", ["body", "zerocopysend"])
async def test_a_body_the_close_would_end_is_reset_when_its_client_stalls(
    run_asgi: Any, tmp_path: Any, piece: str
) -> None:
    # The client took nothing for timeout_keep_alive: it was closed with a
    # FIN after what waited for it, so a client that read on later took the
    # body cut short for whole (HTTP/1.0, no Content-Length: its end is the
    # connection's). A file's piece sent by the kernel's sendfile() too.
    path = tmp_path / "big.bin"
    path.write_bytes(b"f" * 8_000_000)
    ended: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            with open(path, "rb") as file:
                while True:
                    if piece == "body":
                        message = {"type": "http.response.body", "body": b"x" * 65536}
                    else:
                        message = {"type": "http.response.zerocopysend", "file": file, "offset": 0}
                    await send({**message, "more_body": True})
        except BaseException as exc:
            ended.set_result(exc)
            raise

    server = await run_asgi(app, timeout_keep_alive=0.3, close_timeout=5.0)
    loop = asyncio.get_running_loop()
    client = await slow_reader(server.port)
    try:
        await loop.sock_sendall(client, b"GET / HTTP/1.0\r\n\r\n")
        assert isinstance(await asyncio.wait_for(ended, TIMEOUT), OSError)  # (given up on)
        with pytest.raises(ConnectionResetError):
            while await asyncio.wait_for(loop.sock_recv(client, 1 << 20), TIMEOUT):
                pass
    finally:
        client.close()


async def test_a_body_the_close_would_end_cut_off_by_the_shutdown_is_reset(run_asgi: Any) -> None:
    # The shutdown cancelled the app past shutdown_timeout, mid-body: the
    # same FIN made what came look whole.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            await send({"type": "http.response.body", "body": b"x" * 10, "more_body": True})
            await asyncio.sleep(0.02)

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"xxxxxxxxxx"), 5)
    await asyncio.wait_for(server.close(timeout=0.3), 5)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), 5)
    writer.close()


async def test_an_int_is_no_body(run_asgi: Any, caplog: pytest.LogCaptureFixture) -> None:
    # bytes(4) would be four NUL bytes on the wire.
    errors: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        try:
            if scope["type"] == "websocket":
                await receive()
                if scope["path"] == "/deny":
                    await send({"type": "websocket.http.response.start", "status": 403})
                    await send({"type": "websocket.http.response.body", "body": 4})
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.send", "bytes": 5})
            else:
                await send({"type": "http.response.start", "status": 200})
                await send({"type": "http.response.body", "body": 4})
        except TypeError as exc:
            errors.append(exc)
            raise

    server = await run_asgi(app)
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{server.port}/")).status_code == 500
    with pytest.raises(InvalidStatus) as caught:
        await websockets.connect(f"ws://127.0.0.1:{server.port}/deny")
    assert caught.value.response.status_code == 500
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/send") as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)  # nothing, then the close
    assert ws.close_code == 1011
    assert [str(e) for e in errors] == [
        "http.response.body: 'body' must be bytes, not int",
        "websocket.http.response.body: 'body' must be bytes, not int",
        "websocket.send: 'bytes' must be bytes, not int",
    ]
    expect_logged_error(caplog, "ASGI application failed")


async def test_a_websocket_send_needs_exactly_one_of_text_and_bytes(run_asgi: Any) -> None:
    # Each malformed message raises to the application, sends nothing, and
    # leaves the connection usable; a bytearray or memoryview is bytes.
    errors: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        await send({"type": "websocket.accept"})
        for bad in (
            {},
            {"text": None, "bytes": None},
            {"text": "a", "bytes": b"b"},
            {"text": b"bytes as text"},
            {"text": 5, "bytes": None},
            {"bytes": "text as bytes"},
        ):
            try:
                await send({"type": "websocket.send", **bad})
            except (TypeError, ValueError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        await send({"type": "websocket.send", "bytes": bytearray(b"array")})
        await send({"type": "websocket.send", "bytes": memoryview(b"view"), "text": None})
        await send({"type": "websocket.send", "text": "text", "bytes": None})
        await send({"type": "websocket.close"})

    server = await run_asgi(app)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        received = [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in range(3)]
    assert received == [b"array", b"view", "text"]
    one = "ValueError: websocket.send needs exactly one of 'text' and 'bytes'"
    assert errors == [
        one,
        one,
        one,
        "TypeError: websocket.send: 'text' must be str",
        "TypeError: websocket.send: 'text' must be str",
        "TypeError: websocket.send: 'bytes' must be bytes, not str",
    ]


async def test_a_str_subclass_is_text_and_a_close_reason(run_asgi: Any) -> None:
    # www.rst: "text" is a Unicode string; a StrEnum's member is one (as a
    # Router handler's send() takes it, and uvicorn does), and a reason of a
    # str subclass is cut to what a close frame holds, as a str is.
    class Status(enum.StrEnum):
        READY = "ready"

    class Text(str):
        pass

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": Status.READY})
        await send({"type": "websocket.send", "text": Text("plain"), "bytes": None})
        await send({"type": "websocket.close", "code": 4000, "reason": Text("é" * 100)})

    server = await run_asgi(app)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        received = [await asyncio.wait_for(ws.recv(), TIMEOUT) for _ in range(2)]
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert received == ["ready", "plain"]
    assert ws.close_code == 4000 and ws.close_reason == "é" * 61


async def test_messages_after_a_complete_response_are_ignored_trailers_too(
    run_asgi: Any,
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"done"})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]})

    server = await run_asgi(app)
    async with httpx.AsyncClient() as client:
        for _ in range(2):  # the connection is kept, and reused
            response = await client.get(f"http://127.0.0.1:{server.port}/")
            assert (response.status_code, response.text) == (200, "done")
    # (the autouse fixture fails the test if an error was logged)


async def test_an_app_too_slow_to_answer_the_handshake_gets_its_client_a_503(
    run_asgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # open_timeout bounds the handshake, the app's decision included: the
    # client used to get a bare close, with nothing said.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        await asyncio.sleep(30)

    server = await run_asgi(app, open_timeout=0.3)
    with pytest.raises(InvalidStatus) as caught:
        await websockets.connect(f"ws://127.0.0.1:{server.port}/slow?token=SECRET")
    assert caught.value.response.status_code == 503
    await wait_for(lambda: not server.app_tasks, what="the app cancelled")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("did not answer the handshake for /slow within" in w for w in warnings), warnings
    # A query string often carries a token (browsers cannot send headers on an upgrade).
    assert not [w for w in warnings if "SECRET" in w], warnings


async def test_an_app_deciding_past_open_timeout_is_cancelled_once_its_client_left(
    run_asgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A client that gives up on the handshake first (its own timeout, often
    # as long as ours) took the bound with it: the app, stuck on a lookup
    # that never ends, ran on for ever, a task held and counted by
    # limit_concurrency for each such client.
    ended: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        try:
            await asyncio.Event().wait()  # (a lookup that never answers)
        except asyncio.CancelledError:
            ended.append(scope["path"])
            raise

    server = await run_asgi(app, open_timeout=0.3)
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/stuck?token=SECRET"))
    await wait_for(lambda: server.app_tasks, TIMEOUT, "the app at work")
    writer.transport.abort()
    await wait_for(lambda: not server.connections, TIMEOUT, "the connection dropped")
    await wait_for(lambda: not server.app_tasks, TIMEOUT, "the app cancelled")
    assert ended == ["/stuck"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("did not answer the handshake for /stuck within" in w for w in warnings), warnings
    assert not [w for w in warnings if "SECRET" in w], warnings


async def test_a_background_task_is_not_cancelled_by_an_upgrade_whose_client_left(
    run_asgi: Any,
) -> None:
    # An app's work past its HTTP response (background) is not cancelled when
    # its client leaves. One whose client then began an upgrade with a body
    # and left before the body came was taken for an app deciding that
    # upgrade: cancelled at open_timeout.
    ended: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        try:
            await asyncio.sleep(1.0)  # (background work)
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise
        ended.append("done")

    server = await run_asgi(app, open_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(reader.readuntil(b"ok"), TIMEOUT)).startswith(b"HTTP/1.1 200")
    writer.write(upgrade_request("/ws", [("Content-Length", "10")]))
    await asyncio.sleep(0.1)
    writer.transport.abort()
    await wait_for(lambda: ended, TIMEOUT, "the background work ended")
    assert ended == ["done"]


async def test_an_app_has_open_timeout_to_answer_from_the_whole_request(
    run_asgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The app's answer has open_timeout from the request's end, as a Router
    # on_connect hook's: a head that came slowly (0.7 s of 1.2) left it only
    # the rest, a 503 whose warning blamed the app, which took 0.6 s.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        await asyncio.sleep(0.6)  # (a lookup: within open_timeout)
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})

    server = await run_asgi(app, open_timeout=1.2)
    request = upgrade_request("/")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request[:20])
    await asyncio.sleep(0.7)  # a slow client: the rest of its request comes later
    writer.write(request[20:])
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    writer.close()
    assert head.startswith(b"HTTP/1.1 101 "), head
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_lifespan_answer_that_does_not_fit_raises_into_the_app() -> None:
    # Any answer settled whichever question was asked: a startup answered
    # with shutdown.complete started the server.
    raised: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        for answer in ("lifespan.shutdown.complete", "lifespan.startup.complete"):
            try:
                await send({"type": answer})
            except RuntimeError as exc:
                raised.append(str(exc))
        try:
            await send({"type": "lifespan.startup.complete"})  # twice
        except RuntimeError as exc:
            raised.append(str(exc))
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    server = serve(app, "127.0.0.1", 0, lifespan="on")
    await server.start()
    await server.close()
    assert raised == [
        "lifespan.shutdown.complete: the answer to lifespan.startup is due now",
        "lifespan.startup.complete: no answer is due now",
    ]


async def test_a_lifespan_shutdown_that_never_answers_is_cancelled_after_shutdown_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cancelled = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        try:
            await asyncio.sleep(30)  # (a pool that never closes)
        finally:
            cancelled.set()

    server = serve(app, "127.0.0.1", 0, shutdown_timeout=0.2, close_timeout=0.3)
    await server.start()
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(server.close(), TIMEOUT)
    assert asyncio.get_running_loop().time() - started < 2
    assert cancelled.is_set()
    expect_logged_error(caplog, "no answer to lifespan.shutdown within 0.5 s")
    assert server.counters.handler_errors == 1  # (the application's failure)


@pytest.mark.parametrize("mode", ["auto", "on"])
async def test_a_lifespan_that_fails_after_its_startup_is_logged_when_it_does(
    caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    # A lifespan that raised after its startup (a task it keeps going failed)
    # was said only at the server's shutdown, maybe days later, as "ASGI
    # lifespan shutdown failed". Now at once, and once.
    failing = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            return
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await failing.wait()
        raise RuntimeError("the pool's keeper died")

    server = serve(app, "127.0.0.1", 0, lifespan=mode)
    await server.start()
    try:
        failing.set()
        for _ in range(100):
            if any(r.levelno >= logging.ERROR for r in caplog.records):
                break
            await asyncio.sleep(0.01)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert "after its startup" in errors[0].getMessage()
        assert errors[0].exc_info is not None and "keeper died" in str(errors[0].exc_info[1])
    finally:
        await server.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # (not again at the shutdown)
    assert server.stats()["handler_errors"] == 1
    caplog.clear()


@pytest.mark.parametrize("then", ["raise", "return", "wait"])
async def test_a_lifespan_that_says_shutdown_failed_after_its_startup_is_heard(
    caplog: pytest.LogCaptureFixture, then: str
) -> None:
    # Starlette's lifespan (Litestar's too, as uvicorn takes it) says a failure
    # after its startup (its task group's task died) with lifespan.shutdown.failed,
    # unasked, then re-raises: that send raised RuntimeError("no answer is due
    # now") into it, logged as the lifespan's failure, the app's own error
    # only the context of that one.
    failing = asyncio.Event()
    refused: list[BaseException] = []
    shutdown_sent: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            return
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await failing.wait()
        try:
            await send({"type": "lifespan.shutdown.failed", "message": "the pool's keeper died"})
        except Exception as exc:
            refused.append(exc)
        if then == "raise":
            raise RuntimeError("the pool's keeper died")
        if then == "wait":  # (a loop over receive() that goes on)
            shutdown_sent.append((await receive())["type"])

    server = serve(app, "127.0.0.1", 0)
    await server.start()
    try:
        failing.set()
        for _ in range(100):
            if any(r.levelno >= logging.ERROR for r in caplog.records) or refused:
                break
            await asyncio.sleep(0.01)
        assert refused == []
        if then != "wait":
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert len(errors) == 1, [r.getMessage() for r in errors]
            assert "after its startup" in errors[0].getMessage()
            if then == "raise":
                assert errors[0].exc_info is not None
                assert "keeper died" in str(errors[0].exc_info[1])
            else:
                assert "keeper died" in errors[0].getMessage()
    finally:
        await asyncio.wait_for(server.close(), TIMEOUT)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]  # (once)
    assert "keeper died" in errors[0].getMessage() + repr(errors[0].exc_info)
    assert shutdown_sent == []  # (it answered it: not asked again)
    assert server.stats()["handler_errors"] == 1
    caplog.clear()


@pytest.mark.parametrize("event", ["lifespan.startup", "lifespan.shutdown"])
async def test_a_lifespan_that_ends_in_a_cancelled_error_of_its_own_failed(
    caplog: pytest.LogCaptureFixture, event: str
) -> None:
    # It awaited what other code cancelled (a connection attempt given up
    # on): it raised, but its task ended "cancelled", taken for an app that
    # returned: with --lifespan on the server started without its lifespan,
    # and a shutdown was taken for done, nothing said.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        if (await receive())["type"] != event:
            await send({"type": "lifespan.startup.complete"})
            await receive()
        connecting = asyncio.ensure_future(asyncio.sleep(30))
        asyncio.get_running_loop().call_soon(connecting.cancel)
        await connecting  # (raises the CancelledError: its own)

    server = serve(app, "127.0.0.1", 0, lifespan="on")
    if event == "lifespan.startup":
        with pytest.raises(LifespanFailure, match="raised CancelledError"):
            await asyncio.wait_for(server.start(), TIMEOUT)
        assert not server.sockets  # it never listened
        return
    await server.start()
    await asyncio.wait_for(server.close(), TIMEOUT)
    expect_logged_error(caplog, "ASGI lifespan shutdown failed")
    assert server.stats()["handler_errors"] == 1


@pytest.mark.parametrize("answer", ["lifespan.startup.failed", "lifespan.shutdown.complete"])
async def test_a_lifespan_that_waits_for_more_after_its_last_answer_is_not_waited_for(
    answer: str,
) -> None:
    # A lifespan written as a loop over receive() that does not return once it
    # answered (as many are): nothing more comes, but each stop waited 1 s
    # for it to return (and a failed startup's error, 1 s for its exit).
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                failed = answer == "lifespan.startup.failed"
                await send(
                    {"type": "lifespan.startup.failed" if failed else "lifespan.startup.complete"}
                )
            else:
                await send({"type": "lifespan.shutdown.complete"})

    server = serve(app, "127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    if answer == "lifespan.startup.failed":
        began = loop.time()
        with pytest.raises(LifespanFailure):
            await asyncio.wait_for(server.start(), TIMEOUT)
    else:
        await server.start()
        began = loop.time()
        await asyncio.wait_for(server.close(), TIMEOUT)
    assert loop.time() - began < 0.5
    await asyncio.sleep(0)
    assert [t for t in asyncio.all_tasks() if "Lifespan" in repr(t.get_coro())] == []


async def test_a_lifespan_that_returns_after_its_startup_is_said_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="wsserver")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})

    server = serve(app, "127.0.0.1", 0, lifespan="on")
    await server.start()
    try:
        for _ in range(100):
            if caplog.records:
                break
            await asyncio.sleep(0.01)
        said = [r.getMessage() for r in caplog.records]
        assert len(said) == 1 and "returned after its startup" in said[0], said
    finally:
        await asyncio.wait_for(server.close(), TIMEOUT)
    assert len(caplog.records) == 1 and server.stats()["handler_errors"] == 0


async def test_a_lifespan_shutdown_is_not_cut_off_by_a_zero_shutdown_timeout() -> None:
    # shutdown_timeout 0 (handlers cancelled at once) left the lifespan no time.
    events: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await asyncio.sleep(0.05)  # (closing a pool)
        events.append("closed")
        await send({"type": "lifespan.shutdown.complete"})

    server = serve(app, "127.0.0.1", 0, shutdown_timeout=0)
    await server.start()
    await asyncio.wait_for(server.close(), TIMEOUT)
    assert events == ["closed"]


async def _three(scope: Any, receive: Any, send: Any) -> None: ...


async def _with_default(scope: Any, receive: Any, send: Any, extra: int = 0) -> None: ...


async def _four(scope: Any, receive: Any, send: Any, extra: int) -> None: ...


async def _two(scope: Any, receive: Any) -> None: ...


class _Callable:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (_three, True),
        (_with_default, True),  # (was refused)
        (functools.partial(_with_default, extra=1), True),  # (was refused)
        (functools.partial(_four, extra=1), True),
        (_Callable(), True),
        (_four, False),
        (_two, False),
        (_Callable, False),
        (lambda scope, receive, send: None, False),
    ],
)
def test_what_is_an_asgi_application(obj: Any, expected: bool) -> None:
    assert is_asgi_app(obj) is expected


@pytest.mark.parametrize("genuine", [False, True])
async def test_a_task_group_app_whose_client_left_is_no_error_unless_it_is(
    run_asgi: Any, caplog: pytest.LogCaptureFixture, genuine: bool
) -> None:
    # One task sends, one receives (Starlette endpoints, sse-starlette): when
    # the client leaves, the group raises ExceptionGroup([ClientDisconnected]).
    # That is the client leaving; a genuine error beside it is the app's.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        await send({"type": "websocket.accept"})

        async def ticker() -> None:
            while True:
                await send({"type": "websocket.send", "text": "tick"})
                await asyncio.sleep(0.01)

        left = asyncio.Event()

        async def broken() -> None:
            await left.wait()
            raise ValueError("a genuine bug")

        async with asyncio.TaskGroup() as group:
            group.create_task(ticker())
            if genuine:
                group.create_task(broken())
            while (await receive())["type"] != "websocket.disconnect":
                pass
            left.set()

    server = await run_asgi(app)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "tick"
    await wait_for(lambda: not server.app_tasks, what="the app's end")
    if genuine:
        (error,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert "a genuine bug" in str(error.exc_info[1].exceptions), error.exc_info  # type: ignore[index, union-attr]
        expect_logged_error(caplog, "ASGI application failed")
    assert server.stats()["handler_errors"] == (1 if genuine else 0)


def test_a_group_member_re_raised_from_its_group_is_judged_once() -> None:
    # (Starlette's BaseHTTPMiddleware does it: the member's context is the
    # group that holds it; the walk went round for ever, a RecursionError.)
    def collapsed(inner: BaseException) -> BaseException:
        try:
            try:
                raise ExceptionGroup("tasks", [inner])  # type: ignore[type-var]
            except BaseExceptionGroup as group:
                raise group.exceptions[0] from None
        except BaseException as exc:
            return exc

    bug = collapsed(ValueError("bug"))
    assert bug.__context__.exceptions[0] is bug  # type: ignore[union-attr]
    assert caused_by_disconnect(bug, object(), gone=True) is False
    origin = object()
    left = collapsed(ClientDisconnected("gone", origin))
    assert caused_by_disconnect(left, origin) is True


def test_what_is_raised_while_handling_our_disconnect_is_judged_by_what_it_is() -> None:
    origin = object()

    def chain(*kinds: type[BaseException], explicit: bool = False) -> BaseException:
        """The last of ``kinds`` raised while handling the one before, ... our
        ClientDisconnected first (or made of it, ``explicit``)."""
        current: BaseException = ClientDisconnected("gone", origin)
        for kind in kinds:
            try:
                if explicit:
                    raise kind() from current
                raise kind()
            except BaseException as exc:
                if not explicit:
                    exc.__context__ = current
                current = exc
        return current

    class WebSocketDisconnect(Exception):  # (a framework's, by its name)
        pass

    assert caused_by_disconnect(chain(), origin) is True
    assert caused_by_disconnect(chain(WebSocketDisconnect), origin) is True
    assert caused_by_disconnect(chain(asyncio.CancelledError), origin) is True
    assert caused_by_disconnect(chain(RuntimeError, explicit=True), origin) is True
    # A bug in an except block, whichever call found the client gone.
    assert caused_by_disconnect(chain(WebSocketDisconnect, ValueError), origin) is False
    assert caused_by_disconnect(chain(KeyError), origin) is False
    assert caused_by_disconnect(chain(KeyError, WebSocketDisconnect), origin) is False
    # Another connection's (an app that sent to a client gone elsewhere) is
    # no client of this one leaving, this one gone or not.
    other = ClientDisconnected("gone", object())
    for gone in (False, True):
        assert caused_by_disconnect(other, origin, gone=gone) is False
        try:
            try:
                raise other
            except ClientDisconnected:
                raise WebSocketDisconnect() from None
        except WebSocketDisconnect as made_of_it:
            made_of_it.__context__ = other
            assert caused_by_disconnect(made_of_it, origin, gone=gone) is gone


async def test_an_answer_in_the_shutdown_to_a_request_without_a_body_closes_at_once(
    run_asgi: Any,
) -> None:
    # An app that answers a GET (reading no body: there is none) once the
    # shutdown had begun: its connection closed after the answer as one whose
    # client might still send a body (h11's end of the request never taken),
    # waiting for its client's end, and the shutdown with it, for the rest of
    # shutdown_timeout (or close_timeout), where a Router handler's closed at once.
    entered = asyncio.Event()
    release = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        entered.set()
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    server = await run_asgi(app, shutdown_timeout=30, close_timeout=30)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /report HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(entered.wait(), TIMEOUT)
    closing = asyncio.create_task(server.close())
    await wait_for(lambda: server.closing)
    release.set()
    answer = await asyncio.wait_for(reader.read(), TIMEOUT)  # (the client's end stays open)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
    assert b"\r\nConnection: close\r\n" in answer and answer.endswith(b"done")
    await asyncio.wait_for(closing, TIMEOUT)  # (was 30 s: the client's end awaited)
    writer.close()


@pytest.mark.parametrize("held", [False, True])
async def test_a_request_unanswered_at_shutdown_timeout_gets_503(run_asgi: Any, held: bool) -> None:
    # As a Router handler's client does: the app is cancelled, and its client
    # is told (503, Retry-After) rather than left with a dropped connection.
    # A head the app sent is held for its first body: nothing was written.
    entered = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        if held:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        entered.set()
        await asyncio.sleep(30)

    server = await run_asgi(app, shutdown_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(entered.wait(), TIMEOUT)
    await asyncio.wait_for(server.close(), TIMEOUT)
    answer = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
    assert b"\r\nRetry-After: 1\r\n" in answer
    assert server.counters.handler_errors == 0


@pytest.mark.parametrize("goes_on", [False, True])
async def test_an_app_that_catches_the_shutdown_cancellation_still_gets_its_503(
    run_asgi: Any, caplog: pytest.LogCaptureFixture, goes_on: bool
) -> None:
    # Cancelled past shutdown_timeout, it catches the CancelledError: and
    # returns without a response (its client got a 500), or goes on (a bare
    # close, the connections cut at the end of the shutdown). The client is
    # told the server is shutting down all the same; what the app did is
    # logged as before.
    entered = asyncio.Event()
    done = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        entered.set()
        with contextlib.suppress(asyncio.CancelledError):  # (the mistake)
            await asyncio.sleep(30)
        while goes_on and not done.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.05)

    server = await run_asgi(app, shutdown_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /stubborn HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(entered.wait(), TIMEOUT)
    await asyncio.wait_for(server.close(), TIMEOUT)
    answer = await asyncio.wait_for(reader.read(), TIMEOUT)
    done.set()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
    assert b"\r\nRetry-After: 1\r\n" in answer
    if not goes_on:
        expect_logged_error(caplog, "ASGI application returned without a response")


@pytest.mark.parametrize("catches", [False, True])
@pytest.mark.parametrize("shutting_down", [False, True])
async def test_an_app_that_cancels_itself_gets_its_client_a_500(
    run_asgi: Any, caplog: pytest.LogCaptureFixture, catches: bool, shutting_down: bool
) -> None:
    # Its own cancellation, not the shutdown's (whose grace is far from
    # over), nothing of its response sent. Ended by it, its client got a bare
    # close; during a shutdown, caught or not, the 503 of a request the
    # shutdown cut. A 500, as a Router handler's: the app's mistake.
    entered = asyncio.Event()
    go = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        entered.set()
        await go.wait()
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        if catches:
            with contextlib.suppress(asyncio.CancelledError):  # (never uncancelled)
                await asyncio.sleep(1)
        else:
            await asyncio.sleep(1)

    server = await run_asgi(app, shutdown_timeout=20)
    answer = await answer_once_released(server, "/own", entered, go, shutting_down=shutting_down)
    assert answer.startswith(b"HTTP/1.1 500 Internal Server Error\r\n"), answer
    if catches:
        expect_logged_error(caplog, "ASGI application returned without a response")
    else:
        expect_logged_error(caplog, "the ASGI application was cancelled before it answered")


async def test_a_websocket_app_cut_off_in_its_handshake_that_catches_it_gets_a_503(
    run_asgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Cancelled past shutdown_timeout before it answered the handshake, it
    # catches the CancelledError and returns: its client got a 500, where an
    # HTTP app's gets the 503 of the shutdown.
    entered = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        assert (await receive())["type"] == "websocket.connect"
        entered.set()
        with contextlib.suppress(asyncio.CancelledError):  # (the mistake)
            await asyncio.sleep(30)

    server = await run_asgi(app, shutdown_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/ws"))
    await asyncio.wait_for(entered.wait(), TIMEOUT)
    await asyncio.wait_for(server.close(), TIMEOUT)
    answer = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer
    expect_logged_error(caplog, "ASGI application returned without answering the handshake")


async def test_the_tasks_a_shutdown_cut_off_are_not_kept_once_it_is_over(run_asgi: Any) -> None:
    # (From a review.) Server.cut_off held them, and so their frames (the
    # request, its body), for as long as the closed Server was kept.
    entered = asyncio.Event()
    kept: list[weakref.ref[Any]] = []

    class Big:
        pass

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        big = Big()
        kept.append(weakref.ref(big))
        entered.set()
        await asyncio.sleep(30)

    server = await run_asgi(app, shutdown_timeout=0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(entered.wait(), TIMEOUT)
    await asyncio.wait_for(server.close(), TIMEOUT)
    answer = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 503 "), answer
    await asyncio.sleep(0.1)
    gc.collect()
    assert kept[0]() is None


async def test_concurrent_receives_each_get_messages(run_asgi: Any) -> None:
    # www.rst puts no limit on receive() calls at once: tasks of one app
    # reading the same WebSocket each get messages, each message once (the
    # second raised ConcurrencyError), and every one hears the disconnect.
    got: list[tuple[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        await send({"type": "websocket.accept"})

        async def reader(name: str) -> None:
            while True:
                event = await receive()
                got.append((name, event.get("text", event["type"])))
                if event["type"] == "websocket.disconnect":
                    return
                await send({"type": "websocket.send", "text": f"{name} got {event['text']}"})

        first = asyncio.ensure_future(reader("a"))
        await asyncio.sleep(0)  # (a asks first)
        await asyncio.gather(first, reader("b"), reader("c"))

    server = await run_asgi(app)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        answers = []
        for n in range(4):
            await ws.send(str(n))
            answers.append(await asyncio.wait_for(ws.recv(), TIMEOUT))
    await wait_for(lambda: len(got) == 7, what="every reader hearing the disconnect")
    assert [answer.split()[-1] for answer in answers] == ["0", "1", "2", "3"]
    assert sorted(got[4:]) == [(name, "websocket.disconnect") for name in ("a", "b", "c")]
    assert server.counters.handler_errors == 0


async def test_close_after_the_client_left_is_nothing_to_do(run_asgi: Any) -> None:
    # A close (Starlette's websocket.close() in a finally block) once the
    # client is gone: the connection is closed already, so there is nothing
    # to do (uvicorn's default WebSocket implementation does the same), not a
    # ClientDisconnected (Starlette: WebSocketDisconnect) out of the finally.
    outcome: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await receive()
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        await send({"type": "websocket.close", "code": 1000})
        await send({"type": "websocket.close", "code": 1000})  # twice, too
        outcome.append("closed")
        with pytest.raises(ClientDisconnected):
            await send({"type": "websocket.send", "text": "anyone?"})  # sending still fails
        # What is wrong with the message itself is said as before (README).
        with pytest.raises(ValueError):
            await send({"type": "websocket.send"})  # neither text nor bytes
        with pytest.raises(TypeError):
            await send({"type": "websocket.send", "text": 5})
        with pytest.raises(RuntimeError):
            await send({"type": "websocket.accept"})
        outcome.append("send raised")

    server = await run_asgi(app)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        await ws.close()
    await wait_for(lambda: len(outcome) == 2, what="the app's end")
    assert outcome == ["closed", "send raised"]
    assert server.counters.handler_errors == 0


async def test_a_denial_the_transport_saw_the_client_leave_before_is_an_answer(
    run_asgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A close before accepting, once the transport knows the client is gone
    # (closing) but before its connection_lost() has run: a reset seen by
    # uvloop (its order of callbacks), or over TLS (the TLS layer says
    # connection_lost() a turn later), as the app's turn came. The close was
    # taken as nothing to do, as once the client left (README), and then the
    # app, returning, was said to have "returned without answering the
    # handshake": an error logged and counted for an app that did answer.
    outcome: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        assert (await receive())["type"] == "websocket.connect"
        # The server's side of the connection reset, as a reset seen by the
        # transport leaves it: closing, its connection_lost() not yet run.
        (connection,) = server.connections
        connection.transport.abort()
        await send({"type": "websocket.close", "code": 1008})
        outcome.append("closed")

    server = await run_asgi(app)
    await _upgrade_whose_client_left(server, outcome, "closed", caplog)


async def test_an_app_told_its_client_left_as_it_answers_is_no_error_when_it_returns(
    run_asgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The same window, the app accepting: its accept raises ClientDisconnected
    # (the client is gone), which it catches (an app's ``except OSError:`` or
    # ``except Exception:`` around its accept), and returns. That was "returned
    # without answering the handshake", an error logged and counted, when the
    # transport had seen the client leave before connection_lost() ran, and
    # nothing once it had: the client is gone either way (and an HTTP app that
    # returns once its client is gone is no error either).
    outcome: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        assert (await receive())["type"] == "websocket.connect"
        (connection,) = server.connections
        connection.transport.abort()  # (closing, its connection_lost() not yet run)
        try:
            await send({"type": "websocket.accept"})
        except ClientDisconnected:
            outcome.append("told")

    server = await run_asgi(app)
    await _upgrade_whose_client_left(server, outcome, "told", caplog)


async def _upgrade_whose_client_left(
    server: Any, outcome: list[str], said: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Send an upgrade request to an app that cuts its own connection and
    answers (the two tests above); check the client got nothing, the app
    ended having said ``said``, and nothing was taken for an error."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/ws"))
    with contextlib.suppress(ConnectionError):
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # (nothing came)
    writer.close()
    await wait_for(lambda: outcome and not server.app_tasks, what="the app's end")
    assert outcome == [said]
    assert not errors_logged(caplog), [r.getMessage() for r in caplog.records]
    assert server.counters.handler_errors == 0


async def test_a_denial_once_the_client_left_or_after_a_denial_is_nothing_to_do(
    run_asgi: Any,
) -> None:
    # The same before accepting: a close (a framework's denial, or its close
    # in a finally block) once the client left while the app decided, or
    # after the app's own denial, is nothing to do, as after accepting (and
    # as uvicorn does), not a ClientDisconnected out of it; answering with an
    # accept still fails.
    outcome: list[tuple[str, str]] = []
    deciding = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        assert (await receive())["type"] == "websocket.connect"
        path = scope["path"]
        if path == "/left":
            deciding.set()
            assert (await receive())["type"] == "websocket.disconnect"
        await send({"type": "websocket.close", "code": 1008})
        await send({"type": "websocket.close", "code": 1008})  # twice, too
        outcome.append((path, "closed"))
        with pytest.raises(ClientDisconnected):
            await send({"type": "websocket.accept"})
        outcome.append((path, "accept raised"))

    server = await run_asgi(app)
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/left"))
    await asyncio.wait_for(deciding.wait(), TIMEOUT)
    writer.close()
    answer = await exchange(server.port, upgrade_request("/denied"))
    assert answer.startswith(b"HTTP/1.1 403 "), answer
    await wait_for(lambda: len(outcome) == 4, what="the apps' ends")
    assert sorted(outcome) == [
        ("/denied", "accept raised"),
        ("/denied", "closed"),
        ("/left", "accept raised"),
        ("/left", "closed"),
    ]
    assert server.counters.handler_errors == 0


# ============================================================ http.response.pathsend


def pathsend_app(path: Any, headers: list[tuple[bytes, bytes]] | None = None) -> App:
    """Start a 200 with ``headers`` and have the server send the file at ``path``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        assert scope["extensions"]["http.response.pathsend"] == {}
        await send({"type": "http.response.start", "status": 200, "headers": headers or []})
        await send({"type": "http.response.pathsend", "path": path})

    return app


@pytest.mark.parametrize("kernel", [True, False], ids=["sendfile", "no-kernel-sendfile"])
async def test_pathsend_sends_the_file_as_the_body(
    run_asgi: Any,
    tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
    kernel: bool,
) -> None:
    refused = [] if kernel else request.getfixturevalue("no_kernel_sendfile")
    caplog.set_level(logging.DEBUG, logger="wsserver.protocol")
    data = os.urandom(300_000)  # (several of the server's pieces)
    path = tmp_path / "report.bin"
    path.write_bytes(data)
    server = await run_asgi(pathsend_app(str(path), [(b"content-type", b"x-app/bin")]))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        for _ in range(2):  # (the connection goes on to its next request)
            response = await client.get("/")
            assert response.status_code == 200
            assert response.content == data
            assert response.headers["content-length"] == str(len(data))
            assert response.headers["content-type"] == "x-app/bin"
        head = await client.head("/")
        assert head.content == b"" and head.headers["content-length"] == str(len(data))
    peers = {r.getMessage().split()[0] for r in caplog.records if r.name == "wsserver.access"}
    assert len(peers) == 1, peers  # (one connection served all three)
    assert open_descriptors_of(path) == 0
    by_kernel = [r for r in caplog.records if "sent with sendfile()" in r.getMessage()]
    if os.environ.get("WSSERVER_TEST_LOOP") == "uvloop":
        assert not by_kernel and not refused  # (pieces read in a thread)
    elif kernel:
        assert len(by_kernel) == 2  # (the two GETs)
    else:
        assert not by_kernel and len(refused) == 2  # (asked, refused: the pieces went)


@pytest.mark.parametrize("kernel", [True, False], ids=["sendfile", "no-kernel-sendfile"])
async def test_pathsend_sends_as_many_bytes_as_the_apps_content_length(
    run_asgi: Any,
    tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
    kernel: bool,
) -> None:
    if not kernel:
        request.getfixturevalue("no_kernel_sendfile")
    # The file grew since the application took its length: that many bytes
    # (the response stays whole). It shrank: the response is cut short.
    path = tmp_path / "log.txt"
    path.write_bytes(b"0123456789" * 100)
    shorter = await run_asgi(pathsend_app(str(path), [(b"content-length", b"25")]))
    longer = await run_asgi(pathsend_app(str(path), [(b"content-length", b"2000")]))
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{shorter.port}/")
        assert response.content == b"0123456789" * 2 + b"01234"
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(f"http://127.0.0.1:{longer.port}/")
    await wait_for(lambda: not longer.connections, what="the cut response's connection closed")
    expect_logged_error(caplog, "ASGI application failed")


@pytest.mark.parametrize(
    "messages",
    [
        [{"type": "http.response.pathsend", "path": "FILE"}],  # before the start
        [{"type": "http.response.start", "status": 200}, {"type": "http.response.pathsend"}],
        [
            {"type": "http.response.start", "status": 200},
            {"type": "http.response.pathsend", "path": b"FILE"},
        ],
        [
            {"type": "http.response.start", "status": 200},
            {"type": "http.response.pathsend", "path": "MISSING"},
        ],
        [
            {"type": "http.response.start", "status": 200},
            {"type": "http.response.pathsend", "path": "DIRECTORY"},
        ],
    ],
    ids=["before-start", "no-path", "bytes-path", "missing", "directory"],
)
async def test_a_pathsend_that_cannot_be_sent_gets_a_500(
    run_asgi: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture, messages: list[Any]
) -> None:
    (tmp_path / "file").write_bytes(b"contents")
    names = {
        "FILE": str(tmp_path / "file"),
        "MISSING": str(tmp_path / "missing"),
        "DIRECTORY": str(tmp_path),
    }

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        for message in messages:
            path = message.get("path")
            if isinstance(path, str | bytes):
                key = path.decode() if isinstance(path, bytes) else path
                path = names[key].encode() if isinstance(path, bytes) else names[key]
                message = {**message, "path": path}
            await send(message)

    server = await run_asgi(app)
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/")
    assert response.status_code == 500
    expect_logged_error(caplog, "ASGI application failed")


async def test_pathsend_after_a_body_is_refused(
    run_asgi: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_bytes(b"contents")
    refused: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"begun", "more_body": True})
        try:
            await send({"type": "http.response.pathsend", "path": str(tmp_path / "file")})
        except RuntimeError as exc:
            refused.append(exc)
        await send({"type": "http.response.body", "body": b" and ended"})

    server = await run_asgi(app)
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/")
    assert response.content == b"begun and ended"
    assert len(refused) == 1 and "after http.response.body" in str(refused[0])


async def test_a_client_leaving_during_a_pathsend_is_no_error_and_closes_the_file(
    run_asgi: Any, tmp_path: Any
) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 20_000_000)
    ended: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200})
        try:
            await send({"type": "http.response.pathsend", "path": str(path)})
        except BaseException as exc:
            ended.set_result(exc)
            raise
        ended.set_result(None)

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(reader.readexactly(100_000), TIMEOUT)).startswith(
        b"HTTP/1.1 200"
    )
    writer.transport.abort()
    exc = await asyncio.wait_for(ended, TIMEOUT)
    assert isinstance(exc, ClientDisconnected), exc
    await wait_for(lambda: not server.connections, what="the connection gone")
    await wait_for(lambda: open_descriptors_of(path) == 0, what="the file closed")


async def test_a_pathsend_with_204_or_304_sends_no_body(run_asgi: Any, tmp_path: Any) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"contents")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        status = 304 if scope["path"] == "/304" else 204
        await send({"type": "http.response.start", "status": status})
        await send({"type": "http.response.pathsend", "path": str(path)})

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /304 HTTP/1.1\r\nHost: x\r\n\r\nGET /204 HTTP/1.1\r\nHost: x\r\n\r\n")
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)  # still in step
    writer.close()
    assert first.startswith(b"HTTP/1.1 304 ") and second.startswith(b"HTTP/1.1 204 ")
    assert b"content-length" not in (first + second).lower()
    assert open_descriptors_of(path) == 0


async def test_a_pathsend_of_content_for_a_205_gets_a_500(
    run_asgi: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # RFC 9110 15.3.6: no content in a 205, as http.response.body refuses one;
    # a client that takes a 205 for bodiless read the file as its next response.
    path = tmp_path / "file"
    path.write_bytes(b"contents")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        headers = [(b"content-length", b"0")] if scope["path"] == "/none" else []
        await send({"type": "http.response.start", "status": 205, "headers": headers})
        await send({"type": "http.response.pathsend", "path": str(path)})

    server = await run_asgi(app)
    received = await exchange(
        server.port,
        b"GET /none HTTP/1.1\r\nHost: x\r\n\r\nGET /file HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    first, _, second = received.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 205 ") and b"content-length: 0" in first.lower()
    assert second.startswith(b"HTTP/1.1 500 ") and b"contents" not in received
    assert open_descriptors_of(path) == 0
    expect_logged_error(caplog, "ASGI application failed")


async def _streamed_205(
    run_asgi: Any, headers: list[tuple[bytes, bytes]]
) -> tuple[bytes, list[BaseException]]:
    """What a client gets for a 205 with ``headers`` whose app sends an empty
    piece (``more_body``), then ``DATA``; and what that ``send()`` raised."""
    raised: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 205, "headers": headers})
        try:
            await send({"type": "http.response.body", "body": b"", "more_body": True})
            await send({"type": "http.response.body", "body": b"DATA"})
        except RuntimeError as exc:
            raised.append(exc)
            raise

    server = await run_asgi(app)
    return await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), raised


async def test_a_streamed_205_says_it_has_no_content_and_sends_none(
    run_asgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # RFC 9110 15.3.6: a 205 says Content-Length: 0 (or an empty chunked body);
    # its head went out chunked, and a later piece as its content.
    received, raised = await _streamed_205(run_asgi, [])
    head, _, rest = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 205 ") and b"content-length: 0" in head.lower()
    assert b"transfer-encoding" not in head.lower() and rest == b""  # (then closed)
    assert len(raised) == 1
    expect_logged_error(caplog, "ASGI application failed")


async def test_a_205_whose_content_length_says_content_gets_a_500_before_any(
    run_asgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # RFC 9110 15.3.6: a 205 has no content. Its Content-Length: 4, with an
    # empty first piece, went out, and the later piece as its content.
    received, raised = await _streamed_205(run_asgi, [(b"content-length", b"4")])
    assert received.startswith(b"HTTP/1.1 500 "), received
    assert b"DATA" not in received
    assert len(raised) == 1
    expect_logged_error(caplog, "ASGI application failed")


async def test_a_repeated_content_length_is_one_length_for_a_pathsend(
    run_asgi: Any, tmp_path: Any
) -> None:
    # h11 takes "10, 10" (one length, repeated): the head went out, then
    # reading it as a number failed, and the body never came.
    (tmp_path / "file").write_bytes(b"0123456789")
    app = pathsend_app(str(tmp_path / "file"), [(b"content-length", b"10, 10")])
    server = await run_asgi(app)
    received = await exchange(
        server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert received.startswith(b"HTTP/1.1 200 ") and received.endswith(b"\r\n\r\n0123456789")


@pytest.mark.parametrize("kernel", [True, False], ids=["sendfile", "no-kernel-sendfile"])
async def test_an_app_watching_for_disconnect_during_a_pathsend_hears_the_client_leave(
    run_asgi: Any, tmp_path: Any, request: pytest.FixtureRequest, kernel: bool
) -> None:
    # Another of the app's tasks waits in receive() for http.disconnect while
    # the file is sent: its wait resumed reading, which asyncio had paused for
    # the sendfile. What the client sent then (its leaving, a next request)
    # was read into the sendfile's way: the sendfile never ended (the app's
    # send() held until timeout_keep_alive), or, in asyncio's fallback (no
    # longer used), went to its stand-in protocol, which failed the connection.
    if not kernel:
        request.getfixturevalue("no_kernel_sendfile")
    path = tmp_path / "huge.bin"
    path.write_bytes(b"x" * 64_000_000)
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    ended: asyncio.Future[float] = loop.create_future()
    heard: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return

        async def watch() -> None:
            assert (await receive())["type"] == "http.request"
            await asyncio.sleep(0.2)  # (the file is being sent by then)
            heard.append((await receive())["type"])

        watcher = asyncio.create_task(watch())
        await send({"type": "http.response.start", "status": 200})
        try:
            await send({"type": "http.response.pathsend", "path": str(path)})
        finally:
            ended.set_result(loop.time())
            await watcher

    server = await run_asgi(app, timeout_keep_alive=3.0)
    client = await slow_reader(server.port)
    try:
        await loop.sock_sendall(client, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(loop.sock_recv(client, 1024), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 200 ")
        await asyncio.sleep(0.5)
        await loop.sock_sendall(client, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # (pipelined)
        client.shutdown(socket.SHUT_WR)
        await asyncio.sleep(0.05)
    finally:
        client.close()
    left = loop.time()
    assert await asyncio.wait_for(ended, TIMEOUT) - left < 1.0  # (not timeout_keep_alive's 3 s)
    await wait_for(lambda: heard == ["http.disconnect"], what="the watcher's disconnect")
    await wait_for(lambda: not server.connections, what="the connection gone")
    assert not errors, errors


@pytest.mark.parametrize("kernel", [True, False], ids=["sendfile", "no-kernel-sendfile"])
async def test_write_limit_holds_after_a_pathsend(
    run_asgi: Any, tmp_path: Any, request: pytest.FixtureRequest, kernel: bool
) -> None:
    # asyncio's fallback (when the kernel cannot send the file) paused the
    # transport's writing without our protocol hearing of it: the next
    # response, streamed to a client that reads nothing, went all into the
    # transport's buffer (4 MB, write_limit 16 KiB), and a stalled client's
    # next file met the broken transport again. The server sends the pieces
    # itself there now.
    if not kernel:
        request.getfixturevalue("no_kernel_sendfile")
    path = tmp_path / "f.bin"
    path.write_bytes(b"f" * 32768)
    streamed: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        await send({"type": "http.response.start", "status": 200})
        if scope["path"] == "/file":
            await send({"type": "http.response.pathsend", "path": str(path)})
            return
        for _ in range(64):
            await send({"type": "http.response.body", "body": b"s" * 65536, "more_body": True})
            streamed.append(1)
        await send({"type": "http.response.body", "body": b""})

    server = await run_asgi(app, write_limit=16384, timeout_keep_alive=3.0, close_timeout=1.0)
    loop = asyncio.get_running_loop()
    client = await slow_reader(server.port)
    try:
        await wait_for(lambda: server.connections, what="connected")
        (protocol,) = server.connections
        sock = protocol.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        await loop.sock_sendall(
            client, b"GET /file HTTP/1.1\r\nHost: x\r\n\r\nGET /s HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        await asyncio.sleep(1.0)  # the client reads nothing meanwhile
        buffered = protocol.transport.get_write_buffer_size()
    finally:
        client.close()
    assert buffered < 16384 + 65536 + 32768, buffered  # (the app waits in send())
    assert len(streamed) < 4, len(streamed)


async def test_a_connection_the_server_closes_during_a_pathsend_ends_it_at_once(
    run_asgi: Any, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The app hands its pathsend to a task of its own and returns before the
    # file is sent: the server closes the connection (the response cannot be
    # finished). Closed under the kernel's sendfile(), the socket went with
    # the sendfile's wait on it still registered with the loop: the sendfile
    # never ended (the task's send() held until timeout_keep_alive). The
    # close now waits for the sendfile to let the socket go, and ends it.
    (tmp_path / "huge.bin").write_bytes(b"x" * 32_000_000)
    (tmp_path / "small.txt").write_bytes(b"small")
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    ended: asyncio.Future[BaseException | None] = loop.create_future()
    tasks: list[asyncio.Task[None]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        if scope["path"] == "/small":
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.pathsend", "path": str(tmp_path / "small.txt")})
            return

        async def send_file() -> None:
            try:
                await send({"type": "http.response.pathsend", "path": str(tmp_path / "huge.bin")})
            except BaseException as exc:
                ended.set_result(exc)
            else:
                ended.set_result(None)

        await send({"type": "http.response.start", "status": 200})
        tasks.append(asyncio.create_task(send_file()))
        await asyncio.sleep(0.3)  # (the file is being sent to a client that takes none)

    server = await run_asgi(app, timeout_keep_alive=5.0)
    client = await slow_reader(server.port)
    try:
        await loop.sock_sendall(client, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        started = loop.time()
        assert isinstance(await asyncio.wait_for(ended, TIMEOUT + 2), ClientDisconnected)
        assert loop.time() - started < 2.0  # (at the app's return, not timeout_keep_alive)
    finally:
        client.close()
    await wait_for(lambda: not server.connections, what="the connection gone")
    for _ in range(3):  # (the descriptor's next connections are served)
        received = await exchange(
            server.port, b"GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert received.startswith(b"HTTP/1.1 200 ") and received.endswith(b"\r\n\r\nsmall")
    assert not errors, errors
    expect_logged_error(caplog, "did not finish its response")


@pytest.mark.parametrize("method", ["POST", "PUT", "HEAD"])
async def test_an_upgrade_offer_answered_as_http_closes_the_connection(
    run_asgi: Any, method: str
) -> None:
    # A request of another method than GET that offered to upgrade to
    # WebSocket is an HTTP request for the app, whose answer kept the
    # connection, where a Router's HTTP route's answer to the same closes
    # it: a proxy in front that takes the connection for a tunnel once it
    # passed an upgrade request, without looking for the 101, would let the
    # client's next request past its rules ("WebSocket smuggling").
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if await lifespan_unsupported(scope):
            return
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        offer = upgrade_request("/up", [("Content-Length", "0")])
        offer = offer.replace(b"GET", method.encode(), 1)
        writer.write(offer + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)  # (until the server closes)
        assert answer.startswith(b"HTTP/1.1 200 ") and b"\r\nConnection: close\r\n" in answer
        assert answer.count(b"HTTP/1.1 ") == 1 and seen == ["/up"]  # (not /next)
    finally:
        writer.close()
