"""The route table: URI patterns with typed path parameters, matched to handlers.

Patterns are paths with parameters in angle brackets: ``<room_id>`` (any
segment), ``<n:int>``, ``<x:float>``, ``<id:uuid>``, ``<rest:path>`` (the rest
of the path, slashes included). Routes are tried in the order they were added.

With ``strict_slashes`` false (the router's default), ``/chat`` and
``/chat/`` match the same route; with it true, only the exact form matches.
"""

from __future__ import annotations

import contextlib
import decimal
import inspect
import math
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, Literal, NamedTuple, TypedDict, TypeVar, Unpack
from urllib.parse import quote, unquote, urlencode

from ..protocol.handshake import ORIGIN_FORM, Acceptance, bad_origin
from ..protocol.http import ERROR_FORMATS, ErrorFormat, Response, valid_host
from ..protocol.syntax import TOKEN_RE
from .ported import say_instead
from .request import Request  # (at run time too: OnConnect names it, for get_type_hints())
from .response import StreamingResponse
from .static import file_handler, static_handler

if TYPE_CHECKING:  # annotations only: the app layer sits below the server layer
    from ..server.server import Server
    from ..server.websocket import WebSocket

__all__ = ["Route", "RouteOptions", "Router", "Resolution", "Handler", "OnConnect", "route_of"]

Handler = Callable[..., Awaitable[Any]]
#: A decorator for ``apply=[...]``: takes a handler, returns one.
Decorator = Callable[[Any], Any]
#: What an ``on_connect`` hook answers: None accepts, a Response denies,
#: ``accept()`` accepts with a say in the 101 (anything else is a 500).
HandshakeAnswer = Response | Acceptance | None
#: ``async def on_connect(request) -> Response | Acceptance | None`` (may also
#: be a plain function).
OnConnect = Callable[["Request"], HandshakeAnswer | Awaitable[HandshakeAnswer]]
#: A Router's ``on_startup`` / ``on_shutdown`` hook: ``async def hook(server)``.
ServerHook = Callable[["Server"], Awaitable[object]]
#: What ``@routes.on_startup`` and ``@routes.on_shutdown`` take, and return as it is.
SH = TypeVar("SH", bound=ServerHook)
#: An HTTP route's ``max_body_size``: bytes, None (no limit), or the server's setting.
BodyLimit = int | None | Literal["server"]
H = TypeVar("H", bound=Handler)
#: What ``@routes.websocket`` takes: ``async def handler(request, ws, **params)``.
#: (mypy --strict then refuses a handler that cannot take the request and the WebSocket.)
WS = TypeVar("WS", bound="Callable[Concatenate[Request, WebSocket, ...], Awaitable[Any]]")
#: What ``@routes.get`` and friends take: ``async def handler(request, **params)``
#: returning a Response (anything else is a 500).
HTTP = TypeVar(
    "HTTP",
    bound="Callable[Concatenate[Request, ...], Awaitable[Response | StreamingResponse]]",
)


class RouteOptions(TypedDict, total=False):
    """The keyword arguments of ``@routes.get`` and friends: :meth:`Router.add_route`'s."""

    name: str | None
    host: str | Iterable[str] | None
    strict_slashes: bool | None
    version: int | float | str | None
    version_prefix: str
    apply: Sequence[Decorator]
    error_format: ErrorFormat
    stream: bool
    max_body_size: BodyLimit


class Resolution(NamedTuple):
    """What a request resolves to: a route, or the HTTP status to answer.

    ``status`` is 0 when ``route`` is set, else 404, 405 (``allowed`` lists
    the methods of the path), 426 (the path is a WebSocket endpoint) or 200
    (``OPTIONS *``: ``allowed`` lists the methods of all routes).
    ``error_format`` is the body format of that error: the WebSocket route's
    for a 426, the first route of the path's for a 405.
    """

    route: Route | None
    params: dict[str, Any]
    status: int = 0
    allowed: tuple[str, ...] = ()
    error_format: ErrorFormat = "text"


#: The longest segment with two parameters that matches (see :func:`split_limit`).
MAX_SPLIT_SEGMENT = 1024


def split_limit(parameters: int) -> int:
    """The longest text that ``parameters`` (2 or more) share and still match.

    Matching costs up to the text's length to the power ``parameters``: this
    keeps it about as much as two parameters in 1,024 characters (1,024 for
    2, 101 for 3, 32 for 4, 16 for 5 ...), milliseconds at most.
    """
    return int(MAX_SPLIT_SEGMENT ** (2 / parameters))


_PARAM_RE = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?>")
#: Starlette's, FastAPI's and aiohttp's parameter, ``{name}`` or ``{name:type}``
#: (aiohttp's ``{name:regex}``, its regex's own braces too: ``{code:\d{3}}``):
#: no parameter here, so refused, saying ``<name>``.
_BRACED_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::((?:[^{}]|\{[^{}]*\})*))?\}")
#: What url_for() leaves as it is in a route's own text: a path's characters
#: (RFC 3986 3.3's pchar and "/"), but "%", which it encodes (the route's text
#: is matched decoded: its "%41" is those three characters, not "A").
_PATH_SAFE = "/:@!$&'()*+,;="


def _finite_float(text: str) -> float:
    """A ``float`` parameter's value; digits beyond a float's range, which
    ``float()`` reads as an infinity, do not match (ValueError)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]}... is out of a float's range")
    return value


# type name -> (regex, converter)
_TYPES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "str": (r"[^/]+", str),
    "int": (r"-?[0-9]+", int),  # (not \d: any script's digits, which int() takes too)
    "float": (r"-?[0-9]+(?:\.[0-9]+)?", _finite_float),
    "uuid": (r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", uuid.UUID),
    "path": (r".+", str),  # (any character: the route's regex is DOTALL)
}


#: A parameter with something else after its colon (Sanic's ``<code:[a-z]{3}>``).
_REGEX_PARAM_RE = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*):([^<>]+)>")
#: Flask's (Werkzeug's) converters, written first (``<int:id>``), and ours.
_FLASK_TYPES = {
    "string": "str",
    "str": "str",
    "int": "int",
    "float": "float",
    "uuid": "uuid",
    "path": "path",
}


def _unknown_type(name: str, kind: str, uri: str) -> str:
    """What a route's parameter ``<name:kind>`` of an unknown ``kind`` is told: the
    types there are, and, for Flask's order (``<int:id>``), how it is written here."""
    said = f"unknown parameter type {kind!r} in {uri!r} (the types: {', '.join(_TYPES)})"
    ours = _FLASK_TYPES.get(name)
    if ours is not None:  # (Flask's <int:id>)
        written = f"<{kind}>" if ours == "str" else f"<{kind}:{ours}>"
        return f"{said}: a parameter is written <name:type> here: {written!r}"
    return (
        f"{said}; for another (Sanic's slug, alpha, ymd...), '<{name}>' and check it in the handler"
    )


def _strings(values: Any, what: str, *, none_too: bool = False) -> list[Any]:
    """``values``, a list (any iterable) of str, as a list.

    Raises:
        TypeError: a lone str (it would be taken for its characters), not an
            iterable, or an item that is not a str (nor None, with ``none_too``).
    """
    if isinstance(values, (str, bytes)):
        kind = type(values).__name__
        raise TypeError(f"{what} takes a list of str, not one {kind}: [{values!r}]")
    try:
        items = list(values)
    except TypeError:
        raise TypeError(f"{what} takes a list of str, not {type(values).__name__}") from None
    for item in items:
        if not isinstance(item, str) and not (none_too and item is None):
            raise TypeError(f"{what} takes a list of str: {item!r} is a {type(item).__name__}")
    return items


