from wsserver import Request, Router, WebSocket

routes = Router()


@routes.websocket("/ws")  # error: a WebSocket handler must take (request, ws, ...)
async def missing_ws(request: Request) -> None:
    pass


async def wrong_encoding(ws: WebSocket) -> None:
    await ws.send("x", encoding="utf8")  # error: not "text", "bytes" or "json"
