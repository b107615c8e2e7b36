"""Prometheus metrics (``--metrics-path``), through prometheus_client (``wsserver[metrics]``).

One process: a collector turns :meth:`Server.stats` into metric families at
each scrape; nothing is counted twice and the hot paths only add integers.
Under ``--workers``: each worker copies its counters into prometheus_client's
multiprocess files (``PROMETHEUS_MULTIPROC_DIR``, set up by the supervisor)
every second and before it answers a scrape, and a scrape answered by any
worker adds up every worker's files: one scrape sees them all (counters of
workers that ended included; open-connection gauges of live workers only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..logs import FailureRun, logger
from .stats import CLOSE_CODES_KEPT, always_kept

if TYPE_CHECKING:
    from .server import Server

__all__ = [
    "Metrics",
    "samples",
    "MULTIPROC_ENV",
    "retire_process",
    "require_prometheus_client",
    "running",
]

#: prometheus_client's directory for the files of several processes.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: name -> (type, help, label names). Counters end in _total when rendered.
DEFINITIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "wsserver_connections_open": ("gauge", "Open WebSocket connections.", ("route",)),
    "wsserver_connections_opened": ("counter", "WebSocket connections opened.", ("route",)),
    "wsserver_messages": (
        "counter",
        "WebSocket messages.",
        ("route", "direction", "type"),
    ),
    "wsserver_payload_bytes": (
        "counter",
        "Bytes of WebSocket message payloads (text as UTF-8; before compression).",
        ("route", "direction"),
    ),
    "wsserver_wire_bytes": (
        "counter",
        "Bytes of WebSocket frames on the wire.",
        ("route", "direction"),
    ),
    "wsserver_compressed_payload_bytes": (
        "counter",
        "Payload bytes of connections with permessage-deflate.",
        ("direction",),
    ),
    "wsserver_compressed_wire_bytes": (
        "counter",
        "Wire bytes of connections with permessage-deflate.",
        ("direction",),
    ),
    "wsserver_handshakes": ("counter", "WebSocket upgrade requests by outcome.", ("status",)),
    "wsserver_http_responses": ("counter", "HTTP responses by status.", ("status",)),
    "wsserver_close_codes": ("counter", "WebSocket close codes.", ("side", "code")),
    "wsserver_keepalive_timeouts": ("counter", "Connections closed for a missing pong.", ()),
    "wsserver_tls_handshake_failures": (
        "counter",
        "TLS handshakes that failed (a client refused, plain HTTP on the TLS port, timed out).",
        (),
    ),
    "wsserver_backpressure_pauses": (
        "counter",
        "Reading paused at max_queue (read); a client slower than our writes (write).",
        ("kind",),
    ),
    "wsserver_broadcast_skipped": ("counter", "Broadcast deliveries skipped.", ()),
    "wsserver_handler_errors": (
        "counter",
        "Handlers and ASGI apps that failed (hooks and lifespan shutdowns too).",
        (),
    ),
    "wsserver_pubsub_delivered": ("counter", "Published messages delivered locally.", ()),
    "wsserver_broker_messages": (
        "counter",
        "Messages through the broker: published, received, dropped.",
        ("outcome",),
    ),
    "wsserver_broker_outages": ("counter", "Times the broker became unreachable.", ()),
    "wsserver_broker_unreachable": (
        "gauge",
        "1 while the broker is unreachable (under workers: how many workers cannot reach it).",
        (),
    ),
    "wsserver_http_response_duration_seconds": (
        "histogram",
        "HTTP responses written whole, from the request's head to the response's end.",
        (),
    ),
    "wsserver_handshake_duration_seconds": (
        "histogram",
        "WebSocket upgrades accepted, from the request's head to the 101.",
        (),
    ),
    "wsserver_connection_duration_seconds": (
        "histogram",
        "WebSocket connections that ended, from the upgrade request to the end.",
        ("route",),
    ),
}

#: Where each histogram is in a snapshot's ``durations`` (None: one per route).
_HISTOGRAMS = {
    "wsserver_http_response_duration_seconds": "http",
    "wsserver_handshake_duration_seconds": "handshakes",
    "wsserver_connection_duration_seconds": None,
}


def samples(stats: dict[str, Any]) -> Iterator[tuple[str, dict[str, str], float]]:
    """``(metric name, labels, value)`` for every figure of a :meth:`Server.stats` snapshot."""
    open_now = stats["connections"]
    for route in {**stats["routes"], **open_now}:  # (0 for a route with none open)
        yield "wsserver_connections_open", {"route": route}, open_now.get(route, 0)
    for route, counts in stats["routes"].items():
        yield "wsserver_connections_opened", {"route": route}, counts["opened"]
        for direction in ("in", "out"):
            for kind in ("text", "binary"):
                labels = {"route": route, "direction": direction, "type": kind}
                yield "wsserver_messages", labels, counts[f"{kind}_{direction}"]
            labels = {"route": route, "direction": direction}
            yield "wsserver_payload_bytes", labels, counts[f"payload_{direction}"]
            yield "wsserver_wire_bytes", labels, counts[f"wire_{direction}"]
    compression = stats["compression"]
    for direction in ("in", "out"):
        labels = {"direction": direction}
        yield "wsserver_compressed_payload_bytes", labels, compression[f"payload_{direction}"]
        yield "wsserver_compressed_wire_bytes", labels, compression[f"wire_{direction}"]
    for status, n in stats["handshakes"].items():
        yield "wsserver_handshakes", {"status": str(status)}, n
    for status, n in stats["http_responses"].items():
        yield "wsserver_http_responses", {"status": str(status)}, n
    for side, codes in stats["close_codes"].items():
        for code, n in codes.items():
            yield "wsserver_close_codes", {"side": side, "code": str(code)}, n
    yield "wsserver_keepalive_timeouts", {}, stats["keepalive_timeouts"]
    yield "wsserver_tls_handshake_failures", {}, stats["tls_handshake_failures"]
    for kind in ("read", "write"):
        yield (
            "wsserver_backpressure_pauses",
            {"kind": kind},
            stats["backpressure"][f"{kind}_pauses"],
        )
    yield "wsserver_broadcast_skipped", {}, stats["broadcast_skipped"]
    yield "wsserver_handler_errors", {}, stats["handler_errors"]
    pubsub = stats["pubsub"]
    yield "wsserver_pubsub_delivered", {}, pubsub["delivered"]
    for outcome in ("published", "received", "dropped"):
        yield "wsserver_broker_messages", {"outcome": outcome}, pubsub[outcome]
    yield "wsserver_broker_outages", {}, pubsub["outages"]
    yield "wsserver_broker_unreachable", {}, pubsub["unreachable"]


def histograms(stats: dict[str, Any]) -> Iterator[tuple[str, dict[str, str], dict[str, Any]]]:
    """``(metric name, labels, histogram)`` for every histogram of a snapshot
    (see :meth:`~wsserver.server.stats.Durations.report`)."""
    durations = stats["durations"]
    for name, key in _HISTOGRAMS.items():
        if key is not None:
            yield name, {}, durations[key]
        else:
            for route, histogram in durations["connections"].items():
                yield name, {"route": route}, histogram


def require_prometheus_client() -> None:
    """Check that the metrics can be served (a supervisor asks it before binding).

    Raises:
        ConfigError: prometheus_client is not installed, or ``PROMETHEUS_MULTIPROC_DIR``
            is set to what is not a directory (prometheus_client writes there, and
            never makes it: every scrape would fail).
    """
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ConfigError(
            "metrics_path needs prometheus_client: pip install wsserver[metrics]"
        ) from None
    directory = os.environ.get(MULTIPROC_ENV)
    if directory and not os.path.isdir(directory):
        raise ConfigError(
            f"{MULTIPROC_ENV} {directory!r}, where prometheus_client keeps the metrics "
            "of each process, is not a directory: make it first"
        )


class Metrics:
    """The metrics of one server: rendered at each scrape, or mirrored across workers.

    Raises:
        ConfigError: see :func:`require_prometheus_client`.
    """

    def __init__(self, server: Server) -> None:
        require_prometheus_client()
        self.server = server
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self._mirrors: dict[str, Any] = {}
        self._last: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._last_histograms: dict[
            tuple[str, tuple[tuple[str, str], ...]], tuple[list[int], float]
        ] = {}
        self._task: asyncio.Task[None] | None = None
        # What collect() reports, during a render() given figures.
        self._scraped: dict[str, Any] | None = None

    # ------------------------------------------------------------ one process

    def collect(self) -> Iterator[Any]:
        """prometheus_client's collector interface: the families, from stats() now."""
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        classes = {
            "counter": CounterMetricFamily,
            "gauge": GaugeMetricFamily,
            "histogram": HistogramMetricFamily,
        }
        families: dict[str, Any] = {}
        for name, (kind, text, label_names) in DEFINITIONS.items():
            families[name] = classes[kind](name, text, labels=list(label_names))
        stats = self._scraped if self._scraped is not None else self.server.stats()
        for name, labels, value in samples(stats):
            names = DEFINITIONS[name][2]
            families[name].add_metric([labels[n] for n in names], value)
        for name, labels, histogram in histograms(stats):
            names = DEFINITIONS[name][2]
            families[name].add_metric(
                [labels[n] for n in names],
                list(histogram["buckets"].items()),
                sum_value=histogram["sum"],
            )
        yield from families.values()

    def render(self, stats: dict[str, Any] | None = None) -> tuple[bytes, str]:
        """The text exposition of the metrics, and its content type.

        ``stats``: this process's figures (:meth:`Server.stats` now, by default).
        """
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        if self.multiprocess:
            from prometheus_client import multiprocess

            self.sync(stats)
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            directory = os.environ.get(MULTIPROC_ENV)
            if directory:
                # Not while an ended process's files are folded (retire_process()).
                with _retiring(directory, exclusive=False):
                    return generate_latest(registry), CONTENT_TYPE_LATEST
        else:
            from prometheus_client import REGISTRY

            registry.register(self)
            self._scraped = stats
            try:
                ours = generate_latest(registry)
            finally:
                self._scraped = None
            # The application's own metrics (prometheus_client's default
            # registry), as a scrape under workers has them from the shared
            # files: the same series whatever the number of processes.
            return generate_latest(REGISTRY) + ours, CONTENT_TYPE_LATEST
        return generate_latest(registry), CONTENT_TYPE_LATEST

    # -------------------------------------------------------- several workers

    def start(self) -> None:
        """Under workers: copy the counters into the shared files every second
        (first retiring those of processes that ended unseen, see
        :func:`retire_ended_processes`)."""
        if self.multiprocess and self._task is None:
            retire_ended_processes()
            self._task = asyncio.get_running_loop().create_task(self._sync_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            try:
                self.sync()
            except Exception as exc:  # (the shutdown goes on: these counts are lost)
                logger.warning("metrics: the last copy of the counters failed: %r", exc)

    async def _sync_forever(self) -> None:
        """Copy the counters every second; a copy that fails (the directory
        removed, a disk full) is tried again, what it missed counted next time."""
        copies = FailureRun()
        while True:
            await asyncio.sleep(1.0)
            stats = await self.server.recent_stats()  # (what the status page took too)
            try:
                self.sync(stats)
            except Exception as exc:
                copies.failed(
                    "metrics: copying the counters to %s failed: %r; trying again every second",
                    os.environ.get(MULTIPROC_ENV),
                    exc,
                )
            else:
                copies.worked("metrics: the counters are copied again")

    def sync(self, stats: dict[str, Any] | None = None) -> None:
        """Add what each counter gained since the last sync to this process's files
        (from ``stats``, else from :meth:`Server.stats` now)."""
        from prometheus_client import Counter, Gauge

        metric: Any
        if stats is None:
            stats = self.server.stats()
        self._sync_histograms(stats)
        for name, labels, value in samples(stats):
            kind, text, label_names = DEFINITIONS[name]
            metric = self._mirrors.get(name)
            if metric is None:
                if kind == "counter":
                    metric = Counter(name, text, label_names, registry=None)
                else:
                    metric = Gauge(
                        name, text, label_names, registry=None, multiprocess_mode="livesum"
                    )
                self._mirrors[name] = metric
            child = metric.labels(**labels) if label_names else metric
            if kind == "gauge":
                child.set(value)
                continue
            key = (name, tuple(sorted(labels.items())))
            gained = value - self._last.get(key, 0)
            if gained > 0:
                child.inc(gained)
                self._last[key] = value

    def _sync_histograms(self, stats: dict[str, Any]) -> None:
        """:meth:`sync`'s part for the histograms: each bucket's gain, and the sum's.

        A bucket's count is added to its file's value directly: prometheus_client's
        ``observe()`` takes one duration at a time, and these are counted already.
        """
        from prometheus_client import Histogram

        metric: Any
        for name, labels, histogram in histograms(stats):
            counts = [
                n - below
                for n, below in zip(
                    histogram["buckets"].values(),
                    [0, *histogram["buckets"].values()],
                    strict=False,
                )
            ]
            key = (name, tuple(sorted(labels.items())))
            metric = self._mirrors.get(name)
            if metric is None:
                bounds = [float(le) for le in histogram["buckets"] if le != "+Inf"]
                text, label_names = DEFINITIONS[name][1:]
                metric = Histogram(name, text, label_names, registry=None, buckets=bounds)
                self._mirrors[name] = metric
            # (Made at once, at 0 if need be: a series from the start, as in one process.)
            child = metric.labels(**labels) if labels else metric
            last_counts, last_sum = self._last_histograms.get(key, ([0] * len(counts), 0.0))
            if counts == last_counts or any(map(int.__lt__, counts, last_counts)):
                continue  # (nothing new; or older figures than the last: never a decrease)
            for bucket, n, before in zip(child._buckets, counts, last_counts, strict=True):
                if n > before:
                    bucket.inc(n - before)
            child._sum.inc(histogram["sum"] - last_sum)
            self._last_histograms[key] = (counts, histogram["sum"])


#: Under workers: the counts of the workers that ended, in one file (and
#: their histograms in another, ``histogram_retired.db``).
RETIRED = "counter_retired.db"


def retire_process(pid: int) -> None:
    """A worker ended: its live gauges leave the shared metrics, its counters join
    :data:`RETIRED` (and the rest of its files theirs, see :data:`FOLDS`).

    Each process's metrics are files of their own, read at every scrape:
    kept after their process ended (a replacement, a restart), they would
    pile up without end. A scrape between the two steps below may count the
    ended worker twice, for an instant.
    """
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return
    try:
        from prometheus_client import multiprocess
    except ImportError:
        return
    try:
        with _retiring(directory):
            multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
            _fold_ended(directory, pid)
    except Exception as exc:  # (a file cut short, a full disk: the metrics' loss, not ours)
        logger.warning("metrics of ended process %d: %s", pid, exc)


def retire_ended_processes() -> None:
    """Retire the files of processes that ended without it (killed, with no
    supervisor to see it: ``PROMETHEUS_MULTIPROC_DIR`` set by hand)."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return
    pids: set[int] = set()
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            number = name.removesuffix(".db").rpartition("_")[2]
            if name.endswith(".db") and number.isascii() and number.isdigit():
                pids.add(int(number))
    for pid in pids:
        if pid != os.getpid() and not running(pid):
            retire_process(pid)


def running(pid: int) -> bool:
    """Whether the process ``pid`` is there (always True where that cannot be asked)."""
    if os.name == "nt":
        return True  # (signal 0 is CTRL_C_EVENT there: no way to ask, so none is retired)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # (another user's)
    return True


@contextlib.contextmanager
def _retiring(directory: str, exclusive: bool = True) -> Iterator[None]:
    """One process at a time retires others' files (the supervisor, a starting
    one), while no scrape reads them (``exclusive=False``: a scrape)."""
    try:
        import fcntl
    except ImportError:  # (not on Unix: one process only, anyway)
        yield
        return
    lock = None
    try:
        lock = open(os.path.join(directory, ".retiring.lock"), "a")  # noqa: SIM115
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    except OSError:  # (a directory not ours to write, a file system without locks)
        if lock is not None:
            lock.close()
        yield
        return
    try:
        yield
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


#: A value of a multiprocess file, and its timestamp.
_Value = tuple[float, float]


def _added(kept: _Value, ended: _Value) -> _Value:
    return kept[0] + ended[0], ended[1]


#: The files of an ended process folded into those of the processes that
#: ended before (``KIND_retired.db``), by kind (the name's part before the
#: pid), and how a value joins the one kept: values that only grow (counters;
#: histograms' bucket counts and sums; summaries' counts and sums) and gauges
#: of mode ``sum`` are added up; a gauge of mode ``max`` or ``min`` keeps the
#: larger or smaller, one of mode ``mostrecent`` the later, as a scrape reads
#: them. Not a gauge of mode ``all``: its series are one per process, those
#: that ended included (its pid is in its file's name). ``live*`` gauges
#: leave with their process.
FOLDS: dict[str, Callable[[_Value, _Value], _Value]] = {
    "counter": _added,
    "histogram": _added,
    "summary": _added,
    "gauge_sum": _added,
    "gauge_max": lambda kept, ended: ended if ended[0] > kept[0] else kept,
    "gauge_min": lambda kept, ended: ended if ended[0] < kept[0] else kept,
    "gauge_mostrecent": lambda kept, ended: ended if ended[1] > kept[1] else kept,
}


def _fold_ended(directory: str, pid: int) -> None:
    """Fold an ended process's files into the retired ones (see :data:`FOLDS`)."""
    for kind, join in FOLDS.items():
        _fold(directory, pid, kind, join)


