"""A request body read as it comes: ``request.stream`` of a ``stream=True`` HTTP route."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, NoReturn

from ..errors import ClientDisconnected, RequestTooLarge

if TYPE_CHECKING:
    from .http_protocol import HttpProtocol

__all__ = ["RequestBody"]

_CUT_SHORT = (
    "the request's body did not come whole (the client left, stalled past open_timeout,"
    " or sent it malformed)"
)
_ANSWERED = "request.stream read after its response was sent: the rest is gone"


class RequestBody:
    """The pieces of one request's body, pulled from its connection as the
    handler asks (:meth:`HttpProtocol.receive_body`), counted against ``limit``
    (None: no limit). Implements :class:`wsserver.app.request.BodyStream`.

    Once a read has failed, every later one fails the same way: a handler
    that caught the first cannot take what follows for the body's end. Read
    after its response was sent (by a task the handler left behind), a body
    not read to its end raises RuntimeError: the connection has gone on to its
    next request. It holds its connection weakly (the connection holds the
    request, which holds it): no reference cycle outlives a connection.
    """

    __slots__ = (
        "_connection",
        "_cycle",
        "_limit",
        "_received",
        "_done",
        "_failure",
        "_read_whole",
    )

    def __init__(self, connection: HttpProtocol, limit: int | None, *, coming: bool) -> None:
        self._connection = weakref.ref(connection)
        self._cycle = connection.cycle
        self._limit = limit
        self._received = 0
        self._done = not coming
        self._failure: tuple[type[Exception], str] | None = None
        self._read_whole = False  # (a read() returned the end)

    @property
    def received(self) -> int:
        """The bytes of the body read so far."""
        return self._received

    def __aiter__(self) -> RequestBody:
        return self

    async def __anext__(self) -> bytes:
        while not self._done:
            connection = self._connection()
            if connection is None or connection.cycle != self._cycle:
                self._gone(connection)
                break
            limit = self._limit
            piece = await connection.receive_body(None if limit is None else limit - self._received)
            if piece is None:
                self._gone(connection)
                break
            data, more = piece
            self._done = not more
            self._received += len(data)
            # (With what a chunk's size line announced: refused at that line.)
            if limit is not None and self._received + connection.body_announced() > limit:
                self._fail(RequestTooLarge, f"the request's body is over {self._limit} bytes")
            if data:
                return data
        if self._failure is not None:
            self._fail(*self._failure)
        raise StopAsyncIteration

    async def read(self) -> bytes | None:
        """The rest of the body, whole; None once a read() has returned its end.

        None, not ``b""``: Sanic's ``read()`` says the end so, and its
        documented loop (``while True: body = await request.stream.read()``,
        ``if body is None: break``) given ``b""`` at once, for ever, would hold
        the event loop (every client, and the stop signals) for good. A loop
        that stops at an empty read stops there too.
        """
        if self._read_whole and self._failure is None:
            return None
        rest = b"".join([piece async for piece in self])
        self._read_whole = True
        return rest

    def _gone(self, connection: HttpProtocol | None) -> None:
        """No more of the body comes: raise why, unless it ended (another
        task, reading the same stream, took its end)."""
        if connection is None or connection.closing:
            self._fail(ClientDisconnected, _CUT_SHORT)
        if connection.cycle != self._cycle:
            self._fail(RuntimeError, _ANSWERED)
        if not connection.body_ended:
            self._fail(ClientDisconnected, _CUT_SHORT)
        self._done = True

    def _fail(self, kind: type[Exception], message: str) -> NoReturn:
        self._done = True
        self._failure = (kind, message)
        if kind is ClientDisconnected:
            raise ClientDisconnected(message, self._connection())
        raise kind(message)
