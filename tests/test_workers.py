"""``--workers``: a supervisor and worker processes, through real processes, signals and sockets.

The supervisor's children are read from ``/proc``; clients are the
``websockets`` library's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from .helpers import RawClient, wait_for
from .test_cli import (
    LISTENING_RE,
    ROOT,
    SLOW_IMPORT_APP,
    SLOW_STARTUP_APP,
    Cli,
    child_env,
    children,
    run_cli_to_end,
    running_cli,
    signalled_reading_its_env_file,
    signalled_while_starting,
)

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").exists(), reason="reads the supervisor's children from /proc"
)

TIMEOUT = 10.0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


@asynccontextmanager
async def supervisor(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[Cli]:
    """``python -m wsserver tests.worker_app:routes --workers 2 ARGS``, once the workers accept."""
    async with running_cli(
        "tests.worker_app:routes", "--workers", "2", "--ping-interval", "none", *args, env=env
    ) as cli:
        if not (env or {}).get("CRASH_AT_IMPORT"):
            await wait_for(lambda: "workers accepting" in cli.stderr, what="the workers")
        yield cli


FLAKY_APP = """
from pathlib import Path

from wsserver import Router
from wsserver.response import text

if (Path(__file__).parent / "BROKEN").exists():
    raise RuntimeError("broken until BROKEN is removed")

routes = Router()


@routes.get("/v")
async def version(request):
    return text("fixed")
"""


ONCE_APP = """
import os
import time
from pathlib import Path

from wsserver import Router

try:  # the first process to import this fails; the others start, slowly
    os.close(os.open(Path(__file__).parent / "failed-once", os.O_CREAT | os.O_EXCL))
except FileExistsError:
    time.sleep(1.0)
else:
    raise RuntimeError("a dependency is down for a moment")

routes = Router()
"""


SLOWLY_BROKEN_APP = """
import os
import time
from pathlib import Path

try:  # the first process to import this fails at once, the others slowly
    os.close(os.open(Path(__file__).parent / "failed-once", os.O_CREAT | os.O_EXCL))
except FileExistsError:
    time.sleep(1.5)
raise RuntimeError("broken, slowly or not")
"""


SLOT_ONE_FAILS_AT_ONCE_APP = """
import sys
import time

# Slot 1's worker fails at once; the others after a long start (the slot is
# on the worker's command line: --worker SLOT:FD:PID).
if sys.argv[sys.argv.index("--worker") + 1].split(":")[0] != "1":
    time.sleep(30)
raise RuntimeError("broken, at once or slowly")
"""


async def pid_of_connection(url: str) -> tuple[websockets.ClientConnection, int]:
    ws = await websockets.connect(url + "/pid")
    return ws, int(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def on_every_worker(
    url: str, workers: set[int], batch: int = 20, most: int = 400
) -> list[tuple[websockets.ClientConnection, int]]:
    """Connections to /pid, opened ``batch`` at once until each of ``workers`` serves one.

    The workers share one listening socket: whichever wakes first accepts
    every connection waiting, so one burst may all go to one worker. After
    ``most`` connections it stops, whoever served them.
    """
    connections: list[tuple[websockets.ClientConnection, int]] = []
    while len(connections) < most:
        connections += await asyncio.gather(*(pid_of_connection(url) for _ in range(batch)))
        if {pid for _, pid in connections} >= workers:
            break
    return connections


async def test_workers_share_the_port(tmp_path: Path) -> None:
    async with supervisor() as cli:
        workers = children(cli.proc.pid)
        assert len(workers) == 2
        # Without a broker, each worker has topics of its own: said at start.
        assert "2 workers, each with topics of its own" in cli.stderr
        connections = await on_every_worker(cli.url, workers)
        served_by = {pid for _, pid in connections}
        assert served_by == workers  # both accept on the one socket
        for ws, _ in connections:
            await ws.close()


@pytest.mark.parametrize("ours", [None, ""])
async def test_web_concurrency_sets_the_workers_as_for_uvicorn(ours: str | None) -> None:
    # Heroku, Render and others set WEB_CONCURRENCY; ours wins over it, unless
    # empty (a template's unset variable: unset, as for WEBSOCKET_HOST; it
    # gave one process, unsupervised).
    env = (
        {"WEB_CONCURRENCY": "2"}
        if ours is None
        else {"WEB_CONCURRENCY": "2", "WEBSOCKET_WORKERS": ours}
    )
    async with running_cli("tests.worker_app:routes", "--ping-interval", "none", env=env) as cli:
        await wait_for(lambda: "2 workers accepting" in cli.stderr, what="two workers")
        assert len(children(cli.proc.pid)) == 2


KEEP_ASKING = """
import json, socket, sys, threading
port, path, ended = int(sys.argv[1]), sys.argv[2].encode(), []
said = threading.Lock()  # (print() of four threads at once: "askingasking\\n\\n")

def ask():
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    sent = got = 0
    data, after = b"", b""
    try:
        while True:
            s.sendall(b"GET %s HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" % path)
            sent += 1
            while b"\\r\\n\\r\\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("closed, unanswered")
                data += chunk
            head, _, data = data.partition(b"\\r\\n\\r\\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\\r\\n")[0])
            while len(data) < length:
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError("closed mid-answer")
                data += chunk
            data = data[length:]
            got += 1
            if got == 100:
                with said:
                    print("asking", flush=True)
            if b"\\r\\nconnection: close" in head.lower():
                after = data + s.recv(65536)
                break
    except OSError as exc:
        after = repr(exc).encode()
    ended.append((sent, got, after.decode()))

threads = [threading.Thread(target=ask) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(ended), flush=True)
"""


async def test_a_rolling_restart_answers_every_request_of_busy_kept_alive_clients() -> None:
    # (From an audit.) Clients that send their next request as soon as they
    # read an answer (a proxy under load): the retiring worker went on serving
    # them, without Connection: close, until a check found none at work (up to
    # open_timeout), then aborted those caught between a handler's end and
    # that end's callback (neither busy nor idle): resets, requests lost.
    async with running_cli(
        "tests.worker_app:routes", "--workers", "1", "--ping-interval", "none"
    ) as cli:
        await wait_for(lambda: "1 worker accepting" in cli.stderr, what="the worker")
        asking = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            KEEP_ASKING,
            str(cli.port),
            "/block?s=0",
            stdout=asyncio.subprocess.PIPE,
        )
        assert asking.stdout is not None
        try:
            assert await asyncio.wait_for(asking.stdout.readline(), TIMEOUT) == b"asking\n"
            cli.proc.send_signal(signal.SIGHUP)
            line = await asyncio.wait_for(asking.stdout.readline(), TIMEOUT)
            while line == b"asking\n":
                line = await asyncio.wait_for(asking.stdout.readline(), TIMEOUT)
        finally:
            if asking.returncode is None:
                asking.kill()
            await asking.wait()
    ended = json.loads(line)
    for sent, got, after in ended:
        assert (sent, after) == (got, ""), ended  # each answered, the last saying close


async def test_an_explicit_single_worker_is_supervised_for_rolling_restarts() -> None:
    # One process per pod (or a systemd unit whose ExecReload sends SIGHUP):
    # --workers 1 had no supervisor, and SIGHUP stopped the server (exit 0,
    # which Restart=on-failure does not restart). Asked for, one worker now
    # has its supervisor: SIGHUP replaces it without a refused connection.
    async with running_cli(
        "tests.worker_app:routes", "--workers", "1", "--ping-interval", "none"
    ) as cli:
        await wait_for(lambda: "1 worker accepting" in cli.stderr, what="the worker")
        assert "topics of its own" not in cli.stderr  # (one worker: its topics are all)
        (first,) = children(cli.proc.pid)
        http = cli.url.replace("ws://", "http://")
        cli.proc.send_signal(signal.SIGHUP)
        async with httpx.AsyncClient() as client:
            served: set[int] = set()
            while len(served - {first}) == 0:
                response = await asyncio.wait_for(client.get(http + "/block?s=0"), TIMEOUT)
                served.add(int(response.text))
        await wait_for(lambda: children(cli.proc.pid) == served - {first}, what="the new one")
        assert cli.proc.returncode is None
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0
    # Without the flag, still one process alone (as uvicorn).
    async with running_cli("tests.worker_app:routes", "--ping-interval", "none") as cli:
        assert children(cli.proc.pid) == set()


async def test_workers_start_from_a_command_line_that_ends_its_flags_with_a_double_dash() -> None:
    # "--" ends the flags (argparse's, as for one process): the supervisor's
    # own flags for its workers (--fd, --worker, --status-dir) were put after
    # it, taken for positionals, and every worker exited 2 ("unrecognized
    # arguments"), then the supervisor.
    async with running_cli(
        "--workers",
        "2",
        "--ping-interval",
        "none",
        "--status-path",
        "/_status",
        "--port",
        "0",
        "--",
        "tests.worker_app:routes",
        port_flag=False,
    ) as cli:
        await wait_for(lambda: "2 workers accepting" in cli.stderr, what="the workers")
        workers = children(cli.proc.pid)
        assert len(workers) == 2
        ws, pid = await pid_of_connection(cli.url)
        assert pid in workers
        await ws.close()
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0


@pytest.mark.drill
async def test_a_killed_worker_is_replaced_and_the_others_clients_stay(tmp_path: Path) -> None:
    async with supervisor() as cli:
        workers = children(cli.proc.pid)
        connections = await on_every_worker(cli.url, workers)
        assert {pid for _, pid in connections} == workers
        victim = next(iter(workers))
        os.kill(victim, signal.SIGKILL)
        await wait_for(lambda: len(children(cli.proc.pid) - {victim}) == 2, what="a replacement")
        assert victim not in children(cli.proc.pid)
        for ws, pid in connections:
            if pid == victim:
                continue
            await ws.send("still here")  # the other worker's clients are unaffected
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "still here"
            await ws.close()
        await wait_for(lambda: "died (signal SIGKILL" in cli.stderr, what="the log line")


@pytest.mark.drill
async def test_a_worker_killed_by_a_signal_python_has_no_name_for_is_replaced() -> None:
    # signal.Signals(40) raises ValueError: the exit watcher failed there,
    # before replacing the worker, and the slot stayed empty for good.
    realtime = signal.SIGRTMIN + 6
    async with supervisor() as cli:
        workers = children(cli.proc.pid)
        victim = next(iter(workers))
        os.kill(victim, realtime)
        await wait_for(lambda: len(children(cli.proc.pid) - {victim}) == 2, what="a replacement")
        await wait_for(lambda: f"died (signal {realtime}" in cli.stderr, what="the log line")
    assert "Traceback" not in cli.stderr


@pytest.mark.drill
async def test_sighup_starts_a_worker_waiting_out_its_start_up_backoff(tmp_path: Path) -> None:
    # Broken while it runs, fixed, then SIGHUP: the service stayed down until
    # the back-off ran out (up to 30 s), the log saying "rolling restart of 0 workers".
    (tmp_path / "flaky_app.py").write_text(FLAKY_APP)
    # (One worker, under a supervisor: the request limit puts it there.)
    args = ("--app-dir", str(tmp_path), "--limit-max-requests", "1000", "--ping-interval", "none")
    async with running_cli("flaky_app:routes", *args) as cli:
        await wait_for(lambda: "1 worker accepting" in cli.stderr, what="the worker")
        (tmp_path / "BROKEN").touch()
        (worker,) = children(cli.proc.pid)
        os.kill(worker, signal.SIGKILL)
        await wait_for(lambda: "starting another in 4.0 s" in cli.stderr, what="the back-off")
        (tmp_path / "BROKEN").unlink()
        cli.proc.send_signal(signal.SIGHUP)
        async with httpx.AsyncClient() as client:
            response = await asyncio.wait_for(client.get(f"http://127.0.0.1:{cli.port}/v"), 3.0)
        assert response.text == "fixed"  # at once, not after the 4 s
        assert "SIGHUP: starting the workers again" in cli.stderr


SLOWLY_FIXED_APP = """
import time
from pathlib import Path

