"""The Markdown report of a run: header, medians, ratios, spread, CPU, failures."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import replace
from typing import Any

from benchmarks import broadcast_cost
from benchmarks.matrix import Metric, Scenario, Server, baseline_for

Measurement = dict[str, Any]
#: Load generator CPU share from which a cell is marked as limited by it too.
BUSY = 0.9
Cell = tuple[str, str]  # (scenario key, server key)


def values(measurements: list[Measurement], metric: Metric) -> dict[Cell, list[float]]:
    """Every successful value of ``metric``, by cell."""
    out: dict[Cell, list[float]] = defaultdict(list)
    for m in measurements:
        result = m.get("result")
        if result is not None and metric.key in result:
            out[m["scenario"], m["server"]].append(float(result[metric.key]))
    return out


def failures(measurements: list[Measurement]) -> dict[Cell, list[Measurement]]:
    out: dict[Cell, list[Measurement]] = defaultdict(list)
    for m in measurements:
        if m.get("error"):
            out[m["scenario"], m["server"]].append(m)
    return out


def render(
    meta: dict[str, Any],
    measurements: list[Measurement],
    servers: list[Server],
    scenarios: list[Scenario],
) -> str:
    from benchmarks import rows  # it uses this module's helpers

    lines = ["# wsserver benchmarks", "", *_header(meta, servers), *_noise(measurements), ""]
    failed = failures(measurements)
    # The scaling, TLS and fan-out rows have sections of their own (rows.py).
    main = [s for s in servers if not s.group]
    main_scenarios = [sc for sc in scenarios if any(s.serves(sc) for s in main)]
    if main and main_scenarios:
        lines += _main_tables(meta, measurements, main, main_scenarios, failed)
    lines += rows.render_sections(meta, measurements, servers, scenarios)
    cost_error = meta.get("broadcast_cost_error")
    if failed or cost_error:
        lines += ["", "## Failures", ""]
        for (scenario, server), ms in sorted(failed.items()):
            lines += [
                f"- {scenario} / {server}, round {m['round']}: {_one_line(m['error'])}" for m in ms
            ]
        if cost_error:
            lines.append(f"- broadcast() cost in memory: {_one_line(cost_error)}")
    if main and main_scenarios:
        lines += ["", "## Notes", "", *NOTES, *_compression_notes(measurements, main)]
        if any(s.asgi for s in main):
            lines += ASGI_NOTES
    return "\n".join(lines) + "\n"


def _main_tables(
    meta: dict[str, Any],
    measurements: list[Measurement],
    servers: list[Server],
    scenarios: list[Scenario],
    failed: dict[Cell, list[Measurement]],
) -> list[str]:
    """The results, ratios, spread and CPU tables of the main columns."""
    lines: list[str] = []
    lines += ["## Results (median of the rounds)", ""]
    lines += _results_table(measurements, servers, scenarios, failed)
    lines += [
        "",
        f"† the load generator's core was at least {BUSY:.0%} busy in that cell (median): the "
        "figure is the limit of the server and the generator together, and may understate the "
        "server. See the CPU table below.",
    ]
    lines += ["", "## wsserver ÷ peer", ""]
    lines += [
        "wsserver's median divided by the peer's, wsserver on the same event loop as the peer "
        "(asyncio against node ws and against the pure-Python build). Read it with the "
        "*better* column: where higher is better, above 1 means wsserver wins; where lower is "
        "better, below 1 means wsserver wins."
        + (
            f" Against wsserver @ {meta['baseline']['short']}, it is the working tree's "
            "figure divided by that revision's: what the change did."
            if meta.get("baseline")
            else ""
        )
        + (
            " Against the ASGI servers, it is wsserver serving the same ASGI application "
            "(wsserver (ASGI))."
            if any(s.asgi for s in servers)
            else ""
        ),
        "",
    ]
    lines += _ratio_table(measurements, servers, scenarios)
    lines += _floor_lines(measurements, servers, scenarios)
    lines += _asgi_lines(measurements, servers, scenarios)
    if meta.get("broadcast_cost"):
        lines += ["", *broadcast_cost.render(meta["broadcast_cost"])]
    if meta.get("rounds", 1) > 1:
        lines += ["", "## Spread: (max - min) ÷ median over the rounds", ""]
        lines += _spread_table(measurements, servers, scenarios)
    lines += ["", "## CPU while measuring: server % / load generator % (its user-space %)", ""]
    lines += [
        "Shares of one core (each process has its own). On loopback the kernel's TCP work for "
        "the data a process sends, the peer's receive side included, runs on the sender's core: "
        "most of the generator's time is that kernel work, the rest (in parentheses) is its own "
        "code: framing, masking, inflating, comparing. A server near 100 % set the pace; where "
        "the generator is near 100 % too, the cell is also at the generator's core's limit.",
        "",
    ]
    lines += _cpu_table(measurements, servers, scenarios)
    return lines


def _compression_notes(measurements: list[Measurement], servers: list[Server]) -> list[str]:
    """Which servers sent (h)'s echoes uncompressed, if any did."""
    share = values(measurements, Metric("compressed_fraction", "", "", True))
    labels = {s.key: s.label for s in servers}
    partial = [
        f"{labels[server]} ({min(v):.0%})"
        for (scenario, server), v in share.items()
        if scenario == "h" and min(v) < 1
    ]
    if not share or not any(scenario == "h" for scenario, _ in share):
        return []
    if not partial:
        return ["- (h): every server sent every echo compressed (RSV1 set)."]
    return ["- (h): share of echoes that came back compressed: " + ", ".join(partial)]


