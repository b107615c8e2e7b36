"""aiohttp (``web.WebSocketResponse``): echo at ``/``, broadcast at ``/bcast``.

``python -m benchmarks.servers.aiohttp_server --port P [--compression deflate]
[--loop uvloop] [--certfile PEM --keyfile PEM]``
"""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType, web

from benchmarks.servers.common import (
    BACKLOG,
    HOST,
    MAX_SIZE,
    broadcast_payload,
    parse_args,
    run,
    ssl_context,
)

SUBSCRIBERS: set[web.WebSocketResponse] = set()
COMPRESS = web.AppKey("compress", bool)


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=request.app[COMPRESS], max_msg_size=MAX_SIZE)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type is WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def subscribe(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=request.app[COMPRESS], max_msg_size=MAX_SIZE)
    await ws.prepare(request)
    SUBSCRIBERS.add(ws)
    try:
        async for msg in ws:
            payload = broadcast_payload(msg.data if msg.type is WSMsgType.TEXT else None)
            if payload is not None:
                # Sequential awaits beat asyncio.gather here (no task per
                # peer): send_str only suspends when that peer's write buffer
                # is over its high-water mark, which idle benchmark clients
                # never reach.
                for peer in list(SUBSCRIBERS):
                    await peer.send_str(payload)
    finally:
        SUBSCRIBERS.discard(ws)
    return ws


def main() -> None:
    args = parse_args(__doc__ or "")

    async def serve_forever() -> None:
        app = web.Application()
        app[COMPRESS] = args.compression == "deflate"
        app.router.add_get("/", echo)
        app.router.add_get("/bcast", subscribe)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, HOST, args.port, backlog=BACKLOG, ssl_context=ssl_context(args))
        await site.start()
        await asyncio.Event().wait()

    run(serve_forever, args.loop)


if __name__ == "__main__":
    main()