def _text_name(name: str) -> str:
    """``name``, a route's, if it is text (UTF-8 has it), else a ValueError: it
    labels its route's figures, which a lone surrogate would keep from every
    Prometheus scrape, encoded as UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"route name {name!r} is not text (a lone surrogate)") from None
    return name


class Route:
    """One entry of the route table.

    Attributes:
        handler: ``async def handler(request, ws, **params)`` for a WebSocket
            route, ``async def handler(request, **params) -> Response`` for an
            HTTP route.
        uri: the full pattern, version prefix included.
        methods: the HTTP methods of an HTTP route; None for a WebSocket route.
        name: the name used by :meth:`Router.url_for`.
        subprotocols: the subprotocols this route speaks, in preference order
            of the client's offer (see the README).
        hosts: the ``Host`` values this route answers, or None for any.
        strict_slashes: whether a trailing slash must match exactly.
        on_connect: a hook run before the 101 (WebSocket routes), see
            :meth:`Router.websocket`.
        origins: the ``Origin`` values accepted, or None to use the server's
            setting.
        require_subprotocol: deny clients that offer none of ``subprotocols``.
        error_format: the body format of this route's HTTP error responses.
        stream: an HTTP route whose handler reads the body itself, in pieces
            (``request.stream``), instead of having it read whole first.
        max_body_size: the largest request body of an HTTP route, in bytes
            (None: no limit; ``"server"``: the server's ``max_body_size``).
    """

    __slots__ = (
        "handler",
        "uri",
        "methods",
        "on_connect",
        "origins",
        "require_subprotocol",
        "name",
        "subprotocols",
        "hosts",
        "strict_slashes",
        "error_format",
        "stream",
        "max_body_size",
        "_regex",
        "_converters",
        "options",
        "exact",
        "prefix",
        "shape",
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
        methods: frozenset[str] | None = None,
        on_connect: OnConnect | None = None,
        origins: Iterable[str | None] | None = None,
        require_subprotocol: bool = False,
        options: dict[str, Any] | None = None,
        error_format: ErrorFormat = "text",
        stream: bool = False,
        max_body_size: BodyLimit = "server",
    ) -> None:
        self.handler = handler
        self.uri = uri
        self.methods = methods
        self.on_connect = on_connect
        self.origins = (
            None if origins is None else frozenset(_strings(origins, "origins", none_too=True))
        )
        bad = bad_origin(self.origins or ())
        if bad is not None:
            raise ValueError(f"origins: {bad[0]!r} is no origin ({ORIGIN_FORM}): {bad[1]}")
        self.require_subprotocol = require_subprotocol
        if require_subprotocol and not subprotocols:
            raise ValueError("require_subprotocol needs a list of subprotocols")
        self.name = name
        self.subprotocols = tuple(_strings(subprotocols or (), "subprotocols"))
        for subprotocol in self.subprotocols:
            if TOKEN_RE.fullmatch(subprotocol) is None:
                # (A client offers tokens only: check_request() refuses others.)
                raise ValueError(
                    f"subprotocols: {subprotocol!r} is no token (RFC 6455 11.3.4: letters, "
                    "digits and !#$%&'*+-.^_`|~), so no client can offer it"
                )
        self.hosts = hosts
        self.strict_slashes = strict_slashes
        self.options = options or {}
        self.error_format: ErrorFormat = error_format
        if methods is None and (stream or max_body_size != "server"):
            raise ValueError("stream and max_body_size are an HTTP route's")
        if (
            max_body_size != "server"
            and max_body_size is not None
            and (
                isinstance(max_body_size, bool)
                or not isinstance(max_body_size, int)
                or max_body_size < 0
            )
        ):
            raise ValueError(
                f"max_body_size is a count of bytes, None or 'server', not {max_body_size!r}"
            )
        self.stream = stream
        self.max_body_size: BodyLimit = max_body_size
        self._converters: dict[str, Callable[[str], Any]] = {}
        self._regex = self._compile(uri, strict_slashes)
        first = _PARAM_RE.search(uri)
        #: The paths this route matches when it has no parameters (else None),
        #: and the text every path it matches starts with (Router's index).
        self.exact: frozenset[str] | None = None
        if first is None:
            bare = uri[:-1] if not strict_slashes and uri.endswith("/") and len(uri) > 1 else uri
            self.exact = frozenset((bare,) if strict_slashes or bare == "/" else (bare, bare + "/"))
            self.prefix = bare
        else:
            self.prefix = uri[: first.start()]
        #: The URI with its parameters' names left out (``/items/<:int>``):
        #: two routes of one shape match the same paths.
        self.shape = _PARAM_RE.sub(_unnamed, uri)

    def moved(self, uri: str, name: str) -> Route:
        """This route at another ``uri`` under another ``name`` (for :meth:`Router.include`)."""
        return Route(
            self.handler,
            uri,
            name=name,
            subprotocols=self.subprotocols,
            hosts=self.hosts,
            strict_slashes=self.strict_slashes,
            methods=self.methods,
            on_connect=self.on_connect,
            origins=self.origins,
            require_subprotocol=self.require_subprotocol,
            options=dict(self.options),
            error_format=self.error_format,
            stream=self.stream,
            max_body_size=self.max_body_size,
        )

    def _compile(self, uri: str, strict_slashes: bool) -> re.Pattern[str]:
        literal = _PARAM_RE.sub("", uri)
        if "<" in literal or ">" in literal:
            sanic = _REGEX_PARAM_RE.search(literal)
            if (
                sanic is not None
                and sanic.group(1) in _FLASK_TYPES
                and sanic.group(2).isidentifier()
            ):
                # (Flask's <int:item_id>: a name no type of ours could be, so no
                # parameter of _PARAM_RE's, and said as its <int:id> is.)
                raise ValueError(_unknown_type(sanic.group(1), sanic.group(2), uri))
            if sanic is not None and not sanic.group(2).isidentifier():
                raise ValueError(
                    f"route {uri!r}: {sanic.group()!r} is a regex parameter (Sanic's): no "
                    f"regex parameters here: '<{sanic.group(1)}>' and check it in the handler"
                )
            raise ValueError(f"malformed parameter in route {uri!r}")
        braced = _BRACED_RE.search(literal)
        if braced is not None:
            # (It would be matched as its text: every request a 404.)
            name, kind = braced.group(1), braced.group(2)
            ours = f"<{name}:{kind}>" if kind in _TYPES and kind != "str" else f"<{name}>"
            regex = " (no regex parameters here: check it in the handler)"
            raise ValueError(
                f"route {uri!r}: {braced.group()!r} is a parameter of Starlette's and "
                f"aiohttp's routes, here written {ours!r}"
                + (regex if kind is not None and kind not in _TYPES else "")
            )
        # A route's own trailing "/" that need not come: a path parameter
        # before it leaves it (lazy), as the strict route does.
        slash_is_its_own = not strict_slashes and uri.endswith("/") and len(uri) > 1
        if slash_is_its_own:
            uri = uri[:-1]
        count = len(_PARAM_RE.findall(uri))
        segments = uri.split("/")
        pattern = "/".join(
            self._segment(segment, uri, count, lazy=slash_is_its_own and i == len(segments) - 1)
            for i, segment in enumerate(segments)
        )
        if not strict_slashes and pattern not in ("/", ""):
            pattern += "/?"
        # (DOTALL: a path parameter's "." takes a decoded line feed, "%0A",
        # as a segment's [^/] does.)
        return re.compile(pattern + r"\Z", re.DOTALL)

    def _segment(self, segment: str, uri: str, count: int, *, lazy: bool = False) -> str:
        """The regex of one ``/``-separated segment of ``uri`` (which has ``count`` parameters);
        with ``lazy``, a ``path`` parameter that ends it takes as little as it can (the
        route's optional trailing ``/`` follows).

        Bounded work whatever the path (one request must not hold the loop):
        a segment with parameters (none of type ``path``) is matched as an
        atomic group ending at the segment's end: its parameters cannot hold
        a ``/``, so however they split it, what follows is matched from the
        same place, and trying the other splits after a failure further on is
        only work (with two parameters in one segment, ``<name>.<ext>``, and a
        16 KB path that does not match: seconds). But splitting text between
        k parameters costs up to its length to the power k: a segment with k
        of them, or the rest of the path from a ``path`` parameter that k-1
        others follow, matches up to :func:`split_limit` (k) characters.
        """
        parts = []
        pos = 0
        kinds = []
        for m in _PARAM_RE.finditer(segment):
            parts.append(re.escape(segment[pos : m.start()]))
            name, kind = m.group(1), m.group(2) or "str"
            if kind not in _TYPES:
                raise ValueError(_unknown_type(name, kind, uri))
            if name in self._converters:
                raise ValueError(f"parameter {name!r} appears twice in {uri!r}")
            regex, converter = _TYPES[kind]
            following = count - len(self._converters)  # (this one included)
            self._converters[name] = converter
            if kind == "path" and following > 1:
                parts.append(f"(?=.{{0,{split_limit(following)}}}\\Z)")
            if lazy and kind == "path" and m.end() == len(segment):
                regex += "?"
            parts.append(f"(?P<{name}>{regex})")
            kinds.append(kind)
            pos = m.end()
        parts.append(re.escape(segment[pos:]))
        regex = "".join(parts)
        if "path" in kinds:
            return regex
        if len(kinds) > 1:
            regex = f"(?=[^/]{{0,{split_limit(len(kinds))}}}(?:/|\\Z))" + regex
        if kinds:
            return f"(?>{regex}(?=/|\\Z))"
        return regex

    def match(self, path: str) -> dict[str, Any] | None:
        """The converted path parameters if ``path`` matches, else None."""
        texts = self.texts(path)
        if texts is None:
            return None
        params: dict[str, Any] = {}
        for name, value in texts.items():
            try:
                params[name] = self._converters[name](value)
            except ValueError:
                return None
        return params

    def texts(self, path: str) -> dict[str, str] | None:
        """The path parameters as ``path`` has them (not converted) if it
        matches, else None: what :meth:`match` converts (see
        :meth:`Router.url_for`, which checks that a path reads back as written)."""
        if not path.startswith(self.prefix):
            return None
        m = self._regex.match(path)
        return None if m is None else m.groupdict()

    def accepts_host(self, host: str, scheme: str = "http") -> bool:
        """Whether this route answers requests for ``host`` (a Host header)
        that came over ``scheme`` (``http`` or ``https``: the port a Host
        without one means)."""
        if self.hosts is None:
            return True
        host = host.lower()
        if host in self.hosts:
            return True
        name, port = split_host(host)
        return name in self.hosts or (
            f"{name}:{port or (443 if scheme == 'https' else 80)}" in self.hosts
        )

    @property
    def parameters(self) -> tuple[str, ...]:
        """The names of the path parameters, passed to the handler as keyword arguments."""
        return tuple(self._converters)

    @property
    def is_websocket(self) -> bool:
        """Whether this is a WebSocket route (else an HTTP route)."""
        return self.methods is None

    def __repr__(self) -> str:
        kind = "websocket" if self.methods is None else ",".join(sorted(self.methods))
        name = getattr(self.handler, "__name__", self.handler)
        return f"<Route {kind} {self.uri!r} -> {name}>"


class Router:
    """A table of WebSocket routes and plain HTTP routes.

    Example::

        routes = Router()

        @routes.websocket("/ws/chat/<room_id>")
        async def chat(request, ws, room_id):
            ...

        @routes.get("/health")
        async def health(request):
            return json({"status": "ok"})

    Args:
        strict_slashes: the default for routes that do not set it.
    """

    def __init__(self, *, strict_slashes: bool = False) -> None:
        self.strict_slashes = strict_slashes
        self.routes: list[Route] = []
        # The index of _candidates(), of the table as it was (self.routes is
        # public: it may be changed any way, and is compared each time): that
        # table, its routes with parameters, and the paths of those without.
        # One tuple, replaced whole: a router shared by servers in several
        # threads is never seen half rebuilt.
        self._index: tuple[list[Route], list[Route], dict[str, list[Route] | None]] = ([], [], {})
        self._names: dict[str, Route] = {}
        self._explicit: set[str] = set()  # (names given, not a handler's own)
        #: ``async def hook(server)`` run in order before the server listens (on_startup()).
        self.startup_hooks: list[ServerHook] = []
        #: ``async def hook(server)`` run in order after it closed (on_shutdown()).
        self.shutdown_hooks: list[ServerHook] = []

    def on_startup(self, hook: SH) -> SH:
        """Register ``async def hook(server)``, run before the server listens (a
        database pool, a background task); one that raises stops the start.

        Usable as a decorator (it returns ``hook``).

        Raises:
            TypeError: ``hook`` is not an async function of one argument.
        """
        self.startup_hooks.append(_check_server_hook(hook, "on_startup"))
        return hook

    def on_shutdown(self, hook: SH) -> SH:
        """Register ``async def hook(server)``, run once the server has closed
        (its connections ended), if it started.

        Usable as a decorator (it returns ``hook``).

        Raises:
            TypeError: ``hook`` is not an async function of one argument.
        """
        self.shutdown_hooks.append(_check_server_hook(hook, "on_shutdown"))
        return hook

    def static(
        self,
        uri: str,
        directory: str | os.PathLike[str],
        *,
        name: str | None = None,
        index: str | None = "index.html",
        cache_control: str | None = None,
        host: str | Iterable[str] | None = None,
    ) -> None:
        """Serve the files under ``directory`` at ``uri`` (GET and HEAD).

        ``/static/app.js`` is ``directory/app.js``; a directory's path (``uri``
        itself too) serves its ``index`` file, if any. Responses carry
        ``Content-Type`` (from the name), ``Content-Length``, ``ETag`` and
        ``Last-Modified`` (a conditional request the client has the file for
        gets ``304``), and ``Cache-Control`` if given; a GET of one byte range
        (``Range``, ``If-Range``) gets ``206``. The body is read in a thread,
        in pieces. Every other path is a 404: a ``..`` segment, a link leading
        out of ``directory``, what is not a regular file. Routes are tried in
        the order they were added: static files at ``/`` go last.

        ``directory`` may name one regular file instead (``favicon.ico``): it
        is served at ``uri`` itself, the same way (``index`` is unused).

        Raises:
            ValueError: ``directory`` is neither a directory nor a regular
                file, ``uri`` has a parameter, ``cache_control`` is no header
                value, or a route clashes (nothing is added then).
        """
        if _PARAM_RE.search(uri):
            # (Its handler takes none: what it serves is found by the path alone.)
            raise ValueError(f"static files are served at a path without parameters: {uri!r}")
        base = uri.rstrip("/")
        if os.path.isfile(directory):
            # One file, at uri itself (a favicon.ico, robots.txt).
            self.add_route(
                file_handler(directory, cache_control=cache_control),
                base or "/",
                name=name,
                host=host,
            )
            return
        if not os.path.isdir(directory):
            raise ValueError(f"static files: {os.fspath(directory)!r} is not a directory or a file")
        handler = static_handler(directory, index=index, cache_control=cache_control)
        if host is not None and not isinstance(host, str):
            host = _strings(host, "host")  # (for both routes: an iterator is read once)
        with self._all_or_nothing():
            self.add_route(handler, f"{base}/<path:path>", name=name, host=host)
            if index is not None:
                # (Its own path with its "/" too, whatever the router's strict_slashes.)
                self.add_route(handler, base or "/", host=host, strict_slashes=False)

    def websocket(
        self,
        uri: str,
        *,
        subprotocols: Iterable[str] | None = None,
        name: str | None = None,
        host: str | Iterable[str] | None = None,
        strict_slashes: bool | None = None,
        version: int | float | str | None = None,
        version_prefix: str = "/v",
        on_connect: OnConnect | None = None,
        origins: Iterable[str | None] | None = None,
        require_subprotocol: bool = False,
        apply: Sequence[Decorator] = (),
        error_format: ErrorFormat = "text",
    ) -> Callable[[WS], WS]:
        """Decorator: register ``handler`` as a WebSocket route at ``uri``.

        The handler is returned unchanged, so decorators may be stacked to
        serve one handler at several URIs. See :meth:`add_websocket_route`.
        """

        def decorator(handler: WS) -> WS:
            self.add_websocket_route(
                handler,
                uri,
                subprotocols=subprotocols,
                name=name,
                host=host,
                strict_slashes=strict_slashes,
                version=version,
                version_prefix=version_prefix,
                on_connect=on_connect,
                origins=origins,
                require_subprotocol=require_subprotocol,
                apply=apply,
                error_format=error_format,
            )
            return handler

        return decorator

    def add_websocket_route(
        self,
        handler: WS,
        uri: str,
        *,
        subprotocols: Iterable[str] | None = None,
        name: str | None = None,
        host: str | Iterable[str] | None = None,
        strict_slashes: bool | None = None,
        version: int | float | str | None = None,
        version_prefix: str = "/v",
        on_connect: OnConnect | None = None,
        origins: Iterable[str | None] | None = None,
        require_subprotocol: bool = False,
        apply: Sequence[Decorator] = (),
        error_format: ErrorFormat = "text",
    ) -> Route:
        """Register ``handler`` as a WebSocket route at ``uri``; return the route.

        Args:
            handler: ``async def handler(request, ws, **params)``.
            uri: the path pattern.
            subprotocols: supported subprotocols; the server picks the first
                one of the client's offer that is in this list.
            name: the name for :meth:`url_for` (default: the handler's name).
            host: a ``Host`` value, or several, that the route is limited to
                (``host[:port]``, an IPv6 address in brackets: ``[::1]``). A
                ``Host`` without a port has the scheme's (``host:80``, or
                ``host:443`` over https); a trailing dot is the same host.
            strict_slashes: whether ``/a`` and ``/a/`` differ (default: the
                router's setting).
            version: prefix the path with ``version_prefix`` + ``version``
                (``2``, ``"2"``, ``"v2"`` or ``"/2"``: ``/v2``, as Sanic writes it).
            version_prefix: see ``version``.
            on_connect: ``(async) def hook(request) -> Response | Acceptance | None``
                run before the 101: it may fill ``request.ctx``, deny the upgrade
                by returning a :class:`~wsserver.response.Response` (any status,
                headers and body), which is sent instead of the 101, or accept
                it with a subprotocol and more 101 headers by returning
                ``accept(subprotocol, headers)`` (:func:`wsserver.response.accept`);
                raising :class:`~wsserver.BadRequest` denies it with a 400, and
                :class:`~wsserver.HandshakeError` with its status and headers.
            origins: ``Origin`` values accepted (exact strings; None in the list
                accepts requests without an Origin header); others get 403.
                None here uses the server's ``origins`` setting.
            require_subprotocol: deny (400) clients that offer none of
                ``subprotocols``.
            apply: decorators for the handler, applied in order (the first
                one wraps the handler, the next one wraps that, ...).
            error_format: the body of this route's HTTP error responses (a
                denied handshake, a failed hook or handler): ``"text"``,
                ``"json"`` (``{"error", "status", "message"}``) or ``"html"``.

        Raises:
            ValueError: ``uri`` does not start with ``/``, has an unknown
                parameter type, ``name`` is already taken, a subprotocol is
                no token, ``require_subprotocol`` is set without
                ``subprotocols``, ``host`` is an empty list, or a ``host`` is
                one no request has (a scheme or path, a wildcard, an IPv6
                address without brackets, a name not in punycode).
        """
        return self._add(
            handler,
            uri,
            methods=None,
            subprotocols=subprotocols,
            name=name,
            host=host,
            strict_slashes=strict_slashes,
            version=version,
            version_prefix=version_prefix,
            on_connect=on_connect,
            origins=origins,
            require_subprotocol=require_subprotocol,
            apply=apply,
            error_format=error_format,
        )

    def get(self, uri: str, **kwargs: Unpack[RouteOptions]) -> Callable[[HTTP], HTTP]:
        """Decorator: an HTTP route for GET (and HEAD) at ``uri``.

        The handler is ``async def handler(request, **params)`` and returns a
        :class:`~wsserver.response.Response`. Keyword arguments are those of
        :meth:`add_route`.
        """
        return self.route(uri, methods=("GET",), **kwargs)

    def head(self, uri: str, **kwargs: Unpack[RouteOptions]) -> Callable[[HTTP], HTTP]:
        """Decorator: an HTTP route for HEAD only at ``uri``."""
        return self.route(uri, methods=("HEAD",), **kwargs)

    def post(self, uri: str, **kwargs: Unpack[RouteOptions]) -> Callable[[HTTP], HTTP]:
        """Decorator: an HTTP route for POST at ``uri`` (the body is ``request.body``,
        or, with ``stream=True``, read from ``request.stream``)."""
        return self.route(uri, methods=("POST",), **kwargs)

    def put(self, uri: str, **kwargs: Unpack[RouteOptions]) -> Callable[[HTTP], HTTP]:
        """Decorator: an HTTP route for PUT at ``uri``."""
        return self.route(uri, methods=("PUT",), **kwargs)

    def patch(self, uri: str, **kwargs: Unpack[RouteOptions]) -> Callable[[HTTP], HTTP]:
        """Decorator: an HTTP route for PATCH at ``uri``."""
        return self.route(uri, methods=("PATCH",), **kwargs)

    def delete(self, uri: str, **kwargs: Unpack[RouteOptions]) -> Callable[[HTTP], HTTP]:
        """Decorator: an HTTP route for DELETE at ``uri``."""
        return self.route(uri, methods=("DELETE",), **kwargs)

    def route(
        self, uri: str, methods: Iterable[str] = ("GET",), **kwargs: Unpack[RouteOptions]
    ) -> Callable[[HTTP], HTTP]:
        """Decorator: an HTTP route for ``methods`` at ``uri``."""

        def decorator(handler: HTTP) -> HTTP:
            self.add_route(handler, uri, methods=methods, **kwargs)
            return handler

        return decorator

    def add_route(
        self,
        handler: HTTP,
        uri: str,
        methods: Iterable[str] = ("GET",),
        *,
        name: str | None = None,
        host: str | Iterable[str] | None = None,
        strict_slashes: bool | None = None,
        version: int | float | str | None = None,
        version_prefix: str = "/v",
        apply: Sequence[Decorator] = (),
        error_format: ErrorFormat = "text",
        stream: bool = False,
        max_body_size: BodyLimit = "server",
    ) -> Route:
        """Register an HTTP route; a GET route answers HEAD too.

        ``apply`` and ``error_format`` are as for :meth:`add_websocket_route`.
        With ``stream`` the handler runs as soon as the request's head is in,
        and reads the body itself: ``async for piece in request.stream``, or
        ``await request.stream.read()`` (see :class:`~wsserver.Request`).
        ``max_body_size`` bounds this route's request bodies, in bytes (413
        beyond; None: no limit) instead of the server's ``max_body_size``.

        Raises:
            ValueError: as for :meth:`add_websocket_route`.
        """
        given = _strings(methods, "methods")
        if not given:
            raise ValueError("methods: none given (a route of no method is never reached)")
        for method in given:
            if not TOKEN_RE.fullmatch(method):
                raise ValueError(
                    f"methods: {method!r} is no token (RFC 9110 9.1: no request has it)"
                )
        wanted = {m.upper() for m in given}
        if "GET" in wanted:
            wanted.add("HEAD")
        return self._add(
            handler,
            uri,
            methods=frozenset(wanted),
            subprotocols=None,
            name=name,
            host=host,
            strict_slashes=strict_slashes,
            version=version,
            version_prefix=version_prefix,
            apply=apply,
            error_format=error_format,
            stream=stream,
            max_body_size=max_body_size,
        )

    def _add(
        self,
        handler: Handler,
        uri: str,
        *,
        methods: frozenset[str] | None,
        subprotocols: Iterable[str] | None,
        name: str | None,
        host: str | Iterable[str] | None,
        strict_slashes: bool | None,
        version: int | float | str | None,
        version_prefix: str,
        on_connect: OnConnect | None = None,
        origins: Iterable[str | None] | None = None,
        require_subprotocol: bool = False,
        apply: Sequence[Decorator] = (),
        error_format: ErrorFormat = "text",
        stream: bool = False,
        max_body_size: BodyLimit = "server",
    ) -> Route:
        if not uri.startswith("/"):
            raise ValueError(f"route URI must start with '/': {uri!r}")
        if version is not None:
            # (As Sanic writes it: "v1", "/1" and 1 are one version, /v1.)
            number = str(version).strip("/").lstrip("v")
            if not number:
                raise ValueError(f"version {version!r} names no version (1, '1' or 'v1')")
            uri = f"/{version_prefix.strip('/')}{number}{uri if uri != '/' else ''}"
        hosts: frozenset[str] | None = None
        if host is not None:
            names = [host] if isinstance(host, str) else _strings(host, "host")
            if not names:
                raise ValueError(
                    "host: none given (a route for no host is never reached; None is every host)"
                )
            for each in names:
                problem = host_problem(each)
                if problem is not None:
                    raise ValueError(f"host: {each!r} is no Host ({HOST_FORM}): {problem}")
            hosts = frozenset(_host_key(each) for each in names)
        explicit = name is not None
        route_name = _text_name(name if name is not None else getattr(handler, "__name__", uri))
        if explicit and route_name in self._names:
            raise ValueError(f"a route named {route_name!r} already exists")
        if error_format not in ERROR_FORMATS:
            raise ValueError(f"error_format must be one of {ERROR_FORMATS}, not {error_format!r}")
        original = handler
        for decorate in apply:
            handler = decorate(handler)
        route = Route(
            handler,
            uri,
            name=route_name,
            subprotocols=subprotocols,
            hosts=hosts,
            strict_slashes=self.strict_slashes if strict_slashes is None else strict_slashes,
            methods=methods,
            on_connect=on_connect,
            origins=origins,
            require_subprotocol=require_subprotocol,
            error_format=error_format,
            stream=stream,
            max_body_size=max_body_size,
        )
        _check_handler(route)
        _check_on_connect(route)
        self._register(route, named=explicit or route_name not in self._names)
        if explicit:
            self._explicit.add(route_name)
        # (What a mistaken "python -m wsserver module:handler" is told; a bound
        # method or a builtin takes no attribute.)
        with contextlib.suppress(AttributeError, TypeError):
            setattr(original, _ROUTE_MARK, route.uri)
        return route

    def _register(self, route: Route, named: bool) -> None:
        """Add ``route`` to the table (``url_for()`` finds it by name if ``named``).

        Raises:
            ValueError: a route already there has its URI (its parameters
                named otherwise too) and kind (and a method of it), and
                answers each of its hosts (it is for the same hosts, more of
                them, their names without a port, or every host), so that it
                would never be reached; or
                one with parameters, of its kind, a method of it and its
                hosts, matches each of its paths (``/users/<name>`` before
                ``/users/me`` or ``/users/<id:int>``), which it would take first.
                (A strict route leaves a later one of its URI that is not strict
                the other form of its paths.)
        """
        forms = _forms(route)
        for other in self.routes:
            # (Routes are tried in order: a host's route goes before the
            # route for every host, where Sanic tries it first anyway.)
            if other.is_websocket != route.is_websocket or not _answers_hosts_of(other, route):
                continue
            # (Each form of its URI is one the other takes, its parameters
            # named otherwise: the same paths.)
            if forms <= _forms(other):
                if not _share_a_method(other, route):
                    continue  # (another method, or a HEAD route beside its GET route)
                hosts = "host" if other.hosts == route.hosts else "hosts, first (add it before)"
                raise ValueError(
                    f"{route!r} would never be reached: {other!r} has the same URI and {hosts}"
                )
            if other.exact is not None or not route.shape.startswith(other.prefix):
                continue  # (no parameters; or what comes before them is not the route's)
            if other.shape.rstrip("/") == route.shape.rstrip("/") and not _share_a_method(
                other, route
            ):
                continue  # (a HEAD route beside its GET route, as resolve() pairs them)
            covered = _covers_paths(other, route) or _covers_shape(other, route)
            if covered and _takes_a_method(other, route):
                raise ValueError(
                    f"{route!r} would never be reached: {other!r} matches each of its "
                    "paths first (add it before)"
                )
        self.routes.append(route)
        if named:
            self._names[route.name] = route

    @contextlib.contextmanager
    def _all_or_nothing(self) -> Iterator[None]:
        """Routes added within are all kept, or, if one raises, none is:
        the table and its names are as they were before."""
        count, names, explicit = len(self.routes), dict(self._names), set(self._explicit)
        try:
            yield
        except BaseException:
            del self.routes[count:]
            self._names.clear()
            self._names.update(names)
            self._explicit.clear()
            self._explicit.update(explicit)
            raise

    def include(self, other: Router, prefix: str = "", *, name_prefix: str | None = None) -> None:
        """Add every route of ``other`` under ``prefix``, and its startup and shutdown hooks.

        For an application in several modules: each has a Router of its own
        (``api = Router()`` in ``api.py``), and the application's takes them
        in: ``routes.include(api, "/api", name_prefix="api")`` serves ``api``'s
        ``/rooms`` at ``/api/rooms``, named ``api.rooms`` for :meth:`url_for`
        (its own name without ``name_prefix``). Each route keeps its settings
        (methods, hosts, hooks, ``apply``'s decorators, subprotocols, origins,
        error format, slashes). ``other`` is copied as it is now: routes added
        to it later are not served. Routes are tried in the order they were
        added, the included ones where ``include()`` was called; the hooks run
        after those registered before it.

        A router that comes in more than once (under two prefixes, or also
        through another) has its hooks run once. A handler's own name (no
        ``name`` was given) that is taken here leaves its route unnamed, as
        :meth:`add_route` does.

        Raises:
            ValueError: ``prefix`` is no plain path starting with ``/`` (a
                parameter, a ``?`` or ``#``), ``name_prefix`` is empty, a route
                would clash with one here (same URI and method, and one here
                answers its hosts first), or a name given (or made by
                ``name_prefix``) is taken. Nothing is added then.
        """
        if name_prefix == "":
            raise ValueError("name_prefix is a non-empty str, or None")
        if prefix and (
            not prefix.startswith("/")
            or any(c in prefix for c in "<>?#")
            or _PARAM_RE.search(prefix)
        ):
            raise ValueError(
                f"a prefix is a path starting with '/', without parameters: {prefix!r}"
            )
        if other is self:
            raise ValueError("a Router cannot include itself")
        base = prefix.rstrip("/")
        moved: list[tuple[Route, bool]] = []
        names = set(self._names)
        explicit: set[str] = set()
        for route in other.routes:
            named = other._names.get(route.name) is route
            name = (
                _text_name(f"{name_prefix}.{route.name}") if name_prefix is not None else route.name
            )
            chosen = name_prefix is not None or route.name in other._explicit
            if named and name in names:
                if chosen:
                    raise ValueError(
                        f"a route named {name!r} already exists: give include() a name_prefix"
                    )
                named = False  # (a handler's own name, taken here: as add_route() does)
            if named and chosen:
                explicit.add(name)
            names.add(name)
            moved.append((route.moved(base + route.uri if base else route.uri, name), named))
        with self._all_or_nothing():
            for route, named in moved:
                self._register(route, named)
        self._explicit |= explicit
        self.startup_hooks.extend(h for h in other.startup_hooks if h not in self.startup_hooks)
        self.shutdown_hooks.extend(h for h in other.shutdown_hooks if h not in self.shutdown_hooks)

    def match(
        self, path: str, host: str = "", scheme: str = "http"
    ) -> tuple[Route, dict[str, Any]] | None:
        """The first WebSocket route matching ``path`` and ``host``, with its parameters."""
        for route in self._candidates(path):
            if route.methods is None:
                params = route.match(path)
                if params is not None and route.accepts_host(host, scheme):
                    return route, params
        return None

    def resolve(
        self, path: str, host: str, method: str, upgrade: bool, scheme: str = "http"
    ) -> Resolution:
        """Find the route for a request (that came over ``scheme``, ``http``
        or ``https``: what a ``Host`` without a port means).

        A WebSocket upgrade request (a GET: only a GET upgrades, RFC 6455
        4.1; another method's Upgrade offer is ignored, as RFC 9110 7.8 lets
        a server) goes to the first matching WebSocket route; any other
        request (or an upgrade request to a path without one) goes to the
        first HTTP route matching its method. Otherwise: 426 when the path is
        a WebSocket endpoint and the request a GET (or HEAD) that does not
        ask to upgrade, 405 when it has HTTP routes for other methods or the
        method is another (an upgrade request's too: its ``allowed`` names
        every method of the path), 404 when nothing matches.
        """
        websocket: tuple[Route, dict[str, Any]] | None = None
        http: tuple[Route, dict[str, Any]] | None = None
        allowed: set[str] = set()
        error_format: ErrorFormat | None = None
        if path == "*" and method == "OPTIONS":
            # RFC 9110 9.3.7: the server in general (a load balancer's check).
            for route in self.routes:
                if route.accepts_host(host, scheme):
                    allowed |= route.methods or {"GET"}  # (a WebSocket's upgrade)
            return Resolution(None, {}, 200, tuple(sorted(allowed)))
        for route in self._candidates(path):
            params = route.match(path)
            if params is None or not route.accepts_host(host, scheme):
                continue
            if error_format is None:
                error_format = route.error_format
            if route.methods is None:
                if websocket is None:
                    websocket = (route, params)
            elif method in route.methods:
                if http is None or (
                    # A route of HEAD's own goes before the HEAD of the GET
                    # route of its path (its pair, which _register let be),
                    # for its hosts, all of which the GET route answers.
                    # (Both take this path: their URIs differ in their
                    # trailing "/"s alone, "/a//" and a strict "/a/" too.)
                    method == "HEAD"
                    and "GET" in (http[0].methods or ())
                    and "GET" not in route.methods
                    and _answers_hosts_of(http[0], route)
                    and route.shape.rstrip("/") == http[0].shape.rstrip("/")
                ):
                    http = (route, params)
            else:
                allowed |= route.methods
        # Only a GET upgrades (RFC 6455 4.1): an upgrade request of another
        # method is a request of that method, to its HTTP route (a POST with
        # an Upgrade header); without one, a 405 naming every method of the
        # path (not the handshake's "Allow: GET"; a HEAD's too, not a 426).
        if upgrade and method != "GET":
            if http is None and websocket is not None:
                allowed.add("GET")  # (the upgrade)
                return Resolution(None, {}, 405, tuple(sorted(allowed)), error_format or "text")
            upgrade = False
        # A GET that is no upgrade, to a WebSocket endpoint without a GET
        # route: 426 (upgrade), even if other methods have HTTP routes there.
        # Another method cannot upgrade (a GET does): 405 below.
        if websocket is not None and (upgrade or (http is None and method in ("GET", "HEAD"))):
            if upgrade:
                return Resolution(*websocket)
            return Resolution(None, {}, 426, (), websocket[0].error_format)
        if http is not None:
            return Resolution(*http)
        if allowed or websocket is not None:
            if websocket is not None:
                allowed.add("GET")  # (the upgrade)
            return Resolution(None, {}, 405, tuple(sorted(allowed)), error_format or "text")
        return Resolution(None, {}, 404)

    def _candidates(self, path: str) -> list[Route]:
        """The routes that may match ``path``, in the table's order (Route.match()
        tells which do): for the path of a route without parameters, those
        routes and the routes with parameters whose literal start it has (a
        list made the first time it is asked for); for any other path, the
        routes with parameters. A dict lookup, however many routes there are.
        """
        indexed, varying, by_path = self._index
        if indexed != self.routes:
            indexed = list(self.routes)
            varying = [route for route in indexed if route.exact is None]
            by_path = dict.fromkeys(p for r in indexed for p in r.exact or ())
            self._index = (indexed, varying, by_path)
        found = by_path.get(path, varying)
        if found is None:
            found = by_path[path] = [
                route
                for route in indexed
                if (path.startswith(route.prefix) if route.exact is None else path in route.exact)
            ]
        return found

    def url_for(self, name: str, /, **params: Any) -> str:
        """Build the path of route ``name``, percent-encoded (the route's own text
        as its parameters); parameters not in the path become the query (None
        left out, a list's None items too); ``_anchor`` (Sanic's, Flask's)
        is the fragment. A
        path that would start with ``//`` (a path parameter's leading ``/``:
        another host, to a browser) has its second ``/`` written ``%2F``.

        Raises:
            KeyError: no route is named ``name``.
            TypeError: ``_external``, ``_scheme``, ``_server`` or ``_method``
                (Sanic's and Flask's, for a URL) that is no path parameter
                (None or False, which ask for none, are left out).
            ValueError: a path parameter is missing or does not fit its type,
                or the path would be read back as other values (a ``str``
                ending in ``/``, two in one segment split elsewhere), or
                has a ``.`` or ``..`` segment (which a client removes).
        """
        route = self._names.get(name)
        if route is None:
            raise KeyError(f"no route is named {name!r}")
        # Sanic's and Flask's url_for read these themselves: as a query
        # argument each would change a ported app's links without a word.
        own = route.parameters
        for option in _URL_OPTIONS:
            if option in params and option not in own:
                if params[option] is None or params[option] is False:
                    del params[option]  # (their default: the path, asked of them too)
                    continue
                raise TypeError(
                    f"url_for() builds a path, and takes no {option} (Sanic's, Flask's): "
                    "for a full URL, write "
                    'f"{request.scheme}://{request.host}{routes.url_for(...)}"'
                    " (a route's name names one route: no _method either)"
                )
        anchor = params.pop("_anchor", None) if "_anchor" not in own else None
        written: dict[str, str] = {}

        # The route's own text is percent-encoded too (but what a path may
        # hold, RFC 3986 3.3): it is matched decoded, as a parameter is.
        pieces = []
        pos = 0
        for m in _PARAM_RE.finditer(route.uri):
            pieces.append(quote(route.uri[pos : m.start()], safe=_PATH_SAFE))
            pname, kind = m.group(1), m.group(2) or "str"
            if pname not in params:
                raise ValueError(f"missing parameter {pname!r} for route {name!r}")
            written[pname] = _param_text(params[pname], kind)
            pieces.append(quote(written[pname], safe="/" if kind == "path" else ""))
            pos = m.end()
        pieces.append(quote(route.uri[pos:], safe=_PATH_SAFE))
        path = "".join(pieces)
        if path.startswith("//"):
            # A path parameter's leading "/" (static files at "/" given
            # "/evil.example"): "//evil.example" is a network-path reference
            # (RFC 3986 4.2), another host to a browser; "%2F" is read the same.
            path = "/%2F" + path[2:]
        # The path must give the handler these values back, not others that
        # it also matches as: "x/" is "x" and a trailing slash, and two
        # parameters in one segment split where the route splits them.
        decoded = unquote(path)
        if route.texts(decoded) != written or route.match(decoded) is None:
            raise ValueError(f"parameters {params!r} do not fit route {route.uri!r}")
        # Nor is it asked for as another path: a client removes a "." or ".."
        # segment before it sends the request (RFC 3986 5.2.4).
        if any(segment in (".", "..") for segment in path.split("/")):
            raise ValueError(
                f"parameters {params!r} make a dot segment in {path!r}, "
                "which a client removes (RFC 3986 5.2.4)"
            )
        # (None is no value: left out, as Flask's url_for leaves it.)
        query = {k: _no_nones(v) for k, v in params.items() if k not in written and v is not None}
        if query:
            path += "?" + urlencode(query, doseq=True)
        if anchor:  # (Sanic's and Flask's _anchor: the fragment, RFC 3986 3.5)
            path += "#" + quote(str(anchor), safe=_PATH_SAFE + "?")
        return path


_MIDDLEWARE = (
    "wrap handlers with apply=[decorator] on their routes (a decorator may answer "
    "before the handler, or change its response), or check a handshake with on_connect="
)
_STARTUP = "register async def hook(server) with @routes.on_startup (state in server.ctx)"
_SHUTDOWN = "register async def hook(server) with @routes.on_shutdown"
#: Sanic's application attributes that a Router has not, and what does their work.
_SANIC_INSTEAD = {
    "middleware": _MIDDLEWARE,
    "on_request": _MIDDLEWARE,
    "on_response": _MIDDLEWARE,
    "register_middleware": _MIDDLEWARE,
    "listener": f"{_STARTUP}, or {_SHUTDOWN}",
    "register_listener": f"{_STARTUP}, or {_SHUTDOWN}",
    "main_process_start": _STARTUP + " (each worker runs them)",
    "main_process_ready": _STARTUP + " (each worker runs them)",
    "before_server_start": _STARTUP,
    "after_server_start": _STARTUP + " (they run before the server listens)",
    "before_server_stop": _SHUTDOWN + " (they run once its connections ended)",
    "after_server_stop": _SHUTDOWN,
    "main_process_stop": _SHUTDOWN + " (each worker runs them)",
    "exception": (
        "raise HandshakeError(status, message) or BadRequest(message) for an error "
        "answer, set its body's format with error_format=, or catch errors in a decorator "
        "given with apply="
    ),
    "error_handler": "set a route's error answers with error_format=, or catch in apply=",
    "blueprint": "add another Router's routes with routes.include(other, '/prefix')",
    "ctx": "application state goes in server.ctx (an on_startup hook gets the server; "
    "handlers see request.server.ctx)",
    "config": "settings are serve()'s keyword arguments, a Config, or WEBSOCKET_* variables",
    "options": 'use @routes.route(uri, methods=["OPTIONS"])',
    "run": "serve(routes, host, port) and await its start(), or python -m wsserver module:routes",
    "create_server": "serve(routes, host, port), then await server.start()",
    "enable_websocket": "WebSocket routes need nothing enabled",
}
# (A Sanic application ported fails where it is imported, saying what to write here.)
say_instead(
    Router,
    {
        name: f"Router.{name}: a Router has no {name} (Sanic's): {instead}"
        for name, instead in _SANIC_INSTEAD.items()
    },
)


#: What Sanic's and Flask's url_for take for a URL rather than a path (or to
#: choose among routes of one name): refused, not written in the query.
_URL_OPTIONS = ("_external", "_scheme", "_server", "_method")


def _no_nones(value: Any) -> Any:
    """A query value without its None items (a list's); as it is if none or no sequence."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        return value  # (urlencode()'s way to tell a sequence: it has a len())
    return [item for item in value if item is not None]