from wsserver import Router
from wsserver.response import text

here = Path(__file__).parent
if (here / "BROKEN").exists():
    (here / "importing-broken").touch()
    time.sleep(1.0)
    raise RuntimeError("broken until BROKEN is removed")
time.sleep(2.0)  # (fixed, it starts slowly: the broken one dies first)

routes = Router()


@routes.get("/v")
async def version(request):
    return text("fixed")
"""


@pytest.mark.drill
@pytest.mark.parametrize("workers", ["1", "2"])
async def test_a_sighup_s_replacement_is_waited_for_when_the_broken_first_workers_die(
    tmp_path: Path, workers: str
) -> None:
    # A first start broken, fixed while its workers were still failing (a
    # slow import, a database that times out), then SIGHUP: when the last of
    # them died, the supervisor gave up ("no worker ever started", exit 1)
    # and stopped the rolling restart's replacement, which would have started.
    (tmp_path / "slowly_fixed.py").write_text(SLOWLY_FIXED_APP)
    (tmp_path / "BROKEN").touch()
    args = ("--app-dir", str(tmp_path), "--workers", workers, "--ping-interval", "none")
    async with running_cli("slowly_fixed:routes", *args) as cli:
        await wait_for(lambda: (tmp_path / "importing-broken").exists(), what="a broken import")
        (tmp_path / "BROKEN").unlink()
        cli.proc.send_signal(signal.SIGHUP)
        await wait_for(lambda: "accepting; " in cli.stderr, what="the replacement")
        assert cli.proc.returncode is None
        async with httpx.AsyncClient() as client:
            response = await asyncio.wait_for(client.get(f"http://127.0.0.1:{cli.port}/v"), 5.0)
        assert response.text == "fixed"
        if workers == "2":  # the other slot is started again once one worker accepts
            await wait_for(lambda: len(children(cli.proc.pid)) == 2, what="two workers")
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0


REFUSING_APP = """
import os
from pathlib import Path

from wsserver import Router
from wsserver.response import text

routes = Router()


@routes.on_startup
async def refuse(server):
    if (Path(__file__).parent / "REFUSE").exists():
        await server.close()  # (a check that failed: the server never listens)


@routes.get("/pid")
async def pid(request):
    return text(str(os.getpid()))
"""


@pytest.mark.drill
async def test_a_replacement_whose_startup_hook_closes_its_server_does_not_replace_anyone(
    tmp_path: Path,
) -> None:
    # A startup hook that calls server.close() stops the start before the
    # server listens; the worker said it accepted all the same: the rolling
    # restart retired the old worker for it, which then ended at once, and
    # the slot was started again and again, nothing serving.
    (tmp_path / "refusing.py").write_text(REFUSING_APP)
    args = ("--app-dir", str(tmp_path), "--workers", "1", "--ping-interval", "none")
    async with running_cli("refusing:routes", *args) as cli:
        await wait_for(lambda: "1 worker accepting" in cli.stderr, what="the worker")
        (first,) = children(cli.proc.pid)
        (tmp_path / "REFUSE").touch()
        cli.proc.send_signal(signal.SIGHUP)
        await wait_for(lambda: "rolling restart stopped" in cli.stderr, what="the restart")
        assert f"did not start accepting (exit code 0); keeping pid {first}" in cli.stderr
        async with httpx.AsyncClient() as client:
            response = await asyncio.wait_for(client.get(f"http://127.0.0.1:{cli.port}/pid"), 5)
        assert response.text == str(first)
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0


SLOW_APP = """
import time
from pathlib import Path

from wsserver import Router
from wsserver.response import text

slow = Path(__file__).parent / "SLOW"
if slow.exists():
    time.sleep(float(slow.read_text()))

routes = Router()


@routes.get("/v")
async def version(request):
    return text("ok")
"""


async def test_worker_start_timeout_bounds_a_replacement_s_start(tmp_path: Path) -> None:
    # A replacement that does not accept within --worker-start-timeout (60 s
    # by default, not a setting before) is given up, the old worker kept.
    (tmp_path / "slow_app.py").write_text(SLOW_APP)
    # (One worker, under a supervisor: the request limit puts it there.)
    args = ("--app-dir", str(tmp_path), "--limit-max-requests", "1000", "--ping-interval", "none")
    env = {"WEBSOCKET_WORKER_START_TIMEOUT": "0.5"}
    async with running_cli("slow_app:routes", *args, env=env) as cli:
        await wait_for(lambda: "1 worker accepting" in cli.stderr, what="the worker")
        (old,) = children(cli.proc.pid)
        (tmp_path / "SLOW").write_text("30")
        cli.proc.send_signal(signal.SIGHUP)
        # Why is said: it was given up, and killed (it said nothing itself).
        given_up = "did not start accepting within 0.5 s (--worker-start-timeout): killed; keeping"
        await wait_for(lambda: f"{given_up} pid {old}" in cli.stderr, what="it")
        assert old in children(cli.proc.pid)
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{cli.port}/v")).text == "ok"


@pytest.mark.drill
async def test_a_worker_started_again_that_does_not_accept_is_warned_of(tmp_path: Path) -> None:
    # One worker, killed (the OOM killer, say); the one started in its place
    # hangs in its start (a database that does not answer): no worker served,
    # connections waited in the socket's queue, and the log's last word was
    # "worker 1 started". Only the first start was warned of.
    hold = tmp_path / "hold"
    args = ("--workers", "1", "--worker-start-timeout", "0.5")
    env = {"SLOW_IMPORT_IF": str(hold)}
    async with running_cli("tests.worker_app:routes", *args, env=env) as cli:
        await wait_for(lambda: "1 worker accepting" in cli.stderr, what="the worker")
        (victim,) = children(cli.proc.pid)
        hold.touch()
        os.kill(victim, signal.SIGKILL)
        await wait_for(lambda: "importing slowly" in cli.stderr, what="its start")
        (again,) = children(cli.proc.pid) - {victim}
        slow = f"worker 1 (pid {again}) does not accept yet after 0.5 s"
        await wait_for(lambda: slow in cli.stderr, what="the warning")
        assert "no worker accepts: connections wait" in cli.stderr.partition(slow)[2]
        hold.unlink()
        await wait_for(lambda: f"worker 1 (pid {again}) accepting" in cli.stderr, what="it")
    assert cli.stderr.count(slow) == 1


@pytest.mark.drill
async def test_sighup_rolling_restart_under_a_stream_of_new_connections() -> None:
    async with supervisor() as cli:
        old_workers = children(cli.proc.pid)
        old_clients = [await pid_of_connection(cli.url) for _ in range(6)]
        failures: list[BaseException] = []
        served: list[int] = []
        streaming = True

        async def stream() -> None:
            while streaming:
                try:
                    async with websockets.connect(cli.url + "/pid", open_timeout=5) as ws:
                        served.append(int(await asyncio.wait_for(ws.recv(), TIMEOUT)))
                except ConnectionClosed as exc:
                    if exc.rcvd is None or exc.rcvd.code != 1012:
                        failures.append(exc)  # a 1012 right after the 101 is a restart
                except Exception as exc:
                    failures.append(exc)

        streams = [asyncio.create_task(stream()) for _ in range(4)]
        await asyncio.sleep(0.3)
        os.kill(cli.proc.pid, signal.SIGHUP)
        await wait_for(lambda: "rolling restart done" in cli.stderr, what="the restart")
        await asyncio.sleep(0.3)
        streaming = False
        await asyncio.gather(*streams)
        new_workers = children(cli.proc.pid)
        assert len(new_workers) == 2 and not new_workers & old_workers
        assert not failures, failures[:3]
        assert set(served) & new_workers and set(served) & old_workers
        for ws, _ in old_clients:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert ws.close_code == 1012
        assert not any(alive(pid) for pid in old_workers)


async def test_sigterm_closes_every_client_with_1001_and_leaves_no_orphan() -> None:
    async with supervisor() as cli:
        workers = children(cli.proc.pid)
        clients = await asyncio.gather(*(pid_of_connection(cli.url) for _ in range(10)))
        cli.proc.send_signal(signal.SIGTERM)
        for ws, _ in clients:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert ws.close_code == 1001
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0
        await wait_for(lambda: not any(alive(pid) for pid in workers), what="the workers' end")


async def test_sigterm_wakes_a_stopped_worker_to_stop() -> None:
    # A worker stopped (kill -STOP: a debugger, an operator's look at it)
    # acts on no signal until a SIGCONT: the supervisor's SIGTERM waited out
    # its whole grace (25 s by default), then the worker was killed. systemd
    # sends SIGCONT after its stop signal for this; the supervisor now does.
    async with supervisor() as cli:
        stopped = min(children(cli.proc.pid))
        os.kill(stopped, signal.SIGSTOP)
        started = asyncio.get_running_loop().time()
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0
        assert asyncio.get_running_loop().time() - started < TIMEOUT / 2
        await wait_for(lambda: not alive(stopped), what="the stopped worker's end")
    assert "killed" not in cli.stderr, cli.stderr


@pytest.mark.drill
async def test_sigterm_to_every_process_at_once_stays_graceful() -> None:
    # systemd (KillMode=control-group) and pkill signal the supervisor and
    # each worker, and the supervisor passes it on: each worker gets SIGTERM
    # twice. A worker used to take the second for impatience and exit at once.
    async with supervisor("--close-timeout", "1") as cli:
        workers = children(cli.proc.pid)
        clients = []
        while {pid for _, pid in clients} != workers:
            assert len(clients) < 60
            client = await RawClient.connect(cli.port, "/pid")  # never answers a close
            _, _, _, payload = await client.recv_frame(timeout=TIMEOUT)
            clients.append((client, int(payload)))
        for pid in workers:  # (one delivery each, then the supervisor's: the
            os.kill(pid, signal.SIGTERM)  # kernel merges two that arrive together)
        await wait_for(
            lambda: cli.stderr.count("SIGTERM: shutting down") == len(workers), what="workers"
        )
        cli.proc.send_signal(signal.SIGTERM)
        for client, _ in clients:
            opcode, _, _, payload = await client.recv_frame(timeout=TIMEOUT)
            assert (opcode, payload[:2]) == (8, b"\x03\xe9")  # close 1001
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0
        for client, _ in clients:
            client.close()
    assert "exiting now" not in cli.stderr and "killed" not in cli.stderr
    assert cli.stderr.count("SIGTERM: shutting down already") == len(workers)


@pytest.mark.drill
async def test_a_worker_sent_sigterm_by_someone_else_is_replaced_without_an_error() -> None:
    # "ERROR worker 1 (pid N) died (exit code 0 after 2.0 s); starting another":
    # a worker that someone stopped (kill -TERM PID, to recycle it) stopped
    # as asked, and was logged as a crash.
    async with supervisor() as cli:
        workers = children(cli.proc.pid)
        victim = min(workers)
        os.kill(victim, signal.SIGTERM)
        await wait_for(lambda: len(children(cli.proc.pid) - {victim}) == 2, what="a replacement")
        await wait_for(lambda: cli.stderr.count("accepting on") == 3, what="it accepting")
        line = next(line for line in cli.stderr.splitlines() if f"(pid {victim}) stopped" in line)
        assert " INFO " in line and "stopped on SIGTERM" in line and "starting another" in line
    assert " ERROR " not in cli.stderr, cli.stderr


@pytest.mark.drill
@pytest.mark.parametrize("app", ["slow_app:app", "slow_import:routes"])
async def test_a_worker_sent_sigterm_by_someone_else_while_starting_is_no_failure(
    tmp_path: Path, app: str
) -> None:
    # A worker stopped in its start (a slow lifespan startup) said so before
    # any READY, and the supervisor took that word for a failed start: "ERROR
    # ... died at start-up (exit code 0)", and with no worker started yet,
    # "no worker ever started: stopping (exit code 1)", as when systemd
    # signals every process of a service during a start.
    # (Or in its import, where it said nothing of the signal.)
    (tmp_path / "slow_app.py").write_text(SLOW_STARTUP_APP)
    (tmp_path / "slow_import.py").write_text(SLOW_IMPORT_APP)
    args = (app, "--app-dir", str(tmp_path), "--workers", "1")
    async with running_cli(*args) as cli:
        began = "starting" if app == "slow_app:app" else "importing"
        await wait_for((tmp_path / began).exists, what="its start")
        (worker,) = children(cli.proc.pid)
        os.kill(worker, signal.SIGTERM)
        await wait_for(lambda: cli.stderr.count("started (pid") == 2, 15.0, what="another")
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0
    assert " ERROR " not in cli.stderr, cli.stderr
    assert f"(pid {worker}) stopped on SIGTERM" in cli.stderr


#: An application whose import sends its own process SIGTERM.
SELF_STOPPING_APP = """
import os, signal
signal.raise_signal(signal.SIGTERM)
"""


@pytest.mark.drill
async def test_an_app_that_stops_itself_while_starting_is_restarted_with_a_back_off(
    tmp_path: Path,
) -> None:
    # A worker stopped by a SIGTERM it was not sent by the supervisor, in its
    # start, was started again at once each time, at INFO: an application
    # that signals itself in its import was restarted every second or so for
    # ever, with nothing in the log above INFO. The first such stop is still
    # restarted at once (an operator's kill of a starting worker); each
    # further one in a row before any worker of the slot accepted waits longer.
    (tmp_path / "self_stop.py").write_text(SELF_STOPPING_APP + "routes = None\n")
    args = ("self_stop:routes", "--app-dir", str(tmp_path), "--workers", "1")
    async with running_cli(*args) as cli:
        await wait_for(lambda: "3 in a row" in cli.stderr, 30.0, what="the third stop")
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0
    stops = [line for line in cli.stderr.splitlines() if "stopped on SIGTERM" in line]
    assert " INFO " in stops[0] and "starting another" in stops[0], stops
    assert "in a row" not in stops[0] and stops[0].endswith("starting another"), stops
    assert " WARNING " in stops[1] and "2 in a row" in stops[1], stops
    assert stops[1].endswith("starting another in 0.5 s"), stops
    assert " WARNING " in stops[2] and stops[2].endswith("starting another in 1.0 s"), stops
    assert " ERROR " not in cli.stderr, cli.stderr


#: A sitecustomize that holds the first worker before it imports anything
#: (wsserver's stop handlers unset: a stop signal's default action ends it).
HELD_BEFORE_ITS_IMPORTS = """
import os, sys, time
if "--worker" in sys.argv:
    born = os.path.join(os.path.dirname(os.path.abspath(__file__)), "born")
    if not os.path.exists(born):
        open(born, "w").close()
        time.sleep(30)
