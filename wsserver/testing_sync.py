"""The test client for tests that are plain functions (no ``async``, no pytest-asyncio).

::

    from wsserver.testing_sync import SyncTestClient

    def test_echo():
        with SyncTestClient(routes) as client:
            with client.websocket("/ws") as ws:
                ws.send("hello")
                assert ws.receive() == "hello"
            assert client.get("/health").status == 200

:class:`SyncTestClient` is :class:`~wsserver.testing.TestClient` run in an
event loop of its own, in a thread that lives as long as the ``with`` block:
the same real server, the same socket pairs, the same checks and timeouts.
Each call hands its coroutine to that loop and blocks until it is done, so
what it raises (:class:`~wsserver.testing.HandshakeDenied`, ``TimeoutError``,
``ConnectionClosed``, what the application raised) is raised in the test.
Handlers and ASGI apps run in that thread; :meth:`SyncTestClient.call` runs a
function of the test's there too, for whatever must be done on the server's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import threading
import time
import weakref
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
)
from types import TracebackType
from typing import Any, Literal, NoReturn, TypeVar, Unpack, cast, overload

from .app.routing import Router
from .server.executor import DefaultExecutor
from .server.server import CANCELLED_GRACE, Server
from .server.websocket import BytesLike
from .testing import (
    DEFAULT_TIMEOUT,
    Body,
    ClientResponse,
    ClientWebSocket,
    Cookies,
    CookiesArg,
    DefaultHeaders,
    FilesArg,
    FormArg,
    HeadersArg,
    JsonMode,
    ParamsArg,
    RequestOptions,
    StreamedResponse,
    TestClient,
    _Connecting,
    _say_ported_names,
    _within,
)

__all__ = ["SyncTestClient", "SyncWebSocket"]

T = TypeVar("T")

#: Seconds between looks at whether the loop's thread is still there, while a call waits.
_LIVENESS = 0.1

logger = logging.getLogger("wsserver.server")


def _what_runs(task: asyncio.Task[Any]) -> str:
    """What ``task`` runs, for a log line: its coroutine's name (``stubborn()``)."""
    coroutine = task.get_coro()
    return f"{getattr(coroutine, '__qualname__', repr(coroutine))}()"


def _off_the_loop(body: Body) -> Body:
    """A body of pieces given as a plain iterable (a test's generator), taken
    a piece at a time in a worker thread rather than on the server's loop, as
    httpx's client takes it in the caller's thread: a generator that waits
    (a slow upload) or calls the client between its pieces (that the handler
    has the first) leaves the server running, and the request's timeout with
    it. Any other body as it is."""
    if isinstance(body, (str, bytes, bytearray, memoryview, Mapping, AsyncIterable)):
        return body
    if not isinstance(body, Iterable):
        return body  # (None; anything else refused as the async client refuses it)
    return _pulled(body)


async def _pulled(body: Iterable[bytes]) -> AsyncIterator[bytes]:
    pieces = iter(body)
    end = object()
    while (piece := await asyncio.to_thread(next, pieces, end)) is not end:
        yield cast(bytes, piece)


class _Raised:
    """A TimeoutError a coroutine raised, returned to the calling thread as it is."""

    __slots__ = ("exc",)

    def __init__(self, exc: TimeoutError) -> None:
        self.exc = exc


async def _as_raised(coroutine: Coroutine[Any, Any, T]) -> T | _Raised:
    """``coroutine``'s result; a TimeoutError it raises, returned (:class:`_Raised`).

    A future of ``run_coroutine_threadsafe()`` hands a TimeoutError over as a
    new one made of its message alone (asyncio's for concurrent.futures', one
    class since Python 3.11): the application's would lose its traceback and
    its cause, the client's own where it waited.
    """
    try:
        return await coroutine
    except TimeoutError as exc:
        return _Raised(exc)


