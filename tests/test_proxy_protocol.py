"""The PROXY protocol (proxy_protocol=True): the header's parser, the server behind it
(TLS after it too), and a real HAProxy in front sending version 1 and version 2 headers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import shutil
import socket
import ssl as ssl_module
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
import uvloop
import websockets
from hypothesis import given
from hypothesis import strategies as st

from wsserver import Request, Router, WebSocket, serve
from wsserver.protocol.proxy_protocol import (
    MAX_V1,
    ProxyHeader,
    ProxyProtocolError,
    parse_proxy_header,
    safe_to_read,
)
from wsserver.response import Response, text
from wsserver.server.tls_start import TLSStart
from wsserver.testing import TestClient

from .conftest import StartServer
from .debian import find_or_install
from .helpers import client_context, tls_server_files, wait_for
from .redis_server import free_port

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(command: int, family: int, addresses: bytes, tlvs: bytes = b"", version: int = 2) -> bytes:
    body = addresses + tlvs
    return SIGNATURE + bytes([version << 4 | command, family]) + struct.pack("!H", len(body)) + body


def v2_inet(source: str, sport: int, dport: int = 443) -> bytes:
    src = ipaddress.ip_address(source)
    dst = ipaddress.ip_address("192.0.2.1" if src.version == 4 else "2001:db8::1")
    family = 0x11 if src.version == 4 else 0x21
    return v2(1, family, src.packed + dst.packed + struct.pack("!HH", sport, dport))


# ================================================================ the parser


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n", ("203.0.113.7", 51234)),
        (b"PROXY TCP6 2001:db8::7 2001:db8::1 1 65535\r\n", ("2001:db8::7", 1)),
        (b"PROXY TCP6 2001:DB8::7 ::1 0 80\r\n", ("2001:db8::7", 0)),
        (b"PROXY UNKNOWN\r\n", None),
        (b"PROXY UNKNOWN ff:: ff:: 1 2 and more\r\n", None),
        (v2_inet("198.51.100.9", 40000), ("198.51.100.9", 40000)),
        (v2_inet("2001:db8::9", 443), ("2001:db8::9", 443)),
        (v2(0, 0x11, b"\x00" * 12), None),  # LOCAL: a health check of the proxy's
        (v2(0, 0x00, b""), None),
        (v2(1, 0x00, b""), None),  # UNSPEC
        (v2(1, 0x31, b"/a".ljust(216, b"\x00")), None),  # AF_UNIX
        (b"PROXY TCP6 ::ffff:203.0.113.7 ::1 1 2\r\n", ("::ffff:203.0.113.7", 1)),
        (v2_inet("::ffff:198.51.100.9", 9), ("::ffff:198.51.100.9", 9)),  # (as a socket says it)
    ],
)
def test_a_valid_header(data: bytes, expected: tuple[str, int] | None) -> None:
    assert parse_proxy_header(data + b"GET / HTTP/1.1\r\n") == ProxyHeader(len(data), expected)
    for end in range(len(data)):
        assert parse_proxy_header(data[:end]) is None, end  # more is needed


INET = bytes([10, 0, 0, 5, 10, 0, 0, 6]) + struct.pack("!HH", 1234, 80)


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def test_a_version_2_header_s_tlvs_are_skipped() -> None:
    header = v2(1, 0x11, INET, tlv(0xEA, b"\x01vpce-1") + tlv(0x04, b"\x00\x00"))  # (AWS's)
    assert parse_proxy_header(header + b"rest") == ProxyHeader(len(header), ("10.0.0.5", 1234))
    # One that runs past the end ends the TLVs, not the connection.
    header = v2(1, 0x11, INET, tlv(0x04, b"") + b"\x20\x00\x09\x01")
    assert parse_proxy_header(header) == ProxyHeader(len(header), ("10.0.0.5", 1234))


def test_a_version_2_header_says_whether_the_client_came_over_tls() -> None:
    # PP2_TYPE_SSL: client flags (PP2_CLIENT_SSL = 1), verify, sub-TLVs (the version).
    ssl = tlv(0x20, b"\x01" + b"\x00" * 4 + tlv(0x21, b"TLSv1.3"))
    header = v2(1, 0x11, INET, tlv(0x04, b"") + ssl)
    assert parse_proxy_header(header) == ProxyHeader(len(header), ("10.0.0.5", 1234), True)
    plain = v2(1, 0x11, INET, tlv(0x20, b"\x00" + b"\x00" * 4))
    assert parse_proxy_header(plain) == ProxyHeader(len(plain), ("10.0.0.5", 1234), False)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        b"proxy TCP4 1.2.3.4 1.2.3.5 1 2\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        b"PROXY TCP4 1.2.3.4 1.2.3.5 1 2\n",  # LF alone
        b"PROXY TCP4 1.2.3.4 1.2.3.5 1\r\n",
        b"PROXY TCP4 1.2.3.4  1.2.3.5 1 2\r\n",
        b"PROXY TCP5 1.2.3.4 1.2.3.5 1 2\r\n",
        b"PROXY TCP4 ::1 1.2.3.5 1 2\r\n",
        b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.256 1.2.3.5 1 2\r\n",
        b"PROXY TCP4 01.2.3.4 1.2.3.5 1 2\r\n",
        b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.5 65536 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.5 01 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.5 +1 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.5 \xd9\xa1 2\r\n",  # (an Arabic-Indic digit)
        b"PROXY " + b"x" * (MAX_V1 - 6),  # no CR LF within 107 bytes
        v2(1, 0x11, b"\x00" * 12, version=1),
        v2(2, 0x11, b"\x00" * 12),  # an unknown command
        v2(1, 0x11, b"\x00" * 11),  # too short for its addresses
        v2(1, 0x21, b"\x00" * 35),
        v2(1, 0x41, b"\x00" * 12),  # an unknown family
        v2(1, 0x13, b"\x00" * 12),  # an unknown transport
        v2(1, 0x10, b"\x00" * 12),
        v2(1, 0x31, b""),  # AF_UNIX without its 216 bytes
    ],
)
def test_a_connection_without_a_valid_header_is_refused(data: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(data)


@given(
    st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
    st.integers(0, 65535),
    st.booleans(),
    st.binary(max_size=40),
    st.data(),
)
def test_any_header_read_in_any_two_pieces(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    port: int,
    binary: bool,
    rest: bytes,
    data: st.DataObject,
) -> None:
    if binary:
        header = v2_inet(str(address), port)
    else:
        kind = "TCP4" if address.version == 4 else "TCP6"
        other = "192.0.2.1" if address.version == 4 else "::1"
        header = f"PROXY {kind} {address} {other} {port} 80\r\n".encode()
    cut = data.draw(st.integers(0, len(header) + len(rest)))
    stream = header + rest
    first = parse_proxy_header(stream[:cut])
    assert (first is None) == (cut < len(header))
    parsed = parse_proxy_header(stream)
    assert parsed is not None and parsed.length == len(header) and parsed.source is not None
    host, got_port = parsed.source
    assert (ipaddress.ip_address(host), got_port) == (address, port)  # (a mapped one's form aside)


CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(32))


def read_as_before_tls(stream: bytes) -> tuple[int, ProxyHeader]:
    """Read ``stream`` as TLSStart does (``safe_to_read`` bytes at a
    time, each read taking all it may): how much was read when the header was whole."""
    got = b""
    while True:
        wanted = safe_to_read(got)
        assert wanted >= 1
        assert len(got) < len(stream), "the stream ended before the header did"
        got += stream[len(got) : len(got) + wanted]
        header = parse_proxy_header(got)
        if header is not None:
            return len(got), header


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY UNKNOWN\r\n",
        b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n",
        b"PROXY TCP6 2001:db8::7 2001:db8::1 1 65535\r\n",
        b"PROXY UNKNOWN \r\r\r\r\n",
        v2(0, 0x00, b""),
        v2_inet("198.51.100.9", 40000),
        v2(1, 0x11, INET, tlv(0x20, b"\x01" + b"\x00" * 4) + tlv(0x04, b"\x00" * 300)),
        v2(1, 0x31, b"/a".ljust(216, b"\x00")),
    ],
)
@pytest.mark.parametrize("rest", [CLIENT_HELLO, b"\r\n\r\n", b"\n" + CLIENT_HELLO])
def test_a_header_is_read_to_its_end_and_not_a_byte_more(header: bytes, rest: bytes) -> None:
    read, parsed = read_as_before_tls(header + rest)
    assert read == parsed.length == len(header)


@given(
    st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
    st.integers(0, 65535),
    st.sampled_from(["v1", "v2", "v2 with TLVs", "v1 UNKNOWN"]),
    st.binary(max_size=64),
    st.binary(min_size=1, max_size=40),
)
def test_any_header_is_read_to_its_end_and_not_a_byte_more(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    port: int,
    kind: str,
    extra: bytes,
    rest: bytes,
) -> None:
    if kind == "v1":
        family = "TCP4" if address.version == 4 else "TCP6"
        other = "192.0.2.1" if address.version == 4 else "::1"
        header = f"PROXY {family} {address} {other} {port} 80\r\n".encode()
    elif kind == "v1 UNKNOWN":  # (whatever follows UNKNOWN, CRs included, up to CR LF)
        text = bytes(byte & 0x7F for byte in extra).replace(b"\n", b"").replace(b"\r", b"\r ")
        header = b"PROXY UNKNOWN " + text[:80]
        header += b"\r\n"
    else:
        header = v2_inet(str(address), port)
        if kind == "v2 with TLVs":
            header = header[:14] + struct.pack("!H", len(header) - 16 + len(extra))
            header += v2_inet(str(address), port)[16:] + extra
    read, parsed = read_as_before_tls(header + rest)
    assert read == parsed.length == len(header)


@pytest.mark.parametrize(
    ("header", "most"),
    [
        (b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n", 5),
        (b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", 2),
        (b"PROXY TCP6 2001:db8:85a3::8a2e:370:7334 2001:db8::1 51234 443\r\n", 9),
        (v2_inet("2001:db8::9", 443), 3),  # (15 bytes first: a version 1 line may be as short)
    ],
)
def test_a_header_takes_few_reads(header: bytes, most: int) -> None:
    """Each read takes what the fields still to come need at the least (a
    byte or two at a time took 16 reads for the first, 25 for the third)."""
    got, reads = b"", 0
    while parse_proxy_header(got) is None:
        got += (header + CLIENT_HELLO)[len(got) : len(got) + safe_to_read(got)]
        reads += 1
    assert len(got) == len(header) and reads <= most


@given(st.binary(min_size=1, max_size=120))
def test_reading_by_safe_to_read_ends_on_any_bytes(stream: bytes) -> None:
    """What is no header is found out as reading goes (each read at least a byte)."""
    got = b""
    while len(got) < len(stream):
        wanted = safe_to_read(got)
        assert wanted >= 1
        got += stream[len(got) : len(got) + wanted]
        try:
            header = parse_proxy_header(got)
        except ProxyProtocolError:
            return
        if header is not None:
            assert header.length == len(got)
            return


# ================================================================ the server


def address_routes() -> Router:
    routes = Router()

    @routes.get("/who")
    async def who(request: Request) -> Response:
        host, port = request.remote_address or ("-", 0)
        return text(f"{host} {port}")

    @routes.get("/scheme")
    async def scheme(request: Request) -> Response:
        return text(request.scheme)

    @routes.websocket("/ws")
    async def ws_who(request: Request, ws: WebSocket) -> None:
        host, port = request.remote_address or ("-", 0)
        await ws.send(f"{host} {port}")
        await ws.recv()

    return routes


async def ask(port: int, data: bytes) -> bytes:
    """Send ``data`` on a new connection; everything that comes back before the end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


