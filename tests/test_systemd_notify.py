"""systemd's ``Type=notify`` (and ``notify-reload``): the command line tells the
service manager when it serves, reloads and stops, on the datagram socket
``NOTIFY_SOCKET`` names (sd_notify(3)). Real processes; the socket is the
test's own, as systemd's would be."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .helpers import wait_for
from .test_cli import children, running_cli
from .test_workers import FLAKY_APP

TIMEOUT = 10.0

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "AF_UNIX") or not Path("/proc/self/task").exists(),
    reason="systemd's notify socket: Linux",
)


class Manager:
    """The service manager's end: a datagram socket, each message a dict."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.address = address  # as NOTIFY_SOCKET says it

    async def next(self) -> dict[str, str]:
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.sock, 4096), TIMEOUT)
        return self.parse(data)

    @staticmethod
    def parse(data: bytes) -> dict[str, str]:
        return dict(line.split("=", 1) for line in data.decode().split("\n") if line)

    def waiting(self) -> list[dict[str, str]]:
        """What was sent and not yet read (the sender gone: all it sent)."""
        said = []
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return said
            said.append(self.parse(data))

    def nothing_waiting(self) -> bool:
        try:
            self.sock.recv(4096)
        except BlockingIOError:
            return True
        return False


@pytest.fixture(params=["path", "abstract"])
def manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Manager]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(tmp_path / "notify")
        sock.bind(address)
    else:  # (systemd's own, in a container: "@" for the abstract namespace)
        name = f"wsserver-test-{os.getpid()}-{time.monotonic_ns()}"
        sock.bind("\0" + name)
        address = "@" + name
    sock.setblocking(False)
    with sock:
        yield Manager(sock, address)


async def test_a_single_process_says_ready_once_it_listens_and_stopping_when_it_stops(
    manager: Manager,
) -> None:
    async with running_cli(
        "examples.echo:routes", "--ping-interval", "none", env={"NOTIFY_SOCKET": manager.address}
    ) as cli:
        ready = await manager.next()
        assert ready["READY"] == "1", ready
        assert f":{cli.port}" in ready["STATUS"], ready
        async with httpx.AsyncClient() as client:  # (ready: it answers)
            response = await client.get(f"http://127.0.0.1:{cli.port}/nothing-here")
        assert response.status_code == 404
        cli.proc.send_signal(signal.SIGTERM)
        stopping = await manager.next()
        assert stopping["STOPPING"] == "1", stopping
        assert await cli.wait() == 0
    assert manager.nothing_waiting()


async def test_workers_are_ready_together_and_a_rolling_restart_is_a_reload(
    manager: Manager,
) -> None:
    # Type=notify-reload: systemd sends SIGHUP, and waits for RELOADING=1
    # (with the monotonic clock's time, which it checks) then READY=1. The
    # workers say nothing themselves (systemd takes only the main process's
    # word, NotifyAccess=main).
    async with running_cli(
        "tests.worker_app:routes",
        "--workers",
        "2",
        "--ping-interval",
        "none",
        env={"NOTIFY_SOCKET": manager.address},
    ) as cli:
        ready = await manager.next()
        assert ready["READY"] == "1", ready
        assert "2 workers accepting" in ready["STATUS"], ready
        first = children(cli.proc.pid)
        assert len(first) == 2
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        cli.proc.send_signal(signal.SIGHUP)
        reloading = await manager.next()  # (not a worker's READY: they say nothing)
        assert reloading["RELOADING"] == "1", reloading
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert before <= int(reloading["MONOTONIC_USEC"]) <= after
        ready = await manager.next()
        assert ready["READY"] == "1", ready
        assert "rolling restart done" in cli.stderr
        now = children(cli.proc.pid)
        assert len(now) == 2 and not now & first, (first, now)
        cli.proc.send_signal(signal.SIGTERM)
        stopping = await manager.next()
        assert stopping["STOPPING"] == "1", stopping
        assert await cli.wait() == 0
    assert manager.nothing_waiting()


async def test_a_notify_socket_that_takes_nothing_is_said_and_the_server_serves(
    tmp_path: Path,
) -> None:
    # (A unit's NOTIFY_SOCKET gone, or the variable left over from another
    # service: systemd would time the start out; the server serves all the same.)
    async with running_cli(
        "examples.echo:routes",
        "--ping-interval",
        "none",
        env={"NOTIFY_SOCKET": str(tmp_path / "none")},
    ) as cli:
        await wait_for(lambda: "NOTIFY_SOCKET" in cli.stderr, what="the warning")
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{cli.port}/nothing-here")
        assert response.status_code == 404
        cli.proc.send_signal(signal.SIGTERM)
        assert await cli.wait() == 0
    said = [line for line in cli.lines if "NOTIFY_SOCKET" in line]
    assert len(said) == 1, said  # (once: not again at the stop)
    assert "WARNING" in said[0] and str(tmp_path / "none") in said[0], said


