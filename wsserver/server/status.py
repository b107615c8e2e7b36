"""The live status page (``--status-path``): served by the server itself, drawn in the browser.

``GET <status_path>`` is a self-contained HTML page (no build step, no CDN: the
machine may have no internet) that opens a WebSocket to ``<status_path>/ws``;
the server sends it, every second, what it shows of a snapshot of every
worker's :meth:`Server.stats` (:data:`SHOWN`), encoded once for every page.
The page keeps the last five minutes and draws, on a hand-written canvas
chart, open connections and messages per second; beside it the current
figures (connections, messages and bytes in and out, the median and 99th
percentile of handshakes and HTTP responses over the last minute, close
codes) and a table per worker.

Under ``--workers``, each worker writes its snapshot to a directory the
supervisor made (:meth:`StatusBoard.share`) every second; whichever worker serves
the page reads them all (a snapshot older than a few seconds is a worker that
ended, and is left out, as is at once one whose process is gone: killed).

Guarded like any route: the WebSocket obeys ``origins``, and without it admits
only its page's own origin (or no ``Origin``: not a browser); with ``status_token``
set, the page and the WebSocket want ``?token=`` (or ``Authorization: Bearer``),
compared in constant time, else 401.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import json
import os
import secrets
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..app.request import Request
from ..app.routing import Router
from ..errors import ConnectionClosed
from ..logs import FailureRun
from ..protocol.handshake import is_same_origin
from ..protocol.http import Response, error_response
from .metrics import running
from .stats import MESSAGE_FIELDS, Durations, cumulative_buckets
from .tokens import NOT_STORED, has_token, unauthorized
from .websocket import WebSocket

if TYPE_CHECKING:
    from .server import Server

__all__ = ["StatusBoard"]

#: A snapshot older than this (seconds) is from a worker that is gone.
STALE = 5.0
#: A snapshot older than this (seconds) is removed: its worker was killed.
GONE = 60.0

#: The route name of the page's feed, whose connections the page leaves out.
FEED_ROUTE = "_status_ws"
#: The key of a worker's figures that holds its feeds' close codes.
FEED_CLOSE_CODES = "status_feed_close_codes"
#: The durations whose percentiles the page shows (keys of a snapshot's ``durations``).
TIMED = ("handshakes", "http")
#: Over how many seconds the page's percentiles are taken.
LATENCY_WINDOW = 60.0
#: How often (seconds) each process notes its TIMED histograms, from its start:
#: the baselines its last window is taken from, whenever a page is opened.
SAMPLE_EVERY = 5.0
#: The key of a worker's figures that holds its histograms of the last window.
LATENCY_KEY = "status_latency_window"
#: The key of a worker's figures that holds its process id: a file whose
#: process is gone (killed: it never removed it) is left out at once.
PID_KEY = "status_pid"
#: The key of a worker's figures that holds when (``time.time()``) they were
#: taken: the page's rate of each worker is over its own figures' times.
TAKEN_KEY = "status_taken"
#: What the feeds send of a snapshot: what the page shows (not every
#: worker's whole figures, some 420 bytes a route each, to every page each second).
SHOWN = ("time", "totals", "worker_totals", "latency")


class StatusBoard:
    """The status page's routes, and the snapshots they show."""

    def __init__(self, server: Server, path: str, token: str | None) -> None:
        self.server = server
        self.path = path
        self.token = token
        #: Under workers: where each leaves its figures (see :meth:`share`).
        self.directory: Path | None = None
        self.worker = "1"
        #: This process's file there: ``worker-SLOT.PROCESS.json``. A retiring
        #: worker and its replacement share a slot, never a file.
        self._file: Path | None = None
        #: The last snapshot: when, what, and the figures of this process it is made of.
        self._snapshot: tuple[float, dict[str, Any], dict[str, Any]] | None = None
        #: The last snapshot's :data:`SHOWN`, as the feeds send it: of which, and the text.
        self._message: tuple[dict[str, Any], str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None
        #: This process's TIMED histograms' counts, every SAMPLE_EVERY over the
        #: last LATENCY_WINDOW (and the newest before it): when, and the counts.
        self._samples: collections.deque[tuple[float, dict[str, list[int]]]] = collections.deque()

    def share(self, directory: str, worker: str) -> None:
        """Under workers (before the server starts): show the figures every worker
        leaves in ``directory``, and leave this one's there as ``worker``'s."""
        self.directory = Path(directory)
        self.worker = worker
        self._file = self.directory / f"worker-{worker}.{secrets.token_hex(4)}.json"

    def add_routes(self, router: Router) -> None:
        # Its feeds' close codes, counted apart, are left out of the page's as
        # the feeds are left out of its other figures.
        self.server.counters.own_routes.add(FEED_ROUTE)
        router.add_route(self._page, self.path, name="_status")
        router.add_websocket_route(
            self._feed, self.path.rstrip("/") + "/ws", name=FEED_ROUTE, on_connect=self._guard
        )

    # ---------------------------------------------------------------- access

    def _allowed(self, request: Request) -> bool:
        return has_token(request, self.token)

    def _guard(self, request: Request) -> Response | None:
        if not self._allowed(request):
            return unauthorized()
        if self.server.config.origins is None:
            # Without an origins setting, the feed is for the page's own
            # origin (and clients that send none), not any page a visitor opened.
            origins = request.headers.getall("origin")
            if origins and (len(origins) > 1 or not self._own_page(origins[0], request)):
                return error_response(
                    403, "The status feed admits its own page's origin (see origins)."
                )
        return None

    @staticmethod
    def _own_page(origin: str, request: Request) -> bool:
        """Whether ``origin`` is the page's own: the scheme, host and port the
        request came by, or over plain HTTP the same host and port by https
        (a proxy in front ended TLS: no page of another site can send that
        ``Origin``)."""
        scheme, host = request.scheme, request.host
        return is_same_origin(origin, host, scheme) or (
            scheme == "http" and is_same_origin(origin, host, "https")
        )

    async def _page(self, request: Request) -> Response:
        if not self._allowed(request):
            return unauthorized()
        return Response(
            PAGE,
            200,
            [("Content-Security-Policy", POLICY), NOT_STORED],
            content_type="text/html; charset=utf-8",
        )

    # ------------------------------------------------------------- snapshots

    async def snapshot(self) -> dict[str, Any]:
        """Every worker's stats (this one's fresh, the others' from their files), and totals.

        The same for every feed within a second (not to be changed): however
        many pages watch, the figures are gathered about once a second.
        """
        now = time.monotonic()
        recent = self._snapshot
        if recent is not None and now - recent[0] <= 0.9:
            return recent[1]
        mine = await self.server.recent_stats()
        recent = self._snapshot
        if recent is not None and recent[2] is mine:
            return recent[1]  # (another feed's, made from the same walk while this one waited)
        workers: dict[str, dict[str, Any]] = {self.worker: self._with_feeds(mine)}
        if self.directory is not None:
            now_wall = time.time()
            for file in sorted(self.directory.glob("worker-*.json")):
                if file == self._file:
                    continue
                with contextlib.suppress(OSError, ValueError):
                    age = now_wall - file.stat().st_mtime
                    if age >= GONE:
                        file.unlink()  # a worker that was killed (it never removed it)
                    elif age < STALE:
                        figures = json.loads(file.read_text())
                        pid = figures.get(PID_KEY)
                        if isinstance(pid, int) and not running(pid):
                            file.unlink()  # (its worker was killed a moment ago)
                            continue
                        slot, _, process = file.stem.removeprefix("worker-").partition(".")
                        # (Two of a slot in a rolling restart: the second by its file's name.)
                        workers[slot if slot not in workers else f"{slot}.{process}"] = figures
            for partial in self.directory.glob("worker-*.tmp"):  # (one killed while writing)
                with contextlib.suppress(OSError):
                    if now_wall - partial.stat().st_mtime >= GONE:
                        partial.unlink()
        rows = {name: totals(figures) for name, figures in workers.items()}
        latency = added_latency([row.pop("durations") for row in rows.values()])
        snapshot = {
            "time": time.time(),
            "workers": workers,
            "totals": added_up(rows.values()),
            "worker_totals": rows,
            "latency": latency,
        }
        self._snapshot = (now, snapshot, mine)
        return snapshot

    async def message(self) -> str:
        """What the feeds send: the :data:`SHOWN` figures of :meth:`snapshot`, as
        JSON, encoded once a snapshot however many feeds send it."""
        snapshot = await self.snapshot()
        cached = self._message
        if cached is None or cached[0] is not snapshot:
            text = json.dumps({key: snapshot[key] for key in SHOWN})
            cached = self._message = (snapshot, text)
        return cached[1]

    def _timed(self) -> dict[str, Durations]:
        """This process's histograms of :data:`TIMED`, by name."""
        counters = self.server.counters
        return {"handshakes": counters.handshake_seconds, "http": counters.http_seconds}

    def _sample(self) -> None:
        """Note this process's TIMED counts now (and forget those no longer needed)."""
        now = time.monotonic()
        samples = self._samples
        samples.append((now, {kind: list(d.counts) for kind, d in self._timed().items()}))
        while len(samples) > 1 and samples[1][0] <= now - LATENCY_WINDOW:
            samples.popleft()  # (the newest at least a window old stays: the baseline)

    async def _sample_forever(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            self._sample()

    def latency_window(self) -> dict[str, dict[str, int]]:
        """This process's TIMED histograms of the last LATENCY_WINDOW: see :func:`window`."""
        now = time.monotonic()
        return {
            kind: window(d.bounds, d.counts, self._samples, kind, now)
            for kind, d in self._timed().items()
        }

    def _with_feeds(self, stats: dict[str, Any]) -> dict[str, Any]:
        """``stats`` with this process's feeds' close codes (a copy: ``stats``
        is shared, see :meth:`Server.recent_stats`)."""
        own = self.server.counters.own_close_codes
        return {
            **stats,
            FEED_CLOSE_CODES: {str(code): n for code, n in own.items()},
            LATENCY_KEY: self.latency_window(),
            TAKEN_KEY: self.server.stats_taken(stats),
        }

    def start(self) -> None:
        """Note the histograms from now on; under workers, write this worker's
        snapshot every second."""
        loop = asyncio.get_running_loop()
        if self._sampler is None:
            self._sampler = loop.create_task(self._sample_forever())
        if self.directory is not None and self._task is None:
            self._task = loop.create_task(self._publish_forever())

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self._sampler = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.unlink()

    async def _publish_forever(self) -> None:
        assert self._file is not None
        target = self._file
        partial = target.with_suffix(".tmp")
        writes = FailureRun()
        while True:
            figures = self._with_feeds(await self.server.recent_stats())
            figures[PID_KEY] = os.getpid()
            try:
                partial.write_text(json.dumps(figures))
                partial.replace(target)  # readers never see half a file
            except OSError as exc:
                # (The directory removed by a cleaner, a disk full: the page
                # shows the others without this worker, and says nothing.)
                writes.failed(
                    "status page: writing this worker's figures to %s failed: %r;"
                    " trying again every second",
                    self.directory,
                    exc,
                )
            else:
                writes.worked("status page: this worker's figures are written again")
            await asyncio.sleep(1.0)

    async def _feed(self, request: Request, ws: WebSocket) -> None:
        """Send a snapshot every second until the page goes away.

        What the page sends is read (to notice a close) and ignored: it does
        not bring the next snapshot sooner.
        """
        loop = asyncio.get_running_loop()
        try:
            while True:
                await ws.send(await self.message())
                due = loop.time() + 1.0
                while (left := due - loop.time()) > 0:
                    with contextlib.suppress(TimeoutError):
                        await ws.recv(timeout=left)
        except ConnectionClosed:
            return


def totals(stats: dict[str, Any]) -> dict[str, Any]:
    """The figures the page shows of one worker's: open connections, messages
    and bytes, and the close codes received.

    This page's own feeds are left out: the page shows the application's traffic.
    """
    total: dict[str, Any] = dict.fromkeys(MESSAGE_FIELDS, 0)
    total["connections"] = sum(
        n for route, n in stats["connections"].items() if route != FEED_ROUTE
    )
    for route, counts in stats["routes"].items():
        if route != FEED_ROUTE:
            for name in MESSAGE_FIELDS:
                total[name] += counts[name]
    codes = Counter({str(code): n for code, n in stats["close_codes"]["received"].items()})
    codes.subtract(stats.get(FEED_CLOSE_CODES, {}))
    total["close_codes"] = {code: n for code, n in codes.items() if n > 0}
    windows = stats.get(LATENCY_KEY, {})  # (a worker of an older version: none)
    total["durations"] = {kind: dict(windows.get(kind, {})) for kind in TIMED}
    total["taken"] = stats.get(TAKEN_KEY)  # (a worker of an older version: None)
    return total


def window(
    bounds: tuple[float, ...],
    counts: list[int],
    samples: Iterable[tuple[float, dict[str, list[int]]]],
    kind: str,
    now: float,
) -> dict[str, int]:
    """A histogram's last LATENCY_WINDOW, as Prometheus's ``increase()`` over it:
    its per-bucket ``counts`` now less those of the newest of ``samples`` (when,
    and the counts of each ``kind``) at least a window old, or, with
    none that old (the process started less than a window ago), all of them.
    As :func:`~.stats.cumulative_buckets`."""
    base: list[int] | None = None
    for when, sampled in samples:
        if when > now - LATENCY_WINDOW:
            break
        base = sampled[kind]
    if base is not None:
        counts = [n - b for n, b in zip(counts, base, strict=True)]
    return cumulative_buckets(bounds, counts)


def added_latency(windows: Iterable[dict[str, dict[str, int]]]) -> dict[str, Any]:
    """The median and 99th percentile (ms) of each of :data:`TIMED` over the
    workers' last windows (each its own, see :func:`window`) added up, as
    Prometheus's ``sum(increase(...))``; and how many there were (None
    without any)."""
    added: dict[str, Counter[str]] = {kind: Counter() for kind in TIMED}
    for row in windows:
        for kind in TIMED:
            added[kind].update(row.get(kind, {}))
    latency = {}
    for kind in TIMED:
        buckets = dict(added[kind])
        latency[kind] = {
            "count": buckets.get("+Inf", 0),
            "p50": quantile(buckets, 0.5),
            "p99": quantile(buckets, 0.99),
        }
    return latency


def added_up(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Workers' :func:`totals`, added up."""
    total: dict[str, Any] = dict.fromkeys((*MESSAGE_FIELDS, "connections"), 0)
    codes: Counter[str] = Counter()
    for row in rows:
        for name in total:
            total[name] += row[name]
        codes.update(row["close_codes"])
    total["close_codes"] = dict(codes)
    return total


def quantile(buckets: dict[str, int], q: float) -> float | None:
    """The ``q`` quantile, in milliseconds, of a histogram's cumulative
    ``buckets`` (an upper bound in seconds, as text -> how many at most that
    long; ``+Inf`` last), found within its bucket by linear interpolation, as
    Prometheus's ``histogram_quantile`` does (past the last bound: that bound).
    None for an empty histogram."""
    total = buckets.get("+Inf", 0)
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0
    for le, count in buckets.items():
        if le == "+Inf":
            return lower * 1000
        upper = float(le)
        if count >= rank:
            inside = count - below
            return (lower + (upper - lower) * ((rank - below) / inside if inside else 1)) * 1000
        lower, below = upper, count
    return lower * 1000


STYLE = """
  body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.3em; margin: 0 0 .6em; }
  .figures { display: flex; flex-wrap: wrap; gap: .8em; margin-bottom: 1em; }
  .figure { border: 1px solid #ccd; border-radius: 6px; padding: .5em .8em; min-width: 8em; }
  .figure b { display: block; font-size: 1.4em; }
  canvas { border: 1px solid #ccd; border-radius: 6px; width: 100%; max-width: 900px; }
  table { border-collapse: collapse; margin-top: 1em; }
  td, th { border: 1px solid #ccd; padding: .2em .6em; text-align: right; }
  #state { color: #777; }
  .legend span { margin-right: 1.2em; }
  .legend .open { color: #2563eb; }
  .legend .rate { color: #dc2626; }
"""

SCRIPT = """
"use strict";
const KEEP = 300;  // points: one a second, five minutes
const chart = { points: [] };
window.statusChart = chart;
let last = null;

function messages(t) { return t.text_in + t.binary_in + t.text_out + t.binary_out; }

function ms(value) { return value < 10 ? value.toFixed(1) : String(Math.round(value)); }

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

function table(id, rows) {
  const tableElement = document.getElementById(id);
  while (tableElement.rows.length > 1) tableElement.deleteRow(1);
  for (const values of rows) {
    const row = tableElement.insertRow();
    for (const value of values) cell(row, String(value));
  }
}

function draw() {
  const canvas = document.getElementById("chart");
  const g = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 30;
  g.clearRect(0, 0, w, h);
  g.strokeStyle = "#ccd";
  g.beginPath();
  g.moveTo(pad, pad / 2); g.lineTo(pad, h - pad); g.lineTo(w - 5, h - pad);
  g.stroke();
  const points = chart.points;
  if (points.length < 2) return;
  const series = [["open", "#2563eb"], ["rate", "#dc2626"]];
  for (const [key, color] of series) {
    const top = Math.max(1, ...points.map(p => p[key]));
    g.strokeStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    points.forEach((p, i) => {
      const x = pad + (w - pad - 5) * (i / (KEEP - 1));
      const y = h - pad - (h - pad * 1.5) * (p[key] / top);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
    g.fillStyle = color;
    g.fillText(String(top), 2, key === "open" ? 12 : 24);
  }
}

function show(snapshot) {
  const t = snapshot.totals;
  const now = snapshot.time;
  // Each worker's messages a second over its own figures' times: the page reads
  // the workers' figures about as often as they renew them, so it may read one's
  // twice (they keep its rate) or miss one. One that left (its counts gone
  // with it) or joined (all its counts at once) is no rate.
  let rate = 0;
  const seen = {};
  for (const [name, w] of Object.entries(snapshot.worker_totals)) {
    const taken = w.taken ?? now;  // (a worker of an older version: the snapshot's time)
    const before = last === null ? undefined : last[name];
    let own = 0;
    if (before !== undefined && taken > before.taken) {
      own = Math.max(0, messages(w) - before.messages) / (taken - before.taken);
    } else if (before !== undefined && taken === before.taken) {
      own = before.rate;
    }
    seen[name] = { messages: messages(w), taken, rate: own };
    rate += own;
  }
  last = seen;
  chart.points.push({ open: t.connections, rate: Math.round(rate) });
  if (chart.points.length > KEEP) chart.points.shift();
  document.getElementById("open").textContent = t.connections;
  document.getElementById("rate").textContent = Math.round(rate);
  document.getElementById("msgs-in").textContent = t.text_in + t.binary_in;
  document.getElementById("msgs-out").textContent = t.text_out + t.binary_out;
  document.getElementById("bytes-in").textContent = t.payload_in;
  document.getElementById("bytes-out").textContent = t.payload_out;
  const workers = Object.keys(snapshot.worker_totals);
  document.getElementById("worker-count").textContent = workers.length;
  for (const [kind, id] of [["handshakes", "handshake-ms"], ["http", "http-ms"]]) {
    const l = snapshot.latency[kind];  // (over the last minute)
    document.getElementById(id).textContent = l.count === 0
      ? "-" : `${ms(l.p50)} / ${ms(l.p99)}`;
  }
  table("close-codes", Object.entries(t.close_codes).sort());
  // (By number: worker 2 before worker 10; a second of a slot, "1.3f2a", after its first.)
  const byNumber = ([a], [b]) => a.localeCompare(b, "en", { numeric: true });
  table("workers", Object.entries(snapshot.worker_totals).sort(byNumber).map(([name, w]) => [
    name, w.connections, w.text_in + w.binary_in, w.text_out + w.binary_out,
    w.payload_in, w.payload_out,
  ]));
  draw();
}

// The figures come every second: none for this long (a connection the network
// dropped without a word, a laptop that slept) and the feed is given up for another.
const STALE_AFTER = 5;
let lastFigures = 0;

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const path = location.pathname.replace(/\\/$/, "") + "/ws";
  const url = scheme + location.host + path + location.search;
  const socket = new WebSocket(url);
  window.statusSocket = socket;
  socket.onopen = () => {
    lastFigures = performance.now();
    document.getElementById("state").textContent = "live";
  };
  socket.onmessage = event => {
    lastFigures = performance.now();
    show(JSON.parse(event.data));
  };
  socket.onclose = () => {
    if (socket !== window.statusSocket) return;  // (given up: another is open)
    document.getElementById("state").textContent = "disconnected: retrying...";
    setTimeout(connect, 2000);
  };
}

setInterval(() => {
  const socket = window.statusSocket;
  if (socket.readyState === WebSocket.OPEN
      && performance.now() - lastFigures > STALE_AFTER * 1000) {
    document.getElementById("state").textContent =
      `no figures for ${STALE_AFTER} s: reconnecting...`;
    socket.onmessage = null;
    connect();
    socket.close();  // (its closing handshake may never end: not waited for)
  }
}, 1000);
draw();
connect();
"""

PAGE = (
    """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wsserver status</title>
<style>"""
    + STYLE
    + """</style>
</head>
<body>
<h1>wsserver status <span id="state">connecting...</span></h1>
<div class="figures">
  <div class="figure">open connections<b id="open">-</b></div>
  <div class="figure">messages/s<b id="rate">-</b></div>
  <div class="figure">messages in<b id="msgs-in">-</b></div>
  <div class="figure">messages out<b id="msgs-out">-</b></div>
  <div class="figure">bytes in<b id="bytes-in">-</b></div>
  <div class="figure">bytes out<b id="bytes-out">-</b></div>
  <div class="figure">workers<b id="worker-count">-</b></div>
  <div class="figure">handshakes, ms: median / 99%<b id="handshake-ms">-</b></div>
  <div class="figure">HTTP responses, ms: median / 99%<b id="http-ms">-</b></div>
</div>
<div class="legend"><span class="open">&#9632; open connections</span>
<span class="rate">&#9632; messages/s</span> (last 5 minutes)</div>
<canvas id="chart" width="900" height="260"></canvas>
<h2>Close codes received</h2>
<table id="close-codes"><tr><th>code</th><th>connections</th></tr></table>
<h2>Workers</h2>
<table id="workers"><tr><th>worker</th><th>open</th><th>messages in</th><th>messages out</th>
<th>bytes in</th><th>bytes out</th></tr></table>
<script>"""
    + SCRIPT
    + """</script>
</body>
</html>
"""
)


def _source_hash(text: str) -> str:
    """A CSP source expression that admits exactly the inline ``text``."""
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return f"'sha256-{digest}'"


#: The page's own Content-Security-Policy: its inline script and style, its
#: feed, nothing else. A response that has a header keeps its own, so a policy
#: given to every response (``headers``), which would forbid them, is not the page's.
POLICY = (
    f"default-src 'none'; script-src {_source_hash(SCRIPT)}; style-src {_source_hash(STYLE)}; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'"
)
