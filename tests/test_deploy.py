"""Deployment: TLS, Unix sockets, inherited sockets, proxy headers, logging and environment flags.

Through real sockets and real clients; the command line through real processes.
Worker processes and signals are in ``test_workers.py``.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import json
import logging
import os
import re
import select
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
import websockets
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa as rsa_keys

from wsserver import Request, Router, WebSocket, serve
from wsserver.app.response import json_response
from wsserver.config import Config
from wsserver.envfile import load_env_file, parse_env_file
from wsserver.errors import ConfigError
from wsserver.protocol.http import Headers
from wsserver.protocol.proxy import MAX_HOPS, TrustedProxies, forwarded
from wsserver.response import Response, text
from wsserver.server.tls import _missing_pem, ssl_context

from .conftest import StartServer
from .helpers import client_context, exchange, server_context, upgrade_request, wait_for
from .test_cli import (
    ROOT,
    STARTUP_TIMEOUT,
    Cli,
    _ipv6_loopback,
    assert_echo,
    child_env,
    on_a_pty,
    run_cli_to_end,
    running_cli,
)
from .test_keepalive import tls_contexts

TIMEOUT = 5


def who_routes() -> Router:
    """``/who`` answers the client's address and scheme as the server sees them."""
    routes = Router()

    @routes.websocket("/ws")
    async def who_ws(request: Request, ws: WebSocket) -> None:
        await ws.send({"client": request.remote_address, "scheme": request.scheme})

    @routes.get("/who")
    async def who(request: Request) -> Any:
        return json_response({"client": request.remote_address, "scheme": request.scheme})

    return routes


# ========================================================================= TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def cert_files(
    ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    directory = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = {
        "certfile": str(directory / "cert.pem"),
        "keyfile": str(directory / "key.pem"),
        "ca": str(directory / "ca.pem"),
    }
    cert.cert_chain_pems[0].write_to_path(files["certfile"])
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(files["certfile"], append=True)
    cert.private_key_pem.write_to_path(files["keyfile"])
    ca.cert_pem.write_to_path(files["ca"])
    # The same key, encrypted with the password "secret".
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), None)
    files["encrypted_keyfile"] = str(directory / "encrypted.pem")
    Path(files["encrypted_keyfile"]).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    yield files


async def test_wss_and_https(
    run_server: StartServer, ca: trustme.CA, cert_files: dict[str, str]
) -> None:
    server = await run_server(
        who_routes(), ssl_certfile=cert_files["certfile"], ssl_keyfile=cert_files["keyfile"]
    )
    async with websockets.connect(
        f"wss://127.0.0.1:{server.port}/ws", ssl=client_context(ca)
    ) as ws:
        said = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert said["scheme"] == "https" and said["client"][0] == "127.0.0.1"
    async with httpx.AsyncClient(verify=client_context(ca)) as client:
        response = await client.get(f"https://127.0.0.1:{server.port}/who")
    assert response.status_code == 200 and response.json()["scheme"] == "https"


async def test_a_closed_tls_connection_is_freed_without_the_garbage_collector(
    ca: trustme.CA, cert_files: dict[str, str]
) -> None:
    # (From an audit.) asyncio's SSLProtocol keeps the bound get_buffer and
    # buffer_updated of the protocol over it (a BufferedProtocol) after the
    # connection is lost: a cycle through the protocol's transport, each
    # closed TLS connection's 256 KiB buffer held until a full collection
    # (2,000 connections: 124 MB).
    import gc
    from asyncio.sslproto import SSLProtocol

    from wsserver.server.http_protocol import HttpProtocol
    from wsserver.server.websocket_protocol import WebSocketProtocol

    routes = Router()

    @routes.get("/")
    async def index(request: Request) -> Response:
        return text("x")

    @routes.websocket("/ws")
    async def echo(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    server = serve(
        routes,
        "127.0.0.1",
        0,
        ssl_certfile=cert_files["certfile"],
        ssl_keyfile=cert_files["keyfile"],
        ping_interval=None,
    )
    context = client_context(ca)

    def left() -> list[Any]:  # (the server's: not the test's clients' SSLProtocols)
        kinds = (SSLProtocol, HttpProtocol, WebSocketProtocol)
        return [
            o for o in gc.get_objects() if type(o) in kinds and getattr(o, "_server_side", True)
        ]

    async with server:
        gc.collect()
        before = len(left())
        gc.disable()
        try:
            for _ in range(5):
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", server.port, ssl=context
                )
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                assert (await asyncio.wait_for(reader.read(), TIMEOUT)).endswith(b"x")
                writer.close()
                async with websockets.connect(
                    f"wss://127.0.0.1:{server.port}/ws", ssl=context
                ) as ws:
                    await ws.send("y")
                    assert await ws.recv() == "y"
            await wait_for(lambda: not server.connections, what="the connections gone")
            for _ in range(100):
                if len(left()) <= before:
                    break
                await asyncio.sleep(0.01)
            assert len(left()) <= before, [type(o).__name__ for o in left()]
        finally:
            gc.enable()


async def test_a_tls_client_reading_a_stream_slowly_is_not_taken_for_gone(
    ca: trustme.CA, cert_files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # timeout_keep_alive closes a streamed response's client that takes
    # nothing; one that reads slowly but steadily over TLS was closed too on
    # uvloop: what its TLS layer had handed the TCP transport was in no buffer
    # size, so while the client read, the sum stayed flat. The bytes the
    # client acknowledged (the kernel's count) tell. (A client whose own TLS
    # library takes in bursts can show nothing for longer: it is judged by
    # what the server's kernel sees.)
    from wsserver.server.http_protocol import HttpProtocol

    connection_made = HttpProtocol.connection_made

    def small_send_buffer(self: HttpProtocol, transport: Any) -> None:
        transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 32768
        )  # (a buffer the kernel does not grow: the same every run)
        connection_made(self, transport)

    monkeypatch.setattr(HttpProtocol, "connection_made", small_send_buffer)
    failed: list[float] = []  # when the app heard the client was gone, if it did

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        await send({"type": "http.response.start", "status": 200})
        try:
            for _ in range(400):
                await send({"type": "http.response.body", "body": b"x" * 16384, "more_body": True})
        except OSError:
            failed.append(asyncio.get_running_loop().time())
            raise

    server = serve(
        app,
        "127.0.0.1",
        0,
        ping_interval=None,
        timeout_keep_alive=1.0,
        ssl_certfile=cert_files["certfile"],
        ssl_keyfile=cert_files["keyfile"],
    )
    async with server:

        def read_slowly() -> int:
            # A blocking TLS socket: the kernel's buffer is read a record at a
            # time as the client reads (asyncio's TLS layer would take it in
            # bursts, leaving the server nothing to see for seconds).
            with socket.socket() as raw:
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # (its window)
                raw.connect(("127.0.0.1", server.port))
                with client_context(ca).wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    taken = 0
                    started = time.monotonic()
                    while time.monotonic() - started < 3.0:  # ~60 KiB/s
                        # (A TLS record, 16 KiB, leaves the kernel's buffer about
                        # every 0.3 s. At 40 KiB/s, a run beside other busy
                        # processes once saw no progress for a second; at 80, the
                        # buffer sizes alone change often enough that the test no
                        # longer fails without the kernel's count.)
                        chunk = tls.recv(3072)
                        assert chunk, f"closed after {taken} bytes"
                        taken += len(chunk)
                        time.sleep(0.05)
                        assert not failed, f"the app was told the client left ({taken} bytes)"
                    return taken

        # (It read on throughout: ~180 KB here.)
        assert await asyncio.to_thread(read_slowly) > 75_000


