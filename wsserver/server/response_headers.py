"""The headers a server adds to every response it sends: ``Date``, ``Server``, configured ones.

RFC 9110 6.6.1 asks an origin server with a clock to send ``Date`` in its
2xx, 3xx and 4xx responses (and allows it in the others); uvicorn, websockets
and aiohttp also send ``Server``, in the ``101 Switching Protocols`` too. The
sans-I/O core never reads the clock: it is given these headers
(:func:`wsserver.protocol.http.with_defaults`), made here at most once a second.
A response that has a header of the same name keeps its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ..protocol.http import http_date

__all__ = ["ResponseHeaders", "SERVER_NAME"]

#: The ``Server`` header's value (no version: a version tells an attacker what to try).
SERVER_NAME = "wsserver"


class ResponseHeaders:
    """What every response gets, unless it has its own: call it for the current list.

    Args:
        server_header: send ``Server: wsserver`` (unless ``headers`` has a ``Server``).
        date_header: send ``Date``, the time of the response to the second.
        headers: more headers for every response (already checked).
        clock: seconds since the epoch (``time.time``).
    """

    __slots__ = ("_fixed", "_date_header", "_clock", "_second", "_current")

    def __init__(
        self,
        *,
        server_header: bool = True,
        date_header: bool = True,
        headers: Sequence[tuple[str, str]] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        fixed = list(headers)
        if server_header and not any(name.lower() == "server" for name, _ in fixed):
            fixed.insert(0, ("Server", SERVER_NAME))
        self._fixed = fixed
        self._date_header = date_header
        self._clock = clock
        self._second = -1
        self._current = fixed

    def __call__(self) -> list[tuple[str, str]]:
        """The headers now (a list shared between calls: not to be changed)."""
        if not self._date_header:
            return self._fixed
        second = int(self._clock())
        if second != self._second:
            self._second = second
            self._current = [("Date", http_date(second)), *self._fixed]
        return self._current