def _param_text(value: Any, kind: str) -> str:
    """A path parameter's value as url_for() writes it: ``str()``, but a
    finite float's digits without an exponent (``1e-07`` as ``0.0000001``),
    which is how a ``float`` parameter is matched."""
    if kind == "float" and isinstance(value, float) and math.isfinite(value):
        # (float's repr(), not a subclass's own: numpy's is "np.float64(1.5)".)
        return format(decimal.Decimal(float.__repr__(value)), "f")
    return str(value)


#: The attribute a handler gets when it is added to a Router: its route's URI.
_ROUTE_MARK = "__wsserver_route__"


def route_of(handler: object) -> str | None:
    """The URI of the route ``handler`` was added to, if any: it is no application."""
    uri = getattr(handler, _ROUTE_MARK, None)
    return uri if isinstance(uri, str) else None


#: What a route's host looks like, said when one cannot be.
HOST_FORM = "host[:port] as clients send it, an IPv6 address in brackets"


def split_host(host: str) -> tuple[str, str]:
    """A ``Host``'s name (without a fully qualified name's trailing dot,
    which names the same host) and its port (empty when it has none):
    ``("example.com", "8080")`` for ``example.com.:8080``."""
    name, colon, port = host.rpartition(":")
    if not colon or "]" in port:  # (no port: "example.com", "[::1]")
        name, port = host, ""
    if name.endswith(".") and not name.endswith(".."):
        name = name[:-1]
    return name, port


