"""What the server logs, and how: its loggers, the access line, and escaping what clients send.

Everything a client controls (the path, header values, reasons) is logged
through :func:`printable`, so that no control character reaches a log
(``GET /%1b[31m...`` would otherwise write an escape sequence to a terminal).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import sys
import threading
import types
from collections.abc import Awaitable, Callable

__all__ = [
    "logger",
    "access_logger",
    "protocol_logger",
    "printable",
    "peer",
    "log_access",
    "log_app_error",
    "error_fields",
    "JsonFormatter",
    "log_what_python_writes",
    "FailureRun",
    "exit_said",
    "say_exit",
    "HANDLER_EXIT_UNDONE",
]

#: Errors of the application (a handler that raised) and the server's own events.
logger = logging.getLogger("wsserver.server")
#: One INFO line per HTTP response, and per WebSocket connection when it ends.
access_logger = logging.getLogger("wsserver.access")
#: What clients got wrong: DEBUG lines, without tracebacks.
protocol_logger = logging.getLogger("wsserver.protocol")


def printable(text: str) -> str:
    """``text`` with every character that is not printable escaped (``\\x1b``,
    ``\\u2028``, ``\\U000e0001``), and backslashes doubled: what a client sent as
    the four characters ``\\x1b`` is logged ``\\\\x1b``, not as an escaped ESC."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    if ch.isprintable():
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def peer(address: tuple[str, int] | None) -> str:
    """``host:port`` of a peer (``[v6]:port`` for IPv6, as in a URL), or ``-``."""
    if address is None:
        return "-"
    host = address[0]
    return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"


def log_access(
    address: tuple[str, int] | None,
    path: str | None,
    status: int,
    seconds: float,
    close_code: int | None,
    close_reason: str | None = None,
    route: str | None = None,
    *,
    method: str | None = None,
    sent: int = 0,
) -> None:
    """An access line: peer, method, path, status, duration, close code, bytes sent.

    For an HTTP response (its request's duration), or a WebSocket connection
    that ended (the connection's, from its upgrade request). ``path`` is the
    request target's path as the client sent it (percent-encoded, without
    the query string, which may carry secrets), so that what is logged is
    unambiguous; None (``-``) for a request whose head never came whole.
    ``sent`` counts what went on the wire after the head: an HTTP response's
    body (with its chunked framing, if any), a WebSocket's frames.

    The same figures go with the record as fields (``peer``, ``method``,
    ``path``, ``status``, ``duration``, ``close_code``, ``close_reason``,
    ``route``, ``bytes_sent``), for structured logs (``--log-format json``).
    """
    if access_logger.isEnabledFor(logging.INFO):
        # (Spaces as %20: a space would end the path in the line's fields.)
        shown_path = "-" if path is None else printable(path).replace(" ", "%20")
        shown_method = "-" if method is None else printable(method).replace(" ", "%20")
        access_logger.info(
            "%s %s %s %s %.3fs close=%s sent=%d",
            peer(address),
            shown_method,
            shown_path,
            status or "-",
            seconds,
            "-" if close_code is None else close_code,
            sent,
            extra={
                # (No address, a Unix socket's client: null, as each field not
                # known; the line's text says '-'.)
                "peer": None if address is None else peer(address),
                "method": None if method is None else shown_method,
                "path": shown_path,
                "status": status or None,
                "duration": round(seconds, 6),
                "close_code": close_code,
                "close_reason": None if close_reason is None else printable(close_reason),
                "route": route,
                "bytes_sent": sent,
            },
        )


#: The attributes every LogRecord has (and those formatting adds): what is not
#: one of them came in ``extra=`` (the access line's fields, an application's own).
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}

#: Keys of the JSON object that ``extra=`` fields do not replace.
_OWN_KEYS = frozenset(
    {"timestamp", "level", "logger", "message", "worker", "pid", "exception", "stack"}
)


