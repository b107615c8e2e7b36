"""What every Python benchmark server shares: its command line, its limits, the
broadcast trigger, and starting the event loop (asyncio or uvloop).

Every server serves an echo at ``/`` and a broadcast channel at ``/bcast``: a
client there that sends the text ``broadcast:<size>:<tag>;`` makes the server
send ``broadcast_payload(trigger)`` (the trigger repeated and cut to ``size``
bytes) to every client connected to ``/bcast``, the sender included.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

#: Largest message every server accepts: 64 MiB.
MAX_SIZE = 64 * 1024 * 1024
#: Listen backlog of every server.
BACKLOG = 1024
HOST = "127.0.0.1"


def parse_args(description: str, flags: dict[str, str] | None = None) -> argparse.Namespace:
    """``--port P --compression deflate|none --loop asyncio|uvloop
    [--certfile PEM --keyfile PEM]``, and a server's own ``flags`` (name: help)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--compression", choices=["deflate", "none"], default="none")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--certfile", help="serve wss:// with this certificate chain")
    parser.add_argument("--keyfile", help="and this private key")
    for flag, help in (flags or {}).items():
        parser.add_argument(flag, action="store_true", help=help)
    return parser.parse_args()


def ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The server's TLS context, made as wsserver makes its own (None without --certfile).

    ``PROTOCOL_TLS_SERVER``, TLS 1.2 at least, OpenSSL's default ciphers: what
    ``wsserver.server.tls.ssl_context`` does with ``--ssl-certfile`` and
    ``--ssl-keyfile``, so that every server negotiates the same protocol and
    cipher suite with the generator.
    """
    if not args.certfile:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(args.certfile, args.keyfile)
    return context


def broadcast_payload(message: object) -> str | None:
    """The payload a ``broadcast:<size>:<tag>;`` message asks for (None if it is not one)."""
    if not isinstance(message, str) or not message.startswith("broadcast:"):
        return None
    size = int(message.split(":", 2)[1])
    return (message * (size // len(message) + 1))[:size]


def run(main: Callable[[], Coroutine[Any, Any, None]], loop: str) -> None:
    """Run ``main()`` on the chosen event loop until the process is killed."""
    if loop == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def websockets_api_handler(
    broadcast: Callable[[set[Any], str], Any],
) -> Callable[[Any], Coroutine[Any, Any, None]]:
    """The connection handler for servers with the ``websockets`` API.

    Used by the ``websockets`` server and by picows' websockets-compatible
    layer, with their own ``broadcast`` functions.
    """
    subscribers: set[Any] = set()

    async def handler(ws: Any) -> None:
        if getattr(ws.request, "path", None) == "/bcast":
            subscribers.add(ws)
            try:
                async for message in ws:
                    payload = broadcast_payload(message)
                    if payload is not None:
                        broadcast(subscribers, payload)
            finally:
                subscribers.discard(ws)
        else:
            async for message in ws:
                await ws.send(message)

    return handler
