"""The command line: ``python -m wsserver module:attr`` as a real subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import http
import importlib
import json
import os
import pty
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

import wsserver
from wsserver import Router
from wsserver.__main__ import (
    AppLoadError,
    FactoryError,
    _settle,
    build_parser,
    config_from_args,
    load_app,
    load_router,
)

from .helpers import exchange, wait_for

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 10.0
TIMEOUT = 5.0
LISTENING_RE = re.compile(r"listening on ws://127\.0\.0\.1:(\d+)")

FACTORY_MODULE = """
from wsserver import Router


def make_routes():
    routes = Router()

    @routes.websocket("/hello")
    async def hello(request, ws):
        await ws.send("hello from factory")
        async for message in ws:
            await ws.send(message)

    return routes


not_a_factory = 42
"""


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child: ours without WEBSOCKET_* variables (nor
    uvicorn's, read or said), plus ``extra``."""
    uvicorns = ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WEBSOCKET_", "UVICORN_")) and k not in uvicorns
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def on_a_pty(
    args: Sequence[str], *, controlling: bool = False
) -> tuple[subprocess.Popen[bytes], int]:
    """``python ARGS`` (``-m wsserver ...``) in a session of its own, its
    standard streams a new pty (its controlling terminal if ``controlling``):
    an operator's terminal, a container's with ``-t``; and the pty's master
    end (the terminal window's)."""
    terminal, child_end = pty.openpty()
    take_terminal = "import fcntl, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); " * controlling
    run = (
        take_terminal + "import os, sys; os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", run, *args],
        cwd=ROOT,
        env=child_env(),
        stdin=child_end,
        stdout=child_end,
        stderr=child_end,
        start_new_session=True,  # (not our terminal, if we have one)
    )
    os.close(child_end)
    return proc, terminal


@dataclass
class Cli:
    proc: asyncio.subprocess.Process
    port: int = 0
    lines: list[str] = field(default_factory=list)
    #: Reads the rest of its stderr into ``lines`` (see :meth:`read_on`).
    drainer: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    async def wait(self) -> int:
        return await asyncio.wait_for(self.proc.wait(), TIMEOUT)

    def read_on(self) -> None:
        """Read its stderr into ``lines`` from now to its end, in a task."""
        self.drainer = asyncio.create_task(_drain(self))


async def _read_until_listening(cli: Cli, listening: re.Pattern[str]) -> None:
    assert cli.proc.stderr is not None
    while True:
        line = (await cli.proc.stderr.readline()).decode(errors="replace")
        if not line:
            raise AssertionError(f"server exited before listening:\n{cli.stderr}")
        cli.lines.append(line)
        m = listening.search(line)
        if m:
            cli.port = int(m.group(1)) if m.group(1).isdigit() else 0
            return


async def _drain(cli: Cli) -> None:
    assert cli.proc.stderr is not None
    while line := await cli.proc.stderr.readline():
        cli.lines.append(line.decode(errors="replace"))


@contextlib.asynccontextmanager
async def spawned_cli(
    *args: str,
    env: dict[str, str] | None = None,
    command: tuple[str, ...] = (sys.executable, "-m", "wsserver"),
    cwd: Path = ROOT,
    pass_fds: tuple[int, ...] = (),
) -> AsyncIterator[Cli]:
    """Start ``command ARGS`` (``python -m wsserver ARGS``), its stderr piped;
    yield it. At the end it is killed if still running, and its stderr read
    to its end if the caller had it read on (:meth:`Cli.read_on`).

    Its temporary files go to a directory of its own (``TMPDIR``), removed at
    the end: a supervisor killed here leaves its workers' metrics and status
    directories behind."""
    own_tmp = tempfile.mkdtemp(prefix="wsserver-test-cli-")
    proc = await asyncio.create_subprocess_exec(
        *command,
        *args,
        cwd=cwd,
        env=child_env({"TMPDIR": own_tmp, **(env or {})}),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        pass_fds=pass_fds,
    )
    cli = Cli(proc)
    try:
        yield cli
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if cli.drainer is not None:
            await asyncio.wait_for(cli.drainer, TIMEOUT)
        shutil.rmtree(own_tmp, ignore_errors=True)


@contextlib.asynccontextmanager
async def running_cli(
    *args: str,
    env: dict[str, str] | None = None,
    command: tuple[str, ...] = (sys.executable, "-m", "wsserver"),
    cwd: Path = ROOT,
    listening: str = LISTENING_RE.pattern,
    pass_fds: tuple[int, ...] = (),
    port_flag: bool = True,
) -> AsyncIterator[Cli]:
    """Run ``python -m wsserver ARGS --port 0`` (or ``command``; without ``--port 0``
    if not ``port_flag``); yield once it is listening.

    ``listening`` is the log line to wait for; its first group is the port.
    """
    port = ("--port", "0") if port_flag else ()
    async with spawned_cli(
        *args, *port, env=env, command=command, cwd=cwd, pass_fds=pass_fds
    ) as cli:
        await asyncio.wait_for(_read_until_listening(cli, re.compile(listening)), STARTUP_TIMEOUT)
        cli.read_on()
        yield cli


async def run_cli_to_end(
    *args: str, env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = ()
) -> tuple[int, str]:
    """Run ``python -m wsserver ARGS`` expecting it to exit; return (code, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wsserver",
        *args,
        cwd=ROOT,
        env=child_env(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        pass_fds=pass_fds,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), STARTUP_TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace")


async def signalled_while_starting(
    spec: str,
    app_dir: Path,
    marker: str,
    signum: int = signal.SIGTERM,
    wrapper: tuple[str, ...] = (),
    timeout: float = TIMEOUT,
) -> tuple[int, bytes]:
    """Run ``python -m wsserver SPEC --app-dir APP_DIR --port 0`` (under ``wrapper``,
    a command that runs it: then its child gets the signal), send ``signum`` once
    ``app_dir / marker`` exists (the application says it is starting), and
    return the exit code and stderr (within ``timeout`` seconds of the signal)."""
    proc = await asyncio.create_subprocess_exec(
        *wrapper,
        sys.executable,
        "-m",
        "wsserver",
        spec,
        "--app-dir",
        str(app_dir),
        "--port",
        "0",
        cwd=ROOT,
        env=child_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for(lambda: (app_dir / marker).exists(), what=f"the start ({marker})")
        if wrapper:
            (server,) = children(proc.pid)
            os.kill(server, signum)
        else:
            proc.send_signal(signum)
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, err


@contextlib.asynccontextmanager
async def signalled_reading_its_env_file(
    tmp_path: Path, *args: str, signum: int = signal.SIGHUP
) -> AsyncIterator[Cli]:
    """Run ``python -m wsserver ARGS --env-file FIFO --port 0``, send it ``signum``
    while it reads the env file (a FIFO: it waits there, its first handlers
    set, its event loop's not yet), then let it go on; yield it (its stderr
    read on into its lines)."""
    fifo = tmp_path / "env"
    os.mkfifo(fifo)
    async with spawned_cli(*args, "--env-file", str(fifo), "--port", "0") as cli:
        # (Opened for writing once the process opened it for reading.)
        opening = asyncio.to_thread(os.open, fifo, os.O_WRONLY)
        fd = await asyncio.wait_for(opening, STARTUP_TIMEOUT)
        try:
            cli.proc.send_signal(signum)
            await asyncio.sleep(0.2)  # (delivered)
            # A supervisor reads it again for each worker: a file from now on.
            (tmp_path / "env.file").write_text("")
            os.replace(tmp_path / "env.file", fifo)
        finally:
            os.close(fd)  # (the end of what it reads)
        cli.read_on()
        yield cli


async def test_a_sighup_during_the_start_of_a_single_process_stops_it_once_it_can(
    tmp_path: Path,
) -> None:
    # Before the event loop's handlers were set, SIGHUP's default action
    # killed the process (exit -1). It is acted on once they are: a single
    # process's SIGHUP is a graceful shutdown.
    async with signalled_reading_its_env_file(tmp_path, "examples.echo:routes") as cli:
        assert await cli.wait() == 0
    assert "SIGHUP: shutting down" in cli.stderr
    assert "stopped before it started" in cli.stderr


def children(pid: int) -> set[int]:
    """The pids of a process's children, from /proc."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "children").read_text().split()
        except FileNotFoundError:  # a thread that ended since the listing
            continue
        found.update(int(child) for child in text)
    return found


async def assert_echo(url: str) -> None:
    async with websockets.connect(url) as ws:
        await ws.send("héllo")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "héllo"
        await ws.send(b"\x00\x01\xfe\xff")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == b"\x00\x01\xfe\xff"


async def close_code_after_sending(url: str, message: bytes) -> int | None:
    """Send one message; return the close code if the server closes, None if it echoes."""
    async with websockets.connect(url, compression=None, max_size=None) as ws:
        await ws.send(message)
        try:
            reply = await asyncio.wait_for(ws.recv(), TIMEOUT)
        except ConnectionClosedError:
            return ws.close_code
        assert reply == message
        return None


def write_factory_module(directory: Path) -> str:
    """Write the factory module into ``directory``; return its (unique) module name."""
    name = f"wsfactory_{uuid.uuid4().hex}"
    (directory / f"{name}.py").write_text(textwrap.dedent(FACTORY_MODULE))
    return name


# ------------------------------------------------------------------- serving


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_serves_echo_and_shuts_down_on_signal(signum: int) -> None:
    async with running_cli("examples.echo:routes", "--log-level", "info") as cli:
        await assert_echo(cli.url + "/ws")
        await assert_echo(cli.url + "/")
        async with websockets.connect(cli.url + "/ws") as ws:
            await ws.send("ping")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "ping"
            cli.proc.send_signal(signum)
            with pytest.raises(ConnectionClosedOK):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert ws.close_code == 1001
        assert await cli.wait() == 0
    assert signal.Signals(signum).name in cli.stderr
    assert "still running after the stop" not in cli.stderr  # nothing left to leave


async def test_signal_without_clients_exits_zero() -> None:
    async with running_cli("examples.echo:routes") as cli:
        cli.proc.send_signal(signal.SIGTERM)
        assert await cli.wait() == 0


FAILING_SHUTDOWNS = {
    "routes": """
from wsserver import Router

routes = Router()


@routes.on_shutdown
async def bye(server):
    raise RuntimeError("the hook failed")
""",
    "app": """
async def app(scope, receive, send):
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.complete"})
    await receive()
    await send({"type": "lifespan.shutdown.failed", "message": "the lifespan failed"})
""",
}


@pytest.mark.parametrize("kind", sorted(FAILING_SHUTDOWNS))
async def test_a_failed_shutdown_of_the_application_is_logged_and_exits_zero(
    kind: str, tmp_path: Path
) -> None:
    # As README says (and uvicorn does): the stop asked for happened; the
    # application's own failure is in the log, not in the exit code.
    (tmp_path / "failing_shutdown.py").write_text(FAILING_SHUTDOWNS[kind])
    async with running_cli(f"failing_shutdown:{kind}", "--app-dir", str(tmp_path)) as cli:
        cli.proc.send_signal(signal.SIGTERM)
        assert await cli.wait() == 0
    assert f"the {'hook' if kind == 'routes' else 'lifespan'} failed" in cli.stderr
    assert "ERROR" in cli.stderr and "stopped" in cli.stderr


# ---------------------------------------------------------------- bad specs


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("nope", "module:attr"),
        ("examples.echo:", "module:attr"),
        ("examples.echo:missing", "missing"),
        ("os:path", "Router"),
        ("no_such_module_xyz:routes", "no_such_module_xyz"),
    ],
)
async def test_bad_app_spec_exits_2_with_message(spec: str, fragment: str) -> None:
    code, err = await run_cli_to_end(spec, "--port", "0")
    assert code == 2, err
    assert "error:" in err
    assert fragment in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("spec", "meant"),
    [
        ("file_app.py:app", "file_app:app"),
        ("{dir}/file_app.py:app", "--app-dir {dir} file_app:app"),
        ("sub/file_app.py:app", "--app-dir sub file_app:app"),
    ],
)
async def test_a_file_s_name_for_the_module_is_refused_before_it_runs(
    tmp_path: Path, spec: str, meant: str
) -> None:
    # A file's name where the module's is wanted (as hypercorn and `fastapi
    # run main.py` take it): "okapp.py" imported okapp, running its code (a
    # thread, a migration, a line it prints), then said "no module named
    # 'okapp.py'"; a path said "no module named '/tmp/x/okapp'". Now said
    # before anything is imported, with the spec meant.
    (tmp_path / "sub").mkdir()
    source = "import pathlib\npathlib.Path(__file__).with_name('ran').write_text('')\napp = None\n"
    for where in (tmp_path, tmp_path / "sub"):
        (where / "file_app.py").write_text(source)
    spec, meant = spec.format(dir=tmp_path), meant.format(dir=tmp_path)
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "wsserver", spec, "--port", "0"),
        cwd=tmp_path,
        env=child_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err_bytes = await asyncio.wait_for(proc.communicate(), STARTUP_TIMEOUT)
    err = err_bytes.decode()
    assert proc.returncode == 2, err
    assert err.strip().splitlines()[-1].endswith(f"(did you mean {meant}?)"), err
    assert not (tmp_path / "ran").exists() and not (tmp_path / "sub" / "ran").exists()


async def test_a_factory_that_returns_a_coroutine_is_said_to_be_async(tmp_path: Path) -> None:
    # An async factory behind a plain wrapper (a decorator's, a lambda):
    # the coroutine it returned was refused as "a coroutine, not a Router or
    # an ASGI 3 application", and then Python's RuntimeWarning "coroutine
    # '_make' was never awaited", at exit, with no word of what to do.
    (tmp_path / "coro_factory.py").write_text(
        "async def _make():\n    return None\ndef make_app():\n    return _make()\n"
    )
    code, err = await run_cli_to_end(
        "coro_factory:make_app", "--factory", "--app-dir", str(tmp_path), "--port", "0"
    )
    assert code == 2, err
    assert err.strip() == (
        "error: coro_factory:make_app (a factory) returned a coroutine: a factory is a plain"
        " function that returns the application (the server does not await it)"
    ), err


