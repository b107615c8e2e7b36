"""A reverse proxy on loopback that serves an upstream server under a path prefix.

What a deployment behind nginx's ``location /app/ { proxy_pass http://up/; }``
does: ``/app/x?y`` is forwarded as ``/x?y``, HTTP requests and WebSocket
upgrades alike (a WebSocket is bridged message by message). Pages served
through it show whether they build their URLs relative to where they are.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["PrefixProxy"]

#: Headers that are the hop's own, not forwarded (RFC 9110 7.6.1), with those
#: aiohttp sets itself.
_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-accept",
        "sec-websocket-protocol",
    )
)


class PrefixProxy:
    """Serves 127.0.0.1:``target`` at ``http://127.0.0.1:<port><prefix>``; use ``async with``."""

    def __init__(self, target: int, prefix: str = "/app/") -> None:
        self.target = target
        self.prefix = prefix
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PrefixProxy:
        app = web.Application()
        app.router.add_route("*", self.prefix + "{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._session = aiohttp.ClientSession(auto_decompress=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._session is not None and self._runner is not None
        await self._session.close()
        await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        target = f"127.0.0.1:{self.target}/{request.match_info['tail']}"
        if request.query_string:
            target += "?" + request.query_string
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        if request.headers.get("upgrade", "").lower() == "websocket":
            return await self._bridge(request, "ws://" + target, headers)
        async with self._session.request(
            request.method,
            "http://" + target,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as answer:
            kept = [(k, v) for k, v in answer.headers.items() if k.lower() not in _HOP]
            return web.Response(status=answer.status, body=await answer.read(), headers=kept)

    async def _bridge(self, request: web.Request, url: str, headers: dict[str, str]) -> Any:
        assert self._session is not None
        headers.pop("Origin", None)
        async with self._session.ws_connect(url, headers=headers) as upstream:
            downstream = web.WebSocketResponse()
            await downstream.prepare(request)

            async def pump(source: Any, sink: Any) -> None:
                async for message in source:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        await sink.send_str(message.data)
                    elif message.type == aiohttp.WSMsgType.BINARY:
                        await sink.send_bytes(message.data)
                await sink.close()

            tasks = [
                asyncio.ensure_future(pump(upstream, downstream)),
                asyncio.ensure_future(pump(downstream, upstream)),
            ]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await task
            return downstream
