"""One WebSocket connection served by an ASGI application: its ``receive()`` and ``send()``.

:class:`WebSocketSession` translates between the ASGI WebSocket events
(asgiref ``specs/www.rst``, 2.5, and the ``websocket.http.response``
extension) and our own layers. The upgrade request was checked by
:func:`~wsserver.protocol.handshake.decide` before the application is called;
``websocket.connect`` is then the first event, and nothing is answered until
the application says: ``websocket.accept`` sends the 101 (with its
subprotocol and headers) and hands the connection to a
:class:`~wsserver.server.websocket_protocol.WebSocketProtocol`, whose
:class:`~wsserver.server.websocket.WebSocket` carries every message after
that, with the same limits, backpressure, keepalive, compression and closing
handshake as a Router handler's; ``websocket.close`` before accepting answers
403; ``websocket.http.response.*`` answers with the application's own response.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from .. import logs
from ..errors import (
    ClientDisconnected,
    ConcurrencyError,
    ConnectionClosed,
    cancelled,
    passed_on,
    passes_through,
)
from ..protocol.frames import clip_close_reason
from ..protocol.handshake import Accept
from ..protocol.http import Response, error_response
from .http import body_bytes, caused_by_disconnect, declared_length, head_headers, response_headers

if TYPE_CHECKING:
    from ..app.request import Request
    from ..server.http_protocol import HttpProtocol
    from ..server.websocket import Subscribed, WebSocket

__all__ = ["WebSocketSession"]

Message = MutableMapping[str, Any]
ASGIApp = Callable[[Message, Any, Any], Awaitable[None]]


class Phase(enum.Enum):
    """Where the session is: the ASGI side of the connection's life."""

    CONNECTING = "connecting"  # websocket.connect not yet delivered
    HANDSHAKE = "handshake"  # delivered; the application has not answered
    RESPONDING = "responding"  # denying with its own HTTP response, body pending
    ACCEPTED = "accepted"  # 101 sent: messages flow
    CLOSED = "closed"  # closed or denied: sends raise ClientDisconnected


_ACCEPTED = Phase.ACCEPTED

#: The messages an application sends (www.rst): once closed, any of them raises
#: ClientDisconnected (a close does nothing); another type is the application's mistake.
_MESSAGES = frozenset(
    {
        "websocket.accept",
        "websocket.send",
        "websocket.close",
        "websocket.http.response.start",
        "websocket.http.response.body",
    }
)


