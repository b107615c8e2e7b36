"""The supervisor's slots, step by step: replacements, limits, restarts, stops.

Real Supervisor code; only the spawning of processes is replaced, by
processes whose exit and readiness the test decides (and which end a moment
after a signal, as workers do), so that the orders of events that a real
machine makes rare are made every time. Real processes: tests/test_workers.py
and tests/test_reload.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest

from .helpers import wait_for


class _Process:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def wait(self) -> int:
        return await self._exit

    def exit(self, code: int) -> None:
        if not self._exit.done():
            self._exit.set_result(code)


class _Edits:
    def __init__(self) -> None:
        self.pending: list[str] = []
        self.truncated = False
        self.crowded: list[str] = []
        self.interval = 0.01  # (a look every 10 ms)

    def changed(self) -> list[str]:
        return [self.pending.pop()] if self.pending else []


def _supervisor(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[Any], list[tuple[int, int]]]:
    """A Supervisor of one slot whose processes the test runs; its workers; the signals sent."""
    import wsserver.supervisor as supervisor_module
    from wsserver.supervisor import Supervisor, Worker

    signalled: list[tuple[int, int]] = []

    def signal_(worker: Any, signum: int) -> None:
        signalled.append((worker.pid, signum))
        # It ends a moment later, as a worker does on these signals.
        if not worker.process._exit.done():
            asyncio.get_running_loop().call_later(0.01, worker.process.exit, 0)

    monkeypatch.setattr(supervisor_module, "_signal", signal_)
    pids = itertools.count(1000)
    started: list[Worker] = []

    class Spawning(Supervisor):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            #: How long each next spawn takes (0.005 s when none is given).
            self.spawn_times: list[float] = []
            #: Spawns under way.
            self.spawns = 0

        async def _spawn(self, slot: int) -> Worker | None:
            loop = asyncio.get_running_loop()
            self.spawns += 1
            try:
                await asyncio.sleep(self.spawn_times.pop(0) if self.spawn_times else 0.005)
            finally:
                self.spawns -= 1
            worker = Worker(slot, _Process(next(pids)), loop.time(), loop.create_future())  # type: ignore[arg-type]
            worker.tasks.append(loop.create_task(self._watch_exit(worker)))
            started.append(worker)
            return worker

    return Spawning([], 1, None, 1.0, _Edits()), started, signalled  # type: ignore[arg-type]


class _Slot:
    """What a test of one slot has: the supervisor, every worker started, the signals sent."""

    def __init__(self, supervisor: Any, started: list[Any], signalled: list[tuple[int, int]]):
        self.supervisor = supervisor
        self.started = started
        self.signalled = signalled

    def sighupped(self, worker: Any) -> bool:
        return (worker.pid, signal.SIGHUP) in self.signalled

    async def nth(self, n: int, what: str) -> Any:
        """The n-th worker started (from 1), once it is."""
        await wait_for(lambda: len(self.started) >= n, what=what)
        return self.started[n - 1]


@contextlib.asynccontextmanager
async def one_slot(monkeypatch: pytest.MonkeyPatch, *, ready: bool = True) -> AsyncIterator[_Slot]:
    """A supervisor with its slot 1 started (and its worker ready); stopped after."""
    supervisor, started, signalled = _supervisor(monkeypatch)
    watching = asyncio.create_task(supervisor._watch_files(supervisor.watcher))
    try:
        await supervisor._start(1, replacing=False)
        if ready:
            started[0].ready.set_result(True)
        yield _Slot(supervisor, started, signalled)
    finally:
        supervisor.stopping = True
        watching.cancel()
        for worker in started:
            for task in worker.tasks:
                task.cancel()


async def test_an_edit_during_a_restart_leaves_no_worker_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with one_slot(monkeypatch, ready=False) as slot:
        supervisor, edits = slot.supervisor, slot.supervisor.watcher
        first = slot.started[0]
        edits.pending.append("/app/a.py")  # an edit: a rolling restart begins
        replacement = await slot.nth(2, "the replacement")
        first.process.exit(1)  # the old one dies young meanwhile: a back-off for its slot
        await wait_for(lambda: 1 in supervisor._waiting, what="the back-off")
        edits.pending.append("/app/a.py")  # another edit: the slot's worker starts at once
        third = await slot.nth(3, "the third worker")
        await wait_for(lambda: supervisor.workers.get(1) is third, what="the third in its slot")
        replacement.ready.set_result(True)  # the replacement accepts: it takes the slot
        # (Still starting: nothing to finish, its start stopped, SIGTERM.)
        retired = (third.pid, signal.SIGTERM)
        await wait_for(lambda: retired in slot.signalled, what="the third retiring")
        assert supervisor.workers[1] is replacement
        running = [w for w in slot.started if not w.exited.done()]
        assert {w.pid for w in running} == {w.pid for w in supervisor._all_workers()}
        assert 1 not in supervisor._waiting  # no back-off left to start a fourth


async def test_a_start_that_finds_its_slot_filled_stops_its_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with one_slot(monkeypatch, ready=False) as slot:
        supervisor, first = slot.supervisor, slot.started[0]
        replacing = asyncio.create_task(supervisor._replace(1, worker=first))
        replacement = await slot.nth(2, "the replacement")
        first.process.exit(1)  # dies young: its slot is started again after a back-off
        await wait_for(lambda: 1 in supervisor._waiting, what="the back-off")
        supervisor.spawn_times.append(0.3)  # that start takes a while
        supervisor._waiting.pop(1).cancel()
        supervisor._restart_slot(1)  # (what the back-off's timer does)
        await asyncio.sleep(0.05)
        replacement.ready.set_result(True)  # meanwhile the replacement accepts
        assert await asyncio.wait_for(replacing, 5) is True
        late = await slot.nth(3, "the late start")
        assert (late.pid, signal.SIGTERM) in slot.signalled  # not needed: stopped
        assert supervisor.workers[1] is replacement


async def test_a_replacement_that_dies_as_it_gets_ready_does_not_take_the_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with one_slot(monkeypatch) as slot:
        old = slot.started[0]
        replacing = asyncio.create_task(slot.supervisor._replace(1, worker=old))
        new = await slot.nth(2, "the replacement")
        new.ready.set_result(True)
        new.process.exit(1)  # in the same moment
        assert await asyncio.wait_for(replacing, 5) is False
        assert slot.supervisor.workers[1] is old and not slot.sighupped(old)


async def test_a_limit_said_before_the_slot_was_taken_is_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with one_slot(monkeypatch) as slot:
        slot.supervisor._on_limit(slot.started[0])  # its limit: a replacement starts
        new = await slot.nth(2, "the replacement")
        new.ready.set_result(True)
        slot.supervisor._on_limit(new)  # "R" and "L" in one read: not in its slot yet
        third = await slot.nth(3, "the replacement's replacement")
        third.ready.set_result(True)
        await wait_for(lambda: slot.supervisor.workers[1] is third, what="the third in its slot")
        assert slot.sighupped(new)


async def test_a_restart_replaces_what_a_limit_put_in_the_slot_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with one_slot(monkeypatch) as slot:
        slot.supervisor._on_limit(slot.started[0])  # a replacement with the code as it was...
        limits = await slot.nth(2, "the limit's replacement")
        slot.supervisor.restart("changed: a.py")  # ... when an edit comes
        limits.ready.set_result(True)
        restarts = await slot.nth(3, "the restart's replacement")
        restarts.ready.set_result(True)
        await wait_for(lambda: slot.supervisor.workers[1] is restarts, what="the new code")
        assert slot.sighupped(limits)


async def test_a_failed_replacement_at_the_limit_is_tried_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with one_slot(monkeypatch) as slot:
        old = slot.started[0]
        slot.supervisor._on_limit(old)
        broken = await slot.nth(2, "the replacement")
        broken.ready.set_result(False)  # a broken application: it never accepts
        broken.process.exit(1)
        again = await slot.nth(3, "another try")  # after 0.5 s
        assert slot.supervisor.workers[1] is old and not slot.sighupped(old)  # it served on
        again.ready.set_result(True)
        await wait_for(lambda: slot.sighupped(old), what="the old one retiring")


async def test_stopping_during_a_replacement_retires_nothing_and_stops_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with one_slot(monkeypatch) as slot:
        old = slot.started[0]
        replacing = asyncio.create_task(slot.supervisor._replace(1, worker=old))
        new = await slot.nth(2, "the replacement")
        slot.supervisor.stopping = True
        assert new in slot.supervisor._all_workers()  # what stop_all() signals
        new.ready.set_result(True)
        assert await asyncio.wait_for(replacing, 5) is False
        assert slot.supervisor.workers[1] is old and not slot.sighupped(old)


async def test_a_health_check_answered_at_once_comes_again_a_second_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (From an audit.) Its wait for the answer ran to the timeout even when the
    # answer had come: a ping every timeout + 1 s, and a blocked worker killed
    # up to twice the timeout (and a second) after it blocked.
    import wsserver.supervisor as supervisor_module

    monkeypatch.setattr(supervisor_module, "HEALTH_INTERVAL", 0.05)
    async with one_slot(monkeypatch) as slot:
        worker = slot.started[0]
        loop = asyncio.get_running_loop()
        pings: list[float] = []
        answering = True

        class Channel:  # the worker's end of its channel: its loop answers at once
            def write(self, data: bytes) -> None:
                assert data == supervisor_module.PING
                pings.append(loop.time())
                if answering:
                    loop.call_soon(worker.pong.set_result, None)

            def close(self) -> None:
                pass

        worker.channel = Channel()
        watching = asyncio.create_task(slot.supervisor._watch_health(worker, 1.0))
        worker.tasks.append(watching)
        await asyncio.sleep(0.6)
        assert len(pings) >= 5, pings  # (one every 0.05 s; it was one in 1.05 s)
        answering = False  # its loop blocks
        blocked = loop.time()
        await wait_for(lambda: (worker.pid, signal.SIGKILL) in slot.signalled, what="the kill")
        assert loop.time() - blocked < 1.0 + 0.05 + 0.5  # the timeout after the next ping


async def test_a_start_is_given_up_once_the_replacement_waited_for_dies_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No worker ever accepted: the last to die at start-up ends it all, but not
    # while a replacement (a SIGHUP's, the code fixed meanwhile) is starting,
    # which may yet accept; once that one dies too, it ends, with its exit code.
    async with one_slot(monkeypatch, ready=False) as slot:
        supervisor = slot.supervisor
        supervisor.watcher = None  # (no --reload: it waits for no fix)
        stops: list[bool] = []

        async def stop_all() -> None:
            stops.append(True)

        monkeypatch.setattr(supervisor, "_stop_all", stop_all)
        old = slot.started[0]
        replacing = asyncio.create_task(supervisor._replace(1, worker=old))
        new = await slot.nth(2, "the replacement")
        old.process.exit(1)  # the broken code dies at start-up
        await wait_for(lambda: 1 in supervisor._never_started, what="the slot given up")
        await asyncio.sleep(0.05)
        assert not supervisor.stopping and not stops  # the replacement is waited for
        new.process.exit(3)  # broken too
        await wait_for(lambda: stops, what="the stop")
        assert supervisor.stopping and supervisor.exit_code == 3
        assert await asyncio.wait_for(replacing, 5) is False


async def test_a_replacement_whose_slot_was_given_up_meanwhile_retires_as_on_sighup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Its limit's replacement accepts after SIGTTOU gave its slot up: it has
    # accepted connections, whose requests its retiring lets finish (SIGHUP,
    # as for the worker it was to replace). SIGTERM's shutdown cut them: a
    # request sent on a connection it had just accepted got a reset.
    async with one_slot(monkeypatch) as slot:
        supervisor = slot.supervisor
        supervisor.count = 2
        second = await supervisor._start(2, replacing=False)
        second.ready.set_result(True)
        replacing = asyncio.create_task(supervisor._replace(2, worker=second))
        new = await slot.nth(3, "the replacement")
        supervisor._scale(signal.SIGTTOU)  # slot 2 goes: its worker retires
        assert slot.sighupped(second)
        new.ready.set_result(True)  # then its replacement accepts
        assert await asyncio.wait_for(replacing, 5) is True
        assert slot.sighupped(new)
        assert (new.pid, signal.SIGTERM) not in slot.signalled
        assert supervisor.workers == {1: slot.started[0]}


async def test_a_start_is_given_up_when_the_replacement_waited_for_goes_with_its_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No worker ever accepted; the one replacement that may yet (a SIGHUP's)
    # is waited for. SIGTTOU gives its slot up, and it does not accept in
    # time: stopped, it was the last hope; the supervisor stopped nowhere,
    # and went on with no worker and none to start.
    async with one_slot(monkeypatch, ready=False) as slot:
        supervisor = slot.supervisor
        supervisor.watcher = None  # (no --reload: it waits for no fix)
        supervisor.start_timeout = 0.2
        stops: list[bool] = []

        async def stop_all() -> None:
            stops.append(True)

        monkeypatch.setattr(supervisor, "_stop_all", stop_all)
        supervisor.count = 2
        second = await supervisor._start(2, replacing=False)
        slot.started[0].process.exit(1)  # slot 1's broken code dies at start-up
        await wait_for(lambda: 1 in supervisor._never_started, what="slot 1 given up")
        replacing = asyncio.create_task(supervisor._replace(2, worker=second))
        await slot.nth(3, "the replacement")
        supervisor._scale(signal.SIGTTOU)  # slot 2 goes (its replacement is waited for)
        assert not stops
        assert await asyncio.wait_for(replacing, 5) is True  # (it never accepted)
        await wait_for(lambda: stops, what="the stop")
        assert supervisor.stopping and supervisor.exit_code == 1


async def test_sigttin_adds_no_worker_past_the_most_workers_allows(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # --workers takes 1 to 1024 (more is a typo's fork bomb), SIGTTOU stops at
    # one; SIGTTIN had no bound: a scaling script's loop forked workers
    # without end, one a signal.
    from wsserver.supervisor import MOST_WORKERS

    async with one_slot(monkeypatch) as slot:
        supervisor = slot.supervisor
        supervisor.count = MOST_WORKERS  # (its other slots' workers are not needed here)
        with caplog.at_level(logging.WARNING, "wsserver.supervisor"):
            supervisor._scale(signal.SIGTTIN)
        assert supervisor.count == MOST_WORKERS  # (and no slot 1025 to start)
        assert not supervisor._tasks  # (a start is a task of its own)
        assert f"SIGTTIN: {MOST_WORKERS} workers are the most there can be" in caplog.text


async def test_a_sighup_during_a_replacement_s_spawn_replaces_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (From a review.) A worker was stamped as started once its process was
    # made, its environment (--env-file) read before: a SIGHUP handled in
    # between (the loop turns that take) had the rolling restart after it
    # spare the worker, as one started after it, with the file as it was.
    async with one_slot(monkeypatch) as slot:
        supervisor = slot.supervisor
        supervisor.spawn_times = [0.2]
        supervisor.restart("SIGHUP")
        await wait_for(lambda: supervisor.spawns > 0, what="the replacement's spawn")
        supervisor.restart("SIGHUP")  # (came while it was made)
        (await slot.nth(2, "the first restart's")).ready.set_result(True)
        third = await slot.nth(3, "the second restart's")
        third.ready.set_result(True)
        await wait_for(lambda: supervisor.workers[1] is third, what="the second restart")