"""


@pytest.mark.drill
async def test_a_worker_ended_by_someone_elses_sigterm_before_its_handlers_is_no_failure(
    tmp_path: Path,
) -> None:
    # A worker sent SIGTERM before wsserver set its handlers (its first few
    # hundred milliseconds) died by the signal's default action: "ERROR ...
    # died at start-up (signal SIGTERM)", and with no worker started yet, "no
    # worker ever started: stopping (exit code 1)". The supervisor sends no
    # stop signal but when it stops or retires a worker: this one was someone
    # else's (systemd signalling every process of a service during a start).
    (tmp_path / "sitecustomize.py").write_text(HELD_BEFORE_ITS_IMPORTS)
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    async with running_cli(
        "examples.echo:routes", "--workers", "1", env={"PYTHONPATH": pythonpath}
    ) as cli:
        await wait_for((tmp_path / "born").exists, 15.0, what="the worker held")
        (worker,) = children(cli.proc.pid)
        os.kill(worker, signal.SIGTERM)
        await wait_for(lambda: "accepting on" in cli.stderr, 15.0, what="another accepting")
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0
    assert " ERROR " not in cli.stderr, cli.stderr
    line = next(line for line in cli.stderr.splitlines() if f"(pid {worker}) stopped" in line)
    assert " INFO " in line and "stopped on SIGTERM" in line and "starting another" in line


@pytest.mark.drill
async def test_sigterm_to_the_workers_a_moment_before_the_supervisor_starts_no_worker() -> None:
    # As when every process of the service is signalled (systemd's cgroup
    # kill, pkill) and the workers' stop comes first: each was logged as
    # "ERROR ... died (exit code 0 ...); starting another in 0.5 s".
    async with supervisor() as cli:
        workers = children(cli.proc.pid)
        for pid in workers:
            os.kill(pid, signal.SIGTERM)
        await wait_for(lambda: not any(map(alive, workers)), what="the workers' end")
        await asyncio.sleep(0.3)  # (the supervisor's signal comes a moment later)
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0
    assert " ERROR " not in cli.stderr and cli.stderr.count("started (pid") == 2, cli.stderr


@pytest.mark.drill
async def test_new_connections_are_refused_while_the_workers_drain() -> None:
    # The supervisor kept its copy of the listening socket until every worker
    # was gone: the kernel queued new connections nobody accepted, reset at
    # the end, rather than refusing them as one process does.
    async with supervisor("--close-timeout", "3") as cli:
        client = await RawClient.connect(cli.port, "/pid")  # never answers a close
        await client.recv_frame(timeout=TIMEOUT)
        cli.proc.send_signal(signal.SIGTERM)
        opcode, _, _, _ = await client.recv_frame(timeout=TIMEOUT)
        assert opcode == 8  # its worker is draining (for close_timeout)
        await wait_for(lambda: cli.stderr.count("SIGTERM: shutting down") == 2, what="workers")
        await asyncio.sleep(0.2)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", cli.port)
        assert cli.proc.returncode is None  # still draining
        client.close()
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0


@pytest.mark.drill
async def test_sigint_to_a_retiring_worker_is_a_stop_not_a_second_signal() -> None:
    # (systemd with KillSignal=SIGINT during a rolling restart, say.)
    async with supervisor("--close-timeout", "1") as cli:
        client = await RawClient.connect(cli.port, "/pid")  # never answers a close
        _, _, _, payload = await client.recv_frame(timeout=TIMEOUT)
        worker = int(payload)
        os.kill(worker, signal.SIGHUP)  # retiring: its client gets 1012
        opcode, _, _, payload = await client.recv_frame(timeout=TIMEOUT)
        assert (opcode, payload[:2]) == (8, b"\x03\xf4")  # close 1012
        os.kill(worker, signal.SIGINT)
        await wait_for(lambda: "SIGINT: retiring already" in cli.stderr, what="the log line")
        await wait_for(lambda: not alive(worker), what="its end")
        client.close()
    assert "exiting now" not in cli.stderr


@pytest.mark.drill
async def test_a_stop_during_a_rolling_restart_waits_for_no_handshake() -> None:
    # A worker retiring in a rolling restart lets the requests under way
    # finish (within open_timeout) before it closes its WebSockets with 1012.
    # SIGTERM then ("retiring already") changed nothing: it went on waiting
    # for a request head still on its way (a slow client, a slowloris) for
    # the whole open_timeout, then told its clients 1012, "come back", as
    # the service went away; with the defaults it could outlast the
    # supervisor's stop_grace and be killed. A stop waits for no handshake:
    # its clients get 1001 at once.
    args = ("tests.worker_app:routes", "--workers", "1", "--ping-interval", "none")
    times = ("--open-timeout", "60", "--close-timeout", "1")
    async with running_cli(*args, *times) as cli:
        await wait_for(lambda: "1 worker accepting" in cli.stderr, what="the worker")
        _, slow = await asyncio.open_connection("127.0.0.1", cli.port)
        slow.write(b"GET /pid HTTP/1.1\r\nHost: x\r\n")  # its head on its way, for ever
        client = await RawClient.connect(cli.port, "/pid")  # never answers a close
        _, _, _, payload = await client.recv_frame(timeout=TIMEOUT)
        worker = int(payload)
        cli.proc.send_signal(signal.SIGHUP)
        await wait_for(lambda: f"pid {worker} retiring" in cli.stderr, what="its retiring")
        cli.proc.send_signal(signal.SIGTERM)
        opcode, _, _, payload = await client.recv_frame(timeout=TIMEOUT)
        assert (opcode, payload[:2]) == (8, (1001).to_bytes(2, "big")), payload
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0, cli.stderr
        client.close()
        slow.close()
    assert "SIGTERM: retiring already" in cli.stderr


@pytest.mark.drill
async def test_a_slot_given_up_while_its_worker_s_end_is_looked_into() -> None:
    # A worker that exits 0 by itself leaves the supervisor up to a second to
    # hear whether it was signalled (its channel's end; a child it forked
    # may hold it). SIGTTOU giving its slot up meanwhile made the supervisor
    # then replace it all the same, in a slot no more: a KeyError in its
    # task, a traceback on stderr.
    async with supervisor() as cli:
        last = next(pid for pid in children(cli.proc.pid) if _slot_of(pid) == 2)
        for _ in range(100):  # (until the last slot's worker serves the connection)
            client = await RawClient.connect(cli.port, "/exit")
            _, _, _, payload = await client.recv_frame(timeout=TIMEOUT)
            if int(payload) == last:
                break
            client.close()
        else:
            pytest.fail("the last slot's worker served none of 100 connections")
        client.send(1, b"go")
        await wait_for(lambda: last not in children(cli.proc.pid), what="its end")
        cli.proc.send_signal(signal.SIGTTOU)
        await wait_for(lambda: "one fewer worker, 1 in all" in cli.stderr, what="SIGTTOU")
        ended = f"worker 2 (pid {last}) ended (exit code 0), its slot given up meanwhile"
        await wait_for(lambda: ended in cli.stderr, what="its end said")
        client.close()
        assert len(children(cli.proc.pid)) == 1, cli.stderr  # (the other slot's worker)
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0, cli.stderr
    assert "Traceback" not in cli.stderr and "KeyError" not in cli.stderr, cli.stderr


def _slot_of(pid: int) -> int | None:
    """The slot a worker process serves (its ``--worker SLOT:FD:PID``), None if none."""
    words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    for option, value in itertools.pairwise(words):
        if option == b"--worker":
            return int(value.split(b":")[0])
    return None


@pytest.mark.drill
async def test_sigttin_adds_a_worker_and_sigttou_retires_one(tmp_path: Path) -> None:
    # As uvicorn's supervisor: one more, one fewer, never none. These two
    # signals' default is to stop the process: the supervisor froze, and a
    # SIGTERM then did nothing until a SIGCONT.
    async with supervisor() as cli:
        first = children(cli.proc.pid)
        cli.proc.send_signal(signal.SIGTTIN)
        await wait_for(lambda: len(children(cli.proc.pid)) == 3, what="a third worker")
        third = children(cli.proc.pid) - first
        await wait_for(lambda: "one more worker, 3 in all" in cli.stderr, what="the log line")

        async def third_accepting() -> bool:
            # (Started is not accepting yet: on a busy machine the new worker
            # took longer to start than 400 connections took to be served.)
            batch = await on_every_worker(cli.url, third, most=40)
            for ws, _ in batch:
                await ws.close()
            return any(pid in third for _, pid in batch)

        await wait_for(third_accepting, what="the third worker accepting")
        # The supervisor says when it accepts, not only that it started.
        (pid,) = third
        await wait_for(lambda: f"worker 3 (pid {pid}) accepting" in cli.stderr, what="its line")
        connections = await on_every_worker(cli.url, first | third)
        assert {pid for _, pid in connections} == first | third  # it serves too

        cli.proc.send_signal(signal.SIGTTOU)  # the last one in (slot 3) retires
        for ws, pid in connections:
            if pid in third:
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
                assert ws.close_code == 1012  # (come back: to another)
        await wait_for(lambda: children(cli.proc.pid) == first, what="two workers")
        for ws, pid in connections:
            if pid not in third:
                await ws.send("still here")
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "still here"
                await ws.close()

        cli.proc.send_signal(signal.SIGTTOU)
        await wait_for(lambda: len(children(cli.proc.pid)) == 1, what="one worker")
        cli.proc.send_signal(signal.SIGTTOU)
        await wait_for(lambda: "the fewest there can be" in cli.stderr, what="the warning")
        assert len(children(cli.proc.pid)) == 1
        async with httpx.AsyncClient() as client:
            assert (await client.get(cli.url.replace("ws://", "http://") + "/")).status_code < 500
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0


HELD_APP = """
import sys
import time
from pathlib import Path

