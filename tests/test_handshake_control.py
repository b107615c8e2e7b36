"""Decisions at the handshake: subprotocols, on_connect hooks, Origin, route options."""

from __future__ import annotations

import asyncio
import json as json_module
import logging
from typing import Any

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from wsserver import BadRequest, HandshakeError, Request, Router, WebSocket
from wsserver.response import Acceptance, Response, accept, json, text

from .conftest import StartServer


async def reply_info(request: Request, ws: WebSocket) -> None:
    await ws.send(
        {
            "subprotocol": ws.subprotocol,
            "user": getattr(request.ctx, "user", None),
            "path": request.path,
        }
    )


async def connect_info(port: int, path: str = "/", **kwargs: Any) -> dict[str, Any]:
    async with websockets.connect(f"ws://127.0.0.1:{port}{path}", **kwargs) as ws:
        return json_module.loads(await ws.recv())  # type: ignore[no-any-return]


async def denied(port: int, path: str = "/", **kwargs: Any) -> Any:
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(f"ws://127.0.0.1:{port}{path}", **kwargs):
            pass
    return info.value.response


class TestSubprotocols:
    async def test_first_in_client_order_that_route_supports(self, run_server: StartServer) -> None:
        routes = Router()
        routes.add_websocket_route(reply_info, "/", subprotocols=["chat.v1", "chat.v2"])
        server = await run_server(routes)
        info = await connect_info(server.port, subprotocols=["chat.v2", "chat.v1"])
        assert info["subprotocol"] == "chat.v2"
        info = await connect_info(server.port, subprotocols=["other", "chat.v1"])
        assert info["subprotocol"] == "chat.v1"
        assert (await connect_info(server.port))["subprotocol"] is None

    async def test_required_subprotocol(self, run_server: StartServer) -> None:
        routes = Router()
        routes.add_websocket_route(reply_info, "/", subprotocols=["mqtt"], require_subprotocol=True)
        server = await run_server(routes)
        response = await denied(server.port, subprotocols=["other"])
        assert response.status_code == 400
        assert b"mqtt" in response.body
        response = await denied(server.port)
        assert response.status_code == 400
        assert (await connect_info(server.port, subprotocols=["mqtt"]))["subprotocol"] == "mqtt"

    def test_require_without_list_is_refused(self) -> None:
        with pytest.raises(ValueError):
            Router().add_websocket_route(reply_info, "/", require_subprotocol=True)


