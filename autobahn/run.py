#!/usr/bin/env python3
"""Run the Autobahn testsuite (wstest fuzzingclient) against wsserver's echo examples.

For each agent (``wsserver-deflate``: the Router echo with compression on,
``wsserver-plain``: compression off; ``wsserver-asgi-deflate`` and
``wsserver-asgi-plain``: the same for the ASGI echo application;
``wsserver-deflate-py``: the Router echo with compression on, with
``WSSERVER_NO_SPEEDUPS=1``: no C accelerator, zlib rather than zlib-ng) this script
asks wstest which cases the agent's spec
(``fuzzingclient-*.json`` beside this file) selects, starts the server on a free
loopback port, runs ``wstest -m fuzzingclient`` against it in several batches,
stops the server and summarises the batches' ``index.json`` files together.

The batches exist because wstest keeps everything it has seen until its process
ends, and the permessage-deflate sections 12.x and 13.x make it grow by about
70 MB/s: all 517 cases in one process need more than 24 GB. So sections 1-10 run in
one wstest process (about 0.6 GB), and 12.x/13.x in processes of at most
``--batch-size`` cases (18 by default, one subsection: about 4.5 GB at the peak;
36 cases take about 8 GB). Each batch is a wstest run of its own, with its own
report folder ``reports/<agent>/batch-NN/``; the server is started once per agent
and serves all its batches.

The exit status is 0 only if every selected case of every agent ran and got
OK or INFORMATIONAL for both ``behavior`` and ``behaviorClose``.

Standard library only; install wstest first with ``bash autobahn/setup.sh``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
REPORTS_DIR = HERE / "reports"
CACHE_HOME = Path(
    os.environ.get("WSSERVER_AUTOBAHN_HOME", Path.home() / ".cache" / "wsserver-autobahn")
)
DEFAULT_WSTEST = CACHE_HOME / "wstest"

HOST = "127.0.0.1"
MAX_SIZE = 16 * 1024 * 1024  # 9.x sends messages of up to 16 MiB
SERVER_START_TIMEOUT = 15.0
SERVER_STOP_TIMEOUT = 10.0
WSTEST_TIMEOUT = 40 * 60.0
PLAN_TIMEOUT = 60.0
# Sections whose cases wstest's memory grows fastest on (permessage-deflate), and how
# many of their cases one wstest process runs by default: one subsection of 18 cases,
# peak RSS about 4.5 GB (36 cases: about 8 GB, and no faster).
HEAVY_SECTIONS = frozenset({12, 13})
BATCH_SIZE = 18

PASSING = frozenset({"OK", "INFORMATIONAL"})
# Table columns: (verdict, short header). Anything else wstest may report
# ("WRONG CODE", "UNCLEAN", "FAILED BY CLIENT" for behaviorClose) is OTHER.
VERDICT_COLUMNS = (
    ("OK", "OK"),
    ("NON-STRICT", "NSTRICT"),
    ("INFORMATIONAL", "INFO"),
    ("UNIMPLEMENTED", "UNIMPL"),
    ("FAILED", "FAILED"),
)
OTHER = "OTHER"


class HarnessError(Exception):
    """The run could not be carried out (server or wstest problem)."""


@dataclass(frozen=True)
class Agent:
    """One server configuration under test."""

    key: str  # value of --agent
    name: str  # agent name in the spec and report folder
    compression: str  # value of the server's --compression
    spec_template: Path
    app: str = "examples.echo:routes"  # what the server serves
    env: tuple[tuple[str, str], ...] = ()  # the server's environment, on top of ours


DEFLATE_SPEC = HERE / "fuzzingclient-deflate.json"
PLAIN_SPEC = HERE / "fuzzingclient-plain.json"
ASGI_ECHO = "examples.asgi_echo:app"
AGENTS = {
    "deflate": Agent("deflate", "wsserver-deflate", "deflate", DEFLATE_SPEC),
    "plain": Agent("plain", "wsserver-plain", "none", PLAIN_SPEC),
    "asgi-deflate": Agent(
        "asgi-deflate", "wsserver-asgi-deflate", "deflate", DEFLATE_SPEC, ASGI_ECHO
    ),
    "asgi-plain": Agent("asgi-plain", "wsserver-asgi-plain", "none", PLAIN_SPEC, ASGI_ECHO),
    # The pure-Python frame layer and zlib: no C accelerator, no zlib-ng.
    "deflate-py": Agent(
        "deflate-py",
        "wsserver-deflate-py",
        "deflate",
        DEFLATE_SPEC,
        env=(("WSSERVER_NO_SPEEDUPS", "1"),),
    ),
}
#: What --agent takes beyond the agents' keys.
AGENT_GROUPS = {
    "both": ["deflate", "plain"],
    "asgi": ["asgi-deflate", "asgi-plain"],
    "all": ["deflate", "plain", "asgi-deflate", "asgi-plain", "deflate-py"],
}


@dataclass(frozen=True)
class CaseResult:
    """The verdict of one test case, as found in index.json."""

    case_id: str
    behavior: str
    behavior_close: str
    duration_ms: int

    @property
    def passed(self) -> bool:
        """True if both verdicts are acceptable."""
        return self.behavior in PASSING and self.behavior_close in PASSING


@dataclass(frozen=True)
class Batch:
    """The cases one wstest process runs, and where its reports go."""

    number: int
    cases: list[str]
    outdir: Path

    @property
    def label(self) -> str:
        """First and last case, for progress lines and error messages."""
        return f"{self.cases[0]} .. {self.cases[-1]}"


@dataclass
class Progress:
    """Progress lines of one agent, counted across all its wstest runs."""

    agent_name: str
    total: int
    started: float
    done: int = 0
    section: int | None = None

    def batch_started(self, batch: Batch, batches: int) -> None:
        """Print a line naming the batch about to run."""
        elapsed = time.monotonic() - self.started
        print(
            f"  [{self.agent_name}] wstest run {batch.number}/{batches}:"
            f" {len(batch.cases)} cases, {batch.label}, at {elapsed:.0f} s",
            flush=True,
        )

    def case_started(self, case_id: str) -> None:
        """Count a case; print a line when a new section begins."""
        self.done += 1
        if section_of(case_id) == self.section:
            return
        self.section = section_of(case_id)
        elapsed = time.monotonic() - self.started
        print(
            f"  [{self.agent_name}] section {self.section}: case {self.done}/{self.total}"
            f" at {elapsed:.0f} s",
            flush=True,
        )


@dataclass
class WstestRun:
    """What the wstest process told us while it ran."""

    connection_failures: list[str] = field(default_factory=list)
    returncode: int | None = None
    timed_out: bool = False
    seconds: float = 0.0


@dataclass
class AgentOutcome:
    """Everything known about one agent's run."""

    agent: Agent
    results: list[CaseResult] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """True if cases ran, all of them passed, and nothing went wrong."""
        return (
            bool(self.results)
            and not self.errors
            and not self.missing
            and all(r.passed for r in self.results)
        )


