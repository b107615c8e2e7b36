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

from .app.routing import Router
from .config import Config
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
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port; default 8000)")
    # Settings flags default to SUPPRESS: only flags actually given reach the
    # namespace, so the environment and the defaults apply to the others.
    s = argparse.SUPPRESS
    p.add_argument(
        "--max-size", default=s, type=_optional_int, help="largest message in bytes, or 'none'"
    )
    p.add_argument("--max-queue", default=s, type=int, help="messages queued before reading pauses")
    p.add_argument(
        "--ping-interval", default=s, type=_optional_float, help="seconds between pings, or 'none'"
    )
    p.add_argument(
        "--ping-timeout",
        default=s,
        type=_optional_float,
        help="seconds to wait for a pong, or 'none'",
    )
    p.add_argument(
        "--open-timeout", default=s, type=_optional_float, help="seconds for the opening handshake"
    )
    p.add_argument(
        "--close-timeout", default=s, type=float, help="seconds for the closing handshake"
    )
    p.add_argument(
        "--compression", default=s, choices=["deflate", "none"], help="permessage-deflate on or off"
    )
    p.add_argument(
        "--max-connections",
        default=s,
        type=_optional_int,
        help="open connections beyond which handshakes get 503",
    )
    p.add_argument(
        "--shutdown-timeout",
        default=s,
        type=float,
        help="seconds handlers get to finish on shutdown",
    )
    p.add_argument("--backlog", default=s, type=int, help="listen backlog")
    p.add_argument(
        "--origin",
        dest="origins",
        action="append",
        default=s,
        type=lambda v: None if v.lower() == "none" else v,
        help="accepted Origin (repeatable; 'none' admits requests without one)",
    )
    p.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="event loop (uvloop needs: pip install wsserver[uvloop])",
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error", "critical"],
        help="logging level (default info)",
    )
    return p


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "null", "off") else int(text)


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "null", "off") else float(text)


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
    overrides = {
        k: v for k, v in vars(args).items() if k not in ("app", "host", "port", "log_level", "loop")
    }
    if "compression" in overrides and overrides["compression"] == "none":
        overrides["compression"] = None
    return Config.from_sources(os.environ, **overrides)


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
