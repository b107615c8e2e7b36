"""A request body read as it comes: ``request.stream`` of a ``stream=True`` HTTP route."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ClientDisconnected, RequestTooLarge

if TYPE_CHECKING:
    from .http_protocol import HttpProtocol

__all__ = ["RequestBody"]


class RequestBody:
    """The pieces of one request's body, pulled from its connection as the
    handler asks (:meth:`HttpProtocol.receive_body`), counted against ``limit``
    (None: no limit). Implements :class:`wsserver.app.request.BodyStream`.

    Once a read has failed, every later one fails the same way: a handler
    that caught the first cannot take what follows for the body's end. Read
    after its response was sent (by a task the handler left behind), an
    unfinished body raises RuntimeError: the connection has gone on to its
    next request.
    """

    __slots__ = ("_connection", "_cycle", "_limit", "_received", "_done", "_failure")

    def __init__(self, connection: HttpProtocol, limit: int | None, *, coming: bool) -> None:
        self._connection = connection
        self._cycle = connection.cycle
        self._limit = limit
        self._received = 0
        self._done = not coming
        self._failure: Callable[[], Exception] | None = None

    def __aiter__(self) -> RequestBody:
        return self

    async def __anext__(self) -> bytes:
        while not self._done:
            if self._connection.cycle != self._cycle:
                self._fail(self._gone())
            piece = await self._connection.receive_body()
            if piece is None:
                self._fail(self._gone())
            assert piece is not None
            data, more = piece
            self._done = not more
            self._received += len(data)
            if self._limit is not None and self._received > self._limit:
                self._fail(self._too_large)
            if data:
                return data
        if self._failure is not None:
            raise self._failure()
        raise StopAsyncIteration

    async def read(self) -> bytes:
        """The rest of the body, whole."""
        return b"".join([piece async for piece in self])

    def _fail(self, failure: Callable[[], Exception]) -> None:
        self._done = True
        self._failure = failure
        raise failure()

    def _gone(self) -> Callable[[], Exception]:
        """Why no more of the body comes: the connection closes (the client
        left, or was answered for a bad or stalled body), or it went on to its
        next request after the handler's response."""
        connection = self._connection
        if connection.cycle != self._cycle and not connection.closing:
            return _answered
        return self._cut_short

    def _cut_short(self) -> Exception:
        return ClientDisconnected(
            "the request's body did not come whole (the client left, stalled past"
            " open_timeout, or sent it malformed)",
            self._connection,
        )

    def _too_large(self) -> Exception:
        return RequestTooLarge(f"the request's body is over {self._limit} bytes")


def _answered() -> Exception:
    return RuntimeError("request.stream read after its response was sent: the rest is gone")