from wsserver import Router

# Each worker's import waits while its file is there: HOLD-3 for slot 3's
# (the slot is on its command line: --worker SLOT:FD:PID), HOLD for the others;
# IMPORTING-SLOT says it has begun.
slot = sys.argv[sys.argv.index("--worker") + 1].split(":")[0]
(Path(__file__).parent / f"IMPORTING-{slot}").touch()
while (Path(__file__).parent / ("HOLD-3" if slot == "3" else "HOLD")).exists():
    time.sleep(0.05)

routes = Router()
"""


@pytest.mark.drill
async def test_a_worker_added_during_the_first_start_is_not_said_to_accept_before_it_does(
    tmp_path: Path,
) -> None:
    # "N workers accepting", once the first workers accept, counted those
    # SIGTTIN had added meanwhile, still starting: "3 workers accepting" with
    # two; the third said so itself later.
    (tmp_path / "held.py").write_text(HELD_APP)
    (tmp_path / "HOLD").touch()
    (tmp_path / "HOLD-3").touch()
    args = ("held:routes", "--app-dir", str(tmp_path), "--workers", "2")
    async with running_cli(*args) as cli:
        await wait_for(lambda: "worker 2 started" in cli.stderr, what="the first workers")
        cli.proc.send_signal(signal.SIGTTIN)
        await wait_for(lambda: "worker 3 started" in cli.stderr, what="a third worker")
        (tmp_path / "HOLD").unlink()
        await wait_for(lambda: "workers accepting" in cli.stderr, what="the first two")
        assert "2 workers accepting" in cli.stderr
        (tmp_path / "HOLD-3").unlink()
        await wait_for(lambda: re.search(r"worker 3 \(pid \d+\) accepting$", cli.stderr, re.M))
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0


@pytest.mark.drill
async def test_sigttou_stops_a_worker_still_starting_at_once(tmp_path: Path) -> None:
    # SIGTTOU retired the last slot's worker with SIGHUP even while it was
    # still starting, which a worker holds until it serves: one whose import
    # hangs stayed for the whole grace (35 s with the defaults), then was
    # killed with a warning. A rolling restart's replacement gets SIGTERM then.
    (tmp_path / "held.py").write_text(HELD_APP)
    (tmp_path / "HOLD-3").touch()
    args = ("held:routes", "--app-dir", str(tmp_path), "--workers", "2")
    async with running_cli(*args) as cli:
        await wait_for(lambda: "2 workers accepting" in cli.stderr, what="the first two")
        first = children(cli.proc.pid)
        cli.proc.send_signal(signal.SIGTTIN)
        # (In the application's import: wsserver's own, its signals set, came before.)
        await wait_for((tmp_path / "IMPORTING-3").exists, what="the third importing")
        cli.proc.send_signal(signal.SIGTTOU)
        await wait_for(lambda: "worker 3 (pid" in cli.stderr, what="its retiring")
        # (Well within the grace, open_timeout + shutdown_timeout +
        # close_timeout + 5 s: 35 s here.)
        await wait_for(lambda: children(cli.proc.pid) == first, 15.0, what="two workers")
        assert "did not stop" not in cli.stderr
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0


@pytest.mark.drill
async def test_a_worker_whose_event_loop_is_blocked_is_killed_and_replaced() -> None:
    # --timeout-worker-healthcheck: the worker's loop answers the supervisor;
    # a handler that blocks it (here for 60 s) leaves its clients unserved.
    async with supervisor("--timeout-worker-healthcheck", "1") as cli:
        workers = children(cli.proc.pid)
        http = cli.url.replace("ws://", "http://")
        async with httpx.AsyncClient(timeout=30) as client:
            blocked = asyncio.create_task(client.get(http + "/block?s=60"))
            await wait_for(
                lambda: "did not answer within 1 s (its event loop is blocked?)" in cli.stderr,
                what="the health check's verdict",
                timeout=TIMEOUT,
            )
            with pytest.raises(httpx.RemoteProtocolError):  # (its worker was killed)
                await blocked
        await wait_for(
            lambda: len(children(cli.proc.pid)) == 2 and children(cli.proc.pid) != workers,
            what="a replacement",
        )
        assert "died (signal SIGKILL" in cli.stderr
        connections = await on_every_worker(cli.url, children(cli.proc.pid))
        for ws, _ in connections:
            await ws.close()


@pytest.mark.drill
async def test_sigterm_gives_a_stuck_worker_its_shutdown_not_its_open_timeout() -> None:
    # The supervisor waited open_timeout + shutdown_timeout + close_timeout +
    # 5 s before killing a worker that did not stop on SIGTERM (35 s with the
    # defaults, past Kubernetes' 30 s grace): open_timeout is a rolling
    # restart's (handshakes let finish), not a stop's.
    async with supervisor(
        "--timeout-worker-healthcheck",
        "none",
        "--open-timeout",
        "30",
        "--shutdown-timeout",
        "1",
        "--close-timeout",
        "1",
    ) as cli:
        http = cli.url.replace("ws://", "http://")
        async with httpx.AsyncClient(timeout=30) as client:
            blocked = asyncio.create_task(client.get(http + "/block?s=60"))
            await asyncio.sleep(0.5)
            loop = asyncio.get_running_loop()
            started = loop.time()
            cli.proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(cli.proc.wait(), 40) == 0
            took = loop.time() - started
            with pytest.raises(httpx.HTTPError):
                await blocked
        assert "did not stop: killed" in cli.stderr
        assert 6.0 < took < 12.0, took  # (1 + 1 + 5 s; was 37 s)


@pytest.mark.drill
@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [("1", "0"), ("3", "1.5"), ("none", "3")],
    ids=["idle", "busy-within-it", "no-health-check"],
)
async def test_a_worker_that_answers_is_left_alone(timeout: str, seconds: str) -> None:
    # A worker whose loop answers (idle, or busy for less than the timeout),
    # or with no health check, is never killed.
    async with supervisor("--timeout-worker-healthcheck", timeout) as cli:
        workers = children(cli.proc.pid)
        http = cli.url.replace("ws://", "http://")
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.get(f"{http}/block?s={seconds}")
        assert int(response.text) in workers
        await asyncio.sleep(3.0)  # (three looks more)
        assert children(cli.proc.pid) == workers
        assert "did not answer" not in cli.stderr


async def test_a_sighup_during_the_supervisor_s_start_does_not_kill_it(tmp_path: Path) -> None:
    # Before the event loop's handlers were set, SIGHUP's default action
    # killed the supervisor (exit -1): a reload sent just after a start. No
    # worker had started yet: they all start with what is there now, and
    # there is nothing to restart (said in the log).
    args = ("tests.worker_app:routes", "--workers", "2", "--ping-interval", "none")
    async with signalled_reading_its_env_file(tmp_path, *args) as cli:
        await wait_for(lambda: "workers accepting" in cli.stderr, what="the workers")
        listening = LISTENING_RE.search(cli.stderr)
        assert listening is not None
        cli.port = int(listening.group(1))
        assert "SIGHUP during the start: nothing to restart" in cli.stderr
        assert "rolling restart" not in cli.stderr
        async with websockets.connect(cli.url + "/pid") as ws:
            assert int(await asyncio.wait_for(ws.recv(), TIMEOUT)) in children(cli.proc.pid)
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0


@pytest.mark.parametrize(
    ("signum", "said", "workers"),
    [
        (signal.SIGTTIN, "SIGTTIN: one more worker, 3 in all", 3),
        (signal.SIGTTOU, "SIGTTOU: one fewer worker, 1 in all", 1),
    ],
)
async def test_a_scaling_signal_during_the_supervisor_s_start_is_acted_on_once_it_can(
    tmp_path: Path, signum: int, said: str, workers: int
) -> None:
    # Before the event loop's handlers were set, the default action of
    # SIGTTIN and SIGTTOU stopped the supervisor (a scaling script run just
    # after the start): frozen, its port bound, its SIGTERM not acted on
    # until a SIGCONT. It waits now, and is acted on once they are.
    args = ("tests.worker_app:routes", "--workers", "2", "--ping-interval", "none")
    async with signalled_reading_its_env_file(tmp_path, *args, signum=signum) as cli:
        await wait_for(lambda: said in cli.stderr, what="the signal acted on")
        await wait_for(lambda: len(children(cli.proc.pid)) == workers, what="the workers")
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0


async def test_a_stop_while_the_workers_start_starts_no_more_of_them(tmp_path: Path) -> None:
    # The start loop ends once the supervisor is stopping. Made to wait where
    # worker 1 is being started: its environment, read again from the
    # --env-file for each worker, comes from a FIFO, which gives it once
    # SIGTERM has come. (asyncio runs a signal's handler a loop iteration or
    # two after it came: worker 2's start, begun in between, is let be, and
    # the worker stopped with the others. Worker 3's is never begun.)
    fifo = tmp_path / "env"
    os.mkfifo(fifo)

    async def give(then: Any = None) -> None:
        # (Opened once the supervisor opens it to read; closed: it reads the end.)
        fd = await asyncio.wait_for(asyncio.to_thread(os.open, fifo, os.O_WRONLY), TIMEOUT)
        try:
            if then is not None:
                await then()
        finally:
            os.close(fd)

    async def stop() -> None:
        cli.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)  # (delivered, and queued to the event loop)
        # A file from now on: a worker started after all gets its environment.
        (tmp_path / "env.file").write_text("")
        os.replace(tmp_path / "env.file", fifo)

    loaded = asyncio.create_task(give())  # (the supervisor's own load, as it starts)
    args = ("--workers", "3", "--ping-interval", "none", "--env-file", str(fifo))
    async with running_cli("tests.worker_app:routes", *args) as cli:
        await loaded
        await give(stop)  # (read for worker 1)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0
    started = [int(pid) for pid in re.findall(r"worker \d started \(pid (\d+)\)", cli.stderr)]
    assert "worker 1 started" in cli.stderr and "worker 3" not in cli.stderr, cli.stderr
    assert not any(alive(pid) for pid in started)
    assert "SIGTERM: stopping the workers" in cli.stderr
    assert "accepting" not in cli.stderr  # (none was: it was stopped, as it started)
    assert "stopped" in cli.stderr


SLOT_TWO_HANGS_APP = """
import pathlib
import sys
import time

from wsserver import Router

