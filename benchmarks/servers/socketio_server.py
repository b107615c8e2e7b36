"""python-socketio (``AsyncServer`` on aiohttp): the fan-out peer.

``python -m benchmarks.servers.socketio_server --port P [--workers N]
[--redis redis://127.0.0.1:PORT/0]``

Socket.IO at ``/socket.io/``, WebSocket transport only (no long-polling, so no
sticky sessions are needed across processes). A client that emits
``subscribe`` joins the room ``bench`` and is answered with the event
``subscribed`` carrying the pid of its process; ``publish`` with a payload
emits the event ``msg`` with it to the room. With ``--redis`` the server uses
python-socketio's ``AsyncRedisManager``, which carries every emit to the other
processes through Redis publish/subscribe.

With ``--workers N`` (N > 1) this process binds the listening socket once and
starts N worker processes that accept on it (``--fd``), as wsserver's
``--workers`` does, and as uvicorn's do; it stops them when it gets SIGTERM.
They stay in its process group, so the harness's SIGKILL reaches them too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import socketio
from aiohttp import web

from benchmarks.servers.common import BACKLOG, HOST, run

ROOM = "bench"


def make_app(redis_url: str | None) -> web.Application:
    manager = socketio.AsyncRedisManager(redis_url) if redis_url else None
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        client_manager=manager,
        transports=["websocket"],
        logger=False,
        engineio_logger=False,
    )

    @sio.on("subscribe")
    async def subscribe(sid: str) -> None:
        await sio.enter_room(sid, ROOM)
        await sio.emit("subscribed", os.getpid(), to=sid)

    @sio.on("publish")
    async def publish(sid: str, data: str) -> None:
        await sio.emit("msg", data, room=ROOM)

    app = web.Application()
    sio.attach(app)
    return app


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fd", type=int, help="serve on this inherited listening socket")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--redis", help="redis://host:port/db: AsyncRedisManager")
    return parser.parse_args()


def serve(args: argparse.Namespace) -> None:
    """Serve in this process, on an inherited socket or a new one."""

    async def serve_forever() -> None:
        runner = web.AppRunner(make_app(args.redis), access_log=None, handle_signals=False)
        await runner.setup()
        if args.fd is not None:
            site: web.BaseSite = web.SockSite(runner, socket.socket(fileno=args.fd))
        else:
            site = web.TCPSite(runner, HOST, args.port, backlog=BACKLOG)
        await site.start()
        await asyncio.Event().wait()

    run(serve_forever, "asyncio")


def supervise(args: argparse.Namespace) -> None:
    """Bind once, start the workers on that socket, stop them on SIGTERM."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, args.port))
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    command = [
        sys.executable,
        "-m",
        "benchmarks.servers.socketio_server",
        "--fd",
        str(sock.fileno()),
    ]
    if args.redis:
        command += ["--redis", args.redis]
    workers = [
        subprocess.Popen(command, pass_fds=(sock.fileno(),), stdin=subprocess.DEVNULL)
        for _ in range(args.workers)
    ]

    def stop(signum: int, frame: object) -> None:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while all(worker.poll() is None for worker in workers):
        time.sleep(0.2)
    stop(signal.SIGTERM, None)  # one died: the measurement fails, the others stop


def main() -> None:
    args = parse_args()
    if args.workers > 1 and args.fd is None:
        supervise(args)
    else:
        serve(args)


if __name__ == "__main__":
    main()
