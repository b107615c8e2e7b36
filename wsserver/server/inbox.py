"""Received messages waiting for the application, and the flow control that bounds them."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

__all__ = ["Inbox", "FAILURE"]

#: Marks, among the messages, where the peer broke the protocol.
FAILURE = object()


class Inbox:
    """The messages of one connection that the application has not taken yet.

    The protocol puts messages in as they arrive; the application takes them
    with :meth:`get_nowait`, waiting on :meth:`waiter` when there is none.

    Flow control: when a read leaves ``max_queue`` messages or more waiting
    and the application has not taken them below ``max_queue`` once it had its
    turn (a check scheduled behind its wake-up), ``pause()`` is called (the
    protocol stops reading the socket); when twice ``max_queue`` wait,
    at once. Once the application has taken them down to a quarter of
    ``max_queue``, ``resume()`` is called. An application that keeps up with
    a client sending in bursts (pipelining) so costs no pause and resume
    (two system calls each on asyncio). The inbox never holds more than one
    read beyond twice ``max_queue``, whatever the event loop (uvloop reads a
    socket again, up to 32 times, before running any callback when each read
    fills the buffer; asyncio's TLS transport schedules its next read before
    handing over the last). An application that is woken later than the
    check (one receiving in another task, through ``asyncio.wait_for`` of
    its own) pauses and resumes as before.

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
        "_head",
        "_waiter",
        "ended",
        "paused",
        "_checking",
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
        #: The messages received, oldest first, from index ``_head`` on: empty
        #: exactly when none waits (read it; change it through the methods).
        #: A list read from an index rather than a deque: an idle
        #: connection's empty list is 56 bytes, an empty deque about 700.
        self.messages: list[str | bytes | object] = []
        self._head = 0
        self._waiter: asyncio.Future[None] | None = None
        #: No message can arrive any more (the connection closed, failed or was lost).
        self.ended = False
        #: Whether reading is paused because too many messages wait.
        self.paused = False
        #: A check whether to pause is scheduled (see :meth:`wake`).
        self._checking = False
        #: Reading pauses once this many messages wait ...
        self.high = max_queue
        #: ... and resumes once no more than this many are left.
        self.low = max_queue // 4
        self._pause: Callable[[], None] | None = pause
        self._resume: Callable[[], None] | None = resume
        self._reached_failure: Callable[[], None] | None = reached_failure

    def __len__(self) -> int:
        """How many messages wait."""
        return len(self.messages) - self._head

    def __repr__(self) -> str:
        state = "ended" if self.ended else "paused" if self.paused else "open"
        return f"<Inbox {len(self)} waiting, {state}>"

    # ---------------------------------------------------------- the protocol

    def put(self, message: str | bytes) -> None:
        """Add a message.

        The application is not woken, nor is reading paused, until
        :meth:`wake`: a read that brings several messages wakes it once.
        """
        self.messages.append(message)

    def put_failure(self) -> bool:
        """Queue the point where the peer broke the protocol, behind the messages waiting.

        Returns:
            False when no message waits: the failure is due now, and nothing
            was queued.
        """
        if not self.messages or type(self.messages) is _Dropping:
            return False  # (none waits, or none is taken any more)
        self.messages.append(FAILURE)
        return True

    def wake(self) -> None:
        """Wake the application waiting for a message, if any (after a read's messages).

        If ``max_queue`` messages or more wait, whether to pause reading is
        decided once the application has had its turn: the check is
        scheduled after its wake-up (on asyncio's plain sockets it runs
        before the loop reads again). If twice ``max_queue`` wait, reading
        pauses now.
        """
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        waiting = len(self.messages) - self._head
        if waiting >= self.high and not self.paused and not self.ended:
            if waiting >= 2 * self.high:
                self._pause_if_full()
            elif not self._checking:
                self._checking = True
                self._loop.call_soon(self._pause_if_full)

    def _pause_if_full(self) -> None:
        """Pause reading if ``max_queue`` messages or more wait."""
        self._checking = False
        if (
            len(self.messages) - self._head >= self.high
            and not self.paused
            and not self.ended
            and self._pause is not None
        ):
            self.paused = True
            self._pause()

    def stop_taking(self) -> None:
        """Our close frame is sent: drop the messages that come from now on.

        The messages waiting stay for the application, but reading must go on
        to receive the peer's close frame, and what arrives with it must not
        pile up: a peer may go on sending until its close (RFC 6455 allows
        discarding data after the close frame). Reading resumes if paused.
        """
        if type(self.messages) is not _Dropping:
            self.messages = _Dropping(self.messages[self._head :])
            self._head = 0
            self.high = sys.maxsize  # (no more pausing: none can be added)
        if self.paused:
            self.paused = False
            if self._resume is not None:
                self._resume()

    def end(self) -> None:
        """No more messages are taken (any that still arrive are dropped, see
        :meth:`stop_taking`); wake the application."""
        self.ended = True
        self.stop_taking()
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
        if len(messages) == 1 and not self.paused:
            # One waits (then none was taken before it): most reads bring one.
            message = messages[0]
            if message is not FAILURE:
                messages.clear()
                return message  # type: ignore[return-value]
        while messages:
            head = self._head
            message = messages[head]
            head += 1
            if head == len(messages):
                messages.clear()
                head = 0
            elif head >= 64 and 2 * head >= len(messages):
                # Never empty (taken as fast as they come): drop what was
                # taken, so the list does not grow with every message.
                del messages[:head]
                head = 0
            else:
                messages[head - 1] = None  # not kept alive until the list empties
            self._head = head
            if message is FAILURE:
                if self._reached_failure is not None:
                    self._reached_failure()
                continue
            if self.paused and len(messages) - head <= self.low:
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

    @property
    def waited_on(self) -> bool:
        """Whether a task waits for the next message."""
        waiter = self._waiter
        return waiter is not None and not waiter.done()

    def forget_waiter(self) -> None:
        """The waiting task is done waiting (woken, timed out or cancelled)."""
        self._waiter = None


class _Dropping(list):  # type: ignore[type-arg]
    """An inbox's messages once it stopped taking more: what comes is dropped."""

    __slots__ = ()

    def append(self, message: object) -> None:
        pass
