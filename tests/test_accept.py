"""Accepting connections on uvloop: several watchers of each listening socket.

libuv accepts one connection per watcher and loop iteration; wsserver watches
each listening socket LIBUV_ACCEPT_WATCHERS times (duplicated descriptors), so
that a burst of connections is taken in one iteration. These tests run their
own uvloop loop, whichever loop the rest of the suite runs on.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import uvloop

from tests.helpers import echo_routes, upgrade_request
from wsserver import serve
from wsserver.server.descriptors import say_accept_failures_once_in_a_while
from wsserver.server.server import LIBUV_ACCEPT_WATCHERS

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 5.0


def socket_name(sock: Any) -> str:
    """What /proc/self/fd's links to ``sock``'s socket read."""
    return f"socket:[{os.fstat(sock.fileno()).st_ino}]"


def descriptors_of(name: str) -> int:
    """How many of this process's descriptors refer to the socket ``name``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # (the listing's own descriptor, gone)
            count += os.readlink(f"/proc/self/fd/{fd}") == name
    return count


def upgrade(client: socket.socket) -> bytes:
    """Send an upgrade request on a blocking socket; the response's head."""
    client.settimeout(TIMEOUT)
    client.sendall(upgrade_request("/"))
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = client.recv(4096)
        if not chunk:
            break
        head += chunk
    return head


@pytest.mark.parametrize("where", ["tcp", "uds", "sock"])
def test_a_burst_of_connections_is_accepted_in_one_loop_iteration(
    where: str, socket_path: str
) -> None:
    burst = LIBUV_ACCEPT_WATCHERS

    def connect() -> socket.socket:
        if where == "uds":
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(socket_path)
            return client
        return socket.create_connection(("127.0.0.1", port))

    async def main() -> None:
        nonlocal port
        settings: dict[str, Any] = {"host": "127.0.0.1", "port": 0}
        if where == "uds":
            settings = {"uds": socket_path}
        elif where == "sock":  # (as a worker gets its supervisor's socket)
            listening = socket.create_server(("127.0.0.1", 0))
            settings = {"sock": listening}
        server = await serve(echo_routes("/"), **settings)
        listener = server.sockets[0]
        if where != "uds":
            port = listener.getsockname()[1]
        name = socket_name(listener)
        assert descriptors_of(name) == LIBUV_ACCEPT_WATCHERS
        loop = asyncio.get_running_loop()
        made = loop.create_future()
        clients: list[socket.socket] = []

        def hold_the_loop() -> None:
            # The loop waits here: every connection is in the backlog before
            # its next poll. Two iterations on, the connections that poll
            # accepted have been made (connection_made runs one iteration later).
            clients.extend(connect() for _ in range(burst))
            loop.call_soon(loop.call_soon, lambda: made.set_result(len(server.connections)))

        loop.call_soon(hold_the_loop)
        try:
            assert await asyncio.wait_for(made, TIMEOUT) == burst
            heads = await asyncio.gather(*(asyncio.to_thread(upgrade, c) for c in clients))
            assert all(h.startswith(b"HTTP/1.1 101 ") for h in heads), heads
        finally:
            for client in clients:
                client.close()
            await asyncio.wait_for(server.close(timeout=1), TIMEOUT)
        assert descriptors_of(name) == 0
        # Closed: nothing listens any more (no descriptor of it was left open).
        with pytest.raises((ConnectionRefusedError, FileNotFoundError)):
            connect().close()

    port = 0
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def test_a_subclass_of_uvloops_loop_is_watched_as_uvloop() -> None:
    class Loop(uvloop.Loop):  # type: ignore[misc]
        pass

    async def main() -> None:
        async with serve(echo_routes("/"), "127.0.0.1", 0) as server:
            assert descriptors_of(socket_name(server.sockets[0])) == LIBUV_ACCEPT_WATCHERS

    with asyncio.Runner(loop_factory=Loop) as runner:
        runner.run(main())


def test_asyncio_loops_watch_a_listening_socket_once() -> None:
    async def main() -> None:
        async with serve(echo_routes("/"), "127.0.0.1", 0) as server:
            assert descriptors_of(socket_name(server.sockets[0])) == 1

    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        runner.run(main())


