"""The HTTP request that opened a connection: headers, query args, cookies, params.

:class:`Headers` lives with the other HTTP message types in
:mod:`wsserver.protocol.http`; it is importable from here too.
"""

from __future__ import annotations

import contextlib
import json
import re
import types
from collections.abc import AsyncIterator
from typing import Any, Protocol, TypeVar, overload
from urllib.parse import parse_qsl, unquote

from ..errors import BadRequest
from ..protocol.handshake import comma_tokens
from ..protocol.http import Headers
from ..protocol.syntax import OWS
from ..protocol.tls_info import TLSInfo
from .forms import MAX_PARTS, MultiValues, UploadedFile, parse_form
from .multipart import FormPart, FormParts
from .ported import say_instead

__all__ = [
    "Headers",
    "QueryArgs",
    "Request",
    "RequestCookies",
    "BodyStream",
    "FormPart",
    "MultiValues",
    "UploadedFile",
]


_UNPARSED: Any = object()
_T = TypeVar("_T")


async def _whole(body: bytes) -> AsyncIterator[bytes]:
    if body:
        yield body


#: An escape in a quoted cookie value, as Python's http.cookies writes one
#: (Starlette's, Django's and aiohttp's set_cookie()): three octal digits
#: (a character up to U+00FF: ",", ";", non-ASCII), or a backslash before
#: one character (``\\"``, ``\\\\``).
_COOKIE_ESCAPE = re.compile(r"\\(?:([0-3][0-7]{2})|(.))", re.S)


def _unescape_cookie(escape: re.Match[str]) -> str:
    octal = escape.group(1)
    return chr(int(octal, 8)) if octal is not None else escape.group(2)


class RequestCookies(dict[str, str]):
    """A request's cookies by name, each name's first value (``cookies[name]``,
    ``cookies.get(name)``), with Sanic's ``getlist(name)`` for all of them.

    A browser keeps a cookie per name, domain and path, and sends each that
    matches the request, the longest path first (RFC 6265 5.4): a ``sid``
    set for ``/`` and another for ``/admin`` both come to ``/admin``.
    """

    __slots__ = ("_repeated",)

    def __init__(self) -> None:
        super().__init__()
        #: The names sent more than once, with all their values (None: none was).
        self._repeated: dict[str, list[str]] | None = None

    def _add(self, name: str, value: str) -> None:
        """Take a cookie as it came: the first of a name is its value."""
        first = self.get(name)
        if first is None:
            self[name] = value
            return
        if self._repeated is None:
            self._repeated = {}
        self._repeated.setdefault(name, [first]).append(value)

    @overload
    def getlist(self, name: str) -> list[str]: ...
    @overload
    def getlist(self, name: str, default: _T) -> list[str] | _T: ...
    def getlist(self, name: str, default: Any = None) -> Any:
        """Every value of cookie ``name``, in the order sent; when absent,
        ``default`` if given (as Sanic's ``getlist("sid", [])``), else an
        empty list."""
        value = self.get(name)
        if value is None:
            return [] if default is None else default
        repeated = self._repeated
        if repeated is not None and name in repeated and repeated[name][0] == value:
            return list(repeated[name])
        return [value]


class QueryArgs(MultiValues[str]):
    """Query arguments: ``args.get(name)`` gives the first value, ``args[name]`` all."""


class BodyStream(Protocol):
    """A request body read as it comes (``request.stream`` of a ``stream=True`` route).

    ``async for piece in request.stream`` gives its pieces (bytes, none
    empty) as they arrive; ``await request.stream.read()`` the rest of it
    whole, and None once a read() has returned its end (as Sanic's ``read()``
    says the end: its ``if body is None: break`` loop ends). The client
    sends more only as the handler asks (so memory stays bounded by a piece),
    each piece within ``open_timeout`` of the last.

    Both raise :class:`~wsserver.errors.ClientDisconnected` when the body
    cannot be read to its end (the client left, timed out, or sent a
    malformed body: it has been answered or the connection closed), and
    :class:`~wsserver.errors.RequestTooLarge` beyond the route's
    ``max_body_size`` (answered ``413`` if the handler lets it propagate).
    """

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def read(self) -> bytes | None: ...

    @property
    def received(self) -> int:
        """The bytes of the body read so far."""
        ...


