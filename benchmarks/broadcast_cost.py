"""What ``broadcast()`` itself costs: Python time per connection, transports in memory.

Scenario (i) times a broadcast end to end over loopback, where every server
pays one ``send`` system call per client (the floor column). This measures
the part a library controls: N open connections whose transports only keep
what they are given, one 64-byte text message sent to all of them with the
library's broadcast function, the best of R calls divided by N.
``wsserver.broadcast`` runs in the project's venv, websockets'
``broadcast`` in the peers' venv, each pinned to CPU 0, interleaved for
3 rounds; ``bare write`` is a loop that hands one pre-built frame to each
transport, the least any library can do.

``make bench`` runs it after the matrix when scenario (i) is selected and
adds the table to its report; ``python -m benchmarks.broadcast_cost`` runs it
alone. A child run, ``--library NAME``, prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks.prepare import PEERS_PYTHON, PROJECT_PYTHON, ROOT, peers_venv
from benchmarks.procs import SERVER_CPU, pinned

MESSAGE = "broadcast cost " * 4 + "done"  # 64 bytes of text
FRAME = bytes((0x81, len(MESSAGE))) + MESSAGE.encode()  # what every connection must get
REQUEST = (
    b"GET /bcast HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
LIBRARIES = ("wsserver", "websockets", "bare write")


class MemoryTransport(asyncio.Transport):
    """A transport that keeps what is written and never pushes back."""

    def __init__(self) -> None:
        super().__init__()
        self.out: list[bytes] = []
        self.closing = False
        self.protocol: asyncio.BaseProtocol | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, 65536)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


async def _wsserver_connections(n: int) -> tuple[Any, list[Any], list[MemoryTransport]]:
    """n connections upgraded through wsserver's own protocol, handlers waiting."""
    import wsserver

    routes = wsserver.Router()
    connections: list[wsserver.WebSocket] = []

    @routes.websocket("/bcast")
    async def subscribe(request: wsserver.Request, ws: wsserver.WebSocket) -> None:
        connections.append(ws)
        await ws.wait_closed()

    server = await wsserver.serve(routes, "127.0.0.1", 0, compression=None, ping_interval=None)
    transports = []
    for _ in range(n):
        protocol = server._make_protocol()  # what the listening socket would create
        transport = MemoryTransport()
        protocol.connection_made(transport)
        protocol.data_received(REQUEST)
        transports.append(transport)
    while len(connections) < n:
        await asyncio.sleep(0)
    if not all(t.out and t.out[0].startswith(b"HTTP/1.1 101") for t in transports):
        raise RuntimeError("wsserver did not upgrade every in-memory connection")
    return wsserver.broadcast, connections, transports


async def _websockets_connections(n: int) -> tuple[Any, list[Any], list[MemoryTransport]]:
    """n websockets server connections in the OPEN state, no handler running."""
    from websockets.asyncio.connection import Connection
    from websockets.asyncio.server import ServerConnection, broadcast
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    connections = []
    transports = []
    for _ in range(n):
        protocol = ServerProtocol()
        protocol.state = State.OPEN  # as after a successful handshake
        connection = ServerConnection(protocol, server=None, ping_interval=None)  # type: ignore[arg-type]
        transport = MemoryTransport()
        # Connection's own setup, without starting a handler through a server.
        Connection.connection_made(connection, transport)
        connections.append(connection)
        transports.append(transport)
    return broadcast, connections, transports


def _bare_write(transports: list[MemoryTransport]) -> Any:
    def send(connections: list[Any], message: str) -> None:
        for transport in transports:
            transport.write(FRAME)

    return send


async def _child(library: str, n: int, repeat: int) -> dict[str, Any]:
    if library == "websockets":
        send, connections, transports = await _websockets_connections(n)
    else:
        send, connections, transports = await _wsserver_connections(n)
        if library == "bare write":
            send = _bare_write(transports)
    times = []
    for _ in range(repeat):
        for transport in transports:
            transport.out.clear()
        started = time.perf_counter()
        send(connections, MESSAGE)
        times.append(time.perf_counter() - started)
    if any(b"".join(t.out) != FRAME for t in transports):
        raise RuntimeError(f"{library}: a connection did not get exactly one 64-byte text frame")
    return {
        "library": library,
        "connections": n,
        "best_us": min(times) / n * 1e6,
        "median_us": statistics.median(times) / n * 1e6,
    }


def _run_child(library: str, n: int, repeat: int) -> dict[str, Any]:
    python = PEERS_PYTHON if library == "websockets" else PROJECT_PYTHON
    cmd = [str(python), "-m", "benchmarks.broadcast_cost", "--library", library]
    cmd += ["--connections", str(n), "--repeat", str(repeat)]
    done = subprocess.run(
        pinned(cmd, SERVER_CPU), cwd=ROOT, capture_output=True, text=True, check=False, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"{library}: {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def measure(rounds: int, connections: int = 1000, repeat: int = 300) -> list[dict[str, Any]]:
    """Every library once per round, interleaved, each in a fresh pinned process."""
    return [_run_child(lib, connections, repeat) for _ in range(rounds) for lib in LIBRARIES]


def render(results: list[dict[str, Any]]) -> list[str]:
    """The report's section: median over the rounds of each library's best call."""
    rounds = sum(r["library"] == "wsserver" for r in results)
    best = {
        lib: statistics.median(r["best_us"] for r in results if r["library"] == lib)
        for lib in LIBRARIES
    }
    lines = [
        "## broadcast() itself: Python time per connection, transports in memory",
        "",
        f"{results[0]['connections']} open connections, one 64-byte text message; each run's "
        f"best call, median over {rounds} interleaved run(s) (benchmarks/broadcast_cost.py). "
        "No system calls: this is what a library spends in (i) above the floor.",
        "",
        "| library | µs per connection | time ÷ wsserver's |",
        "| --- | --- | --- |",
    ]
    for lib in LIBRARIES:
        lines.append(f"| {lib} | {best[lib]:.3f} | {best[lib] / best['wsserver']:.2f} |")
    above = {lib: best[lib] - best["bare write"] for lib in ("wsserver", "websockets")}
    lines += [
        "",
        f"Above the bare write: wsserver {above['wsserver']:.3f} µs, websockets "
        f"{above['websockets']:.3f} µs per connection "
        f"({above['websockets'] / above['wsserver']:.1f}x).",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.broadcast_cost", description=__doc__)
    p.add_argument("--library", choices=LIBRARIES, help="measure one library (a child run)")
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--python", default="python3", help="interpreter for the peers' venv")
    args = p.parse_args(argv)
    if args.library is not None:
        result = asyncio.run(_child(args.library, args.connections, args.repeat))
        print(json.dumps(result))
        return 0
    peers_venv(args.python, lambda message: print(message, file=sys.stderr, flush=True))
    results = measure(args.rounds, args.connections, args.repeat)
    print("\n".join(render(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
