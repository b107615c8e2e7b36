"""The chat example in a real headless Chromium, driven over the DevTools Protocol.

Chromium is installed (Debian's ``chromium`` package) when it is missing; if that
fails the test fails rather than skipping. ``python -m tests.browser --install``
does the same installation on its own.
"""

from __future__ import annotations

import json
import logging
import time
import wave
from typing import Any

import pytest

from examples import chat, echo, welcome_echo
from wsserver import Router, Server
from wsserver.response import accept, html, json_response, redirect

from .browser import Browser, BrowserError, ChromiumUnavailable, Page, install_chromium
from .conftest import StartServer
from .prefix_proxy import PrefixProxy

BIG_SIZE = 50_000


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary, installed first if needed."""
    started = time.monotonic()
    try:
        path = install_chromium()
    except ChromiumUnavailable as exc:
        pytest.fail(f"headless Chromium is required for the browser tests: {exc}")
    elapsed = time.monotonic() - started
    if elapsed > 1:
        print(f"\ninstalled chromium in {elapsed:.1f} s")
    return path


@pytest.fixture(autouse=True)
def _reset_rooms() -> Any:
    chat.rooms.clear()
    yield
    chat.rooms.clear()


def js(value: Any) -> str:
    """A JavaScript literal for ``value``."""
    return json.dumps(value)


async def join(page: Page, room: str, user: str) -> None:
    await page.evaluate(
        f"""(() => {{
            document.getElementById("room").value = {js(room)};
            document.getElementById("user").value = {js(user)};
            document.getElementById("join").click();
        }})()"""
    )
    await page.wait_for(
        "window.chatSocket && chatSocket.readyState === WebSocket.OPEN"
        " && !document.getElementById('send').disabled"
        " && document.querySelector('#log li[data-type=system]') !== null"
    )


async def send_message(page: Page, text_expression: str) -> None:
    """Type the value of ``text_expression`` in the message box and click Send."""
    await page.evaluate(
        f"""(() => {{
            document.getElementById("message").value = {text_expression};
            document.getElementById("send").click();
        }})()"""
    )


def chat_texts_contain(text_expression: str, user: str) -> str:
    """JS: whether the log shows a chat message ``text_expression`` from ``user``."""
    return f"""[...document.querySelectorAll("#log li[data-type=chat]")].some(li =>
        li.querySelector(".text").textContent === {text_expression}
        && li.querySelector(".user").textContent === {js(user + ":")})"""


# Builds the same ~50 KB, very compressible text in any page.
MAKE_BIG = f"""(window.big = window.big || Array.from({{length: 3000}},
    (_, i) => "reading " + i + " is fine; ").join("").slice(0, {BIG_SIZE}))"""


async def test_chat_between_two_browser_pages(chromium: str, run_server: StartServer) -> None:
    server: Server = await run_server(chat.routes, compression="deflate")
    url = f"http://127.0.0.1:{server.port}/"
    async with Browser(chromium) as browser:
        alice = await browser.new_page()
        bob = await browser.new_page()
        await alice.send("Network.enable")
        await alice.navigate(url)
        await bob.navigate(url)
        assert await alice.evaluate("document.title") == "wsserver chat"

        await join(alice, "lobby", "alice")
        await join(bob, "lobby", "bob")
        await alice.wait_for(
            "[...document.querySelectorAll('#log li[data-type=user_joined]')]"
            ".some(li => li.textContent.includes('bob joined'))"
        )
        assert chat.rooms.keys() == {"lobby"} and len(chat.rooms["lobby"]) == 2

        # A message typed and sent in Alice's page shows in Bob's (and in hers).
        await send_message(alice, js("Hello from Alice <b>!</b>"))
        await bob.wait_for(chat_texts_contain(js("Hello from Alice <b>!</b>"), "alice"))
        await alice.wait_for(chat_texts_contain(js("Hello from Alice <b>!</b>"), "alice"))
        assert await bob.evaluate("document.querySelector('#log b')") is None  # text, not HTML
        assert await alice.evaluate("document.getElementById('message').value") == ""

        # Chromium offered permessage-deflate and the server agreed.
        assert len(server.websockets) == 2
        for ws in server.websockets:
            offer = ws.request.headers.get("sec-websocket-extensions", "")
            assert "permessage-deflate" in offer and "client_max_window_bits" in offer, offer
        handshake = await alice.wait_event(
            "Network.webSocketHandshakeResponseReceived",
            lambda params: params["response"]["status"] == 101,
        )
        response_headers = {k.lower(): v for k, v in handshake["response"]["headers"].items()}
        assert response_headers["sec-websocket-extensions"].startswith("permessage-deflate")
        # The page says so.
        shown = await bob.evaluate('document.getElementById("compression").textContent')
        assert shown.startswith("permessage-deflate"), shown

        # A big compressible message goes through compressed, both ways, intact.
        size = await bob.evaluate(f"{MAKE_BIG}.length")
        assert size == BIG_SIZE
        assert await alice.evaluate(f"{MAKE_BIG}.length") == BIG_SIZE
        await send_message(bob, "window.big")
        await alice.wait_for(chat_texts_contain("window.big", "bob"))
        await bob.wait_for(chat_texts_contain("window.big", "bob"))
        frame = await alice.wait_event(
            "Network.webSocketFrameReceived",
            lambda params: len(params["response"]["payloadData"]) > BIG_SIZE,
        )
        assert json.loads(frame["response"]["payloadData"])["message"] == await alice.evaluate(
            "window.big"
        )

        # Bob leaves: Alice sees it, and the server forgets him.
        await bob.evaluate("chatSocket.close()")
        await alice.wait_for(
            "[...document.querySelectorAll('#log li[data-type=user_left]')]"
            ".some(li => li.textContent.includes('bob left'))"
        )
        assert len(chat.rooms["lobby"]) == 1


@pytest.mark.parametrize("example", ["chat", "echo"])
async def test_an_example_page_works_behind_a_proxy_s_path_prefix(
    chromium: str, run_server: StartServer, example: str
) -> None:
    # Served at /app/ by a reverse proxy (nginx's "location /app/"), the pages
    # opened their WebSocket at /ws..., a path the proxy does not forward:
    # the page stayed "connecting". They now build it from their own URL.
    server: Server = await run_server(chat.routes if example == "chat" else echo.routes)
    async with PrefixProxy(server.port, "/app/") as proxy, Browser(chromium) as browser:
        page = await browser.new_page(proxy.url)
        await page.wait_for("document.readyState === 'complete'")
        if example == "chat":
            await join(page, "lobby", "alice")
            await send_message(page, js("behind a proxy"))
            await page.wait_for(chat_texts_contain(js("behind a proxy"), "alice"))
        else:
            await page.wait_for("window.echoSocket.readyState === WebSocket.OPEN")
            await page.evaluate(
                """(() => {
                    document.getElementById("message").value = "behind a proxy";
                    document.getElementById("send").click();
                })()"""
            )
            await page.wait_for(
                "[...document.querySelectorAll('#log li')]"
                ".some(li => li.className === 'received' && li.textContent === '< behind a proxy')"
            )
        assert [ws.request.path for ws in server.websockets] == [
            "/ws/chat/lobby" if example == "chat" else "/ws"
        ]


async def test_chromium_keeps_to_client_no_context_takeover(
    chromium: str, run_server: StartServer
) -> None:
    # Asked for it (compression_client_no_context_takeover), Chromium starts
    # each message afresh: the server holds no decompressor between them, and
    # repeated messages (references back, had it kept its context) arrive whole.
    server: Server = await run_server(
        echo.routes, compression="deflate", compression_client_no_context_takeover=True
    )
    async with Browser(chromium) as browser:
        page = await browser.new_page(f"http://127.0.0.1:{server.port}/")
        await page.wait_for("window.echoSocket && echoSocket.readyState === WebSocket.OPEN")
        assert "client_no_context_takeover" in await page.evaluate("echoSocket.extensions")
        (ws,) = server.websockets
        for n in range(1, 4):
            await page.evaluate(f"echoSocket.send({MAKE_BIG})")
            await page.wait_for(
                f"[...document.querySelectorAll('#log li.received')].length === {n}"
                f" && [...document.querySelectorAll('#log li.received')]"
                f".every(li => li.textContent === '< ' + window.big)"
            )
            assert not ws._protocol.conn.deflate.holds_decompressor


async def test_chat_page_refuses_room_names_a_url_cannot_carry(
    chromium: str, run_server: StartServer
) -> None:
    """The page says why it cannot join ``/``, ``.`` or ``..``: a URL takes ``.`` and ``..``
    (even percent-encoded) as its dot segments, so the page connected to ``/ws/chat/`` or
    ``/ws/`` (a 404) and showed only ``disconnected (1006)``."""
    server: Server = await run_server(chat.routes)
    async with Browser(chromium) as browser:
        page = await browser.new_page(f"http://127.0.0.1:{server.port}/")
        for count, room in enumerate(("a/b", ".", ".."), 1):
            await page.evaluate(
                f"""(() => {{
                    document.getElementById("room").value = {js(room)};
                    document.getElementById("user").value = "alice";
                    document.getElementById("join").click();
                }})()"""
            )
            await page.wait_for(
                f"document.querySelectorAll('#log li[data-type=error]').length === {count}"
                " || window.chatSocket !== undefined"
            )
            assert await page.evaluate("window.chatSocket === undefined"), room
        await join(page, "..lobby.", "alice")  # (dots within a name are fine)
        assert list(chat.rooms) == ["..lobby."]


async def test_chat_page_refuses_a_room_name_too_long_for_the_server(
    chromium: str, run_server: StartServer
) -> None:
    """A room whose topic (``room:<room_id>``) is over the server's ``max_topic_size`` is
    refused at the handshake (400), which a page's WebSocket cannot see: the page showed only
    ``disconnected (1006)``. It now says the name is too long, by the server's own limit, and
    does not connect; a name at the limit (counted in bytes of UTF-8) joins."""
    server: Server = await run_server(chat.routes, max_topic_size=64)
    longest = "é" * 29 + "x"  # 59 bytes of UTF-8: "room:" + it is 64
    async with Browser(chromium) as browser:
        page = await browser.new_page(f"http://127.0.0.1:{server.port}/")
        await page.evaluate(
            f"""(() => {{
                document.getElementById("room").value = {js(longest + "x")};
                document.getElementById("user").value = "alice";
                document.getElementById("join").click();
            }})()"""
        )
        await page.wait_for(
            "document.querySelector('#log li[data-type=error]') !== null"
            " || window.chatSocket !== undefined",
            timeout=10,
        )
        assert await page.evaluate("window.chatSocket === undefined")
        assert (
            await page.evaluate("document.querySelector('#log li[data-type=error]').textContent")
            == "Error: a room name is at most 59 bytes of UTF-8"
        )
        await join(page, longest, "alice")
        assert list(chat.rooms) == [longest]


async def test_welcome_echo_page(
    chromium: str, run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    """examples.welcome_echo's page: the welcome, then the echo of what was typed."""
    caplog.set_level(logging.ERROR, logger="wsserver")
    server: Server = await run_server(welcome_echo.routes)
    async with Browser(chromium) as browser:
        page = await browser.new_page(f"http://127.0.0.1:{server.port}/")
        assert await page.evaluate("document.title") == "wsserver welcome echo"
        await page.wait_for("window.echoSocket && echoSocket.readyState === WebSocket.OPEN")
        received = "[...document.querySelectorAll('#log li.received')].map(li => li.textContent)"
        await page.wait_for(f"{received}.length === 1")
        assert await page.evaluate(received) == ["< Welcome to the WebSocket echo server!"]

        await send_message(page, js("hello <b>there</b>"))
        await page.wait_for(f"{received}.length === 2")
        assert await page.evaluate(received) == [
            "< Welcome to the WebSocket echo server!",
            "< Echo: hello <b>there</b>",
        ]
        sent = "[...document.querySelectorAll('#log li.sent')].map(li => li.textContent)"
        assert await page.evaluate(sent) == ["> hello <b>there</b>"]
        assert await page.evaluate("document.querySelector('#log b')") is None  # text, not HTML
        assert await page.evaluate("document.getElementById('message').value") == ""
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("wsserver")]


