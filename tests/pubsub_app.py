"""The application the publish/subscribe process tests run.

``/sub/<topic>`` subscribes, says ``{"pid": ...}`` once subscribed, then
publishes every message it receives to the topic; ``GET /presence/<topic>``
answers the cluster-wide count.
"""

from __future__ import annotations

import os

from wsserver import Request, Router, WebSocket
from wsserver.response import Response, text

routes = Router()


@routes.websocket("/sub/<topic>")
async def sub(request: Request, ws: WebSocket, topic: str) -> None:
    ws.subscribe(topic)
    await ws.send({"pid": os.getpid()})
    async for message in ws:
        await ws.server.publish(topic, message)


@routes.get("/presence/<topic>")
async def presence(request: Request, topic: str) -> Response:
    return text(str(await request.server.presence(topic)))
