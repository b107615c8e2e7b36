"""Unit tests for wsserver.request: Headers, QueryArgs, Request."""

from __future__ import annotations

import types
from typing import Any

import pytest

from wsserver import Headers, Request
from wsserver.app.request import QueryArgs

from .conftest import StartServer


def make_request(target: str = "/", *headers: tuple[str, str], method: str = "GET") -> Request:
    """A Request for ``target`` with the given header pairs."""
    return Request(method, target, Headers(list(headers)), remote_address=("127.0.0.1", 5000))


def cookies_of(*values: str) -> dict[str, str]:
    """The cookies of a request carrying one Cookie header per value."""
    return make_request("/", *[("Cookie", v) for v in values]).cookies


# ---------------------------------------------------------------------- Headers


def test_headers_lookup_is_case_insensitive() -> None:
    headers = Headers([("Content-Type", "text/plain")])
    assert headers["content-type"] == "text/plain"
    assert headers["CONTENT-TYPE"] == "text/plain"
    assert headers.get("Content-type") == "text/plain"
    assert "cOnTeNt-TyPe" in headers
    assert "content-length" not in headers
    assert 42 not in headers


def test_headers_missing() -> None:
    headers = Headers()
    with pytest.raises(KeyError):
        headers["x"]
    assert headers.get("x") is None
    assert headers.get("x", "d") == "d"
    assert headers.getall("x") == []
    assert len(headers) == 0
    assert headers.raw_items() == []


def test_headers_multi_values() -> None:
    headers = Headers([("X-A", "1"), ("Host", "h"), ("x-a", "2"), ("X-A", "3")])
    assert headers["x-a"] == "1"
    assert headers.getall("X-a") == ["1", "2", "3"]
    assert len(headers) == 2
    assert sorted(headers) == ["host", "x-a"]
    assert headers.raw_items() == [("X-A", "1"), ("Host", "h"), ("x-a", "2"), ("X-A", "3")]


def test_headers_getall_and_raw_items_are_copies() -> None:
    headers = Headers([("A", "1")])
    headers.getall("a").append("evil")
    headers.raw_items().append(("B", "2"))
    assert headers.getall("a") == ["1"]
    assert headers.raw_items() == [("A", "1")]
    assert "b" not in headers


def test_headers_add() -> None:
    headers = Headers()
    headers.add("Set-Thing", "1")
    headers.add("set-thing", "2")
    assert headers.getall("SET-THING") == ["1", "2"]
    assert headers.raw_items() == [("Set-Thing", "1"), ("set-thing", "2")]


def test_headers_is_a_mapping() -> None:
    headers = Headers([("A", "1"), ("B", "2"), ("a", "3")])
    assert dict(headers) == {"a": "1", "b": "2"}
    assert headers == {"a": "1", "b": "2"}


def test_headers_take_a_mapping_or_headers_as_starlette_s_do() -> None:
    # (A dict, as Starlette's Headers and Sanic's take it, in a test that
    # builds a Request: it failed with "too many values to unpack". Another
    # Headers gives every pair, not each name's first value.)
    assert Headers({"Content-Type": "text/plain", "X-A": "1"}).raw_items() == [
        ("Content-Type", "text/plain"),
        ("X-A", "1"),
    ]
    both = Headers([("X-A", "1"), ("x-a", "2")])
    assert Headers(both).raw_items() == [("X-A", "1"), ("x-a", "2")]
    assert Headers(pair for pair in [("a", "1")]).getall("A") == ["1"]


def test_headers_repr_shows_items() -> None:
    assert "('A', '1')" in repr(Headers([("A", "1")]))


# -------------------------------------------------------------------- QueryArgs


def test_query_args_get_and_getlist() -> None:
    args = QueryArgs({"a": ["1", "2"], "b": [""]})
    assert args.get("a") == "1"
    assert args.getlist("a") == ["1", "2"]
    assert args["a"] == ["1", "2"]
    assert args.get("b") == ""
    assert args.get("missing") is None
    assert args.get("missing", "d") == "d"
    assert args.getlist("missing") == []


def test_sanic_and_multidict_calls_take_a_default() -> None:
    # request.args.getlist("t", []) and headers.getall("x", []) raised TypeError.
    args = QueryArgs({"a": ["1", "2"]})
    assert args.getlist("a", ["d"]) == ["1", "2"]
    assert args.getlist("missing", ["d"]) == ["d"]
    headers = Headers([("X-A", "1"), ("x-a", "2")])
    assert headers.getall("x-a", ["d"]) == ["1", "2"]
    assert headers.getall("missing", ["d"]) == ["d"] and headers.getall("missing") == []
    assert headers.getone("X-A") == "1" and headers.getone("missing", None) is None
    with pytest.raises(KeyError):
        headers.getone("missing")


def test_query_args_get_with_empty_list_gives_default() -> None:
    assert QueryArgs({"a": []}).get("a", "d") == "d"


def test_query_args_getlist_is_a_copy() -> None:
    args = QueryArgs({"a": ["1"]})
    args.getlist("a").append("2")
    assert args.getlist("a") == ["1"]


# ---------------------------------------------------------------------- Request


def test_request_basic_attributes() -> None:
    request = make_request("/chat?x=1", ("Host", "example.com:8000"))
    assert request.method == "GET"
    assert request.target == "/chat?x=1"
    assert request.path == "/chat"
    assert request.query_string == "x=1"
    assert request.http_version == "1.1"
    assert request.remote_address == ("127.0.0.1", 5000)
    assert request.match_info == {}
    assert request.host == "example.com:8000"
    assert "/chat?x=1" in repr(request)


