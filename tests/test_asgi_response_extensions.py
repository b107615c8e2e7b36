"""asgiref's response extensions ``http.response.early_hint`` (103 Early
Hints), ``http.response.trailers`` and ``http.response.zerocopysend``, through
real sockets: Node's HTTP client (which reports each ``1xx`` and a chunked
body's trailers), httpx, and raw bytes where framing matters.
``http.response.pathsend`` is in ``test_asgi.py``.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import shutil
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from .helpers import errors_logged, exchange, open_descriptors_of, slow_reader, wait_for

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
    # (Lines end in \n only: a body's bytes as latin-1 may hold what
    # splitlines() would break at, \x85 say.)
    return [json.loads(line) for line in out.decode().split("\n") if line]


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


async def test_trailers_after_a_pathsend(run_asgi: Any, tmp_path: Any) -> None:
    # pathsend gave the file's length: h11 refused the trailers after it (the
    # app failed, the connection closed, a pipelined request was lost).
    path = tmp_path / "report.txt"
    path.write_bytes(b"0123456789" * 1000)
    app = sending(
        start(trailers=True),
        {"type": "http.response.pathsend", "path": str(path)},
        trailers((b"x-checksum", b"abc")),
    )
    server = await run_asgi(app)
    (final,) = await node_get(server.port, te="trailers")
    assert final["body"] == "0123456789" * 1000
    assert final["headers"]["transfer-encoding"] == "chunked"
    assert final["trailers"] == {"x-checksum": "abc"}
    request = get("1.1")  # (no TE: trailers: the file's length, no trailers)
    raw = await exchange(server.port, request + request, wait=1)
    assert raw.count(b"Content-Length: 10000\r\n") == 2 and b"x-checksum" not in raw


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
        ([start(trailers=True), body(b"a"), trailers((b"content-length", b"1"))], "cannot be"),
        ([start(trailers=True), body(b"a"), trailers((b"Transfer-Encoding", b"x"))], "cannot be"),
    ],
    ids=["unpromised", "early", "crlf", "str", "pseudo-header", "length", "transfer-encoding"],
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


async def test_no_body_after_the_last_piece_while_trailers_are_awaited(
    run_asgi: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = await run_asgi(sending(start(trailers=True), body(b"a"), body(b"more")))
    raw = await exchange(server.port, get("1.1", "TE: trailers"))
    assert raw.endswith(b"\r\n\r\n1\r\na\r\n"), raw
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all("after the body's last piece" in str(r.exc_info[1]) for r in errors)
    caplog.clear()


# ============================================================== zerocopysend


def zerocopy(
    file: Any, offset: int | None = None, count: int | None = None, more: bool = False
) -> Message:
    message: Message = {"type": "http.response.zerocopysend", "file": file, "more_body": more}
    if offset is not None:
        message["offset"] = offset
    if count is not None:
        message["count"] = count
    return message


@pytest.mark.parametrize("kernel", [True, False], ids=["sendfile", "no-kernel-sendfile"])
async def test_zerocopysend_sends_the_file_and_leaves_it_open(
    run_asgi: Any, tmp_path: Any, request: pytest.FixtureRequest, kernel: bool
) -> None:
    if not kernel:
        request.getfixturevalue("no_kernel_sendfile")
    data = os.urandom(300_000)  # (several of the server's pieces)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    seen: list[dict[str, Any]] = []
    with open(path, "rb") as file:

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":
                raise RuntimeError("no lifespan here")
            seen.append(scope["extensions"])
            file.seek(0)
            await send(start((b"content-type", b"x-app/bin")))
            await send(zerocopy(file))  # (all of it, from where it stands)

        server = await run_asgi(app)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            for _ in range(2):  # (the connection goes on to its next request)
                response = await client.get("/")
                assert response.status_code == 200 and response.content == data
                assert response.headers["content-length"] == str(len(data))
                assert file.read(3) == b""  # (its position: after what was sent)
            head = await client.head("/")
            assert head.content == b"" and head.headers["content-length"] == str(len(data))
        # The server's own descriptor is closed, the application's not.
        assert open_descriptors_of(path) == 1 and not file.closed
    assert seen[0]["http.response.zerocopysend"] == {}


@pytest.mark.parametrize("kernel", [True, False], ids=["sendfile", "no-kernel-sendfile"])
async def test_zerocopysend_parts_mix_with_body_pieces(
    run_asgi: Any, tmp_path: Any, request: pytest.FixtureRequest, kernel: bool
) -> None:
    if not kernel:
        request.getfixturevalue("no_kernel_sendfile")
    data = bytes(range(256)) * 1000
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        with os.fdopen(os.dup(fd), "rb", buffering=0) as file:
            await send(start(trailers=True))
            await send(body(b"<", more=True))
            await send(zerocopy(file, offset=1000, count=70_000, more=True))
            # (From where the last part left the file: 71,000.)
            await send(zerocopy(file, count=5, more=True))
            await send(zerocopy(file, offset=len(data) - 3, more=True))  # (to its end)
            await send(zerocopy(file, offset=len(data), more=True))  # (nothing)
            await send(body(b">"))
            await send(trailers((b"x-parts", b"5")))

    try:
        server = await run_asgi(app)
        (final,) = await node_get(server.port, te="trailers")
    finally:
        os.close(fd)
    expected = b"<" + data[1000:71_000] + data[71_000:71_005] + data[-3:] + b">"
    assert final["headers"]["transfer-encoding"] == "chunked"
    assert final["body"].encode("latin-1") == expected
    assert final["trailers"] == {"x-parts": "5"}


@pytest.mark.parametrize("kernel", [True, False], ids=["sendfile", "no-kernel-sendfile"])
async def test_one_open_file_sent_to_clients_at_once_reaches_each_whole(
    run_asgi: Any, tmp_path: Any, request: pytest.FixtureRequest, kernel: bool
) -> None:
    # An application that keeps a file open and sends it, from offset 0, to
    # whoever asks (as os.sendfile() with an offset allows: the file's position
    # is not used). The server reads through a dup() of its descriptor, which
    # shares that position: where it read pieces itself (uvloop, TLS, a Unix
    # socket, a file system the kernel cannot sendfile() from), two responses
    # at once read each other's bytes, and were cut short as "shrunk".
    if not kernel:
        request.getfixturevalue("no_kernel_sendfile")
    data = os.urandom(400_000)  # (several of the server's pieces)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    clients = 3
    arrived: list[None] = []
    all_here = asyncio.Event()
    with open(path, "rb") as file:

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":
                raise RuntimeError("no lifespan here")
            arrived.append(None)
            if len(arrived) == clients:
                all_here.set()
            await asyncio.wait_for(all_here.wait(), 10)  # (all of them sent at once)
            await send(start((b"content-length", str(len(data)).encode())))
            await send(zerocopy(file, offset=0, count=len(data)))

        server = await run_asgi(app, write_limit=16384)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            answers = await asyncio.gather(
                *(client.get("/") for _ in range(clients)), return_exceptions=True
            )
        got = [
            a if isinstance(a, Exception) else (a.status_code, a.content == data) for a in answers
        ]
        assert got == [(200, True)] * clients
        assert not file.closed


@pytest.mark.parametrize("kernel", [True, False], ids=["sendfile", "no-kernel-sendfile"])
async def test_a_buffered_file_read_before_stands_after_its_part(
    run_asgi: Any, tmp_path: Any, request: pytest.FixtureRequest, kernel: bool
) -> None:
    # An application that reads the file's head itself (open(path, "rb"):
    # buffered, so Python read far more than those 16 bytes), then sends the
    # rest in parts from where it stands. The server moved the descriptor's
    # position, not the file object's: its tell() said -99,884 after the
    # first part, the next part failed (a seek to it), and a read gave bytes
    # from before what was sent.
    if not kernel:
        request.getfixturevalue("no_kernel_sendfile")
    data = os.urandom(100_000)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        with open(path, "rb") as file:
            seen.append(file.read(16))
            await send(start())
            await send(zerocopy(file, count=100, more=True))
            seen.append(file.tell())
            await send(zerocopy(file, count=1000, more=True))
            seen.append(file.read(4))
            await send(zerocopy(file))  # (the rest, from where it stands)
            seen.append(file.tell())

    server = await run_asgi(app)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        response = await client.get("/")
    assert seen == [data[:16], 116, data[1116:1120], len(data)]
    assert response.content == data[16:1116] + data[1120:]


@pytest.mark.parametrize("version", ["1.1", "1.0"])
@pytest.mark.parametrize("path", ["sendfile", "no-kernel-sendfile", "pieces"])
async def test_a_zerocopysend_part_whose_file_shrinks_cuts_the_response_short(
    run_asgi: Any,
    tmp_path: Any,
    socket_path: str,
    caplog: pytest.LogCaptureFixture,
    request: pytest.FixtureRequest,
    path: str,
    version: str,
) -> None:
    # A part among others (more_body): no Content-Length, so the body is
    # chunked, or, to an HTTP/1.0 client, ends where the connection does.
    # Its file, truncated in place while it is sent, ends before the count
    # the part took: the client must be able to tell (no last chunk; a
    # reset, not a FIN), whichever way the part goes (the kernel's
    # sendfile(), its pieces after the kernel refused, or pieces read in a
    # thread: over a Unix socket, as with TLS or uvloop).
    if path == "no-kernel-sendfile":
        request.getfixturevalue("no_kernel_sendfile")
    data = tmp_path / "log.bin"
    data.write_bytes(b"x" * 8_000_000)
    failed: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        with open(data, "rb") as file:
            await send(start())
            await send(body(b"<", more=True))
            try:
                await send(zerocopy(file, more=True))
            except RuntimeError as exc:
                failed.append(exc)
                raise
            await send(body(b">"))

    loop = asyncio.get_running_loop()
    if path == "pieces":
        server = await run_asgi(app, uds=socket_path, write_limit=16384)
        client = socket.socket(socket.AF_UNIX)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.setblocking(False)
        await loop.sock_connect(client, socket_path)
    else:
        server = await run_asgi(app, write_limit=16384)
        client = await slow_reader(server.port)
    received, reset = b"", False
    try:
        await loop.sock_sendall(client, get(version, "Connection: close"))
        received = await asyncio.wait_for(loop.sock_recv(client, 4096), 5)
        os.truncate(data, 1_000_000)
        while chunk := await asyncio.wait_for(loop.sock_recv(client, 65536), 5):
            received += chunk
    except ConnectionResetError:
        reset = True
    finally:
        client.close()
    head, _, content = received.partition(b"\r\n\r\n")
    assert b"content-length" not in head.lower()
    assert len(content) < 8_000_000 and not content.endswith(b">")
    if version == "1.1":
        assert b"transfer-encoding: chunked" in head.lower()
        assert not content.endswith(b"0\r\n\r\n")  # (no last chunk)
    elif path != "pieces":  # (a Unix socket has no reset to say it with)
        assert reset  # (a FIN would make what came look whole)
    assert len(failed) == 1 and "shorter" in str(failed[0])
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "ASGI application failed" in errors[0].getMessage()
    caplog.clear()
    await wait_for(lambda: not server.connections, what="the cut response's connection closed")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"file": io.BytesIO(b"no descriptor")}, "fileno"),
        ({"file": "FD"}, "must be an open file object"),  # a bare descriptor
        ({"file": "FILE", "offset": -1}, "must not be negative"),
        ({"file": "FILE", "count": "5"}, "must be an int"),
        ({"file": "FILE", "count": True}, "must be an int"),
        ({"file": "DEVNULL"}, "must be a regular file"),  # (a character device)
        ({"file": "FILE", "offset": 50, "count": 51}, "past the file's end"),
        ({"file": "FILE", "offset": 100, "count": 1}, "past the file's end"),
    ],
    ids=[
        "bytesio",
        "int",
        "negative",
        "str-count",
        "bool-count",
        "not-regular",
        "count-past-the-end",
        "offset-past-the-end",
    ],
)
async def test_an_invalid_zerocopysend_fails_the_application(
    run_asgi: Any,
    tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
    fields: dict[str, Any],
    error: str,
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"x" * 100)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        with open(path, "rb") as file, open(os.devnull, "rb") as devnull:
            chosen = {"FILE": file, "FD": file.fileno(), "DEVNULL": devnull}
            message = {**fields, "file": chosen.get(fields["file"], fields["file"])}
            await send(start())
            await send({"type": "http.response.zerocopysend", **message})

    server = await run_asgi(app)
    raw = await exchange(server.port, get("1.1", "Connection: close"))
    assert raw.startswith(b"HTTP/1.1 500 Internal Server Error\r\n"), raw
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all("ASGI application failed" in r.getMessage() for r in errors)
    assert all(error in str(r.exc_info[1]) for r in errors if r.exc_info), errors
    caplog.clear()