@pytest.mark.parametrize(
    ("source", "flags", "code", "what"),
    [
        ("import sys\nsys.exit(0)\n", (), 0, "as it was imported"),
        (
            "def app():\n    raise SystemExit(4)\n",
            ("--factory",),
            4,
            "as it was called (a factory)",
        ),
    ],
)
async def test_sys_exit_as_the_app_is_loaded_keeps_its_code_and_says_so(
    tmp_path: Path, source: str, flags: tuple[str, ...], code: int, what: str
) -> None:
    # As a hook's or a handler's sys.exit() is said: the process ended
    # without a word (exit code 0 for sys.exit() in the module: a service
    # that never served, and that Restart=on-failure does not restart).
    name = f"exiting_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(source)
    got, err = await run_cli_to_end(
        f"{name}:app", *flags, "--app-dir", str(tmp_path), "--port", "0"
    )
    assert got == code, err
    (line,) = err.splitlines()
    assert "WARNING" in line and f"{name}:app called sys.exit({code}) {what}" in line, err
    assert f"(exit code {code})" in line, err


async def test_an_attribute_error_raised_as_the_app_is_looked_up_is_the_app_s(
    tmp_path: Path,
) -> None:
    # module:container.app, a property that builds the application (a
    # dependency-injection container's): an AttributeError of its own code
    # (a setting misspelt) was said as "'module:container' has no attribute
    # 'app'", exit 2, of an attribute that is there, hiding the one missing.
    (tmp_path / "container_app.py").write_text(
        "class Settings:\n"
        "    debug = False\n"
        "class Container:\n"
        "    settings = Settings()\n"
        "    @property\n"
        "    def app(self):\n"
        "        if self.settings.debgu:\n"
        "            pass\n"
        "container = Container()\n"
    )
    code, err = await run_cli_to_end(
        "container_app:container.app", "--app-dir", str(tmp_path), "--port", "0"
    )
    assert code == 1, err
    assert "container_app:container.app failed as it was looked up" in err, err
    assert "has no attribute 'app'" not in err, err
    first = err.split("Traceback (most recent call last):\n", 1)[1].splitlines()[0]
    assert "container_app.py" in first, err
    assert "AttributeError: 'Settings' object has no attribute 'debgu'" in err, err
    # One that is not there is still said as such (exit 2, one line).
    code, err = await run_cli_to_end(
        "container_app:container.apps", "--app-dir", str(tmp_path), "--port", "0"
    )
    assert code == 2, err
    assert err.strip() == "error: 'container_app:container' has no attribute 'apps'", err


async def test_a_module_that_another_of_its_name_shadows_is_said_to_be(tmp_path: Path) -> None:
    # --app-dir DIR queue:app, with DIR/queue.py: the server had imported the
    # standard library's queue (as some hundred modules) before DIR was put on
    # the path, and said "module 'queue' has no attribute 'app'" of a file
    # that has one, naming neither file.
    (tmp_path / "queue.py").write_text("from examples.echo import routes\n")
    code, err = await run_cli_to_end("queue:routes", "--app-dir", str(tmp_path), "--port", "0")
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert "module 'queue' has no attribute 'routes'" in last, err
    assert f"the module imported is {queue.__file__}, not {tmp_path / 'queue.py'}" in last, err
    # A package of such a name (DIR/http/app.py): "no module named 'http.app'".
    (tmp_path / "http").mkdir()
    (tmp_path / "http" / "__init__.py").write_text("")
    (tmp_path / "http" / "app.py").write_text("from examples.echo import routes\n")
    code, err = await run_cli_to_end("http.app:routes", "--app-dir", str(tmp_path), "--port", "0")
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert "cannot import 'http.app': no module named 'http.app'" in last, err
    mine = tmp_path / "http" / "__init__.py"
    assert f"the module imported is {http.__file__}, not {mine}" in last, err
    # A package and a module of one name in one directory: Python imports the
    # package, first found; an attribute it lacks is no shadowing.
    (tmp_path / "both").mkdir()
    (tmp_path / "both" / "__init__.py").write_text("from examples.echo import routes\n")
    (tmp_path / "both.py").write_text("from examples.echo import routes\n")
    code, err = await run_cli_to_end("both:app", "--app-dir", str(tmp_path), "--port", "0")
    assert code == 2, err
    assert err.strip().splitlines()[-1].endswith("module 'both' has no attribute 'app'"), err


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("import json\nSETTINGS = json.loads('')\n", "JSONDecodeError"),
        ("import a_dependency_not_installed\n", "a_dependency_not_installed"),
    ],
)
@pytest.mark.parametrize("workers", ["1", "2"])
async def test_an_error_inside_the_app_module_shows_its_traceback(
    tmp_path: Path, source: str, said: str, workers: str
) -> None:
    # It was cut to one line ("error: Expecting value: line 1 column 1"), with
    # no file nor line, and a missing dependency read as a missing app.
    (tmp_path / "broken_app.py").write_text(source)
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    code, err = await run_cli_to_end(
        "broken_app:routes", "--port", "0", "--workers", workers, env={"PYTHONPATH": pythonpath}
    )
    assert code == 1, err
    assert "Traceback" in err and "broken_app.py" in err and said in err, err
    assert "cannot import 'broken_app'" not in err
    # From the application's frames (not runpy's, wsserver's and importlib's),
    # after a line that says which worker, if any.
    first = err.split("Traceback (most recent call last):\n", 1)[1].splitlines()[0]
    assert "broken_app.py" in first, err
    assert "wsserver/__main__.py" not in err, err
    heading = "[worker " if workers == "2" else "broken_app:routes failed as it was imported"
    assert heading in err, err


async def test_a_syntax_error_in_the_app_module_is_said_without_the_import_machinery(
    tmp_path: Path,
) -> None:
    # A SyntaxError has no frame of the application's: the one frame kept was
    # importlib's ('File "<frozen importlib._bootstrap>", line 241, in
    # _call_with_frames_removed'), which the traceback's cut is there to leave out.
    (tmp_path / "broken_app.py").write_text("routes = None\ndef f(:\n    pass\n")
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    code, err = await run_cli_to_end(
        "broken_app:routes", "--port", "0", env={"PYTHONPATH": pythonpath}
    )
    assert code == 1, err
    assert "broken_app:routes failed as it was imported" in err, err
    assert f'File "{tmp_path / "broken_app.py"}", line 2' in err, err
    assert "SyntaxError: invalid syntax" in err, err
    assert "<frozen" not in err and "importlib" not in err, err


async def test_an_error_in_a_factory_is_said_to_be_the_factorys(tmp_path: Path) -> None:
    # "make_app failed as it was imported": the module imported fine; its
    # factory raised as it was called.
    (tmp_path / "factory_app.py").write_text(
        "def make_app():\n    raise RuntimeError('no database')\n"
    )
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    code, err = await run_cli_to_end(
        "factory_app:make_app", "--factory", "--port", "0", env={"PYTHONPATH": pythonpath}
    )
    assert code == 1, err
    assert "factory_app:make_app failed as it was called (a factory)" in err, err
    assert "imported" not in err, err
    first = err.split("Traceback (most recent call last):\n", 1)[1].splitlines()[0]
    assert "factory_app.py" in first and "RuntimeError: no database" in err, err


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_start_up_failures_are_json_lines_under_log_format_json(
    tmp_path: Path, workers: str
) -> None:
    # They were plain text ("error: ..." lines, tracebacks) in a JSON log: and
    # so were the refusals made before logging is configured (where to listen,
    # --env-file, --app-dir), after the settings' were JSON lines.
    (tmp_path / "broken_app.py").write_text("raise RuntimeError('no database')\n")
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    echo = "examples.echo:routes"
    missing = str(tmp_path / "missing")
    cases: list[tuple[tuple[str, ...], dict[str, str], int, str]] = [
        (("no_such_module_xyz:routes", "--port", "0"), {}, 2, "cannot import 'no_such_module_xyz'"),
        (
            ("broken_app:routes", "--port", "0"),
            {},
            1,
            "broken_app:routes failed as it was imported",
        ),
        ((echo, "--port", "0"), {"WEBSOCKET_MAX_SIZE": "-5"}, 2, "WEBSOCKET_MAX_SIZE: max_size"),
        ((echo, "--port", "0", "--app-dir", missing), {}, 2, f"--app-dir {missing}: not a"),
        ((echo, "--port", "0", "--env-file", missing), {}, 2, f"--env-file {missing}: "),
        (
            (echo,),
            {"WEBSOCKET_UDS": str(tmp_path / "x.sock"), "WEBSOCKET_PORT": "1"},
            2,
            "WEBSOCKET_UDS and WEBSOCKET_PORT: each says where to listen",
        ),
        ((echo,), {"WEBSOCKET_PORT": "abc"}, 2, "WEBSOCKET_PORT: expected a port number"),
        ((echo, "--uds", "a", "--fd", "3"), {}, 2, "--uds and --fd: each says where to listen"),
        # argparse's own refusals: its usage line and "error:" line, as text.
        ((echo, "--port", "abc"), {}, 2, "argument --port: expected a port number"),
        ((echo, "--ws-max-size", "x"), {}, 2, "argument --max-size/--ws-max-size: expected"),
        ((echo, "--no-such-flag"), {}, 2, "unrecognized arguments: --no-such-flag"),
    ]
    ended = await asyncio.gather(
        *(
            run_cli_to_end(
                *args,
                "--log-format",
                "json",
                "--workers",
                workers,
                env={"PYTHONPATH": pythonpath, **extra},
            )
            for args, extra, _, _ in cases
        )
    )
    for (args, _, code, said), (got, err) in zip(cases, ended, strict=True):
        assert got == code, (args, err)
        entries = [json.loads(line) for line in err.splitlines()]  # every line is JSON
        failures = [e for e in entries if said in e["message"]]  # (each worker's)
        assert 1 <= len(failures) <= int(workers), (args, entries)
        for failure in failures:
            assert failure["level"] == "ERROR", failure
            if code == 1:
                assert "RuntimeError: no database" in failure["exception"]


async def test_start_up_failures_are_said_under_log_level_critical(tmp_path: Path) -> None:
    # Logged at ERROR, which --log-level critical filters out: the process
    # ended (exit code 1, or 2 under --log-format json) and said nothing.
    (tmp_path / "broken_app.py").write_text("raise RuntimeError('no database')\n")
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    cases = [
        (spec, log_format, code, said)
        for spec, code, said in [
            ("no_such_module_xyz:routes", 2, "cannot import 'no_such_module_xyz'"),
            ("broken_app:routes", 1, "broken_app:routes failed as it was imported"),
        ]
        for log_format in ("text", "json")
    ]
    ended = await asyncio.gather(
        *(
            run_cli_to_end(
                spec,
                *("--port", "0", "--log-format", log_format, "--log-level", "critical"),
                env={"PYTHONPATH": pythonpath},
            )
            for spec, log_format, _, _ in cases
        )
    )
    for (spec, log_format, code, said), (got, err) in zip(cases, ended, strict=True):
        assert got == code and said in err, (spec, log_format, got, err)


async def test_invalid_setting_flag_exits_2() -> None:
    code, err = await run_cli_to_end("examples.echo:routes", "--port", "0", "--max-queue", "0")
    assert code == 2, err
    assert "--max-queue" in err  # the flag the user typed, not the setting's name
    # A short usage line, then the error (argparse's usage of every flag was
    # some fifty lines above it).
    usage, error = err.strip().splitlines()
    assert usage.startswith("usage: python -m wsserver [flags] module:attr"), err
    assert error.startswith("python -m wsserver: error: argument --max-queue"), err


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        # Each of these started a server: one without a limit, one that
        # refused every upgrade (403), one that served plain ws:// to anybody,
        # one listening elsewhere than asked, or a traceback.
        (["--max-size", ""], "--max-size"),
        (["--max-body-size", " "], "--max-body-size"),
        (["--origin", "example.com"], "--origin"),
        (["--origin", "https://example.com/"], "--origin: 'https://example.com/': an Origin"),
        (["--metrics-path", "/m", "--status-path", "/m"], "metrics_path '/m' is a path of"),
        (["--ssl-cert-reqs", "2"], "ssl_cert_reqs 2 (client certificates) needs ssl_certfile"),
        (["--uds", "/tmp/wsserver-never.sock"], "--uds and --port: each says where to listen"),
        (["--fd", "0"], "--fd and --port: each says where to listen"),
        (["--app-dir", "/no/such/dir"], "--app-dir /no/such/dir: not a directory"),
        (["--header", "Date: x"], "'Date': wsserver writes that header itself (--no-date-header"),
        (
            ["--compression", "deflate", "--ws-per-message-deflate", "false"],
            "--ws-per-message-deflate false and --compression deflate: each says whether",
        ),
        (
            ["--ws-per-message-deflate", "true", "--compression", "none"],
            "--ws-per-message-deflate true and --compression none: each says whether",
        ),
    ],
)
async def test_a_setting_that_cannot_do_what_it_says_exits_2(flags: list[str], said: str) -> None:
    code, err = await run_cli_to_end("examples.echo:routes", "--port", "0", *flags)
    assert code == 2, err
    (line,) = err.strip().splitlines()[-1:]
    assert said in line and "Traceback" not in err, err
    assert not os.path.exists("/tmp/wsserver-never.sock")


async def test_the_listening_line_gives_the_http_url_too() -> None:
    # An HTTP application (ASGI, a Router's HTTP routes) was announced as
    # ws:// alone: no URL a terminal lets one open in a browser.
    async with running_cli("examples.echo:routes") as cli:
        said = f"listening on ws://127.0.0.1:{cli.port} and http://127.0.0.1:{cli.port}\n"
        assert said in cli.stderr, cli.stderr


async def test_host_and_port_come_from_the_environment_where_no_flag_gives_them() -> None:
    # As uvicorn's UVICORN_HOST/UVICORN_PORT: a container's template sets them.
    env = {"WEBSOCKET_HOST": "127.0.0.2", "WEBSOCKET_PORT": "0"}
    listening = r"listening on ws://127\.0\.0\.2:(\d+)"
    async with running_cli(
        "examples.echo:routes", env=env, port_flag=False, listening=listening
    ) as cli:
        await assert_echo(f"ws://127.0.0.2:{cli.port}")
    # A flag wins over its variable (the variable is not even read).
    env = {"WEBSOCKET_HOST": "127.0.0.2", "WEBSOCKET_PORT": "not a port"}
    async with running_cli("examples.echo:routes", "--host", "127.0.0.1", env=env) as cli:
        await assert_echo(cli.url)
    # ... and the other variable still fills in what no flag says (spaces
    # around it dropped), also with --uds none (no Unix socket: TCP).
    env = {"WEBSOCKET_HOST": " 127.0.0.2 "}
    async with running_cli("examples.echo:routes", env=env, listening=listening) as cli:
        await assert_echo(f"ws://127.0.0.2:{cli.port}")
    env = {"WEBSOCKET_HOST": "127.0.0.2", "WEBSOCKET_PORT": "0", "WEBSOCKET_UDS": "/tmp/x.sock"}
    async with running_cli(
        "examples.echo:routes", "--uds", "none", env=env, port_flag=False, listening=listening
    ) as cli:
        await assert_echo(f"ws://127.0.0.2:{cli.port}")
    # Empty, as the command line's other variables: unset (127.0.0.1).
    async with running_cli("examples.echo:routes", env={"WEBSOCKET_HOST": ""}) as cli:
        await assert_echo(cli.url)


