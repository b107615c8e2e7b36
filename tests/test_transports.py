"""Writing straight to an asyncio selector transport's socket (wsserver.server.transports)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from asyncio import sslproto

import pytest

from wsserver.server import transports
from wsserver.server.transports import direct_fd, write, writelines


class Spy(asyncio.Protocol):
    pass


async def accepted_pair(
    sndbuf: int | None = None,
) -> tuple[asyncio.Transport, socket.socket, list[tuple[str, int]]]:
    """A selector transport on one end of a socketpair, the other end, and a log of its writes."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    if sndbuf is not None:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    theirs.setblocking(False)
    transport, _ = await loop.connect_accepted_socket(Spy, ours)
    calls: list[tuple[str, int]] = []
    real_write = transport.write
    real_writelines = transport.writelines

    def logged_write(data: bytes | bytearray | memoryview) -> None:
        calls.append(("write", len(data)))
        real_write(data)

    def logged_writelines(chunks: list[bytes]) -> None:
        calls.append(("writelines", sum(map(len, chunks))))
        real_writelines(chunks)

    transport.write = logged_write  # type: ignore[method-assign]
    transport.writelines = logged_writelines  # type: ignore[method-assign]
    return transport, theirs, calls  # type: ignore[return-value]


async def read_exactly(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    received = bytearray()
    while len(received) < size:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 10)
        assert chunk, "the connection closed early"
        received += chunk
    return bytes(received)


@pytest.mark.skipif(os.environ.get("WSSERVER_TEST_LOOP") == "uvloop", reason="asyncio's transport")
async def test_a_write_with_nothing_buffered_bypasses_the_transport() -> None:
    transport, theirs, calls = await accepted_pair()
    fd = direct_fd(transport)
    assert fd == transport.get_extra_info("socket").fileno()
    write(transport, fd, b"hello")
    writelines(transport, fd, [b"\x82\x7e\x00\x04", b"abcd"])
    assert calls == []
    assert await read_exactly(theirs, 13) == b"hello\x82\x7e\x00\x04abcd"
    transport.close()
    theirs.close()


@pytest.mark.skipif(os.environ.get("WSSERVER_TEST_LOOP") == "uvloop", reason="asyncio's transport")
async def test_what_the_kernel_does_not_take_goes_through_the_transport_in_order() -> None:
    transport, theirs, calls = await accepted_pair(sndbuf=4096)
    fd = direct_fd(transport)
    pieces = [bytes([i]) * (100_000 + i) for i in range(6)]
    expected = b""
    write(transport, fd, pieces[0])
    expected += pieces[0]
    # Once the transport holds bytes, every later write must queue behind them.
    writelines(transport, fd, [b"h1", pieces[1], b"t1"])
    expected += b"h1" + pieces[1] + b"t1"
    writelines(transport, fd, [bytes([7])] * 40)  # more chunks than one writev takes here
    expected += bytes([7]) * 40
    write(transport, fd, pieces[2])
    expected += pieces[2]
    assert calls, "the socket took 100 kB at once: the test proves nothing"
    assert await read_exactly(theirs, len(expected)) == expected
    transport.close()
    theirs.close()


@pytest.mark.skipif(os.environ.get("WSSERVER_TEST_LOOP") == "uvloop", reason="asyncio's transport")
async def test_a_partial_writev_hands_the_rest_over_without_losing_a_byte() -> None:
    transport, theirs, calls = await accepted_pair(sndbuf=4096)
    fd = direct_fd(transport)
    chunks = [b"head", os.urandom(300_000), b"tail", os.urandom(70_000)]
    writelines(transport, fd, chunks)
    assert calls and calls[0][0] == "write"  # the rest, handed over
    assert await read_exactly(theirs, sum(map(len, chunks))) == b"".join(chunks)
    transport.close()
    theirs.close()


async def test_a_write_to_a_broken_connection_closes_the_transport_as_usual() -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    lost = loop.create_future()

    class Watch(asyncio.Protocol):
        def connection_lost(self, exc: Exception | None) -> None:
            lost.set_result(exc)

    transport, _ = await loop.connect_accepted_socket(Watch, ours)
    theirs.close()
    fd = direct_fd(transport)
    for _ in range(3):
        write(transport, fd, b"x" * 1000)
    exc = await asyncio.wait_for(lost, 5)
    assert isinstance(exc, OSError)
    assert transport.is_closing()


def test_only_asyncio_selector_transports_are_written_to_directly() -> None:
    class Other(asyncio.Transport):
        pass

    assert direct_fd(Other()) == -1
    assert transports._SELECTOR_TRANSPORT.__name__ == "_SelectorSocketTransport"


@pytest.mark.skipif(os.environ.get("WSSERVER_TEST_LOOP") == "uvloop", reason="asyncio's transport")
async def test_many_chunks_to_a_dead_peer_log_nothing(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    transport, _ = await loop.connect_accepted_socket(Spy, ours)
    transport.pause_reading()  # the reset is met by a write, not by a read
    theirs.close()
    fd = direct_fd(transport)
    write(transport, fd, b"x")  # the first write meets the error...
    with caplog.at_level("WARNING", logger="asyncio"):
        for _ in range(3):
            writelines(transport, fd, [b"chunk"] * 12)  # ... and these must not warn per chunk
    assert "socket.send() raised exception" not in caplog.text
    assert transport.is_closing()


@pytest.mark.skipif(os.environ.get("WSSERVER_TEST_LOOP") == "uvloop", reason="asyncio's transport")
async def test_nothing_reaches_the_socket_once_the_transport_is_closing() -> None:
    transport, theirs, _ = await accepted_pair()
    fd = direct_fd(transport)
    write(transport, fd, b"before")
    transport.abort()  # closing; its socket is closed in a later iteration
    write(transport, fd, b"after")
    writelines(transport, fd, [b"after", b"too"])
    await asyncio.sleep(0.05)
    received = b""
    with contextlib.suppress(BlockingIOError, ConnectionError):
        while chunk := theirs.recv(1024):
            received += chunk
    assert received == b"before"
    theirs.close()


class _CompletionTransport(asyncio.Transport):
    """A socket transport of another loop under asyncio's TLS layer (one that
    may fill the buffer get_buffer() gave it later, as a completion-based
    loop's does)."""

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


@pytest.mark.skipif(os.environ.get("WSSERVER_TEST_LOOP") == "uvloop", reason="asyncio's transport")
@pytest.mark.parametrize("under", ["selector", "another loop's"])
async def test_the_tls_read_buffer_is_shared_only_over_asyncio_s_own_socket_transport(
    under: str,
) -> None:
    # asyncio's TLS layer copies what its socket transport read out of the
    # buffer at once only where that transport reads and hands it over in one
    # go (asyncio's selector transport); another loop's transport under it may
    # hold the buffer get_buffer() gave it while it reads, two connections at
    # once: each keeps a buffer of its own there.
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    try:
        tls = sslproto.SSLProtocol(
            loop,
            asyncio.BufferedProtocol(),
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER),
            None,
            server_side=True,
        )
        if under == "selector":
            socket_transport, _ = await loop.connect_accepted_socket(Spy, ours)
        else:
            socket_transport = _CompletionTransport()
        tls._transport = socket_transport  # type: ignore[attr-defined]
        shared = memoryview(bytearray(sslproto.SSLProtocol.max_size))
        transports.share_tls_read_buffer(tls._get_app_transport(), shared)  # type: ignore[attr-defined]
        assert (tls._ssl_buffer is shared.obj) == (under == "selector")  # type: ignore[attr-defined]
        if under == "selector":
            socket_transport.abort()
    finally:
        ours.close()
        theirs.close()
