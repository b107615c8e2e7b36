"""Small HTTP responses: for plain HTTP routes and for denying a WebSocket upgrade.

The helpers below build a :class:`~wsserver.protocol.http.Response` (importable
from here too) with the right ``Content-Type``.

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

from ..protocol.http import HeadersLike, Response

__all__ = [
    "Response",
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


#: The same helpers under names that do not shadow the standard library's
#: ``json`` (nor anything else) when imported: ``from wsserver.response
#: import json_response``.
json_response = json
text_response = text
html_response = html
