import json

from wsserver import Request, Router, WebSocket
from wsserver.response import Response, json_response

routes = Router()


@routes.websocket("/ws/<room>")
async def room(request: Request, ws: WebSocket, room: str) -> None:
    await ws.send({"room": room}, encoding="json")
    async for message in ws:
        await ws.send(message)


@routes.get("/health")
async def health(request: Request) -> Response:
    return json_response({"ok": json.loads("true")})  # the stdlib's json is not shadowed
