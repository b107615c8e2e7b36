"""Telling systemd how the service is doing: sd_notify(3)'s protocol.

A unit of ``Type=notify`` (or ``notify-reload``) names a datagram socket in
``NOTIFY_SOCKET``; the service writes its state there as ``KEY=value`` lines:
``READY=1`` once it serves (systemd starts what waits for it only then),
``RELOADING=1`` with the monotonic clock's time as a reload begins and
``READY=1`` again once it is done, ``STOPPING=1`` as it stops, ``STATUS=`` a
line for ``systemctl status``; and, where the unit has ``WatchdogSec=``
(``WATCHDOG_USEC``), ``WATCHDOG=1`` twice in each such time, from the event
loop, so that one blocked is found (and the service killed, restarted as the
unit says). Without the variable, nothing is sent. Only the
command line's main process says it (the supervisor, or the single process):
not a worker, nor a server embedded with ``serve()``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

__all__ = ["notify", "reloading", "keep_watchdog"]

logger = logging.getLogger("wsserver.server")

#: Whether a message failed to go already (said once, at WARNING).
_failed = False


def notify(*states: str) -> None:
    """Send ``states`` (``"READY=1"``, ``"STATUS=..."``) to systemd, if it
    listens (``NOTIFY_SOCKET``: a path, or ``@`` and an abstract name). Never
    raises: a socket that takes nothing is said once, at WARNING (systemd,
    waiting for ``READY=1``, would time the start out)."""
    global _failed
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        target = "\0" + address[1:]  # (Linux's abstract namespace)
    elif address.startswith("/"):
        target = address
    else:  # (vsock:..., systemd 253's, for a virtual machine's manager: not here)
        _say_failed(address, "not a Unix socket's path or abstract name")
        return
    message = "\n".join(states).encode("utf-8", "replace")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            # (Not blocking: from the event loop, a full queue is one warning.)
            sock.sendto(message, socket.MSG_DONTWAIT, target)
    except OSError as exc:
        _say_failed(address, os.strerror(exc.errno) if exc.errno else str(exc))
        return
    if _failed:
        _failed = False
        logger.info("NOTIFY_SOCKET %s takes systemd's messages again", address)


def _say_failed(address: str, why: str) -> None:
    global _failed
    if not _failed:
        _failed = True
        logger.warning(
            "NOTIFY_SOCKET names %s, which took no message (%s): systemd (Type=notify) is not"
            " told how the service is doing",
            address,
            why,
        )


def reloading() -> tuple[str, str]:
    """A reload's beginning, as ``Type=notify-reload`` asks for it: ``RELOADING=1``
    with ``MONOTONIC_USEC``, the monotonic clock's time then (systemd checks it)."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return ("RELOADING=1", f"MONOTONIC_USEC={usec}")


def keep_watchdog(loop: asyncio.AbstractEventLoop) -> bool:
    """Where the unit has ``WatchdogSec=`` (``WATCHDOG_USEC``, and
    ``WATCHDOG_PID``, if set, this process), send ``WATCHDOG=1`` from ``loop``
    every half of it, till the loop closes: a loop blocked sends none, and
    systemd kills the service. Whether it does (False where no watchdog is
    asked for, or its variables are not numbers)."""
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
        owner = os.environ.get("WATCHDOG_PID")
        if owner and int(owner) != os.getpid():
            return False
    except ValueError:
        return False
    if usec <= 0 or not os.environ.get("NOTIFY_SOCKET"):
        return False
    interval = usec / 2e6

    def beat() -> None:
        notify("WATCHDOG=1")
        loop.call_later(interval, beat)

    loop.call_later(interval, beat)
    return True
