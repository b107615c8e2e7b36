"""The HTTP request that opened a connection: headers, query args, cookies, params."""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote

__all__ = ["Headers", "QueryArgs", "Request"]


class Headers(Mapping[str, str]):
    """Case-insensitive, multi-valued HTTP headers.

    ``headers["X"]`` and ``headers.get("x")`` give the first value;
    :meth:`getall` gives every value, in order.
    """

    __slots__ = ("_items", "_index")

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        self._index: dict[str, list[str]] = {}
        for name, value in items or []:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append a header."""
        self._items.append((name, value))
        self._index.setdefault(name.lower(), []).append(value)

    def __getitem__(self, name: str) -> str:
        return self._index[name.lower()][0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def getall(self, name: str) -> list[str]:
        """Every value of header ``name`` (an empty list when absent)."""
        return list(self._index.get(name.lower(), ()))

    def raw_items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair as received, repeated names included."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class QueryArgs(dict[str, list[str]]):
    """Query arguments: ``args.get(name)`` gives the first value, ``args[name]`` all."""

    def get(self, name: str, default: Any = None) -> Any:
        """The first value of ``name``, or ``default``."""
        values = super().get(name)
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        """Every value of ``name`` (an empty list when absent)."""
        return list(super().get(name, []))


class Request:
    """An HTTP request, as seen by route handlers and handshake hooks.

    Attributes:
        method: e.g. ``"GET"``.
        path: the decoded path, without the query string.
        query_string: the raw query string (without ``?``).
        args: the parsed query arguments.
        headers: the request headers.
        match_info: the path parameters of the matched route.
        remote_address: the peer's ``(host, port)``, or None if unknown.
        http_version: e.g. ``"1.1"``.
        ctx: a namespace for per-connection application state.
    """

    __slots__ = (
        "method",
        "target",
        "path",
        "query_string",
        "args",
        "headers",
        "match_info",
        "remote_address",
        "http_version",
        "ctx",
        "route",
        "_cookies",
    )

    def __init__(
        self,
        method: str,
        target: str,
        headers: Headers,
        *,
        remote_address: tuple[str, int] | None = None,
        http_version: str = "1.1",
    ) -> None:
        self.method = method
        self.target = target
        raw_path, _, self.query_string = target.partition("?")
        self.path = unquote(raw_path)
        self.args = QueryArgs()
        for name, value in parse_qsl(self.query_string, keep_blank_values=True):
            self.args.setdefault(name, []).append(value)
        self.headers = headers
        self.match_info: dict[str, Any] = {}
        self.remote_address = remote_address
        self.http_version = http_version
        self.ctx = types.SimpleNamespace()
        self.route: Any = None
        self._cookies: dict[str, str] | None = None

    @property
    def host(self) -> str:
        """The ``Host`` header (empty when absent)."""
        return self.headers.get("host", "")

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies sent in ``Cookie`` headers (``name=value`` pairs split on ``;``).

        Pairs without ``=`` are skipped; for a repeated name the first value
        wins; double quotes around a value are removed.
        """
        if self._cookies is None:
            cookies: dict[str, str] = {}
            for header in self.headers.getall("cookie"):
                for pair in header.split(";"):
                    name, sep, value = pair.partition("=")
                    name = name.strip()
                    if not sep or not name:
                        continue
                    value = value.strip()
                    if len(value) >= 2 and value[0] == value[-1] == '"':
                        value = value[1:-1]
                    cookies.setdefault(name, value)
            self._cookies = cookies
        return self._cookies

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target}>"