async def test_an_idle_tls_connection_is_closed_after_timeout_keep_alive(
    ca: trustme.CA, cert_files: dict[str, str]
) -> None:
    # A TLS client that took its answer at once and sends nothing more is
    # idle from then on: closed after timeout_keep_alive, as over plain TCP.
    # The answer's bytes still on their way as the wait began (not yet
    # acknowledged, a moment on any network) were taken for an answer
    # waiting for the client, and their acknowledgement for the client
    # taking more: every idle TLS connection was held twice as long.
    server = serve(
        who_routes(),
        "127.0.0.1",
        0,
        ping_interval=None,
        timeout_keep_alive=1.0,
        close_timeout=5,
        ssl_certfile=cert_files["certfile"],
        ssl_keyfile=cert_files["keyfile"],
    )
    async with server:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.port, ssl=client_context(ca), server_hostname="localhost"
        )
        loop = asyncio.get_running_loop()
        for _ in range(2):  # (a first answer, and one on the kept-alive connection)
            writer.write(b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            length = int(re.findall(rb"(?i)content-length: (\d+)", head)[0])
            await asyncio.wait_for(reader.readexactly(length), TIMEOUT)
        answered = loop.time()
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        # (It was 2.0, twice timeout_keep_alive; a loaded machine may add some.)
        assert loop.time() - answered < 1.8
        writer.close()


async def test_asgi_scope_says_wss_and_https(ca: trustme.CA, cert_files: dict[str, str]) -> None:
    schemes: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        schemes.append(scope["scheme"])
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close"})
        else:
            await send({"type": "http.response.start", "status": 204})
            await send({"type": "http.response.body"})

    server = serve(
        app,
        "127.0.0.1",
        0,
        ssl_certfile=cert_files["certfile"],
        ssl_keyfile=cert_files["keyfile"],
    )
    async with server:
        with pytest.raises(websockets.exceptions.InvalidStatus):
            await websockets.connect(f"wss://127.0.0.1:{server.port}/", ssl=client_context(ca))
        async with httpx.AsyncClient(verify=client_context(ca)) as client:
            await client.get(f"https://127.0.0.1:{server.port}/")
    assert schemes == ["wss", "https"]


# Fixed bytes, not random ones: a random start can read as a TLS (or SSLv2) record header that
# promises more bytes than were sent, and then the server rightly waits for them until
# open_timeout (the case the next test covers).
@pytest.mark.parametrize(
    "garbage", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", bytes(range(256)), b"\xff" * 300]
)
async def test_plain_text_or_garbage_on_a_tls_port_is_dropped_quietly(
    run_server: StartServer,
    cert_files: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    garbage: bytes,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await run_server(
        who_routes(), ssl_certfile=cert_files["certfile"], ssl_keyfile=cert_files["keyfile"]
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(garbage)
    started = asyncio.get_running_loop().time()
    data = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    assert asyncio.get_running_loop().time() - started < 1.0
    assert b"HTTP/1.1 2" not in data
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert not problems, [r.getMessage() for r in problems]


# Silent, or the start of a TLS record that promises 4 KiB and never sends them.
@pytest.mark.parametrize("sent", [b"", b"\x16\x03\x01\x10\x00"])
async def test_a_silent_client_on_a_tls_port_is_dropped_after_open_timeout(
    run_server: StartServer, cert_files: dict[str, str], sent: bytes
) -> None:
    server = await run_server(
        who_routes(),
        ssl_certfile=cert_files["certfile"],
        ssl_keyfile=cert_files["keyfile"],
        open_timeout=0.3,
    )
    # Before connecting: the server's timer starts at its accept, and this
    # task may resume a while after it.
    started = asyncio.get_running_loop().time()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(sent)
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    assert asyncio.get_running_loop().time() - started >= 0.25
    writer.close()


async def test_a_tls_connection_holds_no_socket_read_buffer_of_its_own(
    cert_files: dict[str, str], ca: trustme.CA
) -> None:
    # asyncio's TLS transport reads the socket into a 256 KiB buffer of the
    # connection's own, kept for its life: a TLS WebSocket took 273 KiB of the
    # server's memory, against 5 KiB in plain TCP (10,000 of them, 2.7 GB).
    # Once the handshake is done it reads into one buffer the server's
    # connections share, as the server's own reads do. (uvloop's does not
    # hold the whole of its buffer resident: not this test's.)
    n = 150
    async with _tls_echo_on_asyncio(cert_files, "--ping-interval", "none") as cli:
        url = f"wss://127.0.0.1:{cli.port}/ws"
        context = client_context(ca)
        async with websockets.connect(url, ssl=context, compression=None) as first:
            await first.send("warm")  # (the server's first TLS connection: its imports)
            assert await asyncio.wait_for(first.recv(), TIMEOUT) == "warm"
        before = _resident(cli.proc.pid)
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(
                    websockets.connect(url, ssl=context, compression=None)
                )
                for _ in range(n)
            ]
            for ws in clients:
                await ws.send("x" * 1000)
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "x" * 1000
            per_connection = (_resident(cli.proc.pid) - before) / n
        assert per_connection < 64 * 1024, f"{per_connection / 1024:.0f} KiB a TLS connection"


async def test_a_tls_connection_in_its_handshake_holds_no_socket_read_buffer_either(
    cert_files: dict[str, str], ca: trustme.CA
) -> None:
    # asyncio's TLS layer makes that 256 KiB buffer as it accepts a connection,
    # and it was the connection's until its handshake ended, or failed at
    # open_timeout: a client that connects and says nothing (or a byte of its
    # ClientHello) held a quarter of a megabyte of the server's memory for
    # that long, a thousand of them a quarter of a gigabyte. The server starts
    # TLS itself, its connections sharing one buffer from their first byte.
    # (Each one's TLS layer still makes its own buffer, dropped a moment
    # later: a burst of connections accepted together has them all at once,
    # which the next burst's reuse. Measured at the second: about 50 KiB a
    # connection, OpenSSL's handshake state most of it, against 300.)
    n = 150
    async with _tls_echo_on_asyncio(cert_files, "--open-timeout", "60") as cli:
        url = f"wss://127.0.0.1:{cli.port}/ws"
        context = client_context(ca)

        async def served() -> None:
            async with websockets.connect(url, ssl=context, compression=None) as ws:
                await ws.send("x")
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "x"

        await served()  # (the server's first TLS connection: its imports, the shared buffer)
        silent: list[socket.socket] = []

        async def connect_silent() -> None:
            for i in range(n):
                sock = socket.create_connection(("127.0.0.1", cli.port))
                silent.append(sock)
                if i % 2:
                    sock.sendall(b"\x16\x03\x01\x02\x00\x01")  # (a ClientHello's start)
                if i % 10 == 9:
                    # (Accepted before it, in order: each of them has its TLS
                    # layer by then. Ten at a time: a burst accepted together
                    # has its buffers at once, which the allocator may keep
                    # resident; a loaded machine's server, scheduled seldom,
                    # accepted a hundred together, 150 KiB a connection.)
                    await served()

        try:
            await connect_silent()
            before = _resident(cli.proc.pid)
            await connect_silent()
            per_connection = (_resident(cli.proc.pid) - before) / n
        finally:
            for sock in silent:
                sock.close()
        assert per_connection < 128 * 1024, f"{per_connection / 1024:.0f} KiB a TLS handshake"


async def test_connections_accepted_together_never_hold_their_tls_buffers_at_once(
    run_server: StartServer, cert_files: dict[str, str]
) -> None:
    # The connections the loop accepts in one go (up to a hundred) begin
    # their handshakes in one loop turn: had each one's TLS layer kept the
    # 256 KiB buffer it makes until the next turn, they would all have had
    # theirs at the same moment, 25 MiB that the allocator may keep. Each
    # is dropped as it is made: Python's memory peaks at one of them.
    if type(asyncio.get_running_loop()).__module__.startswith("uvloop"):
        pytest.skip("uvloop's TLS layer is its own (its buffer is not Python's)")
    server = await run_server(
        who_routes(),
        ssl_certfile=cert_files["certfile"],
        ssl_keyfile=cert_files["keyfile"],
        open_timeout=60,
    )
    n = 60
    tracemalloc.start()
    socks: list[socket.socket] = []
    try:
        tracemalloc.reset_peak()
        # (Connected with the loop held here: accepted together, once it turns.)
        socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(n)]
        await wait_for(lambda: len(server._handshaking) >= n, what="the handshakes")
        await asyncio.sleep(0.1)  # (a few turns: their TLS layers made)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        for sock in socks:
            sock.close()
    # (1.2 MB measured: the shared buffer made, one made and dropped, and
    # the connections' objects; all their buffers at once would be 15 MiB.)
    assert peak < n * 256 * 1024 / 4, f"{peak / 1024:.0f} KiB at the peak"


def _tls_echo_on_asyncio(cert_files: dict[str, str], *options: str) -> Any:
    """``python -m wsserver examples.echo:routes`` over TLS on asyncio's loop (and ``options``)."""
    return running_cli(
        "examples.echo:routes",
        "--loop",
        "asyncio",
        *options,
        "--ssl-certfile",
        cert_files["certfile"],
        "--ssl-keyfile",
        cert_files["keyfile"],
        listening=r"listening on wss://127\.0\.0\.1:(\d+)",
    )


def _resident(pid: int) -> int:
    """The resident set size of process ``pid``, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) * 1024


@pytest.mark.parametrize("sent", [b"", b"\x16\x03\x01\x10\x00"])
async def test_a_tls_handshake_not_done_within_open_timeout_is_counted_and_said(
    run_server: StartServer,
    cert_files: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    sent: bytes,
) -> None:
    # A handshake that never ends (a client that went silent, a ClientHello
    # sent a byte a second, a path that drops the server's packets) is a
    # failed handshake too, and the one an operator most needs to see (a
    # slow loris on the TLS port); asyncio and uvloop close it in silence:
    # no line, no count, where one that fails otherwise is both, and a
    # PROXY protocol server says it (its "no TLS handshake within open_timeout").
    caplog.set_level(logging.DEBUG, logger="wsserver.protocol")
    server = await run_server(
        who_routes(),
        ssl_certfile=cert_files["certfile"],
        ssl_keyfile=cert_files["keyfile"],
        open_timeout=0.3,
    )

    async def stalled() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(sent)
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        writer.close()

    await stalled()
    await wait_for(lambda: server.stats()["tls_handshake_failures"] == 1, what="the count")
    said = [r.getMessage() for r in caplog.records if r.name == "wsserver.protocol"]
    timed_out = [line for line in said if "not done within open_timeout (0.3 s)" in line]
    assert len(timed_out) == 1 and timed_out[0].startswith("TLS handshake failed: "), said
    # One that ends in time is neither: had it been taken for one, it would
    # be counted before the next stalled one is closed.
    async with httpx.AsyncClient(verify=False) as client:
        assert (await client.get(f"https://127.0.0.1:{server.port}/who")).status_code == 200
    await stalled()
    await wait_for(lambda: server.stats()["tls_handshake_failures"] >= 2, what="the count")
    assert server.stats()["tls_handshake_failures"] == 2


async def test_client_certificates_when_required(
    run_server: StartServer, ca: trustme.CA, cert_files: dict[str, str]
) -> None:
    server = await run_server(
        who_routes(),
        ssl_certfile=cert_files["certfile"],
        ssl_keyfile=cert_files["keyfile"],
        ssl_ca_certs=cert_files["ca"],
        ssl_cert_reqs=2,
    )
    without = client_context(ca)
    with pytest.raises((ssl.SSLError, ConnectionError, websockets.exceptions.InvalidMessage)):
        async with websockets.connect(f"wss://127.0.0.1:{server.port}/ws", ssl=without) as ws:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    with_cert = client_context(ca)
    ca.issue_cert("client@example").configure_cert(with_cert)
    async with websockets.connect(f"wss://127.0.0.1:{server.port}/ws", ssl=with_cert) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["scheme"] == "https"


async def test_required_client_certificates_need_ca_certificates(
    cert_files: dict[str, str],
) -> None:
    # Without ssl_ca_certs nothing could verify a client's certificate: the server
    # started, and then refused every client (with a certificate or not) silently.
    pair = {"ssl_certfile": cert_files["certfile"], "ssl_keyfile": cert_files["keyfile"]}
    said = (
        "ssl_cert_reqs 2 (client certificates required) needs ssl_ca_certs"
        " (--ssl-ca-certs or WEBSOCKET_SSL_CA_CERTS)"
    )
    with pytest.raises(ConfigError) as caught:
        serve(who_routes(), "127.0.0.1", 0, **pair, ssl_cert_reqs=2)
    assert str(caught.value) == said
    code, err = await run_cli_to_end(
        "examples.echo:routes",
        *("--ssl-certfile", cert_files["certfile"], "--ssl-keyfile", cert_files["keyfile"]),
        *("--ssl-cert-reqs", "2", "--port", "0"),
    )
    assert code == 2, err
    assert err.strip().splitlines()[-1].endswith(said) and "Traceback" not in err, err


async def test_ca_certificates_without_client_certificates_asked_for_are_said(
    run_server: StartServer,
    ca: trustme.CA,
    cert_files: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # ssl_ca_certs alone (ssl_cert_reqs 0, the default, as uvicorn's): no
    # client certificate is asked for, and every client is served. An
    # operator who meant client certificates got an open server, silently.
    with caplog.at_level(logging.WARNING, logger="wsserver.server"):
        server = await run_server(
            who_routes(),
            ssl_certfile=cert_files["certfile"],
            ssl_keyfile=cert_files["keyfile"],
            ssl_ca_certs=cert_files["ca"],
        )
    async with httpx.AsyncClient(verify=client_context(ca)) as client:
        response = await client.get(f"https://127.0.0.1:{server.port}/who")
    assert response.status_code == 200  # (no certificate: served, as the warning says)
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert said == [
        "ssl_ca_certs is set but ssl_cert_reqs is 0: no client certificate is asked for"
        " (--ssl-cert-reqs 2 requires one, 1 checks one if sent); a server certificate's"
        " chain belongs in ssl_certfile, after it"
    ]
    # Asked for, or nothing given to check them with: nothing to say.
    caplog.clear()
    pair = {"ssl_certfile": cert_files["certfile"], "ssl_keyfile": cert_files["keyfile"]}
    with caplog.at_level(logging.WARNING, logger="wsserver.server"):
        for reqs in (1, 2):
            assert ssl_context(Config(**pair, ssl_cert_reqs=reqs, ssl_ca_certs=cert_files["ca"]))
        assert ssl_context(Config(**pair))
    assert not caplog.records


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_a_failed_tls_handshake_is_counted_and_said_at_debug(
    run_server: StartServer,
    ca: trustme.CA,
    cert_files: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # asyncio and uvloop keep a failed handshake to themselves: plain HTTP on
    # the TLS port, a client refused for its version (or its certificate,
    # with client certificates required) left no line at any level and no
    # count: an operator had nothing to look at.
    server = await run_server(
        who_routes(),
        ssl_certfile=cert_files["certfile"],
        ssl_keyfile=cert_files["keyfile"],
        metrics_path="/metrics",
    )
    caplog.set_level(logging.DEBUG, logger="wsserver.protocol")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # (closed, unanswered)
    writer.close()
    old = client_context(ca)
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with contextlib.suppress(ssl.SSLError, ConnectionError):
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port, ssl=old), TIMEOUT)
    async with httpx.AsyncClient(verify=client_context(ca)) as client:
        await wait_for(lambda: server.stats()["tls_handshake_failures"] == 2, what="the count")
        metrics = (await client.get(f"https://127.0.0.1:{server.port}/metrics")).text
    assert "wsserver_tls_handshake_failures_total 2.0" in metrics
    said = [r.getMessage() for r in caplog.records if r.name == "wsserver.protocol"]
    failed = [line for line in said if line.startswith("TLS handshake failed")]
    assert len(failed) == 2, said
    assert "HTTP_REQUEST" in failed[0] and "plain HTTP" in failed[0], failed
    assert server.stats()["tls_handshake_failures"] == 2  # (not the scrape's own)


def _refuses_the_server(port: int, context: ssl.SSLContext) -> None:
    """A client (a blocking socket's: it sends its alert, asyncio's does not) that
    refuses the server's certificate."""
    with (
        pytest.raises(ssl.SSLCertVerificationError),
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock,
    ):
        context.wrap_socket(sock, server_hostname="127.0.0.1")


async def test_a_client_refusing_the_servers_certificate_is_said_so(
    run_server: StartServer,
    ca: trustme.CA,
    cert_files: dict[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The most common failure of a new deployment: clients that do not trust
    # the server's certificate (self-signed, its intermediates missing from
    # ssl_certfile, expired). Each client says so in an alert, said as OpenSSL's
    # TLSV1_ALERT_UNKNOWN_CA alone, which reads as though the server had refused
    # a client's certificate (the hint it has for those).
    server = await run_server(
        who_routes(), ssl_certfile=cert_files["certfile"], ssl_keyfile=cert_files["keyfile"]
    )
    caplog.set_level(logging.DEBUG, logger="wsserver.protocol")
    await asyncio.to_thread(_refuses_the_server, server.port, client_context(trustme.CA()))
    await wait_for(lambda: server.stats()["tls_handshake_failures"] == 1, what="the count")
    expired = ca.issue_cert(
        "127.0.0.1", not_before=datetime(2019, 1, 1), not_after=datetime(2020, 1, 1)
    )
    files = {"ssl_certfile": str(tmp_path / "cert.pem"), "ssl_keyfile": str(tmp_path / "key.pem")}
    expired.cert_chain_pems[0].write_to_path(files["ssl_certfile"])
    expired.private_key_pem.write_to_path(files["ssl_keyfile"])
    old = await run_server(who_routes(), **files)
    await asyncio.to_thread(_refuses_the_server, old.port, client_context(ca))
    await wait_for(lambda: old.stats()["tls_handshake_failures"] == 1, what="the count")
    said = [r.getMessage() for r in caplog.records if r.name == "wsserver.protocol"]
    assert [line for line in said if line.startswith("TLS handshake failed")] == [
        "TLS handshake failed: TLSV1_ALERT_UNKNOWN_CA (the client refused the server's"
        " certificate: its CA is not one the client trusts, or its intermediates are missing"
        " from ssl_certfile)",
        "TLS handshake failed: SSLV3_ALERT_CERTIFICATE_EXPIRED (the client refused the"
        " server's certificate: it, or one of its chain, has expired)",
    ], said


async def test_a_client_certificate_refused_is_said_with_why(
    run_server: StartServer,
    ca: trustme.CA,
    cert_files: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Every client refused for its certificate was said as OpenSSL's
    # CERTIFICATE_VERIFY_FAILED alone: an expired certificate, one of a CA the
    # server does not trust, the same line, and the operator left to guess.
    server = await run_server(
        who_routes(),
        ssl_certfile=cert_files["certfile"],
        ssl_keyfile=cert_files["keyfile"],
        ssl_ca_certs=cert_files["ca"],
        ssl_cert_reqs=ssl.CERT_REQUIRED,
    )
    caplog.set_level(logging.DEBUG, logger="wsserver.protocol")
    expired = ca.issue_cert(
        "carol@example.com", not_before=datetime(2019, 1, 1), not_after=datetime(2020, 1, 1)
    )
    stranger = trustme.CA().issue_cert("eve@example.com")
    for cert in (expired, stranger):
        writer = None
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", server.port, ssl=client_context(ca, cert)),
                TIMEOUT,
            )
            writer.write(b"GET /who HTTP/1.1\r\nHost: x\r\n\r\n")  # (TLS 1.3: refused after)
            await asyncio.wait_for(reader.read(), TIMEOUT)
        if writer is not None:
            writer.close()
    await wait_for(lambda: server.stats()["tls_handshake_failures"] == 2, what="the count")
    said = [r.getMessage() for r in caplog.records if r.name == "wsserver.protocol"]
    assert [line for line in said if line.startswith("TLS handshake failed")] == [
        "TLS handshake failed: CERTIFICATE_VERIFY_FAILED (the client's certificate:"
        " certificate has expired)",
        "TLS handshake failed: CERTIFICATE_VERIFY_FAILED (the client's certificate:"
        " unable to get local issuer certificate)",
    ], said


@pytest.mark.parametrize(
    ("valid", "said"),
    [
        (
            {"not_before": datetime(2019, 1, 1), "not_after": datetime(2020, 1, 2, 3, 4, 5)},
            "TLS: the server's certificate expired on 2020-01-02 03:04:05 UTC: clients refuse it",
        ),
        (
            {"not_before": datetime(2999, 1, 1), "not_after": datetime(3000, 1, 1)},
            "TLS: the server's certificate is not valid until 2999-01-01 00:00:00 UTC:"
            " clients refuse it",
        ),
    ],
)
async def test_a_certificate_expired_or_not_valid_yet_is_warned_of(
    run_server: StartServer,
    ca: trustme.CA,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    valid: dict[str, datetime],
    said: str,
) -> None:
    # The server started without a word, and every client was refused (curl:
    # "certificate has expired"), a TLS error on their side only.
    cert = ca.issue_cert("127.0.0.1", **valid)
    files = {"ssl_certfile": str(tmp_path / "cert.pem"), "ssl_keyfile": str(tmp_path / "key.pem")}
    cert.cert_chain_pems[0].write_to_path(files["ssl_certfile"])
    cert.private_key_pem.write_to_path(files["ssl_keyfile"])
    with caplog.at_level(logging.WARNING, logger="wsserver.server"):
        server = await run_server(who_routes(), **files)
    async with httpx.AsyncClient(verify=client_context(ca)) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"https://127.0.0.1:{server.port}/who")
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [said]


async def test_a_valid_certificate_is_not_warned_of(
    run_server: StartServer, cert_files: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="wsserver.server"):
        await run_server(
            who_routes(), ssl_certfile=cert_files["certfile"], ssl_keyfile=cert_files["keyfile"]
        )
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def _chain_with_an_intermediate(
    directory: Path, not_before: datetime, not_after: datetime
) -> tuple[dict[str, str], ssl.SSLContext]:
    """A server's files whose ssl_certfile is a certificate for 127.0.0.1 and the
    intermediate that issued it, valid from ``not_before`` to ``not_after``; and
    a client's context that trusts the root that issued the intermediate."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    def issue(
        name: str, key: Any, issuer: str, issuer_key: Any, valid: tuple[datetime, datetime]
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid[0])
            .not_valid_after(valid[1])
            .add_extension(x509.BasicConstraints(ca=name != "leaf", path_length=None), True)
        )
        if name == "leaf":
            address = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
            builder = builder.add_extension(x509.SubjectAlternativeName([address]), False)
        return builder.sign(issuer_key, hashes.SHA256())

    root_key, intermediate_key, key = (ec.generate_private_key(ec.SECP256R1()) for _ in "abc")
    always = (datetime(2000, 1, 1), datetime(3000, 1, 1))
    root = issue("root", root_key, "root", root_key, always)
    intermediate = issue(
        "intermediate", intermediate_key, "root", root_key, (not_before, not_after)
    )
    leaf = issue("leaf", key, "intermediate", intermediate_key, always)
    files = {
        "ssl_certfile": str(directory / "chain.pem"),
        "ssl_keyfile": str(directory / "key.pem"),
    }
    pem = serialization.Encoding.PEM
    Path(files["ssl_certfile"]).write_bytes(leaf.public_bytes(pem) + intermediate.public_bytes(pem))
    Path(files["ssl_keyfile"]).write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    client = ssl.create_default_context(cadata=root.public_bytes(pem).decode())
    return files, client


@pytest.mark.parametrize(
    ("valid", "said"),
    [
        (
            (datetime(2019, 1, 1), datetime(2020, 1, 2, 3, 4, 5)),
            "TLS: certificate 2 of ssl_certfile (its chain, after the server's) expired on"
            " 2020-01-02 03:04:05 UTC: clients that need it refuse the server",
        ),
        (
            (datetime(2999, 1, 1), datetime(3000, 1, 1)),
            "TLS: certificate 2 of ssl_certfile (its chain, after the server's) is not valid"
            " until 2999-01-01 00:00:00 UTC: clients that need it refuse the server",
        ),
    ],
)
async def test_an_intermediate_certificate_expired_or_not_valid_yet_is_warned_of(
    run_server: StartServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    valid: tuple[datetime, datetime],
    said: str,
) -> None:
    # The server's own certificate valid, the intermediate after it in
    # ssl_certfile expired (a chain file left from before a renewal): the
    # server started without a word, and every client was refused.
    files, client_tls = _chain_with_an_intermediate(tmp_path, *valid)
    with caplog.at_level(logging.WARNING, logger="wsserver.server"):
        server = await run_server(who_routes(), **files)
    async with httpx.AsyncClient(verify=client_tls) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"https://127.0.0.1:{server.port}/who")
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [said]


async def test_a_valid_intermediate_certificate_is_not_warned_of(
    run_server: StartServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files, client_tls = _chain_with_an_intermediate(
        tmp_path, datetime(2000, 1, 1), datetime(3000, 1, 1)
    )
    with caplog.at_level(logging.WARNING, logger="wsserver.server"):
        server = await run_server(who_routes(), **files)
    async with httpx.AsyncClient(verify=client_tls) as client:
        assert (await client.get(f"https://127.0.0.1:{server.port}/who")).status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_the_chain_of_an_ssl_certfile_an_ssl_context_ignores_is_not_warned_of(
    run_server: StartServer,
    ca: trustme.CA,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # WEBSOCKET_SSL_CERTFILE from the environment beside an ssl= context is
    # ignored (said so), its file not served: the expired intermediate in it
    # was warned of all the same, as though clients were refused for it.
    files, _ = _chain_with_an_intermediate(tmp_path, datetime(2019, 1, 1), datetime(2020, 1, 2))
    monkeypatch.setenv("WEBSOCKET_SSL_CERTFILE", files["ssl_certfile"])
    with caplog.at_level(logging.WARNING, logger="wsserver.server"):
        server = await run_server(who_routes(), ssl=server_context(ca))
    async with httpx.AsyncClient(verify=client_context(ca)) as client:
        assert (await client.get(f"https://127.0.0.1:{server.port}/who")).status_code == 200
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "ssl_certfile is set but ignored: the ssl= context is the server's TLS"
    ]


def test_tls_settings_errors_are_one_line(cert_files: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs ssl_certfile"):
        ssl_context(Config(ssl_keyfile=cert_files["keyfile"]))
    missing = str(tmp_path / "missing.pem")
    pair = {"ssl_certfile": cert_files["certfile"], "ssl_keyfile": cert_files["keyfile"]}
    # Which file: "TLS: [Errno 2] No such file or directory" said none.
    for setting in ("ssl_certfile", "ssl_keyfile", "ssl_ca_certs"):
        with pytest.raises(ConfigError) as caught:
            ssl_context(Config(**{**pair, setting: missing}))
        assert str(caught.value) == f"TLS: {setting} {missing}: No such file or directory"
    # Which file, and what it lacks (OpenSSL's own words: "[SSL] PEM lib (_ssl.c:3905)").
    garbage = str(tmp_path / "garbage.pem")
    (tmp_path / "garbage.pem").write_text("not PEM")
    with pytest.raises(ConfigError) as caught:
        ssl_context(Config(ssl_certfile=garbage))
    assert str(caught.value) == (
        f"TLS: ssl_certfile {garbage}: no PEM certificate in it (-----BEGIN CERTIFICATE-----)"
    )
    with pytest.raises(ConfigError) as caught:
        ssl_context(Config(ssl_certfile=cert_files["certfile"], ssl_keyfile=garbage))
    assert str(caught.value) == (
        f"TLS: ssl_keyfile {garbage}: no PEM private key in it (-----BEGIN ... PRIVATE KEY-----)"
    )
    # The other PEM forms OpenSSL reads a certificate or key from count as such.
    trusted = tmp_path / "trusted.pem"
    trusted.write_bytes(b"-----BEGIN TRUSTED CERTIFICATE-----\nAAAA\n")
    rsa = tmp_path / "rsa.pem"
    rsa.write_bytes(b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n")
    assert _missing_pem(str(trusted), str(rsa)) is None
    ssh = tmp_path / "ssh.key"  # (ssh-keygen's: not one OpenSSL loads)
    ssh.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n")
    assert _missing_pem(str(trusted), str(ssh)) == (
        f"ssl_keyfile {ssh}: no PEM private key in it (-----BEGIN ... PRIVATE KEY-----)"
    )
    with pytest.raises(ConfigError) as caught:  # a certificate alone, no key with it
        ssl_context(Config(ssl_certfile=cert_files["certfile"]))
    assert str(caught.value) == (
        f"TLS: ssl_certfile {cert_files['certfile']}: no PEM private key in it"
        " (-----BEGIN ... PRIVATE KEY-----)"
    )
    with pytest.raises(ConfigError) as refused:
        ssl_context(Config(**pair, ssl_ciphers="NOPE-NOTHING"))
    assert str(refused.value) == "TLS: ssl_ciphers: No cipher can be selected."  # (not a tuple)
    encrypted = {**pair, "ssl_keyfile": cert_files["encrypted_keyfile"]}
    with pytest.raises(ConfigError) as caught:
        ssl_context(Config(**encrypted))
    assert str(caught.value) == "TLS: ssl_keyfile is encrypted: set ssl_keyfile_password"
    both = tmp_path / "both.pem"  # (the key in ssl_certfile)
    both.write_bytes(
        Path(cert_files["certfile"]).read_bytes() + Path(encrypted["ssl_keyfile"]).read_bytes()
    )
    with pytest.raises(ConfigError) as caught:
        ssl_context(Config(ssl_certfile=str(both)))
    assert str(caught.value) == "TLS: ssl_certfile is encrypted: set ssl_keyfile_password"
    assert ssl_context(Config(ssl_certfile=str(both), ssl_keyfile_password="secret")) is not None
    # A wrong password ("TLS: ssl_certfile or ssl_keyfile: [SSL] PEM lib (_ssl.c:3926)").
    with pytest.raises(ConfigError) as caught:
        ssl_context(Config(**encrypted, ssl_keyfile_password="wrong"))
    assert str(caught.value) == "TLS: ssl_keyfile_password does not decrypt ssl_keyfile"
    with pytest.raises(ConfigError) as caught:
        ssl_context(Config(ssl_certfile=str(both), ssl_keyfile_password="wrong"))
    assert str(caught.value) == "TLS: ssl_keyfile_password does not decrypt ssl_certfile"
    # The right password of another certificate's key: not the password's fault.
    other = tmp_path / "other.pem"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    mismatched = {**pair, "ssl_keyfile": str(other), "ssl_keyfile_password": "secret"}
    not_its_key = "TLS: ssl_keyfile is not the private key of ssl_certfile's certificate"
    with pytest.raises(ConfigError) as caught:
        ssl_context(Config(**mismatched))
    assert str(caught.value) == not_its_key
    # A key of another type (RSA, the certificate's EC): OpenSSL keeps it apart
    # and says NO_CERTIFICATE_ASSIGNED, which was taken for a wrong password
    # ("does not decrypt"), and unencrypted said as "no certificate assigned".
    rsa_key = rsa_keys.generate_private_key(public_exponent=65537, key_size=2048)
    for encryption, password in (
        (serialization.BestAvailableEncryption(b"secret"), "secret"),
        (serialization.NoEncryption(), None),
    ):
        other.write_bytes(
            rsa_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
            )
        )
        with pytest.raises(ConfigError) as caught:
            ssl_context(
                Config(**{**pair, "ssl_keyfile": str(other)}, ssl_keyfile_password=password)
            )
        assert str(caught.value) == not_its_key
    both.write_bytes(Path(cert_files["certfile"]).read_bytes() + other.read_bytes())
    with pytest.raises(ConfigError) as caught:
        ssl_context(Config(ssl_certfile=str(both)))
    assert str(caught.value) == "TLS: the private key in ssl_certfile is not its certificate's"
    assert ssl_context(Config()) is None
    # A password longer than OpenSSL takes (1,024 bytes): a ValueError's traceback before.
    with pytest.raises(ConfigError) as caught:
        ssl_context(Config(**encrypted, ssl_keyfile_password="x" * 1025))
    assert str(caught.value) == "TLS: ssl_keyfile_password is longer than 1024 bytes"


def test_a_chain_written_before_its_certificate_is_said_so(ca: trustme.CA, tmp_path: Path) -> None:
    # The intermediate first, then the server's certificate (cat chain.pem
    # cert.pem): OpenSSL serves the first certificate of the file, not the
    # key's, and it was refused as "ssl_keyfile is not the private key of
    # ssl_certfile's certificate", which sent one looking for another key.
    leaf = ca.create_child_ca().issue_cert("127.0.0.1")
    own, intermediate = leaf.cert_chain_pems
    certfile, keyfile, both = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "both.pem"
    certfile.write_bytes(intermediate.bytes() + own.bytes())
    keyfile.write_bytes(leaf.private_key_pem.bytes())
    both.write_bytes(certfile.read_bytes() + keyfile.read_bytes())
    with pytest.raises(ConfigError) as caught:
        ssl_context(Config(ssl_certfile=str(certfile), ssl_keyfile=str(keyfile)))
    assert str(caught.value) == (
        "TLS: ssl_keyfile is the private key of certificate 2 in ssl_certfile, not of its"
        " first, which is the one served: the server's certificate goes first, then its chain"
    )
    with pytest.raises(ConfigError) as caught:
        ssl_context(Config(ssl_certfile=str(both)))
    assert str(caught.value) == (
        "TLS: the private key in ssl_certfile is that of its certificate 2, not of its"
        " first, which is the one served: the server's certificate goes first, then its chain"
    )
    # Written the right way round, it is served.
    certfile.write_bytes(own.bytes() + intermediate.bytes())
    assert ssl_context(Config(ssl_certfile=str(certfile), ssl_keyfile=str(keyfile)))


def test_a_key_not_its_certificate_s_is_said_so_without_a_temporary_directory(
    ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Which certificate of the file the key is of is found by trying each
    # from a temporary file: where none can be written (a read-only root
    # filesystem, say), the key is still said not to be the certificate's,
    # not "No usable temporary directory found" in place of it.
    leaf = ca.create_child_ca().issue_cert("127.0.0.1")
    own, intermediate = leaf.cert_chain_pems
    certfile, keyfile = tmp_path / "chain.pem", tmp_path / "key.pem"
    certfile.write_bytes(intermediate.bytes() + own.bytes())
    keyfile.write_bytes(leaf.private_key_pem.bytes())
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
    with pytest.raises(ConfigError) as caught:
        ssl_context(Config(ssl_certfile=str(certfile), ssl_keyfile=str(keyfile)))
    assert str(caught.value) == (
        "TLS: ssl_keyfile is not the private key of ssl_certfile's certificate"
    )


def test_a_key_s_password_is_taken_as_written_from_a_flag_or_the_environment(
    cert_files: dict[str, str], tmp_path: Path
) -> None:
    # A password is what it is, blanks around it included: the flag and the
    # variable stripped them (an env file's quotes too), and the key then
    # failed to decrypt ("does not decrypt ssl_keyfile"), where serve()'s
    # keyword argument took it as written.
    from wsserver.__main__ import build_parser, config_from_args

    password = " secret phrase "
    key = serialization.load_pem_private_key(Path(cert_files["keyfile"]).read_bytes(), None)
    keyfile = tmp_path / "key.pem"
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password.encode()),
        )
    )
    env_file = tmp_path / "app.env"
    env_file.write_text(f"WEBSOCKET_SSL_KEYFILE_PASSWORD='{password}'\n")
    files = {"ssl_certfile": cert_files["certfile"], "ssl_keyfile": str(keyfile)}
    environ = load_env_file(str(env_file), {})
    args = build_parser().parse_args(["x:y", "--ssl-keyfile-password", password])
    for config in (Config.from_sources(environ, **files), config_from_args(args).replace(**files)):
        assert config.ssl_keyfile_password == password
        assert ssl_context(config) is not None
    # Blanks alone are still no password, as an empty value is.
    blank = Config.from_sources({"WEBSOCKET_SSL_KEYFILE_PASSWORD": "  "})
    assert blank.ssl_keyfile_password is None


def test_a_key_s_password_from_the_environment_loses_a_line_break_at_its_end(
    cert_files: dict[str, str], tmp_path: Path
) -> None:
    # A Kubernetes Secret made with `echo s3cret | base64` (or a file with its
    # last line ended) holds the password and a newline. Stripped as other
    # values, it loaded; taken as written, the start failed ("does not
    # decrypt ssl_keyfile", exit 2). A line break ends a line, not a password
    # (OpenSSL's own -passin file: drops it); blanks around it stay its own.
    key = serialization.load_pem_private_key(Path(cert_files["keyfile"]).read_bytes(), None)
    files = {"ssl_certfile": cert_files["certfile"]}
    for password in ("s3cret", " s3cret "):
        keyfile = tmp_path / "key.pem"
        keyfile.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(password.encode()),
            )
        )
        for ended in ("\n", "\r\n", "\n\n"):
            environ = {"WEBSOCKET_SSL_KEYFILE_PASSWORD": password + ended}
            config = Config.from_sources(environ, **files, ssl_keyfile=str(keyfile))
            assert config.ssl_keyfile_password == password
            assert ssl_context(config) is not None
    # A line break alone is no password, as blanks alone are not.
    ended = Config.from_sources({"WEBSOCKET_SSL_KEYFILE_PASSWORD": "\n"})
    assert ended.ssl_keyfile_password is None


def _alpn_chosen(port: int, offered: list[str]) -> str | None:
    """The protocol the server at ``port`` chooses by ALPN for a client offering ``offered``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(offered)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock,
        context.wrap_socket(sock) as tls,
    ):
        return tls.selected_alpn_protocol()


async def test_an_ssl_context_that_chooses_http2_is_refused(
    run_server: StartServer, cert_files: dict[str, str]
) -> None:
    # A context made for a server that speaks HTTP/2 (hypercorn's, aiohttp's
    # examples: set_alpn_protocols(["h2", "http/1.1"])) was served as it was:
    # every client that offers h2 (browsers, curl, httpx with http2) chose it,
    # sent HTTP/2's preface and got HTTP/1.1 bytes back (curl: "Empty reply from
    # server"), while the server said nothing.
    def context(protocols: list[str] | None) -> ssl.SSLContext:
        made = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        made.load_cert_chain(cert_files["certfile"], cert_files["keyfile"])
        if protocols is not None:
            made.set_alpn_protocols(protocols)
        return made

    for protocols in (["h2", "http/1.1"], ["h2"]):
        with pytest.raises(ConfigError) as caught:
            serve(who_routes(), "127.0.0.1", 0, ssl=context(protocols))
        assert str(caught.value) == (
            "ssl: the context chooses 'h2' by ALPN for a client that offers h2 and"
            " http/1.1, and this server speaks HTTP/1.1 only: such a client (a browser,"
            " curl) fails (set_alpn_protocols(['http/1.1']) on it, or none)"
        )
    # HTTP/1.1 first, or no ALPN at all: served, and an h2 client gets HTTP/1.1.
    for protocols in (["http/1.1", "h2"], None):
        server = await run_server(who_routes(), ssl=context(protocols))
        chosen = await asyncio.to_thread(_alpn_chosen, server.port, ["h2", "http/1.1"])
        assert chosen == ("http/1.1" if protocols else None)


async def test_an_ssl_context_no_client_can_use_is_refused(
    run_server: StartServer, ca: trustme.CA, cert_files: dict[str, str]
) -> None:
    # A server's context whose load_cert_chain() was forgotten: the server
    # started, and every client's handshake failed (a reset, an alert), the
    # server saying nothing.
    with pytest.raises(ConfigError) as caught:
        serve(who_routes(), "127.0.0.1", 0, ssl=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    assert str(caught.value) == (
        "ssl: the context has no certificate (load_cert_chain()), or no cipher suite"
        " for its key: every client's handshake fails"
    )
    # A client's context (ssl.create_default_context()'s purpose by default): an
    # ssl.SSLError out of the start, "Cannot create a server socket with a
    # PROTOCOL_TLS_CLIENT context".
    client_side = ssl.create_default_context()
    client_side.load_cert_chain(cert_files["certfile"], cert_files["keyfile"])
    with pytest.raises(ConfigError) as caught:
        serve(who_routes(), "127.0.0.1", 0, ssl=client_side)
    assert str(caught.value) == (
        "ssl: the context is a client's (PROTOCOL_TLS_CLIENT); a server's is made with"
        " ssl.create_default_context(ssl.Purpose.CLIENT_AUTH) or"
        " ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)"
    )
    # One whose SNI callback gives each name its certificate may have none of its own.
    named = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    named.load_cert_chain(cert_files["certfile"], cert_files["keyfile"])
    default = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    default.sni_callback = lambda sock, name, context: setattr(sock, "context", named)
    server = await run_server(who_routes(), ssl=default)
    async with httpx.AsyncClient(verify=client_context(ca)) as client:
        response = await client.get(f"https://localhost:{server.port}/who")
    assert response.status_code == 200


async def test_tls_settings_beside_an_ssl_context_are_not_ignored_silently(
    run_server: StartServer,
    ca: trustme.CA,
    cert_files: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # serve(ssl=context, ssl_cert_reqs=2, ssl_ca_certs=...) started, the
    # settings ignored without a word: a client without a certificate was
    # served (an upgrade, 101) where one was required.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_files["certfile"], cert_files["keyfile"])
    with pytest.raises(ConfigError) as caught:
        serve(
            who_routes(),
            "127.0.0.1",
            0,
            ssl=context,
            ssl_cert_reqs=2,
            ssl_ca_certs=cert_files["ca"],
        )
    assert str(caught.value) == (
        "ssl= and ssl_ca_certs=, ssl_cert_reqs=: the context is the server's TLS, and"
        " those settings would be ignored (set them on the context, or give no context)"
    )
    # From the environment (perhaps meant for another server of the process): said.
    monkeypatch.setenv("WEBSOCKET_SSL_CERT_REQS", "2")
    with caplog.at_level(logging.WARNING, logger="wsserver.server"):
        server = await run_server(who_routes(), ssl=context)
    assert "ssl_cert_reqs is set but ignored: the ssl= context is the server's TLS" in caplog.text
    async with httpx.AsyncClient(verify=client_context(ca)) as client:
        response = await client.get(f"https://localhost:{server.port}/who")
    assert response.status_code == 200


def _tls_version_served(port: int, version: ssl.TLSVersion, ca: trustme.CA) -> str | None:
    """The protocol a client that speaks ``version`` at most gets from the server at ``port``."""
    context = client_context(ca)
    context.maximum_version = version
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        return tls.version()


async def test_ciphers_that_leave_tls_1_2_no_suite_for_the_key_are_said(
    run_server: StartServer,
    ca: trustme.CA,
    cert_files: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An RSA-only list (old guides': ECDHE-RSA-...) with an ECDSA certificate
    # (certbot's default since 2.0, trustme's): clients of TLS 1.3, whose suites
    # ssl_ciphers does not set, were served, and every TLS 1.2 client refused
    # ("no shared cipher"), with not a word from the server.
    pair = {"ssl_certfile": cert_files["certfile"], "ssl_keyfile": cert_files["keyfile"]}
    rsa_only = "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"
    with caplog.at_level(logging.WARNING, logger="wsserver.server"):
        server = await run_server(who_routes(), **pair, ssl_ciphers=rsa_only)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "TLS: ssl_ciphers leaves TLS 1.2 no cipher suite the certificate's key can use:"
        " TLS 1.2 clients are refused (TLS 1.3's suites are not set by ssl_ciphers)"
    ]
    port = server.port
    assert await asyncio.to_thread(_tls_version_served, port, ssl.TLSVersion.TLSv1_3, ca) == (
        "TLSv1.3"
    )
    with pytest.raises((ssl.SSLError, ConnectionError)):  # (an alert, or the end: loops differ)
        await asyncio.to_thread(_tls_version_served, port, ssl.TLSVersion.TLSv1_2, ca)
    # A list with suites for the key: nothing said, TLS 1.2 served. (Also one
    # that Python's clients leave out by default, SHA-1's, which others offer.)
    servers = []
    for ciphers in ("ECDHE+AESGCM", "ECDHE-ECDSA-AES128-SHA"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="wsserver.server"):
            servers.append(await run_server(who_routes(), **pair, ssl_ciphers=ciphers))
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], ciphers
    port = servers[0].port
    assert await asyncio.to_thread(_tls_version_served, port, ssl.TLSVersion.TLSv1_2, ca) == (
        "TLSv1.2"
    )


def test_tls_1_3_suites_in_ssl_ciphers_are_said(
    cert_files: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    # ssl_ciphers is OpenSSL's TLS 1.2 list (Python's ssl sets no TLS 1.3
    # suites): a list of TLS 1.3 names alone was refused as "No cipher can be
    # selected.", names that exist; beside TLS 1.2 names, they were dropped
    # without a word, and TLS 1.3 clients got every suite of OpenSSL's.
    pair = {"ssl_certfile": cert_files["certfile"], "ssl_keyfile": cert_files["keyfile"]}
    with pytest.raises(ConfigError) as refused:
        ssl_context(Config(**pair, ssl_ciphers="TLS_AES_256_GCM_SHA384"))
    assert str(refused.value) == (
        "TLS: ssl_ciphers: No cipher can be selected. (TLS_AES_256_GCM_SHA384 is a TLS 1.3"
        " suite: ssl_ciphers is OpenSSL's list for TLS 1.2, and sets none of TLS 1.3's)"
    )
    mixed = "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:ECDHE+AESGCM"
    with caplog.at_level(logging.WARNING, logger="wsserver.server"):
        context = ssl_context(Config(**pair, ssl_ciphers=mixed))
    assert context is not None
    assert "TLS_AES_128_GCM_SHA256" in {suite["name"] for suite in context.get_ciphers()}
    assert [r.getMessage() for r in caplog.records] == [
        "TLS: ssl_ciphers names TLS 1.3 suites (TLS_AES_256_GCM_SHA384,"
        " TLS_CHACHA20_POLY1305_SHA256), which it does not set (it is OpenSSL's list for"
        " TLS 1.2): TLS 1.3 clients may use any of OpenSSL's own"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="wsserver.server"):
        assert ssl_context(Config(**pair, ssl_ciphers="ECDHE+AESGCM:!aNULL"))
    assert not caplog.records


def test_tls_settings_without_a_certificate_are_said(
    cert_files: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    # Each of these asks for something of TLS; without ssl_certfile the server
    # served plain ws:// and said nothing. They may come from the environment,
    # meant for another server of the process (a TestClient's): a warning.
    for given in (
        {"ssl_ca_certs": cert_files["ca"]},
        {"ssl_ciphers": "ECDHE+AESGCM"},
        {"ssl_keyfile_password": "secret"},
    ):
        (setting,) = given
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="wsserver.server"):
            assert ssl_context(Config(**given)) is None  # type: ignore[arg-type]
        said = [r.getMessage() for r in caplog.records]
        assert said == [f"{setting} is set but ssl_certfile is not: TLS is off (ws://, http://)"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="wsserver.server"):
        assert ssl_context(Config()) is None
    assert not caplog.records
    # Client certificates asked for, without TLS: the server served plain ws://
    # to anybody (a warning only). Refused: it would fail open.
    for reqs in (1, 2):
        with pytest.raises(ConfigError) as refused:
            ssl_context(Config(ssl_cert_reqs=reqs, ssl_ca_certs=cert_files["ca"]))
        assert str(refused.value) == (
            f"ssl_cert_reqs {reqs} (client certificates) needs ssl_certfile"
            " (--ssl-certfile or WEBSOCKET_SSL_CERTFILE): without it TLS is off"
        )
    # Optional client certificates with nothing to check them against: every
    # client that presents one is refused.
    pair = {"ssl_certfile": cert_files["certfile"], "ssl_keyfile": cert_files["keyfile"]}
    with pytest.raises(ConfigError) as caught:
        ssl_context(Config(**pair, ssl_cert_reqs=1))
    said = (
        "ssl_cert_reqs 1 (client certificates optional) needs ssl_ca_certs"
        " (--ssl-ca-certs or WEBSOCKET_SSL_CA_CERTS)"
    )
    assert str(caught.value) == said
    assert ssl_context(Config(**pair, ssl_cert_reqs=1, ssl_ca_certs=cert_files["ca"])) is not None


async def test_close_ends_connections_still_in_their_tls_handshake(
    cert_files: dict[str, str],
) -> None:
    # close() returned and left them open (no ClientHello yet) until
    # open_timeout ended their handshake, or for ever without one.
    uvloop = type(asyncio.get_running_loop()).__module__.startswith("uvloop")
    server = serve(
        who_routes(),
        "127.0.0.1",
        0,
        ssl_certfile=cert_files["certfile"],
        ssl_keyfile=cert_files["keyfile"],
        open_timeout=4,
    )
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)  # TCP only
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await asyncio.wait_for(server.close(), 5)
    try:
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), 6) == b""
        # uvloop takes the handshake whole, with no task to cancel: its limit
        # (open_timeout) ends it.
        assert time.monotonic() - started < (5 if uvloop else 1.5)
    finally:
        writer.close()


async def test_cli_serves_wss(ca: trustme.CA, cert_files: dict[str, str]) -> None:
    async with (
        running_cli(
            "examples.echo:routes",
            "--ssl-certfile",
            cert_files["certfile"],
            "--ssl-keyfile",
            cert_files["keyfile"],
            listening=r"listening on wss://127\.0\.0\.1:(\d+)",
        ) as cli,
        websockets.connect(f"wss://127.0.0.1:{cli.port}/ws", ssl=client_context(ca)) as ws,
    ):
        await ws.send("over TLS")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "over TLS"


async def test_cli_serves_wss_after_a_proxy_protocol_header_with_workers(
    ca: trustme.CA, cert_files: dict[str, str]
) -> None:
    # A balancer that passes TLS through (an NLB's TCP listener): the header, then TLS.
    async with running_cli(
        "examples.welcome_echo:routes",
        *("--ssl-certfile", cert_files["certfile"], "--ssl-keyfile", cert_files["keyfile"]),
        *("--proxy-protocol", "--workers", "2", "--access-log"),
        listening=r"listening on wss://127\.0\.0\.1:(\d+)",
    ) as cli:
        await wait_for(lambda: "workers accepting" in cli.stderr, what="the workers")
        for _ in range(4):  # (whichever worker takes it)
            sock = socket.create_connection(("127.0.0.1", cli.port))
            sock.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n")
            async with websockets.connect(
                f"wss://127.0.0.1:{cli.port}/ws", sock=sock, ssl=client_context(ca)
            ) as ws:
                assert "Welcome" in await asyncio.wait_for(ws.recv(), TIMEOUT)
                await ws.send("over TLS")
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "Echo: over TLS"
        await wait_for(lambda: cli.stderr.count("203.0.113.7:51234") >= 4, what="the access lines")


async def test_an_encrypted_key_without_its_password_or_a_wrong_one_is_one_line(
    cert_files: dict[str, str],
) -> None:
    # OpenSSL asked for the password on the terminal, and without one failed with
    # "Invalid argument".
    pair = ["--ssl-certfile", cert_files["certfile"], "--ssl-keyfile"]
    code, err = await run_cli_to_end(
        "examples.echo:routes", *pair, cert_files["encrypted_keyfile"], "--port", "0"
    )
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert last.endswith("ssl_keyfile is encrypted: set ssl_keyfile_password"), err
    assert "pass phrase" not in err and "Traceback" not in err, err
    code, err = await run_cli_to_end(
        "examples.echo:routes",
        *pair,
        cert_files["encrypted_keyfile"],
        "--ssl-keyfile-password",
        "wrong",
        "--port",
        "0",
    )
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert last.endswith("TLS: ssl_keyfile_password does not decrypt ssl_keyfile"), err
    # With it, it serves.
    async with running_cli(
        "examples.echo:routes",
        *pair,
        cert_files["encrypted_keyfile"],
        "--ssl-keyfile-password",
        "secret",
        listening=r"listening on wss://127\.0\.0\.1:(\d+)",
    ):
        pass


def test_an_encrypted_key_without_its_password_does_not_wait_for_a_terminal(
    cert_files: dict[str, str],
) -> None:
    # On a terminal (an operator's, a container's with -t), a single process waited
    # for the password forever, saying "Enter PEM pass phrase:".
    proc, terminal = on_a_pty(
        [
            *("-m", "wsserver", "examples.echo:routes", "--port", "0"),
            *("--ssl-certfile", cert_files["certfile"]),
            *("--ssl-keyfile", cert_files["encrypted_keyfile"]),
        ]
    )
    said = b""
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([terminal], [], [], 0.1)[0]:
                try:
                    said += os.read(terminal, 4096)
                except OSError:  # (EIO: the child's end is closed)
                    break
        try:
            code: int | None = proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            code = None  # still waiting
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(terminal)
    text = said.decode(errors="replace")
    assert code == 2, text
    assert "ssl_keyfile is encrypted: set ssl_keyfile_password" in text, text


# ======================================================= Unix and inherited sockets


async def test_unix_socket(run_server: StartServer, socket_path: str) -> None:
    Path(socket_path).touch()
    os.unlink(socket_path)
    # A stale socket file (its server gone) is replaced.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(socket_path)
    stale.close()
    server = serve(who_routes(), uds=socket_path, ping_interval=None)
    async with server:
        mode = stat.S_IMODE(os.stat(socket_path).st_mode)
        assert mode == 0o660, oct(mode)
        async with websockets.unix_connect(socket_path, "ws://localhost/ws") as ws:
            said = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert said == {"client": None, "scheme": "http"}
        transport = httpx.AsyncHTTPTransport(uds=socket_path)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get("http://localhost/who")
        assert response.status_code == 200
        # A live server's socket is not taken over.
        with pytest.raises(OSError, match="listening"):
            await serve(who_routes(), uds=socket_path).start()


async def test_a_unix_socket_in_the_abstract_namespace() -> None:
    # Linux's abstract names ("\0name": no file), which asyncio's
    # create_unix_server() takes: the start failed with "ValueError: embedded
    # null byte" (it looked for a file) and left the socket it had bound open.
    name = f"\0wsserver-test-{os.getpid()}-{id(object())}"
    for _ in range(2):  # (and again, once the first has closed)
        async with serve(who_routes(), uds=name, ping_interval=None):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(name)  # (not uvloop's create_unix_connection(): it takes no such name)
            reader, writer = await asyncio.open_connection(sock=client)
            writer.write(b"GET /who HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), TIMEOUT)
            writer.close()
            await writer.wait_closed()
            assert answer.startswith(b"HTTP/1.1 200 ")
            assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {
                "client": None,
                "scheme": "http",
            }
            with pytest.raises(OSError) as taken:  # (a live server's name is not taken over)
                await serve(who_routes(), uds=name).start()
            assert taken.value.errno == errno.EADDRINUSE


async def test_websocket_uds_yields_to_the_listening_flags(socket_path: str) -> None:
    # WEBSOCKET_UDS won over --host/--port given on the command line, and
    # nothing turned it off (--uds none made a socket file named "none").
    env = {"WEBSOCKET_UDS": socket_path}
    unix = r"listening on unix:(/\S+)()"
    async with (
        running_cli("examples.echo:routes", env=env, port_flag=False, listening=unix),
        websockets.unix_connect(socket_path, "ws://localhost/ws") as ws,
    ):
        await ws.send("env")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "env"
    for flags in (["--host", "127.0.0.1"], ["--uds", "none"]):  # (and running_cli's --port 0)
        async with running_cli("examples.echo:routes", *flags, env=env) as cli:
            assert cli.port and not Path("none").exists()
            await assert_echo(cli.url + "/ws")


async def test_a_unix_socket_with_tls_is_said_so(
    socket_path: str, cert_files: dict[str, str], ca: trustme.CA
) -> None:
    # TCP's line says wss:// and https://; a Unix socket's said "unix:/path"
    # alone, with TLS on or off: an operator (or the proxy's configuration)
    # had nothing to tell plain text from TLS by.
    tls = ("--ssl-certfile", cert_files["certfile"], "--ssl-keyfile", cert_files["keyfile"])
    async with running_cli(
        "examples.echo:routes",
        *("--uds", socket_path, *tls),
        port_flag=False,
        listening=r"listening on unix:(/\S+)()",
    ) as cli:
        context = ssl.create_default_context(cafile=cert_files["ca"])
        url = "wss://localhost/ws"
        async with websockets.unix_connect(socket_path, url, ssl=context) as ws:
            await ws.send("tls")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "tls"
    assert f"listening on unix:{socket_path} (TLS)\n" in cli.stderr, cli.stderr


async def test_unix_socket_refuses_a_file_that_is_not_a_socket(socket_path: str) -> None:
    Path(socket_path).write_text("precious")
    with pytest.raises(OSError, match="not a socket"):
        await serve(who_routes(), uds=socket_path).start()
    assert Path(socket_path).read_text() == "precious"


async def test_cli_uds_and_fd(socket_path: str) -> None:
    async with (
        running_cli(
            "examples.echo:routes",
            *("--uds", socket_path),
            listening=r"listening on unix:(/\S+)()",
            port_flag=False,
        ),
        websockets.unix_connect(socket_path, "ws://localhost/ws") as ws,
    ):
        await ws.send("over a Unix socket")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "over a Unix socket"
    # --fd: a socket bound by someone else (systemd, a test), inherited.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.set_inheritable(True)
    port = sock.getsockname()[1]
    try:
        async with running_cli(
            "examples.echo:routes",
            *("--fd", str(sock.fileno())),
            pass_fds=(sock.fileno(),),
            port_flag=False,
        ) as cli:
            assert cli.port == port
            await assert_echo(f"ws://127.0.0.1:{port}/ws")
    finally:
        sock.close()
    # --fd: an abstract Unix socket (systemd's ListenStream=@name), which has no
    # file: its name was bytes, and logging it raised.
    name = f"wsserver-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind("\0" + name)
    sock.listen(16)
    sock.set_inheritable(True)
    # (Connected here: uvloop's unix_connect takes no abstract name.)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        async with running_cli(
            "examples.echo:routes",
            "--fd",
            str(sock.fileno()),
            pass_fds=(sock.fileno(),),
            listening=rf"listening on unix:(@{name})\s",
            port_flag=False,
        ):
            client.connect("\0" + name)
            async with websockets.connect("ws://localhost/ws", sock=client) as ws:
                await ws.send("over an abstract socket")
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "over an abstract socket"
    finally:
        client.close()
        sock.close()


#: ``python -c`` this, then a socket's descriptor, ``own`` or ``parent``, and
#: ``python -m wsserver``'s arguments: the process started as systemd's socket
#: activation starts a service, the socket as fd 3, LISTEN_FDS=1 and LISTEN_PID
#: its own pid (``parent``: another's, as a child of the service sees it).
SOCKET_ACTIVATED = """
import os, sys
os.dup2(int(sys.argv[1]), 3)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid() if sys.argv[2] == "own" else os.getppid())
os.execv(sys.executable, [sys.executable, "-m", "wsserver", *sys.argv[3:]])
"""


@contextlib.asynccontextmanager
async def socket_activated(
    whose: str, *args: str, port_flag: bool = True
) -> AsyncIterator[tuple[Cli, int]]:
    """``python -m wsserver ARGS`` started by socket activation (see
    :data:`SOCKET_ACTIVATED`), once listening, and the port of its socket."""
    activated = socket.create_server(("127.0.0.1", 0))
    activated.set_inheritable(True)
    command = (sys.executable, "-c", SOCKET_ACTIVATED, str(activated.fileno()), whose)
    try:
        async with running_cli(
            *args, command=command, pass_fds=(activated.fileno(),), port_flag=port_flag
        ) as cli:
            yield cli, activated.getsockname()[1]
    finally:
        activated.close()


@pytest.mark.parametrize("workers", [(), ("--workers", "1")])
async def test_a_socket_systemd_passed_but_not_listened_on_is_said(
    workers: tuple[str, ...],
) -> None:
    # A .socket unit without --fd 3 on the command line: the server listened on
    # 127.0.0.1:8000 (or failed there, "address already in use", at the unit's
    # port) without a word, while the unit's clients waited unanswered.
    async with socket_activated("own", "examples.echo:routes", *workers) as (cli, _):
        pass
    said = [line for line in cli.lines if "LISTEN_FDS" in line]
    assert len(said) == 1 and "WARNING" in said[0] and "--fd 3" in said[0], cli.stderr


async def test_a_socket_systemd_passed_and_listened_on_is_not_warned_of() -> None:
    async with socket_activated("own", "examples.echo:routes", "--fd", "3", port_flag=False) as (
        cli,
        port,
    ):
        assert cli.port == port
        await assert_echo(f"ws://127.0.0.1:{port}/ws")
    # Another process's (LISTEN_PID is not this one's): not this process's to use.
    async with socket_activated("parent", "examples.echo:routes") as (other, _):
        pass
    assert "LISTEN_FDS" not in cli.stderr + other.stderr


#: ``python -c`` this, then the descriptors of sockets and ``python -m
#: wsserver``'s arguments after ``--``: socket activation of a ``.socket`` unit
#: with one ``ListenStream=`` each (fd 3, 4, ...; LISTEN_FDS their number).
SOCKETS_ACTIVATED = """
import fcntl, os, sys
split = sys.argv.index("--")
fds = [int(fd) for fd in sys.argv[1:split]]
moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]  # (out of the way of 3, 4...)
for number, fd in enumerate(moved, 3):
    os.dup2(fd, number)
os.environ["LISTEN_FDS"] = str(len(fds))
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, "-m", "wsserver", *sys.argv[split + 1 :]])
"""


@pytest.mark.parametrize("workers", [(), ("--workers", "1")])
async def test_sockets_systemd_passed_beside_the_one_listened_on_are_said(
    workers: tuple[str, ...],
) -> None:
    # A .socket unit with two ListenStream= (IPv4 and IPv6, or two ports) and
    # --fd 3: the second socket's clients waited unanswered (their connections
    # taken by the kernel, never accepted) and nothing said so, where a socket
    # passed without --fd at all is said (above).
    first, second = (socket.create_server(("127.0.0.1", 0)) for _ in range(2))
    ports = (first.getsockname()[1], second.getsockname()[1])
    fds = (first.fileno(), second.fileno())
    for sock in (first, second):
        sock.set_inheritable(True)
    command = (sys.executable, "-c", SOCKETS_ACTIVATED, *map(str, fds), "--")
    try:
        async with running_cli(
            "examples.echo:routes",
            "--fd",
            "3",
            *workers,
            command=command,
            pass_fds=fds,
            port_flag=False,
        ) as cli:
            assert cli.port == ports[0]
            await assert_echo(f"ws://127.0.0.1:{cli.port}/ws")
        # --fd 4: the first is the one left.
        async with running_cli(
            "examples.echo:routes", "--fd", "4", command=command, pass_fds=fds, port_flag=False
        ) as other:
            assert other.port == ports[1]
    finally:
        first.close()
        second.close()
    for run, (fd, port) in ((cli, (4, ports[1])), (other, (3, ports[0]))):
        said = [line for line in run.lines if "LISTEN_FDS" in line]
        assert len(said) == 1 and "WARNING" in said[0], run.stderr
        assert f"fd {fd} (127.0.0.1:{port})" in said[0], said[0]


# ================================================================ proxy headers


def test_trusted_proxies() -> None:
    trusted = TrustedProxies("127.0.0.1, 10.0.0.0/8, ::1")
    assert "127.0.0.1" in trusted and "10.1.2.3" in trusted and "::1" in trusted
    assert "192.0.2.1" not in trusted and "nonsense" not in trusted and None not in trusted
    assert "192.0.2.1" in TrustedProxies("*")
    with pytest.raises(ValueError):
        TrustedProxies("10.0.0.0/33")
    # A dual-stack socket (systemd's ListenStream=8000, --fd) gives IPv4 peers
    # as IPv4-mapped IPv6 addresses: they never matched, and the proxy's
    # headers were dropped without a word.
    assert "::ffff:127.0.0.1" in trusted and "::ffff:10.9.8.7" in trusted
    assert "::ffff:192.0.2.1" not in trusted
    assert "127.0.0.1" in TrustedProxies("::ffff:127.0.0.1")
    said = forwarded(Headers([("x-forwarded-for", "203.0.113.7, ::ffff:10.0.0.2")]), trusted)
    assert said.client == ("203.0.113.7", 0)


@pytest.mark.parametrize(
    ("headers", "client", "scheme"),
    [
        ([("x-forwarded-for", "203.0.113.7")], ("203.0.113.7", 0), None),
        ([("x-forwarded-proto", "https")], None, "https"),
        # The client can write the leftmost entries: the rightmost untrusted one wins.
        ([("x-forwarded-for", "1.1.1.1, 203.0.113.7, 10.0.0.2")], ("203.0.113.7", 0), None),
        ([("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "10.0.0.2")], ("1.1.1.1", 0), None),
        ([("x-forwarded-for", "10.0.0.3, 10.0.0.2")], ("10.0.0.3", 0), None),  # all trusted
        ([("x-forwarded-for", "[2001:db8::1]:4711")], ("2001:db8::1", 4711), None),
        ([("forwarded", 'for="[2001:db8::1]:4711";proto=https')], ("2001:db8::1", 4711), "https"),
        ([("forwarded", "for=203.0.113.9;proto=http, for=10.0.0.2")], ("203.0.113.9", 0), "http"),
        ([("forwarded", "for=_hidden;proto=https")], None, "https"),
        # X-Forwarded-For, when the proxy sent it, wins over a Forwarded header (which a
        # client may have written itself and a proxy like nginx passes on as it is).
        (
            [("forwarded", "for=203.0.113.9"), ("x-forwarded-for", "198.51.100.1")],
            ("198.51.100.1", 0),
            None,
        ),
        ([("x-forwarded-proto", "gopher")], None, None),
        # An empty list element is none (RFC 9110 5.6.1), as in X-Forwarded-For:
        # a trailing comma, or an empty line a proxy added, left the scheme unsaid.
        ([("x-forwarded-proto", "https,")], None, "https"),
        ([("x-forwarded-proto", "https"), ("x-forwarded-proto", "")], None, "https"),
        (
            [("x-forwarded-for", "203.0.113.7,"), ("x-forwarded-proto", "https , ")],
            ("203.0.113.7", 0),
            "https",
        ),
        # A WebSocket scheme, in either header (X-Forwarded-Proto's was taken, Forwarded's not).
        ([("x-forwarded-proto", "wss")], None, "wss"),
        ([("forwarded", "for=203.0.113.9;proto=WSS")], ("203.0.113.9", 0), "wss"),
        ([("forwarded", "proto=gopher")], None, None),
        # A port that is no port (a non-ASCII digit raised ValueError: no answer at all).
        ([("x-forwarded-for", "203.0.113.7:\xb2")], ("203.0.113.7", 0), None),
        ([("forwarded", 'for="[2001:db8::1]:\xb9"')], ("2001:db8::1", 0), None),
        ([("x-forwarded-for", "203.0.113.7:99999")], ("203.0.113.7", 0), None),
        ([("x-forwarded-for", "203.0.113.7:" + "9" * 5000)], ("203.0.113.7", 0), None),
        # Only an address is believed: the client's own text goes to logs and apps.
        ([("x-forwarded-for", "6.6.6.6 /admin 200\x85INFO")], None, None),
        ([("x-forwarded-for", "unknown")], None, None),
        ([("x-forwarded-for", "client.example")], None, None),
        ([("forwarded", 'for="1.2.3.4\x9b[31m";proto=https')], None, "https"),
        ([("forwarded", "for=unknown")], None, None),
        # Each parameter is optional (RFC 7239 4): a proxy may say the scheme and not
        # the client (YARP's forFormat None, say). Its element is the nearest hop's:
        # its proto holds, and who its proxy heard from is unknown, so an element
        # to its left (the client's own) is not believed.
        ([("forwarded", "proto=https")], None, "https"),
        ([("forwarded", "for=6.6.6.6;proto=http, proto=https;by=10.0.0.2")], None, "https"),
        ([("forwarded", "for=6.6.6.6"), ("forwarded", "by=_proxy")], None, None),
        # An IPv6 zone is anything after %: no address of a client anyway.
        ([("x-forwarded-for", "fe80::1%x 200 9.999s")], None, None),
        ([("forwarded", 'for="[::1%25 GET admin]:80"')], None, None),
        # A , or ; inside a quoted value (RFC 7239 4: a quoted-string) is the
        # value's, not the end of an element or pair: a client's text a
        # proxy quoted (its Host in host="...") named another client and scheme.
        (
            [("forwarded", 'for=198.51.100.4;host="a,for=6.6.6.6;proto=https"')],
            ("198.51.100.4", 0),
            None,
        ),
        ([("forwarded", 'for="_x;proto=https"')], None, None),
        ([("forwarded", 'for="[2001:db8::1]:443";proto=https')], ("2001:db8::1", 443), "https"),
        ([("forwarded", 'host="a\\"b,for=6.6.6.6";for=198.51.100.4')], ("198.51.100.4", 0), None),
        # A quote that does not close hides nothing after it: the element a
        # proxy appended to the client's text is still read.
        ([("forwarded", 'for="x, for=198.51.100.4')], ("198.51.100.4", 0), None),
        # A quoted-string closed, then a quote that does not close (its
        # escaped quote no end): the proxy's element after them still read.
        (
            [("forwarded", 'host="x,y";for=6.6.6.6, "z\\", for=198.51.100.4;proto=https')],
            ("198.51.100.4", 0),
            "https",
        ),
    ],
)
def test_forwarded_headers(
    headers: list[tuple[str, str]], client: tuple[str, int] | None, scheme: str | None
) -> None:
    said = forwarded(Headers(headers), TrustedProxies("127.0.0.1, 10.0.0.0/8"))
    assert (said.client, said.scheme) == (client, scheme)


class CountingProxies(TrustedProxies):
    """Trusted proxies that count how many addresses were checked against them."""

    checked = 0

    def __contains__(self, host: object) -> bool:
        self.checked += 1
        return super().__contains__(host)


def test_a_long_list_of_trusted_hops_costs_a_bounded_number_of_checks() -> None:
    # A client behind the proxy writes X-Forwarded-For: 127.0.0.1, 127.0.0.1,
    # ... (a trusted address 1,300 times, a 16 KB head): each was checked, some
    # 12 ms of the event loop for one request (a server answers ~80 such a
    # second), where a header of as many bytes of junk costs 0.5 ms.
    trusted = CountingProxies("127.0.0.1, 10.0.0.0/8")
    for name, hop in (("x-forwarded-for", "127.0.0.1"), ("forwarded", "for=127.0.0.1")):
        forged = ", ".join([hop] * 1300)
        headers = Headers([(name, hop.replace("127.0.0.1", "6.6.6.6") + ", " + forged)])
        trusted.checked = 0
        said = forwarded(headers, trusted)
        # (Past the bound, as when every hop is trusted: the leftmost, the
        # client's own text either way.)
        assert said.client == ("6.6.6.6", 0), name
        assert trusted.checked <= MAX_HOPS, (name, trusted.checked)
    # Within the bound, the walk is what it was.
    hops = ["6.6.6.6", "203.0.113.7"] + ["10.0.0.2"] * (MAX_HOPS - 1)
    said = forwarded(Headers([("x-forwarded-for", ", ".join(hops))]), trusted)
    assert said.client == ("203.0.113.7", 0)


async def test_a_forwarded_header_of_unclosed_quotes_costs_a_bounded_time(
    run_server: StartServer,
) -> None:
    # Each quote that does not close had the rest of the header scanned for
    # its end, again for the next one: a client behind a trusted proxy that
    # passes Forwarded on (one that adds no X-Forwarded-For; any client with
    # forwarded_allow_ips '*') held the event loop some 2 s with one 16 KB
    # header of '"\\' repeated, every connection of the worker waiting. The
    # eight requests here took ~20 s; they take milliseconds now, the
    # proxy's element after the client's text still read.
    server = await run_server(who_routes(), proxy_headers=True)
    headers = {"Forwarded": '"\\' * 7900 + ", for=203.0.113.9;proto=https"}
    async with httpx.AsyncClient() as client, asyncio.timeout(TIMEOUT):
        for _ in range(8):
            answer = await client.get(f"http://127.0.0.1:{server.port}/who", headers=headers)
            assert answer.json() == {"client": ["203.0.113.9", 0], "scheme": "https"}


def test_forwarded_without_for_from_the_nearest_proxy_trusting_every_peer() -> None:
    # With "*" only the last hop is believed: the client's own element before
    # it was taken instead when the proxy's said no "for".
    headers = Headers([("forwarded", "for=6.6.6.6;proto=http, proto=https")])
    said = forwarded(headers, TrustedProxies("*"))
    assert (said.client, said.scheme) == (None, "https")


async def test_a_websocket_upgrade_over_http10_is_said(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # nginx speaks HTTP/1.0 to its upstream unless told proxy_http_version 1.1:
    # with the Upgrade and Connection headers passed on, every WebSocket then
    # failed with a 426 "send a WebSocket upgrade request" (which the client
    # had sent) and an access line, the cause said nowhere. Upgrade is ignored
    # in HTTP/1.0 (RFC 9110 7.8) as before, and said at WARNING the first time.
    caplog.set_level(logging.DEBUG, logger="wsserver.server")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["type"].encode()})

    request = upgrade_request("/ws").replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    routed = await run_server(who_routes())
    asgi = await run_server(app)
    answers = [await exchange(server.port, request) for server in (routed, routed, asgi)]
    assert answers[0].startswith(b"HTTP/1.1 426 "), answers[0]
    assert answers[0].endswith(b"WebSocket upgrade requires HTTP/1.1.\n"), answers[0]
    assert answers[2].startswith(b"HTTP/1.1 200 ") and answers[2].endswith(b"http")
    said = [(r.levelno, r.getMessage()) for r in caplog.records if "HTTP/1.0" in r.getMessage()]
    assert [level for level, _ in said] == [logging.WARNING, logging.DEBUG, logging.WARNING]
    assert "127.0.0.1:" in said[0][1] and "proxy_http_version 1.1" in said[0][1], said
    # Without Upgrade, or over HTTP/1.1: nothing to say.
    caplog.clear()
    await exchange(routed.port, b"GET /who HTTP/1.0\r\n\r\n")
    await exchange(routed.port, upgrade_request("/nowhere"))
    assert not [r for r in caplog.records if "HTTP/1.0" in r.getMessage()]


async def test_a_websocket_handshake_without_its_upgrade_headers_is_said(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Upgrade and Connection are hop-by-hop: a proxy not told to pass them
    # (nginx without proxy_set_header Upgrade $http_upgrade and Connection
    # "upgrade") drops them and passes the rest of the handshake. Every
    # WebSocket failed with a 426 "send a WebSocket upgrade request", the
    # cause said nowhere; the first such request is said at WARNING.
    caplog.set_level(logging.DEBUG, logger="wsserver.server")
    server = await run_server(who_routes())
    stripped = b"".join(
        line + b"\r\n"
        for line in upgrade_request("/ws").split(b"\r\n")
        if line and not line.startswith((b"Upgrade:", b"Connection:"))
    )
    answers = [
        await exchange(server.port, stripped + b"Connection: close\r\n\r\n") for _ in range(2)
    ]
    assert all(answer.startswith(b"HTTP/1.1 426 ") for answer in answers), answers
    said = [(r.levelno, r.getMessage()) for r in caplog.records if "Upgrade" in r.getMessage()]
    assert [level for level, _ in said] == [logging.WARNING, logging.DEBUG], said
    assert "127.0.0.1:" in said[0][1] and "proxy_set_header Upgrade" in said[0][1], said
    # A browser that opens the WebSocket's URL as a page: nothing to say.
    caplog.clear()
    answer = await exchange(
        server.port, b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 426 ")
    assert not [r for r in caplog.records if "Upgrade" in r.getMessage()]


async def test_proxy_headers_from_trusted_peers_only(run_server: StartServer) -> None:
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    trusting = await run_server(who_routes(), proxy_headers=True)
    untrusting = await run_server(
        who_routes(), proxy_headers=True, forwarded_allow_ips="192.0.2.0/24"
    )
    off = await run_server(who_routes())
    async with httpx.AsyncClient() as client:
        believed = await client.get(f"http://127.0.0.1:{trusting.port}/who", headers=headers)
        ignored = await client.get(f"http://127.0.0.1:{untrusting.port}/who", headers=headers)
        not_asked = await client.get(f"http://127.0.0.1:{off.port}/who", headers=headers)
    assert believed.json() == {"client": ["203.0.113.7", 0], "scheme": "https"}
    for response in (ignored, not_asked):
        said = response.json()
        assert said["client"][0] == "127.0.0.1" and said["scheme"] == "http"
    async with websockets.connect(
        f"ws://127.0.0.1:{trusting.port}/ws", additional_headers=headers
    ) as ws:
        said = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert said == {"client": ["203.0.113.7", 0], "scheme": "https"}


async def test_a_forwarded_address_is_given_as_a_socket_gives_it(run_server: StartServer) -> None:
    # An IPv6 address has many spellings (upper case, zeros written out, an
    # IPv4-mapped one's tail); the proxy's went to the app and the logs as it
    # was written, so one client was several to an app that counts or bans by
    # address, and another than the same client named by a PROXY header or a
    # socket (which give it in the one form ipaddress writes).
    server = await run_server(who_routes(), proxy_headers=True)
    cases = [
        ({"X-Forwarded-For": "2001:DB8:0:0::7"}, ["2001:db8::7", 0]),
        ({"X-Forwarded-For": "[2001:0db8::0007]:4711"}, ["2001:db8::7", 4711]),
        ({"X-Forwarded-For": "::FFFF:203.0.113.7"}, ["::ffff:203.0.113.7", 0]),
        ({"Forwarded": 'for="[2001:DB8::7]:80"'}, ["2001:db8::7", 80]),
        ({"Forwarded": 'for="[::ffff:cb00:7107]"'}, ["::ffff:203.0.113.7", 0]),
    ]
    async with httpx.AsyncClient() as client:
        for headers, address in cases:
            answer = await client.get(f"http://127.0.0.1:{server.port}/who", headers=headers)
            assert answer.json()["client"] == address, headers


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
async def test_proxy_headers_from_either_loopback_are_believed_by_default() -> None:
    # A proxy on this host that reaches the server by "localhost" (nginx's
    # proxy_pass http://localhost:8000 takes each of its addresses in turn)
    # comes from ::1 as often as from 127.0.0.1: those requests had the
    # proxy's address and scheme, where uvicorn and gunicorn trust both.
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    async with (
        serve(
            who_routes(), ["127.0.0.1", "::1"], 0, proxy_headers=True, ping_interval=None
        ) as server,
        httpx.AsyncClient() as client,
    ):
        for host in ("127.0.0.1", "[::1]"):
            answer = await client.get(f"http://{host}:{server.port}/who", headers=headers)
            said = answer.json()
            assert said == {"client": ["203.0.113.7", 0], "scheme": "https"}, host
    assert Config().forwarded_allow_ips == "127.0.0.1,::1"


async def test_proxy_headers_reach_asgi_scopes() -> None:
    seen: list[tuple[Any, str]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        seen.append((tuple(scope["client"]), scope["scheme"]))
        await receive()
        await send({"type": "websocket.close"})

    server = serve(app, "127.0.0.1", 0, proxy_headers=True)
    async with server:
        with pytest.raises(websockets.exceptions.InvalidStatus):
            await websockets.connect(
                f"ws://127.0.0.1:{server.port}/",
                additional_headers={"Forwarded": "for=198.51.100.4;proto=https"},
            )
    assert seen == [(("198.51.100.4", 0), "wss")]


async def test_the_warning_of_a_handshake_not_answered_names_the_forwarded_client(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The access line of the 503 named the client the proxy headers gave, and
    # the warning about the same request named the proxy: the two did not meet.
    routes = Router()

    async def hook(request: Request) -> None:
        await asyncio.sleep(30)

    @routes.websocket("/ws", on_connect=hook)
    async def hold(request: Request, ws: WebSocket) -> None:
        await ws.recv()

    caplog.set_level(logging.INFO, logger="wsserver")
    server = await run_server(routes, proxy_headers=True, open_timeout=0.3)
    with pytest.raises(websockets.exceptions.InvalidStatus) as caught:
        await websockets.connect(
            f"ws://127.0.0.1:{server.port}/ws",
            additional_headers={"X-Forwarded-For": "203.0.113.7"},
        )
    assert caught.value.response.status_code == 503
    await wait_for(lambda: any(r.name == "wsserver.access" for r in caplog.records))
    access = [r.getMessage() for r in caplog.records if r.name == "wsserver.access"]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert access[0].startswith("203.0.113.7:0 GET /ws 503 "), access
    assert len(warned) == 1, warned
    assert warned[0].startswith("203.0.113.7:0: the application did not answer"), warned


async def test_a_websocket_s_protocol_lines_name_the_forwarded_client(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Behind trusted proxy headers, the access line of a WebSocket named the
    # client, and the wsserver.protocol lines of the same connection (a
    # protocol error, no pong, a closing handshake timed out) the proxy's
    # connection: the two did not meet.
    routes = Router()

    @routes.websocket("/ws")
    async def hold(request: Request, ws: WebSocket) -> None:
        await ws.recv()

    caplog.set_level(logging.DEBUG, logger="wsserver")
    server = await run_server(routes, proxy_headers=True)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"X-Forwarded-For: 203.0.113.7\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101 "), head
    writer.write(b"\x81\x02hi")  # (unmasked: a protocol error, 1002)
    rest = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    assert rest[2:4] == (1002).to_bytes(2, "big"), rest
    await wait_for(lambda: any(r.name == "wsserver.access" for r in caplog.records))
    access = [r.getMessage() for r in caplog.records if r.name == "wsserver.access"]
    assert access[0].startswith("203.0.113.7:0 GET /ws 101 "), access
    said = [r.getMessage() for r in caplog.records if "protocol error" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("203.0.113.7:0: protocol error, closing"), said


async def test_a_refused_request_s_protocol_line_names_the_forwarded_client(
    run_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Behind trusted proxy headers, the access line of a refused request (a
    # WebSocket's Origin 403, a body's 413) named the client, and the
    # wsserver.protocol line saying why the proxy's connection: the two did
    # not meet.
    routes = Router()

    @routes.websocket("/ws", origins=["https://app.example"])
    async def hold(request: Request, ws: WebSocket) -> None:
        await ws.recv()

    @routes.post("/post")
    async def post(request: Request) -> Any:
        return text("never")

    caplog.set_level(logging.DEBUG, logger="wsserver")
    server = await run_server(routes, proxy_headers=True, max_body_size=10)
    with pytest.raises(websockets.exceptions.InvalidStatus) as caught:
        await websockets.connect(
            f"ws://127.0.0.1:{server.port}/ws",
            origin=websockets.Origin("https://evil.example"),
            additional_headers={"X-Forwarded-For": "203.0.113.7"},
        )
    assert caught.value.response.status_code == 403
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"http://127.0.0.1:{server.port}/post",
            content=b"x" * 100,
            headers={"X-Forwarded-For": "203.0.113.8"},
        )
    assert answer.status_code == 413
    await wait_for(lambda: len([r for r in caplog.records if r.name == "wsserver.access"]) == 2)
    access = [r.getMessage() for r in caplog.records if r.name == "wsserver.access"]
    assert access[0].startswith("203.0.113.7:0 GET /ws 403 "), access
    assert access[1].startswith("203.0.113.8:0 POST /post 413 "), access
    said = [
        r.getMessage()
        for r in caplog.records
        if r.name == "wsserver.protocol" and ": HTTP 4" in r.getMessage()
    ]
    assert len(said) == 2, said
    assert said[0].startswith("203.0.113.7:0: HTTP 403: Origin not allowed"), said
    assert said[1].startswith("203.0.113.8:0: HTTP 413: "), said


# =================================================== logging and the environment


async def test_no_access_log(run_server: StartServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wsserver.access")
    for access_log, lines in ((True, 1), (False, 0)):
        caplog.clear()
        server = await run_server(who_routes(), access_log=access_log)
        async with httpx.AsyncClient() as client:
            await client.get(f"http://127.0.0.1:{server.port}/who")
        for _ in range(100):  # the line is written when the connection is gone
            if not server.connections:
                break
            await asyncio.sleep(0.01)
        assert len([r for r in caplog.records if r.name == "wsserver.access"]) == lines


def test_env_file_format() -> None:
    text = (
        "# a comment\n\nexport A=1\nB = 'single # not a comment'\nC=\"two\\nlines\"\n"
        "D=plain # a comment\nE=\n"
    )
    assert parse_env_file(text) == {
        "A": "1",
        "B": "single # not a comment",
        "C": "two\nlines",
        "D": "plain",
        "E": "",
    }
    with pytest.raises(ValueError, match="line 2"):
        parse_env_file("A=1\nnot a line\n")
    # A comment after a quoted value (the quotes used to stay in the value).
    text = 'A="secret" # prod\nB=\'x y\' # note\nC="say \\"hi\\""  #c\nD=\'no # comment\'#\n'
    assert parse_env_file(text) == {
        "A": "secret",
        "B": "x y",
        "C": 'say "hi"',
        "D": "no # comment",
    }
    # A quote that does not close, or text after the closing one, is refused:
    # it was kept as an unquoted value, quote and all (a token '"s3cret').
    for line, said in (
        ('E="unclosed', "line 2: E: its value's \" does not close"),
        ("E='unclosed", "line 2: E: its value's ' does not close"),
        ('E="x" y', "line 2: E: text after its value's closing \""),
        ("E='x'y", "line 2: E: text after its value's closing '"),
    ):
        with pytest.raises(ValueError, match=re.escape(said)):
            parse_env_file(f"A=1\n{line}\nB=2\n")


def test_env_file_format_as_python_dotenv_reads_it() -> None:
    # Values that span lines (a PEM key), ${NAME} and ${NAME:-default}, a name
    # alone, CRLF line ends: a database URL was set to a literal "${HOST}".
    key = "-----BEGIN KEY-----\nMIIB\n-----END KEY-----"
    text = (
        f'KEY="{key}"\n'
        f"RAW='{key}' # single: as it is\n"
        "HOST=db.internal\n"
        "URL=postgres://${USER}@${HOST}:${PORT:-5432}/app\n"
        'QUOTED="${HOST} and ${MISSING}"\n'
        "LITERAL='${HOST}'\n"
        "ALONE\n"
        "export WIN=crlf\r\n"
        "LAST=1"
    )
    assert parse_env_file(text, {"USER": "app", "HOST": "from-the-environment"}) == {
        "KEY": key,
        "RAW": key,
        "HOST": "db.internal",
        # (The environment wins over the file, as it does when the file is loaded.)
        "URL": "postgres://app@from-the-environment:5432/app",
        "QUOTED": "from-the-environment and ",
        "LITERAL": "${HOST}",
        "WIN": "crlf",
        "LAST": "1",
    }
    assert parse_env_file("A=x\nB=${A}/y\n")["B"] == "x/y"  # (what the file set above)
    # In single quotes, \' and \\ only, as python-dotenv reads them.
    assert parse_env_file("A='it\\'s'\nB='a\\\\b \\n'\n") == {"A": "it's", "B": "a\\b \\n"}
    with pytest.raises(ValueError, match="line 3"):
        parse_env_file('A="one\ntwo"\nB x\n')


def test_an_env_file_takes_the_names_python_dotenv_takes(tmp_path: Path) -> None:
    # A name with a hyphen (an .env shared with a Node app, whose dotenv takes
    # it too), one beginning with a digit, or one in single quotes: the start
    # was refused ("line 1: expected NAME=value") where uvicorn's --env-file
    # loads the file.
    env_file = tmp_path / "app.env"
    env_file.write_text("APP-NAME=demo\n1ST=x\n'QUOTED'=q\nWEBSOCKET_MAX_SIZE=5\n")
    environ: dict[str, str] = {}
    assert load_env_file(str(env_file), environ) == {
        "APP-NAME": "demo",
        "1ST": "x",
        "QUOTED": "q",
        "WEBSOCKET_MAX_SIZE": "5",
    }
    # What is no line still says where it is.
    with pytest.raises(ValueError, match="line 2: expected NAME=value"):
        parse_env_file("A=1\n=2\n")
    with pytest.raises(ValueError, match="line 1: expected NAME=value"):
        parse_env_file("A\x00B=1\n")  # (what no environment holds)


def test_an_env_file_value_that_is_only_a_comment_is_empty() -> None:
    # "NAME=   # set in production": the comment was the value (a root path
    # refused for it, a metrics token "# set in production"), where " #"
    # starts a comment, as python-dotenv reads it too.
    text = "A=   # set in production\nB= #x\nC=\t# c\nD=#not a comment\nE= v # c\n"
    assert parse_env_file(text) == {"A": "", "B": "", "C": "", "D": "#not a comment", "E": "v"}


def test_an_env_file_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    # As Windows editors save UTF-8 (Notepad's "UTF-8 with BOM"): the start
    # was refused, "line 1: expected NAME=value"; python-dotenv reads it.
    env_file = tmp_path / "app.env"
    env_file.write_bytes("\ufeffWEBSOCKET_MAX_SIZE=5\r\nB=2\r\n".encode())
    environ: dict[str, str] = {}
    assert load_env_file(str(env_file), environ) == {"WEBSOCKET_MAX_SIZE": "5", "B": "2"}
    assert environ == {"WEBSOCKET_MAX_SIZE": "5", "B": "2"}


async def test_env_file_sets_what_the_command_line_defaults_to(tmp_path: Path) -> None:
    # WEBSOCKET_LOG_FORMAT (and _UDS, _LOG_CONFIG) were read before the file
    # was: a single process logged text, its workers JSON.
    env_file = tmp_path / "app.env"
    env_file.write_text("WEBSOCKET_LOG_FORMAT=json\n")
    async with running_cli("examples.echo:routes", "--env-file", str(env_file)) as cli:
        await assert_echo(cli.url + "/ws")
    first = cli.stderr.splitlines()[0]
    assert json.loads(first)["message"].startswith("listening on"), first


# Without "disable_existing_loggers" (dictConfig's default: true), wsserver's
# loggers, which exist by then, were silenced: every line below was lost.
@pytest.mark.parametrize("disable_key", [{"disable_existing_loggers": False}, {}])
async def test_cli_env_file_and_log_config(tmp_path: Path, disable_key: dict[str, bool]) -> None:
    env_file = tmp_path / "app.env"
    env_file.write_text("WEBSOCKET_MAX_SIZE=5\nWEBSOCKET_COMPRESSION=deflate\n")
    log_file = tmp_path / "server.log"
    log_config = tmp_path / "logging.json"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                **disable_key,
                "formatters": {"plain": {"format": "CONFIGURED %(name)s %(message)s"}},
                "handlers": {
                    "file": {
                        "class": "logging.FileHandler",
                        "filename": str(log_file),
                        "formatter": "plain",
                    },
                    "stderr": {"class": "logging.StreamHandler", "formatter": "plain"},
                },
                "root": {"level": "INFO", "handlers": ["file", "stderr"]},
            }
        )
    )
    async with (
        running_cli(
            "examples.echo:routes",
            "--env-file",
            str(env_file),
            "--log-config",
            str(log_config),
            "--no-access-log",
        ) as cli,
        websockets.connect(cli.url + "/ws", max_size=None) as ws,
    ):
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        await ws.send("123456")  # over the env file's max size
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert ws.close_code == 1009
    logged = log_file.read_text()
    assert "CONFIGURED wsserver.server listening on" in logged
    assert "wsserver.access" not in logged  # --no-access-log


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--env-file", "/nonexistent/app.env"], "--env-file"),
        # (--env-file "$ENV_FILE" with the variable unset: none was read, unsaid.)
        (["--env-file", ""], "--env-file : [Errno 2] No such file or directory: ''"),
        (["--log-config", "/nonexistent/log.ini"], "--log-config"),
        (["--workers", "0"], "--workers"),
        # A typo's fork bomb: it started workers until stopped, and then spun.
        (["--workers", "100000000"], "--workers"),
        (["--fd", "-1"], "--fd"),
        (["--fd", str(2**31)], "--fd"),  # (a ValueError traceback from socket())
        (["--ssl-keyfile", "/nonexistent/key.pem"], "needs ssl_certfile"),
    ],
)
async def test_cli_bad_deployment_flags_are_one_line(args: list[str], said: str) -> None:
    code, err = await run_cli_to_end("examples.echo:routes", *args, "--port", "0")
    assert code == 2, err
    assert said in err.strip().splitlines()[-1] and "Traceback" not in err, err


async def run_on_fd(sock: socket.socket, workers: str) -> tuple[int, str]:
    """``python -m wsserver examples.echo:routes --fd SOCK --workers N`` to its end:
    (its exit code, its stderr); ``sock`` closed then."""
    sock.set_inheritable(True)
    try:
        return await run_cli_to_end(
            "examples.echo:routes",
            "--fd",
            str(sock.fileno()),
            "--workers",
            workers,
            pass_fds=(sock.fileno(),),
        )
    finally:
        sock.close()


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_fd_of_a_udp_socket_is_one_line(workers: str) -> None:
    # (A ValueError traceback from asyncio, at start-up.)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    code, err = await run_on_fd(udp, workers)
    assert code == 1, err
    assert "is not a stream" in err.strip().splitlines()[-1] and "Traceback" not in err, err


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_fd_of_an_unbound_socket_is_one_line(workers: str) -> None:
    # listen() binds it to every interface and a port of the kernel's choice:
    # it was served on 0.0.0.0.
    code, err = await run_on_fd(socket.socket(socket.AF_INET, socket.SOCK_STREAM), workers)
    assert code == 1, err
    assert "is not bound" in err.strip().splitlines()[-1] and "Traceback" not in err, err
    assert "listening on" not in err, err


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_fd_of_a_connected_socket_is_said_to_be_one(workers: str) -> None:
    # systemd's Accept=yes passes each accepted connection, not the listening
    # socket: listen() on it failed with "[Errno 22] Invalid argument".
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    try:
        code, err = await run_on_fd(accepted, workers)
    finally:
        client.close()
        listener.close()
    assert code == 1, err
    last = err.strip().splitlines()[-1]
    assert "is a connection, not a listening socket" in last and "Accept=yes" in last, err
    assert "Traceback" not in err and "listening on" not in err, err


def test_serve_refuses_a_sock_it_cannot_listen_on_as_given(tmp_path: Path) -> None:
    # What --fd refuses: an unbound socket was served on every interface, on a
    # port of the kernel's choice (listen() binds it so), a UDP one failed at
    # the start with asyncio's ValueError.
    unbound_tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    unbound_unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.close()
    unix_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix_listener.bind(str(tmp_path / "s"))
    unix_listener.listen()
    unix_client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix_client.connect(str(tmp_path / "s"))
    accepted_unix, _ = unix_listener.accept()  # (its peer has no name: getpeername() is "")
    connection = "is a connection, not a listening socket (as systemd's Accept=yes passes)"
    cases = [
        (unbound_tcp, "sock is not bound to an address (bind it before passing it)"),
        (unbound_unix, "sock is not bound to an address (bind it before passing it)"),
        (udp, "sock is not a stream (TCP or Unix stream) socket"),
        (closed, "sock is closed"),
        (accepted_unix, f"sock {connection}"),
        (unix_client, f"sock {connection}"),
    ]
    try:
        for sock, said in cases:
            with pytest.raises(ConfigError) as refused:
                serve(who_routes(), sock=sock)
            assert str(refused.value) == said, (sock, refused.value)
        # Nothing listens, and the sockets are still the caller's (not closed).
        assert unbound_tcp.getsockname()[1] == 0 and unbound_tcp.fileno() != -1
        assert unbound_unix.getsockname() == "" and udp.fileno() != -1
    finally:
        for sock, _ in cases:
            sock.close()
        unix_listener.close()


async def test_serve_refuses_two_places_to_listen(socket_path: str) -> None:
    # As the command line refuses --uds with --fd, --host or --port: uds= won
    # over host= and port=, and sock= over uds=, without a word.
    bound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    bound.bind(("127.0.0.1", 0))
    try:
        for args, kwargs, said in [
            (("127.0.0.1", 0), {"uds": socket_path}, "uds= and host= and port="),
            ((), {"port": 0, "uds": socket_path}, "uds= and port="),
            ((), {"host": None, "uds": socket_path}, "uds= and host="),
            ((), {"sock": bound, "uds": socket_path}, "sock= and uds="),
            (("0.0.0.0",), {"sock": bound}, "sock= and host="),
        ]:
            with pytest.raises(ConfigError) as refused:
                serve(who_routes(), *args, **kwargs)
            assert str(refused.value) == f"{said}: each says where to listen; give one"
        # listen=False listens nowhere: a place given with it was dropped unsaid.
        for kwargs, said in [({"sock": bound}, "sock="), ({"uds": socket_path}, "uds=")]:
            with pytest.raises(ConfigError) as refused:
                serve(who_routes(), listen=False, **kwargs)
            assert str(refused.value) == f"{said} with listen=False: it listens nowhere"
        assert not os.path.exists(socket_path)
        assert bound.fileno() != -1
        # Each alone still serves (the defaults of host and port are no choice).
        async with serve(who_routes(), sock=bound, ping_interval=None) as server:
            assert server.port == bound.getsockname()[1]
        async with serve(who_routes(), uds=socket_path, ping_interval=None) as server:
            assert [s.getsockname() for s in server.sockets] == [socket_path]
    finally:
        bound.close()


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
async def test_serve_takes_an_ipv6_host_in_brackets() -> None:
    # As --host does, and as URLs (and the listening line) write it: the start
    # failed with socket.gaierror, [::1] looked up as a name.
    for host in ("[::1]", ["[::1]", "127.0.0.1"]):
        async with serve(who_routes(), host, 0, ping_interval=None) as server:
            async with websockets.connect(f"ws://[::1]:{server.port}/ws") as ws:
                said = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert said["client"][0] == "::1", said
    for host in ("[localhost]", ["127.0.0.1", "[127.0.0.1]"]):
        with pytest.raises(ConfigError) as refused:
            serve(who_routes(), host, 0)
        assert "expected an IPv6 address in brackets" in str(refused.value), refused.value


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize(
    ("args", "said"),
    [
        # An unset variable ("--host $HOST"): every interface, in one process.
        (["--host", ""], "--host"),
        # Beyond what listen() takes: an OverflowError traceback.
        (["--backlog", str(2**31)], "--backlog"),
    ],
)
async def test_cli_bad_listening_flags_are_one_line(
    args: list[str], said: str, workers: str
) -> None:
    code, err = await run_cli_to_end(
        "examples.echo:routes", *args, "--port", "0", "--workers", workers
    )
    assert code == 2, err
    assert said in err.strip().splitlines()[-1] and "Traceback" not in err, err
    assert "listening on" not in err, err


async def test_a_log_config_that_is_no_mapping_is_one_line(tmp_path: Path) -> None:
    log_config = tmp_path / "logging.json"
    log_config.write_text("[1, 2]")
    code, err = await run_cli_to_end(
        "examples.echo:routes", "--log-config", str(log_config), "--port", "0"
    )
    assert code == 2, err
    assert "no logging configuration" in err.strip().splitlines()[-1], err
    assert "Traceback" not in err, err
    # An ini file without a section fileConfig needs: which one (it said "'formatters'").
    log_config = tmp_path / "logging.ini"
    log_config.write_text("[loggers]\nkeys=root\n")
    code, err = await run_cli_to_end(
        "examples.echo:routes", "--log-config", str(log_config), "--port", "0"
    )
    assert code == 2, err
    said = err.strip().splitlines()[-1]
    assert said == f"error: --log-config {log_config}: no [formatters] section", err
    # Another name it uses and does not define (here, an unset environment variable).
    log_config.write_text(
        "[loggers]\nkeys=root\n[handlers]\nkeys=f\n[formatters]\nkeys=\n"
        "[logger_root]\nhandlers=f\n[handler_f]\nclass=FileHandler\n"
        "args=(os.environ['WSSERVER_NEVER_SET'],)\n"
    )
    code, err = await run_cli_to_end(
        "examples.echo:routes", "--log-config", str(log_config), "--port", "0"
    )
    assert code == 2, err
    assert err.strip().splitlines()[-1] == (
        f"error: --log-config {log_config}: KeyError 'WSSERVER_NEVER_SET': a name the file uses"
        " is not defined (or an environment variable unset)"
    ), err


async def _log_configs_refused_in_one_line(
    tmp_path: Path, cases: dict[str, tuple[str, str]]
) -> None:
    """Each ``name: (content, said)`` of ``cases``, written in ``tmp_path`` and given
    to --log-config, is refused with exit 2 and one last line holding ``said``."""
    for name, (content, _) in cases.items():
        (tmp_path / name).write_text(content)
    ended = await asyncio.gather(
        *(
            run_cli_to_end(
                "examples.echo:routes", "--log-config", str(tmp_path / name), "--port", "0"
            )
            for name in cases
        )
    )
    for (name, (_, said)), (code, err) in zip(cases.items(), ended, strict=True):
        last = err.strip().splitlines()[-1]
        assert code == 2 and "Traceback" not in err, (name, err)
        assert last.startswith(f"error: --log-config {tmp_path / name}: ") and said in last, err


async def test_a_broken_ini_log_config_is_one_line_whatever_breaks_it(tmp_path: Path) -> None:
    # fileConfig says these with a RuntimeError, or lets the error of its
    # class= / args= through (ModuleNotFoundError, NameError, SyntaxError):
    # each was a traceback and exit code 1.
    handler = "[loggers]\nkeys=root\n[handlers]\nkeys=h\n[formatters]\nkeys=\n" + (
        "[logger_root]\nhandlers=h\n[handler_h]\n"
    )
    cases = {
        "no-section.ini": ("x\n", "no section headers"),
        "empty.ini": ("", "empty"),
        "bad-class.ini": (handler + "class=nosuch.Handler\nargs=()\n", "nosuch"),
        "bad-name.ini": (
            handler + "class=StreamHandler\nargs=(undefined_name,)\n",
            "undefined_name",
        ),
        "bad-args.ini": (handler + "class=StreamHandler\nargs=(sys.stderr\n", "SyntaxError"),
    }
    await _log_configs_refused_in_one_line(tmp_path, cases)


async def test_a_broken_dict_log_config_says_why(tmp_path: Path) -> None:
    # dictConfig wraps what fails in "Unable to configure handler 'h'", the
    # reason in its __cause__: only that line was said, never which class or
    # file it could not take.
    def config(handler: dict[str, object]) -> str:
        return json.dumps({"version": 1, "handlers": {"h": handler}, "root": {"handlers": ["h"]}})

    cases = {
        "bad-class.json": (
            config({"class": "logging.NoSuchHandler"}),
            "Unable to configure handler 'h': Cannot resolve 'logging.NoSuchHandler'",
        ),
        "bad-file.json": (
            config({"class": "logging.FileHandler", "filename": str(tmp_path / "no/x.log")}),
            f"Unable to configure handler 'h': [Errno 2] No such file or directory: "
            f"'{tmp_path / 'no/x.log'}'",
        ),
        "bad-level.json": (
            json.dumps({"version": 1, "root": {"level": "LOUD"}}),
            "Unable to configure root logger: Unknown level: 'LOUD'",
        ),
    }
    await _log_configs_refused_in_one_line(tmp_path, cases)


async def test_a_log_config_that_cannot_be_read_says_so(tmp_path: Path) -> None:
    # fileConfig's parser skips a file it cannot open: a directory (or a file
    # without read permission) was said to have "no [formatters] section".
    unreadable = tmp_path / "logging.ini"
    unreadable.write_text("[loggers]\nkeys=root\n")
    unreadable.chmod(0)
    cases = [(tmp_path, "Is a directory")]
    if os.geteuid() != 0:  # (root reads it all the same)
        cases.append((unreadable, "Permission denied"))
    for path, said in cases:
        code, err = await run_cli_to_end("examples.echo:routes", "--log-config", str(path))
        last = err.strip().splitlines()[-1]
        assert code == 2 and last.startswith(f"error: --log-config {path}: "), err
        assert said in last and "section" not in last, err


async def test_log_format_json_with_a_log_config_is_said_to_be_ignored(tmp_path: Path) -> None:
    # The file's formatters win; --log-format json was dropped without a word.
    log_config = tmp_path / "logging.json"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "formatters": {"plain": {"format": "FILE %(levelname)s %(message)s"}},
                "handlers": {"err": {"class": "logging.StreamHandler", "formatter": "plain"}},
                "root": {"handlers": ["err"]},
            }
        )
    )
    async with running_cli(
        "examples.echo:routes", "--log-config", str(log_config), "--log-format", "json"
    ) as cli:
        await wait_for(lambda: "listening on" in cli.stderr, what="listening")
    assert (
        "FILE WARNING --log-format json: the --log-config file says how lines look (ignored)"
        in cli.stderr
    ), cli.stderr


# ===================================================== found in review (each failed first)


@pytest.mark.parametrize(
    ("spec", "peer", "hops", "client"),
    [
        # nginx appends the address it saw to what the client sent: with "*", only that.
        ("*", "127.0.0.1", "6.6.6.6, 203.0.113.9", ("203.0.113.9", 0)),
        # A Unix socket's peer has no address: "unix" trusts it, without trusting everyone.
        ("unix", None, "6.6.6.6, 203.0.113.9", ("203.0.113.9", 0)),
    ],
)
def test_a_client_cannot_choose_its_address(
    spec: str, peer: str | None, hops: str, client: tuple[str, int]
) -> None:
    trusted = TrustedProxies(spec)
    assert peer in trusted
    said = forwarded(Headers([("x-forwarded-for", hops)]), trusted)
    assert said.client == client
    assert None not in TrustedProxies("127.0.0.1")  # Unix peers: only when said


async def test_proxy_headers_over_a_unix_socket(socket_path: str) -> None:
    server = serve(
        who_routes(),
        uds=socket_path,
        ping_interval=None,
        proxy_headers=True,
        forwarded_allow_ips="unix",
    )
    async with server:
        transport = httpx.AsyncHTTPTransport(uds=socket_path)
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get(
                "http://localhost/who",
                headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9", "X-Forwarded-Proto": "https"},
            )
    assert response.json() == {"client": ["203.0.113.9", 0], "scheme": "https"}


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"proxy_headers": True}, "X-Forwarded-* and Forwarded headers (proxy_headers)"),
        ({"proxy_protocol": True}, "PROXY protocol headers (proxy_protocol)"),
        (
            {"proxy_headers": True, "proxy_protocol": True},
            "X-Forwarded-* and Forwarded headers (proxy_headers)"
            " or PROXY protocol headers (proxy_protocol)",
        ),
    ],
    ids=["proxy_headers", "proxy_protocol", "both"],
)
async def test_proxy_settings_on_a_unix_socket_that_trusts_none_of_its_peers_are_said(
    socket_path: str,
    caplog: pytest.LogCaptureFixture,
    settings: dict[str, Any],
    said: str,
) -> None:
    # A Unix socket's peers have no address: with forwarded_allow_ips at its
    # default (127.0.0.1), the proxy's word was never believed, without a word
    # (HAProxy's "server app /run/app.sock send-proxy": every client "-").
    caplog.set_level(logging.WARNING, logger="wsserver.server")
    header = b"PROXY TCP4 203.0.113.9 192.0.2.1 5 6\r\n" if "proxy_protocol" in settings else b""
    async with serve(who_routes(), uds=socket_path, ping_interval=None, **settings):
        reader, writer = await asyncio.open_unix_connection(socket_path)
        writer.write(
            header + b"GET /who HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9\r\n"
            b"Connection: close\r\n\r\n"
        )
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["client"] is None  # (as the warning says)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        "listening on a Unix socket, whose peers have no address: forwarded_allow_ips trusts"
        " none of them (it has neither 'unix' nor '*'), so the client and scheme that"
        f" {said} give are never believed"
    ], warned
    # Trusted, or on TCP, or neither setting: nothing to say.
    caplog.clear()
    for trusted in ("unix", "*", "10.0.0.1, unix"):
        async with serve(who_routes(), uds=socket_path, forwarded_allow_ips=trusted, **settings):
            pass
    async with serve(who_routes(), "127.0.0.1", 0, **settings):
        pass
    async with serve(who_routes(), uds=socket_path):
        pass
    assert not caplog.records


