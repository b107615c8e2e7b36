"""The application the worker-process tests run: each connection learns which process serves it.

``CRASH_AT_IMPORT`` in the environment makes importing this module fail (a
broken application, for the supervisor's back-off).
"""

from __future__ import annotations

import os

from wsserver import Request, Router, WebSocket

if os.environ.get("CRASH_AT_IMPORT"):
    raise RuntimeError("this application is broken on purpose")

routes = Router()


@routes.websocket("/pid")
async def pid(request: Request, ws: WebSocket) -> None:
    """Send this process's pid, then echo."""
    await ws.send(str(os.getpid()))
    async for message in ws:
        await ws.send(message)
