"""``server.stats()``: every counter moves by exactly what real clients did."""

from __future__ import annotations

import array
import asyncio
import contextlib
import enum
import json
import logging
import os
import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wsserver import Request, Router, WebSocket, broadcast, serve
from wsserver.response import Response, text
from wsserver.server.stats import MESSAGE_FIELDS, ServerStats

from .conftest import StartServer
from .helpers import RawClient, upgrade_request, wait_for

TIMEOUT = 5


def routes() -> Router:
    r = Router()

    @r.websocket("/echo")
    async def echo(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    @r.websocket("/closer")
    async def closer(request: Request, ws: WebSocket) -> None:
        await ws.close(4321, "as planned")

    @r.websocket("/broken")
    async def broken(request: Request, ws: WebSocket) -> None:
        raise RuntimeError("the handler broke")

    @r.websocket("/only-app", origins=["https://app.example"])
    async def guarded(request: Request, ws: WebSocket) -> None:
        await ws.recv()

    @r.websocket("/sleepy")
    async def sleepy(request: Request, ws: WebSocket) -> None:
        await asyncio.sleep(3600)

    @r.get("/page")
    async def page(request: Request) -> Response:
        return text("hi")

    return r


async def settle(server: Any) -> None:
    """Until every connection is gone (counts land when a connection closes)."""
    for _ in range(300):
        if not server.connections:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("connections did not close")


async def test_messages_and_bytes_by_route(run_server: StartServer) -> None:
    server = await run_server(routes())
    url = f"ws://127.0.0.1:{server.port}"
    async with websockets.connect(url + "/echo", compression=None) as ws:
        for message in ("hello", "café", b"\x00\x01\x02", b""):
            await ws.send(message)
            assert await ws.recv() == message
        during = server.stats()
        assert during["connections"] == {"echo": 1}
        assert during["routes"]["echo"]["text_in"] == 2  # open connections count too
    await settle(server)
    echo = server.stats()["routes"]["echo"]
    assert echo["opened"] == 1 and echo["closed"] == 1
    assert (echo["text_in"], echo["binary_in"]) == (2, 2)
    assert (echo["text_out"], echo["binary_out"]) == (2, 2)
    payload = len(b"hello") + len("café".encode()) + 3 + 0
    assert echo["payload_in"] == payload and echo["payload_out"] == payload
    # On the wire: each message's header (2 bytes out; 6 in, masked) and the close frames.
    assert echo["wire_out"] == payload + 4 * 2 + 4  # + our close frame (2 + code)
    assert echo["wire_in"] == payload + 4 * 6 + 8  # + the client's masked close frame
    assert server.stats()["connections"] == {}


def test_a_closed_connection_adds_every_message_counter_to_its_route() -> None:
    # connection_closed() names the counters one by one (a loop costs more):
    # one added to MESSAGE_FIELDS and not there would be dropped at each close.
    stats = ServerStats()
    counts = {name: 10 + i for i, name in enumerate(MESSAGE_FIELDS)}
    conn = SimpleNamespace(deflate=None, close_sent=(1000, ""), close_received=(1000, ""))
    closed = SimpleNamespace(route_name="r", conn=conn, **counts)
    for _ in range(2):
        stats.connection_closed(closed, 1.0)  # type: ignore[arg-type]
    totals = stats.route("r")
    assert {name: getattr(totals, name) for name in MESSAGE_FIELDS} == {
        name: 2 * n for name, n in counts.items()
    }


async def test_what_was_sent_is_counted_by_its_kind_and_bytes(run_server: StartServer) -> None:
    # A str subclass (an enum's) went out as text and was counted as binary,
    # its characters as bytes; a view of int32s counted its items, not bytes.
    class Colour(enum.StrEnum):
        RED = "rouge, é"

    words = array.array("i", [1, 2, 3])
    r = Router()

    @r.websocket("/kinds")
    async def kinds(request: Request, ws: WebSocket) -> None:
        await ws.send(Colour.RED)
        await ws.send(memoryview(words))
        await ws.send(bytearray(b"ab"))
        ws.send_nowait(Colour.RED)  # (broadcast's and send_nowait()'s way)

    server = await run_server(r, compression=None)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/kinds") as ws:
        assert await ws.recv() == "rouge, é"
        assert await ws.recv() == words.tobytes()
        assert await ws.recv() == b"ab"
        assert await ws.recv() == "rouge, é"
    await settle(server)
    row = server.stats()["routes"]["kinds"]
    assert (row["text_out"], row["binary_out"]) == (2, 2)
    assert row["payload_out"] == 2 * len("rouge, é".encode()) + 12 + 2


async def test_compressed_bytes(run_server: StartServer) -> None:
    server = await run_server(routes(), compression="deflate")
    message = "compressible " * 1000
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
        await ws.send(message)
        assert await ws.recv() == message
    await settle(server)
    compression = server.stats()["compression"]
    assert compression["payload_in"] == compression["payload_out"] == len(message)
    assert 0 < compression["wire_in"] < len(message) // 10
    assert 0 < compression["wire_out"] < len(message) // 10


async def test_handshakes_http_responses_close_codes_and_errors(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="wsserver.server")  # the broken handler's trace
    server = await run_server(routes())
    url = f"ws://127.0.0.1:{server.port}"
    async with websockets.connect(url + "/closer") as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    async with websockets.connect(url + "/broken") as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    with pytest.raises(InvalidStatus):
        await websockets.connect(url + "/only-app", origin="https://evil.example")  # type: ignore[arg-type]
    with pytest.raises(InvalidStatus):
        await websockets.connect(url + "/nowhere")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{server.port}/page")).status_code == 200
        assert (await client.get(f"http://127.0.0.1:{server.port}/echo")).status_code == 426
    raw = await RawClient.connect(server.port, "/echo")
    raw.send(0x1, b"\xff\xfe")  # invalid UTF-8: we close with 1007
    await raw.expect_close(1007)
    await settle(server)
    stats = server.stats()
    assert stats["handshakes"] == {101: 3, 403: 1, 404: 1}
    # Every HTTP response, the handshakes' denials included (not the 101s).
    assert stats["http_responses"] == {200: 1, 426: 1, 403: 1, 404: 1}
    assert stats["close_codes"]["sent"] == {4321: 1, 1011: 1, 1007: 1}
    assert stats["close_codes"]["received"] == {4321: 1, 1011: 1, 1007: 1}  # echoed back
    assert stats["handler_errors"] == 1


async def test_every_failing_handler_and_hook_is_counted_and_named_by_its_client(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A Router's HTTP handler and on_connect hook that raised were logged and
    # answered 500, but not counted in handler_errors; behind a proxy, their
    # error lines (and a WebSocket handler's) named the proxy, while the
    # access lines named the client.
    caplog.set_level(logging.ERROR, logger="wsserver.server")
    gone = asyncio.Event()

    async def hook(request: Request) -> None:
        raise RuntimeError("the hook broke")

    r = routes()

    @r.get("/page-broken")
    async def page_broken(request: Request) -> Response:
        raise RuntimeError("the page broke")

    @r.get("/late-broken")
    async def late_broken(request: Request) -> Response:
        try:
            await gone.wait()
        except asyncio.CancelledError:
            # The client left meanwhile (which cancels the handler): a
            # failure as it ends is still one to count.
            raise RuntimeError("the late page broke") from None
        raise AssertionError("the client's leaving went unseen")

    @r.websocket("/hooked", on_connect=hook)
    async def hooked(request: Request, ws: WebSocket) -> None:
        await ws.recv()

    server = await run_server(r, proxy_headers=True)
    url = f"ws://127.0.0.1:{server.port}"
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    async with httpx.AsyncClient() as client:
        response = await client.get(
            f"http://127.0.0.1:{server.port}/page-broken", headers=forwarded
        )
        assert response.status_code == 500
    with pytest.raises(InvalidStatus):
        await websockets.connect(url + "/hooked", additional_headers=forwarded)
    async with websockets.connect(url + "/broken", additional_headers=forwarded) as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /late-broken HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n")
    await asyncio.sleep(0.1)
    writer.close()
    await asyncio.sleep(0.1)
    gone.set()
    await settle(server)
    for _ in range(100):
        if server.stats()["handler_errors"] == 4:
            break
        await asyncio.sleep(0.01)
    assert server.stats()["handler_errors"] == 4
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 4, errors
    assert all(line.endswith("from 203.0.113.7:0") for line in errors), errors


async def test_a_request_after_a_refused_upgrade_on_its_connection_is_no_handshake(
    run_server: StartServer,
) -> None:
    # A 404 to an upgrade kept the connection, and the next request's 400
    # was counted as a handshake's answer too. The 404 ends the connection
    # now: what follows it is not read, and counted as nothing.
    server = await run_server(routes())
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/nowhere") + b"GARBAGE\x01 / HTTP/1.1\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), TIMEOUT)
    assert answer.startswith(b"HTTP/1.1 404 ") and b"HTTP/1.1 400 " not in answer, answer
    writer.close()
    await settle(server)
    stats = server.stats()
    assert stats["handshakes"] == {404: 1}
    assert stats["http_responses"] == {404: 1}


