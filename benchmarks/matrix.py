"""What is measured: the servers (the table's columns) and the scenarios (its rows)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.prepare import PEERS_PYTHON, PROJECT_PYTHON, ROOT, Certs
from benchmarks.procs import LOADGEN_CPU, SERVER_CPU

if TYPE_CHECKING:
    from benchmarks.baseline import Baseline

MAX_SIZE = 64 * 1024 * 1024
#: The ASGI application every ASGI column serves (benchmarks/servers/asgi_app.py).
ASGI_APP = "benchmarks.servers.asgi_app:app"
#: wsserver's fan-out routes (benchmarks/servers/fanout_app.py).
FANOUT_APP = "benchmarks.servers.fanout_app:routes"
#: The fan-out row's topic (and Socket.IO room).
TOPIC = "bench"
#: Engine.IO 4 over the WebSocket transport only (python-socketio's path).
SOCKETIO_PATH = "/socket.io/?EIO=4&transport=websocket"
#: Both CPUs: a supervisor's workers (and the fan-out row's redis-server) may run on either.
BOTH_CPUS = (SERVER_CPU, LOADGEN_CPU)

#: The columns that have a report section of their own rather than a column of
#: the main tables: the scaling row (--workers), the TLS cost row, the fan-out row.
GROUPS = ("workers", "tls", "fanout")


@dataclass(frozen=True)
class Server:
    """One column: a library on one event loop."""

    key: str  # for --servers
    label: str  # column heading
    library: str  # wsserver, websockets, aiohttp, picows, node, floor, uvicorn, hypercorn, granian
    loop: str  # asyncio, uvloop, or node (libuv)
    env: dict[str, str] = field(default_factory=dict)
    only: tuple[str, ...] = ()  # the scenarios it serves; () for all
    base: bool = False  # wsserver at the --baseline revision instead of the working tree's
    cwd: Path = ROOT  # the server's; for wsserver, where `import wsserver` looks first
    asgi: bool = False  # serves benchmarks/servers/asgi_app.py, an ASGI application
    ws: str = ""  # uvicorn's --ws implementation
    #: The process started only supervises: the one measured is its child that
    #: holds the listening socket (granian's worker).
    worker: bool = False
    #: The section of the report it belongs to ("" for the main tables; GROUPS).
    group: str = ""
    #: ``--workers N`` (0: not given). With N > 1 the process started supervises
    #: N workers that share its listening socket; all of them are measured.
    workers: int = 0
    #: The CPUs the server's processes may run on (its workers inherit them).
    cpus: tuple[int, ...] = (SERVER_CPU,)
    tls: bool = False  # serves wss:// with the test certificate
    redis: bool = False  # needs a private redis-server, its broker
    app: str = ""  # wsserver's application, when not the echo (wsserver_app)
    args: tuple[str, ...] = ()  # more arguments for a server of benchmarks/servers

    def serves(self, scenario: Scenario) -> bool:
        """Whether this server takes part in ``scenario``."""
        if (scenario.key == "fanout") != (self.group == "fanout"):
            return False  # fan-out servers serve the fan-out row only, and only they do
        return not self.only or scenario.key in self.only

    @property
    def processes(self) -> int:
        """How many processes accept connections (its workers, or itself)."""
        return max(self.workers, 1)

    def command(
        self,
        port: int,
        compression: bool,
        certs: Certs | None = None,
        redis_url: str | None = None,
    ) -> list[str]:
        """The command line of this server listening on 127.0.0.1:port."""
        deflate = "deflate" if compression else "none"
        if self.tls and certs is None:
            raise ValueError(f"{self.key} serves wss:// and needs the test certificate")
        if self.redis and redis_url is None:
            raise ValueError(f"{self.key} needs a redis-server")
        if self.library == "wsserver":
            # An ASGI application gets compression on by default: --compression
            # is always given, "none" included.
            app = self.app or (ASGI_APP if self.asgi else "benchmarks.servers.wsserver_app:routes")
            cmd = [
                str(PROJECT_PYTHON), "-m", "wsserver", app,
                "--port", str(port), "--compression", deflate, "--max-size", str(MAX_SIZE),
                "--ping-interval", "none", "--log-level", "warning",
            ]  # fmt: skip
            if self.workers:
                cmd += ["--workers", str(self.workers)]
            if self.tls and certs is not None:
                cmd += ["--ssl-certfile", str(certs.cert), "--ssl-keyfile", str(certs.key)]
            if self.redis:
                cmd += ["--broker", str(redis_url)]
            return [*cmd, "--loop", "uvloop"] if self.loop == "uvloop" else cmd
        if self.library == "socketio":
            cmd = [
                str(PEERS_PYTHON), "-m", "benchmarks.servers.socketio_server",
                "--port", str(port), "--workers", str(self.processes),
            ]  # fmt: skip
            return [*cmd, "--redis", str(redis_url)] if self.redis else cmd
        if self.library == "uvicorn":
            return [
                str(PEERS_PYTHON), "-m", "uvicorn", ASGI_APP, "--host", "127.0.0.1",
                "--port", str(port), "--loop", self.loop, "--http", "h11", "--ws", self.ws,
                "--ws-max-size", str(MAX_SIZE), "--ws-ping-interval", "0",
                "--ws-per-message-deflate", "true" if compression else "false",
                "--backlog", "1024", "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
        if self.library == "hypercorn":
            # No flag for the message size limit (16 MiB by default): the
            # config object sets it. permessage-deflate is always accepted when
            # offered; the generator offers it only in (g-on) and (h).
            return [
                str(PEERS_PYTHON), "-m", "hypercorn", ASGI_APP,
                "--config", "python:benchmarks.servers.hypercorn_config.Settings",
                "--bind", f"127.0.0.1:{port}", "--worker-class", "asyncio", "--workers", "0",
                "--backlog", "1024", "--log-level", "warning",
            ]  # fmt: skip
        if self.library == "granian":
            # One worker process (granian always forks one from a supervisor)
            # with one Rust runtime thread; no permessage-deflate, no message
            # size limit to set.
            return [
                str(PEERS_PYTHON), "-m", "granian", ASGI_APP, "--interface", "asgi",
                "--host", "127.0.0.1", "--port", str(port), "--http", "1", "--workers", "1",
                "--runtime-threads", "1", "--loop", self.loop, "--backlog", "1024",
                "--log-level", "warning", "--no-access-log",
            ]  # fmt: skip
        if self.library == "node":
            node = ["node", "benchmarks/node/server.js"]
            return [*node, "--port", str(port), "--compression", deflate]
        cmd = [
            str(PEERS_PYTHON), "-m", f"benchmarks.servers.{self.library}_server",
            "--port", str(port), "--compression", deflate, "--loop", self.loop, *self.args,
        ]  # fmt: skip
        if self.tls and certs is not None:
            cmd += ["--certfile", str(certs.cert), "--keyfile", str(certs.key)]
        return cmd

    def loadgen_args(self, certs: Certs | None) -> list[str]:
        """What the generator needs to know of this server: TLS, the fan-out paths."""
        args = [f"-tls-ca={certs.ca}"] if self.tls and certs is not None else []
        if self.group == "fanout":
            if self.library == "socketio":
                args += [f"-path={SOCKETIO_PATH}", f"-pub-path={SOCKETIO_PATH}"]
                args += ["-protocol=socketio"]
            else:
                args += [f"-path=/sub/{TOPIC}", f"-pub-path=/pub/{TOPIC}", "-protocol=ws"]
        return args

    def environ(self) -> dict[str, str]:
        """The server's environment: ours, cleaned, plus the variant's own."""
        return {**clean_environ(), **self.env}

    @property
    def is_wsserver(self) -> bool:
        return self.library == "wsserver"


def clean_environ() -> dict[str, str]:
    """os.environ without wsserver's settings, which would change what is measured."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("WSSERVER_", "WEBSOCKET_"))}


