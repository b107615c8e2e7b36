"""Soak and abuse: the server as a subprocess, measured from outside (``make soak``).

Every load here targets 127.0.0.1 only, with bounded counts and durations.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import re
import signal
import sys
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import websockets

from tests.helpers import RawClient, upgrade_request
from wsserver.protocol.frames import Opcode, serialize_close, serialize_frame

pytestmark = pytest.mark.soak

ROOT = Path(__file__).resolve().parents[2]
MAX_SIZE = 1 << 20
MAX_QUEUE = 16


class ServerProcess:
    def __init__(self, process: asyncio.subprocess.Process, port: int) -> None:
        self.process = process
        self.port = port

    def rss(self) -> int:
        """Resident set size of the server process, in bytes."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        assert match is not None
        return int(match.group(1)) * 1024

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))


@pytest.fixture
async def server() -> AsyncIterator[ServerProcess]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wsserver",
        "examples.echo:routes",
        "--port",
        "0",
        "--max-size",
        str(MAX_SIZE),
        "--max-queue",
        str(MAX_QUEUE),
        "--open-timeout",
        "2",
        "--close-timeout",
        "2",
        "--ping-interval",
        "1",
        "--ping-timeout",
        "5",
        "--compression",
        "deflate",  # the abuse reaches the inflate path too
        "--log-level",
        "info",
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stderr is not None
    port = 0
    async with asyncio.timeout(10):
        while not port:
            line = (await process.stderr.readline()).decode()
            assert line, "server exited"
            if m := re.search(r"listening on ws://127\.0\.0\.1:(\d+)", line):
                port = int(m.group(1))
    # Drain the access log so the pipe never fills.
    drain = asyncio.create_task(_drain(process.stderr))
    yield ServerProcess(process, port)
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 15) == 0
    drain.cancel()


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


async def echo_ok(port: int) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
        await ws.send("alive?")
        assert await asyncio.wait_for(ws.recv(), 5) == "alive?"


async def recv_data(client: RawClient) -> bytes:
    """The next data frame's payload, answering the keepalive pings on the way."""
    while True:
        opcode, _, _, payload = await client.recv_frame(timeout=30)
        if opcode == Opcode.PING:
            client.send(Opcode.PONG, payload)
        else:
            return payload


async def connect_close(port: int) -> None:
    client = await RawClient.connect(port, "/ws")
    client.send(Opcode.TEXT, b"hello")
    assert await recv_data(client) == b"hello"
    client.send(Opcode.CLOSE, serialize_close(1000))
    await client.expect_eof()
    client.close()


