"""wsserver's fan-out routes: subscribers at ``/sub/<topic>``, a publisher at ``/pub/<topic>``.

Run by the harness as ``python -m wsserver benchmarks.servers.fanout_app:routes
--port P --ping-interval none --log-level warning`` (one process, the memory
broker), or with ``--workers 2 --broker redis://127.0.0.1:PORT/0``.

A subscriber is subscribed to the topic, then told ``subscribed:<pid>`` (the
process serving it); every message the publisher sends is published to the
topic with ``ws.server.publish``: delivered to this process's subscribers, and
through the broker to the other processes'.
"""

from __future__ import annotations

import os

from wsserver import Request, Router, WebSocket

routes = Router()


@routes.websocket("/sub/<topic>")
async def subscribe(request: Request, ws: WebSocket, topic: str) -> None:
    ws.subscribe(topic)
    await ws.send(f"subscribed:{os.getpid()}")
    async for _ in ws:
        pass


@routes.websocket("/pub/<topic>")
async def publish(request: Request, ws: WebSocket, topic: str) -> None:
    async for message in ws:
        await ws.server.publish(topic, message)
