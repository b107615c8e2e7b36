"""A Router's on_startup and on_shutdown hooks: what a Router app does before it
serves and after (a database pool, a background task), with or without the CLI."""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from pathlib import Path
from typing import Any

import pytest
import websockets

from wsserver import LifespanFailure, Request, Router, Server, WebSocket, serve
from wsserver.response import Response, text

from .test_cli import run_cli_to_end

TIMEOUT = 5


def hooked_routes(events: list[str]) -> Router:
    routes = Router()

    @routes.on_startup
    async def open_pool(server: Server) -> None:
        events.append(f"startup listening={bool(server.sockets)}")
        await asyncio.sleep(0.01)
        server.ctx.pool = "the pool"

    @routes.on_startup
    async def second(server: Server) -> None:
        events.append("second startup")

    @routes.on_shutdown
    async def close_pool(server: Server) -> None:
        events.append(f"shutdown open={len(server.websockets)}")

    @routes.websocket("/")
    async def uses_pool(request: Request, ws: WebSocket) -> None:
        await ws.send(request.server.ctx.pool)
        await ws.wait_closed()

    return routes


async def test_hooks_run_before_listening_and_after_the_last_connection() -> None:
    events: list[str] = []
    server = serve(hooked_routes(events), "127.0.0.1", 0, ping_interval=None)
    await server.start()
    assert events == ["startup listening=False", "second startup"]
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/") as ws:
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "the pool"
        await server.close()
        assert ws.close_code == 1001
    assert events[2:] == ["shutdown open=0"]


async def test_a_startup_hook_that_raises_stops_the_start() -> None:
    events: list[str] = []
    routes = hooked_routes(events)

    @routes.on_startup
    async def no_database(server: Server) -> None:
        raise ConnectionError("no database today")

    server = serve(routes, "127.0.0.1", 0)
    with pytest.raises(LifespanFailure, match="no_database raised ConnectionError"):
        await server.start()
    assert not server.sockets  # it never listened
    assert events == ["startup listening=False", "second startup"]  # no shutdown hooks


async def test_a_shutdown_hook_that_fails_or_hangs_is_logged_and_the_next_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []
    routes = Router()

    @routes.on_shutdown
    async def fails(server: Server) -> None:
        raise RuntimeError("the pool is gone already")

    @routes.on_shutdown
    async def hangs(server: Server) -> None:
        await asyncio.sleep(30)

    @routes.on_shutdown
    async def last(server: Server) -> None:
        events.append("last")

    server = serve(routes, "127.0.0.1", 0, shutdown_timeout=0.1, close_timeout=0.1)
    await server.start()
    await asyncio.wait_for(server.close(), TIMEOUT)
    assert events == ["last"]
    logged = [r.getMessage() for r in caplog.records]
    assert any("on_shutdown hook" in m and "fails failed" in m for m in logged), logged
    assert any("hangs did not end within 0.2 s" in m for m in logged), logged
    # Both are the application's failures (counted, told to the listeners: a
    # TestClient raises them on the way out), the one that hung too.
    assert server.counters.handler_errors == 2


async def test_a_hook_that_ends_in_a_cancelled_error_of_its_own_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # It awaited what other code cancelled (a connection attempt given up
    # on). A shutdown hook's ended the shutdown's steps there, nothing said:
    # the next hooks, the broker's detach, the metrics' stop never ran. A
    # startup hook's went up as the start's own cancellation (the command: a
    # traceback of wsserver's frames, exit code 1, no hook named).
    events: list[str] = []
    routes = Router()

    async def given_up() -> None:
        connecting = asyncio.ensure_future(asyncio.sleep(30))
        asyncio.get_running_loop().call_soon(connecting.cancel)
        await connecting  # (raises the CancelledError: the hook's own)

    @routes.on_shutdown
    async def flush(server: Server) -> None:
        await given_up()

    @routes.on_shutdown
    async def last(server: Server) -> None:
        events.append("last")

    server = serve(routes, "127.0.0.1", 0)
    await server.start()
    await asyncio.wait_for(server.close(), TIMEOUT)
    assert events == ["last"]
    logged = [r.getMessage() for r in caplog.records]
    assert any("on_shutdown hook" in m and "flush failed" in m for m in logged), logged
    assert server.stats()["handler_errors"] == 1

    @routes.on_startup
    async def connect(server: Server) -> None:
        await given_up()

    server = serve(routes, "127.0.0.1", 0)
    with pytest.raises(LifespanFailure, match="connect raised CancelledError"):
        await asyncio.wait_for(server.start(), TIMEOUT)
    assert not server.sockets  # it never listened


