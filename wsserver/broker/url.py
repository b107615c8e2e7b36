"""Broker URLs: which ones name a Redis server, and what of one may be shown.

A URL's password never reaches a log line, an error message or a repr:
:func:`redacted` writes it ``***``.
"""

from __future__ import annotations

import re

__all__ = ["REDIS_SCHEMES", "check_redis_url", "redacted"]

#: How the URLs of a Redis server begin: TCP, TLS, a Unix socket.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

_PASSWORD_PARAMETER = re.compile(r"(^|&)(password=)[^&]*")


def _split(url: str) -> tuple[str, str | None, str]:
    """``url`` as (its scheme with ``://`` or ``:``, its user info or None, the rest).

    The user info is all before the last ``@`` of what follows ``://``
    (unless a path begins there: ``unix:///run/redis.sock``), whatever it
    holds: a password may have ``/``, ``?``, ``#`` or ``@`` in it, which
    ``urlsplit`` would take for the end of the host.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:  # (not a URL: redis:/user:pw@host, user:pw@host)
        colon = url.find(":") + 1
        scheme, sep, rest = "", url[:colon], url[colon:]
    at = rest.rfind("@")
    if at < 0 or (sep == "://" and rest.startswith("/")):
        return scheme + sep, None, rest
    return scheme + sep, rest[:at], rest[at:]


def redacted(url: str) -> str:
    """``url`` with its password, if any (after the user name, or a
    ``password=`` parameter), written ``***``: what may be shown of it.

    Text that is not a URL (a mistyped one: ``redis:/user:pw@host``) has
    all that comes before an ``@`` hidden, since a password may be there.
    """
    start, info, rest = _split(url)
    if info is not None:
        if "://" not in start:
            info = "***"
        elif ":" in info:
            info = info.partition(":")[0] + ":***"
        # (else a user name alone: no password in it)
    query = rest.find("?")
    if query >= 0:
        rest = rest[: query + 1] + _PASSWORD_PARAMETER.sub(r"\1\2***", rest[query + 1 :])
    return start + (info or "") + rest


def check_redis_url(url: str) -> None:
    """Refuse a Redis URL whose database redis-py would silently take for 0.

    ``redis://host/1x`` (a typo) would put a deployment on database 0's
    channels, where another deployment hears it and is heard.

    Raises:
        ValueError: the path is not ``/`` and a database number.
    """
    if not url.startswith(("redis://", "rediss://")):
        return  # (unix://: the database is a ?db= parameter, which redis-py checks)
    rest = _split(url)[2].lstrip("@")
    path = rest.partition("?")[0].partition("#")[0]
    database = path.partition("/")[2]
    if database and not (database.isascii() and database.isdigit()):
        raise ValueError(
            f"broker {redacted(url)!r}: the database after the host must be a number"
            f" (redis://host:port/0), not {database!r}"
        )
