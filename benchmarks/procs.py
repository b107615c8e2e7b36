"""Starting, pinning and ending the processes of a benchmark run.

Every process runs in its own session (so its own process group) under
``prlimit --nofile`` and ``taskset -c CPUS``; both exec their command, so the
PID we get is the server's or the generator's own. A server's child processes
(workers) inherit its CPUs. Every process started here
is remembered until it is stopped, and :func:`stop_all` ends whatever is left
(SIGTERM to the group, then SIGKILL), which the harness calls on any exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

#: Open-file limit of servers and the generator (5000 connections and more).
NOFILE = 20000
SERVER_CPU = 0
LOADGEN_CPU = 1

_live: dict[int, subprocess.Popen[bytes]] = {}


class ProcessError(RuntimeError):
    """A server or the generator did not behave."""


Cpus = int | tuple[int, ...]


def cpu_list(cpus: Cpus) -> list[int]:
    return [cpus] if isinstance(cpus, int) else sorted(cpus)


def pinned(cmd: list[str], cpus: Cpus) -> list[str]:
    """``cmd`` with a raised open-file limit, pinned to ``cpus`` (one CPU or several)."""
    cpu_arg = ",".join(str(c) for c in cpu_list(cpus))
    return ["prlimit", f"--nofile={NOFILE}:{NOFILE}", "taskset", "-c", cpu_arg, *cmd]


def start(
    cmd: list[str],
    *,
    cpu: Cpus,
    cwd: Path,
    env: dict[str, str] | None = None,
    stdout: IO[bytes] | int | None = None,
    stderr: IO[bytes] | int | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` pinned to ``cpu`` (one or several) in a new session and remember it."""
    proc = subprocess.Popen(
        pinned(cmd, cpu),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )
    _live[proc.pid] = proc
    return proc


def stop(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds."""
    try:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
    finally:
        _live.pop(proc.pid, None)


def stop_all() -> None:
    """End every process started here that is still running."""
    for proc in list(_live.values()):
        stop(proc, grace=1.0)


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float = 20.0) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise ProcessError(f"the server exited with status {proc.returncode} at startup")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise ProcessError(f"nothing listened on port {port} in {timeout:.0f} s") from None
            time.sleep(0.05)


def wait_answering(proc: subprocess.Popen[bytes], port: int, timeout: float = 20.0) -> None:
    """Wait until an HTTP request to 127.0.0.1:port gets a response.

    For servers that listen before their application is loaded, or whose
    supervisor listens before its worker runs (granian): a connection is then
    accepted, by the kernel, long before anything answers it.
    """
    deadline = time.monotonic() + timeout
    request = b"GET /not-found HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    while True:
        if proc.poll() is not None:
            raise ProcessError(f"the server exited with status {proc.returncode} at startup")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                sock.sendall(request)
                if sock.recv(16).startswith(b"HTTP/1."):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ProcessError(f"no HTTP response on port {port} in {timeout:.0f} s")
        time.sleep(0.05)


def serving_pid(pid: int, port: int) -> int:
    """The descendant of ``pid`` that holds the socket listening on ``port``.

    For a server whose process only supervises a worker it forked (granian):
    that worker is the one whose memory and CPU are measured.
    """
    inodes = _listening_inodes(port)
    if not inodes:
        raise ProcessError(f"no socket listens on 127.0.0.1:{port}")
    found = [child for child in _descendants(pid) if _holds(child, inodes)]
    if len(found) != 1:
        raise ProcessError(
            f"expected one child of {pid} holding the socket on port {port}, found {found}"
        )
    return found[0]


def accepting_pids(pid: int, port: int) -> list[int]:
    """``pid`` and its descendants that accept on the socket listening on ``port``.

    A process accepts when the socket is in one of its epoll sets (asyncio's
    and uvloop's event loops watch a listening socket that way while serving):
    a worker that only holds the inherited socket, still importing the
    application, does not count yet; nor does a supervisor, which holds it but
    never accepts.
    """
    inodes = _listening_inodes(port)
    return [p for p in (pid, *_descendants(pid)) if inodes and _polls(p, inodes)]


def wait_accepting(
    proc: subprocess.Popen[bytes], port: int, count: int, timeout: float = 30.0
) -> list[int]:
    """Wait until ``count`` processes of ``proc``'s tree accept on ``port``; their pids."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise ProcessError(f"the server exited with status {proc.returncode} at startup")
        found = accepting_pids(proc.pid, port)
        if len(found) == count:
            return found
        if time.monotonic() > deadline:
            raise ProcessError(
                f"expected {count} processes accepting on port {port} in {timeout:.0f} s, "
                f"found {found}"
            )
        time.sleep(0.1)


def _polls(pid: int, inodes: set[str]) -> bool:
    """Whether ``pid`` has a socket of ``inodes`` registered in an epoll instance."""
    fds = set()
    epolls = []
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    fds.add(fd.name)
                elif target == "anon_inode:[eventpoll]":
                    epolls.append(fd.name)
    for epoll in epolls:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/fdinfo/{epoll}").read_text().splitlines():
                fields = line.split()
                if len(fields) > 1 and fields[0] == "tfd:" and fields[1] in fds:
                    return True
    return False


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...)."""
    return _descendants(pid)


#: A process as (pid, its start time in clock ticks since boot): a pid that
#: was reused by another program since does not match.
Identity = tuple[int, str]


def identify(pids: list[int]) -> list[Identity]:
    """``pids`` with their start times, to be reaped later without mistaking a reused pid."""
    return [(pid, start) for pid in pids if (start := _start_time(pid))]


def reap(processes: list[Identity], grace: float = 10.0) -> list[int]:
    """Wait until processes that are not our children (a supervisor's workers) are
    gone; SIGKILL those still there after ``grace`` seconds. Returns the pids of
    any that are still there after that."""
    left = _wait_gone(processes, grace)
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return [pid for pid, _ in _wait_gone(left, 5.0)] if left else []


def _wait_gone(processes: list[Identity], timeout: float) -> list[Identity]:
    """Those of ``processes`` still running after at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        # A zombie has exited: its parent (a supervisor) reaps it.
        left = [(p, t) for p, t in processes if _start_time(p) == t and not _zombie(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first); [] if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat[stat.rindex(")") + 2 :].split()


def _start_time(pid: int) -> str:
    fields = _stat_fields(pid)
    return fields[19] if len(fields) > 19 else ""


def _zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return not fields or fields[0] == "Z"


def _listening_inodes(port: int) -> set[str]:
    """The inodes of the sockets in LISTEN state (0A) on 127.0.0.1:port."""
    local = f"0100007F:{port:04X}"
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == "0A":
            inodes.add(fields[9])
    return inodes


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{parent}/task").iterdir():
                children = [int(c) for c in (task / "children").read_text().split()]
                out += children
                todo += children
    return out


def _holds(pid: int, inodes: set[str]) -> bool:
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return True
    return False


def describe(pid: int) -> dict[str, object]:
    """What runs as ``pid`` and where: checks that pinning took effect."""
    return {
        "pid": pid,
        "comm": Path(f"/proc/{pid}/comm").read_text().strip(),
        "cpus": sorted(os.sched_getaffinity(pid)),
    }


def run_loadgen(cmd: list[str], *, cwd: Path, timeout: float) -> tuple[int, str, str]:
    """Run the generator pinned to its CPU; returns (status, stdout, stderr)."""
    proc = start(cmd, cpu=LOADGEN_CPU, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc, grace=1.0)
        return -1, "", f"the load generator ran over its {timeout:.0f} s limit"
    _live.pop(proc.pid, None)
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