NO_SPEEDUPS = {"WSSERVER_NO_SPEEDUPS": "1"}

SERVERS = [
    Server("wsserver", "wsserver", "wsserver", "asyncio"),
    Server("wsserver-uvloop", "wsserver (uvloop)", "wsserver", "uvloop"),
    Server("wsserver-py", "wsserver (pure Python)", "wsserver", "asyncio", NO_SPEEDUPS),
    Server("websockets", "websockets", "websockets", "asyncio"),
    Server("websockets-uvloop", "websockets (uvloop)", "websockets", "uvloop"),
    Server("aiohttp", "aiohttp", "aiohttp", "asyncio"),
    Server("aiohttp-uvloop", "aiohttp (uvloop)", "aiohttp", "uvloop"),
    Server("picows", "picows", "picows", "asyncio"),
    Server("picows-uvloop", "picows (uvloop)", "picows", "uvloop"),
    Server("node", "node ws", "node", "node"),
    # Not a library: the least an asyncio server can do (servers/floor_server.py),
    # answering from its read callbacks, or from a task per connection.
    Server("floor", "floor", "floor", "asyncio", only=("b", "f", "i")),
    Server("floor-uvloop", "floor (uvloop)", "floor", "uvloop", only=("b", "f", "i")),
    Server("floor-tasks", "floor, a task per connection", "floor", "asyncio", only=("b", "f"),
           args=("--tasks",)),
    Server("floor-tasks-uvloop", "floor, a task per connection (uvloop)", "floor", "uvloop",
           only=("b", "f"), args=("--tasks",)),
    # wsserver's columns again at another revision (--baseline, benchmarks/baseline.py).
    Server("wsserver-base", "wsserver @ baseline", "wsserver", "asyncio", base=True),
    Server("wsserver-base-uvloop", "wsserver @ baseline (uvloop)", "wsserver", "uvloop", base=True),
    # The same ASGI application (servers/asgi_app.py) on wsserver and on the ASGI servers.
    Server("asgi-wsserver", "wsserver (ASGI)", "wsserver", "asyncio", asgi=True),
    Server("asgi-wsserver-uvloop", "wsserver (ASGI, uvloop)", "wsserver", "uvloop", asgi=True),
    Server("asgi-wsserver-base", "wsserver (ASGI) @ baseline", "wsserver", "asyncio", asgi=True,
           base=True),
    Server("asgi-wsserver-base-uvloop", "wsserver (ASGI) @ baseline (uvloop)", "wsserver",
           "uvloop", asgi=True, base=True),
    Server("uvicorn-sansio", "uvicorn websockets-sansio", "uvicorn", "asyncio", asgi=True,
           ws="websockets-sansio"),
    Server("uvicorn-sansio-uvloop", "uvicorn websockets-sansio (uvloop)", "uvicorn", "uvloop",
           asgi=True, ws="websockets-sansio"),
    Server("uvicorn-wsproto", "uvicorn wsproto", "uvicorn", "asyncio", asgi=True, ws="wsproto"),
    Server("uvicorn-wsproto-uvloop", "uvicorn wsproto (uvloop)", "uvicorn", "uvloop", asgi=True,
           ws="wsproto"),
    Server("hypercorn", "hypercorn", "hypercorn", "asyncio", asgi=True),
    # Rust (hyper, tokio) with the application on a uvloop loop, which granian
    # picks by itself when uvloop is installed. It has no permessage-deflate,
    # which the generator requires in (g-on) and (h).
    Server("granian", "granian (uvloop)", "granian", "uvloop", asgi=True, worker=True,
           only=("a", "b", "c", "d", "e", "f", "g-off", "i")),
    # The scaling row (issue 16): wsserver's supervisor mode, (b) and (f).
    Server("wsserver-w1", "wsserver --workers 1", "wsserver", "asyncio", group="workers",
           workers=1, only=("b", "f")),
    Server("wsserver-w2-1cpu", "wsserver --workers 2, one CPU", "wsserver", "asyncio",
           group="workers", workers=2, only=("b", "f")),
    Server("wsserver-w2", "wsserver --workers 2", "wsserver", "asyncio", group="workers",
           workers=2, cpus=BOTH_CPUS, only=("b", "f")),
    # The TLS cost row (issue 16): (b) and (d) over wss://, beside the same
    # libraries' ws:// columns above.
    Server("wsserver-tls", "wsserver (wss)", "wsserver", "asyncio", group="tls", tls=True,
           only=("b", "d")),
    Server("websockets-tls", "websockets (wss)", "websockets", "asyncio", group="tls",
           tls=True, only=("b", "d")),
    Server("aiohttp-tls", "aiohttp (wss)", "aiohttp", "asyncio", group="tls", tls=True,
           only=("b", "d")),
    # The fan-out row (issue 17): wsserver's topics, through Redis across two
    # workers and in one process, and python-socketio the same two ways.
    Server("fanout-wsserver-redis", "wsserver, 2 workers, Redis", "wsserver", "asyncio",
           group="fanout", workers=2, cpus=BOTH_CPUS, redis=True, app=FANOUT_APP),
    Server("fanout-wsserver", "wsserver, 1 process", "wsserver", "asyncio", group="fanout",
           app=FANOUT_APP),
    Server("fanout-socketio-redis", "python-socketio, 2 workers, Redis", "socketio", "asyncio",
           group="fanout", workers=2, cpus=BOTH_CPUS, redis=True),
    Server("fanout-socketio", "python-socketio, 1 process", "socketio", "asyncio",
           group="fanout"),
]  # fmt: skip