async def test_a_shutdown_hook_that_calls_close_goes_on_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # (A cleanup shared with an admin route that stops the server, say.) It
    # waited for the shutdown that waits for it: cancelled after
    # shutdown_timeout + close_timeout (15 s by default), logged as hanging,
    # and what came after its close() never ran.
    events: list[str] = []
    routes = Router()

    @routes.on_shutdown
    async def release(server: Server) -> None:
        await server.close()
        events.append("released")

    @routes.on_shutdown
    async def release_too(server: Server) -> None:
        await asyncio.wait_for(server.close(), 5)  # (in a task of its own, on 3.11)
        events.append("released too")

    server = serve(routes, "127.0.0.1", 0, shutdown_timeout=2, close_timeout=1)
    await server.start()
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(server.close(), TIMEOUT)
    assert events == ["released", "released too"]
    assert loop.time() - began < 1
    assert not any("release" in r.getMessage() for r in caplog.records), caplog.text


async def test_admin_routes_that_close_and_wait_for_the_server_do_not_wait_for_each_other() -> None:
    # wait_closed() waits for the handlers that called close() to answer:
    # two admin requests at once, each awaiting close() then wait_closed()
    # (asyncio's idiom), must not wait close_timeout for each other.
    routes = Router()

    @routes.post("/admin/stop")
    async def stop(request: Request) -> Response:
        assert request.server is not None
        await request.server.close()
        await request.server.wait_closed()
        return text("stopped")

    server = serve(routes, "127.0.0.1", 0, close_timeout=4)
    await server.start()

    async def post() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /admin/stop HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        try:
            return await reader.read()
        finally:
            writer.close()

    loop = asyncio.get_running_loop()
    began = loop.time()
    answers = await asyncio.wait_for(asyncio.gather(post(), post()), TIMEOUT)
    assert all(answer.endswith(b"stopped") for answer in answers), answers
    assert loop.time() - began < 2  # (not close_timeout, 4 s)
    await asyncio.wait_for(server.wait_closed(), TIMEOUT)


@pytest.mark.parametrize(
    "close",
    [
        lambda server: asyncio.wait_for(server.close(), TIMEOUT),  # (a task of its own, on 3.11)
        lambda server: asyncio.shield(server.close()),
        lambda server: asyncio.gather(server.close()),
    ],
    ids=["wait_for", "shield", "gather"],
)
async def test_a_startup_hook_that_calls_close_in_a_task_stops_the_start(close: Any) -> None:
    # As the shutdown hook's close() above, and a startup hook's awaited
    # close() (test_websocket): it waited for the start, which waited for
    # the hook, until wait_for() gave up (then the start failed with a
    # LifespanFailure of its TimeoutError); shield() and gather(), for ever.
    events: list[str] = []
    routes = Router()

    @routes.on_startup
    async def check(server: Server) -> None:
        await close(server)  # "the configuration is wrong: stop"
        events.append("close returned")

    @routes.on_shutdown
    async def bye(server: Server) -> None:
        events.append("shutdown")

    server = serve(routes, "127.0.0.1", 0)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(server.start(), TIMEOUT + 1)
    assert events == ["close returned", "shutdown"]
    assert loop.time() - began < 1
    assert server.closing and server.sockets == ()  # (it never listened)
    await asyncio.wait_for(server.serve_forever(), TIMEOUT)  # (returns: closed)


