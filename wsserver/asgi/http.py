"""One HTTP request served by an ASGI application: its ``receive()`` and ``send()``.

:class:`HttpCycle` translates between the ASGI HTTP events (asgiref
``specs/www.rst``, 2.5) and the connection it is handed, an
:class:`~wsserver.server.http_protocol.HttpProtocol`, which owns h11 and the
socket: the request body is pulled from it as ``http.request`` events (reading
the socket only while the application asks for more), the response goes out
through it as the application sends it, streamed (chunked when the
application gave no ``Content-Length`` and sent more than one piece).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, BinaryIO

from .. import logs
from ..app.static import FilePieces, open_regular
from ..errors import ClientDisconnected, passed_on, passes_through
from ..protocol.handshake import comma_tokens
from ..protocol.http import valid_header

if TYPE_CHECKING:
    from ..app.request import Request
    from ..server.http_protocol import HttpProtocol

__all__ = ["HttpCycle", "body_bytes", "caused_by_disconnect", "response_headers"]

Message = MutableMapping[str, Any]
ASGIApp = Callable[[Message, Any, Any], Awaitable[None]]

_RESPONSE_MESSAGES = frozenset(
    {
        "http.response.start",
        "http.response.body",
        "http.response.pathsend",
        "http.response.early_hint",
        "http.response.trailers",
        "http.response.zerocopysend",
    }
)


#: Fields that say how a message is framed, which no trailer may.
_NO_TRAILERS = frozenset({"content-length", "transfer-encoding", "trailer"})

_BODY_MESSAGES = frozenset(
    {"http.response.body", "http.response.pathsend", "http.response.zerocopysend"}
)


def response_headers(headers: Any, what: str) -> list[tuple[str, str]]:
    """An application's ``[name, value]`` byte pairs as ``str`` pairs, checked.

    Raises:
        ValueError: a name or value is not bytes, or could split the response
            (CR, LF, NUL, or a name that is not a token).
    """
    checked = []
    for pair in headers or ():
        name, value = pair
        if not isinstance(name, bytes | bytearray) or not isinstance(value, bytes | bytearray):
            raise ValueError(f"{what}: header names and values must be bytes, not {pair!r}")
        text_name = bytes(name).decode("latin-1")
        text_value = bytes(value).decode("latin-1")
        if not valid_header(text_name, text_value):
            raise ValueError(f"{what}: invalid header {pair!r}")
        checked.append((text_name, text_value))
    return checked


def head_headers(headers: Any, what: str) -> list[tuple[str, str]]:
    """:func:`response_headers` for a response's head, less ``Transfer-Encoding``:
    the server frames the body (www.rst: it must ignore that header)."""
    return [
        (name, value)
        for name, value in response_headers(headers, what)
        if name.lower() != "transfer-encoding"
    ]


def declared_length(headers: list[tuple[str, str]], what: str) -> int | None:
    """The ``Content-Length`` in ``headers`` (one number, perhaps repeated:
    ``10, 10``), or None when there is none.

    Raises:
        ValueError: it is no length, or several.
    """
    values = {
        value.strip(" \t")
        for name, line in headers
        if name.lower() == "content-length"
        for value in line.split(",")
    }
    if not values:
        return None
    value = next(iter(values))
    if len(values) > 1 or not (value.isascii() and value.isdigit()):
        raise ValueError(f"{what}: invalid Content-Length {', '.join(sorted(values))!r}")
    return int(value)


def body_bytes(value: Any, what: str) -> bytes:
    """An application's byte string (bytes, bytearray or memoryview) as bytes.

    Raises:
        TypeError: anything else (``bytes(5)`` would be five NUL bytes).
    """
    if type(value) is bytes:
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"{what} must be bytes, not {type(value).__name__}")


def caused_by_disconnect(
    exc: BaseException, *origins: object, gone: bool = False, seen: set[int] | None = None
) -> bool:
    """Whether ``exc`` comes of the client leaving, and is therefore no error of the app.

    It does when it, or an exception it came from, is our
    :class:`ClientDisconnected` raised by one of ``origins`` (another
    connection's is no client of this one leaving); or, once the client is
    ``gone``, what frameworks make of the disconnect message (Starlette's
    ``WebSocketDisconnect`` and ``ClientDisconnect``: a class named so) or a
    cancellation. Anything else the app raises then, a bug in its clean-up
    say, is its error. An exception group (a task group's: one task sending,
    one receiving) comes of it when each exception in it does. (``seen``:
    the exceptions looked at already; a member re-raised from its group's
    ``except`` has the group for context.)
    """
    if seen is None:
        seen = set()
    current: BaseException | None = exc
    # (Once the walk went by a __context__, the exception at hand was raised
    # while handling the disconnect, not made of it: a bug in an app's
    # ``except WebSocketDisconnect:`` is its error. Our ClientDisconnected is
    # still found there when only a disconnect's own exceptions were raised
    # while handling it: what a framework makes of it (Starlette's
    # WebSocketDisconnect, raised in send() while handling ours), a
    # cancellation.)
    implicit = False
    clean = True
    while current is not None and id(current) not in seen:
        if isinstance(current, BaseExceptionGroup):
            seen.add(id(current))
            return all(
                caused_by_disconnect(inner, *origins, gone=gone, seen=seen)
                for inner in current.exceptions
            )
        if isinstance(current, ClientDisconnected) and any(
            current.origin is origin for origin in origins if origin is not None
        ):
            return clean
        # (Another connection's ClientDisconnected is none of this one's.)
        a_disconnect = _a_disconnect(current)
        if gone and not implicit and a_disconnect:
            return True
        seen.add(id(current))
        if current.__cause__ is None:
            implicit = True
            clean = clean and a_disconnect
        current = current.__cause__ or current.__context__
    return False


def _a_disconnect(exc: BaseException) -> bool:
    """A cancellation, or what frameworks make of a disconnect (a class named so)."""
    return isinstance(exc, asyncio.CancelledError) or type(exc).__name__.endswith("Disconnect")


class HttpCycle:
    """The ``receive``/``send`` pair of one request, and the run of the application on it.

    Args:
        connection: the request's connection.
        scope: the ``http`` scope.
        max_body_size: the largest body the application may receive (None: any);
            beyond it the client gets 413 and the application ``http.disconnect``.
        request: the request the scope was made of.
        root_path: the ``root_path`` the scope was given.
    """

    __slots__ = (
        "connection",
        "scope",
        "_request",
        "_root_path",
        "max_body_size",
        "_body_received",
        "_body_done",
        "_status",
        "_headers",
        "response_started",
        "response_complete",
        "_head",
        "_completed",
        "_trailers",
        "_trailers_go",
        "_awaiting_trailers",
        "_head_only",
        "_head_streaming",
        "_dropping_until",
    )

    def __init__(
        self,
        connection: HttpProtocol,
        scope: dict[str, Any],
        max_body_size: int | None,
        request: Request,
        root_path: str,
    ) -> None:
        self.connection = connection
        self.scope = scope
        # What the scope was made of, for the paths logged (see path): the
        # application may rewrite its scope as it routes (Starlette's Mount
        # puts its prefix in scope["root_path"]). Kept, not read off the
        # scope: nothing to do per request unless a line is logged.
        self._request = request
        self._root_path = root_path
        self.max_body_size = max_body_size
        self._body_received = 0
        self._body_done = False
        self._status = 0
        self._headers: list[tuple[str, str]] = []
        self.response_started = False
        self.response_complete = False
        self._head = scope["method"] == "HEAD"
        self._completed: asyncio.Future[None] | None = None
        # Trailers the application promised (None: none), whether they can
        # reach the client, and whether the body has all been sent before them.
        self._trailers: list[tuple[bytes, bytes]] | None = None
        self._trailers_go = False
        self._awaiting_trailers = False
        #: A HEAD's response ended with its head, the app's body still to end.
        self._head_only = False
        #: Its number among the connection's such HEADs (None: not one).
        self._head_streaming: int | None = None
        #: Until when (loop time) the app's pieces are dropped once the
        #: connection closed with such a HEAD's head (see _send_head()).
        self._dropping_until = 0.0

    async def run(self, app: ASGIApp) -> None:
        """Run ``app`` on the request, and answer for it when it cannot.

        An application that fails, or returns, before it started a response
        gets a 500 sent for it; one that fails (or returns) halfway through a
        response has the connection closed, since the response cannot be
        completed. The application may go on after its response is complete
        (background work): the connection goes on to its next request meanwhile.
        What comes of the client leaving (see :func:`caused_by_disconnect`)
        is logged at DEBUG; any other failure is logged as an error, and
        counted, once.
        """
        connection = self.connection
        failed = raised = False
        try:
            await app(self.scope, self.receive, self.send)
        except BaseException as exc:  # (one of its own too: class Abort(BaseException))
            raised = True
            if passes_through(exc):
                passed = passed_on(exc)
                if isinstance(passed, SystemExit):
                    what = f"the ASGI application ({logs.printable(self.path)})"
                    logs.say_exit(passed, what, logs.HANDLER_EXIT_UNDONE)
                raise passed  # noqa: B904 (itself, or a group's own)
            # (Closing: the server ended the connection for the client's bad
            # body, say; the application had its http.disconnect for it.)
            gone = connection.lost or connection.closing
            if caused_by_disconnect(exc, connection, gone=gone):
                logs.log_client_gone(self.path, exc)
            else:
                self._failed("ASGI application failed", exc)
                failed = True
        if self.response_complete:
            if self._head_only and not raised:
                # (A HEAD's: its head went whole, but the app never ended its body.)
                self._failed("ASGI application did not finish its response", None)
            return
        if not connection.closing and (not self.response_started or self._status):
            # Nothing of the response was written (the head waits for the
            # first body): a 500 takes its place (www.rst allows it).
            if not failed:
                problem = (
                    "did not finish its response"
                    if self.response_started
                    else ("returned without a response")
                )
                self._failed(f"ASGI application {problem}", None)
            self._complete()
            task = asyncio.current_task()
            if task is None or not connection.answer_cut_off(task):
                # (Cut off: the shutdown cancelled it, past shutdown_timeout,
                # and it caught the CancelledError: its client gets the 503
                # of the shutdown, as for an application that ended cancelled.)
                connection.http_error(500, "Internal Server Error")
            return
        if not connection.closing and not failed:
            problem = "trailers" if self._awaiting_trailers else "response"
            self._failed(f"ASGI application did not finish its {problem}", None)
        self._complete()
        if self._awaiting_trailers:
            connection.close_transport()  # (the body went whole)
        else:
            connection.cut_short()

    @property
    def path(self) -> str:
        """The request's path as the server gave it in the scope (``root_path``
        before it), whatever the application made of its scope since."""
        return self._root_path + self._request.path

    def _sent_path(self) -> str:
        """The request target's path as the client sent it (the scope's ``raw_path``
        without the ``root_path`` the server put before it)."""
        return self._request.target.partition("?")[0]

    def _failed(self, problem: str, exc: BaseException | None) -> None:
        # (The scope's client: the connection may serve another's request by now.
        # A middleware may have written it from what the client sent, such as
        # X-Forwarded-For: logged escaped.)
        try:
            client = self.scope.get("client")
            address = (logs.printable(str(client[0])), int(client[1])) if client else None
        except (TypeError, ValueError, IndexError):  # (a middleware's, malformed)
            address = self.connection.client_address
        logs.log_app_error(problem, self.path, address, exc, sent_path=self._sent_path())
        self.connection.server.app_failed(problem, exc, self.connection.transport)

    # --------------------------------------------------------------- receive

    async def receive(self) -> Message:
        """The next ``http.request`` piece of the body, then ``http.disconnect``."""
        connection = self.connection
        if not self._body_done and not connection.closing and not self.response_complete:
            limit = self.max_body_size
            piece = await connection.receive_body(
                None if limit is None else limit - self._body_received
            )
            if piece is not None:
                data, more = piece
                self._body_received += len(data)
                # (With what a chunk's size line announced: refused at that line.)
                if limit is not None and self._body_received + connection.body_announced() > limit:
                    self._too_large()
                    return {"type": "http.disconnect"}
                self._body_done = not more
                return {"type": "http.request", "body": data, "more_body": more}
        if not self.response_complete and not connection.closing:
            # Until the response is complete or the client goes away (an
            # application streaming a response watches for this).
            if self._completed is None:
                self._completed = asyncio.get_running_loop().create_future()
            await asyncio.wait(
                (self._completed, connection.watch_disconnect()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        self._head_only = False  # (told the response is over: its body's end is owed no more)
        return {"type": "http.disconnect"}

    def _too_large(self) -> None:
        """The body went over max_body_size: 413 (if nothing was sent yet), then close."""
        connection = self.connection
        self._body_done = True
        if not self.response_started or self._status:  # (a start held, not written)
            self.response_started = True
            self._status = 0
            connection.http_error(413, "Request body too large.")
        else:
            connection.cut_short()
        self._complete()

    def _complete(self) -> None:
        self.response_complete = True
        if self._completed is not None and not self._completed.done():
            self._completed.set_result(None)

    # ------------------------------------------------------------------ send

    async def send(self, message: Message) -> None:
        """Take ``http.response.start`` / ``http.response.body`` from the
        application, and the extensions' ``http.response.pathsend``,
        ``http.response.zerocopysend``, ``http.response.early_hint`` and
        ``http.response.trailers``.

        Once the response is complete (or was answered for the application,
        e.g. with 413), further response messages are ignored while the
        connection lasts; once the client is gone, every send raises
        (www.rst's "Disconnected Client", spec version 2.4).

        Raises:
            ClientDisconnected: the client is gone.
            RuntimeError: a message out of order, or of an unknown type.
            ValueError: invalid headers or status.
        """
        connection = self.connection
        kind = message["type"]
        if kind in _RESPONSE_MESSAGES or self.response_complete:
            if connection.closing and not (
                # (A HEAD's whose connection closed with its head: its pieces
                # are dropped still, below; see _send_head(). Not once the
                # server shuts down: told then, as a kept-alive HEAD's app is,
                # its idle connection closed.)
                self._head_only
                and connection.loop.time() < self._dropping_until
                and not connection.server.closing
            ):
                self._head_only = False  # (told: see receive())
                raise ClientDisconnected("the client is gone", connection)
            if self.response_complete:
                head = self._head_streaming
                if head is not None and connection.heads_streaming != head:
                    # A HEAD's, ended with its head, on a connection where
                    # another HEAD's app streams on since: told as once its
                    # client left, or each HEAD of an endless stream
                    # (server-sent events) left one more app streaming for
                    # nobody, as many as the client sent.
                    self._head_only = False
                    raise ClientDisconnected(
                        "the HEAD was answered with its head, and another since", connection
                    )
                if self._head_only:
                    # (A HEAD's, ended with its head: the app's pieces are
                    # dropped as they come, a loop turn each, till its last.)
                    if kind in _BODY_MESSAGES and not message.get("more_body", False):
                        self._head_only = False
                    await asyncio.sleep(0)
                return  # www.rst: once complete, further messages are ignored
            if self._awaiting_trailers and kind in _BODY_MESSAGES:
                raise RuntimeError(f"{kind} sent after the body's last piece")
        if kind == "http.response.start":
            if self.response_started:
                raise RuntimeError("http.response.start sent twice")
            status = message["status"]
            if not isinstance(status, int) or not 200 <= status <= 599:
                raise ValueError(f"http.response.start: invalid status {status!r}")
            self._headers = head_headers(message.get("headers"), "http.response.start")
            self._status = status
            self.response_started = True
            if message.get("trailers", False):
                self._promise_trailers()
            return
        if kind == "http.response.body":
            if not self.response_started:
                raise RuntimeError("http.response.body sent before http.response.start")
            body = body_bytes(message.get("body", b""), "http.response.body: 'body'")
            more = bool(message.get("more_body", False))
            if self._status:
                self._send_head(len(body), more)
                if self._head_only:
                    return  # (the head went, the response with it: see _send_head())
            if body and not self._head:
                connection.send_body(body)
            if not more:
                self._body_sent()
                return
            await connection.drain()
            if connection.closing:
                raise ClientDisconnected("the client is gone", connection)
            return
        if kind == "http.response.pathsend":
            await self._send_path(message)
            return
        if kind == "http.response.zerocopysend":
            await self._send_file_part(message)
            return
        if kind == "http.response.early_hint":
            self._early_hint(message)
            return
        if kind == "http.response.trailers":
            self._take_trailers(message)
            return
        raise RuntimeError(f"unexpected ASGI message {kind!r} on an HTTP connection")

    async def _send_path(self, message: Message) -> None:
        """``http.response.pathsend`` (asgiref's extensions): the file at
        ``path`` is the whole body, sent by the server as the client takes it
        (by the kernel's ``sendfile()`` where it can, else read in a thread:
        see :meth:`~wsserver.server.http_protocol.HttpProtocol.send_pieces`).

        Its ``Content-Length`` is the application's, if it gave one (a file
        that shrank since then cuts the response short, and the connection
        closes; of one that grew, that many bytes are sent), else the file's
        size. A relative path is taken from the working directory, as the
        application would open it.

        Raises:
            RuntimeError: it came before ``http.response.start``, or after a
                body, or would give a 205 content (RFC 9110 15.3.6).
            TypeError: ``path`` is no string.
            OSError: the file cannot be opened, or is no regular file (the
                application fails: a 500 in its place).
        """
        if not self.response_started:
            raise RuntimeError("http.response.pathsend sent before http.response.start")
        if not self._status:
            raise RuntimeError("http.response.pathsend sent after http.response.body")
        path = message.get("path")
        if not isinstance(path, str):
            raise TypeError(f"http.response.pathsend: 'path' must be a str, not {path!r}")
        file, size = await _opened(path)
        unsent: BinaryIO | None = file  # (until its pieces have it: they close it)
        connection = self.connection
        try:
            headers, status = self._headers, self._status
            declared = declared_length(headers, "http.response.start")
            if status == 205 and not self._head and (size if declared is None else declared):
                # (RFC 9110 15.3.6, as for http.response.body: nothing was sent.)
                raise RuntimeError("http.response.pathsend: a 205 response has no body")
            # (Chunked where trailers are to follow: they go after the last chunk.)
            if declared is None and status not in (204, 304) and not self._trailers_go:
                headers.append(("Content-Length", str(size)))
            connection.start_response(status, headers)
            self._status = 0
            if not self._head and status not in (204, 304):
                connection.stream_started()
                pieces = FilePieces(file, size if declared is None else declared)
                unsent = None
                await connection.send_pieces(pieces)
        finally:
            if unsent is not None:
                unsent.close()
        self._body_sent()

    def _send_head(self, size: int, more: bool) -> None:
        """Send the head held until the first body piece (of ``size`` bytes;
        ``more`` to come): a whole response in one piece gets a Content-Length
        rather than chunked encoding.

        Raises:
            RuntimeError: the piece does not fit the response (a body for a
                204, 205 or 304, or a Content-Length but 0 for a 205, more bytes
                than its Content-Length, or, all in one piece, fewer): nothing
                was sent, so the server answers 500.
            ValueError: the application's Content-Length is no length.
        """
        headers, status = self._headers, self._status
        declared = declared_length(headers, "http.response.start")
        bodiless = status == 204 or status == 304
        if not self._head:  # (HEAD: no body goes; a length is GET's)
            if size and (bodiless or status == 205):  # (RFC 9110 15.3.6: none for a 205)
                raise RuntimeError(f"http.response.body: a {status} response has no body")
            if status == 205 and declared:  # (its content to come in later pieces)
                raise RuntimeError(
                    f"http.response.body: a 205 response has no body, "
                    f"and Content-Length says {declared}"
                )
            if (
                declared is not None
                and not bodiless
                and (size > declared or (not more and size < declared))
            ):
                raise RuntimeError(
                    f"http.response.body: {size} bytes{' to begin with' if more else ''}, "
                    f"and Content-Length says {declared}"
                )
        if (
            declared is None
            and not more
            and not bodiless  # no body, and no length to say
            and (size or not self._head)  # (HEAD: GET's length, which is not known)
            and not self._trailers_go  # (chunked: the trailers go after the last chunk)
        ):
            headers.append(("Content-Length", str(size)))
        elif (
            status == 205 and declared is None and more and not self._head and not self._trailers_go
        ):
            # (RFC 9110 15.3.6: a 205 says it has none, and h11 then refuses a
            # later piece, as a Content-Length's overrun. Not with trailers to
            # follow: they need a chunked body.)
            headers.append(("Content-Length", "0"))
        self.connection.start_response(status, headers)
        self._status = 0
        if more and self._head:
            # A HEAD's answer is its head, whole (RFC 9110 9.3.2): it ends
            # here, not at the app's last piece, which a stream (server-sent
            # events) never sends; the connection's next request is answered,
            # and the app's send() raises once the client is gone.
            connection = self.connection
            closes = connection.ends_with_response()
            self._head_only = True
            self._complete()
            connection.end_response()
            if closes:
                # (The connection closes with it, by the server's choice: the
                # app's pieces are dropped still, a loop turn each, for
                # timeout_keep_alive at most, rather than its next send()
                # failing, so that its body ends, a StreamingResponse's
                # BackgroundTask run, as under uvicorn; an endless stream's
                # send() raises after that, or at a shutdown.)
                self._dropping_until = connection.loop.time() + connection.config.timeout_keep_alive
            else:
                connection.heads_streaming += 1
                self._head_streaming = connection.heads_streaming
        elif more:
            # Streamed (server-sent events, long polling): read on, so
            # that the client leaving is seen and the next send() raises.
            self.connection.stream_started()

    async def _send_file_part(self, message: Message) -> None:
        """``http.response.zerocopysend`` (asgiref's extensions): ``count``
        bytes (else all to its end) of the application's open ``file`` from
        ``offset`` (else from where it stands), as a piece of the body, sent as
        a ``pathsend`` file is. It mixes with ``http.response.body`` pieces
        (``more_body``), as often as the application likes.

        The server reads through a descriptor of its own (a ``dup()``: the
        same open file, whose position ends after what was sent: the file
        object's too, its buffer dropped), and leaves the application's open,
        as the extension says. It reads at the part's offsets, not from that
        shared position: one file sent to several clients at once (from
        ``offset``) reaches each whole.

        Raises:
            RuntimeError: it came before ``http.response.start``.
            TypeError: ``file`` has no descriptor, or ``offset`` / ``count``
                are no integers.
            ValueError: ``file`` is no regular file, a negative number, or
                ``count`` bytes past the file's end.
            OSError: its descriptor is closed.
        """
        if not self.response_started:
            raise RuntimeError("http.response.zerocopysend sent before http.response.start")
        file = message.get("file")
        offset = _count(message, "offset")
        count = _count(message, "count")
        more = bool(message.get("more_body", False))
        fileno = getattr(file, "fileno", None)
        if not callable(fileno):
            raise TypeError(
                f"http.response.zerocopysend: 'file' must be an open file object, not {file!r}"
            )
        fd = fileno()  # (io.BytesIO: io.UnsupportedOperation)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("http.response.zerocopysend: 'file' must be a regular file")
        if offset is None:
            tell = getattr(file, "tell", None)
            offset = tell() if callable(tell) else os.lseek(fd, 0, os.SEEK_CUR)
        left = max(0, info.st_size - offset)
        if count is None:
            count = left
        elif count > left:
            raise ValueError(
                f"http.response.zerocopysend: {count} bytes from {offset} go past the file's end"
            )
        if self._status:
            self._send_head(count, more)
        if count and not self._head:
            # (Read at its offsets, not from the position the dup() shares
            # with the application's other sends of the file at this time;
            # that position is moved past each piece, as a read would.)
            copy = os.fdopen(os.dup(fd), "rb", buffering=0)
            connection = self.connection
            connection.stream_started()
            pieces = FilePieces(copy, count, offset, move=True)
            await connection.send_pieces(pieces)  # (which closes copy)
            # The descriptor's position stands after the part now; a buffered
            # file object that read before (open(path, "rb")) keeps its own
            # idea of it, and its buffer, until it seeks: from the end first,
            # as a seek within what it holds would only move in its buffer.
            seek = getattr(file, "seek", None)
            if callable(seek):
                with contextlib.suppress(OSError, ValueError):
                    seek(0, os.SEEK_END)
                    seek(offset + count)
        if not more:
            self._body_sent()

    def _body_sent(self) -> None:
        """The body's last piece went: the response ends, or waits for its trailers."""
        if self._trailers is not None:
            self._awaiting_trailers = True
            return
        self._complete()
        self.connection.end_response()

    def _promise_trailers(self) -> None:
        """``http.response.start`` said ``trailers``: the response ends with
        ``http.response.trailers``. They reach the client only where asgiref's
        extension lets them (its request said ``TE: trailers``) and HTTP/1.1
        can carry them: after the last chunk of a chunked body (no
        ``Content-Length``, a body at all, an HTTP/1.1 client). Elsewhere the
        response ends as usual once they came, and they are dropped.
        """
        self._trailers = []
        request = self.connection.request
        self._trailers_go = (
            request is not None
            and request.http_version == "1.1"
            and not self._head
            and self._status not in (204, 304)
            and any(token.lower() == "trailers" for token in comma_tokens(request.headers, "te"))
            and not any(name.lower() == "content-length" for name, _ in self._headers)
        )

    def _take_trailers(self, message: Message) -> None:
        """``http.response.trailers`` (asgiref's extensions): trailing headers,
        in one message or several (``more_trailers``); the last ends the response.

        Raises:
            RuntimeError: ``http.response.start`` promised no trailers, or the
                body's last piece has not been sent.
            ValueError: invalid headers, or ones that frame the message
                (``Content-Length``, ``Transfer-Encoding``, ``Trailer``).
        """
        if self._trailers is None:
            raise RuntimeError("http.response.trailers sent, but http.response.start promised none")
        if not self._awaiting_trailers:
            raise RuntimeError("http.response.trailers sent before the body's last piece")
        checked = response_headers(message.get("headers"), "http.response.trailers")
        for name, _ in checked:
            if name.lower() in _NO_TRAILERS:
                # (RFC 9110 6.5.1: the body's framing is said before it.)
                raise ValueError(f"http.response.trailers: {name!r} cannot be a trailer")
        self._trailers.extend(
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in checked
        )
        if message.get("more_trailers", False):
            return
        self._complete()
        self.connection.end_response(self._trailers if self._trailers_go else None)

    def _early_hint(self, message: Message) -> None:
        """``http.response.early_hint`` (asgiref's extensions): a ``103 Early
        Hints`` with the message's ``links`` as ``Link`` headers, sent at once
        (before the response's head, which waits for its first body). Ignored
        where it cannot go (see
        :meth:`~wsserver.server.http_protocol.HttpProtocol.send_informational`):
        the head has gone out, or the client speaks HTTP/1.0.

        Raises:
            ValueError: a link is not bytes, or could split the response.
        """
        links = message.get("links") or ()
        if isinstance(links, bytes | bytearray | str):  # (one value, not an iterable of them)
            raise ValueError(
                f"http.response.early_hint: 'links' must be an iterable of bytes, not {links!r}"
            )
        headers = response_headers([(b"Link", link) for link in links], "http.response.early_hint")
        if headers:
            self.connection.send_informational(103, headers)


def _count(message: Message, key: str) -> int | None:
    """``message[key]``: a number of bytes, or None when it is not there."""
    value = message.get(key)
    if value is None:
        return None
    if type(value) is not int:
        raise TypeError(f"http.response.zerocopysend: {key!r} must be an int, not {value!r}")
    if value < 0:
        raise ValueError(f"http.response.zerocopysend: {key!r} must not be negative")
    return value


async def _opened(path: str) -> tuple[BinaryIO, int]:
    """The file at ``path``, open for reading, and its size; opened in a
    thread (a slow disk holds it, not the loop), and closed again if the
    caller is cancelled meanwhile."""
    opening = asyncio.get_running_loop().run_in_executor(
        None, open_regular, path, "http.response.pathsend: not a file"
    )
    try:
        file, info = await asyncio.shield(opening)
    except asyncio.CancelledError:
        opening.add_done_callback(_close_opened)
        raise
    return file, info.st_size


def _close_opened(opening: asyncio.Future[tuple[BinaryIO, os.stat_result]]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result()[0].close()
