"""The opening handshake: sans-I/O unit tests, then the HTTP phase over real sockets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
import websockets

import wsserver
from wsserver import HandshakeError, Headers, Router
from wsserver.protocol.handshake import (
    accept_headers,
    accept_key,
    check_request,
    comma_tokens,
    is_same_origin,
    select_subprotocol,
)
from wsserver.response import Response

from .conftest import StartServer
from .helpers import sends_on_then_ends, slow_reader, wait_for

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
TIMEOUT = 3.0

# ======================================================================= helpers


def upgrade_pairs(
    *, drop: Iterable[str] = (), add: Iterable[tuple[str, str]] = (), **replace: str
) -> list[tuple[str, str]]:
    """The header pairs of a valid upgrade request, modified.

    ``replace`` keys use underscores for dashes (``Sec_WebSocket_Key="x"``);
    ``drop`` removes headers by (case-insensitive) name; ``add`` appends pairs.
    """
    pairs = {
        "Host": "127.0.0.1",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    for name, value in replace.items():
        pairs[name.replace("_", "-")] = value
    dropped = {name.lower() for name in drop}
    return [(n, v) for n, v in pairs.items() if n.lower() not in dropped] + list(add)


def handshake_error(
    method: str = "GET", version: str = "1.1", pairs: list[tuple[str, str]] | None = None
) -> HandshakeError:
    """The HandshakeError check_request raises for this request (fails if none)."""
    with pytest.raises(HandshakeError) as info:
        check_request(method, version, Headers(upgrade_pairs() if pairs is None else pairs))
    return info.value


def parse_response(raw: bytes) -> tuple[int, Headers, bytes]:
    """Split a raw HTTP/1.1 response into status code, headers and body."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no end of headers in {raw[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = lines[0].split(" ", 2)
    assert version == "HTTP/1.1"
    headers = Headers()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        assert colon, f"malformed header line {line!r}"
        headers.add(name, value.strip())
    return int(status), headers, body


def connection_tokens(headers: Headers) -> list[str]:
    """Every Connection option: several field lines form one list (RFC 9110 5.3)."""
    return [t.strip().lower() for v in headers.getall("Connection") for t in v.split(",")]


def assert_complete_error(raw: bytes, status: int) -> Headers:
    """``raw`` is one complete error response with this status that closes the connection."""
    code, headers, body = parse_response(raw)
    assert code == status, raw[:300]
    assert int(headers["Content-Length"]) == len(body)
    assert "close" in connection_tokens(headers), headers.getall("Connection")
    return headers


def request_bytes(
    path: str = "/ws", pairs: list[tuple[str, str]] | None = None, method: str = "GET"
) -> bytes:
    """A raw HTTP/1.1 request."""
    pairs = upgrade_pairs() if pairs is None else pairs
    lines = [f"{method} {path} HTTP/1.1"] + [f"{n}: {v}" for n, v in pairs]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def masked_frame(opcode: int, payload: bytes, mask: bytes = b"\x37\xfa\x21\x3d") -> bytes:
    """A final client frame (payload shorter than 126 bytes)."""
    assert len(payload) < 126
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


async def open_raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)