async def test_a_status_feed_closed_by_the_keepalive_leaves_no_close_code_on_the_page(
    run_server: StartServer,
) -> None:
    # The feed counted the code the server sent (1011) where the server's
    # figures count the one received (none: 1006), and the page showed it.
    server = await run_server(
        routes(), status_path="/_status", ping_interval=0.2, ping_timeout=0.2, close_timeout=0.2
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/_status/ws"))
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    # A laptop gone to sleep: nothing read, nothing answered; 1011 for the pong
    # that never came, then TCP closed.
    await wait_for(lambda: server.stats()["close_codes"]["sent"] == {1011: 1}, what="the 1011")
    await settle(server)
    await asyncio.sleep(1.0)  # (a snapshot a second: not the one the feed was sent at first)
    writer.close()
    assert server.stats()["close_codes"]["received"] == {1006: 1}
    snapshot = await server.status.snapshot()  # type: ignore[union-attr]
    assert snapshot["totals"]["close_codes"] == {}


async def test_upgrades_refused_for_the_server_s_limits_are_counted_as_handshakes(
    run_server: StartServer,
) -> None:
    # A 503 for limit_concurrency and a 413 for a body over the limit, to
    # upgrade requests, were counted as HTTP responses only (max_connections'
    # 503 as a handshake too).
    server = await run_server(routes(), limit_concurrency=1, max_header_size=1024)
    busy = await RawClient.connect(server.port, "/echo")  # the one connection allowed
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(f"ws://127.0.0.1:{server.port}/echo")
    assert refused.value.response.status_code == 503
    busy.close()
    await settle(server)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/echo", [("Content-Length", "5000")]))
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 413 ")
    writer.close()
    await settle(server)
    stats = server.stats()
    assert stats["handshakes"] == {101: 1, 503: 1, 413: 1}, stats["handshakes"]


async def test_an_upgrade_request_an_http_route_answers_is_counted_as_a_handshake(
    run_server: StartServer,
) -> None:
    # An upgrade request to an HTTP route (its handler's answer, then the
    # connection closed, as after a refused upgrade) was counted as an HTTP
    # response only, where the same request with a body too large (413), or
    # at a path with no route (404), counted as a handshake too: a dashboard
    # of failed handshakes missed clients that tried a WebSocket at a page.
    server = await run_server(routes(), max_body_size=1024)
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(f"ws://127.0.0.1:{server.port}/page")
    assert refused.value.response.status_code == 200
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/page", [("Content-Length", "5000")]))
    assert (await asyncio.wait_for(reader.readline(), TIMEOUT)).startswith(b"HTTP/1.1 413 ")
    writer.close()
    async with httpx.AsyncClient() as client:  # (no upgrade asked: no handshake)
        assert (await client.get(f"http://127.0.0.1:{server.port}/page")).status_code == 200
    await settle(server)
    stats = server.stats()
    assert stats["handshakes"] == {200: 1, 413: 1}, stats["handshakes"]
    assert stats["http_responses"] == {200: 2, 413: 1}, stats["http_responses"]


async def test_keepalive_timeouts_and_backpressure(run_server: StartServer) -> None:
    server = await run_server(routes(), ping_interval=0.1, ping_timeout=0.2, max_queue=2)
    # A client that never answers pings.
    silent = RawClient(*await asyncio.open_connection("127.0.0.1", server.port))
    silent.writer.write(upgrade_request("/sleepy"))
    # A client that sends more than the handler reads: reading pauses.
    flooder = await RawClient.connect(server.port, "/sleepy")
    for _ in range(20):
        flooder.send(0x1, b"x" * 100)
    await asyncio.sleep(0.1)
    assert server.stats()["backpressure"]["read_pauses"] == 1
    for _ in range(100):
        if server.stats()["keepalive_timeouts"] >= 1:
            break
        await asyncio.sleep(0.05)
    assert server.stats()["keepalive_timeouts"] >= 1
    silent.close()
    flooder.close()


async def test_the_wire_bytes_out_never_go_down_when_a_connection_is_aborted(
    run_server: StartServer,
) -> None:
    # A count taken (a scrape) while frames waited in the transport for a
    # client that reads nothing counted them; the abort at close_timeout then
    # took them off, as not sent: wsserver_wire_bytes_total went down, which
    # Prometheus reads as a counter reset (rate() sees the whole total anew).
    sent, go = asyncio.Event(), asyncio.Event()
    r = Router()

    @r.websocket("/flood")
    async def flood(request: Request, ws: WebSocket) -> None:
        for _ in range(128):  # 8 MiB: more than the kernel takes for the client
            await ws.send(b"x" * 65536)
        sent.set()
        await go.wait()
        await ws.close()  # never answered: aborted at close_timeout

    server = await run_server(r, write_limit=16 << 20, close_timeout=0.2, compression=None)
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(upgrade_request("/flood"))  # and never read
        await asyncio.wait_for(sent.wait(), TIMEOUT)
        during = server.stats()
        go.set()
        await settle(server)
    finally:
        writer.transport.abort()
    after = server.stats()
    assert after["routes"]["flood"]["closed"] == 1
    wire_out = during["routes"]["flood"]["wire_out"], after["routes"]["flood"]["wire_out"]
    assert 0 < wire_out[0] <= wire_out[1] < 128 * 65536, wire_out


async def test_broadcast_skips_and_write_pauses(run_server: StartServer) -> None:
    server = await run_server(routes(), write_limit=1024)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade_request("/sleepy"))  # and never read
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(0.05)
    skipped = 0
    for _ in range(200):
        skipped += len(broadcast(server.websockets, b"x" * 65536))
    stats = server.stats()
    assert skipped > 0 and stats["broadcast_skipped"] == skipped
    assert stats["backpressure"]["write_pauses"] >= 1
    writer.transport.abort()