#: Names for --servers that stand for several columns: a row's own columns, and
#: for the TLS row the ws:// columns it is compared with.
ALIASES = {
    "workers": [s.key for s in SERVERS if s.group == "workers"],
    "tls": ["wsserver", "websockets", "aiohttp", *(s.key for s in SERVERS if s.group == "tls")],
    "fanout": [s.key for s in SERVERS if s.group == "fanout"],
}


def baseline_for(peer: Server, servers: list[Server]) -> Server | None:
    """The wsserver column a peer is compared with: same event loop (asyncio for
    node, the default build for the pure-Python column), same section of the
    report, same transport (ws:// or wss://), same number of processes and broker."""
    loop = "uvloop" if peer.loop == "uvloop" else "asyncio"
    for s in servers:
        if (
            s.is_wsserver
            and s.loop == loop
            and not s.env
            and not s.base
            and s.asgi == peer.asgi
            and (s.group, s.tls, s.workers, s.redis)
            == (peer.group, peer.tls, peer.workers, peer.redis)
        ):
            return s
    return None


@dataclass(frozen=True)
class Metric:
    """One row of the table: a field of the generator's JSON output."""

    key: str
    label: str
    unit: str
    higher_is_better: bool
    digits: int = 0


@dataclass(frozen=True)
class Scenario:
    key: str  # for --only
    title: str
    mode: str  # the load generator's scenario
    args: tuple[str, ...]
    quick_args: tuple[str, ...]  # replace args of the same flag with --quick
    metrics: tuple[Metric, ...]
    compression: bool = False
    timeout: float = 120.0

    def loadgen_args(self, quick: bool) -> list[str]:
        args = dict(zip(self.args[::2], self.args[1::2], strict=True))
        if quick:
            args.update(zip(self.quick_args[::2], self.quick_args[1::2], strict=True))
        if self.compression:
            args["-deflate"] = "true"
        return [f"{k}={v}" for k, v in args.items()]