@dataclass
class Server:
    """A running server subprocess and where its output goes."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]


# --------------------------------------------------------------------------
# Command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        description="Run the Autobahn fuzzingclient suite against wsserver.",
    )
    parser.add_argument(
        "--agent",
        choices=(*AGENTS, *AGENT_GROUPS),
        default="all",
        help="which server configuration to test: one agent, 'both' (the Router echo, "
        "compression on and off), 'asgi' (the ASGI echo, on and off) or 'all' (default: "
        "those four and deflate-py, the Router echo with compression on the pure-Python path)",
    )
    parser.add_argument(
        "--cases",
        help="comma-separated case patterns replacing the spec's 'cases', e.g. '1.*,2.*,9.1.1' "
        "(the spec's exclude-cases still apply)",
    )
    parser.add_argument(
        "--wstest",
        type=Path,
        default=DEFAULT_WSTEST,
        help=f"wstest wrapper written by setup.sh (default: {DEFAULT_WSTEST})",
    )
    parser.add_argument(
        "--server-python",
        default=sys.executable,
        help="python used to run 'python -m wsserver' (default: this interpreter)",
    )
    parser.add_argument(
        "--server-cmd",
        help="replace the whole server command; a template with {port} "
        "(also {host}, {compression}), split like a shell command line",
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="run every selected agent even after one has failed",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=WSTEST_TIMEOUT,
        help=f"seconds one wstest run (one batch) may take (default: {WSTEST_TIMEOUT:.0f})",
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=BATCH_SIZE,
        help="cases of the permessage-deflate sections 12 and 13 per wstest process; wstest's "
        f"peak memory grows with it: about 4.5 GB at 18, 8 GB at 36 (default: {BATCH_SIZE})",
    )
    return parser.parse_args(argv)


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def selected_agents(choice: str) -> list[Agent]:
    """Map the --agent value to agents, deflate first."""
    return [AGENTS[key] for key in AGENT_GROUPS.get(choice, [choice])]


def split_patterns(text: str | None) -> list[str] | None:
    """Split a --cases value into patterns; None when not given."""
    if text is None:
        return None
    patterns = [p.strip() for p in text.split(",") if p.strip()]
    if not patterns:
        raise HarnessError("--cases was given but names no case pattern")
    return patterns


# --------------------------------------------------------------------------
# Spec and report folder


def prepare_outdir(agent: Agent) -> Path:
    """Empty the agent's report folder so no stale result can be read."""
    outdir = REPORTS_DIR / agent.name
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    return outdir


