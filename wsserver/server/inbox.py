"""Received messages waiting for the application, and the flow control that bounds them."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

__all__ = ["Inbox", "FAILURE"]

#: Marks, among the messages, where the peer broke the protocol.
FAILURE = object()


class Inbox:
    """The messages of one connection that the application has not taken yet.

    The protocol puts messages in as they arrive; the application takes them
    with :meth:`get_nowait`, waiting on :meth:`waiter` when there is none.

    Flow control: once ``max_queue`` messages wait, ``pause()`` is called (the
    protocol stops reading the socket); once the application has taken them
    down to a quarter of ``max_queue``, ``resume()`` is called.

    A protocol violation that arrives behind messages is queued as
    :data:`FAILURE`: when the application reaches it, ``reached_failure()`` is
    called (the protocol then fails the connection), so the messages before
    it are delivered first. Once :meth:`end` is called no message can arrive;
    the ones already here can still be taken.

    Args:
        loop: the event loop of the waiters.
        max_queue: messages that may wait before reading pauses.
        pause: stop reading from the peer.
        resume: read from the peer again.
        reached_failure: the application reached a queued :data:`FAILURE`.
    """

    __slots__ = (
        "_loop",
        "messages",
        "_waiter",
        "ended",
        "paused",
        "high",
        "low",
        "_pause",
        "_resume",
        "_reached_failure",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        max_queue: int,
        pause: Callable[[], None],
        resume: Callable[[], None],
        reached_failure: Callable[[], None],
    ) -> None:
        self._loop = loop
        #: The messages waiting, oldest first (read it; change it through the methods).
        self.messages: collections.deque[str | bytes | object] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        #: No message can arrive any more (the connection closed, failed or was lost).
        self.ended = False
        #: Whether reading is paused because too many messages wait.
        self.paused = False
        #: Reading pauses once this many messages wait ...
        self.high = max_queue
        #: ... and resumes once no more than this many are left.
        self.low = max_queue // 4
        self._pause: Callable[[], None] | None = pause
        self._resume: Callable[[], None] | None = resume
        self._reached_failure: Callable[[], None] | None = reached_failure

    def __len__(self) -> int:
        return len(self.messages)

    def __repr__(self) -> str:
        state = "ended" if self.ended else "paused" if self.paused else "open"
        return f"<Inbox {len(self.messages)} waiting, {state}>"

    # ---------------------------------------------------------- the protocol

    def put(self, message: str | bytes) -> None:
        """Add a message; pause reading if ``max_queue`` are now waiting.

        The application is not woken until :meth:`wake`: a read that brings
        several messages wakes it once.
        """
        messages = self.messages
        messages.append(message)
        if len(messages) >= self.high and not self.paused and self._pause is not None:
            self.paused = True
            self._pause()

    def put_failure(self) -> bool:
        """Queue the point where the peer broke the protocol, behind the messages waiting.

        Returns:
            False when no message waits: the failure is due now, and nothing
            was queued.
        """
        if not self.messages:
            return False
        self.messages.append(FAILURE)
        return True

    def wake(self) -> None:
        """Wake the application waiting for a message, if any."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end(self) -> None:
        """No more messages will arrive; wake the application."""
        self.ended = True
        self.wake()

    def detach(self) -> None:
        """The connection is gone: end, and forget the protocol's callbacks.

        The callbacks are bound methods of the protocol, which holds this
        inbox: forgetting them leaves no reference cycle behind.
        """
        self._pause = self._resume = self._reached_failure = None
        self.end()

    # ------------------------------------------------------- the application

    def get_nowait(self) -> str | bytes | None:
        """The next message, or None when none waits.

        Reaching a queued failure fails the connection (``reached_failure``);
        no message follows it.
        """
        messages = self.messages
        while messages:
            message = messages.popleft()
            if message is FAILURE:
                if self._reached_failure is not None:
                    self._reached_failure()
                continue
            if self.paused and len(messages) <= self.low:
                self.paused = False
                if self._resume is not None:
                    self._resume()
            return message  # type: ignore[return-value]
        return None

    def waiter(self) -> asyncio.Future[None]:
        """A future that :meth:`wake` resolves: await it, then call :meth:`get_nowait` again.

        Only one task waits at a time (``recv()`` refuses concurrent callers).
        """
        waiter = self._loop.create_future()
        self._waiter = waiter
        return waiter

    def forget_waiter(self) -> None:
        """The waiting task is done waiting (woken, timed out or cancelled)."""
        self._waiter = None