def _fold(directory: str, pid: int, kind: str, join: Callable[[_Value, _Value], _Value]) -> None:
    from prometheus_client import mmap_dict

    files: Any = mmap_dict.MmapedDict  # (untyped)
    ended = os.path.join(directory, f"{kind}_{pid}.db")
    if not os.path.exists(ended):
        return
    retired = os.path.join(directory, f"{kind}_retired.db")
    partial = retired + ".partial"  # (a scrape reads *.db only)
    totals: dict[str, _Value] = {}
    for path in (retired, ended):
        if os.path.exists(path):
            for key, value, timestamp, _ in files.read_all_values_from_file(path):
                kept = totals.get(key)
                totals[key] = (value, timestamp) if kept is None else join(kept, (value, timestamp))
        if path == retired:
            established = set(totals)
    if kind == "counter":
        # What the live workers count: a code one of them counts too stays
        # (folded, its series, their counts added, would go down).
        live: set[str] = set()
        for name in os.listdir(directory):
            if name.startswith("counter_") and name.endswith(".db") and name != RETIRED:
                with contextlib.suppress(OSError):  # (ended meanwhile)
                    path = os.path.join(directory, name)
                    if path != ended:
                        live.update(key for key, *_ in files.read_all_values_from_file(path))
        _cap_close_codes(totals, live, established)
    with contextlib.suppress(FileNotFoundError):
        os.remove(partial)
    merged = files(partial)
    try:
        for key, (value, timestamp) in totals.items():
            merged.write_value(key, value, timestamp)
    finally:
        merged.close()
    os.replace(partial, retired)
    os.remove(ended)


