"""ASGI connection scopes (asgiref ``specs/www.rst``, HTTP and WebSocket 2.5), from a request.

Plain data in, a ``dict`` out: no I/O. The request says where the connection
comes from and its scheme (behind a trusted proxy, what the proxy said); the
I/O layer says where it goes to (``server``) and passes the lifespan state to
copy.
"""

from __future__ import annotations

from typing import Any

from ..app.request import Request
from ..protocol.handshake import comma_tokens
from ..protocol.http import raw_fields

__all__ = ["ASGI_VERSION", "http_scope", "websocket_scope", "raw_headers"]

#: What the ``asgi`` key of every scope says.
ASGI_VERSION = {"version": "3.0", "spec_version": "2.5"}

Address = tuple[str, int | None]


def raw_headers(request: Request) -> list[tuple[bytes, bytes]]:
    """The request's headers as ASGI wants them: bytes, lowercase names, in order."""
    return raw_fields(request.headers.raw_items())


def _common(
    request: Request,
    root_path: str,
    server: Address | None,
    state: dict[str, Any] | None,
) -> dict[str, Any]:
    raw_path = request.target.partition("?")[0]
    scope: dict[str, Any] = {
        "asgi": ASGI_VERSION.copy(),  # (an application may change its own)
        "http_version": request.http_version,
        # As uvicorn does (and Starlette expects): path includes root_path.
        "path": root_path + request.path,
        "raw_path": (root_path + raw_path).encode("latin-1"),
        "query_string": request.query_string.encode("latin-1"),
        "root_path": root_path,
        "headers": raw_headers(request),
        "client": request.remote_address,
        "server": server,
    }
    # (Without a lifespan state, an empty one, as uvicorn gives: middleware
    # writes to scope["state"] whether or not the app has a lifespan.)
    scope["state"] = {} if state is None else state.copy()
    return scope


def http_scope(
    request: Request,
    *,
    root_path: str = "",
    server: Address | None = None,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``http`` scope of a request (``state`` is copied, shallowly; None: ``{}``).

    ``extensions`` advertises asgiref's ``http.response.pathsend`` (the
    server sends a file's contents as the response body),
    ``http.response.zerocopysend`` (a part of an open file as a piece of it),
    ``http.response.early_hint`` (``103 Early Hints``) and
    ``http.response.trailers``; and, over TLS to this server, ``tls`` says
    what the connection is.
    """
    scope = _common(request, root_path, server, state)
    scope["type"] = "http"
    scope["method"] = request.method
    scope["scheme"] = request.scheme
    scope["extensions"] = {
        "http.response.pathsend": {},
        "http.response.early_hint": {},
        "http.response.trailers": {},
        "http.response.zerocopysend": {},
    }
    if request.tls is not None:
        scope["extensions"]["tls"] = request.tls.asgi()
    return scope


def websocket_scope(
    request: Request,
    *,
    root_path: str = "",
    server: Address | None = None,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``websocket`` scope of an upgrade request (``state`` is copied, shallowly).

    ``extensions`` advertises ``websocket.http.response``: the application may
    deny the upgrade with an HTTP response of its own; and ``tls`` as in
    :func:`http_scope`.
    """
    scope = _common(request, root_path, server, state)
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if request.scheme == "https" else "ws"
    scope["subprotocols"] = comma_tokens(request.headers, "sec-websocket-protocol")
    scope["extensions"] = {"websocket.http.response": {}}
    if request.tls is not None:
        scope["extensions"]["tls"] = request.tls.asgi()
    return scope
