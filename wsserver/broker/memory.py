"""The in-process broker: the default, with no dependency.

It reaches the servers of this process only (several ``serve()`` in one
program, tests): a message published on one is delivered by the others that
have subscribers of its topic. With one server it carries nothing (the
server delivers to its own subscribers itself) and presence is its counts.

Servers on other event loops (threads: each ``SyncTestClient`` runs its own)
may share it: a message for a server on another loop is handed to that loop
(``call_soon_threadsafe``), in the order published, never delivered from the
publisher's thread, since a loop's transports and timers are its thread's
alone.
"""

from __future__ import annotations

import asyncio
import threading

from .base import Broker, BrokerNode

__all__ = ["MemoryBroker"]


class MemoryBroker(Broker):
    """Nodes in this process, and the topics each listens to."""

    def __init__(self) -> None:
        super().__init__()
        self._topics: dict[str, set[BrokerNode]] = {}
        self._counts: dict[BrokerNode, dict[str, int]] = {}
        #: The loop each attached node runs on.
        self._loops: dict[BrokerNode, asyncio.AbstractEventLoop] = {}
        #: Held while the subscriptions change (nodes on other threads change them too).
        self._lock = threading.Lock()

    async def attach(self, node: BrokerNode) -> None:
        self._loops[node] = asyncio.get_running_loop()
        self._counts.setdefault(node, {})

    async def detach(self, node: BrokerNode) -> None:
        self._counts.pop(node, None)
        self._loops.pop(node, None)
        for topic in list(self._topics):
            self.unsubscribe(node, topic)

    def subscribe(self, node: BrokerNode, topic: str) -> None:
        if node in self._counts:  # (not after detach(): a connection that outlived its server)
            with self._lock:
                self._topics.setdefault(topic, set()).add(node)

    def unsubscribe(self, node: BrokerNode, topic: str) -> None:
        with self._lock:
            nodes = self._topics.get(topic)
            if nodes is not None:
                nodes.discard(node)
                if not nodes:
                    del self._topics[topic]

    def publish(self, node: BrokerNode, topic: str, message: str | bytes) -> bool:
        # (tuple(): one step, which a node subscribing on another thread cannot cut.)
        others = [n for n in tuple(self._topics.get(topic, ())) if n is not node]
        if not others:
            return True
        if type(message) is str and not message.isascii():
            # Refused here, in the publisher, as Redis's encode() refuses it:
            # not by a loop it was handed to (a lone surrogate has no UTF-8).
            message.encode("utf-8")
        self.stats.published += 1
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for other in others:
            loop = self._loops.get(other)
            if loop is None:  # (detached meanwhile, by its own thread: its server is closing)
                continue
            if loop is here:
                other.deliver(topic, message)
            elif not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(other.deliver, topic, message)
                except RuntimeError:  # (closed meanwhile: its server is gone)
                    continue
            else:
                continue
            self.stats.received += 1
        return True

    def count(self, node: BrokerNode, topic: str, subscribers: int) -> None:
        counts = self._counts.get(node)
        if counts is None:
            return  # (detached, as in subscribe())
        if subscribers:
            counts[topic] = subscribers
        else:
            counts.pop(topic, None)

    async def presence(self) -> dict[str, int]:
        total: dict[str, int] = {}
        # (list(): copies made in one step, which another thread's change cannot cut.)
        for counts in list(self._counts.values()):
            for topic, n in list(counts.items()):
                total[topic] = total.get(topic, 0) + n
        return total

    async def presence_of(self, topic: str) -> int:
        return sum(counts.get(topic, 0) for counts in list(self._counts.values()))
