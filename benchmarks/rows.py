"""The report's sections for the rows with columns of their own: scaling with
``--workers`` and the cost of TLS (issue 16), fan-out through a broker (issue 17).

Each section has its own table of medians and ratios, its CPU table and its
spread; how the cores were shared is said in the section, since these rows do
not all follow the one-core-each layout of the main tables.
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.matrix import Metric, Scenario, Server, baseline_for
from benchmarks.report import (
    BUSY,
    Measurement,
    _better,
    _fmt,
    _median,
    _row,
    _table_head,
    values,
)

#: The issue's target for the fan-out row: wsserver (Redis, 2 workers) at least
#: this many times python-socketio's delivered messages per second.
FANOUT_TARGET = 2.0

SERVER_CPU = Metric("server_cpu", "", "", False)
CLIENT_CPU = Metric("client_cpu", "", "", False)
CLIENT_USER = Metric("client_user_cpu", "", "", False)
AUX_CPU = Metric("aux_cpu", "", "", False)
OTHER_CPU = Metric("other_cpu", "", "", False)
#: Busy time of other programs, in one round of a cell, from which the cell is marked ‡.
CROWDED = 0.2


def render_sections(
    meta: dict[str, Any],
    measurements: list[Measurement],
    servers: list[Server],
    scenarios: list[Scenario],
) -> list[str]:
    """The sections of the rows that ran (none if none did)."""
    rounds = int(meta.get("rounds", 1))
    return [
        *_workers_section(measurements, servers, scenarios, rounds),
        *_tls_section(measurements, servers, scenarios, rounds),
        *_fanout_section(measurements, servers, scenarios, rounds),
    ]


# ------------------------------------------------------------------ scaling


def _workers_section(
    measurements: list[Measurement], servers: list[Server], scenarios: list[Scenario], rounds: int
) -> list[str]:
    cols = [s for s in servers if s.group == "workers"]
    rows = [sc for sc in scenarios if any(c.serves(sc) for c in cols)]
    if not cols or not rows:
        return []
    by_key = {c.key: c for c in cols}
    one, two, two_one_cpu = (
        by_key.get(k) for k in ("wsserver-w1", "wsserver-w2", "wsserver-w2-1cpu")
    )
    ratios = [
        (f"{b.label} ÷ {a.label}", b, a) for a, b in ((one, two), (one, two_one_cpu)) if a and b
    ]
    lines = [
        "",
        "## Scaling: wsserver --workers (issue 16)",
        "",
        "The Router echo app as in (b) and (f), started as `python -m wsserver ... --workers N`. "
        "How the two cores are shared:",
        "",
        "- *--workers 1*: one process (no supervisor) pinned to CPU 0, the load generator to "
        "CPU 1: the layout of every other column.",
        "- *--workers 2, one CPU*: the supervisor and both workers pinned to CPU 0, the "
        "generator alone on CPU 1: what a second process costs when there is no second core "
        "for it.",
        "- *--workers 2*: the supervisor and its workers may run on CPUs 0 and 1 (`taskset -c "
        "0,1`; the kernel places them), the generator pinned to CPU 1 as in every row. This "
        "machine has two cores: two busy workers and the generator are three busy processes on "
        "two cores, so a worker shares the generator's core whenever both workers have work. "
        "Why this layout: no core is left to give the generator alone; pinning both workers to "
        "one core while the generator has the other would measure the row above again; so the "
        "workers get both cores, as `--workers 2` is meant to use them, and the generator's "
        "loss is shown (its share of its core in the CPU table) rather than hidden. The figure "
        "is therefore a lower bound of what two workers do with two cores of their own.",
        "",
        "The supervisor binds the socket once and its workers accept on it (no "
        "`SO_REUSEPORT`); the generator measures the CPU of the supervisor and of each worker.",
        "",
        *_medians_table(measurements, cols, rows, ratios),
        "",
        "### CPU while measuring: server, all its processes (each worker) / load generator "
        "(its user-space); others",
        "",
        "Shares of one core: a server's total may reach 200 % on two cores. *others*: the "
        "machine's busy time that was neither the server's nor the generator's (other programs, "
        "the kernel's own threads), from /proc/stat, counted in 10 ms ticks (±10 %), in the "
        "worst round.",
        "",
        *_cpu_rows(measurements, cols, rows, aux=False),
        *_spread_rows(measurements, cols, rows, rounds),
    ]
    return lines


# ---------------------------------------------------------------------- TLS


def _tls_section(
    measurements: list[Measurement], servers: list[Server], scenarios: list[Scenario], rounds: int
) -> list[str]:
    secure = [s for s in servers if s.group == "tls"]
    rows = [sc for sc in scenarios if any(c.serves(sc) for c in secure)]
    if not secure or not rows:
        return []
    pairs = [(_plain_twin(s, servers), s) for s in secure]
    cols: list[Server] = []
    ratios: list[tuple[str, Server, Server]] = []
    for plain, wss in pairs:
        if plain is not None:
            cols.append(plain)
        cols.append(wss)
    for plain, wss in pairs:
        if plain is not None:
            ratios.append((f"{wss.label} ÷ {plain.label}", wss, plain))
    ours = next((s for s in secure if s.is_wsserver), None)
    if ours is not None:
        ratios += [(f"{ours.label} ÷ {p.label}", ours, p) for p in secure if not p.is_wsserver]
    negotiated = sorted(
        {
            f"{m['result']['tls'].get('version')} {m['result']['tls'].get('cipher')}"
            for m in measurements
            if m.get("result", {}).get("tls") and m["server"] in {s.key for s in secure}
        }
    )
    return [
        "",
        "## TLS cost: wss:// against ws:// (issue 16)",
        "",
        "(b) and (d) again, each library serving wss:// with a test certificate (a trustme CA "
        "in benchmarks/.cache/tls that the generator trusts), beside its ws:// column of the "
        "same run. Every server makes its context the same way (`PROTOCOL_TLS_SERVER`, TLS 1.2 "
        "at least, OpenSSL's default ciphers; wsserver from `--ssl-certfile`/`--ssl-keyfile`) "
        "and every one runs TLS through asyncio's `SSLProtocol`; the generator is Go's "
        "crypto/tls. Negotiated: " + (", ".join(negotiated) or "-") + ". Pinning as in the "
        "main tables: server on CPU 0, generator on CPU 1; the generator's TLS work is on its "
        "own core.",
        "",
        *_medians_table(measurements, cols, rows, ratios),
        "",
        "### CPU while measuring: server % / load generator % (its user-space %); others",
        "",
        "*others*: the machine's busy time that was neither the server's nor the generator's "
        "(other programs, the kernel's own threads), from /proc/stat, in 10 ms ticks (±10 %), in "
        "the worst round.",
        "",
        *_cpu_rows(measurements, cols, rows, aux=False),
        *_spread_rows(measurements, cols, rows, rounds),
    ]


def _plain_twin(wss: Server, servers: list[Server]) -> Server | None:
    """The ws:// column of the same library on the same loop, if it ran."""
    for s in servers:
        same = (s.library, s.loop) == (wss.library, wss.loop)
        if same and not (s.group or s.tls or s.asgi or s.env or s.base):
            return s
    return None