async def test_trusting_every_address_by_a_network_is_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 0.0.0.0/0 (or ::/0) trusts every hop, so the walk from the right skips
    # them all and takes the leftmost: the client's own X-Forwarded-For. "*"
    # trusts every peer and believes the last hop only. Said nowhere.
    caplog.set_level(logging.WARNING, logger="wsserver.server")
    for trusted in ("0.0.0.0/0", "10.0.0.1, ::/0", "0.0.0.0/0,::/0"):
        caplog.clear()
        async with (
            serve(
                who_routes(), "127.0.0.1", 0, proxy_headers=True, forwarded_allow_ips=trusted
            ) as server,
            httpx.AsyncClient() as client,
        ):
            response = await client.get(
                f"http://127.0.0.1:{server.port}/who",
                headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.7"},
            )
        assert response.json()["client"][0] == "6.6.6.6"  # (as the warning says)
        warned = [r.getMessage() for r in caplog.records]
        assert len(warned) == 1, warned
        assert warned[0].startswith(f"forwarded_allow_ips {trusted!r} trusts every address"), warned
        assert "'*' trusts every peer and believes the last hop only" in warned[0], warned
    # "*", a list of networks short of all, or no proxy headers to read: nothing.
    caplog.clear()
    for trusted in ("*", "10.0.0.0/8, 127.0.0.1", "0.0.0.0/1"):
        async with serve(
            who_routes(), "127.0.0.1", 0, proxy_headers=True, forwarded_allow_ips=trusted
        ):
            pass
    async with serve(
        who_routes(), "127.0.0.1", 0, proxy_protocol=True, forwarded_allow_ips="0.0.0.0/0"
    ):
        pass  # (one header, no list of hops: nothing a client can add)
    assert not caplog.records, [r.getMessage() for r in caplog.records]