#: What Kubernetes puts in every pod of a namespace that has a Service named
#: "websocket" (enableServiceLinks, on by default; Docker's links did the
#: same): the Service's address under our variable's name, WEBSOCKET_PORT.
SERVICE_LINK = {
    "WEBSOCKET_PORT": "tcp://10.96.0.12:8000",
    "WEBSOCKET_PORT_8000_TCP": "tcp://10.96.0.12:8000",
    "WEBSOCKET_PORT_8000_TCP_PORT": "8000",
    "WEBSOCKET_SERVICE_HOST": "10.96.0.12",
    "WEBSOCKET_SERVICE_PORT": "8000",
}


def test_a_kubernetes_service_s_link_is_not_taken_for_the_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # It was refused ("WEBSOCKET_PORT: expected a port number from 0 to
    # 65535", exit 2): every pod of the namespace that ran wsserver without
    # --port crash-looped once such a Service existed.
    parser = build_parser()
    for name, value in SERVICE_LINK.items():
        monkeypatch.setenv(name, value)
    args = _settle(parser, parser.parse_args(["examples.echo:routes", "--host", "0.0.0.0"]))
    assert (args.host, args.port) == ("0.0.0.0", 8000)  # the default, not the Service's port
    # With WEBSOCKET_UDS it was "each says where to listen"; it is the socket's now.
    monkeypatch.setenv("WEBSOCKET_UDS", "/run/app.sock")
    args = _settle(parser, parser.parse_args(["examples.echo:routes"]))
    assert args.uds == "/run/app.sock"
    # What is neither a port nor such a link is still refused.
    monkeypatch.setenv("WEBSOCKET_PORT", "tcp://10.96.0.12")
    monkeypatch.delenv("WEBSOCKET_UDS")
    with pytest.raises(SystemExit):
        _settle(parser, parser.parse_args(["examples.echo:routes"]))


async def test_a_kubernetes_service_s_link_is_said_to_be_ignored(tmp_path: Path) -> None:
    uds = tmp_path / "ws.sock"
    env = {**SERVICE_LINK, "WEBSOCKET_UDS": str(uds)}
    async with (
        running_cli(
            "examples.echo:routes",
            env=env,
            port_flag=False,
            listening=r"listening on unix:(/\S+)()",
        ) as cli,
        websockets.unix_connect(str(uds), "ws://localhost/") as ws,
    ):
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "hello"
    warning = next(line for line in cli.lines if "WEBSOCKET_PORT" in line)
    assert "WARNING" in warning and "tcp://10.96.0.12:8000" in warning, cli.stderr
    assert "enableServiceLinks" in warning, warning
    # (Its companions are not said to be misspelt variables of ours.)
    assert "WEBSOCKET_SERVICE" not in cli.stderr and "8000_TCP" not in cli.stderr, cli.stderr


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
async def test_an_ipv6_host_may_be_given_in_brackets() -> None:
    # As the listening line (and every URL) writes it: [::1] was looked up as
    # a name, "cannot listen on [::1]:0: Name or service not known" (exit 1).
    listening = r"listening on ws://\[::1\]:(\d+)"
    for args, env in [(("--host", "[::1]"), {}), ((), {"WEBSOCKET_HOST": " [::1] "})]:
        async with running_cli("examples.echo:routes", *args, env=env, listening=listening) as cli:
            await assert_echo(f"ws://[::1]:{cli.port}")
    code, err = await run_cli_to_end("examples.echo:routes", "--host", "[localhost]")
    assert code == 2 and "Traceback" not in err, err
    assert "--host: expected an IPv6 address in brackets, not '[localhost]'" in err, err


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
@pytest.mark.parametrize("workers", [(), ("--workers", "2")], ids=["single", "workers"])
async def test_host_double_colon_listens_on_every_interface_ipv4_too(
    workers: tuple[str, ...],
) -> None:
    # "::" (what a container's or a dual-stack host's config writes for
    # "every interface") listened on IPv6 alone: 127.0.0.1 clients were
    # refused, where gunicorn, Node and uvicorn's workers take IPv4 there too.
    listening = r"(?:listening on|accepting on) ws://\[::\]:(\d+)"
    args = ("--host", "::", *workers)
    async with running_cli("examples.echo:routes", *args, listening=listening) as cli:
        await assert_echo(f"ws://127.0.0.1:{cli.port}")
        await assert_echo(f"ws://[::1]:{cli.port}")


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"WEBSOCKET_PORT": "http"}, "WEBSOCKET_PORT: "),
        ({"WEBSOCKET_PORT": "70000"}, "WEBSOCKET_PORT: "),
        (
            {"WEBSOCKET_UDS": "/tmp/wsserver-never.sock", "WEBSOCKET_PORT": "0"},
            "WEBSOCKET_UDS and WEBSOCKET_PORT: each says where to listen; give one",
        ),
    ],
)
async def test_a_bad_or_conflicting_listening_variable_exits_2(
    env: dict[str, str], said: str
) -> None:
    code, err = await run_cli_to_end("examples.echo:routes", env=env)
    assert code == 2, err
    (line,) = err.strip().splitlines()[-1:]
    assert said in line and "Traceback" not in err, err
    assert not os.path.exists("/tmp/wsserver-never.sock")


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"WEB_CONCURRENCY": "none"}, "WEB_CONCURRENCY: "),
        ({"WEB_CONCURRENCY": "100000000"}, "WEB_CONCURRENCY: "),
        ({"WEB_CONCURRENCY": "2", "WEBSOCKET_WORKERS": "0"}, "WEBSOCKET_WORKERS: "),
        ({"FORWARDED_ALLOW_IPS": "10.0.0.0/99"}, "forwarded_allow_ips must be"),
        (
            {"WEB_CONCURRENCY": "2", "WEBSOCKET_TIMEOUT_WORKER_HEALTHCHECK": "soon"},
            "WEBSOCKET_TIMEOUT_WORKER_HEALTHCHECK: expected a number of seconds above 0",
        ),
        (
            {"WEB_CONCURRENCY": "2", "WEBSOCKET_WORKER_START_TIMEOUT": "none"},
            "WEBSOCKET_WORKER_START_TIMEOUT: expected a number of seconds above 0",
        ),
    ],
)
async def test_uvicorns_variables_are_read_and_checked(env: dict[str, str], said: str) -> None:
    code, err = await run_cli_to_end("examples.echo:routes", "--port", "0", env=env)
    assert code == 2, err
    assert said in err.strip().splitlines()[-1] and "Traceback" not in err, err


@pytest.mark.parametrize("blank", ["", " ", "\t"])
async def test_a_blank_worker_count_variable_is_unset(blank: str) -> None:
    # A blank WEBSOCKET_WORKERS was unset, as an empty one (a template's
    # unset variable, as WEBSOCKET_HOST's), but a blank WEB_CONCURRENCY, read
    # the same way in its place, refused the start: "WEB_CONCURRENCY: expected
    # a number of worker processes from 1 to 1024, not ' '". Both are unset.
    for env in ({"WEB_CONCURRENCY": blank}, {"WEBSOCKET_WORKERS": blank, "WEB_CONCURRENCY": blank}):
        async with running_cli("examples.echo:routes", env=env) as cli:
            await assert_echo(cli.url + "/ws")
        assert "supervisor" not in cli.stderr and "worker" not in cli.stderr, cli.stderr


async def test_uvicorns_other_flags_are_taken(tmp_path: Path) -> None:
    # So that a uvicorn command line runs: these were "unrecognized
    # arguments" (exit 2); those that change nothing here say so.
    args = ("--loop", "none", "--http", "httptools", "--use-colors", "--reset-contextvars")
    async with running_cli("examples.echo:routes", *args) as cli:
        await assert_echo(cli.url + "/ws")
        await wait_for(lambda: "--http httptools: HTTP/1.1 is h11's" in cli.stderr, what="it")
        await wait_for(lambda: "--use-colors: log lines are not" in cli.stderr, what="it")
    async with running_cli("examples.echo:routes", "--no-use-colors") as cli:
        await assert_echo(cli.url + "/ws")
    assert "colour" not in cli.stderr


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        # uvicorn's choices that wsserver has nothing for: argparse's "invalid
        # choice", which said neither why nor what to do instead.
        (["--ws", "none"], "--ws none: wsserver always serves WebSocket"),
        (["--interface", "wsgi"], "--interface wsgi: wsserver serves no WSGI application"),
        (["--interface", "asgi2"], "--interface asgi2: wsserver serves no ASGI 2 application"),
    ],
)
async def test_uvicorns_choices_without_an_equivalent_are_refused_saying_so(
    flags: list[str], said: str
) -> None:
    code, err = await run_cli_to_end(*flags, "examples.echo:routes", "--port", "0")
    assert code == 2, err
    assert said in err.strip().splitlines()[-1] and "invalid choice" not in err, err


async def test_uvicorns_ssl_version_is_taken_and_said_to_be_ignored() -> None:
    # Before the application, its value was taken for the application and
    # the application named an unrecognized argument:
    # "unrecognized arguments: --ssl-version examples.echo:routes" (exit 2).
    async with running_cli("--ssl-version", "17", "examples.echo:routes") as cli:
        await assert_echo(cli.url + "/ws")
        await wait_for(lambda: "--ssl-version 17: TLS 1.2 and 1.3" in cli.stderr, what="it")
    code, err = await run_cli_to_end("--ssl-version", "tls", "examples.echo:routes")
    assert code == 2 and "argument --ssl-version: expected" in err, err


async def test_a_flag_s_value_may_begin_with_a_dash() -> None:
    # A token or a password drawn at random may begin with "-" (one of
    # secrets.token_urlsafe()'s in 64): argparse took it for a flag and the
    # start failed with "argument --status-token: expected one argument"
    # (exit 2), where uvicorn's click takes it as the value.
    token = "-Xy_secret"
    args = ("examples.echo:routes", "--status-path", "/status", "--status-token", token)
    async with running_cli(*args) as cli:
        guarded = await exchange(
            cli.port, b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert guarded.startswith(b"HTTP/1.1 401 "), guarded
        head = (
            f"GET /status?token={token} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        shown = await exchange(cli.port, head)
        assert shown.startswith(b"HTTP/1.1 200 "), shown
    # A flag after a flag that wants a value is still a value missing.
    code, err = await run_cli_to_end("examples.echo:routes", "--status-token", "--port", "0")
    assert code == 2 and "argument --status-token: expected one argument" in err, err


def test_an_application_may_be_an_attribute_of_an_attribute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # module:obj.app, as uvicorn walks it: "module has no attribute 'obj.app'".
    (tmp_path / "nested_app.py").write_text(
        "from wsserver import Router\n\nclass holder:\n    routes = Router()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("nested_app")
    assert load_app("nested_app:holder.routes") is module.holder.routes
    with pytest.raises(AppLoadError, match="'nested_app:holder' has no attribute 'nope'"):
        load_app("nested_app:holder.nope")
    with pytest.raises(AppLoadError, match="module 'nested_app' has no attribute 'nope'"):
        load_app("nested_app:nope.routes")


async def test_uds_and_fd_together_are_refused() -> None:
    code, err = await run_cli_to_end("examples.echo:routes", "--uds", "/tmp/x.sock", "--fd", "0")
    assert code == 2, err
    assert "--uds and --fd: each says where to listen; give one" in err, err
    # --uds none turns WEBSOCKET_UDS off: no conflict with a port.
    args = build_parser().parse_args(["examples.echo:routes", "--uds", "none", "--port", "0"])
    assert args.uds == "none" and args.port == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEBSOCKET_MAX_SIZE", "lots"),
        ("WEBSOCKET_MAX_SIZE", ""),
        ("WEBSOCKET_LOG_FORMAT", "JSON"),  # (was ignored: text logs, no word)
    ],
)
async def test_invalid_env_value_exits_2(name: str, value: str) -> None:
    code, err = await run_cli_to_end("examples.echo:routes", "--port", "0", env={name: value})
    assert code == 2, err
    assert name in err.strip().splitlines()[-1], err


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("redis:/app:s3cret-pw@cache:6379/0", "'redis:***@cache:6379/0'"),
        ("reddis://app:s3cret-pw@cache/0", "'reddis://app:***@cache/0'"),
        ("cache:6379/0?password=s3cret-pw", "'cache:6379/0?password=***'"),
    ],
)
@pytest.mark.parametrize("given_by", ["flag", "variable"])
async def test_a_mistyped_broker_url_is_refused_without_its_password(
    typed: str, shown: str, given_by: str
) -> None:
    if given_by == "flag":
        code, err = await run_cli_to_end("examples.echo:routes", "--port", "0", "--broker", typed)
    else:
        code, err = await run_cli_to_end(
            "examples.echo:routes", "--port", "0", env={"WEBSOCKET_BROKER": typed}
        )
    assert code == 2, err
    assert shown in err.strip().splitlines()[-1], err
    assert "s3cret" not in err
    with pytest.raises(wsserver.ConfigError) as refused:
        wsserver.Config(broker=typed)
    assert shown in str(refused.value) and "s3cret" not in str(refused.value)


async def test_port_in_use_exits_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = await run_cli_to_end("examples.echo:routes", "--port", str(port))
    assert code == 1, err
    assert f"cannot listen on 127.0.0.1:{port}: " in err
    if socket.has_ipv6:
        with socket.socket(socket.AF_INET6) as busy:
            try:
                busy.bind(("::1", 0))
            except OSError:
                return  # (no IPv6 loopback here)
            busy.listen()
            port = busy.getsockname()[1]
            code, err = await run_cli_to_end(
                "examples.echo:routes", "--host", "::1", "--port", str(port)
            )
        assert code == 1, err
        assert (
            f"cannot listen on [::1]:{port}: " in err
        )  # (an address and a port, as URLs write them)


# ------------------------------------------------------------------ settings


