"""Topics: publish/subscribe for one server, joined to the others through a broker.

A connection subscribes to topics (``ws.subscribe("room:lobby")``); a
message published to a topic (``await server.publish(topic, message)``) goes
to this server's subscribers through :func:`~wsserver.broadcast` (the frame
built once, slow clients skipped, the same policy), and through the broker to
the other processes that have subscribers of it, which deliver it to theirs.
Delivery to other processes is at most once (see :mod:`wsserver.broker.base`).
A connection leaves its topics when it closes.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import secrets
from collections.abc import Awaitable, Callable

from ..broker.base import Broker, check_topic
from .broadcast import broadcast
from .websocket import Message, WebSocket, whole_message

__all__ = ["Topics"]

logger = logging.getLogger("wsserver.broker")


class Topics:
    """This server's topics and their local subscribers.

    Attributes:
        node_id: this server's name among the broker's nodes (pid and random).
        subscribers: topic -> the local connections subscribed to it.
        delivered: messages handed to local connections, in all.
        skipped: deliveries skipped (slow, closing or busy connections).
    """

    def __init__(self, broker: Broker, max_topic_size: int = 1024, max_topics: int = 1000) -> None:
        self.broker = broker
        #: The limits (settings of the same names): a topic's size, a connection's topics.
        self.max_topic_size = max_topic_size
        self.max_topics = max_topics
        self.node_id = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.subscribers: dict[str, set[WebSocket]] = {}
        self.delivered = 0
        self.skipped = 0
        self._listeners: list[Callable[[bool], object]] = []
        #: The runs of ``async def`` listeners under way (held: a task only
        #: the loop references may be collected before it ends).
        self._telling: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Closed: a listener's run told in close()'s turn is not started after it.
        self._closed = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.broker.attach(self)

    async def close(self) -> None:
        self._closed = True
        await self.broker.detach(self)
        for task in list(self._telling):  # (a resync still under way as the server stops)
            task.cancel()

    # ------------------------------------------------------------ membership

    def subscribe(self, ws: WebSocket, topic: str) -> None:
        """Add ``ws`` to ``topic``'s subscribers (the broker is told on the first:
        :meth:`Broker.subscriptions_sent` says when it is in effect there).

        Raises:
            TypeError, ValueError: see :func:`check_topic`.
        """
        subscribers = self.subscribers.get(topic)
        if subscribers is None:
            check_topic(topic, self.max_topic_size)
            subscribers = self.subscribers[topic] = set()
            self.broker.subscribe(self, topic)
        if ws not in subscribers:
            subscribers.add(ws)
            self.broker.count(self, topic, len(subscribers))

    def unsubscribe(self, ws: WebSocket, topic: str) -> None:
        """Remove ``ws`` from ``topic`` (the broker is told when the last one leaves)."""
        subscribers = self.subscribers.get(topic)
        if subscribers is None or ws not in subscribers:
            return
        subscribers.discard(ws)
        self.broker.count(self, topic, len(subscribers))
        if not subscribers:
            del self.subscribers[topic]
            self.broker.unsubscribe(self, topic)

    # --------------------------------------------------------------- messages

    def publish(
        self,
        topic: str,
        message: Message,
        exclude: WebSocket | None = None,
    ) -> int:
        """Deliver locally, and hand to the broker for the other processes.

        Returns:
            How many local connections got it.

        Raises:
            TypeError, ValueError: see :func:`check_topic`; TypeError also for
                a message that is not what :func:`~wsserver.broadcast` sends,
                and for an ``exclude`` that is not one connection (a list of
                them would exclude none); UnicodeEncodeError for a str
                message that has no UTF-8, subscribers or not.
        """
        check_topic(topic, self.max_topic_size)
        if exclude is not None and not isinstance(exclude, WebSocket):
            raise TypeError(f"exclude is a WebSocket or None, not {type(exclude).__name__}")
        message = whole_message(message)  # (a copy of a bytearray the caller may reuse)
        delivered = self._deliver_locally(topic, message, exclude)
        self.broker.publish(self, topic, message)
        return delivered

    def deliver(self, topic: str, message: str | bytes) -> int:
        """A message another process published (the broker calls this); how
        many local connections it went to (got it, or were skipped: the
        broker gives the loop a turn by these, as publishing does)."""
        skipped = self.skipped
        return self._deliver_locally(topic, message, None) + self.skipped - skipped

    def _deliver_locally(self, topic: str, message: str | bytes, exclude: WebSocket | None) -> int:
        subscribers = self.subscribers.get(topic)
        if not subscribers:
            if isinstance(message, str) and not message.isascii():
                # Refused as broadcast() refuses it to subscribers (a lone
                # surrogate has no UTF-8): whether any listens or not.
                message.encode("utf-8")
            return 0
        targets = [ws for ws in subscribers if ws is not exclude]
        skipped = len(broadcast(targets, message))
        self.skipped += skipped
        self.delivered += len(targets) - skipped
        return len(targets) - skipped

    # --------------------------------------------------------------- outages

    def on_broker_state(self, listener: Callable[[bool], object]) -> Callable[[], None]:
        """Call ``listener(False)`` when the broker becomes unreachable, ``(True)`` when back.

        An ``async def`` listener (a resync that sends to clients awaits) is
        run in a task of its own; what it raises is logged, as a plain one's.

        Added while it is unreachable (a Redis down at start-up, said before
        the startup hooks that add listeners run), ``listener(False)`` is
        called at once: it never hears ``True`` without ``False`` first.

        Returns:
            A function that takes this listener off (once; called again, it does nothing).
        """
        self._listeners.append(listener)
        added = [True]
        if self.broker.stats.unreachable:
            self._tell(listener, False)

        def remove() -> None:
            if added:
                added.clear()
                self._listeners.remove(listener)  # (its first entry: the same if added twice)

        return remove

    def broker_state(self, up: bool) -> None:
        for listener in list(self._listeners):
            self._tell(listener, up)

    def _tell(self, listener: Callable[[bool], object], up: bool) -> None:
        try:
            result = listener(up)
            if inspect.isawaitable(result):
                loop = self._loop
                assert loop is not None  # (told only once started: the broker is attached)
                # (Thread-safe: a listener may be added from another thread,
                # a SyncTestClient's caller.)
                try:
                    loop.call_soon_threadsafe(self._start_listener, listener, result)
                except RuntimeError:  # (its loop closed: said below, and not "never awaited")
                    if inspect.iscoroutine(result):
                        result.close()
                    raise
        except Exception:
            logger.exception("broker state listener %r failed", listener)

    def _start_listener(self, listener: Callable[[bool], object], run: Awaitable[object]) -> None:
        assert self._loop is not None
        if self._closed:  # (told in the turn the topics closed: cancelled as those under way)
            if inspect.iscoroutine(run):
                run.close()
            return
        task = self._loop.create_task(self._run_listener(listener, run))
        self._telling.add(task)
        task.add_done_callback(self._telling.discard)

    @staticmethod
    async def _run_listener(listener: Callable[[bool], object], run: Awaitable[object]) -> None:
        try:
            await run
        except Exception:
            logger.exception("broker state listener %r failed", listener)
