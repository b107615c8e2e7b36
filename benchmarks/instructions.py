"""Instructions per echoed message, counted: ``python -m benchmarks.instructions``.

Timings on a shared virtual machine move by a third from one round to the
next; the instructions a server runs for a message do not. This starts a
wsserver column's server under valgrind's callgrind (installed with apt on
first use), echoes ``--messages`` round trips on each of ``--conns``
connections in lock step, then five times as many, and divides the difference
of the two runs' totals by the difference in messages: the start-up, the
handshakes and the shutdown cancel out. Two runs of one revision agree to
about 0.3 %. ``--handshakes`` counts per handshake instead ((f)'s loop, one
at a time); the peers' single-process Python columns can be counted too.

Only user space is counted: the kernel's work in the system calls, most of a
small message's cost on loopback, is not. The figure says what our Python
and C (and the event loop's, and the interpreter's) cost per message, which
is what a change to the hot path changes: compare revisions with
``--baseline REV``; the time it makes is ``make bench``'s to show.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import baseline as baseline_module
from benchmarks import procs
from benchmarks.matrix import Server, select_servers
from benchmarks.prepare import ROOT, apt_install

#: valgrind runs a program about 50 times slower: a start-up takes seconds.
START_TIMEOUT = 180.0
_MASK = b"\x5a\xa5\x0f\xf0"
_UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def client_frame(text: bool, size: int) -> bytes:
    """A masked frame of ``size`` payload bytes (all ``x``: the mask is applied below)."""
    payload = bytes(b ^ _MASK[i % 4] for i, b in enumerate(b"x" * size))
    if size < 126:
        head = struct.pack("!BB", 0x81 if text else 0x82, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x81 if text else 0x82, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x81 if text else 0x82, 0x80 | 127, size)
    return head + _MASK + payload


def echoed_length(size: int) -> int:
    """The bytes of the server's unmasked, uncompressed answer."""
    return size + (2 if size < 126 else 4 if size < 1 << 16 else 10)


def total_instructions(server: Server, rounds: int, args: argparse.Namespace) -> int:
    """Run ``server`` under callgrind for ``rounds`` round trips per connection; its total."""
    port = procs.free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            *server.command(port, False),
        ]  # fmt: skip
        env = {**server.environ(), "PYTHONHASHSEED": "0"}
        proc = procs.start(
            cmd,
            cpu=procs.SERVER_CPU,
            cwd=server.cwd or ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            procs.wait_listening(proc, port, timeout=START_TIMEOUT)
            if server.asgi:
                procs.wait_answering(proc, port, timeout=START_TIMEOUT)
            (handshakes if args.handshakes else echo)(port, rounds, args)
        finally:
            procs.stop(proc, grace=START_TIMEOUT)
        found = re.search(r"^(?:totals|summary): (\d+)", out.read_text(), re.MULTILINE)
        if found is None:
            raise SystemExit(f"{server.key}: callgrind wrote no total")
        return int(found.group(1))


def upgraded(port: int) -> tuple[socket.socket, bytes]:
    """A connection upgraded at ``/``: its socket, and what followed the 101's head."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=START_TIMEOUT)
    try:
        sock.sendall(_UPGRADE)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise SystemExit("the server closed the connection during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101 "):
            raise SystemExit(f"the handshake failed: {head.splitlines()[0]!r}")
    except BaseException:
        sock.close()
        raise
    return sock, head.partition(b"\r\n\r\n")[2]


def echo(port: int, rounds: int, args: argparse.Namespace) -> None:
    """Open the connections, then send a message on each and read every answer, ``rounds`` times."""
    frame = client_frame(args.kind == "text", args.size)
    expected = echoed_length(args.size)
    socks = []
    try:
        for _ in range(args.conns):
            socks.append(upgraded(port)[0])
        for _ in range(rounds):
            for sock in socks:
                sock.sendall(frame)
            for sock in socks:
                got = 0
                while got < expected:
                    chunk = sock.recv(1 << 20)
                    if not chunk:
                        raise SystemExit("the server closed a connection while echoing")
                    got += len(chunk)
    finally:
        for sock in socks:
            sock.close()


_CLOSE = b"\x88\x82" + _MASK + bytes(a ^ b for a, b in zip(b"\x03\xe8", _MASK[:2], strict=True))


def handshakes(port: int, rounds: int, args: argparse.Namespace | None) -> None:
    """(f)'s loop, ``rounds`` times in turn: connect, upgrade, closing handshake, TCP close."""
    for _ in range(rounds):
        sock, rest = upgraded(port)
        with sock:
            sock.sendall(_CLOSE)
            while chunk := sock.recv(4096):  # the server's close frame, then its TCP close
                rest += chunk
            if not rest.startswith(b"\x88\x02\x03\xe8"):
                raise SystemExit(f"no closing handshake: {rest[:8]!r}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__)
    p.add_argument(
        "--servers",
        default="wsserver-uvloop,asgi-wsserver-uvloop",
        help="columns, comma-separated: wsserver's, the peers' single-process Python ones, the"
        " floor's (default wsserver-uvloop,asgi-wsserver-uvloop)",
    )
    p.add_argument("--baseline", metavar="REV", help="also the *-base columns at git REV")
    p.add_argument("--messages", type=int, default=100, help="round trips per connection (x5)")
    p.add_argument("--conns", type=int, default=10, help="connections (default 10)")
    p.add_argument("--size", type=int, default=32, help="payload bytes (default 32)")
    p.add_argument("--kind", choices=["text", "binary"], default="text")
    p.add_argument(
        "--handshakes",
        action="store_true",
        help="count per handshake instead: (f)'s loop, --messages of them (x5), one at a time",
    )
    args = p.parse_args(argv)
    base = None
    if args.baseline:
        base = baseline_module.resolve(args.baseline)
        baseline_module.prepare(base, lambda line: print(line, file=sys.stderr))
    servers = select_servers(args.servers, base)
    for server in servers:
        if server.group or server.worker or server.library == "node":
            p.error(f"{server.key}: only a single Python process on ws:// can be counted")
    if shutil.which("valgrind") is None:
        print("installing valgrind", file=sys.stderr)
        apt_install("valgrind", lambda line: print(line, file=sys.stderr))
    if args.handshakes:
        print("handshakes in turn (connect, upgrade, closing handshake), user-space instructions")
    else:
        print(f"{args.kind}, {args.size} B, {args.conns} connections, user-space instructions")
    print()
    print(f"| server | per {'handshake' if args.handshakes else 'echoed message'} |")
    print("| --- | --- |")
    few, many = args.messages, 5 * args.messages
    for server in servers:
        short = total_instructions(server, few, args)
        long = total_instructions(server, many, args)
        per = (long - short) / ((many - few) * (1 if args.handshakes else args.conns))
        print(f"| {server.label} | {per:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