def write_spec(agent: Agent, url: str, outdir: Path, cases: list[str] | None) -> Path:
    """Fill the agent's spec template with URL and outdir; return the written spec."""
    spec: dict[str, Any] = json.loads(agent.spec_template.read_text(encoding="utf-8"))
    servers = spec.get("servers") or [{}]
    if len(servers) != 1:
        raise HarnessError(f"{agent.spec_template}: expected one server")
    # One template serves the Router and the ASGI agent of a compression setting.
    servers[0]["agent"] = agent.name
    servers[0]["url"] = url
    spec["servers"] = servers
    spec["outdir"] = str(outdir)
    if cases is not None:
        spec["cases"] = cases
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / "spec.json"
    path.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return path


def make_batches(planned: Sequence[str], size: int, outdir: Path) -> list[Batch]:
    """Split the planned cases into wstest runs whose memory stays bounded.

    wstest's memory only grows within a process, fastest on the permessage-deflate
    sections 12 and 13. The other sections together stay small, so they share one run;
    the cases of 12.x and 13.x follow in runs of at most ``size`` cases, in order. A
    batch lists its cases one by one in the spec's ``cases`` (wstest takes a pattern
    without ``*`` as a case id), so it runs exactly its share of the plan.
    """
    light = [c for c in planned if section_of(c) not in HEAVY_SECTIONS]
    heavy = [c for c in planned if section_of(c) in HEAVY_SECTIONS]
    groups = [light] if light else []
    groups += [heavy[i : i + size] for i in range(0, len(heavy), size)]
    return [
        Batch(number, cases, outdir / f"batch-{number:02d}")
        for number, cases in enumerate(groups, start=1)
    ]


# --------------------------------------------------------------------------
# Server process


def free_port() -> int:
    """Ask the kernel for a currently unused loopback TCP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_command(args: argparse.Namespace, agent: Agent, port: int) -> list[str]:
    """The command line that starts the server for this agent."""
    if args.server_cmd:
        text = args.server_cmd.format(port=port, host=HOST, compression=agent.compression)
        return shlex.split(text)
    return [
        args.server_python, "-m", "wsserver", agent.app,
        "--host", HOST,
        "--port", str(port),
        "--max-size", str(MAX_SIZE),
        "--compression", agent.compression,
        "--log-level", "warning",
    ]  # fmt: skip


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a text file, indented, for error messages."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "    (no output)"
    kept = text.splitlines()[-lines:] or ["(no output)"]
    return "\n".join("    " + line for line in kept)


def start_server(command: list[str], log_path: Path, env: dict[str, str] | None = None) -> Server:
    """Start the server in its own process group, output going to log_path."""
    log_file = log_path.open("wb")
    try:
        proc = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=None if env is None else {**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        log_file.close()
        raise HarnessError(f"cannot start server {shlex.join(command)}: {exc}") from exc
    return Server(proc, log_path, log_file)


def wait_for_port(server: Server, port: int, timeout: float) -> None:
    """Wait until the port accepts TCP connections; fail if the server exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = server.proc.poll()
        if code is not None:
            raise HarnessError(
                f"server exited with code {code} before listening; its output:\n"
                + tail(server.log_path)
            )
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise HarnessError(
        f"server did not accept connections on {HOST}:{port} within {timeout:.0f} s; "
        "its output:\n" + tail(server.log_path)
    )


