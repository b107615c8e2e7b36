"""Broker URLs: which ones name a Redis server, and what of one may be shown.

A URL's password never reaches a log line, an error message or a repr:
:func:`redacted` writes it ``***``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["REDIS_SCHEMES", "check_redis_url", "redacted"]

#: How the URLs of a Redis server begin: TCP, TLS, a Unix socket.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

#: A parameter's name, with its ``=``: after a ``?``, ``&`` or ``;`` (never
#: in the user info: a name holds no ``:``, ``/`` or ``@``).
_PARAMETER_NAME = re.compile(r"(?:^|(?<=[?&;]))([^=&#;?/:@]*)=")
#: An authority that is a host and maybe a port: no user info in it.
_HOST_PORT = re.compile(r"(?:\[[^\]]*\]|[^:@\[\]]*)(?::\d*)?")


def _split(url: str) -> tuple[str, str | None, str]:
    """``url`` as (its scheme with ``://`` or ``:``, its user info or None, the rest).

    The user info ends at the last ``@`` (after the ``password=``
    parameters' values are hidden: see :func:`redacted`). A password may
    hold a ``/``, ``?``, ``#`` or ``@`` (it should be percent-encoded:
    redis-py cannot read it otherwise), and what looks like a host and port
    may be a user and a password that begins with digits (``app:42?pw@host``,
    which redis-py takes for host ``app``, port 42): nothing tells these from
    an ``@`` further on in a query or fragment (``?client_name=me@x``), so
    all before the last ``@`` is taken for user info, hidden, and
    :func:`check_redis_url` refuses such a URL. An ``@`` in a ``unix://``
    path (no host before it) is the path's.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:  # (not a URL: redis:/user:pw@host, user:pw@host)
        colon = url.find(":") + 1
        start, rest = url[:colon], url[colon:]
        at = rest.rfind("@")
        return (start, None, rest) if at < 0 else (start, rest[:at], rest[at:])
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:end]
    at = rest.rfind("@")
    if at < 0:
        if not _HOST_PORT.fullmatch(authority):
            # A password with / ? or # in it, and no host after it: all that
            # follows may be the password.
            colon = authority.find(":")
            return scheme + sep, authority[: colon + 1] + "***", ""
        return scheme + sep, None, rest
    if at >= end and not authority:
        return scheme + sep, None, rest  # (unix:///run/redis@1.sock)
    return scheme + sep, rest[:at], rest[at:]


def _hide_passwords(url: str) -> str:
    """``url`` with the value of each parameter whose name holds ``password``
    (``password=``, a key file's ``ssl_password=``) written ``***``, wherever
    it is (a mistyped URL's too), its name in any case or percent-encoded."""

    # A value runs to the next "&" or "#" (a ";" in a password is its own,
    # to redis-py), but a password= after a ";" in another value is one.
    shown: list[str] = []
    at = 0
    for name in _PARAMETER_NAME.finditer(url):
        if name.start() >= at and "password" in unquote(name[1]).lower():
            end = min(
                (i for i in (url.find(c, name.end()) for c in "&#") if i >= 0), default=len(url)
            )
            shown += (url[at : name.end()], "***")
            at = end
    return "".join(shown) + url[at:]


def redacted(url: str) -> str:
    """``url`` with its password, if any (after the user name, or a
    ``password=`` parameter), written ``***``: what may be shown of it.

    Text that is not a URL (a mistyped one: ``redis:/user:pw@host``) has
    all that comes before an ``@`` hidden, since a password may be there.
    """
    url = _hide_passwords(url)
    start, info, rest = _split(url)
    if info is not None:
        if "://" not in start:
            info = "***"
        elif ":" in info:
            info = info.partition(":")[0] + ":***"
        # (else a user name alone: no password in it)
    return start + (info or "") + rest


def _port(host_port: str) -> str | None:
    """The port of a URL's ``host:port`` (``[v6]:port``), as written; None if
    it has none (or an empty one: the default's)."""
    host_end = host_port.rfind("]") + 1 if host_port.startswith("[") else 0
    _, colon, port = host_port[host_end:].rpartition(":")
    return port if colon and port else None


def check_redis_url(url: str) -> None:
    """Refuse a Redis URL whose database redis-py would silently take for 0.

    ``redis://host/1x`` (a typo) would put a deployment on database 0's
    channels, where another deployment hears it and is heard.

    Nor one whose password has a ``/``, ``?`` or ``#`` not percent-encoded:
    redis-py ends the password there.

    Nor one whose port is not a number from 1 to 65535: redis-py refuses
    one out of range, and takes 0 for its default, 6379.

    Nor a ``unix://`` URL whose path is not absolute: what comes before its
    first ``/`` is a host to redis-py, left out of the path it connects to
    (``unix://run/redis.sock`` is ``/redis.sock``, ``unix://redis.sock``
    none), and every connection attempt fails. ``localhost`` there (a file
    URL's, RFC 8089: ``unix://localhost/run/redis.sock``) is this machine.

    Raises:
        ValueError: the path is not ``/`` and a database number (a socket's
            absolute path, for ``unix://``), the port is not one, or the
            password is not percent-encoded.
    """
    if url.startswith("unix://"):
        rest = _split(_hide_passwords(url))[2].lstrip("@")
        path = rest.partition("?")[0].partition("#")[0]
        if path[:10].lower() == "localhost/":  # (a file URL's host, RFC 8089: this machine)
            path = path[9:]
        if not path.startswith("/") or path == "/":
            raise ValueError(
                f"broker {redacted(url)!r}: a unix:// URL names the socket by its absolute"
                " path (unix:///run/redis/redis.sock)"
            )
        return  # (the database is a ?db= parameter, which redis-py checks)
    if not url.startswith(("redis://", "rediss://")):
        return
    _, info, rest = _split(_hide_passwords(url))
    if info is not None and any(c in info for c in "/?#@"):
        # redis-py ends the password there: it would read another host, port
        # or database, and show the rest of the password in its errors. (Or
        # an @ after the host, which cannot be told from such a password.)
        raise ValueError(
            f"broker {redacted(url)!r} is not a Redis URL redis-py can read (percent-encode "
            "a / ? # or @ in the password, and an @ after the host: %2F %3F %23 %40)"
        )
    rest = rest.lstrip("@")
    path = rest.partition("?")[0].partition("#")[0]
    host_port, _, database = path.partition("/")
    port = _port(host_port)
    if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        # (redis-py's urlparse() refused it: that read as a password to percent-encode.)
        raise ValueError(
            f"broker {redacted(url)!r}: the port after the host must be a number from 1 to 65535"
            f" (redis://host:6379/0), not {port!r}"
        )
    if database and not (database.isascii() and database.isdigit()):
        raise ValueError(
            f"broker {redacted(url)!r}: the database after the host must be a number"
            f" (redis://host:port/0), not {database!r}"
        )
