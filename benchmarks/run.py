"""The benchmark harness: ``make bench`` (or ``python -m benchmarks.run``).

Runs every scenario against every server, interleaved (scenario a: A B C ...,
scenario b: A B C ..., then the next round, its order rotated by one place: B C
... A), each measurement against a freshly
started server pinned to CPU 0 with the Go load generator pinned to CPU 1
(a server with --workers 2 may be let run on both CPUs; see benchmarks/README.md).
Writes the Markdown report to stdout and benchmarks/results/latest.md, and every
measurement to benchmarks/results/latest.json. Exits 1 if any measurement
failed, 2 if the setup failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks import baseline as base
from benchmarks import broadcast_cost, broker, chart, environment, procs, report
from benchmarks.matrix import Scenario, Server, select_scenarios, select_servers
from benchmarks.prepare import BENCH, LOADGEN_BIN, ROOT, Certs, SetupError, prepare_all

RESULTS = BENCH / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    p.add_argument("--quick", action="store_true", help="1 round, shorter measurements")
    p.add_argument("--rounds", type=int, help="rounds (default 3, 1 with --quick)")
    p.add_argument(
        "--only", metavar="SCENARIOS", help="comma-separated: a,b,c,d,e,f,g,g-off,g-on,h,i,fanout"
    )
    p.add_argument(
        "--servers",
        metavar="NAMES",
        help="comma-separated servers: wsserver, wsserver-uvloop, wsserver-py, websockets, "
        "websockets-uvloop, aiohttp, aiohttp-uvloop, picows, picows-uvloop, node, floor, "
        "floor-uvloop, floor-tasks, floor-tasks-uvloop, wsserver-base, wsserver-base-uvloop "
        "(these two need --baseline); "
        "serving the ASGI app: asgi-wsserver, asgi-wsserver-uvloop, asgi-wsserver-base, "
        "asgi-wsserver-base-uvloop (these two need --baseline), uvicorn-sansio, "
        "uvicorn-sansio-uvloop, uvicorn-wsproto, uvicorn-wsproto-uvloop, hypercorn, granian; "
        "the scaling row ((b) and (f)): wsserver-w1, wsserver-w2-1cpu, wsserver-w2 (all three: "
        "workers); the TLS row ((b) and (d)): wsserver-tls, websockets-tls, aiohttp-tls (tls: "
        "these and the ws:// columns wsserver, websockets, aiohttp); the fan-out row: "
        "fanout-wsserver-redis, fanout-wsserver, fanout-socketio-redis, fanout-socketio "
        "(all four: fanout)",
    )
    p.add_argument(
        "--baseline",
        metavar="REV",
        help="also run wsserver at git revision REV (a worktree in benchmarks/.cache) as the "
        "wsserver-base, wsserver-base-uvloop, asgi-wsserver-base and asgi-wsserver-base-uvloop "
        "columns, to compare "
        "before/after a change",
    )
    p.add_argument(
        "--python", default="python3", help="interpreter for the peers' venv (default python3)"
    )
    p.add_argument(
        "--render",
        metavar="JSON",
        type=Path,
        nargs="+",
        help="measure nothing: print the report of a raw results file again "
        "(e.g. benchmarks/results/latest.json); of several, as one run with all their rounds "
        "(the first file's servers and scenarios)",
    )
    return p.parse_args(argv)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        return render_only(args.render)
    baseline = base.resolve(args.baseline) if args.baseline else None
    servers = select_servers(args.servers, baseline)
    if baseline is not None and not any(s.base for s in servers):
        log(
            "--baseline needs a -base column (wsserver-base, wsserver-base-uvloop, "
            "asgi-wsserver-base, asgi-wsserver-base-uvloop) among --servers"
        )
        return 2
    scenarios = select_scenarios(args.only)
    rounds = args.rounds or (1 if args.quick else 3)
    if len(os.sched_getaffinity(0)) < 2:
        log("the benchmark needs two CPUs: one for the servers, one for the load generator")
        return 2
    # Ctrl-C raises KeyboardInterrupt even where SIGINT was inherited ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        return _run(args, servers, scenarios, rounds, baseline)
    except SetupError as exc:
        log(f"setup failed: {exc}")
        return 2
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        procs.stop_all()


def _run(
    args: argparse.Namespace,
    servers: list[Server],
    scenarios: list[Scenario],
    rounds: int,
    baseline: base.Baseline | None,
) -> int:
    active = [s for s in servers if any(s.serves(sc) for sc in scenarios)]
    certs, redis = prepare_all(
        args.python,
        log,
        need_node=any(s.library == "node" for s in active),
        need_tls=any(s.tls for s in active),
        need_redis=any(s.redis for s in active),
    )
    setup = Setup(certs, redis, args.quick)
    meta: dict[str, Any] = environment.collect(redis)
    if baseline is not None:
        meta["baseline"] = base.prepare(baseline, log)
        found = meta["baseline"]
        log(f"wsserver @ {baseline.short} imports {found['wsserver_realpath']} "
            f"(as {found['wsserver_file']}), the app from {found['app_file']}")  # fmt: skip
    meta.update(
        rounds=rounds,
        quick=args.quick,
        server_cpu=procs.SERVER_CPU,
        loadgen_cpu=procs.LOADGEN_CPU,
        nofile=procs.NOFILE,
        servers=[s.key for s in servers],
        scenarios=[s.key for s in scenarios],
    )
    logs = RESULTS / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    total = rounds * sum(server.serves(scenario) for scenario in scenarios for server in servers)
    log(f"{total} measurements: {rounds} round(s) of {len(scenarios)} scenarios "
        f"on up to {len(servers)} servers")  # fmt: skip

    started = time.monotonic()
    measurements: list[dict[str, Any]] = []
    for round_no in range(1, rounds + 1):
        for scenario in scenarios:
            for server in rotated(servers, round_no - 1):
                if not server.serves(scenario):
                    continue
                m = measure(server, scenario, round_no, setup, logs)
                measurements.append(m)
                log(f"[{len(measurements)}/{total}] round {round_no} {scenario.key:5} "
                    f"{server.label:24} {_summary(m, scenario)}")  # fmt: skip
    if any(s.key == "i" for s in scenarios):
        # What broadcast() itself costs, in memory, beside (i)'s end-to-end times.
        log("broadcast() cost in memory: wsserver, websockets, bare write")
        try:
            meta["broadcast_cost"] = broadcast_cost.measure(rounds)
        except (RuntimeError, ValueError, subprocess.SubprocessError) as exc:
            meta["broadcast_cost_error"] = str(exc)
            log(f"broadcast() cost failed: {exc}")
    meta["duration_s"] = time.monotonic() - started

    markdown = report.render(meta, measurements, servers, scenarios)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    raw = json.dumps({"meta": meta, "measurements": measurements}, indent=1)
    charts = chart.render_all(meta, measurements, servers, scenarios)
    for name in ("latest", stamp):
        (RESULTS / f"{name}.md").write_text(markdown)
        (RESULTS / f"{name}.json").write_text(raw)
        for key, svg in charts.items():
            (RESULTS / f"{name}{key.removeprefix('chart')}.svg").write_text(svg)
    print(markdown)
    log(f"written: {RESULTS / 'latest.md'}, {RESULTS / 'latest.json'} and "
        f"{len(charts)} chart(s) {RESULTS / 'latest*.svg'}")  # fmt: skip
    if _full_run(args):
        for key, svg in charts.items():
            (BENCH / f"{key}.svg").write_text(svg)
            log(f"a full run: the README's chart {BENCH / f'{key}.svg'} is regenerated")
    failed = any(m.get("error") for m in measurements) or "broadcast_cost_error" in meta
    return 1 if failed else 0


def _full_run(args: argparse.Namespace) -> bool:
    """Whether this run measured everything the README's chart shows, in full."""
    return not (args.quick or args.only or args.servers or args.baseline) and (
        args.rounds is None or args.rounds >= 3
    )