async def read_to_eof(reader: asyncio.StreamReader) -> bytes:
    """Everything until the server closes the connection (a reset counts as the end)."""
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := await asyncio.wait_for(reader.read(65536), TIMEOUT):
            chunks.append(chunk)
    return b"".join(chunks)


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def read_head(reader: asyncio.StreamReader) -> tuple[int, Headers]:
    """Read a response head (the connection stays open) and parse it."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    status, headers, rest = parse_response(head)
    assert rest == b""
    return status, headers


async def exchange(port: int, data: bytes, *, then_closed: bool = False) -> tuple[int, Headers]:
    """Send ``data`` on a new connection and read one error response.

    The response must carry a Content-Length that delimits its body exactly.
    With ``then_closed``, the server must also close the connection after it,
    sending nothing more.
    """
    reader, writer = await open_raw(port)
    try:
        writer.write(data)
        await writer.drain()
        status, headers = await read_head(reader)
        assert status >= 400, status
        assert "Content-Length" in headers, headers
        body = await asyncio.wait_for(reader.readexactly(int(headers["Content-Length"])), TIMEOUT)
        assert body, "an error response explains itself"
        if then_closed:
            assert "close" in connection_tokens(headers)
            assert await read_to_eof(reader) == b""
        return status, headers
    finally:
        await close_writer(writer)


def make_routes() -> Router:
    routes = Router()

    @routes.websocket("/ws")
    async def echo(request: Any, ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    @routes.websocket("/proto", subprotocols=["chat.v2", "chat.v1"])
    async def proto(request: Any, ws: Any) -> None:
        await ws.send(ws.subprotocol or "")
        async for _ in ws:
            pass

    return routes


@contextlib.asynccontextmanager
async def running(**settings: Any) -> AsyncIterator[wsserver.Server]:
    """A server for make_routes() on a free port, without keepalive pings."""
    settings.setdefault("ping_interval", None)
    async with wsserver.serve(make_routes(), "127.0.0.1", 0, **settings) as server:
        yield server


# ==================================================================== unit tests


def test_accept_key_rfc6455_example() -> None:
    assert accept_key(KEY) == ACCEPT


def test_accept_headers() -> None:
    assert accept_headers(KEY) == [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", ACCEPT),
    ]
    headers = dict(accept_headers(KEY, "chat", "permessage-deflate"))
    assert headers["Sec-WebSocket-Protocol"] == "chat"
    assert headers["Sec-WebSocket-Extensions"] == "permessage-deflate"


def test_check_request_valid_returns_key() -> None:
    assert check_request("GET", "1.1", Headers(upgrade_pairs())) == KEY


@pytest.mark.parametrize(
    "pairs",
    [
        upgrade_pairs(Upgrade="WebSocket"),
        upgrade_pairs(Upgrade="h2c, websocket"),
        upgrade_pairs(Connection="keep-alive, Upgrade"),
        upgrade_pairs(Connection="UPGRADE"),
        upgrade_pairs(Connection="keep-alive", add=[("Connection", "upgrade")]),
        upgrade_pairs(Sec_WebSocket_Version=" 13 "),
        upgrade_pairs(Sec_WebSocket_Key=f"  {KEY} "),
    ],
)
def test_check_request_accepts_variants(pairs: list[tuple[str, str]]) -> None:
    assert check_request("GET", "1.1", Headers(pairs)) == KEY


@pytest.mark.parametrize(
    "pairs",
    [upgrade_pairs(drop=["Upgrade"]), upgrade_pairs(Upgrade="h2c"), upgrade_pairs(Upgrade="")],
)
def test_not_an_upgrade_gives_426(pairs: list[tuple[str, str]]) -> None:
    error = handshake_error(pairs=pairs)
    assert error.status == 426
    assert ("Upgrade", "websocket") in error.headers


def test_post_gives_405() -> None:
    error = handshake_error(method="POST")
    assert error.status == 405
    assert ("Allow", "GET") in error.headers


def test_http_1_0_gives_400() -> None:
    assert handshake_error(version="1.0").status == 400


@pytest.mark.parametrize(
    "pairs",
    [
        upgrade_pairs(drop=["Connection"]),
        upgrade_pairs(Connection="keep-alive"),
        upgrade_pairs(Connection="close"),
        upgrade_pairs(Connection="upgrade-insecure"),
    ],
)
def test_connection_without_upgrade_gives_400(pairs: list[tuple[str, str]]) -> None:
    assert handshake_error(pairs=pairs).status == 400


@pytest.mark.parametrize(
    "pairs",
    [
        upgrade_pairs(drop=["Sec-WebSocket-Version"]),
        upgrade_pairs(Sec_WebSocket_Version="12"),
        upgrade_pairs(Sec_WebSocket_Version="8"),
    ],
)
def test_bad_version_gives_426_with_version_header(pairs: list[tuple[str, str]]) -> None:
    error = handshake_error(pairs=pairs)
    assert error.status == 426
    assert ("Sec-WebSocket-Version", "13") in error.headers
    # The answer says what was wrong: no version at all, or one not spoken.
    missing = not any(name == "Sec-WebSocket-Version" for name, _ in pairs)
    said = "Missing" if missing else "Unsupported"
    assert error.message.startswith(said), error.message


@pytest.mark.parametrize(
    "pairs",
    [
        upgrade_pairs(Sec_WebSocket_Version="13, 8"),
        upgrade_pairs(add=[("Sec-WebSocket-Version", "13")]),
        upgrade_pairs(add=[("Sec-WebSocket-Version", "8")]),
    ],
)
def test_more_than_one_version_gives_400(pairs: list[tuple[str, str]]) -> None:
    # RFC 6455 11.3.5: the header appears once in a request, one version. Two
    # (13 twice, say) got a 426 "Unsupported Sec-WebSocket-Version: this
    # server speaks version 13" to a client that sent 13: it would send the
    # same again. A duplicate Sec-WebSocket-Key was a 400 already.
    error = handshake_error(pairs=pairs)
    assert error.status == 400
    assert error.message == "Sec-WebSocket-Version must be one version, sent once."


@pytest.mark.parametrize(
    "pairs",
    [
        upgrade_pairs(drop=["Sec-WebSocket-Key"]),
        upgrade_pairs(add=[("Sec-WebSocket-Key", KEY)]),
        upgrade_pairs(Sec_WebSocket_Key="not base64!!"),
        upgrade_pairs(Sec_WebSocket_Key=""),
        upgrade_pairs(Sec_WebSocket_Key="ümlaut=="),
        upgrade_pairs(Sec_WebSocket_Key=base64.b64encode(b"x" * 15).decode()),
        upgrade_pairs(Sec_WebSocket_Key=base64.b64encode(b"x" * 17).decode()),
        upgrade_pairs(Sec_WebSocket_Key=KEY.rstrip("=")),  # bad padding
    ],
)
def test_bad_key_gives_400(pairs: list[tuple[str, str]]) -> None:
    assert handshake_error(pairs=pairs).status == 400


@pytest.mark.parametrize("offer", ["a b", "chat, a/b", "token==", "a;b", '"quoted"', "é"])
def test_a_subprotocol_that_is_no_token_gives_400(offer: str) -> None:
    # RFC 6455 4.1 and 11.3.4: each element is a token. "a b" was taken, and
    # an app choosing the first offered echoed it in the 101.
    pairs = upgrade_pairs(add=[("Sec-WebSocket-Protocol", offer)])
    error = handshake_error(pairs=pairs)
    assert (error.status, str(error)) == (400, "Malformed Sec-WebSocket-Protocol: not a token.")
    # Empty elements of the list are none (RFC 9110 5.6.1).
    good = upgrade_pairs(add=[("Sec-WebSocket-Protocol", ", chat.v1 ,, x-y_z~!,")])
    assert check_request("GET", "1.1", Headers(good)) == KEY


def test_check_order_upgrade_before_method() -> None:
    # A POST that is not an upgrade is "not a WebSocket request" first.
    assert handshake_error(method="POST", pairs=upgrade_pairs(drop=["Upgrade"])).status == 426


@pytest.mark.parametrize(
    ("offer", "supported", "expected"),
    [
        (["b, a"], ["a", "b"], "b"),
        (["a", "b"], ["b", "a"], "a"),
        (["x, b", "a"], ["a", "b"], "b"),
        (["x, y"], ["a"], None),
        ([], ["a"], None),
        (["a"], [], None),
        ([" , a ,"], ["a"], "a"),
    ],
)
def test_select_subprotocol_client_order(
    offer: list[str], supported: list[str], expected: str | None
) -> None:
    headers = Headers([("Sec-WebSocket-Protocol", value) for value in offer])
    assert select_subprotocol(headers, supported) == expected


# ============================================================ real-socket tests


async def test_successful_upgrade() -> None:
    async with running() as server:
        reader, writer = await open_raw(server.port)
        try:
            writer.write(request_bytes())
            status, headers = await read_head(reader)
        finally:
            await close_writer(writer)
    assert status == 101
    assert headers["Upgrade"].lower() == "websocket"
    assert headers["Connection"].lower() == "upgrade"
    assert headers["Sec-WebSocket-Accept"] == ACCEPT
    assert "Sec-WebSocket-Protocol" not in headers
    assert "Sec-WebSocket-Extensions" not in headers


async def test_upgrade_then_echo_in_separate_writes() -> None:
    async with running() as server:
        reader, writer = await open_raw(server.port)
        try:
            writer.write(request_bytes())
            status, _ = await read_head(reader)
            assert status == 101
            writer.write(masked_frame(0x2, b"\x00\x01\xff"))
            reply = await asyncio.wait_for(reader.readexactly(5), TIMEOUT)
        finally:
            await close_writer(writer)
    assert reply == b"\x82\x03\x00\x01\xff"


async def test_unknown_path_gives_404() -> None:
    async with running() as server:
        status, _ = await exchange(server.port, request_bytes("/nope"))
    assert status == 404


async def test_plain_get_to_ws_route_gives_426() -> None:
    async with running() as server:
        status, headers = await exchange(server.port, request_bytes(pairs=[("Host", "127.0.0.1")]))
    assert status == 426
    assert headers["Upgrade"].lower() == "websocket"


async def test_bad_version_gives_426_over_socket() -> None:
    async with running() as server:
        data = request_bytes(pairs=upgrade_pairs(Sec_WebSocket_Version="8"))
        status, headers = await exchange(server.port, data)
    assert status == 426
    assert headers["Sec-WebSocket-Version"] == "13"


@pytest.mark.parametrize("version", ["8", None])
async def test_every_426_names_the_upgrade(version: str | None) -> None:
    # RFC 9110 15.5.22: a 426 MUST send Upgrade, and 7.8: with Upgrade goes
    # the "upgrade" connection option; a version the server does not speak
    # (or none) gets a 426 too (RFC 6455 4.4), with Sec-WebSocket-Version.
    if version is None:
        pairs = upgrade_pairs(drop=["Sec-WebSocket-Version"])
    else:
        pairs = upgrade_pairs(Sec_WebSocket_Version=version)
    async with running() as server:
        status, headers = await exchange(server.port, request_bytes(pairs=pairs))
    assert status == 426
    assert headers["Sec-WebSocket-Version"] == "13"
    assert headers.getall("Upgrade") == ["websocket"]
    assert "upgrade" in connection_tokens(headers)


async def test_bad_key_gives_400_over_socket() -> None:
    async with running() as server:
        data = request_bytes(pairs=upgrade_pairs(Sec_WebSocket_Key="abc"))
        status, _ = await exchange(server.port, data)
    assert status == 400


async def test_post_gives_405_over_socket() -> None:
    async with running() as server:
        data = request_bytes(pairs=upgrade_pairs(add=[("Content-Length", "0")]), method="POST")
        status, headers = await exchange(server.port, data)
    assert status == 405
    assert headers["Allow"] == "GET"


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /ws\r\nHost: x\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nBad Header Line\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",  # HTTP/1.1 without Host
    ],
)
async def test_malformed_request_gives_400(data: bytes) -> None:
    async with running() as server:
        status, _ = await exchange(server.port, data, then_closed=True)
    assert status == 400


def big_header_request(size: int = 20 * 1024) -> bytes:
    return request_bytes(pairs=upgrade_pairs(add=[("X-Big", "a" * size)]))


async def test_oversized_headers_sent_at_once_give_431() -> None:
    # The whole 20 KiB request in one write: it is complete when it arrives,
    # but still larger than max_header_size (16 KiB).
    async with running() as server:
        reader, writer = await open_raw(server.port)
        try:
            writer.write(big_header_request())
            status, headers = await read_head(reader)
            assert status == 431
            await asyncio.wait_for(reader.readexactly(int(headers["Content-Length"])), TIMEOUT)
            assert await read_to_eof(reader) == b""
        finally:
            await close_writer(writer)


async def test_oversized_headers_arriving_slowly_give_431() -> None:
    # Only the first 17 KiB of the request: it cannot be complete yet, and is
    # already larger than max_header_size (16 KiB).
    async with running() as server:
        status, _ = await exchange(server.port, big_header_request()[: 17 * 1024], then_closed=True)
    assert status == 431


async def test_max_header_size_setting_is_used() -> None:
    async with running(max_header_size=1024) as server:
        status, _ = await exchange(server.port, big_header_request(2048)[:1500], then_closed=True)
    assert status == 431


async def test_a_request_target_over_max_header_size_gives_414() -> None:
    # A target longer than the whole head may be (16 KiB) got 431 (header
    # fields too large), which sends a client to trim its headers: RFC 9110
    # 15.5.15's is 414. Complete in one write, or still arriving.
    long = request_bytes(path="/ws?q=" + "a" * 20 * 1024)
    async with running() as server:
        assert (await exchange(server.port, long, then_closed=True))[0] == 414
        assert (await exchange(server.port, long[: 17 * 1024], then_closed=True))[0] == 414
        # The request line whole, the headers after it too large: 431 still.
        line_done = long.split(b"\r\n")[0][: 8 * 1024] + b" HTTP/1.1\r\n" + b"X: " + b"a" * 9000
        assert (await exchange(server.port, line_done, then_closed=True))[0] == 431


async def test_a_method_over_max_header_size_gives_501_not_414() -> None:
    # A request line over max_header_size whose method alone runs past it
    # (no space within it) got 414 "Request target too long", a target it
    # never reached; RFC 9112 3: a method longer than any the server
    # implements SHOULD get 501. Complete in one write, or still arriving;
    # a long target behind a short method is still 414.
    long = b"A" * 20 * 1024 + b" /ws HTTP/1.1\r\nHost: x\r\n\r\n"
    async with running() as server:
        assert (await exchange(server.port, long, then_closed=True))[0] == 501
        assert (await exchange(server.port, long[: 17 * 1024], then_closed=True))[0] == 501
        target = b"GET /" + b"a" * 17 * 1024
        assert (await exchange(server.port, target, then_closed=True))[0] == 414


async def test_bytes_over_max_header_size_that_begin_no_request_line_give_400() -> None:
    # Bytes with no line end within max_header_size whose first ones are no
    # method (binary, a protocol's that is not HTTP) got 414 "Request target
    # too long": there is no request line, and no target, to speak of.
    async with running() as server:
        for garbage in (b"\x00\x01" * 10 * 1024, b"GET\x00/" + b"a" * 17 * 1024):
            assert (await exchange(server.port, garbage, then_closed=True))[0] == 400


async def test_a_chunk_line_too_long_is_no_414() -> None:
    # (From a review.) The 414 looked for a line end in h11's buffer only:
    # a chunk-size line (its extension) too long, in a body, got "Request
    # target too long".
    async with running(max_header_size=4096) as server:
        reader, writer = await open_raw(server.port)
        writer.write(
            b"POST /ws HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext="
            + b"a" * 8000
        )
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        await close_writer(writer)
    assert answer.startswith(b"HTTP/1.1 4") and not answer.startswith(b"HTTP/1.1 414"), answer


async def test_too_many_headers_give_431() -> None:
    extra = [(f"X-H{i}", "v") for i in range(101)]
    async with running() as server:
        status, _ = await exchange(server.port, request_bytes(pairs=upgrade_pairs(add=extra)))
    assert status == 431


async def test_max_headers_boundary() -> None:
    async with running(max_headers=7) as server:
        # upgrade_pairs() has 5 headers: 2 more is exactly the limit, 3 is over.
        ok = request_bytes(pairs=upgrade_pairs(add=[("X-1", "a"), ("X-2", "b")]))
        reader, writer = await open_raw(server.port)
        try:
            writer.write(ok)
            status, _ = await read_head(reader)
        finally:
            await close_writer(writer)
        assert status == 101
        over = request_bytes(pairs=upgrade_pairs(add=[("X-1", "a"), ("X-2", "b"), ("X-3", "c")]))
        assert (await exchange(server.port, over))[0] == 431


async def test_frame_in_same_packet_as_request_is_processed() -> None:
    async with running() as server:
        reader, writer = await open_raw(server.port)
        try:
            writer.write(request_bytes() + masked_frame(0x1, b"hello") + masked_frame(0x1, b"!"))
            status, headers = await read_head(reader)
            assert status == 101
            assert headers["Sec-WebSocket-Accept"] == ACCEPT
            reply = await asyncio.wait_for(reader.readexactly(7 + 3), TIMEOUT)
        finally:
            await close_writer(writer)
    assert reply == b"\x81\x05hello" + b"\x81\x01!"


async def test_open_timeout_disconnects_slow_client_while_others_are_served() -> None:
    async with running(open_timeout=0.3) as server:
        loop = asyncio.get_running_loop()
        # Before connecting: the server's open_timeout runs from its accept,
        # which a loaded machine may run well before this task resumes.
        started = loop.time()
        slow_reader, slow_writer = await open_raw(server.port)
        try:
            slow_writer.write(request_bytes()[:30])  # half a request line and headers
            await slow_writer.drain()
            # Another client completes its handshake and is served meanwhile.
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
                await ws.send("still served")
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "still served"
            data = await read_to_eof(slow_reader)
            elapsed = loop.time() - started
        finally:
            await close_writer(slow_writer)
    # A 408 (RFC 9110 15.5.9), said in the access log as sent; a connection
    # that sent nothing is closed without a word.
    assert data.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), data
    assert data.endswith(b"Request not complete within open_timeout.\n")
    assert 0.25 <= elapsed < 2.0
    async with running(open_timeout=0.3) as server:
        silent_reader, silent_writer = await open_raw(server.port)
        try:
            assert await asyncio.wait_for(read_to_eof(silent_reader), TIMEOUT) == b""
        finally:
            await close_writer(silent_writer)


async def test_open_timeout_does_not_affect_open_connections() -> None:
    async with (
        running(open_timeout=0.2) as server,
        websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws,
    ):
        await asyncio.sleep(0.4)
        await ws.send("after timeout")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "after timeout"


@pytest.mark.parametrize(
    ("offer", "expected"),
    [
        (["chat.v1", "chat.v2"], "chat.v1"),
        (["chat.v2", "chat.v1"], "chat.v2"),
        (["other", "chat.v2"], "chat.v2"),
        (["other"], None),
    ],
)
async def test_subprotocol_negotiation(offer: list[str], expected: str | None) -> None:
    async with (
        running() as server,
        websockets.connect(f"ws://127.0.0.1:{server.port}/proto", subprotocols=offer) as ws,
    ):
        assert ws.subprotocol == expected
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == (expected or "")


async def test_subprotocol_header_in_raw_response() -> None:
    pairs = upgrade_pairs(add=[("Sec-WebSocket-Protocol", "x, chat.v1, chat.v2")])
    async with running() as server:
        reader, writer = await open_raw(server.port)
        try:
            writer.write(request_bytes("/proto", pairs))
            status, headers = await read_head(reader)
        finally:
            await close_writer(writer)
    assert status == 101
    assert headers.getall("Sec-WebSocket-Protocol") == ["chat.v1"]


async def test_max_connections_gives_503() -> None:
    async with running(max_connections=1) as server:
        uri = f"ws://127.0.0.1:{server.port}/ws"
        async with websockets.connect(uri) as first:
            status, headers = await exchange(server.port, request_bytes())
            assert status == 503
            assert "Retry-After" in headers
            await first.send("first still works")
            assert await asyncio.wait_for(first.recv(), TIMEOUT) == "first still works"
        # Once the first connection is gone, a new one is accepted.
        for _ in range(100):
            if server.websocket_count == 0:
                break
            await asyncio.sleep(0.01)
        async with websockets.connect(uri) as again:
            await again.send("x")
            assert await asyncio.wait_for(again.recv(), TIMEOUT) == "x"


def slow_deciders() -> tuple[Router, Any]:
    """A Router whose route's on_connect hook, and an ASGI app, take 0.3 s to accept."""
    routes = Router()

    async def hook(request: Any) -> None:
        await asyncio.sleep(0.3)

    @routes.websocket("/", on_connect=hook)
    async def hold(request: Any, ws: Any) -> None:
        await ws.recv()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        await receive()
        await asyncio.sleep(0.3)
        await send({"type": "websocket.accept"})
        await receive()

    return routes, app