def _throughput(conns: int, inflight: int, kind: str, size: int) -> tuple[str, ...]:
    return (
        "-conns", str(conns), "-inflight", str(inflight), "-kind", kind, "-size", str(size),
        "-warmup", "500ms", "-duration", "2s",
    )  # fmt: skip


def _fanout(conns: int, size: int, count: int, inflight: int) -> tuple[str, ...]:
    return (
        "-conns", str(conns), "-size", str(size), "-warmup-count", "3", "-count", str(count),
        "-inflight", str(inflight), "-warmup", "500ms", "-duration", "2s",
    )  # fmt: skip


QUICK_THROUGHPUT = ("-warmup", "300ms", "-duration", "1s")
MSGS = Metric("msgs_per_s", "msgs/s", "msgs/s", True)
MBS = Metric("mb_per_s", "MB/s", "MB/s", True, 1)

SCENARIOS = [
    Scenario(
        "a",
        "(a) 32 B text, 1 connection, 1 in flight",
        "latency",
        ("-kind", "text", "-size", "32", "-warmup-count", "2000", "-count", "20000"),
        ("-warmup-count", "500", "-count", "5000"),
        (
            Metric("p50_us", "p50 latency, µs", "µs", False, 1),
            Metric("p99_us", "p99 latency, µs", "µs", False, 1),
        ),
    ),
    Scenario(
        "b",
        "(b) 32 B text, 100 connections, 1 in flight each",
        "throughput",
        _throughput(100, 1, "text", 32),
        QUICK_THROUGHPUT,
        (MSGS,),
    ),
    Scenario(
        "c",
        "(c) 32 B text, 10 connections, 50 in flight each",
        "throughput",
        _throughput(10, 50, "text", 32),
        QUICK_THROUGHPUT,
        (MSGS,),
    ),
    Scenario(
        "d",
        "(d) 1 MiB binary, 4 connections, 2 in flight each",
        "throughput",
        _throughput(4, 2, "binary", 1024 * 1024),
        QUICK_THROUGHPUT,
        (MBS,),
    ),
    Scenario(
        "e",
        "(e) 64 KiB binary, 10 connections, 4 in flight each",
        "throughput",
        _throughput(10, 4, "binary", 64 * 1024),
        QUICK_THROUGHPUT,
        (MBS,),
    ),
    Scenario(
        "f",
        "(f) handshakes: connect, upgrade, close handshake; 50 concurrent",
        "handshakes",
        ("-concurrency", "50", "-warmup", "500ms", "-duration", "2s"),
        QUICK_THROUGHPUT,
        (Metric("handshakes_s", "handshakes/s", "handshakes/s", True),),
    ),
    Scenario(
        "g-off",
        "(g) RSS per idle connection, 5000 connections, compression off",
        "idle",
        ("-conns", "5000", "-kind", "text", "-size", "32"),
        ("-conns", "2000"),
        (Metric("bytes_per_conn", "bytes/connection", "bytes/conn", False),),
    ),
    Scenario(
        "g-on",
        "(g) RSS per idle connection, 5000 connections, permessage-deflate",
        "idle",
        ("-conns", "5000", "-kind", "json", "-size", "256", "-message", "true"),
        ("-conns", "2000"),
        (
            Metric("bytes_per_conn", "bytes/connection after the handshake", "bytes/conn", False),
            Metric(
                "bytes_per_conn_after_message",
                "bytes/connection after one 256 B message echoed",
                "bytes/conn",
                False,
            ),
        ),
        compression=True,
    ),
    Scenario(
        "h",
        "(h) 16 KiB JSON text, permessage-deflate, 10 connections, 4 in flight each",
        "throughput",
        _throughput(10, 4, "json", 16 * 1024),
        QUICK_THROUGHPUT,
        (MSGS, Metric("wire_bytes_per_msg", "bytes of an echo on the wire", "B", False)),
        compression=True,
    ),
    Scenario(
        "i",
        "(i) broadcast of 64 B to 1000 clients",
        "broadcast",
        ("-path", "/bcast", "-conns", "1000", "-size", "64", "-warmup-count", "3", "-count", "20"),
        ("-count", "8"),
        (Metric("median_ms", "ms until all 1000 received (median)", "ms", False, 2),),
    ),
    Scenario(
        "fanout",
        "(fanout) 64 B published to a topic with 1000 subscribers",
        "fanout",
        _fanout(conns=1000, size=64, count=200, inflight=16),
        ("-count", "50", *QUICK_THROUGHPUT),
        (
            Metric("deliveries_per_s", "messages delivered/s", "msgs/s", True),
            Metric("p50_ms", "publish to last delivery, p50, ms", "ms", False, 2),
            Metric("p99_ms", "publish to last delivery, p99, ms", "ms", False, 2),
        ),
    ),
]


