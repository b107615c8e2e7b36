"""wsserver's benchmark routes: echo at ``/``, broadcast at ``/bcast``.

Run by the harness as ``python -m wsserver benchmarks.servers.wsserver_app:routes
--port P --compression deflate|none --max-size 67108864 --ping-interval none
[--loop uvloop]``.
"""

from __future__ import annotations

from benchmarks.servers.common import broadcast_payload
from wsserver import Request, Router, WebSocket, broadcast

routes = Router()

#: The connections on /bcast.
SUBSCRIBERS: set[WebSocket] = set()


@routes.websocket("/")
async def echo(request: Request, ws: WebSocket) -> None:
    """Send every message back as it came."""
    async for message in ws:
        await ws.send(message)


@routes.websocket("/bcast")
async def subscribe(request: Request, ws: WebSocket) -> None:
    """Stay subscribed until closed; a trigger message broadcasts to all."""
    SUBSCRIBERS.add(ws)
    try:
        async for message in ws:
            payload = broadcast_payload(message)
            if payload is not None:
                broadcast(SUBSCRIBERS, payload)
    finally:
        SUBSCRIBERS.discard(ws)
