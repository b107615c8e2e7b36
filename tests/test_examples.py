"""The examples, served in-process and driven by real clients (websockets, aiohttp,
wsserver.testing)."""

from __future__ import annotations

import ast
import asyncio
import builtins
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from examples import chat, echo, secure, stream
from wsserver import Server
from wsserver.broker.redis_backend import RedisBroker
from wsserver.protocol.frames import Opcode, serialize_close, serialize_frame
from wsserver.testing import HandshakeDenied, TestClient

from .conftest import StartServer
from .helpers import MASK, RawClient, errors_logged, wait_for
from .redis_server import RedisServer
from .tcp_proxy import Proxy
from .test_cli import ROOT, running_cli

TIMEOUT = 3.0


# ----------------------------------------------------------------- helpers


async def http_get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    """A real HTTP request: status, headers, body."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"http://127.0.0.1:{port}{path}") as response,
    ):
        body = await response.text()
        return response.status, dict(response.headers), body


async def recv_json(ws: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(message, str), message
    data = json.loads(message)
    assert isinstance(data, dict), data
    return data


async def recv_type(ws: Any, kind: str, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The next message of type ``kind``, skipping others (e.g. readings)."""
    async with asyncio.timeout(timeout):
        while True:
            data = await recv_json(ws, timeout)
            if data["type"] == kind:
                return data


async def expect_silence(ws: Any, wait: float = 0.2) -> None:
    with pytest.raises(TimeoutError):
        message = await asyncio.wait_for(ws.recv(), wait)
        pytest.fail(f"unexpected message: {message!r}")


async def expect_denied(url: str, status: int, **kwargs: Any) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(url, open_timeout=TIMEOUT, **kwargs):
            pass
    assert info.value.response.status_code == status
    return info.value


# ==================================================================== echo


@pytest.fixture
async def echo_server(run_server: StartServer) -> Server:
    return await run_server(echo.routes)


async def test_echo_page_is_served_at_root() -> None:
    async with TestClient(echo.routes) as client:
        response = await client.get("/")
    status, headers, body = response.status, response.headers, response.text
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "<input" in body and 'id="send"' in body and 'id="log"' in body
    # (Relative to the page: behind a proxy's path prefix too, see test_browser.)
    assert 'new URL("ws", location.href)' in body


async def test_echo_page_answers_head() -> None:
    async with TestClient(echo.routes) as client:
        response = await client.request("HEAD", "/")
    status, headers, body = response.status, response.headers, response.text
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert body == ""


@pytest.mark.parametrize("path", ["/", "/ws"])
async def test_echo_still_echoes(echo_server: Server, path: str) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{echo_server.port}{path}") as ws:
        messages: list[str | bytes] = ["hello", "", "é" * 1000, b"\x00\x01\xff", b"x" * 70000]
        for message in messages:
            await ws.send(message)
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == message


# ==================================================================== chat


@pytest.fixture(autouse=True)
def _reset_example_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    chat.rooms.clear()
    secure.message_times.clear()
    yield
    chat.rooms.clear()
    secure.message_times.clear()


@pytest.fixture
async def chat_server(run_server: StartServer) -> Server:
    return await run_server(chat.routes)


