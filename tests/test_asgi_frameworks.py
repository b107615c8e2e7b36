"""Starlette and FastAPI applications on wsserver, through real clients.

What people actually write: Starlette's ``WebSocketRoute``, its denial
response and lifespan state, JSON routes; FastAPI's ``@app.websocket`` with
path parameters and a dependency that refuses with 1008, ``@app.post`` with a
pydantic body. Clients: ``websockets`` and ``httpx``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from fastapi import Depends, FastAPI, WebSocketException, status
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wsserver.server.http_protocol import HttpProtocol
from wsserver.server.server import READ_SIZE

from .helpers import errors_logged, wait_for

TIMEOUT = 5


@pytest.fixture(autouse=True)
def no_errors_logged(caplog: pytest.LogCaptureFixture) -> Any:
    """Fail a test that logged an error it did not expect (tests that expect one clear it)."""
    caplog.set_level(logging.INFO, logger="wsserver")
    yield caplog
    assert not errors_logged(caplog)


# ==================================================================== Starlette

SHUTDOWNS: list[str] = []


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from lifespan"}
    SHUTDOWNS.append("shut down")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol=websocket.scope["subprotocols"][0])
    await websocket.send_text(websocket.state.greeting)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        pass


async def guarded(websocket: WebSocket) -> None:
    if websocket.query_params.get("token") != "secret":
        await websocket.send_denial_response(
            PlainTextResponse("a token, please", status_code=401, headers={"X-Why": "token"})
        )
        return
    await websocket.accept()
    await websocket.send_json({"welcome": True})
    await websocket.close(code=4001, reason="that is all")


async def items(request: Request) -> JSONResponse:
    if request.method == "POST":
        payload = await request.json()
        return JSONResponse({"received": payload, "greeting": request.state.greeting}, 201)
    return JSONResponse({"item": request.path_params["item_id"], "q": request.query_params["q"]})


starlette_app = Starlette(
    routes=[
        WebSocketRoute("/ws", echo),
        WebSocketRoute("/guarded", guarded),
        Route("/items/{item_id:int}", items, methods=["GET"]),
        Route("/items", items, methods=["POST"]),
    ],
    lifespan=lifespan,
)


async def test_starlette_websocket_route_with_lifespan_state(run_asgi: Any) -> None:
    server = await run_asgi(starlette_app)
    async with websockets.connect(
        f"ws://127.0.0.1:{server.port}/ws", subprotocols=["json", "other"]
    ) as ws:
        assert ws.subprotocol == "json"
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "hello from lifespan"
        for message in ("text", b"\x01\x02", "x" * 100_000):
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == message
    await server.close()
    assert SHUTDOWNS.pop() == "shut down"


async def test_starlette_denial_response_and_close_code(run_asgi: Any) -> None:
    server = await run_asgi(starlette_app)
    with pytest.raises(InvalidStatus) as caught:
        await websockets.connect(f"ws://127.0.0.1:{server.port}/guarded")
    response = caught.value.response
    assert response.status_code == 401
    assert response.headers["X-Why"] == "token" and response.body == b"a token, please"
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/guarded?token=secret") as ws:
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == '{"welcome":true}'
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert (ws.close_code, ws.close_reason) == (4001, "that is all")


async def test_starlette_json_routes(run_asgi: Any) -> None:
    server = await run_asgi(starlette_app)
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient() as client:
        got = await client.get(f"{base}/items/42?q=find")
        posted = await client.post(f"{base}/items", json={"name": "ünïcode", "n": [1, 2]})
        missing = await client.get(f"{base}/nothing")
        wrong = await client.delete(f"{base}/items")
    assert got.status_code == 200 and got.json() == {"item": 42, "q": "find"}
    assert posted.status_code == 201
    assert posted.json() == {
        "received": {"name": "ünïcode", "n": [1, 2]},
        "greeting": "hello from lifespan",
    }
    assert missing.status_code == 404 and wrong.status_code == 405


async def test_starlette_files_are_sent_by_the_server(run_asgi: Any, tmp_path: Any) -> None:
    # Starlette's FileResponse (and StaticFiles, built on it) hands the file
    # to the server with http.response.pathsend when the scope offers it;
    # a range it still sends itself.
    data = os.urandom(200_000)
    (tmp_path / "video.bin").write_bytes(data)
    sent: list[str] = []

    def recorded(app: Any) -> Any:
        async def recording(scope: dict[str, Any], receive: Any, send: Any) -> None:
            async def send_recorded(message: dict[str, Any]) -> None:
                sent.append(message["type"])
                await send(message)

            await app(scope, receive, send_recorded)

        return recording

    async def download(request: Request) -> FileResponse:
        return FileResponse(tmp_path / "video.bin", filename="video.bin")

    app = Starlette(
        routes=[
            Route("/download", download),
            Mount("/static", StaticFiles(directory=tmp_path)),
        ]
    )
    server = await run_asgi(recorded(app), lifespan="off")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        whole = await client.get("/download")
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["content-disposition"] == 'attachment; filename="video.bin"'
        assert sent == ["http.response.start", "http.response.pathsend"]
        static = await client.get("/static/video.bin")
        assert static.content == data and static.headers["etag"]
        assert sent[2:] == ["http.response.start", "http.response.pathsend"]
        again = await client.get(
            "/static/video.bin", headers={"if-none-match": static.headers["etag"]}
        )
        assert again.status_code == 304
        part = await client.get("/download", headers={"range": "bytes=1000-1999"})
        assert part.status_code == 206 and part.content == data[1000:2000]
        assert "http.response.pathsend" not in sent[-2:]


async def test_gzip_and_files_sent_by_the_server_as_the_readme_says(
    run_asgi: Any, tmp_path: Any
) -> None:
    # (README, Differences from uvicorn.) Starlette's GZipMiddleware leaves a
    # pathsend response as it is; hiding the extension from Starlette, as the
    # README shows, has the file sent in pieces, and gzipped, as under uvicorn.
    (tmp_path / "app.js").write_text("console.log('hello');\n" * 2000)
    app = Starlette(routes=[Mount("/static", StaticFiles(directory=tmp_path))])
    app.add_middleware(GZipMiddleware, minimum_size=100)

    async def files_in_pieces(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope["extensions"].pop("http.response.pathsend", None)
        await app(scope, receive, send)

    for served, encoding in ((app, None), (files_in_pieces, "gzip")):
        server = await run_asgi(served, lifespan="off")
        async with httpx.AsyncClient() as client:
            response = await client.get(
                f"http://127.0.0.1:{server.port}/static/app.js",
                headers={"accept-encoding": "gzip"},
            )
        assert response.headers.get("content-encoding") == encoding
        assert response.text == (tmp_path / "app.js").read_text()


# ====================================================================== FastAPI

fastapi_app = FastAPI()


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


@fastapi_app.post("/items/", status_code=201)
async def create_item(item: Item) -> dict[str, Any]:
    return {"name": item.name.upper(), "total": item.price * 2, "tags": item.tags}


async def require_token(websocket: WebSocket, token: str | None = None) -> str:
    """A dependency that refuses a connection without the right token, with 1008."""
    if token != "secret":
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="bad token")
    return token


async def accept_then_require_token(websocket: WebSocket, token: str | None = None) -> str:
    """The same, for apps that accept first: the client then sees the 1008 close."""
    await websocket.accept()
    if token != "secret":
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="bad token")
    return token


@fastapi_app.websocket("/rooms/{room}/ws")
async def room(websocket: WebSocket, room: str, token: str = Depends(require_token)) -> None:
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_json({"room": room, "echo": text})
    except WebSocketDisconnect:
        pass


@fastapi_app.websocket("/late/{room}/ws")
async def late(
    websocket: WebSocket, room: str, token: str = Depends(accept_then_require_token)
) -> None:
    await websocket.send_json({"room": room})


async def test_fastapi_websocket_path_parameters(run_asgi: Any) -> None:
    server = await run_asgi(fastapi_app)
    async with websockets.connect(
        f"ws://127.0.0.1:{server.port}/rooms/lobby/ws?token=secret"
    ) as ws:
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == '{"room":"lobby","echo":"hi"}'


async def test_fastapi_dependency_refusing_with_1008(run_asgi: Any) -> None:
    server = await run_asgi(fastapi_app)
    # Before accepting: the spec answers a close with 403, no WebSocket at all.
    with pytest.raises(InvalidStatus) as caught:
        await websockets.connect(f"ws://127.0.0.1:{server.port}/rooms/lobby/ws?token=nope")
    assert caught.value.response.status_code == 403
    # After accepting: the client gets the close code and reason.
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/late/lobby/ws") as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert (ws.close_code, ws.close_reason) == (1008, "bad token")
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/late/hall/ws?token=secret") as ws:
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == '{"room":"hall"}'


async def test_fastapi_post_with_pydantic_body(run_asgi: Any) -> None:
    server = await run_asgi(fastapi_app)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        created = await client.post("/items/", json={"name": "pen", "price": 1.25, "tags": ["a"]})
        invalid = await client.post("/items/", json={"name": "pen"})
        docs = await client.get("/openapi.json")
    assert created.status_code == 201
    assert created.json() == {"name": "PEN", "total": 2.5, "tags": ["a"]}
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["body", "price"]
    assert docs.status_code == 200 and "/items/" in docs.json()["paths"]


# ============================================== the client's bad body, mid-response


async def _stream_back(request: Request) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            yield chunk

    return StreamingResponse(body())


streaming_app = Starlette(routes=[Route("/stream", _stream_back, methods=["POST"])])


def _exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


@pytest.mark.parametrize(
    "body",
    [
        b"2\r\nab\r\nzz\r\n",  # a bad chunk size
        b"3e8\r\n" + b"a" * 1000 + b"\r\n1\r\nb\r\n0\r\n\r\n",  # beyond max_body_size
    ],
)
async def test_a_bad_body_after_a_streamed_response_started_is_no_app_error(
    run_asgi: Any, body: bytes
) -> None:
    # The server closes the connection for it, and Starlette makes the
    # http.disconnect a ClientDisconnect: it was logged as the application's
    # error, with a traceback, and counted in handler_errors.
    server = await run_asgi(streaming_app, max_body_size=1000)
    head = b"POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    received = await asyncio.to_thread(_exchange, server.port, head + body)
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\n\r\n2\r\nab\r\n" in received or b"a" * 100 in received  # what was streamed back
    assert not received.endswith(b"0\r\n\r\n")  # cut short: the response could not end
    await asyncio.sleep(0.2)  # (the application's end)
    assert server.counters.handler_errors == 0


async def test_an_echo_whose_upload_stops_is_reset_for_an_http_1_0_client(run_asgi: Any) -> None:
    # open_timeout closed it with a FIN: the HTTP/1.0 client (no Content-Length
    # in the answer, no chunks) took the echo of half its body for the whole.
    server = await run_asgi(streaming_app, open_timeout=0.3)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /stream HTTP/1.0\r\nContent-Length: 10\r\n\r\nhello")
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\nhello"), TIMEOUT)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    await wait_for(lambda: not server.app_tasks, what="the app's end")
    assert server.counters.handler_errors == 0


async def docs_echo(websocket: WebSocket) -> None:
    # FastAPI's documentation's endpoint: no try/except, the disconnect left to the server.
    await websocket.accept()
    while True:
        await websocket.send_text(await websocket.receive_text())


@pytest.mark.parametrize(("fault", "code"), [("too big", 1009), ("invalid UTF-8", 1007)])
async def test_a_disconnect_after_the_server_s_own_close_is_no_app_error(
    run_asgi: Any, fault: str, code: int
) -> None:
    # The server closes for the client's fault (1009, 1007): the app hears
    # websocket.disconnect, Starlette raises WebSocketDisconnect, and that
    # was logged as the application's failure, with a traceback, and counted,
    # when the app's turn came before the client's close frame.
    app = Starlette(routes=[WebSocketRoute("/ws", docs_echo)])
    server = await run_asgi(app, max_size=1024)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws", max_size=None) as ws:
        if fault == "too big":
            await ws.send("x" * 2000)
        else:  # a masked text frame (mask 0) of C3 28
            ws.transport.write(b"\x81\x82\x00\x00\x00\x00\xc3\x28")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert ws.close_code == code
    await asyncio.sleep(0.2)  # (the application's end)
    assert server.counters.handler_errors == 0


async def test_a_bug_in_an_app_s_except_websocketdisconnect_is_its_error(
    run_asgi: Any, no_errors_logged: pytest.LogCaptureFixture
) -> None:
    # (Found by a review: what an app raised while handling the disconnect
    # counted as the disconnect's, at DEBUG, as if the client's doing.)
    async def leaves_a_bug(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await websocket.receive_text()
        except WebSocketDisconnect:
            {}["clean-up"]

    server = await run_asgi(Starlette(routes=[WebSocketRoute("/ws", leaves_a_bug)]))
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws"):
        pass  # (a normal close: 1000)
    await wait_for(lambda: server.counters.handler_errors == 1, 5)
    assert any("KeyError" in str(r.exc_info) for r in no_errors_logged.records if r.exc_info)
    no_errors_logged.clear()


async def test_a_bug_after_send_found_the_client_gone_is_the_app_s_error(
    run_asgi: Any, no_errors_logged: pytest.LogCaptureFixture
) -> None:
    # (Found by an audit: the same bug, when send() was what found the client
    # gone, was filed as the client's leaving, at DEBUG: Starlette raises
    # WebSocketDisconnect (or ClientDisconnect) while handling our
    # ClientDisconnected, and the app's error came of those, implicitly.)
    async def ticker(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text("tick")
                await asyncio.sleep(0.02)
        except WebSocketDisconnect:
            [].remove(websocket)

    async def stream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x\n", "more_body": True})
                await asyncio.sleep(0.02)
        except OSError:
            {}["clean-up"]

    websockets_app = Starlette(routes=[WebSocketRoute("/ws", ticker)])

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await stream_app(scope, receive, send)
        else:
            await websockets_app(scope, receive, send)

    server = await run_asgi(app, lifespan="off")
    ws = await websockets.connect(f"ws://127.0.0.1:{server.port}/ws")
    assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "tick"
    ws.transport.abort()  # (no close frame: only send() finds it gone)
    await wait_for(lambda: server.counters.handler_errors == 1, 5)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    await reader.readuntil(b"x\n")
    writer.transport.abort()
    await wait_for(lambda: server.counters.handler_errors == 2, 5)
    logged = [str(r.exc_info) for r in no_errors_logged.records if r.exc_info]
    assert any("ValueError" in text for text in logged), logged
    assert any("KeyError" in text for text in logged), logged
    no_errors_logged.clear()


@pytest.mark.parametrize(("method", "read"), [("GET", False), ("POST", True), ("POST", False)])
async def test_a_client_that_leaves_a_long_poll_is_seen_gone_at_once(
    run_asgi: Any, no_errors_logged: pytest.LogCaptureFixture, method: str, read: bool
) -> None:
    # A long poll (or server-sent events waiting for their first event) that
    # does not call receive(), as Starlette's handlers and StreamingResponse
    # do not at ASGI 2.4+: reading was paused while the app worked, so the
    # client's leaving went unseen. Its socket stayed in CLOSE_WAIT until the
    # app answered, and the answer was logged 200, sent, to a client long gone.
    # A POST whose small body the app never read too: reading stayed paused
    # for the body to be pulled.
    release = asyncio.Event()
    ended: list[str] = []

    async def poll(request: Request) -> PlainTextResponse:
        if read:
            await request.json()  # (a body taken whole first)
        await release.wait()
        ended.append("answered")
        return PlainTextResponse("news")

    app = Starlette(routes=[Route("/poll", poll, methods=["GET", "POST"])])
    server = await run_asgi(app, lifespan="off")
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    body = b"{}" if method == "POST" else b""
    writer.write(
        f"{method} /poll HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    )
    await wait_for(lambda: server.app_tasks, what="the app at work")
    await asyncio.sleep(0.1)
    writer.close()
    await wait_for(lambda: not server.connections, 2, what="the client seen gone")
    assert not ended  # (the app is not cancelled: it hears of it as it answers)
    release.set()
    await wait_for(lambda: not server.app_tasks, what="the app's end")
    assert ended == ["answered"]
    assert server.counters.http_responses[200] == 0  # (nothing went: no 200 logged)
    assert server.counters.handler_errors == 0
    logged = [r.getMessage() for r in no_errors_logged.records if r.name == "wsserver.access"]
    assert [f"{method} /poll - " in line for line in logged] == [True], logged  # (status: -)


async def test_polling_is_disconnected_keeps_what_is_read_ahead_bounded(
    run_asgi: Any,
) -> None:
    # Server-sent events as tutorials write them: each event after
    # `await request.is_disconnected()`, which calls receive() and cancels it
    # at once. Each such call resumed reading, also where it had paused for
    # the read-ahead bound (max_header_size, README): every poll took one
    # more read (up to 256 KiB) of what the client pipelined into memory,
    # unbounded.
    flooded = asyncio.Event()
    polled = asyncio.Event()
    finish = asyncio.Event()

    async def events(request: Request) -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            yield "data: first\n\n"
            await flooded.wait()
            for _ in range(40):
                assert not await request.is_disconnected()
                await asyncio.sleep(0)  # (a loop turn: a read, if reading is on)
            polled.set()
            await finish.wait()
            yield "data: last\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/events", events)])
    server = await run_asgi(app, lifespan="off", max_header_size=1024)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"data: first"), TIMEOUT)
    protocol = next(iter(server.connections))
    assert isinstance(protocol, HttpProtocol)
    writer.write(b"X" * (8 * READ_SIZE))  # (pipelined: no head, no end)
    await wait_for(lambda: not protocol.transport.is_reading(), TIMEOUT, "reading paused")
    flooded.set()
    await asyncio.wait_for(polled.wait(), TIMEOUT)
    assert len(protocol._h11.trailing_data[0]) <= 1024 + READ_SIZE  # (the read that went over)
    assert not protocol.transport.is_reading()
    finish.set()
    await asyncio.wait_for(reader.readuntil(b"data: last"), TIMEOUT)
    writer.close()


@pytest.mark.parametrize("wait", ["serve_forever", "wait_closed"])
async def test_an_admin_route_that_closes_its_server_answers_before_its_program_goes_on(
    wait: str,
) -> None:
    # An embedded FastAPI app whose admin route awaits server.close(): the
    # shutdown does not wait for that route (it waits for the shutdown), and
    # serve_forever() (then wait_closed()) returned at the shutdown's end,
    # before the route's answer. A program ends there, and asyncio.run()
    # cancels what is left: the route, whose client got a 500 for the answer
    # the README says still goes out.
    from wsserver import serve

    app = FastAPI()
    answered: list[str] = []

    @app.post("/admin/shutdown")
    async def shutdown() -> dict[str, bool]:
        await server.close()
        answered.append("closed")
        return {"closed": True}

    async def program() -> None:
        # An embedding program: it serves until closed, then ends, and
        # asyncio.run() cancels the tasks left.
        await getattr(server, wait)()
        for task in list(server.app_tasks):
            task.cancel()

    server = serve(app, "127.0.0.1", 0, lifespan="off")
    await server.start()
    running = asyncio.create_task(program())
    async with httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{server.port}/admin/shutdown"
        response = await client.post(url, timeout=TIMEOUT)
    await asyncio.wait_for(running, TIMEOUT)
    assert answered == ["closed"]
    assert response.status_code == 200 and response.json() == {"closed": True}


@pytest.mark.parametrize("client", ["waits for the close", "leaves after the head"])
@pytest.mark.parametrize("ending", ["Connection: close", "HTTP/1.0"])
async def test_a_head_that_ends_its_connection_still_runs_the_background_task(
    run_asgi: Any, ending: str, client: str
) -> None:
    # A HEAD's answer is its head: the server ends the response there (an
    # endless stream's HEAD must not hold a kept-alive connection). Where
    # the connection ended with it (the request's Connection: close, or
    # HTTP/1.0), it was closed at once, and a StreamingResponse's next
    # send() raised: its BackgroundTask (an audit line, a cache refill)
    # never ran, where uvicorn runs it. The app's pieces are dropped still
    # (for timeout_keep_alive at most), whether the client waits for the
    # close or leaves at once, as curl and httpx do.
    ran = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"piece "
            await asyncio.sleep(0.01)

    async def report(request: Request) -> StreamingResponse:
        return StreamingResponse(chunks(), background=BackgroundTask(ran.set))

    app = Starlette(routes=[Route("/report", report)])
    server = await run_asgi(app)
    version, extra = ("HTTP/1.0", "") if ending == "HTTP/1.0" else ("HTTP/1.1", f"{ending}\r\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(f"HEAD /report {version}\r\nHost: x\r\n{extra}\r\n".encode())
        if client == "leaves after the head":
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            writer.close()
        else:
            answer = await asyncio.wait_for(reader.read(), TIMEOUT)  # (to the server's close)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n"), answer
    assert b"piece" not in answer
    await asyncio.wait_for(ran.wait(), TIMEOUT)


@pytest.mark.parametrize("end", ["timeout_keep_alive", "a shutdown"])
async def test_an_endless_stream_s_head_that_ends_its_connection_ends_too(
    run_asgi: Any, end: str
) -> None:
    # Its pieces are dropped for timeout_keep_alive, a loop turn each: then
    # its send() raises, as a kept-alive connection's would once idle so
    # long (server-sent events for nobody, or a client that holds the
    # socket and reads nothing, would otherwise keep the app at work for ever).
    # At a shutdown, at once, as a kept-alive HEAD's app hears it, its idle
    # connection closed (the shutdown waited for the window, or cancelled
    # the app after shutdown_timeout).
    sent: list[int] = []
    ended = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
                sent.append(1)
        except OSError:  # (ClientDisconnected)
            ended.set()

    server = await run_asgi(app, timeout_keep_alive=0.5 if end == "timeout_keep_alive" else 60)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(b"HEAD /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        closing = asyncio.ensure_future(server.close()) if end == "a shutdown" else None
        await asyncio.wait_for(ended.wait(), TIMEOUT)  # (the socket still open)
        if closing is not None:
            await asyncio.wait_for(closing, TIMEOUT)
    finally:
        writer.close()
    assert sent  # (it streamed, for nobody, until then)
