"""Listening for connections: :func:`serve` and the :class:`Server` it returns."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_module
from typing import Any, cast

from ..app.routing import Router
from ..asgi import ASGIApplication, is_asgi_app
from ..asgi.http import ASGIApp
from ..config import Config
from .deadlines import Deadlines
from .http_protocol import HttpProtocol
from .websocket import WebSocket
from .websocket_protocol import WebSocketProtocol

__all__ = ["Server", "serve"]

logger = logging.getLogger("wsserver.server")

#: Bytes read from a socket at most at once (asyncio's own default).
READ_SIZE = 256 * 1024


class Server:
    """A listening WebSocket server.

    Use it as ``async with serve(routes, host, port) as server:`` or
    ``server = await serve(...)``. ``await server.close()`` shuts it down
    gracefully: it stops accepting, answers pending handshakes with 503,
    closes every WebSocket with 1001, gives handlers ``shutdown_timeout``
    seconds, then cancels them and aborts what is left.
    """

    def __init__(
        self,
        app: Router | ASGIApplication,
        host: str | None,
        port: int,
        config: Config,
        *,
        ssl: ssl_module.SSLContext | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        #: What the server serves: a Router, or an ASGI application (one is None).
        self.router = app if isinstance(app, Router) else None
        self.asgi = app if isinstance(app, ASGIApplication) else None
        self.host = host
        self.requested_port = port
        self.config = config
        self.deflate_settings = config.deflate_settings()
        self.ssl = ssl
        self.sock = sock
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self._server: asyncio.base_events.Server | None = None
        #: Every open connection, in whichever phase.
        self.connections: set[HttpProtocol | WebSocketProtocol] = set()
        self._websockets: set[WebSocketProtocol] = set()
        #: ASGI applications' runs not over yet (they may outlive their connections).
        self.app_tasks: set[asyncio.Task[None]] = set()
        self.closing = False
        self._closed: asyncio.Event | None = None
        #: What every connection reads into (one at a time: one loop, one thread).
        self.read_buffer = memoryview(bytearray(READ_SIZE))
        #: open_timeout of the connections in the HTTP phase (None: no limit),
        #: then keepalive: when each WebSocket is due a ping, and its pong.
        self.open_deadlines: Deadlines[HttpProtocol] | None = None
        self.ping_deadlines: Deadlines[WebSocketProtocol] | None = None
        self.pong_deadlines: Deadlines[WebSocketProtocol] | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> Server:
        """Start listening (does nothing if already started)."""
        if self._server is not None:
            return self
        self.loop = asyncio.get_running_loop()
        if self.asgi is not None:
            await self.asgi.startup()  # raises LifespanFailure
        self._closed = asyncio.Event()
        config = self.config
        if config.open_timeout is not None:
            self.open_deadlines = Deadlines(
                self.loop, config.open_timeout, HttpProtocol.on_open_timeout
            )
        if config.ping_interval is not None:
            self.ping_deadlines = Deadlines(
                self.loop, config.ping_interval, WebSocketProtocol.on_ping_due
            )
            if config.ping_timeout is not None:
                self.pong_deadlines = Deadlines(
                    self.loop, config.ping_timeout, WebSocketProtocol.on_pong_timeout
                )
        if self.sock is not None:
            self._server = await self.loop.create_server(
                self._make_protocol, sock=self.sock, backlog=self.config.backlog, ssl=self.ssl
            )
        else:
            self._server = await self.loop.create_server(
                self._make_protocol,
                self.host,
                self.requested_port,
                backlog=self.config.backlog,
                ssl=self.ssl,
                reuse_address=True,
            )
        return self

    def _make_protocol(self) -> HttpProtocol:
        return HttpProtocol(self)

    def __await__(self) -> Any:
        return self.start().__await__()

    async def __aenter__(self) -> Server:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` is called (or the task is cancelled)."""
        await self.start()
        assert self._closed is not None
        await self._closed.wait()

    async def close(self, timeout: float | None = None) -> None:
        """Shut down gracefully; ``timeout`` overrides ``shutdown_timeout``."""
        if self._server is None:
            return
        assert self._closed is not None
        if self.closing:
            await self._closed.wait()
            return
        self.closing = True
        self._server.close()
        for protocol in list(self.connections):
            protocol.shutdown()
        grace = self.config.shutdown_timeout if timeout is None else timeout
        tasks = [
            p.handler_task
            for p in self._websockets
            if p.handler_task is not None and not p.handler_task.done()
        ]
        tasks += [task for task in self.app_tasks if task not in tasks]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for protocol in list(self.connections):
            if not protocol.lost:
                protocol.transport.abort()
        await self._server.wait_closed()
        for deadlines in (self.open_deadlines, self.ping_deadlines, self.pong_deadlines):
            if deadlines is not None:
                deadlines.close()
        if self.asgi is not None:
            await self.asgi.shutdown()
        self._closed.set()

    async def wait_closed(self) -> None:
        """Wait until :meth:`close` has finished."""
        if self._closed is not None:
            await self._closed.wait()

    # ------------------------------------------------------------ inspection

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets."""
        if self._server is None:
            return ()
        return tuple(self._server.sockets)

    @property
    def port(self) -> int:
        """The port of the first listening socket (useful with port 0)."""
        for sock in self.sockets:
            return int(sock.getsockname()[1])
        raise RuntimeError("the server is not listening")

    @property
    def websockets(self) -> list[WebSocket]:
        """The WebSocket connections currently open."""
        return [
            p.websocket for p in self._websockets if p.websocket is not None and p.websocket.open
        ]

    @property
    def websocket_count(self) -> int:
        """How many connections are in the WebSocket phase."""
        return len(self._websockets)

    # ---------------------------------------------- called by the protocols

    def register(self, protocol: HttpProtocol) -> None:
        """A connection was accepted."""
        self.connections.add(protocol)
        if self.closing:
            protocol.shutdown()

    def websocket_opened(self, protocol: WebSocketProtocol) -> None:
        """A connection was upgraded: its WebSocket protocol replaces its HTTP one."""
        self.connections.add(protocol)
        self._websockets.add(protocol)
        if self.closing:
            protocol.shutdown()  # an ASGI application accepted while the server shut down

    def app_task_started(self, task: asyncio.Task[None]) -> None:
        """An ASGI application's run began: shutdown waits for it."""
        self.app_tasks.add(task)
        task.add_done_callback(self.app_tasks.discard)

    def unregister(self, protocol: HttpProtocol | WebSocketProtocol) -> None:
        """A connection is gone, or its HTTP phase is over."""
        self.connections.discard(protocol)
        self._websockets.discard(protocol)