# Slot 2's worker hangs in its start (slot 1's starts): the slot is on the
# worker's command line (--worker SLOT:FD:PID). It says so in a file beside.
if sys.argv[sys.argv.index("--worker") + 1].split(":")[0] == "2":
    pathlib.Path(__file__).with_name("hanging").touch()
    time.sleep(60)
routes = Router()
"""


@pytest.mark.drill
async def test_a_stop_during_a_first_start_that_hangs_says_no_worker_accepts(
    tmp_path: Path,
) -> None:
    # The line that the first workers accept waited for every one of them: a
    # stop then (SIGTERM) ended the hung start, and "1 worker accepting" came
    # last, after every worker had stopped (a drill waiting for it, or a
    # person reading the log, took the server for up).
    (tmp_path / "slot_two_hangs.py").write_text(SLOT_TWO_HANGS_APP)
    args = ("--app-dir", str(tmp_path), "--workers", "2", "--ping-interval", "none")
    async with running_cli("slot_two_hangs:routes", *args) as cli:
        await wait_for(lambda: "worker 1 (pid" in cli.stderr, what="worker 1 accepting")
        # (Not before: a SIGTERM that comes before a worker's handlers are
        # set, as it imports Python's modules, ends it without a word.)
        await wait_for(lambda: (tmp_path / "hanging").exists(), what="worker 2 hanging")
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0
    after = cli.stderr.partition("SIGTERM: stopping the workers")[2]
    assert "SIGTERM: stopped before it started" in after  # (worker 2, hung)
    assert "accepting" not in after, after


async def test_workers_die_with_a_killed_supervisor() -> None:
    async with supervisor() as cli:
        workers = children(cli.proc.pid)
        cli.proc.kill()
        await cli.proc.wait()
        await wait_for(lambda: not any(alive(pid) for pid in workers), what="orphans to go")


BLOCKING_APP = """
import time
from pathlib import Path

from wsserver import Router
from wsserver.response import text

routes = Router()


@routes.get("/block")
async def block(request):
    (Path(__file__).parent / "blocked").touch()
    time.sleep(120)  # (a handler's bug: a deadlock, a blocking call)
    return text("late")
"""


async def test_a_worker_whose_event_loop_is_blocked_dies_with_a_killed_supervisor(
    tmp_path: Path,
) -> None:
    # The supervisor killed (kill -9, the OOM killer), its workers are sent
    # SIGTERM (PR_SET_PDEATHSIG), which their event loops act on: a worker
    # whose loop a handler blocked went on, orphaned, for as long as the
    # handler (for ever, a deadlock), holding the port (a server started
    # again: "address already in use"), with no supervisor left to kill it as
    # it kills one that does not stop in time. It ends once that grace is
    # over (shutdown_timeout + close_timeout + 5 s).
    (tmp_path / "blocking.py").write_text(BLOCKING_APP)
    async with running_cli(
        "blocking:routes",
        *("--app-dir", str(tmp_path), "--workers", "1"),
        *("--shutdown-timeout", "0.5", "--close-timeout", "0.5", "--ping-interval", "none"),
    ) as cli:
        await wait_for(lambda: "1 worker accepting" in cli.stderr, what="the worker")
        (worker,) = children(cli.proc.pid)
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", cli.port)
            writer.write(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
            await wait_for(lambda: (tmp_path / "blocked").exists(), what="the handler")
            cli.proc.kill()  # (not waited for: wait() waits for its stderr, the orphan's too)
            await wait_for(lambda: not alive(worker), timeout=6 + TIMEOUT, what="the orphan to go")
            writer.close()
        finally:
            if alive(worker):
                os.kill(worker, signal.SIGKILL)
    assert "the supervisor is gone and this worker did not stop within 6 s" in cli.stderr


async def test_an_app_that_never_starts_ends_the_supervisor_with_its_exit_code() -> None:
    # It retried for ever (backing off), and exited 0 when told to stop: a
    # process manager (systemd's Restart=on-failure, a container's restart
    # policy) never saw the failure, while clients waited in the backlog.
    async with supervisor(env={"CRASH_AT_IMPORT": "1"}) as cli:
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 1  # the worker's
    started = [int(pid) for pid in re.findall(r"started \(pid (\d+)\)", cli.stderr)]
    assert len(started) == 2  # one per slot: not retried
    assert not any(alive(pid) for pid in started)
    assert "this application is broken on purpose" in cli.stderr  # the worker's own error
    assert "no worker ever started: stopping (exit code 1)" in cli.stderr
    assert "no worker accepts yet" not in cli.stderr  # (they died: they are not slow)


async def test_why_the_supervisor_stops_is_said_at_log_level_critical() -> None:
    # It was said at ERROR, which --log-level critical leaves out: the process
    # ended without a word of its own. As the command's _fatal(): at ERROR,
    # or CRITICAL where ERROR is left out.
    args = ("tests.worker_app:routes", "--workers", "2", "--log-level", "critical", "--port", "0")
    code, err = await run_cli_to_end(*args, env={"CRASH_AT_IMPORT": "1"})
    assert code == 1
    (line,) = [line for line in err.splitlines() if "no worker ever started" in line]
    assert " CRITICAL wsserver.supervisor: " in line and "stopping (exit code 1)" in line, err


async def test_a_broken_app_is_started_once_per_slot_however_long_each_takes_to_fail(
    tmp_path: Path,
) -> None:
    # One worker failed at once, the other only after the start-up backoff
    # (0.5 s): the first was started again before the second had failed, and
    # a third process started (CI, under load). None is retried now until
    # another worker has started.
    (tmp_path / "slowly_broken_app.py").write_text(SLOWLY_BROKEN_APP)
    args = ("--app-dir", str(tmp_path), "--workers", "2", "--ping-interval", "none")
    async with running_cli("slowly_broken_app:routes", *args) as cli:
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 1
    assert cli.stderr.count("started (pid") == 2, cli.stderr
    assert "starting another once a worker has started" in cli.stderr
    assert "no worker ever started: stopping (exit code 1)" in cli.stderr


@pytest.mark.drill
async def test_sigttou_leaving_only_slots_that_never_started_ends_the_supervisor(
    tmp_path: Path,
) -> None:
    # One worker died starting and waits for another to start; SIGTTOU took
    # away the other, still starting: nothing would ever start, and the
    # supervisor waited for ever, with no worker.
    (tmp_path / "slot_broken_app.py").write_text(SLOT_ONE_FAILS_AT_ONCE_APP)
    args = ("--app-dir", str(tmp_path), "--workers", "2", "--ping-interval", "none")
    async with running_cli("slot_broken_app:routes", *args) as cli:
        await wait_for(
            lambda: "starting another once a worker has started" in cli.stderr,
            what="the first worker's death",
        )
        cli.proc.send_signal(signal.SIGTTOU)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 1
    assert "no worker ever started, and none is left to: stopping (exit code 1)" in cli.stderr


def test_the_scaling_signals_are_left_to_job_control_on_a_tostop_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A background process that writes to a terminal set to tostop gets
    # SIGTTOU from the kernel: caught, the write was retried for ever, and
    # each signal took a worker away.
    import pty
    import termios

    from wsserver.supervisor import _terminal_stops_background_writes

    leader, follower = pty.openpty()
    try:
        with os.fdopen(os.dup(follower), "w") as terminal:
            monkeypatch.setattr(sys, "stderr", terminal)
            monkeypatch.setattr(sys, "stdout", terminal)
            assert not _terminal_stops_background_writes()
            attributes = termios.tcgetattr(follower)
            attributes[3] |= termios.TOSTOP
            termios.tcsetattr(follower, termios.TCSANOW, attributes)
            assert _terminal_stops_background_writes()
    finally:
        os.close(leader)
        os.close(follower)


@pytest.mark.drill
async def test_one_worker_failing_at_start_up_while_another_starts_is_retried(
    tmp_path: Path,
) -> None:
    # (A dependency down for a moment.) Only when every slot has failed to
    # start, and none ever did, is the application taken for broken.
    (tmp_path / "once_app.py").write_text(ONCE_APP)
    args = ("--app-dir", str(tmp_path), "--workers", "2", "--ping-interval", "none")
    async with running_cli("once_app:routes", *args) as cli:
        failed = "died at start-up (exit code 1); starting another once a worker has started"
        await wait_for(lambda: failed in cli.stderr, what="the failure")
        await wait_for(lambda: "again in 0.5 s" in cli.stderr, what="the other's start")
        await wait_for(lambda: cli.stderr.count(" accepting on ") == 2, what="both workers")
        assert cli.proc.returncode is None
        assert len(children(cli.proc.pid)) == 2

        # The supervisor says when each accepts: the one that started first
        # time too (it said nothing of it, the first start not being whole),
        # as it reads the worker's word, a moment after the worker's own line.
        def said_accepting() -> list[str]:
            lines = [line for line in cli.lines if "wsserver.supervisor" in line]
            return [line for line in lines if re.search(r"accepting$", line.rstrip())]

        await wait_for(lambda: len(said_accepting()) == 2, what="the supervisor's word of both")
        lines = [line for line in cli.lines if "wsserver.supervisor" in line]
        accepting = [line for line in lines if re.search(r"accepting$", line.rstrip())]
        assert len(accepting) == 2, lines
        assert accepting[0].rstrip().endswith("1 worker accepting"), lines


@pytest.mark.drill
async def test_a_crash_looping_app_backs_off(tmp_path: Path) -> None:
    # Up once, then broken (a dependency gone, a file deleted): the workers
    # that die young are started again after 0.5 s, 1 s, 2 s ..., not in a storm.
    (tmp_path / "flaky_app.py").write_text(FLAKY_APP)
    args = ("--app-dir", str(tmp_path), "--workers", "2", "--ping-interval", "none")
    started = time.monotonic()
    async with running_cli("flaky_app:routes", *args) as cli:
        await wait_for(lambda: "workers accepting" in cli.stderr, what="the workers")
        (tmp_path / "BROKEN").touch()
        for pid in children(cli.proc.pid):
            os.kill(pid, signal.SIGKILL)
        await wait_for(lambda: cli.stderr.count("died at start-up") >= 6, what="crashes")
        elapsed = time.monotonic() - started
        text = cli.stderr
        assert "starting another in 0.5 s" in text and "starting another in 1.0 s" in text
        assert "broken until BROKEN is removed" in text  # the worker's own error
        starts = text.count("started (pid")
        # Two slots, delays 0.5, 1, 2, 4 ...: a storm would be hundreds by now.
        assert starts <= 2 + 2 * 5, (starts, elapsed)
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0


SLOW_TO_FAIL_APP = """
import asyncio
from pathlib import Path

from wsserver import Router

routes = Router()


@routes.on_startup
async def connect(server):
    if (Path(__file__).parent / "BROKEN").exists():
        await asyncio.sleep(5.5)  # a database that does not answer, then the driver's timeout
        raise RuntimeError("database unreachable")