def _no_constant(name: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity``, which Python's json reads: no JSON (RFC 8259 6)."""
    raise ValueError(f"{name} is no JSON value")


def _finite(number: str) -> float:
    """A JSON number as a float; one beyond a float's range (``1e400``, which
    Python reads as an infinity) is refused, as RFC 8259 6 lets a parser."""
    value = float(number)
    if value - value:  # (an infinity's is NaN)
        raise ValueError(f"{number[:20]} is out of a float's range")
    return value


#: A JSON text's bytes with each digit as "0" and "E" as "e" (for _may_overflow()).
_NUMBER_SHAPES = bytes.maketrans(b"123456789E", b"000000000e")


def _may_overflow(body: bytes) -> bool:
    """Whether a number of the JSON text ``body`` may be too large for a float.

    Only one with an exponent of three digits or more can be, or one of 210
    digits or more before its point (a two-digit exponent adds 99 at most
    to a float's 309): found in C, where a check of every float (a Python
    call each) took twice as long as the parse. UTF-16 or -32 text, whose
    digits have NULs between them (which UTF-8 JSON cannot hold), is always
    checked.
    """
    shapes = body.translate(_NUMBER_SHAPES)
    return b"e000" in shapes or b"e+000" in shapes or b"0" * 210 in shapes or b"\x00" in body


class Request:
    """An HTTP request, as seen by route handlers and handshake hooks.

    Attributes:
        method: e.g. ``"GET"``.
        path: the decoded path, without the query string.
        query_string: the raw query string (without ``?``).
        args: the parsed query arguments.
        headers: the request headers.
        match_info: the path parameters of the matched route.
        remote_address: the client's ``(host, port)``, or None if unknown: the
            peer's, or behind a trusted proxy what it says (port 0 if it does not).
        scheme: ``"https"`` when the client's connection is encrypted (to us, or
            to a trusted proxy that says so), else ``"http"``; a WebSocket's URL
            scheme is then ``wss`` or ``ws``.
        http_version: e.g. ``"1.1"``.
        body: the request body, read whole before an HTTP route's handler
            runs (at most ``max_body_size`` bytes); ``b""`` when there is none,
            and for WebSocket handshakes and ``stream=True`` routes.
        stream: a ``stream=True`` route's body, to read as it comes
            (:class:`BodyStream`); None for other requests.
        form, files: a form body's fields and files (:attr:`form`, :attr:`files`).
        ctx: a namespace for application state: a WebSocket's, for its
            connection; an HTTP request's, for that request alone (see :attr:`ctx`).
        subprotocols: the WebSocket subprotocols the client offered, in its order.
        url: the URL the client asked for (:attr:`url`).
        server: the :class:`~wsserver.Server` that received it (to publish, or
            ask for presence); None for a Request made by hand.
        local_address: the ``(host, port)`` a request without a ``Host``
            (HTTP/1.0's, or an empty one) came to, which :attr:`url` names
            then; None for any other request.
        tls: what the client's TLS connection to this server is
            (:class:`~wsserver.TLSInfo`: version, cipher, client certificate);
            None without TLS (behind a proxy that ends TLS too).
    """

    __slots__ = (
        "method",
        "target",
        "path",
        "query_string",
        "headers",
        "match_info",
        "remote_address",
        "scheme",
        "http_version",
        "body",
        "stream",
        "route",
        "server",
        "tls",
        "_args",
        "_ctx",
        "_cookies",
        "_json",
        "_form",
        "_files",
        "_multipart_read",
        "local_address",
        "__weakref__",  # (held weakly by a registry, as Sanic's and Starlette's may be)
    )

    def __init__(
        self,
        method: str,
        target: str,
        headers: Headers,
        *,
        remote_address: tuple[str, int] | None = None,
        http_version: str = "1.1",
        scheme: str = "http",
    ) -> None:
        self.method = method
        self.target = target
        raw_path, _, self.query_string = target.partition("?")
        # (unquote() returns a path without "%" as it is: a call less.)
        self.path = unquote(raw_path) if "%" in raw_path else raw_path
        self.headers = headers
        self.match_info: dict[str, Any] = {}
        self.remote_address = remote_address
        self.scheme = scheme
        self.http_version = http_version
        self.body = b""
        self.stream: BodyStream | None = None
        self.route: Any = None
        self.server: Any = None
        self.tls: TLSInfo | None = None
        # Built on first use: most connections never look at them.
        self._args: QueryArgs | None = None
        self._ctx: types.SimpleNamespace | None = None
        self._cookies: RequestCookies | None = None
        self._json: Any = _UNPARSED
        self.local_address: tuple[str, int] | None = None
        self._form: MultiValues[str] | None = None
        self._files: MultiValues[UploadedFile] | None = None
        self._multipart_read = False

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
    def json(self) -> Any:
        """The body parsed as JSON (UTF-8, -16 or -32); None when there is no body.

        Raises:
            BadRequest: the body is not JSON, or has a number beyond a float's
                range (an HTTP route answers it with 400).
        """
        if self._json is _UNPARSED:
            if not self.body:
                return None
            try:
                self._json = json.loads(
                    self.body,
                    parse_constant=_no_constant,
                    parse_float=_finite if _may_overflow(self.body) else None,
                )
            except ValueError as exc:  # (UnicodeDecodeError is one too)
                raise BadRequest(f"The request body is not JSON: {exc}") from None
            except RecursionError:
                raise BadRequest("The request body is not JSON: nested too deeply.") from None
        return self._json

    @property
    def form(self) -> MultiValues[str]:
        """The fields of a form body (``application/x-www-form-urlencoded`` or
        ``multipart/form-data``): ``form.get(name)`` the first value (str),
        ``form.getlist(name)`` all; empty for a body of another type.

        Raises:
            BadRequest: the body does not parse as its ``Content-Type`` says, or
                holds more than ``max_form_parts`` fields and files (a 400).
        """
        if self._form is None:
            self._parse_form()
        assert self._form is not None
        return self._form

    @property
    def files(self) -> MultiValues[UploadedFile]:
        """The files of a ``multipart/form-data`` body: ``files.get(name)`` the
        first :class:`UploadedFile` (``filename``, ``content_type``, ``body``),
        ``files.getlist(name)`` all; empty for a body of another type.

        Raises:
            BadRequest: as :attr:`form`.
        """
        if self._files is None:
            self._parse_form()
        assert self._files is not None
        return self._files

    def _parse_form(self) -> None:
        server = self.server
        limit = server.config.max_form_parts if server is not None else MAX_PARTS
        self._form, self._files = parse_form(self.headers.get("content-type", ""), self.body, limit)

    def multipart(self) -> FormParts:
        """A ``multipart/form-data`` body's parts, in order, read as they come:
        ``async for part in request.multipart()``, each a
        :class:`~wsserver.FormPart` (``name``, ``filename``, ``content_type``,
        ``headers``; its content by ``async for piece in part``,
        ``await part.read()`` or ``await part.text()``). On a ``stream=True``
        route the body is pulled from :attr:`stream` only as the parts are
        read, so an upload never has to fit in memory; on another route the
        parts are those of :attr:`body`. Once only (again: RuntimeError), and
        not mixed with other reads of :attr:`stream` (after one: RuntimeError).

        Raises (from the iteration, or a part's reads):
            BadRequest: the body is not such a form, does not parse, or holds
                more than ``max_form_parts`` parts (a ``400``).
            ClientDisconnected, RequestTooLarge: as :attr:`stream` does.
        """
        if self._multipart_read:
            raise RuntimeError("request.multipart() reads the body once: it was read")
        if self.stream is not None and self.stream.received:
            # (The rest would be read as the form's preamble: its first parts lost.)
            raise RuntimeError(
                "request.multipart() reads the body from its start: request.stream was read"
            )
        self._multipart_read = True
        server = self.server
        limit = server.config.max_form_parts if server is not None else MAX_PARTS
        pieces = self.stream if self.stream is not None else _whole(self.body)
        return FormParts(pieces.__aiter__(), self.headers.get("content-type", ""), limit)

    @property
    def ctx(self) -> types.SimpleNamespace:
        """A namespace for application state: a WebSocket route's, for its
        connection (an ``on_connect`` hook's ``request.ctx.user`` is its
        handler's); an HTTP route's, for that request alone: each request of
        a kept-alive connection has a fresh one, as Sanic's ``request.ctx``
        (behind a proxy, one upstream connection carries many users' requests)."""
        if self._ctx is None:
            self._ctx = types.SimpleNamespace()
        return self._ctx

    @property
    def host(self) -> str:
        """The ``Host`` header (empty when absent)."""
        return self.headers.get("host", "")

    @property
    def url(self) -> str:
        """The URL the client asked for: scheme, ``Host`` and target as sent
        (``http://example.org/a?b=1``; ``ws://`` or ``wss://`` for a WebSocket
        route's handshake), as Sanic's ``request.url``. Without a ``Host``
        (HTTP/1.0), the address the request came to (``http://127.0.0.1:8000/``),
        or ``localhost`` over a Unix socket."""
        scheme = self.scheme
        if self.route is not None and getattr(self.route, "is_websocket", False):
            scheme = "wss" if scheme == "https" else "ws"
        host = self.host
        if not host:
            # (HTTP/1.0 may send no Host: the address it came to, as an ASGI
            # scope's "server" gives it, its port left out if the scheme's.)
            if self.local_address is None:
                host = "localhost"  # (a Unix socket's peer: an http URL has a host)
            else:
                name, port = self.local_address
                host = f"[{name}]" if ":" in name else name
                if port != (443 if scheme in ("https", "wss") else 80):
                    host += f":{port}"
        return f"{scheme}://{host}{self.target}"

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered (``Sec-WebSocket-Protocol``), in its order."""
        return comma_tokens(self.headers, "sec-websocket-protocol")

    @property
    def cookies(self) -> RequestCookies:
        """Cookies sent in ``Cookie`` headers (``name=value`` pairs split on ``;``).

        Pairs without ``=`` are skipped; for a repeated name the first value
        wins, and ``cookies.getlist(name)`` gives them all; double quotes
        around a value are removed, and the escapes in it read as Python's
        ``http.cookies`` writes them (``"a\\054b"`` is ``a,b``), as Starlette
        and Sanic read them. A pair is read as UTF-8 (as browsers send what
        a page's script sets), or as latin-1 when its bytes are no UTF-8.
        """
        if self._cookies is None:
            cookies = RequestCookies()
            for header in self.headers.getall("cookie"):
                for pair in header.split(";"):
                    if not pair.isascii():
                        with contextlib.suppress(UnicodeError):  # (kept as it is)
                            pair = pair.encode("latin-1").decode("utf-8")
                    name, sep, value = pair.partition("=")
                    name = name.strip(OWS)
                    if not sep or not name:
                        continue
                    value = value.strip(OWS)
                    if len(value) >= 2 and value[0] == value[-1] == '"':
                        value = value[1:-1]
                        if "\\" in value:
                            value = _COOKIE_ESCAPE.sub(_unescape_cookie, value)
                    cookies._add(name, value)
            self._cookies = cookies
        return self._cookies

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target}>"


_ADDRESS = (
    "request.remote_address is the client's (host, port), behind a trusted proxy the one it names"
)
_AUTHORIZATION = 'read request.headers.get("authorization", "") (a Bearer token after "Bearer ")'
#: Sanic's request attributes that a Request has not, and what gives the same.
_SANIC_INSTEAD = {
    "app": "the server is request.server; what on_startup hooks set is in request.server.ctx",
    "ip": _ADDRESS,
    "remote_addr": _ADDRESS,
    "port": _ADDRESS,
    "conn_info": _ADDRESS + "; request.tls, request.local_address",
    "token": _AUTHORIZATION,
    "credentials": _AUTHORIZATION,
    "content_type": 'read request.headers.get("content-type")',
    "id": "set request.ctx.id yourself (uuid.uuid4(), say) in a decorator given with apply=",
    "url_for": "call routes.url_for(name, **params) of the Router",
    "query_args": "use request.args (blank values kept), or parse_qsl(request.query_string)",
    "get_args": "use request.args (blank values kept)",
    "get_query_args": "use request.args (blank values kept), or parse_qsl(request.query_string)",
    "load_json": "use request.json",
    "get_form": "use request.form",
    "respond": "return stream(chunks) (wsserver.response) to send a body as it is made",
    "raw_url": "request.target is the request's target as sent",
    "server_name": "request.host is the Host header",
    "server_port": "request.host is the Host header (with its port)",
    "uri_template": "request.route.uri is the route's URI",
    "endpoint": "request.route.name is the route's name",
    "name": "request.route.name is the route's name",
    "version": "request.http_version is the HTTP version ('1.1')",
    "socket": _ADDRESS,
    "receive_body": (
        "the body is read whole before the handler runs (request.body); "
        "on a stream=True route, await request.stream.read()"
    ),
}
# (A handler ported from Sanic is told what gives the same here.)
say_instead(
    Request,
    {
        name: f"request.{name}: a Request has no {name} (Sanic's): {instead}"
        for name, instead in _SANIC_INSTEAD.items()
    },
)