def test_the_parser_keeps_every_argument() -> None:
    # The start-up warning reads the flags from CommandLineParser.arguments:
    # an argument added some other way (a group, parents=) would be missing.
    parser = build_parser()
    assert parser.arguments == parser._actions
    assert {"--log-level", "--max-size", "--uds"} <= {
        flag for action in parser.arguments for flag in action.option_strings
    }


async def test_a_misspelt_variable_is_named_at_start_up() -> None:
    # A near miss of one of our variables, or a setting's name where its
    # variable is named otherwise or it has none, is said (and ignored: the
    # server starts); a WEBSOCKET_* name of the application's own is not, nor
    # the websockets library's WEBSOCKETS_* (a client in the application).
    env = {
        "WEBSOCKET_MAX_SZE": "10",
        "WEBSOCKET_OPEN_TIMEOUT": "3",
        "WEBSOCKET_BACKLOG": "10",
        "WEBSOCKET_LOG_LEVEL": "debug",
        "WEBSOCKET_URL": "ws://x",
        "WEBSOCKETS_MAX_BODY_SIZE": "100",
        # (It pointed to --worker, the supervisor's own flag, hidden.)
        "WEBSOCKET_WORKER": "4",
        # A flag's own name where it differs from its setting's (--origin
        # sets origins): no origin was checked, and nothing said so.
        "WEBSOCKET_ORIGIN": "https://app.example",
        "WEBSOCKET_HEADER": "X-Frame-Options: DENY",
        "WEBSOCKET_TIMEOUT_GRACEFUL_SHUTDOWN": "30",  # (uvicorn's name of the flag)
        "WEBSOCKET_WS_PER_MESSAGE_DEFLATE": "false",
    }
    async with running_cli("examples.echo:routes", env=env) as cli:
        await assert_echo(cli.url)
    said = cli.stderr
    ignored = "is not a variable wsserver reads (ignored):"
    assert f"WEBSOCKET_MAX_SZE {ignored} WEBSOCKET_MAX_SIZE?" in said
    assert f"WEBSOCKET_OPEN_TIMEOUT {ignored} WEBSOCKET_TIMEOUT?" in said
    assert f"WEBSOCKET_BACKLOG {ignored} backlog is set by --backlog" in said
    assert f"WEBSOCKET_LOG_LEVEL {ignored} --log-level is a flag only" in said
    assert f"WEBSOCKET_WORKER {ignored} WEBSOCKET_WORKERS?" in said
    assert f"WEBSOCKET_ORIGIN {ignored} origins is set by --origin" in said
    assert f"WEBSOCKET_HEADER {ignored} headers is set by --header" in said
    assert f"WEBSOCKET_TIMEOUT_GRACEFUL_SHUTDOWN {ignored} WEBSOCKET_SHUTDOWN_TIMEOUT?" in said
    assert (
        f"WEBSOCKET_WS_PER_MESSAGE_DEFLATE {ignored} --ws-per-message-deflate is a flag only"
    ) in said
    assert "WEBSOCKET_URL" not in said and "WEBSOCKETS_MAX_BODY_SIZE" not in said
    async with running_cli("examples.echo:routes", env={"WEBSOCKET_MAX_SIZE": "10"}) as cli:
        await asyncio.sleep(0)
    assert "is not a variable" not in cli.stderr


async def test_uvicorns_own_variables_are_said_to_be_ignored(tmp_path: Path) -> None:
    # A deployment moved from uvicorn keeps its environment (a .env file, a
    # container's): UVICORN_HOST=0.0.0.0 was ignored without a word, the
    # server listening on 127.0.0.1 where no client could reach it. Each is
    # now named at start with what says the same here.
    env = {
        "UVICORN_HOST": "0.0.0.0",
        "UVICORN_PORT": "80",
        "UVICORN_WORKERS": "4",
        "UVICORN_WS_MAX_SIZE": "100",
        "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN": "30",
        "UVICORN_FORWARDED_ALLOW_IPS": "*",
        "UVICORN_LOG_LEVEL": "debug",
        "UVICORN_HEADERS": "X-Frame-Options: DENY",  # (--header's, as click names it)
        "UVICORN_SSL_VERSION": "17",
        "UVICORN_APP": "main:app",
    }
    async with running_cli("examples.echo:routes", env=env) as cli:
        await assert_echo(cli.url)  # where the command line says: 127.0.0.1, one process
    said = cli.stderr
    ignored = "is uvicorn's variable, which wsserver does not read (ignored):"
    for name, instead in [
        ("UVICORN_HOST", "WEBSOCKET_HOST says the same here"),
        ("UVICORN_PORT", "WEBSOCKET_PORT says the same here"),
        ("UVICORN_WORKERS", "WEBSOCKET_WORKERS says the same here"),
        ("UVICORN_WS_MAX_SIZE", "WEBSOCKET_MAX_SIZE says the same here"),
        ("UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN", "WEBSOCKET_SHUTDOWN_TIMEOUT says the same here"),
        ("UVICORN_FORWARDED_ALLOW_IPS", "WEBSOCKET_FORWARDED_ALLOW_IPS says the same here"),
        ("UVICORN_LOG_LEVEL", "--log-level says the same here (a flag only)"),
        ("UVICORN_HEADERS", "--header says the same here (a flag only)"),
        ("UVICORN_SSL_VERSION", "TLS 1.2 and 1.3 are spoken here (no such setting)"),
        ("UVICORN_APP", "the application is the command line's module:attr"),
    ]:
        assert f"WARNING wsserver.server: {name} {ignored} {instead}\n" in said, said
    # (Its value is not said: UVICORN_SSL_KEYFILE_PASSWORD's is a secret.)
    assert "0.0.0.0" not in said and "DENY" not in said, said
    # An env file's are said too (uvicorn does not read them from there either).
    env_file = tmp_path / ".env"
    env_file.write_text("UVICORN_PORT=80\n")
    async with running_cli("examples.echo:routes", "--env-file", str(env_file)) as cli:
        await assert_echo(cli.url)
    assert f"UVICORN_PORT {ignored} WEBSOCKET_PORT says the same here" in cli.stderr


def test_uvicorns_per_message_deflate_variable_is_said_to_be_our_compression() -> None:
    # --ws-per-message-deflate is uvicorn's name for --compression, whose
    # variable is WEBSOCKET_COMPRESSION: "a flag only" sent a moved deployment
    # looking for none. (Its values differ: true|false there, deflate|none here.)
    from wsserver.__main__ import uvicorn_variables

    env = {"UVICORN_WS_PER_MESSAGE_DEFLATE": "false"}
    assert uvicorn_variables(env, build_parser()) == [
        (
            "UVICORN_WS_PER_MESSAGE_DEFLATE",
            "WEBSOCKET_COMPRESSION says the same here (deflate or none)",
        )
    ]


async def test_max_size_flag_takes_effect() -> None:
    async with running_cli("examples.echo:routes", "--max-size", "10") as cli:
        assert await close_code_after_sending(cli.url + "/ws", b"x" * 10) is None
        assert await close_code_after_sending(cli.url + "/ws", b"x" * 20) == 1009


async def test_max_size_env_takes_effect() -> None:
    async with running_cli("examples.echo:routes", env={"WEBSOCKET_MAX_SIZE": "10"}) as cli:
        assert await close_code_after_sending(cli.url + "/ws", b"y" * 20) == 1009


async def test_max_size_flag_beats_env() -> None:
    async with running_cli(
        "examples.echo:routes", "--max-size", "100", env={"WEBSOCKET_MAX_SIZE": "10"}
    ) as cli:
        assert await close_code_after_sending(cli.url + "/ws", b"z" * 20) is None
        assert await close_code_after_sending(cli.url + "/ws", b"z" * 101) == 1009


async def test_compression_flag_none_disables_deflate() -> None:
    async with (
        running_cli("examples.echo:routes", "--compression", "none") as cli,
        websockets.connect(cli.url + "/ws") as ws,  # offers permessage-deflate
    ):
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await ws.send("uncompressed")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "uncompressed"


def test_config_from_args_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSOCKET_MAX_SIZE", "10")
    monkeypatch.setenv("WEBSOCKET_MAX_QUEUE", "3")
    parser = build_parser()
    config = config_from_args(parser.parse_args(["x:y", "--max-size", "none"]))
    assert config.max_size is None  # flag beats env
    assert config.max_queue == 3  # env beats default
    assert config.ping_interval == 20  # default
    config = config_from_args(parser.parse_args(["x:y", "--compression", "none"]))
    assert config.compression is None
    assert config.max_size == 10
    # uvicorn's --ws-per-message-deflate beats the variable, and may say what
    # --compression says (not the opposite: that is refused, see above).
    monkeypatch.setenv("WEBSOCKET_COMPRESSION", "deflate")
    for words, expected in (
        (["--ws-per-message-deflate", "false"], None),
        (["--ws-per-message-deflate", "true", "--compression", "deflate"], "deflate"),
        (["--ws-per-message-deflate", "false", "--compression", "none"], None),
    ):
        config = config_from_args(parser.parse_args(["x:y", *words]))
        assert config.compression == expected, words
    # uvicorn's flag is click's boolean, which takes t/f and y/n as well:
    # a moved deployment's "--ws-per-message-deflate f" was refused.
    for word, expected in (("f", None), ("n", None), ("N", None), ("t", "deflate")):
        config = config_from_args(parser.parse_args(["x:y", "--ws-per-message-deflate", word]))
        assert config.compression == expected, word
    monkeypatch.setenv("WEBSOCKET_ACCESS_LOG", "n")  # (every flag setting reads the same words)
    assert config_from_args(parser.parse_args(["x:y"])).access_log is False


# ---------------------------------------------------------------- load_router


def test_load_router_attribute() -> None:
    import examples.echo

    assert load_router("examples.echo:routes") is examples.echo.routes


def test_load_router_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    name = write_factory_module(tmp_path)
    router = load_router(f"{name}:make_routes")
    assert isinstance(router, Router)
    assert router.match("/hello") is not None
    with pytest.raises(ValueError, match="int"):
        load_router(f"{name}:not_a_factory")


def test_the_healthcheck_timeout_takes_every_word_for_none() -> None:
    # Only the exact word "none" was: "None" or "off" were refused, as for no
    # other setting.
    from wsserver.__main__ import _seconds_or_none

    assert [_seconds_or_none(w) for w in ("none", "None", " off ", "false", "2.5")] == [
        *["none"] * 4,
        2.5,
    ]


def test_a_factory_that_returns_none_is_said_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ("... is a NoneType, not a wsserver.Router or ...": as if it were the app.)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "none_factory.py").write_text("def make_app():\n    pass\n")
    for factory in (False, True):
        with pytest.raises(ValueError, match=r"^none_factory:make_app \(a factory\) returned None"):
            load_app("none_factory:make_app", factory=factory)


def test_a_factory_whose_decorator_gives_its_arguments_is_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A decorator (functools.wraps) that calls make_app(settings) itself: the
    # wrapper is what --factory calls, without arguments. Its __wrapped__'s
    # signature (settings) was taken for the wrapper's, and the factory refused.
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"wrapped_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """\
            import functools
            from wsserver import Router

            def with_settings(make):
                @functools.wraps(make)
                def wrapper():
                    return make({"greeting": "hi"})
                return wrapper

            @with_settings
            def make_app(settings):
                return Router()

            def needs(settings):
                return Router()

            @functools.wraps(needs)
            def passes_on(*args, **kwargs):
                return needs(*args, **kwargs)
            """
        )
    )
    assert isinstance(load_app(f"{name}:make_app", factory=True), Router)
    # (A wrapper that takes anything: called, and what fails is the factory's.)
    with pytest.raises(FactoryError):
        load_app(f"{name}:passes_on", factory=True)


@pytest.mark.parametrize("spec", ["nope", ":routes", "examples.echo:", "examples.echo:missing"])
def test_load_router_bad_spec_raises_value_error(spec: str) -> None:
    with pytest.raises(ValueError):
        load_router(spec)


def test_load_router_missing_module_raises_value_error() -> None:
    with pytest.raises(ValueError, match="cannot import 'no_such_module_xyz'"):
        load_router("no_such_module_xyz:routes")


async def test_cli_with_factory_module(tmp_path: Path) -> None:
    name = write_factory_module(tmp_path)
    pythonpath = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    async with (
        running_cli(f"{name}:make_routes", env={"PYTHONPATH": pythonpath}) as cli,
        websockets.connect(cli.url + "/hello") as ws,
    ):
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "hello from factory"
        await ws.send("again")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "again"


def test_origin_flag_is_repeatable_and_none_means_no_header() -> None:
    args = build_parser().parse_args(
        ["examples.echo:routes", "--origin", "https://a.example", "--origin", "none"]
    )
    assert config_from_args(args).origins == ["https://a.example", None]
    assert config_from_args(build_parser().parse_args(["examples.echo:routes"])).origins is None


async def test_uvloop_serves_and_shuts_down() -> None:
    async with running_cli("examples.echo:routes", "--loop", "uvloop") as cli:
        await assert_echo(cli.url + "/ws")
        big = b"\x01" * 300_000
        async with websockets.connect(cli.url + "/ws", max_size=None) as ws:
            await ws.send(big)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == big
            cli.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosedOK):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert await cli.wait() == 0


LOOP_APP = """
import asyncio
import logging

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    module = type(asyncio.get_running_loop()).__module__.split(".")[0]
    logging.getLogger("loop_app").debug("the loop is %s's", module)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": module.encode()})
"""


async def test_uvicorns_command_line_choices_run(tmp_path: Path) -> None:
    # A Dockerfile's "uvicorn main:app --loop auto --http h11 --ws websockets
    # --interface asgi3 --log-level trace" stopped at the first of them.
    name = f"loop_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(LOOP_APP)
    flags = ["--loop", "auto", "--http", "h11", "--ws", "websockets", "--interface", "asgi3"]
    async with running_cli(
        f"{name}:app", "--app-dir", str(tmp_path), *flags, "--log-level", "trace"
    ) as cli:
        reader, writer = await asyncio.open_connection("127.0.0.1", cli.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
        assert response.endswith(b"\r\n\r\nuvloop"), response  # (installed: auto takes it)
        await wait_for(lambda: "the loop is uvloop's" in cli.stderr, what="the debug line")


CUSTOM_LOOP = """
import asyncio

class MarkedLoop(asyncio.SelectorEventLoop):
    pass

def new_event_loop():
    return MarkedLoop()

def not_a_loop():
    return 42

