"""Many timeouts of one fixed duration, served by a single event-loop timer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Deadlines"]

K = TypeVar("K", bound=Hashable)

#: Seconds early that a deadline may expire.
SLACK = 0.001


class Deadlines(Generic[K]):
    """Call ``expire(key)`` once ``duration`` seconds have passed since :meth:`add` of ``key``.

    For per-connection timeouts such as ``open_timeout``: a ``call_later``
    handle per connection, created and cancelled thousands of times a second,
    costs more than the rest of the bookkeeping. Every deadline here has the
    same duration, so the order of :meth:`add` is the order of expiry: an
    insertion-ordered dict is the queue, and one timer, set for its oldest
    entry, serves all of them. Adding and discarding are dict operations;
    expiry is as exact as ``call_later``'s (within :data:`SLACK`).
    """

    __slots__ = ("_loop", "duration", "_expire", "_entries", "_timer")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, duration: float, expire: Callable[[K], None]
    ) -> None:
        self._loop = loop
        self.duration = duration
        self._expire = expire
        self._entries: dict[K, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, key: K) -> None:
        """Start ``key``'s deadline, or restart it if it was running."""
        entries = self._entries
        if key in entries:
            del entries[key]  # to the end of the queue
        deadline = self._loop.time() + self.duration
        entries[key] = deadline
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._run)

    def discard(self, key: K) -> None:
        """Stop ``key``'s deadline (nothing happens if it is not running)."""
        self._entries.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        """Forget every deadline and stop the timer."""
        self._entries.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _run(self) -> None:
        self._timer = None
        entries = self._entries
        # Loops whose timers tick in milliseconds (uvloop) may run this a
        # little early: what is due within SLACK counts as due.
        now = self._loop.time() + SLACK
        expired = []
        for key, deadline in entries.items():
            if deadline > now:
                break
            expired.append(key)
        for key in expired:
            del entries[key]
        if entries:  # before the callbacks: what they add again must not set it later
            self._timer = self._loop.call_at(next(iter(entries.values())), self._run)
        for key in expired:
            try:
                self._expire(key)
            except Exception as exc:  # one failing callback must not stop the others
                self._loop.call_exception_handler(
                    {"message": "error in a deadline callback", "exception": exc}
                )
        if entries and self._timer is None:
            self._timer = self._loop.call_at(next(iter(entries.values())), self._run)