def signal_group(proc: subprocess.Popen[Any], sig: int) -> None:
    """Send sig to the process group led by proc (which we started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_process(proc: subprocess.Popen[Any], timeout: float) -> bool:
    """SIGTERM the process group, SIGKILL it after timeout; True if TERM sufficed."""
    if proc.poll() is None:
        signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            signal_group(proc, signal.SIGKILL)
            proc.wait()
            return False
    # Reap anything the leader left behind in its group.
    signal_group(proc, signal.SIGKILL)
    return True


def stop_server(server: Server) -> None:
    """Stop the server and close its log."""
    try:
        if not stop_process(server.proc, SERVER_STOP_TIMEOUT):
            print(f"  note: server ignored SIGTERM for {SERVER_STOP_TIMEOUT:.0f} s and was killed")
    finally:
        server.log_file.close()


# --------------------------------------------------------------------------
# wstest process

CASES_LINE = re.compile(r"^Cases = (\[.*\])\s*$")
RUNNING = re.compile(r"^Running test case ID (\S+) for agent")
CONNECT_FAILED = re.compile(r"^Connection to .* failed")


def section_of(case_id: str) -> int:
    """The section of a case id: its first number ("9" for "9.1.2")."""
    return int(case_id.split(".", 1)[0])


def case_sort_key(case_id: str) -> tuple[int, ...]:
    """Numeric ordering of case ids (1.1.10 after 1.1.9)."""
    return tuple(int(part) for part in case_id.split("."))


def start_wstest(wstest: Path, spec: Path, cwd: Path) -> subprocess.Popen[str]:
    """Start wstest fuzzingclient in its own process group, output on a pipe."""
    return subprocess.Popen(
        [str(wstest), "-m", "fuzzingclient", "-s", str(spec)],
        cwd=cwd,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )


def plan_cases(wstest: Path, agent: Agent, outdir: Path, cases: list[str] | None) -> list[str]:
    """Ask wstest which cases the agent's spec selects, without running any.

    wstest resolves ``cases`` and ``exclude-cases`` itself and prints the resulting list
    before it connects; asking it spares copying its pattern rules and case catalogue.
    The spec points at a port nobody listens on, and wstest is stopped as soon as it
    has printed the list (it never stops by itself when the list is empty).
    """
    spec = write_spec(agent, f"ws://{HOST}:{free_port()}", outdir, cases)
    planned: list[str] | None = None
    log_path = outdir / "wstest.log"
    with log_path.open("w", encoding="utf-8") as log:
        proc = start_wstest(wstest, spec, outdir)
        timer = threading.Timer(PLAN_TIMEOUT, signal_group, (proc, signal.SIGKILL))
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if match := CASES_LINE.match(line.rstrip("\n")):
                    planned = [str(c) for c in ast.literal_eval(match.group(1))]
                    break
        finally:
            timer.cancel()
            stop_process(proc, 5.0)
    if planned is None:
        raise HarnessError("wstest printed no list of cases; its output:\n" + tail(log_path))
    if not planned:
        raise HarnessError("no case selected (check --cases against the spec's exclude-cases)")
    return sorted(planned, key=case_sort_key)


def run_wstest(
    wstest: Path, spec: Path, outdir: Path, progress: Progress, timeout: float
) -> WstestRun:
    """Run one batch with wstest fuzzingclient, logging its output and reporting progress."""
    run = WstestRun()
    started = time.monotonic()
    with (outdir / "wstest.log").open("w", encoding="utf-8") as log:
        proc = start_wstest(wstest, spec, outdir)
        timer = threading.Timer(timeout, _expire, (proc, run))
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                line = line.rstrip("\n")
                if match := RUNNING.match(line):
                    progress.case_started(match.group(1))
                elif CONNECT_FAILED.match(line):
                    run.connection_failures.append(line)
            run.returncode = proc.wait()
        finally:
            timer.cancel()
            stop_process(proc, 5.0)
    run.seconds = time.monotonic() - started
    return run


def _expire(proc: subprocess.Popen[str], run: WstestRun) -> None:
    """Timer callback: kill a wstest run that took too long."""
    run.timed_out = True
    signal_group(proc, signal.SIGKILL)


# --------------------------------------------------------------------------
# Results


def load_index(index_path: Path, agent_name: str) -> dict[str, dict[str, Any]]:
    """An agent's entries of wstest's index.json: case id to verdicts; {} if absent."""
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    entries: dict[str, dict[str, Any]] = index.get(agent_name, {})
    return entries


def to_results(entries: dict[str, dict[str, Any]]) -> list[CaseResult]:
    """Case verdicts from index.json entries, in case order."""
    results = [
        CaseResult(
            case_id=case_id,
            behavior=str(entry.get("behavior")),
            behavior_close=str(entry.get("behaviorClose")),
            duration_ms=int(entry.get("duration", 0)),
        )
        for case_id, entry in entries.items()
    ]
    return sorted(results, key=lambda r: case_sort_key(r.case_id))


def run_batches(
    agent: Agent, args: argparse.Namespace, batches: Sequence[Batch], port: int, outdir: Path
) -> tuple[list[tuple[Batch, WstestRun]], list[str]]:
    """Start the server, run the batches against it in turn, stop it.

    Returns the batches that ran with what wstest did, and the server's problems. A
    server that dies ends the run: the remaining batches could only fail to connect.
    """
    command = server_command(args, agent, port)
    progress = Progress(agent.name, sum(len(b.cases) for b in batches), time.monotonic())
    runs: list[tuple[Batch, WstestRun]] = []
    server = start_server(command, outdir / "server.log", dict(agent.env))
    try:
        wait_for_port(server, port, SERVER_START_TIMEOUT)
        for batch in batches:
            progress.batch_started(batch, len(batches))
            spec = write_spec(agent, f"ws://{HOST}:{port}", batch.outdir, batch.cases)
            runs.append(
                (batch, run_wstest(args.wstest, spec, batch.outdir, progress, args.timeout))
            )
            if server.proc.poll() is not None:
                break
        server_code = server.proc.poll()
    finally:
        stop_server(server)
    problems: list[str] = []
    if server_code is not None:
        problems.append(
            f"server exited with code {server_code} during the run; its output:\n"
            + tail(server.log_path)
        )
    return runs, problems


def run_agent(agent: Agent, args: argparse.Namespace, cases: list[str] | None) -> AgentOutcome:
    """Plan the agent's cases, run them in batches, merge the batches' results."""
    outcome = AgentOutcome(agent)
    started = time.monotonic()
    outdir = prepare_outdir(agent)
    port = free_port()
    print(f"== {agent.name}: {shlex.join(server_command(args, agent, port))}", flush=True)
    try:
        planned = plan_cases(args.wstest, agent, outdir / "plan", cases)
        batches = make_batches(planned, args.batch_size, outdir)
        runs, server_problems = run_batches(agent, args, batches, port, outdir)
    except HarnessError as exc:
        outcome.errors.append(str(exc))
        outcome.seconds = time.monotonic() - started
        return outcome

    outcome.seconds = time.monotonic() - started
    entries: dict[str, dict[str, Any]] = {}
    for batch, run in runs:
        entries.update(load_index(batch.outdir / "index.json", agent.name))
        where = f"wstest run {batch.number}/{len(batches)} ({batch.label}): "
        outcome.errors.extend(where + problem for problem in run_problems(run, args.timeout))
    outcome.errors.extend(server_problems)
    # One index.json for the agent, in wstest's format, for tools that read it.
    merged = json.dumps({agent.name: entries}, indent=2, sort_keys=True)
    (outdir / "index.json").write_text(merged + "\n", encoding="utf-8")
    outcome.results = to_results(entries)
    ran = {r.case_id for r in outcome.results}
    outcome.missing = [c for c in planned if c not in ran]
    return outcome


def run_problems(run: WstestRun, timeout: float) -> list[str]:
    """Describe whatever went wrong with one wstest process itself."""
    problems: list[str] = []
    if run.timed_out:
        problems.append(f"wstest was killed after {timeout:.0f} s")
    elif run.returncode != 0:
        problems.append(f"wstest exited with code {run.returncode}")
    # wstest skips the rest of an agent's cases when a connection is refused.
    problems.extend(f"wstest: {line}" for line in run.connection_failures)
    return problems


# --------------------------------------------------------------------------
# Reporting


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Right-aligned plain-text table."""
    body = [[str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in [list(headers), *body]
    ]
    return "\n".join("  " + line.rstrip() for line in lines)


def verdict_counts(verdicts: Iterable[str]) -> list[int]:
    """Counts per VERDICT_COLUMNS entry, plus OTHER last."""
    counts = Counter(v if v in dict(VERDICT_COLUMNS) else OTHER for v in verdicts)
    return [counts[v] for v, _ in VERDICT_COLUMNS] + [counts[OTHER]]


def section_table(results: Sequence[CaseResult]) -> str:
    """Per-section verdict counts for behavior and behaviorClose."""
    short = [name for _, name in VERDICT_COLUMNS] + [OTHER]
    headers = ["section", "cases", *short, "|", *short]
    rows: list[list[object]] = []
    sections = sorted({section_of(r.case_id) for r in results})
    groups = [(str(s), [r for r in results if section_of(r.case_id) == s]) for s in sections]
    for label, group in [*groups, ("total", list(results))]:
        rows.append(
            [
                label,
                len(group),
                *verdict_counts(r.behavior for r in group),
                "|",
                *verdict_counts(r.behavior_close for r in group),
            ]
        )
    legend = (
        "  columns: behavior | behaviorClose;  NSTRICT=NON-STRICT  INFO=INFORMATIONAL"
        "  UNIMPL=UNIMPLEMENTED  OTHER=WRONG CODE/UNCLEAN/FAILED BY CLIENT/..."
    )
    return legend + "\n" + format_table(headers, rows)


def failure_lines(results: Sequence[CaseResult]) -> list[str]:
    """One line per case that did not pass."""
    failed = [r for r in results if not r.passed]
    width = max((len(r.case_id) for r in failed), default=0)
    return [
        f"    {r.case_id.ljust(width)}  behavior={r.behavior}  behaviorClose={r.behavior_close}"
        for r in failed
    ]


def duration_table(results: Sequence[CaseResult], section: int = 9) -> str | None:
    """Milliseconds per case of a section as a grid: one row per subsection."""
    chosen = [r for r in results if section_of(r.case_id) == section]
    if not chosen:
        return None
    rows_by_group: dict[str, dict[int, int]] = {}
    for r in chosen:
        group, _, last = r.case_id.rpartition(".")
        rows_by_group.setdefault(group, {})[int(last)] = r.duration_ms
    columns = sorted({n for cells in rows_by_group.values() for n in cells})
    headers = ["ms", *(f".{n}" for n in columns), "sum"]
    rows = [
        [group, *(cells.get(n, "") for n in columns), sum(cells.values())]
        for group, cells in sorted(rows_by_group.items(), key=lambda kv: case_sort_key(kv[0]))
    ]
    return format_table(headers, rows)


def report(outcome: AgentOutcome) -> None:
    """Print everything about one agent's run."""
    name = outcome.agent.name
    results = outcome.results
    total_ms = sum(r.duration_ms for r in results)
    print(
        f"\n== {name}: {len(results)} cases in {outcome.seconds:.1f} s "
        f"(sum of case durations {total_ms / 1000:.1f} s)"
    )
    if results:
        print(section_table(results))
    failures = failure_lines(results)
    if failures:
        print(f"\n  {len(failures)} case(s) not OK/INFORMATIONAL:")
        print("\n".join(failures))
    if outcome.missing:
        print(
            f"\n  {len(outcome.missing)} planned case(s) have no result: "
            + " ".join(outcome.missing)
        )
    durations = duration_table(results)
    if durations:
        print("\n  section 9 (limits and performance), duration per case in ms:")
        print(durations)
    for error in outcome.errors:
        print(f"\n  ERROR: {error}")
    verdict = "PASS" if outcome.passed else "FAIL"
    folder = REPORTS_DIR / name
    pages = "batch-*/index.html"
    where = folder / pages if any(folder.glob(pages)) else folder
    print(f"\n  {name}: {verdict}  (reports: {where})")


def summary(outcomes: Sequence[AgentOutcome], wanted: Sequence[Agent]) -> bool:
    """Print the closing line; True if the whole run passed."""
    skipped = [a.name for a in wanted if a not in {o.agent for o in outcomes}]
    passed = not skipped and all(o.passed for o in outcomes)
    parts = [f"{o.agent.name} {'PASS' if o.passed else 'FAIL'}" for o in outcomes]
    parts += [f"{name} not run" for name in skipped]
    print(f"\nautobahn: {'PASS' if passed else 'FAIL'} ({', '.join(parts)})")
    return passed


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = parse_args(argv)
    try:
        cases = split_patterns(args.cases)
    except HarnessError as exc:
        print(f"autobahn: {exc}", file=sys.stderr)
        return 2
    if not os.access(args.wstest, os.X_OK):
        print(
            f"autobahn: no wstest at {args.wstest}; run 'bash autobahn/setup.sh' first",
            file=sys.stderr,
        )
        return 2
    wanted = selected_agents(args.agent)
    outcomes: list[AgentOutcome] = []
    for agent in wanted:
        outcome = run_agent(agent, args, cases)
        outcomes.append(outcome)
        report(outcome)
        if not outcome.passed and not args.keep_going:
            break
    return 0 if summary(outcomes, wanted) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\nautobahn: interrupted", file=sys.stderr)
        sys.exit(130)
