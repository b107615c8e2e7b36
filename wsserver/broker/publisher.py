"""Publishing to a deployment's topics from a program that is no server of it.

A task queue's worker, a cron job or a web application's view publishes to
the topics the servers' clients subscribe to, through the Redis their broker
uses (``pip install wsserver[redis]``), as Django Channels' ``group_send``
does from outside a consumer::

    async with Publisher("redis://cache:6379/0") as publisher:
        await publisher.publish("news", "hello")

    with SyncPublisher("redis://cache:6379/0") as publisher:  # (a thread's)
        publisher.publish("news", "hello")

The message goes on the topic's channel, in the form the servers use
(:func:`~.base.encode`), named as theirs are (the broker's prefix, the
database); it reaches each process with subscribers of the topic at that
moment (at most once: nothing is stored). Unlike a server's ``publish()``,
which never waits for Redis, these wait for its answer and raise redis-py's
error (a ``redis.exceptions.RedisError``) when Redis does not answer within
``timeout`` or refuses: the program decides what an outage means to it.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any

from .base import PREFIX_RULE, check_topic, encode, valid_prefix
from .redis_backend import channel_prefix, redis_options

try:
    import redis as syncredis
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.retry import Retry as SyncRetry
except ImportError:  # pragma: no cover - the optional extra is missing
    aioredis = None  # type: ignore[assignment]

__all__ = ["Publisher", "SyncPublisher"]


class _Publishing:
    """What both publishers are: the URL and settings checked, the channel of
    a topic named and a message written as the servers' brokers do."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "wsserver:",
        sender: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        """A publisher to the topics of the servers whose ``--broker`` is ``url``.

        Args:
            url: the servers' ``--broker`` (``redis://``, ``rediss://``, ``unix://``).
            prefix: their ``--broker-prefix``.
            sender: the name the servers' logs would show as the message's
                sender (ASCII, no newline); ``publisher-<pid>`` by default.
            timeout: seconds Redis gets to accept the connection and answer.

        Raises:
            ValueError: redis-py is not installed; a URL or setting no server
                would take.
        """
        if aioredis is None:
            raise ValueError("publishing through Redis needs redis-py: pip install wsserver[redis]")
        if sender is None:
            sender = f"publisher-{os.getpid()}"
        if not isinstance(sender, str) or not sender.isascii() or "\n" in sender or not sender:
            raise ValueError(f"sender: a name in ASCII without a newline, not {sender!r}")
        if not valid_prefix(prefix):
            raise ValueError(
                f"prefix (the servers' broker_prefix) must be {PREFIX_RULE}, not {prefix!r}"
            )
        if not timeout > 0:  # (NaN too)
            raise ValueError(f"timeout: seconds, more than 0, not {timeout!r}")
        self._channel_prefix = channel_prefix(prefix, redis_options(url))
        self._sender = sender
        # As the servers' broker: no retries (a PUBLISH cut off after it
        # reached Redis would go twice); keepalive where TCP is.
        self._client: Any = self._connect(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            **({} if url.startswith("unix:") else {"socket_keepalive": True}),
        )

    def _connect(self, url: str, **options: Any) -> Any:
        """The redis-py client (its pool) the publishing goes through."""
        raise NotImplementedError

    def _message(self, topic: str, message: str | bytes) -> tuple[bytes, bytes]:
        """The channel of ``topic`` and ``message`` as the servers read it."""
        check_topic(topic)
        if not isinstance(message, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"a message is str or bytes, not {type(message).__name__}")
        channel = (self._channel_prefix + "topic:" + topic).encode("utf-8")
        return channel, encode(self._sender, message)


class Publisher(_Publishing):
    """Publishes to the topics of the servers whose ``--broker`` is ``url``
    (its arguments: ``__init__``'s, which both publishers share).

    Its connections are the event loop's that first used it: one per loop
    (a program that calls ``asyncio.run()`` for each task makes one in each,
    or uses :class:`SyncPublisher`; redis-py's ``RuntimeError: Event loop is
    closed`` otherwise).
    """

    def _connect(self, url: str, **options: Any) -> Any:
        return aioredis.from_url(url, retry=Retry(NoBackoff(), 0), **options)

    async def publish(self, topic: str, message: str | bytes) -> int:
        """Send ``message`` to ``topic``'s subscribers; how many processes
        took it (Redis's count of the channel's subscribers: 0, nobody).

        Raises:
            TypeError, ValueError: not a topic, not a message.
            redis.exceptions.RedisError: Redis unreachable, slow or refusing.
        """
        channel, data = self._message(topic, message)
        return int(await self._client.publish(channel, data))

    async def aclose(self) -> None:
        """Close its connections to Redis."""
        await self._client.aclose()

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class SyncPublisher(_Publishing):
    """:class:`Publisher` for code without an event loop (a Django view, a
    Celery task, a script): each call blocks until Redis answered. Its
    connections are a pool that threads may share."""

    def _connect(self, url: str, **options: Any) -> Any:
        return syncredis.from_url(url, retry=SyncRetry(NoBackoff(), 0), **options)

    def publish(self, topic: str, message: str | bytes) -> int:
        """As :meth:`Publisher.publish`, blocking."""
        channel, data = self._message(topic, message)
        return int(self._client.publish(channel, data))

    def close(self) -> None:
        """Close its connections to Redis."""
        self._client.close()

    def __enter__(self) -> SyncPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