# ------------------------------------------------------------------ fan-out


def _fanout_section(
    measurements: list[Measurement], servers: list[Server], scenarios: list[Scenario], rounds: int
) -> list[str]:
    cols = [s for s in servers if s.group == "fanout"]
    rows = [sc for sc in scenarios if sc.key == "fanout"]
    if not cols or not rows:
        return []
    peers = [s for s in cols if not s.is_wsserver]
    ratios = []
    for peer in peers:
        ours = baseline_for(peer, cols)
        if ours is not None:
            ratios.append((f"{ours.label} ÷ {peer.label}", ours, peer))
    lines = [
        "",
        "## Fan-out: one publisher, 1,000 subscribers of one topic (issue 17)",
        "",
        "1,000 subscribers connect (50 at a time) and one publisher; every message the "
        "publisher sends is published by the server to the topic and delivered to every "
        "subscriber, each copy checked byte for byte. wsserver: `ws.subscribe(topic)` and "
        "`await ws.server.publish(topic, message)` (`benchmarks/servers/fanout_app.py`), with "
        "`--workers 2 --broker redis://...` or in one process with the memory broker. "
        "python-socketio: `AsyncServer` on aiohttp, WebSocket transport only, `enter_room` and "
        "`emit(..., room=...)`, with `AsyncRedisManager` across 2 worker processes that share "
        "one listening socket as wsserver's do, or in one process "
        "(`benchmarks/servers/socketio_server.py`); the generator speaks Engine.IO 4 / "
        "Socket.IO 5 to it. Each measurement has a fresh private redis-server. After a warm-up "
        "(until a message reaches everyone: a worker subscribes at Redis a moment after its "
        "first subscriber joins), *latency*: 200 messages of 64 B (50 with --quick) one at a "
        "time, each from just before the publisher writes it until the last subscriber has "
        "it; *throughput*: 16 messages outstanding, the next written as soon as the oldest "
        "has reached every subscriber, 0.5 s, then 2 s measured (1 s with --quick): copies "
        "delivered per second.",
        "",
        "Cores: the one-process columns are pinned to CPU 0, the generator to CPU 1 as in the "
        "main tables. The two-worker columns' supervisor, workers and redis-server may run on "
        "CPUs 0 and 1 (the kernel places them), the generator pinned to CPU 1: with two cores, "
        "no process has one of its own there (see the scaling row).",
        "",
        *_medians_table(measurements, cols, rows, ratios),
        "",
    ]
    lines += _fanout_target(measurements, ratios, rows[0])
    lines += [
        "",
        "### Details (every round)",
        "",
        *_table_head(
            [
                "column",
                "subscribers per process",
                "messages published/s",
                "last delivery under load, p50 ms",
                "deliveries lost",
                "out of order",
            ]
        ),
    ]
    for col in cols:
        ms = [m for m in measurements if m["server"] == col.key and m.get("result")]
        results = [m["result"] for m in ms]
        spread = "; ".join(
            " / ".join(
                str(n) for n in sorted(r.get("subscribers_by_pid", {}).values(), reverse=True)
            )
            for r in results
        )
        lines.append(
            _row(
                [
                    col.label,
                    spread or "-",
                    _join(r.get("published_per_s") for r in results),
                    _join((r.get("loaded_p50_ms") for r in results), 2),
                    _join((r.get("lost_deliveries") for r in results), 0),
                    _join((r.get("reordered") for r in results), 0),
                ]
            )
        )
    lines += [
        "",
        "### CPU while measuring (throughput): server, all its processes (each worker) / "
        "redis-server / load generator (its user-space); others",
        "",
        "Shares of one core: two workers and Redis may together reach 200 %. *others*: the "
        "machine's busy time that was none of these (other programs, the kernel's own threads), "
        "from /proc/stat, counted in 10 ms ticks (±10 %), in the worst round.",
        "",
        *_cpu_rows(measurements, cols, rows, aux=True),
        *_spread_rows(measurements, cols, rows, rounds),
    ]
    return lines


