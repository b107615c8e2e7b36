"""Where a wsserver process spends its time in one scenario: ``python -m benchmarks.profile b``.

Starts the server of a column (``--server wsserver``, the default) pinned to CPU 0
as the harness does, drives it with the load generator's scenario on CPU 1
for ``--seconds`` (6 by default), and samples it meanwhile with py-spy
(``--native``: C frames too, so system calls, zlib and the C accelerator show
up as themselves). It prints the server's time in categories, as shares of its
CPU time: the table of benchmarks/README.md's "Where the time goes". The
sampler pauses the server to read its stacks, which slows it down (the CPU
time per message it prints includes those pauses): read the shares.

py-spy (pinned below) is installed into ``benchmarks/.cache/py-spy`` on first
use; the load generator must have been built (any ``make bench`` run does).
``--raw FILE`` keeps py-spy's samples (one stack per line, folded).
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import procs
from benchmarks.matrix import SCENARIOS, SERVERS
from benchmarks.prepare import CACHE, LOADGEN_BIN, ROOT

PY_SPY = "py-spy==0.4.3"
PY_SPY_BIN = CACHE / "py-spy" / "bin" / "py-spy"

#: The categories, in the order the table gives them.
CATEGORIES = (
    "system calls: read",
    "system calls: write",
    "system calls: accept, close, other",
    "event loop (asyncio's Python, epoll_wait)",
    "asyncio transport (Python)",
    "h11 (HTTP/1.1 parsing)",
    "our frame layer (wsserver/protocol, Python)",
    "our frame layer (C accelerator)",
    "deflate (zlib / zlib-ng)",
    "our dispatch (wsserver/server, app)",
    "the handler's coroutine (WebSocket API and handler)",
    "other (interpreter, allocator)",
)
_READ = ("recv", "read", "__recv", "__libc_recv", "recvfrom")
_WRITE = ("send", "write", "writev", "__send", "__libc_send", "sendmsg", "__writev")
_OTHER_CALLS = ("accept4", "close", "__close", "__libc_close", "shutdown", "setsockopt")


def category(frames: list[str]) -> str:
    """The category of one sampled stack (outermost frame first)."""
    leaf = frames[-1].split(" (")[0]
    if leaf in _READ:
        return CATEGORIES[0]
    if leaf in _WRITE:
        return CATEGORIES[1]
    if leaf in _OTHER_CALLS:
        return CATEGORIES[2]
    if leaf.startswith("epoll_wait"):
        return CATEGORIES[3]
    for frame in reversed(frames):
        where = frame.rpartition(" (")[2]
        if "_speedups.c" in where:
            return CATEGORIES[7]
        if "zlib" in where or "deflate" in frame.split(" (")[0] or "inflate" in frame:
            return CATEGORIES[8]
        if ".py:" not in where:
            continue  # a C frame of the interpreter: the Python frame above says whose
        if "h11/" in where:
            return CATEGORIES[5]
        if "wsserver/protocol/" in where:
            return CATEGORIES[6]
        if "wsserver/server/websocket.py" in where or "benchmarks/servers/" in where:
            return CATEGORIES[10]
        if "wsserver/" in where:
            return CATEGORIES[9]
        if "selector_events" in where or "socket.py" in where or "trsock" in where:
            return CATEGORIES[4]
        if "asyncio/" in where or "selectors.py" in where:
            return CATEGORIES[3]
    return CATEGORIES[11]


def breakdown(raw: str) -> dict[str, int]:
    """Samples per category, from py-spy's raw (folded) output."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, n = line.rstrip().rpartition(" ")
        if stack:
            counts[category(stack.split(";"))] += int(n)
    return dict(counts)


def ensure_py_spy() -> Path:
    if not PY_SPY_BIN.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PY_SPY_BIN.parent.parent)], check=True)
        pip = PY_SPY_BIN.parent / "pip"
        subprocess.run([str(pip), "install", "--quiet", PY_SPY], check=True)
    return PY_SPY_BIN


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    p.add_argument("scenario", choices=[s.key for s in SCENARIOS if s.mode != "idle"])
    p.add_argument("--server", default="wsserver", help="a wsserver column (default wsserver)")
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--raw", type=Path, help="keep py-spy's folded samples in this file")
    args = p.parse_args(argv)
    scenario = next(s for s in SCENARIOS if s.key == args.scenario)
    server = next(s for s in SERVERS if s.key == args.server)
    if server.library != "wsserver" or server.workers or server.tls or server.redis:
        p.error("profile one wsserver process: wsserver, wsserver-uvloop, wsserver-py, asgi-...")
    if not LOADGEN_BIN.exists():
        p.error(f"no load generator at {LOADGEN_BIN}: run make bench once")
    py_spy = ensure_py_spy()
    port = procs.free_port()
    proc = procs.start(
        server.command(port, scenario.compression),
        cpu=procs.SERVER_CPU,
        cwd=server.cwd or ROOT,
        env=server.environ(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        procs.wait_listening(proc, port)
        if server.asgi:
            procs.wait_answering(proc, port)
        pid = proc.pid  # prlimit and taskset exec the server: this is its own pid
        measured = f"{args.seconds:g}s"
        run_args = [a for a in scenario.loadgen_args(False) if not a.startswith("-duration")]
        loadgen = [
            str(LOADGEN_BIN), scenario.mode, f"-addr=127.0.0.1:{port}", f"-pid={pid}",
            *run_args, f"-duration={measured}",
        ]  # fmt: skip
        with tempfile.NamedTemporaryFile(suffix=".txt") as raw_file:
            spy = subprocess.Popen(
                [str(py_spy), "record", "--native", "-r", "250", "-f", "raw",
                 "-p", str(pid), "-d", str(int(args.seconds)), "-o", raw_file.name],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            status, out, err = procs.run_loadgen(
                procs.pinned(loadgen, procs.LOADGEN_CPU), cwd=ROOT, timeout=scenario.timeout
            )
            _, spy_err = spy.communicate(timeout=args.seconds + 30)
            raw = Path(raw_file.name).read_text()
        if not raw:
            print(f"py-spy recorded nothing: {spy_err.decode().strip()}", file=sys.stderr)
            return 1
        if status != 0:
            print(f"the load generator failed: {err.strip()}", file=sys.stderr)
            return 1
    finally:
        procs.stop(proc)
    if args.raw:
        args.raw.write_text(raw)
    result = json.loads(out)
    counts = breakdown(raw)
    total = sum(counts.values()) or 1
    rate_key = next(k for k in ("msgs_per_s", "handshakes_s", "median_ms") if k in result)
    rate = float(result[rate_key])
    cpu = float(result.get("server_cpu", 1.0))
    unit = "handshake" if rate_key == "handshakes_s" else "message"
    per = cpu / rate * 1e6 if rate_key != "median_ms" else None
    print(f"({scenario.key}) {server.label}: {rate:,.0f} {rate_key} while sampled, server CPU "
          f"{cpu:.0%}" + (f", {per:.1f} µs of CPU per {unit} (the sampler's pauses "
          "included)" if per else ""))  # fmt: skip
    print()
    print("| where | share of the server's CPU |")
    print("| --- | --- |")
    for name in CATEGORIES:
        share = counts.get(name, 0) / total
        if share >= 0.005:
            print(f"| {name} | {share:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
