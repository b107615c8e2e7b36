"""A TCP proxy on loopback whose connections can be cut off silently (outage drills).

A network that drops a connection without a FIN or a reset (a NAT, a firewall
or a load balancer forgetting it) leaves both ends open and waiting: nothing
fails until one end asks and times out. :meth:`Proxy.black_hole` does that to
the connections it picks: from then on their bytes go nowhere, either way,
and nothing is closed. New connections go through as before.
:meth:`Proxy.hold` delays instead: the bytes of the connections it picks are
kept, either way, until :meth:`Proxy.release` forwards them (a slow path, a
segment retransmitted). ``client_rate`` paces what clients send, a slow uplink.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

__all__ = ["Proxy", "Link"]


class Link:
    """One proxied connection: what its client has sent so far, and whether it is cut off."""

    def __init__(self) -> None:
        self.from_client = bytearray()
        self.cut = False
        self.held = False
        #: What came while held, for the writer of its direction, in order.
        self.kept: list[tuple[asyncio.StreamWriter, bytes]] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.writers: list[asyncio.StreamWriter] = []


class Proxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target``; use ``async with``.

    ``client_rate``: the clients' bytes go on at most that many a second, in
    twentieths of it (a slow uplink; the client's own sends back up behind it).
    """

    def __init__(self, target: int, client_rate: int | None = None) -> None:
        self.target = target
        self.client_rate = client_rate
        self.port = 0
        self.links: list[Link] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for link in self.links:
            for task in link.tasks:
                task.cancel()
            for writer in link.writers:
                writer.transport.abort()
        await self._server.wait_closed()

    def black_hole(self, which: Callable[[Link], bool]) -> int:
        """Cut off the open connections ``which`` picks, silently; how many."""
        cut = 0
        for link in self.links:
            if not link.cut and which(link):
                link.cut = True
                cut += 1
        return cut

    def hold(self, which: Callable[[Link], bool]) -> int:
        """Keep what the open connections ``which`` picks carry, either way,
        until :meth:`release`; how many."""
        held = 0
        for link in self.links:
            if not link.cut and not link.held and which(link):
                link.held = True
                held += 1
        return held

    def release(self) -> None:
        """Forward what the held connections kept, and hold them no more."""
        for link in self.links:
            if link.held:
                link.held = False
                for writer, data in link.kept:
                    if not writer.transport.is_closing():  # (uvloop raises, asyncio drops it)
                        writer.write(data)
                link.kept.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = Link()
        self.links.append(link)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        link.writers = [writer, up_writer]
        link.tasks = [
            asyncio.ensure_future(
                self._pump(reader, up_writer, link, record=True, rate=self.client_rate)
            ),
            asyncio.ensure_future(self._pump(up_reader, writer, link, record=False)),
        ]

    @staticmethod
    async def _pump(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: Link,
        *,
        record: bool,
        rate: int | None = None,
    ) -> None:
        piece = 65536 if rate is None else max(1, rate // 20)
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(piece):
                if rate is not None:
                    await asyncio.sleep(0.05)  # (pacing: a twentieth of a second a piece)
                if link.cut:
                    continue  # into the void: nothing forwarded, nothing closed
                if record:
                    link.from_client += data
                if link.held:
                    link.kept.append((writer, data))
                    continue
                writer.write(data)
                await writer.drain()
            if not link.cut:
                writer.close()
