"""The application the worker-process tests run: each connection learns which process serves it.

``CRASH_AT_IMPORT`` in the environment makes importing this module fail (a
broken application, for the supervisor's back-off). ``SLOW_SHUTDOWN`` (seconds)
gives it a shutdown hook that takes that long, saying when it begins and ends.
``SLOW_IMPORT_IF`` (a file's path) makes its import wait while that file exists
(a worker starting slowly), saying so.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from wsserver import Request, Router, WebSocket
from wsserver.response import Response, text

if os.environ.get("CRASH_AT_IMPORT"):
    raise RuntimeError("this application is broken on purpose")

if os.environ.get("SLOW_IMPORT_IF") and os.path.exists(os.environ["SLOW_IMPORT_IF"]):
    print(f"importing slowly in {os.getpid()}", file=sys.stderr, flush=True)
    while os.path.exists(os.environ["SLOW_IMPORT_IF"]):
        time.sleep(0.05)

routes = Router()

if os.environ.get("SLOW_SHUTDOWN"):

    @routes.on_shutdown
    async def slow_shutdown(server: object) -> None:
        print("shutdown hook begun", file=sys.stderr, flush=True)
        await asyncio.sleep(float(os.environ["SLOW_SHUTDOWN"]))
        print("shutdown hook ended", file=sys.stderr, flush=True)


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


@routes.websocket("/exit")
async def exit_quietly(request: Request, ws: WebSocket) -> None:
    """Send this process's pid; at the message "go", exit 0 at once (no signal,
    nothing said), a child forked first holding this process's descriptors
    (its channel to the supervisor among them) for three seconds."""
    await ws.send(str(os.getpid()))
    if await ws.recv() == "go":
        if os.fork() == 0:
            time.sleep(3)
            os._exit(0)
        os._exit(0)


@routes.get("/interpreter")
async def interpreter(request: Request) -> Response:
    """The options this process's interpreter runs with (``-X dev``, ``-O``, ``-W``...)."""
    flags = {"dev_mode": sys.flags.dev_mode, "optimize": sys.flags.optimize}
    options = {
        "flags": flags,
        "warnoptions": sys.warnoptions,
        "xoptions": sys._xoptions,
        # (-u: no flag of sys.flags says it; its standard streams do.)
        "unbuffered": getattr(sys.stdout, "write_through", False),
    }
    return text(json.dumps(options))


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