@pytest.mark.parametrize("kind", ["router hook", "asgi"])
async def test_max_connections_holds_for_handshakes_that_take_time(kind: str) -> None:
    # The limit was checked when a handshake began: handshakes waiting for a
    # hook or an application all passed it (20 accepted with a limit of 5).
    routes, app = slow_deciders()
    async with wsserver.serve(
        routes if kind == "router hook" else app, "127.0.0.1", 0, max_connections=5
    ) as server:

        async def attempt() -> Any:
            try:
                return await websockets.connect(f"ws://127.0.0.1:{server.port}/")
            except websockets.InvalidStatus as exc:
                return exc.response.status_code

        outcomes = await asyncio.gather(*(attempt() for _ in range(20)))
        opened = [o for o in outcomes if not isinstance(o, int)]
        assert sorted(o for o in outcomes if isinstance(o, int)) == [503] * 15
        assert len(opened) == 5 and server.websocket_count == 5
        for ws in opened:
            await ws.close()


def test_accept_response_bytes() -> None:
    from wsserver.protocol.handshake import accept_response

    raw = accept_response(KEY, "chat", "permessage-deflate")
    assert raw.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert raw.endswith(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")[1:-2]
    assert dict(line.split(": ", 1) for line in lines) == dict(
        accept_headers(KEY, "chat", "permessage-deflate")
    )
    bare = accept_response(KEY).decode("latin-1").split("\r\n")
    assert bare[0] == "HTTP/1.1 101 Switching Protocols" and bare[-2:] == ["", ""]
    assert [tuple(line.split(": ", 1)) for line in bare[1:-2]] == accept_headers(KEY)


# ----------------------------------------- only spaces and tabs are trimmed


NOT_OWS = ["\x1c", "\x1d", "\x1e", "\x1f", "\x85", "\xa0"]


@pytest.mark.parametrize("char", NOT_OWS)
@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Sec_WebSocket_Key", KEY),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec_WebSocket_Version", "13"),
    ],
)
async def test_other_whitespace_around_a_value_gives_400(
    header: str, value: str, char: str
) -> None:
    # str.strip() would trim these and accept the request; HTTP trims only
    # spaces and tabs (RFC 9110 5.5), so the value is malformed.
    async with running() as server:
        for bad in (value + char, char + value, f"{value} {char}"):
            data = request_bytes(pairs=upgrade_pairs(**{header: bad}))
            status, _ = await exchange(server.port, data, then_closed=True)
            assert status == 400, (header, bad)
        # Spaces and tabs around it are fine.
        data = request_bytes(pairs=upgrade_pairs(**{header: f" \t{value}\t "}))
        reader, writer = await open_raw(server.port)
        writer.write(data)
        status, _ = await read_head(reader)
        assert status == 101
        await close_writer(writer)


