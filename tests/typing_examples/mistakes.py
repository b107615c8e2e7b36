from wsserver import Request, Router, Server, WebSocket
from wsserver.response import Response, StreamingResponse, stream, text
from wsserver.testing import TestClient, connect
from wsserver.testing_sync import SyncTestClient

routes = Router()


@routes.websocket("/ws")  # error: a WebSocket handler must take (request, ws, ...)
async def missing_ws(request: Request) -> None:
    pass


async def wrong_encoding(ws: WebSocket) -> None:
    await ws.send("x", encoding="utf8")  # error: not "text", "bytes" or "json"


@routes.post("/upload", stream="yes")  # error: stream is a bool
async def upload(request: Request) -> Response:
    return text("stored")


@routes.get("/big", max_body_sise=2**20)  # error: no such route option
async def big(request: Request) -> Response:
    return text("ok")


@routes.get("/nothing")  # error: an HTTP handler returns a Response (None is a 500)
async def nothing(request: Request) -> None:
    pass


async def streams(request: Request) -> StreamingResponse:
    return stream([b"no"])


@routes.websocket("/ws/denied", on_connect=streams)  # error: on_connect denies with a Response
async def denied(request: Request, ws: WebSocket) -> None:
    pass


@routes.on_startup
async def open_pool(server: Server) -> None:
    pass


async def restart() -> None:
    await open_pool("server")  # error: a hook keeps its own type once registered


async def payloads(ws: WebSocket) -> None:
    await ws.ping(3)  # error: bytes-like, not an int's NUL bytes


async def requests(client: TestClient, sync_client: SyncTestClient) -> None:
    await client.get("/health", jsn={"ok": True})  # error: no such request option
    await client.post(b"/upload", body=b"x")  # error: a path is a str
    sync_client.put("/rooms/1", dat={"name": "x"})  # error: no such request option


async def messages(client: TestClient, sync_client: SyncTestClient) -> None:
    async with client.websocket("/ws", compression="gzip") as ws:  # error: "deflate" or None
        await ws.send_json({"type": "join"}, mode="bytes")  # error: "text" or "binary"
        await ws.receive_json(mode="json")  # error: "text" or "binary"
    with sync_client.websocket("/ws") as sync_ws:
        sync_ws.send_json({"type": "join"}, mode="bin")  # error: "text" or "binary"
    async with connect(Router(), "/ws", compression="zlib"):  # error: "deflate" or None
        pass


async def greet(request: Request) -> None:
    pass


routes.add_websocket_route(greet, "/ws/greet")  # error: a WebSocket handler takes (request, ws)
routes.add_route(greet, "/greet")  # error: an HTTP handler returns a Response
