"""A streamed response's producer, as the connection takes it: its pieces, one
at a time, and its closing.

An async iterable is iterated on the loop. A plain iterable's next piece is
taken in the loop's default executor, since making it may block (reading a
file): its thread is held meanwhile. Closing a producer runs its ``finally``
(closes its file): an async generator's ``aclose()`` (another async
iterable's ``close()``, awaited if it gives an awaitable); a plain iterator's
``close()``, at once, or, when its ``next()`` still runs in a thread (the
client left meanwhile), as soon as that returns.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator
from typing import Any

from ..logs import logger

__all__ = ["Producer"]

#: What next() gives at the end of a plain iterator.
_END = object()


class Producer:
    """The pieces of a :class:`~wsserver.app.response.StreamingResponse`'s ``chunks``."""

    __slots__ = ("_chunks", "_iterator", "_lock", "_taking", "_closing")

    def __init__(self, chunks: Any) -> None:
        self._chunks = chunks
        #: A plain iterable's iterator (None: an async iterable).
        self._iterator: Any = None if hasattr(chunks, "__aiter__") else iter(chunks)
        self._lock = threading.Lock()
        #: Whether a next() of the plain iterator runs in a thread.
        self._taking = False
        self._closing = False

    async def pieces(self) -> AsyncIterator[Any]:
        """Each piece, as it is made."""
        if self._iterator is None:
            async for piece in self._chunks:
                yield piece
            return
        loop = asyncio.get_running_loop()
        while not self._closing:
            piece = await loop.run_in_executor(None, self._take)
            if piece is _END:
                return
            yield piece

    def _take(self) -> Any:
        """(In the executor.) The plain iterator's next piece; closing it if it
        was closed meanwhile. Nothing if it was closed before this began
        (the client left while this waited for a thread)."""
        with self._lock:
            if self._closing:
                return _END
            self._taking = True
        try:
            return next(self._iterator, _END)
        finally:
            with self._lock:
                self._taking = False
                closing = self._closing
            if closing:
                self._close_plain()

    async def close(self) -> None:
        """Close the producer, done or not (its ``finally`` runs). What closing
        it raises is logged, not raised: the response is over either way."""
        if self._iterator is None:
            # (An async generator's aclose(); else a close() of its own: an
            # aiofiles file's, a coroutine, or a wrapper's plain one.)
            chunks = self._chunks
            close = getattr(chunks, "aclose", None) or getattr(chunks, "close", None)
            if close is not None:
                try:
                    closing = close()
                    if inspect.isawaitable(closing):
                        await closing
                except Exception:
                    logger.exception("closing a streamed response's producer failed")
            return
        with self._lock:
            if self._closing:
                return
            self._closing = True
            if self._taking:
                return  # (_take() closes it when its next() returns)
        self._close_plain()

    def _close_plain(self) -> None:
        """Close the plain iterator, and the iterable if it is another object
        with a ``close()`` of its own (a file's wrapper, say)."""
        things = [self._iterator]
        if self._chunks is not self._iterator:
            things.append(self._chunks)
        for thing in things:
            close = getattr(thing, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    logger.exception("closing a streamed response's producer failed")
