"""Brokers: how the processes of a service (workers, machines) exchange published messages.

A :class:`~.base.Broker` carries a published message to the other processes
that have subscribers of its topic; each process then delivers it to its own
connections (:mod:`wsserver.server.topics`). :class:`~.memory.MemoryBroker`,
the default, needs nothing (and reaches the servers of one process);
:class:`~.redis_backend.RedisBroker` uses Redis publish/subscribe (``pip
install wsserver[redis]``). :func:`~.base.broker_from_url` picks one from
``--broker``.
"""

from .base import Broker, BrokerNode
from .memory import MemoryBroker
from .url import REDIS_SCHEMES, redacted

__all__ = ["Broker", "BrokerNode", "MemoryBroker", "broker_from_url"]


def broker_from_url(
    url: str | None,
    *,
    presence_ttl: float = 15.0,
    timeout: float = 5.0,
    queue_bytes: int = 16 * 2**20,
    presence_queries: int = 8,
    prefix: str = "wsserver:",
) -> Broker:
    """The broker ``--broker`` names: None or ``memory`` (this process), ``redis://...``.

    Raises:
        ValueError: an unknown scheme, or Redis without redis-py installed.
    """
    if url is None or url == "memory":
        return MemoryBroker()
    if not isinstance(url, str):
        raise ValueError(f"broker must be a Broker, a URL or 'memory', not {type(url).__name__}")
    if url.startswith(REDIS_SCHEMES):
        from .redis_backend import RedisBroker

        return RedisBroker(
            url,
            presence_ttl=presence_ttl,
            timeout=timeout,
            queue_bytes=queue_bytes,
            presence_queries=presence_queries,
            prefix=prefix,
        )
    raise ValueError(
        f"unknown broker {redacted(url)!r}: expected 'memory' or a redis://, rediss:// or"
        " unix:// URL"
    )
