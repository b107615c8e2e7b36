"""Redis publish/subscribe as the broker (``pip install wsserver[redis]``: redis-py and hiredis).

One Redis channel per topic, ``<prefix>topic:<topic>`` (``<prefix><db>:topic:<topic>``
on a database other than 0: publish/subscribe knows no databases, so
deployments on two databases of one Redis would otherwise hear each other's
messages); each process
subscribes to the channels of the topics it has local subscribers of (one
subscription per process and topic, not per connection) and drops the
subscription when its last local subscriber leaves, so Redis never sends a
process messages nobody there wants. Presence: each process keeps its counts
in a hash ``<prefix>presence:<node id>`` that expires after ``presence_ttl``
seconds unless refreshed (every third of it), so a process that dies stops
being counted within ``presence_ttl``; what changed is written (not every
count, which would hold the event loop with many topics), and the whole hash
only on connecting or when it was found gone (expired, evicted, Redis
restarted); the set ``<prefix>nodes`` names the
processes that have counts, so that reading presence costs one round trip
whatever else the Redis holds (a script reads their hashes, and takes the
processes whose hash expired out of the set).

Nothing here blocks the event loop: ``publish()`` puts the message in a
bounded queue that a task sends (pipelined); a full queue (Redis slow) or an
outage drops it (at most once, counted). On an outage the broker logs one
warning, tells the node (so the application can resync its clients), and
reconnects with capped exponential backoff, re-subscribing every topic it needs;
the recovery is logged with how many messages were dropped meanwhile. The
topics are subscribed again in batches, each confirmed before the next is
sent, so that Redis's answer never passes its output buffer limit for
subscribers, however many topics there are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import ssl
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .base import MIN_PRESENCE_TTL, Broker, BrokerNode, decode, encode
from .url import REDIS_SCHEMES, check_redis_url, redacted

try:
    import redis.asyncio as aioredis
    from redis.asyncio.connection import parse_url
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import (
        AuthenticationError,
        NoPermissionError,
        RedisError,
        ResponseError,
    )
    from redis.exceptions import ConnectionError as LostConnection
except ImportError:  # pragma: no cover - the optional extra is missing
    aioredis = None  # type: ignore[assignment]
    AuthenticationError = OSError  # type: ignore[assignment,misc]
    LostConnection = OSError  # type: ignore[assignment,misc]
    RedisError = OSError  # type: ignore[assignment,misc]
    ResponseError = OSError  # type: ignore[assignment,misc]
    NoPermissionError = OSError  # type: ignore[assignment,misc]

__all__ = ["RedisBroker", "channel_prefix", "redis_options"]

#: How Python says a function was given a keyword it does not take.
_UNKNOWN_PARAMETER = re.compile(r"unexpected keyword argument '(\w+)'")
#: The parameters of a rediss:// URL that name a file (or a directory) TLS reads.
_TLS_FILES = ("ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile")
#: How redis-py says a URL's parameter has a value it cannot parse.
_INVALID_VALUE = re.compile(r"Invalid value for '(\w+)' in connection URL")

logger = logging.getLogger("wsserver.broker")

#: Seconds the reader waits for a message at a time (then looks whether a ping is due).
POLL = 0.05
#: A connection up this long (seconds) served: the reconnecting after it starts over.
SERVED = 0.25
#: How long a stopping connection's tasks are waited for (and, when the
#: broker stops, the messages still queued for Redis).
STOP_TIMEOUT = 2.0
#: Seconds between looks at whether the queue was sent, when the broker stops.
FLUSH_POLL = 0.01
#: Seconds unused after which a connection may have been closed for idleness:
#: a batch of messages failing on it goes again (see _send()).
IDLE = 1.0
#: Seconds between the error lines of a Redis that goes on refusing this server.
REFUSED_AGAIN = 60.0
#: Seconds between the warnings of messages dropped while Redis is up.
DROPPED_AGAIN = 60.0
#: Seconds between cancels of a task that goes on (see _cancel()).
CANCEL_AGAIN = 0.05
#: Channels subscribed to in one SUBSCRIBE on connecting, at most, and their
#: names' bytes: Redis answers with a confirmation naming each channel, and
#: drops a subscriber whose answers waiting to be read pass its
#: ``client-output-buffer-limit pubsub`` (32 MB by default).
SUBSCRIBE_BATCH = 1000
SUBSCRIBE_BYTES = 2**20
#: Bytes a message waiting in the queue to Redis takes besides its own (its
#: tuple, the headers of its two bytes objects, its slot in the queue),
#: counted against ``queue_bytes``: a burst of tiny messages holds no more
#: memory than that setting says.
MESSAGE_OVERHEAD = 128
#: Messages handed on to this process's connections (each message received
#: counting one more) after which the reader gives the loop a turn, as
#: ``Server.publish()`` does (SENDS_PER_TURN): a burst another process
#: published held every client of this one until its end.
DELIVERIES_PER_TURN = 256
#: Connections of the client's pool the broker holds at once besides its
#: presence queries: the subscriber's, the sender's and the presence writer's.
OWN_CONNECTIONS = 3

#: Presence, read in one round trip: KEYS[1] the set of processes, ARGV[1] the
#: prefix of their hashes, ARGV[2] this process (left out: its counts are
#: taken as they are now). Returns the other processes' hashes (flat
#: field/value lists); a process whose hash expired (it died) leaves the set.
PRESENCE_SCRIPT = """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[2] then
    local counts = redis.call('HGETALL', ARGV[1] .. id)
    if #counts == 0 then
      redis.call('SREM', KEYS[1], id)
    else
      table.insert(out, counts)
    end
  end
end
return out
"""


#: One topic's presence, in one round trip: KEYS[1] the set of processes,
#: ARGV[1] the prefix of their hashes, ARGV[2] this process (left out), ARGV[3]
#: the topic. Returns the sum of the other processes' counts of it; a process
#: whose hash expired leaves the set. (One field of each hash: with many
#: topics, reading every hash held Redis, and all its publishing, a while.)
PRESENCE_OF_SCRIPT = """
local total = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[2] then
    local n = redis.call('HGET', ARGV[1] .. id, ARGV[3])
    if n then
      total = total + tonumber(n)
    elseif redis.call('EXISTS', ARGV[1] .. id) == 0 then
      redis.call('SREM', KEYS[1], id)
    end
  end
