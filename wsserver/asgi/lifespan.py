"""The ASGI lifespan protocol (asgiref ``specs/lifespan.rst``, 2.0): startup and shutdown.

The application runs once on a ``lifespan`` scope for the server's whole life:
:meth:`Lifespan.startup` sends ``lifespan.startup`` and waits for the answer
before the server accepts connections, :meth:`Lifespan.shutdown` sends
``lifespan.shutdown`` once every connection is closed and waits for its
answer. ``state`` is what the application put in the scope's ``state``; the
server copies it into every connection's scope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..errors import LifespanFailure
from ..logs import exit_said, logger

__all__ = ["Lifespan", "LifespanFailure"]

Message = MutableMapping[str, Any]
ASGIApp = Callable[[Message, Any, Any], Awaitable[None]]


class Lifespan:
    """Run an application's lifespan.

    Args:
        app: the ASGI application.
        mode: ``"auto"``: an application that raises before answering the
            startup (one that does not speak lifespan) runs without it;
            ``"on"``: that is a failure too; ``"off"``: no lifespan at all.
    """

    def __init__(self, app: ASGIApp, mode: str) -> None:
        self.app = app
        self.mode = mode
        #: The namespace the application keeps state in (copied into each scope),
        #: or None when it runs without lifespan.
        self.state: dict[str, Any] | None = {} if mode != "off" else None
        #: The scope's ``extensions`` (the server's pub/sub, given before the startup).
        self.extensions: dict[str, Any] = {}
        self._events: asyncio.Queue[Message] | None = None
        self._answer: asyncio.Future[Message] | None = None
        # The event whose answer is awaited ("lifespan.startup"...), if any.
        self._asking: str | None = None
        # The last event sent.
        self._sent = ""
        # The event whose answer was given up on (the start cancelled, the
        # shutdown past its time): its answer, still due, is taken and dropped.
        self._given_up: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False
        #: How the shutdown failed, if it did (see shutdown()).
        self._failure: BaseException | None = None
        #: What the lifespan raised after its startup, before the shutdown
        #: was sent (said at once, by _ended_early()).
        self._raised_early: BaseException | None = None
        #: The message of a ``lifespan.shutdown.failed`` the application sent
        #: unasked after its startup (Starlette's lifespan says so that it
        #: failed, then re-raises: uvicorn takes it), if it did.
        self._failed_early: str | None = None
        #: Whether that was said already (the lifespan went on after it).
        self._failed_early_said = False
        #: How many of the application's receive() calls wait for an event.
        self._receiving = 0
        #: Done once the application waits for an event after its last answer
        #: (none will come): see _end_task().
        self._no_more: asyncio.Future[None] | None = None

    async def startup(self) -> None:
        """Send ``lifespan.startup``; return once the application completed it.

        Raises:
            LifespanFailure: the application answered ``lifespan.startup.failed``,
                or (with ``on``) raised before answering.
        """
        if self.mode == "off":
            return
        loop = asyncio.get_running_loop()
        self._events = asyncio.Queue()
        self._task = loop.create_task(self._run())
        try:
            answer = await self._ask("lifespan.startup")
        except asyncio.CancelledError:
            self._task.cancel()  # (the server is not starting after all)
            await asyncio.wait([self._task], timeout=1.0)  # (ended with the start, if it can)
            if self._task.done() and not self._task.cancelled():
                self._task.exception()  # (retrieved: what ends it is the start's cancellation)
            raise
        if answer is None:
            return  # it does not speak lifespan ("auto")
        if answer["type"] == "lifespan.startup.failed":
            await self._end_task()
            failure = LifespanFailure(_said(answer))
            raise failure from self._raised()
        self._started = True
        assert self._task is not None
        self._task.add_done_callback(self._ended_early)

    def _ended_early(self, task: asyncio.Task[None]) -> None:
        """The application's lifespan ended: if before its shutdown was sent,
        say so now (not at the shutdown, maybe days later)."""
        if not self._started or self._asking is not None:
            return  # (the shutdown under way: said there)
        if task.cancelled() and task.cancelling():
            return  # (cancelled: the loop's end, say)
        raised = _ended_in(task)
        if isinstance(raised, SystemExit):
            return  # (said by exit_said(), the process ending)
        if raised is None and self._failed_early is not None:
            if not self._failed_early_said:
                self._say_failed_early(ended=True)
            return
        if raised is None:
            logger.warning(
                "ASGI lifespan: the application's lifespan returned after its startup, "
                "before the shutdown: its shutdown will not be sent"
            )
            return
        self._raised_early = raised
        logger.error(
            "ASGI lifespan failed after its startup: its shutdown will not be sent",
            exc_info=raised,
        )

    def _say_failed_early(self, ended: bool = False) -> None:
        """The application said lifespan.shutdown.failed after its startup: say
        its message, unless its lifespan ended meanwhile (``ended``: it
        returned; else _ended_early() says it, with what it raised)."""
        if self._failed_early_said or (not ended and (self._task is None or self._task.done())):
            return
        self._failed_early_said = True
        logger.error(
            "ASGI lifespan failed after its startup: %s: its shutdown will not be sent",
            self._failed_early,
        )

    async def _end_task(self) -> None:
        """Let the application's lifespan return (it may re-raise what failed), else cancel it:
        after 1 s, or at once when it waits for another event (a loop over
        receive() that does not return once it answered), which will not come."""
        task = self._task
        if task is None:
            return
        self._no_more = asyncio.get_running_loop().create_future()
        if self._receiving:
            self._no_more.set_result(None)
        await asyncio.wait([task, self._no_more], timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=1.0)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: what failed was said in the failure message

    def _raised(self) -> BaseException | None:
        """What the application's lifespan raised once it ended (after answering
        ``*.failed``, as Starlette's does): the failure's cause."""
        task = self._task
        if task is None or not task.done():
            return None
        return _ended_in(task)

    async def shutdown(self, timeout: float | None = None) -> BaseException | None:
        """Send ``lifespan.shutdown`` and wait for the application's answer (if it
        started), ``timeout`` seconds at most: then its lifespan is cancelled.

        Returns how it failed (logged here), if it did: a LifespanFailure with
        its ``lifespan.shutdown.failed`` message, or what it raised.
        """
        if not self._started:
            return None
        self._started = False
        self._failure = None
        if self._raised_early is not None:  # (said when it did)
            self._failure = LifespanFailure(f"the lifespan raised {self._raised_early!r}")
            self._failure.__cause__ = self._raised_early
            return self._failure
        if self._failed_early is not None:
            # It answered the shutdown already: no question, its lifespan ended.
            await self._end_task()
            self._failure = LifespanFailure(
                f"the lifespan failed after its startup: {self._failed_early}"
            )
            self._failure.__cause__ = self._raised()
            return self._failure
        if self._task is not None and self._task.done():
            return None  # (it returned early: said when it did)
        answer = await self._ask("lifespan.shutdown", timeout)
        if answer is not None and answer["type"] == "lifespan.shutdown.failed":
            message = _said(answer)
            logger.error("ASGI lifespan shutdown failed: %s", message)
            self._failure = LifespanFailure(f"the lifespan shutdown failed: {message}")
        # It should return once it answered; one that does not is stopped.
        await self._end_task()
        raised = self._raised()
        if isinstance(self._failure, LifespanFailure) and raised is not None:
            self._failure.__cause__ = raised
        return self._failure

    async def _ask(self, event: str, timeout: float | None = None) -> Message | None:
        """Send ``event``; the application's answer, or None if it stopped without
        one (or gave none within ``timeout``)."""
        assert self._events is not None and self._task is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._asking = self._sent = event
        self._events.put_nowait({"type": event})
        try:
            await asyncio.wait(
                (self._answer, self._task), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            self._asking = None
            if not self._answer.done():
                self._given_up = event  # (cancelled, or timed out: cancelled below)
        if self._answer.done():
            return self._answer.result()
        if not self._task.done():
            logger.error(
                "ASGI lifespan: no answer to %s within %s s: its lifespan is cancelled",
                event,
                timeout,
            )
            self._task.cancel()
            if event == "lifespan.shutdown":  # (the startup has no time limit)
                self._failure = LifespanFailure(f"no answer to {event} within {timeout} s")
            return None
        # The application's lifespan ended without answering.
        failure = _ended_in(self._task)
        if event == "lifespan.startup":
            if self.mode == "on":
                if failure is not None:
                    raise LifespanFailure(f"the application raised {failure!r}") from failure
                logger.warning(
                    "ASGI lifespan: the application returned without answering "
                    "lifespan.startup (--lifespan on); running without lifespan events"
                )
                self.state = None
                return None
            logger.info(
                "ASGI lifespan not supported by the application (%s); running without it",
                repr(failure) if failure else "it returned",
            )
            self.state = None
            return None
        if failure is not None:
            logger.error("ASGI lifespan shutdown failed", exc_info=failure)
            self._failure = LifespanFailure(f"the lifespan shutdown raised {failure!r}")
            self._failure.__cause__ = failure
        return None

    async def _run(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
            "extensions": self.extensions,
        }
        # (A sys.exit() there leaves the loop from this task: said.)
        await exit_said(self.app(scope, self._receive, self._send), self._exiting, self._undone)

    def _exiting(self) -> str:
        """Who calls sys.exit(), for exit_said()."""
        when = f"answering {self._asking}" if self._asking else f"after {self._sent} was answered"
        return f"ASGI lifespan: the application ({when})"

    def _undone(self) -> str:
        """What a sys.exit() of the application's lifespan leaves undone, for exit_said()."""
        if self._sent == "lifespan.shutdown":
            return "the rest of the shutdown undone"
        if self._asking == "lifespan.startup":
            return "the server does not start"
        return "the server stops at once, its connections cut, no shutdown"

    async def _receive(self) -> Message:
        assert self._events is not None
        if self._no_more is not None and not self._no_more.done():
            self._no_more.set_result(None)  # (its last answer was given: nothing comes)
        self._receiving += 1
        try:
            return await self._events.get()
        finally:
            self._receiving -= 1

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        expected = {
            "lifespan.startup.complete",
            "lifespan.startup.failed",
            "lifespan.shutdown.complete",
            "lifespan.shutdown.failed",
        }
        if kind not in expected:
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")
        # lifespan.rst: each event has its two answers, given once.
        if self._asking is None and self._given_up and kind.startswith(self._given_up + "."):
            # The answer to an event the server stopped waiting for, as it
            # cancelled the lifespan (Starlette answers its cancellation
            # with *.failed, then re-raises it): due, but heard by nobody.
            self._given_up = None
            return
        if kind == "lifespan.shutdown.failed" and self._started_then_failed():
            # A failure after its startup, said as Starlette says it (uvicorn
            # takes it): its shutdown is not sent; said once its lifespan ends
            # (with what it raised), or now if it goes on.
            self._failed_early = _said(message)
            asyncio.get_running_loop().call_soon(self._say_failed_early)
            return
        if self._asking is None or not kind.startswith(self._asking + "."):
            asked = f"the answer to {self._asking}" if self._asking else "no answer"
            raise RuntimeError(f"{kind}: {asked} is due now")
        assert self._answer is not None and not self._answer.done()
        self._answer.set_result(message)
        self._asking = None

    def _started_then_failed(self) -> bool:
        """Whether a ``lifespan.shutdown.failed`` sent now is one unasked after a
        startup completed (no shutdown sent, none such sent before)."""
        answer = self._answer
        return (
            self._asking is None
            and self._sent == "lifespan.startup"
            and self._failed_early is None
            and answer is not None
            and answer.done()
            and answer.result()["type"] == "lifespan.startup.complete"
        )


def _said(answer: Message) -> str:
    """What a ``*.failed`` answer says: its ``message`` (optional, lifespan.rst),
    else which answer it was."""
    return str(answer.get("message") or f"{answer['type']} (no message)")


def _ended_in(task: asyncio.Task[None]) -> BaseException | None:
    """What the application's lifespan task, done, raised: its exception, or a
    CancelledError of its own (it awaited what other code cancelled: the task
    itself was not cancelled, it failed); None if it returned or was cancelled."""
    if not task.cancelled():
        return task.exception()
    if task.cancelling():
        return None  # (cancelled: by the server, or the loop's end)
    try:
        task.result()
    except asyncio.CancelledError as exc:
        return exc
    return None  # (not reached: a cancelled task's result raises)
