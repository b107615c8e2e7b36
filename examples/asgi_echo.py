"""A plain ASGI 3 application: a WebSocket echo at every path, and a line of text over HTTP.

Run it with ``python -m wsserver examples.asgi_echo:app`` (or, as a factory,
``python -m wsserver examples.asgi_echo:make_app --factory``). It needs no
framework: it shows the ASGI events themselves, and it is the ASGI
application the conformance runs (``make autobahn``) use; the benchmarks serve
``benchmarks/servers/asgi_app.py``, an echo with a broadcast route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    """Echo every WebSocket message; answer HTTP requests with one line."""
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            if event.get("text") is not None:
                await send({"type": "websocket.send", "text": event["text"]})
            else:
                await send({"type": "websocket.send", "bytes": event["bytes"]})
    elif scope["type"] == "http":
        body = b"ASGI echo: connect a WebSocket to any path.\n"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "lifespan":
        while True:
            event = await receive()
            await send({"type": event["type"] + ".complete"})
            if event["type"] == "lifespan.shutdown":
                return


def make_app() -> Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]:
    """The same application, from a factory (``--factory``)."""
    return app