async def test_trusted_proxies_without_a_proxy_setting_to_trust_them_with_are_said(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # uvicorn reads X-Forwarded-* by default: a uvicorn deployment behind nginx
    # says --forwarded-allow-ips '*' (or FORWARDED_ALLOW_IPS, set by many
    # images) and no --proxy-headers. Here that read nothing, without a word:
    # every client was the proxy, every scheme http.
    caplog.set_level(logging.WARNING, logger="wsserver.server")
    warning = (
        "forwarded_allow_ips is set but neither proxy_headers nor proxy_protocol is:"
        " no proxy's word is read (--proxy-headers reads X-Forwarded-* and Forwarded;"
        " on by default in uvicorn, not here)"
    )
    async with (
        serve(who_routes(), "127.0.0.1", 0, forwarded_allow_ips="*") as server,
        httpx.AsyncClient() as client,
    ):
        response = await client.get(
            f"http://127.0.0.1:{server.port}/who",
            headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"},
        )
    assert response.json()["client"][0] == "127.0.0.1"  # (as the warning says)
    assert [r.getMessage() for r in caplog.records] == [warning]
    caplog.clear()
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8")  # (uvicorn's variable)
    async with serve(who_routes(), "127.0.0.1", 0):
        pass
    assert [r.getMessage() for r in caplog.records] == [warning]
    # With either setting, or the list left at its default: nothing to say.
    caplog.clear()
    async with serve(who_routes(), "127.0.0.1", 0, proxy_headers=True):
        pass
    async with serve(who_routes(), "127.0.0.1", 0, proxy_protocol=True):
        pass
    monkeypatch.delenv("FORWARDED_ALLOW_IPS")
    async with serve(who_routes(), "127.0.0.1", 0):
        pass
    assert not caplog.records


async def test_a_unix_socket_listens_at_once(socket_path: str) -> None:
    from wsserver.server.server import unix_socket

    sock = unix_socket(socket_path)
    try:
        # A second server probing now sees a live one (not a stale file to take over).
        with pytest.raises(OSError, match="listening"):
            unix_socket(socket_path)
        assert os.path.exists(socket_path)
        assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o660
    finally:
        sock.close()


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_a_live_unix_socket_with_a_full_backlog_is_not_waited_on(
    socket_path: str, workers: str
) -> None:
    # The stale-socket probe connected in blocking mode: a live server too busy to
    # accept (its backlog full) made the new one hang at start-up.
    busy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    busy.bind(socket_path)
    busy.listen(0)
    queued: list[socket.socket] = []
    try:
        while True:
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.setblocking(False)
            queued.append(client)
            try:
                client.connect(socket_path)
            except BlockingIOError:
                break  # the backlog is full
        started = time.monotonic()
        code, err = await run_cli_to_end(
            "examples.echo:routes", "--uds", socket_path, "--workers", workers
        )
        assert time.monotonic() - started < STARTUP_TIMEOUT / 2, err
        assert code == 1, err
        assert f"a server is listening on {socket_path}" in err.strip().splitlines()[-1], err
        assert stat.S_ISSOCK(os.stat(socket_path).st_mode)  # (the live server's, left alone)
    finally:
        for client in queued:
            client.close()
        busy.close()


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_the_unix_socket_file_is_removed_at_exit(socket_path: str, workers: str) -> None:
    # It stayed (a stale file for the next start to probe and remove, or for others to trip on).
    async with running_cli(
        "examples.echo:routes",
        *("--uds", socket_path, "--workers", workers),
        port_flag=False,
        listening=r"listening on unix:(/\S+)()",
    ) as cli:
        if workers != "1":
            await wait_for(lambda: "workers accepting" in cli.stderr, what="the workers")
        async with websockets.unix_connect(socket_path, "ws://localhost/ws") as ws:
            await ws.send("hello")
            assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "hello"
        cli.proc.send_signal(signal.SIGTERM)
        assert await cli.wait() == 0, cli.stderr
    assert not os.path.exists(socket_path), cli.stderr


async def test_a_server_removes_its_own_unix_socket_file_only(socket_path: str) -> None:
    server = serve(who_routes(), uds=socket_path)
    await server.start()
    assert stat.S_ISSOCK(os.stat(socket_path).st_mode)
    await server.close()
    assert not os.path.exists(socket_path)
    # Replaced meanwhile (by someone else's file): not ours to remove.
    server = serve(who_routes(), uds=socket_path)
    await server.start()
    os.unlink(socket_path)
    Path(socket_path).write_text("precious")
    await server.close()
    assert Path(socket_path).read_text() == "precious"


async def test_a_restart_answers_a_request_on_its_way_on_a_kept_alive_connection() -> None:
    # A worker retiring closed every kept-alive connection idle at that
    # instant: a request the client had just sent on one got no answer
    # (a 502 behind nginx for a POST, which it does not retry). Such a
    # connection is now kept a moment: a request then is answered, with
    # Connection: close; one that stays idle is closed after it.
    routes = Router()

    @routes.route("/", methods=["GET", "POST"])
    async def index(request: Request) -> Response:
        return text(request.method)

    server = serve(routes, "127.0.0.1", 0, ping_interval=None, timeout_keep_alive=30)
    await server.start()
    loop = asyncio.get_running_loop()
    busy_reader, busy = await asyncio.open_connection("127.0.0.1", server.port)
    idle_reader, idle = await asyncio.open_connection("127.0.0.1", server.port)
    for writer, reader in ((busy, busy_reader), (idle, idle_reader)):
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b"GET"), TIMEOUT)).startswith(
            b"HTTP/1.1 200"
        )
    started = loop.time()
    closing = asyncio.create_task(server.close(code=1012))
    await asyncio.sleep(0.1)  # (the server has stopped taking connections)
    busy.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    answer = await asyncio.wait_for(busy_reader.read(), TIMEOUT)  # to the end: closed after
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"POST"), answer
    assert b"\r\nConnection: close\r\n" in answer, answer
    assert await asyncio.wait_for(idle_reader.read(), TIMEOUT) == b""  # closed, unasked
    await asyncio.wait_for(closing, TIMEOUT)
    assert loop.time() - started < 2.5
    busy.close()
    idle.close()


