"""Small HTTP responses: for plain HTTP routes and for denying a WebSocket upgrade.

The helpers below build a :class:`~wsserver.protocol.http.Response` (importable
from here too) with the right ``Content-Type``; :func:`accept` is an
``on_connect`` hook's yes with conditions.

Example::

    from wsserver.response import json, text

    @routes.get("/health")
    async def health(request):
        return json({"status": "ok"})
"""

from __future__ import annotations

import json as json_module
from collections.abc import Callable
from typing import Any

from ..protocol.handshake import Acceptance
from ..protocol.http import HeadersLike, Response

__all__ = [
    "Response",
    "Acceptance",
    "accept",
    "text",
    "html",
    "json",
    "raw",
    "empty",
    "json_response",
    "text_response",
    "html_response",
]


def text(body: str, status: int = 200, headers: HeadersLike | None = None) -> Response:
    """A ``text/plain`` response."""
    return Response(body, status, headers, "text/plain; charset=utf-8")


def html(body: str, status: int = 200, headers: HeadersLike | None = None) -> Response:
    """A ``text/html`` response."""
    return Response(body, status, headers, "text/html; charset=utf-8")


def json(
    body: Any,
    status: int = 200,
    headers: HeadersLike | None = None,
    dumps: Callable[[Any], str] = json_module.dumps,
) -> Response:
    """An ``application/json`` response of ``dumps(body)``."""
    return Response(dumps(body), status, headers, "application/json")


def raw(
    body: bytes,
    status: int = 200,
    headers: HeadersLike | None = None,
    content_type: str = "application/octet-stream",
) -> Response:
    """A response with a bytes body."""
    return Response(body, status, headers, content_type)


def empty(status: int = 204, headers: HeadersLike | None = None) -> Response:
    """A response without a body."""
    return Response(b"", status, headers)


def accept(subprotocol: str | None = None, headers: HeadersLike | None = None) -> Acceptance:
    """What an ``on_connect`` hook returns to accept the upgrade with a say in the ``101``.

    Args:
        subprotocol: the subprotocol to speak, one of ``request.subprotocols``
            (those the client offered), whether or not the route lists it;
            None keeps the route's choice.
        headers: more headers for the 101, as a mapping or ``(name, value)``
            pairs (``Set-Cookie`` several times, say).

    Raises:
        ValueError: a header is malformed, or one the handshake writes itself
            (``Upgrade``, ``Connection``, ``Sec-WebSocket-*``) or a 101 may not
            carry (``Content-Length``, ``Transfer-Encoding``).

    Example::

        def pick(request):
            if "chat.v2" in request.subprotocols:
                return accept("chat.v2", {"Set-Cookie": "seen=1; Path=/"})
            return text("Upgrade your client", 400)
    """
    return Acceptance(subprotocol, headers)


#: The same helpers under names that do not shadow the standard library's
#: ``json`` (nor anything else) when imported: ``from wsserver.response
#: import json_response``.
json_response = json
text_response = text
html_response = html