def _host_key(host: str) -> str:
    """How a route's ``host`` is kept: lowercase, without a trailing dot."""
    name, port = split_host(host.lower())
    return f"{name}:{port}" if port else name


def host_problem(host: str) -> str | None:
    """Why ``host`` can never equal a request's ``Host``, or None when it can.

    :meth:`Route.accepts_host` compares exactly (but for case and a port left
    out), and a request whose ``Host`` is no ``host[:port]`` (RFC 9112 3.2,
    RFC 3986 3.2.2) is answered 400 before any route is tried.
    """
    if not host.isascii():
        return "clients send an international domain name in punycode (xn--...)"
    if any(c in host for c in "/?#"):
        return "no scheme, path, query or fragment"
    if "*" in host:
        return "no wildcard: each host is compared exactly"
    if host.endswith(":"):
        return "a port after the colon, or no colon"
    if host.count(":") > 1 and not host.startswith("["):
        return f"an IPv6 address goes in brackets: {f'[{host}]'!r}"
    if not valid_host(host.encode("ascii")):
        return "it is no host[:port]"
    return None


def _unnamed(param: re.Match[str]) -> str:
    """A parameter of a route's URI without its name: ``<:int>``, ``<:str>`` for ``<room>``."""
    return f"<:{param.group(2) or 'str'}>"