def _cap_close_codes(
    totals: dict[str, tuple[float, float]], kept: set[str], established: set[str]
) -> None:
    """Keep the retired counts' close codes to :data:`CLOSE_CODES_KEPT` a side,
    as each process does (:func:`~wsserver.server.stats.count_close_code`),
    beside those a live worker counts too (``kept``): of the other
    application codes, those the retired counts had already (``established``)
    stay first, then those counted most; the rest join ``other``.

    Each ended worker brings up to that many codes of its own: folded key by
    key, every worker replaced would add series, without end (in a rolling
    restart, the one ending shares its clients' codes with the one still
    live, so they were all kept). A code a live worker counts is never
    folded: its series, their counts added, would go down, which Prometheus
    takes for a counter reset; one only the retired counts had ends its
    series, its counts in ``other``.
    """
    sides: dict[str, list[tuple[str, Any]]] = {}  # side: its (key, parsed key)
    for key in totals:
        parsed = json.loads(key)  # [metric, sample, labels, help]
        if parsed[0] == "wsserver_close_codes" and "code" in parsed[2]:
            sides.setdefault(parsed[2].get("side", ""), []).append((key, parsed))
    for found in sides.values():
        if len(found) <= CLOSE_CODES_KEPT:
            continue
        codes = [(key, parsed[2]["code"]) for key, parsed in found]
        # (A live worker's code new to the retired counts stays beyond the
        # cap, for as long as one counts it: so many as the live count, at most.)
        room = CLOSE_CODES_KEPT - sum(
            1 for key, code in codes if (key in kept and key in established) or always_kept(code)
        )
        others = [key for key, code in codes if key not in kept and not always_kept(code)]
        others.sort(key=lambda key: (key not in established, -totals[key][0]))
        folded = others[max(room, 0) :]
        if not folded:
            continue
        metric, sample, labels, text = found[0][1]
        other = json.dumps([metric, sample, {**labels, "code": "other"}, text], sort_keys=True)
        value, timestamp = totals.get(other, (0.0, 0.0))
        for key in folded:
            value += totals.pop(key)[0]
        totals[other] = (value, timestamp)