async def test_pubsub_counts() -> None:
    r = Router()

    @r.websocket("/sub")
    async def sub(request: Request, ws: WebSocket) -> None:
        ws.subscribe("news")
        await ws.send("ready")
        await ws.wait_closed()

    server = serve(r, "127.0.0.1", 0, ping_interval=None)
    async with server:
        clients = [await websockets.connect(f"ws://127.0.0.1:{server.port}/sub") for _ in range(3)]
        for ws in clients:
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "ready"
        assert await server.publish("news", "one") == 3
        assert await server.publish("nobody-listens", "two") == 0
        pubsub = server.stats()["pubsub"]
        assert pubsub["topics"] == 1 and pubsub["delivered"] == 3 and pubsub["skipped"] == 0
        for ws in clients:
            await ws.close()


async def test_the_status_feed_sends_one_snapshot_a_second_whatever_the_page_sends(
    run_server: StartServer,
) -> None:
    # Each message from the client woke the feed, which answered it with a
    # snapshot (a walk over every connection): a page sending messages as
    # fast as it could, with no token needed by default, held the server.
    server = await run_server(Router(), status_path="/_status")
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/_status/ws") as feed:
        await asyncio.wait_for(feed.recv(), 5)  # the first, at once
        for _ in range(200):
            await feed.send("x")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.5
        snapshots = 0
        while (left := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(feed.recv(), left)
            except TimeoutError:
                break
            snapshots += 1
        assert 1 <= snapshots <= 4  # one a second, not one per message


async def test_the_status_page_counts_an_app_route_named_with_an_underscore(
    run_server: StartServer,
) -> None:
    # Only the page's own feed is left out of the totals, not every route
    # whose name starts with "_".
    routes = Router()

    @routes.websocket("/private")
    async def _private(request: Request, ws: WebSocket) -> None:
        async for _ in ws:
            pass

    server = await run_server(routes, status_path="/_status")
    url = f"ws://127.0.0.1:{server.port}"
    async with websockets.connect(f"{url}/private"), websockets.connect(f"{url}/_status/ws") as f:
        feed = f
        totals = json.loads(await asyncio.wait_for(feed.recv(), 5))["totals"]
    assert totals["connections"] == 1


async def test_the_status_page_leaves_its_own_feeds_out_of_close_codes_and_worker_rows(
    run_server: StartServer,
) -> None:
    # The page's close codes were every connection's, its feeds' included, and
    # its per-worker row added up every route, the feed's messages included.
    server = await run_server(routes(), status_path="/_status")
    url = f"ws://127.0.0.1:{server.port}"
    for code in (4000, 1001):
        async with websockets.connect(f"{url}/_status/ws") as feed:
            await asyncio.wait_for(feed.recv(), 5)
            await feed.close(code)
    async with websockets.connect(f"{url}/closer") as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    await settle(server)
    assert server.stats()["close_codes"]["received"] == {4000: 1, 1001: 1, 4321: 1}
    async with websockets.connect(f"{url}/_status/ws") as feed:
        await asyncio.wait_for(feed.recv(), 5)  # (perhaps the one of a second ago)
        snapshot = json.loads(await asyncio.wait_for(feed.recv(), 5))
    assert snapshot["totals"]["close_codes"] == {"4321": 1}
    ((name, row),) = snapshot["worker_totals"].items()
    assert name == "1" and row.pop("taken") <= snapshot["time"] and row == snapshot["totals"]
    assert row["text_out"] == 0 and row["connections"] == 0  # not the feeds' snapshots


async def test_a_retiring_worker_and_its_replacement_both_show_on_the_status_page(
    tmp_path: Any,
) -> None:
    # In a rolling restart the new worker takes the old one's slot while the
    # old one finishes its connections: both are shown (they wrote one file
    # in turn, so the page's figures went back and forth between them).
    def room() -> Router:
        routes = Router()

        @routes.websocket("/room")
        async def room(request: Request, ws: WebSocket) -> None:
            async for _ in ws:
                pass

        return routes

    servers = [serve(room(), "127.0.0.1", 0, status_path="/_status") for _ in range(2)]
    for server in servers:
        assert server.status is not None
        server.status.share(str(tmp_path), "1")  # the same slot
        await server.start()
    try:
        retiring, replacement = (f"ws://127.0.0.1:{s.port}" for s in servers)
        async with contextlib.AsyncExitStack() as clients:
            for url in (retiring, retiring, replacement):
                await clients.enter_async_context(websockets.connect(f"{url}/room"))
            await asyncio.sleep(1.2)  # both wrote their figures
            for url in (retiring, replacement):
                async with websockets.connect(f"{url}/_status/ws") as feed:
                    snapshot = json.loads(await asyncio.wait_for(feed.recv(), 5))
                assert snapshot["totals"]["connections"] == 3, snapshot["worker_totals"]
                assert len(snapshot["worker_totals"]) == 2
    finally:
        for server in servers:
            await server.close(timeout=1)


async def test_many_status_feeds_cost_one_count_of_the_connections_a_second(
    run_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each snapshot adds up every open connection's counts; each feed asked
    # for its own every second, so that a few dozen pages (no token needed by
    # default) multiplied that walk. They share one a second.
    server = await run_server(Router(), status_path="/_status")
    walks = 0
    count = server.counters.snapshot
    count_in_steps = server.counters.snapshot_in_steps

    def counted(*args: Any) -> Any:
        nonlocal walks
        walks += 1
        return count(*args)

    async def counted_in_steps(*args: Any) -> Any:
        nonlocal walks
        walks += 1
        await asyncio.sleep(0.05)  # (a walk over many connections takes a while)
        return await count_in_steps(*args)

    server.counters.snapshot = counted  # type: ignore[method-assign]
    server.counters.snapshot_in_steps = counted_in_steps  # type: ignore[method-assign]
    # The feeds that waited for the same walk share the page's snapshot too
    # (each built its own: every worker's file read again, per feed).
    from wsserver.server import status

    built = 0
    add_up = status.totals

    def counted_totals(*args: Any) -> Any:
        nonlocal built
        built += 1
        return add_up(*args)

    monkeypatch.setattr(status, "totals", counted_totals)
    url = f"ws://127.0.0.1:{server.port}/_status/ws"
    started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        feeds = [await stack.enter_async_context(websockets.connect(url)) for _ in range(20)]
        for _ in range(3):  # three snapshots each
            await asyncio.gather(*(asyncio.wait_for(feed.recv(), 5) for feed in feeds))
    seconds = time.monotonic() - started
    # About one a second (the first at once), not 60: however slow the machine.
    assert walks <= seconds / 0.9 + 2, (walks, seconds)
    assert built <= seconds / 0.9 + 2, (built, seconds)


async def test_the_status_feed_sends_what_the_page_shows_encoded_once_a_second(
    run_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each feed sent every worker's whole stats() (each route's counters and
    # connection histogram), of which the page shows none, encoded for each
    # feed: some 420 bytes a route a worker, to every page, every second.
    many = Router()
    for i in range(100):

        async def handler(request: Request, ws: WebSocket) -> None:
            await ws.recv()

        many.add_websocket_route(handler, f"/room{i}", name=f"room{i}")
    server = await run_server(many, status_path="/_status")
    from wsserver.server import status

    encoded = 0

    def counted(value: Any) -> str:
        nonlocal encoded
        encoded += 1
        return json.dumps(value)

    monkeypatch.setattr(status, "json", SimpleNamespace(dumps=counted, loads=json.loads))
    url = f"ws://127.0.0.1:{server.port}/_status/ws"
    started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        feeds = [await stack.enter_async_context(websockets.connect(url)) for _ in range(10)]
        for _ in range(2):
            sent = await asyncio.gather(*(asyncio.wait_for(feed.recv(), 5) for feed in feeds))
            for message in sent:
                assert set(json.loads(message)) == {"time", "totals", "worker_totals", "latency"}
                assert len(message) < 1500, len(message)  # (not 100 routes' figures)
    seconds = time.monotonic() - started
    assert encoded <= seconds / 0.9 + 2, (encoded, seconds)  # once a snapshot, not a feed


async def test_a_killed_worker_s_status_file_goes_and_feeds_share_the_reading(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each process has its file: one killed (no stop() to remove it) left it
    # for good, and every feed read every file each second.
    from pathlib import Path

    killed = tmp_path / "worker-2.deadbeef.json"
    killed.write_text("{}")
    os.utime(killed, (time.time() - 60, time.time() - 60))
    server = serve(Router(), "127.0.0.1", 0, status_path="/_status")
    assert server.status is not None
    server.status.share(str(tmp_path), "1")
    reads = 0
    read_text = Path.read_text

    def counted(self: Path, *args: Any, **kwargs: Any) -> str:
        nonlocal reads
        if self.parent == tmp_path:
            reads += 1
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counted)
    started = time.monotonic()
    async with server:
        sibling = tmp_path / "worker-3.cafe.json"
        sibling.write_text(json.dumps(server.stats()))
        url = f"ws://127.0.0.1:{server.port}/_status/ws"
        async with contextlib.AsyncExitStack() as stack:
            feeds = [await stack.enter_async_context(websockets.connect(url)) for _ in range(10)]
            for _ in range(2):
                snapshots = await asyncio.gather(*(asyncio.wait_for(f.recv(), 5) for f in feeds))
        assert all(set(json.loads(one)["worker_totals"]) == {"1", "3"} for one in snapshots)
    assert not killed.exists()
    seconds = time.monotonic() - started
    assert reads <= seconds / 0.9 + 2, (reads, seconds)  # about once a second, not per feed


KILLED_WORKER = """
import asyncio, sys
from wsserver import Router, serve


async def main():
    server = serve(Router(), "127.0.0.1", 0, status_path="/_status", ping_interval=None)
    server.status.share(sys.argv[1], "2")
    async with server:
        print(server.port, flush=True)
        await asyncio.Event().wait()


asyncio.run(main())
"""


async def test_a_worker_killed_leaves_the_status_page_at_once(tmp_path: Any) -> None:
    # A worker killed (SIGKILL, the OOM killer) never removes its file: the
    # page went on showing it, its connections (gone with it) counted, until
    # its file was STALE, 5 s; with its replacement in the same slot, a
    # worker too many. A file of a process that is no more is left out.
    import signal
    import sys

    server = serve(Router(), "127.0.0.1", 0, status_path="/_status", ping_interval=None)
    assert server.status is not None
    server.status.share(str(tmp_path), "1")
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED_WORKER, str(tmp_path), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert worker.stdout is not None
        await asyncio.wait_for(worker.stdout.readline(), 20)  # (it serves)
        async with server, websockets.connect(f"ws://127.0.0.1:{server.port}/_status/ws") as feed:
            snapshot = json.loads(await asyncio.wait_for(feed.recv(), 10))
            while "2" not in snapshot["worker_totals"]:  # (until its file was written)
                snapshot = json.loads(await asyncio.wait_for(feed.recv(), 10))
            worker.send_signal(signal.SIGKILL)
            await worker.wait()
            killed_at = time.time()
            while snapshot["time"] <= killed_at:  # (one taken before may be sent)
                snapshot = json.loads(await asyncio.wait_for(feed.recv(), 10))
            assert list(snapshot["worker_totals"]) == ["1"]
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()


async def test_the_status_feed_refuses_pages_of_other_origins(run_server: StartServer) -> None:
    # The page opens its feed from its own origin. Without `origins` set, any
    # web page a visitor of the server opened could otherwise read the feed
    # (cross-site WebSocket hijacking): it is refused with 403.
    server = await run_server(Router(), status_path="/_status")
    url = f"ws://127.0.0.1:{server.port}/_status/ws"
    for origin in (f"http://127.0.0.1:{server.port}", f"HTTP://127.0.0.1:{server.port}", None):
        async with websockets.connect(url, origin=origin) as feed:  # type: ignore[arg-type]
            assert "worker_totals" in json.loads(await asyncio.wait_for(feed.recv(), 5))
    for origin in ("http://evil.example", "http://127.0.0.1", f"http://127.0.0.1:{server.port}x"):
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(url, origin=origin)  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403, origin


async def test_the_status_feed_admits_its_https_page_behind_a_tls_terminating_proxy(
    run_server: StartServer,
) -> None:
    # nginx ends TLS and passes the request on over plain HTTP, Host as the
    # browser sent it: the page is https://status.example/_status, the feed's
    # request came by http. Without --proxy-headers the feed was a 403.
    server = await run_server(Router(), status_path="/_status")

    def feed(host: str, origin: str) -> Any:
        return websockets.connect(
            f"ws://{host}/_status/ws",
            host="127.0.0.1",
            port=server.port,
            origin=origin,  # type: ignore[arg-type]
        )

    for host, origin in (
        ("status.example", "https://status.example"),
        ("status.example:8443", "https://status.example:8443"),
    ):
        async with feed(host, origin) as ws:
            assert "worker_totals" in json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    # Another host, or another port, is still another origin.
    for host, origin in (
        ("status.example", "https://evil.example"),
        ("status.example:8443", "https://status.example"),
    ):
        with pytest.raises(InvalidStatus) as refused:
            await feed(host, origin)
        assert refused.value.response.status_code == 403, origin


async def test_a_percent_encoded_status_path_serves_its_page_and_its_feed(
    run_server: StartServer,
) -> None:
    # (As a metrics path's.) A status path percent-encoded, as a served path's
    # non-ASCII characters must be, was accepted and answered 404: the page and
    # its feed were routed at the encoded text, requests by their decoded path.
    server = await run_server(Router(), status_path="/%C3%A9tat")
    async with httpx.AsyncClient() as client:
        page = await client.get(f"http://127.0.0.1:{server.port}/%C3%A9tat")
    assert page.status_code == 200 and "wsserver status" in page.text
    # The page opens location.pathname + "/ws": the path as the browser sent it.
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/%C3%A9tat/ws") as feed:
        assert "worker_totals" in json.loads(await asyncio.wait_for(feed.recv(), TIMEOUT))


async def test_the_status_feed_takes_the_origins_setting_when_set(run_server: StartServer) -> None:
    server = await run_server(
        Router(), status_path="/_status", origins=["https://dashboard.example"]
    )
    url = f"ws://127.0.0.1:{server.port}/_status/ws"
    async with websockets.connect(url, origin="https://dashboard.example") as feed:  # type: ignore[arg-type]
        await asyncio.wait_for(feed.recv(), 5)
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(url, origin=f"http://127.0.0.1:{server.port}")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403


async def test_the_periodic_count_of_open_connections_lets_the_loop_run(
    run_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The status page, the workers' shared figures and a scrape added up every
    # open connection in one go: at 100,000 connections a stall of every
    # connection each second. Now a few thousand at a time, the loop running
    # between, with the same figures as stats().
    server = await run_server(routes(), compression="deflate")
    async with contextlib.AsyncExitStack() as stack:
        for path, deflate in (("/echo", True), ("/echo", False), ("/sleepy", False)) * 3:
            ws = await stack.enter_async_context(
                websockets.connect(
                    f"ws://127.0.0.1:{server.port}{path}",
                    compression="deflate" if deflate else None,
                )
            )
            if path == "/echo":
                await ws.send("x" * 100)
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "x" * 100
        await asyncio.sleep(0.1)
        ran: list[int] = []

        async def beside() -> None:
            for _ in range(100):
                ran.append(len(ran))
                await asyncio.sleep(0)

        from wsserver.server import stats

        monkeypatch.setattr(stats, "STEP", 2)
        other = asyncio.create_task(beside())
        await asyncio.sleep(0)
        before = len(ran)
        stepped = await server.recent_stats(0)  # (what the status page and metrics ask)
        assert len(ran) - before >= 4  # 9 connections, 2 at a time: the loop ran between
        other.cancel()
        assert stepped == server.stats()
        assert stepped["connections"] == {"echo": 6, "sleepy": 3}
        assert stepped["compression"]["payload_in"] == 300
        assert stepped["routes"]["echo"]["text_in"] == 6


def test_a_status_token_without_a_status_page_is_said(caplog: pytest.LogCaptureFixture) -> None:
    # It protected nothing, silently: a page was perhaps meant to be served.
    with caplog.at_level(logging.WARNING, logger="wsserver.server"):
        serve(Router(), status_token="secret")
        serve(Router(), status_token="secret", status_path="/_status")
    said = [r.getMessage() for r in caplog.records]
    assert said == ["status_token is set but status_path is not: there is no status page"]


async def test_an_app_route_that_a_builtin_endpoint_hides_is_warned_of(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The server's own endpoints are served first: a route of the app at the
    # same path was never reached, and nothing said so.
    r = Router()

    @r.get("/metrics")
    async def app_metrics(request: Request) -> Any:
        return text("the app's")

    @r.websocket("/_status/ws")
    async def app_feed(request: Request, ws: WebSocket) -> None:
        await ws.send("the app's")

    @r.get("/about")  # (before "/<page>", which would take its path)
    async def about(request: Request) -> Any:
        return text("the about page")

    @r.get("/<page>")
    async def page(request: Request, page: str) -> Any:
        return text(page)

    with caplog.at_level(logging.WARNING, "wsserver"):
        server = await run_server(r, metrics_path="/metrics", status_path="/_status")
    hidden = [rec.getMessage() for rec in caplog.records if "never reach" in rec.getMessage()]
    assert len(hidden) == 4, hidden
    for uri, path in [
        ("/metrics", "/metrics"),
        ("/_status/ws", "/_status/ws"),
        ("/<page>", "/metrics"),
        ("/<page>", "/_status"),
    ]:
        assert any(f"route {uri!r}" in m and f"{path!r}" in m for m in hidden), (uri, path)
    assert not any("/about" in m for m in hidden)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        response = await client.get("/metrics")
        assert response.status_code == 200 and "wsserver_" in response.text  # the server's
        assert (await client.get("/about")).text == "the about page"
        assert (await client.get("/faq")).text == "faq"


async def test_a_route_hidden_at_the_trailing_slash_form_is_warned_of_too(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The server's endpoints take "/metrics/" too: a strict route there is hidden.
    r = Router(strict_slashes=True)

    @r.get("/metrics/")
    async def app_metrics(request: Request) -> Any:
        return text("the app's")

    @r.get("/<page>/")
    async def page(request: Request, page: str) -> Any:
        return text(page)

    with caplog.at_level(logging.WARNING, "wsserver"):
        server = await run_server(r, metrics_path="/metrics")
    hidden = [rec.getMessage() for rec in caplog.records if "never reach" in rec.getMessage()]
    assert len(hidden) == 2, hidden
    assert any("route '/metrics/'" in m and "'/metrics/'" in m for m in hidden), hidden
    assert any("route '/<page>/'" in m for m in hidden), hidden
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        response = await client.get("/metrics/")
        assert response.status_code == 200 and "wsserver_" in response.text  # the server's
        assert (await client.get("/faq/")).text == "faq"


def test_a_duration_on_a_bound_is_counted_at_most_that_long() -> None:
    # Prometheus's le: "less than or equal". A duration of exactly 1 s is in
    # the 1.0 bucket; a hair more is in the next.
    from wsserver.server.stats import Durations

    durations = Durations((0.5, 1.0, 2.0))
    for seconds in (0.0, 1.0, 1.0000001, 3.0):
        durations.observe(seconds)
    report = durations.report()
    assert report["buckets"] == {"0.5": 1, "1.0": 2, "2.0": 3, "+Inf": 4}
    assert report["count"] == 4 and report["sum"] == pytest.approx(5.0000001)
    json.dumps(report)  # (server.stats() is JSON-ready)


def test_the_status_page_s_percentiles_are_prometheus_s() -> None:
    # histogram_quantile's: linear within the bucket the rank falls in; past
    # the last bound, that bound; none of nothing.
    from wsserver.server.status import quantile

    buckets = {"0.001": 0, "0.0025": 50, "0.005": 99, "0.01": 100, "+Inf": 100}
    assert quantile(buckets, 0.5) == pytest.approx(2.5)
    assert quantile(buckets, 0.25) == pytest.approx(1.75)
    assert quantile(buckets, 0.99) == pytest.approx(5.0)
    assert quantile({"0.1": 0, "1.0": 0, "+Inf": 3}, 0.5) == pytest.approx(1000.0)
    assert quantile({"0.1": 0, "+Inf": 0}, 0.5) is None


def test_the_status_page_s_percentiles_are_of_the_last_minute() -> None:
    from wsserver.server.status import added_latency, window

    bounds = (0.001, 1.0, 2.5)

    def sampled(*pairs: tuple[float, list[int]]) -> list[tuple[float, dict[str, list[int]]]]:
        return [(when, {"http": counts}) for when, counts in pairs]

    # (Per bucket: at most 1 ms, 1 ms to 1 s, 1 to 2.5 s, past it.)
    samples = sampled((5.0, [2, 0, 0, 0]), (30.0, [5, 0, 0, 0]), (60.0, [8, 0, 1, 0]))
    assert window(bounds, [10, 0, 1, 0], samples, "http", 30.0) == {
        "0.001": 10, "1.0": 10, "2.5": 11, "+Inf": 11
    }  # (started less than a minute ago: all of it)  # fmt: skip
    assert window(bounds, [10, 0, 1, 0], samples, "http", 70.0)["+Inf"] == 9  # (since 5 s)
    assert window(bounds, [10, 0, 1, 0], samples, "http", 95.0)["+Inf"] == 6  # (since 30 s)
    assert window(bounds, [10, 0, 3, 0], samples, "http", 200.0) == {
        "0.001": 2, "1.0": 2, "2.5": 4, "+Inf": 4
    }  # (since 60 s: the newest a minute old)  # fmt: skip

    # Each worker's own window, added up (as Prometheus's sum(increase())); a
    # worker of an older version, which sends none, adds nothing.
    fast = {"0.001": 100, "1.0": 100, "2.5": 100, "+Inf": 100}
    slow = {"0.001": 0, "1.0": 0, "2.5": 110, "+Inf": 110}
    latency = added_latency([{"handshakes": fast}, {"handshakes": slow, "http": {}}, {}])
    handshakes = latency["handshakes"]
    assert handshakes["count"] == 210 and 1000 < handshakes["p50"] <= 2500, handshakes
    assert latency["http"] == {"count": 0, "p50": None, "p99": None}


async def test_a_status_page_opened_late_shows_the_last_window_not_all_time(
    run_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The window was taken from the snapshots the page had seen: a page opened
    # an hour after the start showed, for its first minute, the percentiles of
    # the whole hour. Each process notes its own histograms from its start.
    from wsserver.server import status

    monkeypatch.setattr(status, "LATENCY_WINDOW", 0.6)
    monkeypatch.setattr(status, "SAMPLE_EVERY", 0.1)
    server = await run_server(routes(), status_path="/_status")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
        for _ in range(5):
            assert (await client.get("/page")).status_code == 200
        await asyncio.sleep(1.0)  # (more than a window since)
        assert (await client.get("/page")).status_code == 200
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/_status/ws") as feed:
        snapshot = json.loads(await asyncio.wait_for(feed.recv(), 5))
    assert snapshot["latency"]["http"]["count"] == 1, snapshot["latency"]


async def test_a_status_file_that_cannot_be_written_is_said_once_and_again_when_it_can(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A worker's once-a-second write of its figures failed without a word
    # (the directory removed by a tmp cleaner, a disk full): the page showed
    # fewer workers, and no line said why.
    directory = tmp_path / "status"
    directory.mkdir()
    server = serve(Router(), "127.0.0.1", 0, status_path="/_status")
    assert server.status is not None
    server.status.share(str(directory), "1")
    directory.rename(tmp_path / "away")
    caplog.set_level(logging.WARNING, "wsserver")
    async with server:

        def said(words: str) -> list[str]:
            return [r.getMessage() for r in caplog.records if words in r.getMessage()]

        await wait_for(lambda: said("writing"), what="the failure's line")
        await asyncio.sleep(1.5)  # (another write failed meanwhile: not said again)
        assert len(said("writing")) == 1 and str(directory) in said("writing")[0]
        directory.mkdir()
        await wait_for(lambda: any(directory.glob("worker-1*.json")), what="the figures written")
        await wait_for(lambda: said("written again"), what="the recovery's line")


async def test_the_status_feed_is_no_websocket_of_max_connections(run_server: StartServer) -> None:
    # The server's own endpoint, as for limit_concurrency: a server full of
    # the application's WebSockets refused the page's feed (503) when it was
    # most wanted, and a page left open took one of the application's places.
    server = await run_server(routes(), status_path="/_status", max_connections=1)
    base = f"ws://127.0.0.1:{server.port}"
    async with websockets.connect(f"{base}/echo") as client:
        async with websockets.connect(f"{base}/_status/ws") as feed:  # the server is full
            assert "worker_totals" in json.loads(await asyncio.wait_for(feed.recv(), TIMEOUT))
        with pytest.raises(InvalidStatus) as refused:  # the application's limit holds
            await websockets.connect(f"{base}/echo")
        assert refused.value.response.status_code == 503
        await client.send("still served")
        assert await asyncio.wait_for(client.recv(), TIMEOUT) == "still served"
    await settle(server)
    async with websockets.connect(f"{base}/_status/ws") as feed:
        await asyncio.wait_for(feed.recv(), TIMEOUT)
        async with websockets.connect(f"{base}/echo") as client:  # the page holds no place
            await client.send("served beside the page")
            assert await asyncio.wait_for(client.recv(), TIMEOUT) == "served beside the page"
            assert server.websocket_count == 1
            # The feeds have a bound of their own, as many again (else,
            # with max_connections' bound off them, page feeds were unbounded).
            with pytest.raises(InvalidStatus) as refused:
                await websockets.connect(f"{base}/_status/ws")
            assert refused.value.response.status_code == 503


async def test_server_websockets_are_the_application_s_and_broadcast_leaves_the_feed_out(
    run_server: StartServer,
) -> None:
    # broadcast(server.websockets, ...), as the README writes it, also sent the
    # application's messages to the status page's feed (its JSON.parse failed
    # on them, and whoever watched the page read them), and an application
    # counting server.websockets counted the page among its users.
    server = await run_server(routes(), status_path="/_status")
    base = f"ws://127.0.0.1:{server.port}"
    async with (
        websockets.connect(f"{base}/_status/ws") as feed,
        websockets.connect(f"{base}/echo") as client,
    ):
        first = json.loads(await asyncio.wait_for(feed.recv(), TIMEOUT))
        await wait_for(lambda: len(server.connections) == 2, what="both WebSockets")
        assert [ws.request.path for ws in server.websockets] == ["/echo"]
        assert broadcast(server.websockets, "for the application's clients") == []
        assert await asyncio.wait_for(client.recv(), TIMEOUT) == "for the application's clients"
        # The feed's next message is its next snapshot (one a second), not the broadcast.
        following = json.loads(await asyncio.wait_for(feed.recv(), TIMEOUT))
        assert following["time"] > first["time"]
