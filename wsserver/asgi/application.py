"""An ASGI 3 application, as the server runs it: recognised, its lifespan, a run per connection.

:func:`is_asgi_app` tells an ASGI application from other objects;
:class:`ASGIApplication` wraps one with the settings that shape its scopes
(``root_path``, ``max_body_size``, ``lifespan``) and gives the server a
coroutine to run for each HTTP request (:class:`~.http.HttpCycle`) and each
WebSocket upgrade (:class:`~.websocket.WebSocketSession`).
"""

from __future__ import annotations

import inspect
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from ..app.routing import route_of
from ..config import Config
from ..protocol.handshake import Accept
from .http import ASGIApp, HttpCycle
from .lifespan import Lifespan
from .scope import http_scope, websocket_scope
from .websocket import WebSocketSession

if TYPE_CHECKING:
    from ..app.request import Request
    from ..server.http_protocol import HttpProtocol

__all__ = ["ASGIApplication", "is_asgi_app"]


def is_asgi_app(obj: object) -> bool:
    """Whether ``obj`` looks like an ASGI 3 application: ``await obj(scope, receive, send)``.

    A coroutine function (or a ``functools.partial`` of one, or an object
    whose ``__call__`` is one, such as a Starlette or FastAPI application) that
    can be called with three positional arguments (more, with defaults, too).
    A plain function that returns a coroutine cannot be told from others
    without calling it: ``--interface asgi`` says it is one.
    """
    if not callable(obj) or isinstance(obj, type) or route_of(obj) is not None:
        return False  # (a Router's handler takes three arguments too)
    call = obj if inspect.isroutine(obj) else getattr(obj, "__call__", None)  # noqa: B004
    if not (inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(call)):
        return False
    try:
        inspect.signature(obj).bind(None, None, None)
    except (TypeError, ValueError):
        return False
    return True


class ASGIApplication:
    """An ASGI application and how the server runs it.

    Args:
        app: the ASGI 3 application.
        config: the server's settings (``root_path``, ``max_body_size``, ``lifespan``,
            ``shutdown_timeout`` and ``close_timeout``).
    """

    def __init__(self, app: ASGIApp, config: Config) -> None:
        self.app = app
        self.root_path = config.root_path
        self.max_body_size = config.max_body_size
        # The lifespan shutdown's bound: what a connection may take at worst
        # (its handler's grace, then its closing handshake), never 0.
        self.lifespan_timeout = config.shutdown_timeout + config.close_timeout
        self.lifespan = Lifespan(app, config.lifespan)

    def __repr__(self) -> str:
        return f"<ASGIApplication {self.app!r}>"

    async def startup(self, server: Any) -> None:
        """Run the application's lifespan startup (see :class:`~.lifespan.Lifespan`),
        the pub/sub extension in its scope."""
        self.lifespan.extensions[PUBSUB] = pubsub_extension(server)
        await self.lifespan.startup()

    async def shutdown(self, timeout: float | None = None) -> BaseException | None:
        """Run the application's lifespan shutdown (``timeout`` seconds at
        most, by default ``shutdown_timeout`` + ``close_timeout``); how it
        failed, if it did (logged)."""
        return await self.lifespan.shutdown(self.lifespan_timeout if timeout is None else timeout)

    def _where(self, connection: HttpProtocol) -> dict[str, Any]:
        return {
            "root_path": self.root_path,
            "server": connection.local_address,
            "state": self.lifespan.state,
        }

    def http(self, connection: HttpProtocol, request: Request) -> Coroutine[Any, Any, None]:
        """The run of the application on one HTTP request."""
        scope = http_scope(request, **self._where(connection))
        scope["extensions"][PUBSUB] = pubsub_extension(connection.server)
        return HttpCycle(connection, scope, self.max_body_size, request, self.root_path).run(
            self.app
        )

    def websocket(
        self, connection: HttpProtocol, request: Request, accept: Accept
    ) -> Coroutine[Any, Any, None]:
        """The run of the application on one WebSocket upgrade the handshake accepted."""
        scope = websocket_scope(request, **self._where(connection))
        session = WebSocketSession(connection, request, accept, scope)
        extension = pubsub_extension(connection.server)
        extension["publish"] = session.publish
        extension["subscribe"] = session.subscribe
        extension["unsubscribe"] = session.unsubscribe
        scope["extensions"][PUBSUB] = extension
        return session.run(self.app, scope)


#: The scope extension that gives ASGI applications the server's publish/subscribe.
PUBSUB = "wsserver.pubsub"


def pubsub_extension(server: Any) -> dict[str, Any]:
    """``scope["extensions"]["wsserver.pubsub"]``: what an ASGI app uses to publish.

    ``await publish(topic, message)`` (returns the local deliveries),
    ``await presence(topic)``, ``await presence_by_topic()``,
    ``on_broker_state(listener)`` (:meth:`Server.on_broker_state`); in a
    ``websocket`` scope also ``subscribe(topic)`` and ``unsubscribe(topic)``
    for the connection, once accepted, and ``publish(..., exclude_self=True)``
    not to it. The ``lifespan`` scope has it too (for tasks the startup starts).
    """
    return {
        "publish": server.publish,
        "presence": server.presence,
        "presence_by_topic": server.presence_by_topic,
        "on_broker_state": server.on_broker_state,
    }