@pytest.mark.parametrize("workers", [(), ("--workers", "1")])
async def test_a_unit_s_watchdog_is_fed_from_the_event_loop(
    manager: Manager, workers: tuple[str, ...]
) -> None:
    # WatchdogSec=0.6 (WATCHDOG_USEC): WATCHDOG=1 at least every 0.3 s, from
    # the main process's event loop; a loop blocked sends none, and systemd
    # kills the service. Another process's watchdog (WATCHDOG_PID) is not ours.
    env = {"NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": "600000"}
    async with running_cli(
        "tests.worker_app:routes", *workers, "--ping-interval", "none", env=env
    ) as cli:
        assert (await manager.next())["READY"] == "1"
        beats = [await manager.next() for _ in range(4)]
        assert all(beat == {"WATCHDOG": "1"} for beat in beats), beats
        cli.proc.send_signal(signal.SIGTERM)
        while "STOPPING" not in (said := await manager.next()):
            assert said == {"WATCHDOG": "1"}, said
        assert await cli.wait() == 0
    # (the loop fed the watchdog until the process ended: beats may follow STOPPING)
    left = manager.waiting()
    assert all(beat == {"WATCHDOG": "1"} for beat in left), left
    env["WATCHDOG_PID"] = "1"
    async with running_cli(
        "tests.worker_app:routes", *workers, "--ping-interval", "none", env=env
    ) as cli:
        assert (await manager.next())["READY"] == "1"
        await asyncio.sleep(0.7)  # (more than twice the beat)
        cli.proc.send_signal(signal.SIGTERM)
        assert await manager.next() == {"STOPPING": "1"}
        assert await cli.wait() == 0


async def test_sighup_starting_workers_waiting_out_a_backoff_is_a_reload_too(
    manager: Manager, tmp_path: Path
) -> None:
    # Every worker dead and waiting out its start-up back-off (the code broke,
    # then was fixed): SIGHUP starts them at once, no rolling restart. Under
    # Type=notify-reload, systemctl reload sent that SIGHUP and waits for
    # RELOADING=1 then READY=1: without them it timed out (TimeoutStartSec=).
    (tmp_path / "flaky_app.py").write_text(FLAKY_APP)
    args = ("--app-dir", str(tmp_path), "--workers", "1", "--ping-interval", "none")
    env = {"NOTIFY_SOCKET": manager.address}
    async with running_cli("flaky_app:routes", *args, env=env) as cli:
        assert (await manager.next())["READY"] == "1"
        (tmp_path / "BROKEN").touch()
        (worker,) = children(cli.proc.pid)
        os.kill(worker, signal.SIGKILL)
        await wait_for(lambda: "starting another in" in cli.stderr, what="the back-off")
        (tmp_path / "BROKEN").unlink()
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        cli.proc.send_signal(signal.SIGHUP)
        reloading = await manager.next()
        assert reloading["RELOADING"] == "1", reloading
        assert int(reloading["MONOTONIC_USEC"]) >= before
        ready = await manager.next()
        assert ready["READY"] == "1", ready
        assert "1 worker accepting" in ready["STATUS"], ready
        assert "SIGHUP: starting the workers again" in cli.stderr
        cli.proc.send_signal(signal.SIGTERM)
        assert (await manager.next())["STOPPING"] == "1"
        assert await cli.wait() == 0


SLOT_2_HELD_APP = """
import sys
import time
from pathlib import Path

from wsserver import Router

# Slot 2's worker (the slot is on its command line: --worker SLOT:FD:PID)
# does not start while HOLD is there: an import, or a lifespan startup,
# waiting for what does not answer.
slot = sys.argv[sys.argv.index("--worker") + 1].split(":")[0]
while slot == "2" and (Path(__file__).parent / "HOLD").exists():
    time.sleep(0.05)

routes = Router()
"""


@pytest.mark.drill
async def test_a_first_worker_that_does_not_start_does_not_hold_back_ready(
    manager: Manager, tmp_path: Path
) -> None:
    # One of the first workers whose start hung held back READY=1 for as long
    # as it hung, while the others served: systemd timed the start out
    # (TimeoutStartSec=) and killed a service that served; and nothing said
    # which worker was waited for, nor that one accepted.
    (tmp_path / "slot_2_held.py").write_text(SLOT_2_HELD_APP)
    (tmp_path / "HOLD").touch()
    args = ("--app-dir", str(tmp_path), "--workers", "2", "--worker-start-timeout", "2")
    async with running_cli(
        "slot_2_held:routes", *args, env={"NOTIFY_SOCKET": manager.address}
    ) as cli:
        ready = await manager.next()
        assert ready["READY"] == "1", ready
        assert "1 worker accepting" in ready["STATUS"], ready
        slow = r"1 worker accepting; worker 2 \(pid \d+\) does not accept yet after 2 s"
        await wait_for(lambda: re.search(slow, cli.stderr), what="the slow worker named")
        (tmp_path / "HOLD").unlink()
        ready = await manager.next()
        assert ready["READY"] == "1", ready
        assert "2 workers accepting" in ready["STATUS"], ready
        await wait_for(lambda: "2 workers accepting" in cli.stderr, what="both said")
        cli.proc.send_signal(signal.SIGTERM)
        assert (await manager.next())["STOPPING"] == "1"
        assert await cli.wait() == 0