def closed_loop():
    loop = asyncio.new_event_loop()
    loop.close()
    return loop

def running_loop():
    import threading

    loop = asyncio.new_event_loop()
    started = threading.Event()
    loop.call_soon(started.set)
    threading.Thread(target=loop.run_forever, daemon=True).start()
    started.wait()
    return loop

NOT_CALLABLE = 3
"""


@pytest.mark.parametrize("workers", [[], ["--workers", "1"]])
async def test_a_loop_factory_is_taken_as_uvicorn_takes_it(
    tmp_path: Path, workers: list[str]
) -> None:
    # uvicorn's --loop module:function (its docs: "--loop rloop:new_event_loop")
    # was refused by argparse as an invalid choice.
    name = f"loops_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(CUSTOM_LOOP)
    (tmp_path / f"app_{name}.py").write_text(
        LOOP_APP.replace('__module__.split(".")[0]', "__name__")
    )
    async with running_cli(
        f"app_{name}:app",
        "--app-dir",
        str(tmp_path),
        "--loop",
        f"{name}:new_event_loop",
        *workers,
    ) as cli:
        reader, writer = await asyncio.open_connection("127.0.0.1", cli.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
        assert response.endswith(b"\r\n\r\nMarkedLoop"), response


@pytest.mark.parametrize(
    ("factory", "said"),
    [
        ("no_such_module_xyz:new_event_loop", "no module named 'no_such_module_xyz'"),
        ("{name}:nothing", "has no attribute 'nothing'"),
        ("{name}:NOT_CALLABLE", "is an int, not a function"),
        ("{name}:not_a_loop", "returned an int, not an event loop"),
        ("{name}:closed_loop", "returned an event loop already closed"),
        ("{name}:running_loop", "returned an event loop already running"),
        ("{name}", "expected asyncio, uvloop, auto, none or module:function"),
    ],
)
async def test_a_loop_factory_that_makes_no_loop_is_refused(
    tmp_path: Path, factory: str, said: str
) -> None:
    name = f"loops_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(CUSTOM_LOOP)
    code, err = await run_cli_to_end(
        "examples.echo:routes",
        "--app-dir",
        str(tmp_path),
        "--port",
        "0",
        "--loop",
        factory.format(name=name),
    )
    assert code == 2, err
    assert "--loop" in err and said in err, err
    assert "Traceback" not in err


async def test_second_sigint_exits_at_once() -> None:
    from tests.helpers import RawClient

    async with running_cli("examples.echo:routes", "--close-timeout", "30") as cli:
        # A client that never answers the close: the graceful shutdown would
        # wait close_timeout (30 s) for it.
        client = await RawClient.connect(cli.port, "/ws")
        loop = asyncio.get_running_loop()
        start = loop.time()
        cli.proc.send_signal(signal.SIGTERM)
        opcode, _, _, payload = await client.recv_frame(timeout=TIMEOUT)
        assert (opcode, payload[:2]) == (8, b"\x03\xe9")  # close 1001
        cli.proc.send_signal(signal.SIGINT)  # Ctrl-C: impatient
        assert await cli.wait() == 1
        assert loop.time() - start < 5
        client.close()
    assert "second SIGINT: exiting now" in cli.stderr


SLOW_STARTUP_APP = """
import asyncio
from pathlib import Path

HERE = Path(__file__).parent


async def app(scope, receive, send):
    assert scope["type"] == "lifespan"
    await receive()
    (HERE / "starting").touch()
    try:
        await asyncio.sleep(30)  # a database that does not answer, say
    except asyncio.CancelledError:
        (HERE / "cancelled").touch()
        raise
    await send({"type": "lifespan.startup.complete"})
"""


async def test_sigterm_during_a_slow_lifespan_startup_stops_it(tmp_path: Path) -> None:
    # The signal handlers came after the startup: SIGTERM killed the process
    # (-15), the application never hearing of it. Then they came first, and
    # the shutdown waited for a startup that might never end (45 s, exit 1).
    (tmp_path / "slow_app.py").write_text(SLOW_STARTUP_APP)
    code, err = await signalled_while_starting("slow_app:app", tmp_path, "starting")
    assert code == 0, err.decode()
    assert (tmp_path / "cancelled").exists()  # the startup heard it
    assert b"SIGTERM: shutting down" in err and b"stopped before it started" in err


STUBBORN_STARTUP_HOOK = """
import asyncio
from pathlib import Path

from wsserver import Router

HERE = Path(__file__).parent
routes = Router()


@routes.on_startup
async def connect(server):
    (HERE / "starting").touch()
    while True:  # a retry loop that takes its cancellation for one more failure
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            (HERE / "cancelled").touch()
"""


async def test_sigterm_during_a_startup_hook_that_goes_on_when_cancelled_stops_it(
    tmp_path: Path,
) -> None:
    # The start waited for the cancelled hook's end, for ever: the process
    # never exited (SIGTERM again changes nothing; only SIGKILL ended it).
    (tmp_path / "stubborn_app.py").write_text(STUBBORN_STARTUP_HOOK)
    # (It takes 2 s: a second for the hook, then one at the exit for what it left running.)
    code, err = await signalled_while_starting(
        "stubborn_app:routes", tmp_path, "starting", timeout=3 * TIMEOUT
    )
    assert code == 0, err.decode()
    assert (tmp_path / "cancelled").exists()
    assert b"an on_startup hook went on when cancelled" in err
    assert b"stopped before it started" in err


STUBBORN_SHUTDOWN_HOOK = """
import asyncio
from pathlib import Path

from wsserver import Router

HERE = Path(__file__).parent
routes = Router()


@routes.on_startup
async def started(server):
    (HERE / "started").touch()


@routes.on_shutdown
async def drain(server):
    while True:  # a drain loop that takes its cancellation for one more failure
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            (HERE / "cancelled").touch()
"""


async def test_an_on_shutdown_hook_that_goes_on_when_cancelled_does_not_hold_the_exit(
    tmp_path: Path,
) -> None:
    # Its bound (shutdown_timeout + close_timeout) cancelled it, then waited
    # for its end, for ever: the process never exited after SIGTERM.
    (tmp_path / "stubborn_app.py").write_text(STUBBORN_SHUTDOWN_HOOK)
    # (1 s for the hook, 1 s more once cancelled, 1 s at the exit.)
    code, err = await stopped_once_started(
        tmp_path, "stubborn_app:routes", "--shutdown-timeout", "0.5", "--close-timeout", "0.5"
    )
    assert code == 0, err  # (a failed on_shutdown hook: logged, 0)
    assert (tmp_path / "cancelled").exists()
    assert "on_shutdown hook drain did not end within 1.0 s: cancelled" in err
    assert "on_shutdown hook drain went on when cancelled" in err


EXITING_SHUTDOWN_HOOK = """
import sys
from pathlib import Path

from wsserver import Router

HERE = Path(__file__).parent
routes = Router()


@routes.on_startup
async def started(server):
    (HERE / "started").touch()


@routes.on_shutdown
async def flush(server):
    sys.exit(4)


@routes.on_shutdown
async def close_pool(server):
    (HERE / "closed").touch()
"""


async def stopped_once_started(app_dir: Path, spec: str, *args: str) -> tuple[int, str]:
    """Run ``python -m wsserver SPEC --app-dir APP_DIR ARGS``, send it SIGTERM once
    its application wrote ``APP_DIR/started``; its exit code and stderr."""
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "wsserver", spec, "--app-dir", str(app_dir), "--port", "0"),
        *args,
        cwd=ROOT,
        env=child_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for(lambda: (app_dir / "started").exists(), what="the start")
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 3 * TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_sys_exit_in_an_on_shutdown_hook_keeps_its_code_and_says_so(
    tmp_path: Path,
) -> None:
    # Since each hook runs in a task of its own (a15868f), its SystemExit
    # left the event loop from that task: the process exited 4 without a
    # word, the hooks after it and the "stopped" line gone unsaid.
    (tmp_path / "exiting_app.py").write_text(EXITING_SHUTDOWN_HOOK)
    code, said = await stopped_once_started(tmp_path, "exiting_app:routes")
    assert code == 4, said  # (the hook's own code, kept)
    assert not (tmp_path / "closed").exists()
    (line,) = [line for line in said.splitlines() if "on_shutdown hook flush" in line]
    assert "sys.exit(4)" in line and "close_pool" in line, said


EXITING_STARTUP = """
import sys

from wsserver import Router

routes = Router()


@routes.on_startup
async def connect(server):
    sys.exit(3)


@routes.on_startup
async def warm_cache(server):
    print("warm_cache ran", file=sys.stderr)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        sys.exit(3)
"""


@pytest.mark.parametrize("attr", ["routes", "app"])
async def test_sys_exit_in_the_startup_keeps_its_code_and_says_so(
    tmp_path: Path, attr: str
) -> None:
    # An on_startup hook (in a task of its own) or a raw ASGI lifespan that
    # called sys.exit(3) left the event loop from its task: the process
    # exited 3 without a word, as cc314a7 found for the on_shutdown hooks.
    name = f"exiting_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(EXITING_STARTUP)
    code, err = await run_cli_to_end(f"{name}:{attr}", "--app-dir", str(tmp_path), "--port", "0")
    assert code == 3, err  # (the application's own code, kept)
    assert "warm_cache ran" not in err and "listening on" not in err, err
    (line,) = [line for line in err.splitlines() if "called sys.exit(3)" in line]
    what = "on_startup hook connect" if attr == "routes" else "ASGI lifespan"
    assert what in line and "WARNING" in line, err
    if attr == "routes":
        assert "warm_cache" in line, err  # (the hook not run, named)


EXITING_LIFESPAN_SHUTDOWN = """
import sys
from pathlib import Path

HERE = Path(__file__).parent


async def app(scope, receive, send):
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.complete"})
    (HERE / "started").touch()
    await receive()
    sys.exit(5)
"""


async def test_sys_exit_in_an_asgi_lifespan_shutdown_keeps_its_code_and_says_so(
    tmp_path: Path,
) -> None:
    # It exited 5 with asyncio's "Task exception was never retrieved" and a
    # traceback at best, the "stopped" line gone, nothing of why.
    (tmp_path / "exiting_asgi.py").write_text(EXITING_LIFESPAN_SHUTDOWN)
    code, said = await stopped_once_started(tmp_path, "exiting_asgi:app")
    assert code == 5, said
    (line,) = [line for line in said.splitlines() if "called sys.exit(5)" in line]
    assert "ASGI lifespan" in line and "lifespan.shutdown" in line and "WARNING" in line, said
    assert "never retrieved" not in said, said


EXITING_WHILE_SERVING = """
import asyncio
import sys


async def app(scope, receive, send):
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.complete"})
    await asyncio.sleep(0.5)  # (a task of the lifespan's gives up on its broker, say)
    sys.exit(7)
"""


async def test_sys_exit_in_an_asgi_lifespan_while_serving_is_said_once(tmp_path: Path) -> None:
    # Besides exit_said()'s line, it was "ASGI lifespan failed after its
    # startup" with a traceback: an ERROR, as if it had raised.
    name = f"exiting_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(EXITING_WHILE_SERVING)
    code, err = await run_cli_to_end(f"{name}:app", "--app-dir", str(tmp_path), "--port", "0")
    assert code == 7, err
    (line,) = [line for line in err.splitlines() if "called sys.exit(7)" in line]
    assert "after lifespan.startup was answered" in line and "WARNING" in line, err
    assert "ERROR" not in err and "Traceback" not in err, err


EXITING_HANDLERS = """
import sys

from wsserver import Router

routes = Router()


@routes.get("/")
async def home(request):
    sys.exit(6)


@routes.websocket("/")
async def chat(request, ws):
    await ws.recv()
    sys.exit(6)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan")
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
    sys.exit(6)
