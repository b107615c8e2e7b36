"""Test helpers: a raw WebSocket client for byte-exact checks, server start-up, TLS files."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import logging
import os
import socket
import ssl
import struct
import sys
import time
from pathlib import Path
from typing import Any

import trustme

from wsserver import Request, Router, Server, WebSocket, serve
from wsserver.protocol.frames import (
    FrameParser,
    Opcode,
    parse_close,
    serialize_close,
    serialize_frame,
)
from wsserver.server.http_protocol import HttpProtocol

MASK = b"\x12\x34\x56\x78"


def long_form_head(b0: int, indicator: int, length: int) -> bytes:
    """A masked frame's header up to its mask, ``length`` written after
    ``indicator`` (126: in 2 bytes, 127: in 8) however small it is."""
    size = "!H" if indicator == 126 else "!Q"
    return bytes([b0, 0x80 | indicator]) + struct.pack(size, length)


def errors_logged(caplog: Any) -> list[str]:
    """The ERROR records of a test, all phases (``caplog.records`` alone is the current one's)."""
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    return [r.getMessage() for r in records if r.levelno >= logging.ERROR]


async def wait_for(condition: Any, timeout: float = 10.0, what: str = "") -> None:
    """Until ``condition()`` (a value, or an awaitable of one) is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")


async def answer_once_released(
    server: Server, path: str, entered: asyncio.Event, go: asyncio.Event, *, shutting_down: bool
) -> bytes:
    """Send ``GET path``; once the application has it (``entered``), start the
    server's shutdown if ``shutting_down`` (until it is closing), let the
    application go on (``go``), and return all the client reads (the
    shutdown then awaited)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await asyncio.wait_for(entered.wait(), 5)
    stopping = None
    if shutting_down:
        stopping = asyncio.create_task(server.close())
        await wait_for(lambda: server.closing, what="the shutdown")
    go.set()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    if stopping is not None:
        await asyncio.wait_for(stopping, 5)
    return answer


def echo_routes(*paths: str) -> Router:
    """A router that echoes every message at each of ``paths`` (default ``/``)."""
    routes = Router()

    async def echo(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    for path in paths or ("/",):
        routes.add_websocket_route(echo, path)
    return routes


async def start_server(routes: Router, **settings: Any) -> Server:
    """A started server on 127.0.0.1 and a free port, or where ``sock=`` or
    ``uds=`` says (no keepalive unless asked)."""
    settings.setdefault("ping_interval", None)
    if "sock" in settings or "uds" in settings:
        server = serve(routes, **settings)
    else:
        server = serve(routes, "127.0.0.1", 0, **settings)
    await server.start()
    return server


async def exchange(port: int, data: bytes, wait: float = 5.0) -> bytes:
    """Send ``data``; everything the server sends until it closes (or ``wait`` passes,
    then ``<still open>`` ends it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    return await read_until_closed(reader, writer, wait)


def h11_holds(server: Server) -> int:
    """The most bytes h11 holds unparsed on any of ``server``'s HTTP connections now."""
    return max(
        (len(p._h11._receive_buffer) for p in server.connections if isinstance(p, HttpProtocol)),
        default=0,
    )


async def pipelined_answers(port: int, request: bytes, n: int) -> int:
    """Send ``request`` ``n`` times at once, pipelined, reading the answers as
    they come: how many ``200`` answers came (all ``n``, or the connection
    closed first)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def answers() -> int:
        got = 0
        tail = b""
        while got < n:
            data = await reader.read(1 << 20)
            if not data:
                break
            data = tail + data
            got += data.count(b"HTTP/1.1 200")
            tail = data[-16:]
            got -= tail.count(b"HTTP/1.1 200")
        return got + tail.count(b"HTTP/1.1 200")

    reading = asyncio.create_task(answers())
    writer.write(request * n)
    try:
        return await asyncio.wait_for(reading, 60)
    finally:
        writer.close()


async def read_until_closed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, wait: float = 5.0
) -> bytes:
    """Everything the server sends until it closes (or ``wait`` passes, then
    ``<still open>`` ends it); the connection is closed after."""
    received = b""
    try:
        async with asyncio.timeout(wait):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        received += b"<still open>"
    writer.close()
    return received


async def slow_reader(port: int, receive_buffer: int = 4096) -> socket.socket:
    """A non-blocking client socket (for ``loop.sock_*``) connected to ``port``
    whose receive buffer is ``receive_buffer`` bytes, set before connecting so
    that the window it offers the server is that small too: a client that
    reads slowly, or not at all, holds the server's writing back at once."""
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


async def sends_on_then_ends(server: Server, writer: asyncio.StreamWriter) -> None:
    """A client answered and closed on (the server sent its end after the
    answer) goes on sending, 20 x 64 KiB: nothing resets, the server reads and
    drops it all; then the client's own end closes the connection."""
    for _ in range(20):
        writer.write(bytes(65536))
        await writer.drain()
    assert len(server.connections) == 1
    writer.write_eof()
    await wait_for(lambda: not server.connections, timeout=3)


def upgrade_request(path: str = "/", headers: list[tuple[str, str]] | None = None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    lines += [f"{name}: {value}" for name, value in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class RawClient:
    """A minimal client that sends exactly the bytes a test asks for."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = FrameParser(masked=False, allow_rsv1=True)
        self.response_head = b""

    @classmethod
    async def connect(
        cls,
        port: int,
        path: str = "/",
        headers: list[tuple[str, str]] | None = None,
        first_frames: bytes = b"",
    ) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        writer.write(upgrade_request(path, headers) + first_frames)
        client.response_head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert client.response_head.startswith(b"HTTP/1.1 101 "), client.response_head
        return client

    def send(self, opcode: int, payload: bytes = b"", fin: bool = True, rsv1: bool = False) -> None:
        self.writer.write(serialize_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=MASK))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def recv_frame(self, timeout: float = 5) -> tuple[int, bool, bool, bytes]:
        """The next whole frame from the server: (opcode, fin, rsv1, payload)."""
        parts: list[bytes] = []
        async with asyncio.timeout(timeout):
            while True:
                piece = self.parser.next_piece()
                if piece is None:
                    data = await self.reader.read(65536)
                    if not data:
                        raise ConnectionError("server closed TCP")
                    self.parser.feed(data)
                    continue
                opcode, fin, rsv1, payload, length, offset = piece
                parts.append(payload)
                if offset + len(payload) == length:
                    return opcode, fin, rsv1, b"".join(parts)

    async def expect_close(self, code: int, timeout: float = 5) -> str:
        """Read until a close frame; check its code; reply; wait for TCP close."""
        while True:
            opcode, _, _, payload = await self.recv_frame(timeout)
            if opcode == Opcode.CLOSE:
                break
        got, reason = parse_close(payload)
        assert got == code, (got, reason)
        self.send(Opcode.CLOSE, serialize_close(code) if code != 1005 else b"")
        await self.expect_eof(timeout)
        return reason

    async def expect_eof(self, timeout: float = 5) -> None:
        async with asyncio.timeout(timeout):
            while await self.reader.read(65536):
                pass

    def close(self) -> None:
        self.writer.close()


async def cancelled_elsewhere() -> None:
    """Raise what code awaiting a future that other code cancelled meets: a
    CancelledError in a task that nobody cancelled."""
    future = asyncio.get_running_loop().create_future()
    future.cancel()
    await future


# ---------------------------------------------------------------------- TLS


def tls_server_files(ca: trustme.CA, directory: Path) -> dict[str, str]:
    """``ssl_certfile`` and ``ssl_keyfile`` of a server whose certificate is
    ``ca``'s for 127.0.0.1, written in ``directory``."""
    cert = ca.issue_cert("127.0.0.1")
    files = {
        "ssl_certfile": str(directory / "cert.pem"),
        "ssl_keyfile": str(directory / "key.pem"),
    }
    cert.cert_chain_pems[0].write_to_path(files["ssl_certfile"])
    cert.private_key_pem.write_to_path(files["ssl_keyfile"])
    return files


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    """A TLS server's context with ``ca``'s certificate for 127.0.0.1."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def client_context(ca: trustme.CA, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    """A TLS client's context that trusts ``ca`` (and presents ``cert``, if given)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if cert is not None:
        cert.configure_cert(context)
    return context


def open_descriptors_of(path: Any) -> int:
    """How many of this process's descriptors are open on the file at ``path``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return count


FAST_READER = """
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(bytes.fromhex(sys.argv[2]))
got, said, buffer = 0, False, bytearray(1 << 20)
while n := s.recv_into(buffer):
    got += n
    if got > 100_000 and not said:
        print("started", flush=True)
        said = True
print(got, flush=True)
"""


@contextlib.asynccontextmanager
async def fast_reader(port: int, request: bytes) -> Any:
    """A client in a process of its own that sends ``request`` and takes what
    comes as fast as it comes, until the server closes; yields its
    ``reading()``: first once 100 kB came, then how many bytes in all."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FAST_READER, str(port), request.hex(), stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    stdout = process.stdout

    async def reading() -> bytes:
        return await asyncio.wait_for(stdout.readline(), 60)

    try:
        yield reading
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


GET_WHEN_TOLD = """
import socket, sys
port, path = int(sys.argv[1]), sys.argv[2].encode()
sys.stdin.readline()
with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
    s.sendall(b"GET %s HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n" % path)
    answer = b""
    while chunk := s.recv(65536):
        answer += chunk
print(answer.split(b"\\r\\n\\r\\n", 1)[1].decode(), flush=True)
"""


@contextlib.asynccontextmanager
async def get_when_told(port: int, path: str) -> Any:
    """A client in a process of its own (no share of this one's GIL, nor of its
    loop), started now; yields ``get()``: the GET of ``path``, sent once asked,
    and its body."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        GET_WHEN_TOLD,
        str(port),
        path,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    async def get() -> str:
        stdin.write(b"go\n")
        return (await asyncio.wait_for(stdout.readline(), 60)).decode().strip()

    try:
        yield get
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def get_blocking(port: int, path: str) -> bytes:
    """The body of a GET (a blocking client, for a thread: it works while the
    event loop of the server is held)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
    return body_of_answer(s)


def body_of_answer(sock: socket.socket) -> bytes:
    """The body of the answer that comes on the blocking socket ``sock`` (read
    to its close; then closed)."""
    with sock:
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.split(b"\r\n\r\n", 1)[1]