def _matches(key: str, wanted: str, prefix: bool) -> bool:
    return key == wanted or (prefix and key.startswith(wanted + "-"))


def select_servers(keys: str | None, baseline: Baseline | None = None) -> list[Server]:
    """The servers named in the comma-separated ``keys`` (all if None; ALIASES
    stand for their columns), the baseline columns pointed at ``baseline``'s
    code (left out of "all" without one)."""
    if keys:
        keys = ",".join(
            ",".join(ALIASES.get(k.strip(), [k.strip()])) for k in keys.split(",") if k.strip()
        )
    servers = _select(SERVERS, keys, "server", prefix=False)
    if baseline is None:
        if keys and any(s.base for s in servers):
            names = ", ".join(s.key for s in servers if s.base)
            raise SystemExit(f"{names}: wsserver at another revision needs --baseline REV")
        return [s for s in servers if not s.base]
    return [_at(s, baseline) if s.base else s for s in servers]


def _at(server: Server, baseline: Baseline) -> Server:
    """A baseline column running ``baseline``'s wsserver."""
    return replace(
        server,
        label=server.label.replace("baseline", baseline.short),
        env={**server.env, **baseline.environ()},
        cwd=baseline.import_dir,
    )


def select_scenarios(keys: str | None) -> list[Scenario]:
    """The scenarios named in ``keys``; ``g`` stands for ``g-off,g-on``."""
    return _select(SCENARIOS, keys, "scenario", prefix=True)


def _select(items: list[Any], keys: str | None, what: str, *, prefix: bool) -> list[Any]:
    if not keys:
        return list(items)
    wanted = [k.strip() for k in keys.split(",") if k.strip()]
    for k in wanted:
        if not any(_matches(item.key, k, prefix) for item in items):
            known = ", ".join(item.key for item in items)
            raise SystemExit(f"unknown {what} {k!r}; known: {known}")
    return [item for item in items if any(_matches(item.key, k, prefix) for k in wanted)]