"""


@pytest.mark.parametrize("attr", ["routes", "app"])
@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_sys_exit_in_a_handler_keeps_its_code_and_says_so(
    tmp_path: Path, attr: str, scheme: str
) -> None:
    # As 95ef8db found for the hooks and the lifespan: the handler's task
    # left the event loop with its SystemExit, said by asyncio's "Task
    # exception was never retrieved" and a traceback (an ERROR), or taken
    # for the handler's failure (a Router HTTP handler's: "error while
    # handling", a 500), the process exiting 6 all the same.
    name = f"exiting_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(EXITING_HANDLERS)
    async with running_cli(f"{name}:{attr}", "--app-dir", str(tmp_path)) as cli:
        if scheme == "http":
            reader, writer = await asyncio.open_connection("127.0.0.1", cli.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(reader.read(), TIMEOUT)
            writer.close()
        else:
            with contextlib.suppress(websockets.ConnectionClosed):
                async with websockets.connect(cli.url + "/") as ws:
                    await ws.send("bye")
                    await asyncio.wait_for(ws.recv(), TIMEOUT)
        code = await cli.wait()
        assert cli.drainer is not None
        await asyncio.wait_for(cli.drainer, TIMEOUT)
    err = cli.stderr
    assert code == 6, err
    (line,) = [line for line in err.splitlines() if "called sys.exit(6)" in line]
    assert "WARNING" in line and "/" in line, err
    assert "ERROR" not in err and "Traceback" not in err, err


async def test_sighup_to_a_single_process_is_a_graceful_shutdown() -> None:
    # It killed the process at once (the default action: exit 129, clients
    # cut off, no lifespan shutdown), as systemd's ExecReload=kill -HUP would.
    async with running_cli("examples.echo:routes") as cli:
        async with websockets.connect(cli.url + "/ws") as ws:
            cli.proc.send_signal(signal.SIGHUP)
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            assert ws.close_code == 1001
        assert await cli.wait() == 0
        assert "SIGHUP: shutting down (a rolling restart needs a supervisor" in cli.stderr


async def test_sighup_ignored_by_the_parent_stays_ignored() -> None:
    # nohup: a terminal's hangup must not end it (the handler above overrode that).
    command = ("nohup", sys.executable, "-m", "wsserver")
    async with running_cli("examples.echo:routes", command=command) as cli:
        cli.proc.send_signal(signal.SIGHUP)
        async with websockets.connect(cli.url + "/ws") as ws:
            await asyncio.sleep(0.3)
            await ws.send("still here")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "still here"
        assert cli.proc.returncode is None and "SIGHUP" not in cli.stderr


@pytest.mark.parametrize("after_sigterm", [False, True])
async def test_sigquit_is_a_quick_shutdown_of_a_single_process(
    tmp_path: Path, after_sigterm: bool
) -> None:
    # It had no handler: the process dumped core (-3), its Unix socket's file
    # left behind. It is gunicorn's quick shutdown: no grace (the client that
    # never answers the close would hold a graceful one 30 s), the clients
    # told all the same; during a SIGTERM's graceful shutdown, an exit at
    # once (as a second SIGINT), the socket's file removed all the same.
    uds = tmp_path / "s.sock"
    async with running_cli(
        "examples.echo:routes",
        "--uds",
        str(uds),
        "--close-timeout",
        "30",
        port_flag=False,
        listening=r"listening on unix:(/\S+)()",
    ) as cli:
        reader, writer = await asyncio.open_unix_connection(str(uds))
        writer.write(  # (a client that will never answer the close)
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        if after_sigterm:
            cli.proc.send_signal(signal.SIGTERM)
            await wait_for(lambda: "SIGTERM: shutting down" in cli.stderr, what="the SIGTERM")
        cli.proc.send_signal(signal.SIGQUIT)
        assert await cli.wait() == (1 if after_sigterm else 0)
        if not after_sigterm:  # (its close frame, 1001: told, not cut off)
            frame = await asyncio.wait_for(reader.read(), TIMEOUT)
            assert frame[:1] == b"\x88" and frame[2:4] == (1001).to_bytes(2, "big"), frame
        writer.close()
    said = "SIGQUIT: exiting now" if after_sigterm else "SIGQUIT: quick shutdown"
    assert said in cli.stderr
    assert not uds.exists()


async def test_sigquit_again_is_the_same_quick_shutdown() -> None:
    # (From a review.) A second SIGQUIT exited at once (1), without the rest of
    # the quick shutdown (its hooks, an ASGI lifespan's shutdown, presence
    # taken out of Redis): systemd sends it to every process of a service, and
    # a supervisor passes it on, so a worker often gets it twice.
    async with running_cli("tests.worker_app:routes", env={"SLOW_SHUTDOWN": "1"}) as cli:
        cli.proc.send_signal(signal.SIGQUIT)
        await wait_for(lambda: "shutdown hook begun" in cli.stderr, what="the shutdown hook")
        cli.proc.send_signal(signal.SIGQUIT)
        assert await cli.wait() == 0
    assert "SIGQUIT: quick shutdown already" in cli.stderr
    assert "shutdown hook ended" in cli.stderr and "exiting now" not in cli.stderr


async def test_sigterm_again_is_the_same_graceful_shutdown() -> None:
    # What systemd does (it signals every process of the service, and a
    # supervisor passes it on): not a reason to drop the handlers' grace.
    from tests.helpers import RawClient

    async with running_cli("examples.echo:routes", "--close-timeout", "1") as cli:
        client = await RawClient.connect(cli.port, "/ws")  # never answers the close
        cli.proc.send_signal(signal.SIGTERM)
        opcode, _, _, payload = await client.recv_frame(timeout=TIMEOUT)
        assert (opcode, payload[:2]) == (8, b"\x03\xe9")  # close 1001
        cli.proc.send_signal(signal.SIGTERM)
        assert await cli.wait() == 0  # after close_timeout, as without it
        client.close()
    assert "exiting now" not in cli.stderr
    assert "SIGTERM: shutting down already" in cli.stderr


#: An application whose module ends with the interpreter slowly: a file made
#: then (FINALIZING), half a second's sleep. By then Python has given the signals
#: it handled back their default action, and runs no handler.
FINALIZING_APP = """
import os
import queue
import time

from wsserver import Router

routes = Router()


class _Last:
    def __del__(self, path=os.environ["FINALIZING"], touch=open, sleep=time.sleep):
        touch(path, "w").close()
        sleep(0.5)


_last = _Last()
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
async def test_a_stop_signal_as_the_interpreter_ends_changes_nothing(
    tmp_path: Path, signum: signal.Signals
) -> None:
    # The last moments of a process that stopped (its modules torn down, an
    # object's __del__): a second SIGTERM, systemd's besides the supervisor's,
    # killed it (-15, where it ended with 0). A person's Ctrl-C then still
    # ends it at once (a teardown that hangs would leave only SIGKILL).
    (tmp_path / "finalizing.py").write_text(FINALIZING_APP)
    finalizing = tmp_path / "finalizing"
    async with running_cli(
        "finalizing:routes", "--app-dir", str(tmp_path), env={"FINALIZING": str(finalizing)}
    ) as cli:
        cli.proc.send_signal(signal.SIGTERM)
        await wait_for(finalizing.exists, what="the interpreter's end")
        cli.proc.send_signal(signum)
        code = await cli.wait()
        if signum == signal.SIGINT:
            assert code == -signal.SIGINT
            return
        assert code == 0
    assert "stopped" in cli.stderr


async def test_compression_is_off_by_default_and_on_when_asked() -> None:
    async with (
        running_cli("examples.echo:routes") as cli,
        websockets.connect(cli.url + "/ws") as ws,  # offers permessage-deflate
    ):
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
    for args, env in (
        (("--compression", "deflate"), None),
        ((), {"WEBSOCKET_COMPRESSION": "deflate"}),
    ):
        async with (
            running_cli("examples.echo:routes", *args, env=env) as cli,
            websockets.connect(cli.url + "/ws") as ws,
        ):
            agreed = ws.response.headers["Sec-WebSocket-Extensions"]
            assert agreed.startswith("permessage-deflate"), (args, env)
            await ws.send("compressed " * 20)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "compressed " * 20


async def test_the_compressor_is_set_from_the_command_line_and_the_environment() -> None:
    # The window asked of the client shows in the agreed extension; the level
    # in what comes back: at 0 (stored) a compressible message does not shrink.
    from tests.helpers import RawClient
    from wsserver.protocol.frames import Opcode

    message = b"compress me, " * 400
    sizes = {}
    for args, env in (
        (("--compression-client-window-bits", "9", "--compression-level", "0"), None),
        ((), {"WEBSOCKET_COMPRESSION_CLIENT_WINDOW_BITS": "9", "WEBSOCKET_COMPRESSION_LEVEL": "0"}),
        (("--compression-client-window-bits", "9"), None),
    ):
        async with running_cli(
            "examples.echo:routes", "--compression", "deflate", *args, env=env
        ) as cli:
            offer = "permessage-deflate; client_max_window_bits"
            client = await RawClient.connect(cli.port, "/ws", [("Sec-WebSocket-Extensions", offer)])
            assert b"client_max_window_bits=9" in client.response_head, (args, env)
            client.send(Opcode.BINARY, message)
            opcode, fin, rsv1, payload = await client.recv_frame()
            assert (opcode, fin, rsv1) == (Opcode.BINARY, True, True)
            sizes[str(args or env)] = len(payload)
            client.writer.close()
    stored, from_env, default = sizes.values()
    assert stored == from_env > len(message) > 10 * default, sizes


# ------------------------------------------------------ clear words for mistakes


@pytest.mark.parametrize(
    ("args", "flag", "accepted"),
    [
        (("--port", "70000"), "--port", "0 to 65535"),
        (("--port", "-1"), "--port", "0 to 65535"),
        (("--port", "http"), "--port", "0 to 65535"),
        (("--max-size", "abc"), "--max-size", "positive integer"),
        (("--max-size", "1e6"), "--max-size", "positive integer"),
        (("--ping-interval", "soon"), "--ping-interval", "seconds"),
        (("--compression", "gzip"), "--compression", "deflate"),
        (("--worker-start-timeout", "0"), "--worker-start-timeout", "seconds above 0"),
        # (It said "a value without control characters", of a value that has none.)
        (("--header", "X-Greeting: café"), "--header", "in ASCII"),
    ],
)
async def test_a_bad_flag_gets_one_line_naming_it(
    args: tuple[str, ...], flag: str, accepted: str
) -> None:
    code, err = await run_cli_to_end("examples.echo:routes", *args)
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert flag in last and accepted in last, err
    assert "Traceback" not in err and "_optional" not in err and "Kind" not in err


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--workres", "2"), "--workres: did you mean --workers?"),
        (("--no-access-logs",), "--no-access-logs: did you mean --no-access-log?"),
        (("--no-proxy-header",), "--no-proxy-header: did you mean --no-proxy-headers?"),
        (("--ws-max-sise=10",), "--ws-max-sise: did you mean --ws-max-size?"),
        (
            ("--time-out-keep-alive", "3"),
            "--time-out-keep-alive: did you mean --timeout-keep-alive?",
        ),
    ],
)
async def test_a_misspelt_flag_is_said_with_the_flag_meant(
    args: tuple[str, ...], said: str
) -> None:
    # As a misspelt variable is (WEBSOCKET_MAX_SZE: WEBSOCKET_MAX_SIZE?), and as
    # click says it to uvicorn's users; argparse said "unrecognized arguments".
    code, err = await run_cli_to_end("examples.echo:routes", *args)
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert "unrecognized arguments" in last and said in last, err


@pytest.mark.parametrize("flag", ["--no-reload", "--no-factory"])
async def test_a_flag_is_not_said_meant_for_its_opposite(flag: str) -> None:
    # --no-reload is not a misspelt --reload, which does the opposite.
    code, err = await run_cli_to_end("examples.echo:routes", flag)
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert "unrecognized arguments" in last and "did you mean" not in last, err


async def test_a_bad_worker_start_timeout_variable_gets_one_line_naming_it(
    tmp_path: Path,
) -> None:
    env = {"WEBSOCKET_WORKER_START_TIMEOUT": "soon"}
    socket_path = str(tmp_path / "never.sock")
    code, err = await run_cli_to_end(
        "examples.echo:routes", "--workers", "2", "--uds", socket_path, env=env
    )
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert "WEBSOCKET_WORKER_START_TIMEOUT" in last and "seconds above 0" in last, err
    # Refused before listening: the socket was bound first, its file left behind
    # (and, on the default port, a busy port 8000 made it exit 1 instead).
    assert not os.path.exists(socket_path) and "listening on" not in err, err


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (("--port", "80a"), {}, "--port: expected a port number from 0 to 65535, not '80a'"),
        (("--workers", "0"), {}, "worker processes from 1 to 1024, not '0'"),
        (("--fd", "x"), {}, "--fd: expected a file descriptor number (0 or more), not 'x'"),
        (("--ws-per-message-deflate", "maybe"), {}, "expected true or false, not 'maybe'"),
        (
            ("--reload-delay", "-1"),
            {},
            "--reload-delay: expected a number of seconds above 0, not '-1'",
        ),
        (
            (),
            {"WEBSOCKET_PORT": "80a"},
            "WEBSOCKET_PORT: expected a port number from 0 to 65535, not '80a'",
        ),
        (
            (),
            {"WEB_CONCURRENCY": "x"},
            "WEB_CONCURRENCY: expected a number of worker processes from 1 to 1024, not 'x'",
        ),
        (
            ("--port", "0"),
            {"WEB_CONCURRENCY": "2", "WEBSOCKET_TIMEOUT_WORKER_HEALTHCHECK": "x"},
            "WEBSOCKET_TIMEOUT_WORKER_HEALTHCHECK: expected a number of seconds above 0, not 'x'",
        ),
        (
            ("--port", "0"),
            {"WEBSOCKET_WORKER_START_TIMEOUT": "5s"},
            "WEBSOCKET_WORKER_START_TIMEOUT: expected a number of seconds above 0, not '5s'",
        ),
    ],
)
async def test_the_command_lines_own_flags_and_variables_quote_a_bad_value(
    args: tuple[str, ...], env: dict[str, str], said: str
) -> None:
    # They said what they take and not what was given, where the settings'
    # flags and variables say both ("--max-size: expected ..., not 'x'"): a
    # variable set far away (a unit file, a Helm chart) was not shown.
    code, err = await run_cli_to_end("examples.echo:routes", *args, env=env)
    assert code == 2, err
    assert said in err.strip().splitlines()[-1], err


async def test_a_key_without_a_certificate_names_the_certificates_variable(
    tmp_path: Path,
) -> None:
    # WEBSOCKET_SSL_KEYFILE alone was refused as "ssl_keyfile needs
    # ssl_certfile (--ssl-certfile)": a flag, to someone who sets variables.
    key = str(tmp_path / "key.pem")
    code, err = await run_cli_to_end(
        "examples.echo:routes", "--port", "0", env={"WEBSOCKET_SSL_KEYFILE": key}
    )
    assert code == 2, err
    said = f"ssl_keyfile {key!r} needs ssl_certfile (--ssl-certfile or WEBSOCKET_SSL_CERTFILE)"
    assert err.strip().splitlines()[-1].endswith(said), err
    # As WEBSOCKET_SSL_CERT_REQS alone (its sibling messages, the same way).
    code, err = await run_cli_to_end(
        "examples.echo:routes", "--port", "0", env={"WEBSOCKET_SSL_CERT_REQS": "2"}
    )
    assert code == 2, err
    said = "needs ssl_certfile (--ssl-certfile or WEBSOCKET_SSL_CERTFILE): without it TLS is off"
    assert err.strip().splitlines()[-1].endswith(said), err


@pytest.mark.parametrize(
    "flag", ["--ssl-certfile", "--ssl-keyfile", "--ssl-ca-certs", "--broker", "--status-path"]
)
@pytest.mark.parametrize("empty", ["", " "])
async def test_an_empty_flag_is_refused_not_taken_for_none(flag: str, empty: str) -> None:
    # --ssl-certfile "$CERT" with the variable unset served plain ws:// and
    # http:// without a word, and --broker "$REDIS_URL" this process alone:
    # an empty flag was read as an empty variable is, for unset. "none" says none.
    code, err = await run_cli_to_end("examples.echo:routes", "--port", "0", f"{flag}={empty}")
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert flag in last and f"or 'none', not {empty!r}" in last, err


@pytest.mark.parametrize("empty", ["", " "])
async def test_an_empty_uds_flag_is_refused_not_taken_for_tcp(empty: str) -> None:
    # --uds "$SOCKET" with the variable unset listened on TCP 127.0.0.1:8000
    # without a word (a proxy in front, told of the socket, answered 502), as
    # an empty --ssl-certfile served plain ws://: "none" says no Unix socket.
    # (WEBSOCKET_UDS empty is unset, as every variable: the test above.)
    code, err = await run_cli_to_end("examples.echo:routes", f"--uds={empty}")
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert "--uds" in last and f"or 'none', not {empty!r}" in last, err


