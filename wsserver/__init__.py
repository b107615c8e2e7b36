"""wsserver: a standalone, strictly conformant WebSocket server for asyncio.

Example::

    from wsserver import Router, serve

    routes = Router()

    @routes.websocket("/ws")
    async def echo(request, ws):
        async for message in ws:
            await ws.send(message)
"""

from .app.request import FormPart, Headers, Request, UploadedFile
from .app.routing import Route, Router
from .config import Config
from .errors import (
    BadRequest,
    ClientDisconnected,
    ConcurrencyError,
    ConfigError,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    LifespanFailure,
    ProtocolError,
    RequestTooLarge,
    WebsocketClosed,
    WSServerError,
)
from .protocol.state import State
from .protocol.tls_info import TLSInfo
from .server.broadcast import broadcast
from .server.server import Server, serve
from .server.websocket import WebSocket

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConcurrencyError",
    "ConfigError",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "BadRequest",
    "FormPart",
    "ClientDisconnected",
    "HandshakeError",
    "LifespanFailure",
    "Headers",
    "ProtocolError",
    "Request",
    "RequestTooLarge",
    "Route",
    "Router",
    "Server",
    "State",
    "TLSInfo",
    "UploadedFile",
    "WSServerError",
    "WebSocket",
    "WebsocketClosed",
    "broadcast",
    "serve",
]
