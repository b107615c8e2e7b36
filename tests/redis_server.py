"""A private redis-server for the tests: Debian's package, installed when missing, on a free port.

Never a Redis that happens to be running: each :class:`RedisServer` starts
its own process on a free loopback port, with no persistence, in a temporary
directory; it can be stopped and started again on the same port (outage
drills).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .debian import PackageUnavailable, find_or_install

__all__ = ["RedisServer", "RedisUnavailable", "install_redis"]


class RedisUnavailable(RuntimeError):
    """redis-server is not installed and could not be installed."""


def install_redis() -> str:
    """The redis-server binary, installing Debian's ``redis-server`` first if needed."""
    try:
        return find_or_install(lambda: shutil.which("redis-server"), "redis-server")
    except PackageUnavailable as exc:
        raise RedisUnavailable(str(exc)) from exc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One private redis-server process."""

    def __init__(
        self, binary: str, port: int | None = None, tls: dict[str, str] | None = None
    ) -> None:
        self.binary = binary
        #: Whether the ports are this object's choice (see start()).
        self._ports_chosen = port is None
        self._started = False
        self.port = port or free_port()
        #: Its certificate and key (``certfile``, ``keyfile``): it takes TLS
        #: connections on :attr:`tls_port` too (no client certificate asked).
        self.tls = tls
        self.tls_port = free_port() if tls else None
        self.directory = Path(tempfile.mkdtemp(prefix="wsserver-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def tls_url(self) -> str:
        """The same server over TLS (``rediss://``), by the name ``localhost``."""
        assert self.tls_port is not None, "a RedisServer(tls=...) has one"
        return f"rediss://localhost:{self.tls_port}/0"

    @property
    def unix_url(self) -> str:
        """The same server over its Unix socket."""
        return f"unix://{self.directory / 'redis.sock'}"

    def start(self, timeout: float = 10.0) -> None:
        """Start it (again, on the same port) and wait until it answers.

        A free port may be taken before redis-server binds it (an outgoing
        connection of another test given it as its own port): redis-server
        exits with 1. Its first start then takes other free ports, a few times.
        """
        for attempt in range(5):
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", str(self.directory),
                    "--protected-mode", "no",
                    "--unixsocket", str(self.directory / "redis.sock"),
                    "--unixsocketperm", "700",
                    *self._tls_arguments(),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
            if self._answers(self.process, timeout):
                self._started = True
                return
            if self._started or not self._ports_chosen or attempt == 4:
                raise RedisUnavailable(f"redis-server exited with {self.process.returncode}")
            self.port = free_port()
            self.tls_port = free_port() if self.tls else None

    def _answers(self, process: subprocess.Popen[bytes], timeout: float) -> bool:
        """Whether ``process`` answers a PING on :attr:`port` (False: it exited)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    # (Its own PONG, not another server's on that port: it still runs.)
                    if sock.recv(16).startswith(b"+PONG") and process.poll() is None:
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        raise RedisUnavailable(f"redis-server did not answer on port {self.port}")

    def _tls_arguments(self) -> list[str]:
        if self.tls is None:
            return []
        return [
            "--tls-port", str(self.tls_port),
            "--tls-cert-file", self.tls["certfile"],
            "--tls-key-file", self.tls["keyfile"],
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    def stop(self) -> None:
        """Kill it (an outage: clients see their connections reset)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
