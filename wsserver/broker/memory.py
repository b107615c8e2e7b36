"""The in-process broker: the default, with no dependency.

It reaches the servers of this process only (several ``serve()`` in one
program, tests): a message published on one is delivered by the others that
have subscribers of its topic. With one server it carries nothing (the
server delivers to its own subscribers itself) and presence is its counts.
"""

from __future__ import annotations

from .base import Broker, BrokerNode

__all__ = ["MemoryBroker"]


class MemoryBroker(Broker):
    """Nodes in this process, and the topics each listens to."""

    def __init__(self) -> None:
        super().__init__()
        self._topics: dict[str, set[BrokerNode]] = {}
        self._counts: dict[BrokerNode, dict[str, int]] = {}

    async def attach(self, node: BrokerNode) -> None:
        self._counts.setdefault(node, {})

    async def detach(self, node: BrokerNode) -> None:
        self._counts.pop(node, None)
        for topic in list(self._topics):
            self.unsubscribe(node, topic)

    def subscribe(self, node: BrokerNode, topic: str) -> None:
        if node in self._counts:  # (not after detach(): a connection that outlived its server)
            self._topics.setdefault(topic, set()).add(node)

    def unsubscribe(self, node: BrokerNode, topic: str) -> None:
        nodes = self._topics.get(topic)
        if nodes is not None:
            nodes.discard(node)
            if not nodes:
                del self._topics[topic]

    def publish(self, node: BrokerNode, topic: str, message: str | bytes) -> bool:
        others = [n for n in self._topics.get(topic, ()) if n is not node]
        if others:
            self.stats.published += 1
        for other in others:
            self.stats.received += 1
            other.deliver(topic, message)
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
        for counts in self._counts.values():
            for topic, n in counts.items():
                total[topic] = total.get(topic, 0) + n
        return total

    async def presence_of(self, topic: str) -> int:
        return sum(counts.get(topic, 0) for counts in self._counts.values())