def _deflate_name(versions: dict[str, Any]) -> str:
    """The deflate a wsserver process used: "zlib", or "zlib-ng X.Y.Z" (the speedups extra)."""
    name = versions.get("deflate") or "zlib"
    if name == "zlib-ng" and versions.get("zlib-ng"):
        return f"zlib-ng {versions['zlib-ng']}"
    return str(name)


def _header(meta: dict[str, Any], servers: list[Server]) -> list[str]:
    project, peers = meta["project"], meta["peers"]
    plain = meta["project_no_speedups"]
    speedups = (
        f"C accelerator {'loaded' if project.get('speedups_loaded') else 'NOT loaded'} "
        f"by default ({', '.join(meta['speedups_files']) or 'no wsserver/_speedups*.so'}), "
        f"{'not ' if not plain.get('speedups_loaded') else ''}"
        "loaded with WSSERVER_NO_SPEEDUPS=1 (the pure-Python column); permessage-deflate by "
        f"{_deflate_name(project)} by default, by {_deflate_name(plain)} with "
        "WSSERVER_NO_SPEEDUPS=1"
    )
    node = meta["node_packages"]
    return [
        f"- Date: {meta['date']}; the run took {_duration(meta.get('duration_s', 0))}",
        f"- Machine: {meta['cpu_model']}, {meta['cores']} cores, {meta['memory_gib']} GiB, "
        f"Linux {meta['kernel']}",
        f"- Pinning: every server on CPU {meta['server_cpu']}, the load generator on CPU "
        f"{meta['loadgen_cpu']} (`taskset`); open-file limit {meta['nofile']} (`prlimit`)"
        + (
            "; except the two-worker columns of the scaling and fan-out rows, whose "
            "processes (and redis-server) may use both CPUs: see those sections"
            if any(s.cpus != (meta["server_cpu"],) for s in servers)
            else ""
        ),
        f"- Python {project.get('python')} (project venv, peers' venv: {peers.get('python')})",
        f"- wsserver {project.get('wsserver')} (git {meta.get('git', 'unknown')}); {speedups}",
        *_baseline_header(meta.get("baseline")),
        f"- Peers: websockets {peers.get('websockets')}, aiohttp {peers.get('aiohttp')}, "
        f"picows {peers.get('picows')}, uvloop {peers.get('uvloop')} "
        f"(project venv: uvloop {project.get('uvloop')})",
        *_asgi_header(peers, servers),
        *_rows_header(meta, servers),
        f"- Node {meta['node']}, ws {node.get('ws')}, bufferutil {node.get('bufferutil')} "
        f"({'native' if meta['bufferutil_native'] else 'JavaScript fallback'})",
        f"- Load generator: {meta['go'].removeprefix('go version ')}, standard library only",
        f"- {meta['rounds']} round(s), interleaved: every scenario runs against every server in "
        "turn before the next scenario (each round starting one server further on), each "
        "against a freshly started server"
        + (" (--quick: shorter runs)" if meta.get("quick") else ""),
        *_merged_header(meta.get("merged")),
    ]