class ChatClients:
    """Open chat connections for one test, closed at the end."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.open: list[Any] = []

    async def join(self, room: str, user: str | None = None) -> tuple[Any, dict[str, Any]]:
        """Connect, and return the connection with its ``system`` message."""
        url = f"ws://127.0.0.1:{self.port}/ws/chat/{room}"
        if user is not None:
            url += f"?user={user}"
        ws = await websockets.connect(url, open_timeout=TIMEOUT)
        self.open.append(ws)
        return ws, await recv_json(ws)

    async def close_all(self) -> None:
        for ws in self.open:
            await ws.close()


@pytest.fixture
async def clients(chat_server: Server) -> AsyncIterator[ChatClients]:
    pool = ChatClients(chat_server.port)
    yield pool
    await pool.close_all()


async def rooms_api(port: int) -> dict[str, Any]:
    status, headers, body = await http_get(port, "/api/rooms")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    data: dict[str, Any] = json.loads(body)
    return data


async def wait_rooms(port: int, expected: dict[str, Any]) -> None:
    """Poll /api/rooms until it says ``expected`` (handlers clean up asynchronously)."""
    deadline = time.monotonic() + TIMEOUT
    while (data := await rooms_api(port)) != expected:
        assert time.monotonic() < deadline, data
        await asyncio.sleep(0.02)


async def test_chat_page_is_served(chat_server: Server) -> None:
    status, headers, body = await http_get(chat_server.port, "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    for element_id in ("room", "user", "join", "message", "send", "log"):
        assert f'id="{element_id}"' in body
    assert 'new URL("ws/chat/"' in body and "location.href" in body


async def test_chat_join_gets_system_and_others_get_user_joined(clients: ChatClients) -> None:
    alice, welcome = await clients.join("lobby", "alice")
    assert welcome["type"] == "system"
    assert welcome["room"] == "lobby"
    assert welcome["clients"] == 1
    assert isinstance(welcome["message"], str) and welcome["message"]

    bob, welcome = await clients.join("lobby", "bob")
    assert welcome["type"] == "system" and welcome["room"] == "lobby"
    assert welcome["clients"] == 2
    joined = await recv_json(alice)
    assert joined == {"type": "user_joined", "room": "lobby", "user": "bob", "clients": 2}
    await expect_silence(bob)  # the joiner does not get its own user_joined


async def test_chat_a_long_user_name_is_cut_without_a_blank_at_its_end(
    clients: ChatClients,
) -> None:
    # Cut at 64 characters where the 65th came after a space: "aaa...a " was
    # the name, its space kept (what strip() took off a name given as it is).
    alice, _ = await clients.join("lobby", "alice")
    await clients.join("lobby", "a" * 63 + "%20" + "b" * 10)
    joined = await recv_json(alice)
    assert joined["type"] == "user_joined" and joined["user"] == "a" * 63, joined
    await alice.send(json.dumps({"type": "chat", "message": "hi", "user": "c" * 63 + " d"}))
    assert (await recv_json(alice))["user"] == "c" * 63


async def test_chat_message_goes_to_everyone_in_the_room(clients: ChatClients) -> None:
    alice, _ = await clients.join("lobby", "alice")
    bob, _ = await clients.join("lobby", "bob")
    assert (await recv_json(alice))["type"] == "user_joined"

    await alice.send(json.dumps({"type": "chat", "message": "hi bob", "user": "alice"}))
    expected = {"type": "chat", "message": "hi bob", "user": "alice", "room": "lobby"}
    assert await recv_json(alice) == expected  # the sender too
    assert await recv_json(bob) == expected


async def test_chat_messages_posted_over_http_reach_the_room(
    chat_server: Server, clients: ChatClients
) -> None:
    alice, _ = await clients.join("lobby", "alice")
    other, _ = await clients.join("elsewhere", "olga")
    base = f"http://127.0.0.1:{chat_server.port}/api/rooms"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/lobby/messages", json={"message": "deploy done"}) as r:
            assert (r.status, await r.json()) == (202, {"room": "lobby", "delivered": 1})
        assert await recv_json(alice) == {
            "type": "chat",
            "message": "deploy done",
            "user": "server",
            "room": "lobby",
        }
        for body in (b"{oops", b"[1]", b'{"message": 5}', b""):
            async with session.post(f"{base}/lobby/messages", data=body) as r:
                assert r.status == 400, body
                assert (await r.json())["status"] == 400
        async with session.get(f"{base}/lobby/messages") as r:
            assert r.status == 405
    await alice.send(json.dumps({"type": "chat", "message": "next"}))
    assert (await recv_json(alice))["message"] == "next"  # nothing else came between
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(other.recv(), 0.2)  # another room heard nothing


async def test_chat_three_clients(clients: ChatClients) -> None:
    alice, _ = await clients.join("room-3", "alice")
    bob, _ = await clients.join("room-3", "bob")
    carol, welcome = await clients.join("room-3", "carol")
    assert welcome["clients"] == 3
    assert (await recv_json(alice))["user"] == "bob"
    assert await recv_json(alice) == {
        "type": "user_joined",
        "room": "room-3",
        "user": "carol",
        "clients": 3,
    }
    assert (await recv_json(bob))["user"] == "carol"

    await carol.send(json.dumps({"type": "chat", "message": "hello all"}))
    for ws in (alice, bob, carol):
        # Without "user" in the message, the name given at join is used.
        assert await recv_json(ws) == {
            "type": "chat",
            "message": "hello all",
            "user": "carol",
            "room": "room-3",
        }
    await bob.send(json.dumps({"type": "chat", "message": "yo", "user": "bobby"}))
    for ws in (alice, bob, carol):
        assert (await recv_json(ws))["user"] == "bobby"


async def test_chat_rooms_are_isolated(clients: ChatClients) -> None:
    red, _ = await clients.join("red", "r")
    blue, welcome = await clients.join("blue", "b")
    assert welcome["clients"] == 1  # not counted with the other room
    await expect_silence(red)  # no user_joined from another room

    await red.send(json.dumps({"type": "chat", "message": "in red"}))
    assert (await recv_json(red))["room"] == "red"
    await blue.send(json.dumps({"type": "chat", "message": "in blue"}))
    got = await recv_json(blue)
    assert got["message"] == "in blue" and got["room"] == "blue"
    await expect_silence(red)
    await expect_silence(blue)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("this is not json", "Invalid JSON"),
        ("{", "Invalid JSON"),
        ("[" * 100_000, "Invalid JSON"),  # (nested past Python's recursion limit)
        ("[1, 2]", "object"),
        ('"chat"', "object"),
        ("null", "object"),
        ('{"message": "no type"}', "type"),
        ('{"type": "dance"}', "dance"),
        ('{"type": "chat"}', "message"),
        ('{"type": "chat", "message": 5}', "message"),
        (b"\x00binary", "Binary"),
    ],
)
async def test_chat_bad_messages_get_an_error_and_keep_the_connection(
    clients: ChatClients, message: str | bytes, error: str
) -> None:
    alice, _ = await clients.join("lobby", "alice")
    await alice.send(message)
    answer = await recv_json(alice)
    assert answer["type"] == "error"
    assert error in answer["message"]
    # Still connected and still chatting.
    await alice.send(json.dumps({"type": "chat", "message": "still here"}))
    assert (await recv_json(alice))["message"] == "still here"


async def test_chat_room_names_are_url_decoded(chat_server: Server, clients: ChatClients) -> None:
    ws, welcome = await clients.join("caf%C3%A9%20cr%C3%A8me", "%C3%A9ric")
    assert welcome["room"] == "café crème" and welcome["user"] == "éric"
    assert await rooms_api(chat_server.port) == {"rooms": ["café crème"], "total_clients": 1}
    await ws.send(json.dumps({"type": "chat", "message": "☕"}))
    assert await recv_json(ws) == {
        "type": "chat",
        "message": "☕",
        "user": "éric",
        "room": "café crème",
    }


async def test_chat_room_name_too_long_for_a_topic_is_400(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A room whose topic (``room:<room_id>``) is over ``max_topic_size`` is refused with
    400, at the handshake and over HTTP: it was accepted, then subscribing raised
    (1011 and a traceback), and the HTTP post answered 500."""
    server = await run_server(chat.routes, max_topic_size=64)
    fits = "r" * (64 - len(chat.ROOM))
    for room in (fits + "r", "%C3%A9" * 30):  # (é: 2 bytes of UTF-8)
        denied = await expect_denied(f"ws://127.0.0.1:{server.port}/ws/chat/{room}", 400)
        assert b"too long" in denied.response.body
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://127.0.0.1:{server.port}/api/rooms/{room}/messages",
                json={"message": "hello"},
            ) as response,
        ):
            assert response.status == 400
            assert "too long" in (await response.json())["message"]
    # The longest that fits is a room.
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws/chat/{fits}") as ws:
        assert (await recv_json(ws))["room"] == fits
    await wait_rooms(server.port, {"rooms": [], "total_clients": 0})
    assert not errors_logged(caplog)


