"""The ASGI benchmark application: echo at ``/``, broadcast at ``/bcast``.

Plain ASGI 3 (no framework), the same file for every ASGI server the harness
runs: wsserver (``python -m wsserver benchmarks.servers.asgi_app:app``),
uvicorn, hypercorn and granian (their command lines are in
``benchmarks/matrix.py``).

- ``/``: accept, then send every ``websocket.receive`` back as it came (text as
  text, bytes as bytes) until ``websocket.disconnect``.
- ``/bcast``: accept and stay subscribed; a text ``broadcast:<size>:<tag>;``
  (see ``benchmarks.servers.common``) sends the payload to every subscriber,
  the sender included, with an ``await send(...)`` per subscriber in turn, the
  plain ASGI way (an ASGI application has no broadcast primitive).
- HTTP: a 404 for any request (the harness asks once to know the server is up).
- lifespan: startup and shutdown complete at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from benchmarks.servers.common import broadcast_payload

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The ``send`` of every connection on /bcast.
SUBSCRIBERS: set[Send] = set()

ACCEPT: dict[str, Any] = {"type": "websocket.accept"}
NOT_FOUND_START: dict[str, Any] = {
    "type": "http.response.start",
    "status": 404,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"9")],
}
NOT_FOUND_BODY: dict[str, Any] = {"type": "http.response.body", "body": b"not found"}


async def app(scope: Message, receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "websocket":
        if scope["path"] == "/bcast":
            await subscribe(receive, send)
        else:
            await echo(receive, send)
    elif kind == "http":
        await send(NOT_FOUND_START)
        await send(NOT_FOUND_BODY)
    elif kind == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


async def echo(receive: Receive, send: Send) -> None:
    """Send every message back as it came."""
    await receive()  # websocket.connect
    await send(ACCEPT)
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def subscribe(receive: Receive, send: Send) -> None:
    """Stay subscribed until disconnected; a trigger message broadcasts to all."""
    await receive()  # websocket.connect
    await send(ACCEPT)
    SUBSCRIBERS.add(send)
    try:
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            payload = broadcast_payload(message.get("text"))
            if payload is not None:
                out = {"type": "websocket.send", "text": payload}
                for peer in list(SUBSCRIBERS):
                    try:
                        await peer(out)
                    except Exception:  # that peer is gone (each server raises its own)
                        SUBSCRIBERS.discard(peer)
    finally:
        SUBSCRIBERS.discard(send)
