"""Deadlines: many timeouts of one duration on one event-loop timer."""

from __future__ import annotations

import asyncio
from typing import Any

from wsserver.server.deadlines import SLACK, Deadlines

DURATION = 0.05


def recorder(loop: asyncio.AbstractEventLoop) -> tuple[list[tuple[str, float]], Any]:
    """A list of (key, loop time) and a callback that appends to it."""
    fired: list[tuple[str, float]] = []
    return fired, lambda key: fired.append((key, loop.time()))


async def test_each_key_expires_after_the_duration_in_order() -> None:
    loop = asyncio.get_running_loop()
    fired, expire = recorder(loop)
    deadlines: Deadlines[str] = Deadlines(loop, DURATION, expire)
    added = {}
    for key in "abc":
        added[key] = loop.time()
        deadlines.add(key)
        await asyncio.sleep(0.01)
    assert len(deadlines) == 3
    await asyncio.sleep(DURATION + 0.05)
    assert [key for key, _ in fired] == ["a", "b", "c"]
    for key, when in fired:
        assert when >= added[key] + DURATION - SLACK
        assert when < added[key] + DURATION + 0.04
    assert len(deadlines) == 0


async def test_add_again_restarts_and_discard_stops() -> None:
    loop = asyncio.get_running_loop()
    fired, expire = recorder(loop)
    deadlines: Deadlines[str] = Deadlines(loop, DURATION, expire)
    deadlines.add("restarted")
    deadlines.add("discarded")
    deadlines.add("kept")
    await asyncio.sleep(DURATION * 0.6)
    restarted_at = loop.time()
    deadlines.add("restarted")  # moves behind "kept"
    deadlines.discard("discarded")
    deadlines.discard("never added")  # no error
    assert "discarded" not in deadlines and "restarted" in deadlines
    await asyncio.sleep(DURATION * 0.6)
    assert [key for key, _ in fired] == ["kept"]
    await asyncio.sleep(DURATION)
    assert [key for key, _ in fired] == ["kept", "restarted"]
    assert fired[1][1] >= restarted_at + DURATION - SLACK


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


async def test_a_callback_may_add_again() -> None:
    loop = asyncio.get_running_loop()
    fired: list[str] = []

    def expire(key: str) -> None:
        fired.append(key)
        if len(fired) < 3:
            deadlines.add(key)

    deadlines: Deadlines[str] = Deadlines(loop, DURATION / 2, expire)
    deadlines.add("again")
    await asyncio.sleep(DURATION * 2.5)
    assert fired == ["again"] * 3


async def test_close_forgets_everything() -> None:
    loop = asyncio.get_running_loop()
    fired, expire = recorder(loop)
    deadlines: Deadlines[str] = Deadlines(loop, DURATION, expire)
    deadlines.add("x")
    deadlines.close()
    await asyncio.sleep(DURATION + 0.03)
    assert fired == [] and len(deadlines) == 0
