"""What the server counts: plain integers on objects that exist anyway, read when asked.

Each :class:`~.websocket_protocol.WebSocketProtocol` counts its own messages
and bytes as they pass (a few integer additions per message); when it closes,
its counts are added to its route's :class:`RouteTotals`. :meth:`ServerStats.snapshot`
adds up the totals and the open connections' counts at the moment it is
called (``server.stats()``, a Prometheus scrape, the status page): nothing is
aggregated on the hot paths, and the walk sums each counter in C (0.5-1 µs
per open connection).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import accumulate
from operator import attrgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .websocket_protocol import WebSocketProtocol

__all__ = [
    "ServerStats",
    "RouteTotals",
    "Durations",
    "MESSAGE_FIELDS",
    "REQUEST_BOUNDS",
    "CONNECTION_BOUNDS",
    "always_kept",
    "count_close_code",
]

#: The per-connection counters, in the order they are reported.
MESSAGE_FIELDS = (
    "text_in",
    "binary_in",
    "text_out",
    "binary_out",
    "payload_in",
    "payload_out",
    "wire_in",
    "wire_out",
)


_GETTERS = {name: attrgetter(name) for name in MESSAGE_FIELDS}
#: What an open connection's ``wire_out`` counts and has not passed to the
#: socket yet (see :attr:`~.websocket_protocol.WebSocketProtocol.wire_held`).
_WIRE_HELD = attrgetter("wire_held")
#: How many open connections :meth:`ServerStats.snapshot_in_steps` counts at a
#: time (a few milliseconds), before it lets the loop run.
STEP = 2000
#: The counters of compressed connections also summed apart.
_DEFLATE_FIELDS = ("payload_in", "wire_in", "payload_out", "wire_out")

#: Distinct close codes counted one by one, per side. Clients choose among
#: 2,000 application codes (3000-4999), and the server echoes theirs: past
#: this many, further application codes are counted together as "other", so
#: that clients cannot add thousands of series to the metrics.
CLOSE_CODES_KEPT = 64


def always_kept(code: int | str) -> bool:
    """Whether a close code (a metric label's text too) is counted by itself
    whatever the number of codes: a standard one (below 3000), or ``"other"``."""
    if isinstance(code, str):
        return code == "other" or (code.isdigit() and int(code) < 3000)
    return code < 3000


def count_close_code(counter: Counter[int | str], code: int) -> None:
    """Count ``code`` in ``counter``: by itself, or as ``"other"`` (:data:`CLOSE_CODES_KEPT`)."""
    # (code < 3000: always_kept() of an int, without the call.)
    if code < 3000 or code in counter or len(counter) < CLOSE_CODES_KEPT:
        counter[code] += 1
    else:
        counter["other"] += 1


#: The histograms' upper bounds, in seconds: of HTTP responses and WebSocket
#: handshakes (a millisecond to ten seconds), and of WebSocket connections'
#: lives (a tenth of a second to a day).
REQUEST_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONNECTION_BOUNDS = (
    0.1, 1.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0
)  # fmt: skip


class Durations:
    """A histogram of durations: how many fell in each bucket, and their sum.

    :meth:`observe` costs a bisection and two additions (once per response or
    connection, not per message); :meth:`report` gives the cumulative counts
    Prometheus wants (``le``: at most that many seconds).
    """

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        #: Per bucket, not cumulative; the last is past every bound (+Inf).
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def report(self) -> dict[str, Any]:
        """``buckets`` (upper bound as text, as Prometheus writes it -> how many at
        most that long, ``+Inf`` last), ``sum`` (seconds) and ``count``."""
        buckets = cumulative_buckets(self.bounds, self.counts)
        return {"buckets": buckets, "sum": self.total, "count": buckets["+Inf"]}


def cumulative_buckets(bounds: tuple[float, ...], counts: list[int]) -> dict[str, int]:
    """Per-bucket ``counts`` (one more than ``bounds``, the last past them all)
    as Prometheus's cumulative buckets: each upper bound as text, as Prometheus
    writes it -> how many at most that long, ``+Inf`` last."""
    cumulative = list(accumulate(counts))
    buckets = {repr(bound): n for bound, n in zip(bounds, cumulative, strict=False)}
    buckets["+Inf"] = cumulative[-1]
    return buckets


class RouteTotals:
    """The counts of a route's closed connections (and how many opened and closed)."""

    __slots__ = ("opened", "closed", "compressed", *MESSAGE_FIELDS)

    # MESSAGE_FIELDS, for the type checker (ServerStats.connection_closed() names them).
    text_in: int
    binary_in: int
    text_out: int
    binary_out: int
    payload_in: int
    payload_out: int
    wire_in: int
    wire_out: int

    def __init__(self) -> None:
        self.opened = 0
        self.closed = 0
        #: Of the closed ones, how many had permessage-deflate.
        self.compressed = 0
        for name in MESSAGE_FIELDS:
            setattr(self, name, 0)


class ServerStats:
    """Counters of one server (see :meth:`snapshot` for what each means)."""

    def __init__(self) -> None:
        self.routes: dict[str, RouteTotals] = {}
        #: Bytes of compressed connections: payload (raw) and on the wire, both ways.
        self.deflate_payload_in = 0
        self.deflate_wire_in = 0
        self.deflate_payload_out = 0
        self.deflate_wire_out = 0
        self.handshakes: Counter[int] = Counter()
        self.http_responses: Counter[int] = Counter()
        self.close_codes_sent: Counter[int | str] = Counter()
        self.close_codes_received: Counter[int | str] = Counter()
        self.keepalive_timeouts = 0
        #: TLS handshakes that failed (the client's certificate or version
        #: refused, plain HTTP on the TLS port): see tls.watch_handshakes();
        #: or not done within open_timeout (Server.tls_handshake_overdue()).
        self.tls_handshake_failures = 0
        self.read_pauses = 0
        self.write_pauses = 0
        self.broadcast_skipped = 0
        self.handler_errors = 0
        #: The server's own WebSocket routes (the status page's feed), whose
        #: received close codes are also counted apart, in ``own_close_codes``,
        #: for the figures that leave those routes out.
        self.own_routes: set[str] = set()
        self.own_close_codes: Counter[int | str] = Counter()
        #: How long HTTP responses took (from the request's head to the
        #: response's end), upgrades that got a 101 (to the 101), and
        #: WebSocket connections lived (from the upgrade request to the end), by route.
        self.http_seconds = Durations(REQUEST_BOUNDS)
        self.handshake_seconds = Durations(REQUEST_BOUNDS)
        self.connection_seconds: dict[str, Durations] = {}

    def route(self, name: str) -> RouteTotals:
        """The route's totals (and its connections' lives), made on first use."""
        totals = self.routes.get(name)
        if totals is None:
            totals = self.routes[name] = RouteTotals()
            self.connection_seconds[name] = Durations(CONNECTION_BOUNDS)
        return totals

    def connection_opened(self, protocol: WebSocketProtocol) -> None:
        self.route(protocol.route_name).opened += 1

    def connection_closed(self, protocol: WebSocketProtocol, seconds: float) -> None:
        """Fold a closed connection's counts, and how long it lived, into its route's totals."""
        route_name = protocol.route_name
        totals = self.route(route_name)
        self.connection_seconds[route_name].observe(seconds)
        totals.closed += 1
        # MESSAGE_FIELDS one by one: a loop of getattr() and setattr() costs
        # some 30 calls of them per connection.
        totals.text_in += protocol.text_in
        totals.binary_in += protocol.binary_in
        totals.text_out += protocol.text_out
        totals.binary_out += protocol.binary_out
        totals.payload_in += protocol.payload_in
        totals.payload_out += protocol.payload_out
        totals.wire_in += protocol.wire_in
        totals.wire_out += protocol.wire_out
        if protocol.conn.deflate is not None:
            totals.compressed += 1
            self.deflate_payload_in += protocol.payload_in
            self.deflate_wire_in += protocol.wire_in
            self.deflate_payload_out += protocol.payload_out
            self.deflate_wire_out += protocol.wire_out
        conn = protocol.conn
        if conn.close_sent is not None:
            count_close_code(self.close_codes_sent, conn.close_sent[0])
        received = 1006 if conn.close_received is None else conn.close_received[0]
        # (1006: no close frame came, an abnormal closure.)
        count_close_code(self.close_codes_received, received)
        if route_name in self.own_routes:
            count_close_code(self.own_close_codes, received)

    def snapshot(self, open_connections: Iterable[WebSocketProtocol]) -> dict[str, Any]:
        """Every counter now, the open connections' counts included.

        Returns a JSON-ready dict: ``connections`` (open, by route), ``routes``
        (per route: opened, closed, and the message counters: text/binary
        messages and payload and wire bytes, in and out), ``compression``
        (payload vs wire bytes of compressed connections), ``handshakes`` and
        ``http_responses`` (by status), ``close_codes`` (``sent``,
        ``received``: 1006 when none was), ``keepalive_timeouts``,
        ``tls_handshake_failures`` (of a server that made its TLS context from its settings),
        ``backpressure`` (``read_pauses``: reading stopped at ``max_queue``;
        ``write_pauses``: a client slower than we write), ``broadcast_skipped``,
        ``handler_errors``, and ``durations``: histograms (:meth:`Durations.report`)
        of HTTP responses (``http``), accepted upgrades (``handshakes``) and
        closed WebSocket connections by route (``connections``).
        """
        report = self._totals()
        _add_open(report, open_connections)
        return report

    async def snapshot_in_steps(
        self, open_connections: Sequence[WebSocketProtocol], step: int = STEP
    ) -> dict[str, Any]:
        """:meth:`snapshot`, ``step`` connections at a time, letting the loop run between.

        The totals are read first, with the list of connections: one that
        closes meanwhile is counted once, by its own counts.
        """
        report = self._totals()
        for start in range(0, len(open_connections), step):
            if start:
                await asyncio.sleep(0)
            _add_open(report, open_connections[start : start + step])
        return report

    def _totals(self) -> dict[str, Any]:
        """The snapshot without the open connections' counts (see _add_open())."""
        routes: dict[str, dict[str, int]] = {}
        for name, totals in self.routes.items():
            routes[name] = {field: getattr(totals, field) for field in RouteTotals.__slots__}
        return {
            "connections": {},
            "routes": routes,
            "compression": {
                "payload_in": self.deflate_payload_in,
                "wire_in": self.deflate_wire_in,
                "payload_out": self.deflate_payload_out,
                "wire_out": self.deflate_wire_out,
            },
            "handshakes": dict(self.handshakes),
            "http_responses": dict(self.http_responses),
            "close_codes": {
                "sent": dict(self.close_codes_sent),
                "received": dict(self.close_codes_received),
            },
            "keepalive_timeouts": self.keepalive_timeouts,
            "tls_handshake_failures": self.tls_handshake_failures,
            "backpressure": {"read_pauses": self.read_pauses, "write_pauses": self.write_pauses},
            "broadcast_skipped": self.broadcast_skipped,
            "handler_errors": self.handler_errors,
            "durations": {
                "http": self.http_seconds.report(),
                "handshakes": self.handshake_seconds.report(),
                "connections": {
                    route: lives.report() for route, lives in self.connection_seconds.items()
                },
            },
        }


def _add_open(report: dict[str, Any], open_connections: Iterable[WebSocketProtocol]) -> None:
    """Add open connections' counts to a snapshot: each counter summed in C
    (map, attrgetter) over the connections of a route, not a Python step per
    connection and counter. The wire bytes out are those passed to the socket,
    not those still waiting to go (an abort drops them, uncounted): a counter
    that never goes down."""
    by_route: dict[str, list[WebSocketProtocol]] = {}
    compressed: list[WebSocketProtocol] = []
    for protocol in open_connections:
        group = by_route.get(protocol.route_name)
        if group is None:
            group = by_route[protocol.route_name] = []
        group.append(protocol)
        if protocol.conn.deflate is not None:
            compressed.append(protocol)
    routes = report["routes"]
    connections = report["connections"]
    for route_name, group in by_route.items():
        connections[route_name] = connections.get(route_name, 0) + len(group)
        counts = routes.get(route_name)
        if counts is None:
            counts = routes[route_name] = {field: 0 for field in RouteTotals.__slots__}
        for name in MESSAGE_FIELDS:
            counts[name] += sum(map(_GETTERS[name], group))
        # (Not what waits to go: an abort drops it, and the count would go down.)
        counts["wire_out"] -= sum(map(_WIRE_HELD, group))
    compression = report["compression"]
    for name in _DEFLATE_FIELDS:
        compression[name] += sum(map(_GETTERS[name], compressed))
    compression["wire_out"] -= sum(map(_WIRE_HELD, compressed))
