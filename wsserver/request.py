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

    __slots__ = ("_items", "_raw")

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        # (lowercase name, value) pairs: a plain list is smaller than an index,
        # and a scan over a request's dozen or two headers is quick.
        self._items: list[tuple[str, str]] = []
        # The pairs as received, kept only once a name was not lowercase.
        self._raw: list[tuple[str, str]] | None = None
        for name, value in items or []:
            self.add(name, value)

    @classmethod
    def from_lowercase(cls, items: list[tuple[str, str]]) -> Headers:
        """Headers from pairs whose names are lowercase already (as h11 gives them)."""
        headers = cls()
        headers._items = items
        return headers

    def add(self, name: str, value: str) -> None:
        """Append a header."""
        lower = name.lower()
        if lower == name:
            lower = name  # keep one string object, not two equal ones
        elif self._raw is None:
            self._raw = list(self._items)
        if self._raw is not None:
            self._raw.append((name, value))
        self._items.append((lower, value))

    def __getitem__(self, name: str) -> str:
        key = name.lower()
        for item_name, value in self._items:
            if item_name == key:
                return value
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return any(item_name == key for item_name, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._items))

    def __len__(self) -> int:
        return len({name for name, _ in self._items})

    def getall(self, name: str) -> list[str]:
        """Every value of header ``name`` (an empty list when absent)."""
        key = name.lower()
        return [value for item_name, value in self._items if item_name == key]

    def raw_items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair as received, repeated names included."""
        return list(self._items if self._raw is None else self._raw)

    def __repr__(self) -> str:
        return f"Headers({self.raw_items()!r})"


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
        "headers",
        "match_info",
        "remote_address",
        "http_version",
        "route",
        "_args",
        "_ctx",
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
        self.headers = headers
        self.match_info: dict[str, Any] = {}
        self.remote_address = remote_address
        self.http_version = http_version
        self.route: Any = None
        # Built on first use: most connections never look at them.
        self._args: QueryArgs | None = None
        self._ctx: types.SimpleNamespace | None = None
        self._cookies: dict[str, str] | None = None

    @property
    def args(self) -> QueryArgs:
        """The parsed query arguments."""
        if self._args is None:
            args = QueryArgs()
            for name, value in parse_qsl(self.query_string, keep_blank_values=True):
                args.setdefault(name, []).append(value)
            self._args = args
        return self._args

    @property
    def ctx(self) -> types.SimpleNamespace:
        """A namespace for per-connection application state."""
        if self._ctx is None:
            self._ctx = types.SimpleNamespace()
        return self._ctx

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
