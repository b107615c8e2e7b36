"""The route table: URI patterns with typed path parameters, matched to handlers.

Patterns are paths with parameters in angle brackets: ``<room_id>`` (any
segment), ``<n:int>``, ``<x:float>``, ``<id:uuid>``, ``<rest:path>`` (the rest
of the path, slashes included). Routes are tried in the order they were added.

With ``strict_slashes`` false (the router's default), ``/chat`` and
``/chat/`` match the same route; with it true, only the exact form matches.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlencode

__all__ = ["Route", "Router", "Handler"]

Handler = Callable[..., Awaitable[Any]]
H = TypeVar("H", bound=Handler)

_PARAM_RE = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?>")

# type name -> (regex, converter)
_TYPES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "str": (r"[^/]+", str),
    "int": (r"-?\d+", int),
    "float": (r"-?\d+(?:\.\d+)?", float),
    "uuid": (r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", uuid.UUID),
    "path": (r".+", str),
}


class Route:
    """One entry of the route table.

    Attributes:
        handler: ``async def handler(request, ws, **params)``.
        uri: the full pattern, version prefix included.
        name: the name used by :meth:`Router.url_for`.
        subprotocols: the subprotocols this route speaks, in preference order
            of the client's offer (see the README).
        hosts: the ``Host`` values this route answers, or None for any.
        strict_slashes: whether a trailing slash must match exactly.
    """

    __slots__ = (
        "handler",
        "uri",
        "name",
        "subprotocols",
        "hosts",
        "strict_slashes",
        "_regex",
        "_converters",
        "options",
    )

    def __init__(
        self,
        handler: Handler,
        uri: str,
        *,
        name: str,
        subprotocols: Iterable[str] | None,
        hosts: frozenset[str] | None,
        strict_slashes: bool,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.handler = handler
        self.uri = uri
        self.name = name
        self.subprotocols = tuple(subprotocols or ())
        self.hosts = hosts
        self.strict_slashes = strict_slashes
        self.options = options or {}
        self._converters: dict[str, Callable[[str], Any]] = {}
        self._regex = self._compile(uri, strict_slashes)

    def _compile(self, uri: str, strict_slashes: bool) -> re.Pattern[str]:
        parts = []
        pos = 0
        for m in _PARAM_RE.finditer(uri):
            parts.append(re.escape(uri[pos : m.start()]))
            name, kind = m.group(1), m.group(2) or "str"
            if kind not in _TYPES:
                raise ValueError(f"unknown parameter type {kind!r} in {uri!r}")
            if name in self._converters:
                raise ValueError(f"parameter {name!r} appears twice in {uri!r}")
            regex, converter = _TYPES[kind]
            self._converters[name] = converter
            parts.append(f"(?P<{name}>{regex})")
            pos = m.end()
        tail = uri[pos:]
        if not strict_slashes and tail.endswith("/") and len(uri) > 1:
            tail = tail[:-1]
        parts.append(re.escape(tail))
        pattern = "".join(parts)
        if not strict_slashes and pattern not in ("/", ""):
            pattern += "/?"
        return re.compile(pattern + r"\Z")

    def match(self, path: str) -> dict[str, Any] | None:
        """The converted path parameters if ``path`` matches, else None."""
        m = self._regex.match(path)
        if m is None:
            return None
        params: dict[str, Any] = {}
        for name, value in m.groupdict().items():
            try:
                params[name] = self._converters[name](value)
            except ValueError:
                return None
        return params

    def accepts_host(self, host: str) -> bool:
        """Whether this route answers requests for ``host`` (a Host header)."""
        if self.hosts is None:
            return True
        host = host.lower()
        return host in self.hosts or host.rsplit(":", 1)[0] in self.hosts

    def __repr__(self) -> str:
        return f"<Route {self.uri!r} -> {getattr(self.handler, '__name__', self.handler)}>"


class Router:
    """A table of WebSocket routes.

    Example::

        routes = Router()

        @routes.websocket("/ws/chat/<room_id>")
        async def chat(request, ws, room_id):
            ...

    Args:
        strict_slashes: the default for routes that do not set it.
    """

    def __init__(self, *, strict_slashes: bool = False) -> None:
        self.strict_slashes = strict_slashes
        self.routes: list[Route] = []
        self._names: dict[str, Route] = {}

    def websocket(
        self,
        uri: str,
        *,
        subprotocols: Iterable[str] | None = None,
        name: str | None = None,
        host: str | Iterable[str] | None = None,
        strict_slashes: bool | None = None,
        version: int | str | None = None,
        version_prefix: str = "/v",
    ) -> Callable[[H], H]:
        """Decorator: register ``handler`` as a WebSocket route at ``uri``.

        The handler is returned unchanged, so decorators may be stacked to
        serve one handler at several URIs.
        """

        def decorator(handler: H) -> H:
            self.add_websocket_route(
                handler,
                uri,
                subprotocols=subprotocols,
                name=name,
                host=host,
                strict_slashes=strict_slashes,
                version=version,
                version_prefix=version_prefix,
            )
            return handler

        return decorator

    def add_websocket_route(
        self,
        handler: Handler,
        uri: str,
        *,
        subprotocols: Iterable[str] | None = None,
        name: str | None = None,
        host: str | Iterable[str] | None = None,
        strict_slashes: bool | None = None,
        version: int | str | None = None,
        version_prefix: str = "/v",
    ) -> Route:
        """Register ``handler`` as a WebSocket route at ``uri``; return the route.

        Raises:
            ValueError: ``uri`` does not start with ``/``, has an unknown
                parameter type, or ``name`` is already taken.
        """
        if not uri.startswith("/"):
            raise ValueError(f"route URI must start with '/': {uri!r}")
        if version is not None:
            uri = f"/{version_prefix.strip('/')}{version}{uri if uri != '/' else ''}"
        if isinstance(host, str):
            hosts: frozenset[str] | None = frozenset({host.lower()})
        elif host is not None:
            hosts = frozenset(h.lower() for h in host)
        else:
            hosts = None
        explicit = name is not None
        route_name = name if name is not None else getattr(handler, "__name__", uri)
        if explicit and route_name in self._names:
            raise ValueError(f"a route named {route_name!r} already exists")
        route = Route(
            handler,
            uri,
            name=route_name,
            subprotocols=subprotocols,
            hosts=hosts,
            strict_slashes=self.strict_slashes if strict_slashes is None else strict_slashes,
        )
        self.routes.append(route)
        if explicit or route_name not in self._names:
            self._names[route_name] = route
        return route

    def match(self, path: str, host: str = "") -> tuple[Route, dict[str, Any]] | None:
        """The first route matching ``path`` and ``host``, with its parameters."""
        for route in self.routes:
            params = route.match(path)
            if params is not None and route.accepts_host(host):
                return route, params
        return None

    def url_for(self, name: str, **params: Any) -> str:
        """Build the path of route ``name``; parameters not in the path become the query.

        Raises:
            KeyError: no route is named ``name``.
            ValueError: a path parameter is missing or does not fit its type.
        """
        route = self._names[name]
        used: set[str] = set()

        def substitute(m: re.Match[str]) -> str:
            pname, kind = m.group(1), m.group(2) or "str"
            if pname not in params:
                raise ValueError(f"missing parameter {pname!r} for route {name!r}")
            used.add(pname)
            return quote(str(params[pname]), safe="/" if kind == "path" else "")

        path = _PARAM_RE.sub(substitute, route.uri)
        if route.match(unquote(path)) is None:
            raise ValueError(f"parameters {params!r} do not fit route {route.uri!r}")
        query = {k: v for k, v in params.items() if k not in used}
        if query:
            path += "?" + urlencode(query, doseq=True)
        return path
