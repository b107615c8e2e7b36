"""The broker interface, and what goes over it.

Delivery is **at most once**: a message published while the broker is
unreachable, or that a slow broker cannot take (its queue is full), is dropped
for the other processes (counted, logged once per outage); the publisher's own
process always delivers it to its local subscribers. Nothing is stored or
replayed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

__all__ = [
    "Broker",
    "BrokerNode",
    "BrokerStats",
    "PREFIX_RULE",
    "check_topic",
    "decode",
    "encode",
    "valid_prefix",
]

#: The shortest presence_ttl (seconds) of a Redis broker: presence is refreshed
#: every third of it, and its changes written at most every 0.1 s
#: (``broker_presence_ttl`` declares it too).
MIN_PRESENCE_TTL = 0.5

#: What the prefix of a Redis broker's keys and channels may be
#: (``broker_prefix``, a :class:`~wsserver.broker.publisher.Publisher`'s ``prefix``).
PREFIX_RULE = "a non-empty prefix without spaces or control characters"


def valid_prefix(prefix: object) -> bool:
    """Whether ``prefix`` is what :data:`PREFIX_RULE` says."""
    return (
        isinstance(prefix, str)
        and bool(prefix)
        and prefix.isprintable()
        and not any(map(str.isspace, prefix))
    )


class BrokerNode(Protocol):
    """What a broker delivers to: one process's (one server's) topics."""

    #: Unique per process: a message is not delivered back to the node that sent it.
    node_id: str

    def deliver(self, topic: str, message: str | bytes) -> int | None:
        """A message published to ``topic`` by another node; how many local
        connections it went to, those that got it and those skipped (None:
        not counted), for the broker to give the loop a turn between its
        deliveries as publishing does."""

    def broker_state(self, up: bool) -> None:
        """The broker became unreachable (False) or reachable again (True)."""


class BrokerStats:
    """Figures a broker keeps (plain integers, read by whoever wants them)."""

    __slots__ = ("published", "received", "dropped", "outages", "unreachable")

    def __init__(self) -> None:
        #: Messages handed to the broker for other processes.
        self.published = 0
        #: Messages received from other processes.
        self.received = 0
        #: Messages for other processes that were dropped (outage, backlog).
        self.dropped = 0
        #: Times the broker became unreachable.
        self.outages = 0
        #: 1 while it is unreachable (an outage going on), else 0.
        self.unreachable = 0


class Broker(ABC):
    """Carries published messages between nodes; keeps cluster-wide subscriber counts."""

    def __init__(self) -> None:
        self.stats = BrokerStats()

    @abstractmethod
    async def attach(self, node: BrokerNode) -> None:
        """Start serving ``node`` (a server starting)."""

    @abstractmethod
    async def detach(self, node: BrokerNode) -> None:
        """Stop serving ``node`` (a server closing); release what it held."""

    @abstractmethod
    def subscribe(self, node: BrokerNode, topic: str) -> None:
        """``node`` has local subscribers of ``topic``: send it what others publish there."""

    async def subscriptions_sent(self) -> None:
        """Return once the subscriptions made so far are in effect at the
        broker, which confirmed them: what another process publishes then is
        heard (nothing to wait for unless it is another process; not longer
        than the broker's timeout, nor during an outage)."""
        return  # (this process's memory broker: at once)

    @abstractmethod
    def unsubscribe(self, node: BrokerNode, topic: str) -> None:
        """``node`` has no local subscriber of ``topic`` any more."""

    @abstractmethod
    def publish(self, node: BrokerNode, topic: str, message: str | bytes) -> bool:
        """Send ``message`` to the other nodes with subscribers of ``topic``, without waiting.

        Returns:
            False when it was dropped (the broker is unreachable or behind).
        """

    @abstractmethod
    def count(self, node: BrokerNode, topic: str, subscribers: int) -> None:
        """``node`` now has ``subscribers`` local subscribers of ``topic`` (for presence)."""

    @abstractmethod
    async def presence(self) -> dict[str, int]:
        """Every topic with subscribers anywhere, and how many (nodes that died drop out)."""

    async def presence_of(self, topic: str) -> int:
        """How many subscribers ``topic`` has anywhere: :meth:`presence`'s
        count of it, unless a broker reads one topic's for less."""
        return (await self.presence()).get(topic, 0)


# The wire form of a message between nodes: b"t" or b"b" (text, binary), the
# sender's node id, a newline, the payload.


def check_topic(topic: str, max_size: int | None = None) -> None:
    """Refuse a topic no broker could name: not a str, not valid Unicode text,
    or longer than ``max_size`` bytes of UTF-8 (``max_topic_size``).

    A topic often comes from a client (a room name in a URL or a JSON
    message), and JSON can carry a lone surrogate (``"\\ud800"``), which has
    no UTF-8: it is refused here, where it enters, not in the broker's task.

    Raises:
        TypeError: not a str.
        ValueError: not valid Unicode text, or too long.
    """
    if not isinstance(topic, str):
        raise TypeError(f"a topic is a str, not {type(topic).__name__}")
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("a topic must be valid Unicode text") from None
    if max_size is not None and size > max_size:
        raise ValueError(f"a topic is at most max_topic_size ({max_size}) bytes of UTF-8")


def encode(node_id: str, message: str | bytes) -> bytes:
    """A message as it travels between nodes."""
    if isinstance(message, str):
        return b"t" + node_id.encode("ascii") + b"\n" + message.encode("utf-8")
    return b"b" + node_id.encode("ascii") + b"\n" + bytes(message)


def decode(data: bytes) -> tuple[str, str | bytes]:
    """The sender's node id and the message, from :func:`encode`'s bytes.

    Raises:
        ValueError: not something :func:`encode` made.
    """
    kind = data[:1]
    sender, newline, payload = data[1:].partition(b"\n")
    if not newline or kind not in (b"t", b"b"):
        raise ValueError("not a wsserver broker message")
    return sender.decode("ascii"), payload.decode("utf-8") if kind == b"t" else payload