WHO = b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


async def test_the_client_is_the_one_the_header_names(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wsserver.access")
    server = await run_server(address_routes(), proxy_protocol=True)
    v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"
    assert (await ask(server.port, v1 + WHO)).endswith(b"\r\n\r\n203.0.113.7 51234")
    answer = await ask(server.port, v2_inet("2001:db8::9", 40000) + WHO)
    assert answer.endswith(b"\r\n\r\n2001:db8::9 40000")
    # Without an address (a proxy's health check): the peer's own.
    answer = await ask(server.port, v2(0, 0, b"") + WHO)
    assert answer.rsplit(b"\r\n", 1)[1].startswith(b"127.0.0.1 "), answer
    access = [r.getMessage() for r in caplog.records if r.name == "wsserver.access"]
    assert access[0].startswith("203.0.113.7:51234 GET /who 200 "), access
    assert access[1].startswith("[2001:db8::9]:40000 GET /who 200 "), access


async def test_the_header_may_come_a_byte_at_a_time(run_server: StartServer) -> None:
    server = await run_server(address_routes(), proxy_protocol=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    for byte in v2_inet("198.51.100.9", 4000):
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.001)
    writer.write(WHO)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"198.51.100.9 4000")


async def test_a_websocket_behind_the_header(run_server: StartServer) -> None:
    server = await run_server(address_routes(), proxy_protocol=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"PROXY TCP6 2001:db8::5 2001:db8::1 5555 443\r\n"
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 ")
    frame = await asyncio.wait_for(reader.readexactly(2 + len(b"2001:db8::5 5555")), 5)
    assert frame == b"\x81\x10" + b"2001:db8::5 5555"
    writer.close()


async def test_a_connection_without_the_header_is_closed_unanswered(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wsserver")
    server = await run_server(address_routes(), proxy_protocol=True)
    for data in (WHO, b"PROXY TCP4 1.2.3.4 nonsense\r\n" + WHO, b"\x16\x03\x01\x00\x10"):
        try:
            answer = await ask(server.port, data)
        except ConnectionResetError:
            answer = b""
        assert answer == b"", answer
    assert not [r for r in caplog.records if r.name == "wsserver.access"]
    said = [r.getMessage() for r in caplog.records if r.name == "wsserver.protocol"]
    assert any("no PROXY protocol header: closed" in line for line in said), said
    assert any("malformed version 1 header" in line for line in said), said
    # The first is said at WARNING too (a balancer that sends no header, or a
    # health check that bypasses it, fails in silence otherwise); not the others.
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1, warned
    assert warned[0].startswith("127.0.0.1:") and "no PROXY protocol header" in warned[0]
    assert "send-proxy" in warned[0] and "later ones are said at DEBUG" in warned[0]


async def test_an_untrusted_peer_s_header_is_read_but_not_believed(
    run_server: StartServer,
) -> None:
    server = await run_server(
        address_routes(), proxy_protocol=True, forwarded_allow_ips="10.0.0.0/8"
    )
    v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"
    answer = await ask(server.port, v1 + WHO)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.rsplit(b"\r\n", 1)[1].startswith(b"127.0.0.1 "), answer


async def test_an_untrusted_peer_s_header_is_said(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A balancer not in forwarded_allow_ips (an NLB at 10.0.1.17 while the
    # default trusts the loopback only): every client was the balancer, its
    # headers' addresses dropped without a word. The first is now said at
    # WARNING, naming the balancer and the setting; the next at DEBUG. A
    # header that names no client (LOCAL) loses nothing: not said.
    caplog.set_level(logging.DEBUG, logger="wsserver")
    server = await run_server(
        address_routes(), proxy_protocol=True, forwarded_allow_ips="10.0.0.0/8"
    )
    for header in (v2(0, 0x00, b""), b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"):
        answer = await ask(server.port, header + WHO)
        assert answer.rsplit(b"\r\n", 1)[1].startswith(b"127.0.0.1 "), answer
    answer = await ask(server.port, v2_inet("203.0.113.8", 4000) + WHO)
    assert answer.rsplit(b"\r\n", 1)[1].startswith(b"127.0.0.1 "), answer
    said = [r for r in caplog.records if "not in forwarded_allow_ips" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.WARNING, logging.DEBUG], said
    first = said[0].getMessage()
    assert first.startswith("127.0.0.1:") and "203.0.113.7:51234" in first, first
    assert "--forwarded-allow-ips" in first, first
    assert "203.0.113.8:4000" in said[1].getMessage()


async def test_forwarded_headers_are_believed_only_from_a_trusted_client_the_header_names(
    run_server: StartServer,
) -> None:
    # With proxy_headers on too, X-Forwarded-For is believed from the client
    # the PROXY header names if that client is trusted (an HTTP proxy behind
    # the balancer); a header that names none (v1 UNKNOWN; v2 LOCAL, UNSPEC or
    # AF_UNIX) leaves the balancer as the peer, and what follows it is then
    # the client's own bytes: its X-Forwarded-For was believed (the balancer
    # is trusted), a client's forged address.
    server = await run_server(
        address_routes(),
        proxy_protocol=True,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1, 10.0.0.5",
    )
    forwarded = WHO.replace(b"\r\n\r\n", b"\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
    unix = b"/tmp/a".ljust(108, b"\0") + b"/tmp/b".ljust(108, b"\0")
    for header, expected in (
        (v2(1, 0x11, INET), b"6.6.6.6 0"),  # (10.0.0.5, trusted: its header believed)
        (v2_inet("203.0.113.7", 4000), b"203.0.113.7 4000"),  # (not trusted)
        (b"PROXY UNKNOWN\r\n", b"127.0.0.1 "),
        (v2(1, 0x00, b""), b"127.0.0.1 "),  # (PROXY, UNSPEC)
        (v2(1, 0x31, unix), b"127.0.0.1 "),  # (PROXY, AF_UNIX)
        (v2(0, 0x00, b""), b"127.0.0.1 "),  # (LOCAL)
    ):
        answer = await ask(server.port, header + forwarded)
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        assert answer.rsplit(b"\r\n", 1)[1].startswith(expected), (header, answer)


async def test_without_the_setting_a_header_is_a_bad_request(run_server: StartServer) -> None:
    server = await run_server(address_routes())
    answer = await ask(server.port, b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n" + WHO)
    assert answer.startswith(b"HTTP/1.1 400 "), answer


async def test_a_header_where_the_setting_is_off_is_said(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A balancer that sends the header (HAProxy's send-proxy, an AWS target
    # group's proxy protocol v2) to a server without the setting: every request
    # was a 400 "illegal request line", its cause said nowhere (the access
    # line "127.0.0.1:... - - 400"). The first is now said at WARNING.
    caplog.set_level(logging.DEBUG, logger="wsserver")
    server = await run_server(address_routes())
    for header in (b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n", v2(1, 0x11, INET)):
        answer = await ask(server.port, header + WHO)
        assert answer.startswith(b"HTTP/1.1 400 "), answer
    answer = await ask(server.port, b"GARBAGE\r\n\r\n")  # (no header: not said)
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    said = [r for r in caplog.records if "PROXY protocol header" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.WARNING, logging.DEBUG], said
    assert said[0].getMessage().startswith("127.0.0.1:")
    assert "--proxy-protocol" in said[0].getMessage()


async def test_a_header_on_a_tls_port_where_the_setting_is_off_is_said(
    run_server: StartServer,
    tls_settings: dict[str, Any],
    client_tls: ssl_module.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A balancer passing TLS through (an AWS NLB's TCP listener, HAProxy in TCP
    # mode) with its PROXY header on, to a TLS server without the setting: every
    # connection's handshake failed, said at DEBUG as OpenSSL's
    # WRONG_VERSION_NUMBER, where the same mistake without TLS is named at WARNING.
    caplog.set_level(logging.DEBUG, logger="wsserver")
    server = await run_server(address_routes(), **{**tls_settings, "proxy_protocol": False})
    for header in (b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n", v2(1, 0x11, INET)):
        with pytest.raises((ssl_module.SSLError, ConnectionError)):
            await asyncio.to_thread(tls_in_one_packet, server.port, header, WHO, client_tls)
    assert await ask(server.port, b"GARBAGE\r\n\r\n") == b""  # (no header: not said)
    await wait_for(lambda: server.stats()["tls_handshake_failures"] == 3, what="the count")
    said = [r for r in caplog.records if "PROXY protocol header" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.WARNING, logging.DEBUG], said
    assert "--proxy-protocol" in said[0].getMessage()
    assert "TLS handshake failed" in said[0].getMessage()
    # (A TLS client, with no header, is served as ever.)
    answer = await asyncio.to_thread(tls_in_one_packet, server.port, b"", WHO, client_tls)
    assert answer.startswith(b"HTTP/1.1 200 "), answer


async def test_the_scheme_is_https_when_the_header_says_tls(run_server: StartServer) -> None:
    routes = Router()

    @routes.get("/scheme")
    async def scheme(request: Request) -> Response:
        return text(request.scheme)

    request = b"GET /scheme HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ssl = tlv(0x20, b"\x01\x00\x00\x00\x00")
    trusted = await run_server(routes, proxy_protocol=True)
    assert (await ask(trusted.port, v2(1, 0x11, INET, ssl) + request)).endswith(b"https")
    assert (await ask(trusted.port, v2(1, 0x11, INET) + request)).endswith(b"http")
    untrusted = await run_server(routes, proxy_protocol=True, forwarded_allow_ips="10.0.0.1")
    assert (await ask(untrusted.port, v2(1, 0x11, INET, ssl) + request)).endswith(b"http")


async def test_the_test_client_speaks_it_when_the_server_wants_it() -> None:
    async with TestClient(address_routes(), proxy_protocol=True) as client:
        assert (await client.get("/who")).text == "- 0"  # (a socket pair: no address)
        async with client.websocket("/ws") as ws:
            assert await ws.receive() == "- 0"


# ================================================================ a real HAProxy


@pytest.fixture(scope="module")
def haproxy_binary() -> str:
    return find_or_install(lambda: shutil.which("haproxy"), "haproxy")


@pytest.fixture
def haproxy(haproxy_binary: str, tmp_path: Path) -> Iterator[Callable[..., int]]:
    """Start HAProxy (TCP mode) in front of a port: ``start(backend_port, "send-proxy")``."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(backend: int, option: str, bind: str = "") -> int:
        port = free_port()
        config = tmp_path / f"haproxy-{port}.cfg"
        config.write_text(
            "global\n    maxconn 64\n"
            "defaults\n    mode tcp\n    timeout connect 5s\n"
            "    timeout client 30s\n    timeout server 30s\n"
            f"frontend front\n    bind 127.0.0.1:{port} {bind}\n    default_backend back\n"
            f"backend back\n    server app 127.0.0.1:{backend} {option}\n"
        )
        process = subprocess.Popen(
            [haproxy_binary, "-db", "-f", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        processes.append(process)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return port
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    error = process.stderr.read().decode() if process.stderr else ""
                    raise RuntimeError(f"haproxy did not start: {error}") from None
                time.sleep(0.05)

    yield start
    for process in processes:
        process.terminate()
        process.wait(5)


@pytest.mark.parametrize("option", ["send-proxy", "send-proxy-v2"])
async def test_behind_a_real_haproxy(
    run_server: StartServer, haproxy: Callable[..., int], option: str
) -> None:
    # The client's own port comes through: without the header, the server
    # would see HAProxy's connection (another port).
    server = await run_server(address_routes(), proxy_protocol=True)
    front = await asyncio.to_thread(haproxy, server.port, option)
    async with websockets.connect(f"ws://127.0.0.1:{front}/ws") as ws:
        host, port = ws.local_address[:2]
        assert await asyncio.wait_for(ws.recv(), 5) == f"{host} {port}"
    reader, writer = await asyncio.open_connection("127.0.0.1", front)
    port = writer.get_extra_info("sockname")[1]
    writer.write(WHO)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(f"127.0.0.1 {port}".encode())


async def test_an_asgi_app_s_scope_has_the_client_the_header_names(
    run_server: StartServer,
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        host, port = scope["client"]
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": f"{host} {port}".encode()})

    server = await run_server(app, proxy_protocol=True)
    answer = await ask(server.port, v2_inet("198.51.100.20", 6000) + WHO)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"198.51.100.20 6000")


async def test_behind_a_real_haproxy_that_ends_tls(
    run_server: StartServer, haproxy: Callable[..., int], tmp_path: Path
) -> None:
    # send-proxy-v2-ssl: the header says the client came over TLS (https, wss).
    ca = trustme.CA()
    pem = tmp_path / "haproxy.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    context = ssl_module.create_default_context()
    ca.configure_trust(context)
    server = await run_server(address_routes(), proxy_protocol=True)
    front = await asyncio.to_thread(haproxy, server.port, "send-proxy-v2-ssl", f"ssl crt {pem}")
    reader, writer = await asyncio.open_connection("127.0.0.1", front, ssl=context)
    writer.write(b"GET /scheme HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nhttps"), answer
    async with websockets.connect(f"wss://127.0.0.1:{front}/ws", ssl=context) as ws:
        host, port = ws.local_address[:2]
        assert await asyncio.wait_for(ws.recv(), 5) == f"{host} {port}"


# ================================================================ TLS after the header


@pytest.fixture(scope="module")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_settings(tls_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A TLS server's settings, its certificate the CA's for 127.0.0.1."""
    return {"proxy_protocol": True, **tls_server_files(tls_ca, tmp_path_factory.mktemp("tls"))}


@pytest.fixture(scope="module")
def client_tls(tls_ca: trustme.CA) -> ssl_module.SSLContext:
    return client_context(tls_ca)


def tls_in_one_packet(
    port: int,
    header: bytes,
    request: bytes,
    context: ssl_module.SSLContext,
    close_notify: bool = False,
) -> bytes:
    """Send ``header`` and the TLS ClientHello in one write (as a balancer's first
    packet may carry both), then ``request`` over TLS (in one write with the
    handshake's last message; ``close_notify``: and with TLS's end); what comes
    back, decrypted."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        incoming, outgoing = ssl_module.MemoryBIO(), ssl_module.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        with pytest.raises(ssl_module.SSLWantReadError):
            tls.do_handshake()
        sock.sendall(header + outgoing.read())
        while True:
            try:
                tls.do_handshake()
                break
            except ssl_module.SSLWantReadError:
                if outgoing.pending:
                    sock.sendall(outgoing.read())
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed in the TLS handshake") from None
                incoming.write(data)
        tls.write(request)
        if close_notify:
            with pytest.raises(ssl_module.SSLWantReadError):
                tls.unwrap()  # (waiting for the server's)
        sock.sendall(outgoing.read())
        answer = b""
        while True:
            try:
                chunk = tls.read(65536)
            except ssl_module.SSLWantReadError:
                data = sock.recv(65536)
                if not data:
                    return answer
                incoming.write(data)
                continue
            except ssl_module.SSLZeroReturnError:
                return answer
            if not chunk:
                return answer
            answer += chunk


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n", b"203.0.113.7 51234"),
        (v2_inet("2001:db8::9", 40000), b"2001:db8::9 40000"),
    ],
)
async def test_tls_starts_after_the_header_even_in_the_same_packet(
    run_server: StartServer,
    tls_settings: dict[str, Any],
    client_tls: ssl_module.SSLContext,
    header: bytes,
    expected: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wsserver.access")
    server = await run_server(address_routes(), **tls_settings)
    answer = await asyncio.to_thread(tls_in_one_packet, server.port, header, WHO, client_tls)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n" + expected)
    scheme = b"GET /scheme HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = await asyncio.to_thread(tls_in_one_packet, server.port, header, scheme, client_tls)
    assert answer.endswith(b"\r\n\r\nhttps"), answer
    access = [r.getMessage() for r in caplog.records if r.name == "wsserver.access"]
    host, port = expected.decode().split(" ")
    shown = f"[{host}]" if ":" in host else host  # (an IPv6 peer in brackets)
    assert access[0].startswith(f"{shown}:{port} GET /who 200 "), access


async def test_a_client_ending_tls_right_after_its_handshake_is_no_error(
    run_server: StartServer,
    tls_settings: dict[str, Any],
    client_tls: ssl_module.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The handshake's end, a request and close_notify in one packet: the server
    has them all before the connection is HttpProtocol's (it was closed twice,
    and the request's handler failed writing on the broken transport)."""
    caplog.set_level(logging.WARNING)
    server = await run_server(address_routes(), **tls_settings)
    v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"
    for request in (WHO, b""):  # (and a TLS health check: nothing but the handshake)
        await asyncio.to_thread(
            tls_in_one_packet, server.port, v1, request, client_tls, close_notify=True
        )
    await asyncio.sleep(0.2)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [
        (r.name, r.getMessage()) for r in caplog.records
    ]
    assert server.counters.handler_errors == 0
    answer = await asyncio.to_thread(tls_in_one_packet, server.port, v1, WHO, client_tls)
    assert answer.endswith(b"203.0.113.7 51234")


async def test_an_ssl_context_given_to_serve_works_after_the_header_too(
    run_server: StartServer, tls_settings: dict[str, Any], client_tls: ssl_module.SSLContext
) -> None:
    context = ssl_module.create_default_context(ssl_module.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_settings["ssl_certfile"], tls_settings["ssl_keyfile"])
    server = await run_server(address_routes(), proxy_protocol=True, ssl=context)
    v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"
    answer = await asyncio.to_thread(tls_in_one_packet, server.port, v1, WHO, client_tls)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n203.0.113.7 51234")


async def test_a_websocket_client_over_tls_after_the_header(
    run_server: StartServer, tls_settings: dict[str, Any], client_tls: ssl_module.SSLContext
) -> None:
    server = await run_server(address_routes(), **tls_settings)
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n")
    async with websockets.connect(
        f"wss://127.0.0.1:{server.port}/ws", sock=sock, ssl=client_tls
    ) as ws:
        assert await asyncio.wait_for(ws.recv(), 5) == "203.0.113.7 51234"
    # From a peer not trusted: the header is read, TLS follows, the address is the peer's.
    untrusted = await run_server(address_routes(), **tls_settings, forwarded_allow_ips="10.0.0.1")
    sock = socket.create_connection(("127.0.0.1", untrusted.port))
    sock.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n")
    async with websockets.connect(
        f"wss://127.0.0.1:{untrusted.port}/ws", sock=sock, ssl=client_tls
    ) as ws:
        host, port = ws.local_address[:2]
        assert await asyncio.wait_for(ws.recv(), 5) == f"{host} {port}"


async def test_a_tls_connection_without_header_or_handshake_is_closed_unanswered(
    run_server: StartServer,
    tls_settings: dict[str, Any],
    client_tls: ssl_module.SSLContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="wsserver")
    server = await run_server(address_routes(), **tls_settings, open_timeout=0.5)
    # A TLS client that came past the balancer: no header.
    with pytest.raises((ConnectionError, ssl_module.SSLError, asyncio.IncompleteReadError)):
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", server.port, ssl=client_tls), 5
        )
        writer.write(WHO)
        await asyncio.wait_for(reader.readexactly(1), 5)
    # A header, then no TLS (plain HTTP): the handshake fails.
    v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"
    try:
        answer = await ask(server.port, v1 + WHO)
    except ConnectionResetError:
        answer = b""
    assert answer == b""
    # Nothing at all, or a header and then nothing: open_timeout ends it.
    for data in (b"", v1):
        started = time.monotonic()
        assert await ask(server.port, data) == b""
        assert 0.4 < time.monotonic() - started < 3
    said = [r.getMessage() for r in caplog.records if r.name == "wsserver.protocol"]
    assert any("no PROXY protocol header: closed" in line for line in said), said
    assert any("within open_timeout: closed" in line for line in said), said
    assert not [r for r in caplog.records if r.name == "wsserver.access"]
    # (The TLS client without a header is said once at WARNING; the rest are
    # no header problem: a failed TLS handshake, an open_timeout.)
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "no PROXY protocol header" in warned[0], warned
    # The server serves on.
    answer = await asyncio.to_thread(tls_in_one_packet, server.port, v1, WHO, client_tls)
    assert answer.endswith(b"203.0.113.7 51234")


async def test_a_tls_handshake_failing_after_the_header_is_said_of_the_headers_client(
    run_server: StartServer,
    tls_settings: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Once the header is read, every line of the connection names the client it
    # names (the access log, a 400's DEBUG line), but a TLS handshake that then
    # failed or took too long was said of the balancer's address, and the
    # latter as "no PROXY protocol header and TLS handshake within open_timeout"
    # when the header had come.
    caplog.set_level(logging.DEBUG, logger="wsserver.protocol")
    server = await run_server(address_routes(), **tls_settings, open_timeout=0.5)
    v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"
    for data in (v1 + WHO, v1):  # (plain HTTP after it: refused; nothing: open_timeout)
        with contextlib.suppress(ConnectionResetError):
            assert await ask(server.port, data) == b""
    await wait_for(
        lambda: len([r for r in caplog.records if r.getMessage().endswith(": closed")]) == 2,
        what="the two lines",
    )
    said = [r.getMessage() for r in caplog.records if r.getMessage().endswith(": closed")]
    assert said[0].startswith("203.0.113.7:51234: TLS: "), said
    assert "HTTP_REQUEST" in said[0], said
    assert said[1] == "203.0.113.7:51234: no TLS handshake within open_timeout: closed", said
    # Both are failed handshakes, counted (the latter was not: nor is one
    # that never began, its header never come, a port scan's).
    assert server.stats()["tls_handshake_failures"] == 2
    # From a peer not trusted, the header's client is not believed: the peer is named.
    caplog.clear()
    untrusted = await run_server(
        address_routes(), **tls_settings, open_timeout=0.5, forwarded_allow_ips="10.0.0.1"
    )
    assert await ask(untrusted.port, v1) == b""
    await wait_for(
        lambda: any(r.getMessage().endswith(": closed") for r in caplog.records),
        what="the line",
    )
    said = [r.getMessage() for r in caplog.records if r.getMessage().endswith(": closed")]
    assert said[0].startswith("127.0.0.1:"), said
    assert said[0].endswith(": no TLS handshake within open_timeout: closed"), said
    assert untrusted.stats()["tls_handshake_failures"] == 1
    assert await ask(untrusted.port, b"") == b""  # (no header: open_timeout)
    await wait_for(
        lambda: any("no PROXY protocol header" in r.getMessage() for r in caplog.records),
        what="the line",
    )
    assert untrusted.stats()["tls_handshake_failures"] == 1


async def test_a_connection_failing_before_tls_is_freed_by_reference_counting(
    run_server: StartServer, tls_settings: dict[str, Any]
) -> None:
    """Its failure (kept for the task that waits for the header, or raised by
    asyncio's start_tls()) held frames that refer to its protocols: a cycle per
    failed connection, for the cyclic GC."""
    server = await run_server(address_routes(), **tls_settings, open_timeout=0.3)
    v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"

    def alive() -> int:
        return sum(isinstance(o, TLSStart) for o in gc.get_objects())

    gc.collect()
    before = alive()
    gc.disable()
    try:
        for data in (WHO, b"PROXY TCP4 1.2", b"PROXY TCP4 1.2.3.4 nonsense\r\n", v1 + WHO, v1):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(data)
            if data != v1:  # (which waits for open_timeout)
                writer.write_eof()
            with contextlib.suppress(ConnectionResetError):  # (closed, data unread: RST)
                await asyncio.wait_for(reader.read(), 5)
            writer.close()
        await asyncio.sleep(0.1)
        assert alive() == before
    finally:
        gc.enable()


def test_a_connection_reset_before_it_is_accepted_is_closed_quietly_on_uvloop(
    tls_settings: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A client that resets its connection before the server accepts it (a
    health check, a port scan): uvloop's transport, closed before anyone asked
    for its peer, names none (get_extra_info("peername") raised AttributeError),
    which failed the task that waits for the header. The server kept that task,
    and through its traceback the connection's protocols, until it closed
    (then "Task exception was never retrieved" at ERROR). Run on uvloop,
    whichever loop the rest of the suite runs on."""
    v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n"

    async def main() -> None:
        async with serve(address_routes(), "127.0.0.1", 0, **tls_settings) as server:
            for data in (b"", b"PROXY TCP4 1.2", v1, v1 + b"\x16\x03\x01\x00\xc8\x01\x00"):
                # (Blocking calls, no await: the loop accepts it once it is reset.)
                with socket.create_connection(("127.0.0.1", server.port)) as client:
                    client.sendall(data)
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                gc.collect()
                if not server._handshaking:
                    break
            assert not server._handshaking, list(server._handshaking.values())
        gc.collect()

    with (
        caplog.at_level(logging.DEBUG),
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        runner.run(main())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records
    closed = [r.getMessage() for r in caplog.records if r.name == "wsserver.protocol"]
    assert len([line for line in closed if line.endswith(": closed")]) == 4, closed


async def test_shutdown_closes_a_connection_still_before_its_tls(
    run_server: StartServer, tls_settings: dict[str, Any]
) -> None:
    server = await run_server(address_routes(), **tls_settings, open_timeout=30)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    await asyncio.sleep(0.1)  # (accepted, waiting for its header)
    started = time.monotonic()
    await server.close(timeout=5)
    assert time.monotonic() - started < 2
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_behind_a_real_haproxy_passing_tls_through(
    run_server: StartServer,
    haproxy: Callable[..., int],
    tls_settings: dict[str, Any],
    client_tls: ssl_module.SSLContext,
) -> None:
    # As an NLB's TCP listener: HAProxy in mode tcp, no TLS of its own, sends the
    # header; the client's TLS is the server's to end.
    server = await run_server(address_routes(), **tls_settings)
    front = await asyncio.to_thread(haproxy, server.port, "send-proxy-v2")
    async with websockets.connect(f"wss://127.0.0.1:{front}/ws", ssl=client_tls) as ws:
        host, port = ws.local_address[:2]
        assert await asyncio.wait_for(ws.recv(), 5) == f"{host} {port}"
    reader, writer = await asyncio.open_connection("127.0.0.1", front, ssl=client_tls)
    port = writer.get_extra_info("sockname")[1]
    writer.write(WHO)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(f"127.0.0.1 {port}".encode())