def _fanout_target(
    measurements: list[Measurement], ratios: list[tuple[str, Server, Server]], row: Scenario
) -> list[str]:
    metric = row.metrics[0]
    vals = values(measurements, metric)
    out = []
    for _, ours, peer in ratios:
        if not peer.redis:
            continue
        a, b = _median(vals.get((row.key, ours.key))), _median(vals.get((row.key, peer.key)))
        if a is None or not b:
            continue
        ratio = a / b
        verdict = "met" if ratio >= FANOUT_TARGET else "missed"
        out.append(
            f"- Target (issue 17): {ours.label} at least {FANOUT_TARGET:.0f}x {peer.label}'s "
            f"{metric.label}: {ratio:.2f}x, {verdict} ({a:,.0f} against {b:,.0f})."
        )
    return out


def _join(items: Any, digits: int = 0) -> str:
    found = [f"{float(v):,.{digits}f}" for v in items if v is not None]
    return "; ".join(found) or "-"


# ------------------------------------------------------------------ tables


def _medians_table(
    measurements: list[Measurement],
    cols: list[Server],
    rows: list[Scenario],
    ratios: list[tuple[str, Server, Server]],
) -> list[str]:
    """Medians of every column, then each ratio (numerator's median ÷ denominator's)."""
    client_cpu = values(measurements, CLIENT_CPU)
    other_cpu = values(measurements, OTHER_CPU)
    failed: dict[tuple[str, str], int] = {}
    for m in measurements:
        if m.get("error"):
            cell = (m["scenario"], m["server"])
            failed[cell] = failed.get(cell, 0) + 1
    heads = ["scenario", "metric", "better", *(c.label for c in cols), *(r[0] for r in ratios)]
    lines = _table_head(heads)
    for scenario in rows:
        for metric in scenario.metrics:
            vals = values(measurements, metric)
            cells = []
            for col in cols:
                cell = (scenario.key, col.key)
                text = _fmt(_median(vals.get(cell)), metric) if col.serves(scenario) else "-"
                if (_median(client_cpu.get(cell)) or 0) >= BUSY:
                    text += " †"
                if max(other_cpu.get(cell) or [0.0]) >= CROWDED:
                    text += " ‡"
                if failed.get(cell):
                    text = f"{text} ⚠{failed[cell]} failed" if vals.get(cell) else "FAIL"
                cells.append(text)
            for _, num, den in ratios:
                a = _median(vals.get((scenario.key, num.key)))
                b = _median(vals.get((scenario.key, den.key)))
                cells.append(f"{a / b:.2f}" if a is not None and b else "-")
            lines.append(_row([scenario.title, metric.label, _better(metric), *cells]))
    lines += [
        "",
        f"† the load generator's core was at least {BUSY:.0%} busy in that cell (median): the "
        "figure is the limit of the server and the generator together. ‡ in at least one round "
        f"other programs took {CROWDED:.0%} of a core or more while measuring (*others* in the "
        "CPU table): that round's figure is low, and the median may be too. Ratios: where higher "
        "is better, above 1 means the first column named wins; where lower is better, below 1.",
    ]
    return lines