async def test_echo_page_on_an_asgi_app(chromium: str, caplog: pytest.LogCaptureFixture) -> None:
    """The echo page served by a Starlette app on wsserver: the page and its WebSocket, in
    Chromium (which offers permessage-deflate: on by default for ASGI apps)."""
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    from examples import echo
    from wsserver import serve

    async def page(request: Any) -> HTMLResponse:
        return HTMLResponse(echo.PAGE)

    extensions: list[str] = []

    async def echo_socket(websocket: WebSocket) -> None:
        extensions.append(websocket.headers.get("sec-websocket-extensions", ""))
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect:
            pass

    app = Starlette(routes=[Route("/", page), WebSocketRoute("/ws", echo_socket)])
    caplog.set_level(logging.ERROR, logger="wsserver")
    server = serve(app, "127.0.0.1", 0, ping_interval=None)
    await server.start()
    try:
        async with Browser(chromium) as browser:
            page_ = await browser.new_page(f"http://127.0.0.1:{server.port}/")
            await page_.wait_for("window.echoSocket && echoSocket.readyState === WebSocket.OPEN")
            await send_message(page_, js("through ASGI " + "x" * 2000))
            received = (
                "[...document.querySelectorAll('#log li.received')].map(li => li.textContent)"
            )
            await page_.wait_for(f"{received}.length === 1")
            assert await page_.evaluate(received) == ["< through ASGI " + "x" * 2000]
            # Chromium offered permessage-deflate, and it was agreed.
            assert [p.conn.deflate is not None for p in server._websockets] == [True]
        assert "permessage-deflate" in extensions[0]
    finally:
        await server.close(timeout=1)
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("wsserver")]