def test_request_path_is_unquoted() -> None:
    request = make_request("/chat/h%C3%A9llo%20world%2Fx?q=%20")
    assert request.path == "/chat/héllo world/x"
    assert request.query_string == "q=%20"


def test_request_plus_in_path_is_not_a_space() -> None:
    assert make_request("/a+b").path == "/a+b"


def test_request_without_query() -> None:
    request = make_request("/ws")
    assert request.query_string == ""
    assert request.args == {}
    assert request.args.get("x") is None


def test_request_query_parsing() -> None:
    request = make_request("/ws?a=1&b=two%20words&a=3&c=&d&e=x+y&f=%26")
    assert request.args.getlist("a") == ["1", "3"]
    assert request.args.get("a") == "1"
    assert request.args.get("b") == "two words"
    assert request.args.get("c") == ""
    assert request.args.get("d") == ""
    assert request.args.get("e") == "x y"
    assert request.args.get("f") == "&"
    assert request.args["a"] == ["1", "3"]


def test_request_query_blank_values_kept() -> None:
    request = make_request("/ws?token=&token=abc")
    assert request.args.getlist("token") == ["", "abc"]
    assert "token" in request.args


def test_request_host_absent_is_empty() -> None:
    assert make_request("/").host == ""


def test_request_host_case_insensitive_header_name() -> None:
    assert make_request("/", ("HOST", "h.example")).host == "h.example"


def test_request_ctx_is_a_fresh_namespace() -> None:
    first, second = make_request("/"), make_request("/")
    assert isinstance(first.ctx, types.SimpleNamespace)
    first.ctx.user = "bob"
    assert first.ctx.user == "bob"
    assert not hasattr(second.ctx, "user")


def test_request_has_no_arbitrary_attributes() -> None:
    with pytest.raises(AttributeError):
        make_request("/").user = "bob"  # type: ignore[attr-defined]


# ---------------------------------------------------------------------- cookies


def test_no_cookies() -> None:
    assert make_request("/").cookies == {}


def test_cookies_single_header() -> None:
    assert cookies_of("session=abc123; theme=dark") == {"session": "abc123", "theme": "dark"}


def test_cookies_quoted_value() -> None:
    assert cookies_of('greeting="hello world"') == {"greeting": "hello world"}


def test_cookies_several_headers() -> None:
    assert cookies_of("a=1", "b=2; c=3") == {"a": "1", "b": "2", "c": "3"}


def test_cookies_header_name_case_insensitive() -> None:
    request = make_request("/", ("cookie", "a=1"), ("COOKIE", "b=2"))
    assert request.cookies == {"a": "1", "b": "2"}


def test_cookies_malformed_header_skipped_others_kept() -> None:
    assert cookies_of("a=1", "garbage", "b=2") == {"a": "1", "b": "2"}


def test_cookies_malformed_cookie_skipped_within_header() -> None:
    # One malformed cookie must not discard its well-formed neighbours.
    assert cookies_of("a=1; garbage; b=2") == {"a": "1", "b": "2"}


def test_cookies_are_cached() -> None:
    request = make_request("/", ("Cookie", "a=1"))
    assert request.cookies is request.cookies


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # Cookie names that are Set-Cookie attribute names are ordinary names here.
        ("session=abc; version=2", {"session": "abc", "version": "2"}),
        ("path=/home; session=abc", {"path": "/home", "session": "abc"}),
        # A value with characters SimpleCookie dislikes must not lose its neighbours.
        ('prefs={"k":1}; b=2', {"b": "2"}),
    ],
)
def test_cookies_real_world_headers(header: str, expected: dict[str, str]) -> None:
    cookies = cookies_of(header)
    for name, value in expected.items():
        assert cookies.get(name) == value, (name, cookies)


async def test_a_sanic_requests_attributes_say_what_to_write_instead(
    run_server: StartServer,
) -> None:
    # A handler ported from Sanic that reads request.app.ctx.db, request.ip,
    # request.token or request.id got a bare "'Request' object has no
    # attribute ...": the error names what gives it here now (hasattr() still
    # says False, other names are as before).
    import httpx

    from wsserver import Router
    from wsserver.response import json

    routes = Router()
    asked = {
        "app": "request.server.ctx",
        "ip": "request.remote_address",
        "token": "authorization",
        "content_type": "content-type",
        "id": "request.ctx",
        "url_for": "url_for",
        "query_args": "request.args",
        "respond": "stream(",
        "uri_template": "request.route.uri",
        "version": "request.http_version",
        "receive_body": "request.stream.read()",
        "socket": "request.remote_address",
    }

    @routes.get("/")
    async def handler(request: Request) -> Any:
        said = {}
        for name in [*asked, "nothing"]:
            try:
                getattr(request, name)
            except AttributeError as exc:
                said[name] = str(exc)
        return json({"said": said, "has_app": hasattr(request, "app")})

    server = await run_server(routes)
    async with httpx.AsyncClient() as client:
        answer = (await client.get(f"http://127.0.0.1:{server.port}/")).json()
    assert answer["has_app"] is False
    for name, hint in asked.items():
        assert hint in answer["said"][name] and "Sanic" in answer["said"][name], name
    assert answer["said"]["nothing"] == "'Request' object has no attribute 'nothing'"