def _asgi_header(peers: dict[str, Any], servers: list[Server]) -> list[str]:
    """The ASGI servers' versions, when any ran."""
    if not any(s.asgi for s in servers):
        return []
    return [
        f"- ASGI servers, each serving `benchmarks/servers/asgi_app.py` as wsserver (ASGI) "
        f"does: uvicorn {peers.get('uvicorn')} (h11 {peers.get('h11')}; websockets "
        f"{peers.get('websockets')} or wsproto {peers.get('wsproto')}), hypercorn "
        f"{peers.get('hypercorn')} (asyncio worker, in-process), granian "
        f"{peers.get('granian')} (one worker, one runtime thread; its worker process is "
        "the one measured)"
    ]


def _merged_header(merged: list[dict[str, Any]] | None) -> list[str]:
    """The runs a report of several (``--render A.json B.json``) was made from."""
    if not merged:
        return []
    runs = "; ".join(
        f"{run['date']}, git {run['git']}, {run['rounds']} round(s)"
        + (" (--quick)" if run.get("quick") else "")
        for run in merged
    )
    return [f"- Merged from {len(merged)} runs of the same columns, rounds numbered on: {runs}"]


def _noise(measurements: list[Measurement]) -> list[str]:
    """What the rest of the machine did while measuring, from the generator's reads of
    /proc/stat: busy time that was neither the generator's nor the server's (nor Redis')."""
    other = [
        float(m["result"]["other_cpu"]) for m in measurements if "other_cpu" in m.get("result", {})
    ]
    steal = [
        float(m["result"]["steal_cpu"]) for m in measurements if "steal_cpu" in m.get("result", {})
    ]
    if not other:
        return []
    return [
        "- The rest of the machine while measuring (other programs, the kernel's own threads): "
        f"median {max(statistics.median(other), 0):.0%} of one core over the measured windows, "
        f"{max(max(other), 0):.0%} at most (counted in 10 ms ticks: ±10 %); the hypervisor's "
        "steal: median "
        f"{statistics.median(steal):.0%}, {max(steal):.0%} at most"
    ]


def _rows_header(meta: dict[str, Any], servers: list[Server]) -> list[str]:
    """The fan-out row's versions, when it ran."""
    if not any(s.group == "fanout" for s in servers):
        return []
    project, peers = meta["project"], meta["peers"]
    return [
        f"- Fan-out: {meta.get('redis_server') or 'redis-server (version unknown)'}; wsserver's "
        f"broker with redis-py {project.get('redis')}, hiredis {project.get('hiredis')}; "
        f"python-socketio {peers.get('python-socketio')} (python-engineio "
        f"{peers.get('python-engineio')}, redis-py {peers.get('redis')}, hiredis "
        f"{peers.get('hiredis')}) on aiohttp {peers.get('aiohttp')}"
    ]


def _baseline_header(baseline: dict[str, Any] | None) -> list[str]:
    """Which revision the wsserver @ REV columns ran, and from where it was imported."""
    if not baseline:
        return []
    speedups = {True: "loaded", False: "NOT loaded"}.get(baseline["speedups_loaded"], "unknown")
    return [
        f"- Baseline: the columns wsserver @ {baseline['short']} are `--baseline "
        f"{baseline['rev']}`, commit {baseline['commit']}, run exactly as wsserver's but "
        f"importing `{baseline['wsserver_realpath']}` (a git worktree); its C masking "
        f"accelerator {speedups}"
    ]


