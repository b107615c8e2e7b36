"""The application the worker-process tests run: each connection learns which process serves it.

``CRASH_AT_IMPORT`` in the environment makes importing this module fail (a
broken application, for the supervisor's back-off).
"""

from __future__ import annotations

import json
import os
import time

from wsserver import Request, Router, WebSocket
from wsserver.response import Response, text

if os.environ.get("CRASH_AT_IMPORT"):
    raise RuntimeError("this application is broken on purpose")

routes = Router()


@routes.websocket("/pid")
async def pid(request: Request, ws: WebSocket) -> None:
    """Send this process's pid, then echo."""
    await ws.send(str(os.getpid()))
    async for message in ws:
        await ws.send(message)


@routes.websocket("/inherited")
async def inherited(request: Request, ws: WebSocket) -> None:
    """Send what a process this one starts would inherit: its ``WSSERVER_*``
    variables, and its inheritable file descriptors besides 0, 1 and 2."""
    fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
    await ws.send(
        json.dumps(
            {
                "env": {k: v for k, v in os.environ.items() if k.startswith("WSSERVER_")},
                "fds": [fd for fd in fds if fd > 2 and _inheritable(fd)],
            }
        )
    )


@routes.get("/block")
async def block(request: Request) -> Response:
    """Block this process's event loop for ``?s=`` seconds (a handler's bug), then answer."""
    time.sleep(float(request.args.get("s", "60")))
    return text(str(os.getpid()))


def _inheritable(fd: int) -> bool:
    try:
        return os.get_inheritable(fd)
    except OSError:  # the listing's own descriptor, closed since
        return False
