"""Date, Server and configured headers on every response and 101, unless it has its own.

Through real sockets and real clients (``websockets``, ``httpx``), for Router
and ASGI applications; the clock's one-second cache with a clock the test moves.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from wsserver import Request, Router, WebSocket
from wsserver.config import Config
from wsserver.errors import ConfigError
from wsserver.protocol.handshake import accept_headers, accept_response
from wsserver.protocol.http import http_date, with_defaults
from wsserver.response import Response, text
from wsserver.server.response_headers import ResponseHeaders

from .conftest import StartServer
from .helpers import echo_routes

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def assert_fresh_date(value: str | None) -> None:
    """``value`` is an IMF-fixdate in GMT, within a few seconds of now."""
    assert value is not None, "no Date header"
    assert value.endswith(" GMT"), value
    when = email.utils.parsedate_to_datetime(value).timestamp()
    assert abs(when - time.time()) < 5, value
    assert http_date(when) == value  # exactly the IMF-fixdate form


def routes() -> Router:
    routes = echo_routes("/ws")

    @routes.get("/hello")
    async def hello(request: Request) -> Response:
        return text("hello")

    @routes.get("/own")
    async def own(request: Request) -> Response:
        return text("own", headers={"server": "app/1.0", "DATE": "Thu, 01 Jan 1970 00:00:00 GMT"})

    @routes.websocket("/guarded", origins=["https://good.example"])
    async def guarded(request: Request, ws: WebSocket) -> None:
        await ws.close()

    return routes


# ------------------------------------------------------- through a real server


async def test_router_responses_and_101_carry_date_and_server(run_server: StartServer) -> None:
    server = await run_server(routes())
    base = f"127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as client:
        for path, status in (("/hello", 200), ("/missing", 404), ("/ws", 426)):
            response = await client.get(f"http://{base}{path}")
            assert response.status_code == status
            assert response.headers.get_list("server") == ["wsserver"], path
            assert len(response.headers.get_list("date")) == 1, path
            assert_fresh_date(response.headers["date"])
    async with websockets.connect(f"ws://{base}/ws") as ws:
        assert ws.response is not None
        assert ws.response.headers.get_all("Server") == ["wsserver"]
        assert len(ws.response.headers.get_all("Date")) == 1
        assert_fresh_date(ws.response.headers["Date"])
        await ws.send("still a WebSocket")
        assert await ws.recv() == "still a WebSocket"
    # A denied upgrade too.
    with pytest.raises(InvalidStatus) as caught:
        await websockets.connect(f"ws://{base}/guarded", origin="https://evil.example")  # type: ignore[arg-type]
    assert caught.value.response.status_code == 403
    assert caught.value.response.headers["Server"] == "wsserver"
    assert_fresh_date(caught.value.response.headers["Date"])


async def test_a_response_with_its_own_keeps_it(run_server: StartServer) -> None:
    server = await run_server(routes())
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/own")
    assert response.headers.get_list("server") == ["app/1.0"]
    assert response.headers.get_list("date") == ["Thu, 01 Jan 1970 00:00:00 GMT"]


async def test_turned_off_and_configured_headers(run_server: StartServer) -> None:
    server = await run_server(
        routes(),
        server_header=False,
        date_header=False,
        headers=[("X-Frame-Options", "DENY"), ("Strict-Transport-Security", "max-age=60")],
    )
    base = f"127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://{base}/missing")
    assert response.status_code == 404
    assert "server" not in response.headers and "date" not in response.headers
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["strict-transport-security"] == "max-age=60"
    async with websockets.connect(f"ws://{base}/ws") as ws:
        assert ws.response is not None
        headers = ws.response.headers
        assert "Server" not in headers and "Date" not in headers
        assert headers.get_all("X-Frame-Options") == ["DENY"]


async def test_a_configured_server_header_replaces_ours(run_server: StartServer) -> None:
    server = await run_server(routes(), headers=[("Server", "edge")])
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/hello")
    assert response.headers.get_list("server") == ["edge"]
    assert_fresh_date(response.headers["date"])


async def test_a_configured_cookie_goes_with_responses_that_set_their_own(
    run_server: StartServer,
) -> None:
    # (Each Set-Cookie is a cookie of its own: one a response sets does not
    # stand for the configured one, which went on every response but those
    # that set a cookie, a login's. A response that sets the same cookie keeps
    # its own; uvicorn sends its --header ones and the app's alike.)
    routes = echo_routes("/ws")

    @routes.post("/login")
    async def login(request: Request) -> Response:
        response = text("in")
        response.set_cookie("session", "s1")
        return response

    @routes.get("/node")
    async def node(request: Request) -> Response:
        response = text("moved")
        response.set_cookie("node", "b")
        return response

    server = await run_server(routes, headers=[("Set-Cookie", "node=a; Path=/")])
    base = f"127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as client:
        login_response = await client.post(f"http://{base}/login")
        node_response = await client.get(f"http://{base}/node")
    assert login_response.headers.get_list("set-cookie") == [
        "node=a; Path=/",
        "session=s1; Path=/; SameSite=Lax",
    ]
    assert node_response.headers.get_list("set-cookie") == ["node=b; Path=/; SameSite=Lax"]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan here")
    if scope["type"] == "http":
        own = [(b"server", b"asgi-app")] if scope["path"] == "/own" else []
        await send({"type": "http.response.start", "status": 200, "headers": own})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await receive()
    if scope["path"] == "/own":
        await send({"type": "websocket.accept", "headers": [(b"server", b"asgi-app")]})
    else:
        await send({"type": "websocket.accept"})
    await send({"type": "websocket.close"})


async def test_asgi_responses_and_101(run_asgi: StartServer) -> None:
    server = await run_asgi(asgi_app, headers=[("X-Frame-Options", "DENY")])
    base = f"127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as client:
        plain = await client.get(f"http://{base}/")
        own = await client.get(f"http://{base}/own")
    assert plain.text == "ok" and plain.headers.get_list("server") == ["wsserver"]
    assert_fresh_date(plain.headers["date"])
    assert plain.headers["x-frame-options"] == "DENY"
    assert own.headers.get_list("server") == ["asgi-app"]
    assert_fresh_date(own.headers["date"])
    for path, expected in (("/", "wsserver"), ("/own", "asgi-app")):
        async with websockets.connect(f"ws://{base}{path}") as ws:
            assert ws.response is not None
            assert ws.response.headers.get_all("Server") == [expected]
            assert_fresh_date(ws.response.headers["Date"])
            assert ws.response.headers["X-Frame-Options"] == "DENY"


# ------------------------------------------------------------- the pieces


def test_http_date_is_rfc_9110s_example() -> None:
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"


def test_the_date_changes_with_the_second_only() -> None:
    now = [1000.2]
    defaults = ResponseHeaders(clock=lambda: now[0])
    first = defaults()
    assert first == [("Date", http_date(1000)), ("Server", "wsserver")]
    now[0] = 1000.9
    assert defaults() is first  # made once a second
    now[0] = 1001.0
    assert defaults() == [("Date", http_date(1001)), ("Server", "wsserver")]
    assert ResponseHeaders(date_header=False, server_header=False)() == []


def test_with_defaults_keeps_the_responses_own_whatever_the_case() -> None:
    defaults = [("Date", "D"), ("Server", "wsserver"), ("X-A", "1")]
    assert with_defaults([("SERVER", "mine")], defaults) == [
        ("Date", "D"),
        ("X-A", "1"),
        ("SERVER", "mine"),
    ]
    assert with_defaults([], defaults) == defaults
    mine = [("x", "y")]
    assert with_defaults(mine, ()) is mine


def test_with_defaults_keeps_a_configured_cookie_another_cookie_does_not_replace() -> None:
    defaults = [("Server", "wsserver"), ("Set-Cookie", "node=a; Path=/")]
    assert with_defaults([("set-cookie", "session=s1")], defaults) == [
        ("Server", "wsserver"),
        ("Set-Cookie", "node=a; Path=/"),
        ("set-cookie", "session=s1"),
    ]
    assert with_defaults([("Set-Cookie", "node =b; Max-Age=0")], defaults) == [
        ("Server", "wsserver"),
        ("Set-Cookie", "node =b; Max-Age=0"),
    ]
    # (Cookie names are case-sensitive: NODE is another cookie.)
    assert with_defaults([("Set-Cookie", "NODE=b")], defaults)[1:] == [
        ("Set-Cookie", "node=a; Path=/"),
        ("Set-Cookie", "NODE=b"),
    ]
    raw = accept_response(KEY, extra_headers=[("Set-Cookie", "seen=1")], defaults=defaults)
    lines = raw.decode("latin-1").split("\r\n")[1:-2]
    assert [tuple(line.split(": ", 1)) for line in lines][-2:] == [
        ("Set-Cookie", "node=a; Path=/"),
        ("Set-Cookie", "seen=1"),
    ]


def test_the_101_has_the_defaults_but_for_those_the_app_gave() -> None:
    defaults = [("Date", "D"), ("Server", "wsserver")]
    raw = accept_response(KEY, extra_headers=[("Server", "app")], defaults=defaults)
    lines = raw.decode("latin-1").split("\r\n")[1:-2]
    assert [tuple(line.split(": ", 1)) for line in lines] == [
        *accept_headers(KEY),
        ("Date", "D"),
        ("Server", "app"),
    ]


@pytest.mark.parametrize(
    "headers",
    [
        [("X-A", "one\r\nSet-Cookie: injected=1")],
        [("Bad Name", "x")],
        [("Content-Length", "5")],
        [("Date", "Thu, 01 Jan 1970 00:00:00 GMT")],
        [("Sec-WebSocket-Accept", "x")],
        [("Connection", "keep-alive")],
        ["X-A: b"],
        # What h11 would refuse to send: non-ASCII, and whitespace around a value.
        [("X-A", "caf\u00e9")],
        [("X-A", " a")],
        [("X-A", "a\t")],
    ],
)
def test_configured_headers_are_checked(headers: list[Any]) -> None:
    with pytest.raises(ConfigError, match="headers"):
        Config(headers=headers)


def test_header_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from wsserver.__main__ import build_parser, config_from_args

    parser = build_parser()
    args = parser.parse_args(
        ["x:y", "--header", "X-A: b c", "--header", "X-B:d", "--no-server-header"]
    )
    config = config_from_args(args)
    assert config.headers == (("X-A", "b c"), ("X-B", "d"))
    assert config.server_header is False and config.date_header is True
    for bad in ("no colon", "X-A: b\x01", "Content-Length: 3"):
        with pytest.raises(SystemExit):
            parser.parse_args(["x:y", "--header", bad])
        assert "--header" in capsys.readouterr().err


def test_configured_headers_are_kept_as_checked() -> None:
    given = [("X-A", "1")]
    config = Config(headers=given)
    given.append(("X-B", "a\r\nSet-Cookie: injected=1"))  # after the check
    assert list(config.headers) == [("X-A", "1")]


async def test_a_response_header_h11_refuses_gets_a_500(run_server: StartServer) -> None:
    routes = Router()

    @routes.get("/mismatch")
    async def mismatch(request: Request) -> Response:
        return text("x", headers={"Content-Length": "5"})  # (the body is 1 byte)

    @routes.get("/accented")
    async def accented(request: Request) -> Response:
        return text("x", headers={"X-Name": "caf\u00e9"})

    server = await run_server(routes)
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/mismatch")
        assert response.status_code == 500
        assert response.headers["server"] == "wsserver"
        # (Latin-1 text h11 once refused too, as ASCII: it goes as latin-1 now.)
        response = await client.get(f"http://127.0.0.1:{server.port}/accented")
        assert response.status_code == 200
        assert (b"X-Name", b"caf\xe9") in response.headers.raw


async def test_no_transfer_encoding_goes_in_a_204(run_server: StartServer) -> None:
    # RFC 9112 6.1: a server MUST NOT send Transfer-Encoding in a 1xx or a
    # 204 (as RFC 9110 8.6 has no Content-Length in them, which is left out:
    # a client may take either for a body to come). One a handler gives a 204
    # (its headers shared with other answers) was sent; a 304 may say it.
    routes = Router()

    @routes.get("/<status:int>")
    async def bodiless(request: Request, status: int) -> Response:
        return Response(b"", status, {"Transfer-Encoding": "chunked", "X-Kept": "yes"})

    server = await run_server(routes)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(
            b"GET /204 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /304 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    first, _, second = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 204 ") and b"X-Kept: yes" in first
    assert b"transfer-encoding" not in first.lower(), first
    assert second.startswith(b"HTTP/1.1 304 ") and b"Transfer-Encoding: chunked" in second
