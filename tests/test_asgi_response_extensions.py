"""asgiref's response extensions ``http.response.early_hint`` (103 Early Hints)
and ``http.response.trailers``, through real sockets: Node's HTTP client (which
reports each ``1xx`` and a chunked body's trailers) and raw bytes where framing
matters. ``http.response.pathsend`` is in ``test_asgi.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from .helpers import errors_logged, exchange

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
Message = dict[str, Any]

# Node's http client: one GET; prints each informational response, then the
# final one (status, headers, body, trailers) as JSON lines.
NODE_GET = r"""
const http = require('http');
const [port, te] = process.argv.slice(1);
const headers = te ? {TE: te} : {};
const req = http.get({host: '127.0.0.1', port: +port, path: '/', headers}, res => {
  let body = '';
  res.setEncoding('latin1');
  res.on('data', d => body += d);
  res.on('end', () => console.log(JSON.stringify(
    {status: res.statusCode, headers: res.headers, body, trailers: res.trailers})));
});
req.on('information', info => console.log(JSON.stringify(
  {status: info.statusCode, headers: info.headers})));
req.on('error', e => { console.error(String(e)); process.exit(1); });
"""


async def node_get(port: int, te: str = "") -> list[dict[str, Any]]:
    """What Node's HTTP client saw of a GET: each 1xx, then the response."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed for these tests (Node's HTTP client)")
    process = await asyncio.create_subprocess_exec(
        node,
        "-e",
        NODE_GET,
        str(port),
        te,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()]


