"""Deadlines: many timeouts of one duration on one event-loop timer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from wsserver.server.deadlines import SLACK, Deadlines

DURATION = 0.05


def recorder(loop: asyncio.AbstractEventLoop) -> tuple[list[tuple[str, float]], Any]:
    """A list of (key, loop time) and a callback that appends to it."""
    fired: list[tuple[str, float]] = []
    return fired, lambda key: fired.append((key, loop.time()))


class Timer:
    """A timer of ManualClock: what Deadlines does with a handle is cancel it."""

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """What Deadlines uses of a loop (time, call_at, the exception handler), on a
    clock that moves only when told: orders and bounds that do not depend on how
    busy the machine is."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[Timer] = []
        self.errors: list[dict[str, Any]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        timer = Timer(when, callback)
        self.timers.append(timer)
        return timer

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.errors.append(context)

    def advance(self, seconds: float) -> None:
        """Move the clock, running each timer at its time, in order."""
        until = self.now + seconds
        while True:
            self.timers = [timer for timer in self.timers if not timer.cancelled]
            due = [timer for timer in self.timers if timer.when <= until]
            if not due:
                break
            timer = min(due, key=lambda timer: timer.when)  # (the first made, if equal)
            self.timers.remove(timer)
            self.now = max(self.now, timer.when)
            timer.callback()
        self.now = until


def clocked() -> tuple[ManualClock, Deadlines[str], list[tuple[str, float]]]:
    clock = ManualClock()
    fired: list[tuple[str, float]] = []
    deadlines: Deadlines[str] = Deadlines(
        clock,  # type: ignore[arg-type]
        DURATION,
        lambda key: fired.append((key, clock.now)),
    )
    return clock, deadlines, fired


def test_each_key_expires_exactly_after_the_duration_in_order() -> None:
    clock, deadlines, fired = clocked()
    added = {}
    for key in "abc":
        added[key] = clock.now
        deadlines.add(key)
        clock.advance(0.01)
    assert len(deadlines) == 3 and fired == []
    clock.advance(DURATION)
    assert [key for key, _ in fired] == ["a", "b", "c"]
    assert [when for _, when in fired] == pytest.approx([added[key] + DURATION for key in "abc"])
    assert len(deadlines) == 0 and clock.timers == []


async def test_each_key_expires_after_the_duration_in_order() -> None:
    loop = asyncio.get_running_loop()
    fired, expire = recorder(loop)
    deadlines: Deadlines[str] = Deadlines(loop, DURATION, expire)
    added = {}
    for key in "abc":
        added[key] = loop.time()
        deadlines.add(key)
        await asyncio.sleep(0.01)
    # Each key waits or has expired (a loaded machine may wake this test
    # late); none expired early, as checked below.
    assert len(deadlines) + len(fired) == 3
    limit = loop.time() + 5
    while len(fired) < 3 and loop.time() < limit:
        await asyncio.sleep(0.01)
    assert [key for key, _ in fired] == ["a", "b", "c"]
    for key, when in fired:  # (never early; how late depends on the machine's load)
        assert when >= added[key] + DURATION - SLACK
    assert len(deadlines) == 0


def test_add_again_restarts_and_discard_stops() -> None:
    clock, deadlines, fired = clocked()
    deadlines.add("restarted")
    deadlines.add("discarded")
    deadlines.add("kept")
    clock.advance(DURATION * 0.6)
    restarted_at = clock.now
    deadlines.add("restarted")  # moves behind "kept"
    deadlines.discard("discarded")
    deadlines.discard("never added")  # no error
    assert "discarded" not in deadlines and "restarted" in deadlines
    clock.advance(DURATION * 0.6)
    assert [key for key, _ in fired] == ["kept"]
    clock.advance(DURATION)
    assert [key for key, _ in fired] == ["kept", "restarted"]
    assert fired[1][1] == pytest.approx(restarted_at + DURATION)


async def test_one_timer_serves_every_deadline() -> None:
    loop = asyncio.get_running_loop()
    scheduled = getattr(loop, "_scheduled", None)  # asyncio's timer heap (not in uvloop)
    before = len(scheduled) if scheduled is not None else 0
    fired, expire = recorder(loop)
    deadlines: Deadlines[int] = Deadlines(loop, DURATION, expire)
    for key in range(1000):
        deadlines.add(key)
    for key in range(0, 1000, 2):
        deadlines.discard(key)
    if scheduled is not None:
        assert len(scheduled) == before + 1
    await asyncio.sleep(DURATION + 0.05)
    assert [key for key, _ in fired] == list(range(1, 1000, 2))
    if scheduled is not None:
        assert len(scheduled) == before  # nothing left to wait for: no timer


async def test_a_failing_callback_does_not_stop_the_others() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    fired: list[str] = []

    def expire(key: str) -> None:
        if key == "bad":
            raise RuntimeError("boom")
        fired.append(key)

    deadlines: Deadlines[str] = Deadlines(loop, DURATION, expire)
    for key in ("before", "bad", "after"):
        deadlines.add(key)
    await asyncio.sleep(DURATION + 0.05)
    assert fired == ["before", "after"]
    assert len(errors) == 1 and isinstance(errors[0]["exception"], RuntimeError)


def test_a_callback_may_add_again() -> None:
    clock = ManualClock()
    fired: list[float] = []

    def expire(key: str) -> None:
        fired.append(clock.now)
        if len(fired) < 3:
            deadlines.add(key)

    deadlines: Deadlines[str] = Deadlines(clock, DURATION, expire)  # type: ignore[arg-type]
    start = clock.now
    deadlines.add("again")
    clock.advance(DURATION * 10)
    assert fired == pytest.approx([start + DURATION * n for n in (1, 2, 3)])
    assert clock.timers == []


def test_a_callback_adding_again_does_not_delay_the_others() -> None:
    # open_timeout's and timeout_keep_alive's callbacks restart their own key.
    clock = ManualClock()
    fired: list[tuple[str, float]] = []

    def expire(key: str) -> None:
        fired.append((key, clock.now))
        if key == "restarts":
            deadlines.add(key)

    deadlines: Deadlines[str] = Deadlines(clock, DURATION, expire)  # type: ignore[arg-type]
    start = clock.now
    deadlines.add("restarts")
    clock.advance(DURATION * 0.3)
    deadlines.add("other")
    clock.advance(DURATION * 1.5)
    assert fired == [
        ("restarts", pytest.approx(start + DURATION)),
        ("other", pytest.approx(start + DURATION * 1.3)),
    ]


async def test_close_forgets_everything() -> None:
    loop = asyncio.get_running_loop()
    fired, expire = recorder(loop)
    deadlines: Deadlines[str] = Deadlines(loop, DURATION, expire)
    deadlines.add("x")
    deadlines.close()
    await asyncio.sleep(DURATION + 0.03)
    assert fired == [] and len(deadlines) == 0
