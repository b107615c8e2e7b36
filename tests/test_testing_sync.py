"""SyncTestClient: the test client for plain (not async) tests, its server in a thread of its own.

Every test here is a plain function, as a user's would be without pytest-asyncio.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import contextlib
import gc
import logging
import re
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

from examples import chat, echo, secure
from wsserver import ConnectionClosedError, ConnectionClosedOK, Request, Router, Server, WebSocket
from wsserver.errors import LifespanFailure
from wsserver.protocol.http import Headers
from wsserver.response import Response, text
from wsserver.testing import HandshakeDenied, TestClient
from wsserver.testing_sync import SyncTestClient, SyncWebSocket

from .test_testing import (
    Bug,
    _basic_auth_app,
    _redirecting_routes,
    failing_routes,
    peer_left_routes,
)

THREAD_NAME = "wsserver-sync-test-client"


def client_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


@pytest.fixture(autouse=True)
def _no_thread_left() -> Iterator[None]:
    chat.rooms.clear()
    yield
    chat.rooms.clear()
    assert not client_threads(), "a SyncTestClient left its thread running"


def test_echo_and_http() -> None:
    with SyncTestClient(echo.routes) as client:
        with client.websocket("/ws") as ws:
            for message in ("hello", b"\x00\xff", "é" * 70000):
                ws.send(message)
                assert ws.receive() == message
            ws.send_fragments(["a", "b"])
            assert ws.receive_text() == "ab"
            assert ws.ping() >= 0 and ws.open
        assert ws.close_code == 1000 and ws.closed
        page = client.get("/")
        assert page.status == 200 and 'new URL("ws", location.href)' in page.text
        assert client.head("/").body == b""
        assert client.get("/nowhere").status == 404


def test_content_and_auth_as_the_async_client_takes_them() -> None:
    import base64

    with SyncTestClient(_basic_auth_app(), lifespan="off") as client:
        r = client.post("/raw", content=b"xyz", auth=("u", "p"))
        assert r.json() == {"body": "xyz", "auth": "Basic " + base64.b64encode(b"u:p").decode()}
        with client.stream("POST", "/raw", content=b"s", auth=("v", "w")) as streamed:
            assert b'"body":"s"' in streamed.read()


def test_cookies_set_before_and_while_running() -> None:
    from .test_testing import _session_routes

    client = SyncTestClient(_session_routes())
    client.cookies.set("lang", "fr")  # (not running yet: for the run to come)
    with client:
        assert client.get("/me").json() == {"lang": "fr"}
        client.cookies.set("b", "2")
        client.cookies.delete("lang")
        assert client.get("/me").json() == {"b": "2"}
    client.cookies = {"c": "3"}
    assert client.get("/me").json() == {"c": "3"}
    client.close()


def test_cookies_of_one_request_as_httpx_s() -> None:
    from .test_testing import _session_routes

    with SyncTestClient(_session_routes(), cookies={"a": "1"}) as client:
        assert client.get("/me", cookies={"a": "2", "b": "3"}).json() == {"a": "2", "b": "3"}
        assert client.request("GET", "/me", cookies={"c": "4"}).json() == {"a": "1", "c": "4"}
        with client.stream("GET", "/me", cookies={"d": "5"}) as streamed:
            assert streamed.read() == b'{"a": "1", "d": "5"}'
        with client.websocket("/ws", cookies={"session": "s3cret", "theme": "tea"}) as ws:
            assert ws.receive() == "hello, tea"
        assert client.cookies == {"a": "1"}


def test_two_clients_in_a_chat_room() -> None:
    with (
        SyncTestClient(chat.routes) as client,
        client.websocket("/ws/chat/lobby?user=ann") as ann,
    ):
        assert ann.receive_json()["clients"] == 1
        with client.websocket("/ws/chat/lobby?user=bob") as bob:
            assert bob.receive_json()["clients"] == 2
            assert ann.receive_json()["user"] == "bob"
            bob.send_json({"type": "chat", "message": "hi ann"})
            said = {"type": "chat", "message": "hi ann", "user": "bob", "room": "lobby"}
            assert ann.receive_json() == said and bob.receive_json() == said
            rooms = client.get("/api/rooms").json()
            assert rooms == {"rooms": ["lobby"], "total_clients": 2}
        assert ann.receive_json()["type"] == "user_left"


def test_a_denial_and_a_close_code_are_raised_in_the_test() -> None:
    with SyncTestClient(secure.routes) as client:
        with pytest.raises(HandshakeDenied) as caught:
            client.websocket("/ws/secure/handshake")
        assert caught.value.status == 401
        with client.websocket("/ws/secure") as ws:
            with pytest.raises(ConnectionClosedError):
                ws.receive()
            assert (ws.close_code, ws.close_reason) == (1008, "Authentication required")


def test_the_application_s_exception_is_raised_in_the_test() -> None:
    routes = failing_routes()
    with SyncTestClient(routes) as client:
        with pytest.raises(Bug, match="in an HTTP handler"):
            client.get("/raises")
        with client.websocket("/ws") as ws:
            ws.send("boom")
            with pytest.raises(Bug, match="in a WebSocket handler"):
                ws.receive()
    with (
        pytest.raises(Bug, match="in a WebSocket handler"),
        SyncTestClient(routes) as client,
        client.websocket("/ws") as ws,
    ):
        ws.send("boom")  # and the block ends: the failure is raised there
    with SyncTestClient(routes, raise_server_exceptions=False) as client:
        assert client.get("/raises").status == 500
        with client.websocket("/ws") as ws:
            ws.send("boom")
            with pytest.raises(ConnectionClosedError):
                ws.receive()
            assert ws.close_code == 1011


def test_a_timeout_error_reaches_the_test_as_it_was_raised() -> None:
    # (asyncio hands a TimeoutError from its loop to another thread as a new
    # one, made of its message alone: the application's, its traceback and
    # cause lost; the client's own, where it waited.)
    routes = Router()

    async def lookup() -> None:
        raise TimeoutError("the database did not answer")

    @routes.get("/lookup")
    async def handler(request: Request) -> Response:
        try:
            await lookup()
        except TimeoutError as exc:
            raise TimeoutError("the lookup failed") from exc
        return text("found")

    @routes.websocket("/quiet")
    async def quiet(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    with SyncTestClient(routes) as client:
        with pytest.raises(TimeoutError, match="the lookup failed") as caught:
            client.get("/lookup")
        assert isinstance(caught.value.__cause__, TimeoutError)
        assert str(caught.value.__cause__) == "the database did not answer"
        assert "handler" in [frame.name for frame in caught.traceback]
        with client.websocket("/quiet") as ws:
            with pytest.raises(TimeoutError, match="no message came") as caught:
                ws.receive(timeout=0.05)
            assert "receive" in [frame.name for frame in caught.traceback]


def test_iteration_timeouts_and_cookies() -> None:
    routes = Router()

    @routes.websocket("/count")
    async def count(request: Request, ws: WebSocket) -> None:
        for i in range(3):
            await ws.send(str(i))

    @routes.websocket("/quiet")
    async def quiet(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    @routes.get("/login")
    async def login(request: Request) -> Response:
        response = text("in")
        response.set_cookie("session", "abc")
        return response

    @routes.get("/me")
    async def me(request: Request) -> Response:
        return text(request.cookies.get("session", "-"))

    with SyncTestClient(routes) as client:
        with client.websocket("/count") as ws:
            assert list(ws) == ["0", "1", "2"]
        with client.websocket("/quiet") as ws:
            with pytest.raises(TimeoutError):
                ws.receive(timeout=0.05)
            ws.send("still here")
            assert ws.receive() == "still here"
        assert client.get("/me").text == "-"
        client.get("/login")
        assert client.cookies == {"session": "abc"}
        assert client.get("/me").text == "abc"


def test_iteration_raises_the_application_s_connection_closed_ok() -> None:
    # (As the async client's: not taken for this connection's normal close.)
    with SyncTestClient(peer_left_routes()) as client:
        with client.websocket("/room"):
            pass
        ws = client.websocket("/room")
        ws.send("hi")
        with pytest.raises(ConnectionClosedOK, match="1000"):
            for _ in ws:
                pass
        assert ws.close_code == 1011


def test_a_streamed_response_closes_as_httpx_s() -> None:
    from .test_testing import _streaming_routes

    with SyncTestClient(_streaming_routes()) as client:
        with client.stream("GET", "/ticks") as response:
            assert not response.is_closed
            response.close()
            assert response.is_closed
            with pytest.raises(RuntimeError, match="closed"):
                response.read()
        with client.stream("GET", "/ticks") as whole:
            assert whole.read().endswith(b"last") and whole.is_closed
            whole.close()
            assert whole.num_bytes_downloaded == len(whole.content)


def test_an_asgi_app_s_lifespan_runs_in_the_block() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
        events.append("startup")
        yield {"greeting": "hello"}
        events.append("shutdown")

    async def home(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse(request.state.greeting)

    async def ws_echo(ws: StarletteWebSocket) -> None:
        await ws.accept()
        await ws.send_text(await ws.receive_text())
        await ws.close(4000)

    app = Starlette(
        routes=[Route("/", home), WebSocketRoute("/ws", ws_echo)],
        lifespan=lifespan,
    )
    with SyncTestClient(app) as client:
        assert events == ["startup"]
        assert client.get("/").text == "hello"
        with client.websocket("/ws") as ws:
            ws.send_text("hi")
            assert ws.receive_text() == "hi"
            ws.wait_closed()
            assert ws.close_code == 4000
    assert events == ["startup", "shutdown"]


def test_call_runs_on_the_server_s_loop() -> None:
    routes = Router()
    seen: list[Server] = []

    @routes.on_startup
    async def started(server: Server) -> None:
        seen.append(server)

    async def later(value: str) -> tuple[str, str]:
        await asyncio.sleep(0)
        return value, threading.current_thread().name

    with SyncTestClient(routes) as client:
        assert seen == [client.server]
        assert client.call(later, "x") == ("x", THREAD_NAME)
        assert client.call(threading.current_thread).name == THREAD_NAME
        assert client.call(lambda: client.server.closing) is False


def test_a_first_call_runs_a_router_s_hooks_without_a_lifespan_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The client leaves an ASGI app's lifespan out of a run a call starts
    # (lifespan="off", as Starlette's client); a Router's hooks run there
    # all the same, and that setting's warning to a Router is not the test's.
    routes = Router()
    events: list[str] = []

    @routes.on_startup
    async def started(server: Server) -> None:
        events.append("startup")

    @routes.get("/")
    async def root(request: Request) -> Response:
        return text("ok")

    client = SyncTestClient(routes)
    try:
        assert client.get("/").text == "ok"
    finally:
        client.close()
    assert events == ["startup"]
    assert not [r for r in caplog.records if "lifespan" in r.getMessage()]


def test_a_handler_calling_the_client_gets_an_error_not_a_deadlock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    routes = Router()
    holder: list[SyncTestClient] = []

    @routes.get("/inner")
    async def inner(request: Request) -> Response:
        try:
            holder[0].get("/other")
        except RuntimeError as exc:
            return text(str(exc))
        return text("no error")

    with SyncTestClient(routes, timeout=3) as client:
        holder.append(client)
        assert "its server's own thread" in client.get("/inner").text


def test_a_block_that_raises_cancels_the_handlers_at_once() -> None:
    routes = Router()
    cancelled = threading.Event()

    @routes.websocket("/forever")
    async def forever(request: Request, ws: WebSocket) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()

    started = time.monotonic()
    with pytest.raises(ZeroDivisionError), SyncTestClient(routes, timeout=30) as client:
        client.websocket("/forever")  # left open on purpose
        1 / 0  # noqa: B018
    assert cancelled.is_set() and time.monotonic() - started < 10


def test_a_failed_startup_raises_and_leaves_no_thread(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL)
    routes = Router()

    @routes.on_startup
    async def broken(server: Server) -> None:
        raise RuntimeError("no database")

    with pytest.raises(LifespanFailure, match="no database"), SyncTestClient(routes):
        pass


def test_a_startup_that_never_completes_raises_a_timeout_and_leaves_no_thread() -> None:
    @contextlib.asynccontextmanager
    async def waits_for_a_database(app: Starlette) -> AsyncIterator[None]:
        await asyncio.Event().wait()  # (never set: the test hung for ever)
        yield

    started = time.monotonic()
    with (
        pytest.raises(TimeoutError, match="startup did not complete"),
        SyncTestClient(Starlette(lifespan=waits_for_a_database), timeout=0.2),
    ):
        pass
    assert time.monotonic() - started < 2
    assert client_threads() == []


def test_without_a_block_the_first_call_starts_it_as_starlette_s_does() -> None:
    seen: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        seen.append("startup")
        yield
        seen.append("shutdown")

    async def home(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse("home")

    async def echo_once(websocket: StarletteWebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    app = Starlette(routes=[Route("/", home), WebSocketRoute("/ws", echo_once)], lifespan=lifespan)
    client = SyncTestClient(app)  # (as at a test module's top)
    assert not client_threads()  # (nothing runs until it is used)
    assert client.get("/").text == "home"
    with client.websocket("/ws") as ws:
        ws.send("hi")
        assert ws.receive() == "hi"
    assert len(client_threads()) == 1
    client.close()
    assert seen == []  # no lifespan without a block, as with Starlette's client
    assert not client_threads()
    # As Starlette's client: it runs again, a call without the lifespan, a
    # block with it (a run a call began closed first: a module's client that
    # a fixture then enters).
    assert client.get("/").text == "home" and seen == []
    with client:
        assert seen == ["startup"] and client.get("/").text == "home"
        with pytest.raises(RuntimeError, match="runs already"), client:
            pass
    assert seen == ["startup", "shutdown"] and not client_threads()
    assert client.get("/").text == "home" and len(client_threads()) == 1
    client.close()
    assert seen == ["startup", "shutdown"]
    # The settings naming it, it runs.
    client = SyncTestClient(app, lifespan="on")
    assert client.get("/").status == 200 and seen == ["startup", "shutdown", "startup"]
    client.close()
    assert seen == ["startup", "shutdown", "startup", "shutdown"]


def test_a_client_started_by_a_call_and_dropped_is_closed() -> None:
    # (Found by an audit: each test's own client = SyncTestClient(app), as
    # Starlette's documentation writes it, kept its thread, loop, server and
    # descriptors until the interpreter's exit: 80 tests ran out of them
    # under macOS's limit of 256.)
    def a_test() -> None:
        client = SyncTestClient(echo.routes)
        assert client.get("/").status == 200
        assert len(client_threads()) == 1

    for _ in range(3):
        a_test()
        assert not client_threads()


def test_a_websocket_keeps_its_client_running_while_it_is_used() -> None:
    # A fixture's `return SyncTestClient(app).websocket("/ws")` dropped the
    # client as it returned: closed as dropped, and the WebSocket's first
    # call said "this SyncTestClient is closed", which no one had closed.
    def a_fixture() -> SyncWebSocket:
        client = SyncTestClient(echo.routes)
        return client.websocket("/ws")

    ws = a_fixture()
    gc.collect()
    ws.send("hi")
    assert ws.receive() == "hi"
    ws.close()
    assert len(client_threads()) == 1
    del ws  # (now the client is dropped: closed)
    gc.collect()
    assert not client_threads()


def test_first_calls_from_several_threads_share_one_start() -> None:
    # (Found by a review: all but one said the client was closed.)
    client = SyncTestClient(echo.routes)
    barrier = threading.Barrier(6)
    results: list[object] = []

    def call() -> None:
        barrier.wait()
        try:
            results.append(client.get("/").status)
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(client_threads()) == 1
    client.close()
    assert results == [200] * 6


def test_a_client_dropped_in_a_cycle_collected_on_its_own_loop_is_closed() -> None:
    # (Found by a review: the finalizer, run by the garbage collector on the
    # client's own loop thread, could not wait for that loop: the server was
    # left unclosed, its lifespan's shutdown never ran.)
    events: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            events.append("startup")
            await send({"type": "lifespan.startup.complete"})
            await receive()
            events.append("shutdown")
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    client = SyncTestClient(app, lifespan="on")
    assert client.get("/").status == 204
    loop = client._running[1].loop
    client.cycle = client  # type: ignore[attr-defined]
    del client
    collected = threading.Event()
    loop.call_soon_threadsafe(lambda: (gc.collect(), collected.set()))
    assert collected.wait(5)
    deadline = time.monotonic() + 5
    while client_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert events == ["startup", "shutdown"] and not client_threads()


def test_what_it_starts_with_is_set_before_it_starts() -> None:
    client = SyncTestClient(echo.routes, cookies={"a": "1"})
    client.cookies["b"] = "2"
    client.timeout = 2
    assert (client.cookies, client.timeout) == ({"a": "1", "b": "2"}, 2)
    with pytest.raises(RuntimeError, match="once the client starts"):
        _ = client.server
    assert not client_threads()  # (none of that started it)
    with client:
        assert client.cookies == {"a": "1", "b": "2"} and client.timeout == 2
        assert client.server.closing is False


def test_a_client_left_open_is_closed_when_the_interpreter_exits(tmp_path: Path) -> None:
    script = tmp_path / "module_level.py"
    script.write_text(
        "import threading\n"
        "from wsserver import Router\n"
        "from wsserver.response import text\n"
        "from wsserver.testing_sync import SyncTestClient\n"
        "routes = Router()\n"
        "@routes.get('/')\n"
        "async def home(request):\n"
        "    return text('home')\n"
        "@routes.on_shutdown\n"
        "async def bye(server):\n"
        "    print('shut down', flush=True)\n"
        "client = SyncTestClient(routes)\n"
        "print(client.get('/').text, flush=True)\n"
        "def late():  # (a thread still calling it as the main one ends)\n"
        "    for _ in range(20):\n"
        "        assert client.get('/').text == 'home'\n"
        "    print('late', flush=True)\n"
        "threading.Thread(target=late).start()\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["home", "late", "shut", "down"]
    assert "Traceback" not in done.stderr


def test_uvloop_as_its_loop() -> None:
    uvloop = pytest.importorskip("uvloop")
    with SyncTestClient(echo.routes, loop_factory=uvloop.new_event_loop) as client:
        assert isinstance(client.call(asyncio.get_running_loop), uvloop.Loop)
        with client.websocket("/ws") as ws:
            ws.send("over uvloop")
            assert ws.receive() == "over uvloop"


async def test_it_works_from_an_async_test_too() -> None:
    # (A running loop in the test's thread: the client's is another, elsewhere.)
    with SyncTestClient(echo.routes) as client, client.websocket("/ws") as ws:
        ws.send("from a coroutine")
        assert ws.receive() == "from a coroutine"


def test_the_readme_shows_a_test_of_this_module_verbatim() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("**Tests that are plain functions.**", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    source = Path(__file__).read_text()
    module = ast.parse(source)
    ours = {
        node.name: ast.get_source_segment(source, node)
        for node in module.body
        if isinstance(node, ast.FunctionDef)
    }
    shown = ast.parse(code)
    (function,) = [n for n in shown.body if isinstance(n, ast.FunctionDef)]
    assert ast.get_source_segment(code, function) == ours[function.name]
    # The example runs as shown: every name it uses is imported there, bound in it, or built in.
    imported = {
        (alias.asname or alias.name).split(".")[0]
        for node in shown.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    bound = {
        n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }
    used = {
        n.id for n in ast.walk(function) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    assert used <= imported | bound | set(dir(builtins)), used - imported - bound
    lines = set(source.splitlines())
    for node in shown.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            imported = {alias.name for alias in node.names}
            assert (
                any(
                    isinstance(n, ast.ImportFrom)
                    and n.module == getattr(node, "module", None)
                    and imported <= {alias.name for alias in n.names}
                    for n in module.body
                )
                or ast.get_source_segment(code, node) in lines
            ), ast.get_source_segment(code, node)


def test_a_loop_that_dies_raises_instead_of_hanging() -> None:
    # SystemExit in a handler ends run_forever(): nothing would ever answer
    # the test's wait (nor the client's own timeout, on that dead loop).
    routes = Router()

    @routes.get("/exit")
    async def leave(request: Request) -> Response:
        raise SystemExit(3)

    started = time.monotonic()
    with (
        pytest.raises(RuntimeError, match="event loop stopped") as caught,
        SyncTestClient(routes, timeout=1) as client,
    ):
        client.get("/exit")
    assert isinstance(caught.value.__cause__, SystemExit)
    assert time.monotonic() - started < 10


def test_a_call_under_way_when_another_thread_closes_the_client_says_so() -> None:
    # A call another thread made (a client.call(), a request) still waiting
    # as the client closed had its task cancelled with the others, and its
    # thread got asyncio's bare CancelledError, a BaseException saying
    # nothing, that no except Exception catches, from a plain function. It
    # is a RuntimeError saying that the client closed now, as a call whose
    # loop died says so.
    began = threading.Event()
    got: list[BaseException] = []

    async def wait() -> None:
        began.set()
        await asyncio.sleep(30)

    client = SyncTestClient(echo.routes, timeout=20)
    client.start()

    def call() -> None:
        try:
            client.call(wait)
        except BaseException as exc:  # (what reaches the thread, whatever it is)
            got.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert began.wait(10)
    client.close()
    caller.join(10)
    (error,) = got
    assert isinstance(error, RuntimeError), repr(error)
    assert "closed while this call waited" in str(error)
    # A call's own cancellation (what it awaited was cancelled) is as it was.
    with SyncTestClient(echo.routes) as client:
        (cancelled,) = client.call(lambda: [asyncio.get_running_loop().create_future()])
        client.call(cancelled.cancel)
        with pytest.raises(asyncio.CancelledError):
            client.call(lambda: cancelled)


def test_tasks_left_running_are_cancelled_on_the_way_out() -> None:
    ended = threading.Event()

    async def worker() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            ended.set()

    with SyncTestClient(echo.routes) as client:
        (task,) = client.call(lambda: [asyncio.ensure_future(worker())])  # (not awaited)
        assert not task.done()
    assert ended.is_set() and task.cancelled()


@pytest.mark.parametrize("short", ["shutdown_timeout", "timeout"])
def test_a_task_that_cleans_up_when_cancelled_is_waited_for_whatever_the_timeouts(
    short: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The way out gave the cancelled tasks min(timeout, shutdown_timeout):
    # none with shutdown_timeout=0, so a task whose cleanup awaits once (a
    # connection closed, say) was named as one that caught its cancellation,
    # left pending with its cleanup undone, and destroyed pending.
    ended = threading.Event()

    async def worker() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.01)
            ended.set()

    caplog.set_level(logging.WARNING)
    settings = {"shutdown_timeout": 0} if short == "shutdown_timeout" else {}
    with SyncTestClient(echo.routes, **settings) as client:
        client.timeout = 0.001 if short == "timeout" else client.timeout
        client.call(lambda: [asyncio.ensure_future(worker())])  # (not awaited)
    gc.collect()
    assert ended.is_set()
    assert "went on when cancelled" not in caplog.text
    assert "destroyed but it is pending" not in caplog.text


def test_a_task_that_catches_its_cancellation_does_not_hang_the_way_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The server leaves such a task running, with a warning; the client's
    # loop waited for it for ever as it closed (the test hung, saying nothing).
    async def stubborn() -> None:
        while True:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(3600)

    def test_body() -> None:
        with SyncTestClient(echo.routes, timeout=0.5) as client:
            client.call(lambda: [asyncio.ensure_future(stubborn())])  # (not awaited)

    caplog.set_level(logging.WARNING, "wsserver.server")
    started = time.monotonic()
    body = threading.Thread(target=test_body, daemon=True)
    body.start()
    body.join(5)
    assert not body.is_alive(), "the way out waited for the task for ever"
    assert time.monotonic() - started < 2.5  # (a second: the server's CANCELLED_GRACE)
    assert "stubborn() went on when cancelled" in caplog.text


def test_call_awaits_any_awaitable_and_keeps_its_type() -> None:
    async def three() -> int:
        return 3

    with SyncTestClient(echo.routes) as client:
        assert client.call(three) == 3
        assert client.call(lambda: asyncio.ensure_future(three())) == 3
        client.timeout = 2
        assert client.timeout == 2
        client.cookies = {"a": "b"}
        assert client.cookies == {"a": "b"}


def test_a_call_that_never_ends_raises_after_the_client_s_timeout() -> None:
    # Every wait of the client is bounded by its timeout; call() awaited what
    # it was given for ever (the test hung, as with Starlette's portal).
    with SyncTestClient(echo.routes, timeout=0.2) as client:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match=r"client.call\(\) did not end within 0.2 s"):
            client.call(asyncio.Event().wait)
        assert time.monotonic() - started < 2
        client.timeout = None  # (None: for ever, as every wait)
        assert client.call(asyncio.sleep, 0.3, "slept") == "slept"


def test_start_and_close_without_a_block() -> None:
    client = SyncTestClient(echo.routes).start()
    try:
        assert client.get("/").status == 200
    finally:
        client.close()
    assert not client_threads()
    with pytest.raises(RuntimeError, match=r"runs already \(started by start\(\)\)"):
        client.start().start()
    client.close()


def test_a_streamed_body_is_read_as_it_comes() -> None:
    from .test_testing import _streaming_routes

    gate = asyncio.Event()
    with SyncTestClient(_streaming_routes(gate)) as client:
        with client.stream("GET", "/ticks") as response:
            assert response.status == 200
            lines = response.iter_lines()
            assert next(lines) == "data: 0"
            client.call(gate.set)  # (the next pieces only now)
            assert list(lines) == ["", "data: 1", "", "data: 2", "", "last"]
        with client.stream("GET", "/ticks") as response:
            client.call(gate.set)
            assert response.read().endswith(b"last") and response.text.startswith("data: 0")
        with pytest.raises(Bug, match="in a stream"), client.stream("GET", "/fails") as failing:
            list(failing.iter_bytes())


def test_a_streamed_body_read_whole_is_iterated_again_as_httpx_s() -> None:
    # httpx (Starlette's client): once read(), a streamed response's
    # iter_bytes(), iter_text() and iter_lines() go over what was read, in
    # the block or after it; ours raised "the body of a streamed response is
    # read once". Its raw stream is gone, as httpx's (StreamConsumed there).
    from .test_testing import _streaming_routes

    lines = ["data: 0", "", "data: 1", "", "data: 2", "", "last"]
    with SyncTestClient(_streaming_routes()) as client:
        with client.stream("GET", "/ticks") as response:
            whole = response.read()
            assert list(response.iter_lines()) == lines
            assert b"".join(response.iter_bytes(chunk_size=4)) == whole
            assert "".join(response.iter_text()) == whole.decode()
            with pytest.raises(RuntimeError, match="read once"):
                next(response.iter_raw())
        assert list(response.iter_lines()) == lines  # (after the block too)


def test_cookies_outlive_a_run() -> None:
    from .test_testing import _session_routes

    client = SyncTestClient(_session_routes())
    client.post("/login")
    with client:  # (a new run: a new server)
        assert client.get("/me").json() == {"session": "s3cret", "theme": "dark"}
    assert client.cookies == {"session": "s3cret", "theme": "dark"}
    client.close()  # (a second close does nothing)


def test_client_cookies_is_one_dict_for_all_its_runs_as_httpx_s() -> None:
    # As httpx's client.cookies (Starlette's client), the dict read from a
    # client that does not run yet, or read during a run, is the one its
    # runs keep and send: each run used to take a copy, and what the test
    # held went stale (the login's cookies missing from it, its own unsent).
    from .test_testing import _session_routes

    client = SyncTestClient(_session_routes())
    cookies = client.cookies  # (before the first call starts it)
    cookies["lang"] = "fr"
    client.post("/login")
    assert client.cookies is cookies
    assert cookies == {"lang": "fr", "session": "s3cret", "theme": "dark"}
    client.close()
    assert client.cookies is cookies
    cookies.delete("lang")  # (between runs: for the next one)
    with client:
        assert client.cookies is cookies
        assert client.get("/me").json() == {"session": "s3cret", "theme": "dark"}
        client.post("/logout")
    assert cookies == {}
    client.cookies = {"c": "3"}  # (a mapping assigned is taken, as before)
    replaced = client.cookies
    assert client.get("/me").json() == {"c": "3"}
    assert client.cookies is replaced
    client.close()


def test_json_messages_in_binary_mode_as_starlette_s() -> None:
    async def echo_json(websocket: StarletteWebSocket) -> None:
        await websocket.accept()
        got = await websocket.receive_json(mode="binary")
        await websocket.send_json({"got": got}, mode="binary")
        await websocket.send_json({"then": "text"})
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", echo_json)])
    with SyncTestClient(app) as client, client.websocket("/ws") as ws:
        ws.send_json({"a": 1}, mode="binary")
        assert ws.receive_json(mode="binary") == {"got": {"a": 1}}
        with pytest.raises(TypeError, match="expected a binary message, received a text one"):
            ws.receive_json(mode="binary")
        with pytest.raises(ValueError, match="mode is"):
            ws.send_json({}, mode="bytes")


def test_a_whole_response_is_read_as_httpx_reads_one() -> None:
    # (From an audit.) A test of a finite event stream reads it line by line
    # from client.get(): httpx allows it on any response.
    from .test_testing import _streaming_routes

    gate = asyncio.Event()
    gate.set()
    with SyncTestClient(_streaming_routes(gate)) as client:
        response = client.get("/ticks")
        lines = list(response.iter_lines())
        assert lines == ["data: 0", "", "data: 1", "", "data: 2", "", "last"]
        assert b"".join(response.iter_bytes()) == response.read() == response.content
        assert "".join(response.iter_text()) == response.text
        empty = client.head("/ticks")
        assert list(empty.iter_lines()) == list(empty.iter_bytes()) == []
        # In chunks of a size (httpx's chunk_size), whole or streamed.
        whole = response.content
        assert list(response.iter_bytes(7)) == [whole[i : i + 7] for i in range(0, len(whole), 7)]
        with client.stream("GET", "/ticks") as streamed:
            assert list(streamed.iter_text(7)) == list(response.iter_text(7))
        assert streamed.elapsed.total_seconds() > 0


def test_requests_say_what_starlette_s_client_says() -> None:
    # (From an audit.) An app (or a test) that reads the user agent saw none.
    async def agent(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse(f"{request.headers['user-agent']} {request.headers['accept']}")

    async def ws_agent(websocket: StarletteWebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(websocket.headers["user-agent"])
        await websocket.close()

    app = Starlette(routes=[Route("/", agent), WebSocketRoute("/ws", ws_agent)])
    with SyncTestClient(app) as client:
        assert client.get("/").text == "testclient */*"
        assert client.get("/", headers={"User-Agent": "mine"}).text == "mine */*"
        with client.websocket("/ws") as ws:
            assert ws.receive() == "testclient"


def test_follow_redirects_is_the_client_s_default_as_in_starlette() -> None:
    with SyncTestClient(_redirecting_routes(), follow_redirects=True) as client:
        r = client.post("/login", data={"user": "ann"})
        assert (r.status_code, r.json()) == (200, {"user": "ann"})
        assert client.get("/old/302", follow_redirects=False).status_code == 302
    with SyncTestClient(_redirecting_routes()) as client:
        assert client.get("/old/302").status_code == 302
        assert client.get("/old/302", follow_redirects=True).status_code == 200


def test_follow_redirects_is_an_attribute_of_the_client_as_in_starlette() -> None:
    # Starlette's client (httpx's) reads and sets client.follow_redirects;
    # here reading it was an AttributeError, and setting it made an attribute
    # no request read: redirects went on being followed.
    client = SyncTestClient(_redirecting_routes(), follow_redirects=True)
    assert client.follow_redirects is True  # (before it starts)
    with client:
        assert client.follow_redirects is True
        client.follow_redirects = False
        assert client.get("/old/302").status_code == 302
    assert client.follow_redirects is False  # (kept for its next run, as timeout is)
    client.follow_redirects = True
    with client:
        assert client.get("/old/302").status_code == 200


def test_a_to_thread_call_still_running_does_not_hang_the_way_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A handler's asyncio.to_thread() of a blocking call outlives its task's
    # cancellation (a thread cannot be cancelled); the client's loop joined
    # the default executor without a bound as it closed, so the test hung until
    # the call returned (for ever, for a call waiting on what the test does next).
    released = threading.Event()

    async def blocking(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.to_thread(released.wait, 30)

    def test_body() -> None:
        with SyncTestClient(blocking, timeout=0.5) as client, pytest.raises(TimeoutError):
            client.get("/")

    caplog.set_level(logging.WARNING, "wsserver.server")
    body = threading.Thread(target=test_body, daemon=True)
    body.start()
    try:
        body.join(10)
        assert not body.is_alive(), "the way out waited for the thread"
    finally:
        released.set()
    assert "1 call of asyncio.to_thread() or run_in_executor() still running" in caplog.text


def test_the_app_is_the_client_s_app_as_in_starlette() -> None:
    # Starlette's client has it (client.app.dependency_overrides[...] = ..., in
    # FastAPI tests of a fixture's client); here it was an AttributeError.
    from fastapi import Depends, FastAPI

    def user() -> str:
        return "real"

    app = FastAPI()

    @app.get("/me")
    def me(name: str = Depends(user)) -> dict[str, str]:
        return {"name": name}

    client = SyncTestClient(app)
    assert client.app is app  # (not started for it)
    client.app.dependency_overrides[user] = lambda: "stub"
    with client:
        assert client.app is app
        assert client.get("/me").json() == {"name": "stub"}
    assert TestClient(app).app is app
    assert SyncTestClient(echo.routes).app is echo.routes


def test_starlette_s_and_aiohttp_s_websocket_names_say_what_gives_the_same() -> None:
    # A test ported from Starlette's client, with client.websocket_connect("/ws")
    # as ws (ws.accepted_subprotocol, ws.extra_headers), or from pytest-aiohttp
    # (client.ws_connect(), ws.send_str(), ws.receive_str()), got a bare
    # "'SyncTestClient' object has no attribute 'websocket_connect'", saying
    # neither the name here nor that receive() and the close differ.
    with SyncTestClient(echo.routes) as client:
        with pytest.raises(AttributeError, match=r"client\.websocket\(path\).*WebSocketDisconnect"):
            client.websocket_connect("/ws")
        with pytest.raises(AttributeError, match=r"client\.websocket\(path\)"):
            client.ws_connect("/ws")
        assert not hasattr(client, "websocket_connect")
        with client.websocket("/ws") as ws:
            with pytest.raises(AttributeError, match=r"ws\.subprotocol"):
                _ = ws.accepted_subprotocol
            with pytest.raises(AttributeError, match=r"ws\.response\.headers"):
                _ = ws.extra_headers
            with pytest.raises(AttributeError, match=r"send_text\(\)"):
                ws.send_str("hi")
            with pytest.raises(AttributeError, match=r"receive_text\(\)"):
                ws.receive_str()
            # The async client's and its WebSocket's say the same.
            named = {
                client._running[0]: ("websocket_connect", "ws_connect"),
                ws.ws: ("accepted_subprotocol", "extra_headers", "send_str", "receive_str"),
            }
            for instance, names in named.items():
                for name in names:
                    with pytest.raises(AttributeError, match=r"\(Starlette's\)|\(aiohttp's\)"):
                        getattr(instance, name)
            ws.send("still usable")
            assert ws.receive() == "still usable"


def test_a_body_of_pieces_from_a_generator_is_made_off_the_server_s_loop() -> None:
    # A plain test's generator body (body= or httpx's content=, a piece at a
    # time for a stream=True route) was iterated on the server's loop, in
    # its thread: one that asked the server between its pieces (that the
    # handler had the first, a test of the body being streamed) was told
    # 'called from its server's own thread (a handler?)', and one that waited
    # (a slow upload) stopped the server meanwhile, its request's timeout
    # with it: the test hung as long as the generator did.
    routes = Router()
    got: list[bytes] = []

    @routes.post("/upload", stream=True)
    async def upload(request: Request) -> Any:
        assert request.stream is not None
        async for piece in request.stream:
            got.append(piece)
        return text(str(len(got)))

    async def first_piece() -> bytes:
        while not got:  # (bounded by client.call()'s timeout)
            await asyncio.sleep(0.01)
        return got[0]

    release = threading.Event()
    with SyncTestClient(routes) as client:

        def body() -> Iterator[bytes]:
            yield b"first"
            assert client.call(first_piece) == b"first"  # (the handler has it)
            yield b"second"

        response = client.post("/upload", body=body())
        assert (response.status, response.text, got) == (200, "2", [b"first", b"second"])
        got.clear()
        with client.stream("POST", "/upload", content=body()) as streamed:
            assert streamed.read() == b"2"

        def stuck() -> Iterator[bytes]:
            yield b"first"
            release.wait(15)
            yield b"never"

        try:
            with pytest.raises(TimeoutError, match=r"no response came within 0\.5 s"):
                client.post("/upload", body=stuck(), timeout=0.5)
        finally:
            release.set()
        assert client.get("/upload").status == 405  # (the server still answers)


def test_a_sync_websocket_s_timeout_is_its_websocket_s() -> None:
    # The async WebSocket's timeout bounds its every later wait, and a test
    # may set it (ws.timeout = 0.2); a SyncWebSocket had none: reading it was
    # an AttributeError, and setting it made an attribute of its own that
    # nothing read, each receive() still waiting the client's 5 s.
    with SyncTestClient(echo.routes) as client, client.websocket("/ws") as ws:
        assert ws.timeout == ws.ws.timeout == 5.0
        ws.timeout = 0.2
        assert ws.ws.timeout == 0.2
        with pytest.raises(TimeoutError, match=r"no message came within 0\.2 s"):
            ws.receive()
        ws.send("still usable")
        assert ws.receive() == "still usable"


def test_default_headers_go_with_every_request_upgrade_and_stream_as_in_starlette() -> None:
    # FastAPI tests often write client.headers.update({"Authorization": ...})
    # on a fixture's client (httpx's and Starlette's default request headers):
    # an AttributeError here. They go with each request, WebSocket upgrade and
    # stream, a request's own winning by name (any case), kept across runs as
    # the cookies are.
    from fastapi import FastAPI, Header

    app = FastAPI()

    @app.get("/who")
    def who(authorization: str = Header(""), x_trace: str = Header("")) -> dict[str, str]:
        return {"authorization": authorization, "trace": x_trace}

    @app.websocket("/ws")
    async def ws(websocket: StarletteWebSocket) -> None:  # (FastAPI's is Starlette's)
        await websocket.accept()
        await websocket.send_text(websocket.headers.get("authorization", ""))
        await websocket.close()

    client = SyncTestClient(app)
    client.headers.update({"Authorization": "Bearer t1", "X-Trace": "a"})
    with client:
        assert client.get("/who").json() == {"authorization": "Bearer t1", "trace": "a"}
        own = client.get("/who", headers={"authorization": "Bearer mine"}).json()
        assert own == {"authorization": "Bearer mine", "trace": "a"}
        with client.websocket("/ws") as session:
            assert session.receive() == "Bearer t1"
        with client.stream("GET", "/who") as streamed:
            assert b"Bearer t1" in b"".join(streamed.iter_bytes())
        del client.headers["x-trace"]
        assert client.get("/who").json()["trace"] == ""
    with client:  # (a next run keeps them)
        assert client.headers == {"Authorization": "Bearer t1"}
        assert client.get("/who").json()["authorization"] == "Bearer t1"
    client.headers = {"authorization": "Bearer t2"}
    with client:
        assert client.get("/who").json() == {"authorization": "Bearer t2", "trace": ""}


async def test_an_async_client_s_default_headers_go_with_every_request_and_upgrade() -> None:
    routes = Router()

    @routes.get("/who")
    async def who(request: Request) -> Response:
        return text(request.headers.get("authorization", "-"))

    @routes.websocket("/ws")
    async def ws(request: Request, socket: WebSocket) -> None:
        await socket.send(request.headers.get("authorization", "-"))

    async with TestClient(routes) as client:
        assert (await client.get("/who")).text == "-"
        client.headers["Authorization"] = "Bearer a"
        assert (await client.get("/who")).text == "Bearer a"
        assert (await client.get("/who", headers=[("AUTHORIZATION", "b")])).text == "b"
        async with client.websocket("/ws") as session:
            assert await session.receive() == "Bearer a"
        with pytest.raises(TypeError):
            client.headers["X-N"] = 1  # type: ignore[assignment]


async def test_default_headers_keep_a_request_s_repeated_headers_given_as_headers() -> None:
    # (A Headers of the request's own, say a response's request's: every value
    # of a repeated name went, as without defaults, not the first alone.)
    routes = Router()

    @routes.get("/all")
    async def all_(request: Request) -> Response:
        return text(",".join(request.headers.getall("x-a")) + " " + request.headers["x-d"])

    @routes.websocket("/ws")
    async def ws(request: Request, socket: WebSocket) -> None:
        await socket.send(",".join(request.headers.getall("x-a")))

    own = Headers([("x-a", "1"), ("X-A", "2")])
    async with TestClient(routes) as client:
        client.headers["X-D"] = "d"
        assert (await client.get("/all", headers=own)).text == "1,2 d"
        async with client.websocket("/ws", headers=own) as session:
            assert await session.receive() == "1,2"


def test_default_headers_set_while_another_thread_starts_the_client_are_its_run_s() -> None:
    # (Assigned while the run's client was made with the ones before, and
    # not yet running: that run sent the ones before.)
    in_startup, go = threading.Event(), threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            in_startup.set()
            await asyncio.to_thread(go.wait, 10)
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await receive()
        value = dict(scope["headers"]).get(b"x-d", b"-")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": value})

    client = SyncTestClient(app)
    starter = threading.Thread(target=client.start)
    starter.start()
    try:
        assert in_startup.wait(10)
        setter = threading.Thread(target=setattr, args=(client, "headers", {"X-D": "d"}))
        setter.start()
        setter.join(0.2)  # (it waits for the start to end, or it went before)
        go.set()
        starter.join(10)
        setter.join(10)
        assert client.get("/").text == "d"
    finally:
        go.set()
        starter.join(10)
        client.close()