async def test_chat_leaving_and_rooms_api(chat_server: Server, clients: ChatClients) -> None:
    port = chat_server.port
    assert await rooms_api(port) == {"rooms": [], "total_clients": 0}
    alice, _ = await clients.join("alpha", "alice")
    bob, _ = await clients.join("alpha", "bob")
    carol, _ = await clients.join("beta", "carol")
    assert await rooms_api(port) == {"rooms": ["alpha", "beta"], "total_clients": 3}
    assert (await recv_json(alice))["type"] == "user_joined"

    await bob.close()
    left = await recv_json(alice)
    assert left == {"type": "user_left", "room": "alpha", "user": "bob", "clients": 1}
    assert await rooms_api(port) == {"rooms": ["alpha", "beta"], "total_clients": 2}

    await carol.close()  # the last one in beta: the room disappears
    await wait_rooms(port, {"rooms": ["alpha"], "total_clients": 1})
    assert "beta" not in chat.rooms

    await alice.close()
    await wait_rooms(port, {"rooms": [], "total_clients": 0})
    assert chat.rooms == {}


async def test_chat_abrupt_disconnect_is_cleaned_up(
    chat_server: Server, clients: ChatClients
) -> None:
    alice, _ = await clients.join("lobby", "alice")
    bob, _ = await clients.join("lobby", "bob")
    assert (await recv_json(alice))["type"] == "user_joined"
    bob.transport.abort()  # no closing handshake
    left = await recv_json(alice)
    assert left["type"] == "user_left" and left["user"] == "bob"
    await wait_rooms(chat_server.port, {"rooms": ["lobby"], "total_clients": 1})
    await alice.send(json.dumps({"type": "chat", "message": "alone"}))
    assert (await recv_json(alice))["message"] == "alone"


async def test_chat_client_closing_at_once_leaves_no_room_behind(chat_server: Server) -> None:
    """A client whose close comes with its upgrade request (closing before the handler
    subscribed it) is forgotten: it stayed in ``chat.rooms`` for good, a connection
    kept per such client."""
    close = serialize_frame(Opcode.CLOSE, serialize_close(1000), mask=MASK)
    for i in range(20):
        client = await RawClient.connect(chat_server.port, f"/ws/chat/gone{i}", first_frames=close)
        await client.expect_eof()
        client.close()
    await wait_rooms(chat_server.port, {"rooms": [], "total_clients": 0})
    deadline = time.monotonic() + TIMEOUT
    while chat.rooms:
        assert time.monotonic() < deadline, sorted(chat.rooms)
        await asyncio.sleep(0.02)