def _drain_routes() -> Router:
    routes = Router()

    @routes.route("/", methods=["GET", "POST"])
    async def index(request: Request) -> Response:
        return text(f"{request.method} {len(request.body)}")

    @routes.get("/big")
    async def big(request: Request) -> Response:
        await asyncio.sleep(float(request.args.get("wait", "0")))
        return Response(b"x" * (8 << 20), 200)

    return routes


async def _kept_alive(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection with one request answered, kept alive."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"GET 0"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 200")
    return reader, writer


async def _to_the_end(reader: asyncio.StreamReader) -> bytes:
    got = b""
    with contextlib.suppress(ConnectionResetError):
        while data := await asyncio.wait_for(reader.read(1 << 20), TIMEOUT):
            got += data
    return got


@pytest.mark.parametrize("expect", [False, True], ids=["body-after-head", "100-continue"])
async def test_a_request_whose_body_comes_during_a_restart_is_answered(expect: bool) -> None:
    # (From a review of the drain.) A request whose head came in the drain,
    # its body after (nginx writes them apart; a 100-continue waits for its
    # 100): no task worked on it yet, and the end of the shutdown aborted it.
    server = serve(_drain_routes(), "127.0.0.1", 0, ping_interval=None, timeout_keep_alive=30)
    await server.start()
    reader, writer = await _kept_alive(server.port)
    closing = asyncio.create_task(server.close(code=1012))
    await asyncio.sleep(0.1)  # (draining)
    continued = b"Expect: 100-continue\r\n" if expect else b""
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n" + continued + b"\r\n")
    if expect:
        said = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert said.startswith(b"HTTP/1.1 100 "), said
    await asyncio.sleep(0.05)
    writer.write(b"hello")
    answer = await _to_the_end(reader)
    await asyncio.wait_for(closing, TIMEOUT)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"POST 5"), answer


