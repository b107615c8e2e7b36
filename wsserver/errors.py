"""Exceptions raised by wsserver.

Everything derives from :class:`WSServerError`. Closed connections raise
:class:`ConnectionClosed` (also named :data:`WebsocketClosed`), in two flavours:
:class:`ConnectionClosedOK` for a normal close and :class:`ConnectionClosedError`
for anything else.
"""

from __future__ import annotations

from types import EllipsisType
from typing import Any, NamedTuple

from .protocol.http import HeadersLike, header_pairs

__all__ = [
    "LifespanFailure",
    "WSServerError",
    "ConfigError",
    "ProtocolError",
    "HandshakeError",
    "BadRequest",
    "ConnectionClosed",
    "Close",
    "WebsocketClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
    "ConcurrencyError",
    "InvalidState",
    "ClientDisconnected",
    "RequestTooLarge",
    "task_was_cancelled",
    "only",
    "cancelled",
    "passed_on",
    "passes_through",
    "NOT_FAILURES",
]

#: Close codes that mean "the connection ended normally".
OK_CLOSE_CODES = frozenset({1000, 1001, 1005})


class WSServerError(Exception):
    """Root of every exception raised by wsserver."""


class ConfigError(WSServerError, ValueError):
    """A setting has an invalid value."""


class ProtocolError(WSServerError):
    """The peer broke RFC 6455 (or RFC 7692); ``close_code`` is the code to fail with.

    Attributes:
        close_code: 1002 (protocol error), 1007 (invalid payload data) or
            1009 (message too big).
        reason: a short human-readable explanation, sent as the close reason.
    """

    def __init__(self, reason: str, close_code: int = 1002) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close_code = close_code