end
return total
"""


#: A change of this process's presence, in one step: KEYS[1] its hash,
#: KEYS[2] the set of processes; ARGV[1] the hash's expiry (ms), ARGV[2] this
#: process, ARGV[3] '1' if the hash should be there (the last write left
#: counts), then topic/count pairs (a count of 0: the topic is gone). Writes
#: nothing and returns 0 if the hash should be there and is not (it expired,
#: it was evicted, Redis restarted empty): it is then written whole.
PRESENCE_CHANGE_SCRIPT = """
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
for i = 4, #ARGV - 1, 2 do
  if ARGV[i + 1] == '0' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  redis.call('SADD', KEYS[2], ARGV[2])
end
return 1
"""


class RedisBroker(Broker):
    """The broker on a Redis server.

    Args:
        url: ``redis://host:port/db`` (``rediss://`` for TLS, ``unix://`` for a socket).
        prefix: of every key and channel, to share a Redis with other things;
            the channels' have the database number after it when it is not 0
            (``wsserver:1:``): keys are apart in each database, channels are not.
        presence_ttl: seconds after which a process that stopped refreshing its
            counts (it died) is no longer counted; at least ``MIN_PRESENCE_TTL``.
        queue_size: messages waiting to be sent to Redis before more are
            dropped (None: as many as ``queue_bytes`` holds).
        queue_bytes: the bytes of the messages waiting to be sent to Redis
            (or being sent: their payloads, channel names, and
            ``MESSAGE_OVERHEAD`` each): a message is dropped if it would take
            them beyond this.
        max_backoff: longest wait between reconnection attempts.
        presence_queries: :meth:`presence` queries sent at once; more wait
            their turn (within ``timeout``), so that a burst of them (Redis
            slow a moment) never takes the connections publishing needs
            (fewer if the URL's ``?max_connections=`` leaves fewer).
        timeout: seconds Redis gets to answer a command (or accept a
            connection) before it is taken for unreachable: a Redis that
            stops answering (stopped, overloaded, cut off without a reset) is
            an outage like one that is down, seen within ``presence_ttl / 3``
            (the presence refresh) plus this, or this after a publish.

    Raises:
        ValueError: redis-py is not installed; ``presence_ttl`` is too short.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "wsserver:",
        presence_ttl: float = 15.0,
        queue_size: int | None = None,
        queue_bytes: int = 16 * 2**20,
        max_backoff: float = 5.0,
        timeout: float = 5.0,
        presence_queries: int = 8,
    ) -> None:
        if aioredis is None:
            raise ValueError("the Redis broker needs redis-py: pip install wsserver[redis]")
        super().__init__()
        self.url = url
        #: The URL as logs show it: no password.
        self.shown_url = redacted(url)
        self.prefix = prefix
        options = redis_options(url)
        # A ?max_connections= that leaves no connection for a presence query
        # besides the broker's own would have each query take one a publish needs.
        pool = options.get("max_connections")
        if pool and pool <= OWN_CONNECTIONS:
            # (Each query could then take the connection a publish needs: an outage.)
            raise ValueError(
                f"broker {self.shown_url!r}: the broker holds {OWN_CONNECTIONS} connections "
                f"and one for a presence query: ?max_connections= of at least "
                f"{OWN_CONNECTIONS + 1}, not {pool}"
            )
        pool = pool or 100  # (the client's pool: redis-py's 100)
        #: Of the channels: the prefix, and the database if not 0.
        self.channel_prefix = channel_prefix(prefix, options)
        #: Bytes cut off a channel's name to find its topic.
        self._topic_at = len(self._channel(""))
        if not presence_ttl >= MIN_PRESENCE_TTL:  # (NaN too)
            raise ValueError(
                f"presence_ttl: at least {MIN_PRESENCE_TTL} seconds, not {presence_ttl}"
                " (broker_presence_ttl, refreshed every third of it)"
            )
        self.presence_ttl = presence_ttl
        self.max_backoff = max_backoff
        self.timeout = timeout
        #: Whether Redis is reachable now.
        self.up = False
        self._node: BrokerNode | None = None
        self._wanted: set[str] = set()
        #: Topics whose subscription changed since the connection subscribed
        #: to _wanted, for it to apply (at once: _apply_changes()); kept only
        #: while there is one (see _connect_and_serve).
        self._changes: dict[str, None] = {}
        self._changes_ready = asyncio.Event()
        #: The changes of the subscriptions made so far (while kept), and how
        #: many of them are in effect: Redis confirmed them (written is not
        #: enough: the SUBSCRIBE may reach Redis after what goes on another
        #: connection meanwhile). Each round that subscribes waits for the
        #: confirmation of its last channel (Redis answers in order), a round
        #: without a SUBSCRIBE for that of the round before it, if still
        #: awaited; each round confirmed sets its event (and makes the next
        #: one). subscriptions_sent() waits for them, and _send() for those
        #: made before its batch: a message never goes out ahead of a
        #: subscription made before it was published (another process's
        #: answer to it would find none), nor waits for changes after it.
        self._changes_made = 0
        self._changes_confirmed = 0
        self._round_confirmed = asyncio.Event()
        self._confirming: deque[tuple[bytes, int]] = deque()
        #: The answer :meth:`_apply_changes` waits for before sending more: a
        #: batch's kind (``subscribe``, ``unsubscribe``), its last channel,
        #: and the future :meth:`_read` completes on hearing it.
        self._answer_awaited: tuple[str, bytes, asyncio.Future[None]] | None = None
        #: When :meth:`_read` last heard from the subscriber connection (loop time).
        self._heard_at = 0.0
        self._keeping_changes = False
        self._counts: dict[str, int] = {}
        self._counts_changed = asyncio.Event()
        #: Topics whose counts changed since the last presence write; kept
        #: only while there is a connection (see _keeping_changes).
        self._dirty: set[str] = set()
        #: Whether the last presence write left a hash in Redis (it had
        #: counts); None: not known (a new connection, a write refused), so
        #: the next write is of every count.
        self._written: bool | None = None
        self._queue: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue(queue_size or 0)
        self.queue_bytes = queue_bytes
        #: Bytes of the messages queued or being sent (given back once sent or dropped).
        self._queued_bytes = 0
        #: When the last batch of messages went out (loop time; see _send()).
        self._sent_at = 0.0
        self._client: Any = None
        #: The last closing of a connection's client (detach() waits for it).
        self._closing: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._down_since: float | None = None
        #: Whether the current connection attempt came up (then lost: the
        #: reconnecting starts over from the shortest wait).
        self._served = False
        self._up_since = 0.0
        self._dropped_in_outage = 0
        #: Messages dropped while up and not said yet, and when it was last
        #: said (loop time; see _dropped_while_up()).
        self._unsaid_drops = 0
        self._drop_reason = ""
        self._drops_said: float | None = None
        #: When a refusal was last logged (loop time; see _went_down()).
        self._refused_said = 0.0
        self._first_attempt: asyncio.Future[None] | None = None
        #: Held by each presence query: at most presence_queries of them
        #: take a connection of the client's pool, which publishing shares
        #: (of the pool's 100, or what the URL's ?max_connections= leaves).
        self._presence_limit = min(presence_queries, pool - OWN_CONNECTIONS)
        self._presence_queries = asyncio.Semaphore(self._presence_limit)
        #: Why the last presence write was refused (None: it was not).
        self._presence_refused: str | None = None
        #: Whether Redis refused the script that writes a change of the
        #: counts, on this connection (then every count is written).
        self._script_refused = False
        #: Whether the last presence query was refused (said once a streak).
        self._presence_read_refused = False
        #: Whether a message not in the broker's form was said (once).
        self._foreign_said = False

    def __repr__(self) -> str:
        return f"<RedisBroker {self.shown_url} {'up' if self.up else 'down'}>"

    # ------------------------------------------------------------- lifecycle

    async def attach(self, node: BrokerNode) -> None:
        """Connect, waiting a second at most: an unreachable Redis never stops start-up."""
        if self._node is not None:
            raise RuntimeError("a RedisBroker serves one server; make one per server")
        self._node = node
        loop = asyncio.get_running_loop()
        # Made anew for this server's loop: asyncio's queues, events and
        # semaphores are bound to the first loop that waits on them, and the
        # server before may have run on another (a test's, a SyncTestClient's).
        self._queue = asyncio.Queue(self._queue.maxsize)
        self._changes_ready = asyncio.Event()
        self._round_confirmed = asyncio.Event()
        self._counts_changed = asyncio.Event()
        self._presence_queries = asyncio.Semaphore(self._presence_limit)
        self._closing = None
        self._first_attempt = loop.create_future()
        self._task = loop.create_task(self._run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._first_attempt), 1.0)

    async def detach(self, node: BrokerNode) -> None:
        """Stop, and take this process's counts out of presence at once (not
        ``presence_ttl`` later) if Redis was reachable. The messages queued
        for Redis go out first (within ``STOP_TIMEOUT``, or ``timeout`` if
        shorter); those it cannot send are dropped, counted, and said in a
        warning (with those of an outage this stop ends).

        Only for the server attached: another one, refused by :meth:`attach`,
        leaves it serving.
        """
        if node is not self._node:
            return
        was_up = self.up
        task = self._task
        if task is not None:
            # What was published before (an on_shutdown hook may publish)
            # goes out first, unless Redis takes longer than STOP_TIMEOUT.
            loop = asyncio.get_running_loop()
            due = loop.time() + min(self.timeout, STOP_TIMEOUT)
            while self.up and self._queued_bytes and loop.time() < due:
                await asyncio.sleep(FLUSH_POLL)
            self._task = None
            await _cancel([task])
            if not task.done():
                logger.warning("broker %s: its task did not stop; left behind", self.shown_url)
        self._drop_queued()  # (what the stop cut off: counted as dropped, not left)
        self._say_drops(now_or_never=True)  # (a burst's drops not said yet: DROPPED_AGAIN)
        if self._dropped_in_outage:
            # (Said when Redis is back, or by nothing: what this stop cut
            # off, and the drops of an outage it ends.)
            logger.warning(
                "broker %s stopped: %d message%s for other processes dropped (%s)",
                self.shown_url,
                self._dropped_in_outage,
                "" if self._dropped_in_outage == 1 else "s",
                "Redis unreachable"
                if self._down_since is not None
                else f"not taken by Redis within {min(self.timeout, STOP_TIMEOUT):.1f} s",
            )
        if self._closing is not None:
            await asyncio.wait({self._closing})  # (bounded: its aclose() is, by a second)
        await self._close_client()
        if was_up:
            # On a connection of its own: the task's is closed with it, and
            # no presence write of that task can come after this one.
            assert aioredis is not None
            client = aioredis.from_url(self.url, socket_connect_timeout=1.0, socket_timeout=1.0)
            try:
                pipe = client.pipeline(transaction=True)
                pipe.delete(self._presence_key(node.node_id))
                pipe.srem(self.prefix + "nodes", node.node_id)
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    await asyncio.wait_for(pipe.execute(), 1.0)
            finally:
                with contextlib.suppress(RedisError, OSError, TimeoutError, RuntimeError):
                    await asyncio.wait_for(client.aclose(), 1.0)
        self._node = None
        self.up = False
        # An outage under way ends with its server's service: the next server
        # given this broker says (and counts) its own.
        self._down_since = None
        self.stats.unreachable = 0
        self._dropped_in_outage = 0

    # ------------------------------------------------------------- interface

    def subscribe(self, node: BrokerNode, topic: str) -> None:
        if topic not in self._wanted:
            self._wanted.add(topic)
            self._changed(topic)

    def unsubscribe(self, node: BrokerNode, topic: str) -> None:
        if topic in self._wanted:
            self._wanted.discard(topic)
            self._changed(topic)

    async def subscriptions_sent(self) -> None:
        """Return once the changes of the subscriptions made so far are in
        effect, Redis having confirmed them (written is not enough: a Redis
        that reads them in the same turn as another process's PUBLISH may
        take that first), within ``timeout``; at once while Redis is
        unreachable."""
        made = self._changes_made
        if self._changes_confirmed < made:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._confirmed(made), self.timeout)

    async def _confirmed(self, made: int) -> None:
        """Wait until the first ``made`` changes are confirmed (or the
        connection ends: the next one subscribes to what is wanted then)."""
        while self._changes_confirmed < made:
            await self._round_confirmed.wait()

    def _confirmed_up_to(self, made: int) -> None:
        """The first ``made`` changes are in effect (or no longer to be)."""
        self._changes_confirmed = max(self._changes_confirmed, made)
        done, self._round_confirmed = self._round_confirmed, asyncio.Event()
        done.set()

    def _subscription_confirmed(self, channel: bytes) -> None:
        """Redis confirmed a SUBSCRIBE of ``channel``: a round's last, perhaps."""
        confirming = self._confirming
        if confirming and confirming[0][0] == channel:
            self._confirmed_up_to(confirming.popleft()[1])

    def _changed(self, topic: str) -> None:
        if self._keeping_changes:
            self._changes[topic] = None
            self._changes_made += 1
            self._changes_ready.set()

    def publish(self, node: BrokerNode, topic: str, message: str | bytes) -> bool:
        if not self.up:
            self._drop()
            return False
        channel = self._channel(topic)
        data = encode(node.node_id, message)
        size = _queued_size(channel, data)
        if size > self.queue_bytes:
            self._dropped_while_up(
                f"a message taking {size} bytes queued (with its channel and"
                f" {MESSAGE_OVERHEAD} of its own), over broker_queue_bytes"
                f" ({self.queue_bytes}), never fits in the queue to Redis"
            )
            return False
        if self._queued_bytes + size > self.queue_bytes or self._queue.full():
            self._dropped_while_up("the queue to Redis is full (Redis slower than the publishing)")
            return False
        self._queue.put_nowait((channel, data))
        self._queued_bytes += size
        return True

    def count(self, node: BrokerNode, topic: str, subscribers: int) -> None:
        if subscribers:
            self._counts[topic] = subscribers
        else:
            self._counts.pop(topic, None)
        if self._keeping_changes:  # (else the next connection writes every count)
            self._dirty.add(topic)
        self._counts_changed.set()

    async def presence(self) -> dict[str, int]:
        """Counts of every live process (only this one's while Redis is unreachable).

        Never raises for the broker's failures: they answer with this process's counts.

        This process's own counts are taken as they are now, not from Redis
        (where they are written a moment later).
        """
        total = dict(self._counts)
        hashes = await self._query_presence(PRESENCE_SCRIPT)
        for counts in hashes or ():
            for i in range(0, len(counts) - 1, 2):
                name = counts[i].decode("utf-8", "replace")
                total[name] = total.get(name, 0) + int(counts[i + 1])
        return total

    async def presence_of(self, topic: str) -> int:
        """``topic``'s count in every live process (as :meth:`presence`),
        reading only that topic's count of each."""
        own = self._counts.get(topic, 0)
        others = await self._query_presence(PRESENCE_OF_SCRIPT, topic)
        return own + int(others or 0)

    async def _query_presence(self, script: str, *args: str) -> Any:
        """``script``'s answer about the other processes, or None when Redis
        cannot be asked (unreachable, slower than ``timeout``, reconnecting)."""
        client = self._client
        if not self.up or client is None or self._node is None:
            return None
        node_id = self._node.node_id

        keys = (1, self.prefix + "nodes", self.prefix + "presence:", node_id, *args)

        async def query() -> Any:
            async with self._presence_queries:
                try:
                    return await client.eval(script, *keys)
                except LostConnection:
                    # A pooled connection closed for idleness (Redis's
                    # `timeout`, a NAT) fails at once: a read goes again.
                    return await client.eval(script, *keys)

        try:
            # (wait_for, not asyncio.timeout(): in this task, redis-py can
            # swallow a cancellation of the caller.)
            answer = await asyncio.wait_for(query(), self.timeout)
        except ResponseError as exc:  # refused (an ACL without EVAL, scripting off)
            if not self._presence_read_refused:
                self._presence_read_refused = True
                logger.warning(
                    "broker %s: presence not read (%s); this process's counts are the "
                    "answer until Redis allows it",
                    self.shown_url,
                    exc,
                )
            return None
        except Exception:
            # Redis's errors, and whatever redis-py raises when the broker drops
            # its connections under the query (to reconnect, or to stop): it
            # can fail with an AttributeError there. (A cancellation goes on.)
            return None
        if self._presence_read_refused:
            self._presence_read_refused = False
            logger.warning("broker %s: presence read again", self.shown_url)
        return answer

    # ----------------------------------------------------------- connection

    def _channel(self, topic: str) -> bytes:
        return (self.channel_prefix + "topic:" + topic).encode("utf-8")

    def _presence_key(self, node_id: str) -> str:
        return self.prefix + "presence:" + node_id

    def _drop(self) -> None:
        self.stats.dropped += 1
        self._dropped_in_outage += 1

    def _dropped_while_up(self, why: str) -> None:
        """A message dropped for the other processes while Redis is up: said
        at once, then at most every DROPPED_AGAIN seconds (with how many)."""
        self.stats.dropped += 1
        self._unsaid_drops += 1
        self._drop_reason = why
        self._say_drops()

    def _say_drops(self, *, now_or_never: bool = False) -> None:
        """Say the drops not said yet, unless the last such warning is more
        recent than DROPPED_AGAIN (then the next call, or _keep_presence()'s
        every third of the ttl, says them), or ``now_or_never`` (the broker
        stops)."""
        if not self._unsaid_drops:
            return
        now = asyncio.get_running_loop().time()
        if (
            not now_or_never
            and self._drops_said is not None
            and now - self._drops_said < DROPPED_AGAIN
        ):
            return
        logger.warning(
            "broker %s: %d message%s for other processes dropped (local delivery done): %s",
            self.shown_url,
            self._unsaid_drops,
            "" if self._unsaid_drops == 1 else "s",
            self._drop_reason,
        )
        self._drops_said = now
        self._unsaid_drops = 0

    async def _run(self) -> None:
        """Connect, serve, and reconnect with capped exponential backoff, forever.

        The backoff starts over after a connection that served a while (one
        dropped as soon as it is made goes on doubling it).
        """
        loop = asyncio.get_running_loop()
        backoff = 0.1
        while True:
            self._served = False
            try:
                await self._connect_and_serve()
            except (RedisError, OSError, TimeoutError) as exc:
                self._went_down(exc)
            except Exception as exc:  # a bug: still, the server must go on
                logger.exception("broker %s failed; reconnecting", self.shown_url)
                self._went_down(exc)
            finally:
                # The next connection subscribes to what is wanted then.
                self._keeping_changes = False
                self._changes.clear()
                self._changes_ready.clear()
                self._confirming.clear()
                self._confirmed_up_to(self._changes_made)  # (no one waits for this one)
                self._dirty.clear()
                # (Shielded: detach() cancels this task again while it stops,
                # and waits for this close; see _closing.)
                self._closing = asyncio.ensure_future(self._close_client())
                await asyncio.shield(self._closing)
                if self._first_attempt is not None and not self._first_attempt.done():
                    self._first_attempt.set_result(None)
            if self._served and loop.time() - self._up_since >= SERVED:
                backoff = 0.1  # an outage after service: the first attempt comes soon
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def _connect_and_serve(self) -> None:
        assert aioredis is not None and self._node is not None
        node = self._node
        # socket_timeout set whatever redis-py's default (None before 7.0:
        # a Redis that stopped answering held every command for ever).
        client = self._client = aioredis.from_url(
            self.url,
            socket_connect_timeout=min(2.0, self.timeout),
            socket_timeout=self.timeout,
            # No retries of redis-py's (since 6.0, a batch of PUBLISH cut off
            # by a lost connection went again, up to 3 times: what had reached
            # Redis was published twice). Reconnecting is _run()'s; sending
            # a batch again, _execute()'s, only when that cannot repeat one.
            retry=Retry(NoBackoff(), 0),
            # (TCP's: redis-py's Unix socket connection takes no such option.)
            **({} if self.url.startswith("unix:") else {"socket_keepalive": True}),
        )
        try:
            await client.ping()
        except ResponseError as exc:
            if not _cannot_persist(exc):
                raise
        # (The confirmations of subscriptions are read: see _subscribe().)
        pubsub: Any = client.pubsub(ignore_subscribe_messages=False)
        # redis-py's PubSub connects again by itself after a failure and
        # subscribes there to every channel in one SUBSCRIBE, which _subscribe
        # batches: its connection made again fails instead, for this one to
        # end and the next to subscribe.
        await pubsub.connect()
        pubsub.connection.deregister_connect_callback(pubsub.on_connect)
        pubsub.connection.register_connect_callback(self._subscriber_connected_again)
        # A channel of its own, so that the subscriber connection exists even
        # before the first topic.
        self._changes.clear()
        self._changes_ready.clear()
        self._confirming.clear()
        subscribed = self._changes_made  # (those below go before any publish)
        self._keeping_changes = True  # (until this connection ends: see _run())
        await self._subscribe(
            pubsub,
            node,
            [
                (self.channel_prefix + "node:" + node.node_id).encode(),
                *(self._channel(t) for t in self._wanted),
            ],
        )
        self._confirmed_up_to(subscribed)  # (each batch confirmed, the last too)
        self._written = None  # (Redis may have lost it meanwhile: written whole)
        self._script_refused = False  # (its rights may have changed)
        await self._write_presence(client, node)
        self._came_up()
        if self._first_attempt is not None and not self._first_attempt.done():
            self._first_attempt.set_result(None)
        # Until one of them fails (the connection is lost): then all stop.
        tasks = [
            asyncio.ensure_future(self._read(pubsub, node)),
            asyncio.ensure_future(self._apply_changes(pubsub)),
            asyncio.ensure_future(self._send(client)),
            asyncio.ensure_future(self._keep_presence(client, node)),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            # (Shielded: this task may be cancelled again meanwhile, by
            # detach(); the connection's tasks must end all the same.)
            await asyncio.shield(_cancel(tasks))
            for task in tasks:
                if task.done() and not task.cancelled():
                    task.exception()  # (seen: not "never retrieved")
        for task in done:
            task.result()  # raises what ended it

    async def _subscriber_connected_again(self, connection: Any) -> None:
        """Called by redis-py when the subscriber connection is made again."""
        await connection.disconnect()
        raise LostConnection(
            "the subscriber connection was lost (or Redis closed it: a subscriber too slow "
            "for its client-output-buffer-limit pubsub, a CLIENT KILL)"
        )

    async def _subscribe(self, pubsub: Any, node: BrokerNode, channels: list[bytes]) -> None:
        """Subscribe to ``channels`` in batches of at most ``SUBSCRIBE_BATCH``
        channels and ``SUBSCRIBE_BYTES`` of their names, each batch's
        confirmations read before the next is sent (the messages that come
        meanwhile are delivered).

        All in one SUBSCRIBE, the confirmations of many long topics (20,000
        of 2 kB) passed Redis's output buffer limit for subscribers: Redis
        dropped the connection, and again at each reconnection. Nothing
        heard for ``timeout`` while confirmations are awaited is an outage.
        """
        loop = asyncio.get_running_loop()
        for batch in _batches(channels):
            await pubsub.subscribe(*batch)
            last = batch[-1]
            due = loop.time() + self.timeout
            while True:
                message = await pubsub.get_message(timeout=POLL)
                if message is None:
                    if loop.time() > due:
                        raise TimeoutError(
                            f"no confirmation of a subscription from Redis in {self.timeout} s"
                        )
                    continue
                due = loop.time() + self.timeout  # (heard from: alive)
                kind = message.get("type")
                if kind == "message":
                    self._deliver(message, node)
                elif kind == "subscribe" and message["channel"] == last:
                    break

    async def _apply_changes(self, pubsub: Any) -> None:
        """Send the subscriptions that changed as soon as they change, many
        per command, new ones first: one that came later than a message
        published right after subscribing (a newcomer's answer) lost the
        message. Until Redis confirmed them, no message goes out (:meth:`_send`).

        The confirmations are read by :meth:`_read`, on the same connection;
        each command (a batch, see :func:`_batches`) waits for Redis's answer
        to the one before (nothing heard for ``timeout`` meanwhile: an outage).
        """
        ready = self._changes_ready
        while True:
            await ready.wait()
            ready.clear()
            changed, self._changes = self._changes, {}
            made = self._changes_made
            wanted = self._wanted
            new = [self._channel(t) for t in changed if t in wanted]
            gone = [self._channel(t) for t in changed if t not in wanted]
            # (Awaited before the SUBSCRIBE goes: _read() may hear it first.)
            confirming = self._confirming
            if new:
                confirming.append((new[-1], made))
            elif confirming:
                confirming[-1] = (confirming[-1][0], made)
            # Each batch answered before the next goes (and before the next
            # round): Redis answers a SUBSCRIBE or UNSUBSCRIBE with a reply
            # naming each channel, and the replies of a burst sent at once
            # (50 clients each subscribing to max_topics long topics) passed
            # its client-output-buffer-limit for subscribers: dropped.
            for batch in _batches(new):
                await self._answered_command(pubsub, "subscribe", batch)
            if not confirming:
                # (Nothing subscribed, or confirmed: no message waits for the
                # unsubscriptions' answers, which come behind what Redis
                # sends this connection first.)
                self._confirmed_up_to(made)
            for batch in _batches(gone):
                await self._answered_command(pubsub, "unsubscribe", batch)

    async def _answered_command(self, pubsub: Any, kind: str, batch: list[bytes]) -> None:
        """Send the SUBSCRIBE or UNSUBSCRIBE (``kind``) of ``batch``, and wait
        for Redis's answer to it (see :meth:`_answer`)."""
        answered = asyncio.get_running_loop().create_future()
        self._answer_awaited = (kind, batch[-1], answered)
        try:
            if kind == "subscribe":
                await pubsub.subscribe(*batch)
            else:
                await pubsub.unsubscribe(*batch)
            await self._answer(answered, kind, len(batch))
        finally:
            self._answer_awaited = None

    async def _answer(self, answered: asyncio.Future[None], kind: str, channels: int) -> None:
        """Wait until ``answered``; nothing heard on the subscriber connection
        for ``timeout`` meanwhile is an outage (the answer comes behind the
        messages already on their way, each showing the connection alive)."""
        loop = asyncio.get_running_loop()
        since = loop.time()
        while not answered.done():
            left = max(since, self._heard_at) + self.timeout - loop.time()
            if left <= 0:
                raise TimeoutError(
                    f"no answer from Redis to the {kind.upper()} of {channels}"
                    f" channel{'' if channels == 1 else 's'} in {self.timeout} s"
                )
            await asyncio.wait({answered}, timeout=left)

    def _answered(self, kind: str, channel: bytes) -> None:
        """Redis answered a SUBSCRIBE or UNSUBSCRIBE of ``channel``: the end
        of the batch :meth:`_apply_changes` awaits, perhaps."""
        awaited = self._answer_awaited
        if awaited is not None and awaited[:2] == (kind, channel) and not awaited[2].done():
            awaited[2].set_result(None)

    def _deliver(self, message: dict[str, Any], node: BrokerNode) -> int:
        """Deliver a message Redis sent, if it is another process's; how
        many sends that made (the message itself counting one)."""
        try:
            sender, payload = decode(message["data"])
        except (ValueError, UnicodeDecodeError):
            self._foreign_message(message["channel"])
            return 1
        if sender == node.node_id:
            return 1  # our own: delivered locally already
        self.stats.received += 1
        topic = message["channel"][self._topic_at :].decode("utf-8", "replace")
        return 1 + (node.deliver(topic, payload) or 0)

    def _foreign_message(self, channel: bytes) -> None:
        """A message on a topic's channel not in :func:`~.base.encode`'s form
        (another program's: redis-cli, a service in another language):
        dropped, and said once, with the form it should have."""
        if self._foreign_said:
            return
        self._foreign_said = True
        logger.warning(
            "broker %s: a message on %r not in the broker's form dropped (another program's?"
            " publish b't<sender>\\n<UTF-8 text>' or b'b<sender>\\n<bytes>', the sender any"
            " ASCII name); said once",
            self.shown_url,
            channel.decode("utf-8", "replace"),
        )

    async def _read(self, pubsub: Any, node: BrokerNode) -> None:
        """Deliver what Redis sends.

        The subscriber connection is pinged every third of ``presence_ttl``: one
        the network dropped silently (no FIN, no reset) would otherwise wait
        for ever, while the command connection, busy, looks fine. Nothing at
        all heard for ``timeout`` while a pong is awaited is an outage (the
        pong comes behind the messages already on their way: each of them
        shows the connection alive). So is nothing heard for ``timeout`` while
        the confirmation of a SUBSCRIBE is awaited (not at the next ping: the
        messages published meanwhile wait for it, see :meth:`_send`).
        """
        loop = asyncio.get_running_loop()
        every = self.presence_ttl / 3
        next_ping = loop.time() + every
        pong_due: float | None = None
        confirmation_due: float | None = None
        confirming = self._confirming
        sent = 0  # (see DELIVERIES_PER_TURN)
        while True:
            now = loop.time()
            if pong_due is None:
                if now >= next_ping:
                    await pubsub.ping()
                    pong_due = now + self.timeout
            elif now > pong_due:
                raise TimeoutError(
                    f"no answer to a ping on the subscriber connection in {self.timeout} s"
                )
            if not confirming:
                confirmation_due = None
            elif confirmation_due is None:
                confirmation_due = now + self.timeout
            elif now > confirmation_due:
                raise TimeoutError(
                    f"no confirmation of a subscription from Redis in {self.timeout} s"
                )
            try:
                message = await pubsub.get_message(timeout=POLL)
            except ResponseError as exc:
                if pong_due is None or not _cannot_persist(exc):
                    raise
                message = {"type": "pong"}  # (the ping's answer, a refusal: alive)
            if message is None:
                continue
            self._heard_at = now  # (before the poll's wait: soon enough)
            if pong_due is not None:
                pong_due = loop.time() + self.timeout  # (heard from: alive)
            if confirmation_due is not None:
                confirmation_due = loop.time() + self.timeout
            kind = message.get("type")
            if kind == "pong":
                pong_due = None
                next_ping = loop.time() + every
                continue
            if kind == "message":
                sent += self._deliver(message, node)
                if sent >= DELIVERIES_PER_TURN:
                    sent = 0
                    await asyncio.sleep(0)  # (what was read is delivered after the others' turn)
            elif kind == "subscribe":
                self._subscription_confirmed(message["channel"])
                self._answered(kind, message["channel"])
            elif kind == "unsubscribe":
                self._answered(kind, message["channel"])

    async def _send(self, client: Any) -> None:
        """Send queued messages, many per round trip."""
        loop = asyncio.get_running_loop()
        self._sent_at = loop.time()  # (a new connection, just used: not closed for idleness)
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < 1000:
                batch.append(queue.get_nowait())
            size = sum(_queued_size(channel, data) for channel, data in batch)
            made = self._changes_made  # (before them: their subscriptions go first)

            def pipeline(batch: list[tuple[bytes, bytes]] = batch) -> Any:
                pipe = client.pipeline(transaction=False)
                for channel, data in batch:
                    pipe.publish(channel, data)
                return pipe

            # A connection unused a while may have been closed (Redis's
            # `timeout`, a NAT): it fails at the first command, and the batch
            # can go again. One in use that fails may have published part of
            # it: going again would publish that twice.
            idle = loop.time() - self._sent_at >= IDLE
            try:
                if self._changes_confirmed < made:
                    await self._confirmed(made)
                await self._execute(pipeline, again=idle)
            except (RedisError, OSError, TimeoutError, asyncio.CancelledError):
                # (Cancelled: the connection ended, or the broker stops.)
                self.stats.dropped += len(batch)
                self._dropped_in_outage += len(batch)
                raise
            finally:
                self._queued_bytes -= size
            self._sent_at = loop.time()
            self.stats.published += len(batch)

    async def _keep_presence(self, client: Any, node: BrokerNode) -> None:
        """Write the counts when they change (at most every 0.1 s) and every ttl/3."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._counts_changed.wait(), self.presence_ttl / 3)
            await asyncio.sleep(0.1)  # a burst of joins is one write
            await self._write_presence(client, node)
            self._say_drops()  # (those a burst left unsaid)

    async def _write_presence(self, client: Any, node: BrokerNode) -> None:
        """Write what changed in this process's counts, and refresh their expiry.

        Every count (the hash deleted and written again) only when the hash
        in Redis is not known to hold the last ones written: after
        connecting, after a refused write of every count, or when it is
        found gone (it expired, Redis evicted it or restarted empty). Writing
        every count holds the event loop a while with many topics (some
        100 ms for 30,000); a change of a few, well under a millisecond.

        Redis refusing the write (full at ``maxmemory``, a read-only replica,
        unable to persist: ``-MISCONF``, an ACL without it) is not an outage:
        publish/subscribe still works, so messages go on; it is logged once
        and tried again at the next refresh.
        """
        self._counts_changed.clear()
        key = self._presence_key(node.node_id)
        nodes = self.prefix + "nodes"
        ttl = int(self.presence_ttl * 1000)
        try:
            if self._written is not None and not self._script_refused:
                changed, self._dirty = self._dirty, set()
                args: list[str | int] = []
                for topic in changed:
                    args += (topic, self._counts.get(topic, 0))
                leaves = bool(self._counts)
                expected = "1" if self._written else "0"
                try:
                    script = (PRESENCE_CHANGE_SCRIPT, 2, key, nodes, ttl, node.node_id, expected)
                    done = await self._execute(
                        lambda: client.pipeline(transaction=False).eval(*script, *args)
                    )
                except ResponseError as exc:
                    if not _refuses_scripts(exc):  # (full, busy: sent again with the next write)
                        self._dirty |= changed
                        raise
                    # Refused (an ACL without EVAL, scripting off): every
                    # count is written, by plain commands, at each change
                    # while this connection lasts.
                    self._script_refused = True
                    logger.warning(
                        "broker %s: presence script refused (%s); every count is written at "
                        "each change instead",
                        self.shown_url,
                        exc,
                    )
                    done = [0]
                if done[0]:
                    self._written = leaves
                    self._written_again()
                    return
                # The hash is gone (or the script refused): written whole.
            self._written = None
            counts = dict(self._counts)
            self._dirty.clear()

            def pipeline() -> Any:
                pipe = client.pipeline(transaction=True)
                pipe.delete(key)
                if counts:
                    pipe.hset(key, mapping=counts)
                    pipe.pexpire(key, ttl)
                    pipe.sadd(nodes, node.node_id)
                return pipe

            await self._execute(pipeline)
            self._written = bool(counts)
        except ResponseError as exc:
            if self._presence_refused is None:
                logger.warning(
                    "broker %s: presence not written (%s); messages go on, the write is "
                    "tried again every %.1f s",
                    self.shown_url,
                    exc,
                    self.presence_ttl / 3,
                )
            self._presence_refused = str(exc)
            return
        self._written_again()

    def _written_again(self) -> None:
        if self._presence_refused is not None:
            self._presence_refused = None
            logger.warning("broker %s: presence written again", self.shown_url)

    @staticmethod
    async def _execute(pipeline: Callable[[], Any], *, again: bool = True) -> Any:
        """Send the commands ``pipeline()`` makes, a second time (if ``again``)
        if the connection was found closed.

        Redis (its ``timeout``) or a NAT between closes connections idle a
        while: the next command on one fails at once, and it was taken for
        an outage (the batch dropped). Tried once more on a new connection,
        it goes through; a second failure, or no answer (a timeout), is the
        outage. A batch that may have been cut off half-way through (its
        connection in use until then) is not sent again (``again`` false):
        what of it Redis had published would be published twice.
        """
        try:
            return await pipeline().execute()
        except LostConnection:
            if not again:
                raise
            return await pipeline().execute()

    async def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError, RuntimeError):
                await asyncio.wait_for(client.aclose(), 1.0)  # a Redis gone cannot hold us

    # --------------------------------------------------------------- outages

    def _came_up(self) -> None:
        self.up = True
        self._served = True
        self._up_since = asyncio.get_running_loop().time()
        if self._down_since is not None:
            down = asyncio.get_running_loop().time() - self._down_since
            logger.warning(
                "broker %s reachable again after %.1f s: %d message%s for other processes "
                "dropped meanwhile; %d topic%s subscribed again",
                self.shown_url,
                down,
                self._dropped_in_outage,
                "" if self._dropped_in_outage == 1 else "s",
                len(self._wanted),
                "" if len(self._wanted) == 1 else "s",
            )
            self._down_since = None
            self.stats.unreachable = 0
            if self._node is not None:
                self._node.broker_state(True)
        self._dropped_in_outage = 0

    def _drop_queued(self) -> None:
        """Drop the messages waiting to be sent (counted)."""
        dropped = 0
        while not self._queue.empty():
            channel, data = self._queue.get_nowait()
            self._queued_bytes -= _queued_size(channel, data)
            dropped += 1
        self.stats.dropped += dropped
        self._dropped_in_outage += dropped

    def _went_down(self, exc: BaseException) -> None:
        self.up = False
        self._drop_queued()
        now = asyncio.get_running_loop().time()
        # Redis answered, and said no (a wrong password, a database out of
        # range, a user without the rights): a configuration to fix, said as
        # an error, and again every REFUSED_AGAIN seconds while it lasts.
        # So is a certificate this process does not trust (rediss://).
        refused = isinstance(exc, (AuthenticationError, ResponseError)) or bool(_untrusted(exc))
        if self._down_since is None:
            self._down_since = now
            self.stats.outages += 1
            self.stats.unreachable = 1
            if refused:
                self._say_refused(exc, now)
            else:
                logger.warning(
                    "broker %s unreachable (%s): local delivery goes on; messages for other "
                    "processes are dropped until it is back",
                    self.shown_url,
                    exc,
                )
            if self._node is not None:
                self._node.broker_state(False)
        elif refused and now - self._refused_said >= REFUSED_AGAIN:
            self._say_refused(exc, now)

    def _say_refused(self, exc: BaseException, now: float) -> None:
        self._refused_said = now
        untrusted = _untrusted(exc)
        if untrusted:
            logger.error(
                "broker %s: this server does not trust the certificate Redis showed (%s): "
                "give the CA that issued it with ?ssl_ca_certs=/path/to/ca.pem in the URL, or "
                "connect by a name the certificate is for. Local delivery goes on; messages for "
                "other processes are dropped until it is trusted (tried again with a backoff)",
                self.shown_url,
                untrusted,
            )
            return
        logger.error(
            "broker %s refused this server (%s): is the URL's user, password or database "
            "wrong, or the user without the rights? Local delivery goes on; messages for other "
            "processes are dropped until it is accepted (tried again with a backoff)",
            self.shown_url,
            exc,
        )


def redis_options(url: str) -> Mapping[str, Any]:
    """The options redis-py reads from a broker's URL (``db`` among them),
    refusing a URL no connection could be made with.

    redis-py hands a parameter it does not know (``?ssl_cert_reqs=`` on a
    ``redis://`` URL, a misspelt one) to the connection's constructor: each
    attempt raised a ``TypeError``, a traceback every few seconds for ever.
    ``?decode_responses=true`` makes Redis's answers text, which every
    message and presence read would fail on. A TLS file (``?ssl_ca_certs=``...)
    that is not there would fail every connection attempt.

    Raises:
        ValueError: saying what is wrong, the URL shown without its password.
    """
    if not isinstance(url, str):
        raise TypeError(f"a broker's URL is a str, not {type(url).__name__}")
    shown_url = redacted(url)
    if not url.startswith(REDIS_SCHEMES):
        raise ValueError(f"broker {shown_url!r}: expected a redis://, rediss:// or unix:// URL")
    check_redis_url(url)
    try:
        options: Mapping[str, Any] = parse_url(url)
        int(options.get("db") or 0)
    except ValueError as exc:  # (redis-py's words may quote a piece of the password)
        # (Only a parameter it parses is named: never the password.)
        invalid = _INVALID_VALUE.search(str(exc))
        raise ValueError(
            f"broker {shown_url!r} is not a Redis URL redis-py can read"
            + (
                " (percent-encode a / ? # or @ in the password: %2F %3F %23 %40)"
                if invalid is None
                else ": a ?db= that is no number"
                if invalid[1] == "db"
                else f": a ?{invalid[1]}= it cannot read"
            )
        ) from None
    if "decode_responses" in options:  # (redis-py takes "false" for true)
        raise ValueError(
            f"broker {shown_url!r}: ?decode_responses= cannot be used (the broker "
            "reads Redis's answers as bytes)"
        )
    assert aioredis is not None
    try:
        pool: Any = aioredis.ConnectionPool.from_url(url)
        pool.make_connection()  # (made, not connected)
    except Exception as exc:  # (its words may quote the password: not shown)
        unknown = _UNKNOWN_PARAMETER.search(str(exc)) if isinstance(exc, TypeError) else None
        if unknown is not None:
            raise ValueError(
                f"broker {shown_url!r}: redis-py takes no ?{unknown[1]}= here"
            ) from None
        raise ValueError(
            f"broker {shown_url!r}: a parameter has a value redis-py cannot use"
        ) from None
    for name in _TLS_FILES:
        # (A typo: every connection attempt would fail, said once.)
        path = options.get(name)
        if isinstance(path, str) and path and not os.path.exists(path):
            raise ValueError(f"broker {shown_url!r}: ?{name}= names no file: {path!r}")
    return options


def channel_prefix(prefix: str, options: Mapping[str, Any]) -> str:
    """What the channels of a deployment begin with: its prefix, and the
    database's number if not 0 (publish/subscribe knows no databases)."""
    db = int(options.get("db") or 0)
    return f"{prefix}{db}:" if db else prefix


def _untrusted(error: BaseException) -> str:
    """Why the certificate Redis showed was not trusted (redis-py's
    ConnectionError says it in text; the ssl error is its context), or ""."""
    seen: BaseException | None = error
    for _ in range(4):  # (never round a loop of contexts)
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {seen.verify_message}"
        seen = seen.__cause__ or seen.__context__
    return ""


def _queued_size(channel: bytes, data: bytes) -> int:
    """What a message waiting to be sent takes of ``queue_bytes``."""
    return len(channel) + len(data) + MESSAGE_OVERHEAD


def _cannot_persist(error: BaseException) -> bool:
    """Whether Redis answered that it cannot persist (``-MISCONF``: a snapshot
    failed, a full disk say, with ``stop-writes-on-bgsave-error``). It then
    refuses PING and every write, and still carries publish/subscribe: the
    answer shows it alive, and no refusal of this server."""
    return isinstance(error, ResponseError) and str(error).startswith("MISCONF")


def _refuses_scripts(error: BaseException) -> bool:
    """Whether Redis refused a script for good (the user may not run one,
    or a command the script runs; scripting is off), not for the moment
    (full, busy with another)."""
    said = str(error).lower()
    return (
        isinstance(error, NoPermissionError)
        or "unknown command" in said
        # (A command in the script that the user may not run: Redis says
        # "ERR The user executing the script can't run this command".)
        or "user executing the script" in said
    )


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait for their end, ``STOP_TIMEOUT`` at most.

    Cancelled again every ``CANCEL_AGAIN`` seconds: on Python 3.11 a cancel
    that comes as an ``asyncio.wait_for``'s inner future completes is lost
    (redis-py runs commands under one, as a timeout), and the task went on
    for ever, its Redis connection with it (one more at each reconnection;
    a shutdown held ``STOP_TIMEOUT``, then a warning).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STOP_TIMEOUT
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            return
        _, pending = await asyncio.wait(pending, timeout=min(CANCEL_AGAIN, left))


def _batches(channels: list[bytes]) -> Iterator[list[bytes]]:
    """``channels`` in runs of at most ``SUBSCRIBE_BATCH`` channels and
    ``SUBSCRIBE_BYTES`` of their names (a longer name goes alone)."""
    start = 0
    while start < len(channels):
        end = start + 1
        size = len(channels[start])
        while (
            end < len(channels)
            and end - start < SUBSCRIBE_BATCH
            and size + len(channels[end]) <= SUBSCRIBE_BYTES
        ):
            size += len(channels[end])
            end += 1
        yield channels[start:end]
        start = end