async def test_a_restart_waits_open_timeout_once_for_a_slow_upload() -> None:
    # (From a review.) The handshakes and requests under way were waited for
    # before the drain and again after it, each up to open_timeout: a body
    # trickling in held a restart twice that, before its grace even began
    # (past the supervisor's deadline for a retiring worker).
    routes = Router()

    @routes.post("/up")
    async def up(request: Request) -> Response:
        return text(str(len(request.body)))

    server = serve(routes, "127.0.0.1", 0, ping_interval=None, open_timeout=1.5)
    await server.start()
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")

    async def trickle() -> None:
        with contextlib.suppress(OSError):
            for _ in range(100):
                writer.write(b"a")
                await writer.drain()
                await asyncio.sleep(0.5)

    trickling = asyncio.create_task(trickle())
    await asyncio.sleep(0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(server.close(code=1012), TIMEOUT)
    took = loop.time() - started
    trickling.cancel()
    writer.close()
    assert 1.4 < took < 2.5, took


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("code", [1001, 1012])
async def test_a_response_written_is_sent_whole_before_the_shutdown_ends(
    code: int, tls: bool
) -> None:
    # (From a review of the drain.) The end of a shutdown aborted every
    # connection still open: an answer written but still in the write buffer
    # (8 MiB to a client reading it) was cut off half way. Over TLS, what the
    # TLS layer has handed the TCP transport under it is in no buffer size the
    # TLS transport gives (and its close_notify, once written, in none at
    # all): the answer was cut (on uvloop, by whatever that transport held).
    server_tls, client_tls = tls_contexts() if tls else (None, None)
    server = serve(
        _drain_routes(), "127.0.0.1", 0, ping_interval=None, timeout_keep_alive=30, ssl=server_tls
    )
    await server.start()
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # (most of it waits for it)
    client.connect(("127.0.0.1", server.port))
    reader, writer = await asyncio.open_connection(
        sock=client, ssl=client_tls, server_hostname="127.0.0.1" if tls else None
    )
    writer.write(b"GET /big?wait=0.3 HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(0.1)
    closing = asyncio.create_task(server.close(code=code))
    await asyncio.sleep(1.5)  # (the client reads once the handler is done)
    got = await _to_the_end(reader)
    await asyncio.wait_for(closing, TIMEOUT)
    writer.close()
    head, _, body = got.partition(b"\r\n\r\n")
    assert len(body) == 8 << 20, (head, len(body))


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("code", [1001, 1012])
async def test_a_response_still_going_out_gets_no_503_after_it(code: int, tls: bool) -> None:
    # The test above closes while the handler works; here it has answered,
    # its 8 MiB still in the write buffer for a client reading it, the
    # connection kept alive, and the client sent an empty line after its
    # request (RFC 9112 2.2: a server ignores it; old clients send one after
    # a POST's body), unread while the answer goes out: the shutdown took it
    # for a request begun, and wrote an unasked 503 after the body (a client
    # that reuses the connection takes it for its next answer).
    server_tls, client_tls = tls_contexts() if tls else (None, None)
    server = serve(
        _drain_routes(), "127.0.0.1", 0, ping_interval=None, timeout_keep_alive=30, ssl=server_tls
    )
    await server.start()
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # (most of it waits for it)
    client.connect(("127.0.0.1", server.port))
    reader, writer = await asyncio.open_connection(
        sock=client, ssl=client_tls, server_hostname="127.0.0.1" if tls else None
    )
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n\r\n")
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)).startswith(
        b"HTTP/1.1 200"
    )
    await wait_for(
        lambda: (
            not server.app_tasks
            and not any(
                p.http_task is not None and not p.http_task.done() for p in server.connections
            )
        ),
        what="the handler's end",
    )
    closing = asyncio.create_task(server.close(code=code))
    got = await _to_the_end(reader)
    await asyncio.wait_for(closing, TIMEOUT)
    writer.close()
    assert len(got) == 8 << 20, got[8 << 20 :][:200]


