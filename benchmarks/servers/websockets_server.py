"""websockets (its asyncio implementation): echo at ``/``, broadcast at ``/bcast``.

``python -m benchmarks.servers.websockets_server --port P [--compression deflate]
[--loop uvloop] [--certfile PEM --keyfile PEM]``
"""

from __future__ import annotations

from websockets.asyncio.server import broadcast, serve

from benchmarks.servers.common import (
    BACKLOG,
    HOST,
    MAX_SIZE,
    parse_args,
    run,
    ssl_context,
    websockets_api_handler,
)

handler = websockets_api_handler(broadcast)


def main() -> None:
    args = parse_args(__doc__ or "")

    async def serve_forever() -> None:
        async with serve(
            handler,
            HOST,
            args.port,
            compression="deflate" if args.compression == "deflate" else None,
            max_size=MAX_SIZE,
            ping_interval=None,
            backlog=BACKLOG,
            ssl=ssl_context(args),
        ) as server:
            await server.serve_forever()

    run(serve_forever, args.loop)


if __name__ == "__main__":
    main()