@pytest.mark.parametrize(("value", "as_json"), [(" ", False), (" json ", True)])
async def test_a_blank_log_format_variable_is_unset_as_an_empty_one(
    value: str, as_json: bool
) -> None:
    # WEBSOCKET_LOG_FORMAT=" " was refused ("' ' is not text or json") where a
    # blank WEBSOCKET_LOG_CONFIG, _UDS or _HOST is unset, and " json " refused
    # where " 80 " is a port. (A bad setting ends the run: its refusal is the last line.)
    env = {"WEBSOCKET_LOG_FORMAT": value, "WEBSOCKET_MAX_SIZE": "x"}
    code, err = await run_cli_to_end("examples.echo:routes", "--port", "0", env=env)
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert "WEBSOCKET_MAX_SIZE" in last and "WEBSOCKET_LOG_FORMAT" not in err, err
    assert last.startswith("{") == as_json, err


async def test_version() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wsserver", "--version", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert out.decode().strip() == f"wsserver {wsserver.__version__}"


async def test_console_script_finds_modules_in_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "my_app_here.py").write_text(
        "from wsserver import Router\n"
        "routes = Router()\n"
        "@routes.websocket('/')\n"
        "async def hello(request, ws):\n"
        "    await ws.send('hello from the current directory')\n"
    )
    script = Path(sys.executable).parent / "wsserver"
    assert script.exists(), "the console script is installed beside the interpreter"
    async with (
        running_cli("my_app_here:routes", command=(str(script),), cwd=tmp_path) as cli,
        websockets.connect(cli.url + "/") as ws,
    ):
        assert await ws.recv() == "hello from the current directory"


# ------------------------------------------------------------------- ASGI apps


async def test_serves_an_asgi_app_with_compression_on_by_default() -> None:
    async with running_cli("examples.asgi_echo:app") as cli:
        await assert_echo(cli.url + "/anywhere")
        async with websockets.connect(cli.url + "/") as ws:
            assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        reader, writer = await asyncio.open_connection("127.0.0.1", cli.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
        assert response.startswith(b"HTTP/1.1 200 OK\r\n") and b"ASGI echo" in response
    async with (
        running_cli("examples.asgi_echo:app", "--ws-per-message-deflate", "false") as cli,
        websockets.connect(cli.url + "/") as ws,
    ):
        assert "Sec-WebSocket-Extensions" not in ws.response.headers


async def test_serves_a_starlette_app_with_its_lifespan() -> None:
    async with (
        running_cli("tests.test_asgi_frameworks:starlette_app", "--ws-max-size", "10") as cli,
        websockets.connect(cli.url + "/ws", subprotocols=["json"]) as ws,
    ):
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "hello from lifespan"
        await ws.send("0123456789")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "0123456789"
        await ws.send("0123456789!")  # over --ws-max-size
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert ws.close_code == 1009


async def test_factory_and_app_dir(tmp_path: Path) -> None:
    async with running_cli("examples.asgi_echo:make_app", "--factory") as cli:
        await assert_echo(cli.url + "/")
    (tmp_path / "elsewhere_app.py").write_text("from examples.asgi_echo import app\n")
    async with running_cli("elsewhere_app:app", "--app-dir", str(tmp_path)) as cli:
        await assert_echo(cli.url + "/")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["examples.asgi_echo:app", "--interface", "router"], "not a wsserver.Router"),
        (["examples.echo:routes", "--interface", "asgi"], "not an ASGI 3 application"),
        (["examples.asgi_echo:Message"], "not a wsserver.Router or an ASGI 3 application"),
        (["examples.echo:PAGE"], "not a wsserver.Router or an ASGI 3 application"),
        # (A TypeError's traceback: the application was called as a factory.)
        (["examples.asgi_echo:app", "--factory"], "is an ASGI application, not a factory"),
    ],
)
async def test_what_cannot_be_served_is_refused_at_start_up(args: list[str], said: str) -> None:
    code, err = await run_cli_to_end(*args)
    assert code == 2, err
    assert said in err.strip().splitlines()[-1] and "Traceback" not in err, err


ODD_APPS = """
from examples.asgi_echo import app as _echo

async def make_async():
    return _echo

def plain(scope, receive, send):
    return _echo(scope, receive, send)

def make_with(settings):
    return _echo

def make_pair():
    return _echo, "debug"

NUMBER = 5

class Callable:
    async def __call__(self, scope, receive, send):
        await _echo(scope, receive, send)

class Asgi2:
    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        await _echo(self.scope, receive, send)

from wsserver import Router
routes = Router()

@routes.websocket("/chat/<room>")
async def chat(request, ws, room):
    await ws.send(room)
"""


@pytest.mark.parametrize(
    ("args", "said"),
    [
        # Served, and every request got a 500 with a TypeError's traceback.
        (
            ["examples.asgi_echo:make_app", "--interface", "asgi"],
            "make_app cannot be called with (scope, receive, send): not an ASGI 3 application"
            " (a factory? add --factory)",
        ),
        # "is a coroutine" and a RuntimeWarning: coroutine never awaited.
        (
            ["{name}:make_async", "--factory"],
            "is an async function that takes no arguments: a factory is a plain function",
        ),
        (["{name}:plain"], "(a function that returns an awaitable: --interface asgi)"),
        # (Not "a factory? add --factory", which refuses async functions.)
        (
            ["{name}:make_async", "--interface", "asgi"],
            "make_async cannot be called with (scope, receive, send): not an ASGI 3 application",
        ),
        (["{name}:NUMBER"], "is an int, not a wsserver.Router"),  # ("is a int")
        # A class: "is a type" said neither what it is nor what to do.
        (
            ["{name}:Callable"],
            "{name}:Callable is a class whose instances are ASGI 3 applications: serve one"
            " (app = Callable()), or add --factory",
        ),
        (
            ["{name}:Asgi2"],
            "{name}:Asgi2 is an ASGI 2 application (a class taking the scope):"
            " asgiref.compatibility.guarantee_single_callable(app) makes it ASGI 3",
        ),
        (
            ["{name}:Callable", "--interface", "router"],
            "{name}:Callable is a class, not a wsserver.Router",
        ),
        # What a factory returned is said to be that ("make_pair is a tuple", of a function).
        (
            ["{name}:make_pair"],
            "what {name}:make_pair (a factory) returned is a tuple, not a wsserver.Router or an",
        ),
        (
            ["{name}:make_pair", "--factory", "--interface", "router"],
            "what {name}:make_pair (a factory) returned is a tuple, not a wsserver.Router",
        ),
        # A factory that takes arguments: a traceback of wsserver's own call
        # (a TypeError, "failed as it was called"), exit code 1.
        (
            ["{name}:make_with", "--factory"],
            "--factory: {name}:make_with cannot be called without arguments: "
            "missing a required argument: 'settings'",
        ),
        # A relative module name: importlib's TypeError, with its traceback,
        # "failed as it was imported" (exit code 1).
        ([".{name}:routes"], "'.{name}' is a relative module name: give its full name"),
        # Three parameters, as an ASGI app's: it was served, and every upgrade got a 500.
        (["{name}:chat"], "is the handler of the route '/chat/<room>': serve its Router"),
    ],
)
async def test_what_cannot_be_served_says_what_to_do(
    tmp_path: Path, args: list[str], said: str
) -> None:
    name = f"odd_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(ODD_APPS)
    args = [a.replace("{name}", name) for a in args]
    said = said.replace("{name}", name)
    code, err = await run_cli_to_end(*args, "--app-dir", str(tmp_path), "--port", "0")
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert said in last and "Traceback" not in err and "never awaited" not in err, err
    if "--factory" not in args:
        # (Only where it is a factory: make_app, and the class Callable.)
        assert "add --factory" not in last or "make_app" in last or ":Callable " in last, err


LIFESPAN_FAILING = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        if FAIL == "message":
            await send({"type": "lifespan.startup.failed", "message": "no database today"})
            return
        raise RuntimeError("lifespan? never heard of it")
FAIL = "{fail}"
"""


@pytest.mark.parametrize(("fail", "lifespan"), [("message", "auto"), ("raise", "on")])
async def test_failed_lifespan_startup_exits_3(tmp_path: Path, fail: str, lifespan: str) -> None:
    name = f"lifespan_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(LIFESPAN_FAILING.replace("{fail}", fail))
    code, err = await run_cli_to_end(
        f"{name}:app", "--app-dir", str(tmp_path), "--lifespan", lifespan, "--port", "0"
    )
    assert code == 3, err
    expected = "no database today" if fail == "message" else "never heard of it"
    assert "ASGI lifespan startup failed" in err and expected in err, err
    assert "listening on" not in err


STARTUP_RAISING = """
import traceback

from wsserver import Router


def connect():
    raise ConnectionError("no database today")


routes = Router()


@routes.on_startup
async def open_pool(server):
    connect()


async def app(scope, receive, send):
    await receive()
    connect()


async def starlette_like(scope, receive, send):
    await receive()
    try:
        connect()
    except Exception:  # (Starlette's lifespan: the traceback is the message)
        await send({"type": "lifespan.startup.failed", "message": traceback.format_exc()})
        raise
"""


@pytest.mark.parametrize("attr", ["routes", "app", "starlette_like"])
async def test_a_startup_that_raised_is_logged_with_its_traceback_once(
    tmp_path: Path, attr: str
) -> None:
    # A Router's on_startup hook, or an ASGI lifespan (--lifespan on), that
    # raised was said in one line, "...raised ConnectionError('no database
    # today')": not where, which only the traceback tells (an on_shutdown
    # hook's failure has its own; so has an application that fails to import).
    name = f"startup_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(STARTUP_RAISING)
    code, err = await run_cli_to_end(
        f"{name}:{attr}", "--app-dir", str(tmp_path), "--lifespan", "on", "--port", "0"
    )
    assert code == 3, err
    assert "startup failed" in err and "listening on" not in err, err
    # Once: Starlette's message holds it already.
    assert err.count("Traceback (most recent call last):") == 1, err
    assert err.count('raise ConnectionError("no database today")') == 1, err
    assert f'{name}.py", line 8, in connect' in err, err


async def test_the_readmes_fastapi_example() -> None:
    async with running_cli("examples.fastapi_rooms:app") as cli:
        async with websockets.connect(cli.url + "/ws/lobby") as ws:
            await ws.send("hello")
            assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)) == {
                "room": "lobby",
                "echo": "hello",
            }
        reader, writer = await asyncio.open_connection("127.0.0.1", cli.port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
        assert response.startswith(b"HTTP/1.1 200 OK\r\n")
        assert response.endswith(b'{"ok":true}')


SYNC_CALL_APP = """
from examples.asgi_echo import app as _echo


class Wrapped:
    # An ASGI app whose __call__ is not a coroutine function but returns an awaitable.
    def __call__(self, scope, receive, send):
        return _echo(scope, receive, send)


app = Wrapped()
"""


async def test_interface_asgi_vouches_for_an_app_auto_cannot_recognise(tmp_path: Path) -> None:
    name = f"syncall_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(SYNC_CALL_APP)
    code, err = await run_cli_to_end(f"{name}:app", "--app-dir", str(tmp_path), "--port", "0")
    assert code == 2 and "not a wsserver.Router or an ASGI 3 application" in err, err
    async with running_cli(f"{name}:app", "--app-dir", str(tmp_path), "--interface", "asgi") as cli:
        await assert_echo(cli.url + "/")


@pytest.mark.parametrize("word", ["none", "NONE", " off ", ""])
def test_the_none_words_turn_a_unix_socket_off_from_the_environment_too(
    monkeypatch: pytest.MonkeyPatch, word: str
) -> None:
    # WEBSOCKET_UDS=none listened on a socket file named "none".
    parser = build_parser()
    monkeypatch.setenv("WEBSOCKET_UDS", word)
    assert _settle(parser, parser.parse_args(["examples.echo:routes"])).uds is None
    # And --uds NONE with --port is no conflict (it was refused as one); an
    # empty --uds is refused, as an empty --ssl-certfile is (the test below).
    monkeypatch.delenv("WEBSOCKET_UDS")
    if not word:
        return
    flags = ["examples.echo:routes", "--uds", word, "--port", "0"]
    args = _settle(parser, parser.parse_args(flags))
    assert args.uds is None and args.port == 0


@pytest.mark.parametrize(
    "flags",
    [
        ["--ssl-cert-reqs", "2"],
        ["--ssl-certfile", "/nonexistent/cert.pem", "--ssl-keyfile", "/nonexistent/key.pem"],
    ],
)
async def test_tls_settings_a_worker_would_refuse_are_refused_before_listening(
    flags: list[str],
) -> None:
    # The supervisor bound the port, said "listening on", started its workers,
    # and each of them refused the settings in turn.
    code, err = await run_cli_to_end(
        "examples.echo:routes", "--port", "0", "--workers", "2", *flags
    )
    assert code == 2, err
    assert "listening on" not in err and "Traceback" not in err, err
    assert "ssl_" in err.strip().splitlines()[-1], err


async def test_reload_flags_without_reload_are_said() -> None:
    # They did nothing, silently.
    async with running_cli(
        "examples.echo:routes", "--reload-dir", "examples", "--reload-delay", "2"
    ) as cli:
        await assert_echo(cli.url + "/ws")
    said = "--reload-dir, --reload-delay without --reload: nothing is watched"
    assert said in cli.stderr, cli.stderr


async def test_supervisor_settings_without_a_supervisor_are_said_or_refused() -> None:
    # One process, no supervisor: --worker-start-timeout and
    # --timeout-worker-healthcheck did nothing, silently, and a variable of
    # theirs that --workers refuses was taken: the same environment started
    # one process and failed under WEB_CONCURRENCY.
    code, err = await run_cli_to_end(
        "no_such_module:app",
        "--worker-start-timeout",
        "5",
        "--timeout-worker-healthcheck",
        "none",
    )
    said = (
        "--worker-start-timeout, --timeout-worker-healthcheck without --workers: "
        "no supervisor starts or watches workers"
    )
    assert code == 2 and said in err, err
    for name, value in (
        ("WEBSOCKET_WORKER_START_TIMEOUT", "abc"),
        ("WEBSOCKET_TIMEOUT_WORKER_HEALTHCHECK", "0"),
    ):
        code, err = await run_cli_to_end("no_such_module:app", env={name: value})
        last = err.strip().splitlines()[-1]
        assert code == 2 and last.startswith(f"error: {name}: expected"), err
    # A good one is taken without a word (the environment may be a supervised one's).
    code, err = await run_cli_to_end(
        "no_such_module:app", env={"WEBSOCKET_WORKER_START_TIMEOUT": "5"}
    )
    assert code == 2 and "WEBSOCKET_WORKER" not in err and "cannot import" in err, err


@pytest.mark.parametrize("flag", ["--reload-include", "--reload-exclude"])
async def test_a_reload_pattern_that_matches_nothing_is_refused_in_one_line(flag: str) -> None:
    # "." (or "./") is no pattern pathlib can match: the watcher's first look
    # ended the start with a traceback ("ValueError: empty pattern").
    code, err = await run_cli_to_end("examples.echo:routes", "--port", "0", "--reload", flag, ".")
    assert code == 2, err
    assert "Traceback" not in err and "listening on" not in err, err
    assert f"{flag} .: " in err.strip().splitlines()[-1], err


LEFTOVER_APP = """
import asyncio
import time