async def test_a_restart_serves_the_connection_accepted_as_it_began() -> None:
    """A connection arriving as a worker retires (close(code=1012)) is served: by the old
    worker if it was accepting it, else (left in the shared socket's queue) by the new one."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"hello\n"})

    loop = asyncio.get_running_loop()
    for delay in range(6):  # the close lands in each of the iterations an accept takes
        shared = socket.create_server(("127.0.0.1", 0))  # the supervisor's socket
        port = shared.getsockname()[1]
        # The workers' copies (made before any is served: dup() resets the blocking
        # mode, which all copies share).
        old_sock, new_sock = shared.dup(), shared.dup()
        old = serve(app, sock=old_sock, access_log=False)
        await old.start()
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        for _ in range(delay):
            await asyncio.sleep(0)
        new = serve(app, sock=new_sock, access_log=False)
        await new.start()  # the replacement accepts before the old one retires
        await old.close(code=1012)
        client.settimeout(3)
        got = await loop.run_in_executor(None, client.recv, 1000)
        client.close()
        await new.close()
        shared.close()
        assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"hello\n"), (delay, got)


def test_a_worker_under_a_pid_1_supervisor_stays() -> None:
    from wsserver.supervisor import parent_gone

    # In a container without init the supervisor is pid 1: that is its parent, not a sign
    # that the parent died.
    assert parent_gone(os.getppid()) is False
    assert parent_gone(os.getppid() + 1) is True


async def test_json_logs_parse_line_by_line() -> None:
    async with running_cli("examples.chat:routes", "--log-format", "json") as cli:
        # A control character in the path (the room's name) and in the close reason.
        async with websockets.connect(cli.url + "/ws/chat/x%1b[31m") as ws:
            await ws.recv()
            await ws.close(4000, "bye\x1b")
        await asyncio.sleep(0.2)
    lines = [line for line in cli.stderr.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    for entry in entries:
        assert {"timestamp", "level", "logger", "message", "worker"} <= entry.keys()
        assert entry["timestamp"].endswith("+00:00")
    (access,) = [e for e in entries if e["logger"] == "wsserver.access"]
    assert access["status"] == 101 and access["close_code"] == 4000
    assert access["path"] == "/ws/chat/x%1b[31m" and access["close_reason"] == "bye\\x1b"
    assert access["method"] == "GET" and access["pid"] > 0
    assert access["route"] == "chat"
    assert isinstance(access["duration"], float) and access["peer"].startswith("127.0.0.1:")
    assert "\x1b" not in cli.stderr  # escaped, as in the text format


async def test_json_logs_name_the_worker() -> None:
    async with running_cli("examples.echo:routes", "--workers", "2", "--log-format", "json") as cli:
        await wait_for(lambda: "workers accepting" in cli.stderr, what="the workers")
    entries = [json.loads(line) for line in cli.stderr.splitlines() if line.strip()]
    # A number, as README says (it was "1", "2"); the supervisor's are None.
    assert {e["worker"] for e in entries} >= {None, 1, 2}


@pytest.mark.parametrize(
    ("tls", "listen", "proxy"),
    [(False, True, False), (True, True, False), (True, False, False), (True, True, True)],
    ids=["plain", "tls", "pair", "proxy-tls"],
)
async def test_a_restart_serves_a_client_still_in_its_tls_handshake(
    ca: trustme.CA, cert_files: dict[str, str], tls: bool, listen: bool, proxy: bool
) -> None:
    """close(code=1012) lets a connection accepted before it finish its handshake, then closes
    it with 1012 (returning sooner, a retiring worker exits and drops it): over TLS too, where
    the connection is only the server's once TLS is up; through accept_socket() too; and
    with proxy_protocol, where a PROXY header comes before the TLS handshake."""
    routes = Router()

    @routes.websocket("/ws")
    async def wait(request: Request, ws: WebSocket) -> None:
        async for _ in ws:
            pass

    # (open_timeout far above what the test takes, even on a loaded machine: had the
    # server waited for the failing handshake, it would have taken all of it)
    settings: dict[str, Any] = {"open_timeout": 10.0, "close_timeout": 1.0}
    if tls:
        settings.update(ssl_certfile=cert_files["certfile"], ssl_keyfile=cert_files["keyfile"])
    server = serve(routes, "127.0.0.1", 0, listen=listen, proxy_protocol=proxy, **settings)
    await server.start()
    accepting: list[asyncio.Task[None]] = []

    def connect() -> socket.socket:
        if listen:
            return socket.create_connection(("127.0.0.1", server.port))
        ours, theirs = socket.socketpair()
        accepting.append(asyncio.create_task(server.accept_socket(theirs)))
        return ours

    # A slow client: connected (accepted by the server), its ClientHello or request later.
    raw = connect()
    raw.setblocking(False)
    # And one that fails its TLS handshake meanwhile: not waited for until open_timeout.
    failing = connect()
    await asyncio.sleep(0.1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    closing = asyncio.create_task(server.close(code=1012))
    await asyncio.sleep(0.1)
    failing.sendall(b"\xff" * 300 + b"\r\n\r\n")
    await asyncio.sleep(0.2)
    scheme = "wss" if tls else "ws"
    if proxy:
        raw.sendall(b"PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n")
    async with websockets.connect(
        f"{scheme}://127.0.0.1/ws", sock=raw, ssl=client_context(ca) if tls else None
    ) as ws:
        assert not closing.done()  # the server waited for this handshake (its process lives on)
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert ws.close_code == 1012
    await asyncio.wait_for(closing, TIMEOUT)
    assert loop.time() - started < 6.0  # (open_timeout: 10 s)
    failing.close()
    if accepting:  # (the failing one's raises the handshake's error)
        ended = await asyncio.wait_for(asyncio.gather(*accepting, return_exceptions=True), TIMEOUT)
        # (The served one's transport: uvloop's TLS one is no asyncio.BaseTransport.)
        assert not isinstance(ended[0], BaseException) and hasattr(ended[0], "get_protocol")
        assert isinstance(ended[1], ssl.SSLError), ended


@pytest.mark.drill
async def test_a_worker_refusing_new_certificates_says_so_as_a_worker(
    ca: trustme.CA, tmp_path: Path
) -> None:
    # Its reason was a bare "error: TLS: ..." among the supervisor's lines,
    # without a time or the worker it came from.
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    async with running_cli(
        "examples.echo:routes",
        *("--workers", "2", "--ssl-certfile", str(certfile), "--ssl-keyfile", str(keyfile)),
        listening=r"listening on wss://127\.0\.0\.1:(\d+)",
    ) as cli:
        await wait_for(lambda: "workers accepting" in cli.stderr, what="the workers")
        ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(keyfile))  # not the cert's
        cli.proc.send_signal(signal.SIGHUP)
        await wait_for(lambda: "TLS: " in cli.stderr, what="the worker's refusal")
        await asyncio.sleep(0.2)
        (line,) = [line for line in cli.stderr.splitlines() if "TLS: " in line]
        assert re.search(r"^\S+ \S+ ERROR .*\[worker \d\] .*TLS: ", line), line
        assert not line.startswith("error:"), line


async def test_a_tls_warning_is_said_by_each_worker_not_by_the_supervisor_too(
    cert_files: dict[str, str],
) -> None:
    # The supervisor makes the TLS context first, to refuse what a worker
    # would; its warnings came then, before each worker said them again: N+1
    # lines for N workers, the supervisor's without a [worker N].
    async with running_cli(
        "examples.echo:routes",
        *("--workers", "2", "--ssl-certfile", cert_files["certfile"]),
        *("--ssl-keyfile", cert_files["keyfile"], "--ssl-ca-certs", cert_files["ca"]),
        *("--ssl-ciphers", "TLS_AES_128_GCM_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256"),
        listening=r"listening on wss://127\.0\.0\.1:(\d+)",
    ) as cli:
        await wait_for(lambda: "workers accepting" in cli.stderr, what="the workers")
    for said in ("ssl_ca_certs is set but ssl_cert_reqs is 0", "ssl_ciphers names TLS 1.3"):
        lines = [line for line in cli.stderr.splitlines() if said in line]
        assert len(lines) == 2 and all("[worker " in line for line in lines), lines


async def test_a_log_config_without_root_says_each_line_once(tmp_path: Path) -> None:
    # A uvicorn-style file (its own loggers' handlers, no "root"): every line
    # came twice, by its handler and by the root's, which the server had
    # put there before applying the file.
    log_config = tmp_path / "logging.json"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "formatters": {"plain": {"format": "CONFIGURED %(name)s %(message)s"}},
                "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
                "loggers": {"wsserver": {"handlers": ["stderr"]}},
            }
        )
    )
    async with running_cli(
        "examples.echo:routes",
        "--log-config",
        str(log_config),
        listening=r"listening on ws://127\.0\.0\.1:(\d+)",
    ) as cli:
        await assert_echo(cli.url + "/ws")
        await wait_for(lambda: "wsserver.access" in cli.stderr, what="the access line")
    lines = [line for line in cli.stderr.splitlines() if "listening on" in line]
    assert len(lines) == 1 and lines[0].startswith("CONFIGURED wsserver.server"), cli.stderr
    assert all(line.startswith("CONFIGURED ") for line in cli.stderr.splitlines()), cli.stderr


async def test_a_log_level_given_wins_over_the_levels_a_log_config_gives_wsserver_s_loggers(
    tmp_path: Path,
) -> None:
    # As uvicorn's --log-level sets uvicorn.error, uvicorn.access and
    # uvicorn.asgi each after the file: a file that quiets the access lines
    # (wsserver.access at WARNING), and --log-level info to see them again
    # for a while. Only the "wsserver" logger was set, which its children
    # with a level of their own do not heed: no access line came.
    log_config = tmp_path / "logging.json"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "formatters": {"plain": {"format": "CONFIGURED %(name)s %(message)s"}},
                "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
                "loggers": {
                    "wsserver": {"handlers": ["stderr"]},
                    "wsserver.access": {"level": "WARNING"},
                },
            }
        )
    )
    async with running_cli(
        "examples.echo:routes",
        "--log-config",
        str(log_config),
        "--log-level",
        "info",
        listening=r"listening on ws://127\.0\.0\.1:(\d+)",
    ) as cli:
        await assert_echo(cli.url + "/ws")
        await wait_for(lambda: "wsserver.access" in cli.stderr, what="the access line")
    # Without --log-level, the file's levels stand (the process's whole
    # stderr, once it stopped).
    async with running_cli(
        "examples.echo:routes",
        "--log-config",
        str(log_config),
        listening=r"listening on ws://127\.0\.0\.1:(\d+)",
    ) as cli:
        await assert_echo(cli.url + "/ws")
        cli.proc.send_signal(signal.SIGTERM)
        assert await cli.wait() == 0
    assert "CONFIGURED wsserver.server" in cli.stderr, cli.stderr
    assert "wsserver.access" not in cli.stderr, cli.stderr


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_a_log_config_that_gives_wsserver_nowhere_to_log_keeps_the_default(
    tmp_path: Path, log_format: str
) -> None:
    # (From a review.) A uvicorn file (its loggers alone, no root): without
    # the server's own root handler, nothing of wsserver's was said at all,
    # the start, the access lines, the application's lines.
    log_config = tmp_path / "uvicorn.json"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "handlers": {"stderr": {"class": "logging.StreamHandler"}},
                "loggers": {"uvicorn.access": {"level": "INFO", "handlers": ["stderr"]}},
            }
        )
    )
    listening = r"listening on ws://127\.0\.0\.1:(\d+)"
    async with running_cli(
        "examples.echo:routes",
        "--log-config",
        str(log_config),
        "--log-format",
        log_format,
        listening=listening,
    ) as cli:
        await assert_echo(cli.url + "/ws")
        await wait_for(lambda: "wsserver.access" in cli.stderr, what="the access line")
    lines = [line for line in cli.stderr.splitlines() if "listening on" in line]
    assert len(lines) == 1, cli.stderr
    if log_format == "json":
        assert json.loads(lines[0])["logger"] == "wsserver.server", lines
    assert "configures uvicorn's loggers" in cli.stderr
    warning = cli.stderr.split("configures uvicorn's loggers")[1].splitlines()[0]
    for name in ("server", "access", "protocol", "broker", "supervisor"):  # (the README's)
        assert f"wsserver.{name}" in warning, warning


@pytest.mark.parametrize("given", [None, "info"])
async def test_log_level_goes_over_a_log_config_as_in_uvicorn(
    tmp_path: Path, socket_path: str, given: str | None
) -> None:
    # A file that has wsserver say warnings only: --log-level, when given,
    # sets wsserver's loggers' level after it (uvicorn does so for its own).
    log_config = tmp_path / "logging.json"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "handlers": {"stderr": {"class": "logging.StreamHandler"}},
                "root": {"level": "INFO", "handlers": ["stderr"]},
                "loggers": {"wsserver": {"level": "WARNING"}},
            }
        )
    )
    level = ("--log-level", given) if given else ()
    # (A Unix socket, not a free port: one another test's server may take
    # meanwhile, this client then talking to it.)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wsserver",
        "examples.echo:routes",
        "--log-config",
        str(log_config),
        *level,
        "--uds",
        socket_path,
        cwd=ROOT,
        env=child_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        while True:  # (until it serves: no line says when, at WARNING)
            try:
                async with websockets.unix_connect(socket_path, "ws://localhost/ws") as ws:
                    await ws.send("hello")
                    assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "hello"
                break
            except OSError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        proc.terminate()
        said = await asyncio.wait_for(proc.stderr.read(), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    assert (b"listening on" in said) is (given is not None), said


async def test_a_log_config_for_uvicorns_loggers_is_warned_of(tmp_path: Path) -> None:
    log_config = tmp_path / "uvicorn.json"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "handlers": {"stderr": {"class": "logging.StreamHandler"}},
                "loggers": {"uvicorn.access": {"level": "INFO", "handlers": ["stderr"]}},
                "root": {"level": "INFO", "handlers": ["stderr"]},
            }
        )
    )
    async with running_cli("examples.echo:routes", "--log-config", str(log_config)) as cli:
        await wait_for(lambda: "configures uvicorn's loggers" in cli.stderr, what="the warning")


def _open_files_limit(pid: int) -> tuple[str, str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return soft, hard
    raise AssertionError("no open files line")


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs util-linux's prlimit")
async def test_the_open_files_limit_is_raised_to_what_the_system_allows() -> None:
    # The soft limit is 1,024 on many systems (systemd's default): a server of
    # WebSockets ran out of descriptors near 1,000 clients, though the hard
    # limit allowed far more. As Go's runtime does, it is raised to the hard.
    command = ("prlimit", "--nofile=256:4096", sys.executable, "-m", "wsserver")
    async with running_cli("examples.echo:routes", command=command) as cli:
        assert _open_files_limit(cli.proc.pid) == ("4096", "4096")
        await assert_echo(cli.url + "/ws")


@pytest.mark.drill
@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs util-linux's prlimit")
async def test_running_out_of_descriptors_is_said_once_not_in_a_flood() -> None:
    # asyncio logs each accept() refused for want of descriptors, with a
    # traceback, and retries at once: 43,780 lines (19 MB) in 7 s, growing.
    command = ("prlimit", "--nofile=64:64", sys.executable, "-m", "wsserver")
    async with running_cli("examples.echo:routes", command=command) as cli:
        clients = [socket.create_connection(("127.0.0.1", cli.port)) for _ in range(100)]
        try:
            await asyncio.sleep(3.0)
        finally:
            for client in clients:
                client.close()
        said = cli.stderr
        assert said.count("cannot accept") == 1, said[-3000:]
        assert "out of system resource" not in said and "Traceback" not in said, said[-3000:]
        assert "open files" in said  # (what to raise)
        await assert_echo(cli.url + "/ws")  # served again once descriptors are back


ACCEPT_FAILURES = """
import asyncio, sys
from wsserver import Router, serve