def _unslashed(uri: str) -> str:
    """``uri`` without its trailing ``/`` (``/`` itself stays): one, as a
    route not strict about it takes its URI with it or without (``/a//``
    takes ``/a/`` and ``/a//``, not ``/a``)."""
    return uri[:-1] if len(uri) > 1 and uri.endswith("/") else uri


def _forms(route: Route) -> frozenset[str]:
    """The forms of its URI a route takes (its shape, parameters unnamed):
    with and without one trailing ``/`` if it is not strict about it, or if
    it ends in a ``path`` parameter (which takes the ``/`` too), as its
    matching does; else its own. ``/`` has one form (``//`` not strict is
    ``/`` and its ``/``: ``/`` too)."""
    shape = route.shape
    if route.strict_slashes and not shape.endswith("<:path>"):
        return frozenset((shape,))
    bare = _unslashed(shape)
    return frozenset((bare,) if bare == "/" else (bare, bare + "/"))


def _answers_hosts_of(first: Route, later: Route) -> bool:
    """Whether ``first`` answers each host that ``later`` does (it is for
    every host, or for the same hosts, or more, a host's name answering its
    every port): at one URI, it takes their requests first."""
    if first.hosts is None:
        return True
    if later.hosts is None:
        return False
    ours = first.hosts
    return all(host in ours or split_host(host)[0] in ours for host in later.hosts)


