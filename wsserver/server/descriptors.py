"""File descriptors: the open-files limit a server needs, and running out of them.

Each connection holds a descriptor. Many systems give a process a soft limit
of 1,024 (systemd's default) under a hard one that allows far more: the
command line raises the soft limit to the hard, as Go's runtime does. When
descriptors run out all the same, asyncio logs every ``accept()`` refused,
with a traceback, and tries again at once (some 6,000 lines a second):
:func:`say_accept_failures_once_in_a_while` makes that one line every
:data:`SAID_EVERY` seconds, saying what to raise.
"""

from __future__ import annotations

import asyncio
import errno
import time
from typing import Any

from ..logs import logger

__all__ = ["SAID_EVERY", "raise_open_files_limit", "say_accept_failures_once_in_a_while"]

#: Seconds between two lines saying that connections cannot be accepted.
SAID_EVERY = 10.0

#: macOS's OPEN_MAX: the soft limit its setrlimit(2) says to ask for when more is refused.
_OPEN_MAX = 10240

#: What asyncio's loops say when accept() fails for want of a resource.
_ACCEPT_FAILED = "socket.accept() out of system resource"


def raise_open_files_limit() -> tuple[int, int] | None:
    """Raise this process's soft limit of open files to its hard limit.

    Returns:
        The soft limit before and after, or None where there is no such
        limit (not Unix), it is already the hard one, or it cannot be raised.
    """
    try:
        import resource
    except ImportError:  # (Windows)
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    # The hard limit; where it is infinite, a million. macOS refuses more
    # than its kern.maxfilesperproc, and its setrlimit(2) says to ask for
    # OPEN_MAX (10,240) then.
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    for target in (wanted, min(wanted, _OPEN_MAX)):
        if soft >= target:
            return None
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        return soft, target
    return None


def open_files_limit() -> int | None:
    """This process's soft limit of open files (None: none, or not known)."""
    try:
        import resource
    except ImportError:
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def say_accept_failures_once_in_a_while(loop: asyncio.AbstractEventLoop) -> None:
    """Have ``loop`` say connections cannot be accepted for want of
    descriptors (or memory) once every :data:`SAID_EVERY` seconds, as one
    line, rather than each refused ``accept()`` with its traceback."""
    previous = loop.get_exception_handler()
    said_at = -SAID_EVERY
    since = 0

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        nonlocal said_at, since
        if context.get("message") != _ACCEPT_FAILED:
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - said_at < SAID_EVERY:
            since += 1
            return
        said_at = now
        exception = context.get("exception")
        logger.error(
            "cannot accept connections: %s (%s); said at most every %g s%s",
            exception,
            _advice(getattr(exception, "errno", None)),
            SAID_EVERY,
            f" ({since} more since)" if since else "",
        )
        since = 0

    loop.set_exception_handler(handler)


def _advice(error: int | None) -> str:
    """What to do about an ``accept()`` refused for want of ``error``'s resource."""
    if error == errno.ENFILE:
        return "the whole system's open files are used up: raise sysctl fs.file-max"
    if error in (errno.ENOBUFS, errno.ENOMEM):
        return "the kernel is short of memory for sockets"
    limit = open_files_limit()
    return (
        f"open files: at most {limit if limit is not None else 'unknown'} for this process; "
        "raise the hard limit: ulimit -Hn, systemd's LimitNOFILE="
    )