class TestOnConnect:
    async def test_async_hook_fills_ctx_and_denies(self, run_server: StartServer) -> None:
        async def authenticate(request: Request) -> Response | None:
            await asyncio.sleep(0.01)
            token = request.args.get("token") or request.cookies.get("token")
            if token is None:
                return text("Missing token", 401, {"WWW-Authenticate": "Bearer"})
            if token != "secret":
                return json({"error": "forbidden"}, 403)
            request.ctx.user = "alice"
            return None

        routes = Router()
        routes.add_websocket_route(reply_info, "/secure", on_connect=authenticate)
        server = await run_server(routes)
        response = await denied(server.port, "/secure")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.body == b"Missing token"
        response = await denied(server.port, "/secure?token=nope")
        assert response.status_code == 403
        assert response.headers["Content-Type"] == "application/json"
        assert response.body == b'{"error": "forbidden"}'
        info = await connect_info(server.port, "/secure?token=secret")
        assert info["user"] == "alice"
        info = await connect_info(
            server.port, "/secure", additional_headers={"Cookie": "token=secret"}
        )
        assert info["user"] == "alice"

    async def test_sync_hook(self, run_server: StartServer) -> None:
        def hook(request: Request) -> None:
            request.ctx.user = request.headers.get("x-user")

        routes = Router()
        routes.add_websocket_route(reply_info, "/", on_connect=hook)
        server = await run_server(routes)
        info = await connect_info(server.port, additional_headers={"X-User": "bob"})
        assert info["user"] == "bob"

    async def test_hook_failure_is_500(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def broken(request: Request) -> None:
            raise RuntimeError("hook bug")

        def wrong_type(request: Request) -> str:
            return "yes"

        routes = Router()
        routes.add_websocket_route(reply_info, "/a", on_connect=broken)
        routes.add_websocket_route(reply_info, "/b", on_connect=wrong_type)
        server = await run_server(routes)
        assert (await denied(server.port, "/a")).status_code == 500
        assert (await denied(server.port, "/b")).status_code == 500
        assert len([r for r in caplog.records if r.exc_info]) == 2

    async def test_a_denial_h11_refuses_is_counted_as_the_500_it_became(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        # A hook's 401 whose Content-Length its body does not match: the client
        # gets a 500 (the hook's failure, as an HTTP handler's), and the
        # handshakes counter (wsserver_handshakes_total) said 401 all the same.
        def short(request: Request) -> Response:
            return text("no", 401, {"Content-Length": "10"})

        routes = Router()
        routes.add_websocket_route(reply_info, "/", on_connect=short)
        server = await run_server(routes)
        assert (await denied(server.port)).status_code == 500
        assert server.counters.handshakes == {500: 1}
        assert server.counters.http_responses == {500: 1}
        assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1

    async def test_bad_request_from_a_hook_is_400_with_its_message(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        # As from an HTTP route's handler: the client's mistake, not the server's.
        async def needs_token(request: Request) -> None:
            if not request.args.get("token"):
                raise BadRequest("Send a token as ?token=.")

        def needs_room(request: Request) -> None:
            raise BadRequest("No such room.")

        routes = Router()
        routes.add_websocket_route(reply_info, "/a", on_connect=needs_token)
        routes.add_websocket_route(reply_info, "/b", on_connect=needs_room, error_format="json")
        server = await run_server(routes)
        response = await denied(server.port, "/a")
        assert (response.status_code, response.body) == (400, b"Send a token as ?token=.\n")
        response = await denied(server.port, "/b")
        assert response.status_code == 400
        assert json_module.loads(response.body)["message"] == "No such room."
        assert (await connect_info(server.port, "/a?token=t"))["path"] == "/a"
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    async def test_handshake_error_from_a_hook_is_its_status_and_headers(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        # The exception "an opening handshake that must be answered with an
        # HTTP error" says its answer: a hook's abort(401), not a 500.
        async def needs_token(request: Request) -> None:
            if not request.args.get("token"):
                raise HandshakeError(401, "Missing token", [("WWW-Authenticate", "Bearer")])

        routes = Router()
        routes.add_websocket_route(reply_info, "/a", on_connect=needs_token)
        routes.add_websocket_route(reply_info, "/b", on_connect=needs_token, error_format="json")
        server = await run_server(routes)
        response = await denied(server.port, "/a")
        assert (response.status_code, response.body) == (401, b"Missing token\n")
        assert response.headers["WWW-Authenticate"] == "Bearer"
        response = await denied(server.port, "/b")
        assert response.status_code == 401
        assert json_module.loads(response.body)["message"] == "Missing token"
        assert (await connect_info(server.port, "/a?token=t"))["path"] == "/a"
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    @pytest.mark.parametrize("kept_alive", [False, True])
    async def test_slow_hook_bounded_by_open_timeout(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture, kept_alive: bool
    ) -> None:
        # The client sent its request: it gets an answer, a 503, not a bare
        # close (and the operator a warning: the hook is too slow). Also after
        # an earlier request on the same connection (whose 200 hid it).
        cancelled = asyncio.Event()

        async def stuck(request: Request) -> None:
            try:
                await asyncio.sleep(30)
            finally:
                cancelled.set()

        routes = Router()
        routes.add_websocket_route(reply_info, "/", on_connect=stuck)

        @routes.get("/plain")
        async def plain(request: Request) -> Response:
            return text("hi")

        caplog.set_level(logging.INFO, logger="wsserver.access")
        server = await run_server(routes, open_timeout=0.3, access_log=True)
        from .helpers import upgrade_request

        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        if kept_alive:
            writer.write(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await asyncio.wait_for(reader.readuntil(b"hi"), 3)).startswith(b"HTTP/1.1 200")
        writer.write(upgrade_request("/"))
        answer = await asyncio.wait_for(reader.read(), 3)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert cancelled.is_set()
        (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert "did not answer the handshake for / within open_timeout" in warning.getMessage()
        assert server.stats()["handshakes"] == {503: 1}
        access = [r.getMessage() for r in caplog.records if r.name == "wsserver.access"]
        assert any(" / 503 " in line for line in access), access
        caplog.clear()

    @pytest.mark.parametrize("body", [False, True])
    async def test_a_hook_has_open_timeout_from_the_whole_request(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture, body: bool
    ) -> None:
        # open_timeout bounds the request's coming, then the hook's answer,
        # each in full. A head that came slowly (0.7 s of 1.2) left a hook
        # only the rest: a 503 whose warning blamed the application (it "did
        # not answer ... within open_timeout"), which took 0.6 s; with a body,
        # whose last piece started the timer again, the hook had it all.
        async def looks_up(request: Request) -> None:
            await asyncio.sleep(0.6)  # (a lookup: within open_timeout)

        routes = Router()
        routes.add_websocket_route(reply_info, "/", on_connect=looks_up)
        server = await run_server(routes, open_timeout=1.2)
        from .helpers import upgrade_request

        request = upgrade_request("/", [("Content-Length", "2")] if body else None)
        request += b"hi" if body else b""
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request[:20])
        await asyncio.sleep(0.7)  # a slow client: the rest of its request comes later
        writer.write(request[20:])
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        writer.close()
        assert head.startswith(b"HTTP/1.1 101 "), head
        assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    @pytest.mark.parametrize("cut_by", ["open_timeout", "shutdown"])
    async def test_the_503_of_a_hook_cut_short_is_in_the_routes_error_format(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture, cut_by: str
    ) -> None:
        # error_format shapes every HTTP error of the route's handshake (its
        # 403, 400, 500, 503 of max_connections): the 503 of a hook that took
        # over open_timeout, or that the shutdown cut short, too.
        started = asyncio.Event()

        async def stuck(request: Request) -> None:
            started.set()
            await asyncio.sleep(30)

        routes = Router()
        routes.add_websocket_route(reply_info, "/", on_connect=stuck, error_format="json")
        timeout = 0.3 if cut_by == "open_timeout" else 10.0
        server = await run_server(routes, open_timeout=timeout)
        from .helpers import upgrade_request

        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(upgrade_request("/"))
        await asyncio.wait_for(started.wait(), 3)
        if cut_by == "shutdown":
            closing = asyncio.create_task(server.close(timeout=1))
        answer = await asyncio.wait_for(reader.read(), 3)
        writer.close()
        if cut_by == "shutdown":
            await closing
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 "), answer
        assert b"\r\nContent-Type: application/json" in head, head
        assert json_module.loads(body)["status"] == 503
        caplog.clear()

    async def test_hook_accepts_with_a_subprotocol_and_101_headers(
        self, run_server: StartServer
    ) -> None:
        # accept(): the hook chooses among what the client offered (the route
        # lists only "v1": the hook may go beyond it), and adds headers to the
        # 101 (Set-Cookie twice). accept() without a subprotocol keeps the
        # route's choice.
        def negotiate(request: Request) -> Acceptance | Response:
            assert isinstance(request.subprotocols, list)
            if request.headers.get("x-plain"):
                return accept(headers={"X-Session": "plain"})
            if "v3" in request.subprotocols:
                return accept("v3", [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2")])
            if not request.subprotocols:
                return text("Offer a subprotocol", 400)
            return accept()

        routes = Router()
        routes.add_websocket_route(reply_info, "/", subprotocols=["v1"], on_connect=negotiate)
        server = await run_server(routes)
        url = f"ws://127.0.0.1:{server.port}/"
        async with websockets.connect(url, subprotocols=["v1", "v3"]) as ws:
            assert ws.subprotocol == "v3"
            assert ws.response.headers.get_all("Set-Cookie") == ["a=1; Path=/", "b=2"]
            assert json_module.loads(await ws.recv())["subprotocol"] == "v3"
        async with websockets.connect(url, subprotocols=["x", "v1"]) as ws:
            assert ws.subprotocol == "v1"  # the route's choice, kept
            assert "Set-Cookie" not in ws.response.headers
        async with websockets.connect(
            url, subprotocols=["v1"], additional_headers={"X-Plain": "1"}
        ) as ws:
            assert ws.subprotocol == "v1"
            assert ws.response.headers["X-Session"] == "plain"
        assert (await denied(server.port)).status_code == 400

    async def test_hook_accepting_with_a_subprotocol_not_offered_is_500(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        # RFC 6455 4.2.2: the server's subprotocol must be one the client
        # offered; a hook that says otherwise is a bug, answered like one.
        routes = Router()
        routes.add_websocket_route(reply_info, "/", on_connect=lambda request: accept("v9"))
        server = await run_server(routes)
        assert (await denied(server.port, subprotocols=["v1"])).status_code == 500
        (record,) = [r for r in caplog.records if r.exc_info]
        assert "'v9' was not offered by the client (it offered: v1)" in str(record.exc_info[1])

    @pytest.mark.parametrize(
        ("headers", "error"),
        [
            ({"Sec-WebSocket-Protocol": "v1"}, "writes the Sec-WebSocket-Protocol header itself"),
            ({"connection": "close"}, "writes the connection header itself"),
            # (Every Sec-WebSocket-*, as documented: -Version and -Key went through.)
            ({"Sec-WebSocket-Version": "13"}, "writes the Sec-WebSocket-Version header itself"),
            ({"sec-websocket-key": "x"}, "writes the sec-websocket-key header itself"),
            ({"Content-Length": "0"}, "no Content-Length header"),
            ({"X-A": "1\r\nX-B: 2"}, "invalid header"),
            ({"X A": "1"}, "invalid header"),
        ],
    )
    def test_accept_refuses_headers_a_101_cannot_carry(
        self, headers: dict[str, str], error: str
    ) -> None:
        with pytest.raises(ValueError, match=error):
            accept(headers=headers)

    def test_accept_takes_a_str_subprotocol(self) -> None:
        with pytest.raises(TypeError, match="not list"):
            accept(["v1"])  # type: ignore[arg-type]

    async def test_close_1008_after_accepting(self, run_server: StartServer) -> None:
        routes = Router()

        @routes.websocket("/")
        async def handler(request: Request, ws: WebSocket) -> None:
            message = await ws.recv()
            if message != "let me in":
                await ws.close(1008, "policy violation")

        server = await run_server(routes)
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("hello?")
            await ws.wait_closed()
        assert (ws.close_code, ws.close_reason) == (1008, "policy violation")

    async def test_a_response_a_handler_returns_is_said_to_be_too_late(
        self, run_server: StartServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        # A Sanic-style auth decorator that returns json(..., 403) instead of
        # calling the handler: on a WebSocket route the 101 is out before the
        # handler runs, so the 403 goes nowhere and the client sees a plain
        # close. The server says so, once a route (at DEBUG after), naming what
        # refuses in time.
        def protected(handler: Any) -> Any:
            async def checked(request: Request, ws: WebSocket) -> Any:
                if request.args.get("token") != "t":
                    return json({"error": "forbidden"}, 403)
                return await handler(request, ws)

            return checked

        routes = Router()

        @routes.websocket("/ws")
        @protected
        async def handler(request: Request, ws: WebSocket) -> None:
            await ws.send("welcome")

        @routes.websocket("/fine")
        async def fine(request: Request, ws: WebSocket) -> str:
            return "a value of no concern"

        server = await run_server(routes)
        caplog.set_level(logging.DEBUG, logger="wsserver")
        for path in ("/ws", "/ws", "/fine", "/ws?token=t"):
            async with websockets.connect(f"ws://127.0.0.1:{server.port}{path}") as ws:
                if path.endswith("token=t"):
                    assert await ws.recv() == "welcome"
                await ws.wait_closed()
            assert ws.close_code == 1000
        said = [r for r in caplog.records if "returned a 403 response" in r.getMessage()]
        assert [r.levelno for r in said] == [logging.WARNING, logging.DEBUG]
        message = said[0].getMessage()
        assert "/ws" in message and "after the 101" in message, message
        assert "on_connect" in message and "HandshakeError" in message, message
        assert not [
            r for r in caplog.records if "/fine" in r.getMessage() and "returned" in r.getMessage()
        ]


class TestOrigins:
    async def test_server_setting(self, run_server: StartServer) -> None:
        routes = Router()
        routes.add_websocket_route(reply_info, "/")
        server = await run_server(routes, origins=["https://good.example", None])
        good = await connect_info(server.port, origin="https://good.example")
        assert good["path"] == "/"
        await connect_info(server.port)  # no Origin header: admitted by None
        response = await denied(server.port, origin="https://evil.example")
        assert response.status_code == 403
        response = await denied(
            server.port, origin="https://good.example", additional_headers={"Origin": "x"}
        )
        assert response.status_code == 403

    async def test_route_setting_overrides_server(self, run_server: StartServer) -> None:
        routes = Router()
        routes.add_websocket_route(reply_info, "/open")
        routes.add_websocket_route(reply_info, "/strict", origins=["https://app.example"])
        server = await run_server(routes, origins=["https://other.example"])
        assert (await denied(server.port, "/strict")).status_code == 403  # no Origin
        await connect_info(server.port, "/strict", origin="https://app.example")
        assert (await denied(server.port, "/open", origin="https://app.example")).status_code == 403
        await connect_info(server.port, "/open", origin="https://other.example")


class TestRouteOptions:
    async def test_host_version_and_slashes(self, run_server: StartServer) -> None:
        routes = Router()
        routes.add_websocket_route(reply_info, "/h", host="api.example")
        routes.add_websocket_route(reply_info, "/feed", version=2)
        routes.add_websocket_route(reply_info, "/strict/", strict_slashes=True)
        server = await run_server(routes)
        port = server.port
        # The URI's host goes into the Host header; the socket goes to 127.0.0.1.
        async with websockets.connect(
            f"ws://API.example:{port}/h", host="127.0.0.1", port=port
        ) as ws:
            assert "/h" in await ws.recv()
        assert (await denied(port, "/h")).status_code == 404
        assert (await connect_info(port, "/v2/feed"))["path"] == "/v2/feed"
        assert (await connect_info(port, "/v2/feed/"))["path"] == "/v2/feed/"
        assert (await denied(port, "/feed")).status_code == 404
        await connect_info(port, "/strict/")
        assert (await denied(port, "/strict")).status_code == 404
        assert routes.url_for("reply_info") == "/h"


def test_accept_and_response_keep_every_value_of_a_headers_object() -> None:
    from wsserver import Headers

    cookies = Headers([("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    assert accept(headers=cookies).headers == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    assert text("x", 200, cookies).headers[:2] == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    # HandshakeError's headers are pairs, given as text()'s are: pairs, a
    # mapping, a Headers.
    assert HandshakeError(401, "x", cookies).headers == [
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ]
    denied = HandshakeError(401, "Missing token", {"WWW-Authenticate": "Bearer"})
    assert denied.headers == [("WWW-Authenticate", "Bearer")]
