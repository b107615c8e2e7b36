"""``--workers N``: a supervisor process, and N worker processes sharing its listening socket.

The supervisor binds the listening socket once and starts each worker as
``python -m wsserver <the same arguments> --fd <that socket> --workers 1``
(with this interpreter's options, ``-X dev``, ``-O``, ``-W ...``):
every worker accepts on the same socket (the kernel hands each new connection
to one of them), and imports the application afresh. One shared socket
rather than ``SO_REUSEPORT``: with ``SO_REUSEPORT`` each worker has its own
accept queue, and the connections waiting in the queue of a worker that stops
are reset; with one socket held open by the supervisor, a worker can stop at
any time and no connection waiting to be accepted is lost, which is what a
rolling restart needs. (The kernel's distribution over the workers is then
less even under light load; under load each worker accepts as it is free.)

- A worker that says, on its pipe, that it reached its
  ``limit_max_requests`` is replaced as in a rolling restart (below).
- A worker that dies is replaced; one that dies within :data:`EARLY_EXIT`
  seconds of starting, or before it accepts, is restarted after a delay that doubles with each such
  death (up to :data:`MAX_BACKOFF`), so a broken application does not make a
  fork storm, and the log says why. But once every slot's worker has died
  at start-up with none ever accepting, the supervisor stops, with the
  last one's exit code (not with ``--reload``, which waits for a fix).
  A worker stopped by someone else's signal is no failure and is replaced
  at once; stopped so again and again before it accepts, it backs off too.
- SIGTERM/SIGINT: every worker gets SIGTERM (clients get 1001, handlers
  ``shutdown_timeout``); the supervisor exits 0 once they are gone. A second
  SIGINT (Ctrl-C again) kills them at once; SIGTERM again changes nothing
  (systemd sends it to every process of a service). Each signal sent to a
  worker is followed by SIGCONT (a stopped one acts on it). Workers die with the
  supervisor in any case (``PR_SET_PDEATHSIG`` on Linux).
- SIGQUIT: a quick shutdown (gunicorn's): every worker gets SIGQUIT, no
  grace (clients told, handlers cancelled at once; a worker stopping already
  ends at once); the supervisor cleans up and exits 0 once they are gone.
- SIGTSTP (Ctrl-Z): the workers are stopped with it; continued with it.
- SIGHUP: a rolling restart. One worker at a time: a new one is started and
  the supervisor waits until it accepts (it says so on a pipe), then the old
  one gets SIGHUP: it stops accepting, lets the handshakes under way finish,
  closes its WebSockets with 1012 (service restart: clients reconnect) and
  gives handlers ``shutdown_timeout``. The listening socket never closes.
  But the hangup of the terminal it was started on stops it, as SIGTERM.
- ``--reload``: the same rolling restart whenever a watched source file
  changes (:mod:`.reload`). With either, a worker waiting out its start-up
  backoff is started at once.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import contextlib
import functools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Container, Sequence
from dataclasses import dataclass, field
from typing import Any

from .reload import DIR_ENTRIES, MAX_ENTRIES, FileWatcher, forget_bytecode
from .sdnotify import keep_watchdog, notify, reloading
from .server.metrics import retire_process
from .server.server import (
    every_interface_socket,
    is_every_ipv6_interface,
    unix_socket,
    unlistenable,
)

__all__ = [
    "Supervisor",
    "EARLY_EXIT",
    "MAX_BACKOFF",
    "MOST_WORKERS",
    "WorkerRole",
    "ignore_signals",
    "hold_hangups",
    "held_hangup",
    "hold_scaling",
    "release_scaling",
    "READY",
    "LIMIT_REACHED",
    "SIGNALLED",
    "PING",
    "PONG",
    "HEALTH_TIMEOUT",
    "TERMINAL_HANGUP_WINDOW",
    "with_flags",
    "working_directory",
]

logger = logging.getLogger("wsserver.supervisor")

#: The most worker processes (``--workers``, SIGTTIN): more is a typo's fork
#: bomb, or a scaling script's loop, not a deployment.
MOST_WORKERS = 1024
#: A worker that exits sooner than this after it started (or before it accepts) failed at start-up.
EARLY_EXIT = 5.0
#: Seconds a worker that stopped on a signal leaves its slot empty, in case
#: the supervisor's own stop signal follows (every process of the service
#: signalled: systemd, pkill); and its channel's last words are waited for.
SIGNAL_GRACE = 1.0
#: The longest delay before restarting a worker that keeps failing at start-up.
MAX_BACKOFF = 30.0
#: How long a new worker may take to accept, in a rolling restart, before it is
#: given up, unless said otherwise (``--worker-start-timeout``).
START_TIMEOUT = 60.0
#: What a worker writes on its channel (a socket pair): it accepts; it reached
#: its limit_max_requests; and its event loop's answer to the supervisor's PING.
READY = b"R"
LIMIT_REACHED = b"L"
#: And: it got a stop (or retire) signal, whose number is the next byte.
SIGNALLED = b"S"
PING = b"P"
PONG = b"O"
#: Seconds a worker's event loop may take to answer a PING, unless said
#: otherwise (``--timeout-worker-healthcheck``): gunicorn's worker timeout.
HEALTH_TIMEOUT = 30.0
#: ``--reload``: once a look saw a change, the next looks' interval, and at
#: most how many (1.6 s in all, as watchfiles' debounce) before restarting:
#: until a look sees nothing new, the edits are one burst.
RELOAD_SETTLE_STEP = 0.1
RELOAD_SETTLE_LOOKS = 16
#: Seconds between two PINGs to a worker.
HEALTH_INTERVAL = 1.0
#: Seconds after the terminal it was started on is seen hung up during which
#: a SIGHUP is taken for its hangup (see Supervisor._on_hangup()).
TERMINAL_HANGUP_WINDOW = 3.0


@dataclass(frozen=True)
class WorkerRole:
    """What a supervisor tells a worker it starts: its slot, its pipe, whose it is.

    Given on the worker's command line (``--worker SLOT:FD:PID``), not in its
    environment: what a worker is must not pass on to the processes its
    application starts (a wsserver among them would take itself for a worker).
    """

    slot: int
    #: Its end of the channel, inherited: where it says READY and LIMIT_REACHED,
    #: and answers PING.
    ready_fd: int
    supervisor_pid: int

    def argument(self) -> str:
        return f"{self.slot}:{self.ready_fd}:{self.supervisor_pid}"

    @classmethod
    def parse(cls, text: str) -> WorkerRole:
        """The role ``--worker`` gives; ValueError if ``text`` is not ``SLOT:FD:PID``."""
        parts = text.split(":")
        if len(parts) != 3 or not all(part.isdigit() for part in parts):
            raise ValueError(f"not SLOT:FD:PID: {text!r}")
        slot, ready_fd, supervisor_pid = (int(part) for part in parts)
        return cls(slot, ready_fd, supervisor_pid)


@dataclass(eq=False)  # compared and hashed by identity (kept in sets)
class Worker:
    """One worker process and what the supervisor knows of it."""

    slot: int
    process: asyncio.subprocess.Process
    started: float
    ready: asyncio.Future[bool]
    retiring: bool = False
    #: It said it reached its limit_max_requests; how often replacing it failed.
    limit_reached: bool = False
    limit_failures: int = 0
    #: A replacement stopped while starting: a watched file changed since it
    #: began (``--reload``), and another rolling restart follows.
    superseded: bool = False
    exited: asyncio.Future[int] = field(default_factory=lambda: _future())
    #: A pidfd of the process (Linux), which signals reach it and never another
    #: process that came to have its pid; None elsewhere (then ``os.kill``).
    pidfd: int | None = None
    #: Its watching tasks (kept referenced).
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    #: The supervisor's end of its channel, once open; the answer awaited to a PING.
    channel: asyncio.StreamWriter | None = None
    pong: asyncio.Future[None] | None = None
    #: The stop signal it said it got (SIGNALLED), if one; set once its
    #: channel has said all (it ends as the process does).
    signalled: int | None = None
    said_all: asyncio.Future[int] = field(default_factory=lambda: _future())

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def accepting(self) -> bool:
        """Whether it said it is ready (it accepts connections)."""
        ready = self.ready
        return ready.done() and not ready.cancelled() and ready.result() is True


def _quit_signal(worker: Worker) -> signal.Signals:
    """SIGQUIT, the quick shutdown, for a worker that said it is ready; SIGTERM
    for one still starting, which stops it as soon: until its Python has set
    its handlers, SIGQUIT's default action would dump its core."""
    return signal.SIGQUIT if worker.accepting else signal.SIGTERM