def _cpu_rows(
    measurements: list[Measurement], cols: list[Server], rows: list[Scenario], *, aux: bool
) -> list[str]:
    server = values(measurements, SERVER_CPU)
    client = values(measurements, CLIENT_CPU)
    user = values(measurements, CLIENT_USER)
    redis = values(measurements, AUX_CPU)
    other = values(measurements, OTHER_CPU)
    each = _each_worker(measurements)
    lines = _table_head(["scenario", *(c.label for c in cols)])
    for scenario in rows:
        cells = []
        for col in cols:
            cell = (scenario.key, col.key)
            srv, cli, usr = (_median(v.get(cell)) for v in (server, client, user))
            if srv is None or cli is None or usr is None:
                cells.append("-")
                continue
            text = f"{srv:.0%}"
            if each.get(cell):
                text += " (" + " + ".join(f"{w:.0%}" for w in each[cell]) + ")"
            if aux:
                rds = _median(redis.get(cell))
                text += f" / {rds:.0%}" if rds is not None else " / -"
            text = f"{text} / {cli:.0%} ({usr:.0%})"
            # The worst round: where other programs ran, the cell's spread says how much it cost.
            rest = max(other.get(cell) or [0.0])
            cells.append(f"{text}; others ≤{max(rest, 0):.0%}")
        lines.append(_row([scenario.key, *cells]))
    return lines


def _each_worker(measurements: list[Measurement]) -> dict[tuple[str, str], list[float]]:
    """Per cell, the workers' CPU shares (the supervisor's left out), busiest first,
    each the median over the rounds of that rank."""
    ranked: dict[tuple[str, str], list[list[float]]] = {}
    for m in measurements:
        shares = (m.get("result") or {}).get("server_cpu_each")
        if shares and len(shares) > 1:
            workers = sorted((float(s) for s in shares[1:]), reverse=True)
            ranked.setdefault((m["scenario"], m["server"]), []).append(workers)
    return {
        cell: [statistics.median(rank) for rank in zip(*runs, strict=False)]
        for cell, runs in ranked.items()
    }


def _spread_rows(
    measurements: list[Measurement], cols: list[Server], rows: list[Scenario], rounds: int
) -> list[str]:
    if rounds <= 1:
        return []
    lines = ["", "### Spread: (max - min) ÷ median over the rounds", ""]
    lines += _table_head(["scenario", "metric", *(c.label for c in cols)])
    for scenario in rows:
        for metric in scenario.metrics:
            vals = values(measurements, metric)
            cells = []
            for col in cols:
                v = vals.get((scenario.key, col.key), [])
                med = _median(v)
                cells.append(f"{(max(v) - min(v)) / med:.0%}" if len(v) > 1 and med else "-")
            lines.append(_row([scenario.key, metric.label, *cells]))
    return lines