def serve(
    app: Router | Any,
    host: str | None = "127.0.0.1",
    port: int = 8000,
    *,
    config: Config | None = None,
    ssl: ssl_module.SSLContext | None = None,
    sock: socket.socket | None = None,
    **settings: Any,
) -> Server:
    """Create a server for ``app``; start it with ``async with`` or ``await``.

    ``app`` is a :class:`~wsserver.Router` or an ASGI 3 application (a
    Starlette or FastAPI app, or any ``async def app(scope, receive, send)``).

    Settings are keyword arguments named like the fields of
    :class:`~wsserver.config.Config` (``max_size=...``, ``ping_interval=...``);
    they win over ``WEBSOCKET_*`` environment variables, which win over the
    defaults. A ``config`` object may be given instead (settings then update it).
    An ASGI application gets permessage-deflate by default, as under uvicorn
    (``compression=None`` turns it off).

    Raises:
        ConfigError: a setting is unknown or invalid.
        TypeError: ``app`` is neither a Router nor an ASGI application.
    """
    if not isinstance(app, Router | ASGIApplication) and not is_asgi_app(app):
        raise TypeError(
            f"serve() needs a wsserver.Router or an ASGI application "
            f"(async def app(scope, receive, send)), not {type(app).__name__}"
        )
    asgi = not isinstance(app, Router)
    if config is None:
        config = Config.from_sources(defaults=ASGI_DEFAULTS if asgi else None, **settings)
    elif settings:
        config = config.replace(**settings)
    if asgi and not isinstance(app, ASGIApplication):
        app = ASGIApplication(cast(ASGIApp, app), config)
    return Server(app, host, port, config, ssl=ssl, sock=sock)


#: Where an ASGI application's defaults differ from a Router's: uvicorn's
#: ``--ws-per-message-deflate`` is on unless turned off.
ASGI_DEFAULTS = {"compression": "deflate"}
