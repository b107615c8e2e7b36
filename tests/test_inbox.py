"""The inbox: messages waiting for the handler, and the flow control that bounds them."""

from __future__ import annotations

import asyncio

import pytest

from wsserver.server.inbox import Inbox


class Recorder:
    """Records what the inbox asks of its protocol."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def inbox(self, max_queue: int) -> Inbox:
        return Inbox(
            asyncio.get_running_loop(),
            max_queue,
            pause=lambda: self.calls.append("pause"),
            resume=lambda: self.calls.append("resume"),
            reached_failure=lambda: self.calls.append("failure"),
        )


@pytest.mark.parametrize("max_queue", [1, 4, 8, 32, 33])
async def test_pauses_at_max_queue_and_resumes_at_a_quarter(max_queue: int) -> None:
    rec = Recorder()
    inbox = rec.inbox(max_queue)
    for i in range(max_queue - 1):
        inbox.put(f"m{i}")
    inbox.wake()
    await asyncio.sleep(0)
    assert rec.calls == []
    inbox.put("last")
    inbox.wake()
    # Decided once the application had its turn (the loop comes round).
    assert rec.calls == [] and not inbox.paused
    await asyncio.sleep(0)
    assert rec.calls == ["pause"] and inbox.paused
    inbox.put("beyond")  # already paused: asked once
    inbox.wake()
    await asyncio.sleep(0)
    assert rec.calls == ["pause"]
    # Taken down message by message: reading resumes exactly when no more
    # than a quarter of max_queue is left.
    while len(inbox) > max_queue // 4:
        assert rec.calls == ["pause"], len(inbox)
        assert inbox.get_nowait() is not None
    assert rec.calls == ["pause", "resume"] and not inbox.paused
    while inbox.get_nowait() is not None:
        pass
    assert rec.calls == ["pause", "resume"]


@pytest.mark.parametrize("max_queue", [1, 4, 32])
async def test_no_pause_when_the_application_keeps_up_with_a_burst(max_queue: int) -> None:
    # A read brings more than max_queue messages; the application, woken by
    # it, takes them all in its turn: reading is neither paused nor resumed.
    rec = Recorder()
    inbox = rec.inbox(max_queue)
    taken: list[str | bytes] = []

    async def application() -> None:
        while len(taken) < 3 * max_queue:
            waiter = inbox.waiter()
            await waiter
            inbox.forget_waiter()
            while (message := inbox.get_nowait()) is not None:
                taken.append(message)

    task = asyncio.create_task(application())
    await asyncio.sleep(0)  # it waits
    for burst in range(3):
        for i in range(max_queue):
            inbox.put(f"{burst}.{i}")
        inbox.wake()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    await asyncio.wait_for(task, 1)
    assert len(taken) == 3 * max_queue
    assert rec.calls == [] and not inbox.paused


@pytest.mark.parametrize(("take", "paused"), [(1, True), (2, False)])
async def test_pause_is_decided_after_the_wake_up_and_before_the_next_read(
    take: int, paused: bool
) -> None:
    # The check runs after the application's wake-up (it is scheduled behind
    # it) and before anything the loop does next: an application that takes
    # only some of the 9 messages in its turn leaves reading paused if
    # max_queue (8) are still waiting, not if fewer are.
    rec = Recorder()
    inbox = rec.inbox(8)
    order: list[str] = []

    async def application() -> None:
        waiter = inbox.waiter()
        await waiter
        inbox.forget_waiter()
        for _ in range(take):
            inbox.get_nowait()
        order.append(f"took {take}, paused={inbox.paused}")

    task = asyncio.create_task(application())
    await asyncio.sleep(0)
    for i in range(9):
        inbox.put(f"m{i}")
    inbox.wake()
    asyncio.get_running_loop().call_soon(lambda: order.append(f"next: paused={inbox.paused}"))
    await asyncio.wait_for(task, 1)
    await asyncio.sleep(0)
    assert order == [f"took {take}, paused=False", f"next: paused={paused}"]
    assert inbox.paused is paused
    assert rec.calls == (["pause"] if paused else [])


@pytest.mark.parametrize("max_queue", [1, 4, 32])
async def test_twice_max_queue_pauses_at_once(max_queue: int) -> None:
    # However the loop orders its reads and callbacks (uvloop reads a socket
    # again before running callbacks when the buffer was filled), a read that
    # leaves twice max_queue waiting pauses reading before it returns.
    rec = Recorder()
    inbox = rec.inbox(max_queue)
    for i in range(2 * max_queue - 1):
        inbox.put(f"m{i}")
    inbox.wake()
    assert rec.calls == []  # decided later
    inbox.put("last")
    inbox.wake()
    assert rec.calls == ["pause"] and inbox.paused
    await asyncio.sleep(0)  # the check scheduled by the first read: nothing more
    assert rec.calls == ["pause"]


async def test_no_pause_once_ended() -> None:
    # The last message and the peer's close in one read: nothing more can
    # arrive, so reading is not paused (the closing handshake still reads).
    rec = Recorder()
    inbox = rec.inbox(2)
    inbox.put("a")
    inbox.put("b")
    inbox.end()
    await asyncio.sleep(0)
    assert rec.calls == [] and not inbox.paused


async def test_an_inbox_never_empty_does_not_grow_and_keeps_no_message_taken() -> None:
    # Messages taken as fast as they come, one always waiting: the storage
    # stays bounded, in order, and a message taken is not kept alive.
    inbox = Recorder().inbox(32)
    inbox.put("m0")
    for i in range(1, 10_000):
        inbox.put(f"m{i}")
        assert inbox.get_nowait() == f"m{i - 1}"
        assert len(inbox) == 1
        assert len(inbox.messages) <= 130
    big = b"x" * 1_000_000
    inbox.put(big)
    inbox.put("after")
    assert inbox.get_nowait() == "m9999"
    assert inbox.get_nowait() is big
    assert all(m is not big for m in inbox.messages)
    assert inbox.get_nowait() == "after"
    assert inbox.messages == [] and len(inbox) == 0


async def test_messages_come_out_in_order_and_none_when_empty() -> None:
    inbox = Recorder().inbox(32)
    for message in ("a", b"b", "c"):
        inbox.put(message)
    assert [inbox.get_nowait() for _ in range(4)] == ["a", b"b", "c", None]


async def test_a_failure_behind_messages_is_reached_after_them() -> None:
    rec = Recorder()
    inbox = rec.inbox(32)
    assert inbox.put_failure() is False  # nothing waits: the failure is due now
    assert len(inbox) == 0
    inbox.put("before")
    assert inbox.put_failure() is True
    assert inbox.get_nowait() == "before"
    assert rec.calls == []
    assert inbox.get_nowait() is None
    assert rec.calls == ["failure"]


async def test_waiter_is_woken_by_a_message_or_the_end() -> None:
    inbox = Recorder().inbox(32)
    waiter = inbox.waiter()
    inbox.put("x")
    assert not waiter.done()  # put() does not wake: a read's messages wake once
    inbox.wake()
    await asyncio.wait_for(waiter, 1)
    inbox.forget_waiter()
    assert inbox.get_nowait() == "x"
    waiter = inbox.waiter()
    inbox.end()
    await asyncio.wait_for(waiter, 1)
    assert inbox.ended


async def test_detach_forgets_the_protocol_but_keeps_the_messages() -> None:
    rec = Recorder()
    inbox = rec.inbox(2)
    inbox.put("a")
    inbox.put("b")
    inbox.wake()
    await asyncio.sleep(0)
    assert rec.calls == ["pause"]
    inbox.put_failure()
    inbox.detach()
    assert inbox.ended
    assert [inbox.get_nowait(), inbox.get_nowait(), inbox.get_nowait()] == ["a", "b", None]
    assert rec.calls == ["pause"]  # no resume, no failure: the connection is gone


async def test_once_it_stops_taking_it_keeps_what_waits_and_drops_what_comes() -> None:
    rec = Recorder()
    inbox = rec.inbox(4)
    for i in range(8):
        inbox.put(f"m{i}")
    inbox.wake()  # twice max_queue: paused at once
    assert rec.calls == ["pause"] and inbox.paused
    assert inbox.get_nowait() == "m0"
    inbox.stop_taking()
    assert rec.calls == ["pause", "resume"] and not inbox.paused
    for i in range(100):
        inbox.put(f"late{i}")
    inbox.wake()
    await asyncio.sleep(0)
    assert rec.calls == ["pause", "resume"]  # never paused again
    assert [inbox.get_nowait() for _ in range(8)] == [f"m{i}" for i in range(1, 8)] + [None]
    inbox.stop_taking()  # (twice: nothing more)
    assert rec.calls == ["pause", "resume"] and len(inbox) == 0