from wsserver import Router

routes = Router()


@routes.websocket("/thread")
async def in_a_thread(request, ws):
    await ws.send("in")
    await asyncio.to_thread(time.sleep, 60)  # a blocking client library, say


@routes.websocket("/stubborn")
async def stubborn(request, ws):
    await ws.send("in")
    while True:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            pass  # swallowed: it goes on
"""


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
@pytest.mark.parametrize("path", ["/thread", "/stubborn"])
async def test_the_process_exits_once_stopped_whatever_its_handlers_left_running(
    tmp_path: Path, path: str, loop_name: str
) -> None:
    # "stopped" was logged after shutdown_timeout, then asyncio.run() waited
    # for the thread (or the task that swallowed its cancellation) until the
    # last-resort timer ended the process with code 1, about a minute later.
    name = f"leftover_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(LEFTOVER_APP)
    flags = ["--shutdown-timeout", "0.5", "--close-timeout", "0.5", "--loop", loop_name]
    async with (
        running_cli(f"{name}:routes", "--app-dir", str(tmp_path), *flags) as cli,
        websockets.connect(cli.url + path) as ws,
    ):
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "in"
        loop = asyncio.get_running_loop()
        started = loop.time()
        cli.proc.send_signal(signal.SIGTERM)
        assert await cli.wait() == 0
        assert loop.time() - started < 5
    assert "stopped" in cli.stderr
    assert "still running after the stop" in cli.stderr


async def test_what_handlers_leave_running_gets_one_more_second_in_all(tmp_path: Path) -> None:
    # The README: what is left "gets one more second, is named in a warning,
    # and is not waited for". A task that swallowed its cancellation and a
    # thread under way each got a second of their own, one after the other:
    # two seconds (three, with an async generator that would not close).
    name = f"leftover_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(LEFTOVER_APP)
    flags = ["--shutdown-timeout", "0.5", "--close-timeout", "0.5"]
    async with (
        running_cli(f"{name}:routes", "--app-dir", str(tmp_path), *flags) as cli,
        websockets.connect(cli.url + "/thread") as thread,
        websockets.connect(cli.url + "/stubborn") as stubborn,
    ):
        assert await asyncio.wait_for(thread.recv(), TIMEOUT) == "in"
        assert await asyncio.wait_for(stubborn.recv(), TIMEOUT) == "in"
        cli.proc.send_signal(signal.SIGTERM)
        assert await cli.wait() == 0

    def logged_at(text: str) -> datetime.datetime:
        line = next(line for line in cli.stderr.splitlines() if text in line)
        return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")

    said = "1 task and 1 call of asyncio.to_thread() or run_in_executor() still running"
    left = (logged_at(said) - logged_at("wsserver.server: stopped")).total_seconds()
    assert 0.9 < left < 1.6, cli.stderr


SLOW_IMPORT_APP = """
import time
from pathlib import Path

from wsserver import Router

(Path(__file__).parent / "importing").touch()
time.sleep(30)  # a heavy import, a model loaded at start
routes = Router()
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_during_the_application_s_import_stops_it_cleanly(
    tmp_path: Path, signum: int
) -> None:
    # SIGINT gave a KeyboardInterrupt traceback, SIGTERM the default death
    # (143); as pid 1, in a container without an init, SIGTERM was ignored.
    name = f"slow_import_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(SLOW_IMPORT_APP)
    code, err = await signalled_while_starting(f"{name}:routes", tmp_path, "importing", signum)
    assert code == 0, err
    assert f"{signal.Signals(signum).name}: stopped before it started".encode() in err
    assert b"Traceback" not in err


STARTUP_GIVES_UP_APP = """
import asyncio
import time


async def app(scope, receive, send):
    assert scope["type"] == "lifespan"
    await receive()
    try:  # a database driver without asyncio support, that does not answer
        await asyncio.wait_for(asyncio.to_thread(time.sleep, 30), 0.3)
    except TimeoutError:
        await send({"type": "lifespan.startup.failed", "message": "no database"})
"""


async def test_a_failed_start_does_not_wait_for_the_thread_it_left(tmp_path: Path) -> None:
    # Exit code 3 came once the thread's call ended (30 s here), the interpreter
    # waiting for it at exit.
    name = f"gives_up_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(STARTUP_GIVES_UP_APP)
    loop = asyncio.get_running_loop()
    started = loop.time()
    code, err = await run_cli_to_end(f"{name}:app", "--app-dir", str(tmp_path))
    assert code == 3, err
    assert loop.time() - started < 10, err
    assert "ASGI lifespan startup failed: no database" in err
    assert "1 call of asyncio.to_thread() or run_in_executor() still running" in err


LEFT_BY_A_FAILURE = """
import asyncio, logging, sys, time
from wsserver.__main__ import run_to_the_end

logging.basicConfig(level=logging.INFO)


async def main():
    asyncio.get_running_loop().run_in_executor(None, time.sleep, 30)
    await asyncio.sleep(0.1)
    raise RuntimeError("the start failed")


def failed(exc):
    if sys.argv[1] == "refused":
        raise SystemExit(2)  # as _refuse() does
    raise exc


run_to_the_end(main(), failed)
"""


@pytest.mark.parametrize(("how", "code"), [("refused", 2), ("raised", 1)])
async def test_a_start_failing_past_its_handler_does_not_wait_for_its_thread(
    how: str, code: int
) -> None:
    # The thread's call was forgotten when failed() raised: the interpreter's
    # exit waited for it (30 s here; without end for a call that never returns).
    loop = asyncio.get_running_loop()
    started = loop.time()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LEFT_BY_A_FAILURE,
        how,
        cwd=ROOT,
        env=child_env(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == code, err
    assert loop.time() - started < TIMEOUT
    assert b"1 call of asyncio.to_thread() or run_in_executor() still running" in err
    if how == "raised":
        assert b"RuntimeError: the start failed" in err  # its traceback, still


async def test_log_config_none_turns_the_variable_s_file_off(tmp_path: Path) -> None:
    # As --uds none and --ssl-certfile none: an image whose environment names
    # a logging file (WEBSOCKET_LOG_CONFIG=/etc/app/logging.json), and a run
    # that wants the default lines; "--log-config none" was taken for a file
    # named none ("No such file or directory: 'none'"), and a variable set to
    # none too.
    log_config = tmp_path / "logging.json"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "formatters": {"plain": {"format": "CONFIGURED %(name)s %(message)s"}},
                "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
                "root": {"level": "INFO", "handlers": ["stderr"]},
            }
        )
    )
    for flags, variable in ((("--log-config", "none"), str(log_config)), ((), "none")):
        async with running_cli(
            "examples.echo:routes", *flags, env={"WEBSOCKET_LOG_CONFIG": variable}
        ) as cli:
            pass
        line = cli.stderr.splitlines()[0]
        assert " INFO wsserver.server: listening on " in line, cli.stderr
        assert "CONFIGURED" not in cli.stderr, cli.stderr


async def test_a_bad_log_variable_is_named_with_where_it_came_from(tmp_path: Path) -> None:
    # WEBSOCKET_LOG_CONFIG's refusal named --log-config, a flag not given;
    # neither it nor WEBSOCKET_LOG_FORMAT's said that the --env-file set it.
    missing = tmp_path / "missing.ini"
    code, err = await run_cli_to_end(
        "examples.echo:routes", "--port", "0", env={"WEBSOCKET_LOG_CONFIG": str(missing)}
    )
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith(f"error: WEBSOCKET_LOG_CONFIG={str(missing)!r}: "), err
    assert "No such file" in last and "--log-config" not in last, err
    code, err = await run_cli_to_end("examples.echo:routes", "--log-config", str(missing))
    assert code == 2 and f"error: --log-config {missing}: " in err, err  # (the flag's, as it was)
    for line, said in (
        (f"WEBSOCKET_LOG_CONFIG={missing}", f"WEBSOCKET_LOG_CONFIG={str(missing)!r}: "),
        ("WEBSOCKET_LOG_FORMAT=xml", "WEBSOCKET_LOG_FORMAT: 'xml' is not text or json"),
    ):
        env_file = tmp_path / "app.env"
        env_file.write_text(line + "\n")
        code, err = await run_cli_to_end("examples.echo:routes", "--env-file", str(env_file))
        last = err.strip().splitlines()[-1]
        assert code == 2 and said in last, err
        assert last.endswith(f"(set by --env-file {env_file})"), err
    # A blank one is unset, as an empty one is (it was tried as a file named ' ').
    code, err = await run_cli_to_end("no_such_module:app", env={"WEBSOCKET_LOG_CONFIG": " "})
    assert code == 2 and "cannot import 'no_such_module'" in err.strip().splitlines()[-1], err


@pytest.mark.parametrize(
    ("lines", "said"),
    [
        (
            "WEBSOCKET_SSL_CERTFILE=/nonexistent/cert.pem\n",
            "TLS: ssl_certfile /nonexistent/cert.pem: No such file or directory",
        ),
        (
            "WEBSOCKET_SSL_KEYFILE=/nonexistent/key.pem\n",
            "ssl_keyfile '/nonexistent/key.pem' needs ssl_certfile"
            " (--ssl-certfile or WEBSOCKET_SSL_CERTFILE)",
        ),
        (
            "WEBSOCKET_METRICS_PATH=/s\nWEBSOCKET_STATUS_PATH=/s\n",
            "metrics_path '/s' is a path of the status page's (status_path '/s': it and its"
            " /ws): give it another",
        ),
    ],
)
async def test_a_refusal_of_settings_from_variables_names_them_and_the_env_file(
    tmp_path: Path, lines: str, said: str
) -> None:
    # What is refused once the settings are read (a TLS file, settings that
    # clash) named the setting alone: 'TLS: ssl_certfile /x: No such file',
    # with no such flag on the command line, and nothing of the --env-file
    # that set it, which a refusal of a variable's value names
    # ('WEBSOCKET_MAX_SIZE: max_size must be ... (set by --env-file .env)').
    env_file = tmp_path / "app.env"
    env_file.write_text(lines)
    env = dict(line.split("=", 1) for line in lines.split())
    variables = " and ".join(env)
    code, err = await run_cli_to_end(
        "examples.echo:routes", "--port", "0", "--env-file", str(env_file)
    )
    last = err.strip().splitlines()[-1]
    assert code == 2, err
    assert last == f"error: {variables}: {said} (set by --env-file {env_file})", err
    code, err = await run_cli_to_end("examples.echo:routes", "--port", "0", env=env)
    assert code == 2 and err.strip().splitlines()[-1] == f"error: {variables}: {said}", err
    if len(env) == 2:  # (of two, one from the environment: the file's is named)
        code, err = await run_cli_to_end(
            "examples.echo:routes",
            "--port",
            "0",
            "--env-file",
            str(env_file),
            env={"WEBSOCKET_METRICS_PATH": "/s"},
        )
        last = err.strip().splitlines()[-1]
        assert last.endswith(f"(WEBSOCKET_STATUS_PATH set by --env-file {env_file})"), err
    # Given as flags: as it was.
    flags = [f"--{name[10:].lower().replace('_', '-')}={value}" for name, value in env.items()]
    code, err = await run_cli_to_end("examples.echo:routes", "--port", "0", *flags)
    assert code == 2 and err.strip().splitlines()[-1] == f"error: {said}", err


async def test_a_refusal_that_names_no_setting_is_not_given_a_variable(tmp_path: Path) -> None:
    # (Review R3 of e2e1de6.) A refusal of the application (a module named
    # broker or lifespan, not found) names no setting, whatever its words: it
    # was begun with WEBSOCKET_BROKER, as if that variable were at fault.
    env_file = tmp_path / "app.env"
    env_file.write_text("WEBSOCKET_LIFESPAN=off\n")
    code, err = await run_cli_to_end(
        "broker:app", "--env-file", str(env_file), env={"WEBSOCKET_BROKER": "memory"}
    )
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error: cannot import 'broker'"), err
    assert "set by" not in last, err
    code, err = await run_cli_to_end("lifespan:app", "--env-file", str(env_file))
    last = err.strip().splitlines()[-1]
    assert code == 2 and last.startswith("error: cannot import 'lifespan'"), err
    assert "set by" not in last, err


@pytest.mark.parametrize(
    ("lines", "said"),
    [
        ("WEBSOCKET_PORT=abc\n", "WEBSOCKET_PORT: expected a port number"),
        ("WEBSOCKET_MAX_SIZE=-5\n", "WEBSOCKET_MAX_SIZE: max_size"),
        ("WEBSOCKET_UDS=x.sock\nWEBSOCKET_PORT=1\n", "WEBSOCKET_UDS and WEBSOCKET_PORT: each"),
    ],
)
async def test_a_bad_variable_an_env_file_set_is_said_to_come_from_it(
    tmp_path: Path, lines: str, said: str
) -> None:
    # "error: WEBSOCKET_PORT: expected a port number", and the environment
    # had no WEBSOCKET_PORT: what set it (the file) was not said.
    env_file = tmp_path / "app.env"
    env_file.write_text(lines)
    code, err = await run_cli_to_end("examples.echo:routes", "--env-file", str(env_file))
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert said in last and last.endswith(f"(set by --env-file {env_file})"), err
    # Set by the environment, it is not the file's (the environment wins);
    # of two, the one the file set is named.
    name = lines.split("=", 1)[0]
    code, err = await run_cli_to_end(
        "examples.echo:routes", "--env-file", str(env_file), env={name: "x"}
    )
    last = err.strip().splitlines()[-1]
    assert code == 2 and said.split(":")[0] in last, err
    if "\n" in lines.strip():
        assert last.endswith(f"(WEBSOCKET_PORT set by --env-file {env_file})"), err
    else:
        assert "--env-file" not in last, err