"""


@pytest.mark.drill
async def test_a_worker_dying_at_start_up_after_a_slow_start_backs_off(tmp_path: Path) -> None:
    # Up once, then its start-up fails, but only after EARLY_EXIT (5 s) and
    # more: it never accepted, it died at start-up, as the log line says; it
    # was started again at once, every 5.5 s for ever (the database hammered
    # by every worker's reconnection, two log lines each time), where one
    # that fails sooner waits 0.5 s, then 1 s, 2 s ...
    (tmp_path / "slow_app.py").write_text(SLOW_TO_FAIL_APP)
    args = ("--app-dir", str(tmp_path), "--workers", "1", "--ping-interval", "none")
    async with running_cli("slow_app:routes", *args) as cli:
        await wait_for(lambda: "worker accepting" in cli.stderr, what="the worker")
        (tmp_path / "BROKEN").touch()
        for pid in children(cli.proc.pid):
            os.kill(pid, signal.SIGKILL)
        await wait_for(lambda: "died at start-up" in cli.stderr, timeout=TIMEOUT + 6, what="it")
        line = next(line for line in cli.stderr.splitlines() if "died at start-up" in line)
        assert re.search(r"starting another in \d+\.\d s$", line), line  # (0.5 s, or 1 s: the kill
        # too, within 5 s of its start, counts)
        cli.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0


def test_worker_app_is_importable_without_the_crash_flag() -> None:
    assert "CRASH_AT_IMPORT" not in os.environ
    import tests.worker_app

    assert tests.worker_app.routes.match("/pid") is not None
    assert sys.modules["tests.worker_app"] is tests.worker_app


@pytest.mark.drill
async def test_stopping_during_a_rolling_restart_closes_every_client_cleanly() -> None:
    async with supervisor("--open-timeout", "2") as cli:
        workers = children(cli.proc.pid)
        clients = await asyncio.gather(*(pid_of_connection(cli.url) for _ in range(8)))
        # Requests under way keep a retiring worker busy (it lets them finish).
        slow = [await asyncio.open_connection("127.0.0.1", cli.port) for _ in range(6)]
        for _, writer in slow:
            writer.write(b"GET /pid HTTP/1.1\r\nHost: x\r\n")  # not finished yet
        await asyncio.sleep(0.2)
        os.kill(cli.proc.pid, signal.SIGHUP)
        await wait_for(lambda: "retiring" in cli.stderr, what="a worker retiring")
        cli.proc.send_signal(signal.SIGTERM)  # the operator stops the service meanwhile
        codes = []
        for ws, _ in clients:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            codes.append(ws.close_code)
        assert set(codes) <= {1001, 1012}, codes  # a close frame each: nobody dropped (1006)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0
        assert "exiting now" not in cli.stderr
        for _, writer in slow:
            writer.close()
        every = workers | {int(p) for p in _pids_started(cli.stderr)}
        await wait_for(lambda: not any(alive(pid) for pid in every), what="no orphans")


def _pids_started(text: str) -> list[str]:
    return [
        line.rsplit("(pid ", 1)[1].rstrip(")\n")
        for line in text.splitlines()
        if "started (pid" in line
    ]


@pytest.mark.drill
async def test_a_sighup_during_a_rolling_restart_is_not_lost() -> None:
    async with supervisor() as cli:
        first = children(cli.proc.pid)
        os.kill(cli.proc.pid, signal.SIGHUP)
        await wait_for(
            lambda: (
                "rolling restart of" in cli.stderr
                and "started (pid" in cli.stderr.split("rolling restart of")[-1]
            ),
            what="the restart under way",
        )
        os.kill(cli.proc.pid, signal.SIGHUP)  # a second deploy while the first rolls
        await wait_for(lambda: cli.stderr.count("rolling restart done") == 2, what="two restarts")
        assert "another rolling restart will follow" in cli.stderr
        last = children(cli.proc.pid)
        assert len(last) == 2 and not last & first


async def test_a_sighup_during_a_rolling_restart_spares_the_workers_started_after_it(
    tmp_path: Path,
) -> None:
    # The rolling restart a second SIGHUP asks for replaced every worker again,
    # those started after that SIGHUP too (with what it deploys): their
    # WebSocket clients were sent 1012 twice, for nothing.
    hold = tmp_path / "hold"
    async with supervisor(env={"SLOW_IMPORT_IF": str(hold)}) as cli:
        hold.touch()  # (slot 1's replacement hangs in its import)
        os.kill(cli.proc.pid, signal.SIGHUP)
        await wait_for(lambda: "importing slowly" in cli.stderr, what="slot 1's replacement")
        os.kill(cli.proc.pid, signal.SIGHUP)  # a second deploy while the first rolls
        await wait_for(lambda: "will follow the one under way" in cli.stderr, what="the SIGHUP")
        hold.unlink()  # slot 2's replacement starts after the second SIGHUP
        await wait_for(lambda: cli.stderr.count("rolling restart done") == 2, what="two restarts")
        assert cli.stderr.count("worker 1 started") == 3  # the first, and once per SIGHUP
        assert cli.stderr.count("worker 2 started") == 2  # the first, and once after both


async def test_the_status_feed_shows_every_worker() -> None:
    async with supervisor("--status-path", "/_status") as cli:
        clients = [await pid_of_connection(cli.url) for _ in range(20)]
        pids = {pid for _, pid in clients}

        async def workers_seen() -> bool:
            async with websockets.connect(cli.url + "/_status/ws") as feed:
                snapshot = json.loads(await asyncio.wait_for(feed.recv(), TIMEOUT))
            return len(snapshot["worker_totals"]) == 2 and snapshot["totals"]["connections"] == 20

        assert len(pids) >= 1
        await wait_for(workers_seen, what="both workers in the feed")
        for ws, _ in clients:
            await ws.close()


async def test_a_process_the_application_starts_is_not_taken_for_a_worker() -> None:
    # A worker's identity (its slot, its pipe to the supervisor, the
    # supervisor's pid) is for it alone: a wsserver the application starts
    # (or any child) must not inherit it. It did: the child took itself for a
    # worker of a supervisor that is not its parent and killed itself at once.
    # Nor the listening socket or the pipe to the supervisor (os.system, a
    # fork: a child that outlives the worker would hold the port).
    async with supervisor("--status-path", "/_status") as cli:
        async with websockets.connect(cli.url + "/inherited") as ws:
            inherited = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        ours = {k: v for k, v in os.environ.items() if k.startswith("WSSERVER_")}
        assert inherited == {"env": ours, "fds": []}  # nothing the supervisor added
        environment = {**os.environ, **inherited["env"]}
        async with running_cli("tests.worker_app:routes", env=environment) as child:
            ws, pid = await pid_of_connection(child.url)
            assert pid == child.proc.pid
            await ws.close()


@pytest.mark.drill
async def test_workers_run_with_the_interpreter_options_of_the_supervisor() -> None:
    # python -X dev -O -W ... -m wsserver --workers N: each worker ran with
    # none of them (no asyncio debug mode, asserts kept, no warning filter),
    # where one process, and uvicorn's and gunicorn's workers, have them.
    options = ("-X", "dev", "-X", "faulthandler", "-O", "-W", "ignore::ImportWarning")
    command = (sys.executable, *options, "-m", "wsserver")
    async with running_cli(
        "tests.worker_app:routes", "--workers", "1", "--ping-interval", "none", command=command
    ) as cli:
        await wait_for(lambda: "1 worker accepting" in cli.stderr, what="the worker")
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{cli.port}/interpreter")
    worker = response.json()
    assert worker["flags"] == {"dev_mode": True, "optimize": 1}
    assert "ignore::ImportWarning" in worker["warnoptions"]
    assert worker["xoptions"] == {"dev": True, "faulthandler": True}


@pytest.mark.drill
async def test_workers_run_unbuffered_and_with_every_x_option_of_the_supervisor() -> None:
    # subprocess's reading of the options leaves out -u (a container's
    # "python -u": a worker's print() waited in a block buffer) and the -X
    # options outside its short list (int_max_str_digits=0: a worker refused a
    # long int's str() that one process made; warn_default_encoding...).
    options = ("-u", "-X", "int_max_str_digits=0", "-X", "warn_default_encoding")
    command = (sys.executable, *options, "-m", "wsserver")
    async with running_cli(
        "tests.worker_app:routes",
        "--workers",
        "1",
        "--ping-interval",
        "none",
        command=command,
        env={"PYTHONUNBUFFERED": ""},  # (empty: unset, -u alone says it)
    ) as cli:
        await wait_for(lambda: "1 worker accepting" in cli.stderr, what="the worker")
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{cli.port}/interpreter")
    worker = response.json()
    assert worker["unbuffered"] is True
    assert worker["xoptions"] == {"int_max_str_digits": "0", "warn_default_encoding": True}


@pytest.mark.drill
async def test_env_file_edits_reach_the_workers_a_rolling_restart_starts(tmp_path: Path) -> None:
    # The supervisor read the file once; a worker reading it again kept what
    # it inherited (variables already set win): a rotated secret or setting
    # never took effect, though --reload-include .env restarted the workers.
    env_file = tmp_path / "app.env"
    env_file.write_text("WSSERVER_GREETING=old\nWSSERVER_GONE=soon\n")

    async def worker_env() -> dict[str, str]:
        async with websockets.connect(cli.url + "/inherited") as ws:
            env: dict[str, str] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["env"]
        return env

    async with supervisor("--env-file", str(env_file), env={"WSSERVER_MINE": "mine"}) as cli:
        env = await worker_env()
        assert (env["WSSERVER_GREETING"], env["WSSERVER_GONE"]) == ("old", "soon")
        env_file.write_text("WSSERVER_GREETING=new\nWSSERVER_MINE=file's\n")
        cli.proc.send_signal(signal.SIGHUP)
        await wait_for(lambda: "rolling restart done" in cli.stderr, what="the restart")
        env = await worker_env()
        assert env["WSSERVER_GREETING"] == "new"
        assert "WSSERVER_GONE" not in env
        assert env["WSSERVER_MINE"] == "mine"  # what the environment sets still wins
        # A typo: the new workers get what it said last, and start.
        env_file.write_text("WSSERVER_GREETING=newer\nnot a line\n")
        cli.proc.send_signal(signal.SIGHUP)
        await wait_for(lambda: cli.stderr.count("rolling restart done") == 2, what="again")
        assert "line 2: expected NAME=value: the worker gets what it said before" in cli.stderr
        assert (await worker_env())["WSSERVER_GREETING"] == "new"


async def test_an_env_file_that_does_not_read_is_said_once_a_rolling_restart(
    tmp_path: Path,
) -> None:
    # Each worker a rolling restart started read the file again, and said so
    # again: N warnings, the same, for one deploy of N workers.
    env_file = tmp_path / ".env"
    env_file.write_text("WSSERVER_GREETING=old\n")
    async with supervisor("--env-file", str(env_file)) as cli:
        env_file.write_text("WSSERVER_GREETING=newer\nnot a line\n")
        cli.proc.send_signal(signal.SIGHUP)
        await wait_for(lambda: "rolling restart done" in cli.stderr, what="the restart")
        assert cli.stderr.count("the worker gets what it said before") == 1
        cli.proc.send_signal(signal.SIGHUP)  # (said again for the next deploy)
        await wait_for(lambda: cli.stderr.count("rolling restart done") == 2, what="again")
        assert cli.stderr.count("the worker gets what it said before") == 2


async def test_workers_share_a_listening_socket_given_as_stdin() -> None:
    # --fd 0: the socket as standard input (systemd's StandardInput=socket,
    # inetd's way). The workers' stdin was made /dev/null over it: each failed
    # with "cannot listen on fd 0: Socket operation on non-socket", and the
    # supervisor stopped (exit 1).
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    try:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "wsserver", "tests.worker_app:routes"),
            *("--fd", "0", "--workers", "2", "--ping-interval", "none"),
            cwd=ROOT,
            env=child_env(),
            stdin=sock.fileno(),
            stderr=asyncio.subprocess.PIPE,
        )
    finally:
        sock.close()
    try:
        async with httpx.AsyncClient() as client:
            response = await asyncio.wait_for(
                client.get(f"http://127.0.0.1:{port}/block?s=0"), TIMEOUT
            )
        assert response.status_code == 200
        assert int(response.text) in children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


RELEASE_APP = """
import os

from wsserver import Router
from wsserver.response import text

routes = Router()


