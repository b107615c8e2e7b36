"""Unit tests for wsserver.routing: patterns, conversion, slashes, hosts, url_for."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import uuid
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wsserver import Request, Route, Router, WebSocket, serve
from wsserver.app.response import text
from wsserver.app.routing import MAX_SPLIT_SEGMENT

from .conftest import StartServer
from .helpers import exchange, upgrade_request


async def chat(request: Any, ws: Any, **params: Any) -> None:
    """A handler; its behaviour is irrelevant to routing."""


async def other(request: Any, ws: Any, **params: Any) -> None:
    """A second handler."""


async def ok(request: Any, **params: Any) -> Any:
    """An HTTP handler."""
    return text("ok")


def router_with(uri: str, **kwargs: Any) -> Router:
    """A router with one route at ``uri`` (handler ``chat``)."""
    router = Router(strict_slashes=kwargs.pop("router_strict", False))
    router.add_websocket_route(chat, uri, **kwargs)
    return router


def params_of(router: Router, path: str, host: str = "") -> dict[str, Any] | None:
    """The parameters the router extracts from ``path``, or None when nothing matches."""
    found = router.match(path, host)
    return None if found is None else found[1]


# ---------------------------------------------------------------- static routes


def test_static_route_matches_exact_path() -> None:
    router = router_with("/chat")
    found = router.match("/chat")
    assert found is not None
    route, params = found
    assert isinstance(route, Route)
    assert route.handler is chat
    assert route.uri == "/chat"
    assert params == {}


@pytest.mark.parametrize("path", ["/cha", "/chatx", "/chat/x", "/x/chat", "", "/CHAT"])
def test_static_route_rejects_other_paths(path: str) -> None:
    assert router_with("/chat").match(path) is None


def test_root_route() -> None:
    router = router_with("/")
    assert params_of(router, "/") == {}
    assert router.match("/x") is None


def test_regex_metacharacters_in_static_part_are_literal() -> None:
    router = router_with("/a.b+c")
    assert params_of(router, "/a.b+c") == {}
    assert router.match("/axb+c") is None
    assert router.match("/a.bbc") is None


# ------------------------------------------------------------------ parameters


def test_str_param_matches_one_segment() -> None:
    router = router_with("/chat/<room_id>")
    assert params_of(router, "/chat/lobby") == {"room_id": "lobby"}
    assert params_of(router, "/chat/a b") == {"room_id": "a b"}
    assert router.match("/chat/a/b") is None
    assert router.match("/chat/") is None
    assert router.match("/chat") is None


def test_several_params() -> None:
    router = router_with("/u/<user>/r/<n:int>")
    assert params_of(router, "/u/bob/r/7") == {"user": "bob", "n": 7}


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/n/42", 42), ("/n/0", 0), ("/n/-3", -3), ("/n/007", 7)],
)
def test_int_param_converted(path: str, expected: int) -> None:
    params = params_of(router_with("/n/<n:int>"), path)
    assert params == {"n": expected}
    assert type(params["n"]) is int


@pytest.mark.parametrize(
    "path",
    ["/n/abc", "/n/1.5", "/n/", "/n/1a", "/n/+1", "/n/--1", "/n/1/2", "/n/\u0661\u0662"],
)  # (the last: Arabic-Indic digits, which int() takes: a second URL for /n/12)
def test_int_param_rejects_non_integers(path: str) -> None:
    assert router_with("/n/<n:int>").match(path) is None


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/x/1.5", 1.5), ("/x/-0.25", -0.25), ("/x/3", 3.0)],
)
def test_float_param_converted(path: str, expected: float) -> None:
    params = params_of(router_with("/x/<x:float>"), path)
    assert params == {"x": expected}
    assert type(params["x"]) is float


@pytest.mark.parametrize(
    "path",
    ["/x/abc", "/x/1.", "/x/.5", "/x/1e5", "/x/1.2.3", "/x/nan", "/x/\u0661.5", "/x/" + "9" * 400],
)  # (the last: beyond a float's range, which float() reads as an infinity)
def test_float_param_rejects_non_numbers(path: str) -> None:
    assert router_with("/x/<x:float>").match(path) is None


def test_uuid_param_converted() -> None:
    value = uuid.uuid4()
    router = router_with("/item/<id:uuid>")
    params = params_of(router, f"/item/{value}")
    assert params == {"id": value}
    assert isinstance(params["id"], uuid.UUID)
    # Upper case hex is accepted and converts to the same UUID.
    assert params_of(router, f"/item/{str(value).upper()}") == {"id": value}


@pytest.mark.parametrize(
    "segment",
    [
        "not-a-uuid",
        "12345678123456781234567812345678",  # no dashes
        "1234567-1234-1234-1234-123456789012",  # first group too short
        "g2345678-1234-1234-1234-123456789012",  # not hex
    ],
)
def test_uuid_param_rejects_non_uuids(segment: str) -> None:
    assert router_with("/item/<id:uuid>").match(f"/item/{segment}") is None


def test_path_param_takes_the_rest_including_slashes() -> None:
    router = router_with("/files/<rest:path>")
    assert params_of(router, "/files/a") == {"rest": "a"}
    assert params_of(router, "/files/a/b/c.txt") == {"rest": "a/b/c.txt"}
    assert router.match("/files/") is None
    assert router.match("/files") is None


async def test_path_param_takes_an_encoded_line_break_as_a_segment_does(
    run_server: StartServer,
) -> None:
    # "<rest:path>" is the rest of the path, whatever it holds: it was "."
    # without re.DOTALL, so a path with %0A (a line feed, decoded) matched
    # "<name>" and not "<rest:path>": a 404, and url_for() refused the value.
    routes = Router()

    @routes.get("/files/<rest:path>", name="files")
    async def files(request: Request, rest: str) -> Any:
        return text(repr(rest))

    @routes.get("/one/<name>", name="one")
    async def one(request: Request, name: str) -> Any:
        return text(repr(name))

    assert routes.url_for("files", rest="a\nb/c\n") == "/files/a%0Ab/c%0A"
    server = await run_server(routes)
    for path in ("/files/a%0Ab/c%0A", "/one/a%0Ab"):
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        answer = await exchange(server.port, request)
        assert answer.startswith(b"HTTP/1.1 200 "), (path, answer)
        assert answer.endswith(repr(unquote(path.split("/", 2)[2])).encode()), answer


def test_path_param_in_the_middle() -> None:
    router = router_with("/static/<rest:path>/raw", strict_slashes=True)
    assert params_of(router, "/static/a/b/raw") == {"rest": "a/b"}
    assert router.match("/static/raw") is None


def test_converted_params_are_passed_per_route() -> None:
    router = Router()
    router.add_websocket_route(chat, "/n/<v:int>")
    router.add_websocket_route(other, "/f/<v:float>")
    route, params = router.match("/n/5")  # type: ignore[misc]
    assert route.handler is chat and params == {"v": 5}
    route, params = router.match("/f/5")  # type: ignore[misc]
    assert route.handler is other and params == {"v": 5.0} and type(params["v"]) is float


# --------------------------------------------------------------- strict slashes


def test_non_strict_router_matches_both_slash_forms() -> None:
    router = router_with("/chat")
    assert params_of(router, "/chat") == {}
    assert params_of(router, "/chat/") == {}
    router = router_with("/chat/")
    assert params_of(router, "/chat") == {}
    assert params_of(router, "/chat/") == {}


def test_non_strict_with_trailing_param() -> None:
    router = router_with("/chat/<room>")
    assert params_of(router, "/chat/lobby/") == {"room": "lobby"}
    assert params_of(router, "/chat/lobby") == {"room": "lobby"}


async def test_non_strict_path_param_before_the_route_s_trailing_slash_leaves_it(
    run_server: StartServer,
) -> None:
    # "/browse/<dir:path>/" without strict slashes read "/browse/a/b/", the
    # route's own form, as dir="a/b/" (the path parameter took the route's
    # "/"), where the strict route reads "a/b"; so url_for() refused every
    # value ("a/b" read back as "a/b/"). The route's "/" is its own now.
    routes = Router()

    @routes.get("/browse/<dir:path>/", name="browse")
    async def browse(request: Request, dir: str) -> Any:
        return text(repr(dir))

    @routes.get("/at/<where:path>/", name="strict", strict_slashes=True)
    async def at(request: Request, where: str) -> Any:
        return text(repr(where))

    def get_params(router: Router, path: str) -> dict[str, Any]:
        return router.resolve(path, "", "GET", False).params

    assert get_params(routes, "/browse/a/b/") == {"dir": "a/b"}
    assert get_params(routes, "/browse/a/b") == {"dir": "a/b"}
    assert get_params(routes, "/browse/a//") == {"dir": "a/"}
    assert get_params(routes, "/at/a/b/") == {"where": "a/b"}
    assert routes.url_for("browse", dir="a/b") == "/browse/a/b/"
    assert routes.url_for("browse", dir="a/") == "/browse/a//"
    server = await run_server(routes)
    for path, answer in (("/browse/a/b/", "'a/b'"), ("/browse/x", "'x'"), ("/at/a/b/", "'a/b'")):
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        got = await exchange(server.port, request)
        assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(answer.encode()), (path, got)


def test_non_strict_allows_one_trailing_slash_only() -> None:
    router = router_with("/chat")
    assert router.match("/chat//") is None


def test_strict_router_requires_exact_form() -> None:
    router = router_with("/chat", router_strict=True)
    assert params_of(router, "/chat") == {}
    assert router.match("/chat/") is None
    router = router_with("/chat/", router_strict=True)
    assert params_of(router, "/chat/") == {}
    assert router.match("/chat") is None


def test_route_strict_slashes_overrides_router_default() -> None:
    router = router_with("/chat", strict_slashes=True)  # router default: False
    assert router.match("/chat/") is None
    assert params_of(router, "/chat") == {}
    router = router_with("/chat", router_strict=True, strict_slashes=False)
    assert params_of(router, "/chat/") == {}
    assert params_of(router, "/chat") == {}


def test_route_records_its_strict_slashes() -> None:
    strict = Router(strict_slashes=True)
    assert strict.add_websocket_route(chat, "/a").strict_slashes is True
    assert strict.add_websocket_route(chat, "/b", strict_slashes=False).strict_slashes is False
    assert Router().add_websocket_route(chat, "/c").strict_slashes is False


# ------------------------------------------------------------------- versioning


def test_version_prefixes_uri() -> None:
    router = Router()
    route = router.add_websocket_route(chat, "/chat", version=1)
    assert route.uri == "/v1/chat"
    assert params_of(router, "/v1/chat") == {}
    assert router.match("/chat") is None
    assert router.match("/v2/chat") is None


def test_version_string_and_custom_prefix() -> None:
    router = Router()
    route = router.add_websocket_route(chat, "/chat/<room>", version="2.1", version_prefix="/api/v")
    assert route.uri == "/api/v2.1/chat/<room>"
    assert params_of(router, "/api/v2.1/chat/x") == {"room": "x"}
    assert router.match("/v2.1/chat/x") is None


def test_version_on_root_route() -> None:
    router = Router()
    route = router.add_websocket_route(chat, "/", version=3)
    assert route.uri == "/v3"
    assert params_of(router, "/v3") == {}


def test_version_via_decorator() -> None:
    router = Router()

    @router.websocket("/ws", version=2, version_prefix="version")
    async def handler(request: Any, ws: Any) -> None:
        pass

    assert router.routes[0].uri == "/version2/ws"
    assert router.match("/version2/ws") is not None


async def test_a_version_written_as_sanic_takes_it_is_its_version(
    run_server: StartServer,
) -> None:
    # Sanic's version may be "v1" or "/1" as well as 1 (its documentation's
    # examples: "1", "v1", "v1.1"), all of them /v1: a ported app's
    # version="v1" was served at /vv1/..., every request to /v1/... a 404.
    routes = Router()
    written = {"v1": "/v1/a", "/2": "/v2/b", "v1.1": "/v1.1/c", 3.5: "/v3.5/d"}
    for n, version in enumerate(written):
        routes.add_route(ok, f"/{'abcd'[n]}", version=version, name=f"r{n}")
    routes.add_websocket_route(chat, "/ws", version="/v4/")
    assert [route.uri for route in routes.routes] == [*written.values(), "/v4/ws"]
    with pytest.raises(ValueError, match="names no version"):
        routes.add_route(ok, "/e", version="v")
    server = await run_server(routes)
    for path in written.values():
        answer = await exchange(
            server.port, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode()
        )
        assert answer.startswith(b"HTTP/1.1 200 "), (path, answer)


# ------------------------------------------------------------------------ hosts


def test_route_without_host_accepts_any_host() -> None:
    router = router_with("/ws")
    assert router.match("/ws", "anything.example:1234") is not None
    assert router.match("/ws", "") is not None


@pytest.mark.parametrize(
    "host_header", ["example.com", "example.com:8080", "EXAMPLE.com", "Example.COM:443"]
)
def test_host_restriction_accepts_host_with_or_without_port(host_header: str) -> None:
    router = router_with("/ws", host="Example.com")
    assert router.match("/ws", host_header) is not None


@pytest.mark.parametrize("host_header", ["other.com", "example.com.evil", "", "sub.example.com"])
def test_host_restriction_rejects_other_hosts(host_header: str) -> None:
    router = router_with("/ws", host="example.com")
    assert router.match("/ws", host_header) is None


def test_host_list() -> None:
    router = router_with("/ws", host=["a.example", "B.example"])
    assert router.match("/ws", "a.example") is not None
    assert router.match("/ws", "b.example:9000") is not None
    assert router.match("/ws", "c.example") is None


def test_host_with_port_in_route_requires_that_port() -> None:
    router = router_with("/ws", host="example.com:8080")
    assert router.match("/ws", "example.com:8080") is not None
    assert router.match("/ws", "example.com:9090") is None
    assert router.match("/ws", "example.com") is None


@pytest.mark.parametrize(
    ("route_host", "host_header", "scheme"),
    [
        # A browser leaves out the scheme's default port (RFC 9110 4.2.1,
        # 7.2): it sends "example.com" for http://example.com:80/.
        ("example.com:80", "example.com", "http"),
        ("example.com:443", "example.com", "https"),
        ("[::1]:443", "[::1]", "https"),
        # A fully qualified name's trailing dot names the same host.
        ("example.com", "example.com.", "http"),
        ("example.com", "EXAMPLE.com.:8080", "http"),
        ("example.com:8080", "example.com.:8080", "http"),
        ("example.com.", "example.com", "http"),
        ("example.com.:443", "example.com.", "https"),
    ],
)
def test_a_host_with_the_default_port_or_a_trailing_dot_is_the_same_host(
    route_host: str, host_header: str, scheme: str
) -> None:
    router = router_with("/ws", host=route_host)
    assert router.match("/ws", host_header, scheme) is not None
    assert router.resolve("/ws", host_header, "GET", True, scheme).route is not None


@pytest.mark.parametrize(
    ("route_host", "host_header", "scheme"),
    [
        ("example.com:80", "example.com", "https"),  # (https's default is 443)
        ("example.com:443", "example.com", "http"),
        ("example.com:8080", "example.com", "http"),
        ("example.com", "example.com..", "http"),
        ("example.com", "example.co.m", "http"),
    ],
)
def test_a_default_port_is_the_scheme_s_own(route_host: str, host_header: str, scheme: str) -> None:
    router = router_with("/ws", host=route_host)
    assert router.match("/ws", host_header, scheme) is None


@pytest.mark.parametrize(
    ("host", "said"),
    [
        # Each was taken, and the route answered no request at all (404):
        # a Host is host[:port] as clients send it (RFC 9112 3.2, RFC 3986
        # 3.2.2), and one that is not gets a 400 before any route is tried.
        ("::1", "an IPv6 address goes in brackets: '[::1]'"),
        ("2001:db8::1", "an IPv6 address goes in brackets: '[2001:db8::1]'"),
        ("http://example.com", "no scheme, path, query or fragment"),
        ("example.com/", "no scheme, path, query or fragment"),
        ("*.example.com", "no wildcard"),
        ("bücher.example", "punycode"),
        ("example.com:http", "it is no host[:port]"),
        # (Taken for any port: a port left out after its colon.)
        ("example.com:", "a port after the colon, or no colon"),
        ("[::1]:", "a port after the colon, or no colon"),
        ("example .com", "it is no host[:port]"),
    ],
)
def test_a_host_that_no_request_can_have_is_refused(host: str, said: str) -> None:
    router = Router()
    with pytest.raises(ValueError, match=re.escape(said)):
        router.add_websocket_route(chat, "/ws", host=host)
    with pytest.raises(ValueError, match=re.escape(repr(host))):
        router.add_route(ok, "/", host=["a.example", host])
    assert router.routes == []


@pytest.mark.parametrize(
    "host", ["[::1]", "[::1]:8000", "127.0.0.1:8000", "Example.COM", "xn--bcher-kva.example", ""]
)
def test_a_host_a_request_can_have_is_taken(host: str) -> None:
    router = router_with("/ws", host=host)
    assert router.match("/ws", host.lower()) is not None


async def test_an_ipv6_host_route_answers_over_a_socket(run_server: StartServer) -> None:
    routes = Router()
    routes.add_websocket_route(chat, "/ws", host="[::1]")
    server = await run_server(routes)
    request = upgrade_request("/ws").replace(b"Host: 127.0.0.1", b"Host: [::1]:8000")
    answer = await exchange(server.port, request, wait=0.5)
    assert answer.startswith(b"HTTP/1.1 101 "), answer


def test_host_routes_fall_through_to_next_route() -> None:
    router = Router()
    router.add_websocket_route(chat, "/ws", host="a.example")
    router.add_websocket_route(other, "/ws")
    assert router.match("/ws", "a.example")[0].handler is chat  # type: ignore[index]
    assert router.match("/ws", "b.example")[0].handler is other  # type: ignore[index]


# ------------------------------------------------------------------- route order


def test_first_added_route_wins() -> None:
    # (A route that one before takes each path of is refused:
    # test_a_route_a_parameterised_route_before_takes_every_path_of_is_refused.)
    router = Router()
    router.add_websocket_route(chat, "/items/<name>")
    router.add_websocket_route(other, "/<kind>/special")
    route, params = router.match("/items/special")  # type: ignore[misc]
    assert route.handler is chat
    assert params == {"name": "special"}


def test_later_route_used_when_earlier_type_does_not_fit() -> None:
    router = Router()
    router.add_websocket_route(chat, "/items/<n:int>")
    router.add_websocket_route(other, "/items/<name>")
    assert router.match("/items/12")[0].handler is chat  # type: ignore[index]
    route, params = router.match("/items/abc")  # type: ignore[misc]
    assert route.handler is other and params == {"name": "abc"}


def test_decorator_returns_handler_and_registers_in_order() -> None:
    router = Router()

    @router.websocket("/b")
    @router.websocket("/a")
    async def handler(request: Any, ws: Any) -> None:
        pass

    assert callable(handler) and handler.__name__ == "handler"
    assert [r.uri for r in router.routes] == ["/a", "/b"]
    assert all(r.handler is handler for r in router.routes)


def test_route_subprotocols_kept_in_order() -> None:
    router = Router()
    route = router.add_websocket_route(chat, "/ws", subprotocols=["b", "a"])
    assert route.subprotocols == ("b", "a")
    assert router.add_websocket_route(chat, "/x").subprotocols == ()


# ------------------------------------------------------------------------ url_for


def test_url_for_static_and_default_name() -> None:
    router = Router()
    router.add_websocket_route(chat, "/chat")
    assert router.url_for("chat") == "/chat"


def test_url_for_explicit_name_and_params() -> None:
    router = Router()
    router.add_websocket_route(chat, "/u/<user>/r/<n:int>", name="room")
    assert router.url_for("room", user="bob", n=7) == "/u/bob/r/7"


def test_url_for_quotes_params() -> None:
    router = Router()
    router.add_websocket_route(chat, "/chat/<room>", name="room")
    router.add_websocket_route(chat, "/files/<rest:path>", name="files")
    assert router.url_for("room", room="a b") == "/chat/a%20b"
    assert router.url_for("room", room="é?#&") == "/chat/%C3%A9%3F%23%26"
    # A path parameter keeps its slashes.
    assert router.url_for("files", rest="a/b c/d") == "/files/a/b%20c/d"


def test_url_for_round_trips_through_match() -> None:
    from urllib.parse import unquote

    router = Router()
    router.add_websocket_route(chat, "/chat/<room>/<n:int>/<x:float>/<id:uuid>", name="r")
    value = uuid.uuid4()
    url = router.url_for("r", room="h é", n=-4, x=2.5, id=value)
    assert params_of(router, unquote(url)) == {"room": "h é", "n": -4, "x": 2.5, "id": value}


@pytest.mark.parametrize(
    ("path", "value"),
    [("/x/0.0000001", 1e-07), ("/x/100000000000000000000", 1e20), ("/x/-0.00012", -0.00012)],
)
def test_url_for_writes_a_float_as_the_route_reads_it(path: str, value: float) -> None:
    # str() writes 1e-07 and 1e+20, which <x:float> does not match: a float
    # the route had given its handler was a ValueError from url_for().
    router = Router()
    router.add_websocket_route(chat, "/x/<x:float>", name="x")
    assert params_of(router, path) == {"x": value}
    assert router.url_for("x", x=value) == path
    assert router.url_for("x", x=1.5e300).startswith("/x/15000")
    with pytest.raises(ValueError):
        router.url_for("x", x=float("inf"))


def test_url_for_writes_a_float_subclass_by_its_value() -> None:
    # A float subclass whose repr() is its type's (numpy.float64 under numpy
    # 2: "np.float64(1.5)"), which str() wrote as 1.5, was a
    # decimal.InvalidOperation once url_for() read repr() as digits.
    class Float64(float):
        def __repr__(self) -> str:
            return f"Float64({float(self)})"

    router = Router()
    router.add_websocket_route(chat, "/x/<x:float>", name="x")
    assert router.url_for("x", x=Float64(1.5)) == "/x/1.5"
    assert router.url_for("x", x=Float64(1e-07)) == "/x/0.0000001"


async def test_url_for_encodes_the_routes_own_text_as_its_params(
    run_server: StartServer,
) -> None:
    # The route's own text went out as written: "/café/..." (no URI, and a
    # request line h11 refuses: 400), a space, and a "%41" or "?" that a
    # client sends as they are, read back as "A" or as the query: a 404.
    routes = Router()
    uris = ["/café/<name>", "/my files/<n:int>", "/x%41y/<rest:path>", "/what?/now", "/ok:1,2@x"]
    for n, uri in enumerate(uris):

        @routes.get(uri, name=f"r{n}")
        async def handler(request: Request, **params: Any) -> Any:
            return text(f"{request.route.uri} {sorted(params.items())}")

    assert routes.url_for("r0", name="é") == "/caf%C3%A9/%C3%A9"
    assert routes.url_for("r1", n=2, q="a b") == "/my%20files/2?q=a+b"
    assert routes.url_for("r2", rest="a/b") == "/x%2541y/a/b"
    assert routes.url_for("r3") == "/what%3F/now"
    assert routes.url_for("r4") == "/ok:1,2@x"  # (what a path may hold stays)
    server = await run_server(routes)
    for n, params, uri, got in (
        (0, {"name": "é"}, uris[0], [("name", "é")]),
        (1, {"n": 2}, uris[1], [("n", 2)]),
        (2, {"rest": "a/b"}, uris[2], [("rest", "a/b")]),
        (3, {}, uris[3], []),
        (4, {}, uris[4], []),
    ):
        url = routes.url_for(f"r{n}", **params)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % url.encode())
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200 "), (url, answer)
        assert answer.endswith(f"\r\n\r\n{uri} {got}".encode()), (url, answer)


def test_url_for_extra_params_become_query_string() -> None:
    router = Router()
    router.add_websocket_route(chat, "/chat/<room>", name="room")
    assert router.url_for("room", room="x", token="a b", page=2) == "/chat/x?token=a+b&page=2"
    assert router.url_for("room", room="x", tag=["a", "b"]) == "/chat/x?tag=a&tag=b"
    # None is no value: left out (as Flask's url_for leaves it), not written "None".
    assert router.url_for("room", room="x", page=None) == "/chat/x"
    assert router.url_for("room", room="x", page=None, q="") == "/chat/x?q="
    assert router.url_for("room", room="x", tag=["a", None, "b"]) == "/chat/x?tag=a&tag=b"


async def test_url_for_takes_sanics_and_flasks_anchor_and_refuses_their_url_options(
    run_server: StartServer,
) -> None:
    # Sanic's url_for (and Flask's) read _anchor, _external, _scheme, _server
    # and _method themselves; here they went into the query string as any
    # other argument ("/docs/intro?_external=True"): a ported app's links
    # silently changed. _anchor is the fragment now; the others, which ask
    # for a URL (or choose among routes of one name), are refused, saying
    # what to write instead.
    routes = Router()

    @routes.get("/docs/<page>", name="docs")
    async def docs(request: Request, page: str) -> Any:
        return text(f"{page} {request.query_string!r}")

    path = routes.url_for("docs", page="intro", _anchor="see also", q=1)
    assert path == "/docs/intro?q=1#see%20also"
    assert routes.url_for("docs", page="intro", _anchor=None) == "/docs/intro"
    assert routes.url_for("docs", page="intro", _anchor="") == "/docs/intro"
    for option, value in (
        ("_external", True),
        ("_scheme", "https"),
        ("_server", "example.org"),
        ("_method", "GET"),
    ):
        with pytest.raises(TypeError, match=rf"{option}.*request\.scheme"):
            routes.url_for("docs", page="intro", **{option: value})
    # A path parameter of that name is the route's own, as any other.
    routes.add_route(ok, "/by/<_method>", name="by")
    assert routes.url_for("by", _method="x") == "/by/x"
    server = await run_server(routes)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        answer = await client.get(path)  # (the client keeps the fragment to itself)
    assert answer.status_code == 200
    assert answer.text == "intro 'q=1'"


def test_url_for_takes_sanics_and_flasks_url_options_that_ask_for_none() -> None:
    # (Review R2 of 680a247.) _external=False (a flag a ported app passes on,
    # as url_for(..., _external=absolute)), _scheme or _server None: Sanic's
    # and Flask's defaults, their path; they were refused as asking for a URL.
    routes = Router()
    routes.add_route(ok, "/docs/<page>", name="docs")
    for option, value in (("_external", False), ("_scheme", None), ("_server", None)):
        assert routes.url_for("docs", page="intro", **{option: value}) == "/docs/intro"
    assert routes.url_for("docs", page="a", _external=False, _method=None, q=1) == "/docs/a?q=1"
    with pytest.raises(TypeError, match="_scheme"):
        routes.url_for("docs", page="intro", _external=False, _scheme="https")


def test_url_for_param_called_name() -> None:
    # "name" is a legal parameter name, so url_for must be able to fill it
    # (and to put an extra "name" argument in the query string).
    router = Router()
    router.add_websocket_route(chat, "/users/<name>", name="user")
    router.add_websocket_route(other, "/search", name="search")
    assert router.url_for("user", name="bob") == "/users/bob"
    assert router.url_for("search", name="bob") == "/search?name=bob"


def test_url_for_missing_param_raises_value_error() -> None:
    router = Router()
    router.add_websocket_route(chat, "/u/<user>/r/<n:int>", name="room")
    with pytest.raises(ValueError, match="n"):
        router.url_for("room", user="bob")


@pytest.mark.parametrize(
    ("uri", "params"),
    [
        ("/n/<n:int>", {"n": "abc"}),
        ("/n/<n:int>", {"n": 1.5}),
        ("/x/<x:float>", {"x": "fast"}),
        ("/i/<id:uuid>", {"id": "nope"}),
        ("/s/<room>", {"room": "a/b"}),  # a segment cannot hold a slash
        ("/s/<room>", {"room": ""}),
    ],
)
def test_url_for_wrong_type_raises_value_error(uri: str, params: dict[str, Any]) -> None:
    router = Router()
    router.add_websocket_route(chat, uri, name="r")
    with pytest.raises(ValueError):
        router.url_for("r", **params)


@pytest.mark.parametrize(
    ("uri", "params"),
    [
        # The path that url_for() wrote matched, but read back other values:
        # "/s/x%2F" is "/s/x/", the route's "x" and its trailing slash.
        ("/s/<room>", {"room": "x/"}),
        # Two in a segment split where the route splits them, not where given:
        # "/f/a.b.c" is name "a.b" and ext "c".
        ("/f/<name>.<ext>", {"name": "a", "ext": "b.c"}),
        ("/f/<name>.<ext>", {"name": "a", "ext": ".c"}),
    ],
)
def test_url_for_refuses_a_path_that_the_route_reads_as_other_values(
    uri: str, params: dict[str, Any]
) -> None:
    router = Router()
    router.add_websocket_route(chat, uri, name="r")
    with pytest.raises(ValueError, match="do not fit"):
        router.url_for("r", **params)


def test_url_for_writes_what_the_route_reads_back() -> None:
    router = Router()
    router.add_websocket_route(chat, "/f/<name>.<ext>", name="r")
    assert router.url_for("r", name="archive.tar", ext="gz") == "/f/archive.tar.gz"
    assert params_of(router, "/f/archive.tar.gz") == {"name": "archive.tar", "ext": "gz"}


@pytest.mark.parametrize(
    ("uri", "params"),
    [
        ("/s/<room>", {"room": ".."}),
        ("/s/<room>", {"room": "."}),
        ("/s/<room>/log", {"room": ".."}),
        ("/p/<rest:path>", {"rest": "a/../b"}),
        ("/p/<rest:path>", {"rest": "./a"}),
        ("/p/<rest:path>", {"rest": "a/.."}),
        ("/f/.<ext>", {"ext": "."}),  # (the route's dot and the value's)
    ],
)
def test_url_for_refuses_a_dot_segment(uri: str, params: dict[str, Any]) -> None:
    # (From a review.) "/s/.." matches room "..", but no client sends it:
    # RFC 3986 5.2.4 has it removed first (httpx, browsers, urljoin()), and
    # "/s/.." is asked for as "/", "/s/." as "/s": the handler never gets
    # the value, and what is asked for is another path.
    router = Router()
    router.add_websocket_route(chat, uri, name="r")
    with pytest.raises(ValueError, match="dot segment"):
        router.url_for("r", **params)


def test_url_for_writes_dots_that_are_no_segment() -> None:
    router = Router()
    router.add_websocket_route(chat, "/s/<room>", name="s")
    router.add_websocket_route(chat, "/p/<rest:path>", name="p")
    assert router.url_for("s", room="...") == "/s/..."
    assert router.url_for("s", room=".hidden") == "/s/.hidden"
    assert router.url_for("p", rest="a/.well-known/b..") == "/p/a/.well-known/b.."


def test_url_for_never_writes_a_path_that_names_another_host(tmp_path: Any) -> None:
    # (From a review.) A path parameter at the start of a route (static
    # files at "/") given "/evil.example/x" was written "//evil.example/x":
    # a network-path reference (RFC 3986 4.2), which a browser given it as a
    # link or a redirect's Location takes for the host evil.example. Its
    # second "/" is written %2F, which the route reads back the same.
    (tmp_path / "index.html").write_text("x")
    router = Router()
    router.static("/", tmp_path, name="files")
    router.add_websocket_route(chat, "/<rest:path>", name="any")
    for url in (
        router.url_for("files", path="/evil.example/x"),
        router.url_for("any", rest="//evil.example/x"),
    ):
        assert url.startswith("/%2F") and not url.startswith("//"), url
    assert params_of(router, unquote(router.url_for("any", rest="//e.example/x"))) == {
        "rest": "//e.example/x"
    }
    found = router.resolve(unquote(router.url_for("files", path="/e.example/x")), "", "GET", False)
    assert found.route is not None and found.params == {"path": "/e.example/x"}


def test_url_for_unknown_name_raises_key_error() -> None:
    router = Router()
    router.add_websocket_route(chat, "/chat")
    with pytest.raises(KeyError):
        router.url_for("nope")


def test_explicit_duplicate_name_raises_value_error() -> None:
    router = Router()
    router.add_websocket_route(chat, "/a", name="same")
    with pytest.raises(ValueError, match="same"):
        router.add_websocket_route(other, "/b", name="same")
    # The failed registration added nothing.
    assert [r.uri for r in router.routes] == ["/a"]
    assert router.url_for("same") == "/a"


def test_explicit_name_may_not_reuse_an_implicit_name() -> None:
    router = Router()
    router.add_websocket_route(chat, "/a")  # implicitly named "chat"
    with pytest.raises(ValueError):
        router.add_websocket_route(other, "/b", name="chat")


def test_stacked_decorators_keep_handler_and_first_name() -> None:
    router = Router()

    @router.websocket("/second")
    @router.websocket("/first")
    async def echo(request: Any, ws: Any) -> None:
        pass

    assert len(router.routes) == 2
    assert all(route.name == "echo" for route in router.routes)
    assert router.url_for("echo") == "/first"
    assert router.match("/second")[0].handler is echo  # type: ignore[index]


def test_url_for_with_version_and_trailing_slash() -> None:
    router = Router()
    router.add_websocket_route(chat, "/chat/<room>/", name="r", version=1, strict_slashes=True)
    assert router.url_for("r", room="x") == "/v1/chat/x/"


# ------------------------------------------------------------------ invalid URIs


@pytest.mark.parametrize("uri", ["chat", "", "ws://host/chat", "<room>"])
def test_uri_must_start_with_slash(uri: str) -> None:
    with pytest.raises(ValueError):
        Router().add_websocket_route(chat, uri)


def test_unknown_param_type_raises() -> None:
    with pytest.raises(ValueError, match="bool"):
        Router().add_websocket_route(chat, "/x/<flag:bool>")


@pytest.mark.parametrize(
    ("uri", "said"),
    [
        # Flask's and Werkzeug's order, <converter:name>: "unknown parameter
        # type 'id'" sent the reader looking for a type named id.
        ("/items/<int:id>", "written <name:type> here: '<id:int>'"),
        ("/f/<path:rest>", "written <name:type> here: '<rest:path>'"),
        ("/u/<string:name>", "'<name>'"),
        # Flask's names as Flask apps write them (an underscore, a capital).
        ("/items/<int:item_id>", "written <name:type> here: '<item_id:int>'"),
        ("/users/<uuid:userId>", "written <name:type> here: '<userId:uuid>'"),
        # Sanic's types that have none here.
        ("/a/<tag:slug>", "str, int, float, uuid, path"),
        ("/a/<day:ymd>", "'<day>' and check it in the handler"),
        # Sanic's regex parameter: "malformed parameter" said no more.
        ("/a/<code:[a-z]{3}>", "no regex parameters here: '<code>'"),
        ("/a/<code:^[0-9]+$>", "'<code>'"),
    ],
)
def test_a_parameter_of_flask_s_order_or_sanic_s_types_is_refused_saying_what_is_written_here(
    uri: str, said: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        Router().add_route(ok, uri)


def test_duplicate_param_name_raises() -> None:
    with pytest.raises(ValueError, match="room"):
        Router().add_websocket_route(chat, "/<room>/<room>")


@pytest.mark.parametrize(
    ("uri", "said"),
    [
        ("/items/{item_id}", "'<item_id>'"),
        ("/items/{id:int}", "'<id:int>'"),
        ("/x/{x:float}/y", "'<x:float>'"),
        ("/u/{id:uuid}", "'<id:uuid>'"),
        ("/files/{rest:path}", "'<rest:path>'"),
        ("/files/{name}.json", "'<name>'"),
        ("/a/{name:[a-z]+}", "'<name>' (no regex"),
        # aiohttp's regex with a repetition count: braces within the braces.
        ("/a/{code:\\d{3}}", "'<code>' (no regex"),
        ("/a/{code:[a-z]{2,4}}/b", "'<code>' (no regex"),
    ],
)
def test_a_starlette_or_aiohttp_parameter_is_refused_saying_how_it_is_written_here(
    uri: str, said: str
) -> None:
    # Starlette's, FastAPI's and aiohttp's "{item_id}" was taken as the literal
    # text "{item_id}": every request to /items/7 a 404 (an aiohttp handler,
    # which reads request.match_info, takes no parameter to be refused for).
    async def item(request: Any) -> Any:
        return text(request.match_info["item_id"])

    routes, api = Router(), Router()
    api.add_route(ok, "/")
    for add in (
        lambda: routes.add_route(item, uri),
        lambda: routes.add_websocket_route(chat, uri),
        lambda: routes.include(api, uri),  # (as a prefix)
    ):
        with pytest.raises(ValueError, match=re.escape(said)):
            add()
    assert routes.routes == []
    # Braces that are no parameter's stay text, as before ("%7B%7D" asks for them).
    routes.add_route(ok, "/a/{}/{1}", name="braces")
    assert routes.resolve("/a/{}/{1}", "", "GET", False).route is routes.routes[0]


@pytest.mark.parametrize("uri", ["/x/<n:Int>", "/x/<n:>", "/x/<n:int"])
def test_malformed_param_raises(uri: str) -> None:
    # A pattern that looks like a parameter but is not one must not silently
    # become a literal path segment that no real request can match.
    with pytest.raises(ValueError):
        Router().add_websocket_route(chat, uri)


def test_invalid_route_is_not_registered() -> None:
    router = Router()
    with pytest.raises(ValueError):
        router.add_websocket_route(chat, "/x/<flag:bool>")
    assert router.routes == []
    with pytest.raises(KeyError, match="no route is named 'chat'"):
        router.url_for("chat")


def test_decorator_raises_immediately_for_invalid_uri() -> None:
    router = Router()
    with pytest.raises(ValueError):

        @router.websocket("no-slash")
        async def handler(request: Any, ws: Any) -> None:
            pass


# ------------------------------------------------ mistakes caught when added


@pytest.mark.parametrize(
    ("add", "said"),
    [
        # A lone str was taken for its characters: subprotocols="v1" accepted
        # clients offering "v" or "1", methods="GET" answered G, E and T.
        (lambda r: r.add_websocket_route(chat, "/", subprotocols="v1"), "not one str: ['v1']"),
        (lambda r: r.add_route(ok, "/", methods="GET"), "not one str: ['GET']"),
        (lambda r: r.add_websocket_route(chat, "/", origins="https://a.example"), "origins"),
        (lambda r: r.add_websocket_route(chat, "/", subprotocols=["chat", 5]), "5 is a int"),
        (lambda r: r.add_route(ok, "/", host=5), "host takes a list of str, not int"),
        (lambda r: r.add_route(ok, "/", host=["a.example", b"b"]), "b'b' is a bytes"),
    ],
)
def test_a_list_option_given_something_else_is_refused(add: Any, said: str) -> None:
    router = Router()
    with pytest.raises(TypeError, match=re.escape(said)):
        add(router)
    assert router.routes == []


@pytest.mark.parametrize("name", ["chat/v1", "chat v1", "é", "", "x\r\nSet-Cookie: a=b"])
def test_a_subprotocol_that_is_no_token_is_refused(name: str) -> None:
    # A client offers tokens only (RFC 6455 4.1, 11.3.4; any other offer is
    # a 400): such a subprotocol was never chosen, and with
    # require_subprotocol every client was refused (the 400 naming it; with
    # CR LF, no answer at all, and a traceback for each handshake).
    router = Router()
    with pytest.raises(ValueError, match=re.escape(f"subprotocols: {name!r} is no token")):
        router.add_websocket_route(chat, "/", subprotocols=["chat", name])
    with pytest.raises(ValueError, match="is no token"):
        router.add_websocket_route(chat, "/", subprotocols=[name], require_subprotocol=True)
    assert router.routes == []


@pytest.mark.parametrize(
    ("methods", "said"),
    [
        # A route of no method, or of one no request line can carry, was
        # taken and never answered (every request to it got 405 or 404).
        ([], "methods: none given"),
        (["GET", "GE T"], "methods: 'GE T' is no token"),
        ([""], "methods: '' is no token"),
        (["PO\r\nST"], "is no token"),
    ],
)
def test_a_route_of_no_method_or_of_one_that_is_no_token_is_refused(
    methods: list[str], said: str
) -> None:
    router = Router()
    with pytest.raises(ValueError, match=re.escape(said)):
        router.add_route(ok, "/", methods=methods)
    assert router.routes == []
    router.add_route(ok, "/", methods=["get", "M-SEARCH", "PURGE"])  # (any token: case folded)
    assert router.routes[0].methods == {"GET", "HEAD", "M-SEARCH", "PURGE"}


def test_a_route_for_no_host_is_refused(tmp_path: Any) -> None:
    # host=[] (an empty list of hosts, a setting's, say) was taken, and the
    # route answered no request at all (404), where methods=[] is refused:
    # None is the route for every host.
    router = Router()
    said = "host: none given (a route for no host is never reached; None is every host)"
    with pytest.raises(ValueError, match=re.escape(said)):
        router.add_websocket_route(chat, "/ws", host=[])
    with pytest.raises(ValueError, match=re.escape(said)):
        router.add_route(ok, "/", host=())
    with pytest.raises(ValueError, match=re.escape(said)):
        router.static("/static", tmp_path, host=iter(()))
    assert router.routes == []
    router.add_route(ok, "/", host=None)
    assert router.resolve("/", "any.example", "GET", False).route is router.routes[0]


@pytest.mark.parametrize(
    ("hook", "said"),
    [
        # websockets' process_request(connection, request): every handshake
        # got a 500 and a traceback.
        (lambda connection, request: None, "missing a required argument: 'request'"),
        (lambda: None, "too many positional arguments"),
        ("deny", "on_connect 'deny' is not a function of the request"),
    ],
)
def test_an_on_connect_hook_that_cannot_take_the_request_is_refused(hook: Any, said: str) -> None:
    router = Router()
    with pytest.raises(TypeError, match=re.escape(said)):
        router.add_websocket_route(chat, "/", on_connect=hook)
    assert router.routes == []


def test_a_handler_that_is_not_async_is_refused_with_its_name() -> None:
    routes = Router()

    def plain(request: Any, ws: Any) -> None:
        pass

    with pytest.raises(TypeError, match=r"handler .*plain must be an async function"):
        routes.add_websocket_route(plain, "/ws")
    with pytest.raises(TypeError, match=r"HTTP route '/page': handler .*plain"):
        routes.add_route(plain, "/page")
    assert routes.routes == []


@pytest.mark.parametrize(
    ("uri", "define"),
    [
        ("/chat/<room>", "async def h(request, ws): pass"),  # no room parameter
        ("/chat", "async def h(request): pass"),  # no ws
        ("/chat", "async def h(request, ws, extra): pass"),  # an argument nobody passes
        ("/chat/<room>", "async def h(request, ws, name): pass"),  # the wrong name
    ],
)
def test_a_handler_that_cannot_take_its_arguments_is_refused(uri: str, define: str) -> None:
    namespace: dict[str, Any] = {}
    exec(define, namespace)
    routes = Router()
    with pytest.raises(TypeError, match=r"handler h\(.*\) cannot be called as h\(request, ws"):
        routes.add_websocket_route(namespace["h"], uri)


def test_handlers_that_fit_are_accepted() -> None:
    routes = Router()

    async def with_param(request: Any, ws: Any, room: str) -> None: ...
    async def with_kwargs(request: Any, ws: Any, **params: Any) -> None: ...
    async def with_default(request: Any, ws: Any, room: str, page: int = 1) -> None: ...

    class Handler:
        async def __call__(self, request: Any, ws: Any, room: str) -> None: ...

    routes.add_websocket_route(with_param, "/a/<room>")
    routes.add_websocket_route(with_kwargs, "/b/<room>")
    routes.add_websocket_route(with_default, "/c/<room>")
    routes.add_websocket_route(Handler(), "/d/<room>")
    assert len(routes.routes) == 4


def test_the_same_route_twice_is_an_error() -> None:
    routes = Router()

    async def one(request: Any, ws: Any) -> None: ...
    async def two(request: Any, ws: Any) -> None: ...
    async def page(request: Any) -> Any: ...

    routes.add_websocket_route(one, "/ws")
    with pytest.raises(ValueError, match="never be reached"):
        routes.add_websocket_route(two, "/ws")
    # A host's route after it: the route for every host answers that host
    # first (test_a_host_route_that_a_route_before_answers_for_its_hosts_is_refused).
    with pytest.raises(ValueError, match="never be reached"):
        routes.add_websocket_route(two, "/ws", host="example.com")
    routes.add_websocket_route(two, "/ws", version=2)  # another version: fine
    routes.add_route(page, "/ws")  # an HTTP route beside a WebSocket one: fine
    routes.add_route(page, "/ws", methods=["POST"])  # other methods: fine
    with pytest.raises(ValueError, match="never be reached"):
        routes.add_route(page, "/ws", methods=["GET", "PUT"])


def test_serve_refuses_what_it_cannot_serve_at_once() -> None:
    from wsserver import serve

    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    async def handler(request: Any, ws: Any) -> None: ...

    def sync_app(scope: Any, receive: Any, send: Any) -> None: ...

    # An ASGI application is served (tests/test_asgi*.py); these are not.
    for thing in ({"/": app}, None, handler, sync_app, 42, Router):
        with pytest.raises(TypeError, match=r"serve\(\) needs a wsserver\.Router or an ASGI"):
            serve(thing)

    # A Router's handler with three parameters looks like an ASGI app.
    router = Router()

    @router.websocket("/chat/<room>")
    async def chat(request: Any, ws: Any, room: str) -> None: ...

    with pytest.raises(TypeError, match=r"the handler of the route '/chat/<room>'"):
        serve(chat)


@pytest.mark.parametrize(
    ("where", "said"),
    [
        # OverflowError from bind(), at start: not when serve() was called.
        ({"port": -1}, "port must be an int from 0 to 65535, not -1"),
        ({"port": 70000}, "not 70000"),
        ({"port": "80"}, "not '80'"),  # (was accepted)
        ({"port": True}, "not True"),
        ({"host": 5}, "host must be a str, a list of str or None, not 5"),  # ('int' not iterable)
        ({"host": ["127.0.0.1", 6]}, "not ['127.0.0.1', 6]"),
        ({"host": []}, "not []"),
        # asyncio's every interface, as an unset variable gives it
        # (serve(app, os.environ.get("HOST", ""))): the CLI's --host '' is refused.
        ({"host": ""}, "host '' is no host (None, '0.0.0.0' or '::' for every interface)"),
        ({"host": " "}, "host ' ' is no host"),
        ({"host": ["127.0.0.1", ""]}, "host '' is no host"),  # (was a gaierror at start)
    ],
)
def test_serve_refuses_where_no_server_can_listen(where: dict[str, Any], said: str) -> None:
    from wsserver import ConfigError, serve

    with pytest.raises(ConfigError, match=re.escape(said)):
        serve(Router(), **where)


async def test_serve_listens_on_a_list_of_hosts() -> None:
    from wsserver import serve

    async with serve(Router(), ["127.0.0.1", "::1"], 0) as server:
        assert {s.getsockname()[0] for s in server.sockets} == {"127.0.0.1", "::1"}


# ------------------------------------------ the document's route options


async def test_apply_decorates_websocket_and_http_handlers_in_order(
    run_server: StartServer,
) -> None:
    import functools

    import websockets

    calls: list[str] = []

    def tag(label: str) -> Any:
        def decorator(handler: Any) -> Any:
            @functools.wraps(handler)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                calls.append(label)
                return await handler(*args, **kwargs)

            return wrapper

        return decorator

    routes = Router()

    @routes.websocket("/ws/<room>", apply=[tag("inner"), tag("outer")])
    async def room(request: Request, ws: WebSocket, room: str) -> None:
        calls.append("handler")
        await ws.send(room)

    @routes.get("/page", apply=[tag("first"), tag("second")])
    async def page(request: Request) -> Any:
        calls.append("page")
        return text("ok")

    server = await run_server(routes)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws/lobby") as ws:
        assert await ws.recv() == "lobby"
    assert calls == ["outer", "inner", "handler"]
    calls.clear()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (await reader.read()).endswith(b"\r\n\r\nok")
    writer.close()
    assert calls == ["second", "first", "page"]


@pytest.mark.parametrize(
    ("error_format", "content_type"),
    [("text", "text/plain"), ("json", "application/json"), ("html", "text/html")],
)
async def test_error_format_shapes_the_routes_error_responses(
    run_server: StartServer, error_format: str, content_type: str
) -> None:
    import json as jsonlib

    routes = Router()

    @routes.websocket("/ws", origins=["https://ok.example"], error_format=error_format)  # type: ignore[arg-type]
    async def ws_route(request: Request, ws: WebSocket) -> None: ...

    @routes.get("/boom", error_format=error_format)  # type: ignore[arg-type]
    async def boom(request: Request) -> Any:
        raise RuntimeError("boom")

    server = await run_server(routes)

    async def fetch(request: bytes) -> tuple[bytes, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request)
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return head, body

    upgrade = (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Origin: https://evil.example\r\n\r\n"
    )
    for request, status in (
        (upgrade, 403),
        (b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n", 500),
    ):
        head, body = await fetch(request)
        assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
        assert f"content-type: {content_type}".encode() in head.lower(), head
        if error_format == "json":
            document = jsonlib.loads(body)
            assert document["status"] == status and document["error"] and document["message"]
        elif error_format == "html":
            assert body.startswith(b"<!doctype html>") and str(status).encode() in body
        else:
            assert body.endswith(b"\n") and not body.startswith(b"<")


def test_error_format_must_be_known() -> None:
    routes = Router()

    async def h(request: Any, ws: Any) -> None: ...

    with pytest.raises(ValueError, match="error_format"):
        routes.add_websocket_route(h, "/", error_format="xml")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "upgrade", "status", "allowed"),
    [
        ("GET", True, None, ()),  # the WebSocket route
        ("GET", False, 426, ()),  # what this resource takes a GET for is an upgrade
        ("HEAD", False, 426, ()),
        ("POST", False, None, ()),  # the HTTP route
        # A method that nothing here allows: Allow names every method the
        # resource takes, GET (its upgrade) too (it said POST only).
        ("PUT", False, 405, ("GET", "POST")),
        # The same when it asks to upgrade: only a GET upgrades (it went to
        # the WebSocket route, whose handshake said Allow: GET alone).
        ("PUT", True, 405, ("GET", "POST")),
        ("HEAD", True, 405, ("GET", "POST")),
        ("POST", True, None, ()),  # the HTTP route: the offer is ignored
    ],
)
def test_a_websocket_endpoint_with_another_methods_http_route(
    method: str, upgrade: bool, status: int | None, allowed: tuple[str, ...]
) -> None:
    routes = Router()

    @routes.websocket("/chat")
    async def chat(request: Any, ws: Any) -> None:
        pass

    @routes.route("/chat", methods=["POST"])
    async def post(request: Any) -> Any:
        pass

    found = routes.resolve("/chat", "h", method, upgrade)
    if status is None:
        assert found.route is not None
        assert found.route.is_websocket == (upgrade and method == "GET")
    else:
        assert found.route is None and (found.status, tuple(found.allowed)) == (status, allowed)


@pytest.mark.parametrize(
    ("method", "upgrade", "status", "allowed"),
    [
        ("GET", True, None, ()),
        ("GET", False, 426, ()),
        ("HEAD", False, 426, ()),
        # Another method cannot upgrade (RFC 6455 4.1: a GET): 405, not 426.
        ("POST", False, 405, ("GET",)),
        ("DELETE", False, 405, ("GET",)),
        ("POST", True, 405, ("GET",)),
        ("HEAD", True, 405, ("GET",)),  # (it asks to upgrade: no 426)
    ],
)
def test_a_websocket_only_endpoint_and_other_methods(
    method: str, upgrade: bool, status: int | None, allowed: tuple[str, ...]
) -> None:
    routes = Router()

    @routes.websocket("/ws")
    async def ws(request: Any, ws: Any) -> None:
        pass

    found = routes.resolve("/ws", "h", method, upgrade)
    if status is None:
        assert found.route is not None and found.route.is_websocket
    else:
        assert found.route is None and (found.status, tuple(found.allowed)) == (status, allowed)


# ------------------------------------------------------- bounded matching work


def test_two_parameters_in_a_segment_split_as_before() -> None:
    router = Router()
    router.add_websocket_route(chat, "/files/<name>.<ext>")
    router.add_websocket_route(chat, "/d/<a>.<b>.txt/<n:int>")
    router.add_websocket_route(chat, "/r/<owner>-<repo>-<tag>.tar.gz")
    router.add_websocket_route(chat, "/j/<a:path>/<b:path>.json")
    assert params_of(router, "/r/me-proj-v1.2.tar.gz") == {
        "owner": "me",
        "repo": "proj",
        "tag": "v1.2",
    }
    assert params_of(router, "/j/x/y/z.json") == {"a": "x/y", "b": "z"}
    assert params_of(router, "/r/" + "m" * 100 + "-p-t.tar.gz") is None  # over split_limit(3)
    assert params_of(router, "/files/archive.tar.gz") == {"name": "archive.tar", "ext": "gz"}
    assert params_of(router, "/d/x.y.z.txt/7") == {"a": "x.y", "b": "z", "n": 7}
    assert params_of(router, "/d/x.y.txt/seven") is None
    # Up to MAX_SPLIT_SEGMENT characters in such a segment.
    name = "n" * (MAX_SPLIT_SEGMENT - 4)
    assert params_of(router, f"/files/{name}.txt") == {"name": name, "ext": "txt"}
    assert params_of(router, f"/files/{name}x.txt") is None


async def test_a_long_path_that_matches_nothing_does_not_hold_the_server(
    run_server: StartServer,
) -> None:
    # Two parameters in one segment (<name>.<ext>): a 15 KB path that does
    # not match took the regex seconds of backtracking, on the event loop:
    # every other client waited.
    routes = Router()
    routes.add_route(ok, "/files/<name>.<ext>")
    routes.add_route(ok, "/d/<a>.<b>.txt")
    routes.add_route(ok, "/h/<p:path>.<e>")
    # (And k parameters sharing a segment cost length ** k; a path parameter
    # followed by others, the rest of the path: the review's next finding.)
    routes.add_route(ok, "/r/<owner>-<repo>-<tag>.tar.gz")
    routes.add_route(ok, "/q/<a>.<b>.<c>.<d>x")
    routes.add_route(ok, "/j/<a:path>/<b:path>.json")
    routes.add_route(ok, "/k/<p:path>/<a>.<b>x")
    server = await run_server(routes)
    loop = asyncio.get_running_loop()
    paths = (
        "/files/" + "." * 15000 + "/x",
        "/d/" + "." * 15000,
        "/h/" + "." * 15000 + "/",
        "/r/" + "-" * 1024,
        "/q/" + "." * 400,
        "/j" + "/a" * 7000,
        "/k/" + "./" * 7000,
    )
    for path in paths:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        started = loop.time()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert head.startswith(b"HTTP/1.1 404 "), head
        assert loop.time() - started < 1.0, path[:8]  # (milliseconds; it was 2-4 s)
        writer.close()


@pytest.mark.parametrize("origin", ["app.example", "https://app.example/", "https://App.example"])
def test_a_route_origin_no_browser_sends_is_refused_at_definition(origin: str) -> None:
    # Such an origin admitted nobody: every upgrade got 403.
    async def handler(request: Any, ws: Any) -> None:
        pass

    routes = Router()
    with pytest.raises(ValueError, match="no origin"):
        routes.add_websocket_route(handler, "/ws", origins=[origin, None])
    routes.add_websocket_route(handler, "/ok", origins=["https://app.example", None, "null"])


def _api_router(started: list[str]) -> Router:
    api = Router()

    def tagged(handler: Any) -> Any:
        async def wrapper(request: Request, *args: Any, **params: Any) -> Any:
            request.ctx.tag = "api"
            return await handler(request, *args, **params)

        return wrapper

    @api.get("/rooms", apply=[tagged], name="rooms")
    async def rooms(request: Request) -> Any:
        return text(f"rooms ({request.ctx.tag})")

    @api.get("/", name="index")
    async def index(request: Request) -> Any:
        return text("api index")

    async def member(request: Request) -> Any:
        if request.args.get("token") != "t":
            return text("no token", 401)
        return None

    @api.websocket("/ws/<room>", on_connect=member, subprotocols=["chat.v1"], name="room")
    async def room(request: Request, ws: WebSocket, room: str) -> None:
        await ws.send(f"{room} {ws.subprotocol}")

    @api.on_startup
    async def start(server: Any) -> None:
        started.append("api")

    return api


async def test_an_included_router_serves_under_its_prefix(run_server: StartServer) -> None:
    import httpx
    import websockets

    started: list[str] = []
    routes = Router()

    @routes.get("/rooms")
    async def own_rooms(request: Request) -> Any:
        return text("the app's own /rooms")

    admin = Router()

    @admin.get("/stats", host="admin.example")
    async def stats(request: Request) -> Any:
        return text("stats")

    routes.include(_api_router(started), "/api/", name_prefix="api")
    routes.include(admin, "/admin")
    assert routes.url_for("api.rooms") == "/api/rooms"
    assert routes.url_for("api.room", room="lobby", token="t") == "/api/ws/lobby?token=t"
    assert routes.url_for("stats") == "/admin/stats"
    server = await run_server(routes)
    assert started == ["api"]
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/api/rooms")).text == "rooms (api)"  # its decorator kept
        assert (await client.get("/rooms")).text == "the app's own /rooms"
        assert (await client.get("/api")).text == "api index"
        assert (await client.get("/api/")).text == "api index"
        assert (await client.post("/api/rooms")).status_code == 405
        assert (await client.get("/admin/stats")).status_code == 404  # its host kept
        r = await client.get("/admin/stats", headers={"Host": "admin.example"})
        assert r.text == "stats"
    ws_url = f"ws://127.0.0.1:{server.port}/api/ws/lobby"
    async with websockets.connect(ws_url + "?token=t", subprotocols=["chat.v1"]) as ws:
        assert await ws.recv() == "lobby chat.v1"
    with pytest.raises(websockets.InvalidStatus) as denied:
        await websockets.connect(ws_url, subprotocols=["chat.v1"])  # its on_connect kept
    assert denied.value.response.status_code == 401


def test_include_refuses_what_would_clash_and_adds_nothing_then() -> None:
    routes = Router()

    @routes.get("/rooms", name="rooms")
    async def rooms(request: Request) -> Any:
        return text("rooms")

    @routes.get("/api/")
    async def api_home(request: Request) -> Any:
        return text("home")

    api = _api_router([])
    before = list(routes.routes)
    with pytest.raises(ValueError, match="a route named 'rooms' already exists"):
        routes.include(api, "/v2")
    with pytest.raises(ValueError, match="would never be reached"):
        routes.include(api, "/api", name_prefix="api")  # (its index at /api/)
    assert routes.routes == before
    with pytest.raises(KeyError):
        routes.url_for("api.rooms")  # (registered before the clash, taken back)
    with pytest.raises(ValueError, match="itself"):
        routes.include(routes)
    # Copied as it is: what is added to it later is not served here.
    routes.include(api, "/v2", name_prefix="v2")

    @api.get("/later")
    async def later(request: Request) -> Any:
        return text("later")

    assert routes.resolve("/v2/later", "", "GET", False).status == 404
    assert routes.resolve("/v2/rooms", "", "GET", False).route is not None


def test_include_runs_a_routers_hooks_once_however_often_it_comes_in() -> None:
    # Served under two version prefixes, or directly and through another:
    # one pool opened, not two.
    api = _api_router([])
    routes = Router()
    routes.include(api, "/v1", name_prefix="v1")
    routes.include(api, "/v2", name_prefix="v2")
    nested = Router()
    nested.include(api, "/api", name_prefix="api")
    routes.include(nested, "/nested", name_prefix="nested")
    assert routes.startup_hooks == api.startup_hooks
    assert routes.url_for("nested.api.rooms") == "/nested/api/rooms"


def test_a_handlers_own_name_taken_here_is_left_unnamed_as_add_route_does(
    tmp_path: Any,
) -> None:
    routes = Router()

    @routes.get("/")
    async def index(request: Request) -> Any:
        return text("home")

    users = Router()

    @users.get("/")
    async def index_of_users(request: Request) -> Any:
        return text("users")

    index_of_users.__name__ = "index"  # (a module's own "async def index")
    users.add_route(index_of_users, "/all")
    routes.include(users, "/users")
    assert routes.url_for("index") == "/"
    assert routes.resolve("/users/all", "", "GET", False).route is not None
    # Two routers serving static files (their index routes named after the
    # handler) come in together.
    routes.static("/static", tmp_path)
    docs = Router()
    docs.static("/", tmp_path)
    routes.include(docs, "/docs")
    # A name given is a clash all the same.
    named = Router()

    @named.get("/x", name="index")
    async def x(request: Request) -> Any:
        return text("x")

    with pytest.raises(ValueError, match="a route named 'index' already exists"):
        routes.include(named, "/named")


async def test_a_handlers_own_name_given_here_to_another_route_leaves_it_unnamed_too(
    run_server: StartServer,
) -> None:
    # The name was given here (name="chat"), and the module that comes in has
    # an "async def chat" of its own, no name given: its route comes in
    # unnamed, as add_route() takes it, and as the README says. It was
    # refused ("a route named 'chat' already exists"), and nothing came in.
    import httpx

    routes = Router()

    @routes.get("/", name="chat")
    async def home(request: Request) -> Any:
        return text("home")

    async def chat(request: Request) -> Any:
        return text("the module's chat")

    routes.add_route(chat, "/direct")  # (add_route() takes it, unnamed)
    module = Router()
    module.add_route(chat, "/chat")
    routes.include(module, "/rooms")
    assert routes.url_for("chat") == "/"
    server = await run_server(routes)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        assert (await client.get("/rooms/chat")).text == "the module's chat"
        assert (await client.get("/")).text == "home"


def test_a_route_that_hides_another_behind_a_trailing_slash_is_refused() -> None:
    routes = Router()

    @routes.get("/users")
    async def own(request: Request) -> Any:
        return text("own")

    users = Router()

    @users.get("/")
    async def listing(request: Request) -> Any:
        return text("users")

    # Its index would be /users/, which /users (not strict) answers first.
    with pytest.raises(ValueError, match="never be reached"):
        routes.include(users, "/users", name_prefix="users")
    with pytest.raises(ValueError, match="never be reached"):
        routes.add_route(listing, "/users/")
    strict = Router(strict_slashes=True)
    strict.add_route(own, "/users")
    strict.add_route(listing, "/users/")  # (two routes there)


def test_include_refuses_a_prefix_or_name_prefix_that_cannot_be() -> None:
    for prefix in ("api", "/rooms/<room>", "/api?x=1", "/api#top", "/a<b"):
        with pytest.raises(ValueError, match="a prefix is a path"):
            Router().include(_api_router([]), prefix, name_prefix="x")
    with pytest.raises(ValueError, match="name_prefix"):
        Router().include(_api_router([]), "/api", name_prefix="")


@pytest.mark.parametrize("head_first", [True, False])
async def test_a_head_route_beside_a_get_route_answers_head(
    run_server: StartServer, head_first: bool
) -> None:
    # A GET route answers HEAD too; one of HEAD's own (the length of a large
    # export without making it, as Sanic allows) was refused: "the GET route
    # would never be reached".
    import httpx

    routes = Router()

    async def export(request: Request) -> Any:
        return text("x" * 1000)

    async def export_head(request: Request) -> Any:
        return text("", headers={"X-Rows": "1000"})

    adders = [lambda: routes.get("/export")(export), lambda: routes.head("/export")(export_head)]
    for add in adders[::-1] if head_first else adders:
        add()
    server = await run_server(routes)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        got = await client.get("/export")
        assert (got.status_code, len(got.text), got.headers.get("x-rows")) == (200, 1000, None)
        head = await client.head("/export")
        assert (head.status_code, head.headers["x-rows"]) == (200, "1000")
    with pytest.raises(ValueError, match="would never be reached"):
        routes.get("/export")(export)  # (two GETs still clash)
    with pytest.raises(ValueError, match="would never be reached"):
        routes.head("/export")(export_head)  # (and two HEADs)


def test_a_head_route_takes_head_from_the_get_route_of_its_own_path_only() -> None:
    # (From a review.) A HEAD-only route took HEAD from any GET route before
    # it that matched: a catch-all, or one for any host over a host's.
    async def page(request: Request) -> Any:
        return text("page")

    async def any_head(request: Request, path: str = "") -> Any:
        return text("")

    routes = Router()
    routes.get("/report")(page)
    routes.route("/<path:path>", methods=["HEAD", "OPTIONS"])(any_head)
    assert routes.resolve("/report", "x", "HEAD", False).route is (
        routes.resolve("/report", "x", "GET", False).route
    )
    routes = Router()
    routes.get("/report", host="a.example")(page)
    routes.head("/report")(any_head)
    assert routes.resolve("/report", "a.example", "HEAD", False).route is (
        routes.resolve("/report", "a.example", "GET", False).route
    )
    assert routes.resolve("/report", "b.example", "HEAD", False).route is not None


def test_a_host_s_head_route_after_the_get_route_for_every_host_takes_its_head() -> None:
    # (From a review.) A host's route after the route for every host at its
    # URI is refused (never reached), but a HEAD route is no clash with a GET
    # route: a host's HEAD route after the GET route for every host (or for
    # more hosts) was taken and never reached, its host's HEAD answered by the
    # GET route.
    async def page(request: Request) -> Any:
        return text("page")

    async def head(request: Request) -> Any:
        return text("")

    for hosts in (None, ["a.example", "b.example"]):
        routes = Router()
        routes.get("/report", host=hosts)(page)
        routes.head("/report", host="a.example")(head)
        get, head_route = routes.routes
        assert routes.resolve("/report", "a.example", "HEAD", False).route is head_route
        assert routes.resolve("/report", "a.example", "GET", False).route is get
        assert routes.resolve("/report", "b.example", "HEAD", False).route is get


def test_a_head_route_beside_a_strict_get_route_of_its_path_with_a_slash_is_taken() -> None:
    # (From a review.) resolve() gives HEAD to a route of HEAD's own over the
    # GET route before it when their URIs differ by a trailing "/" only, but
    # _register() refused such a HEAD route after a strict GET route whose
    # path parameter takes the "/" form too: "matches each of its paths first",
    # where HEAD /files/a/ reached it (taken before 11682c2).
    async def files(request: Request, p: str) -> Any:
        return text(p)

    async def listing(request: Request, p: str) -> Any:
        return text("")

    routes = Router(strict_slashes=True)
    routes.get("/files/<p:path>")(files)
    routes.head("/files/<p:path>/")(listing)
    get, head = routes.routes
    assert routes.resolve("/files/a/", "x", "HEAD", False).route is head
    assert routes.resolve("/files/a/", "x", "GET", False).route is get
    assert routes.resolve("/files/a", "x", "HEAD", False).route is get
    with pytest.raises(ValueError, match="would never be reached"):
        routes.get("/files/<p:path>/", name="dir")(files)  # (GET still clashes)


def test_a_strict_route_a_non_strict_one_before_covers_is_refused(tmp_path: Any) -> None:
    # (From a review.) Under Router(strict_slashes=True), a route at a static
    # mount's path with its "/" was taken, and never reached: the mount's own
    # route (which serves both forms) came first.
    (tmp_path / "index.html").write_text("x")
    routes = Router(strict_slashes=True)
    routes.static("/static", tmp_path)

    async def listing(request: Request) -> Any:
        return text("mine")

    with pytest.raises(ValueError, match="would never be reached"):
        routes.get("/static/")(listing)
    routes.get("/other/")(listing)  # (strict routes apart from it are fine)
    routes.get("/other")(listing)


def test_a_route_of_the_same_pattern_under_other_parameter_names_is_refused() -> None:
    # "/items/<item_id:int>" after "/items/<id:int>" is the same URI: the
    # first takes every path it matches, and the second was taken and never
    # reached (a parameter renamed in one of two copies of a route, or two
    # modules included under one prefix).
    async def item(request: Request, **params: Any) -> Any:
        return text("item")

    async def head(request: Request, **params: Any) -> Any:
        return text("")

    routes = Router()
    routes.get("/items/<id:int>")(item)
    routes.get("/files/<name>.<ext>")(item)
    routes.websocket("/ws/<room>")(chat)
    for uri in ("/items/<item_id:int>", "/items/<n:int>/", "/files/<stem:str>.<kind>"):
        with pytest.raises(ValueError, match="would never be reached"):
            routes.get(uri, name=uri)(item)
    with pytest.raises(ValueError, match="would never be reached"):
        routes.websocket("/ws/<room_id:str>", name="again")(chat)
    assert len(routes.routes) == 3
    # Another type, method or kind is another route.
    routes.get("/items/<id:uuid>", name="by_uuid")(item)
    routes.delete("/items/<item_id:int>")(item)
    routes.get("/ws/<room_id>", name="page")(item)
    # A HEAD route beside its GET route takes HEAD from it, its names apart.
    routes.head("/items/<item_id:int>")(head)
    assert routes.resolve("/items/7", "", "HEAD", False).route is routes.routes[-1]
    assert routes.resolve("/items/7", "", "GET", False).route is routes.routes[0]


def test_a_host_route_that_a_route_before_answers_for_its_hosts_is_refused() -> None:
    # A route for every host (or for more hosts) takes each request first: a
    # route for some of them after it, at its URI and method, was taken and
    # never reached (a Sanic user puts the host's route anywhere: Sanic tries
    # a host's routes first).
    async def page(request: Request) -> Any:
        return text("page")

    async def chat(request: Request, ws: WebSocket) -> None:
        pass

    routes = Router()
    routes.get("/")(page)
    routes.get("/rooms", host=["a.example", "b.example"])(page)
    routes.websocket("/ws")(chat)
    for uri, host in (("/", "admin.example"), ("/rooms", "a.example"), ("/rooms/", "b.example")):
        with pytest.raises(ValueError, match="would never be reached"):
            routes.get(uri, host=host, name=f"{uri}{host}")(page)
    with pytest.raises(ValueError, match="would never be reached"):
        routes.websocket("/ws", host="admin.example", name="admin_ws")(chat)
    with pytest.raises(ValueError, match="would never be reached"):
        routes.include(_one_route_router("/", "admin.example"))
    assert len(routes.routes) == 3
    # What the route before does not answer is taken: another host, another
    # method, another kind.
    routes.get("/rooms", host="c.example", name="c")(page)
    routes.post("/", host="admin.example")(page)
    routes.websocket("/", host="admin.example")(chat)
    # And a host's route before the route for every host, the order to use.
    first = Router()
    first.get("/", host="admin.example", name="admin")(page)
    first.get("/")(page)
    assert first.resolve("/", "admin.example", "GET", False).route is first.routes[0]
    assert first.resolve("/", "www.example", "GET", False).route is first.routes[1]


def test_a_host_and_port_route_after_its_host_s_route_is_refused() -> None:
    # host="a.example" answers a.example on any port: a route for
    # "a.example:8080" after it, at its URI and method, was taken and never
    # reached, yet accepted (only the same hosts, or a subset of them, were
    # compared); a HEAD route for "a.example:80" beside its GET route never
    # took HEAD. Refused, and paired, now.
    async def page(request: Request) -> Any:
        return text("page")

    routes = Router()
    routes.get("/", host="a.example")(page)
    routes.websocket("/ws", host=["a.example", "b.example:8080"])(chat)
    for host in ("a.example:8080", "A.example.:80", ["a.example:443", "a.example"]):
        with pytest.raises(ValueError, match="would never be reached"):
            routes.get("/", host=host, name=f"{host}")(page)
    with pytest.raises(ValueError, match="would never be reached"):
        routes.websocket("/ws", host="a.example:8443", name="ws_8443")(chat)
    # What it does not answer is taken: another host, or the bare name of a
    # host:port route (its other ports).
    routes.get("/", host="b.example:8080", name="b")(page)
    routes.websocket("/ws", host="b.example", name="ws_b")(chat)
    head = routes.head("/", host="a.example:80")(page)
    assert routes.resolve("/", "a.example:80", "HEAD", False).route is routes.routes[-1]
    assert routes.resolve("/", "a.example", "HEAD", False).route is routes.routes[-1]
    assert routes.resolve("/", "a.example:8080", "HEAD", False).route is routes.routes[0]
    assert routes.resolve("/", "a.example:80", "GET", False).route is routes.routes[0]
    assert head is page


async def test_a_route_a_parameterised_route_before_takes_every_path_of_is_refused(
    run_server: StartServer, tmp_path: Any
) -> None:
    # Routes are tried in order: "/users/me" after "/users/<name>" (or
    # "/health" after static files at "/") was taken and never reached, its
    # requests answered by the route before ("me" taken for a user's name, a
    # 404 of the static files), where Sanic serves the literal route first.
    # It is refused now, as a route at the same URI is; add it before.
    import httpx

    async def user(request: Request, name: str) -> Any:
        return text(f"user {name}")

    async def me(request: Request) -> Any:
        return text("me")

    routes = Router()
    routes.get("/users/<name>")(user)
    with pytest.raises(ValueError, match="would never be reached"):
        routes.get("/users/me")(me)
    with pytest.raises(ValueError, match="would never be reached"):
        routes.head("/users/me")(me)  # (HEAD goes to the GET route before)
    with pytest.raises(ValueError, match="would never be reached"):
        routes.get("/users/me/", strict_slashes=True, name="slash")(me)
    files = Router()
    (tmp_path / "index.html").write_text("x")
    files.static("/", tmp_path)
    with pytest.raises(ValueError, match="would never be reached"):
        files.get("/health")(me)
    ws = Router()
    ws.websocket("/ws/<room>")(chat)
    with pytest.raises(ValueError, match="would never be reached"):
        ws.websocket("/ws/lobby", name="lobby")(chat)
    # What the route before leaves is taken: another method, kind, host, a
    # value its type refuses, the form with a "/" a strict route leaves.
    routes.post("/users/me")(me)
    routes.websocket("/users/me")(chat)
    routes.get("/items/<name:int>", name="item")(user)
    routes.get("/items/new", name="new")(me)
    routes.get("/hosts/<name>", host="a.example")(user)
    routes.get("/hosts/me", name="hosts_me")(me)
    strict = Router(strict_slashes=True)
    strict.get("/users/<name>")(user)
    strict.get("/users/me", strict_slashes=False)(me)  # (/users/me/ reaches it)
    # The order to use: the literal route first.
    first = Router()
    first.get("/users/me")(me)
    first.get("/users/<name>")(user)
    server = await run_server(first)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        assert (await client.get("/users/me")).text == "me"
        assert (await client.get("/users/ann")).text == "user ann"


async def test_a_route_that_a_str_or_path_parameter_before_takes_each_path_of_is_refused(
    run_server: StartServer,
) -> None:
    # "/items/<id:int>" after "/items/<name>": the str parameter takes every
    # number too, so the int route was taken and never reached (/items/5 went
    # to name="5"), where Sanic tries a typed parameter before a str one.
    # Likewise a route under a path parameter before it. Refused now, as a
    # route at the same URI is; add it before.
    import httpx

    async def item(request: Request, **params: Any) -> Any:
        return text(f"item {params}")

    routes = Router()
    routes.get("/items/<name>")(item)
    routes.get("/users/<name>/posts")(item)
    routes.get("/files/<p:path>", name="files")(item)
    routes.websocket("/ws/<room>")(chat)
    for uri in (
        "/items/<id:int>",
        "/items/<id:uuid>/",
        "/items/<stem>.<ext>",
        "/users/<id:int>/posts",
        "/files/<name>.zip",
        "/files/<year:int>/<name>",
        "/files/archive/",
    ):
        with pytest.raises(ValueError, match="would never be reached"):
            routes.get(uri, name=uri)(item)
    with pytest.raises(ValueError, match="would never be reached"):
        routes.head("/items/<id:int>", name="head")(item)  # (HEAD goes to the GET route)
    with pytest.raises(ValueError, match="would never be reached"):
        routes.websocket("/ws/<n:int>", name="numbered")(chat)
    assert len(routes.routes) == 4
    # What the route before leaves is taken: other segments, another method
    # or kind, a path its type refuses, the form with "/" a strict one leaves.
    routes.get("/items/<id:int>/edit", name="edit")(item)
    routes.get("/users/<id:int>", name="user")(item)
    routes.post("/items/<id:int>", name="create")(item)
    routes.websocket("/items/<id:int>", name="feed")(chat)
    routes.get("/numbers/<n:int>", name="n")(item)
    routes.get("/numbers/<name>", name="name")(item)
    strict = Router(strict_slashes=True)
    strict.get("/items/<name>")(item)
    strict.get("/items/<id:int>", strict_slashes=False)(item)  # (/items/5/ reaches it)
    # The order to use: the typed route first.
    first = Router()
    first.get("/items/<id:int>", name="by_id")(item)
    first.get("/items/<name>", name="by_name")(item)
    server = await run_server(first)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        assert (await client.get("/items/5")).text == "item {'id': 5}"
        assert (await client.get("/items/box")).text == "item {'name': 'box'}"


async def test_a_route_whose_int_parameter_a_float_parameter_before_takes_is_refused(
    run_server: StartServer,
) -> None:
    # "/n/<id:int>" after "/n/<x:float>": a float parameter takes every
    # number an int one does ("5" is 5.0), so the int route was accepted and
    # never reached (/n/5 went to x=5.0, but for a number of over 308
    # digits), where Sanic tries the int route for an integer. Refused now, as
    # after a str parameter; add it before.
    import httpx

    async def number(request: Request, **params: Any) -> Any:
        return text(f"number {params}")

    routes = Router()
    routes.get("/n/<x:float>")(number)
    routes.get("/prices/<x:float>/history")(number)
    routes.websocket("/ws/<x:float>")(chat)
    for uri in ("/n/<id:int>", "/n/<id:int>/", "/prices/<id:int>/history"):
        with pytest.raises(ValueError, match="would never be reached"):
            routes.get(uri, name=uri)(number)
    with pytest.raises(ValueError, match="would never be reached"):
        routes.websocket("/ws/<n:int>", name="numbered")(chat)
    assert len(routes.routes) == 3
    # What the float route leaves is taken: another method, kind, segments.
    routes.post("/n/<id:int>", name="create")(number)
    routes.websocket("/n/<id:int>", name="feed")(chat)
    routes.get("/n/<id:int>/edit", name="edit")(number)
    # The order to use: the int route first.
    first = Router()
    first.get("/n/<id:int>", name="by_id")(number)
    first.get("/n/<x:float>", name="by_value")(number)
    server = await run_server(first)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        assert (await client.get("/n/5")).text == "number {'id': 5}"
        assert (await client.get("/n/5.5")).text == "number {'x': 5.5}"


async def test_a_route_a_strict_path_parameter_before_takes_both_forms_of_is_refused(
    run_server: StartServer, tmp_path: Any
) -> None:
    # A strict route ending in a path parameter ("/files/<p:path>" with
    # strict_slashes=True, static files under Router(strict_slashes=True))
    # takes a path with its trailing "/" too ("x/" is its text): a route
    # after it that is not strict ("/files/<name>", "/<id:int>") was
    # accepted and never reached, on either form of its paths.
    import httpx

    async def files(request: Request, **params: Any) -> Any:
        return text(f"files {params}")

    routes = Router()
    routes.get("/files/<p:path>", strict_slashes=True)(files)
    for uri in ("/files/<name>", "/files/<id:int>/", "/files/<year:int>/<name>"):
        with pytest.raises(ValueError, match="would never be reached"):
            routes.get(uri, name=uri)(files)
    (tmp_path / "app.js").write_text("x")
    assets = Router(strict_slashes=True)
    assets.static("/", tmp_path)
    with pytest.raises(ValueError, match="would never be reached"):
        assets.get("/api/<id:int>", strict_slashes=False)(files)
    # What it leaves is taken: another method, other text before it.
    routes.post("/files/<name>", name="upload")(files)
    routes.get("/file/<name>", name="file")(files)
    server = await run_server(routes)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        for path in ("/files/7", "/files/7/"):
            assert (await client.get(path)).text == f"files {{'p': '{path[7:]}'}}"
        assert (await client.post("/files/7/")).text == "files {'name': '7'}"


def test_a_route_whose_literal_segment_a_typed_parameter_before_takes_is_refused() -> None:
    # "/pages/1/<lang>" after "/pages/<n:int>/<lang>": the int parameter
    # takes "1", so the route was accepted and never reached, where a str
    # parameter before it ("/users/<name>/posts" and "/users/me/posts") was
    # refused, and so was "/pages/1" (no other parameter) after "/pages/<n:int>".
    routes = Router()
    routes.get("/pages/<n:int>/<lang>")(ok)
    routes.get("/prices/<x:float>/<currency>", name="price")(ok)
    routes.get("/things/<id:uuid>/<view>", name="thing")(ok)
    for uri in ("/pages/1/<lang>", "/pages/-1/<lang:str>/", "/prices/9.5/<c>", "/prices/9/<c>"):
        with pytest.raises(ValueError, match="would never be reached"):
            routes.get(uri, name=uri)(ok)
    with pytest.raises(ValueError, match="would never be reached"):
        routes.get(f"/things/{uuid.UUID(int=7)}/<view>", name="seven")(ok)
    assert len(routes.routes) == 3
    # What the typed parameter leaves is taken: a segment it does not take.
    for uri in ("/pages/first/<lang>", "/pages/1.5/<lang>", "/prices/free/<c>", "/things/x/<v>"):
        routes.get(uri, name=uri)(ok)
        assert routes.resolve(uri.split("<")[0] + "en", "", "GET", False).route is routes.routes[-1]


def _one_route_router(uri: str, host: str) -> Router:
    other = Router()

    @other.get(uri, host=host)
    async def page(request: Request) -> Any:
        return text("page")

    return other


# ---------------------------------------------------------------- the index of resolve()


class LinearRouter(Router):
    """A router that tries every route for each path (the reference the index
    of Router._candidates() must agree with)."""

    def _candidates(self, path: str) -> list[Route]:
        return self.routes


_SEGMENTS = st.sampled_from(["a", "b", "a.b", "<x>", "<n:int>", "<p:path>", ""])
_URIS = st.lists(_SEGMENTS, min_size=0, max_size=3).map(lambda parts: "/" + "/".join(parts))
_PATHS = st.one_of(
    st.lists(st.sampled_from(["a", "b", "a.b", "7", "", "v1"]), max_size=4).map(
        lambda parts: "/" + "/".join(parts)
    ),
    st.text(alphabet="/ab7.", max_size=8),
)
_ROUTES = st.lists(
    st.tuples(
        _URIS,
        st.sampled_from([None, ("GET",), ("POST",), ("GET", "POST"), ("HEAD",)]),
        st.sampled_from([None, "a.example"]),
        st.sampled_from([None, True, False]),
    ),
    max_size=8,
)


def _table(router: Router, specs: list[tuple[str, Any, Any, Any]]) -> Router:
    for i, (uri, methods, host, strict) in enumerate(specs):
        kind = dict(name=f"r{i}", host=host, strict_slashes=strict)
        with contextlib.suppress(ValueError):  # (one another already reaches)
            if methods is None:
                router.add_websocket_route(chat, uri, **kind)
            else:
                router.add_route(ok, uri, methods, **kind)
    return router


@settings(max_examples=300, deadline=None)
@given(
    _ROUTES,
    st.lists(_PATHS, min_size=1, max_size=6),
    st.sampled_from(["GET", "HEAD", "POST", "PUT"]),
    st.booleans(),
    st.sampled_from(["", "a.example:80", "b.example"]),
    st.booleans(),
)
def test_resolve_through_the_index_agrees_with_trying_every_route(
    specs: list[tuple[str, Any, Any, Any]],
    paths: list[str],
    method: str,
    upgrade: bool,
    host: str,
    router_strict: bool,
) -> None:
    indexed = _table(Router(strict_slashes=router_strict), specs)
    linear = LinearRouter(strict_slashes=router_strict)
    linear.routes = indexed.routes
    for path in paths + [route.uri for route in indexed.routes]:
        for _ in range(2):  # (the second time, from the index's list for it)
            assert indexed.resolve(path, host, method, upgrade) == linear.resolve(
                path, host, method, upgrade
            )
            assert indexed.match(path, host) == linear.match(path, host)
        for route in indexed.routes:
            # A route's own shortcuts never refuse what its pattern takes.
            if route._regex.match(path) is not None:
                assert path.startswith(route.prefix)
            if route.exact is not None:
                assert (path in route.exact) == (route._regex.match(path) is not None)


_SHAPE_SEGMENTS = st.sampled_from(
    [
        "a",
        "7",
        "",
        "<x{i}>",
        "<n{i}:int>",
        "<p{i}:path>",
        "<x{i}>.<y{i}>",
        "<x{i}>.a",
        "<u{i}:uuid>",
    ]
)
_SHAPE_PATHS = st.lists(
    st.sampled_from(["a", "7", "b.a", "a.b", "", "-1", str(uuid.UUID(int=7))]), max_size=5
).map(lambda parts: "/" + "/".join(parts))


def _shape_uri(segments: list[str]) -> str:
    return "/" + "/".join(segment.format(i=i) for i, segment in enumerate(segments))


@settings(max_examples=500, deadline=None)
@given(
    st.lists(_SHAPE_SEGMENTS, max_size=3),
    st.lists(_SHAPE_SEGMENTS, max_size=3),
    st.booleans(),
    st.booleans(),
    st.lists(_SHAPE_PATHS, min_size=1, max_size=8),
)
@example(["<x{i}>", "", ""], ["a"], False, False, ["/a"])  # ("/<x0>//" before "/a")
def test_a_route_refused_as_never_reached_is_matched_first_on_each_path(
    first: list[str], later: list[str], first_strict: bool, later_strict: bool, paths: list[str]
) -> None:
    # (What _register() refuses for a route before with parameters, that
    # route takes: each path the later route matches, it matches too.)
    routes = Router()
    earlier = routes.add_route(ok, _shape_uri(first), strict_slashes=first_strict)
    alone = Router().add_route(ok, _shape_uri(later), strict_slashes=later_strict)
    try:
        routes.add_route(ok, alone.uri, strict_slashes=later_strict, name="later")
    except ValueError as exc:
        if "matches each of its paths" not in str(exc):
            return  # (the same URI: test_the_same_route_twice_is_an_error)
        for path in [*paths, alone.uri, earlier.uri]:
            if alone.match(path) is not None:
                assert earlier.match(path) is not None, path


@pytest.mark.parametrize(
    ("first", "later"), [("/<x>//", "/a"), ("/a//", "/a"), ("/a/", "/a//"), ("/a", "/a//")]
)
@pytest.mark.parametrize("later_strict", [True, False])
def test_a_uri_ending_in_two_slashes_leaves_one_of_the_forms_to_the_other(
    first: str, later: str, later_strict: bool
) -> None:
    # A route not strict about its "/" takes its URI with one "/" at its end
    # or without it, not with all of them off: "/<x>//" takes "/a/" and
    # "/a//", not "/a". Its check took all off, and refused "/a" after it as
    # never reached (nor "/a//" after "/a/" or "/a"), each served by nothing.
    routes = Router()
    routes.add_route(ok, first, strict_slashes=False, name="first")
    added = routes.add_route(ok, later, strict_slashes=later_strict, name="later")
    forms = [later] if later_strict else [later, later[:-1] if later.endswith("/") else later + "/"]
    reached = [p for p in forms if routes.resolve(p, "", "GET", False).route is added]
    assert reached, (forms, [routes.resolve(p, "", "GET", False).route for p in forms])


def test_a_strict_double_slash_after_the_root_is_reached() -> None:
    # (Review R2.) "/" takes "/" alone, not strict or strict: a strict "//"
    # after it was refused as never reached. One not strict takes "/" alone
    # too ("//" is "/" and its "/"), and is refused after it.
    routes = Router()
    routes.add_route(ok, "/", strict_slashes=False, name="root")
    added = routes.add_route(ok, "//", strict_slashes=True, name="double")
    assert routes.resolve("//", "", "GET", False).route is added
    assert routes.resolve("/", "", "GET", False).route is not added
    with pytest.raises(ValueError, match="would never be reached"):
        routes.add_route(ok, "//", strict_slashes=False, name="other")


def test_a_strict_route_a_uri_ending_in_two_slashes_takes_is_refused_or_its_head_taken() -> None:
    # (Review R2 of 43134df.) "/a//", not strict, takes "/a/" and "/a//": a
    # strict "/a/" after it is never reached. Taking one "/" off each, the
    # check compared "/a/" with "/a", and took it without a word (it had
    # refused it); and resolve(), comparing so, gave HEAD /a/ to the GET
    # route before a HEAD route "/a/" that _register() let be beside it.
    routes = Router()
    routes.add_route(ok, "/a//", strict_slashes=False, name="first")
    with pytest.raises(ValueError, match="would never be reached"):
        routes.add_route(ok, "/a/", strict_slashes=True, name="later")
    routes.add_route(ok, "/a", strict_slashes=True, name="kept")  # (which it does not take)
    routes = Router()
    get = routes.add_route(ok, "/a//", strict_slashes=False, name="get")
    head = routes.add_route(ok, "/a/", ["HEAD"], strict_slashes=True, name="head")
    assert routes.resolve("/a/", "", "HEAD", False).route is head
    assert routes.resolve("/a//", "", "HEAD", False).route is get
    assert routes.resolve("/a/", "", "GET", False).route is get


def test_a_head_route_a_get_path_parameter_before_pairs_with_is_taken() -> None:
    # (Review R3 of 7c73df0.) resolve() gives a HEAD route the HEAD of the
    # GET route that took its path when their URIs differ in trailing "/"s
    # alone: "/<q:path>//" beside "/<p:path>" takes HEAD /v/ and /v//. The
    # check of a route with parameters before, taking one "/" off each,
    # refused it as never reached.
    routes = Router()
    get = routes.add_route(ok, "/<p:path>", strict_slashes=False, name="get")
    head = routes.add_route(ok, "/<q:path>//", ["HEAD"], strict_slashes=True, name="head")
    assert routes.resolve("/v//", "", "HEAD", False).route is head
    assert routes.resolve("/v//", "", "GET", False).route is get
    assert routes.resolve("/v", "", "HEAD", False).route is get


_PAIR_STEMS = ["", "/a", "/<x>", "/a/<x>", "/<p:path>", "/a/<p:path>", "/<x>/a", "/<n:int>"]
_PAIR_HOSTS = [None, "a.example", "a.example:8080", ("a.example", "b.example")]
_PAIR_METHODS = [None, ("GET",), ("HEAD",), ("POST",)]


def _pair_route(router: Router, uri: str, methods: Any, host: Any, strict: Any) -> Route:
    kind = dict(host=host, strict_slashes=strict)
    if methods is None:
        return router.add_websocket_route(chat, uri, **kind)
    return router.add_route(ok, uri, list(methods), **kind)


@settings(max_examples=1000, deadline=None)
@given(
    st.sampled_from(_PAIR_STEMS),
    st.tuples(st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.sampled_from([None, True, False]), st.sampled_from([None, True, False])),
    st.tuples(st.sampled_from(_PAIR_METHODS), st.sampled_from(_PAIR_METHODS)),
    st.tuples(st.sampled_from(_PAIR_HOSTS), st.sampled_from(_PAIR_HOSTS)),
    st.booleans(),
)
@example("/<p:path>", (0, 2), (None, None), (("GET",), ("HEAD",)), (None, None), False)
def test_a_route_of_the_same_uri_is_refused_exactly_when_resolve_never_gives_it(
    stem: str, slashes: Any, strict: Any, methods: Any, hosts: Any, router_strict: bool
) -> None:
    # Two routes of one URI but for their trailing "/"s and their parameters'
    # names: the later is refused as never reached if and only if no request
    # (path, host, method, upgrade or not) resolves to it in a table that
    # takes it anyway.
    renamed = stem.replace("<x>", "<y>").replace("<p:", "<q:").replace("<n:", "<m:")
    uris = [(stem + "/" * slashes[0]) or "/", (renamed + "/" * slashes[1]) or "/"]
    routes = Router(strict_slashes=router_strict)
    _pair_route(routes, uris[0], methods[0], hosts[0], strict[0])
    try:
        _pair_route(routes, uris[1], methods[1], hosts[1], strict[1])
        refused = None
    except ValueError as exc:
        assert "would never be reached" in str(exc)
        refused = str(exc)
    forced = Router(strict_slashes=router_strict)
    _pair_route(forced, uris[0], methods[0], hosts[0], strict[0])
    later = _pair_route(
        Router(strict_slashes=router_strict), uris[1], methods[1], hosts[1], strict[1]
    )
    forced.routes.append(later)
    fills = ["v", "7", "v/w"]
    paths = [
        (stem.replace("<x>", "v").replace("<n:int>", "7").replace("<p:path>", fill) + "/" * k)
        or "/"
        for fill in fills
        for k in range(4)
    ]
    reached = [
        request
        for request in itertools.product(
            paths,
            ["", "a.example", "a.example:8080", "b.example"],
            ["GET", "HEAD", "POST"],
            [False, True],
        )
        if forced.resolve(*request).route is later
    ]
    if refused is not None:
        assert not reached, (refused, reached[:3])
    elif not (stem.endswith("<p:path>") and slashes[0] == 1 and slashes[1] == 2):
        # (Known: a path parameter strict about its "/" then "/" takes each
        # path of the same with "//", "/<p:path>/" each of "/<q:path>//"'s;
        # the check of parameters does not see it.)
        assert reached, uris


def test_resolve_sees_the_public_route_list_changed_in_place() -> None:
    routes = Router()
    first = routes.add_route(ok, "/a", name="first")
    assert routes.resolve("/a", "", "GET", False).route is first
    later = Route(
        ok,
        "/a",
        name="later",
        subprotocols=None,
        hosts=None,
        strict_slashes=False,
        methods=frozenset({"GET"}),
    )
    routes.routes.insert(0, later)
    assert routes.resolve("/a", "", "GET", False).route is later
    routes.routes.remove(later)
    routes.routes[0] = later
    assert routes.resolve("/a", "", "GET", False).route is later
    routes.routes.clear()
    assert routes.resolve("/a", "", "GET", False).status == 404


def test_resolve_while_another_thread_builds_the_index() -> None:
    # A router shared by servers in several threads (a SyncTestClient serves
    # in a thread of its own): one thread's resolve() may run while another
    # is building the index. Simulated here: reading a route's ``exact``
    # during the build resolves, as a thread switched to there would.
    routes = Router()
    routes.add_route(ok, "/a", name="a")
    meanwhile: list[int] = []

    class Switching(Route):
        __slots__ = ("_exact",)

        @property
        def exact(self) -> frozenset[str] | None:
            if not meanwhile:
                meanwhile.append(-1)
                meanwhile[0] = routes.resolve("/a", "", "GET", False).status
            return self._exact

        @exact.setter
        def exact(self, value: frozenset[str] | None) -> None:
            self._exact = value

    routes.routes.append(
        Switching(
            ok,
            "/b",
            name="b",
            subprotocols=None,
            hosts=None,
            strict_slashes=False,
            methods=frozenset({"GET"}),
        )
    )
    assert routes.resolve("/a", "", "GET", False).status == 0
    assert meanwhile == [0]  # (was 404: the half-built index had no route at all)


def test_a_non_strict_route_after_a_strict_one_of_its_uri_is_taken_for_its_other_form() -> None:
    # A strict route takes one form of its URI; a later route of the same URI
    # without strict slashes takes both, and the other form reaches it. It
    # was refused as "never reached", the application refused at startup.
    async def first(request: Request, **params: Any) -> Any:
        return text("first")

    async def second(request: Request, **params: Any) -> Any:
        return text("second")

    routes = Router()
    for uri in ("/a/<x>", "/b", "/c/", "/d/<x:int>/"):
        routes.get(uri, strict_slashes=True, name=f"strict{uri}")(first)
        routes.get(uri, name=f"loose{uri}")(second)
    for path, other in (("/a/k", "/a/k/"), ("/b", "/b/"), ("/c/", "/c"), ("/d/5/", "/d/5")):
        assert routes.resolve(path, "x", "GET", False).route.handler is first, path
        assert routes.resolve(other, "x", "GET", False).route.handler is second, other
    # Where the strict route takes both forms, the later one is still refused.
    for uri in ("/", "/f/<p:path>"):
        routes.get(uri, strict_slashes=True, name=f"strict{uri}")(first)
        with pytest.raises(ValueError, match="would never be reached"):
            routes.get(uri, name=f"loose{uri}")(second)
    assert routes.resolve("/f/x/", "x", "GET", False).route.handler is first


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda app: app.middleware("request"), r"apply="),
        (lambda app: app.on_request, r"apply="),
        (lambda app: app.on_response, r"apply="),
        (lambda app: app.listener("before_server_start"), r"on_startup"),
        (lambda app: app.before_server_start, r"on_startup"),
        (lambda app: app.after_server_start, r"on_startup"),
        (lambda app: app.before_server_stop, r"on_shutdown"),
        (lambda app: app.after_server_stop, r"on_shutdown"),
        (lambda app: app.exception(ValueError), r"HandshakeError"),
        (lambda app: app.blueprint, r"include\("),
        (lambda app: app.ctx, r"server\.ctx"),
        (lambda app: app.options("/x"), r"methods=\[\"OPTIONS\"\]"),
        (lambda app: app.run(port=8000), r"serve\("),
    ],
)
def test_a_sanic_apps_decorators_say_what_to_write_instead(call: Any, says: str) -> None:
    # A Sanic application ported to a Router fails where it is imported, on
    # its first @app.middleware or @app.before_server_start: that was a bare
    # "'Router' object has no attribute ...", leaving the porter to search
    # the README for what does the same here. The error names it now; hasattr()
    # still says False (it is an AttributeError), and other names are as before.
    app = Router()
    with pytest.raises(AttributeError, match=says) as raised:
        call(app)
    assert "Sanic" in str(raised.value)
    assert not hasattr(app, "middleware")
    with pytest.raises(AttributeError, match=r"^'Router' object has no attribute 'nothing'$"):
        app.nothing  # noqa: B018


async def test_a_route_name_that_is_no_text_is_refused_where_it_is_given() -> None:
    # A route's name is a label of every Prometheus series of its route: one
    # with a lone surrogate (a name built from bytes decoded with
    # surrogateescape, say) made every scrape of /metrics a 500, the
    # prometheus_client's UTF-8 encoding failing, long after the start.
    async def handler(request: Request) -> Any:
        return text("ok")

    routes = Router()
    with pytest.raises(ValueError, match=r"route name 'a\\ud800b' is not text"):
        routes.add_route(handler, "/a", name="a\ud800b")
    sub = Router()
    sub.add_route(handler, "/b", name="b")
    with pytest.raises(ValueError, match=r"route name 'p\\udc80.b' is not text"):
        routes.include(sub, "/p", name_prefix="p\udc80")
    assert routes.routes == []

    async def chat(request: Request, ws: WebSocket) -> None:
        pass

    routes.add_websocket_route(chat, "/c", name="caf\u00e9 \U0001f600")  # (any text is)
    server = serve(routes, "127.0.0.1", 0, metrics_path="/metrics")
    async with server, httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{server.port}/metrics")
    assert response.status_code == 200
    assert 'route="caf\u00e9 \U0001f600"' in response.text