async def test_chat_goes_on_past_gone_and_slow_clients(run_server: StartServer) -> None:
    """A client that vanished and one that never reads do not hold up the room: the
    others get every message at once, the slow one is skipped (not buffered without bound)."""
    server = await run_server(chat.routes, write_limit=8192)
    pool = ChatClients(server.port)
    try:
        first, _ = await pool.join("r", "first")
        last, _ = await pool.join("r", "last")
        gone = await RawClient.connect(server.port, "/ws/chat/r?user=gone")
        slow = await RawClient.connect(server.port, "/ws/chat/r?user=slow")
        while (await recv_type(first, "user_joined"))["user"] != "slow":
            pass  # everyone is in the room now
        gone.writer.transport.abort()
        text = "x" * 100_000  # 100 of them: more than the kernel's buffers take
        started = time.monotonic()
        for _ in range(100):
            await first.send(json.dumps({"type": "chat", "message": text}))
            for ws in (first, last):  # readers that keep up get every one
                while (data := await recv_json(ws))["type"] != "chat":
                    pass
                assert data["message"] == text
        assert time.monotonic() - started < 10
        assert server.pubsub.skipped > 0  # the slow client's share
        slow_protocol = [p for p in server._websockets if p.request.args.get("user") == "slow"]
        for protocol in slow_protocol:
            assert protocol.transport.get_write_buffer_size() < 8192 + 2 * 100_100
        slow.writer.transport.abort()
    finally:
        await pool.close_all()


async def test_chat_welcome_means_the_room_is_heard_from_every_process(
    run_server: StartServer, redis_server: RedisServer
) -> None:
    """A client welcomed in a room on one server gets what another server says there
    next, as the docstring's ``--workers 3 --broker redis://...`` promises: the handler
    waits for Redis to confirm the room's subscription before its welcome."""
    async with Proxy(redis_server.port) as proxy:
        broker = RedisBroker(f"redis://127.0.0.1:{proxy.port}/0")
        here = await run_server(chat.routes, broker=broker)
        there = await run_server(chat.routes, broker=redis_server.url)
        await wait_for(lambda: broker.up, what="the broker up")
        # (This server's SUBSCRIBE to the room reaches Redis once released.)
        assert proxy.hold(lambda link: b"SUBSCRIBE" in link.from_client) == 1
        ws = await websockets.connect(f"ws://127.0.0.1:{here.port}/ws/chat/lobby?user=ann")
        try:

            async def welcomed_then_post() -> None:
                assert (await recv_json(ws))["type"] == "system"
                url = f"http://127.0.0.1:{there.port}/api/rooms/lobby/messages"
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(url, json={"message": "hello ann"}) as r,
                ):
                    assert r.status == 202

            posting = asyncio.ensure_future(welcomed_then_post())
            # Until the subscription is confirmed, no welcome (so no POST); at most
            # this long, then the proxy lets it through.
            await asyncio.wait({posting}, timeout=0.5)
            proxy.release()
            await posting
            said = await recv_type(ws, "chat")
            assert said["message"] == "hello ann"
        finally:
            await ws.close()


# ================================================================== stream


@pytest.fixture
async def stream_server(run_server: StartServer) -> Server:
    return await run_server(stream.routes)


def stream_url(server: Server, interval: float | str | None = 0.05) -> str:
    url = f"ws://127.0.0.1:{server.port}/ws/data-stream"
    return url if interval is None else f"{url}?interval={interval}"


def iso_age(timestamp: str) -> float:
    """Seconds since an ISO 8601 timestamp (the document's form), which must have a zone."""
    moment = datetime.fromisoformat(timestamp)
    assert moment.tzinfo is not None, timestamp
    return (datetime.now(UTC) - moment).total_seconds()


async def test_stream_pushes_readings_periodically(stream_server: Server) -> None:
    async with websockets.connect(stream_url(stream_server)) as ws:
        hello = await recv_json(ws)
        # The document's first message: type, message, timestamp.
        assert hello["type"] == "connected" and isinstance(hello["message"], str)
        assert abs(iso_age(hello["timestamp"])) < 5
        assert hello["interval"] == 0.05
        assert set(hello["sensors"]) == set(stream.SENSORS)
        readings = [await recv_json(ws) for _ in range(6)]
    # Paced, by the times they were sent (how fast this client reads them
    # depends on the machine's load): ~5 x 0.05 s from the first to the last.
    first, last = (datetime.fromisoformat(readings[i]["timestamp"]) for i in (0, -1))
    spread = (last - first).total_seconds()
    assert 0.15 < spread < 2.0, spread
    for reading in readings:
        # The document's data message, every field of it.
        assert reading["type"] == "data"
        assert reading["sensor_id"] in stream.SENSORS
        for field in ("value", "temperature", "humidity"):
            assert isinstance(reading[field], float), (field, reading)
        assert abs(iso_age(reading["timestamp"])) < 5
    assert [r["seq"] for r in readings] == list(range(1, 7))
    assert {r["sensor_id"] for r in readings} == set(stream.SENSORS)  # taken in turn
    assert readings[-1]["timestamp"] > readings[0]["timestamp"]