async def test_close_during_a_startup_hook_that_hangs_stops_the_start() -> None:
    # (An embedding program's SIGTERM handler calls server.close(); the
    # database does not answer.) close() waited for the start, which waited
    # for the hook: for ever, where the command's stop signals cancel it.
    events: list[str] = []
    routes = Router()
    connecting = asyncio.Event()

    @routes.on_startup
    async def connect(server: Server) -> None:
        connecting.set()
        try:
            await asyncio.sleep(30)  # a database that does not answer
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    @routes.on_shutdown
    async def bye(server: Server) -> None:
        events.append("shutdown")

    server = serve(routes, "127.0.0.1", 0)
    serving = asyncio.create_task(server.serve_forever())
    await asyncio.wait_for(connecting.wait(), TIMEOUT)
    await asyncio.wait_for(server.close(), TIMEOUT)
    await asyncio.wait_for(serving, TIMEOUT)  # (returns: closed before it started)
    assert events == ["cancelled"]  # (no shutdown hook: the start did not end)
    assert server.closing and server.sockets == ()  # (it never listened)


@pytest.mark.parametrize("how", ["startup hook's close()", "port taken"])
async def test_a_shutdown_hook_that_calls_close_in_a_start_that_stops_goes_on_at_once(
    how: str,
) -> None:
    # A start that does not serve (a startup hook closed the server, or it
    # could not listen) runs the shutdown hooks itself. One that calls
    # close() (a cleanup shared with an admin route, as above) waited for
    # the start, which waited for it: for ever.
    events: list[str] = []
    routes = Router()
    taken = None

    @routes.on_startup
    async def check(server: Server) -> None:
        if how == "startup hook's close()":
            await server.close()

    @routes.on_shutdown
    async def release(server: Server) -> None:
        await server.close()
        events.append("released")

    @routes.on_shutdown
    async def release_too(server: Server) -> None:
        await asyncio.wait_for(server.close(), TIMEOUT)  # (in a task of its own, on 3.11)
        events.append("released too")

    port = 0
    if how == "port taken":
        taken = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = taken.sockets[0].getsockname()[1]
    try:
        server = serve(routes, "127.0.0.1", port)
        if how == "port taken":
            with pytest.raises(OSError):
                await asyncio.wait_for(server.serve_forever(), TIMEOUT)
        else:
            await asyncio.wait_for(server.serve_forever(), TIMEOUT)  # (returns: closed)
    finally:
        if taken is not None:
            taken.close()
    assert events == ["released", "released too"]
    assert not server.sockets


async def test_a_context_variable_a_startup_hook_sets_is_seen_by_the_handlers() -> None:
    # The hooks ran in the start's own task, whose context every connection's
    # tasks start from: a ContextVar set in one (structlog's
    # bind_contextvars(), a pool kept in a ContextVar) reached the handlers.
    # Run in a task of their own (for close() through wait_for()), the hooks
    # set it in a copy, and the handlers saw it unset.
    said: contextvars.ContextVar[str] = contextvars.ContextVar("said", default="unset")
    routes = Router()

    @routes.on_startup
    async def configure(server: Server) -> None:
        said.set("set by on_startup")

    @routes.get("/")
    async def index(request: Request) -> Response:
        return text(said.get())

    @routes.websocket("/ws")
    async def ws(request: Request, websocket: WebSocket) -> None:
        await websocket.send(said.get())

    async with serve(routes, "127.0.0.1", 0, ping_interval=None) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
        assert answer.endswith(b"\r\n\r\nset by on_startup"), answer
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as client:
            assert await asyncio.wait_for(client.recv(), TIMEOUT) == "set by on_startup"


async def test_a_context_variable_an_on_shutdown_hook_sets_is_seen_by_the_next() -> None:
    # The shutdown hooks ran in the shutdown's task, one after the other: a
    # ContextVar one set (structlog's bind_contextvars(), say) reached the
    # next. Each in a task of its own (so that one that goes on when
    # cancelled is left behind), each in a copy of the shutdown's context,
    # the next saw it unset.
    said: contextvars.ContextVar[str] = contextvars.ContextVar("said", default="unset")
    seen: list[str] = []
    routes = Router()

    @routes.on_shutdown
    async def first(server: Server) -> None:
        said.set("set by the first on_shutdown hook")

    @routes.on_shutdown
    async def second(server: Server) -> None:
        seen.append(said.get())

    async with serve(routes, "127.0.0.1", 0, ping_interval=None):
        pass
    assert seen == ["set by the first on_shutdown hook"]