def sending(*messages: Message, after: Callable[[], Awaitable[None]] | None = None) -> App:
    """An application that sends ``messages`` in order (then awaits ``after``)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        for message in messages:
            await send(message)
        if after is not None:
            await after()

    return app


def start(*headers: tuple[bytes, bytes], trailers: bool = False, status: int = 200) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": list(headers),
        "trailers": trailers,
    }


def body(data: bytes, more: bool = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


def hint(*links: bytes) -> Message:
    return {"type": "http.response.early_hint", "links": list(links)}


def trailers(*headers: tuple[bytes, bytes], more: bool = False) -> Message:
    return {"type": "http.response.trailers", "headers": list(headers), "more_trailers": more}


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Any:
    """Fail a test that logged an error it did not expect (tests that expect one clear it)."""
    caplog.set_level(logging.INFO, logger="wsserver")
    yield caplog
    assert not errors_logged(caplog)


STYLE = b"</style.css>; rel=preload; as=style"
SCRIPT = b"</app.js>; rel=preload; as=script"
FONT = b"</font.woff2>; rel=preload; as=font; crossorigin"


def get(version: str = "1.1", *headers: str, method: str = "GET") -> bytes:
    lines = [f"{method} / HTTP/{version}", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# ================================================================ early hints


async def test_early_hints_reach_a_client_before_the_response(run_asgi: Any) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        seen.append(scope["extensions"])
        # Before the start, and between it and the first body (asgiref's
        # "after Response Start": the head waits for the first body).
        await send(hint(STYLE))
        await send(start((b"content-type", b"text/plain")))
        await send(hint(SCRIPT, FONT))
        await send(body(b"hello"))

    server = await run_asgi(app)
    first, second, final = await node_get(server.port)
    assert first == {"status": 103, "headers": {"link": STYLE.decode()}}
    # (Node joins the two Link lines, as HTTP allows.)
    assert second == {"status": 103, "headers": {"link": f"{SCRIPT.decode()}, {FONT.decode()}"}}
    assert final["status"] == 200 and final["body"] == "hello"
    assert final["headers"]["content-length"] == "5"
    assert "link" not in final["headers"]
    assert seen[0]["http.response.early_hint"] == {}

    raw = await exchange(server.port, get("1.1", "Connection: close"))
    assert raw.startswith(
        b"HTTP/1.1 103 Early Hints\r\nLink: " + STYLE + b"\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: " + SCRIPT + b"\r\nLink: " + FONT + b"\r\n\r\n"
        b"HTTP/1.1 200 OK\r\n"
    ), raw


async def test_early_hints_go_only_where_they_can(run_asgi: Any) -> None:
    app = sending(start(), body(b"a", more=True), hint(STYLE), body(b"b"), hint(SCRIPT))
    server = await run_asgi(app)
    # Once the head is out, a hint cannot go (a 1xx comes before the final
    # response), nor after the response.
    raw = await exchange(server.port, get("1.1", "Connection: close"))
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and b"103" not in raw and b"Link" not in raw
    assert raw.endswith(b"\r\n\r\n1\r\na\r\n1\r\nb\r\n0\r\n\r\n"), raw  # (no failure)

    # An HTTP/1.0 client gets none (RFC 9110 15.2: it may not understand 1xx).
    server = await run_asgi(sending(hint(STYLE), start(), body(b"ok")))
    raw = await exchange(server.port, get("1.0"))
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"\r\n\r\nok"), raw
    assert b"103" not in raw

    # Nor does one waiting for 100 Continue (h11 would take the 103 for the
    # answer it waits for); a hint sent once the body was asked for does.
    async def reading(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        await send(hint(STYLE))
        message = await receive()
        await send(hint(SCRIPT))
        await send(start())
        await send(body(message["body"]))

    server = await run_asgi(reading)
    raw = await exchange(
        server.port,
        get("1.1", "Expect: 100-continue", "Content-Length: 4", "Connection: close") + b"ping",
    )
    assert raw.startswith(
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: " + SCRIPT + b"\r\n\r\n"
        b"HTTP/1.1 200 OK\r\n"
    ), raw
    assert raw.endswith(b"\r\n\r\nping")


@pytest.mark.parametrize(
    "links",
    [
        b"</a.css>; rel=preload",  # one value, not an iterable of them
        ["</a.css>; rel=preload"],  # str
        [b"</a.css>\r\nSet-Cookie: x=1"],  # a line break
    ],
    ids=["bytes", "str", "crlf"],
)
async def test_an_invalid_early_hint_fails_the_application(
    run_asgi: Any, caplog: pytest.LogCaptureFixture, links: Any
) -> None:
    server = await run_asgi(
        sending({"type": "http.response.early_hint", "links": links}, start(), body(b"no"))
    )
    raw = await exchange(server.port, get("1.1", "Connection: close"))
    assert raw.startswith(b"HTTP/1.1 500 Internal Server Error\r\n"), raw
    assert b"Set-Cookie" not in raw and b"103" not in raw
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all("ASGI application failed" in e for e in errors), errors
    caplog.clear()


# =================================================================== trailers


async def test_trailers_reach_a_client_that_asks_for_them(run_asgi: Any) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        seen.append(scope["extensions"])
        await send(start((b"trailer", b"x-checksum, server-timing"), trailers=True))
        await send(body(b"hello "))
        # (A whole body in one piece: chunked all the same, for the trailers.)
        await send(trailers((b"x-checksum", b"5d41402a"), more=True))
        await send(trailers((b"server-timing", b"db;dur=53")))

    server = await run_asgi(app)
    (final,) = await node_get(server.port, te="trailers")
    assert final["status"] == 200 and final["body"] == "hello "
    assert final["headers"]["transfer-encoding"] == "chunked"
    assert "content-length" not in final["headers"]
    assert final["trailers"] == {"x-checksum": "5d41402a", "server-timing": "db;dur=53"}
    assert seen[0]["http.response.trailers"] == {}

    # The same, exactly, twice on one connection (it is kept alive after).
    request = get("1.1", "TE: trailers")
    raw = await exchange(server.port, request + request, wait=1)
    one = raw.split(b"\r\n\r\n", 1)[1]
    assert one.startswith(
        b"6\r\nhello \r\n0\r\nx-checksum: 5d41402a\r\nserver-timing: db;dur=53\r\n\r\n"
        b"HTTP/1.1 200 OK\r\n"
    ), raw
    assert raw.count(b"x-checksum: 5d41402a") == 2 and raw.endswith(b"<still open>")


@pytest.mark.parametrize(
    ("request_head", "expected"),
    [
        # No TE: trailers (asgiref: only then do they go).
        (get("1.1"), b"Content-Length: 5\r\n"),
        (get("1.1", "TE: gzip"), b"Content-Length: 5\r\n"),
    ],
    ids=["no-te", "te-without-trailers"],
)
async def test_trailers_are_dropped_where_they_cannot_go(
    run_asgi: Any, request_head: bytes, expected: bytes
) -> None:
    server = await run_asgi(
        sending(start(trailers=True), body(b"hello"), trailers((b"x-checksum", b"1")))
    )
    # The response ends once the trailers came, without them; the connection goes on.
    raw = await exchange(server.port, request_head + request_head, wait=1)
    assert raw.count(expected) == 2, raw
    assert raw.count(b"\r\n\r\nhello") == 2 and b"x-checksum" not in raw
    assert raw.endswith(b"<still open>")

    # An HTTP/1.0 client: no chunked encoding to carry them (its connection
    # closes after the response, as h11 keeps none alive).
    streamed = sending(
        start(trailers=True), body(b"he", more=True), body(b"llo"), trailers((b"x-checksum", b"1"))
    )
    server = await run_asgi(streamed)
    raw = await exchange(server.port, get("1.0", "TE: trailers"))
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"\r\n\r\nhello"), raw
    assert b"chunked" not in raw and b"x-checksum" not in raw


async def test_trailers_are_dropped_after_the_apps_content_length(run_asgi: Any) -> None:
    app = sending(
        start((b"content-length", b"5"), trailers=True),
        body(b"he", more=True),
        body(b"llo"),
        trailers((b"x-checksum", b"1")),
    )
    server = await run_asgi(app)
    (final,) = await node_get(server.port, te="trailers")
    assert final["headers"]["content-length"] == "5" and final["body"] == "hello"
    assert final["trailers"] == {}

    # HEAD: no body, so no trailers; the response still ends with them.
    raw = await exchange(server.port, get("1.1", "TE: trailers", method="HEAD"), wait=1)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"\r\n\r\n<still open>")


async def test_a_response_waits_for_the_trailers_it_promised(run_asgi: Any) -> None:
    sent = asyncio.Event()
    go = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        await send(start(trailers=True))
        await send(body(b"data"))
        sent.set()
        await go.wait()
        await send(trailers((b"x-late", b"yes")))

    server = await run_asgi(app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(get("1.1", "TE: trailers"))
    await sent.wait()
    await asyncio.sleep(0.1)
    received = await reader.read(65536)
    assert received.endswith(b"\r\n\r\n4\r\ndata\r\n"), received  # (no last chunk yet)
    go.set()
    rest = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert rest == b"0\r\nx-late: yes\r\n\r\n"
    writer.close()


async def test_an_app_that_does_not_send_its_trailers_is_an_error(
    run_asgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = await run_asgi(sending(start(trailers=True), body(b"data")))
    raw = await exchange(server.port, get("1.1", "TE: trailers"))
    # The body cannot be ended as promised: the connection closes.
    assert raw.endswith(b"\r\n\r\n4\r\ndata\r\n"), raw
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all("did not finish its trailers" in e for e in errors), errors
    caplog.clear()


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([start(), body(b"a", more=True), trailers()], "promised none"),
        ([start(trailers=True), body(b"a", more=True), trailers()], "before the body's last"),
        ([start(trailers=True), body(b"a"), trailers((b"x", b"1\r\nx: 2"))], "invalid header"),
        ([start(trailers=True), body(b"a"), trailers((":status", b"1"))], "must be bytes"),
        ([start(trailers=True), body(b"a"), trailers((b":status", b"1"))], "invalid header"),
    ],
    ids=["unpromised", "early", "crlf", "str", "pseudo-header"],
)
async def test_invalid_trailers_fail_the_application(
    run_asgi: Any, caplog: pytest.LogCaptureFixture, messages: list[Message], error: str
) -> None:
    server = await run_asgi(sending(*messages))
    raw = await exchange(server.port, get("1.1", "TE: trailers"))
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"a\r\n"), raw
    assert b"\r\n0\r\n" not in raw  # (never ended: closed)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all("ASGI application failed" in r.getMessage() for r in errors)
    assert any(error in str(r.exc_info[1]) for r in errors if r.exc_info), errors
    caplog.clear()
