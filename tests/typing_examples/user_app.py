import array
import asyncio
import json
from typing import assert_type

from wsserver import (
    HandshakeError,
    Request,
    Router,
    Server,
    UploadedFile,
    WebSocket,
    broadcast,
    serve,
)
from wsserver.response import Response, json_response, text
from wsserver.testing import ClientResponse, TestClient
from wsserver.testing_sync import SyncTestClient

routes = Router()


class Pool:
    async def close(self) -> None: ...


@routes.on_startup
async def open_pool(server: Server) -> None:
    # The README's: state for the handlers, kept on the server.
    server.ctx.pool = Pool()


@routes.on_shutdown
async def close_pool(server: Server) -> None:
    await server.ctx.pool.close()


@routes.websocket("/ws/<room>")
async def room(request: Request, ws: WebSocket, room: str) -> None:
    await ws.send({"room": room}, encoding="json")
    async for message in ws:
        await ws.send(message)


@routes.get("/health")
async def health(request: Request) -> Response:
    return json_response({"ok": json.loads("true")})  # the stdlib's json is not shadowed


@routes.post("/avatar")
async def avatar(request: Request) -> Response:
    # The README's accessors say what they hold: query and form values are str,
    # files UploadedFile, a header's getone() a str.
    assert_type(request.args.get("page"), str | None)
    assert_type(request.args.get("page", "1"), str)
    assert_type(request.args.getlist("tag"), list[str])
    assert_type(request.form.get("user"), str | None)
    assert_type(request.form.getlist("user"), list[str])
    assert_type(request.files.get("picture"), UploadedFile | None)
    assert_type(request.files.getlist("picture"), list[UploadedFile])
    assert_type(request.headers.getone("authorization"), str)
    assert_type(request.headers.getone("authorization", None), str | None)
    return text("stored")


@routes.post("/upload", stream=True, max_body_size=2 * 2**30)
async def upload(request: Request) -> Response:
    assert request.stream is not None  # (None on a route without stream=True)
    size = 0
    async for piece in request.stream:
        size += len(piece)
    assert_type(await request.stream.read(), bytes | None)
    return text(str(size))


@routes.websocket("/samples")
async def samples(request: Request, ws: WebSocket) -> None:
    # "bytes or any bytes-like object (bytearray, memoryview, array.array, a
    # NumPy array)", as the README's WebSocket table says, for each way to send.
    readings = array.array("h", [1, -2, 3])
    await ws.send(readings)
    await ws.send((b"a", bytearray(b"b"), memoryview(b"c"), readings))  # fragments
    assert_type(ws.send_nowait(bytearray(b"x")), bool)
    assert_type(broadcast([ws], readings), list[WebSocket])
    await ws.server.publish("samples", memoryview(b"x"))
    assert_type(await (await ws.ping(bytearray(b"id"))), float)
    await ws.pong(readings)
    ws.send_ping(memoryview(b"id"))


async def authenticate(request: Request) -> None:
    # Its headers as text()'s: pairs or a mapping.
    if not request.args.get("token"):
        raise HandshakeError(401, "Missing token", {"WWW-Authenticate": "Bearer"})
    if request.args.get("token") != "valid":
        raise HandshakeError(403, "Forbidden", [("Cache-Control", "no-store")])


@routes.websocket("/ws/secure", on_connect=authenticate)
async def secure(request: Request, ws: WebSocket) -> None:
    try:
        await authenticate(request)
    except HandshakeError as exc:
        assert_type(exc.headers, list[tuple[str, str]])


async def test_health() -> None:
    # The request shortcuts take request()'s keyword arguments, as httpx's.
    async with TestClient(routes) as client:
        response = await client.get("/health", params={"verbose": "1"}, timeout=2.0)
        assert_type(response, ClientResponse)
        assert response.json() == {"ok": True}
        await client.post("/avatar", data={"user": "ann"}, files={"picture": b"..."})
        await client.delete("/health", headers=[("Authorization", "Bearer x")])


def test_health_sync() -> None:
    with SyncTestClient(routes) as client:
        assert_type(client.get("/health", follow_redirects=True), ClientResponse)
        client.patch("/upload", json={"size": 1}, cookies={"sid": "x"})


async def main() -> None:
    # serve()'s docstring: "start it with ``async with`` or ``await``".
    server = await serve(routes, "127.0.0.1", 0)
    assert_type(server, Server)
    assert_type(server.port, int)
    await server.close()
    # close() begins when called, as asyncio's: the README's plain call, then
    # wait_closed(), is no coroutine left unawaited (mypy's unused-coroutine).
    other = await serve(routes, "127.0.0.1", 0)
    other.close()
    await other.wait_closed()
    await asyncio.create_task(other.close(code=1012))