@pytest.mark.parametrize(
    ("hook", "said"),
    [
        (lambda server: None, "must be an async function"),
        ("not a function", "must be an async function"),
    ],
)
def test_a_hook_that_cannot_be_one_is_refused(hook: Any, said: str) -> None:
    routes = Router()
    with pytest.raises(TypeError, match=said):
        routes.on_startup(hook)
    with pytest.raises(TypeError, match=said):
        routes.on_shutdown(hook)

    async def no_server() -> None: ...

    with pytest.raises(TypeError, match="cannot be called with the server"):
        routes.on_startup(no_server)  # type: ignore[arg-type]
    assert routes.startup_hooks == [] and routes.shutdown_hooks == []


async def test_a_hook_that_is_an_object_with_an_async_call_is_taken(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As a route's handler may be one (and as Starlette takes on_startup hooks):
    # on_startup() and on_shutdown() refused it, "must be an async function".
    events: list[str] = []

    class Pool:
        def __init__(self, name: str, fail: bool = False) -> None:
            self.name = name
            self.fail = fail

        async def __call__(self, server: Server) -> None:
            events.append(self.name)
            if self.fail:
                raise ConnectionError("the pool would not close")

    routes = Router()
    routes.on_startup(Pool("open"))
    routes.on_shutdown(Pool("close", fail=True))
    routes.on_shutdown(Pool("after"))
    server = serve(routes, "127.0.0.1", 0, ping_interval=None)
    await asyncio.wait_for(server.start(), TIMEOUT)
    assert events == ["open"]
    await asyncio.wait_for(server.close(), TIMEOUT)
    assert events == ["open", "close", "after"]
    failed = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert failed == [
        "on_shutdown hook test_a_hook_that_is_an_object_with_an_async_call_is_taken"
        ".<locals>.Pool failed"
    ], failed
    caplog.clear()


FAILING_STARTUP = """
from wsserver import Router

routes = Router()

@routes.on_startup
async def connect(server):
    raise ConnectionError("no database today")
"""


async def test_the_cli_exits_3_when_a_startup_hook_raises(tmp_path: Path) -> None:
    name = f"hooks_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(FAILING_STARTUP)
    code, err = await run_cli_to_end(f"{name}:routes", "--app-dir", str(tmp_path), "--port", "0")
    assert code == 3, err
    assert "startup failed: on_startup hook connect raised ConnectionError" in err, err
    assert "ASGI" not in err and "listening on" not in err, err


async def test_the_test_client_runs_the_hooks() -> None:
    from wsserver.testing import TestClient

    events: list[str] = []
    async with TestClient(hooked_routes(events)) as client:
        assert events == ["startup listening=False", "second startup"]
        async with client.websocket("/") as ws:
            assert await ws.receive_text() == "the pool"
    assert events[2:] == ["shutdown open=0"]


async def test_the_hooks_run_while_the_broker_is_attached() -> None:
    # They ran before the broker attached and after it detached: a Redis
    # broker dropped what a hook published, and presence was this process's.
    from wsserver.broker import MemoryBroker

    events: list[str] = []

    class Watched(MemoryBroker):
        async def attach(self, node: Any) -> None:
            events.append("attach")
            await super().attach(node)

        async def detach(self, node: Any) -> None:
            events.append("detach")
            await super().detach(node)

        def publish(self, node: Any, topic: str, message: str | bytes) -> bool:
            events.append(f"publish {message!r}")
            return super().publish(node, topic, message)

    routes = Router()

    @routes.on_startup
    async def hello(server: Server) -> None:
        await server.publish("news", "hello")

    @routes.on_shutdown
    async def bye(server: Server) -> None:
        await server.publish("news", "bye")

    server = serve(routes, "127.0.0.1", 0, broker=Watched())
    await server.start()
    await server.close()
    assert events == ["attach", "publish 'hello'", "publish 'bye'", "detach"]