def _covers_paths(first: Route, later: Route) -> bool:
    """Whether ``first``, a route with parameters, matches each path of
    ``later``, one without (``/users/<name>`` each of ``/users/me``'s): tried
    first, it takes their requests, as Sanic, which tries literal routes
    first, would not."""
    return (
        first.exact is None
        and later.exact is not None
        and all(first.match(path) is not None for path in later.exact)
    )


def _covers_shape(first: Route, later: Route) -> bool:
    """Whether ``first`` matches each path of ``later`` segment by segment:
    theirs alike but where ``first`` has a lone ``str`` parameter (any text
    of a segment: ``/items/<name>`` each of ``/items/<id:int>``'s), a lone
    ``float`` one where ``later`` has a lone ``int`` one (``5`` is 5.0: all
    but a number beyond a float's range, over 308 digits), a lone typed one
    where ``later`` has text it takes (``<:int>`` and ``1``), or ends in a
    ``path`` parameter (any text: ``/files/<p:path>`` each of
    ``/files/<name>.zip``'s, with or without their ``/``, strict or not).
    Other pairs are not told apart (False)."""
    ours, theirs = first.shape, later.shape
    if first.exact is not None or not theirs.startswith(first.prefix):
        return False  # (no parameter: _covers_paths(); its text before them differs)
    if not first.strict_slashes or ours.endswith("<:path>"):
        # (It takes both forms: a trailing path parameter takes the "/" too.)
        ours, theirs = _unslashed(ours), _unslashed(theirs)
    elif not later.strict_slashes:
        return False
    mine, its = ours.split("/"), theirs.split("/")
    last = "" if mine[-1] == "<:path>" else mine[-1]
    if any("<:path>" in segment for segment in [*mine[:-1], last]):
        return False  # (a path parameter with others after it)
    for i, segment in enumerate(mine):
        if segment == "<:path>":  # (the last: any text after it, not none)
            return any(its[i:])
        if i == len(its) or not (
            segment == its[i]
            or (segment == "<:str>" and its[i] and "<:path>" not in its[i])
            or (segment == "<:float>" and its[i] == "<:int>")
            or _takes_literal(segment, its[i])
        ):
            return False
    return len(mine) == len(its)