class WebSocketSession:
    """The ``receive``/``send`` pair of one WebSocket connection, and the run of the app on it.

    Args:
        connection: the connection in its HTTP phase.
        request: the upgrade request.
        accept: what the handshake agreed, pending the application's answer.
        scope: the ``websocket`` scope (the session keeps its path and the
            subprotocols offered).

    The session does not keep the scope, which :meth:`run` is given: the
    scope's pub/sub extension holds the session's :meth:`subscribe`, and a
    session holding the scope would make a reference cycle of the whole
    connection, left for the garbage collector to find. Once accepted it
    lets go of the HTTP phase (the connection in it, h11's parser, the
    handshake's answer): the WebSocket carries the connection from there.
    """

    __slots__ = (
        "connection",
        "server",
        "transport",
        "request",
        "accept",
        "path",
        "offered",
        "phase",
        "websocket",
        "_status",
        "_headers",
        "_body",
        "_disconnect",
        "_answered",
        "_connect_delivered",
        "_turns",
    )

    def __init__(
        self, connection: HttpProtocol, request: Request, accept: Accept, scope: dict[str, Any]
    ) -> None:
        #: The connection in its HTTP phase; None once accepted.
        self.connection: HttpProtocol | None = connection
        self.server = connection.server
        #: The connection's transport, in either phase (for Server.app_failed()).
        self.transport = connection.transport
        self.request = request
        #: What the handshake agreed (None once answered).
        self.accept: Accept | None = accept
        self.path: str = scope["path"]
        #: The subprotocols the client offered (the scope's ``subprotocols``).
        self.offered: list[str] = scope["subprotocols"]
        self.phase = Phase.CONNECTING
        #: The connection's WebSocket once accepted.
        self.websocket: WebSocket | None = None
        self._status = 0
        self._headers: list[tuple[str, str]] | None = None
        self._body: list[bytes] | None = None
        self._disconnect: Message | None = None
        #: Set once the application answered the handshake (for a receive() waiting).
        self._answered: asyncio.Future[None] | None = None
        self._connect_delivered = False
        #: receive() calls waiting for another's wait to end, in the order they came.
        self._turns: list[asyncio.Future[None]] = []

    async def run(self, app: ASGIApp, scope: dict[str, Any]) -> None:
        """Run ``app`` on the connection (``scope``), and answer for it when it cannot.

        Before the handshake is answered, a failing application gets a 500
        for it; after, a 1011 close. An application that returns with the
        connection open has it closed with 1000.
        """
        try:
            await app(scope, self.receive, self.send)
        except BaseException as exc:  # (one of its own too: class Abort(BaseException))
            if passes_through(exc):
                if self.phase is _ACCEPTED and cancelled(exc):
                    # Cancelled by itself (the shutdown's close came first, if
                    # it was the shutdown's): as a Router handler's own cancel,
                    # 1000. Before the 101, the HTTP phase answers for it.
                    self._end(1000, "")
                passed = passed_on(exc)
                if isinstance(passed, SystemExit):
                    what = f"the ASGI application ({logs.printable(self.path)})"
                    logs.say_exit(passed, what, logs.HANDLER_EXIT_UNDONE)
                raise passed  # noqa: B904 (itself, or a group's own)
            # (Gone, or the app was told so: the server closed first, for the
            # client's fault, and the app's turn came before the client's close.)
            gone = self._gone() or self._disconnect is not None
            if caused_by_disconnect(exc, self, self.connection, gone=gone):
                # The client left: what the app does then is not its error.
                logs.log_client_gone(self.path, exc)
            else:
                self._failed("ASGI application failed", exc)
                self._end(1011, "internal server error")
                return
        else:
            answering = (Phase.CONNECTING, Phase.HANDSHAKE, Phase.RESPONDING)
            if self.phase in answering and not self._gone():
                self._failed("ASGI application returned without answering the handshake", None)
        self._end(1000, "")

    def _http(self) -> HttpProtocol:
        """The connection in its HTTP phase (before the application accepted)."""
        connection = self.connection
        assert connection is not None, "the HTTP phase is over"
        return connection

    def _gone(self) -> bool:
        """Whether the client is gone (before the 101: TCP, as send() sees it, closing
        or lost, as an HTTP app's cycle sees it too; after: the WebSocket)."""
        if self.websocket is not None:
            return self.websocket.closed
        return self._http().closing

    def _failed(self, problem: str, exc: BaseException | None) -> None:
        ws = self.websocket
        address = ws.remote_address if ws is not None else self._http().client_address
        sent = self.request.target.partition("?")[0]
        logs.log_app_error(problem, self.path, address, exc, sent_path=sent)
        self.server.app_failed(problem, exc, self.transport)

    def _end(self, code: int, reason: str) -> None:
        """After the application: close what it left open."""
        phase = self.phase
        self.phase = Phase.CLOSED
        if phase is Phase.ACCEPTED:
            ws = self.websocket
            assert ws is not None
            if ws.open:
                ws.start_close(code, reason)
        elif phase is not Phase.CLOSED and not self._http().closing:
            task = asyncio.current_task()
            # (Cut off by the shutdown, past its grace: its 503, as an HTTP app's.)
            if task is None or not self._http().answer_cut_off(task):
                self._deny(error_response(500, "Internal Server Error"))

    # --------------------------------------------------------------- receive

    async def receive(self) -> Message:
        """``websocket.connect`` first, then each message, then ``websocket.disconnect``."""
        if not self._connect_delivered:
            self._connect_delivered = True
            if self.phase is Phase.CONNECTING:
                self.phase = Phase.HANDSHAKE
            return {"type": "websocket.connect"}
        ws = self.websocket
        if ws is not None and self._disconnect is None:
            # As recv() does, without a coroutine more per message.
            while True:
                try:
                    message = ws.next_message()
                except ConcurrencyError:
                    # Another of the app's tasks waits in receive() (www.rst
                    # allows it): this one's turn comes when that wait ends.
                    await self._wait_turn()
                    continue
                if type(message) is str:
                    return {"type": "websocket.receive", "text": message}
                if type(message) is bytes:
                    return {"type": "websocket.receive", "bytes": message}
                if message is None:
                    while self._turns:  # (the others waiting hear the end too)
                        self._next_turn()
                    code, reason = ws.ended_with()
                    self._disconnect = {
                        "type": "websocket.disconnect",
                        "code": code,
                        "reason": reason,
                    }
                    return self._disconnect
                try:
                    await message  # type: ignore[misc]  # (a future: none waited)
                finally:
                    ws.done_waiting()
                    if self._turns:
                        self._next_turn()
        if self._disconnect is None:
            if self.phase is Phase.HANDSHAKE or self.phase is Phase.RESPONDING:
                # Asked again before answering (another task may answer): wait
                # for the answer, or for the client to go away.
                loop = asyncio.get_running_loop()
                if self._answered is None:
                    self._answered = loop.create_future()
                lost = self._http().watch_disconnect()
                await asyncio.wait((self._answered, lost), return_when=asyncio.FIRST_COMPLETED)
                if self.websocket is not None:
                    return await self.receive()
            self._disconnect = {"type": "websocket.disconnect", "code": 1006, "reason": ""}
        return self._disconnect

    async def _wait_turn(self) -> None:
        turn = asyncio.get_running_loop().create_future()
        self._turns.append(turn)
        try:
            await turn
        except BaseException:
            if turn in self._turns:
                self._turns.remove(turn)
            elif not turn.cancelled():
                self._next_turn()  # (woken and cancelled at once: the turn passes on)
            raise

    def _next_turn(self) -> None:
        """Wake the receive() that waits longest for its turn."""
        turns = self._turns
        while turns:
            turn = turns.pop(0)
            if not turn.done():
                turn.set_result(None)
                return

    def _answer(self, phase: Phase) -> None:
        self.phase = phase
        if self._answered is not None and not self._answered.done():
            self._answered.set_result(None)

    # ------------------------------------------------------------------ send

    async def send(self, message: Message) -> None:
        """Take the application's ``websocket.*`` messages.

        Raises:
            ClientDisconnected: the connection is closed, closing, or denied
                (a ``websocket.close`` then is nothing to do).
            RuntimeError: a message that does not fit the connection's phase.
            TypeError: a value of the wrong type (``text`` not a str, a close
                ``code`` not an int or ``reason`` not a str).
            ValueError: a malformed message (both or neither of ``text`` and
                ``bytes``, a subprotocol the client did not offer, invalid
                headers, a close code that may not be sent).
        """
        kind = message["type"]
        phase = self.phase
        if kind == "websocket.send" and phase is _ACCEPTED:
            ws: WebSocket = self.websocket  # type: ignore[assignment]  # (set when accepted)
            text = message.get("text")
            data = message.get("bytes")
            if type(text) is str and data is None:
                payload: str | bytes = text
            else:
                if (text is None) == (data is None):
                    raise ValueError("websocket.send needs exactly one of 'text' and 'bytes'")
                if isinstance(text, str):  # (a subclass: a StrEnum's member, say)
                    payload = text
                elif text is not None:
                    raise TypeError("websocket.send: 'text' must be str")
                else:
                    payload = body_bytes(data, "websocket.send: 'bytes'")
            try:
                if ws.send_now(payload):
                    await ws.drained()
            except ConnectionClosed:
                raise ClientDisconnected("the WebSocket is closed", self) from None
            return
        if phase is Phase.CLOSED or (phase is not Phase.ACCEPTED and self._http().closing):
            if kind == "websocket.close":
                # Denied already, or the client left before the answer: as
                # once accepted, a close is nothing to do (a framework's
                # denial, or its close in a finally block, must not raise).
                # Still an answer: the client gone, the transport may know it
                # before connection_lost() has run, and the app's returning
                # then is no "returned without answering".
                if phase is not Phase.CLOSED:
                    self._answer(Phase.CLOSED)
                return
            if kind not in _MESSAGES:  # (a misspelt type: the app's mistake, not the client's)
                raise RuntimeError(f"unexpected ASGI message {kind!r} (the connection is closed)")
            raise ClientDisconnected("the WebSocket is closed", self)
        # An application may answer before it took websocket.connect (FastAPI
        # refusing in a dependency does).
        answering = phase is Phase.HANDSHAKE or phase is Phase.CONNECTING
        if kind == "websocket.close":
            if phase is Phase.ACCEPTED:
                assert self.websocket is not None
                ws = self.websocket
                if ws.open:
                    code = message.get("code")
                    reason = message.get("reason") or ""
                    # (www.rst: a reason "can be any string"; a close frame
                    # holds 123 bytes of it.)
                    ws.start_close(
                        1000 if code is None else code,
                        clip_close_reason(reason) if isinstance(reason, str) else reason,
                    )
                # (Closing or closed already: nothing to do. Starlette's close()
                # in a finally block, once the client left, must not raise.)
                return
            if answering:
                self._answer(Phase.CLOSED)
                self._deny(error_response(403, "Forbidden"))
                return
        elif answering and kind == "websocket.accept":
            self._accept(message)
            return
        elif answering and kind == "websocket.http.response.start":
            status = message["status"]
            if not isinstance(status, int) or not 200 <= status <= 599:
                raise ValueError(f"websocket.http.response.start: invalid status {status!r}")
            self._headers = head_headers(message.get("headers"), "websocket.http.response.start")
            self._status = status
            self.phase = Phase.RESPONDING
            return
        elif kind == "websocket.http.response.body" and phase is Phase.RESPONDING:
            if self._body is None:
                self._body = []
            self._body.append(
                body_bytes(message.get("body", b""), "websocket.http.response.body: 'body'")
            )
            if not message.get("more_body", False):
                body = b"".join(self._body)
                self._body = None
                # (Checked first: one that cannot be sent, a 204 with a body or
                # another length than its Content-Length says, raises to the
                # application, and the server answers 500 for it.)
                response = Response(body, self._status, self._headers or [])
                declared = declared_length(response.headers, "websocket.http.response.start")
                if (
                    declared is not None
                    and declared != len(body)
                    and self._status not in (204, 304)
                ):
                    raise RuntimeError(
                        f"websocket.http.response.body: {len(body)} bytes, "
                        f"and Content-Length says {declared}"
                    )
                self._answer(Phase.CLOSED)
                self._deny(response)
            return
        raise RuntimeError(f"unexpected ASGI message {kind!r} (the connection is {phase.value})")

    def _accept(self, message: Message) -> None:
        headers = response_headers(message.get("headers"), "websocket.accept")
        subprotocol = message.get("subprotocol")
        assert self.accept is not None
        accept = self.accept.with_answer(self.offered, subprotocol, headers)
        full = self._http().over_capacity()
        if full is not None:  # (others opened while the application decided)
            self._answer(Phase.CLOSED)
            self._deny(full)
            raise ClientDisconnected("max_connections reached: the handshake got 503", self)
        self.websocket = self._http().upgrade_session(accept, self.request)
        self.connection = self.accept = None  # the HTTP phase is over
        self._answer(Phase.ACCEPTED)

    def subscribe(self, topic: str) -> Subscribed:
        """Send this connection what is published to ``topic`` (the pub/sub
        extension's); awaited, it also waits until the subscription has gone
        to the broker (as :meth:`WebSocket.subscribe`).

        Raises:
            RuntimeError: the connection is not accepted yet.
            ClientDisconnected: it is closed.
        """
        if self.websocket is None:
            raise RuntimeError("subscribe() needs an accepted WebSocket")
        try:
            return self.websocket.subscribe(topic)
        except ConnectionClosed:
            raise ClientDisconnected("the WebSocket is closed", self) from None

    def unsubscribe(self, topic: str) -> None:
        """Stop sending this connection ``topic``'s messages."""
        if self.websocket is not None:
            self.websocket.unsubscribe(topic)

    async def publish(self, topic: str, message: Any, *, exclude_self: bool = False) -> int:
        """The pub/sub extension's publish in a ``websocket`` scope (as
        :meth:`Server.publish`): with ``exclude_self``, not to this connection
        (a chat's sender, say)."""
        exclude = self.websocket if exclude_self else None
        return await self.server.publish(topic, message, exclude=exclude)

    def _deny(self, response: Response) -> None:
        self._http().deny(response)