def _results_table(
    measurements: list[Measurement],
    servers: list[Server],
    scenarios: list[Scenario],
    failed: dict[Cell, list[Measurement]],
) -> list[str]:
    client_cpu = values(measurements, Metric("client_cpu", "", "", False))
    lines = _table_head(["scenario", "metric", "better", *(s.label for s in servers)])
    for scenario in scenarios:
        for metric in scenario.metrics:
            vals = values(measurements, metric)
            cells = []
            for server in servers:
                cell = (scenario.key, server.key)
                text = _fmt(_median(vals.get(cell)), metric)
                if (_median(client_cpu.get(cell)) or 0) >= BUSY:
                    text += " †"
                if failed.get(cell):
                    text = f"{text} ⚠{len(failed[cell])} failed" if vals.get(cell) else "FAIL"
                cells.append(text)
            lines.append(_row([scenario.title, metric.label, _better(metric), *cells]))
    return lines


def _ratio_table(
    measurements: list[Measurement], servers: list[Server], scenarios: list[Scenario]
) -> list[str]:
    peers = [s for s in servers if not s.is_wsserver or s.env or s.base]
    pairs = _compared(peers, servers)
    if not pairs:
        return ["(no wsserver column to compare with)"]
    heads = [f"{b.label} ÷ {p.label}" for p, b in pairs]
    lines = _table_head(["scenario", "metric", "better", *heads])
    for scenario in scenarios:
        for metric in scenario.metrics:
            vals = values(measurements, metric)
            cells = []
            for peer, base in pairs:
                ours = _median(vals.get((scenario.key, base.key)))
                theirs = _median(vals.get((scenario.key, peer.key)))
                cells.append(f"{ours / theirs:.2f}" if ours is not None and theirs else "-")
            lines.append(_row([scenario.key, metric.label, _better(metric), *cells]))
    return lines


def _floor_lines(
    measurements: list[Measurement], servers: list[Server], scenarios: list[Scenario]
) -> list[str]:
    """For the floor columns: floor ÷ each peer on the same loop, the best ratio reachable."""
    out = []
    for scenario in scenarios:
        for floor in (s for s in servers if s.library == "floor" and s.serves(scenario)):
            for metric in scenario.metrics:
                vals = values(measurements, metric)
                best = _median(vals.get((scenario.key, floor.key)))
                cells = []
                for peer in servers:
                    theirs = _median(vals.get((scenario.key, peer.key)))
                    if peer.loop == floor.loop and peer.library != "floor" and best and theirs:
                        cells.append(f"{peer.label} {best / theirs:.2f}")
                if cells:
                    out.append(
                        f"- ({scenario.key}) {floor.label} ÷ peer, the best ratio any server on "
                        f"that loop could reach: " + ", ".join(cells)
                    )
    return ["", *out] if out else []


def _asgi_lines(
    measurements: list[Measurement], servers: list[Server], scenarios: list[Scenario]
) -> list[str]:
    """wsserver serving the ASGI app against uvicorn's best column, hypercorn and granian."""
    ours = [s for s in servers if s.is_wsserver and s.asgi and not s.env and not s.base]
    uvicorns = [s for s in servers if s.library == "uvicorn"]
    others = _compared([s for s in servers if s.library in ("hypercorn", "granian")], servers)
    # Each wsserver (ASGI) column (as a twin with asgi=False, the same key and label, so that
    # baseline_for() finds the Router column on its loop) and that Router column.
    routers = _compared([replace(o, asgi=False) for o in ours], servers)
    if not ours or not (uvicorns or others):
        return []
    heads = ["scenario", "metric", "better"]
    if uvicorns:
        heads += ["uvicorn's best", *(f"{o.label} ÷ uvicorn's best" for o in ours)]
    heads += [f"{b.label} ÷ {o.label}" for o, b in others]
    heads += [f"{o.label} ÷ {r.label} (Router)" for o, r in routers]
    lines = [
        "",
        "## wsserver (ASGI) ÷ uvicorn's best",
        "",
        "The same ASGI application (`benchmarks/servers/asgi_app.py`) on every server. "
        "*uvicorn's best* is, for each row, the best median of the uvicorn columns "
        "(websockets-sansio or wsproto, asyncio or uvloop), named in parentheses. Read the "
        "ratios as above: where higher is better, above 1 means wsserver wins; where lower is "
        "better, below 1. The last columns are what the ASGI layer costs against the same "
        "echo as a Router handler.",
        "",
        *_table_head(heads),
    ]
    behind: dict[str, list[str]] = defaultdict(list)
    rows: dict[str, int] = defaultdict(int)
    for scenario in scenarios:
        for metric in scenario.metrics:
            vals = values(measurements, metric)
            med = {s.key: _median(vals.get((scenario.key, s.key))) for s in servers}
            cells = []
            if uvicorns:
                best, which = _best([(med[u.key], u) for u in uvicorns], metric)
                name = which.label.removeprefix("uvicorn ") if which else ""
                cells.append(f"{_fmt(best, metric)} ({name})" if which else "-")
                for o in ours:
                    head = f"{o.label} ÷ uvicorn's best"
                    cells.append(_ratio(med[o.key], best, metric, head, scenario.key, behind, rows))
            for other, base in others:
                head = f"{base.label} ÷ {other.label}"
                cells.append(
                    _ratio(med[base.key], med[other.key], metric, head, scenario.key, behind, rows)
                )
            for o, r in routers:
                ours_v, router_v = med[o.key], med[r.key]
                cells.append(f"{ours_v / router_v:.2f}" if ours_v and router_v else "-")
            lines.append(_row([scenario.key, metric.label, _better(metric), *cells]))
    lines.append("")
    for head, count in rows.items():
        where = behind.get(head)
        lines.append(
            f"- {head}: ahead in {count - len(where or [])} of {count} rows"
            + (f"; behind in {', '.join(where)}" if where else "")
        )
    return lines