@pytest.mark.parametrize("char", NOT_OWS)
def test_comma_lists_trim_spaces_and_tabs_only(char: str) -> None:
    headers = Headers([("Sec-WebSocket-Protocol", f" a ,\tb{char}, {char}c")])
    assert comma_tokens(headers, "sec-websocket-protocol") == ["a", f"b{char}", f"{char}c"]
    assert select_subprotocol(headers, ["b", "c"]) is None


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "same"),
    [
        ("http://example.com", "example.com", "http", True),
        ("http://example.com", "EXAMPLE.com:80", "http", True),
        ("https://example.com", "example.com:443", "https", True),
        ("https://example.com", "example.com", "https", True),
        ("https://Example.COM:8443", "example.com:8443", "https", True),
        ("http://[::1]:8000", "[::1]:8000", "http", True),
        ("http://example.com", "example.com", "https", False),  # a plain-http page
        ("https://example.com", "example.com", "http", False),
        ("http://example.com", "example.com:8080", "http", False),
        ("https://example.com", "example.com:80", "https", False),
        ("http://example.com:8000", "example.com:80000", "http", False),
        ("http://evil.example", "example.com", "http", False),
        ("http://example.com.evil.example", "example.com", "http", False),
        ("null", "example.com", "http", False),
        ("file://", "example.com", "http", False),
        ("http://example.com/path", "example.com", "http", False),
        ("http://example.com:x", "example.com", "http", False),
        ("http://example.com", "example.com/x", "http", False),
        ("http://example.com", "", "http", False),
    ],
)
def test_is_same_origin(origin: str, host: str, scheme: str, same: bool) -> None:
    assert is_same_origin(origin, host, scheme) is same


