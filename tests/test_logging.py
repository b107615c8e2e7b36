"""What the server logs: quiet about bad clients, one access line per HTTP response or
WebSocket connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import ssl
import struct
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import websockets

from wsserver import Request, Router, WebSocket
from wsserver.logs import JsonFormatter
from wsserver.protocol.frames import serialize_close, serialize_frame
from wsserver.response import Response, stream, text

from .conftest import StartServer
from .helpers import (
    MASK,
    RawClient,
    client_context,
    echo_routes,
    tls_server_files,
    upgrade_request,
    wait_for,
)


async def test_protocol_errors_are_debug_without_traceback(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wsserver")
    server = await run_server(echo_routes("/ws"))
    client = await RawClient.connect(server.port, "/ws")
    client.send(7, b"bad opcode")
    await client.expect_close(1002)
    # And a bad handshake (a load-balancer probe, say).
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 426 ")
    writer.close()
    ours = [r for r in caplog.records if r.name.startswith("wsserver")]
    errors = [r for r in ours if r.name == "wsserver.protocol"]
    assert any("unknown opcode" in r.getMessage() for r in errors)
    assert all(r.levelno == logging.DEBUG and r.exc_info is None for r in errors)
    assert not [r for r in ours if r.levelno >= logging.WARNING]


async def test_one_access_line_per_connection(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wsserver")
    server = await run_server(echo_routes("/ws"))
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        await ws.send("hi")
        await ws.recv()
    await server.close(timeout=1)
    access = [r for r in caplog.records if r.name == "wsserver.access"]
    assert len(access) == 1
    line = access[0].getMessage()
    assert "127.0.0.1:" in line and "/ws" in line and " 101 " in line and "close=1000" in line
    assert access[0].levelno == logging.INFO


@pytest.mark.parametrize("answer", [1000, None])
async def test_the_access_line_says_the_code_the_server_closed_with_whatever_the_answer(
    run_server: StartServer, caplog: pytest.LogCaptureFixture, answer: int | None
) -> None:
    # aiohttp's client answers every close frame with 1000 (others with an
    # empty one, 1005): a handler that failed (1011), a message over
    # max_size (1009), a close(4000) were each logged "close=1000", as if
    # the connection had ended normally.
    caplog.set_level(logging.INFO, logger="wsserver.access")
    routes = Router()

    @routes.websocket("/fails")
    async def fails(request: Request, ws: WebSocket) -> None:
        await ws.recv()
        raise RuntimeError("broken")

    @routes.websocket("/closes")
    async def closes(request: Request, ws: WebSocket) -> None:
        await ws.recv()
        await ws.close(4000, "bye")

    server = await run_server(routes, max_size=10)
    cases = (("/fails", b"go", 1011), ("/fails", b"x" * 11, 1009), ("/closes", b"go", 4000))
    for path, message, code in cases:
        client = await RawClient.connect(server.port, path)
        client.send(1, message)
        opcode, _, _, payload = await client.recv_frame()
        assert (opcode, payload[:2]) == (8, struct.pack("!H", code))
        client.send(8, b"" if answer is None else serialize_close(answer, ""))
        await client.expect_eof()
        client.close()
    await wait_for(
        lambda: len([r for r in caplog.records if r.name == "wsserver.access"]) == 3,
        what="the access lines",
    )
    lines = [r for r in caplog.records if r.name == "wsserver.access"]
    said = [r.getMessage() for r in lines]
    assert len(said) == len(cases)
    for line, (_, _, code) in zip(said, cases, strict=True):
        assert f"close={code} " in line, said
    assert [r.close_code for r in lines] == [1011, 1009, 4000], said  # type: ignore[attr-defined]
    assert lines[2].close_reason == "bye", said  # type: ignore[attr-defined]


async def test_a_close_without_a_reason_given_has_none_in_the_access_line(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # README: each field "null when not known". A connection that ended with
    # no close frame (1006) or one without a code (1005) has no reason: its
    # line said "" as if the client had given an empty one.
    caplog.set_level(logging.INFO, logger="wsserver.access")
    routes = Router()

    @routes.websocket("/ws")
    async def echo(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    server = await run_server(routes)
    gone = await RawClient.connect(server.port, "/ws")
    gone.close()  # (no close frame: 1006)
    quiet = await RawClient.connect(server.port, "/ws")
    quiet.send(8, b"")  # (a close frame without a code: 1005)
    await quiet.recv_frame()
    await quiet.expect_eof()
    quiet.close()
    said = await RawClient.connect(server.port, "/ws")
    said.send(8, serialize_close(1000, ""))  # (a code, and an empty reason: given)
    await said.recv_frame()
    await said.expect_eof()
    said.close()
    await wait_for(
        lambda: len([r for r in caplog.records if r.name == "wsserver.access"]) == 3,
        what="the access lines",
    )
    lines = [r for r in caplog.records if r.name == "wsserver.access"]
    closes = sorted((r.close_code, r.close_reason) for r in lines)  # type: ignore[attr-defined]
    assert closes == [(1000, ""), (1005, None), (1006, None)], closes
    entries = [json.loads(JsonFormatter().format(r)) for r in lines]
    assert sorted((e["close_code"], e["close_reason"]) for e in entries) == [
        (1000, ""),
        (1005, None),
        (1006, None),
    ]


async def test_a_connection_that_sent_nothing_has_no_access_line(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A TCP health check, a browser's preconnect, a port scan: no request,
    # nothing accessed; each wrote "- - - 0.000s close=-" (or "- 408" when
    # dropped at open_timeout). A request begun and never finished keeps its
    # line (a slow client is worth seeing), with the 408 it was answered.
    caplog.set_level(logging.INFO, logger="wsserver.access")
    server = await run_server(echo_routes("/ws"), open_timeout=0.3)
    for _ in range(3):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # held until open_timeout
    writer.close()
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /ws HT")
    await writer.drain()
    await wait_for(lambda: server.connections)
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /ws HT")
    data = await asyncio.wait_for(reader.read(), 5)  # answered 408 at open_timeout
    assert data.startswith(b"HTTP/1.1 408 "), data
    writer.close()
    await wait_for(lambda: not server.connections)
    access = [r.getMessage() for r in caplog.records if r.name == "wsserver.access"]
    assert len(access) == 2, access
    assert all(line.startswith("127.0.0.1:") for line in access)
    assert " - - " in access[0] and " - 408 " in access[1]


@pytest.mark.parametrize("kind", ["router", "asgi"])
async def test_one_access_line_per_http_response(
    run_server: StartServer, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    # Pipelined on one kept-alive connection: each request gets its line (a
    # line per connection would hide all but the last).
    caplog.set_level(logging.INFO, logger="wsserver")
    routes = Router()

    @routes.route("/<name>")
    async def page(request: Request, name: str) -> Response:
        return text(name, status=404 if name == "missing" else 200)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        status = 404 if scope["path"] == "/missing" else 200
        await send({"type": "http.response.start", "status": status})
        await send({"type": "http.response.body", "body": scope["path"].encode()})

    server = await run_server(routes if kind == "router" else app)
    requests = b"".join(
        f"GET /{name} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for name in ("a", "missing", "b")
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(requests + b"GET /unanswered HTTP/1.1\r\nHost: x\r\n")  # (head not ended)
    received = b""
    while received.count(b"HTTP/1.1 ") < 3 or not received.endswith(b"b"):
        received += await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    await server.close(timeout=1)
    access = [r for r in caplog.records if r.name == "wsserver.access"]
    assert [(r.__dict__["path"], r.__dict__["status"]) for r in access] == [
        ("/a", 200),
        ("/missing", 404),
        ("/b", 200),
        ("-", 503),  # the shutdown's answer to the request under way (its head unfinished)
    ], [r.getMessage() for r in access]


async def test_the_access_line_path_cannot_add_fields(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A decoded %20 would read as the end of the path: the line's fields are
    # split on spaces. (The path is logged as sent, percent-encoded.)
    caplog.set_level(logging.INFO, logger="wsserver")
    server = await run_server(echo_routes("/ws"))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /page%20101%209.999s%20close=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 404 ")
    writer.close()
    await server.close(timeout=1)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "wsserver.access"]
    assert len(line.split(" ")) == 7 and " GET " in line and " 404 " in line, line


async def test_asgi_debug_lines_escape_the_path(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wsserver")
    gone = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"...", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        try:
            await send({"type": "http.response.body", "body": b"more"})  # raises: client gone
        finally:
            gone.set()

    server = await run_server(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /a%0d%0aFORGED%1b[31m HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"..."), 5)
    writer.close()
    await asyncio.wait_for(gone.wait(), 5)

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name.startswith("wsserver")]

    await wait_for(lambda: any("client gone" in line for line in lines()), what="its line")
    await server.close(timeout=1)
    for line in lines():
        assert line.isprintable(), repr(line)


async def test_loggers_are_named_wsserver(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    routes = Router()

    @routes.websocket("/")
    async def broken(request: Request, ws: WebSocket) -> None:
        raise RuntimeError("boom")

    server = await run_server(routes)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        await ws.wait_closed()
    await server.close(timeout=1)
    names = {r.name for r in caplog.records if not r.name.startswith(("asyncio", "websockets"))}
    assert names and all(n.startswith("wsserver.") for n in names)


async def test_what_clients_control_is_logged_escaped(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # GET /ws%1b[31m...: the decoded path holds an ESC; the log must not
    # (uvicorn's CVE-2020-7694). Likewise a handler's failure and debug lines.
    caplog.set_level(logging.DEBUG, logger="wsserver")
    routes = Router()

    @routes.websocket("/ws<rest:path>")
    async def broken(request: Request, ws: WebSocket, rest: str) -> None:
        raise RuntimeError("boom")

    server = await run_server(routes, origins=["https://ok.example"])
    for target, extra in (
        ("/nothing%1b[31mred%07%c2%85", b""),  # 404
        ("/ws%1b[2J", b"Origin: https://evil\xc2\x85.example\r\n"),  # 403, origin in the reason
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            f"GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n".encode()
            + extra
            + b"\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 4"), head
        writer.close()
    async with websockets.connect(
        f"ws://127.0.0.1:{server.port}/ws%1b]0;title%07", origin="https://ok.example"
    ) as ws:  # type: ignore[arg-type]
        await ws.wait_closed()
    await server.close(timeout=1)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("wsserver")]
    # The access lines give the path as sent; the handler's error line, decoded.
    assert any(" GET /nothing%1b[31mred%07%c2%85 404 " in line for line in lines), lines
    assert any("failed on /ws\\x1b]0;title\\x07 from" in line for line in lines), lines
    assert any("evil\xc2\\x85.example" in line for line in lines), lines  # latin-1
    for line in lines:
        assert line.isprintable(), repr(line)


# ======================================================== found by an SRE's review


def test_escaping_is_unambiguous() -> None:
    from wsserver.logs import printable

    # What a client sent as the four characters \x0a is not logged as an
    # escaped line feed; a character above U+FFFF has all its digits.
    assert printable("/c\\x0aFAKE") == "/c\\\\x0aFAKE"
    assert printable("/c\nFAKE") == "/c\\x0aFAKE"
    assert printable("a\U000e0001b") == "a\\U000e0001b"
    assert printable("a\u2028b") == "a\\u2028b"
    assert printable("plain /path") == "plain /path"


def test_json_lines_keep_an_application_s_extra_fields_the_pid_and_the_stack() -> None:
    import json
    import os

    from wsserver.logs import JsonFormatter

    logger = logging.getLogger("myapp")
    record = logger.makeRecord(
        "myapp",
        logging.INFO,
        __file__,
        1,
        "order %s",
        ("42",),
        None,
        extra={"order_id": 42, "user": "ann", "when": object()},
        sinfo="Stack (most recent call last):\n  here",
    )
    entry = json.loads(JsonFormatter(worker=2).format(record))
    assert entry["message"] == "order 42" and entry["worker"] == 2
    assert entry["pid"] == os.getpid()
    assert entry["order_id"] == 42 and entry["user"] == "ann"
    assert entry["when"].startswith("<object object")  # not JSON: its str()
    assert entry["stack"].endswith("here")
    assert "args" not in entry and "msg" not in entry and "levelno" not in entry


def test_a_json_line_is_one_line_to_every_reader() -> None:
    # Written as UTF-8 (ensure_ascii off), an application's message with a
    # line or paragraph separator (U+2028, U+2029) or NEL (U+0085) was cut
    # in two by readers that split on them (Python's str.splitlines()).
    import json

    from wsserver.logs import JsonFormatter

    record = logging.getLogger("myapp").makeRecord(
        "myapp", logging.INFO, __file__, 1, "a\u2028b\u2029c\x85d é", (), None
    )
    line = JsonFormatter(worker=None).format(record)
    assert len(line.splitlines()) == 1, line
    assert json.loads(line)["message"] == "a\u2028b\u2029c\x85d é"
    assert "é" in line  # (other text as it is)


async def test_the_access_line_says_the_method_and_the_path_as_sent(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wsserver.access")
    routes = Router()

    @routes.route("/<name>", methods=["GET", "POST"])
    async def page(request: Request, name: str) -> Response:
        return text(name)

    server = await run_server(routes)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    for head in (
        b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /b%2520?token=secret HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        b"GET /c%20 HTTP/1.1\r\nHost: x\r\n\r\n",
    ):
        writer.write(head)
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        if not head.startswith(b"HEAD"):
            length = int(answer.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            await asyncio.wait_for(reader.readexactly(length), 5)
    writer.close()
    await server.close(timeout=1)
    access = [r for r in caplog.records if r.name == "wsserver.access"]
    # %2520 and %20 differ (decoded, both read "%20"); the query is left out.
    assert [(r.__dict__["method"], r.__dict__["path"]) for r in access] == [
        ("HEAD", "/a"),
        ("POST", "/b%2520"),
        ("GET", "/c%20"),
    ]
    assert all("secret" not in r.getMessage() for r in access)


async def test_a_websocket_s_duration_is_its_own_after_requests_on_its_connection(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # It counted from the TCP connection, which had served an HTTP request
    # 0.5 s before the upgrade.
    caplog.set_level(logging.INFO, logger="wsserver.access")
    routes = echo_routes("/ws")

    @routes.get("/page")
    async def page(request: Request) -> Response:
        return text("hi")

    server = await run_server(routes)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"hi"), 5)
    await asyncio.sleep(0.5)
    from .helpers import upgrade_request

    writer.write(upgrade_request("/ws"))
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    from wsserver.protocol.frames import Opcode, serialize_close, serialize_frame

    writer.write(serialize_frame(Opcode.CLOSE, serialize_close(1000), mask=b"abcd"))
    await asyncio.wait_for(reader.read(), 5)  # its close frame, then the end
    writer.close()
    await server.close(timeout=1)
    (line,) = [r for r in caplog.records if r.__dict__.get("status") == 101]
    assert line.__dict__["duration"] < 0.4, line.getMessage()


async def test_a_request_begun_after_an_answered_one_and_abandoned_has_its_line(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wsserver.access")
    routes = Router()

    @routes.get("/page")
    async def page(request: Request) -> Response:
        return text("hi")

    server = await run_server(routes)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"hi"), 5)
    await asyncio.sleep(0.3)
    writer.write(b"GET /never-finished HTTP/1.1\r\nHo")
    await asyncio.sleep(0.1)
    writer.close()
    await wait_for(
        lambda: len([r for r in caplog.records if r.name == "wsserver.access"]) == 2,
        what="the second line",
    )
    first, second = [r.__dict__ for r in caplog.records if r.name == "wsserver.access"]
    assert (first["path"], first["status"]) == ("/page", 200)
    assert (second["path"], second["status"], second["method"]) == ("-", None, None)
    assert second["duration"] < 0.3  # since its first bytes, not the first request's
    # An idle connection closed after its answer gets no second line.
    caplog.clear()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"hi"), 5)
    writer.close()
    await server.close(timeout=1)
    assert len([r for r in caplog.records if r.name == "wsserver.access"]) == 1


def test_json_lines_survive_extra_values_json_cannot_carry() -> None:
    import json

    from wsserver.logs import JsonFormatter

    loop: list[Any] = []
    loop.append(loop)
    odd = {
        "tuple_keys": {(1, 2): "x"},
        "cycle": loop,
        "nan": float("nan"),
        "mixed_keys": {1: "a", "1": "b"},
        "fine": {"a": [1, 2.5, None]},
    }
    record = logging.getLogger("myapp").makeRecord(
        "myapp", logging.INFO, __file__, 1, "odd", (), None, extra=odd
    )
    line = JsonFormatter().format(record)
    entry = json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in {line}"))
    assert entry["tuple_keys"] == "{(1, 2): 'x'}"
    assert entry["cycle"] == "[[...]]" and entry["nan"] == "nan"
    assert entry["mixed_keys"] == "{1: 'a', '1': 'b'}"
    assert entry["fine"] == {"a": [1, 2.5, None]}


async def test_server_stats_logged_as_a_json_field_stay_an_object_past_64_close_codes(
    run_server: StartServer,
) -> None:
    # server.stats() in a JSON line (extra={"stats": ...}) was an object until
    # clients had closed with more than 64 application codes; then its close
    # codes mixed ints with "other", which a check of the field refused (keys
    # of mixed types, though none collide as JSON's), and the whole field
    # became its Python repr, one string a log pipeline cannot read into.
    import json

    from wsserver.logs import JsonFormatter

    routes = Router()

    @routes.websocket("/ws")
    async def ws(request: Request, ws: WebSocket) -> None:
        await ws.recv()

    server = await run_server(routes)
    for code in range(3000, 3070):
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as client:
            await client.close(code)
    await wait_for(
        lambda: sum(server.stats()["close_codes"]["received"].values()) == 70,
        what="every connection counted",
    )
    stats = server.stats()
    assert "other" in stats["close_codes"]["received"]
    record = logging.getLogger("myapp").makeRecord(
        "myapp", logging.INFO, __file__, 1, "stats", (), None, extra={"stats": stats}
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["stats"] == json.loads(json.dumps(stats))


def test_json_logs_say_a_thread_s_or_an_ignored_exception_that_reads_as_false(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # (From a review.) An exception that is false (a __len__ of 0, a
    # __bool__) was taken for none and made anew without its arguments:
    # that failed, and Python's hook wrote it over several lines after all.
    # (The hooks called here, not installed: pytest's own are.)
    import threading
    import types

    from wsserver import logs

    class Empty(Exception):
        def __init__(self, what: str, count: int) -> None:
            super().__init__(what, count)

        def __len__(self) -> int:
            return 0

    def failure() -> Empty:
        try:
            raise Empty("queue", 0)
        except Empty as exc:
            return exc

    caplog.set_level(logging.ERROR, logger="wsserver.server")
    thread = threading.Thread(name="drainer")
    raised = failure()
    logs._thread_exception(threading.ExceptHookArgs((Empty, raised, raised.__traceback__, thread)))
    ignored = failure()
    unraisable: Any = types.SimpleNamespace(
        exc_type=Empty,
        exc_value=ignored,
        exc_traceback=ignored.__traceback__,
        err_msg=None,
        object=failure,
    )
    logs._unraisable(unraisable)
    assert capsys.readouterr().err == ""
    said = [r for r in caplog.records if r.name == "wsserver.server"]
    assert [r.getMessage().split(" at ")[0] for r in said] == [
        "exception in thread drainer",
        f"Exception ignored in: <function {failure.__qualname__}",
    ]
    assert [r.exc_info[1] if r.exc_info else None for r in said] == [raised, ignored]


async def test_an_asgi_app_failing_after_its_response_is_said_of_its_own_client(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Behind a proxy that reuses its connection, the next request's client was named.
    caplog.set_level(logging.ERROR, logger="wsserver.server")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})
        if scope["path"] == "/then-fail":
            await asyncio.sleep(0.3)
            raise RuntimeError("background work failed")

    server = await run_server(app, proxy_headers=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    for path, client in (("/then-fail", "198.51.100.1"), ("/other", "198.51.100.2")):
        head = f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {client}\r\n\r\n"
        writer.write(head.encode())
        await asyncio.wait_for(reader.readuntil(b"ok"), 5)
    await wait_for(lambda: any(r.exc_info for r in caplog.records), what="the error line")
    writer.close()
    (line,) = [r.getMessage() for r in caplog.records if r.exc_info]
    assert line.endswith("on /then-fail from 198.51.100.1:0"), line


async def test_a_client_an_asgi_middleware_names_is_logged_escaped(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # An application's error line names the scope's client, which a proxy
    # middleware (uvicorn's ProxyHeadersMiddleware) writes from X-Forwarded-For
    # as the client sent it: its latin-1 characters (U+009B, a terminal's CSI)
    # and tabs went to the log as they were, in the line and its peer field.
    caplog.set_level(logging.ERROR, logger="wsserver.server")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                scope["client"] = (value.decode("latin-1").rpartition(",")[2].strip(), 0)
        raise RuntimeError("the application failed")

    server = await run_server(app)
    head, _ = await _exchange(
        server.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\x9b2J\tx\r\n\r\n"
    )
    assert head.startswith(b"HTTP/1.1 500 "), head
    await wait_for(lambda: any(r.exc_info for r in caplog.records), what="the error line")
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.getMessage().endswith(" from 10.0.0.1\\x9b2J\\x09x:0"), record.getMessage()
    peer = record.__dict__["peer"]  # (the field of JSON lines)
    assert record.getMessage().isprintable() and peer.isprintable(), peer


async def _exchange(port: int, request: bytes, *then: tuple[bytes, int]) -> tuple[bytes, bytes]:
    """Send ``request`` on a new connection, and each of ``then``'s bytes
    once that many more came; read to the end: (the response's head, every
    byte after it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    rest = b""
    for data, count in then:
        writer.write(data)
        rest += await asyncio.wait_for(reader.readexactly(count), 5)
    rest += await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return head, rest


async def test_the_access_line_counts_the_bytes_sent_after_the_head(
    run_server: StartServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # What went on the wire after the head, as a client counted it: a whole
    # body, a chunked one (its framing too), a file (sendfile() where it can),
    # none for a HEAD, a WebSocket's frames.
    caplog.set_level(logging.INFO, logger="wsserver")
    (tmp_path / "file.bin").write_bytes(bytes(range(256)) * 700)
    routes = echo_routes("/ws")
    routes.static("/files", tmp_path)

    @routes.get("/text")
    async def page(request: Request) -> Response:
        return text("x" * 1000)

    @routes.get("/stream")
    async def streamed(request: Request) -> Any:
        async def pieces() -> Any:
            for n in range(5):
                yield b"y" * (n * 100 + 1)

        return stream(pieces())

    server = await run_server(routes)
    seen: dict[str, int] = {}
    for method, path in (
        ("GET", "/text"),
        ("HEAD", "/text"),
        ("GET", "/stream"),
        ("GET", "/files/file.bin"),
    ):
        request = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        head, rest = await _exchange(server.port, request)
        assert head.startswith(b"HTTP/1.1 200 "), head
        seen[f"{method} {path}"] = len(rest)
    assert seen["GET /text"] == 1000 and seen["HEAD /text"] == 0
    assert seen["GET /files/file.bin"] == 256 * 700
    assert seen["GET /stream"] > sum(n * 100 + 1 for n in range(5))  # (the chunks' framing)
    message = serialize_frame(1, b"hello", mask=MASK)
    close = serialize_frame(8, serialize_close(1000), mask=MASK)
    head, rest = await _exchange(server.port, upgrade_request("/ws"), (message, 7), (close, 0))
    assert head.startswith(b"HTTP/1.1 101 ") and rest.startswith(b"\x81\x05hello"), rest
    seen["GET /ws"] = len(rest)
    await server.close(timeout=1)

    access = [r for r in caplog.records if r.name == "wsserver.access"]
    logged = {}
    for record in access:
        fields = record.getMessage().split(" ")
        assert fields[-1] == f"sent={record.bytes_sent}", fields  # type: ignore[attr-defined]
        logged[f"{fields[1]} {fields[2]}"] = record.bytes_sent  # type: ignore[attr-defined]
    assert logged == seen


async def test_an_asgi_response_s_bytes_sent_are_logged(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wsserver")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"a" * 300, "more_body": True})
        await send({"type": "http.response.body", "body": b"b" * 20})

    server = await run_server(app)
    request = b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    head, rest = await _exchange(server.port, request)
    assert b"Transfer-Encoding: chunked" in head and rest.endswith(b"0\r\n\r\n"), (head, rest)
    await server.close(timeout=1)
    (record,) = [r for r in caplog.records if r.name == "wsserver.access"]
    assert record.getMessage().endswith(f" sent={len(rest)}")
    assert record.bytes_sent == len(rest) > 320  # type: ignore[attr-defined]


async def test_a_response_s_own_chunked_framing_is_counted(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # (A whole Response may say Transfer-Encoding: chunked: h11 frames its body.)
    caplog.set_level(logging.INFO, logger="wsserver")
    routes = Router()

    @routes.get("/framed")
    async def framed(request: Request) -> Response:
        return Response(b"hello", 200, [("Transfer-Encoding", "chunked")])

    server = await run_server(routes)
    request = b"GET /framed HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    _, rest = await _exchange(server.port, request)
    assert rest == b"5\r\nhello\r\n0\r\n\r\n", rest
    await server.close(timeout=1)
    (record,) = [r for r in caplog.records if r.name == "wsserver.access"]
    assert record.bytes_sent == len(rest)  # type: ignore[attr-defined]


def big_file_routes(directory: Path) -> Router:
    """``/files/big.bin``: 48 MiB of zeros, served from ``directory``."""
    (directory / "big.bin").write_bytes(b"\x00" * (48 << 20))
    routes = Router()
    routes.static("/files", directory)
    return routes


async def take_some_of_the_big_file(port: int) -> tuple[asyncio.StreamWriter, int]:
    """GET ``/files/big.bin`` and read 3 MiB of it; the connection, and the
    bytes of the body taken."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /files/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    received = len(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5))
    taken = -received
    while received < (3 << 20):
        data = await asyncio.wait_for(reader.read(1 << 16), 5)
        assert data
        received += len(data)
    return writer, taken + received


async def test_a_file_cut_short_by_its_client_counts_what_went(
    run_server: StartServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # The client takes some of a large file, then resets the connection: the
    # line counts at least what it took (sendfile(), or pieces read in a thread).
    caplog.set_level(logging.INFO, logger="wsserver")
    server = await run_server(big_file_routes(tmp_path))
    writer, taken = await take_some_of_the_big_file(server.port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # a reset
    await wait_for(
        lambda: any(r.name == "wsserver.access" for r in caplog.records), what="the line"
    )
    (record,) = [r for r in caplog.records if r.name == "wsserver.access"]
    assert taken <= record.bytes_sent < (48 << 20), (taken, record.getMessage())  # type: ignore[attr-defined]


@pytest.mark.parametrize("ended_by", ["timeout_keep_alive", "shutdown"])
async def test_a_file_cut_short_by_the_server_counts_what_went(
    run_server: StartServer, caplog: pytest.LogCaptureFixture, tmp_path: Path, ended_by: str
) -> None:
    # The client takes some of a large file, then nothing: the server gives
    # up on it (timeout_keep_alive), or stops. Its kernel's sendfile()
    # cancelled, the line said sent=0 (asyncio leaves the file's position
    # where it was then).
    caplog.set_level(logging.INFO, logger="wsserver")
    stalls = ended_by == "timeout_keep_alive"
    server = await run_server(
        big_file_routes(tmp_path),
        timeout_keep_alive=0.5 if stalls else 30,
        close_timeout=0.5,
    )
    writer, taken = await take_some_of_the_big_file(server.port)
    try:
        # (It reads no more: its buffer fills, and its kernel's.)
        if not stalls:
            await asyncio.sleep(0.2)
            await server.close(timeout=0.5)
        await wait_for(
            lambda: any(r.name == "wsserver.access" for r in caplog.records), what="the line"
        )
    finally:
        writer.close()
    (record,) = [r for r in caplog.records if r.name == "wsserver.access"]
    assert taken <= record.bytes_sent < (48 << 20), (taken, record.getMessage())  # type: ignore[attr-defined]


@pytest.mark.parametrize("ended_by", ["timeout_keep_alive", "shutdown"])
async def test_a_file_cut_short_in_pieces_counts_no_more_than_went(
    run_server: StartServer,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    ended_by: str,
    request: pytest.FixtureRequest,
) -> None:
    # Sent in pieces (uvloop, TLS, a Unix socket; here the kernel refuses
    # sendfile()), a file cut short by the server: what the transport still
    # held when the connection was aborted (up to write_limit and a piece)
    # was dropped, and counted as sent all the same. The client, reading all
    # it can once the line is written, gets no less than the line says.
    request.getfixturevalue("no_kernel_sendfile")
    caplog.set_level(logging.INFO, logger="wsserver")
    stalls = ended_by == "timeout_keep_alive"
    server = await run_server(
        big_file_routes(tmp_path),
        timeout_keep_alive=0.5 if stalls else 30,
        close_timeout=0.5,
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /files/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        received = 0
        while received < (1 << 20):
            data = await asyncio.wait_for(reader.read(1 << 16), 5)
            assert data
            received += len(data)
        # (It reads no more: its buffer fills, and its kernel's.)
        if not stalls:
            await asyncio.sleep(0.2)
            await server.close(timeout=0.5)
        await wait_for(
            lambda: any(r.name == "wsserver.access" for r in caplog.records), what="the line"
        )
        async with asyncio.timeout(10):
            while data := await reader.read(1 << 16):
                received += len(data)
    finally:
        writer.close()
    (record,) = [r for r in caplog.records if r.name == "wsserver.access"]
    assert 0 < record.bytes_sent <= received, (received, record.getMessage())  # type: ignore[attr-defined]


def big_body_routes(size: int) -> Router:
    """A route, /big, answering a body of ``size`` bytes from memory, written whole."""
    body = b"x" * size
    routes = Router()

    @routes.get("/big")
    async def big(request: Request) -> Response:
        return Response(body)

    return routes


@pytest.mark.parametrize("ended_by", ["reset", "timeout_keep_alive", "taken"])
async def test_a_whole_response_the_client_did_not_take_counts_no_more_than_went(
    run_server: StartServer, caplog: pytest.LogCaptureFixture, ended_by: str
) -> None:
    # A response written whole (a body in memory) larger than the kernel
    # takes at once: its line was written as the transport took it, saying
    # the whole body sent, though the client reset the connection after 1 MiB
    # (a download cancelled, a process killed), or took nothing more until
    # timeout_keep_alive: sent=16777216 of what went. Its line now waits for
    # the body to go (or the connection to end).
    caplog.set_level(logging.INFO, logger="wsserver")
    size = 16 << 20
    routes = big_body_routes(size)
    server = await run_server(routes, timeout_keep_alive=0.3, close_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        received = 0
        enough = size if ended_by == "taken" else 1 << 20
        while received < enough:
            data = await asyncio.wait_for(reader.read(1 << 16), 5)
            assert data
            received += len(data)
        if ended_by == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        await wait_for(
            lambda: any(r.name == "wsserver.access" for r in caplog.records), what="the line"
        )
        if ended_by == "timeout_keep_alive":
            async with asyncio.timeout(10):
                while data := await reader.read(1 << 16):
                    received += len(data)
    finally:
        writer.close()
    (record,) = [r for r in caplog.records if r.name == "wsserver.access"]
    sent = record.bytes_sent  # type: ignore[attr-defined]
    if ended_by == "taken":
        assert sent == received == size, record.getMessage()
    elif ended_by == "reset":
        # (What the client's kernel took and it did not read went too.)
        assert received <= sent < size // 2, (received, record.getMessage())
    else:
        assert 0 < sent <= received < size, (received, record.getMessage())


async def test_a_held_line_is_not_lost_to_the_shutdowns_503(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A whole response's line waits for its body to go (writing paused); a
    # request pipelined behind it waits too. The shutdown answers that one
    # 503, a response of its own: it took the held line's place, and the
    # first response was never logged.
    caplog.set_level(logging.INFO, logger="wsserver")
    size = 16 << 20
    routes = big_body_routes(size)
    server = await run_server(routes, close_timeout=5)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\nGET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        await asyncio.sleep(0.3)  # (the first answer written, the client reading nothing)
        closing = asyncio.ensure_future(server.close(timeout=10))
        await asyncio.sleep(0.3)
        received = 0
        async with asyncio.timeout(20):
            while data := await reader.read(1 << 16):
                received += len(data)
        await asyncio.wait_for(closing, 20)
    finally:
        writer.close()
    records = [r for r in caplog.records if r.name == "wsserver.access"]
    assert [r.status for r in records] == [200, 503], [r.getMessage() for r in records]  # type: ignore[attr-defined]
    assert records[0].bytes_sent == size, records[0].getMessage()  # type: ignore[attr-defined]
    assert received > size


async def test_a_websocket_aborted_counts_no_more_than_went(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A handler sends to a client that reads nothing; the server stops, and
    # the client answers no close frame either: its connection is aborted at
    # close_timeout. The frames its transport still held then were dropped,
    # and counted as sent all the same (the close frame among them). The
    # client, reading all it can once the line is written, gets no less.
    caplog.set_level(logging.INFO, logger="wsserver")
    routes = Router()

    @routes.websocket("/")
    async def flood(request: Request, ws: WebSocket) -> None:
        while True:
            await ws.send(b"x" * 65536)

    server = await run_server(routes, close_timeout=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(upgrade_request())
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        received = 0
        while received < (1 << 20):
            data = await asyncio.wait_for(reader.read(1 << 16), 5)
            assert data
            received += len(data)
        # (It reads no more: its buffer fills, and its kernel's.)
        await asyncio.sleep(0.2)
        await server.close(timeout=0.5)
        await wait_for(
            lambda: any(r.name == "wsserver.access" for r in caplog.records), what="the line"
        )
        async with asyncio.timeout(10):
            while data := await reader.read(1 << 16):
                received += len(data)
    finally:
        writer.close()
    (record,) = [r for r in caplog.records if r.name == "wsserver.access"]
    assert 0 < record.bytes_sent <= received, (received, record.getMessage())  # type: ignore[attr-defined]


async def test_an_ipv6_peer_is_logged_in_brackets(caplog: pytest.LogCaptureFixture) -> None:
    # "::1:52918" (uvicorn's way too) cannot be told apart: is the port
    # 52918, or part of the address? RFC 3986's "[::1]:52918" can.
    from wsserver import serve

    caplog.set_level(logging.INFO, logger="wsserver.access")
    routes = Router()

    @routes.get("/")
    async def index(request: Request) -> Response:
        return text("x")

    try:
        server = serve(routes, "::1", 0, ping_interval=None)
        await server.start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://[::1]:{server.port}/")).status_code == 200
        await wait_for(lambda: "wsserver.access" in caplog.text, what="the access line")
    finally:
        await server.close()
    (line,) = [r.getMessage() for r in caplog.records if r.name == "wsserver.access"]
    assert re.match(r"\[::1\]:\d+ GET / 200 ", line), line


async def test_an_application_s_error_line_has_its_fields_for_json_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import json

    from starlette.applications import Starlette
    from starlette.routing import Route

    from wsserver.logs import JsonFormatter
    from wsserver.testing import TestClient

    routes = Router()

    @routes.get("/http/<n>", name="page")
    async def page(request: Request, n: str) -> None:
        raise ValueError("an HTTP bug")

    @routes.websocket("/ws", name="feed")
    async def feed(request: Request, ws: WebSocket) -> None:
        raise ValueError("a WebSocket bug")

    async def endpoint(request: Any) -> None:
        raise ValueError("an ASGI bug")

    asgi = Starlette(routes=[Route("/asgi", endpoint)])
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    settings = {"proxy_headers": True, "forwarded_allow_ips": "*"}
    caplog.set_level(logging.ERROR, logger="wsserver")
    async with TestClient(routes, raise_server_exceptions=False, **settings) as client:
        assert (await client.get("/http/caf%C3%A9", headers=forwarded)).status == 500
        async with client.websocket("/ws", headers=forwarded) as ws:
            await ws.wait_closed()
    async with TestClient(asgi, raise_server_exceptions=False, **settings) as client:
        assert (await client.get("/as%67i", headers=forwarded)).status == 500
    entries = [
        json.loads(JsonFormatter().format(r)) for r in caplog.records if r.levelno == logging.ERROR
    ]
    fields = [(e["path"], e.get("route"), e["peer"][: len("203.0.113.9")]) for e in entries]
    assert fields == [
        ("/http/caf%C3%A9", "page", "203.0.113.9"),  # (as the access line has it)
        ("/ws", "feed", "203.0.113.9"),
        ("/as%67i", None, "203.0.113.9"),
    ]
    assert all("ValueError" in e["exception"] for e in entries)


async def test_an_asgi_error_line_s_path_is_the_one_sent_whatever_a_mount_made_of_the_scope(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Starlette's Mount writes its prefix into scope["root_path"] as it routes
    # (scope.update()): the error line's path field is still the target's path
    # as sent, the access line's, not that path less the mount's prefix.
    from starlette.applications import Starlette
    from starlette.routing import Mount, Route

    from wsserver.testing import TestClient

    async def endpoint(request: Any) -> None:
        raise ValueError("a mounted bug")

    asgi = Starlette(routes=[Mount("/v1", routes=[Route("/items", endpoint)])])
    caplog.set_level(logging.INFO, logger="wsserver")
    for root_path in ("", "/api"):
        caplog.clear()
        async with TestClient(asgi, raise_server_exceptions=False, root_path=root_path) as client:
            assert (await client.get("/v1/items")).status == 500
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        access = [r for r in caplog.records if r.name == "wsserver.access"]
        assert len(errors) == 1 and len(access) == 1
        assert json.loads(JsonFormatter().format(errors[0]))["path"] == "/v1/items"
        assert json.loads(JsonFormatter().format(access[0]))["path"] == "/v1/items"
        said = f"ASGI application failed on {root_path}/v1/items "
        assert errors[0].getMessage().startswith(said)


async def test_json_access_lines_carry_every_access_field_null_when_unknown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # (Found by an audit: a field whose value was unknown, a close code for
    # an HTTP response, a route for a 404, was left out rather than null: a
    # log pipeline's schema saw fields come and go.)
    import json

    from wsserver.logs import JsonFormatter
    from wsserver.testing import TestClient

    routes = Router()

    @routes.get("/hello", name="hello")
    async def hello(request: Request) -> Any:
        return text("hi")

    caplog.set_level(logging.INFO, logger="wsserver.access")
    async with TestClient(routes) as client:
        await client.get("/hello")
        await client.get("/nowhere")
    entries = [
        json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "wsserver.access"
    ]
    fields = ("peer", "method", "path", "status", "duration", "close_code", "close_reason")
    for entry in entries:
        assert all(name in entry for name in (*fields, "route", "bytes_sent")), entry
    assert [(e["status"], e["route"], e["close_code"]) for e in entries] == [
        (200, "hello", None),
        (404, None, None),
    ]


async def test_a_request_refused_or_left_before_its_handler_names_its_route(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The route is found from the head; its name was logged only once the
    # handler was called: a body too large (413) or not complete in time
    # (408), or a client gone mid-body, was logged with route null, the
    # route's failures missing from a dashboard grouped by route.
    caplog.set_level(logging.INFO, logger="wsserver.access")
    routes = Router()

    @routes.post("/up", name="upload")
    async def upload(request: Request) -> Response:
        return text("ok")

    server = await run_server(routes, max_body_size=10, open_timeout=0.2)
    head = b"POST /up HTTP/1.1\r\nHost: x\r\n"
    for request, leave in (
        (head + b"Content-Length: 100\r\n\r\n", False),  # 413 at once
        (head + b"Transfer-Encoding: chunked\r\n\r\n14\r\n" + b"x" * 20 + b"\r\n", False),  # 413
        (head + b"Content-Length: 5\r\n\r\nab", False),  # 408
        (head + b"Content-Length: 5\r\n\r\nab", True),  # left: '-'
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request)
        if not leave:  # (one that leaves closes at once: its bytes come before its FIN)
            await asyncio.wait_for(reader.read(), 5)
        writer.close()
    await wait_for(lambda: len([r for r in caplog.records if r.name == "wsserver.access"]) == 4)
    access = [r for r in caplog.records if r.name == "wsserver.access"]
    assert [(r.__dict__["status"], r.__dict__["route"]) for r in access] == [
        (413, "upload"),
        (413, "upload"),
        (408, "upload"),
        (None, "upload"),
    ]


async def test_a_tls_client_on_a_plain_port_is_told_once_as_a_warning(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # wss:// or https:// to a server without TLS: the client fails with "wrong
    # version number"; the server's log says why (once: then at DEBUG).
    caplog.set_level(logging.DEBUG, logger="wsserver")
    server = await run_server(echo_routes("/ws"))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    for _ in range(2):
        with pytest.raises(ssl.SSLError):
            await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", server.port, ssl=context), 5
            )
    await wait_for(lambda: len([r for r in caplog.records if "TLS" in r.getMessage()]) == 2)
    told = [r for r in caplog.records if "TLS" in r.getMessage()]
    assert [r.levelno for r in told] == [logging.WARNING, logging.DEBUG]
    line = told[0].getMessage()
    assert "127.0.0.1:" in line and "without TLS" in line and "ssl_certfile" in line
    assert told[0].exc_info is None
    # A request that is merely bad stays at DEBUG, without the hint.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"\x00\x01 nonsense\r\n\r\n")
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 400 ")
    writer.close()
    assert len([r for r in caplog.records if "TLS" in r.getMessage()]) == 2


async def test_tls_inside_tls_on_a_tls_port_is_not_told_as_a_plain_port(
    run_server: StartServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    # The server has TLS: a client whose first bytes inside it begin another
    # TLS handshake is no wss:// client on a ws:// port (nor is ssl_certfile
    # missing): a bad request, at DEBUG, as any other.
    caplog.set_level(logging.DEBUG, logger="wsserver")
    ca = trustme.CA()
    server = await run_server(echo_routes("/ws"), **tls_server_files(ca, tmp_path))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=client_context(ca))
    writer.write(b"\x16\x03\x01\x00\x05hello")
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 400 ")
    writer.close()
    await wait_for(lambda: any("HTTP 400" in r.getMessage() for r in caplog.records))
    assert not [r for r in caplog.records if "began a TLS handshake" in r.getMessage()]


@pytest.mark.parametrize(
    "inside",
    [b"\n\n", b"\n ", b"\r\n\t", b"\x07" * 20_000],
    ids=["empty line", "folding", "folding after CR LF", "over max_header_size"],
)
async def test_a_tls_client_hello_is_told_whatever_its_random_bytes_hold(
    run_server: StartServer, caplog: pytest.LogCaptureFixture, inside: bytes
) -> None:
    # A ClientHello's random bytes (its key shares: 1 KB and more with a
    # post-quantum one) may hold "\n\n", where h11 takes all before it as a
    # request's head (gone from its buffer when it refuses the request line).
    # Or a line folding ("\n " or "\n\t": one in 150 of Python's 517-byte
    # hellos, more of browsers' larger ones), or be longer than a head may:
    # refused for that before h11 saw them (400 "Obsolete line folding",
    # 431 or 414), they were not told as TLS (and test_a_tls_client_on_a_
    # plain_port_is_told_once_as_a_warning failed now and then).
    caplog.set_level(logging.DEBUG, logger="wsserver")
    server = await run_server(echo_routes("/ws"))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x07" * 40 + inside + b"\x09" * 40
    )
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 400 ")
    writer.close()
    await wait_for(lambda: any("HTTP 400" in r.getMessage() for r in caplog.records))
    told = [r for r in caplog.records if "began a TLS handshake" in r.getMessage()]
    assert [r.levelno for r in told] == [logging.WARNING]


@pytest.mark.parametrize("kind", ["asgi", "websocket"])
async def test_a_task_left_running_at_shutdown_is_named_by_its_path_escaped(
    run_server: StartServer, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    # The shutdown's warning of a task that caught its cancellation named it by
    # its decoded path, as it was: a CR (a terminal writes what follows over
    # the line), a NEL (a line end to some readers), an escape sequence.
    caplog.set_level(logging.WARNING, logger="wsserver")
    stop = asyncio.Event()
    entered = asyncio.Event()

    async def stubborn() -> None:
        entered.set()
        while not stop.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # (the mistake)
                await asyncio.sleep(0.05)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise RuntimeError("no lifespan")
        await stubborn()

    routes = Router()

    @routes.websocket("/stubborn<rest:path>")
    async def handler(request: Request, ws: WebSocket, rest: str) -> None:
        await stubborn()

    server = await run_server(
        app if kind == "asgi" else routes, shutdown_timeout=0.2, close_timeout=0.5
    )
    target = "/stubborn%0d%c2%85forged%1b[2J"
    request = (
        upgrade_request(target)
        if kind == "websocket"
        else f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request)
    try:
        await asyncio.wait_for(entered.wait(), 5)
        await asyncio.wait_for(server.close(), 5)
    finally:
        stop.set()
        writer.close()
    (line,) = [r.getMessage() for r in caplog.records if "left running" in r.getMessage()]
    assert "/stubborn\\x0d\\x85forged\\x1b[2J went on" in line, line
    assert line.isprintable(), repr(line)


async def test_a_request_refused_for_its_head_is_logged_with_its_method_and_path(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A head that came whole and was refused by the server's own checks (a
    # control character in a header, two framings, a fragment, CONNECT) was
    # logged "- - 400", as one that never came whole: which request, on which
    # path, was not said. (A target not in origin-form stays unsaid: its
    # authority may hold a password.)
    caplog.set_level(logging.INFO, logger="wsserver.access")
    server = await run_server(echo_routes("/ws"))
    for request in (
        b"GET /api/items?token=secret HTTP/1.1\r\nHost: x\r\nX-Note: a\x7fb\r\n\r\n",
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /page#section HTTP/1.1\r\nHost: x\r\n\r\n",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        b"GET http://user:pw@example.com/admin HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # (not written whole)
    ):
        head, _ = await _exchange(server.port, request)
        assert head.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 501 ", b"HTTP/1.1 414 ")), head
    await server.close(timeout=1)
    lines = [r.getMessage() for r in caplog.records if r.name == "wsserver.access"]
    too_long = lines.pop()
    assert too_long.split(" ")[2:4] == ["-", "414"] and len(too_long) < 100, too_long
    assert [line.split(" ")[1:4] for line in lines] == [
        ["GET", "/api/items", "400"],
        ["POST", "/upload", "400"],
        ["GET", "/page", "400"],
        ["CONNECT", "-", "501"],
        ["GET", "-", "400"],
    ], lines


async def test_json_lines_say_null_for_a_peer_or_a_path_not_known(
    socket_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A Unix socket's client has no address: the text line says '-', but the
    # JSON field (the access line's and an application error's) said the
    # string "-" too, where every other field not known (a method, a route,
    # a close code) is null, as the README says: a pipeline grouping by
    # peer had "-" as one client.
    import json

    from wsserver import serve
    from wsserver.logs import JsonFormatter

    routes = Router()

    @routes.get("/fail", name="fail")
    async def fail(request: Request) -> None:
        raise ValueError("a bug")

    caplog.set_level(logging.INFO, logger="wsserver")
    async with serve(routes, uds=socket_path):
        for request in (b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /fai"):
            reader, writer = await asyncio.open_unix_connection(socket_path)
            writer.write(request)
            if request.endswith(b"\r\n\r\n"):
                assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 500 ")
            writer.close()
        await wait_for(
            lambda: len([r for r in caplog.records if r.name == "wsserver.access"]) == 2,
            what="both access lines",
        )
    lines = [
        json.loads(JsonFormatter().format(r))
        for r in caplog.records
        if r.name == "wsserver.access" or r.levelno == logging.ERROR
    ]
    error = next(e for e in lines if e["logger"] != "wsserver.access")
    access = [e for e in lines if e["logger"] == "wsserver.access"]
    assert (error["peer"], error["path"]) == (None, "/fail")
    assert [(e["peer"], e["method"], e["path"], e["status"]) for e in access] == [
        (None, "GET", "/fail", 500),
        (None, None, "-", None),  # (the path of a head never whole: '-', pinned in 3694f61)
    ]
    assert [r.getMessage().split()[:3] for r in caplog.records if r.name == "wsserver.access"] == [
        ["-", "GET", "/fail"],
        ["-", "-", "-"],
    ]


def test_a_logging_call_that_fails_to_format_is_one_json_line() -> None:
    # An application's call whose arguments do not fit its message ("%d" and
    # a str, a placeholder left without one) made logging write its own
    # "--- Logging error ---", a traceback and the call's stack, forty lines
    # of text amid the JSON ones that a log collector took for forty events
    # (README: what Python writes over several lines is one JSON line too).
    import json
    import subprocess
    import sys

    program = (
        "import logging\n"
        "from wsserver.__main__ import configure_logging\n"
        "configure_logging(None, None, 'json')\n"
        "logging.getLogger('app').warning('user %d logged in', 'alice')\n"
        "logging.getLogger('app').info('after')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # (each one JSON)
    assert [(e["level"], e["logger"]) for e in lines] == [("WARNING", "app"), ("INFO", "app")]
    said = lines[0]["message"]
    assert said.startswith("user %d logged in") and "'alice'" in said, said
    assert "TypeError" in said and "<string>:4" in said, said