def _future() -> asyncio.Future[int]:
    return asyncio.get_running_loop().create_future()


class Supervisor:
    """Run ``workers`` processes on ``sock`` until a signal says stop.

    Args:
        argv: the command line's arguments (the workers get the same, plus
            ``--fd`` and ``--workers 1``).
        workers: how many worker processes.
        sock: the bound, listening socket (inheritable).
        grace: seconds a retiring worker (a rolling restart) may take to stop
            before it is killed (the handshakes it lets finish, its
            shutdown_timeout and close_timeout, and a margin).
        stop_grace: the same after SIGTERM or SIGINT (no handshakes waited
            for); None: ``grace``.
        watcher: with ``--reload``, the source files whose changes restart the workers.
        environment: gives each worker started its environment (``--env-file``
            read again); None from it, or none given: this process's.
        cwd: the directory each worker starts in (:func:`working_directory`,
            a symbolic link followed anew each time); None: this process's.
        clean_up: what the process does last, once the workers are gone (the
            caller runs it after :meth:`run`): a signal that comes meanwhile
            ends the process, once it has run.
        start_timeout: seconds a worker started in a rolling restart may take
            to accept before it is given up (the old one is kept).
        health_timeout: seconds a worker's event loop may take to answer, once
            it accepts, before it is killed (and another started); None: never.
    """

    def __init__(
        self,
        argv: Sequence[str],
        workers: int,
        sock: socket.socket,
        grace: float,
        watcher: FileWatcher | None = None,
        environment: Callable[[], dict[str, str] | None] | None = None,
        *,
        start_timeout: float = START_TIMEOUT,
        health_timeout: float | None = HEALTH_TIMEOUT,
        stop_grace: float | None = None,
        cwd: str | None = None,
        clean_up: Callable[[], None] | None = None,
    ):
        self.argv = list(argv)
        self.clean_up = clean_up
        self.cwd = cwd
        self.health_timeout = health_timeout
        self.count = workers
        self.sock = sock
        self.grace = grace
        self.stop_grace = grace if stop_grace is None else stop_grace
        self.start_timeout = start_timeout
        self.workers: dict[int, Worker] = {}
        self.failures: dict[int, int] = {}
        self._stopping = False
        #: Set as it begins to stop (see :attr:`stopping`), once it runs.
        self._stop_begun: asyncio.Event | None = None
        self.restarting: asyncio.Task[None] | None = None
        self._stopped: asyncio.Event | None = None
        self._retired: set[Worker] = set()
        #: Replacements started, not yet in their slot.
        self._starting: set[Worker] = set()
        #: The replacement the rolling restart under way waits for, if any.
        self._replacing: Worker | None = None
        #: One replacement of a slot at a time (see _replace()).
        self._slot_locks: collections.defaultdict[int, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )
        #: A SIGHUP came during a rolling restart: do another after it, of
        #: the workers started before the last such (loop time).
        self._restart_again = False
        self._asked_again = 0.0
        #: Rolling restarts asked for (SIGHUP, --reload): what each worker a
        #: restart starts would say alike is said once a restart.
        self.restarts = 0
        self._tasks: set[asyncio.Task[object]] = set()
        self.watcher = watcher
        self.environment = environment
        #: Slots whose worker is started again later (after a start-up backoff).
        self._waiting: dict[int, asyncio.TimerHandle] = {}
        #: Whether a worker ever accepted; till then, the slots whose worker died
        #: starting, waiting for one to (once every slot is there, it all ends).
        self._served = False
        self._never_started: set[int] = set()
        #: Whether the first workers were all waited for (and "accepting" said
        #: for them at once): a worker that accepts after that says so itself.
        self._first_started = False
        #: What run() returns.
        self.exit_code = 0
        #: Workers being started (their pid not known yet).
        self._spawning = 0
        #: SIGQUIT: the workers are stopped with SIGQUIT (no grace), not SIGTERM.
        self._quick = False
        #: Its standard streams (0, 1, 2) that are a terminal: the one it was
        #: started on, whose hangup stops it (see _on_hangup()).
        self._terminal = [fd for fd in (0, 1, 2) if os.isatty(fd)]
        #: When (the loop's time) it was seen to have hung up (_watch_terminal()).
        self._terminal_lost: float | None = None
        #: Seconds it was stopped (Ctrl-Z, see _on_suspend()) in all: not
        #: counted against a worker's timeouts (see _wait_running()).
        self._time_stopped = 0.0
        #: Whether systemd was told READY=1 (Type=notify: see _say_ready()).
        self._told_ready = False
        #: Whether systemd was told RELOADING=1 for workers started again
        #: (SIGHUP, see restart()): READY=1 follows once one accepts.
        self._reload_told = False

    @property
    def stopping(self) -> bool:
        """Whether it is stopping (a stop signal; no worker started, nor will)."""
        return self._stopping

    @stopping.setter
    def stopping(self, value: bool) -> None:
        if value and not self._stopping:
            notify("STOPPING=1")  # (systemd's Type=notify)
        self._stopping = value
        if value and self._stop_begun is not None:
            self._stop_begun.set()

    async def _stopping_within(self, seconds: float) -> None:
        """Return once it stops, or after ``seconds``."""
        if self._stop_begun is not None and not self.stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_begun.wait(), seconds)

    async def run(self) -> int:
        """Start the workers and supervise them; the exit code once stopped."""
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._stop_begun = asyncio.Event()
        stops = (signal.SIGINT, signal.SIGTERM)
        for signum in stops:
            loop.add_signal_handler(signum, self._on_stop_signal, signum)
        loop.add_signal_handler(signal.SIGQUIT, self._on_quit)
        loop.add_signal_handler(signal.SIGHUP, self._on_hangup)
        loop.add_signal_handler(signal.SIGTSTP, self._on_suspend)
        if held_hangup():
            if self._terminal_hung_up():
                self._on_stop_signal(signal.SIGHUP, " (the terminal hung up)")
            else:
                # No worker is started yet: each starts with what is there now.
                logger.info("SIGHUP during the start: nothing to restart (no worker started yet)")
        scaling: tuple[signal.Signals, ...] = (signal.SIGTTIN, signal.SIGTTOU)
        if _terminal_stops_background_writes():
            # There the kernel sends SIGTTOU to a background process that
            # writes a log line: job control's, to be left to it (caught, the
            # write is retried for ever, and each signal takes a worker away).
            scaling = ()
            logger.info("SIGTTIN and SIGTTOU are job control's here (the terminal has tostop)")
        for signum in scaling:
            loop.add_signal_handler(signum, self._scale, signum)
        # (One that came during the start, held since, is acted on now; and
        # the workers, started from here on, do not inherit the mask.)
        release_scaling()
        if self.watcher is not None:
            self._keep(loop.create_task(self._watch_files(self.watcher)))
        if self._terminal:
            self._keep(loop.create_task(self._watch_terminal()))
        if os.getpid() == 1:
            self._keep(loop.create_task(self._reap_orphans_forever()))
        for slot in range(1, self.count + 1):
            if self.stopping:
                break  # (stopped while starting them: the rest are not started)
            await self._start(slot, replacing=False)
        first = list(self.workers.values())
        starting = asyncio.gather(*(w.ready for w in first))
        await self._wait_running({starting}, self.start_timeout)
        if not starting.done() and not any(w.accepting for w in first):
            # The port is bound and listening: connections wait in its queue
            # for a worker (a TCP probe would take the server for ready).
            logger.warning(
                "no worker accepts yet after %g s (a slow import or lifespan startup?): "
                "connections wait for one",
                self.start_timeout,
            )
        await self._say_some_accepting(first, starting)
        await starting
        self._first_started = True
        # Those accepting now: not one added meanwhile (SIGTTIN) and still
        # starting, nor one started again after its first died at start-up:
        # each says so itself once it accepts (see _watch_ready()).
        accepting = sum(w.accepting for w in self.workers.values())
        if accepting and not self.stopping:  # (stopped meanwhile: none accepts now)
            logger.info("%d worker%s accepting", accepting, "s" if accepting > 1 else "")
            self._say_ready()
        await self._stopped.wait()
        ignore_signals(loop, (*stops, signal.SIGQUIT, signal.SIGHUP, *scaling), self.clean_up)
        return self.exit_code

    async def _say_some_accepting(
        self, first: list[Worker], starting: asyncio.Future[list[bool]]
    ) -> None:
        """A first start slower than ``start_timeout``: once one of the first
        workers accepts, say so, with those still starting, and tell systemd
        it serves (READY=1), rather than wait for them all, which one whose
        start hangs (an import, a lifespan startup waiting for what does not
        answer) would make for ever: systemd would time the start out
        (``TimeoutStartSec=``) and kill a service that serves. "N workers
        accepting" is said again once they all are."""
        while not starting.done() and not self.stopping:
            if any(w.accepting for w in first):
                accepting = sum(w.accepting for w in first)
                still = [f"worker {w.slot} (pid {w.pid})" for w in first if not w.ready.done()]
                logger.warning(
                    "%d worker%s accepting; %s %s not accept yet after %g s (a slow import or "
                    "lifespan startup?)",
                    accepting,
                    "s" * (accepting != 1),
                    ", ".join(still),
                    "does" if len(still) == 1 else "do",
                    self.start_timeout,
                )
                self._say_ready()
                return
            waiting: set[asyncio.Future[Any]] = {starting}
            waiting.update(w.ready for w in first if not w.ready.done())
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)

    # ----------------------------------------------------------------- workers

    async def _start(self, slot: int, *, replacing: bool) -> Worker | None:
        """Start a worker for ``slot``.

        A replacement (``replacing``) takes the slot once it is ready (see
        :meth:`_replace`); any other start takes the slot at once, unless the
        slot was filled while the process was being started: then it is not
        needed, and stopped. None if it could not be started (no file
        descriptors, no memory to fork): then it is tried again later, as for
        a worker that died young.
        """
        # Started as of now, before its environment (--env-file) is read, not
        # once its process is made: a SIGHUP handled in between (the loop
        # turns that take) asks for what this one may not have (_replace()).
        began = asyncio.get_running_loop().time()
        worker = await self._spawn(slot)
        if worker is None:
            return None
        worker.started = began
        if self.stopping or slot > self.count:
            # (stop_all() reaps it with the others; or SIGTTOU gave up its slot.)
            worker.retiring = True
            self._retired.add(worker)
            _signal(worker, signal.SIGTERM)
            if not self.stopping:
                self._keep(asyncio.get_running_loop().create_task(self._reap([worker])))
        elif replacing:
            self._starting.add(worker)  # (until it takes the slot, or exits)
        elif slot not in self.workers:
            self.workers[slot] = worker
        else:
            logger.info(
                "worker %d: pid %d not needed (the slot was filled): stopping it", slot, worker.pid
            )
            worker.retiring = True
            self._retired.add(worker)
            _signal(worker, signal.SIGTERM)
        return worker

    async def _spawn(self, slot: int) -> Worker | None:
        """Start a worker process for ``slot``, and watch its pipe and its exit."""
        if self.stopping:
            return None  # (and the listening socket is closed)
        loop = asyncio.get_running_loop()
        try:
            ours, theirs = socket.socketpair()
        except OSError as exc:
            self._spawn_failed(slot, exc)
            return None
        write_end = theirs.fileno()
        role = WorkerRole(slot, write_end, os.getpid())
        fd = self.sock.fileno()
        env = self.environment() if self.environment is not None else None
        # (Gone, a symbolic link removed: where this process is, as before.)
        cwd = self.cwd if self.cwd is not None and os.path.isdir(self.cwd) else None
        self._spawning += 1
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *interpreter_options(),
                "-m",
                "wsserver",
                *with_flags(
                    self.argv, "--fd", str(fd), "--workers", "1", "--worker", role.argument()
                ),
                pass_fds=(fd, write_end),
                env=env,
                cwd=cwd,
                # (Unless the socket is stdin, as systemd's StandardInput=socket
                # gives it: /dev/null would take its place.)
                stdin=None if fd == 0 else asyncio.subprocess.DEVNULL,
                # Its own process group: a terminal's Ctrl-C reaches the
                # supervisor only, which stops the workers in order.
                process_group=0,
            )
        except (OSError, ValueError) as exc:  # (ValueError: what exec() refuses)
            ours.close()
            self._spawn_failed(slot, exc)
            return None
        except BaseException:  # cancelled
            ours.close()
            raise
        finally:
            theirs.close()
            self._spawning -= 1
        worker = Worker(slot, process, loop.time(), loop.create_future(), pidfd=_pidfd(process.pid))
        logger.info("worker %d started (pid %d)", slot, process.pid)
        worker.tasks += [
            loop.create_task(self._watch_ready(worker, ours)),
            loop.create_task(self._watch_exit(worker)),
        ]
        if self.health_timeout is not None:
            worker.tasks.append(loop.create_task(self._watch_health(worker, self.health_timeout)))
        return worker

    def _spawn_failed(self, slot: int, exc: OSError | ValueError) -> None:
        """A worker could not be started: try again after the start-up backoff."""
        failures = self.failures[slot] = self.failures.get(slot, 0) + 1
        delay = _backoff(failures)
        logger.error(
            "worker %d could not be started (%s); trying again in %.1f s", slot, exc, delay
        )
        if not self.stopping:
            self._restart_later(slot, delay)

    async def _watch_ready(self, worker: Worker, channel: socket.socket) -> None:
        """Read the worker's channel until it exits.

        ``worker.ready`` is resolved when it says it accepts (True) or exits
        first (False); afterwards it may say it reached its
        ``limit_max_requests``, and is then replaced (:meth:`_replace`), and
        it answers PINGs (:meth:`_watch_health`).
        """
        try:
            reader, worker.channel = await asyncio.open_unix_connection(sock=channel)
        except BaseException:
            channel.close()
            raise
        try:
            said = await reader.read(1)
            if said == SIGNALLED:  # (in its start: no READY follows)
                number = await reader.read(1)
                worker.signalled = number[0] if number else None
                said = await reader.read(1)
            if not worker.ready.done():
                worker.ready.set_result(said == READY)
                if (
                    said == READY
                    and self._first_started
                    and worker not in self._starting
                    and not worker.retiring
                ):
                    # (Started is not accepting: one more, or one started
                    # again, says when it serves. A replacement says it as it
                    # takes its slot, see _replace().)
                    logger.info("worker %d (pid %d) accepting", worker.slot, worker.pid)
                    if not self._told_ready or self._reload_told:
                        # (The first to, those started first having died; or
                        # one started again by a reload.)
                        self._say_ready()
                if said == READY and not self._served:
                    self._served = True
                    for slot in sorted(self._never_started):  # (waiting for this)
                        delay = _backoff(self.failures[slot])
                        logger.info(
                            "a worker started: starting worker %d again in %.1f s", slot, delay
                        )
                        self._restart_later(slot, delay)
                    self._never_started.clear()
            while said:
                said = await reader.read(1)
                if said == LIMIT_REACHED:
                    self._on_limit(worker)
                elif said == SIGNALLED:
                    number = await reader.read(1)
                    worker.signalled = number[0] if number else None
                elif said == PONG and worker.pong is not None and not worker.pong.done():
                    worker.pong.set_result(None)
        except OSError:
            pass  # (its end reset: it is gone, which _watch_exit() sees)
        finally:
            worker.channel.close()
            if not worker.said_all.done():
                worker.said_all.set_result(0)
        if not worker.ready.done():
            worker.ready.set_result(False)

    async def _watch_health(self, worker: Worker, timeout: float) -> None:
        """``--timeout-worker-healthcheck``: once the worker accepts, every
        :data:`HEALTH_INTERVAL`, ask its event loop for an answer. One that
        gives none within ``timeout`` (its loop is blocked: an endless loop, a
        deadlock, a call that never returns) serves no one: it is killed, and
        another started as for a worker that died. As gunicorn's worker
        timeout does, and unlike uvicorn's, whose answer comes from a thread.
        """
        if not await worker.ready:
            return
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            if worker.exited.done() or worker.retiring or self.stopping or worker.channel is None:
                return
            worker.pong = loop.create_future()
            try:
                worker.channel.write(PING)
            except (OSError, RuntimeError):
                return  # (its channel is closed: it is gone)
            waiting: set[asyncio.Future[Any]] = {worker.pong, worker.exited}
            await self._wait_running(waiting, timeout, first=True)
            if worker.pong.done():
                continue
            if worker.exited.done() or worker.retiring or self.stopping:
                return
            logger.error(
                "worker %d (pid %d) did not answer within %g s (its event loop is blocked?): "
                "killing it",
                worker.slot,
                worker.pid,
                timeout,
            )
            _signal(worker, signal.SIGKILL)
            return

    def _on_limit(self, worker: Worker) -> None:
        """The worker received its limit_max_requests: replace it (it serves meanwhile).

        A worker that says so before it took its slot is replaced once it has
        (see :meth:`_replace`).
        """
        worker.limit_reached = True
        if self.stopping or worker.retiring or self.workers.get(worker.slot) is not worker:
            return
        logger.info(
            "worker %d (pid %d) reached limit_max_requests: replacing it", worker.slot, worker.pid
        )
        self._keep(asyncio.get_running_loop().create_task(self._replace_at_limit(worker)))

    async def _replace_at_limit(self, worker: Worker) -> None:
        """Replace a worker at its limit; if that fails, try again after a back-off."""
        if await self._replace(worker.slot, worker=worker) or self.stopping:
            return
        if worker.exited.done() or self.workers.get(worker.slot) is not worker:
            return
        worker.limit_failures += 1
        delay = _backoff(worker.limit_failures)
        logger.error(
            "worker %d (pid %d) goes on past its limit_max_requests; replacing it again in %.1f s",
            worker.slot,
            worker.pid,
            delay,
        )
        asyncio.get_running_loop().call_later(delay, self._on_limit, worker)

    async def _watch_exit(self, worker: Worker) -> None:
        code = await worker.process.wait()
        if worker.pidfd is not None:
            os.close(worker.pidfd)
            worker.pidfd = None
        replacement = worker in self._starting
        self._starting.discard(worker)
        self._retired.discard(worker)
        retire_process(worker.pid)  # (its metrics, under --metrics-path)
        worker.exited.set_result(code)
        if not worker.ready.done():
            worker.ready.set_result(False)
        if self.workers.get(worker.slot) is not worker:
            if replacement and not self.stopping and self._none_will_start():
                # (The replacement that was waited for, see _replace_dead().)
                self._stop_as_none_started(worker, code)
            return  # replaced: an old worker that retired
        if worker.retiring or self.stopping:
            return
        if code == 0 and worker.channel is not None:
            # Whether it said it was signalled: its channel ends as it does.
            await asyncio.wait([worker.said_all], timeout=SIGNAL_GRACE)
        elif -code in _STOP_SIGNALS and worker.signalled is None:
            # Ended by a stop signal's default action, before wsserver set
            # its handlers (its first moments): someone else's too, since the
            # supervisor sends none but to stop or retire a worker.
            worker.signalled = -code
        if _someone_elses_stop(worker, code) is not None:
            # A stop someone sent it (kill -TERM PID); or every process of
            # the service was signalled (systemd, pkill) and the
            # supervisor's own signal comes in a moment: no need to start
            # another then, nor to say it died.
            await self._stopping_within(SIGNAL_GRACE)
        # (Whatever came while it waited: a stop, a retirement, or its slot
        # given up, SIGTTOU: no other worker goes there.)
        if worker.retiring or self.stopping:
            return
        if self.workers.get(worker.slot) is not worker:
            logger.info(
                "worker %d (pid %d) ended (%s), its slot given up meanwhile",
                worker.slot,
                worker.pid,
                _exit_status(code),
            )
            return
        self._replace_dead(worker, code)

    def _replace_dead(self, worker: Worker, code: int) -> None:
        """A worker died on its own: start another, after a delay if it died young.

        Deaths within :data:`EARLY_EXIT` seconds of starting or before accepting,
        in a row, double the delay each time (0.5 s, 1 s, 2 s, ... up to
        :data:`MAX_BACKOFF`).
        """
        loop = asyncio.get_running_loop()
        lived = loop.time() - worker.started
        status = _exit_status(code)
        slot = worker.slot
        signalled = _someone_elses_stop(worker, code)
        if signalled is not None:
            # Not a failure: it stopped as it was asked, by someone else (in
            # its start too: an operator's kill says nothing of the
            # application). But stopped again and again before it accepts
            # (an application that signals itself as it starts), its slot
            # backs off as for deaths in a row, and says so.
            if worker.ready.result():
                self.failures[slot] = 0
                stops = 0
            else:
                stops = self.failures[slot] = self.failures.get(slot, 0) + 1
            delay = _backoff(stops - 1) if stops > 1 else 0.0
            logger.log(
                logging.WARNING if delay else logging.INFO,
                "worker %d (pid %d) stopped on %s, not the supervisor's (%s after %.1f s%s); "
                "starting another%s",
                slot,
                worker.pid,
                _signal_name(signalled),
                status,
                lived,
                f", before accepting, {stops} in a row" if delay else "",
                f" in {delay:.1f} s" if delay else "",
            )
            del self.workers[slot]
            self._restart_later(slot, delay)
            return
        if not self._served and self.watcher is None:
            self._never_started.add(slot)
        if self._none_will_start():
            # Nothing ever served (an import error, a failing lifespan startup):
            # retrying would hide it; the process manager should see it. (Unless
            # a rolling restart's replacement is starting, with code fixed
            # since: it is waited for.)
            self._stop_as_none_started(worker, code)
            return
        if slot in self._never_started:
            # Until another worker starts (then it is started again, see
            # _watch_ready) or every one has died starting (then it all ends):
            # a broken application is started once per slot, however long
            # each takes to fail.
            self.failures[slot] = self.failures.get(slot, 0) + 1
            logger.error(
                "worker %d (pid %d) died at start-up (%s); starting another once a worker "
                "has started",
                slot,
                worker.pid,
                status,
            )
            del self.workers[slot]
            return
        if lived < EARLY_EXIT or not worker.ready.result():
            # (One that never accepted failed at start-up, however long that
            # took: a lifespan startup waiting out a database's timeout.)
            failures = self.failures[slot] = self.failures.get(slot, 0) + 1
            delay = _backoff(failures)
            streak = f", {failures} in a row" if failures > 1 else ""
        else:
            self.failures[slot] = 0
            delay = 0.0
            streak = ""
        logger.error(
            "worker %d (pid %d) died%s (%s after %.1f s%s); starting another%s",
            slot,
            worker.pid,
            "" if worker.ready.result() else " at start-up",
            status,
            lived,
            streak,
            f" in {delay:.1f} s" if delay else "",
        )
        del self.workers[slot]
        self._restart_later(slot, delay)

    def _none_will_start(self) -> bool:
        """Whether every slot's worker died at start-up with none ever accepting
        (see _replace_dead()), and no replacement is starting (a SIGHUP's, the
        code fixed meanwhile) that may yet accept."""
        return (
            bool(self._never_started)
            and len(self._never_started) >= self.count
            and all(w.exited.done() for w in self._starting)
        )

    def _stop_as_none_started(self, worker: Worker, code: int) -> None:
        """Stop, with ``worker``'s exit code, the last to die at start-up."""
        self.exit_code = code if code > 0 else 1
        _fatal(
            "worker %d (pid %d) died at start-up (%s); no worker ever started: "
            "stopping (exit code %d)",
            worker.slot,
            worker.pid,
            _exit_status(code),
            self.exit_code,
        )
        self.stopping = True
        self._keep(asyncio.get_running_loop().create_task(self._stop_all()))

    def _restart_later(self, slot: int, delay: float) -> None:
        loop = asyncio.get_running_loop()
        earlier = self._waiting.get(slot)
        if earlier is not None:
            earlier.cancel()
        self._waiting[slot] = loop.call_later(delay, self._restart_slot, slot)

    def _restart_slot(self, slot: int) -> None:
        self._waiting.pop(slot, None)
        if not self.stopping and slot not in self.workers and slot <= self.count:
            self._keep(asyncio.get_running_loop().create_task(self._start_again(slot)))

    async def _start_again(self, slot: int) -> None:
        """Start a worker for ``slot`` (one died, or SIGTTIN added the slot),
        and say so if it does not accept within ``start_timeout``: its slot
        serves no one meanwhile, and with no other worker accepting,
        connections wait in the socket's queue (an import or lifespan startup
        that hangs: a database that does not answer)."""
        worker = await self._start(slot, replacing=False)
        if worker is None:
            return
        await self._wait_running({worker.ready}, self.start_timeout)
        if worker.ready.done() or self.stopping or self.workers.get(slot) is not worker:
            return
        accepting = any(w.accepting for w in self.workers.values())
        logger.warning(
            "worker %d (pid %d) does not accept yet after %g s (a slow import or lifespan "
            "startup?)%s",
            slot,
            worker.pid,
            self.start_timeout,
            "" if accepting else "; no worker accepts: connections wait",
        )

    def _keep(self, task: asyncio.Task[Any]) -> None:
        """Keep a task referenced until it is done."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ reload

    async def _watch_files(self, watcher: FileWatcher) -> None:
        """``--reload``: a rolling restart whenever a watched file changed."""
        truncated = False
        # (What the changed files are said relative to: the directory as
        # now, not as it is then, when it may be gone, removed and made anew.)
        here = None
        with contextlib.suppress(OSError):
            here = os.getcwd()
        crowded: set[str] = set()
        while not self.stopping:
            if watcher.truncated and not truncated:  # (from the first look on)
                logger.warning(
                    "--reload: too much to watch; only what the first %d entries hold", MAX_ENTRIES
                )
            truncated = watcher.truncated
            for directory in sorted(set(watcher.crowded) - crowded):
                logger.warning(
                    "--reload: %s holds more than %d entries: not watched (--reload-exclude"
                    " it, or --reload-dir the code's own directories)",
                    directory,
                    DIR_ENTRIES,
                )
            crowded = set(watcher.crowded)
            await asyncio.sleep(watcher.interval)
            # In a thread: a look is a few hundred stat() calls, and signals,
            # exits and ready pipes must not wait for it.
            # A burst of edits (a checkout, a formatter, an editor saving
            # several files) is one change: looked at again until a look
            # sees nothing new (up to RELOAD_SETTLE_LOOKS). (A dict: each
            # path once, in the order seen, however many thousands.)
            changed = dict.fromkeys(await asyncio.to_thread(watcher.changed))
            for _ in range(RELOAD_SETTLE_LOOKS if changed else 0):
                await asyncio.sleep(RELOAD_SETTLE_STEP)
                more = await asyncio.to_thread(watcher.changed)
                if not more:
                    break
                changed.update(dict.fromkeys(more))
            if not changed or self.stopping:
                continue
            # (Else an edit of the same size in the same second as the last
            # would run, in the new worker, the .pyc compiled from the last.)
            await asyncio.to_thread(forget_bytecode, changed)
            shown = ", ".join(_shown_path(path, here) for path in list(changed)[:3])
            if len(changed) > 3:
                shown += f" and {len(changed) - 3} more"
            self.restart(f"changed: {shown}", changed=True)

    async def _reap_orphans_forever(self) -> None:
        """As pid 1 (a container without an init): every second, reap the
        processes the kernel made our children when their parent ended (an
        application's ``sh -c 'job &'``, say), which would otherwise stay
        zombies until the pid limit is reached."""
        while True:
            await asyncio.sleep(1.0)
            if not self._spawning:  # (a worker whose pid is not known yet is not an orphan)
                known = {worker.pid for worker in self._all_workers()}
                reaped = reap_orphans(known)
                if reaped:
                    logger.debug("reaped %d orphaned process%s", reaped, "es" * (reaped > 1))

    # ----------------------------------------------------------------- signals

    def _on_suspend(self) -> None:
        """SIGTSTP (Ctrl-Z): the workers are stopped, then this process, as one
        process is (and uvicorn's); continued (fg, bg), so are they. (Each in a
        process group of its own, a terminal's Ctrl-Z reaches none of them:
        they served on, the job said stopped, their log written over the
        shell's prompt.)"""
        workers = self._all_workers()
        for worker in workers:
            _send(worker, signal.SIGSTOP)
        loop = asyncio.get_running_loop()
        stopped = loop.time()
        os.kill(os.getpid(), signal.SIGSTOP)
        self._time_stopped += loop.time() - stopped  # (continued)
        for worker in workers:
            _send(worker, signal.SIGCONT)

    async def _wait_running(
        self, futures: Collection[asyncio.Future[Any]], timeout: float, *, first: bool = False
    ) -> None:
        """Wait until ``futures`` are done (with ``first``, one of them), at
        most ``timeout`` seconds of its running: the time it was stopped
        meanwhile (Ctrl-Z, its workers stopped with it) is not counted. Else a
        timer that ran out while all were stopped fired as soon as they were
        continued (fg), before a worker could answer a PING, accept, or stop:
        a worker killed as blocked, a replacement given up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        when = asyncio.FIRST_COMPLETED if first else asyncio.ALL_COMPLETED
        while True:
            stopped = self._time_stopped
            left = max(0.0, deadline - loop.time())
            done, pending = await asyncio.wait(futures, timeout=left, return_when=when)
            if (done if first else not pending) or self._time_stopped == stopped:
                return
            deadline += self._time_stopped - stopped

    def _on_hangup(self) -> None:
        """SIGHUP: a rolling restart, unless it is the hangup of the terminal it
        was started on (its window closed, its ssh session lost), which stops
        it, as it stops one process (and uvicorn): restarted, the server ran
        on with no terminal, its port taken, and nobody to stop it."""
        if self._terminal_hung_up():
            self._on_stop_signal(signal.SIGHUP, " (the terminal hung up)")
        else:
            self.restart("SIGHUP")

    def _terminal_hung_up(self) -> bool:
        """Whether the terminal it was started on hung up just now (its streams
        there are no longer a terminal: the kernel made them so at the hangup).

        Not one seen hung up more than :data:`TERMINAL_HANGUP_WINDOW` ago: a
        terminal that went with no SIGHUP to this process (a job left running
        as its shell exited, ``disown``, ``setsid``) leaves its streams hung up
        for good, and a deploy's ``kill -HUP`` days later is a restart still.
        """
        if not any(not os.isatty(fd) for fd in self._terminal):
            return False
        lost = self._terminal_lost
        return lost is None or asyncio.get_running_loop().time() - lost < TERMINAL_HANGUP_WINDOW

    async def _watch_terminal(self) -> None:
        """Note when the terminal it was started on is first seen hung up (see
        :meth:`_terminal_hung_up`); its own SIGHUP comes with the hangup."""
        loop = asyncio.get_running_loop()
        while all(os.isatty(fd) for fd in self._terminal):
            await asyncio.sleep(HEALTH_INTERVAL)
        self._terminal_lost = loop.time()

    def _on_stop_signal(self, signum: int, why: str = "") -> None:
        name = signal.Signals(signum).name + why
        if self.stopping:
            if signum != signal.SIGINT:  # (systemd's SIGTERM to every process, say)
                logger.info("%s: stopping already", name)
                return
            logger.warning("second SIGINT: killing the workers")
            self._keep(asyncio.get_running_loop().create_task(self._kill_all()))
            return
        self.stopping = True
        logger.info("%s: stopping the workers", name)
        self._keep(asyncio.get_running_loop().create_task(self._stop_all()))

    def _on_quit(self) -> None:
        """SIGQUIT: a quick shutdown, as gunicorn's. The workers get SIGQUIT,
        theirs: no grace (their clients are told, their handlers cancelled at
        once); also those already stopping (SIGTERM), which then end at once.
        The supervisor then ends as for SIGTERM, cleaning up (exit code 0)."""
        if self._quick:
            # (systemd signals every process of a service: the workers have it.)
            logger.info("SIGQUIT: quick shutdown already")
            return
        logger.info("SIGQUIT: quick shutdown")
        self._quick = True
        if self.stopping:
            # (And _stop_all(), under way, those that appear later: with SIGQUIT now.)
            for worker in self._all_workers():
                _signal(worker, _quit_signal(worker))
            return
        self.stopping = True
        self._keep(asyncio.get_running_loop().create_task(self._stop_all()))

    def _scale(self, signum: int) -> None:
        """SIGTTIN: one more worker (never more than :data:`MOST_WORKERS`);
        SIGTTOU: one fewer (as uvicorn's supervisor does; never none). The
        one that goes is the last slot's, retired as in a rolling restart: its
        connections get to finish (its WebSocket clients 1012, to come back to
        another)."""
        name = signal.Signals(signum).name
        if self.stopping:
            return
        if signum == signal.SIGTTIN:
            if self.count >= MOST_WORKERS:
                logger.warning("%s: %d workers are the most there can be", name, MOST_WORKERS)
                return
            self.count += 1
            logger.info("%s: one more worker, %d in all", name, self.count)
            self._restart_slot(self.count)
            return
        if self.count == 1:
            logger.warning("%s: one worker is the fewest there can be", name)
            return
        slot = self.count
        self.count -= 1
        logger.info("%s: one fewer worker, %d in all", name, self.count)
        waiting = self._waiting.pop(slot, None)
        if waiting is not None:
            waiting.cancel()
        self._never_started.discard(slot)
        self.failures.pop(slot, None)
        worker = self.workers.pop(slot, None)
        if worker is not None and not worker.exited.done():
            logger.info("worker %d (pid %d) retiring", slot, worker.pid)
            worker.retiring = True
            self._retired.add(worker)
            # (One still starting has no connections, and would hold a SIGHUP
            # until it serves, as in _replace().)
            _signal(worker, signal.SIGHUP if worker.accepting else signal.SIGTERM)
            self._keep(asyncio.get_running_loop().create_task(self._reap([worker])))
        if self._none_will_start():
            # Every slot left is one whose worker died at start-up, waiting for
            # another to start: none will (see _replace_dead()).
            self._stop_as_none_left()

    def _stop_as_none_left(self) -> None:
        """Stop (exit code 1): no worker ever started, and none is left to."""
        self.exit_code = 1
        _fatal("no worker ever started, and none is left to: stopping (exit code 1)")
        self.stopping = True
        self._keep(asyncio.get_running_loop().create_task(self._stop_all()))

    async def _kill_all(self) -> None:
        """Kill every worker, and end: not by os._exit(), so that what the command
        made for them (shared directories, a Unix socket's file) is removed."""
        workers = self._all_workers()
        for worker in workers:
            _signal(worker, signal.SIGKILL)
        # (Reaped before the loop closes, which asyncio would otherwise warn of.)
        exits = [worker.exited for worker in workers if not worker.exited.done()]
        if exits:
            await asyncio.wait(exits, timeout=2.0)
        self.exit_code = 1
        assert self._stopped is not None
        self._stopped.set()

    async def _stop_all(self) -> None:
        # The workers close their copies of the listening socket as they stop;
        # with ours open too, the kernel would go on queueing connections that
        # nobody accepts any more (reset when we exit), rather than refusing
        # them, as one process does. (A socket systemd passed stays open in it.)
        self.sock.close()
        if self.restarting is not None:
            self.restarting.cancel()
        for handle in self._waiting.values():
            handle.cancel()
        # Again for a worker whose start was under way, which appears later.
        for _ in range(3):
            workers = self._all_workers()
            if not workers:
                break
            for worker in workers:
                _signal(worker, _quit_signal(worker) if self._quick else signal.SIGTERM)
            await self._reap(workers, self.stop_grace)
            await asyncio.sleep(0.1)
        logger.info("stopped")
        assert self._stopped is not None
        self._stopped.set()

    async def _reap(self, workers: list[Worker], grace: float | None = None) -> None:
        """Wait for ``workers`` to exit within ``grace`` (else the grace of a
        retiring worker); kill the ones that do not."""
        pending = [w.exited for w in workers if not w.exited.done()]
        if not pending:
            return
        await self._wait_running(pending, self.grace if grace is None else grace)
        late = [w.exited for w in workers if not w.exited.done()]
        for worker in workers:
            if not worker.exited.done():
                logger.warning("worker %d (pid %d) did not stop: killed", worker.slot, worker.pid)
                _signal(worker, signal.SIGKILL)
        if late:
            await asyncio.wait(late, timeout=5.0)

    def _all_workers(self) -> list[Worker]:
        """Every worker still running: serving, retiring, or starting as a replacement."""
        every = dict.fromkeys((*self.workers.values(), *self._retired, *self._starting))
        return [w for w in every if not w.exited.done()]

    def restart(self, reason: str, *, changed: bool = False) -> None:
        """A rolling restart of the workers (SIGHUP, or ``--reload`` seeing a change).

        Workers waiting out a start-up backoff (the code was broken: it may be
        fixed now) start at once. With ``changed`` (``--reload``), the
        replacement a rolling restart under way waits for is stopped if it does
        not accept yet: it may run the code from before the change (an edit
        that made the import hang, then its fix: the fix is not kept waiting
        for ``start_timeout``).
        """
        if self.stopping:
            return
        self.restarts += 1
        waiting = list(self._waiting)
        for slot in waiting:
            self._waiting.pop(slot).cancel()
            self.failures[slot] = 0
            self._restart_slot(slot)
        if waiting and not self.workers:
            logger.info("%s: starting the workers again", reason)
            if self._told_ready:  # (Type=notify-reload: READY=1 once one accepts)
                notify(*reloading(), f"STATUS={reason}: starting the workers again")
                self._reload_told = True
            return
        asked = asyncio.get_running_loop().time()
        if self.restarting is not None and not self.restarting.done():
            logger.info("%s: another rolling restart will follow the one under way", reason)
            self._restart_again = True
            self._asked_again = asked
            new = self._replacing
            if changed and new is not None and not new.ready.done() and not new.exited.done():
                logger.info(
                    "worker %d: its replacement (pid %d), still starting, may run the code "
                    "from before this change: stopping it",
                    new.slot,
                    new.pid,
                )
                new.superseded = True
                _signal(new, signal.SIGTERM)  # (its start stops)
            return
        count = len(self.workers)
        logger.info("%s: rolling restart of %d worker%s", reason, count, "s" * (count != 1))
        if self._told_ready:  # (Type=notify-reload: READY=1 again once it is done)
            notify(*reloading(), f"STATUS={reason}: rolling restart")
        self.restarting = asyncio.get_running_loop().create_task(self._rolling_restart(asked))

    async def _rolling_restart(self, asked: float) -> None:
        try:
            while True:
                self._restart_again = False
                await self._restart_each(asked)
                if not self._restart_again or self.stopping:
                    return
                # (Of the workers started before that: not those the restart
                # just done started after it, which have what it asked for.)
                asked = self._asked_again
                logger.info("rolling restart again, for what came meanwhile")
        finally:
            if self._told_ready and not self.stopping:
                self._say_ready()

    def _say_ready(self) -> None:
        """Tell systemd (``Type=notify``) that the service serves: once the
        first workers accept, and again after each rolling restart."""
        if not self._told_ready:
            keep_watchdog(asyncio.get_running_loop())
        self._told_ready = True
        self._reload_told = False
        accepting = sum(w.accepting for w in self.workers.values())
        notify("READY=1", f"STATUS={accepting} worker{'s' * (accepting != 1)} accepting")

    async def _restart_each(self, began: float) -> None:
        """Replace each worker started before ``began`` (the loop's time the
        restart was asked for), one at a time."""
        for slot in sorted(self.workers):
            if self.stopping:
                return
            if not await self._replace(slot, started_before=began):
                if not self.stopping and not self._restart_again:
                    logger.error("rolling restart stopped")
                return  # (or another follows now)
        logger.info("rolling restart done")

    async def _replace(
        self, slot: int, *, worker: Worker | None = None, started_before: float | None = None
    ) -> bool:
        """Replace the worker of ``slot``: start another; once it accepts, retire the old one.

        ``worker``: replace this one only (its limit_max_requests), if it still
        holds the slot. ``started_before``: replace whichever holds the slot if it
        started before then (a rolling restart: not one started since, with the
        new code). One replacement of a slot at a time: a rolling restart and a
        worker's limit may both ask for one.

        False if the replacement could not be started or did not accept (the
        old one then goes on), or the supervisor is stopping.
        """
        async with self._slot_locks[slot]:
            old = self.workers.get(slot)
            if (
                old is None
                or old.exited.done()
                or (worker is not None and old is not worker)
                or (started_before is not None and old.started >= started_before)
            ):
                return not self.stopping  # replaced, or gone, meanwhile
            if self.stopping:
                return False
            new = await self._start(slot, replacing=True)
            if new is None or self.stopping:
                if new is None:
                    logger.error("worker %d: no replacement", slot)
                return False
            if started_before is not None:
                self._replacing = new
            try:
                await self._wait_running({new.ready}, self.start_timeout)
            finally:
                self._replacing = None
            timed_out = not new.ready.done()
            ready = not timed_out and new.ready.result()
            if self.stopping:
                return False  # (stop_all() stops the replacement too)
            if new.superseded:  # (see restart(): it stops, and another rolling restart follows)
                if not ready:
                    _signal(new, signal.SIGKILL)  # (SIGTERM did not stop it in start_timeout)
                return False
            if slot > self.count:  # (SIGTTOU gave up the slot meanwhile)
                self._starting.discard(new)
                if new.exited.done():
                    return True
                # Retired as the worker it was to replace was (SIGHUP): once it
                # accepts, it may have connections, whose requests get to finish.
                logger.info(
                    "worker %d (pid %d): its slot was given up meanwhile: retiring", slot, new.pid
                )
                new.retiring = True
                self._retired.add(new)
                _signal(new, signal.SIGHUP if ready else signal.SIGTERM)
                await self._reap([new])
                if not self.stopping and self._none_will_start():
                    # (It was the replacement waited for, see _watch_exit(),
                    # and it is gone without accepting: none is left.)
                    self._stop_as_none_left()
                return True
            if not ready or new.exited.done():
                if timed_out:
                    why = f" within {self.start_timeout:g} s (--worker-start-timeout): killed"
                else:
                    # (It closed its channel as it ended: its exit, a moment away.)
                    await asyncio.wait({new.exited}, timeout=1.0)
                    ended = new.exited.done() and not new.exited.cancelled()
                    why = f" ({_exit_status(new.exited.result())})" if ended else ""
                kept = self.workers.get(slot)
                logger.error(
                    "worker %d: its replacement (pid %d) did not start accepting%s; %s",
                    slot,
                    new.pid,
                    why,
                    f"keeping pid {kept.pid}"
                    if kept is not None and not kept.exited.done()
                    else f"pid {old.pid}, which it was to replace, died meanwhile",
                )
                _signal(new, signal.SIGKILL)
                return False
            # The slot's worker may have changed meanwhile (the old one died and
            # another was started): whichever it is retires, and none is left
            # running unknown to the supervisor.
            retiring = [
                w
                for w in dict.fromkeys((old, self.workers.get(slot)))
                if w is not None and w is not new and not w.exited.done()
            ]
            self._starting.discard(new)
            self.workers[slot] = new
            self.failures[slot] = 0
            waiting = self._waiting.pop(slot, None)
            if waiting is not None:
                waiting.cancel()
            for retired in retiring:
                retired.retiring = True
                self._retired.add(retired)
                # (One still starting has no connections to finish, and keeps
                # a SIGHUP until it serves: its start, an import that hangs,
                # would go on for the whole grace. SIGTERM stops it at once.)
                _signal(retired, signal.SIGHUP if retired.accepting else signal.SIGTERM)
            logger.info(
                "worker %d: pid %d accepting; %s retiring",
                slot,
                new.pid,
                ", ".join(f"pid {w.pid}" for w in retiring) or "nothing",
            )
            if new.limit_reached:
                self._on_limit(new)  # it said so before it had its slot
            if self.watcher is not None:
                # --reload: the next edit is not kept waiting while the code
                # from before this one finishes its handlers (shutdown_timeout:
                # a handler at work, an open event stream); they end meanwhile.
                self._keep(asyncio.get_running_loop().create_task(self._reap(retiring)))
            else:
                await self._reap(retiring)
            return True


def with_flags(argv: Sequence[str], *flags: str) -> list[str]:
    """``argv`` with ``flags`` added: at the end, or before a ``--`` that ends
    the flags there (after it, argparse takes them for positionals)."""
    arguments = list(argv)
    end = arguments.index("--") if "--" in arguments else len(arguments)
    return [*arguments[:end], *flags, *arguments[end:]]


def interpreter_options() -> list[str]:
    """The options this interpreter runs with (``-X dev``, ``-O``, ``-W ...``,
    ``-I``, ``-u``...), for a worker to run as this process does, as one
    process would (and multiprocessing's processes, uvicorn's workers, do):
    read by the standard library's own helper, which multiprocessing uses,
    and what it leaves out: ``-u`` (no flag says it; the standard streams
    do) and the ``-X`` options beyond its short list (``int_max_str_digits``,
    ``warn_default_encoding``, ``pycache_prefix``...)."""
    read: Callable[[], list[str]] | None = getattr(subprocess, "_args_from_interpreter_flags", None)
    options = read() if read is not None else []
    given = {options[i + 1].partition("=")[0] for i, o in enumerate(options[:-1]) if o == "-X"}
    for name, value in getattr(sys, "_xoptions", {}).items():
        if name not in given:
            options += ["-X", name if value is True else f"{name}={value}"]
    if getattr(sys.__stdout__, "write_through", False):
        options.append("-u")  # (or PYTHONUNBUFFERED, which the worker has too)
    return options


def working_directory() -> str:
    """The current directory as the command was started in it: ``$PWD``, the
    shell's name for it, symbolic links kept, when it names this directory
    (a stale one does not); else its real path.

    Where workers start: a deploy that points a symbolic link (``current``)
    at a new release, then SIGHUP, gets the new release's code and files in
    the new workers; this process's own directory is the release the link
    named when it started (the kernel resolves it once). As gunicorn's.
    """
    here = os.getcwd()
    logical = os.environ.get("PWD", "")
    with contextlib.suppress(OSError, ValueError):
        if os.path.isabs(logical) and os.path.samefile(logical, here):
            return logical
    return here


def _fatal(message: str, *args: Any) -> None:
    """Log why the supervisor ends, as the command's own ``_fatal()`` does: at
    ERROR, or at CRITICAL where the level (--log-level critical) leaves ERROR
    out: why it ended is always said."""
    level = logging.ERROR if logger.isEnabledFor(logging.ERROR) else logging.CRITICAL
    logger.log(level, message, *args)


def _terminal_stops_background_writes() -> bool:
    """Whether this process writes its log to a terminal set to ``tostop``."""
    try:
        import termios
    except ImportError:  # (not POSIX)
        return False
    for stream in (sys.stderr, sys.stdout):
        try:
            fd = stream.fileno()
            if os.isatty(fd) and termios.tcgetattr(fd)[3] & termios.TOSTOP:
                return True
        except (AttributeError, OSError, ValueError, termios.error):
            continue
    return False


def _backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` failures in a row: 0.5, 1, 2, ... up to MAX_BACKOFF."""
    return min(0.5 * 2.0 ** (failures - 1), MAX_BACKOFF)


def _pidfd(pid: int) -> int | None:
    """A pidfd of ``pid`` (Linux 5.3 and later), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


#: The signals that stop a worker (see _watch_exit()).
_STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


def _someone_elses_stop(worker: Worker, code: int) -> int | None:
    """The stop signal the supervisor did not send that ended a worker (exit
    ``code``): it said so and exited 0, or the signal's default action ended
    it; else None."""
    signum = worker.signalled
    return signum if signum is not None and code in (0, -signum) else None


def _exit_status(code: int) -> str:
    """``exit code N``, or ``signal NAME`` for a process ended by one."""
    return f"exit code {code}" if code >= 0 else f"signal {_signal_name(-code)}"


def _signal_name(signum: int) -> str:
    """``SIGTERM``; the number if Python has no name for it (the real-time signals)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def _signal(worker: Worker, signum: int) -> None:
    """Send ``signum`` to ``worker`` unless it is known to have exited.

    Not with the Process's ``send_signal()``: that polls the process first,
    which reaps one that just exited under asyncio's child watcher, whose own
    wait then fails ("Unknown child process" in the log). Through the worker's
    pidfd where there is one: a process reaped a moment before ``exited`` is
    set is then out of reach, not a stranger that came to have its pid.

    A stopped worker (``kill -STOP``: a debugger, an operator's look) acts on
    no signal until it is continued: each but SIGKILL is followed by a
    SIGCONT, as systemd follows its stop signal (a running one ignores it).
    """
    for sent in (signum,) if signum == signal.SIGKILL else (signum, signal.SIGCONT):
        _send(worker, sent)


def _send(worker: Worker, signum: int) -> None:
    """Send ``signum``, and that alone, to ``worker`` unless it is known to have
    exited (see :func:`_signal`)."""
    if worker.exited.done():
        return
    with contextlib.suppress(ProcessLookupError):
        if worker.pidfd is not None:
            signal.pidfd_send_signal(worker.pidfd, signum)
        else:
            os.kill(worker.pid, signum)


def _shown_path(path: str, here: str | None) -> str:
    """``path`` (absolute) relative to the directory ``here`` (absolute) when
    it is under it, else as it is."""
    if here is None:
        return path
    relative = os.path.relpath(path, here)
    return path if relative.startswith("..") else relative


def listening_socket(
    host: str, port: int, uds: str | None, fd: int | None, backlog: int
) -> socket.socket:
    """The socket the workers share: inherited (``fd``), a Unix socket, or TCP.

    Raises:
        OSError: it cannot be bound.
    """
    if fd is not None:
        sock = inherited_socket(fd)
    elif uds is not None:
        sock = unix_socket(uds, backlog)
    else:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        # One socket is shared: a name with several addresses (localhost: ::1
        # and 127.0.0.1) gets its IPv4 one, as uvicorn's, rather than whichever
        # the resolver lists first; and says so (one process listens on all).
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if len(addresses) > 1:
            logger.warning(
                "%s is %s: the workers' one socket listens on %s only (give --host the one "
                "you want)",
                host,
                " and ".join(addresses),
                addresses[0],
            )
        family, kind, proto, _, address = infos[0]
        if family == socket.AF_INET6 and is_every_ipv6_interface(address[0]):
            sock = every_interface_socket(int(address[1]))  # (IPv4 clients too, as in one process)
        else:
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def inherited_socket(fd: int) -> socket.socket:
    """The socket ``--fd`` names (systemd's, a parent's).

    Raises:
        OSError: ``fd`` is no socket, no stream socket (UDP, say), or not
            bound (listening would bind it to every interface).
    """
    sock = socket.socket(fileno=fd)
    problem = unlistenable(sock)
    if problem is not None:
        sock.detach()  # (the descriptor stays its owner's)
        raise OSError(f"fd {fd} {problem}")
    return sock


def reap_orphans(known: Container[int]) -> int:
    """Reap the exited children that are not ``known``; return how many.

    Each exited child is looked at without being reaped first (``WNOWAIT``):
    a worker (``known``) is left for its own watcher, which needs its exit
    status, and the looking stops there until that watcher has reaped it.
    """
    reaped = 0
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return reaped  # no children at all
        if info is None or info.si_pid in known:
            return reaped
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.si_pid, os.WNOHANG)
        reaped += 1


def ignore_signals(
    loop: asyncio.AbstractEventLoop,
    signums: Sequence[int],
    clean_up: Callable[[], None] | None = None,
) -> None:
    """At the end of a process's loop: ``signums`` from now on end it at once
    (code 0), once ``clean_up`` (what the process does last, run again if it
    was under way) has run; as the interpreter ends, they are ignored (see
    :func:`_ignore_as_the_interpreter_ends`).

    The loop's handlers write to its wakeup descriptor, which closes with the
    loop: a signal arriving then (a parent's death signal, a last SIGTERM)
    made Python print "Exception ignored when trying to write to the signal
    wakeup fd" into the logs (a JSON log's lines among them). The process has
    nothing left to do but end, which such a signal asks for.
    """
    # (Blocked meanwhile: between the two calls a signal's default action
    # would end the process uncleaned.)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signums)
    try:
        for signum in signums:
            loop.remove_signal_handler(signum)
            signal.signal(signum, functools.partial(_exit_now, clean_up))
        _ended_signals.update(set(signums) & _SENT_AGAIN)
        signal.set_wakeup_fd(-1)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


#: The stop signals that orchestrators send again while a process ends
#: (systemd signals every process of a service, a supervisor passes its own
#: on). Not SIGINT nor SIGQUIT: a person's Ctrl-C or Ctrl-\ again still ends
#: a teardown that hangs.
_SENT_AGAIN = frozenset({signal.SIGTERM, signal.SIGHUP})
#: Those of them ignore_signals() took, ignored outright as the interpreter ends.
_ended_signals: set[int] = set()


def _ignore_as_the_interpreter_ends() -> None:
    """At exit, after the application's own atexit handlers (this one is
    registered before it is imported): the SIGTERM and SIGHUP that
    ignore_signals() took are ignored (SIG_IGN) for what remains.

    Python's finalization then gives every signal with a Python handler back
    its default action and runs no handler: a SIGTERM again (systemd's
    besides a supervisor's), as the modules are torn down (an object's
    ``__del__``), killed a process that was ending with code 0. SIG_IGN is
    left as it is.
    """
    for signum in _ended_signals:
        signal.signal(signum, signal.SIG_IGN)


atexit.register(_ignore_as_the_interpreter_ends)


def _exit_now(clean_up: Callable[[], None] | None, signum: int, frame: object) -> None:
    if clean_up is not None:
        clean_up()
    os._exit(0)


#: SIGHUPs that came before the event loop's handler was set (see hold_hangups()).
_held_hangups: list[int] = []


def hold_hangups() -> Any:
    """From now until the event loop's handler is set: a SIGHUP is kept, for
    that handler to act on (:func:`held_hangup`), rather than its default
    action's death (a reload sent just after a start). Unless it is ignored
    (nohup): it stays so. Returns the handler it replaced, or None."""
    if signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
        return None
    _held_hangups.clear()  # (one of an earlier run in this process: not this one's)
    return signal.signal(signal.SIGHUP, _hold_hangup)


def _hold_hangup(signum: int, frame: object) -> None:
    _held_hangups.append(signum)


def held_hangup() -> bool:
    """Whether a SIGHUP was kept by :func:`hold_hangups` (forgotten once said)."""
    held = bool(_held_hangups)
    _held_hangups.clear()
    return held


#: SIGTTIN and SIGTTOU, as :func:`hold_scaling` blocked them (none it found blocked already).
_scaling_held: list[int] = []


def hold_scaling() -> None:
    """From now until the supervisor's event loop has its handlers (or the
    process turns out to be no supervisor): SIGTTIN and SIGTTOU wait, blocked,
    rather than their default action stopping the process (a scaling script
    run just after the start froze the supervisor, its port bound and its
    SIGTERM not acted on until a SIGCONT). :func:`release_scaling` lets them
    in. Blocked, not caught: a background write to a terminal set to
    ``tostop`` goes through meanwhile, as with SIGTTOU ignored, where a
    handler would have the write retried for ever. Call it in the main
    thread (the mask is its own; the processes it starts inherit it)."""
    scaling = [getattr(signal, name) for name in ("SIGTTIN", "SIGTTOU") if hasattr(signal, name)]
    if not scaling or not hasattr(signal, "pthread_sigmask"):
        return  # (not POSIX)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, scaling)
    _scaling_held[:] = [signum for signum in scaling if signum not in before]


def release_scaling() -> None:
    """Unblock what :func:`hold_scaling` blocked: one that came meanwhile is
    delivered now, to the supervisor's handler (or, in a single process or a
    worker, to what it has for them: job control's default)."""
    if _scaling_held:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _scaling_held)
        _scaling_held.clear()


def die_with_parent(supervisor_pid: int) -> None:
    """In a worker: be sent SIGTERM if the supervisor dies (Linux; elsewhere nothing).

    The supervisor may be pid 1 (a container without an init): its pid is
    compared, not 1.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent_gone(supervisor_pid):
        os.kill(os.getpid(), signal.SIGTERM)  # the supervisor died before prctl


def stop_grace(shutdown_timeout: float, close_timeout: float) -> float:
    """Seconds a worker may take to stop after SIGTERM before it is killed: its
    handlers' grace, the closing handshakes, and 5 s for the rest (its shutdown
    hooks, an ASGI lifespan shutdown)."""
    return shutdown_timeout + close_timeout + 5.0


def end_when_orphaned(supervisor_pid: int, grace: float) -> threading.Thread:
    """In a worker: a thread that ends this process ``grace`` seconds after its
    supervisor is gone, if it still runs then.

    The supervisor's death sends the worker SIGTERM (:func:`die_with_parent`),
    and the worker looks for it every second; both are acted on by its event
    loop. A loop that a handler blocks (a deadlock, a blocking call) acts on
    neither, and the supervisor that would have killed it, as it kills a worker
    that does not stop within ``grace``, is gone: the worker would go on,
    orphaned, holding the listening socket. This thread does not need the loop.
    """

    def watch() -> None:
        while not parent_gone(supervisor_pid):
            time.sleep(1.0)
        time.sleep(grace)
        # (Said from a thread of its own: the main thread, blocked, may hold
        # the log's lock; the process ends all the same.)
        said = threading.Thread(
            target=logger.error,
            args=(
                "the supervisor is gone and this worker did not stop within %.0f s "
                "(its event loop blocked?): exiting now",
                grace,
            ),
            daemon=True,
        )
        said.start()
        said.join(1.0)
        os._exit(1)

    thread = threading.Thread(target=watch, name="wsserver-supervisor-watch", daemon=True)
    thread.start()
    return thread


def parent_gone(supervisor_pid: int) -> bool:
    """Whether this process's parent is no longer the supervisor that started it."""
    return os.getppid() != supervisor_pid