@routes.get("/v")
async def version(request):
    return text({release!r} + " " + os.environ["WSSERVER_RELEASE"])
"""


@pytest.mark.drill
async def test_sighup_after_a_symlink_deploy_starts_the_new_release(tmp_path: Path) -> None:
    # Deployed as releases/N with a `current` symlink swapped to the new one,
    # the service started in `current` (its shell's PWD): the supervisor's own
    # directory is the first release's (the kernel resolves the link), which
    # its workers inherited, so SIGHUP after a deploy restarted the old code,
    # and read the old release's --env-file, as gunicorn did before it took PWD.
    for release in ("1", "2"):
        (tmp_path / release).mkdir()
        (tmp_path / release / "release_app.py").write_text(RELEASE_APP.format(release=release))
        (tmp_path / release / "app.env").write_text(f"WSSERVER_RELEASE=env{release}\n")
    current = tmp_path / "current"
    current.symlink_to(tmp_path / "1")

    async def served() -> str:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{cli.port}/v", timeout=TIMEOUT)
        return response.text

    args = ("release_app:routes", "--workers", "1", "--env-file", "app.env")
    async with running_cli(*args, cwd=current, env={"PWD": str(current)}) as cli:
        await wait_for(lambda: "1 worker accepting" in cli.stderr, what="the worker")
        assert await served() == "1 env1"
        (tmp_path / "next").symlink_to(tmp_path / "2")
        (tmp_path / "next").rename(current)  # (atomically, as deploy tools do)
        cli.proc.send_signal(signal.SIGHUP)
        await wait_for(lambda: "rolling restart done" in cli.stderr, what="the restart")
        assert await served() == "2 env2"


@pytest.mark.drill
async def test_an_env_file_edit_no_environment_can_hold_leaves_the_workers_started(
    tmp_path: Path,
) -> None:
    # A NUL byte in a value (a binary pasted, a file saved as UTF-16): at the
    # start a one-line error, but read again for a worker it reached the
    # worker's start, whose ValueError ended the rolling restart and, after a
    # worker died, the start of its replacement, both with a traceback: the
    # slot stayed empty for good.
    env_file = tmp_path / "app.env"
    env_file.write_text("WSSERVER_GREETING=old\n")
    async with supervisor("--env-file", str(env_file)) as cli:
        env_file.write_bytes(b"WSSERVER_GREETING=new\x00\n")
        cli.proc.send_signal(signal.SIGHUP)
        await wait_for(lambda: "rolling restart done" in cli.stderr, what="the restart")
        assert "the worker gets what it said before" in cli.stderr
        victim = next(iter(children(cli.proc.pid)))
        os.kill(victim, signal.SIGKILL)
        await wait_for(lambda: len(children(cli.proc.pid) - {victim}) == 2, what="a replacement")
        async with websockets.connect(cli.url + "/inherited") as ws:
            env = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["env"]
        assert env["WSSERVER_GREETING"] == "old"
    assert "Traceback" not in cli.stderr


async def test_limit_max_requests_replaces_the_process() -> None:
    # One process (no --workers): the limit puts it under a supervisor, which
    # starts another when it has received its requests, and then retires it.
    args = ("--limit-max-requests", "3", "--ping-interval", "none", "--open-timeout", "10")
    async with running_cli("tests.worker_app:routes", *args) as cli:
        await wait_for(lambda: "1 worker accepting" in cli.stderr, what="the worker")
        [first] = children(cli.proc.pid)
        # A connection that sends nothing (a browser's preconnect) holds the
        # retiring process for up to open_timeout: not the service.
        _, idle = await asyncio.open_connection("127.0.0.1", cli.port)
        clients = [await pid_of_connection(cli.url) for _ in range(3)]
        assert {pid for _, pid in clients} == {first}
        await wait_for(lambda: f"pid {first} retiring" in cli.stderr, what="the replacement")
        # The supervisor says so once it has sent SIGHUP; the old process
        # stops accepting when it has handled it.
        await wait_for(lambda: "SIGHUP: retiring" in cli.stderr, what="the old one's SIGHUP")
        ws, pid = await asyncio.wait_for(pid_of_connection(cli.url), 5)  # not after 10 s
        assert pid != first and pid in children(cli.proc.pid)
        idle.close()
        for client, _ in clients:  # told to reconnect
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(client.recv(), TIMEOUT)
            assert client.close_code == 1012
        await wait_for(lambda: not alive(first), what="the old process's end")
        await ws.close()
        assert "3 requests received (limit_max_requests)" in cli.stderr
        assert "reached limit_max_requests: replacing it" in cli.stderr
        assert "died" not in cli.stderr


async def test_limit_max_requests_closes_an_embedded_server() -> None:
    from wsserver import serve

    from .helpers import echo_routes

    server = serve(echo_routes(), "127.0.0.1", 0, limit_max_requests=2, ping_interval=None)
    serving = asyncio.create_task(server.serve_forever())
    await server.start()
    url = f"ws://127.0.0.1:{server.port}/"
    async with websockets.connect(url) as one:
        await one.send("a")
        assert await asyncio.wait_for(one.recv(), TIMEOUT) == "a"
        assert not server.closing
        async with websockets.connect(url) as two:
            for ws in (one, two):
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
                assert ws.close_code == 1012
    await asyncio.wait_for(serving, TIMEOUT)  # serve_forever() returned
    assert server.requests == 2


async def test_one_request_received_is_said_as_one(caplog: pytest.LogCaptureFixture) -> None:
    # "1 requests received (limit_max_requests)" was said for limit_max_requests=1.
    from wsserver import serve

    from .helpers import echo_routes

    caplog.set_level(logging.INFO, logger="wsserver.server")
    server = serve(echo_routes(), "127.0.0.1", 0, limit_max_requests=1, ping_interval=None)
    serving = asyncio.create_task(server.serve_forever())
    await server.start()
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    await asyncio.wait_for(serving, TIMEOUT)
    said = [r.getMessage() for r in caplog.records]
    assert "1 request received (limit_max_requests)" in said, said


async def test_limit_max_requests_jitter_adds_a_number_each_server_draws() -> None:
    from wsserver import ConfigError, Router, serve
    from wsserver.response import text

    limits = {
        serve(
            Router(), "127.0.0.1", 0, limit_max_requests=2, limit_max_requests_jitter=3
        ).request_limit
        for _ in range(200)
    }
    assert limits == {2, 3, 4, 5}
    assert serve(Router(), "127.0.0.1", 0, limit_max_requests=7).request_limit == 7
    assert serve(Router(), "127.0.0.1", 0, limit_max_requests_jitter=9).request_limit is None
    with pytest.raises(ConfigError, match="limit_max_requests_jitter must be a non-negative"):
        serve(Router(), "127.0.0.1", 0, limit_max_requests=2, limit_max_requests_jitter=-1)
    # The server closes at its own limit, not before.
    routes = Router()

    @routes.get("/")
    async def index(request: Any) -> Any:
        return text("ok")

    limit = 0
    while limit < 4:  # (one whose jitter shows)
        server = serve(routes, "127.0.0.1", 0, limit_max_requests=2, limit_max_requests_jitter=3)
        limit = server.request_limit or 0
    serving = asyncio.create_task(server.serve_forever())
    await server.start()
    for number in range(1, limit + 1):
        assert not server.closing, number
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), TIMEOUT)).endswith(b"ok")
        writer.close()
    await asyncio.wait_for(serving, TIMEOUT)
    assert server.requests == limit


def test_a_jitter_without_a_limit_is_said(caplog: pytest.LogCaptureFixture) -> None:
    # No process is replaced, and nothing said so: a limit was perhaps meant
    # to be set too (gunicorn's --max-requests-jitter is as silent).
    from wsserver import Router, serve

    with caplog.at_level(logging.WARNING, logger="wsserver.server"):
        serve(Router(), limit_max_requests_jitter=50)
        serve(Router(), limit_max_requests=1000, limit_max_requests_jitter=50)
        serve(Router(), limit_max_requests_jitter=0)
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "limit_max_requests_jitter is set but limit_max_requests is not: no process is replaced"
    ]


async def test_limit_max_requests_jitter_is_drawn_by_each_worker() -> None:
    args = ("--workers", "2", "--limit-max-requests", "1000")
    args += ("--limit-max-requests-jitter", str(10**9))
    async with running_cli("tests.worker_app:routes", *args) as cli:
        await wait_for(lambda: "2 workers accepting" in cli.stderr, what="the workers")
    drawn = [
        int(line.split("replaced after ")[1].split(" ")[0])
        for line in cli.stderr.splitlines()
        if "replaced after" in line
    ]
    assert len(drawn) == 2, cli.stderr
    assert all(1000 <= n <= 1000 + 10**9 for n in drawn), drawn
    assert drawn[0] != drawn[1]  # (equal once in a billion)
    assert "(limit_max_requests 1000, jitter up to 1000000000)" in cli.stderr


async def test_responses_from_the_limit_on_close_their_connection() -> None:
    # A process past limit_max_requests is about to be replaced: its
    # kept-alive connections were idle when it stopped, and a client that sent
    # its next request on one got no answer (httpx: RemoteProtocolError).
    from wsserver import Router, serve
    from wsserver.response import text

    routes = Router()

    @routes.get("/")
    async def index(request: Any) -> Any:
        return text("ok")

    server = serve(routes, "127.0.0.1", 0, limit_max_requests=2)
    reached: list[int] = []
    server.on_request_limit = lambda: reached.append(server.requests)  # (a supervised worker)
    async with server:

        async def get(writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> bytes:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return await asyncio.wait_for(reader.readuntil(b"ok"), TIMEOUT)

        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert b"Connection: close" not in await get(writer, reader)
        assert b"Connection: close\r\n" in await get(writer, reader)
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # closed after it
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert b"Connection: close\r\n" in await get(writer, reader)
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        writer.close()
        assert reached == [2] and not server.closing


def test_a_name_with_several_addresses_gets_its_ipv4_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The workers share one socket: "localhost" resolving to ::1 first got
    # IPv6 only, and 127.0.0.1 clients were refused, without a word.
    import socket

    from wsserver.supervisor import listening_socket

    resolve = socket.getaddrinfo

    def resolver(host: str, port: int, *args: object, **kwargs: object) -> list[Any]:
        assert host == "both.example"
        v6 = resolve("::1", port, *args, **kwargs)  # type: ignore[arg-type]
        return v6 + resolve("127.0.0.1", port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    sock = listening_socket("both.example", 0, None, None, 16)
    try:
        assert sock.family == socket.AF_INET and sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "both.example is 127.0.0.1 and ::1" in warning and "127.0.0.1 only" in warning


@asynccontextmanager
async def supervised_on_uds(tmp_path: Path) -> AsyncIterator[tuple[Cli, Path, list[Path]]]:
    """A supervisor of two workers on a Unix socket, with the directories it makes
    for them (metrics, status); yields it, the socket's file and the directories."""
    uds = tmp_path / "s.sock"
    async with running_cli(
        "tests.worker_app:routes",
        "--workers",
        "2",
        "--uds",
        str(uds),
        "--metrics-path",
        "/metrics",
        "--status-path",
        "/_status",
        "--close-timeout",
        "30",
        port_flag=False,
        listening=r"listening on unix:(/\S+)()",
    ) as cli:
        await wait_for(lambda: "workers accepting" in cli.stderr, what="the workers")
        (worker, *_) = children(cli.proc.pid)
        command = Path(f"/proc/{worker}/cmdline").read_bytes().split(b"\0")
        status_dir = Path(command[command.index(b"--status-dir") + 1].decode())
        environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
        (metrics_dir,) = [
            Path(entry.partition(b"=")[2].decode())
            for entry in environ
            if entry.startswith(b"PROMETHEUS_MULTIPROC_DIR=")
        ]
        assert status_dir.is_dir() and metrics_dir.is_dir() and uds.exists()
        yield cli, uds, [status_dir, metrics_dir]