class HandshakeError(WSServerError):
    """An opening handshake that must be answered with an HTTP error.

    Raised by an ``on_connect`` hook, it denies the upgrade with that answer
    (its status, message and headers, in the route's error format), not
    logged as an error; raised by an HTTP route's handler, it is that
    route's answer the same way (Sanic's ``raise NotFound(...)``).

    Attributes:
        status: the HTTP status code to answer with (400, 404, 426, ...).
        headers: extra response headers, as ``(name, value)`` pairs (given
            as a response's are: pairs, a mapping or a ``Headers``).
    """

    def __init__(self, status: int, message: str, headers: HeadersLike | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = header_pairs(headers)

    def __reduce__(self) -> tuple[Any, ...]:
        return _remade, (type(self), self.args), self.__dict__


def _remade(cls: type[BaseException], args: tuple[Any, ...]) -> BaseException:
    """An exception copied or pickled, made again without its ``__init__`` (as
    the default ``__reduce__`` would call it with the message alone: a
    :class:`HandshakeError` could not be unpickled, a :class:`ConnectionClosed`
    said its message twice), nor a subclass's (which takes its own
    arguments): its ``args``, and its attributes set after."""
    return cls.__new__(cls, *args)


class BadRequest(WSServerError, ValueError):
    """What the client sent cannot be used (a request body that is not JSON).

    Raised in an HTTP route's handler (by ``request.json``, or by the handler
    itself) or in a WebSocket route's ``on_connect`` hook, it is answered with
    ``400`` and its message, not logged as an error.
    """


class RequestTooLarge(WSServerError):
    """A streamed request body went over its route's ``max_body_size``.

    Raised by ``request.stream``; a handler that lets it propagate has the
    client answered ``413`` (and the connection closed: the rest of the body
    is not read).
    """


class InvalidState(WSServerError):
    """An operation is not allowed in the connection's current state."""


class ConcurrencyError(WSServerError, RuntimeError):
    """Two coroutines called ``recv()`` at the same time, or a fragmented
    ``send()``'s iterable sent on its own connection (it would wait for itself)."""


class ClientDisconnected(WSServerError, OSError):
    """An ASGI application sent a message on a connection that is gone or closed.

    An :class:`OSError`, as the ASGI specification (2.4) asks; the server does
    not log it as an error when the application of that connection lets it
    propagate (an application that lets another connection's propagate, a
    broadcast's, failed).

    Attributes:
        origin: what raised it (the connection's ASGI session, or its HTTP
            protocol), for the server to tell whose client left.
    """

    def __init__(self, message: str, origin: object = None) -> None:
        super().__init__(message)
        self.origin = origin


class Close(NamedTuple):
    """A close frame's code and reason (1005 and "" for one without a code):
    what :class:`ConnectionClosed`'s ``rcvd`` and ``sent`` hold, as the
    websockets library's ``Close`` has them."""

    code: int
    reason: str


class ConnectionClosed(WSServerError):
    """The WebSocket connection is closed.

    Attributes:
        code: the close code (1006 when the TCP connection was lost without a
            closing handshake, 1005 when the close frame carried no code).
        reason: the close reason, possibly empty.
        rcvd: the peer's close frame (a :class:`Close`), None if none came;
            as the websockets library's (whose ``code`` and ``reason`` are
            deprecated for ``rcvd.code`` and ``rcvd.reason``).
        sent: the close frame sent to the peer, None if none went.
        rcvd_then_sent: True if the peer's close came first (ours answered
            it), False if ours did, None unless both went.

    Made with a code alone, ``rcvd`` is a close frame of that code and reason
    (None for 1006), ``sent`` None.
    """

    def __init__(
        self,
        code: int,
        reason: str = "",
        rcvd: Close | EllipsisType | None = ...,
        sent: Close | None = None,
        rcvd_then_sent: bool | None = None,
    ) -> None:
        super().__init__(f"connection closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason
        if rcvd is ...:
            rcvd = None if code == 1006 else Close(code, reason)
        self.rcvd: Close | None = rcvd
        self.sent = sent
        self.rcvd_then_sent = rcvd_then_sent

    def __reduce__(self) -> tuple[Any, ...]:
        return _remade, (type(self), self.args), self.__dict__


#: The name the Sanic-style API uses for :class:`ConnectionClosed`: the same class.
WebsocketClosed = ConnectionClosed


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed normally (code 1000, 1001 or none)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed with an error code, or was lost."""


def closed_error(
    code: int,
    reason: str,
    rcvd: Close | EllipsisType | None = ...,
    sent: Close | None = None,
    rcvd_then_sent: bool | None = None,
) -> ConnectionClosed:
    """Return the right :class:`ConnectionClosed` subclass for ``code``."""
    cls = ConnectionClosedOK if code in OK_CLOSE_CODES else ConnectionClosedError
    return cls(code, reason, rcvd, sent, rcvd_then_sent)


def task_was_cancelled() -> bool:
    """On a CancelledError in a handler's or application's task: whether the task
    was cancelled (by the server, on shutdown), rather than the code awaiting
    something that other code cancelled, which is that code failing."""
    import asyncio  # (here: the sans-I/O core imports this module, not asyncio)

    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


#: What an application may raise that is never its failure and goes on up:
#: KeyboardInterrupt and SystemExit (asyncio raises them out of the loop), and
#: GeneratorExit (its coroutine is being closed).
NOT_FAILURES = (KeyboardInterrupt, SystemExit, GeneratorExit)


def only(exc: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]) -> bool:
    """Whether ``exc`` is one of ``kinds``, or an exception group (a task
    group's) of nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        return all(only(inner, kinds) for inner in exc.exceptions)
    return isinstance(exc, kinds)


def cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` is its task's cancellation (:func:`task_was_cancelled`):
    a ``CancelledError``, or a group of them, in a task being cancelled."""
    import asyncio

    return only(exc, asyncio.CancelledError) and task_was_cancelled()


def passes_through(exc: BaseException) -> bool:
    """Whether what an application raised goes on up rather than being its
    failure: one of :data:`NOT_FAILURES`, or its task's cancellation
    (:func:`cancelled`), or a group of either. Any other exception, a
    ``BaseException`` of the application's own included, is the application failing."""
    return only(exc, NOT_FAILURES) or cancelled(exc)


def passed_on(exc: BaseException) -> BaseException:
    """What to raise for ``exc`` that goes on up (:func:`passes_through`): itself,
    or a group's first exception, which asyncio knows (a task that ends in a
    group of cancellations would be a task that failed, logged as never retrieved)."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


class LifespanFailure(WSServerError):
    """The application's startup failed: an ASGI application's
    (``lifespan.startup.failed``, or it raised with ``lifespan="on"``), or a
    Router's ``on_startup`` hook raised. :meth:`wsserver.Server.start` raises it."""