def _takes_literal(segment: str, literal: str) -> bool:
    """Whether ``segment``, a lone typed parameter (``<:int>``, ``<:float>``,
    ``<:uuid>``), takes ``literal``, a segment without parameters (``1``)."""
    kind = segment[2:-1] if segment.startswith("<:") and segment.endswith(">") else ""
    if kind not in ("int", "float", "uuid") or "<" in literal:
        return False
    regex, converter = _TYPES[kind]
    if re.fullmatch(regex, literal) is None:
        return False
    try:
        converter(literal)
    except ValueError:
        return False
    return True


def _takes_a_method(first: Route, later: Route) -> bool:
    """Whether ``first``, tried before ``later`` at a path they both match,
    takes a method of ``later``'s (a WebSocket route, an upgrade); a GET
    route's HEAD, which comes with its GET, aside."""
    if first.methods is None or later.methods is None:
        return True
    taken = first.methods & later.methods
    if "GET" in later.methods and "GET" not in taken:
        taken -= {"HEAD"}
    return bool(taken)


def _share_a_method(first: Route, later: Route) -> bool:
    """Whether two routes of one path would take a method each other's (a
    WebSocket route, which has none, any): see :func:`_methods_clash`."""
    return (
        first.methods is None
        or later.methods is None
        or _methods_clash(later.methods, first.methods)
    )