@pytest.mark.parametrize("where", ["tcp", "uds"])
def test_a_start_that_runs_out_of_descriptors_leaves_nothing_behind(
    where: str, socket_path: str
) -> None:
    # A child process: its descriptor limit is lowered so that duplicating
    # the listening socket fails part way.
    script = textwrap.dedent(
        """
        import asyncio, os, resource, socket, sys
        import uvloop
        from wsserver import Router, serve

        WHERE, PATH = sys.argv[1], sys.argv[2]

        def sockets():
            # (libuv keeps a descriptor of /dev/null in reserve: not counted)
            links = []
            for fd in os.listdir("/proc/self/fd"):
                try:
                    links.append(os.readlink(f"/proc/self/fd/{fd}"))
                except OSError:
                    pass
            return sum(link.startswith("socket:") for link in links)

        def connect(port):
            if WHERE == "uds":
                client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                client.connect(PATH)
                return client
            return socket.create_connection(("127.0.0.1", port))

        async def main():
            probe = socket.create_server(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            probe.close()
            before = sockets()
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            opened = len(os.listdir("/proc/self/fd"))
            resource.setrlimit(resource.RLIMIT_NOFILE, (opened + 3, hard))
            if WHERE == "uds":
                server = serve(Router(), uds=PATH)
            else:
                server = serve(Router(), "127.0.0.1", port)
            try:
                await server
            except OSError as exc:
                print("start failed:", exc.strerror)
            else:
                print("started")
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            await server.close()
            print("sockets left open:", sockets() - before)
            print("socket file left:", os.path.exists(PATH))
            try:
                connect(port).close()
                print("still listening")
            except (ConnectionRefusedError, FileNotFoundError):
                print("refused")

        uvloop.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, where, socket_path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "start failed: Too many open files",
        "sockets left open: 0",
        "socket file left: False",
        "refused",
    ], done.stdout + done.stderr


@pytest.mark.parametrize("libuv_closed_it", [True, False])
def test_a_watcher_that_failed_leaves_no_descriptor_and_closes_no_other(
    libuv_closed_it: bool,
) -> None:
    # When uvloop's create_server(sock=) fails in libuv, libuv has closed the
    # descriptor already; closing our duplicate again closed whatever had
    # taken that number meanwhile (another thread's file, a client's socket).
    # One it failed before taking is ours to close.
    import errno

    taken: list[Any] = []
    names: list[str] = []

    class Loop(uvloop.Loop):  # type: ignore[misc]
        watchers = 0

        async def create_server(self, *args: Any, sock: Any = None, **kwargs: Any) -> Any:
            Loop.watchers += 1
            if Loop.watchers == 3:  # (the second duplicate)
                names.append(socket_name(sock))
                if libuv_closed_it:
                    number = sock.fileno()
                    os.close(number)
                    taken.append(open(os.devnull))  # noqa: SIM115 (the number, taken again)
                    assert taken[0].fileno() == number
                raise OSError(errno.ENOMEM, "uv_tcp_open failed")
            return await super().create_server(*args, sock=sock, **kwargs)

    async def main() -> None:
        server = serve(echo_routes("/"), "127.0.0.1", 0)
        with pytest.raises(OSError, match="uv_tcp_open failed"):
            await server
        await server.close()

    with asyncio.Runner(loop_factory=Loop) as runner:
        runner.run(main())
    assert descriptors_of(names[0]) == 0  # (none of the listening socket's left)
    for file in taken:
        try:
            os.fstat(file.fileno())  # still open: not ours to close
        finally:
            file.close()


@pytest.mark.parametrize(
    ("error", "said", "not_said"),
    [
        (errno.EMFILE, "ulimit -Hn", "fs.file-max"),
        (errno.ENFILE, "fs.file-max", "ulimit -Hn"),
        (errno.ENOBUFS, "memory", "ulimit -Hn"),
        (errno.ENOMEM, "memory", "ulimit -Hn"),
    ],
)
def test_a_refused_accept_is_said_with_the_advice_its_cause_needs(
    caplog: pytest.LogCaptureFixture, error: int, said: str, not_said: str
) -> None:
    # Every failure asyncio reports this way was told to raise the process's
    # open-files limit; the whole system's (ENFILE) and the kernel's memory
    # (ENOBUFS, ENOMEM) are not this process's limit.
    loop = asyncio.new_event_loop()
    try:
        say_accept_failures_once_in_a_while(loop)
        with socket.socket() as listening, caplog.at_level("ERROR", "wsserver.server"):
            loop.call_exception_handler(
                {
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(error, os.strerror(error)),
                    "socket": listening,
                }
            )
    finally:
        loop.close()
    (line,) = [r.getMessage() for r in caplog.records if "cannot accept" in r.getMessage()]
    assert said in line and not_said not in line, line
