"""picows: echo at ``/``, broadcast at ``/bcast``.

``python -m benchmarks.servers.picows_server --port P [--compression deflate]
[--loop uvloop]``

picows' own API (``ws_create_server`` + ``WSListener``, frame callbacks, no
coroutines) has no permessage-deflate. With ``--compression deflate`` the
server runs on ``picows.websockets`` instead, picows' websockets-compatible
layer, which negotiates it.
"""

from __future__ import annotations

from picows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_create_server,
)

from benchmarks.servers.common import (
    BACKLOG,
    HOST,
    MAX_SIZE,
    broadcast_payload,
    parse_args,
    run,
    websockets_api_handler,
)

DATA = (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION)
SUBSCRIBERS: set[WSTransport] = set()


class Echo(WSListener):
    """Sends every data frame back as it came (same opcode, same FIN)."""

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type in DATA:
            transport.send(frame.msg_type, frame.get_payload_as_memoryview(), frame.fin)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


class Subscriber(WSListener):
    """Joins the broadcast set; a trigger frame sends a payload to the set."""

    def on_ws_connected(self, transport: WSTransport) -> None:
        SUBSCRIBERS.add(transport)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        SUBSCRIBERS.discard(transport)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            payload = broadcast_payload(frame.get_payload_as_utf8_text())
            if payload is not None:
                data = payload.encode()
                for peer in SUBSCRIBERS:
                    peer.send(WSMsgType.TEXT, data)
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()


def listener_factory(request: WSUpgradeRequest) -> WSListener | None:
    if request.path == b"/":
        return Echo()
    if request.path == b"/bcast":
        return Subscriber()
    return None


async def serve_native(port: int) -> None:
    server = await ws_create_server(
        listener_factory, HOST, port, max_frame_size=MAX_SIZE, backlog=BACKLOG
    )
    await server.serve_forever()


async def serve_compat(port: int) -> None:
    """The same two routes on picows.websockets, with permessage-deflate."""
    from picows.websockets.asyncio.server import broadcast, serve

    handler = websockets_api_handler(broadcast)

    async with serve(
        handler,
        HOST,
        port,
        compression="deflate",
        max_size=MAX_SIZE,
        ping_interval=None,
        backlog=BACKLOG,
    ) as server:
        await server.serve_forever()


def main() -> None:
    args = parse_args(__doc__ or "")
    if args.compression == "deflate":
        run(lambda: serve_compat(args.port), args.loop)
    else:
        run(lambda: serve_native(args.port), args.loop)


if __name__ == "__main__":
    main()