def render_only(paths: list[Path]) -> int:
    """Print the report of an earlier run from its raw JSON; of several runs, as one
    (their rounds numbered on, each run named in the header)."""
    runs = [json.loads(path.read_text()) for path in paths]
    meta, measurements = runs[0]["meta"], list(runs[0]["measurements"])
    if len(runs) > 1:
        meta = dict(meta)
        meta["merged"] = [
            {key: run["meta"].get(key) for key in ("date", "git", "rounds", "quick", "duration_s")}
            for run in runs
        ]
        offset = runs[0]["meta"]["rounds"]
        for run in runs[1:]:
            measurements += [{**m, "round": m["round"] + offset} for m in run["measurements"]]
            offset += run["meta"]["rounds"]
        meta["rounds"] = offset
        meta["duration_s"] = sum(run["meta"].get("duration_s", 0) for run in runs)
    baseline = base.Baseline.from_meta(meta["baseline"]) if "baseline" in meta else None
    servers = select_servers(",".join(meta["servers"]), baseline)
    scenarios = select_scenarios(",".join(meta["scenarios"]))
    print(report.render(meta, measurements, servers, scenarios))
    return 0


@dataclass(frozen=True)
class Setup:
    """What every measurement of a run shares."""

    certs: Certs | None  # the test certificate, for the wss:// columns
    redis: str | None  # the redis-server binary, for the columns with a Redis broker
    quick: bool


def rotated(servers: list[Server], places: int) -> list[Server]:
    """``servers`` in their order, starting ``places`` further on (wrapping round).

    Each round starts one place further, so that no column is always the
    first (or the last) of its scenario.
    """
    if not servers:
        return servers
    places %= len(servers)
    return servers[places:] + servers[:places]