async def test_echo_page_over_wss(
    chromium: str, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The echo page over https:// and its WebSocket over wss://, in Chromium (the test CA
    is not installed in the browser: certificate errors are ignored, the TLS is real)."""
    import trustme

    from wsserver import serve

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    caplog.set_level(logging.ERROR, logger="wsserver")
    server = serve(
        echo.routes,
        "127.0.0.1",
        0,
        ping_interval=None,
        ssl_certfile=str(certfile),
        ssl_keyfile=str(keyfile),
    )
    async with server, Browser(chromium, extra_flags=("--ignore-certificate-errors",)) as browser:
        page = await browser.new_page(f"https://127.0.0.1:{server.port}/")
        await page.wait_for("window.echoSocket && echoSocket.readyState === WebSocket.OPEN")
        assert await page.evaluate("echoSocket.url") == f"wss://127.0.0.1:{server.port}/ws"
        await send_message(page, js("secure hello"))
        received = "[...document.querySelectorAll('#log li.received')].map(li => li.textContent)"
        await page.wait_for(f"{received}.length === 1")
        assert await page.evaluate(received) == ["< secure hello"]
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("wsserver")]


async def test_status_page_shows_the_servers_counters(
    chromium: str, caplog: pytest.LogCaptureFixture
) -> None:
    """--status-path in Chromium: after known traffic the figures beside the chart equal
    the server's counters, and the chart has drawn its points."""
    import httpx
    import websockets

    from wsserver import serve

    caplog.set_level(logging.ERROR, logger="wsserver")
    server = serve(
        echo.routes,
        "127.0.0.1",
        0,
        ping_interval=None,
        status_path="/_status",
        status_token="s3cret",
    )
    async with server:
        base = f"127.0.0.1:{server.port}"
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://{base}/_status")).status_code == 401
        kept = []
        for i in range(3):
            ws = await websockets.connect(f"ws://{base}/ws")
            for message in ("one", "two", b"\x00\x01\x02"):
                await ws.send(message)
                await ws.recv()
            if i == 0:
                await ws.close(4000, "done")
            else:
                kept.append(ws)
        async with Browser(chromium) as browser:
            page = await browser.new_page(f"http://{base}/_status?token=s3cret")
            await page.wait_for("window.statusChart && statusChart.points.length >= 3")
            stats = server.stats()
            routes = [c for name, c in stats["routes"].items() if not name.startswith("_")]
            expected = {
                "open": sum(n for r, n in stats["connections"].items() if not r.startswith("_")),
                "msgs-in": sum(c["text_in"] + c["binary_in"] for c in routes),
                "msgs-out": sum(c["text_out"] + c["binary_out"] for c in routes),
                "bytes-in": sum(c["payload_in"] for c in routes),
                "bytes-out": sum(c["payload_out"] for c in routes),
                "worker-count": 1,
            }
            assert expected["open"] == 2 and expected["msgs-in"] == 9
            shown = await page.evaluate(
                "Object.fromEntries(" + js(list(expected)) + ".map("
                "id => [id, Number(document.getElementById(id).textContent)]))"
            )
            assert shown == expected
            codes = await page.evaluate(
                "[...document.querySelectorAll('#close-codes tr')].slice(1)"
                ".map(tr => tr.textContent)"
            )
            assert "40001" in codes  # code 4000, one connection
            # The row of the one worker: the same figures, the page's own feed left out.
            rows = await page.evaluate(
                "[...document.querySelectorAll('#workers tr')].slice(1)"
                ".map(tr => [...tr.cells].map(td => Number(td.textContent)))"
            )
            assert rows == [
                [
                    1,
                    expected["open"],
                    expected["msgs-in"],
                    expected["msgs-out"],
                    expected["bytes-in"],
                    expected["bytes-out"],
                ]
            ]
            painted = await page.evaluate(
                """(() => {
                    const c = document.getElementById("chart");
                    const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                    let colored = 0;
                    for (let i = 0; i < data.length; i += 4) {
                        if (data[i + 3] && (data[i] > 150) !== (data[i + 2] > 150)) colored++;
                    }
                    return colored;
                })()"""
            )
            assert painted > 50  # the blue and red lines are drawn
            # The median and 99th percentile, in ms, of the handshakes and
            # HTTP responses so far (less than a minute's snapshots: all).
            latency = await page.evaluate(
                "['handshake-ms', 'http-ms'].map(id => document.getElementById(id).textContent)"
            )
            for text in latency:
                p50, p99 = (float(x) for x in text.split(" / "))
                assert 0 < p50 <= p99 < 1000, latency
        for ws in kept:
            await ws.close()
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("wsserver")]