def _compared(peers: list[Server], servers: list[Server]) -> list[tuple[Server, Server]]:
    """(peer, the wsserver column it is compared with) for each peer that has one."""
    pairs = []
    for peer in peers:
        base = baseline_for(peer, servers)
        if base is not None:
            pairs.append((peer, base))
    return pairs


def _best(
    found: list[tuple[float | None, Server]], metric: Metric
) -> tuple[float | None, Server | None]:
    """The best value among ``found`` and its server (None, None if there is none)."""
    present = [(v, s) for v, s in found if v is not None]
    if not present:
        return None, None
    pick = max if metric.higher_is_better else min
    return pick(present, key=lambda vs: vs[0])


def _ratio(
    ours: float | None,
    theirs: float | None,
    metric: Metric,
    head: str,
    scenario: str,
    behind: dict[str, list[str]],
    rows: dict[str, int],
) -> str:
    """ours ÷ theirs as a cell; counts the row, and notes it where wsserver is behind."""
    if ours is None or not theirs:
        return "-"
    ratio = ours / theirs
    rows[head] += 1
    if (ratio < 1) if metric.higher_is_better else (ratio > 1):
        behind[head].append(f"({scenario}) {metric.label} {ratio:.2f}")
    return f"{ratio:.2f}"


def _spread_table(
    measurements: list[Measurement], servers: list[Server], scenarios: list[Scenario]
) -> list[str]:
    lines = _table_head(["scenario", "metric", *(s.label for s in servers)])
    for scenario in scenarios:
        for metric in scenario.metrics:
            vals = values(measurements, metric)
            cells = []
            for server in servers:
                v = vals.get((scenario.key, server.key), [])
                med = _median(v)
                cells.append(f"{(max(v) - min(v)) / med:.0%}" if len(v) > 1 and med else "-")
            lines.append(_row([scenario.key, metric.label, *cells]))
    return lines


def _cpu_table(
    measurements: list[Measurement], servers: list[Server], scenarios: list[Scenario]
) -> list[str]:
    server_cpu = values(measurements, Metric("server_cpu", "", "", False))
    client_cpu = values(measurements, Metric("client_cpu", "", "", False))
    client_user = values(measurements, Metric("client_user_cpu", "", "", False))
    lines = _table_head(["scenario", *(s.label for s in servers)])
    for scenario in scenarios:
        cells = []
        for server in servers:
            cell = (scenario.key, server.key)
            srv, cli = _median(server_cpu.get(cell)), _median(client_cpu.get(cell))
            user = _median(client_user.get(cell))
            if srv is None or cli is None or user is None:
                cells.append("-")
            else:
                cells.append(f"{srv:.0%} / {cli:.0%} ({user:.0%})")
        if any(c != "-" for c in cells):
            lines.append(_row([scenario.key, *cells]))
    return lines


