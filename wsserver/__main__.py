"""Command line: ``python -m wsserver module:attr [options]``."""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import configparser
import contextlib
import difflib
import importlib
import importlib.machinery
import inspect
import ipaddress
import json
import logging
import logging.config
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, NoReturn

from . import __version__
from .app.routing import Router, route_of
from .asgi import ASGIApplication, is_asgi_app
from .asgi.lifespan import LifespanFailure
from .broker import MemoryBroker
from .config import ENV_VARS, NONE_WORDS, Config, Flag, add_flags, flag_settings, settings
from .envfile import load_env_file, reread_env_file
from .errors import ConfigError
from .logs import JsonFormatter, log_what_python_writes
from .reload import POLL_INTERVAL, FileWatcher, is_pattern
from .sdnotify import keep_watchdog, notify
from .server.descriptors import raise_open_files_limit, say_accept_failures_once_in_a_while
from .server.executor import DefaultExecutor
from .server.metrics import MULTIPROC_ENV, require_prometheus_client
from .server.server import ASGI_DEFAULTS, config_broker, remove_socket_file, serve
from .server.tls import ssl_context
from .supervisor import (
    HEALTH_TIMEOUT,
    LIMIT_REACHED,
    MOST_WORKERS,
    PING,
    PONG,
    READY,
    SIGNALLED,
    START_TIMEOUT,
    Supervisor,
    WorkerRole,
    die_with_parent,
    end_when_orphaned,
    held_hangup,
    hold_hangups,
    hold_scaling,
    ignore_signals,
    inherited_socket,
    listening_socket,
    parent_gone,
    release_scaling,
    with_flags,
    working_directory,
)
from .supervisor import (
    stop_grace as supervisor_stop_grace,  # (stop_grace: supervise()'s own figure)
)

logger = logging.getLogger("wsserver.server")


class CommandLineParser(argparse.ArgumentParser):
    """argparse's parser, keeping a list of its arguments (argparse's own is private)."""

    def __init__(self, **kwargs: Any) -> None:
        #: Every argument added, in order (``--help`` first).
        self.arguments: list[argparse.Action] = []
        #: The command line last parsed (for :meth:`error`, which argparse calls mid-way).
        self.given: list[str] = []
        super().__init__(**kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        self.arguments.append(action)
        return action

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> argparse.Namespace:
        arguments = list(sys.argv[1:] if args is None else args)
        self.given = arguments
        parsed: argparse.Namespace = super().parse_args(
            self.with_values_joined(arguments), namespace
        )
        return parsed

    def with_values_joined(self, arguments: Sequence[str]) -> list[str]:
        """``arguments`` with each value that begins with ``-`` joined to the
        flag it follows (``--status-token -Xy`` is ``--status-token=-Xy``),
        unless it is one of the flags.

        argparse takes such a value for a flag ("expected one argument"),
        where click, uvicorn's, takes it as the value: a token or a password
        drawn at random may begin with ``-``.
        """
        takes_value = {
            flag
            for action in self.arguments
            if action.nargs is None  # (one value; a switch's nargs is 0)
            for flag in action.option_strings
        }
        flags = {flag for action in self.arguments for flag in action.option_strings}
        joined: list[str] = []
        position = 0
        while position < len(arguments):
            argument = arguments[position]
            if argument == "--":
                joined.extend(arguments[position:])
                break
            value = arguments[position + 1] if position + 1 < len(arguments) else None
            if (
                argument in takes_value
                and value is not None
                and value.startswith("-")
                and value != "--"
                and value.partition("=")[0] not in flags
            ):
                joined.append(f"{argument}={value}")
                position += 2
                continue
            joined.append(argument)
            position += 1
        return joined

    def _log_format(self) -> str:
        """What the command line being parsed says of ``--log-format`` (the
        last given, as argparse takes it), else ``WEBSOCKET_LOG_FORMAT``:
        argparse stops at the first flag it refuses, before it reads the rest."""
        said = _log_format_variable()
        words = self.given[: self.given.index("--")] if "--" in self.given else self.given
        for position, word in enumerate(words):
            if word == "--log-format" and position + 1 < len(words):
                said = words[position + 1]
            elif word.startswith("--log-format="):
                said = word.partition("=")[2]
        return said

    def _flags_meant(self, message: str) -> str:
        """What argparse's "unrecognized arguments" meant, for each that is
        near one of the flags (``--workres 2``: ``--workers``), or nothing."""
        prefix = "unrecognized arguments: "
        if not message.startswith(prefix):
            return ""
        flags = [
            flag
            for action in self.arguments
            if action.help is not argparse.SUPPRESS
            for flag in action.option_strings
            if flag.startswith("--")
        ]
        meant = []
        for word in message[len(prefix) :].split():
            given = word.partition("=")[0]
            if not given.startswith("--"):
                continue
            # (Not --reload for --no-reload: the opposite of what was meant.)
            negated = given.startswith("--no-")
            alike = [flag for flag in flags if flag.startswith("--no-") == negated]
            close = difflib.get_close_matches(given, alike, n=1, cutoff=0.75)
            if close:
                meant.append(f"{given}: did you mean {close[0]}?")
        return f" ({'; '.join(meant)})" if meant else ""

    def error(self, message: str) -> NoReturn:
        """A mistake on the command line: a short usage line and what is wrong, exit 2.

        (argparse's usage lists every flag: some fifty lines above the one that matters.)
        Under ``--log-format json`` (or ``WEBSOCKET_LOG_FORMAT=json``), one JSON
        line, as every other refusal. A misspelt flag is said with the flag
        meant (``--workres: did you mean --workers?``), as click says it.
        """
        message += self._flags_meant(message)
        if self._log_format() == "json":
            if not logger.hasHandlers():
                configure_logging(None, None, "json")
            _fatal("%s (%s --help lists the flags)", message, self.prog)
            self.exit(2)
        self.exit(
            2,
            f"usage: {self.prog} [flags] module:attr ({self.prog} --help lists the flags)\n"
            f"{self.prog}: error: {message}\n",
        )


def build_parser() -> CommandLineParser:
    """The argument parser of the ``wsserver`` command."""
    p = CommandLineParser(
        prog="python -m wsserver",
        description="Serve module:attr: a wsserver Router (or a function that returns one), "
        "or an ASGI 3 application (Starlette, FastAPI, ...).",
        epilog="Flags win over WEBSOCKET_* environment variables, which win over defaults.",
        allow_abbrev=False,  # a flag added later must not break an abbreviation
    )
    p.add_argument("app", help="module:attr, e.g. examples.echo:routes or main:app")
    p.add_argument(
        "--interface",
        # (uvicorn's asgi2 and wsgi too: refused in _settle, saying why.)
        choices=["auto", "router", "asgi", "asgi3", "asgi2", "wsgi"],
        metavar="{auto,router,asgi,asgi3}",
        default="auto",
        help="what module:attr is (default auto: a Router, else an ASGI application; "
        "asgi3: uvicorn's name for asgi)",
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
    # (None: not given. --host, --port and --fd win over WEBSOCKET_UDS: see _settle().)
    p.add_argument(
        "--host",
        type=_host,
        default=None,
        help="address to listen on (default 127.0.0.1) [WEBSOCKET_HOST]",
    )
    p.add_argument(
        "--port",
        type=_port,
        default=None,
        help="port (0: any free port; default 8000) [WEBSOCKET_PORT]",
    )
    p.add_argument(
        "--uds",
        type=_uds,
        default=None,
        metavar="PATH",
        help="listen on this Unix socket instead (mode 660; a stale one is removed; none: not "
        "WEBSOCKET_UDS's) [WEBSOCKET_UDS, unless --host, --port or --fd is given]",
    )
    p.add_argument(
        "--fd",
        type=_fd,
        default=None,
        metavar="N",
        help="listen on this inherited, already bound socket (e.g. 3 under systemd socket "
        "activation)",
    )
    # Set by a supervisor on its workers' command lines, not by people.
    p.add_argument("--worker", type=_role, default=None, help=argparse.SUPPRESS)
    p.add_argument("--status-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="N",
        help="worker processes sharing the listening socket, under a supervisor, 1 included "
        "(not given: one process, no supervisor) [WEBSOCKET_WORKERS or WEB_CONCURRENCY]",
    )
    p.add_argument(
        "--worker-start-timeout",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="seconds a worker started in a rolling restart (SIGHUP, --reload, "
        "--limit-max-requests) may take to accept before it is given up and the old one kept; "
        "at the first start, or for a worker started again, a warning after it "
        f"(default {START_TIMEOUT:g}) [WEBSOCKET_WORKER_START_TIMEOUT]",
    )
    p.add_argument(
        "--timeout-worker-healthcheck",
        type=_seconds_or_none,
        default=None,
        metavar="SECONDS|none",
        help="seconds a worker's event loop may take to answer the supervisor, once the worker "
        "accepts, before it is killed and another started (a loop blocked by an endless loop "
        f"or a deadlock serves no one; default {HEALTH_TIMEOUT:g}; none: never) "
        "[WEBSOCKET_TIMEOUT_WORKER_HEALTHCHECK]",
    )
    p.add_argument(
        "--reload",
        action="store_true",
        help="for development: restart the workers (as on SIGHUP) when a source file changes; "
        "an edit that breaks the app leaves the running one serving",
    )
    p.add_argument(
        "--reload-dir",
        action="append",
        default=None,
        metavar="DIR",
        help="directory to watch with --reload (default: --app-dir, else the current "
        "directory). Repeatable.",
    )
    p.add_argument(
        "--reload-include",
        action="append",
        default=None,
        metavar="PATTERN",
        help="file names to watch with --reload, besides *.py (a glob pattern). Repeatable.",
    )
    p.add_argument(
        "--reload-exclude",
        action="append",
        default=None,
        metavar="PATTERN",
        help="file and directory names not to watch with --reload, besides hidden ones and "
        "editors' backups (.*, *~, ~*); '*.py' stops watching Python files. Repeatable.",
    )
    p.add_argument(
        "--reload-delay",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="seconds between two looks at the files with --reload (default 0.5)",
    )
    add_flags(p)
    p.add_argument(
        "--loop",
        type=_loop,
        metavar="{asyncio,uvloop,auto,none,module:function}",
        default="asyncio",
        help="event loop (uvloop needs: pip install wsserver[uvloop]; auto: uvloop if it is "
        "installed, as in uvicorn; none: uvicorn's, asyncio's own; module:function, as in "
        "uvicorn: a function that makes the loop, e.g. rloop:new_event_loop) (default asyncio, "
        "where uvicorn's is auto)",
    )
    # uvicorn's choices of HTTP and WebSocket implementation, so that its
    # command lines run: wsserver has one of each (h11, its own protocol layer).
    p.add_argument(
        "--http",
        choices=["auto", "h11", "httptools"],
        default="auto",
        help="uvicorn's: HTTP/1.1 is always h11's here (httptools: a warning says so)",
    )
    p.add_argument(
        "--ws",
        # (uvicorn's none too: refused in _settle, saying why.)
        choices=["auto", "websockets", "websockets-sansio", "wsproto", "none"],
        metavar="{auto,websockets,websockets-sansio,wsproto}",
        default="auto",
        help="uvicorn's: the WebSocket protocol is always wsserver's own here",
    )
    p.add_argument(
        "--ssl-version",
        type=_ssl_version,
        default=None,
        metavar="N",
        help="uvicorn's: TLS 1.2 and 1.3 are spoken here, whatever it says (a warning says so)",
    )
    p.add_argument(
        "--use-colors",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="uvicorn's: log lines are never coloured here (--use-colors: a warning says so)",
    )
    p.add_argument(
        "--reset-contextvars",
        action="store_true",
        help="uvicorn's: each connection's handler or application already starts from the "
        "context the server started in",
    )
    p.add_argument("--version", action="version", version=f"wsserver {__version__}")
    p.add_argument(
        "--log-config",
        default=None,  # (else WEBSOCKET_LOG_CONFIG's: see _settle())
        metavar="FILE|none",
        help="logging configuration: a JSON (or YAML, with PyYAML) dictConfig, or an INI "
        "fileConfig (none: not WEBSOCKET_LOG_CONFIG's) [WEBSOCKET_LOG_CONFIG]",
    )
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=_log_format_variable(),
        help="log lines as text, or one JSON object per line (timestamp, level, logger, "
        "message, worker, and the access fields) (default text) [WEBSOCKET_LOG_FORMAT]",
    )
    p.add_argument(
        "--env-file",
        default=None,
        metavar="FILE",
        help="NAME=value lines to put in the environment first (variables already set win)",
    )
    p.add_argument(
        "--log-level",
        default=None,
        choices=["trace", "debug", "info", "warning", "error", "critical"],
        help="logging level (default info; trace: uvicorn's, the same as debug here); with "
        "--log-config, wsserver's loggers' level, over what the file says (as in uvicorn)",
    )
    return p


def _log_format_variable() -> str:
    """``WEBSOCKET_LOG_FORMAT`` less blanks around it; unset, empty or blank: ``text``
    (as a blank WEBSOCKET_LOG_CONFIG, _UDS or _HOST is unset)."""
    return os.environ.get("WEBSOCKET_LOG_FORMAT", "").strip() or "text"


def _integer(low: int, high: int | None, accepted: str) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high``, else saying ``accepted``."""

    def read(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {accepted}, not {text!r}")
        return value

    return read


_port = _integer(0, 65535, "a port number from 0 to 65535")
_fd = _integer(0, 2**31 - 1, "a file descriptor number (0 or more)")
_ssl_version = _integer(0, 2**31 - 1, "a number of ssl.PROTOCOL_*, as uvicorn's (17)")
_workers = _integer(1, MOST_WORKERS, f"a number of worker processes from 1 to {MOST_WORKERS}")


#: The event loops ``--loop`` names (else a loop factory's ``module:function``).
_LOOPS = ("asyncio", "uvloop", "auto", "none")


def _loop(text: str) -> str:
    """An argparse type: one of :data:`_LOOPS`, or ``module:function``, a function
    that makes the event loop (uvicorn's ``--loop rloop:new_event_loop``)."""
    module, sep, attr = text.partition(":")
    if text in _LOOPS or (sep and module and attr):
        return text
    raise argparse.ArgumentTypeError(
        f"expected {', '.join(_LOOPS)} or module:function, not {text!r}"
    )


def _host(text: str) -> str:
    """An argparse type: a host name or address, not empty (an unset variable
    would mean every interface, in one process); an IPv6 address may be in
    brackets, as URLs (and the listening line) write it: ``[::1]``."""
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an IPv6 address in brackets, not {text.strip()!r}"
            ) from None
    if not host:
        raise argparse.ArgumentTypeError(
            "expected a host name or address (0.0.0.0 or :: for every interface)"
        )
    return host


def _uds(text: str) -> str:
    """An argparse type: ``--uds``'s path, not empty or blank (``--uds "$SOCKET"``,
    the variable unset, would listen on TCP 127.0.0.1:8000 without a word, as an
    empty ``--ssl-certfile`` would serve plain ws://); ``none`` says no Unix socket.
    An empty ``WEBSOCKET_UDS`` is unset, as every variable (:func:`_settle`)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a Unix socket's path or 'none', not {text!r}")
    return text


def _positive_seconds(text: str) -> float:
    """An argparse type: a number of seconds above 0 (and finite)."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, not {text!r}")
    return value


