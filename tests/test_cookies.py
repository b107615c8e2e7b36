"""Cookies a response sets: ``set_cookie()`` and ``delete_cookie()`` (RFC 6265).

What is sent is checked as text, then as real clients keep it: httpx's and
aiohttp's cookie jars over a real socket, and Chromium (in test_browser.py).
"""

from __future__ import annotations

import asyncio
import datetime
import http.cookies
import json as jsonlib
import string

import aiohttp
import httpx
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from wsserver import Request, Router, WebSocket
from wsserver.protocol.cookies import set_cookie_value
from wsserver.response import (
    Acceptance,
    Response,
    StreamingResponse,
    accept,
    json,
    redirect,
    stream,
    text,
)

from .conftest import StartServer

_HOURS = datetime.timedelta(hours=5)


@pytest.mark.parametrize(
    ("arguments", "sent"),
    [
        ({}, "id=42; Path=/; SameSite=Lax"),
        (
            {"max_age": 3600, "secure": True, "httponly": True, "samesite": "strict"},
            "id=42; Max-Age=3600; Path=/; Secure; HttpOnly; SameSite=Strict",
        ),
        (
            {"expires": datetime.datetime(2030, 1, 2, 3, 4, 5), "path": None, "samesite": None},
            "id=42; Expires=Wed, 02 Jan 2030 03:04:05 GMT",
        ),
        (
            {
                "expires": datetime.datetime(
                    2030, 1, 2, 5, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
                ),
                "domain": "example.com",
                "path": "/app",
            },
            "id=42; Expires=Wed, 02 Jan 2030 03:04:05 GMT; Domain=example.com; Path=/app; "
            "SameSite=Lax",
        ),
        (
            {"secure": True, "samesite": "none", "partitioned": True},
            "id=42; Path=/; Secure; SameSite=None; Partitioned",
        ),
        # As the attribute is spelled (and Starlette, Sanic, Flask, Django take it).
        ({"samesite": "Strict"}, "id=42; Path=/; SameSite=Strict"),
        ({"samesite": "LAX", "path": None}, "id=42; SameSite=Lax"),
        ({"samesite": "None", "secure": True}, "id=42; Path=/; Secure; SameSite=None"),
        # A moment before 1601 is the epoch: browsers read such a year as
        # another (RFC 6265 5.1.1: 30 as 2030, the cookie then kept).
        (
            {"expires": datetime.datetime(30, 1, 1), "path": None, "samesite": None},
            "id=42; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        ),
        # Past datetime's ends in UTC: its first moment, or its last.
        (
            {
                "expires": datetime.datetime(1, 1, 1, tzinfo=datetime.timezone(_HOURS)),
                "path": None,
                "samesite": None,
            },
            "id=42; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        ),
        (
            {
                "expires": datetime.datetime(9999, 12, 31, 22, tzinfo=datetime.timezone(-_HOURS)),
                "path": None,
                "samesite": None,
            },
            "id=42; Expires=Fri, 31 Dec 9999 23:59:59 GMT",
        ),
    ],
)
def test_what_set_cookie_sends(arguments: dict[str, object], sent: str) -> None:
    response = text("ok")
    response.set_cookie("id", "42", **arguments)  # type: ignore[arg-type]
    assert response.headers[-1] == ("Set-Cookie", sent)
    # The prefixed names, with what browsers ask of them.
    response.set_cookie("__Host-id", "42", secure=True)
    assert response.headers[-1] == ("Set-Cookie", "__Host-id=42; Path=/; Secure; SameSite=Lax")
    response.set_cookie("__Secure-id", "42", secure=True, domain="example.com")
    assert response.headers[-1][1].startswith("__Secure-id=42; Domain=example.com;")
    response.set_cookie("__Http-id", "42", secure=True, httponly=True, domain="example.com")
    assert response.headers[-1][1].startswith("__Http-id=42; Domain=example.com;")
    response.set_cookie("__Host-Http-id", "42", secure=True, httponly=True)
    assert response.headers[-1] == (
        "Set-Cookie",
        "__Host-Http-id=42; Path=/; Secure; HttpOnly; SameSite=Lax",
    )
    # At the limits browsers keep.
    response.set_cookie("a", "x" * 4095, domain=".xn--caf-dma.example", path="/" + "p" * 1023)
    assert response.headers[-1][1].startswith(f"a={'x' * 4095}; Domain=.xn--caf-dma.example; ")


def test_delete_cookie_ends_it_where_it_was_set() -> None:
    response = text("bye")
    response.delete_cookie("session", path="/app", domain="example.com")
    assert response.headers[-1] == (
        "Set-Cookie",
        "session=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=example.com; "
        "Path=/app; SameSite=Lax",
    )


@pytest.mark.parametrize(
    ("name", "value", "arguments", "message"),
    [
        ("a b", "1", {}, "name is a token"),
        ("", "1", {}, "name is a token"),
        ("a=b", "1", {}, "name is a token"),
        ("a", "x y", {}, "encode 'x y' first"),
        ("a", 'say "hi"', {}, "encode"),
        ("a", "1,2", {}, "encode"),
        ("a", "1;Secure", {}, "encode"),
        ("a", "back\\slash", {}, "encode"),
        ("a", "caf\u00e9", {}, "encode"),
        ("a", "line\r\nSet-Cookie: b=2", {}, "encode"),
        ("a", "1", {"path": "/;Domain=evil.example"}, "Path cannot be"),
        ("a", "1", {"path": ""}, "Path cannot be"),
        ("a", "1", {"path": "app"}, "Path cannot be"),  # (ignored by browsers)
        ("a", "1", {"path": "/" + "x" * 1024}, "a Path of over 1024"),
        ("a", "1", {"domain": "a.example, b.example"}, "Domain cannot be"),
        ("a", "1", {"domain": "exa mple.com"}, "Domain cannot be"),
        ("a", "1", {"domain": ""}, "Domain cannot be"),
        ("a", "x" * 4096, {}, "over 4096 characters"),
        ("a", "1", {"domain": "example.com\r\nX: y"}, "Domain cannot be"),
        ("a", "1", {"samesite": "none"}, "SameSite=None needs secure=True"),
        ("a", "1", {"samesite": "None"}, "SameSite=None needs secure=True"),
        ("a", "1", {"samesite": "sometimes"}, "samesite is"),
        ("a", "1", {"partitioned": True}, "Partitioned needs secure=True"),
        ("a", "1", {"max_age": 1.5}, "max_age is whole seconds"),
        ("a", "1", {"max_age": True}, "max_age is whole seconds"),
        ("a", "1", {"expires": "tomorrow"}, "expires is a datetime"),
        ("__Secure-id", "1", {}, "__Secure- needs secure=True"),
        ("__secure-id", "1", {}, "__Secure- needs secure=True"),
        ("__Host-id", "1", {}, "__Host- needs secure=True"),
        ("__Host-id", "1", {"secure": True, "path": "/app"}, "__Host- needs"),
        ("__Host-id", "1", {"secure": True, "domain": "example.com"}, "__Host- needs"),
        # (Chromium 140 and Firefox 142 drop these too: layered cookies' 4.1.3.3-4.)
        ("__Http-id", "1", {"secure": True}, "__Http- needs secure=True and httponly=True"),
        ("__http-id", "1", {"httponly": True}, "__Http- needs"),
        ("__Host-Http-id", "1", {"secure": True}, "__Host-Http- needs"),
        ("__host-http-id", "1", {"secure": True, "httponly": True, "path": "/a"}, "__Host-"),
    ],
)
def test_what_cannot_reach_a_browser_as_given_is_refused(
    name: str, value: str, arguments: dict[str, object], message: str
) -> None:
    response = text("ok")
    with pytest.raises(ValueError, match=message):
        response.set_cookie(name, value, **arguments)  # type: ignore[arg-type]
    assert not any(header == "Set-Cookie" for header, _ in response.headers)


_TOKEN = st.text(alphabet="!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits, min_size=1)
_OCTETS = st.text(
    alphabet=[chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\'], max_size=50
)


@given(name=_TOKEN, value=_OCTETS, max_age=st.none() | st.integers(-10, 10**9))
def test_every_cookie_it_sends_is_read_back_by_pythons_parser(
    name: str, value: str, max_age: int | None
) -> None:
    # Python's own cookie parser (as a server framework reads the Cookie
    # header) gets every name and value the module lets through as given.
    assume(name.lower() not in http.cookies.Morsel._reserved)  # (attribute names to it)
    assume(not name.startswith("$"))  # (RFC 2109's attributes to it; a name to browsers)
    assume(not name.lower().startswith(("__secure-", "__host-")))  # (need secure=True)
    header = set_cookie_value(name, value, max_age=max_age, httponly=True)
    jar: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
    jar.load(header)
    morsel = jar[name]
    assert morsel.value == value
    assert morsel["httponly"] is True
    assert morsel["max-age"] == ("" if max_age is None else str(max_age))


def cookie_routes() -> Router:
    routes = Router()

    @routes.post("/login")
    async def login(request: Request) -> Response:
        response = redirect("/me", 303)
        response.set_cookie("session", "s3cret", httponly=True, max_age=3600)
        response.set_cookie("theme", "dark", expires=datetime.datetime(2099, 1, 1))
        response.set_cookie("scoped", "1", path="/admin")
        return response

    @routes.get("/me")
    async def me(request: Request) -> Response:
        return json(request.cookies)

    @routes.post("/logout")
    async def logout(request: Request) -> Response:
        response = text("bye")
        response.delete_cookie("session")
        response.delete_cookie("theme")
        return response

    @routes.get("/stream")
    async def streamed(request: Request) -> StreamingResponse:
        response = stream([b"pieces"])
        response.set_cookie("streamed", "yes")
        return response

    async def on_connect(request: Request) -> Acceptance:
        acceptance = accept()
        acceptance.set_cookie("upgraded", "1")
        return acceptance

    @routes.websocket("/ws", on_connect=on_connect)
    async def ws(request: Request, ws: WebSocket) -> None:
        await ws.send(json_text(request.cookies))

    return routes


def json_text(value: object) -> str:
    return jsonlib.dumps(value, sort_keys=True)


async def test_httpx_keeps_them_as_sent(run_server: StartServer) -> None:
    server = await run_server(cookie_routes())
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base, follow_redirects=True) as client:
        r = await client.post("/login")
        assert r.status_code == 200 and r.url.path == "/me"
        # /admin's cookie stays behind; the others came along.
        assert r.json() == {"session": "s3cret", "theme": "dark"}
        assert {c.name: c.path for c in client.cookies.jar} == {
            "session": "/",
            "theme": "/",
            "scoped": "/admin",
        }
        r = await client.get("/stream")
        assert r.text == "pieces" and client.cookies.get("streamed") == "yes"
        await client.post("/logout")
        assert (await client.get("/me")).json() == {"streamed": "yes"}


async def test_aiohttp_keeps_them_and_takes_one_from_the_101(run_server: StartServer) -> None:
    server = await run_server(cookie_routes())
    base = f"http://127.0.0.1:{server.port}"
    jar = aiohttp.CookieJar(unsafe=True)  # (an IP address host)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.post(f"{base}/login") as response:
            assert response.status == 200
            assert await response.json() == {"session": "s3cret", "theme": "dark"}
        async with session.ws_connect(f"{base}/ws") as ws:
            assert await ws.receive_str() == json_text({"session": "s3cret", "theme": "dark"})
        # The 101's cookie is kept and goes with the next request.
        async with session.get(f"{base}/me") as response:
            assert await response.json() == {"session": "s3cret", "theme": "dark", "upgraded": "1"}
        async with session.post(f"{base}/logout") as response:
            assert response.status == 200
        async with session.get(f"{base}/me") as response:
            assert await response.json() == {"upgraded": "1"}


async def test_a_cookie_in_utf_8_is_read_as_text(run_server: StartServer) -> None:
    # A page's script may set any text (document.cookie = "theme=café"), and
    # browsers send it in UTF-8: request.cookies read its bytes as latin-1
    # ("cafÃ©"). Bytes that are no UTF-8 are still read as latin-1.
    server = await run_server(cookie_routes())
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Cookie: theme=caf\xc3\xa9 \xe2\x98\x95; old=\xe9t\xe9\r\n"
        b'Cookie: \xc3\xa9l\xc3\xa9ment="\xf0\x9f\x8d\xaa"\r\n\r\n'
    )
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert jsonlib.loads(body) == {"theme": "café ☕", "old": "été", "élément": "🍪"}


async def test_a_quoted_cookie_with_escapes_is_read_as_python_wrote_it(
    run_server: StartServer,
) -> None:
    # Python's http.cookies (what Starlette's, Django's and aiohttp's
    # set_cookie() write with) quotes a value it cannot send as it is and
    # writes "," ";" and non-ASCII as octal escapes, '"' and "\" as \" and \\.
    # Starlette and Sanic read them back; request.cookies gave the escapes.
    server = await run_server(cookie_routes())
    jar: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
    jar["msg"] = 'hello, world; "x" \\ é'
    sent = jar["msg"].coded_value
    assert sent == r'"hello\054 world\073 \"x\" \\ \351"'
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        r = await client.get("/me", headers={"Cookie": f"msg={sent}; plain=a\\054b"})
    # (Unquoted, a backslash is only a character: it escapes nothing.)
    assert r.json() == {"msg": 'hello, world; "x" \\ é', "plain": "a\\054b"}


async def test_cookies_of_one_name_are_all_read_by_getlist(run_server: StartServer) -> None:
    # A browser keeps a cookie per name, domain and path, and sends every one
    # that matches the request, the longer path first (RFC 6265 5.4): a
    # session set at / and another at /admin both go to /admin. Sanic's
    # request.cookies.getlist() gives them all; request.cookies had none.
    routes = Router()

    @routes.post("/login")
    async def login(request: Request) -> Response:
        response = text("in")
        response.set_cookie("sid", "root")
        response.set_cookie("sid", "admin", path="/admin")
        response.set_cookie("theme", "dark")
        return response

    @routes.get("/admin/page")
    async def page(request: Request) -> Response:
        cookies = request.cookies
        return json(
            {
                "first": cookies["sid"],
                "sid": cookies.getlist("sid"),
                "theme": cookies.getlist("theme"),
                "none": cookies.getlist("none"),
                "default": cookies.getlist("none", ["?"]),
            }
        )

    server = await run_server(routes)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        assert (await client.post("/login")).status_code == 200
        r = await client.get("/admin/page")
        assert r.request.headers["cookie"] == "sid=admin; sid=root; theme=dark"
        assert r.json() == {
            "first": "admin",
            "sid": ["admin", "root"],
            "theme": ["dark"],
            "none": [],
            "default": ["?"],
        }