async def test_stream_reading_says_one_value_per_sensor(stream_server: Server) -> None:
    """A data message's ``value`` is its sensor's reading, and its ``temperature`` and
    ``humidity`` those sensors' readings: of the temperature sensor, ``value`` and
    ``temperature`` are one reading (each was read apart, with its own noise, so one message
    said two temperatures)."""
    async with websockets.connect(stream_url(stream_server)) as ws:
        await recv_type(ws, "connected")
        readings = [await recv_type(ws, "data") for _ in range(6)]  # every sensor in turn
        for sensor_id in ("temperature", "humidity"):
            await ws.send(json.dumps({"type": "subscribe", "sensor_id": sensor_id}))
            await recv_type(ws, "subscribed")
            readings += [await recv_type(ws, "data") for _ in range(3)]
    checked = [r for r in readings if r["sensor_id"] in ("temperature", "humidity")]
    assert len(checked) >= 10
    for reading in checked:
        assert reading["value"] == reading[reading["sensor_id"]], reading


async def test_stream_default_interval_is_a_module_constant(
    stream_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stream.INTERVAL == 1.0
    monkeypatch.setattr(stream, "INTERVAL", 0.05)
    async with websockets.connect(stream_url(stream_server, None)) as ws:
        assert (await recv_json(ws))["interval"] == 0.05
        for _ in range(3):
            assert (await recv_json(ws, timeout=1))["type"] == "data"


@pytest.mark.parametrize("interval", ["abc", "0", "-1", "nan", "1e9"])
async def test_stream_bad_interval_is_refused(stream_server: Server, interval: str) -> None:
    denied = await expect_denied(stream_url(stream_server, interval), 400)
    assert b"interval" in denied.response.body


async def test_stream_ping_pong(stream_server: Server) -> None:
    async with websockets.connect(stream_url(stream_server)) as ws:
        await recv_type(ws, "connected")
        await ws.send(json.dumps({"type": "ping", "id": 42}))
        pong = await recv_type(ws, "pong")
        assert pong["id"] == 42 and abs(iso_age(pong["timestamp"])) < 5
        # Readings go on around it.
        await recv_type(ws, "data")


@pytest.mark.parametrize(
    "raw_id",
    [
        "NaN",  # (Python's json reads it; no JSON can say it back)
        "1e400",  # (an infinity)
    ],
)
async def test_stream_ping_id_that_cannot_be_sent_back_is_an_error(
    stream_server: Server, raw_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A ping's ``id`` is a string, a number or null, echoed; anything else is an
    error message. It was echoed whatever it was, and one that JSON cannot say
    back raised in ``send``: 1011 and a traceback."""
    async with websockets.connect(stream_url(stream_server)) as ws:
        await recv_type(ws, "connected")
        await ws.send('{"type": "ping", "id": ' + raw_id + "}")
        answer = await recv_type(ws, "error")
        assert "'id'" in answer["message"]
        for good in ("next", 7, 2.5, None):
            await ws.send(json.dumps({"type": "ping", "id": good}))
            assert (await recv_type(ws, "pong"))["id"] == good
        await recv_type(ws, "data")
    assert not errors_logged(caplog)


async def test_stream_ping_id_nested_deep_is_answered(
    stream_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """An ``id`` nested nearly as deep as the recursion limit (read, but at some depth
    too deep to write back) is answered, never with 1011 and a traceback."""
    async with websockets.connect(stream_url(stream_server, 60)) as ws:
        await recv_type(ws, "connected")
        for depth in range(700, 1000):
            await ws.send('{"type": "ping", "id": ' + "[" * depth + "]" * depth + "}")
            assert (await recv_json(ws))["type"] in ("pong", "error"), depth
        await ws.send(json.dumps({"type": "ping", "id": "next"}))
        assert (await recv_type(ws, "pong"))["id"] == "next"
    assert not errors_logged(caplog)


async def test_stream_subscribe(stream_server: Server) -> None:
    async with websockets.connect(stream_url(stream_server)) as ws:
        await recv_type(ws, "connected")
        await ws.send(json.dumps({"type": "subscribe", "sensor_id": "humidity"}))
        answer = await recv_type(ws, "subscribed")
        assert answer["sensor_id"] == "humidity" and isinstance(answer["message"], str)
        readings = [await recv_type(ws, "data") for _ in range(4)]
        assert [r["sensor_id"] for r in readings] == ["humidity"] * 4
        assert all(r["unit"] == "%" for r in readings)

        # The document subscribes to any sensor_id.
        await ws.send(json.dumps({"type": "subscribe", "sensor_id": "sensor_42"}))
        answer = await recv_type(ws, "subscribed")
        assert answer["sensor_id"] == "sensor_42" and "sensor_42" in answer["message"]
        readings = [await recv_type(ws, "data") for _ in range(3)]
        assert [r["sensor_id"] for r in readings] == ["sensor_42"] * 3
        assert all(isinstance(r["value"], float) for r in readings)

        await ws.send(json.dumps({"type": "unsubscribe"}))
        await recv_type(ws, "unsubscribed")
        readings = [await recv_type(ws, "data") for _ in range(4)]
        assert len({r["sensor_id"] for r in readings}) > 1


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("not json", "Invalid message format"),
        ("[" * 100_000, "Invalid message format"),  # (nested past the recursion limit)
        ("[]", "object"),
        ('{"type": "launch"}', "launch"),
        ('{"type": "subscribe", "sensor_id": 7}', "sensor_id"),
        ('{"type": "subscribe"}', "sensor_id"),
        (b"\x01\x02", "Binary"),
    ],
)
async def test_stream_bad_messages_get_an_error_and_the_stream_goes_on(
    stream_server: Server, message: str | bytes, error: str
) -> None:
    async with websockets.connect(stream_url(stream_server)) as ws:
        await recv_type(ws, "connected")
        await ws.send(message)
        answer = await recv_type(ws, "error")
        assert error in answer["message"]
        await recv_type(ws, "data")
        await ws.send(json.dumps({"type": "ping"}))
        await recv_type(ws, "pong")


def pusher_tasks() -> list[asyncio.Task[Any]]:
    return [
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__name__", "") == "push_readings" and not t.done()
    ]


async def test_stream_pusher_stops_when_the_client_leaves(stream_server: Server) -> None:
    async with websockets.connect(stream_url(stream_server)) as ws:
        await recv_type(ws, "data")
        assert len(pusher_tasks()) == 1
    deadline = time.monotonic() + TIMEOUT
    while pusher_tasks():
        assert time.monotonic() < deadline, "the pusher task outlived its connection"
        await asyncio.sleep(0.02)


# ================================================================== secure


@pytest.fixture
async def secure_server(run_server: StartServer) -> Server:
    return await run_server(secure.routes)


def secure_url(server: Server, query: str = "") -> str:
    """The handshake-denial endpoint (the document's accept-then-close one is at /ws/secure,
    tested in test_document_patterns)."""
    return f"ws://127.0.0.1:{server.port}/ws/secure/handshake{query}"


async def test_secure_handshake_without_token_is_401(secure_server: Server) -> None:
    denied = await expect_denied(secure_url(secure_server), 401)
    assert b"Unauthorized" in denied.response.body
    assert denied.response.headers["WWW-Authenticate"].startswith("Bearer")
    assert denied.response.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("?token=", None),
        ("", {"Authorization": "Bearer "}),
        ("", {"Authorization": "Basic dXNlcjpwYXNz"}),
    ],
)
async def test_secure_handshake_empty_or_non_bearer_token_is_401(
    secure_server: Server, query: str, headers: dict[str, str] | None
) -> None:
    await expect_denied(secure_url(secure_server, query), 401, additional_headers=headers)


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("?token=wrong", None),
        ("?token=valid_token_", None),
        ("", {"Authorization": "Bearer wrong"}),
    ],
)
async def test_secure_handshake_wrong_token_is_403(
    secure_server: Server, query: str, headers: dict[str, str] | None
) -> None:
    denied = await expect_denied(secure_url(secure_server, query), 403, additional_headers=headers)
    assert b"Forbidden" in denied.response.body


async def test_secure_handshake_denial_is_a_plain_http_response() -> None:
    async with TestClient(secure.routes) as client:
        plain = await client.get("/ws/secure/handshake?token=x")
        # Not an upgrade request: the WebSocket endpoint says so before any hook runs.
        assert plain.status == 426
        with pytest.raises(HandshakeDenied) as caught:
            await client.websocket("/ws/secure/handshake")
        denied = caught.value
        assert client.server.websockets == []
    assert (denied.response.http_version, denied.status) == ("HTTP/1.1", 401)
    assert denied.headers["Connection"] == "close"  # a denial ends the connection
    assert b"Unauthorized" in denied.body
    assert "sec-websocket-accept" not in denied.headers


@pytest.mark.parametrize("how", ["query", "bearer", "raw header"])
async def test_secure_handshake_valid_token_is_accepted_and_echoed(
    secure_server: Server, how: str
) -> None:
    if how == "query":
        ws_cm = websockets.connect(secure_url(secure_server, "?token=valid_token"))
    else:
        value = "Bearer valid_token" if how == "bearer" else "valid_token"  # the document's form
        ws_cm = websockets.connect(
            secure_url(secure_server), additional_headers={"Authorization": value}
        )
    async with ws_cm as ws:
        hello = await recv_json(ws)
        assert hello["type"] == "authenticated" and hello["user"] == "demo_user"
        assert isinstance(hello["message"], str) and hello["message"]
        await ws.send("hello")
        echoed = await recv_json(ws)
        assert echoed["type"] == "message"
        assert echoed["message"] == "hello" and echoed["user"] == "demo_user"
        assert abs(iso_age(echoed["timestamp"])) < 5


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_secure_handshake_rate_limit(
    secure_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(secure, "clock", clock)
    async with websockets.connect(secure_url(secure_server, "?token=valid_token")) as ws:
        await recv_type(ws, "authenticated")
        for i in range(10):
            await ws.send(f"m{i}")
            answer = await recv_json(ws)
            assert answer["type"] == "message" and answer["message"] == f"m{i}"
            clock.now += 1
        await ws.send("eleventh")
        refused = await recv_json(ws)
        assert refused["type"] == "error"
        assert refused["message"].startswith("Rate limit exceeded")
        assert refused["retry_after"] == pytest.approx(50, abs=0.01)

        # The connection stays open, and the window slides: once the first
        # message is 60 s old, one more is allowed, then refused again.
        clock.now = 1000.0 + 60
        await ws.send("again")
        assert (await recv_json(ws))["message"] == "again"
        await ws.send("too soon")
        assert (await recv_json(ws))["type"] == "error"


async def test_secure_handshake_rate_limit_is_per_user(
    secure_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secure, "RATE_LIMIT", 2)
    monkeypatch.setattr(secure, "TOKENS", {"valid_token": "demo_user", "other": "other_user"})
    url = secure_url(secure_server, "?token=valid_token")
    async with websockets.connect(url) as first, websockets.connect(url) as second:
        await recv_type(first, "authenticated")
        await recv_type(second, "authenticated")
        await first.send("1")
        await second.send("2")
        assert (await recv_json(first))["type"] == "message"
        assert (await recv_json(second))["type"] == "message"
        await second.send("3")  # the user's third message, whichever connection
        assert (await recv_json(second))["type"] == "error"
        async with websockets.connect(secure_url(secure_server, "?token=other")) as other:
            assert await recv_json(other) == {
                "type": "authenticated",
                "user": "other_user",
                "message": "Authenticated as other_user",
            }
            await other.send("mine")
            assert (await recv_json(other))["type"] == "message"


# ================================================================= make run


async def test_make_run_starts_the_chat_example() -> None:
    """``make run`` prints the page's URL and serves examples.chat on 127.0.0.1:8000.

    The recipe is read from the Makefile and run with ``--port 0`` instead.
    """
    root = Path(__file__).resolve().parent.parent
    makefile = (root / "Makefile").read_text()
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert 'echo "Chat page: http://127.0.0.1:8000/"' in recipe
    command = recipe.strip().splitlines()[-1].strip()
    assert command.endswith("-m wsserver examples.chat:routes --host 127.0.0.1 --port 8000")
    args = command.split("-m wsserver ", 1)[1].split()
    args[args.index("8000")] = "0"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wsserver",
        *args,
        cwd=root,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        port = None
        async with asyncio.timeout(10):
            while port is None:
                line = (await process.stderr.readline()).decode()
                assert line, "the server exited before listening"
                match = re.search(r"listening on ws://127\.0\.0\.1:(\d+)", line)
                if match:
                    port = int(match.group(1))
        status, _, body = await http_get(port, "/")
        assert status == 200 and 'id="join"' in body
        assert await rooms_api(port) == {"rooms": [], "total_clients": 0}
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws/chat/lobby") as ws:
            assert (await recv_json(ws))["type"] == "system"
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()


def docstring_commands() -> list[str]:
    """The ``python -m wsserver ...`` commands the examples' docstrings run them with,
    but those that need a Redis (``--broker``)."""
    found = []
    for path in sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.py")):
        doc = " ".join((ast.get_docstring(ast.parse(path.read_text())) or "").split())
        commands = re.findall(r"``python -m wsserver ([^`]+)``", doc)
        assert commands or path.name == "__init__.py", f"{path.name} says not how to run it"
        found += [command for command in commands if "--broker" not in command]
    return found


@pytest.mark.parametrize("command", docstring_commands())
async def test_each_example_runs_as_its_docstring_says(command: str) -> None:
    """Started as its docstring says (on a free port), an example listens and answers."""
    async with running_cli(*command.split()) as cli:
        reader, writer = await asyncio.open_connection("127.0.0.1", cli.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = await asyncio.wait_for(reader.readline(), TIMEOUT)
        writer.close()
        assert re.match(rb"HTTP/1\.1 [234]\d\d ", head), (head, cli.lines)


def test_the_readme_s_fastapi_app_is_examples_fastapi_rooms() -> None:
    """The README's FastAPI block, which says it is ``examples/fastapi_rooms.py``, is its code:
    a fix made to one alone (a new import, a route's path) would leave the other wrong."""
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    (shown,) = [block for block in blocks if "(this is examples/fastapi_rooms.py)" in block]
    module = ast.parse((root / "examples" / "fastapi_rooms.py").read_text())
    module.body = module.body[1:]  # the docstring, which the README's prose says instead
    assert ast.dump(ast.parse(shown)) == ast.dump(module)


def _names_used_but_not_bound(tree: ast.Module) -> set[str]:
    """The names ``tree`` reads that nothing in it binds (an import, an assignment, a
    function, a parameter, an ``except ... as``, a ``match`` capture), nor Python's builtins."""
    bound = set(dir(builtins))
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            bound.add(node.name)  # (except ... as name; a match case's capture)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            bound.update(node.names)
    return used - bound


def test_names_a_reader_binds_are_bound() -> None:
    """What the README test leaves: a name an ``except ... as``, a ``match`` case or a
    ``global`` binds is the reader's own, even one a standard module also has."""
    block = (
        "try:\n    pass\nexcept OSError as select:\n    print(select)\n"
        "match message:\n"
        "    case {'kind': 'ping', **rest}: print(rest)\n"
        "    case [queue, *secrets]: print(queue, secrets)\n"
        "    case str() as string: print(string)\n"
        "def count():\n    global code\n    code += 1\n"
    )
    assert _names_used_but_not_bound(ast.parse(block)) == {"message"}


def test_the_readme_s_code_imports_the_library_names_it_uses() -> None:
    """A README block pasted into a file runs with the imports it shows: the names it uses
    and does not define are the reader's own (``routes``, ``store``...), never a standard
    module (``asyncio.sleep`` in the server-sent events block failed its stream after the
    first event, with a NameError) nor one of wsserver's functions (``json``, ``text``)."""
    import wsserver
    import wsserver.response

    library = set(sys.stdlib_module_names) | set(wsserver.__all__)
    library |= set(wsserver.response.__all__)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = {}
    for block in re.findall(r"```python\n(.*?)```", readme, re.S):
        unbound = _names_used_but_not_bound(ast.parse(block)) & library
        if unbound:
            missing[block.splitlines()[0]] = sorted(unbound)
    assert missing == {}


def test_the_quick_start_says_how_many_processes_make_test_runs() -> None:
    """The README's quick start names the pytest workers the Makefile's ``test`` recipe starts."""
    root = Path(__file__).resolve().parent.parent
    recipe = (root / "Makefile").read_text().split("\ntest:", 1)[1].split("\n\n", 1)[0]
    match = re.search(r"-m pytest .*-n (\d+)", recipe)
    assert match, recipe
    words = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 8: "eight"}
    readme = (root / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    said = re.search(r"runs the suite in (\w+)\s+processes", quick_start)
    assert said, quick_start
    assert said.group(1) == words[int(match.group(1))]


async def test_stream_invalid_json_gets_exactly_the_documents_error(stream_server: Server) -> None:
    async with websockets.connect(stream_url(stream_server)) as ws:
        await recv_type(ws, "connected")
        await ws.send("{not json")
        assert await recv_type(ws, "error") == {
            "type": "error",
            "message": "Invalid message format",
        }


EMBEDDED = """
import asyncio, signal
from wsserver import serve
from examples.echo import routes

async def main():
    async with serve(routes, "127.0.0.1", 0) as server:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, lambda: loop.create_task(server.close()))
        print("listening on", server.port, flush=True)
        await server.serve_forever()
    print("closed", flush=True)

asyncio.run(main())
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_an_embedding_program_s_signals_close_the_server_as_the_readme_says(
    tmp_path: Path, signum: int
) -> None:
    # (README, Embedding: the program owns its signals; the SIGTERM handler
    # it shows closes the server gracefully, its clients told 1001, and
    # serve_forever() returns once the shutdown is over; Ctrl-C, under
    # asyncio.run(), cancels main(), which closes it so too, then ends with
    # KeyboardInterrupt.)
    (tmp_path / "embedded.py").write_text(EMBEDDED)
    # (As from a terminal: SIGINT not ignored, which a test run started in
    # the background of a shell without job control gives every process it
    # starts, and Python then leaves so: Ctrl-C would do nothing.)
    as_from_a_terminal = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "runpy.run_path(sys.argv[1], run_name='__main__')"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        as_from_a_terminal,
        str(tmp_path / "embedded.py"),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        port = int(line.split()[-1])
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            proc.send_signal(signum)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        said, errors = await asyncio.wait_for(proc.communicate(), 10)
        if signum == signal.SIGTERM:
            assert (said, proc.returncode) == (b"closed\n", 0), errors
        else:  # (Python's KeyboardInterrupt, its end as the signal's)
            assert (said, proc.returncode) == (b"", -signal.SIGINT), errors
            assert errors.rstrip().endswith(b"KeyboardInterrupt"), errors
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