def _seconds_or_none(text: str) -> float | str:
    """An argparse type: a number of seconds above 0, or ``none`` (or the
    other words for none: ``off``...)."""
    return "none" if text.strip().lower() in NONE_WORDS - {""} else _positive_seconds(text)


def _role(text: str) -> WorkerRole:
    try:
        return WorkerRole.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _boolean(text: str) -> bool:
    """An argparse type: what a ``Flag`` setting reads (true/false, yes/no, on/off, t/f, ...)."""
    try:
        return bool(Flag().parse(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}") from None


class AppLoadError(ValueError):
    """The application spec names nothing to serve (not an error in the app's own code)."""


class FactoryError(Exception):
    """The application's factory raised (its exception is the ``__cause__``)."""


class FactoryExit(SystemExit):
    """The application's factory called sys.exit() (a SystemExit of the same code)."""


class LookupFailure(Exception):
    """Looking ``module:attr``'s attributes up raised in the application's
    code: a property's, a module's ``__getattr__`` (its exception is the
    ``__cause__``)."""


def load_app(spec: str, interface: str = "auto", factory: bool = False) -> Any:
    """Import ``module:attr`` and return the Router or ASGI application it names.

    ``factory`` calls it first (with no arguments). Unless ``interface`` is
    ``"asgi"``, a function that is neither and takes no argument is called
    as a factory too (what earlier versions did for Routers).

    Raises:
        AppLoadError: ``spec`` is malformed, its module cannot be found, or it
            does not name what ``interface`` says.
        FactoryError: the factory raised as it was called.
        FactoryExit: the factory called sys.exit().
        LookupFailure: the application's code raised as an attribute was looked up.
        Exception: whatever the module raises as it is imported (an error
            in the application: its traceback is what the user needs).
    """
    obj = _imported(spec)
    uri = route_of(obj)
    if uri is not None:
        raise AppLoadError(
            f"{spec} is the handler of the route {uri!r}: serve its Router (module:routes)"
        )
    servable = isinstance(obj, Router) or is_asgi_app(obj)
    # How the refusals below name what they looked at: the application, or
    # what its factory returned (the spec names a function: "is a tuple" misled).
    subject = spec
    if factory or (interface != "asgi" and not servable and _no_args(obj)):
        if not callable(obj):
            raise AppLoadError(f"--factory: {spec} is {_a(obj)}, not a function")
        if is_asgi_app(obj) and not _no_args(obj):
            raise AppLoadError(
                f"--factory: {spec} is an ASGI application, not a factory: leave --factory out"
            )
        if inspect.iscoroutinefunction(obj):
            raise AppLoadError(
                f"{spec} is an async function that takes no arguments: a factory is a plain"
                " function that returns the application"
            )
        lacking = _arguments_missing(obj)
        if lacking is not None:
            raise AppLoadError(f"--factory: {spec} cannot be called without arguments: {lacking}")
        try:
            obj = obj()
        except Exception as exc:
            raise FactoryError(spec) from exc
        except SystemExit as exc:
            raise FactoryExit(exc.code) from exc
        if obj is None:
            raise AppLoadError(f"{spec} (a factory) returned None: return the application")
        if inspect.iscoroutine(obj):
            obj.close()  # (not "never awaited" at exit)
            raise AppLoadError(
                f"{spec} (a factory) returned a coroutine: a factory is a plain function that"
                " returns the application (the server does not await it)"
            )
        subject = f"what {spec} (a factory) returned"
    if interface in ("auto", "router") and isinstance(obj, Router):
        return obj
    if interface == "auto" and is_asgi_app(obj):
        return obj
    if interface == "asgi" and callable(obj) and not isinstance(obj, Router | type):
        # Forced: any callable (one whose __call__ returns an awaitable, say)
        # that can be called with (scope, receive, send).
        if _takes_three(obj):
            return obj
        raise AppLoadError(
            f"{subject} cannot be called with (scope, receive, send): not an ASGI 3 application"
            + (
                " (a factory? add --factory)"
                if _no_args(obj) and not inspect.iscoroutinefunction(obj)
                else ""
            )
        )
    if isinstance(obj, type) and interface != "router":
        version = _asgi_class(obj)
        if version == 2:
            raise AppLoadError(
                f"{subject} is an ASGI 2 application (a class taking the scope):"
                " asgiref.compatibility.guarantee_single_callable(app) makes it ASGI 3"
            )
        if version == 3:
            raise AppLoadError(
                f"{subject} is a class whose instances are ASGI 3 applications: serve one"
                f" (app = {obj.__name__}()), or add --factory"
            )
    wanted = {
        "router": "a wsserver.Router",
        "asgi": "an ASGI 3 application (async def app(scope, receive, send))",
        "auto": "a wsserver.Router or an ASGI 3 application (async def app(scope, receive, send))",
    }[interface]
    hint = ""
    if interface == "auto" and callable(obj) and not isinstance(obj, type) and _takes_three(obj):
        hint = " (a function that returns an awaitable: --interface asgi)"
    raise AppLoadError(f"{subject} is {_a(obj)}, not {wanted}{hint}")


def _imported(spec: str) -> Any:
    """What ``module:attr`` names (``module:obj.attr`` too), imported.

    Raises:
        AppLoadError: ``spec`` is malformed, its module cannot be found, or it
            has no such attribute.
        LookupFailure: the application's code raised as an attribute was looked up.
        Exception: whatever the module raises as it is imported.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise AppLoadError(f"expected module:attr, got {spec!r}")
    meant = _module_of_file(module_name)
    if meant is not None:
        # (Said before the import: "app.py" imports app, running its code, and
        # then finds no submodule "py" in it.)
        raise AppLoadError(
            f"{module_name} is a path: module:attr takes a module's name, as import does"
            f" (did you mean {meant}:{attr}?)"
        )
    if module_name.startswith("."):  # (importlib's TypeError: it wants a package to start from)
        raise AppLoadError(f"{module_name!r} is a relative module name: give its full name")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            problem = f"cannot import {module_name!r}: no module named {missing!r}"
            # (A package of the spec's imported before --app-dir was on the path.)
            hint = ""
            parts = missing.split(".")
            for n in range(1, len(parts)):
                package = ".".join(parts[:n])
                if package in sys.modules:
                    hint = _shadowed(package, sys.modules[package])
                    if hint:
                        break
            raise AppLoadError(problem + hint) from None
        raise  # a module the application imports: its traceback says where
    obj: Any = module
    path = module_name
    for name in attr.split("."):  # (module:obj.app, as uvicorn walks it)
        try:
            obj = getattr(obj, name)
        except AttributeError as exc:
            if exc.name is not None and (exc.name != name or exc.obj is not obj):
                # Another attribute missing: the application's code (a property
                # that builds the application), not the attribute the spec names.
                raise LookupFailure(spec) from exc
            where = f"module {module_name!r}" if path == module_name else repr(path)
            said = f"{where} has no attribute {name!r}"
            raise AppLoadError(said + _shadowed(module_name, module)) from None
        except Exception as exc:
            raise LookupFailure(spec) from exc
        path += (":" if path == module_name else ".") + name
    return obj


def _shadowed(name: str, module: Any) -> str:
    """What to add where ``module`` (imported as ``name``) is not the file of
    that name found first on the path: one of that name imported before it
    was there (--app-dir DIR queue:app, the server having imported the
    standard library's queue), or nothing."""
    imported = getattr(module, "__file__", None)
    if not imported:
        return ""
    parts = name.split(".")
    # (As Python's finder looks in each entry: a package before a module,
    # an extension module before a source file.)
    suffixes = [
        *importlib.machinery.EXTENSION_SUFFIXES,
        *importlib.machinery.SOURCE_SUFFIXES,
        *importlib.machinery.BYTECODE_SUFFIXES,
    ]
    for entry in sys.path:
        base = os.path.join(entry or os.curdir, *parts)
        package = [os.path.join(base, "__init__" + suffix) for suffix in suffixes]
        for found in package + [base + suffix for suffix in suffixes]:
            if os.path.isfile(found):
                if os.path.realpath(found) == os.path.realpath(imported):
                    return ""
                return (
                    f" (the module imported is {imported}, not {found}: one of that name"
                    " was imported first; rename yours)"
                )
    return ""


def _module_of_file(name: str) -> str | None:
    """The module meant where ``name`` is a path (``app.py``,
    ``src/app.py``: ``app``, ``--app-dir src app``), or None.

    A name with a slash is no module's; one ending in ``.py`` is a file's
    where such a file is found where modules are (a module named ``py`` in a
    package of that name is one's, not a file's).
    """
    separators = "/" + (os.altsep or "") + os.sep
    has_directory = any(c in name for c in separators)
    if not has_directory:
        if not name.endswith(".py"):
            return None
        file = name[: -len(".py")].replace(".", os.sep) + ".py"
        if not any(os.path.isfile(os.path.join(entry or ".", file)) for entry in sys.path):
            return None
    path = name.replace(os.sep, "/").replace(os.altsep or "/", "/")
    directory, _, base = path.rstrip("/").rpartition("/")
    stem = base.removesuffix(".py")
    if not stem:
        return None
    if directory in ("", ".") and not path.startswith("/"):
        return stem  # (pkg/, ./app.py: from the current directory)
    return f"--app-dir {directory or '/'} {stem}"


def _from_the_app(exc: BaseException) -> BaseException:
    """``exc``, its traceback starting at the first frame that is neither
    wsserver's nor the import machinery's (the application's); none when no
    frame is (a SyntaxError in its module, which says its file and line itself)."""
    tb = exc.__traceback__
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if not (name.startswith((package, "<frozen ")) or "importlib" in name):
            break
        if tb.tb_next is None and not isinstance(exc, SyntaxError):
            break  # (the frame that raised, ours: what else would say where)
        tb = tb.tb_next
    return exc.with_traceback(tb)


def _a(obj: Any) -> str:
    """``obj``'s type with its article: "a function", "an int" ("a class": a type)."""
    name = "class" if isinstance(obj, type) else type(obj).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _asgi_class(cls: type) -> int | None:
    """Which ASGI application a class is, if one: 2, one whose instances are
    made with the scope and called with ``(receive, send)``; 3, one made with
    no arguments whose instances are called with ``(scope, receive, send)``."""
    call = next(
        (base.__dict__["__call__"] for base in cls.__mro__ if "__call__" in base.__dict__), None
    )
    if not inspect.iscoroutinefunction(call) or issubclass(cls, type):
        return None
    try:
        made, called = inspect.signature(cls), inspect.signature(call)
    except (TypeError, ValueError):
        return None
    for version, made_with, called_with in ((3, 0, 3), (2, 1, 2)):
        try:
            made.bind(*[None] * made_with)
            called.bind(None, *[None] * called_with)
        except TypeError:
            continue
        return version
    return None


def _takes_three(obj: Any) -> bool:
    """Whether ``obj`` can be called with three positional arguments (True when not known)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # (no signature to be had: a builtin, say)
        return True
    try:
        signature.bind(None, None, None)
    except TypeError:
        return False
    return True


def _arguments_missing(obj: Any) -> str | None:
    """What calling ``obj`` without arguments would lack (``"missing a required
    argument: 'x'"``), or None (also when its signature is not known).

    ``obj``'s own signature, not its ``__wrapped__``'s: a decorator's wrapper
    (``functools.wraps``) may give the function it wraps its arguments itself.
    """
    try:
        signature = inspect.signature(obj, follow_wrapped=False)
    except (TypeError, ValueError):  # (no signature to be had: a builtin, say)
        return None
    try:
        signature.bind()
    except TypeError as exc:
        return str(exc)
    return None


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


#: The variables the command line reads itself (the settings' are config.ENV_VARS).
CLI_VARIABLES = frozenset(
    {
        "WEBSOCKET_HOST",
        "WEBSOCKET_PORT",
        "WEBSOCKET_UDS",
        "WEBSOCKET_WORKERS",
        "WEBSOCKET_WORKER_START_TIMEOUT",
        "WEBSOCKET_TIMEOUT_WORKER_HEALTHCHECK",
        "WEBSOCKET_LOG_CONFIG",
        "WEBSOCKET_LOG_FORMAT",
    }
)


def misspelt_variables(
    environ: Mapping[str, str], flags: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """The variables that look like one of ours but are not, each with what to use instead.

    A setting's name, or its flag's (and the flag's other names), as a
    variable where its variable is named otherwise, or it has none
    (``WEBSOCKET_OPEN_TIMEOUT``: ``WEBSOCKET_TIMEOUT``; ``WEBSOCKET_ORIGIN``:
    ``--origin``), the same for the command line's own ``flags``
    (``WEBSOCKET_LOG_LEVEL``: ``--log-level``; ``flags`` maps each flag's name
    as a variable to the flag: see :func:`flag_variables`), and near misses
    (``WEBSOCKET_MAX_SZE``). Other ``WEBSOCKET_*`` names may well be an
    application's own (``WEBSOCKET_URL``), and ``WEBSOCKETS_*`` are the
    websockets library's.
    """
    known = CLI_VARIABLES | set(ENV_VARS)
    natural: dict[str, str] = {}
    for setting, spec in settings():
        instead = spec.env or spec.flag or f"serve({setting}=...)"
        said = f"{instead}?" if spec.env else f"{setting} is set by {instead}"
        for name in (setting, *(flag[2:] for flag in (spec.flag, *spec.aliases) if flag)):
            variable = _variable(name)
            if variable not in known:
                natural.setdefault(variable, said)
    for name, flag in (flags or {}).items():
        if name not in known:
            natural.setdefault(name, f"{flag} is a flag only")
    found = []
    for name in sorted(environ):
        if not name.startswith("WEBSOCKET_") or name in known:
            continue
        if name in natural:
            found.append((name, natural[name]))
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.9)
        if close:
            found.append((name, f"{close[0]}?"))
    return found


def uvicorn_variables(
    environ: Mapping[str, str], parser: CommandLineParser
) -> list[tuple[str, str]]:
    """uvicorn's own variables found in ``environ``, each with what says the same here.

    uvicorn reads ``UVICORN_`` and each option's name (click's names:
    ``UVICORN_WS_MAX_SIZE``, ``UVICORN_HEADERS`` for ``--header``), and
    ``UVICORN_APP``; wsserver reads none of them, and a deployment moved from
    uvicorn keeps its environment (``UVICORN_HOST=0.0.0.0`` in a container:
    ignored, the server would listen where no client reaches it).
    """
    options = {
        flag: action
        for action in parser.arguments
        if action.help != argparse.SUPPRESS
        for flag in action.option_strings
    }
    setting_variables = {
        flag: spec.env
        for _, spec in settings()
        if spec.env is not None
        for flag in (spec.flag, *spec.aliases)
        if flag
    }
    found = []
    for name in sorted(environ):
        if not name.startswith("UVICORN_"):
            continue
        if name == "UVICORN_APP":
            found.append((name, "the application is the command line's module:attr"))
            continue
        flag = "--" + name[len("UVICORN_") :].lower().replace("_", "-")
        # (click names a repeatable option by its destination: reload_dirs, headers.)
        action = options.get(flag) or options.get(flag.removesuffix("s"))
        if action is None:
            found.append((name, "wsserver has no such setting"))
            continue
        if action.dest == "ssl_version":
            found.append((name, "TLS 1.2 and 1.3 are spoken here (no such setting)"))
            continue
        if action.dest == "per_message_deflate":
            # (uvicorn's name for --compression, whose values are other words.)
            compression = dict(settings())["compression"].env
            found.append((name, f"{compression} says the same here (deflate or none)"))
            continue
        variable = _variable(action.dest)
        if variable not in CLI_VARIABLES:
            variable = next(
                (setting_variables[f] for f in action.option_strings if f in setting_variables),
                "",
            )
        said = variable or action.option_strings[0]
        found.append((name, f"{said} says the same here" + ("" if variable else " (a flag only)")))
    return found


def _variable(name: str) -> str:
    """A setting's or a flag's name (``max_size``, ``ws-max-size``) as one of our variables."""
    return "WEBSOCKET_" + name.upper().replace("-", "_")


def flag_variables(parser: CommandLineParser) -> dict[str, str]:
    """Each flag's names (its destination's, and each of its own but the
    ``--no-`` of a switch), written as variables, mapped to the flag."""
    return {
        _variable(name): action.option_strings[0]
        for action in parser.arguments
        if action.option_strings
        and action.dest not in ("help", "version")
        and action.help != argparse.SUPPRESS  # (the supervisor's to its workers)
        for name in (action.dest, *(flag[2:] for flag in action.option_strings))
        if not name.startswith("no-")
    }


def config_from_args(args: argparse.Namespace, *, asgi: bool = False) -> Config:
    """The Config for parsed arguments: flags, then the environment, then defaults.

    ``asgi``: the defaults of an ASGI application (compression on).
    """
    settings = flag_settings(args)
    deflate = getattr(args, "per_message_deflate", None)
    if deflate is not None:
        said = "deflate" if deflate else None
        if "compression" in settings and settings["compression"] != said:
            raise ConfigError(
                f"--ws-per-message-deflate {str(deflate).lower()} and --compression "
                f"{settings['compression'] or 'none'}: each says whether to compress; give one"
            )
        settings["compression"] = said
    return Config.from_sources(os.environ, defaults=ASGI_DEFAULTS if asgi else None, **settings)


async def run(
    app: Any,
    host: str,
    port: int,
    config: Config,
    *,
    uds: str | None = None,
    fd: int | None = None,
    role: WorkerRole | None = None,
    status_dir: str | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM (or SIGHUP, outside a supervisor: a terminal's
    hangup, or a reload asked of a single process, which cannot restart itself);
    a second SIGINT (Ctrl-C again) exits at once. SIGQUIT: a quick shutdown,
    with no grace for handlers nor closing handshakes (at once, during
    another). The exit code: 0 (an ``on_shutdown`` hook or an ASGI lifespan
    shutdown that failed is logged, and the code stays 0, as uvicorn's), or 1
    if the shutdown itself raised or was cut short.

    SIGTERM (or SIGHUP) again changes nothing: systemd signals every process
    of a service, and a supervisor passes the signal on, so a worker often
    gets it twice for one request to stop.

    In a worker (``role``, under a supervisor): SIGHUP retires it (WebSockets
    closed with 1012, service restart), and it tells the supervisor on its pipe
    once it accepts; its status page shows its siblings' figures, which they
    leave in ``status_dir``.

    Raises:
        LifespanFailure: an ASGI application's startup failed.
    """
    raised = raise_open_files_limit()
    if raised is not None:
        logger.debug("open files: at most %d, raised from %d", raised[1], raised[0])
    loop = asyncio.get_running_loop()
    say_accept_failures_once_in_a_while(loop)
    sock = None
    if fd is not None:
        sock = inherited_socket(fd)
        sock.set_inheritable(False)  # not the application's children's
    if sock is not None:
        server = serve(app, config=config, sock=sock)
    elif uds is not None:
        server = serve(app, config=config, uds=uds)
    else:
        server = serve(app, host, port, config=config)
    if server.status is not None and role is not None and status_dir is not None:
        server.status.share(status_dir, str(role.slot))
    stopping = False
    retiring = False
    quick = False  # (a SIGQUIT's shutdown)
    closing: list[asyncio.Task[None]] = []
    # A task: a stop signal during the start (an ASGI lifespan startup that
    # may never end) cancels it rather than waiting for it.
    starting = loop.create_task(server.start())

    def on_signal(signum: int) -> None:
        nonlocal stopping, retiring, quick
        name = signal.Signals(signum).name
        if stopping or retiring:
            if signum == signal.SIGQUIT and quick:
                # (systemd signals every process of a service, and the
                # supervisor passes it on: the quick shutdown goes on.)
                logger.info("SIGQUIT: quick shutdown already")
                return
            if (signum == signal.SIGINT and stopping) or signum == signal.SIGQUIT:
                # What the shutdown under way has left to do is not waited for:
                # but for a Unix socket's file, which would be left behind.
                logger.warning(
                    "%s: exiting now", "second SIGINT" if signum == signal.SIGINT else name
                )
                server.remove_unix_socket_file()
                os._exit(1)
            if not stopping and signum != signal.SIGHUP:
                # The supervisor stops everyone while this worker retires:
                # the handshakes under way are waited for no more, and the
                # WebSockets not closed yet get 1001, not 1012.
                stopping = True
                logger.info("%s: retiring already: stopping", name)
                closing.append(loop.create_task(server.close(code=1001)))
            else:
                logger.info("%s: %s already", name, "shutting down" if stopping else "retiring")
            return
        restart = signum == signal.SIGHUP and role is not None
        # SIGQUIT: a quick shutdown (gunicorn's): no grace, the clients told all the same.
        quick = signum == signal.SIGQUIT
        retiring = restart
        stopping = not restart
        if role is None:
            notify("STOPPING=1")  # (systemd's Type=notify; a worker's supervisor says it)
        if role is not None:
            # The supervisor tells a stop it sent from another (kill -TERM PID).
            with contextlib.suppress(OSError):
                os.write(role.ready_fd, SIGNALLED + bytes([signum]))
        logger.info(
            "%s: %s",
            signal.Signals(signum).name,
            "retiring"
            if restart
            else "shutting down (a rolling restart needs a supervisor: --workers N, 1 included)"
            if signum == signal.SIGHUP
            else "quick shutdown"
            if quick
            else "shutting down",
        )
        # Whatever happens, the process ends: a shutdown that hangs (an
        # application, a dependency) must not leave it running, orphaned. Past
        # what it may take: the handshakes (a restart), the handlers' grace,
        # the closing handshakes, the ASGI lifespan's shutdown (the last two
        # again), or each of a Router's shutdown hooks.
        hooks = len(server.router.shutdown_hooks) if server.router is not None else 0
        limit = (2 + max(0, hooks - 1)) * (config.shutdown_timeout + config.close_timeout)
        limit += (config.open_timeout or 10) + 15
        loop.call_later(limit, _exit_late, limit)
        starting.cancel()  # (if it is still under way)
        timeout = 0.0 if quick else None
        closing.append(loop.create_task(server.close(timeout, code=1012 if restart else 1001)))

    # (SIGHUP in a single process: a graceful shutdown, not the default's
    # death; unless ignored already, as nohup does.)
    hangup = role is not None or signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN
    signums = (
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGQUIT,
        *((signal.SIGHUP,) if hangup else ()),
    )
    for signum in signums:
        loop.add_signal_handler(signum, on_signal, signum)
    if held_hangup() and hangup:
        on_signal(signal.SIGHUP)  # (it came before the handler: see main())
    try:
        await starting
    except asyncio.CancelledError:
        ignore_signals(loop, signums)
        current = asyncio.current_task()
        by_signal = (stopping or retiring) and starting.cancelled()
        if not by_signal or (current is not None and current.cancelling()):
            raise  # (this coroutine is cancelled, or the start failed so)
        await asyncio.gather(*closing)
        logger.info("stopped before it started")
        return 0
    except BaseException:
        ignore_signals(loop, signums)
        raise
    if role is not None:
        supervisor_pid = role.supervisor_pid

        def watch_supervisor() -> None:
            # Besides PR_SET_PDEATHSIG (Linux only, and tied to the thread that
            # forked): a worker whose supervisor is gone stops, every time.
            if parent_gone(supervisor_pid):
                if not stopping:
                    logger.warning("the supervisor is gone: shutting down")
                    on_signal(signal.SIGTERM)
            else:
                loop.call_later(1.0, watch_supervisor)

        loop.call_later(1.0, watch_supervisor)
    scheme = "wss" if server.ssl is not None else "ws"
    places = []
    for listening in server.sockets:
        where = _where(scheme, listening.getsockname())
        places.append(where)
        if role is not None:
            logger.info("worker %d (pid %d) accepting on %s", role.slot, os.getpid(), where)
        else:
            logger.info("listening on %s", where)
    if role is None and places and not stopping:
        notify("READY=1", f"STATUS=listening on {', '.join(places)}")
        keep_watchdog(loop)
    if role is not None and server.sockets:
        # (None when a startup hook closed the server: it never listened, and
        # a supervisor must not retire a worker for it.)
        pipe = role.ready_fd
        with contextlib.suppress(OSError):
            os.write(pipe, READY)

        def answer_pings() -> None:
            # The supervisor's health check: answered by this loop, so that
            # a loop that is blocked gives no answer.
            try:
                data = os.read(pipe, 64)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:  # (the supervisor is gone: watch_supervisor() sees it)
                loop.remove_reader(pipe)
                return
            with contextlib.suppress(OSError):
                os.write(pipe, PONG * data.count(PING))

        with contextlib.suppress(OSError):
            os.set_blocking(pipe, False)
            loop.add_reader(pipe, answer_pings)

        def limit_reached() -> None:
            # The supervisor starts another worker and, once it accepts,
            # retires this one (SIGHUP): no moment without a worker accepting.
            try:
                os.write(pipe, LIMIT_REACHED)
            except OSError:
                closing.append(loop.create_task(server.close(code=1012)))  # no one to hear it

        server.on_request_limit = limit_reached
    failed = False
    try:
        await server.serve_forever()
    except Exception:
        failed = True  # the shutdown failed: said by the server, with its traceback
    ignore_signals(loop, signums)
    await asyncio.gather(*closing, return_exceptions=True)
    if failed:
        return 1
    logger.info("stopped")
    return 0


#: Seconds that what outlives the server's stop gets, once cancelled, to end.
LEFTOVER_GRACE = 1.0


def run_to_the_end(
    main: Coroutine[Any, Any, int],
    failed: Callable[[Exception], int],
    loop: asyncio.AbstractEventLoop | None = None,
) -> int:
    """``asyncio.run(main)``, but not waiting without end for what outlives it.

    Once the server has stopped, its handlers and applications have had their
    time (``shutdown_timeout``), and were cancelled. asyncio.run() would then
    wait for any task that swallowed its cancellation, and for the default
    executor's threads (``asyncio.to_thread()`` of a blocking call), as would
    the interpreter's exit: a process that said "stopped" but ran on until the
    last-resort timer. Here what is left gets :data:`LEFTOVER_GRACE` seconds;
    whatever is still running after that is named, and the process exits
    (``os._exit``, logs flushed) with ``main``'s code; or, when ``main``
    raised, with the code ``failed(exc)`` gives (it says what went wrong;
    it may raise SystemExit itself).

    ``loop``: the one to run ``main`` on (``--loop module:function``'s), else a new one.
    """
    loop = asyncio.new_event_loop() if loop is None else loop
    executor = DefaultExecutor()
    loop.set_default_executor(executor)  # (uvloop's keeps it out of reach)
    try:
        asyncio.set_event_loop(loop)
        code = loop.run_until_complete(main)
    except BaseException as exc:
        # (A start that failed may leave a thread too: a lifespan startup
        # that gave up waiting for asyncio.to_thread(connect).)
        left = _finish(loop, executor)
        try:
            if not isinstance(exc, Exception):
                raise
            code = failed(exc)
        except BaseException as raised:
            if left:
                _leave(left, _exit_code_of(raised))
            raise
    else:
        left = _finish(loop, executor)
    if left:
        _leave(left, code)
    return code


def _leave(left: list[str], code: int) -> NoReturn:
    """Exit with ``code`` without waiting for what is ``left`` (see run_to_the_end)."""
    logger.warning("%s still running after the stop: exiting without waiting", " and ".join(left))
    logging.shutdown()  # (flushed: os._exit does not)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _fatal(message: str, *args: Any, exc_info: Any = None) -> None:
    """Log what ends the process: at ERROR, or at CRITICAL where the level
    (--log-level critical) leaves ERROR out: why it ended is always said."""
    level = logging.ERROR if logger.isEnabledFor(logging.ERROR) else logging.CRITICAL
    logger.log(level, message, *args, exc_info=exc_info)


def _exit_code_of(exc: BaseException) -> int:
    """The exit code ``exc`` would have ended the process with (its traceback
    logged, if it is an error that would have printed one)."""
    if isinstance(exc, SystemExit):
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    if isinstance(exc, StoppedDuringStart):
        logger.info("%s: stopped before it started", signal.Signals(exc.signum).name)
        return 0
    _fatal("%s", type(exc).__name__, exc_info=exc)
    return 1


def _finish(loop: asyncio.AbstractEventLoop, executor: DefaultExecutor) -> list[str]:
    """Cancel what is left on ``loop``, give it LEFTOVER_GRACE, and close the loop;
    return what did not end (``["2 tasks", "1 call of asyncio.to_thread() ..."]``),
    for the caller to exit without it."""
    left = []
    # One grace for all that is left (tasks, async generators, threads), not one each.
    end = time.monotonic() + LEFTOVER_GRACE
    try:
        tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.wait(tasks, timeout=LEFTOVER_GRACE))
            stuck = sum(not task.done() for task in tasks)
            if stuck:
                left.append(f"{stuck} task{'s' if stuck > 1 else ''}")
        for task in tasks:
            if task.done() and not task.cancelled():
                task.exception()  # (retrieved: it ended as it was told to)
        with contextlib.suppress(TimeoutError):
            loop.run_until_complete(
                asyncio.wait_for(loop.shutdown_asyncgens(), max(end - time.monotonic(), 0.01))
            )
        # (Not loop.shutdown_default_executor(): it joins its thread without a
        # bound, even when cancelled.) Calls not started are dropped, those
        # under way get what is left of the grace.
        executor.shutdown(wait=False, cancel_futures=True)
        _, busy = concurrent.futures.wait(executor.calls(), timeout=max(end - time.monotonic(), 0))
        if busy:
            left.append(
                f"{len(busy)} call{'s' if len(busy) > 1 else ''} of asyncio.to_thread() "
                "or run_in_executor()"
            )
    finally:
        asyncio.set_event_loop(None)
        if not left:
            loop.close()
    return left


def _exit_late(limit: float) -> None:
    _fatal("shutdown still not finished after %.0f s: exiting now", limit)
    os._exit(1)


def _where(scheme: str, address: Any) -> str:
    """How the log names a listening address: for TCP, its WebSocket URL
    and its HTTP one (``ws://host:port and http://host:port``); for a Unix
    socket, its path, and ``(TLS)`` after it for TLS."""
    tls = " (TLS)" if scheme == "wss" else ""
    if isinstance(address, bytes):  # a Linux abstract Unix socket (systemd's ListenStream=@name)
        return "unix:@" + address[1:].decode("utf-8", "backslashreplace") + tls
    if isinstance(address, str):
        return f"unix:{address or '(unnamed)'}{tls}"
    host, port = _display(address)
    http = "https" if scheme == "wss" else "http"
    return f"{scheme}://{host}:{port} and {http}://{host}:{port}"


def _display(address: Any) -> tuple[str, int]:
    host, port = address[0], address[1]
    if ":" in host:
        host = f"[{host}]"
    return host, port


def _off(uds: str | None) -> bool:
    """Whether ``--uds`` (or ``WEBSOCKET_UDS``) says no Unix socket: unset, or a none word."""
    return uds is None or uds.strip().lower() in NONE_WORDS


#: What Kubernetes sets ``<SERVICE>_PORT`` to in every pod of a namespace
#: that has that Service (``enableServiceLinks``, on by default; Docker's links
#: did the same): ``WEBSOCKET_PORT=tcp://10.96.0.12:8000`` for a Service named
#: ``websocket``. The Service's address, not a port to listen on.
_SERVICE_LINK = re.compile(r"(?:tcp|udp|sctp)://\S+:\d+", re.IGNORECASE)


def _service_link() -> str | None:
    """WEBSOCKET_PORT when it is a Kubernetes Service's link (see :data:`_SERVICE_LINK`)."""
    value = os.environ.get("WEBSOCKET_PORT", "").strip()
    return value if _SERVICE_LINK.fullmatch(value) else None


def _sockets_systemd_passed() -> int:
    """How many sockets systemd's socket activation passed this process, from
    fd 3 on: LISTEN_FDS, if LISTEN_PID is this process (a child of the
    service, a worker say, inherits the variables, not the sockets)."""
    try:
        if int(os.environ.get("LISTEN_PID", "")) != os.getpid():
            return 0
        return max(int(os.environ.get("LISTEN_FDS", "")), 0)
    except ValueError:
        return 0


def _sockets_left(passed: int, fd: int) -> list[str]:
    """The sockets systemd passed (fd 3 to ``3 + passed - 1``) other than the
    one ``--fd`` listens on (``fd``, or another descriptor of the same socket,
    as ``StandardInput=socket`` gives fd 0), each said as ``fd N (address)``;
    none when what ``fd`` is cannot be told (its own error is said later)."""
    try:
        listened = os.fstat(fd)
    except OSError:
        return []
    left = []
    for number in range(3, 3 + passed):
        try:
            passed_socket = os.fstat(number)
            if (passed_socket.st_dev, passed_socket.st_ino) == (listened.st_dev, listened.st_ino):
                continue
            with socket.socket(fileno=os.dup(number)) as sock:
                address = sock.getsockname()
        except OSError:
            continue  # (not a socket, or not open: nothing listens there to leave)
        if isinstance(address, tuple):
            host, port = _display(address)
            where = f"{host}:{port}"
        elif isinstance(address, bytes):
            where = "unix:@" + address[1:].decode("utf-8", "backslashreplace")
        else:
            where = f"unix:{address}"
        left.append(f"fd {number} ({where})")
    return left


def _tcp_variables() -> dict[str, str | None]:
    """WEBSOCKET_HOST and WEBSOCKET_PORT as the environment has them (None: unset or
    empty, as the command line's other variables: the default, 127.0.0.1:8000; or
    a Service's link, for WEBSOCKET_PORT: :func:`_main` says it is ignored)."""
    values = {name: os.environ.get(name) for name in ("WEBSOCKET_HOST", "WEBSOCKET_PORT")}
    if _service_link() is not None:
        values["WEBSOCKET_PORT"] = None
    return {name: value if value and value.strip() else None for name, value in values.items()}


def _settle(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """What the flags whose defaults come from the environment end up saying.

    Where to listen: the flags given, else ``WEBSOCKET_UDS`` or
    ``WEBSOCKET_HOST``/``WEBSOCKET_PORT`` (not both kinds), else
    127.0.0.1:8000. Flags win over the environment: ``--host``, ``--port`` or
    ``--fd`` on the command line mean TCP (or that socket) whatever
    ``WEBSOCKET_UDS`` says, and ``--uds none`` turns it off; the variables
    fill in the host or port that no flag gives, unless ``--uds PATH`` or
    ``--fd`` is given. A variable's value that its flag would refuse is refused
    (argparse checks only the flags).
    """
    if args.interface == "asgi3":
        args.interface = "asgi"
    # uvicorn's choices that nothing here does (argparse said "invalid choice").
    if args.interface == "wsgi":
        _refuse(
            parser,
            args,
            "--interface wsgi: wsserver serves no WSGI application (Flask, Django's wsgi.py):"
            " serve its ASGI one (Django's asgi.py), or run it under a WSGI server",
        )
    if args.interface == "asgi2":
        _refuse(
            parser,
            args,
            "--interface asgi2: wsserver serves no ASGI 2 application (a class taking the"
            " scope): asgiref.compatibility.guarantee_single_callable(app) makes it ASGI 3",
        )
    if args.ws == "none":
        _refuse(
            parser,
            args,
            "--ws none: wsserver always serves WebSocket (uvicorn's none turns it off and hands"
            " upgrade requests to the application as HTTP): leave --ws out",
        )
    if args.loop == "none":
        args.loop = "asyncio"
    if args.log_level == "trace":
        args.log_level = "debug"
    if args.log_format not in ("text", "json"):
        _refuse(parser, args, f"WEBSOCKET_LOG_FORMAT: {args.log_format!r} is not text or json")
    # What a refusal of the file names: the flag, or the variable that gave it
    # (empty or blank: unset, as WEBSOCKET_HOST).
    args.log_config_said = "--log-config"
    if args.log_config is None:
        variable = os.environ.get("WEBSOCKET_LOG_CONFIG", "")
        args.log_config = variable.strip() or None
        args.log_config_said = f"WEBSOCKET_LOG_CONFIG={variable!r}"
    if args.log_config is not None and args.log_config.strip().lower() in NONE_WORDS - {""}:
        # (--log-config none: not WEBSOCKET_LOG_CONFIG's, as --uds none;
        # an empty flag is still a file not found, as every empty flag is refused.)
        args.log_config = None
    if args.worker is None:  # (a worker's --fd is its supervisor's socket, added to the flags)
        tcp = [
            f for f, value in (("--host", args.host), ("--port", args.port)) if value is not None
        ]
        places = [
            *(["--uds"] if not _off(args.uds) else []),
            *(["--fd"] if args.fd is not None else []),
        ]
        if places and (tcp or len(places) > 1):
            conflict = " and ".join([*places, *tcp])
            _refuse(parser, args, f"{conflict}: each says where to listen; give one")
    if _off(args.uds) and args.fd is None:
        # TCP, unless WEBSOCKET_UDS says otherwise; where the flags leave the
        # host or the port, WEBSOCKET_HOST and WEBSOCKET_PORT may say.
        said = [(name, value) for name, value in _tcp_variables().items() if value is not None]
        if args.uds is None and args.host is None and args.port is None:
            uds = os.environ.get("WEBSOCKET_UDS")
            if not _off(uds) and said:
                conflict = " and ".join(["WEBSOCKET_UDS", *(name for name, _ in said)])
                _refuse(parser, args, f"{conflict}: each says where to listen; give one")
            args.uds = None if _off(uds) else uds
        else:
            args.uds = None  # (--uds none)
        for name, value in said if args.uds is None else ():
            flag = "host" if name == "WEBSOCKET_HOST" else "port"
            if getattr(args, flag) is None:
                try:
                    setattr(args, flag, (_host if flag == "host" else _port)(value))
                except argparse.ArgumentTypeError as exc:
                    _refuse(parser, args, f"{name}: {exc}")
    elif _off(args.uds):
        args.uds = None
    if args.host is None:
        args.host = "127.0.0.1"
    if args.port is None:
        args.port = 8000
    return args


class StoppedDuringStart(BaseException):
    """SIGINT, SIGTERM or SIGQUIT came before the event loop's handlers were set (see :func:`main`).

    A BaseException, as KeyboardInterrupt: it must pass through the loop, and
    whatever the application's import catches.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop_during_start(signum: int, frame: object) -> None:
    raise StoppedDuringStart(signum)


#: A worker's end of its supervisor's channel, once known (see main()).
_worker_channel: list[int] = []


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code.

    From the first moment, SIGINT, SIGTERM and SIGQUIT stop the start (exit code 0,
    one line): the import of the application may take a while, and as pid 1
    (a container without an init) the kernel would drop a SIGTERM that has
    no handler, and go on starting. The event loop's handlers take over once
    it runs. A SIGHUP meanwhile is kept for them (see :func:`hold_hangups`):
    a supervisor's rolling restart, a single process's shutdown. SIGTTIN and
    SIGTTOU wait for a supervisor's (see :func:`hold_scaling`).
    """
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            previous[signum] = signal.signal(signum, _stop_during_start)
        # SIGHUP is not a stop under a supervisor (a rolling restart): kept
        # for the event loop's handler, whatever this process turns out to be.
        hangup = hold_hangups()
        if hangup is not None:
            previous[signal.SIGHUP] = hangup
        hold_scaling()
    ours = {signum: signal.getsignal(signum) for signum in previous}
    try:
        return _main(argv)
    except StoppedDuringStart as stop:
        for channel in _worker_channel:
            # A worker tells its supervisor, as once it runs (see run()): a
            # stop someone else sent, no failed start.
            with contextlib.suppress(OSError):
                os.write(channel, SIGNALLED + bytes([stop.signum]))
        said = f"{signal.Signals(stop.signum).name}: stopped before it started"
        if logger.hasHandlers():
            logger.info("%s", said)
        else:  # (logging is not configured yet)
            print(said, file=sys.stderr)
        return 0
    finally:
        release_scaling()  # (unless released already)
        for signum, handler in previous.items():
            if signal.getsignal(signum) is ours[signum]:
                signal.signal(signum, handler)  # (main() called in a process of its own)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = _settle(parser, parser.parse_args(arguments))
    from_env_file: dict[str, str] = {}
    # (An empty name too: open() refuses it, as --log-config's.)
    if args.env_file is not None and args.worker is None:  # (its supervisor read it for a worker)
        try:
            from_env_file = load_env_file(args.env_file)
        except (OSError, ValueError) as exc:
            _refuse(parser, args, f"--env-file {args.env_file}: {exc}")
        # Again: some flags' defaults come from the environment (WEBSOCKET_UDS...).
        parser = build_parser()
        parser.set_defaults(from_env_file=frozenset(from_env_file))  # (see _refuse())
        args = _settle(parser, parser.parse_args(arguments))
    # Modules are found in the current directory, whether this runs as
    # ``python -m wsserver`` (which puts it first on sys.path) or as the
    # ``wsserver`` console script (which puts the script's own directory).
    if args.app_dir:
        if not os.path.isdir(args.app_dir):
            _refuse(parser, args, f"--app-dir {args.app_dir}: not a directory")
        sys.path.insert(0, os.path.abspath(args.app_dir))
    elif os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    role: WorkerRole | None = args.worker
    if role is not None:
        with contextlib.suppress(OSError):
            os.set_inheritable(role.ready_fd, False)  # not the application's children's
        _worker_channel[:] = [role.ready_fd]  # (for main() to say a stop in the import)
    try:
        configure_logging(
            args.log_level, args.log_config, args.log_format, role.slot if role else None
        )
    except Exception as exc:
        if args.log_config is None:
            raise  # (ours)
        # Whatever the file makes fileConfig or dictConfig raise (a RuntimeError,
        # the ImportError or NameError of a class= or args=, PyYAML's errors).
        said = args.log_config_said
        if said == "--log-config":
            said += f" {args.log_config}"
        message = f"{said}: {_log_config_error(exc)}"
        parser.exit(2, f"error: {message}{_set_by_env_file(args, message)}\n")
    if role is None and args.log_config is not None and args.log_format == "json":
        logger.warning("--log-format json: the --log-config file says how lines look (ignored)")
    if role is None and args.http == "httptools":
        logger.warning("--http httptools: HTTP/1.1 is h11's here (uvicorn's choice, ignored)")
    if role is None and args.ssl_version is not None:
        logger.warning(
            "--ssl-version %d: TLS 1.2 and 1.3 are spoken here, whatever it says "
            "(uvicorn's, ignored)",
            args.ssl_version,
        )
    if role is None and args.use_colors:
        logger.warning("--use-colors: log lines are not coloured here (uvicorn's, ignored)")
    unused = [
        f
        for f in ("reload_dir", "reload_include", "reload_exclude", "reload_delay")
        if getattr(args, f)
    ]
    if unused and not args.reload and role is None:
        flags = ", ".join("--" + name.replace("_", "-") for name in unused)
        logger.warning("%s without --reload: nothing is watched", flags)
    if role is None:  # (a worker's supervisor said it)
        for name, instead in misspelt_variables(os.environ, flag_variables(parser)):
            logger.warning("%s is not a variable wsserver reads (ignored): %s", name, instead)
        for name, instead in uvicorn_variables(os.environ, parser):
            logger.warning(
                "%s is uvicorn's variable, which wsserver does not read (ignored): %s",
                name,
                instead,
            )
        link = _service_link()
        if link is not None:
            logger.warning(
                "WEBSOCKET_PORT=%s is a Kubernetes Service's address (a Service named "
                "websocket, with enableServiceLinks on), not a port: ignored "
                "(enableServiceLinks: false in the pod spec leaves it out)",
                link,
            )
        passed = _sockets_systemd_passed()
        if passed and args.fd is None:
            logger.warning(
                "systemd passed this process %d listening socket%s (LISTEN_FDS: socket "
                "activation) and --fd is not given: its clients wait unanswered while this "
                "listens on %s; --fd 3 listens on the first",
                passed,
                "s" * (passed > 1),
                _target(args),
            )
        elif passed:
            left = _sockets_left(passed, args.fd)
            if left:
                logger.warning(
                    "systemd passed this process %d listening sockets (LISTEN_FDS: socket "
                    "activation) and --fd %d listens on one: the clients of %s wait "
                    "unanswered (one server, one socket: a ListenStream= of a port alone "
                    "takes IPv4 and IPv6 clients both, or a .socket and a service for each)",
                    passed,
                    args.fd,
                    ", ".join(left),
                )
    workers = args.workers
    # Asked for (a number of workers, 1 included): a supervisor, which SIGHUP
    # gives a rolling restart (one process alone can only stop).
    supervised = workers is not None
    if workers is None:
        # (WEB_CONCURRENCY: uvicorn's and gunicorn's, which Heroku and others set.)
        # (Empty is unset, as for WEBSOCKET_HOST: a template's unset variable.)
        variable = (
            "WEBSOCKET_WORKERS"
            if os.environ.get("WEBSOCKET_WORKERS", "").strip()
            else "WEB_CONCURRENCY"
        )
        given = os.environ.get(variable, "").strip()  # (blank: unset, as empty)
        supervised = bool(given)
        try:
            workers = _workers(given or "1")
        except argparse.ArgumentTypeError as exc:
            _refuse(parser, args, f"{variable}: {exc}")
    # --reload restarts the process, and one that stops after limit_max_requests
    # needs another to take its place: the supervisor does both.
    if role is None and (
        supervised or workers > 1 or args.reload or _limits_requests(parser, args)
    ):
        return supervise(parser, args, arguments, workers, from_env_file)
    if role is None:
        # One process: the supervisor's settings do nothing here. Their flags
        # are said, and a bad variable of theirs refused as under --workers.
        unused = [
            "--" + name.replace("_", "-")
            for name in ("worker_start_timeout", "timeout_worker_healthcheck")
            if getattr(args, name) is not None
        ]
        if unused:
            logger.warning(
                "%s without --workers: no supervisor starts or watches workers",
                ", ".join(unused),
            )
        _worker_timeouts(parser, args)
    if role is not None:
        die_with_parent(role.supervisor_pid)
        # A worker is in a process group of its own (see the supervisor): on a
        # terminal set to `stty tostop`, its first log line would stop it (SIGTTOU).
        signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    # No supervisor: these two are job control's again (before the import of
    # the application, whose processes would inherit them blocked).
    release_scaling()
    try:
        app = load_app(args.app, args.interface, args.factory)
    except AppLoadError as exc:
        _refuse(parser, args, str(exc))
    except FactoryError as exc:
        cause = exc.__cause__
        assert cause is not None
        said = "%s failed as it was called (a factory)"
        _fatal(said, args.app, exc_info=_from_the_app(cause))
        return 1
    except LookupFailure as exc:
        cause = exc.__cause__
        assert cause is not None
        _fatal("%s failed as it was looked up", args.app, exc_info=_from_the_app(cause))
        return 1
    except SystemExit as exc:
        # (Said as a hook's or a handler's is: nothing else says why a
        # process that never listened ended, with exit code 0 for sys.exit().)
        code = _exit_code_of(exc)
        logger.warning(
            "%s called sys.exit(%r) %s: the process exits now (exit code %d), before it served",
            args.app,
            exc.code,
            "as it was called (a factory)"
            if isinstance(exc, FactoryExit)
            else "as it was imported",
            code,
        )
        raise
    except Exception as exc:
        # The application's error: its traceback, from its own frames (a
        # worker's lines say which worker), exit code 1.
        _fatal("%s failed as it was imported", args.app, exc_info=_from_the_app(exc))
        return 1
    try:
        config = config_from_args(args, asgi=not isinstance(app, Router))
        if not isinstance(app, Router) and not is_asgi_app(app):
            app = ASGIApplication(app, config)  # --interface asgi vouches for it
    except (ConfigError, ValueError, ImportError) as exc:
        _refuse(parser, args, str(exc), of_settings=True)
    if role is not None:
        # (A loop blocked when the supervisor dies: the process ends all the same.)
        end_when_orphaned(
            role.supervisor_pid,
            supervisor_stop_grace(config.shutdown_timeout, config.close_timeout),
        )
    try:
        new_loop = use_loop(parser, args)
        loop = None if new_loop is None else new_loop()
    except Exception as exc:
        _fatal("--loop %s failed", args.loop, exc_info=_from_the_app(exc))
        return 1
    if loop is not None and not isinstance(loop, asyncio.AbstractEventLoop):
        _refuse(parser, args, f"--loop {args.loop} returned {_a(loop)}, not an event loop")
    if loop is not None and (loop.is_closed() or loop.is_running()):
        # (run_until_complete() would raise, amid "never awaited" warnings.)
        state = "closed" if loop.is_closed() else "running"
        _refuse(
            parser,
            args,
            f"--loop {args.loop} returned an event loop already {state}: it must make a new one",
        )

    def failed(exc: Exception) -> int:
        if isinstance(exc, LifespanFailure):
            what = "startup" if isinstance(app, Router) else "ASGI lifespan startup"
            # What the application raised, with where (its traceback), unless
            # its message says it already (Starlette's is that traceback).
            cause = exc.__cause__
            if cause is not None and "Traceback (most recent call last)" not in str(exc):
                _fatal("%s failed: %s", what, exc, exc_info=_from_the_app(cause))
            else:
                _fatal("%s failed: %s", what, exc)
            return 3
        if isinstance(exc, ConfigError):
            _refuse(parser, args, str(exc), of_settings=True)
        if isinstance(exc, OSError):
            _fatal("cannot listen on %s: %s", _target(args), exc)
            return 1
        raise exc

    return run_to_the_end(
        run(
            app,
            args.host,
            args.port,
            config,
            uds=args.uds,
            fd=args.fd,
            role=role,
            status_dir=args.status_dir,
        ),
        failed,
        loop,
    )


#: The sections of logging's file format (logging.config.fileConfig), and the prefixes of the rest.
_LOG_SECTIONS = ("loggers", "handlers", "formatters")
_LOG_SECTION_PREFIXES = ("logger_", "handler_", "formatter_")


def _log_config_error(exc: Exception) -> str:
    """What is wrong with a --log-config file, in words (fileConfig's KeyError is a bare name;
    dictConfig's "Unable to configure handler 'h'" holds why in its ``__cause__``)."""
    if isinstance(exc, (OSError, ValueError, RuntimeError, configparser.Error)):
        said = " ".join(str(exc).split())  # (one line: configparser's span several)
        cause, seen = exc.__cause__, 0
        while cause is not None and seen < 5:
            why = " ".join(str(cause).split()) or type(cause).__name__
            if why not in said:  # ("Cannot resolve 'x': No module named 'x'" holds its cause's)
                said += f": {why}"
            cause, seen = cause.__cause__, seen + 1
        return said
    if not isinstance(exc, KeyError):
        return " ".join(f"{type(exc).__name__}: {exc}".split())
    name = exc.args[0] if exc.args else ""
    if isinstance(name, str) and (name in _LOG_SECTIONS or name.startswith(_LOG_SECTION_PREFIXES)):
        return f"no [{name}] section"
    return f"KeyError {exc}: a name the file uses is not defined (or an environment variable unset)"


def _refuse(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    message: str,
    *,
    of_settings: bool = False,
) -> NoReturn:
    """Stop at start-up: ``message`` in one line, exit code 2 (with ``--log-format json``,
    a JSON line as every other; logging is configured by then; in a worker, a
    log line that says which, among the supervisor's).

    Before logging is configured (where to listen, ``--env-file``, ``--app-dir``),
    under ``--log-format json``, a JSON line all the same: a handler for it is set.
    ``of_settings``: the settings' check refused (a ConfigError), whose message
    names settings (see :func:`_set_by_variables`); another's words may be a
    setting's name and not mean it (no module named 'broker').
    """
    if of_settings:
        message = _set_by_variables(args, message)
    message += _set_by_env_file(args, message)
    in_worker_log = args.worker is not None and logger.isEnabledFor(logging.ERROR)
    if args.log_format == "json" or (in_worker_log and logger.hasHandlers()):
        if not logger.hasHandlers():
            worker = args.worker.slot if args.worker is not None else None
            configure_logging(args.log_level, None, "json", worker)
        _fatal("%s", message)
        raise SystemExit(2)
    parser.exit(2, f"error: {message}\n")


def _set_by_env_file(args: argparse.Namespace, message: str) -> str:
    """What to add to a refusal ``message`` that names, before its first
    ``:``, variables the ``--env-file`` set (not the environment, which wins):
    where they came from."""
    from_file: frozenset[str] = getattr(args, "from_env_file", frozenset())
    named = re.findall(r"\b[A-Z][A-Z0-9_]*\b", message.split(":", 1)[0])
    ours = [name for name in named if name in from_file]
    if not ours:
        return ""
    which = "" if ours == named else f"{' and '.join(ours)} "
    return f" ({which}set by --env-file {args.env_file})"


def _set_by_variables(args: argparse.Namespace, message: str) -> str:
    """``message`` (a refusal) begun with the variables that set the settings
    it names, where no flag did, as a refusal of a variable's value begins
    (``TLS: ssl_certfile /x: No such file``, no such flag given:
    ``WEBSOCKET_SSL_CERTFILE: TLS: ...``; :func:`_set_by_env_file` then says
    which of them the ``--env-file`` set); unless it names them already."""
    given = flag_settings(args)
    variables = []
    for name, spec in settings():
        if name in given or not re.search(rf"\b{name}\b", message):
            continue
        found = spec.from_environment(os.environ)
        if found is not None and found[0] not in message:
            variables.append(found[0])
    return f"{' and '.join(variables)}: {message}" if variables else message


def _limits_requests(parser: argparse.ArgumentParser, args: argparse.Namespace) -> bool:
    """Whether limit_max_requests is set (by its flag or its variable)."""
    return _supervisor_config(parser, args).limit_max_requests is not None


def _supervisor_config(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Config:
    """The settings the flags and the environment give (the supervisor's: no app loaded)."""
    try:
        return config_from_args(args)
    except ConfigError as exc:
        _refuse(parser, args, str(exc), of_settings=True)


def supervise(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    arguments: list[str],
    workers: int,
    from_env_file: dict[str, str],
) -> int:
    """``--workers N`` (or ``--reload``): bind once, run the workers under a supervisor.

    See :mod:`.supervisor`; with ``--reload``, a change to a watched file
    restarts them (:mod:`.reload`). Each worker started gets ``--env-file``
    as it reads then (``from_env_file``: what it set when this process began).
    """
    config = _supervisor_config(parser, args)
    # (Refused before the socket is made: not after it is bound, or its file
    # made, for every worker to exit with it.)
    try:
        # (Each worker makes its own, and says what it warns of: this one
        # refuses what they would, before the socket is bound.)
        ssl_context(config, quiet=True)
        if config.metrics_path is not None:
            require_prometheus_client()
        broker = config_broker(config)  # (the same: a URL that is none, redis-py missing)
    except ConfigError as exc:
        _refuse(parser, args, str(exc), of_settings=True)
    if workers > 1 and isinstance(broker, MemoryBroker):
        # (Said once, at start: an application that uses no topics loses nothing.)
        logger.info(
            "%d workers, each with topics of its own (no --broker, or memory): subscribe, "
            "publish and presence span one worker, so a room's clients hear only those of "
            "their worker; --broker redis://... joins them",
            workers,
        )
    start_timeout, health = _worker_timeouts(parser, args)
    watcher = None
    if args.reload:
        directories = args.reload_dir or [args.app_dir or os.getcwd()]
        for directory in directories:
            if not os.path.isdir(directory):
                _refuse(parser, args, f"--reload-dir {directory}: not a directory")
        for flag, patterns in (
            ("--reload-include", args.reload_include),
            ("--reload-exclude", args.reload_exclude),
        ):
            for pattern in patterns or ():
                if pattern and not is_pattern(pattern):  # (an empty one matches nothing)
                    _refuse(parser, args, f"{flag} {pattern}: not a file name pattern")
        for pattern in args.reload_include or ():
            # (A name without a wildcard is a file's: uvicorn's watches a
            # directory so named, as --reload-dir.)
            named = pattern and not any(c in pattern for c in "*?[")
            if named and any(os.path.isdir(os.path.join(d, pattern)) for d in directories):
                logger.warning(
                    "--reload-include %s: a directory, where a file name is looked for: none"
                    " of its files is watched (--reload-include '%s/**' for them all)",
                    pattern,
                    pattern.rstrip("/" + os.sep),
                )
        watcher = FileWatcher(
            directories,
            args.reload_include or (),
            args.reload_exclude or (),
            args.reload_delay or POLL_INTERVAL,
        )
        logger.info(
            "--reload: watching %s (not %s) in %s, every %g s",
            ", ".join(watcher.patterns) or "nothing",
            ", ".join(watcher.excluded),
            ", ".join(watcher.directories),
            watcher.interval,
        )
    try:
        sock = listening_socket(args.host, args.port, args.uds, args.fd, config.backlog)
    except OSError as exc:
        _fatal("cannot listen on %s: %s", _target(args), exc)
        return 1
    scheme = "wss" if config.ssl_certfile else "ws"
    logger.info("listening on %s", _where(scheme, sock.getsockname()))
    # What a retiring worker may take: the handshakes under way (open_timeout),
    # its handlers (shutdown_timeout and the cancelling after it), the closing
    # handshakes (close_timeout), and its lifespan shutdown.
    # A stop (SIGTERM, SIGINT) lets no handshake finish: within Kubernetes'
    # 30 s grace with the defaults (25 s).
    stop_grace = supervisor_stop_grace(config.shutdown_timeout, config.close_timeout)
    grace = (config.open_timeout or 10.0) + stop_grace
    shared_dirs = []
    if config.metrics_path is not None and not os.environ.get(MULTIPROC_ENV):
        # One scrape of any worker sees every worker: they share these files.
        shared_dirs.append(tempfile.mkdtemp(prefix="wsserver-metrics-"))
        os.environ[MULTIPROC_ENV] = shared_dirs[-1]
    if config.status_path is not None:
        # And the status page shows every worker: they leave their figures here.
        shared_dirs.append(tempfile.mkdtemp(prefix="wsserver-status-"))
        arguments = with_flags(arguments, "--status-dir", shared_dirs[-1])
    # (The workers' directory: a symbolic link to a release is followed anew
    # by each, and a relative --env-file read again there.)
    workdir = working_directory()
    environment = None
    if args.env_file:
        env_file: str = os.path.join(workdir, args.env_file)
        last: list[dict[str, str] | None] = [None]  # (None: this process's own)
        # What was said of it, in which rolling restart: once for the workers
        # of one deploy (and after a worker died), not once for each.
        said: list[tuple[str, int] | None] = [None]

        def environment() -> dict[str, str] | None:
            try:
                last[0] = reread_env_file(env_file, from_env_file)
            except (OSError, ValueError) as exc:
                why = (str(exc), supervisor.restarts)
                if why != said[0]:
                    said[0] = why
                    logger.warning(
                        "--env-file %s: %s: the worker gets what it said before", env_file, exc
                    )
            else:
                said[0] = None
            return last[0]

    clean_up = _supervisor_s_clean_up(sock, shared_dirs)
    supervisor = Supervisor(
        arguments,
        workers,
        sock,
        grace,
        watcher,
        environment,
        start_timeout=start_timeout,
        health_timeout=health,
        stop_grace=stop_grace,
        cwd=workdir,
        clean_up=clean_up,
    )
    try:
        return asyncio.run(supervisor.run())
    finally:
        clean_up()


def _supervisor_s_clean_up(sock: socket.socket, directories: list[str]) -> Callable[[], None]:
    """What the supervisor does last (again if a signal comes meanwhile): the
    socket closed, a ``--uds`` socket's file and the workers' ``directories``
    removed (the workers are gone)."""

    def clean_up() -> None:
        sock.close()
        remove_socket_file(sock)
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)

    return clean_up


def _worker_timeouts(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[float, float | None]:
    """``--worker-start-timeout`` and ``--timeout-worker-healthcheck`` (or their
    variables; None: no health check), checked: a bad one is refused (exit 2)."""
    start = _flag_or_variable(
        parser, args, "worker_start_timeout", _positive_seconds, START_TIMEOUT
    )
    health = _flag_or_variable(
        parser, args, "timeout_worker_healthcheck", _seconds_or_none, HEALTH_TIMEOUT
    )
    return float(start), None if health == "none" else float(health)


def _flag_or_variable(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    name: str,
    read: Callable[[str], Any],
    default: float,
) -> Any:
    """What flag ``--NAME`` gave, else its ``WEBSOCKET_NAME`` variable read as
    the flag would be (refused, exit 2, if it would be), else ``default``."""
    given = getattr(args, name)
    if given is not None:
        return given
    variable = f"WEBSOCKET_{name.upper()}"
    try:
        return read(os.environ.get(variable) or str(default))
    except argparse.ArgumentTypeError as exc:
        _refuse(parser, args, f"{variable}: {exc}")


def use_loop(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Callable[[], Any] | None:
    """Install the event loop policy ``--loop`` names, or return the function
    that makes the loop (``--loop module:function``, as uvicorn takes it).

    Raises:
        Exception: whatever that function's module raises as it is imported.
    """
    if args.loop not in _LOOPS:
        try:
            factory = _imported(args.loop)
        except AppLoadError as exc:
            _refuse(parser, args, f"--loop {args.loop}: {exc}")
        except LookupFailure as exc:
            assert exc.__cause__ is not None
            raise exc.__cause__ from None  # (its traceback: said as the module's own errors)
        if not callable(factory):
            _refuse(parser, args, f"--loop {args.loop} is {_a(factory)}, not a function")
        made: Callable[[], Any] = factory
        return made
    if args.loop in ("uvloop", "auto"):
        try:
            import uvloop
        except ImportError:
            if args.loop == "auto":
                return None  # (asyncio's)
            _refuse(parser, args, "--loop uvloop needs uvloop: pip install wsserver[uvloop]")
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return None


def _target(args: argparse.Namespace) -> str:
    if args.fd is not None:
        return f"fd {args.fd}"
    if args.uds:
        return str(args.uds)
    return f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"


def configure_logging(
    level: str | None, log_config: str | None, log_format: str = "text", worker: int | None = None
) -> None:
    """Logging as ``--log-level``, ``--log-format`` and ``--log-config`` say.

    A worker's lines name it (``[worker N]``, or the ``worker`` field in JSON).
    ``level`` (None: none was given, info) is the root logger's; with a
    ``log_config``, it is set on wsserver's loggers after it, as uvicorn does
    on its own: the file's say otherwise only when no level was given.

    Raises:
        Exception: ``log_config`` cannot be read or applied (OSError,
            ValueError, KeyError, configparser.Error; and what fileConfig lets
            through: RuntimeError, the ImportError of a ``class=``...).
    """
    prefix = f"[worker {worker}] " if worker is not None else ""

    def root_handler() -> None:
        logging.basicConfig(
            level=getattr(logging, (level or "info").upper()),
            format=f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s",
        )
        if log_format == "json":
            for handler in logging.getLogger().handlers:
                handler.setFormatter(JsonFormatter(worker))
            # (A thread's traceback, a warning: not written over lines of their own.)
            log_what_python_writes()

    if log_config is None:
        root_handler()
        return
    # The file's handlers alone (a root handler of ours too would say each
    # line twice where the file gives wsserver's loggers their own), at the
    # level given, or info, unless the file says otherwise.
    logging.getLogger().setLevel(getattr(logging, (level or "info").upper()))
    if log_config.endswith((".json", ".yaml", ".yml")):
        with open(log_config, encoding="utf-8") as file:
            if log_config.endswith(".json"):
                config = json.load(file)
            else:
                try:
                    import yaml  # type: ignore[import-untyped]
                except ImportError:
                    raise ValueError(
                        "a YAML log configuration needs PyYAML (pip install pyyaml)"
                    ) from None
                config = yaml.safe_load(file)
        if not isinstance(config, dict):
            raise ValueError(f"{log_config} holds no logging configuration (a mapping)")
        # As fileConfig below: wsserver's loggers exist by now, and dictConfig
        # would otherwise silence them (tracebacks of handlers included).
        config.setdefault("disable_existing_loggers", False)
        logging.config.dictConfig(config)
        named = list(config.get("loggers") or ())
    else:
        # Opened first: fileConfig's parser skips a file it cannot open (a
        # directory, one without read permission), and said it had no sections.
        with open(log_config, encoding="utf-8"):
            pass
        logging.config.fileConfig(log_config, disable_existing_loggers=False)
        ini = configparser.ConfigParser()
        ini.read(log_config, encoding="utf-8")
        named = [name.strip() for name in ini.get("loggers", "keys", fallback="").split(",")]
    if level is not None:
        # Each of wsserver's loggers the file gave a level of its own too
        # (wsserver.access at WARNING), as uvicorn sets each of its own: one
        # with a level does not heed its parent's.
        for name, each in list(logging.root.manager.loggerDict.items()):
            if name.startswith("wsserver.") and isinstance(each, logging.Logger) and each.level:
                each.setLevel(getattr(logging, level.upper()))
        logging.getLogger("wsserver").setLevel(getattr(logging, level.upper()))
    if not logging.getLogger("wsserver.server").hasHandlers():
        # The file gives wsserver's lines nowhere to go (uvicorn's loggers
        # alone): the handler there is without a file, rather than silence.
        root_handler()
    if any(n.startswith("uvicorn") for n in named) and not any(
        n.startswith("wsserver") for n in named
    ):
        logger.warning(
            "%s configures uvicorn's loggers, which wsserver does not use: its own are "
            "wsserver.server, wsserver.access, wsserver.protocol, wsserver.broker and "
            "wsserver.supervisor (under wsserver)",
            log_config,
        )


if __name__ == "__main__":
    sys.exit(main())