def _methods_clash(ours: frozenset[str], theirs: frozenset[str]) -> bool:
    """Whether two HTTP routes of one path would take a method each other's.

    A GET route answers HEAD too, but a route of HEAD's own (not a GET's)
    beside it takes HEAD from it: they do not clash.
    """
    common = ours & theirs
    return bool(common) and not (common == {"HEAD"} and ("GET" in ours) != ("GET" in theirs))


def _check_handler(route: Route) -> None:
    """Refuse, when the route is added, a handler that could not serve it.

    Raises:
        TypeError: the handler is not a coroutine function, or cannot take
            the request (and the WebSocket) and the route's path parameters.
    """
    handler = route.handler
    name = getattr(handler, "__qualname__", None) or repr(handler)
    call = handler if inspect.isfunction(handler) or inspect.ismethod(handler) else None
    is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 (an object with an async __call__)
    )
    if not is_async:
        kind = "WebSocket" if route.is_websocket else "HTTP"
        raise TypeError(
            f"{kind} route {route.uri!r}: handler {name} must be an async function "
            f"(async def ...), not {type(handler).__name__}"
        )
    try:
        signature = inspect.signature(call or handler)
    except (TypeError, ValueError):
        return  # no signature to check (a builtin, say): it is the caller's word
    positional = (object(), object()) if route.is_websocket else (object(),)
    params = dict.fromkeys(route.parameters)
    try:
        signature.bind(*positional, **params)
    except TypeError as exc:
        expected = "request, ws" if route.is_websocket else "request"
        extra = "".join(f", {p}" for p in route.parameters)
        raise TypeError(
            f"route {route.uri!r}: handler {name}{signature} cannot be called as "
            f"{getattr(handler, '__name__', 'handler')}({expected}{extra}): {exc}"
        ) from None


def _check_server_hook(hook: Any, what: str) -> Any:
    """``hook``, if it is an async function (or an object with an async
    ``__call__``, as a route's handler may be) that can be called with the server."""
    name = getattr(hook, "__qualname__", None) or repr(hook)
    if not (
        inspect.iscoroutinefunction(hook)
        or inspect.iscoroutinefunction(getattr(type(hook), "__call__", None))  # noqa: B004
    ):
        raise TypeError(f"{what}: {name} must be an async function (async def {what}(server))")
    try:
        inspect.signature(hook).bind(object())
    except TypeError as exc:
        raise TypeError(f"{what}: {name} cannot be called with the server: {exc}") from None
    except ValueError:
        pass  # (no signature to check)
    return hook


def _check_on_connect(route: Route) -> None:
    """Refuse, when the route is added, an ``on_connect`` hook that cannot be
    called with the request (every handshake would get a 500).

    Raises:
        TypeError: it is not callable, or cannot take one argument.
    """
    hook = route.on_connect
    if hook is None:
        return
    name = getattr(hook, "__qualname__", None) or repr(hook)
    if not callable(hook):
        raise TypeError(f"route {route.uri!r}: on_connect {name} is not a function of the request")
    try:
        signature = inspect.signature(hook)
    except (TypeError, ValueError):
        return  # no signature to check: it is the caller's word
    try:
        signature.bind(object())
    except TypeError as exc:
        raise TypeError(
            f"route {route.uri!r}: on_connect {name}{signature} cannot be called with the "
            f"request alone (it returns a Response to deny, None to accept): {exc}"
        ) from None