def measure(
    server: Server, scenario: Scenario, round_no: int, setup: Setup, logs: Path
) -> dict[str, Any]:
    """One run of one scenario against a fresh server; never raises for the server's faults."""
    record: dict[str, Any] = {
        "round": round_no,
        "scenario": scenario.key,
        "server": server.key,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with contextlib.ExitStack() as stack:
        server_log = stack.enter_context(open(logs / f"{server.key}.log", "ab"))
        try:
            redis_url, aux = None, []
            if server.redis:
                # A private redis-server for this measurement alone, on the server's CPUs.
                assert setup.redis is not None
                redis_proc, redis_url = broker.start(setup.redis, server.cpus, server_log)
                stack.callback(procs.stop, redis_proc)
                aux = [redis_proc.pid]
                record["redis"] = {"pid": redis_proc.pid, "url": redis_url}
            port = procs.free_port()
            command = server.command(port, scenario.compression, setup.certs, redis_url)
            server_log.write(
                f"\n=== round {round_no} scenario {scenario.key}: {command}\n".encode()
            )
            server_log.flush()
            proc = procs.start(
                command,
                cpu=server.cpus,
                cwd=server.cwd,
                env=server.environ(),
                stdout=server_log,
                stderr=subprocess.STDOUT,
            )
            # Last in, first out: the server and its workers stop before its Redis.
            workers: list[procs.Identity] = []
            stack.callback(_stop_server, proc, workers)
            pids = _serving(server, proc, port)
            workers += procs.identify(pids[1:])
            record["process"] = _check_pinned(pids, server)
            if server.worker:
                record["process"]["supervisor"] = proc.pid
            loadgen = [
                str(LOADGEN_BIN),
                scenario.mode,
                f"-addr=127.0.0.1:{port}",
                f"-pid={','.join(map(str, pids))}",
                *([f"-aux-pid={','.join(map(str, aux))}"] if aux else []),
                *scenario.loadgen_args(setup.quick),
                *server.loadgen_args(setup.certs),
            ]
            record["loadgen"] = loadgen
            status, out, err = procs.run_loadgen(loadgen, cwd=ROOT, timeout=scenario.timeout)
            if status != 0:
                raise procs.ProcessError(err.strip() or f"the load generator exited with {status}")
            if proc.poll() is not None:
                raise procs.ProcessError(f"the server exited with {proc.returncode} during the run")
            record["result"] = json.loads(out)
        except (procs.ProcessError, OSError, ValueError) as exc:
            record["error"] = str(exc)
    return record


def _stop_server(proc: subprocess.Popen[bytes], workers: list[procs.Identity]) -> None:
    """Stop a server, then make sure its workers are gone too.

    wsserver's supervisor stops its workers on SIGTERM, but they are not in its
    process group: if it had to be killed, they still stop (they get SIGTERM
    when their parent dies) and are waited for, and killed if they linger, so
    that none of them takes CPU from the next measurement.
    """
    procs.stop(proc)
    left = procs.reap(workers)
    if left:
        log(f"worker processes {left} did not exit, even after SIGKILL")


def _serving(server: Server, proc: subprocess.Popen[bytes], port: int) -> list[int]:
    """The processes measured, once they serve: the server's own; or its worker
    (granian); or a supervisor and then each of its workers (--workers N)."""
    procs.wait_listening(proc, port)
    if server.asgi:
        procs.wait_answering(proc, port)
    if server.worker:
        return [procs.serving_pid(proc.pid, port)]
    if server.processes > 1:
        # The supervisor listens before its workers have imported the
        # application: wait until every one of them accepts.
        workers = procs.wait_accepting(proc, port, server.processes)
        return [proc.pid, *(w for w in workers if w != proc.pid)]
    return [proc.pid]


def _check_pinned(pids: list[int], server: Server) -> dict[str, object]:
    """What runs as each measured process and on which CPUs; fails unless as expected."""
    infos = [procs.describe(pid) for pid in pids]
    for info in infos:
        if info["comm"] in ("prlimit", "taskset") or info["cpus"] != list(server.cpus):
            raise procs.ProcessError(f"the server is not running pinned as expected: {info}")
    if len(infos) == 1:
        return infos[0]
    return {**infos[0], "workers": infos[1:]}


def _summary(m: dict[str, Any], scenario: Scenario) -> str:
    if m.get("error"):
        return "FAILED: " + " ".join(m["error"].split())[:200]
    result = m["result"]
    return ", ".join(
        f"{result[metric.key]:,.{metric.digits}f} {metric.unit}"
        for metric in scenario.metrics
        if metric.key in result
    )


if __name__ == "__main__":
    sys.exit(main())
