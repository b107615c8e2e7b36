"""Small HTTP responses: for plain HTTP routes and for denying a WebSocket upgrade.

Example::

    from wsserver.response import json, text

    @routes.get("/health")
    async def health(request):
        return json({"status": "ok"})
"""

from __future__ import annotations

import json as json_module
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["Response", "text", "html", "json", "raw", "empty"]

HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]]


class Response:
    """An HTTP response: status, headers and a body.

    Args:
        body: the body; a str is encoded as UTF-8.
        status: the status code.
        headers: extra headers, as a mapping or ``(name, value)`` pairs.
        content_type: the ``Content-Type`` header, if any.

    Raises:
        ValueError: a header name or value contains CR, LF or NUL, or the
            status is not between 200 and 599.
    """

    __slots__ = ("body", "status", "headers")

    def __init__(
        self,
        body: bytes | str = b"",
        status: int = 200,
        headers: HeadersLike | None = None,
        content_type: str | None = None,
    ) -> None:
        if not 200 <= status <= 599:
            raise ValueError(f"HTTP status must be between 200 and 599, not {status}")
        self.status = status
        self.body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        items = list(headers.items() if isinstance(headers, Mapping) else headers or [])
        if content_type is not None and not any(n.lower() == "content-type" for n, _ in items):
            items.append(("Content-Type", content_type))
        for name, value in items:
            if any(c in name or c in value for c in "\r\n\0"):
                raise ValueError(f"invalid character in response header {name!r}")
        self.headers: list[tuple[str, str]] = items

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.body)} bytes>"


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
