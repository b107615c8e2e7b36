"""What the server logs, and how: its loggers, the access line, and escaping what clients send.

Everything a client controls (the path, header values, reasons) is logged
through :func:`printable`, so that no control character reaches a log
(``GET /%1b[31m...`` would otherwise write an escape sequence to a terminal).
"""

from __future__ import annotations

import logging

__all__ = [
    "logger",
    "access_logger",
    "protocol_logger",
    "printable",
    "peer",
    "log_access",
    "log_app_error",
]

#: Errors of the application (a handler that raised) and the server's own events.
logger = logging.getLogger("wsserver.server")
#: One INFO line per connection, when it ends.
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
) -> None:
    """The access line of a connection that ended: peer, path, status, duration, close code."""
    if access_logger.isEnabledFor(logging.INFO):
        access_logger.info(
            "%s %s %s %.3fs close=%s",
            peer(address),
            "-" if path is None else printable(path),
            status or "-",
            seconds,
            "-" if close_code is None else close_code,
        )


def log_app_error(
    problem: str, path: str, address: tuple[str, int] | None, exc: BaseException | None = None
) -> None:
    """An application went wrong on a connection: one ERROR line, with its traceback if any."""
    logger.error("%s on %s from %s", problem, printable(path), peer(address), exc_info=exc)