class _Thread:
    """An event loop running in a thread of its own, and the one way into it."""

    def __init__(self, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None) -> None:
        self.loop = (loop_factory or asyncio.new_event_loop)()
        #: Its default executor (asyncio.to_thread()): its calls still under
        #: way at the end are waited for within a bound (stop()), not for ever.
        self.executor = DefaultExecutor()
        self.loop.set_default_executor(self.executor)
        #: What ended the loop before its time (SystemExit in a handler, say).
        self.died: BaseException | None = None
        #: Whether stop() began: the calls still waiting then are cancelled.
        self.stopping = False
        self.thread = self._start()

    def _start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="wsserver-sync-test-client", daemon=True)
        thread.start()
        return thread

    def revive(self) -> None:
        """Run the loop again if it died, so that what is left on it can be
        ended in order (the server closed, its handlers cancelled)."""
        if not self.thread.is_alive() and not self.loop.is_closed():
            self.thread = self._start()

    def _run(self) -> None:
        try:
            self.loop.run_forever()
        except BaseException as exc:  # (the thread's end: kept for the test to see)
            self.died = exc

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` in the loop; block until it is done; its result or its error.

        Raises:
            RuntimeError: called from the loop's own thread (a handler calling
                the client would wait for itself), or after :meth:`stop`; or still
                waiting when another thread's :meth:`stop` cancelled it.
        """
        if threading.current_thread() is self.thread:
            coroutine.close()
            raise RuntimeError(
                "a SyncTestClient is called from its server's own thread (a handler?): "
                "it would wait for itself"
            )
        if self.loop.is_closed():
            coroutine.close()
            raise RuntimeError("this SyncTestClient is closed")
        if not self.thread.is_alive():
            coroutine.close()
            self._gone()
        future = asyncio.run_coroutine_threadsafe(_as_raised(coroutine), self.loop)
        try:
            while True:
                # (Looking now and then whether the loop is still there: a
                # loop that died would never answer.)
                concurrent.futures.wait((future,), timeout=_LIVENESS)
                if future.done():
                    result = future.result()
                    if isinstance(result, _Raised):
                        raise result.exc
                    return result
                if not self.thread.is_alive():
                    self._gone()
        except concurrent.futures.CancelledError:
            if self.stopping:
                # (Cancelled with the loop's other tasks as the client closed,
                # from another thread: not asyncio's bare CancelledError, a
                # BaseException, in a thread that awaited nothing.)
                raise RuntimeError(
                    "the SyncTestClient closed while this call waited (closed from another "
                    "thread): make calls before it closes"
                ) from None
            raise asyncio.CancelledError() from None  # (what the call awaited was cancelled)
        except BaseException:
            future.cancel()  # (interrupted while waiting: Ctrl-C; or the loop died)
            raise

    def _gone(self) -> NoReturn:
        raise RuntimeError(f"the SyncTestClient's event loop stopped: {self.died!r}") from self.died

    def stop(self, wait: float | None = DEFAULT_TIMEOUT) -> None:
        """End the loop and the thread: the tasks still there are cancelled
        (and awaited, ``wait`` seconds at most), as ``asyncio.run()`` does,
        then async generators and the default executor are closed.

        A task still running ``wait`` seconds after its cancellation (it
        caught the CancelledError) is left pending, with a warning, as the
        server leaves one at its shutdown: waited for, it would hang the test.
        So is a call of ``asyncio.to_thread()`` still running after what is
        left of those seconds (a thread cannot be cancelled): left to run on.
        """
        loop = self.loop
        if loop.is_closed():
            return

        async def wind_up() -> None:
            current = asyncio.current_task()
            tasks = [task for task in asyncio.all_tasks() if task is not current]
            for task in tasks:
                task.cancel()
            if tasks:
                done, running = await asyncio.wait(tasks, timeout=wait)
                for task in done:
                    if not task.cancelled():
                        task.exception()  # (retrieved, as gather() would: not "never retrieved")
                for task in running:
                    logger.warning(
                        "SyncTestClient: the task of %s went on when cancelled (it caught "
                        "the CancelledError); left pending as the client's loop closes",
                        _what_runs(task),
                    )
            await loop.shutdown_asyncgens()

        end = None if wait is None else time.monotonic() + wait
        self.stopping = True
        try:
            self.revive()
            self.run(wind_up())
            # (Not loop.shutdown_default_executor(): it joins the executor's
            # threads without a bound.) Calls not started are dropped.
            self.executor.shutdown(wait=False, cancel_futures=True)
            calls = self.executor.calls()
            left = None if end is None else max(end - time.monotonic(), 0)
            _, running = concurrent.futures.wait(calls, timeout=left)
            if running:
                logger.warning(
                    "SyncTestClient: %d call%s of asyncio.to_thread() or run_in_executor() "
                    "still running %s s after the tasks' cancellation; left to run on as the "
                    "client's loop closes",
                    len(running),
                    "s" if len(running) > 1 else "",
                    f"{wait:g}",
                )
        finally:
            if self.thread.is_alive():
                loop.call_soon_threadsafe(loop.stop)
            self.thread.join()
            loop.close()


class SyncWebSocket:
    """A :class:`~wsserver.testing.ClientWebSocket` for blocking tests: the same
    calls, each returning once it is done. ``with`` it to close it (1000) at
    the end (aborted if the block raised; then, as ``async with``, the
    application's failure on it is raised); ``for message in ws`` ends on a
    normal close.

    Its state (``close_code``, ``close_reason``, ``open``, ``closed``,
    ``subprotocol``, ``compression``, ``response``, ``pings_received``,
    ``bytes_sent``, ``bytes_received``, ``path``) is the async one's
    (``ws.ws``), read as it is; so is its ``timeout``, which a test may set.
    """

    def __init__(
        self,
        ws: ClientWebSocket,
        thread: _Thread,
        connecting: _Connecting,
        owner: SyncTestClient | None = None,
    ) -> None:
        self.ws = ws
        self._thread = thread
        #: Its client, kept from being dropped (and so closed) while the
        #: WebSocket is used: a fixture's ``return SyncTestClient(app).websocket(path)``.
        self._owner = owner
        #: What leaves the block as the async client's ``async with`` does.
        self._connecting = connecting

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    @property
    def close_reason(self) -> str | None:
        return self.ws.close_reason

    @property
    def open(self) -> bool:
        return self.ws.open

    @property
    def closed(self) -> bool:
        return self.ws.closed

    @property
    def subprotocol(self) -> str | None:
        return self.ws.subprotocol

    @property
    def compression(self) -> str | None:
        return self.ws.compression

    @property
    def response(self) -> ClientResponse:
        return self.ws.response

    @property
    def pings_received(self) -> int:
        return self.ws.pings_received

    @property
    def bytes_sent(self) -> int:
        return self.ws.bytes_sent

    @property
    def bytes_received(self) -> int:
        return self.ws.bytes_received

    @property
    def path(self) -> str:
        return self.ws.path

    @property
    def timeout(self) -> float | None:
        """The WebSocket's own timeout, bounding its every later wait (a
        call's ``timeout`` aside); settable, as the async one's."""
        return self.ws.timeout

    @timeout.setter
    def timeout(self, timeout: float | None) -> None:
        self.ws.timeout = timeout

    def send(self, message: str | BytesLike, *, compress: bool = True) -> None:
        """Send a text (``str``) or binary message (:meth:`ClientWebSocket.send`)."""
        self._thread.run(self.ws.send(message, compress=compress))

    def send_text(self, data: str) -> None:
        self._thread.run(self.ws.send_text(data))

    def send_bytes(self, data: BytesLike) -> None:
        self._thread.run(self.ws.send_bytes(data))

    def send_json(self, data: Any, mode: JsonMode = "text") -> None:
        self._thread.run(self.ws.send_json(data, mode))

    def send_fragments(
        self, fragments: Iterable[str | BytesLike], *, compress: bool = True
    ) -> None:
        self._thread.run(self.ws.send_fragments(list(fragments), compress=compress))

    def receive(self, timeout: float | None = None) -> str | bytes:
        """The next message (:meth:`ClientWebSocket.receive`; ``TimeoutError``,
        ``ConnectionClosed``)."""
        return self._thread.run(self.ws.receive(timeout))

    def receive_text(self, timeout: float | None = None) -> str:
        return self._thread.run(self.ws.receive_text(timeout))

    def receive_bytes(self, timeout: float | None = None) -> bytes:
        return self._thread.run(self.ws.receive_bytes(timeout))

    def receive_json(self, timeout: float | None = None, *, mode: JsonMode | None = None) -> Any:
        return self._thread.run(self.ws.receive_json(timeout, mode=mode))

    def ping(
        self,
        data: str | BytesLike | None = None,
        *,
        timeout: float | None = None,
    ) -> float:
        """A ping's round trip to its pong, in seconds (:meth:`ClientWebSocket.ping`)."""
        return self._thread.run(self.ws.ping(data, timeout=timeout))

    def close(
        self, code: int = 1000, reason: str | None = "", *, timeout: float | None = None
    ) -> None:
        """The closing handshake (:meth:`ClientWebSocket.close`)."""
        self._thread.run(self.ws.close(code, reason, timeout=timeout))

    def wait_closed(self, timeout: float | None = None) -> None:
        self._thread.run(self.ws.wait_closed(timeout))

    def __iter__(self) -> Iterator[str | bytes]:
        while True:
            try:
                yield self._thread.run(self.ws.__anext__())
            except StopAsyncIteration:
                return

    def __enter__(self) -> SyncWebSocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # (Closed, or aborted if the block failed; then the app's failure raised.)
        self._thread.run(self._connecting.__aexit__(exc_type, exc, traceback))

    def __repr__(self) -> str:
        return f"<SyncWebSocket of {self.ws!r}>"


def _cancelled_wait(client: TestClient | None) -> float:
    """How long the tasks left on a client's loop as it closes may take to end
    once cancelled: the client's timeout or ``shutdown_timeout``, the shorter,
    but never less than the server gives its own cancelled handlers
    (CANCELLED_GRACE): with none, a task whose cleanup awaits once would be
    taken for one that caught its cancellation, and left with it undone."""
    if client is None:
        return DEFAULT_TIMEOUT
    limit = client.server.config.shutdown_timeout
    wait = limit if client.timeout is None else min(client.timeout, limit)
    return max(wait, CANCELLED_GRACE)


def _close_dropped(thread: _Thread, client: TestClient | None) -> None:
    """Close a started SyncTestClient that nothing closed: dropped (a test's
    ``client = SyncTestClient(app)``), or at the interpreter's exit (after its
    other threads ended, which may still call it; threads may no longer start
    then: an on_shutdown hook's ``asyncio.to_thread()`` fails, so close a
    client whose hooks need one). Gracefully; the application's failures no
    call raised are in the log (raised here they would reach nobody)."""
    if threading.current_thread() is thread.thread:
        # Dropped in a cycle, the garbage collector running on the client's
        # own loop: that loop cannot wait for itself. Closed from a thread.
        threading.Thread(target=_close_dropped, args=(thread, client), daemon=True).start()
        return
    try:
        if client is not None:
            thread.revive()
            thread.run(client.close(raise_failures=False))
    except Exception:
        pass  # (closed as far as it could be; what failed was logged)
    finally:
        with contextlib.suppress(Exception):
            thread.stop(_cancelled_wait(client))


#: What started a SyncTestClient's run, as its error names it.
_STARTS = {"call": "a call", "block": "a with block", "start": "start()"}


class SyncTestClient:
    """:class:`~wsserver.testing.TestClient` for tests that are plain functions.

    ``with SyncTestClient(app, **settings) as client:`` starts a thread with
    an event loop of its own (``loop_factory()``: ``asyncio.new_event_loop``
    unless given, say ``uvloop.new_event_loop``) and the server in it
    (``serve(app, listen=False, **settings)``, an ASGI app's lifespan
    included); the end of the block closes the server (gracefully; at once
    when the block raised), then the loop and the thread.

    Every request method of ``TestClient`` is here with the same arguments
    (``get``, ``post``, ``request``, ...), returning the
    :class:`~wsserver.testing.ClientResponse`; :meth:`websocket` returns a
    :class:`SyncWebSocket`, already open. ``cookies`` is the client's own
    dict (read as each request starts); ``server`` the
    :class:`~wsserver.Server`, to look at: what changes it (or awaits) goes
    through :meth:`call`, on the server's loop.

    Without ``with`` (``client = SyncTestClient(app)`` at a module's top, as
    FastAPI's documentation shows with Starlette's client), the first call
    starts it, without an ASGI app's lifespan unless the settings name
    ``lifespan`` (as Starlette's client runs it only in a ``with`` block),
    and it is closed by :meth:`close`, or once dropped, or when the
    interpreter exits. As Starlette's, a client runs again after it ended:
    a next call starts it (without the lifespan), a ``with`` block too (with
    it; a run a call began is closed first), each run a new server, the
    cookies kept (``cookies`` one dict for all its runs, as httpx's).
    """

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(
        self,
        app: Any,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        cookies: Mapping[str, str] | None = None,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
        **settings: Any,
    ) -> None:
        self._app = app
        self._arguments: dict[str, Any] = {"timeout": timeout, "cookies": cookies, **settings}
        self._headers = DefaultHeaders()
        self._loop_factory = loop_factory
        self._thread: _Thread | None = None
        self._client: TestClient | None = None
        #: How the run under way began: "call" (a first call: no lifespan
        #: unless the settings name it), "block" (with), "start"; None: none runs.
        self._run: str | None = None
        #: Closes it if it is dropped, or at the interpreter's exit, unclosed.
        self._finalizer: weakref.finalize[Any, Any] | None = None
        #: Held while it starts or stops: calls from other threads wait for that.
        self._starting = threading.RLock()

    # ---------------------------------------------------------- the block

    def start(self) -> SyncTestClient:
        """Start the loop's thread and the server in it (what ``with`` does first).

        Raises:
            RuntimeError: it runs already.
        """
        with self._starting:
            return self._start("start")

    def _start(self, how: str) -> SyncTestClient:
        if self._run is not None:
            raise RuntimeError(
                f"this SyncTestClient runs already (started by {_STARTS[self._run]}): "
                "close() it first"
            )
        arguments = dict(self._arguments)
        if (
            how == "call"
            and "lifespan" not in arguments
            and "config" not in arguments
            and not isinstance(self._app, Router)  # (its hooks run: no lifespan to leave out)
        ):
            arguments["lifespan"] = "off"  # (Starlette's client runs it in a block only)
        # (The one dict of every run, as httpx keeps its client.cookies: one
        # read before a run, or during one, is the one sent and kept after.)
        cookies = arguments.pop("cookies", None)
        if not isinstance(cookies, Cookies):
            cookies = Cookies(cookies or {})
        thread = self._thread = _Thread(self._loop_factory)

        async def start() -> TestClient:
            client = TestClient(self._app, **arguments)
            client._cookies = cookies
            client._headers = self._headers  # (one for every run, as the cookies)
            self._client = client  # (closed on the way out even if start() fails)
            return await client.start()

        try:
            thread.run(start())
        except BaseException:
            with contextlib.suppress(Exception):  # (the start's error is the one to see)
                self._close(failed=True)
            raise
        # (Not self in its arguments: the finalizer would keep it alive.)
        self._finalizer = weakref.finalize(self, _close_dropped, thread, self._client)
        self._run = how
        return self

    def close(self) -> None:
        """Close the server (gracefully), the loop and its thread (what ``with``
        does last). A next call, or block, starts it again."""
        with self._starting:
            self._close(failed=False)

    def __enter__(self) -> SyncTestClient:
        with self._starting:
            if self._run == "call":
                # Started by a call (a module's client): the block runs it
                # again, with the lifespan, as Starlette's client runs it in
                # each block.
                self._close(failed=False)
            return self._start("block")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._starting:
            self._close(failed=exc_type is not None)

    def _close(self, failed: bool) -> None:
        thread, client = self._thread, self._client
        self._run = None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if client is not None:
            # (What the next run starts with: cookies kept, as a browser's.)
            self._arguments["cookies"] = client.cookies
            self._arguments["timeout"] = client.timeout
            self._arguments["follow_redirects"] = client.follow_redirects
        self._client = None
        if thread is None:
            return
        try:
            if client is not None:
                thread.revive()
                if failed or thread.died:
                    thread.run(
                        client.close(0, raise_failures=False)
                    )  # (the block's error is the one to see)
                else:
                    thread.run(client.close())
        finally:
            self._thread = None
            thread.stop(_cancelled_wait(client))

    @property
    def _running(self) -> tuple[TestClient, _Thread]:
        """The client and its thread; a call when none runs starts it (a module's
        client, closed once dropped or at the interpreter's exit)."""
        client, thread = self._client, self._thread
        if self._run is None or client is None or thread is None:
            with self._starting:  # (another thread's start under way: waited for)
                if self._run is None:
                    self._start("call")
                client, thread = self._client, self._thread
                assert client is not None and thread is not None
        return client, thread

    # ------------------------------------------------------------ its parts

    @property
    def app(self) -> Any:
        """The application given (as :attr:`TestClient.app`), whether or not it runs."""
        return self._app

    @property
    def server(self) -> Server:
        """The server of the run under way (a new one each run)."""
        if self._run is None:
            raise RuntimeError(
                "the server runs once the client starts: a with block, start(), or a first call"
            )
        return self._running[0].server

    # (When it does not run, cookies, timeout and follow_redirects are what it will start with:
    # setting them does not start it, and a with block may come after.)

    @property
    def headers(self) -> DefaultHeaders:
        """As :attr:`TestClient.headers`: one for every run, kept between them."""
        return self._headers

    @headers.setter
    def headers(self, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        headers = DefaultHeaders(headers)
        # (Under the lock: a run another thread starts has them, its client
        # made with those before; one it closes is not started again.)
        with self._starting:
            self._headers = headers
            if self._client is not None:
                self._client._headers = headers

    @property
    def cookies(self) -> Cookies:
        """As :attr:`TestClient.cookies`."""
        if self._run is None:
            cookies = self._arguments.get("cookies")
            if not isinstance(cookies, Cookies):
                cookies = self._arguments["cookies"] = Cookies(cookies or {})
            return cookies
        return self._running[0].cookies

    @cookies.setter
    def cookies(self, cookies: Mapping[str, str]) -> None:
        if self._run is None:
            self._arguments["cookies"] = Cookies(cookies)
        else:
            self._running[0].cookies = cookies

    @property
    def timeout(self) -> float | None:
        if self._run is None:
            return cast(float | None, self._arguments.get("timeout"))
        return self._running[0].timeout

    @timeout.setter
    def timeout(self, timeout: float | None) -> None:
        if self._run is None:
            self._arguments["timeout"] = timeout
        else:
            self._running[0].timeout = timeout

    @property
    def follow_redirects(self) -> bool:
        """As :attr:`TestClient.follow_redirects` (httpx's, and so Starlette's, client has it)."""
        if self._run is None:
            return bool(self._arguments.get("follow_redirects", False))
        return self._running[0].follow_redirects

    @follow_redirects.setter
    def follow_redirects(self, follow_redirects: bool) -> None:
        if self._run is None:
            self._arguments["follow_redirects"] = follow_redirects
        else:
            self._running[0].follow_redirects = follow_redirects

    @overload
    def call(self, function: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T: ...

    @overload
    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``function(*args, **kwargs)`` on the server's loop and return its
        result: awaited when it is awaitable (``client.call(hub.publish,
        "room", "hi")``; a task, a future), as it is otherwise.

        Raises:
            TimeoutError: what it gave did not end within the client's
                ``timeout`` (as any of its waits; None: for ever).
        """
        client, thread = self._running

        async def run() -> Any:
            result = function(*args, **kwargs)
            if inspect.isawaitable(result):
                async with _within(client.timeout, "client.call() did not end"):
                    result = await result
            return result

        return thread.run(run())

    # ------------------------------------------------------------ requests

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Body = None,
        content: Body = None,
        json: Any = None,
        data: FormArg = None,
        files: FilesArg = None,
        headers: HeadersArg = None,
        cookies: CookiesArg = None,
        params: ParamsArg = None,
        auth: tuple[str | bytes, str | bytes] | None = None,
        timeout: float | None = None,
        follow_redirects: bool | None = None,
    ) -> ClientResponse:
        """One HTTP/1.1 request on a new connection (:meth:`TestClient.request`).

        A body of pieces given as a plain iterable (a generator) is taken a
        piece at a time in a worker thread, as httpx's client takes it in
        the caller's, not on the server's loop."""
        client, thread = self._running
        return thread.run(
            client.request(
                method,
                path,
                body=_off_the_loop(body),
                content=_off_the_loop(content),
                json=json,
                data=data,
                files=files,
                headers=headers,
                cookies=cookies,
                params=params,
                auth=auth,
                timeout=timeout,
                follow_redirects=follow_redirects,
            )
        )

    @contextlib.contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        body: Body = None,
        content: Body = None,
        json: Any = None,
        data: FormArg = None,
        files: FilesArg = None,
        headers: HeadersArg = None,
        cookies: CookiesArg = None,
        params: ParamsArg = None,
        auth: tuple[str | bytes, str | bytes] | None = None,
        timeout: float | None = None,
    ) -> Iterator[StreamedResponse]:
        """``with client.stream("GET", "/events") as response:`` (:meth:`TestClient.stream`):
        the body read as it comes, by ``response.iter_lines()``, ``iter_bytes()``,
        ``iter_text()``, ``iter_raw()`` or ``read()``."""
        client, thread = self._running
        streaming = client.stream(
            method,
            path,
            body=_off_the_loop(body),
            content=_off_the_loop(content),
            json=json,
            data=data,
            files=files,
            headers=headers,
            cookies=cookies,
            params=params,
            auth=auth,
            timeout=timeout,
        )
        response = thread.run(streaming.__aenter__())
        response.runner = thread.run
        try:
            yield response
        except BaseException as exc:
            if not thread.run(streaming.__aexit__(type(exc), exc, exc.__traceback__)):
                raise
        else:
            thread.run(streaming.__aexit__(None, None, None))

    def get(self, path: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """``GET path``: :meth:`request`'s keyword arguments."""
        return self.request("GET", path, **options)

    def head(self, path: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """``HEAD path``: :meth:`request`'s keyword arguments."""
        return self.request("HEAD", path, **options)

    def options(self, path: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """``OPTIONS path``: :meth:`request`'s keyword arguments."""
        return self.request("OPTIONS", path, **options)

    def post(self, path: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """``POST path``: :meth:`request`'s keyword arguments."""
        return self.request("POST", path, **options)

    def put(self, path: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """``PUT path``: :meth:`request`'s keyword arguments."""
        return self.request("PUT", path, **options)

    def patch(self, path: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """``PATCH path``: :meth:`request`'s keyword arguments."""
        return self.request("PATCH", path, **options)

    def delete(self, path: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """``DELETE path``: :meth:`request`'s keyword arguments."""
        return self.request("DELETE", path, **options)

    def websocket(
        self,
        path: str,
        *,
        headers: HeadersArg = None,
        subprotocols: Iterable[str] | None = None,
        compression: Literal["deflate"] | None = "deflate",
        params: ParamsArg = None,
        timeout: float | None = None,
        cookies: CookiesArg = None,
    ) -> SyncWebSocket:
        """Open a WebSocket to ``path`` (:meth:`TestClient.websocket`); ``with``
        it to close it at the end.

        Raises:
            HandshakeDenied: the server answered with an HTTP response instead
                of the 101.
        """
        client, thread = self._running
        connecting = client.websocket(
            path,
            headers=headers,
            subprotocols=subprotocols,
            compression=compression,
            params=params,
            timeout=timeout,
            cookies=cookies,
        )

        return SyncWebSocket(thread.run(connecting.__aenter__()), thread, connecting, self)


_say_ported_names(SyncTestClient, SyncWebSocket)