failures = 0

def count(loop, context):
    global failures
    if "out of system resource" in context.get("message", ""):
        failures += 1

async def main():
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(count)
    async with serve(Router(), "127.0.0.1", 0, access_log=False) as server:
        print(server.port, flush=True)
        stop = asyncio.Event()
        loop.add_reader(sys.stdin.fileno(), stop.set)
        most = last = 0
        while not stop.is_set():
            await asyncio.sleep(0)  # a turn of the loop each
            most, last = max(most, failures - last), failures
        print(most, failures, flush=True)

asyncio.run(main())
"""


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs util-linux's prlimit")
async def test_running_out_of_descriptors_fails_few_accepts_a_turn() -> None:
    # (From an audit.) asyncio's selector loop (3.11) goes on calling accept()
    # after EMFILE, as many times as the backlog, each time scheduling one
    # more retry: with the backlog of 1,024, some 1,024 failures a turn and
    # a storm of retries that grew (11,000-38,000 failures a second, a core
    # taken). Its accept loop is given asyncio's own 100.
    if os.environ.get("WSSERVER_TEST_LOOP") == "uvloop":
        pytest.skip("uvloop accepts and closes what it cannot keep (libuv's own way)")
    server = await asyncio.create_subprocess_exec(
        "prlimit",
        "--nofile=64:64",
        sys.executable,
        "-c",
        ACCEPT_FAILURES,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert server.stdout is not None and server.stdin is not None
    clients: list[socket.socket] = []
    try:
        port = int(await asyncio.wait_for(server.stdout.readline(), STARTUP_TIMEOUT))
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
        await asyncio.sleep(1.5)
        server.stdin.write(b"stop\n")
        most, failures = map(
            int, (await asyncio.wait_for(server.stdout.readline(), TIMEOUT)).split()
        )
    finally:
        for client in clients:
            client.close()
        if server.returncode is None:
            server.kill()
        await server.wait()
    assert failures > 0  # (it did run out)
    assert most <= 100, (most, failures)


def test_the_open_files_limit_is_raised_where_the_system_refuses_the_hard_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (From a review.) macOS: an infinite hard limit, and a soft one past
    # kern.maxfilesperproc refused (EINVAL, a ValueError here): the soft limit
    # stayed at 256. Its setrlimit(2) says to ask for OPEN_MAX then. (The
    # system's answers are imitated: this machine is not a Mac.)
    import resource

    from wsserver.server.descriptors import raise_open_files_limit

    limits = {"soft": 256}

    def getrlimit(which: int) -> tuple[int, int]:
        return limits["soft"], resource.RLIM_INFINITY

    def setrlimit(which: int, wanted: tuple[int, int]) -> None:
        if wanted[0] > 24_576:  # (a Mac's kern.maxfilesperproc)
            raise ValueError("not allowed to raise maximum limit")
        limits["soft"] = wanted[0]

    monkeypatch.setattr(resource, "getrlimit", getrlimit)
    monkeypatch.setattr(resource, "setrlimit", setrlimit)
    assert raise_open_files_limit() == (256, 10240)
    assert limits["soft"] == 10240
    assert raise_open_files_limit() is None  # (nothing more to be had)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_an_env_file_saved_as_utf_16_with_its_byte_order_mark_is_read(
    tmp_path: Path, encoding: str
) -> None:
    # As Windows PowerShell 5's "echo A=1 > app.env" writes it: the start was
    # refused, "'utf-8' codec can't decode byte 0xff in position 0".
    env_file = tmp_path / "app.env"
    mark = "" if encoding == "utf-16" else "\ufeff"  # (Python's utf-16 writes one)
    env_file.write_bytes((mark + "WEBSOCKET_MAX_SIZE=5\r\nNAME=café\r\n").encode(encoding))
    environ: dict[str, str] = {}
    assert load_env_file(str(env_file), environ) == {"WEBSOCKET_MAX_SIZE": "5", "NAME": "café"}
    # Without a byte order mark, UTF-16 is not guessed: refused, as before.
    env_file.write_bytes("A=1\n".encode("utf-16-le"))
    with pytest.raises(ValueError, match="line 1"):
        load_env_file(str(env_file), {})


def test_an_env_file_not_in_utf_8_is_refused_naming_its_line(tmp_path: Path) -> None:
    # A Windows-1252 file (a password with an "é" or a "£"): it was refused as
    # "'utf-8' codec can't decode byte 0xe9 in position 22: invalid
    # continuation byte", a byte count, where every other refusal names the line.
    env_file = tmp_path / "app.env"
    env_file.write_bytes("WEBSOCKET_PORT=0\n# café\nPASSWORD=s3cr£t\n".encode("cp1252"))
    with pytest.raises(ValueError) as refused:
        load_env_file(str(env_file), {})
    assert str(refused.value) == "line 2: not UTF-8 (byte 0xe9): save the file as UTF-8"
    # Behind a UTF-8 byte order mark, and in UTF-16 (a lone surrogate), the same.
    env_file.write_bytes(codecs.BOM_UTF8 + "A=1\nB=café\n".encode("cp1252"))
    with pytest.raises(ValueError, match=r"^line 2: not UTF-8 \(byte 0xe9\)"):
        load_env_file(str(env_file), {})
    env_file.write_bytes(codecs.BOM_UTF16_LE + "A=1\n\nB=".encode("utf-16-le") + b"\x00\xd8")
    with pytest.raises(ValueError, match=r"^line 3: not UTF-16 \(byte 0x00\)"):
        load_env_file(str(env_file), {})


_OUTSIDE_LOGGING_APP = """
import threading
import warnings

from wsserver import Router
from wsserver.response import text

routes = Router()


@routes.get("/thread")
async def in_a_thread(request):
    def fail():
        raise RuntimeError("the thread failed\\nits second line")

    thread = threading.Thread(target=fail, name="poller")
    thread.start()
    thread.join()
    return text("ok")


@routes.get("/warn")
async def warn(request):
    warnings.warn("the old way", UserWarning, stacklevel=1)
    return text("ok")


@routes.get("/unraisable")
async def unraisable(request):
    class Finalised:
        def __del__(self):
            raise KeyError("in __del__")

    Finalised()
    return text("ok")
"""


@pytest.mark.parametrize("workers", [(), ("--workers", "1")], ids=["one-process", "workers"])
async def test_json_logs_carry_what_python_writes_outside_logging(
    tmp_path: Path, workers: tuple[str, ...]
) -> None:
    # A thread's uncaught exception, a warning, an exception ignored in __del__:
    # Python writes each to stderr itself, over several lines, which a log
    # collector reading JSON lines would take for as many broken events.
    (tmp_path / "outside.py").write_text(_OUTSIDE_LOGGING_APP)
    args = ("outside:routes", "--app-dir", str(tmp_path), "--log-format", "json", *workers)
    async with running_cli(*args) as cli:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cli.port}") as client:
            for path in ("/thread", "/warn", "/unraisable"):
                assert (await client.get(path)).status_code == 200
        await wait_for(lambda: cli.stderr.count("GET /unraisable 200") == 1, what="the access line")
    entries = [json.loads(line) for line in cli.stderr.splitlines() if line.strip()]
    (thread,) = [e for e in entries if "poller" in e["message"]]
    assert thread["level"] == "ERROR" and thread["logger"] == "wsserver.server"
    assert "RuntimeError: the thread failed\nits second line" in thread["exception"]
    (warned,) = [e for e in entries if "the old way" in e["message"]]
    assert warned["level"] == "WARNING" and "UserWarning" in warned["message"]
    (ignored,) = [e for e in entries if "KeyError" in (e.get("exception") or "")]
    assert ignored["level"] == "ERROR" and "Finalised.__del__" in ignored["message"]
