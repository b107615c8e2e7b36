"""Command line: ``python -m wsserver module:attr [options]``."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__
from .app.routing import Router
from .asgi import ASGIApplication, is_asgi_app
from .asgi.lifespan import LifespanFailure
from .config import Config, add_flags, flag_settings
from .errors import ConfigError
from .server.server import ASGI_DEFAULTS, serve

logger = logging.getLogger("wsserver.server")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``wsserver`` command."""
    p = argparse.ArgumentParser(
        prog="python -m wsserver",
        description="Serve module:attr: a wsserver Router (or a function that returns one), "
        "or an ASGI 3 application (Starlette, FastAPI, ...).",
        epilog="Flags win over WEBSOCKET_* environment variables, which win over defaults.",
    )
    p.add_argument("app", help="module:attr, e.g. examples.echo:routes or main:app")
    p.add_argument(
        "--interface",
        choices=["auto", "router", "asgi"],
        default="auto",
        help="what module:attr is (default auto: a Router, else an ASGI application)",
    )
    p.add_argument(
        "--factory",
        action="store_true",
        help="module:attr is a function without arguments that returns the application",
    )
    p.add_argument(
        "--app-dir",
        default="",
        help="directory to import module:attr from (default: the current directory)",
    )
    p.add_argument(
        "--ws-per-message-deflate",
        dest="per_message_deflate",
        type=_boolean,
        default=None,
        metavar="true|false",
        help="uvicorn's name for --compression deflate|none (default: on for ASGI apps, "
        "off for Routers)",
    )
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


def _boolean(text: str) -> bool:
    word = text.strip().lower()
    if word in ("true", "yes", "on", "1"):
        return True
    if word in ("false", "no", "off", "0"):
        return False
    raise argparse.ArgumentTypeError("expected true or false")


def load_app(spec: str, interface: str = "auto", factory: bool = False) -> Any:
    """Import ``module:attr`` and return the Router or ASGI application it names.

    ``factory`` calls it first (with no arguments). Unless ``interface`` is
    ``"asgi"``, a function that is neither and takes no argument is called
    as a factory too (what earlier versions did for Routers).

    Raises:
        ValueError: ``spec`` is malformed or does not name what ``interface`` says.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected module:attr, got {spec!r}")
    module = importlib.import_module(module_name)
    try:
        obj: Any = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None
    servable = isinstance(obj, Router) or is_asgi_app(obj)
    if factory or (interface != "asgi" and not servable and _no_args(obj)):
        if not callable(obj):
            raise ValueError(f"--factory: {spec} is a {type(obj).__name__}, not a function")
        obj = obj()
    if interface in ("auto", "router") and isinstance(obj, Router):
        return obj
    if interface == "auto" and is_asgi_app(obj):
        return obj
    if interface == "asgi" and callable(obj) and not isinstance(obj, Router | type):
        return obj  # forced: any callable (one whose __call__ returns an awaitable, say)
    wanted = {
        "router": "a wsserver.Router",
        "asgi": "an ASGI 3 application (async def app(scope, receive, send))",
        "auto": "a wsserver.Router or an ASGI 3 application (async def app(scope, receive, send))",
    }[interface]
    raise ValueError(f"{spec} is a {type(obj).__name__}, not {wanted}")


def _no_args(obj: Any) -> bool:
    """Whether ``obj`` is a function that can be called without arguments (a factory)."""
    if not callable(obj) or isinstance(obj, type):
        return False
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in signature.parameters.values()
    )


def load_router(spec: str) -> Router:
    """Import ``module:attr`` and return the Router it names (calling a factory).

    Raises:
        ValueError: ``spec`` is malformed or does not name a Router.
    """
    app = load_app(spec, "router")
    assert isinstance(app, Router)
    return app


def config_from_args(args: argparse.Namespace, *, asgi: bool = False) -> Config:
    """The Config for parsed arguments: flags, then the environment, then defaults.

    ``asgi``: the defaults of an ASGI application (compression on).
    """
    settings = flag_settings(args)
    deflate = getattr(args, "per_message_deflate", None)
    if deflate is not None and "compression" not in settings:
        settings["compression"] = "deflate" if deflate else None
    return Config.from_sources(os.environ, defaults=ASGI_DEFAULTS if asgi else None, **settings)


async def run(app: Any, host: str, port: int, config: Config) -> None:
    """Serve until SIGINT/SIGTERM; a second signal exits at once.

    Raises:
        LifespanFailure: an ASGI application's startup failed.
    """
    server = serve(app, host, port, config=config)
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
    if args.app_dir:
        sys.path.insert(0, os.path.abspath(args.app_dir))
    elif os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        app = load_app(args.app, args.interface, args.factory)
        config = config_from_args(args, asgi=not isinstance(app, Router))
        if not isinstance(app, Router) and not is_asgi_app(app):
            app = ASGIApplication(app, config)  # --interface asgi vouches for it
    except (ConfigError, ValueError, ImportError) as exc:
        parser.exit(2, f"error: {exc}\n")
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            parser.exit(2, "error: --loop uvloop needs uvloop: pip install wsserver[uvloop]\n")
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        asyncio.run(run(app, args.host, args.port, config))
    except LifespanFailure as exc:
        logger.error("ASGI lifespan startup failed: %s", exc)
        return 3
    except OSError as exc:
        logger.error("cannot listen on %s:%s: %s", args.host, args.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
