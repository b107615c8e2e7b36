"""What the server logs, and how: its loggers, the access line, and escaping what clients send.

Everything a client controls (the path, header values, reasons) is logged
through :func:`printable`, so that no control character reaches a log
(``GET /%1b[31m...`` would otherwise write an escape sequence to a terminal).
"""

from __future__ import annotations

import datetime
import json
import logging

__all__ = [
    "logger",
    "access_logger",
    "protocol_logger",
    "printable",
    "peer",
    "log_access",
    "log_app_error",
    "JsonFormatter",
]

#: Errors of the application (a handler that raised) and the server's own events.
logger = logging.getLogger("wsserver.server")
#: One INFO line per HTTP response, and per WebSocket connection when it ends.
access_logger = logging.getLogger("wsserver.access")
#: What clients got wrong: DEBUG lines, without tracebacks.
protocol_logger = logging.getLogger("wsserver.protocol")


def printable(text: str) -> str:
    """``text`` with every character that is not printable escaped (``\\x1b``, ``\\u2028``)."""
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() else f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
        for ch in text
    )


def peer(address: tuple[str, int] | None) -> str:
    """``host:port`` of a peer, or ``-``."""
    return "-" if address is None else f"{address[0]}:{address[1]}"


def log_access(
    address: tuple[str, int] | None,
    path: str | None,
    status: int,
    seconds: float,
    close_code: int | None,
    close_reason: str | None = None,
    route: str | None = None,
) -> None:
    """An access line: peer, path, status, duration, close code.

    For an HTTP response (its request's duration), or a WebSocket connection
    that ended (the connection's).

    The same figures go with the record as fields (``peer``, ``path``,
    ``status``, ``duration``, ``close_code``, ``close_reason``, ``route``), for
    structured logs (``--log-format json``).
    """
    if access_logger.isEnabledFor(logging.INFO):
        # (Spaces as %20: a space would end the path in the line's fields.)
        shown_path = "-" if path is None else printable(path).replace(" ", "%20")
        access_logger.info(
            "%s %s %s %.3fs close=%s",
            peer(address),
            shown_path,
            status or "-",
            seconds,
            "-" if close_code is None else close_code,
            extra={
                "peer": peer(address),
                "path": shown_path,
                "status": status or None,
                "duration": round(seconds, 6),
                "close_code": close_code,
                "close_reason": None if close_reason is None else printable(close_reason),
                "route": route,
            },
        )


#: Record attributes that structured logs carry when a record has them.
FIELDS = ("peer", "path", "status", "duration", "close_code", "close_reason", "route")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (ISO 8601, UTC), level, logger, message, worker,
    the access fields when there are (see :func:`log_access`), and the traceback if any.

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
            "message": record.getMessage(),
            "worker": self.worker,
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_app_error(
    problem: str, path: str, address: tuple[str, int] | None, exc: BaseException | None = None
) -> None:
    """An application went wrong on a connection: one ERROR line, with its traceback if any."""
    logger.error("%s on %s from %s", problem, printable(path), peer(address), exc_info=exc)


def log_client_gone(path: str, exc: BaseException) -> None:
    """What an application raised because its client left: a DEBUG line, not its error."""
    protocol_logger.debug("client gone while the app ran on %s: %r", printable(path), exc)