async def test_status_page_runs_under_a_server_wide_content_security_policy(
    chromium: str,
) -> None:
    """A Content-Security-Policy given to every response (--header) forbade the
    page's inline script and style: it stayed at "connecting..." for good. The
    page says its own policy, which lets exactly its script and style run."""
    from wsserver import serve

    policy = ("Content-Security-Policy", "default-src 'self'")
    server = serve(echo.routes, "127.0.0.1", 0, status_path="/_status", headers=[policy])
    async with server, Browser(chromium) as browser:
        page = await browser.new_page(f"http://127.0.0.1:{server.port}/_status")
        await page.wait_for(
            "document.getElementById('state').textContent === 'live'"
            " && window.statusChart && statusChart.points.length >= 1"
        )
        # Its style too: the legend's colours, the figures' boxes.
        looks = await page.evaluate(
            "[getComputedStyle(document.querySelector('.legend span')).color,"
            " getComputedStyle(document.querySelector('.figure')).borderTopStyle]"
        )
        assert looks == ["rgb(37, 99, 235)", "solid"]


async def test_the_status_page_reconnects_when_its_figures_stop_coming(chromium: str) -> None:
    """A feed whose connection the network dropped without a word (a laptop
    asleep, a NAT or a load balancer that forgot it: no FIN, no reset) left
    the page saying "live" with the last figures, for as long as TCP took to
    notice (hours): the browser sends nothing on it, so nothing failed. The
    figures come every second: after a few seconds without one the page says
    so and opens another feed."""
    from wsserver import serve

    from .tcp_proxy import Proxy

    server = serve(echo.routes, "127.0.0.1", 0, status_path="/_status", ping_interval=None)
    async with server, Proxy(server.port) as proxy, Browser(chromium) as browser:
        page = await browser.new_page(f"http://127.0.0.1:{proxy.port}/_status")
        await page.wait_for("window.statusChart && statusChart.points.length >= 2", 10)
        await page.evaluate("window.firstSocket = window.statusSocket")
        assert proxy.black_hole(lambda link: b"/_status/ws" in link.from_client) == 1
        shown = await page.evaluate("statusChart.points.length")
        # (A second or so of figures may be on their way when it is cut.)
        await page.wait_for(
            f"statusChart.points.length >= {shown + 3} && window.statusSocket !== firstSocket"
            " && document.getElementById('state').textContent === 'live'",
            20,
        )
        feeds = [link for link in proxy.links if b"/_status/ws" in link.from_client]
        assert len(feeds) == 2 and feeds[0].cut and not feeds[1].cut