async def test_10k_connect_close_cycles_without_growth(server: ServerProcess) -> None:
    async def batch(n: int, concurrency: int = 50) -> None:
        for _ in range(n // concurrency):
            await asyncio.gather(*(connect_close(server.port) for _ in range(concurrency)))

    await batch(1000)  # warm up allocators and caches
    rss_before = server.rss()
    fds_before = server.open_fds()
    await batch(10_000)
    await asyncio.sleep(0.5)
    rss_after = server.rss()
    growth = rss_after - rss_before
    print(f"\n10k cycles: RSS {rss_before} -> {rss_after} bytes ({growth:+d})")
    assert server.open_fds() <= fds_before
    assert growth < 4 * 1024 * 1024, f"RSS grew by {growth} bytes over 10k connections"
    await echo_ok(server.port)


async def test_flooding_clients_keep_memory_bounded(server: ServerProcess) -> None:
    """50 clients each push 4 MB at a server whose handler echoes; RSS stays bounded."""
    clients = 50
    message = os.urandom(64 * 1024)
    per_client = 64

    async def flood() -> None:
        client = await RawClient.connect(server.port, "/ws")
        for _ in range(per_client):
            client.send(Opcode.BINARY, message)
        # Do not read for a while: the server must stop reading, not buffer.
        await asyncio.sleep(2)
        for _ in range(per_client):
            assert await recv_data(client) == message
        client.send(Opcode.CLOSE, serialize_close(1000))
        while True:
            opcode, _, _, payload = await client.recv_frame(timeout=10)
            if opcode != Opcode.PING:
                break
        assert (opcode, payload) == (Opcode.CLOSE, serialize_close(1000))
        await client.expect_eof()
        client.close()

    rss_before = server.rss()
    tasks = [asyncio.create_task(flood()) for _ in range(clients)]
    peak = 0
    while not all(t.done() for t in tasks):
        peak = max(peak, server.rss())
        await asyncio.sleep(0.05)
    await asyncio.gather(*tasks)
    offered = clients * per_client * len(message)
    print(f"\nflood: offered {offered} bytes, RSS {rss_before} -> peak {peak}")
    # Per connection at most ~max_queue messages plus a write buffer: far below what was offered.
    assert peak - rss_before < offered / 4
    await echo_ok(server.port)


async def abuse(port: int, kind: int, rng: random.Random) -> None:
    """One abusive client of kind 0-4; reads until the server closes (bounded)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if kind == 0:  # garbage instead of HTTP
        writer.write(rng.randbytes(rng.randrange(1, 3000)))
    elif kind == 1:  # garbage after a valid upgrade
        writer.write(upgrade_request("/ws") + rng.randbytes(rng.randrange(1, 3000)))
    elif kind == 2:  # random but well-formed frames, masked and not
        frames = b"".join(
            serialize_frame(
                rng.choice([0, 1, 2, 3, 8, 9, 10, 11]),
                rng.randbytes(rng.randrange(0, 300)),
                fin=rng.random() < 0.8,
                rsv1=rng.random() < 0.1,
                mask=rng.randbytes(4) if rng.random() < 0.9 else None,
            )
            for _ in range(rng.randrange(1, 20))
        )
        writer.write(upgrade_request("/ws") + frames)
    elif kind == 3:  # a huge announced length (or a header cut short), then silence
        header = b"\x82\xff" + (1 << 40).to_bytes(8, "big") + b"mask"
        writer.write(upgrade_request("/ws") + header[: rng.randrange(2, 15)])
    else:  # abrupt disconnect mid-frame
        writer.write(upgrade_request("/ws") + b"\x81\xfe\x10\x00abcd" + b"x" * 100)
        writer.transport.abort()
        return
    # The server must end every abusive connection by itself: by an error
    # response or close frame, or else by open_timeout or keepalive.
    try:
        async with asyncio.timeout(10):
            while await reader.read(65536):
                pass
    except ConnectionError:
        pass
    writer.close()


async def test_random_abuse_never_takes_the_server_down(server: ServerProcess) -> None:
    rng = random.Random(1234)

    async def rounds(start: int, stop: int) -> None:
        for first in range(start, stop, 100):
            await asyncio.gather(
                *(abuse(server.port, i % 5, rng) for i in range(first, first + 100))
            )
            await echo_ok(server.port)

    await rounds(0, 300)  # warm up: the allocator's high-water mark for 100 at once
    rss_before = server.rss()
    await rounds(300, 1500)
    growth = server.rss() - rss_before
    print(f"\nabuse: RSS {rss_before} -> {rss_before + growth} bytes after 1200 more")
    # RSS includes allocator fragmentation; the exact leak check is the next test.
    assert growth < 16 * 1024 * 1024


@pytest.mark.parametrize("kind", range(5))
async def test_abuse_leaves_no_python_objects_behind(kind: int) -> None:
    from examples.echo import routes
    from wsserver import serve

    rng = random.Random(kind)
    server = serve(
        routes,
        "127.0.0.1",
        0,
        ping_interval=0.3,
        ping_timeout=0.3,
        open_timeout=0.3,
        close_timeout=0.3,
    )
    await server.start()
    try:

        async def rounds(n: int) -> None:
            for _ in range(0, n, 100):
                await asyncio.gather(*(abuse(server.port, kind, rng) for _ in range(100)))
            for _ in range(200):
                if not server.connections and len(asyncio.all_tasks()) == tasks_before:
                    break
                await asyncio.sleep(0.02)

        tasks_before = len(asyncio.all_tasks())
        # Warm up: asyncio's task set and selector map grow once, then stay.
        await rounds(1000)
        gc.collect()
        # Two windows of 1000 connections: a leak grows in both, while a
        # one-time resize of some table (asyncio's, the selector's) shows in one.
        growth = []
        tracemalloc.start()
        try:
            for _ in range(2):
                baseline = tracemalloc.get_traced_memory()[0]
                await rounds(1000)
                gc.collect()
                growth.append(tracemalloc.get_traced_memory()[0] - baseline)
        finally:
            tracemalloc.stop()
        print(f"\nabuse kind {kind}: traced growth {growth} bytes per 1000 connections")
        assert not server.connections
        assert len(asyncio.all_tasks()) == tasks_before
        assert min(growth) < 100_000
    finally:
        await server.close(timeout=1)
