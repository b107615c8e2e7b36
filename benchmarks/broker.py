"""A private redis-server for a fan-out measurement (Debian's package, on a free port).

Never a Redis that happens to be running: each measurement that needs one
starts its own, with no persistence, in benchmarks/.cache/redis, on the
server's CPUs, and stops it afterwards (as tests/redis_server.py does for the
tests).
"""

from __future__ import annotations

import socket
import subprocess
import time
from typing import IO

from benchmarks import procs
from benchmarks.prepare import CACHE

REDIS_DIR = CACHE / "redis"


def start(
    binary: str, cpus: procs.Cpus, log: IO[bytes], timeout: float = 10.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start redis-server on a free loopback port; the process and its URL once it answers."""
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    port = procs.free_port()
    command = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(REDIS_DIR), "--protected-mode", "no", "--loglevel", "warning",
    ]  # fmt: skip
    proc = procs.start(command, cpu=cpus, cwd=REDIS_DIR, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise procs.ProcessError(f"redis-server exited with {proc.returncode} at startup")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            pass
        if time.monotonic() > deadline:
            procs.stop(proc)
            raise procs.ProcessError(f"redis-server did not answer on port {port}")
        time.sleep(0.05)
