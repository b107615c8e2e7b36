"""A request body read as it comes: ``request.stream`` of a ``stream=True`` HTTP route."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ClientDisconnected, RequestTooLarge

if TYPE_CHECKING:
    from .http_protocol import HttpProtocol

__all__ = ["RequestBody"]


class RequestBody:
    """The pieces of one request's body, pulled from its connection as the
    handler asks (:meth:`HttpProtocol.receive_body`), counted against ``limit``
    (None: no limit). Implements :class:`wsserver.app.request.BodyStream`."""

    __slots__ = ("_connection", "_limit", "_received", "_done")

    def __init__(self, connection: HttpProtocol, limit: int | None, *, coming: bool) -> None:
        self._connection = connection
        self._limit = limit
        self._received = 0
        self._done = not coming

    def __aiter__(self) -> RequestBody:
        return self

    async def __anext__(self) -> bytes:
        while not self._done:
            piece = await self._connection.receive_body()
            if piece is None:
                self._done = True
                raise ClientDisconnected(
                    "the request's body did not come whole (the client left, stalled"
                    " past open_timeout, or sent it malformed)",
                    self._connection,
                )
            data, more = piece
            self._done = not more
            self._received += len(data)
            limit = self._limit
            if limit is not None and self._received > limit:
                self._done = True
                raise RequestTooLarge(f"the request's body is over {limit} bytes")
            if data:
                return data
        raise StopAsyncIteration

    async def read(self) -> bytes:
        """The rest of the body, whole."""
        return b"".join([piece async for piece in self])
