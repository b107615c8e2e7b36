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
    assert rec.calls == []
    inbox.put("last")
    assert rec.calls == ["pause"] and inbox.paused
    inbox.put("beyond")  # already paused: asked once
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
    assert rec.calls == ["pause"]
    inbox.put_failure()
    inbox.detach()
    assert inbox.ended
    assert [inbox.get_nowait(), inbox.get_nowait(), inbox.get_nowait()] == ["a", "b", None]
    assert rec.calls == ["pause"]  # no resume, no failure: the connection is gone