NOTES = [
    "- Every echoed message is compared byte for byte with what was sent; a single "
    "difference fails the measurement (see Failures).",
    "- (g): RSS is read from /proc/PID/status of the server before connecting (after one "
    "warm-up connection) and once it has settled with the idle connections open; the "
    "difference is divided by the number of connections. Node's figure includes V8 heap "
    "growth that a later garbage collection may return.",
    "- (g-on) and (h): the generator offers a bare `permessage-deflate` (no "
    "`client_max_window_bits`, since Go's compress/flate always uses a 32 KiB window), so "
    "every server inflates with a 32 KiB window; each server compresses with its own "
    "defaults (node ws with `threshold: 32`, as wsserver's `compression_min_size`). The "
    "generator's own messages are compressed ahead of time (level 6) and refer to no earlier "
    "message. "
    "picows' own API has no permessage-deflate: its (g-on) and (h) runs use "
    "`picows.websockets`, picows' websockets-compatible layer.",
    "- (i): a client on `/bcast` sends `broadcast:64:<k>;`; the server sends a 64-byte text "
    "to all 1000 clients (wsserver: `wsserver.broadcast`, websockets: "
    "`websockets.asyncio.server.broadcast`, aiohttp: `send_str` in a loop, picows: "
    "`transport.send` in a loop, node: `ws.send` in a loop). The time runs from just before "
    "the trigger is written to the last client's receipt.",
    "- The floor columns ((b), (f), (i)) are no library: a bare asyncio protocol with a minimal "
    "parse of the upgrade and of the client's frames, writing straight to the socket while the "
    "transport holds nothing, as wsserver does. In (i) it writes one pre-built frame to each "
    "client; in (b) it echoes from the read callback, or, in the *task per connection* columns, "
    "from a coroutine per connection woken by a future per message, the least a server whose "
    "handlers are coroutines does. No server on that loop can go below it "
    "(servers/floor_server.py).",
    "- node ws runs on one core like the others, its libuv thread pool (zlib) included.",
    "- (a) crosses cores on every round trip: where every server shows about the same p50, "
    "that is the machine's cost of waking the other, idle core (large on virtual machines), "
    "not the servers'.",
    "- The CPU of (i) covers the broadcasts only; the server's share is counted in 10 ms "
    "ticks, so it is indicative.",
]


ASGI_NOTES = [
    "- ASGI columns: every one serves `benchmarks/servers/asgi_app.py`, a plain ASGI 3 "
    "application (no framework): an echo that sends each `websocket.receive` back in a new "
    "`websocket.send`, and on `/bcast` an `await send(...)` per subscriber in turn (ASGI has "
    "no broadcast primitive). wsserver (ASGI) runs it with the same limits as the wsserver "
    "column and `--compression none` or `deflate` per scenario (ASGI apps get compression "
    "on by default); uvicorn with `--http h11 --ws-ping-interval 0 --ws-max-size 67108864 "
    "--ws-per-message-deflate true|false`; hypercorn (asyncio worker, `--workers 0`: in the "
    "process started) always accepts permessage-deflate when offered, which the generator "
    "does only in (g-on) and (h).",
    "- granian has no permessage-deflate, and the generator fails a run whose offer is not "
    "accepted: it takes no part in (g-on) and (h). Its supervisor process forks one worker; "
    "the worker (the process holding the listening socket) is the one whose RSS and CPU are "
    "read, its Rust runtime thread included.",
]


def _median(v: list[float] | None) -> float | None:
    return statistics.median(v) if v else None


def _fmt(value: float | None, metric: Metric) -> str:
    return "-" if value is None else f"{value:,.{metric.digits}f}"


def _better(metric: Metric) -> str:
    return "higher" if metric.higher_is_better else "lower"


def _table_head(heads: list[str]) -> list[str]:
    return [_row(heads), _row(["---"] * len(heads))]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s"