async def never_closing_client(uds: Path) -> asyncio.StreamWriter:
    """A WebSocket client that never answers the close: a graceful shutdown waits
    ``close_timeout`` for it."""
    reader, writer = await asyncio.open_unix_connection(str(uds))
    writer.write(
        b"GET /pid HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    return writer


async def test_a_second_sigint_kills_the_workers_and_still_cleans_up(tmp_path: Path) -> None:
    # It ended with os._exit(1): the directories made for the workers' metrics
    # and status figures, and a Unix socket's file, were left behind.
    async with supervised_on_uds(tmp_path) as (cli, uds, made):
        # The first SIGINT's shutdown waits for this client.
        writer = await never_closing_client(uds)
        cli.proc.send_signal(signal.SIGINT)
        await wait_for(lambda: "stopping the workers" in cli.stderr, what="the first SIGINT")
        await asyncio.sleep(0.3)
        cli.proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 1
        writer.close()
    assert "second SIGINT: killing the workers" in cli.stderr
    assert "that handles pid" not in cli.stderr  # (asyncio's, had the loop closed first)
    assert not any(path.exists() for path in made) and not uds.exists()


async def test_signals_during_the_supervisor_s_last_moments_still_let_it_clean_up(
    tmp_path: Path,
) -> None:
    # Once its workers were gone, a signal (systemd's SIGTERM repeated, an
    # impatient Ctrl-C) ended the supervisor at once, with os._exit(0): the
    # Unix socket's file and the workers' directories were left behind.
    async with supervised_on_uds(tmp_path) as (cli, uds, made):
        cli.proc.send_signal(signal.SIGTERM)
        await wait_for(lambda: "stopping the workers" in cli.stderr, what="the SIGTERM")
        sent = 0
        while cli.proc.returncode is None and sent < 20_000:
            # (Not proc.send_signal(): its poll() may reap the process before
            # asyncio's watcher does, which then reports exit code 255.)
            with contextlib.suppress(ProcessLookupError):
                os.kill(cli.proc.pid, signal.SIGTERM)
            sent += 1
            await asyncio.sleep(0.0005)
        code = await asyncio.wait_for(cli.proc.wait(), TIMEOUT)
        if cli.drainer is not None:
            await asyncio.wait_for(cli.drainer, TIMEOUT)
        assert code == 0, cli.stderr[-2000:]
    assert not any(path.exists() for path in made) and not uds.exists()


def test_a_signal_amid_the_supervisor_s_clean_up_still_removes_the_socket_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test above, at the worst moment, made certain: the supervisor's
    # last signal handler runs its clean-up again, then os._exit(). Coming
    # while the clean-up removed the --uds socket's file, after it had taken
    # the file off the list of those to remove but before the unlink, the
    # handler's clean-up found nothing to remove, and the file was left.
    from wsserver.__main__ import _supervisor_s_clean_up
    from wsserver.server.server import unix_socket

    uds = tmp_path / "s.sock"
    directory = tmp_path / "metrics"
    directory.mkdir()
    clean_up = _supervisor_s_clean_up(unix_socket(str(uds)), [str(directory)])
    real_stat = os.stat
    left: list[bool] = []

    def a_signal_comes(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if not left and str(path) == str(uds):
            left.append(True)  # (once)
            clean_up()  # the signal handler's, which then ends the process
            left[0] = uds.exists() or directory.exists()
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", a_signal_comes)
    clean_up()
    assert left == [False]  # (what the handler's clean-up left, at os._exit())
    assert not uds.exists() and not directory.exists()


@pytest.mark.parametrize("after_sigterm", [False, True])
async def test_sigquit_is_a_quick_shutdown_that_cleans_up(
    tmp_path: Path, after_sigterm: bool
) -> None:
    # SIGQUIT had no handler: the supervisor dumped core (-3), leaving the
    # Unix socket's file and the workers' directories behind. It is
    # gunicorn's quick shutdown: the workers are not given their grace (the
    # client that never answers the close would hold them 30 s), also when a
    # SIGTERM's graceful one is under way.
    async with supervised_on_uds(tmp_path) as (cli, uds, made):
        workers = children(cli.proc.pid)
        writer = await never_closing_client(uds)
        if after_sigterm:
            cli.proc.send_signal(signal.SIGTERM)
            await wait_for(lambda: "stopping the workers" in cli.stderr, what="the SIGTERM")
        cli.proc.send_signal(signal.SIGQUIT)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0
        writer.close()
    assert "SIGQUIT: quick shutdown" in cli.stderr
    assert "did not stop" not in cli.stderr  # (they stopped on their own, quickly)
    assert not any(alive(pid) for pid in workers)
    assert not any(path.exists() for path in made) and not uds.exists()


@pytest.mark.drill
async def test_sigquit_sends_a_starting_worker_sigterm(tmp_path: Path) -> None:
    # (From a review.) The quick shutdown sent SIGQUIT to every worker, those
    # still starting too: one in its first moments (before its Python set its
    # handlers) would dump its core, SIGQUIT's default action. A worker that
    # has not said it is ready gets SIGTERM, which stops its start as soon.
    # (Here one held in its application's import, its handlers set: it says
    # which signal stopped it.)
    hold = tmp_path / "hold"
    async with supervisor(env={"SLOW_IMPORT_IF": str(hold)}) as cli:
        hold.touch()
        cli.proc.send_signal(signal.SIGTTIN)
        await wait_for(lambda: "importing slowly" in cli.stderr, what="a third worker starting")
        cli.proc.send_signal(signal.SIGQUIT)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0
    assert "SIGTERM: stopped before it started" in cli.stderr
    assert "SIGQUIT: stopped before it started" not in cli.stderr
    assert "SIGQUIT: quick shutdown" in cli.stderr  # (the two that were ready)


# ------------------------------------------ as pid 1: a container without an init

SPAWNER_APP = """
import subprocess

from wsserver import Router

routes = Router()


@routes.websocket("/spawn")
async def spawn(request, ws):
    # The shell ends at once; its background job is handed to pid 1 when it ends.
    subprocess.run(["sh", "-c", "sleep 0.2 &"], check=True)
    await ws.send("spawned")
"""

AS_PID_1 = ("unshare", "--pid", "--fork", "--kill-child", "--mount-proc")


def can_be_pid_1() -> bool:
    import subprocess

    try:
        done = subprocess.run([*AS_PID_1, "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def zombies(pid: int) -> set[int]:
    """The children of ``pid`` that ended and were not reaped."""
    found = set()
    for child in children(pid):
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except FileNotFoundError:
            continue
        if stat.rpartition(")")[2].split()[0] == "Z":
            found.add(child)
    return found


@pytest.mark.drill
async def test_as_pid_1_the_supervisor_reaps_orphaned_processes(tmp_path: Path) -> None:
    # Orphans are given to pid 1: a supervisor that waited for its workers
    # only left them zombies, until the container's pid limit.
    if not can_be_pid_1():
        pytest.skip("no pid namespace here (unshare --pid needs privileges)")
    name = f"spawner_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(SPAWNER_APP)
    async with running_cli(
        f"{name}:routes",
        "--app-dir",
        str(tmp_path),
        "--workers",
        "2",
        command=(*AS_PID_1, sys.executable, "-m", "wsserver"),
    ) as cli:
        await wait_for(lambda: "workers accepting" in cli.stderr, what="the workers")
        (supervisor,) = children(cli.proc.pid)  # (cli.proc is unshare)
        for _ in range(3):
            async with websockets.connect(cli.url + "/spawn") as ws:
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "spawned"
        await asyncio.sleep(0.5)  # each sleep has ended
        await wait_for(lambda: not zombies(supervisor), what="no zombie left", timeout=5)
        assert len(children(supervisor)) == 2  # its workers, not reaped by mistake
        os.kill(supervisor, signal.SIGTERM)
        assert await asyncio.wait_for(cli.proc.wait(), TIMEOUT) == 0


@pytest.mark.drill
async def test_as_pid_1_a_sigterm_during_the_start_is_not_lost(tmp_path: Path) -> None:
    # The kernel drops a signal sent to pid 1 that has no handler: the start went on.
    if not can_be_pid_1():
        pytest.skip("no pid namespace here (unshare --pid needs privileges)")
    name = f"slow_import_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(SLOW_IMPORT_APP)
    code, err = await signalled_while_starting(
        f"{name}:routes", tmp_path, "importing", wrapper=AS_PID_1
    )
    assert code == 0, err
    assert b"SIGTERM: stopped" in err, err


@pytest.mark.drill
async def test_workers_log_to_a_terminal_set_to_tostop() -> None:
    # The workers are in process groups of their own: with `stty tostop`,
    # their first line to the terminal stopped them (SIGTTOU), never accepting.
    import shlex
    import shutil

    if shutil.which("script") is None:
        pytest.skip("no script(1) to give it a terminal")
    command = shlex.join([sys.executable, "-m", "wsserver", "examples.echo:routes"])
    command += " --workers 2 --port 0 --ping-interval none"
    proc = await asyncio.create_subprocess_exec(
        "script",
        "-qfec",
        f"stty tostop; exec {command}",
        "/dev/null",
        cwd=Path(__file__).resolve().parent.parent,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    seen = ""
    try:
        assert proc.stdout is not None

        async def until(text: str) -> None:
            nonlocal seen
            while text not in seen:
                line = await proc.stdout.readline()  # type: ignore[union-attr]
                assert line, seen
                seen += line.decode(errors="replace")

        await asyncio.wait_for(until("workers accepting"), TIMEOUT)
        port = int(re.search(r"listening on ws://127\.0\.0\.1:(\d+)", seen).group(1))  # type: ignore[union-attr]
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send("on a terminal")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "on a terminal"
    finally:
        supervisors = children(proc.pid)
        every = supervisors | {pid for parent in supervisors for pid in children(parent)}
        for pid in supervisors:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 3)
        for pid in every:  # (stopped workers, had it failed, would not hear SIGTERM)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


SLOW_START_APP = """
import os
import time
from pathlib import Path

from wsserver import Router

try:  # ONE_QUICK: the first process to import this is quick, the others take a while
    if not os.environ.get("ONE_QUICK"):
        raise FileExistsError
    os.close(os.open(Path(__file__).parent / "first", os.O_CREAT | os.O_EXCL))
except FileExistsError:
    time.sleep(4.0)  # a heavy import
routes = Router()
"""


@pytest.mark.drill
@pytest.mark.parametrize("one_quick", [False, True])
async def test_a_first_start_slower_than_the_start_timeout_is_warned_of(
    tmp_path: Path, one_quick: bool
) -> None:
    # The port listened at once, connections waited, and nothing was said
    # however long it took. But no warning while one worker accepts.
    name = f"slow_start_{os.getpid()}"
    (tmp_path / f"{name}.py").write_text(SLOW_START_APP)
    # (2 s: time for the quick one to start on a loaded machine.)
    args = ("--app-dir", str(tmp_path), "--workers", "2", "--worker-start-timeout", "2")
    env = {"ONE_QUICK": "1"} if one_quick else None
    async with running_cli(f"{name}:routes", *args, env=env) as cli:
        if not one_quick:
            await wait_for(lambda: "no worker accepts yet after 2 s" in cli.stderr, what="it")
            assert "workers accepting" not in cli.stderr
        await wait_for(lambda: "2 workers accepting" in cli.stderr, what="the workers")
    assert ("no worker accepts yet" in cli.stderr) is not one_quick
