"""Broker URLs: which ones name a Redis server, and what of one may be shown.

A URL's password never reaches a log line, an error message or a repr:
:func:`redacted` writes it ``***``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["REDIS_SCHEMES", "check_redis_url", "redacted"]

#: How the URLs of a Redis server begin: TCP, TLS, a Unix socket.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

_PASSWORD_PARAMETER = re.compile(r"(^|&)(password=)[^&]*")


def redacted(url: str) -> str:
    """``url`` with its password, if any (after the user name, or a
    ``password=`` parameter), written ``***``: what may be shown of it.

    Text that is not a URL (a mistyped one: ``redis:/user:pw@host``) has
    whatever comes before an ``@`` hidden, since a password may be there.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # (not a URL that could be read: nothing of it shown)
        return "(the broker URL)"
    shown = url  # (rebuilt from its parts, unix:///path would lose its "//")
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        shown = shown.replace(parts.netloc, f"{parts.username or ''}:***@{host}", 1)
    elif "://" not in url and "@" in url.partition("?")[0]:
        before = url.partition("?")[0].rpartition("@")[0]
        start = before.find(":") + 1
        shown = before[:start] + "***" + url[len(before) :]
    if parts.query:
        query = _PASSWORD_PARAMETER.sub(r"\1\2***", parts.query)
        shown = shown.replace("?" + parts.query, "?" + query, 1)
    return shown


def check_redis_url(url: str) -> None:
    """Refuse a Redis URL whose database redis-py would silently take for 0.

    ``redis://host/1x`` (a typo) would put a deployment on database 0's
    channels, where another deployment hears it and is heard.

    Raises:
        ValueError: the path is not ``/`` and a database number.
    """
    if not url.startswith(("redis://", "rediss://")):
        return  # (unix://: the database is a ?db= parameter, which redis-py checks)
    try:
        path = urlsplit(url).path
    except ValueError:
        raise ValueError(f"{redacted(url)!r} is not a URL") from None
    database = path[1:]
    if database and not (database.isascii() and database.isdigit()):
        raise ValueError(
            f"broker {redacted(url)!r}: the database after the host must be a number"
            f" (redis://host:port/0), not {database!r}"
        )