async def test_the_status_page_lists_ten_workers_and_more_in_order(
    chromium: str, tmp_path: Any
) -> None:
    """Under --workers 12 the page's rows went 1, 10, 11, 12, 2, 3, ... (their
    names sorted as text); they go by number."""
    from wsserver import serve

    server = serve(echo.routes, "127.0.0.1", 0, status_path="/_status")
    assert server.status is not None
    server.status.share(str(tmp_path), "1")  # worker 1; the others' files, as they leave them
    for slot in range(2, 13):
        (tmp_path / f"worker-{slot}.{slot:08x}.json").write_text(json.dumps(server.stats()))
    async with server, Browser(chromium) as browser:
        page = await browser.new_page(f"http://127.0.0.1:{server.port}/_status")
        rows = (
            "[...document.querySelectorAll('#workers tr')].slice(1)"
            ".map(tr => tr.cells[0].textContent)"
        )
        await page.wait_for(f"{rows}.length === 12")
        assert await page.evaluate(rows) == [str(n) for n in range(1, 13)]


async def test_the_status_page_s_rate_stays_when_a_worker_leaves(
    chromium: str, tmp_path: Any
) -> None:
    """messages/s was the change of the workers' total: a worker that left (a
    rolling restart, one killed) took its counts with it, and the rate read 0
    for that second however busy the others were (one that joined brought all
    of its counts into one second). It is each worker's change, added up."""
    import asyncio

    import websockets

    from wsserver import serve

    servers = [serve(echo.routes, "127.0.0.1", 0, status_path="/_status") for _ in range(2)]
    for slot, server in enumerate(servers, 1):
        assert server.status is not None
        server.status.share(str(tmp_path), str(slot))
        await server.start()
    stay, leave = servers
    busy = asyncio.Event()

    async def steady_traffic() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{stay.port}/ws") as ws:
            while True:
                for _ in range(10):
                    await ws.send("tick")
                    await ws.recv()
                busy.set()
                await asyncio.sleep(0.05)

    traffic = asyncio.create_task(steady_traffic())
    try:
        async with websockets.connect(f"ws://127.0.0.1:{leave.port}/ws") as ws:
            for _ in range(500):  # what the leaving worker did before
                await ws.send("earlier")
                await ws.recv()
        await busy.wait()
        async with Browser(chromium) as browser:
            page = await browser.new_page(f"http://127.0.0.1:{stay.port}/_status")
            workers = "document.getElementById('worker-count').textContent"
            await page.wait_for(f"{workers} === '2' && statusChart.points.length >= 1", 10)
            shown = await page.evaluate("statusChart.points.length")
            await leave.close(timeout=1)
            await page.wait_for(f"{workers} === '1'", 10)  # (the point it left at is drawn)
            rates = await page.evaluate(f"statusChart.points.slice({shown}).map(p => p.rate)")
            assert rates and all(rate > 0 for rate in rates), rates
    finally:
        traffic.cancel()
        await asyncio.gather(traffic, return_exceptions=True)
        for server in servers:
            await server.close(timeout=1)