class TestADeniedHandshakeWhoseClientSendsOn:
    """A client that sends frames after its upgrade request (without waiting
    for the 101) and is denied gets the whole denial: the server sends its end
    after it, drops what comes, and closes at the client's end (or after
    close_timeout), as the websockets library does. Closed at once, the
    client's unread bytes reset the connection, and the denial's unsent rest
    was lost with it."""

    async def test_the_server_ends_its_side_and_closes_at_the_clients(
        self, run_server: StartServer
    ) -> None:
        routes = Router()

        @routes.websocket("/ws", origins=["https://app.example"])
        async def handler(request: Any, ws: Any) -> None:
            pass

        server = await run_server(routes, close_timeout=5)
        reader, writer = await open_raw(server.port)
        try:
            pairs = upgrade_pairs(add=[("Origin", "https://evil.example")])
            writer.write(request_bytes(pairs=pairs) + masked_frame(0x1, b"early"))
            status, headers = await read_head(reader)
            assert status == 403
            body = await asyncio.wait_for(reader.read(), TIMEOUT)  # its end, after the answer
            assert len(body) == int(headers["Content-Length"])
            await sends_on_then_ends(server, writer)  # (nothing resets)
        finally:
            await close_writer(writer)

    @pytest.mark.parametrize("app", ["router", "asgi"])
    async def test_a_large_denial_arrives_whole(self, run_server: StartServer, app: str) -> None:
        deciding = asyncio.Event()
        decide = asyncio.Event()
        body = bytes(range(256)) * 1024  # (more than the kernel holds for a slow reader)
        routes = Router()

        async def on_connect(request: Any) -> Response:
            deciding.set()
            await decide.wait()
            return Response(body, 401)

        @routes.websocket("/ws", on_connect=on_connect)
        async def handler(request: Any, ws: Any) -> None:
            pass

        async def asgi(scope: Any, receive: Any, send: Any) -> None:
            assert (await receive())["type"] == "websocket.connect"
            deciding.set()
            await decide.wait()
            await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
            await send({"type": "websocket.http.response.body", "body": body})

        server = await run_server(
            routes if app == "router" else asgi, max_header_size=4096, lifespan="off"
        )
        sock = await slow_reader(server.port)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_sendall(sock, request_bytes())
            await asyncio.wait_for(deciding.wait(), TIMEOUT)
            # Frames beyond what the server reads while the application decides
            # (max_header_size), then more: those wait unread in its kernel.
            frame = masked_frame(0x2, bytes(100))
            await loop.sock_sendall(sock, frame * 50)
            (connection,) = server.connections
            transport: Any = connection.transport
            await wait_for(lambda: not transport.is_reading(), what="reading paused")
            await loop.sock_sendall(sock, frame * 10)
            decide.set()
            received = b""
            with contextlib.suppress(ConnectionResetError):  # (the old end)
                async with asyncio.timeout(TIMEOUT):
                    while data := await loop.sock_recv(sock, 65536):
                        received += data
            status, _, rest = parse_response(received)
            assert status == 401
            assert len(rest) == len(body)
            assert rest == body
        finally:
            sock.close()