#: Characters that JSON leaves as they are and some readers split lines at.
_LINE_ENDS = {0x2028: "\\u2028", 0x2029: "\\u2029", 0x85: "\\u0085"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (ISO 8601, UTC), level, logger, message,
    worker, pid, the record's ``extra=`` fields (the access fields, see
    :func:`log_access`, and an application's own), and the traceback and stack if any.

    Standard library only. What clients control is escaped as in the text
    format (:func:`printable`) before it gets here.
    """

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
            "worker": self.worker,
            "pid": record.process if record.process is not None else os.getpid(),
        }
        for name, value in record.__dict__.items():
            # (None too, as null: a field not known here is still there, for
            # a schema that does not see fields come and go.)
            if name not in _RECORD_ATTRIBUTES and name not in _OWN_KEYS:
                entry[name] = _as_json(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        line = json.dumps(entry, ensure_ascii=False, default=str, allow_nan=False)
        # What some readers take for line ends (str.splitlines()): escaped.
        return line.translate(_LINE_ENDS) if not line.isascii() else line


def _message(record: logging.LogRecord) -> str:
    """The record's message; for a call whose arguments do not fit it ("%d"
    given a str), its text, what failed and where, and the arguments, on one
    line, where logging would write a traceback and a stack over forty."""
    try:
        return record.getMessage()
    except Exception as exc:
        try:
            text, args, why = str(record.msg), repr(record.args), str(exc)
        except Exception:  # (a __str__ or __repr__ of theirs that fails too)
            text, args, why = object.__repr__(record.msg), object.__repr__(record.args), ""
        return (
            f"{text} (a logging call that failed, at {record.pathname}:{record.lineno}: "
            f"{type(exc).__name__}: {why}; arguments: {args})"
        )


def log_what_python_writes() -> None:
    """What Python writes to stderr itself, over several lines, logged instead,
    one record each (for ``--log-format json``, every line of which is one
    object a log collector reads as one event): warnings (``py.warnings``, as
    :func:`logging.captureWarnings` gives them), a thread's uncaught exception,
    an exception ignored (in ``__del__``, a generator's close), and one that
    ends the main thread; the last three at ERROR on ``wsserver.server``, with
    their tracebacks. Python's own hook takes what logging fails to say."""
    logging.captureWarnings(True)
    threading.excepthook = _thread_exception
    sys.unraisablehook = _unraisable
    sys.excepthook = _uncaught


def _thread_exception(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return  # (as Python's hook: a thread's sys.exit() is its end)
    try:
        name = args.thread.name if args.thread is not None else "?"
        value = args.exc_type() if args.exc_value is None else args.exc_value
        logger.error(
            "exception in thread %s", name, exc_info=(args.exc_type, value, args.exc_traceback)
        )
    except Exception:
        threading.__excepthook__(args)


def _unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    try:
        what = unraisable.err_msg or "Exception ignored in"
        if unraisable.object is not None:
            what = f"{what}: {unraisable.object!r}"
        value = unraisable.exc_value
        if value is None:  # (not `or`: an exception may be false, its __len__ 0)
            value = unraisable.exc_type()
        logger.error("%s", what, exc_info=(unraisable.exc_type, value, unraisable.exc_traceback))
    except Exception:
        sys.__unraisablehook__(unraisable)


def _uncaught(
    kind: type[BaseException], value: BaseException, traceback: types.TracebackType | None
) -> None:
    try:
        logger.error("uncaught exception", exc_info=(kind, value, traceback))
    except Exception:
        sys.__excepthook__(kind, value, traceback)


def _as_json(value: object) -> object:
    """``value`` if JSON can carry it as it is (objects it does not know become
    their ``str()``), else its ``str()``: keys JSON has no text for (tuples) or
    that two of one object would share as JSON's (``1`` and ``"1"``), a cycle,
    NaN or infinity would otherwise lose the line or write one that strict
    parsers refuse. Keys of mixed types that stay apart (``server.stats()``'s
    close codes: ints and ``"other"``) are kept, as JSON writes them."""
    try:
        json.dumps(value, default=str, allow_nan=False)
    except (TypeError, ValueError):
        return str(value)
    return str(value) if _keys_collide(value) else value


def _key_text(key: object) -> str:
    """A dict key as JSON writes it (str, int, float, bool or None: json.dumps
    refused the others)."""
    return key if isinstance(key, str) else json.dumps(key)


def _keys_collide(value: object) -> bool:
    """Whether some dict within ``value`` has two keys JSON writes alike
    (``value`` has no cycle: json.dumps took it)."""
    if isinstance(value, dict):
        if any(not isinstance(key, str) for key in value) and len(
            {_key_text(key) for key in value}
        ) < len(value):
            return True
        return any(_keys_collide(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_keys_collide(item) for item in value)
    return False


def error_fields(
    sent_path: str | None, address: tuple[str, int] | None, route: str | None = None
) -> dict[str, object]:
    """The fields of an application's error line (``extra=``), for structured
    logs as the access line has them: ``peer``, ``path`` (as the access line
    has it: the target's path as sent, percent-encoded), ``route``."""
    return {
        "peer": None if address is None else peer(address),
        "path": None if sent_path is None else printable(sent_path).replace(" ", "%20"),
        "route": route,
    }


def log_app_error(
    problem: str,
    path: str,
    address: tuple[str, int] | None,
    exc: BaseException | None = None,
    *,
    sent_path: str | None = None,
) -> None:
    """An application went wrong on a connection: one ERROR line, with its
    traceback if any (``path`` decoded in the message, ``sent_path``, the
    target's as sent, in its fields)."""
    logger.error(
        "%s on %s from %s",
        problem,
        printable(path),
        peer(address),
        exc_info=exc,
        extra=error_fields(sent_path, address),
    )


def log_client_gone(path: str, exc: BaseException) -> None:
    """What an application raised because its client left: a DEBUG line, not its error."""
    protocol_logger.debug("client gone while the app ran on %s: %r", printable(path), exc)


class FailureRun:
    """A task that tries again every so often (a copy of figures to a shared
    directory): its failures said at WARNING at the first of a run, not at
    each try, and the run's end once it works again."""

    __slots__ = ("failing",)

    def __init__(self) -> None:
        self.failing = False

    def failed(self, message: str, *args: object) -> None:
        """A try failed: ``message`` (with ``args``), if the last one worked."""
        if not self.failing:
            logger.warning(message, *args)
        self.failing = True

    def worked(self, message: str) -> None:
        """A try worked: ``message``, if the last one failed."""
        if self.failing:
            logger.warning(message)
        self.failing = False


async def exit_said(
    awaitable: Awaitable[object],
    what: str | Callable[[], str],
    undone: str | Callable[[], str],
) -> None:
    """Await the application's ``awaitable`` (``what``: an on_startup or
    on_shutdown hook, an ASGI lifespan), in a task of its own.

    A sys.exit() there leaves the event loop from that task: the process
    ends, with the application's exit code, ``undone`` (the rest of the start
    or of the shutdown) undone. Said first (at WARNING: not a failure), as
    nothing else says it; the task's SystemExit is taken as said (not
    asyncio's "exception was never retrieved" later). ``what`` and ``undone``
    may be functions giving them when it happens.
    """
    try:
        await awaitable
    except SystemExit as exc:
        say_exit(exc, what, undone)
        raise


#: What a sys.exit() in a handler leaves undone (see say_exit()).
HANDLER_EXIT_UNDONE = "the server stops at once"


def say_exit(
    exc: SystemExit, what: str | Callable[[], str], undone: str | Callable[[], str]
) -> None:
    """Say that the application's ``what`` called sys.exit() (``exc``), at
    WARNING (not a failure), as nothing else says it; the current task's
    SystemExit, which leaves the event loop, is taken as said (not asyncio's
    "exception was never retrieved" later). For :func:`exit_said`, and for a
    handler's run, which says it where it lets SystemExit go on up."""
    code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    logger.warning(
        "%s called sys.exit(%r): the process exits now (exit code %d), %s",
        what if isinstance(what, str) else what(),
        exc.code,
        code,
        undone if isinstance(undone, str) else undone(),
    )
    task = asyncio.current_task()
    if task is not None:
        task.add_done_callback(_retrieved)


def _retrieved(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()
