"""Command line: ``python -m wsserver module:attr [options]``."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__
from .app.routing import Router
from .config import Config, add_flags, flag_settings
from .errors import ConfigError
from .server.server import serve

logger = logging.getLogger("wsserver.server")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``wsserver`` command."""
    p = argparse.ArgumentParser(
        prog="python -m wsserver",
        description="Serve the WebSocket routes of module:attr (a Router, or a "
        "function that returns one).",
        epilog="Flags win over WEBSOCKET_* environment variables, which win over defaults.",
    )
    p.add_argument("app", help="module:attr, e.g. examples.echo:routes")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="port (0: any free port; default 8000)")
    add_flags(p)
    p.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="event loop (uvloop needs: pip install wsserver[uvloop])",
    )
    p.add_argument("--version", action="version", version=f"wsserver {__version__}")
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error", "critical"],
        help="logging level (default info)",
    )
    return p


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("expected a port number from 0 to 65535")
    return port


def load_router(spec: str) -> Router:
    """Import ``module:attr`` and return the Router it names (calling a factory).

    Raises:
        ValueError: ``spec`` is malformed or does not name a Router.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected module:attr, got {spec!r}")
    module = importlib.import_module(module_name)
    try:
        obj: Any = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(obj, Router) and callable(obj):
        obj = obj()
    if not isinstance(obj, Router):
        raise ValueError(f"{spec} is a {type(obj).__name__}, not a wsserver.Router")
    return obj


def config_from_args(args: argparse.Namespace) -> Config:
    """The Config for parsed arguments: flags, then the environment, then defaults."""
    return Config.from_sources(os.environ, **flag_settings(args))


async def run(router: Router, host: str, port: int, config: Config) -> None:
    """Serve until SIGINT/SIGTERM; a second signal exits at once."""
    server = serve(router, host, port, config=config)
    await server.start()
    loop = asyncio.get_running_loop()
    stopping = False
    closing: list[asyncio.Task[None]] = []

    def on_signal(signum: int) -> None:
        nonlocal stopping
        if stopping:
            logger.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(1)
        stopping = True
        logger.info("%s: shutting down", signal.Signals(signum).name)
        closing.append(loop.create_task(server.close()))

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    for sock in server.sockets:
        address = sock.getsockname()
        logger.info("listening on ws://%s:%d", *_display(address))
    await server.serve_forever()
    logger.info("stopped")


def _display(address: Any) -> tuple[str, int]:
    host, port = address[0], address[1]
    if ":" in host:
        host = f"[{host}]"
    return host, port


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Modules are found in the current directory, whether this runs as
    # ``python -m wsserver`` (which puts it first on sys.path) or as the
    # ``wsserver`` console script (which puts the script's own directory).
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = config_from_args(args)
        router = load_router(args.app)
    except (ConfigError, ValueError, ImportError) as exc:
        parser.exit(2, f"error: {exc}\n")
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            parser.exit(2, "error: --loop uvloop needs uvloop: pip install wsserver[uvloop]\n")
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        asyncio.run(run(router, args.host, args.port, config))
    except OSError as exc:
        logger.error("cannot listen on %s:%s: %s", args.host, args.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