async def test_the_status_page_s_rate_is_each_worker_s_over_its_own_figures_times(
    chromium: str, tmp_path: Any
) -> None:
    """Under --workers each worker leaves its figures about once a second and the
    page's feed reads them about once a second: when it read a worker's figures
    twice (not renewed in between), messages/s took that worker's change as 0 for
    that second, and twice it the next, however steady its traffic (a dip to half
    and a spike every minute or so with two workers). Each worker's rate is now
    over its own figures' times, and figures read again keep their rate."""
    from wsserver import serve
    from wsserver.server.stats import RouteTotals
    from wsserver.server.status import TAKEN_KEY

    server = serve(echo.routes, "127.0.0.1", 0, status_path="/_status")
    assert server.status is not None
    server.status.share(str(tmp_path), "1")
    other = tmp_path / "worker-2.0000abcd.json"  # worker 2's, 100 messages a second
    taken = time.time()

    def worker_2_after(seconds: int) -> None:
        figures = server.stats()
        counts = dict.fromkeys(RouteTotals.__slots__, 0)
        counts["text_in"] = 100 * seconds
        figures["routes"] = {"echo": counts}
        figures[TAKEN_KEY] = taken + seconds
        other.write_text(json.dumps(figures))

    worker_2_after(0)
    async with server, Browser(chromium) as browser:
        page = await browser.new_page(f"http://127.0.0.1:{server.port}/_status")
        workers = "document.getElementById('worker-count').textContent"
        await page.wait_for(f"{workers} === '2' && statusChart.points.length >= 1", 10)
        shown = await page.evaluate("statusChart.points.length")
        worker_2_after(1)
        # Three more snapshots: two at least read the same figures of worker 2.
        await page.wait_for(f"statusChart.points.length >= {shown + 3}", 15)
        rates = await page.evaluate(f"statusChart.points.slice({shown}).map(p => p.rate)")
        while rates and rates[0] == 0:  # (one taken before worker 2's new figures)
            rates.pop(0)
        assert len(rates) >= 2 and all(rate == 100 for rate in rates), rates


async def test_a_browser_that_fails_to_start_is_reported_with_its_output(tmp_path: Any) -> None:
    binary = tmp_path / "not-chromium"
    binary.write_text("#!/bin/sh\nprintf 'no display \\377 here\\n' >&2\nexit 3\n")
    binary.chmod(0o755)
    with pytest.raises(BrowserError) as raised:
        async with Browser(str(binary)):
            pass
    assert "exited with 3" in str(raised.value)
    assert "no display \ufffd here" in str(raised.value)


async def test_wait_for_keeps_polling_across_a_navigation(
    chromium: str, run_server: StartServer
) -> None:
    """A poll that is under way when the page navigates (the page is gone, and
    DevTools answers "Inspected target navigated or closed" or "Execution context
    was destroyed") is asked again on the new page, not reported as an error.
    The first poll here waits on a promise that only the navigation ends, and
    starts that navigation itself: a page that left on a timer of its own (300 ms
    after loading) was at times gone before the test looked at it, on a loaded
    machine (pytest -n 4 on two cores)."""
    routes = Router()

    @routes.get("/")
    async def first(request: Any) -> Any:
        return html("<!doctype html><title>first</title>")

    @routes.get("/second")
    async def second(request: Any) -> Any:
        return html("<!doctype html><title>second</title>")

    server: Server = await run_server(routes)
    async with Browser(chromium) as browser:
        page = await browser.new_page(f"http://127.0.0.1:{server.port}/")
        assert await page.evaluate("location.pathname") == "/"
        # (Only the first page's poll waits for ever: one asked on the second
        # before it has loaded would, or-ed with that promise, never end.)
        arrived = await page.wait_for(
            "location.pathname === '/second' ? document.readyState === 'complete'"
            " : (window.leaving ||= setTimeout(() => { location.href = '/second'; }, 100),"
            " new Promise(() => {}))",
            timeout=10,
        )
        assert arrived is True
        assert await page.evaluate("document.title") == "second"


