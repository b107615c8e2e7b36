"""Shared fixtures."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from wsserver import Router, Server

from .helpers import start_server
from .redis_server import RedisServer, RedisUnavailable, install_redis

StartServer = Callable[..., Awaitable[Server]]


@pytest.fixture
async def run_server() -> AsyncIterator[StartServer]:
    """Start servers for a test (``await run_server(routes, **settings)``); close them after."""
    servers: list[Server] = []

    async def start(routes: Router, **settings: Any) -> Server:
        server = await start_server(routes, **settings)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close(timeout=1)


@pytest.fixture
async def run_asgi(run_server: StartServer) -> StartServer:
    """The same as ``run_server``, named for the tests of ASGI applications."""
    return run_server


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Callable[[], Any]]:
    """The default loop, or uvloop when WSSERVER_TEST_LOOP=uvloop."""
    if os.environ.get("WSSERVER_TEST_LOOP") == "uvloop":
        import uvloop

        return {"uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture
def socket_path() -> Iterator[str]:
    """A path for a Unix socket, removed afterwards if something is there."""
    # Short: a Unix socket path is limited to ~107 bytes.
    path = f"/tmp/wsserver-test-{uuid.uuid4().hex[:12]}.sock"
    yield path
    if os.path.exists(path):
        os.unlink(path)


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """redis-server, installed first if needed (the test fails rather than skips without it)."""
    try:
        return install_redis()
    except RedisUnavailable as exc:
        pytest.fail(f"the Redis tests need redis-server: {exc}")


@pytest.fixture
def redis_server(redis_binary: str) -> Any:
    """A private redis-server on a free port, for one test (stop() and start() for outages)."""
    server = RedisServer(redis_binary)
    server.start()
    yield server
    server.close()


@pytest.fixture
def no_kernel_sendfile(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The kernel refuses to sendfile() a file (EINVAL, as a file system that
    cannot does), before sending any of it: the server sends its pieces
    itself. The calls refused (their counts), to show the kernel was asked."""
    refused: list[int] = []

    def refuse(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        refused.append(count)
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "sendfile", refuse)
    return refused