async def test_static_media_is_fetched_in_ranges_by_chromium(
    chromium: str, run_server: StartServer, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A static file in an <audio> element: Chromium asks for media with a Range
    (``bytes=0-``) and gets a 206 (the access line says so), then plays from it:
    its length known, a seek done. (Chromium plays a small file without ranges
    too: the 206 in the log is what this guards.)"""
    site = tmp_path / "site"
    site.mkdir()
    with wave.open(str(site / "tone.wav"), "wb") as sound:  # 4 s of 8 kHz 16-bit mono
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(bytes(range(256)) * 250)
    (site / "index.html").write_text(
        "<!doctype html><title>media</title>"
        '<audio id="a" preload="metadata" src="tone.wav"></audio>'
    )
    routes = Router()
    routes.static("/", site)
    caplog.set_level(logging.INFO, logger="wsserver.access")
    server: Server = await run_server(routes, access_log=True)
    async with Browser(chromium) as browser:
        page = await browser.new_page(f"http://127.0.0.1:{server.port}/")
        await page.wait_for("document.getElementById('a').readyState >= 1", timeout=10)
        assert await page.evaluate("document.getElementById('a').duration") == 4
        seekable = "(a => a.seekable.length ? a.seekable.end(0) : 0)(document.getElementById('a'))"
        assert await page.evaluate(seekable) == 4
        await page.evaluate("document.getElementById('a').currentTime = 3")
        await page.wait_for("document.getElementById('a').currentTime === 3")
    access = [r.getMessage() for r in caplog.records if r.name == "wsserver.access"]
    assert any("/tone.wav" in line and " 206 " in line for line in access), access


async def test_forms_a_browser_submits_are_read_whole(
    chromium: str, run_server: StartServer, tmp_path: Any
) -> None:
    """Chromium's own form submissions (its multipart encoder, a file chosen
    in a file input) reach ``request.form`` and ``request.files`` as typed."""
    upload = tmp_path / 'résumé "final".txt'
    upload.write_bytes(b"line one\r\n--not a boundary\r\n\x00\xff")
    routes = Router()

    @routes.get("/")
    async def page(request: Any) -> Any:
        return html(
            '<!doctype html><meta charset="utf-8"><title>forms</title>'
            '<form id="m" method="post" action="/echo" enctype="multipart/form-data">'
            '<input name="title"><textarea name="note"></textarea>'
            '<input type="file" name="doc" id="doc"><input name="empty" type="file"></form>'
            '<form id="u" method="post" action="/echo"><input name="q"></form>'
        )

    @routes.post("/echo")
    async def echo_form(request: Any) -> Any:
        files = {
            name: [[f.filename, f.content_type, f.body.hex()] for f in entries]
            for name, entries in request.files.items()
        }
        return json_response({"fields": request.form, "files": files})

    server: Server = await run_server(routes)
    url = f"http://127.0.0.1:{server.port}/"
    async with Browser(chromium) as browser:
        page = await browser.new_page(url)
        await page.wait_for("document.readyState === 'complete'")
        document = await page.send("DOM.getDocument", {})
        found = await page.send(
            "DOM.querySelector", {"nodeId": document["root"]["nodeId"], "selector": "#doc"}
        )
        await page.send(
            "DOM.setFileInputFiles", {"nodeId": found["nodeId"], "files": [str(upload)]}
        )
        await page.evaluate(
            """(() => {
                const form = document.getElementById("m");
                form.title.value = "Grüße & <ok>";
                form.note.value = "two\\nlines";
                form.submit();
            })()"""
        )
        await page.wait_for("location.pathname === '/echo' && document.readyState === 'complete'")
        answer = json.loads(await page.evaluate("document.body.innerText"))
        assert answer == {
            # A textarea's line breaks are CR LF in a form (WHATWG HTML).
            "fields": {"title": ["Grüße & <ok>"], "note": ["two\r\nlines"]},
            "files": {
                # (Chromium escapes the name's quotes as %22.)
                "doc": [["résumé %22final%22.txt", "text/plain", upload.read_bytes().hex()]],
                "empty": [["", "application/octet-stream", ""]],
            },
        }
        await page.navigate(url)
        await page.evaluate(
            """(() => {
                const form = document.getElementById("u");
                form.q.value = "a b&c=é";
                form.submit();
            })()"""
        )
        await page.wait_for("location.pathname === '/echo' && document.readyState === 'complete'")
        answer = json.loads(await page.evaluate("document.body.innerText"))
        assert answer == {"fields": {"q": ["a b&c=é"]}, "files": {}}


async def test_a_form_answered_with_a_redirect_is_followed_with_a_get(
    chromium: str, run_server: StartServer
) -> None:
    """Post/redirect/get in Chromium: the login form's POST gets redirect(..., 303)
    with a cookie; the browser goes on with a GET to the Location (non-ASCII in it
    percent-encoded by redirect()), the cookie with it."""
    routes = Router()

    @routes.get("/")
    async def page(request: Any) -> Any:
        return html(
            '<!doctype html><meta charset="utf-8"><title>login</title>'
            '<form id="f" method="post" action="/login"><input name="user"></form>'
        )

    @routes.post("/login")
    async def login(request: Any) -> Any:
        return redirect(
            "/welcome/zoë",  # (url_for would encode it; redirect() must)
            303,
            [("Set-Cookie", f"user={request.form['user'][0]}; Path=/")],
        )

    @routes.get("/welcome/<name>")
    async def welcome(request: Any, name: str) -> Any:
        return json_response({"method": request.method, "name": name, "cookies": request.cookies})

    server: Server = await run_server(routes)
    async with Browser(chromium) as browser:
        page = await browser.new_page(f"http://127.0.0.1:{server.port}/")
        await page.wait_for("document.readyState === 'complete'")
        await page.evaluate(
            """(() => {
                const form = document.getElementById("f");
                form.user.value = "ann";
                form.submit();
            })()"""
        )
        await page.wait_for(
            "location.pathname.startsWith('/welcome/') && document.readyState === 'complete'"
        )
        assert await page.evaluate("location.pathname") == "/welcome/zo%C3%AB"
        answer = json.loads(await page.evaluate("document.body.innerText"))
        assert answer == {"method": "GET", "name": "zoë", "cookies": {"user": "ann"}}


async def test_cookies_set_by_responses_and_the_101_are_kept_by_chromium(
    chromium: str, run_server: StartServer
) -> None:
    """set_cookie() and delete_cookie() as Chromium takes them: an HttpOnly cookie
    hidden from the page but sent, a Path-scoped one kept to its path, one set
    by accept() in the 101, and a deleted one gone."""
    routes = Router()

    @routes.get("/")
    async def page(request: Any) -> Any:
        response = html('<!doctype html><meta charset="utf-8"><title>cookies</title>')
        response.set_cookie("session", "s3cret", httponly=True, max_age=3600)
        response.set_cookie("theme", "dark")
        response.set_cookie("scoped", "1", path="/admin")
        return response

    @routes.get("/me")
    async def me(request: Any) -> Any:
        return json_response(request.cookies)

    @routes.post("/logout")
    async def logout(request: Any) -> Any:
        response = json_response("bye")
        response.delete_cookie("session")
        return response

    @routes.get("/prefixed")
    async def prefixed(request: Any) -> Any:
        response = json_response("ok")
        response.set_cookie("__Host-Http-id", "7", secure=True, httponly=True)
        # What set_cookie() refuses, as Chromium drops it: __Http- without HttpOnly.
        response.headers.append(("Set-Cookie", "__Http-raw=1; Path=/; Secure"))
        return response

    async def on_connect(request: Any) -> Any:
        acceptance = accept()
        acceptance.set_cookie("upgraded", "1", samesite="strict")
        return acceptance

    @routes.websocket("/ws", on_connect=on_connect)
    async def ws(request: Any, ws: Any) -> None:
        await ws.send(json.dumps(request.cookies, sort_keys=True))

    server: Server = await run_server(routes)
    async with Browser(chromium) as browser:
        page = await browser.new_page(f"http://127.0.0.1:{server.port}/")
        await page.wait_for("document.readyState === 'complete'")
        assert await page.evaluate("document.cookie") == "theme=dark"
        sent = await page.evaluate(
            """new Promise((resolve, reject) => {
                const ws = new WebSocket(`ws://${location.host}/ws`);
                ws.onmessage = (event) => { resolve(event.data); ws.close(); };
                ws.onerror = () => reject(new Error("websocket failed"));
            })"""
        )
        assert json.loads(sent) == {"session": "s3cret", "theme": "dark"}
        me = "fetch('/me').then((r) => r.json())"
        assert await page.evaluate(me) == {"session": "s3cret", "theme": "dark", "upgraded": "1"}
        await page.evaluate("fetch('/logout', {method: 'POST'}).then((r) => r.json())")
        assert await page.evaluate(me) == {"theme": "dark", "upgraded": "1"}
        # A page's script may set any text, and the browser sends it in UTF-8:
        # request.cookies read it as latin-1 ("cafÃ©").
        await page.evaluate("document.cookie = 'theme=café ☕'")
        assert await page.evaluate(me) == {"theme": "café ☕", "upgraded": "1"}
        await page.evaluate("fetch('/prefixed').then((r) => r.json())")
        assert await page.evaluate(me) == {
            "theme": "café ☕",
            "upgraded": "1",
            "__Host-Http-id": "7",
        }
