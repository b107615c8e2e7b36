"""Test your handlers and ASGI apps in your own test suite, without a port.

::

    from wsserver.testing import TestClient

    async def test_echo():
        async with TestClient(routes) as client:
            async with client.websocket("/ws") as ws:
                await ws.send("hello")
                assert await ws.receive() == "hello"
            response = await client.get("/health")
            assert response.status == 200

:class:`TestClient` runs the real server in the test's event loop: ``serve(app,
listen=False, **settings)``, started (an ASGI app's lifespan, a Router's hooks included) and closed
(``Server.close()``, graceful) on exit. Each connection is a real
``socket.socketpair()``: one end is handed to the server
(:meth:`wsserver.Server.accept_socket`), the client speaks over the other. So
everything on the server's side is what production runs: h11, the handshake's
checks and hooks, frames, permessage-deflate, limits, keepalive, close codes.
Nothing listens on a port.

The client side is small and strict: h11 for HTTP and the upgrade request, the
project's frame parser for the server's frames, masked frames of its own,
fragmented messages reassembled, pings answered at once (whether or not the test
is reading), permessage-deflate when the server agrees to the client's offer.

Differences from a TCP client that a handler may notice: ``request.remote_address``
is None (as on a Unix socket; with ``proxy_headers=True, forwarded_allow_ips="*"``
an ``X-Forwarded-For`` header gives one), and the ``Host`` header is
``testserver`` unless the test sends another. TLS settings are refused: the
client speaks plain text.

For tests that are plain functions (not coroutines), :mod:`wsserver.testing_sync`
runs this client in a thread of its own: ``SyncTestClient``.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import collections
import contextlib
import datetime
import email.utils
import json as jsonlib
import mimetypes
import os
import re
import socket
import string
import time
import urllib.parse
import weakref
import zlib
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
)
from typing import IO, Any, Literal, NoReturn, TypedDict, TypeVar, Unpack, cast

import h11

from .app.forms import FieldPart, UploadedFile, encode_form, is_boundary, media_type
from .app.ported import say_instead
from .app.routing import Router
from .config import Config
from .config import settings as declared_settings
from .errors import (
    Close,
    ConcurrencyError,
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidState,
    ProtocolError,
    WSServerError,
    closed_error,
)
from .protocol.cookies import MAX_PAIR
from .protocol.deflate import DeflateSettings, PerMessageDeflate, parse_extensions
from .protocol.frames import (
    FrameParser,
    Opcode,
    parse_close,
    serialize_close,
    serialize_frame,
)
from .protocol.handshake import accept_key
from .protocol.http import Headers
from .server.http_protocol import HttpProtocol
from .server.server import ASGI_DEFAULTS, CANCELLED_GRACE, Server, serve
from .server.websocket import BytesLike, control_payload

__all__ = [
    "ClientRequest",
    "ClientResponse",
    "ClientWebSocket",
    "Cookies",
    "DefaultHeaders",
    "HandshakeDenied",
    "HTTPStatusError",
    "InvalidHandshake",
    "QueryParams",
    "RequestOptions",
    "ResponseHeaders",
    "StreamedResponse",
    "TestClient",
    "TooManyRedirects",
    "URL",
    "connect",
]

_T = TypeVar("_T")
_Piece = TypeVar("_Piece", bytes, str)

#: The settings a Config has (the rest of serve()'s arguments are its own: ssl...),
#: but broker, serve()'s own argument too (a Broker object, or the setting's URL).
_CONFIG_FIELDS = frozenset(name for name, _ in declared_settings()) - {"broker"}

#: Seconds any one wait of the client may take (a handshake, a response, a
#: message) before it raises TimeoutError, unless told otherwise.
DEFAULT_TIMEOUT = 5.0
#: ``connect()``'s ``compression`` when left out: the server's default.
_SERVERS_DEFAULT: Any = object()
#: The ``Host`` header sent unless the test sends its own.
DEFAULT_HOST = "testserver"
#: The ``User-Agent`` sent unless the test sends its own (Starlette's test client's).
USER_AGENT = "testclient"

HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]] | None
#: One request's cookies (``cookies=``): a mapping or pairs, name and value.
CookiesArg = Mapping[str, str] | Iterable[tuple[str, str]] | None
#: Query parameters: a mapping (a list or tuple value repeats the name) or pairs,
#: or a query string (str or bytes), as httpx takes them.
ParamsArg = Mapping[str, Any] | Iterable[tuple[str, Any]] | str | bytes | None
#: A request's body: bytes, text (sent as UTF-8), or pieces of bytes (sent chunked).
Body = bytes | bytearray | memoryview | str | Iterable[bytes] | AsyncIterable[bytes] | None
#: Form fields (``data=``): a mapping or pairs; a list (or tuple) value repeats its name.
#: (A value: str, or a number, a boolean or None, written as httpx writes them.)
FormValue = str | int | float | None
FormArg = (
    Mapping[str, FormValue | list[FormValue] | tuple[FormValue, ...]]
    | Iterable[tuple[str, FormValue]]
    | None
)
#: One file of ``files=``: its content, or (filename, content[, content type[, headers]]).
FileArg = (
    bytes
    | str
    | IO[bytes]
    | tuple[str, bytes | str | IO[bytes]]
    | tuple[str, bytes | str | IO[bytes], str | None]
    | tuple[str, bytes | str | IO[bytes], str | None, HeadersArg]
)
FilesArg = Mapping[str, FileArg] | Iterable[tuple[str, FileArg]] | None
#: How ``send_json()`` sends JSON, and ``receive_json()`` wants it: in a text
#: message or a binary one (as Starlette's test client says).
JsonMode = Literal["text", "binary"]


class RequestOptions(TypedDict, total=False):
    """The keyword arguments of :meth:`TestClient.request`, which ``get()``,
    ``post()`` and the other shortcuts (``SyncTestClient``'s too) take."""

    body: Body
    content: Body
    json: Any
    data: FormArg
    files: FilesArg
    headers: HeadersArg
    cookies: CookiesArg
    params: ParamsArg
    auth: tuple[str | bytes, str | bytes] | None
    timeout: float | None
    follow_redirects: bool | None


#: Characters left as they are in a request target's path and in its query, as
#: httpx leaves them (WHATWG's percent-encode sets: '"', '<' and '>' encoded
#: in both, '`', '{' and '}' in the path too); anything else (spaces,
#: non-ASCII) is percent-encoded as UTF-8. A '%' is left: "%20" is sent as it is.
_SAFE_IN_PATH = "".join(c for c in string.punctuation if c not in '"<>`{}')
_SAFE_IN_QUERY = "".join(c for c in string.punctuation if c not in '"<>')


class DefaultHeaders(MutableMapping[str, str]):
    """The headers a client sends with every request, WebSocket upgrade and
    stream (httpx's and Starlette's ``client.headers``): names in any case, one
    value each, a request's own ``headers`` winning on a name."""

    def __init__(self, headers: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, tuple[str, str]] = {}
        self.update(headers)

    def __setitem__(self, name: str, value: str) -> None:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(
                f"a header's name and value are str, not {type(name).__name__} and "
                f"{type(value).__name__}"
            )
        self._items[name.lower()] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __delitem__(self, name: str) -> None:
        del self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"DefaultHeaders({dict(self._items.values())!r})"

    def under(self, headers: HeadersArg) -> HeadersArg:
        """``headers`` (a request's) with these before them, but those it names."""
        if not self._items:
            return headers
        own = _header_list(headers)  # (a Headers' repeated names kept)
        named = {str(name).lower() for name, _ in own}
        return [pair for key, pair in self._items.items() if key not in named] + own


class Cookies(dict[str, str]):
    """A client's cookies, by name: a dict, with httpx's ``set()`` and ``delete()``.

    One a response set to end (``Max-Age``, ``Expires``) goes no more once it
    ended, as a browser's (unless the test gave it a value of its own since).
    """

    def __init__(self, *args: Any, **kwargs: str) -> None:
        super().__init__(*args, **kwargs)
        #: When each cookie a response set to end ends (time.time()'s), with the
        #: value it set (another value is the test's own: a session cookie).
        self._ends: dict[str, tuple[str, float]] = {}
        if args and isinstance(args[0], Cookies):  # (a copy ends as they do)
            self._ends.update(args[0]._ends)

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        """Send ``name=value`` with the next requests (``domain`` and ``path``
        are taken for httpx's sake: every request here goes to the one server)."""
        self[name] = value
        self._ends.pop(name, None)

    def delete(self, name: str, domain: str | None = None, path: str | None = None) -> None:
        """Send ``name`` no more (nothing happens if it is not there)."""
        self.pop(name, None)
        self._ends.pop(name, None)

    def _keep(self, name: str, value: str, ends: float | None) -> None:
        """Take the cookie a response set (``ends``: when it ends, None: with the
        session); drop it if it ended already."""
        if ends is not None and ends <= time.time():
            self.delete(name)
            return
        self[name] = value
        if ends is None:
            self._ends.pop(name, None)
        else:
            self._ends[name] = (value, ends)

    def _drop_ended(self) -> None:
        """Drop the cookies that ended (those still as their response set them)."""
        if not self._ends:
            return
        now = time.time()
        for name, (value, ends) in list(self._ends.items()):
            if self.get(name) != value:
                del self._ends[name]  # (the test's own since, or gone)
            elif ends <= now:
                self.delete(name)


class ResponseHeaders(Headers):
    """A response's headers: :class:`~wsserver.protocol.http.Headers` (case-insensitive,
    ``headers[name]`` the first value, ``getall(name)`` every one), with httpx's
    ``get_list()`` and ``multi_items()``."""

    __slots__ = ()

    def get_list(self, name: str, split_commas: bool = False) -> list[str]:
        """Every value of header ``name``, in order (``getall``); with
        ``split_commas``, each comma-separated item of them, stripped, as httpx's."""
        values = self.getall(name)
        if not split_commas:
            return values
        return [item.strip() for value in values for item in value.split(",")]

    def multi_items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair, names lowercase, repeated ones included, as httpx's."""
        return [(name.lower(), value) for name, value in self.raw_items()]


class ClientRequest:
    """The request a response answers (``response.request``), with what httpx's
    ``Request`` has that a test reads.

    Attributes:
        method: the method, upper-cased.
        url: where it went (a :class:`URL`).
        headers: the headers as sent (the ``Host``, the client's ``Cookie``,
            ``Content-Length``... included).
    """

    __slots__ = ("method", "url", "headers", "_content")

    def __init__(self, method: str, url: URL, headers: Headers, content: bytes | None) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self._content = content

    @property
    def content(self) -> bytes:
        """The body sent (``b""`` if none).

        Raises:
            RuntimeError: a body of pieces, sent as they came and not kept (as
                httpx's ``RequestNotRead``).
        """
        if self._content is None:
            raise RuntimeError("a body of pieces is sent as it comes, not kept")
        return self._content

    def __repr__(self) -> str:
        return f"<ClientRequest {self.method} {self.url}>"


class ClientResponse:
    """An HTTP response the server sent: a route's answer, or the denial of an upgrade.

    Attributes:
        status: the status code.
        reason: the reason phrase.
        headers: the headers (:class:`ResponseHeaders`: case-insensitive,
            ``headers[name]`` the first value; every one by ``getall(name)``
            or httpx's ``get_list(name)``, every pair by ``multi_items()``).
        body: the body, as bytes.
        http_version: ``"HTTP/1.1"`` (or whatever the server said), as httpx's.
        url: where the request went (a :class:`URL`: ``http://testserver/path?query``,
            with httpx's ``path``, ``query``, ``host``...; empty
            for the denial of an upgrade).
        history: the redirects followed on the way here (``follow_redirects``),
            first to last.
        num_bytes_downloaded: the bytes of the body read so far, as they came
            (before its ``Content-Encoding`` is undone), as httpx counts them.
    """

    __slots__ = (
        "status",
        "reason",
        "headers",
        "body",
        "http_version",
        "url",
        "history",
        "num_bytes_downloaded",
        "_elapsed",
        "_request",
        "_encoding",
    )

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Headers,
        body: bytes,
        http_version: str = "HTTP/1.1",
    ) -> None:
        self.status = status
        self.reason = reason
        if not isinstance(headers, ResponseHeaders):  # (one made by hand)
            headers = ResponseHeaders(headers.raw_items())
        self.headers: ResponseHeaders = headers
        self.body = body
        self.http_version = http_version
        self.url = URL("")
        self.history: list[ClientResponse] = []
        self.num_bytes_downloaded = 0
        self._elapsed: datetime.timedelta | None = None
        self._request: ClientRequest | None = None
        self._encoding: str | None = None

    @property
    def request(self) -> ClientRequest:
        """The request this response answers (httpx's ``response.request``).

        Raises:
            RuntimeError: a response made by hand, with none.
        """
        if self._request is None:
            raise RuntimeError("this response has no request (one made by hand?)")
        return self._request

    @request.setter
    def request(self, request: ClientRequest) -> None:
        self._request = request

    @property
    def reason_phrase(self) -> str:
        """:attr:`reason`, under httpx's name."""
        return self.reason

    @property
    def encoding(self) -> str:
        """The charset :attr:`text` decodes with: ``Content-Type``'s, UTF-8 if
        none or one Python does not know (as httpx's); one set is used instead."""
        return self._encoding or _charset(self.headers)

    @encoding.setter
    def encoding(self, encoding: str) -> None:
        self._encoding = encoding

    @property
    def is_closed(self) -> bool:
        """Whether the response is over (its body read, or closed): always, for one
        read whole; a streamed one's, once read to its end or closed."""
        return True

    def close(self) -> None:
        """Nothing to do for a response read whole (httpx's ``close()``)."""

    async def aclose(self) -> None:
        """Nothing to do for a response read whole (httpx's ``aclose()``)."""

    @property
    def elapsed(self) -> datetime.timedelta:
        """The time from sending the request to having read the whole response
        (httpx's ``elapsed``); a streamed response's, to the end of its body,
        or of its ``stream()`` block if that came first.

        Raises:
            RuntimeError: a streamed response neither read to its end nor left.
        """
        if self._elapsed is None:
            raise RuntimeError(
                "the elapsed time of a streamed response is known once it was read "
                "to its end or its stream() block ended"
            )
        return self._elapsed

    def _ended(self, started: float) -> None:
        """Note the response read whole (``started``: :func:`time.perf_counter`'s
        when the request began to be sent)."""
        self._elapsed = datetime.timedelta(seconds=time.perf_counter() - started)

    @property
    def text(self) -> str:
        """The body decoded with the charset of ``Content-Type`` (UTF-8 if none, or
        one Python does not know; or :attr:`encoding`, if set); bytes that do not
        decode become U+FFFD."""
        return self.body.decode(self.encoding, "replace")

    @property
    def status_code(self) -> int:
        """:attr:`status`, under the name Starlette's and httpx's responses use."""
        return self.status

    @property
    def content(self) -> bytes:
        """:attr:`body`, under the name Starlette's and httpx's responses use."""
        return self.body

    def json(self, **kwargs: Any) -> Any:
        """The body, parsed as JSON (``kwargs`` are ``json.loads()``'s, as
        httpx's: ``parse_float=Decimal``)."""
        return jsonlib.loads(self.body, **kwargs)

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies this response sets (``Set-Cookie``), by name; not those it
        expires (taken in order, as a jar takes them: a later one wins)."""
        found = {}
        now = time.time()
        for header in self.headers.getall("set-cookie"):
            cookie = _set_cookie(header)
            if cookie is None:
                continue
            if cookie[2] is None or cookie[2] > now:
                found[cookie[0]] = cookie[1]
            else:
                found.pop(cookie[0], None)
        return found

    # (httpx's names for the classes of status.)

    @property
    def is_informational(self) -> bool:
        """A 1xx status."""
        return 100 <= self.status < 200

    @property
    def is_success(self) -> bool:
        """A 2xx status."""
        return 200 <= self.status < 300

    @property
    def is_redirect(self) -> bool:
        """A 3xx status (httpx's definition: a 304 too)."""
        return 300 <= self.status < 400

    @property
    def has_redirect_location(self) -> bool:
        """A 301, 302, 303, 307 or 308 with a ``Location``: one ``follow_redirects`` follows."""
        return self.status in _REDIRECTS and "location" in self.headers

    @property
    def links(self) -> dict[str, dict[str, str]]:
        """The links of its ``Link`` headers (RFC 8288), as httpx's: each a
        dict of its ``url`` and its parameters (``rel``, ``title``...), by its
        ``rel`` (its URL if it has none): ``response.links["next"]["url"]``."""
        return _links(self.headers.getall("link"))

    @property
    def is_client_error(self) -> bool:
        """A 4xx status."""
        return 400 <= self.status < 500

    @property
    def is_server_error(self) -> bool:
        """A 5xx status."""
        return 500 <= self.status < 600

    @property
    def is_error(self) -> bool:
        """A 4xx or 5xx status."""
        return 400 <= self.status < 600

    def raise_for_status(self) -> ClientResponse:
        """This response if its status is 2xx (as httpx's method does); else
        :class:`HTTPStatusError`, whose ``response`` it is."""
        if 200 <= self.status < 300:
            return self
        kind = {1: "an informational response", 3: "a redirect", 4: "a client error"}
        where = f" for {self.url}" if self.url else ""
        raise HTTPStatusError(
            f"{self.status} {self.reason}{where}: {kind.get(self.status // 100, 'a server error')}",
            self,
        )

    # (httpx's ways to read a body, for a response read whole already: what a
    # test of a finite stream, server-sent events say, reads it with.)

    def read(self) -> bytes:
        """The body (:attr:`body`)."""
        return self.body

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        """The body, in one piece, or in pieces of ``chunk_size`` bytes (the last
        one shorter); none if it is empty."""
        return _split(self.body, chunk_size)

    def iter_text(self, chunk_size: int | None = None) -> Iterator[str]:
        """The body as text (:attr:`text`), in one piece, or in pieces of
        ``chunk_size`` characters (the last one shorter); none if it is empty."""
        return _split(self.text if self.body else "", chunk_size)

    def iter_lines(self) -> Iterator[str]:
        """The body's lines, each without its ``\\n``, ``\\r\\n`` or ``\\r``."""
        lines = _Lines()
        yield from lines.feed(self.text)
        yield from lines.end()

    async def aread(self) -> bytes:
        return self.body

    def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        return _async(self.iter_bytes(chunk_size))

    def aiter_text(self, chunk_size: int | None = None) -> AsyncIterator[str]:
        return _async(self.iter_text(chunk_size))

    async def aiter_lines(self) -> AsyncIterator[str]:
        for line in self.iter_lines():
            yield line

    def __repr__(self) -> str:
        return f"<ClientResponse {self.status} {self.reason}, {len(self.body)} bytes>"


async def _async(pieces: Iterator[_T]) -> AsyncIterator[_T]:
    for piece in pieces:
        yield piece


def _chunk_size(size: int | None) -> int | None:
    """``size`` itself when it is None or a positive int.

    Raises:
        ValueError: anything else (a size of 0 would never give a piece).
    """
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, not {size!r}")
    return size


def _split(whole: _Piece, chunk_size: int | None) -> Iterator[_Piece]:
    """``whole`` in one piece, or in pieces of ``chunk_size`` (the last one
    shorter); none if it is empty. ``chunk_size`` is checked at once, not at
    the first ``next()``."""
    size = _chunk_size(chunk_size) or len(whole) or 1
    return (whole[start : start + size] for start in range(0, len(whole), size))


async def _rechunked(
    pieces: AsyncIterator[_Piece], chunk_size: int | None
) -> AsyncIterator[_Piece]:
    """``pieces`` as they come, or joined and cut into pieces of ``chunk_size``
    (each given as soon as it is whole; the last one shorter), as httpx's
    ``iter_bytes(chunk_size)`` gives them."""
    if chunk_size is None:
        async for piece in pieces:
            yield piece
        return
    held = None
    async for piece in pieces:
        held = piece if held is None else held + piece
        start = 0
        while len(held) - start >= chunk_size:
            yield held[start : start + chunk_size]
            start += chunk_size
        held = held[start:] or None
    if held:
        yield held


def _charset(headers: Headers) -> str:
    """The charset of ``Content-Type``: UTF-8 if none, or one Python does not know."""
    charset = "utf-8"
    for param in headers.get("content-type", "").split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset" and value:
            charset = value.strip('"')
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    return charset


#: Where a line of a body ends (:class:`_Lines`).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

#: A link of a Link header: its <URI> and its parameters (a quoted value may
#: hold , and ;, and a quote or a backslash escaped by a backslash).
_LINK = re.compile(r'<([^<>]*)>((?:\s*;\s*[^;,=\s]+(?:\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^;,"]*))?)*)')
_LINK_PARAMETER = re.compile(r';\s*([^;,=\s]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;,"]*))')
_QUOTED_PAIR = re.compile(r"\\(.)")


def _links(values: list[str]) -> dict[str, dict[str, str]]:
    """The links of ``Link`` header values, each a dict of its ``url`` and
    its parameters, by its ``rel`` or else its URL (httpx's
    ``response.links``), and one of several relation types (``rel="next
    last"``, RFC 8288 3.3) by each too; a parameter without a value is left out."""
    found: dict[str, dict[str, str]] = {}
    for value in values:
        for link in _LINK.finditer(value):
            fields = {"url": link.group(1).strip()}
            for parameter in _LINK_PARAMETER.finditer(link.group(2)):
                name, quoted, token = parameter.groups()
                fields[name] = token.strip() if quoted is None else _QUOTED_PAIR.sub(r"\1", quoted)
            rel = fields.get("rel")
            for key in (rel, *rel.split()) if rel else (fields["url"],):
                found[key] = fields
    return found


class _Lines:
    """Text that comes in pieces, split into lines, each without its line
    break: ``feed()`` each piece (the lines it ended), then ``end()`` (the
    last, unended one). A ``\\r`` that ends a piece is held: perhaps half of
    a ``\\r\\n``."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, text: str) -> list[str]:
        pending = self._pending + text
        held = pending.endswith("\r")
        *lines, pending = _LINE_BREAK.split(pending[:-1] if held else pending)
        self._pending = pending + "\r" if held else pending
        return lines

    def end(self) -> list[str]:
        return [self._pending.removesuffix("\r")] if self._pending else []


class StreamedResponse(ClientResponse):
    """A response whose body is read as it comes: :meth:`TestClient.stream`'s
    (a server-sent events stream, a long download).

    Its status, headers, ``cookies`` and ``raise_for_status()`` are there at
    once; the body is read once, by one of ``aiter_bytes()`` (its
    ``Content-Encoding`` undone, as a whole response's), ``aiter_text()``,
    ``aiter_lines()`` (each line without its ``\\n``, ``\\r\\n`` or
    ``\\r``), ``aiter_raw()`` (as it came) or ``aread()`` (the rest, then
    ``body``, ``content``, ``text`` and ``json()`` are the whole's). Each wait
    for a next piece is bounded by the client's timeout. From a
    :class:`~wsserver.testing_sync.SyncTestClient`: ``iter_bytes()``,
    ``iter_text()``, ``iter_lines()``, ``iter_raw()`` and ``read()``.

    Attributes:
        consumed: whether the body was read to its end.
        left: whether its ``stream()`` block ended (its connection closed).
        runner: what runs a coroutine on the client's loop and returns its
            result, for the ``iter_*()`` and ``read()`` of a SyncTestClient's
            response (set by that client); None for a TestClient's.
    """

    __slots__ = (
        "_client",
        "_h",
        "_pipe",
        "_timeout",
        "_sent_at",
        "_started",
        "_whole",
        "_closed",
        "runner",
        "consumed",
        "left",
    )

    def __init__(
        self,
        head: ClientResponse,
        client: TestClient,
        h: h11.Connection,
        pipe: _Pipe,
        timeout: float | None,
        sent_at: float,
    ) -> None:
        super().__init__(head.status, head.reason, head.headers, b"", head.http_version)
        self.url = head.url
        self._request = head._request
        self._client = client
        self._h = h
        self._pipe = pipe
        self._timeout = timeout
        self._sent_at = sent_at  # (time.perf_counter()'s, for elapsed)
        self._started = self._whole = self._closed = self.consumed = self.left = False
        self.runner: Callable[[Any], Any] | None = None

    @property
    def is_closed(self) -> bool:
        """Whether the body was read to its end, or the response closed
        (:meth:`aclose`, :meth:`close`, the ``stream()`` block's end)."""
        return self.consumed or self.left or self._closed

    async def aclose(self) -> None:
        """Close the response before its block ends, as httpx's: a body not
        read to its end is read no more (its connection closed: the
        application hears the client leave); one read whole stays there."""
        if self._closed:
            return
        self._closed = True
        if not self.consumed:
            self._pipe.transport.close()
        if self._elapsed is None:
            self._ended(self._sent_at)

    def close(self) -> None:
        """:meth:`aclose`, for a :class:`~wsserver.testing_sync.SyncTestClient`'s response.

        Raises:
            RuntimeError: a TestClient's (``await response.aclose()``, as
                httpx's async responses).
        """
        if self.runner is None:
            raise RuntimeError("a TestClient's streamed response is closed by await aclose()")
        self.runner(self.aclose())

    def aiter_raw(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """The body's pieces as they come, as they came (an encoding not undone),
        or in pieces of ``chunk_size`` bytes (the last one shorter).

        Raises:
            RuntimeError: the body is read already.
            TimeoutError: no next piece within the timeout.
            ConnectionError: the connection ended within the body (or the
                application's exception, if it failed).
            ValueError: ``chunk_size`` is not a positive int (at once).
        """
        return _rechunked(self._raw(), _chunk_size(chunk_size))

    async def _raw(self) -> AsyncIterator[bytes]:
        if self._started:
            raise RuntimeError("the body of a streamed response is read once")
        if self.left:
            raise RuntimeError("a streamed response is read within its stream() block")
        if self._closed:
            raise RuntimeError("a streamed response is read before it is closed")
        self._started = True
        while True:
            broken: ConnectionError | None = None
            try:
                async with _within(self._timeout, "no more of the body came"):
                    piece = await _next_piece(self._h, self._pipe)
            except ConnectionError as exc:
                broken = exc
            if broken is not None:
                self._client._raise_failure(self._pipe)  # (what the application raised)
                raise broken
            if piece is None:
                self.consumed = True
                self._ended(self._sent_at)  # (httpx's: once read to its end)
                return
            self.num_bytes_downloaded += len(piece)
            yield piece

    def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """The body's pieces as they come, its ``Content-Encoding`` undone (or in
        pieces of ``chunk_size`` bytes, the last one shorter). Once :meth:`aread`
        read it whole, what it read (as httpx's), as those of ``aiter_text()``
        and ``aiter_lines()``."""
        if self._whole:
            return super().aiter_bytes(chunk_size)
        return _rechunked(self._decoded(), _chunk_size(chunk_size))

    async def _decoded(self) -> AsyncIterator[bytes]:
        decoder = _Decoder(self.headers)
        async for piece in self._raw():
            data = decoder.decode(piece)
            if data:
                yield data
        rest = decoder.end()
        if rest:
            yield rest

    def aiter_text(self, chunk_size: int | None = None) -> AsyncIterator[str]:
        """The body as text as it comes (the charset as :attr:`text`'s), or in
        pieces of ``chunk_size`` characters (the last one shorter)."""
        if self._whole:
            return super().aiter_text(chunk_size)
        return _rechunked(self._text(), _chunk_size(chunk_size))

    async def _text(self) -> AsyncIterator[str]:
        decoder = codecs.getincrementaldecoder(self.encoding)("replace")
        async for data in self._decoded():
            text = decoder.decode(data)
            if text:
                yield text
        rest = decoder.decode(b"", True)
        if rest:
            yield rest

    def aiter_lines(self) -> AsyncIterator[str]:
        """The body's lines as they end (each without its line break)."""
        if self._whole:
            return super().aiter_lines()
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        lines = _Lines()
        async for text in self._text():
            for line in lines.feed(text):
                yield line
        for line in lines.end():
            yield line

    async def aread(self) -> bytes:
        """The rest of the body (its ``Content-Encoding`` undone); then :attr:`body`
        (``content``, ``text``, ``json()``) is the whole."""
        if not self._whole:
            self.body = b"".join([data async for data in self._decoded()])
            self._whole = True
        return self.body

    @property
    def content(self) -> bytes:
        self._check_read()
        return super().content

    @property
    def text(self) -> str:
        self._check_read()
        return super().text

    def json(self, **kwargs: Any) -> Any:
        self._check_read()
        return super().json(**kwargs)

    def _check_read(self) -> None:
        if not self._whole:
            raise RuntimeError(
                "the body of a streamed response is not read: await response.aread()"
            )

    # ---------------------------------------------- from a SyncTestClient

    def iter_raw(self, chunk_size: int | None = None) -> Iterator[bytes]:
        return self._blocking(self.aiter_raw(chunk_size))

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        if self._whole:  # (read whole: what was read, as httpx's)
            return super().iter_bytes(chunk_size)
        return self._blocking(self.aiter_bytes(chunk_size))

    def iter_text(self, chunk_size: int | None = None) -> Iterator[str]:
        if self._whole:
            return super().iter_text(chunk_size)
        return self._blocking(self.aiter_text(chunk_size))

    def iter_lines(self) -> Iterator[str]:
        if self._whole:
            return super().iter_lines()
        return self._blocking(self.aiter_lines())

    def read(self) -> bytes:
        return cast(bytes, self._blocking_runner()(self.aread()))

    def _blocking_runner(self) -> Callable[[Any], Any]:
        if self.runner is None:
            raise RuntimeError(
                "a TestClient's streamed response is read with async for ... in "
                "response.aiter_bytes() (or aiter_text, aiter_lines, aread)"
            )
        return self.runner

    def _blocking(self, pieces: AsyncIterator[_T]) -> Iterator[_T]:
        run = self._blocking_runner()  # (refused here, not at the first next())

        def each() -> Iterator[_T]:
            while True:
                try:
                    yield run(pieces.__anext__())
                except StopAsyncIteration:
                    return

        return each()

    def __repr__(self) -> str:
        return f"<StreamedResponse {self.status} {self.reason}>"


def _httpx_status_error() -> tuple[type[Exception], ...]:
    """httpx's ``HTTPStatusError``, when httpx is installed (Starlette's test
    client needs it): what a test written for that client catches."""
    try:
        from httpx import HTTPStatusError as HttpxStatusError
    except ImportError:
        return ()
    return (HttpxStatusError,)


class HTTPStatusError(WSServerError, *_httpx_status_error()):  # type: ignore[misc]
    """:meth:`ClientResponse.raise_for_status` met a status other than 2xx;
    ``response`` is that response. With httpx installed it is also an
    ``httpx.HTTPStatusError`` (its ``request`` unset: there is no httpx request)."""

    def __init__(self, message: str, response: ClientResponse) -> None:
        Exception.__init__(self, message)
        self._request = None  # (httpx's request: unset, its property says so)
        self.response = response


#: How much of a denial's body :class:`HandshakeDenied`'s message gives (characters).
DENIAL_SAID = 200


class HandshakeDenied(WSServerError):
    """The server answered the upgrade request with an HTTP response instead of a 101
    (its message gives the status, and the start of the body, which says why).

    Attributes:
        response: that response (:class:`ClientResponse`).
        status, reason, headers, body: the response's (``status_code`` and
            ``content`` too, as a response has them).
    """

    def __init__(self, response: ClientResponse) -> None:
        said = response.body.decode("utf-8", "replace").strip()
        if len(said) > DENIAL_SAID:
            said = said[:DENIAL_SAID] + "..."
        super().__init__(
            f"the server denied the upgrade: {response.status} {response.reason}"
            + (f": {said!r}" if said else "")
        )
        self.response = response
        self.status = response.status
        self.reason = response.reason
        self.headers = response.headers
        self.body = response.body

    @property
    def text(self) -> str:
        """The response's body, decoded."""
        return self.response.text

    @property
    def status_code(self) -> int:
        return self.status

    @property
    def content(self) -> bytes:
        return self.body

    def json(self, **kwargs: Any) -> Any:
        """The response's body, parsed as JSON (``kwargs`` are ``json.loads()``'s)."""
        return self.response.json(**kwargs)


class TooManyRedirects(WSServerError):
    """``follow_redirects`` met more than :data:`MAX_REDIRECTS` redirects (a loop,
    most likely); ``response`` is the last of them."""

    def __init__(self, message: str, response: ClientResponse) -> None:
        super().__init__(message)
        self.response = response


class InvalidHandshake(WSServerError):
    """The server's 101 breaks RFC 6455 (or it closed before answering): a server bug."""


# ------------------------------------------------------------------ the pipe


class _Pipe(asyncio.Protocol):
    """The client's end of a socket pair: bytes kept for h11 until the upgrade, then frames."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()
        self._received = bytearray()
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        #: Whether the connection is gone.
        self.lost = False
        #: Done once the connection is gone.
        self.closed: asyncio.Future[None] = self.loop.create_future()
        #: The server's transport of this connection, and its protocol as it
        #: was accepted (a closed transport no longer names it).
        self.server_end: asyncio.BaseTransport | None = None
        self.server_protocol: asyncio.BaseProtocol | None = None
        #: After the upgrade: where received bytes go, and who hears the end.
        self.on_data: Callable[[bytes], None] | None = None
        self.on_lost: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.on_data is not None:
            self.on_data(data)
            return
        self._received += data
        self._wake()

    def eof_received(self) -> None:
        self._eof = True
        self._wake()  # returning None closes the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._eof = True
        self._wake()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        if not self.closed.done():
            self.closed.set_result(None)
        if self.on_lost is not None:
            self.on_lost()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read(self) -> bytes:
        """The bytes received since the last call; b"" once the server has closed."""
        while not self._received and not self._eof:
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.take()

    @property
    def ended(self) -> bool:
        """Whether the server has ended its side (or the connection is gone)."""
        return self._eof

    def take(self) -> bytes:
        """The bytes received and not read yet (without waiting)."""
        data = bytes(self._received)
        self._received.clear()
        return data

    def write(self, data: bytes) -> None:
        """Send ``data`` unless the connection is closing (then it is dropped)."""
        if not self.lost and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark.

        Every task waiting (two sending at once) waits for the same future:
        one of its own would replace the other's, which nothing then wakes.
        """
        while self._writing_paused and not self.lost:
            if self._drain_waiter is None or self._drain_waiter.done():
                self._drain_waiter = self.loop.create_future()
            # (Shielded: one waiter cancelled, a timeout, leaves the others waiting.)
            await asyncio.shield(self._drain_waiter)

    def abort(self) -> None:
        if not self.lost:
            self.transport.abort()


async def _pieces(body: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The pieces of a request body given as an iterable or an async iterable."""
    if isinstance(body, AsyncIterable):
        async for piece in body:
            yield bytes(piece)
    else:
        for piece in body:
            yield bytes(piece)


def _form_fields(data: FormArg) -> list[tuple[str, str]]:
    """``data=``'s fields as pairs, a list value's name repeated."""
    if isinstance(data, (str, bytes, bytearray, memoryview)):
        raise TypeError("data= is form fields (a mapping or pairs): a raw body goes as body=")
    pairs = data.items() if isinstance(data, Mapping) else (data or ())
    fields = []
    for name, value in pairs:
        values = value if isinstance(value, (list, tuple)) else [value]
        for one in values:
            if not isinstance(one, (str, int, float)) and one is not None:
                raise TypeError(
                    f"form field {name!r}: values are str, numbers, booleans or None,"
                    f" not {type(one).__name__}"
                )
            fields.append((name, _param_text(one)))  # (as httpx writes them: true, "")
    return fields


def _form_files(files: FilesArg) -> list[tuple[str, UploadedFile | FieldPart]]:
    """``files=``'s files, each with its name, content and type, in order; a
    part without a filename where httpx takes one, ``(None, value[, type[,
    headers]])``, in its place (httpx sends it there): a form field, its
    type and headers only those given."""
    pairs = files.items() if isinstance(files, Mapping) else (files or ())
    found: list[tuple[str, UploadedFile | FieldPart]] = []
    for name, file in pairs:
        if isinstance(file, tuple):
            if not 2 <= len(file) <= 4:
                raise ValueError(
                    f"file {name!r}: (filename, content[, content type[, headers]]),"
                    f" not {len(file)} items"
                )
            filename, content, *rest = file
        else:
            # An open file's own name, else "upload", as httpx names them.
            filename, content, rest = "upload", file, []
            opened = getattr(file, "name", None)
            if hasattr(file, "read") and isinstance(opened, str):
                filename = os.path.basename(opened)
        content_type = rest[0] if rest else None
        # httpx's fourth item: the part's headers (a Content-Type among them
        # wins over the third, as there).
        given = _header_list(rest[1] if len(rest) == 2 else None)
        headers = tuple((key.lower(), value) for key, value in given)
        for key, value in headers:
            if key == "content-type":
                content_type = value
        body = _file_content(name, content)
        if filename is None:
            found.append((name, FieldPart(body, content_type, headers)))
            continue
        if content_type is None:
            content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        found.append((name, UploadedFile(filename, content_type, body, headers)))
    return found


def _file_content(name: str, content: Any) -> bytes:
    """A file's content: bytes as they are, text as UTF-8, or what a file opened
    for reading reads (``open(path, "rb")``, ``io.BytesIO``) from its start, as
    httpx reads it (one just written stands at its end), or from where it
    stands if it cannot seek (a pipe)."""
    if hasattr(content, "read"):
        if hasattr(content, "seek"):
            with contextlib.suppress(OSError):  # (io.UnsupportedOperation is one)
                content.seek(0)
        content = content.read()
    if isinstance(content, str):
        return content.encode("utf-8")
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    raise TypeError(
        f"file {name!r}: its content is bytes, str or a file opened for reading, "
        f"not {type(content).__name__}"
    )


#: The longest a cookie lives (RFC 6265bis 5.6.1 and 5.6.2: 400 days, as browsers cap it).
_COOKIE_LIFE = 400 * 24 * 3600


def _set_cookie(header: str) -> tuple[str, str, float | None] | None:
    """A ``Set-Cookie`` header's name, value and when it ends (time.time()'s:
    by its ``Max-Age``, 0 if not above 0, else its ``Expires``; None: with the
    session); None if it sets none, or one browsers ignore (a name and value
    over 4096 characters, RFC 6265bis 5.7)."""
    pair, *attributes = header.split(";")
    name, equals, value = pair.partition("=")
    name, value = name.strip(" \t"), value.strip(" \t")
    if not equals or not name or len(name) + len(value) > MAX_PAIR:
        return None
    max_age: int | None = None
    expires: datetime.datetime | None = None
    for attribute in attributes:
        key, _, argument = attribute.partition("=")
        key, argument = key.strip(" \t").lower(), argument.strip(" \t")
        digits = argument[1:] if argument[:1] == "-" else argument
        if key == "max-age" and digits.isascii() and digits.isdigit():  # (RFC 6265 5.2.2)
            # (Past 12 digits is past any cap; int() refuses over 4300.)
            seconds = int(digits.lstrip("0")[:12] or "0")
            max_age = -seconds if argument[:1] == "-" else seconds
        elif key == "expires":
            with contextlib.suppress(TypeError, ValueError, IndexError):
                expires = email.utils.parsedate_to_datetime(argument)
    if max_age is not None:
        return name, value, time.time() + min(max_age, _COOKIE_LIFE) if max_age > 0 else 0.0
    if expires is not None:
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=datetime.UTC)
        return name, value, min(expires.timestamp(), time.time() + _COOKIE_LIFE)
    return name, value, None


def _header_list(headers: HeadersArg) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Headers):
        return headers.raw_items()  # repeated names kept
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def _encode_headers(items: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """The request's headers as bytes.

    Raises:
        TypeError: a name or value that is not a str.
        ValueError: one that latin-1 cannot encode (RFC 8187 encodes other text).
    """
    encoded = []
    for name, value in items:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(
                f"header {name!r}: names and values are str, not "
                f"{type(value if isinstance(name, str) else name).__name__}"
            )
        try:
            encoded.append((name.encode("latin-1"), value.encode("latin-1")))
        except UnicodeEncodeError:
            raise ValueError(
                f"header {name!r}: {value!r} is not latin-1 (RFC 8187 encodes other text)"
            ) from None
    return encoded


@contextlib.asynccontextmanager
async def _within(seconds: float | None, what: str) -> AsyncIterator[None]:
    """``asyncio.timeout(seconds)``, whose TimeoutError says what did not come in time."""
    bound = asyncio.timeout(seconds)
    try:
        async with bound:
            yield
    except TimeoutError as exc:
        if exc.args or not bound.expired():
            # (One that says what it is already; or not this bound's: the
            # application's, raised in the test, asyncio.wait_for()'s say.)
            raise
        raise _late(what, seconds) from None


def _late(what: str, seconds: float | None) -> TimeoutError:
    """The TimeoutError of :func:`_within`: ``what`` did not come within ``seconds``."""
    return TimeoutError(
        f"{what} within {seconds} s (the client's timeout: TestClient(timeout=...), "
        "or the call's; None waits for ever)"
    )


def _split_url(path: str, items: list[tuple[str, str]], schemes: tuple[str, ...]) -> str:
    """The path (and query) of ``path``; a full URL's host goes to ``items`` as its
    ``Host`` unless they have one (``http://testserver/items``, as with httpx's
    and Starlette's clients). A relative path is taken from the root (``items``
    is ``/items``: httpx joins it so to Starlette's ``base_url``).

    Raises:
        ValueError: a scheme not in ``schemes`` (``https``: the client speaks
            plain text), or a user part.
    """
    if path.startswith("/"):
        return path
    url = urllib.parse.urlsplit(path)
    if not url.scheme:
        return "/" + path
    if url.scheme.lower() not in schemes:
        plain = " (TestClient speaks plain text)" if url.scheme.lower() in ("https", "wss") else ""
        raise ValueError(f"a URL here is {' or '.join(schemes)}://, not {path!r}{plain}")
    if not url.netloc or "@" in url.netloc:
        raise ValueError(f"a URL's host is a name and a port, not in {path!r}")
    if not any(name.lower() == "host" for name, _ in items):
        items.insert(0, ("Host", url.netloc))
    return (url.path or "/") + ("?" + url.query if url.query else "")


def _target(path: str, params: ParamsArg = None) -> bytes:
    """The request target: ``path`` percent-encoded as httpx encodes it (spaces,
    non-ASCII characters, ``"<>``, and in the path the backtick, ``{`` and ``}``),
    without its ``#fragment`` (which browsers and HTTP clients keep to themselves),
    ``params`` added to its query string (form-encoded; a list value repeats its
    name; as httpx writes them, True and False are ``true`` and ``false``, None
    an empty value; a query string, str or bytes, parsed first, as httpx takes it)."""
    if not path.startswith("/"):
        raise ValueError(f"the path must start with '/' (or be a URL): {path!r}")
    path, mark, query = path.partition("#")[0].partition("?")
    target = urllib.parse.quote(path, safe=_SAFE_IN_PATH)
    target += mark + urllib.parse.quote(query, safe=_SAFE_IN_QUERY)
    if params:
        if isinstance(params, (bytes, bytearray, memoryview)):
            params = bytes(params).decode("ascii")
        if isinstance(params, str):
            # (A query string, as httpx takes it: parsed, then written as ours.)
            params = urllib.parse.parse_qsl(params, keep_blank_values=True)
        pairs = params.items() if isinstance(params, Mapping) else params
        texts = [
            (name, _param_text(one))
            for name, value in pairs
            for one in (value if isinstance(value, (list, tuple)) else [value])
        ]
        query = urllib.parse.urlencode(texts)
        if query:
            if target.endswith("?"):
                target += query  # (after an empty query, no "&": as httpx)
            else:
                target += ("&" if "?" in target else "?") + query
    return target.encode("ascii")


def _param_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


#: The statuses ``follow_redirects`` follows, and the most it follows for one request.
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
MAX_REDIRECTS = 20
#: The methods whose request says its Content-Length without a body too (0).
_LENGTH_ALWAYS = frozenset(("POST", "PUT", "PATCH"))
#: The headers of a body, dropped when a redirect turns the request into a GET.
_BODY_HEADERS = frozenset(
    ("content-length", "content-type", "transfer-encoding", "content-encoding")
)


def _host(items: list[tuple[str, str]]) -> str:
    return next((value for name, value in items if name.lower() == "host"), DEFAULT_HOST)


def _url(items: list[tuple[str, str]], target: bytes) -> URL:
    """The URL of a request: its Host and target."""
    return URL(f"http://{_host(items)}{target.decode('ascii')}")


class URL(str):
    """Where a request went (``response.url``): the string
    (``http://testserver/path?query``), with httpx's ``URL``'s parts."""

    __slots__ = ()

    @property
    def scheme(self) -> str:
        return urllib.parse.urlsplit(self).scheme

    @property
    def host(self) -> str:
        """The host, lowercase (without the brackets of an IPv6 address)."""
        return urllib.parse.urlsplit(self).hostname or ""

    @property
    def port(self) -> int | None:
        """The port given, if any and not the scheme's own (as httpx says)."""
        parts = urllib.parse.urlsplit(self)
        port = parts.port
        return None if port == {"http": 80, "https": 443}.get(parts.scheme) else port

    @property
    def path(self) -> str:
        """The path, percent-decoded."""
        return urllib.parse.unquote(urllib.parse.urlsplit(self).path)

    @property
    def raw_path(self) -> bytes:
        """The request target as sent: path and query, percent-encoded."""
        parts = urllib.parse.urlsplit(self)
        target = self[len(f"{parts.scheme}://{parts.netloc}") :].partition("#")[0]
        return (target or "/").encode("ascii")

    @property
    def query(self) -> bytes:
        """The query string as sent (bytes, as httpx gives it)."""
        return urllib.parse.urlsplit(self).query.encode("ascii")

    @property
    def params(self) -> QueryParams:
        """The query's arguments, decoded (httpx's ``url.params``)."""
        return QueryParams(urllib.parse.urlsplit(self).query)


class QueryParams(Mapping[str, str]):
    """A query's arguments, as httpx's ``QueryParams`` gives them: ``params[name]``
    and ``get(name)`` the first value of a name, ``get_list(name)`` all of
    them, ``multi_items()`` every pair (blank values kept), a name's values
    together where it first came."""

    __slots__ = ("_values",)

    def __init__(self, query: str) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
            self._values.setdefault(name, []).append(value)

    def __getitem__(self, name: str) -> str:
        return self._values[name][0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def get_list(self, name: str) -> list[str]:
        """Every value of ``name``, in order (empty if none)."""
        return list(self._values.get(name, ()))

    def multi_items(self) -> list[tuple[str, str]]:
        """Every name and value."""
        return [(name, value) for name, values in self._values.items() for value in values]

    def __str__(self) -> str:
        """The arguments as a query string, form-encoded (as httpx writes them)."""
        return urllib.parse.urlencode(self.multi_items())

    def __repr__(self) -> str:
        return f"QueryParams({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        """The same pairs, whatever their order (httpx's equality)."""
        if not isinstance(other, QueryParams):
            return False
        return sorted(self.multi_items()) == sorted(other.multi_items())

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.multi_items())))


def _on_site(items: list[tuple[str, str]], target: bytes, location: str) -> bytes | None:
    """The request target ``location`` leads to from ``target``, or None if it leaves
    the site (another host, port or scheme: not this client's to reach).

    Read as browsers read it (the WHATWG URL standard): its bytes as UTF-8
    where they are, C0 controls and spaces around it dropped, tabs and line
    breaks in it too, a backslash before its query a ``/`` (``/\\evil.example``
    is another site).
    """
    raw = location.encode("latin-1")  # (the header's bytes, as h11 gave them)
    with contextlib.suppress(UnicodeDecodeError):
        location = raw.decode("utf-8")
    location = location.strip("".join(map(chr, range(0x21)))).translate(_URL_DROPPED)
    end = min((i for i in (location.find("?"), location.find("#")) if i >= 0), default=None)
    location = location[:end].replace("\\", "/") + (location[end:] if end is not None else "")
    base = _url(items, target)
    here = _origin(urllib.parse.urlsplit(base))
    url = urllib.parse.urlsplit(urllib.parse.urljoin(base, location))
    if url.scheme != "http" or here is None or _origin(url) != here:
        return None
    return _target((url.path or "/") + ("?" + url.query if url.query else ""))


#: What a URL parser drops wherever it is in a URL: tabs and line breaks.
_URL_DROPPED = str.maketrans("", "", "\t\n\r")


def _origin(url: urllib.parse.SplitResult) -> tuple[str, int] | None:
    """An http URL's host and port (80 if it names none); None if it has a user
    part (never this site) or a port that is no number."""
    if "@" in url.netloc:
        return None
    try:
        return (url.hostname or "").lower(), url.port or 80
    except ValueError:
        return None


def _response_headers(event: h11.Response | h11.InformationalResponse) -> ResponseHeaders:
    return ResponseHeaders.from_lowercase(
        [(name.decode("latin-1"), value.decode("latin-1")) for name, value in event.headers]
    )


class _Ended(ConnectionError):
    """The server closed the connection where h11 needed more of a response."""


async def _next_event(h: h11.Connection, pipe: _Pipe) -> Any:
    """h11's next event, reading from ``pipe`` as long as it needs data.

    Raises:
        _Ended: the server closed the connection in the middle (h11's word for
            it is an error, which malformed bytes also are).
    """
    ended = False
    while True:
        try:
            event = h.next_event()
        except h11.RemoteProtocolError:
            if ended:
                raise _Ended from None
            raise
        if event is h11.NEED_DATA:
            data = await pipe.read()
            ended = not data
            h.receive_data(data)
            continue
        return event


async def _read_response(h: h11.Connection, pipe: _Pipe) -> ClientResponse:
    """The next response on ``pipe``, body included (none for a ``101``).

    Raises:
        ConnectionError: the server closed the connection or sent malformed HTTP.
    """
    response = await _read_head(h, pipe)
    if response.status != 101:
        await _read_body(h, pipe, response)
    return response


async def _read_body(h: h11.Connection, pipe: _Pipe, response: ClientResponse) -> None:
    """Read the body of ``response`` (whose head came) whole into its ``body``.

    Raises:
        ConnectionError: the server closed the connection or sent malformed HTTP.
    """
    decoder = _Decoder(response.headers)
    parts = []
    while (piece := await _next_piece(h, pipe)) is not None:
        response.num_bytes_downloaded += len(piece)
        parts.append(decoder.decode(piece))
    parts.append(decoder.end())
    response.body = b"".join(parts)


async def _read_head(h: h11.Connection, pipe: _Pipe) -> ClientResponse:
    """The next response's head on ``pipe`` (its body not read: ``b""``).

    Raises:
        ConnectionError: the server closed the connection or sent malformed HTTP.
    """
    try:
        while True:
            event = await _next_event(h, pipe)
            if isinstance(event, h11.InformationalResponse) and event.status_code != 101:
                continue  # 100 Continue and the like
            if isinstance(event, (h11.Response, h11.InformationalResponse)):
                return ClientResponse(
                    event.status_code,
                    event.reason.decode("latin-1"),
                    _response_headers(event),
                    b"",
                    "HTTP/" + event.http_version.decode("ascii", "replace"),
                )
            raise ConnectionError("the server closed the connection without a response")
    except _Ended:
        raise ConnectionError("the server closed the connection without a response") from None
    except h11.RemoteProtocolError as exc:
        raise ConnectionError(f"malformed HTTP response: {exc}") from None


async def _next_piece(h: h11.Connection, pipe: _Pipe) -> bytes | None:
    """The next piece of a response's body on ``pipe``, as it came; None at its end.

    Raises:
        ConnectionError: the server closed the connection within the response,
            or sent malformed HTTP.
    """
    try:
        event = await _next_event(h, pipe)
    except _Ended:
        raise ConnectionError("the server closed the connection within a response") from None
    except h11.RemoteProtocolError as exc:
        raise ConnectionError(f"malformed HTTP response: {exc}") from None
    if isinstance(event, h11.Data):
        return bytes(event.data)
    if isinstance(event, h11.EndOfMessage):
        return None
    raise ConnectionError("the server closed the connection within a response")


#: What a request accepts unless its headers say: what :class:`_Decoder` undoes.
ACCEPT_ENCODING = "gzip, deflate"


class _Decoder:
    """Undoes a response's ``Content-Encoding`` (gzip, deflate; the last one
    applied first) piece by piece, as httpx does; one this client does not
    know (``br``, say) leaves the body as it came. The headers stay as sent.

    ``decode()`` each piece, then ``end()``; either raises ConnectionError
    for a body that is not what its encoding says.
    """

    def __init__(self, headers: Headers) -> None:
        codings = [
            coding.strip(" \t").lower()
            for value in headers.getall("content-encoding")
            for coding in value.split(",")
        ]
        codings = [coding for coding in codings if coding not in ("", "identity")]
        if any(coding not in ("gzip", "x-gzip", "deflate") for coding in codings):
            codings = []
        self._codings = codings[::-1]
        # (deflate: zlib's format, as RFC 9110 says; raw, as some servers send
        # it, if its first bytes are not zlib's.)
        self._inflaters = [
            zlib.decompressobj(zlib.MAX_WBITS if coding == "deflate" else 16 + zlib.MAX_WBITS)
            for coding in self._codings
        ]
        self._fed = [False] * len(self._codings)
        #: A deflate layer's first byte, until a second tells its format.
        self._first = [b""] * len(self._codings)

    def decode(self, data: bytes) -> bytes:
        for layer in range(len(self._codings)):
            if not data:
                break
            data = self._inflate(layer, data)
        return data

    def end(self) -> bytes:
        """What the inflaters still hold (and a check that each stream ended)."""
        data = b""
        for layer in range(len(self._codings)):
            if data:
                data = self._inflate(layer, data)
            if not self._fed[layer]:
                if self._first[layer]:
                    raise self._broken(layer, "cut short")
                return data  # (no body at all: a HEAD's, a 204)
            inflater = self._inflaters[layer]
            data += inflater.flush()
            if not inflater.eof:
                raise self._broken(layer, "cut short")
        return data

    def _inflate(self, layer: int, data: bytes) -> bytes:
        if self._codings[layer] == "deflate" and not self._fed[layer]:
            data = self._first[layer] + data
            if len(data) < 2:
                self._first[layer] = data  # (a zlib header is two bytes)
                return b""
            self._first[layer] = b""
            if data[0] & 0x0F != 8 or (data[0] << 8 | data[1]) % 31:
                self._inflaters[layer] = zlib.decompressobj(-zlib.MAX_WBITS)  # (no zlib header)
        self._fed[layer] = True
        try:
            return self._inflaters[layer].decompress(data)
        except zlib.error as exc:
            raise self._broken(layer, str(exc)) from None

    def _broken(self, layer: int, why: str) -> ConnectionError:
        return ConnectionError(
            f"malformed HTTP response: its body is not the {self._codings[layer]} its "
            f"Content-Encoding says ({why})"
        )


# -------------------------------------------------------------- WebSockets

_TEXT = Opcode.TEXT
_BINARY = Opcode.BINARY
_CONTINUATION = Opcode.CONTINUATION


class ClientWebSocket:
    """The client's side of a WebSocket connection to the server under test.

    Messages are ``str`` (text) or ``bytes`` (binary). Every wait is bounded by
    ``timeout`` (the client's, unless a call gives its own) and raises
    :class:`TimeoutError` past it, so a test never hangs.

    Received messages are queued without limit; pings are answered as they
    arrive, whether or not the test reads. A close frame from the server is
    answered at once; :attr:`close_code` and :attr:`close_reason` then say what
    the server sent (1006 if the connection was lost without one).

    Attributes:
        path: the path it was opened with.
        response: the ``101`` response (its headers: ``response.headers``).
        subprotocol: the subprotocol the server chose, or None.
        compression: ``"deflate"`` when permessage-deflate was agreed, else None.
        close_code: the code of the server's close frame once it came (None before).
        close_reason: its reason (None before).
        pings_received: how many pings the server sent (each was answered).
        bytes_sent, bytes_received: bytes on the wire after the handshake.
    """

    def __init__(
        self,
        pipe: _Pipe,
        path: str,
        response: ClientResponse,
        *,
        subprotocol: str | None,
        deflate: PerMessageDeflate | None,
        timeout: float | None,
        received: bytes = b"",
        raise_failure: Callable[[], None] = lambda: None,
        server_protocol: asyncio.BaseProtocol | None = None,
    ) -> None:
        self._pipe = pipe
        #: The server's protocol of this WebSocket (its handler's task: see _handler_done()).
        self._server_protocol = server_protocol
        #: Raises the application's failure on this connection, if any (see
        #: TestClient's ``raise_server_exceptions``).
        self._raise_failure = raise_failure
        self.loop = pipe.loop
        self.path = path
        self.response = response
        self.subprotocol = subprotocol
        self.compression = "deflate" if deflate is not None else None
        self.timeout = timeout
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.pings_received = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self._deflate = deflate
        self._parser = FrameParser(masked=False, allow_rsv1=deflate is not None)
        self._frame_parts: list[bytes] = []
        self._message_opcode: Opcode | None = None
        self._message_compressed = False
        self._message_parts: list[bytes] = []
        self._messages: collections.deque[str | bytes] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._pong_waiters: dict[bytes, tuple[asyncio.Future[float], float]] = {}
        self._close_sent = False
        self._close_received = False
        #: The close frames received and sent, and whether the server's came
        #: first: what ConnectionClosed's rcvd, sent and rcvd_then_sent say.
        self._rcvd: Close | None = None
        self._sent: Close | None = None
        self._rcvd_first = False
        pipe.on_data = self._data_received
        pipe.on_lost = self._connection_lost
        if received:
            self._data_received(received)
        if pipe.lost:
            self._connection_lost()

    # ------------------------------------------------------------ state

    @property
    def open(self) -> bool:
        """Whether messages can still be sent (no close frame sent or received)."""
        return not (self._close_sent or self._close_received or self._pipe.lost)

    @property
    def closed(self) -> bool:
        """Whether the connection is gone (the server closed TCP, or it was aborted)."""
        return self._pipe.lost

    async def _handler_done(self, timeout: float | None) -> None:
        """Wait (``timeout`` seconds at most) for the server's run on this
        connection (a handler, an ASGI app) to end, so that what it raises
        after the close is raised at the end of the block, as Starlette's
        client waits for its app there.

        One still running then (it waits on something else than its
        WebSocket: a feed it forwards) is cancelled, and given the second the
        server gives its own cancelled handlers: the client's close would
        otherwise wait for it as long again.
        """
        task = getattr(self._server_protocol, "handler_task", None)
        if task is None or task.done():
            return
        await asyncio.wait([task], timeout=timeout)
        if not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=CANCELLED_GRACE)

    def _check_open(self) -> None:
        if self.close_code is not None:
            self._raise_failure()
            raise self._closed()
        if self._close_sent:
            raise InvalidState("close() was called: nothing more can be sent")

    # ---------------------------------------------------------- sending

    def _write_frame(
        self,
        opcode: int,
        payload: bytes | bytearray | memoryview,
        fin: bool = True,
        rsv1: bool = False,
    ) -> None:
        frame = serialize_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=os.urandom(4))
        self.bytes_sent += len(frame)
        self._pipe.write(frame)

    async def send(self, message: str | BytesLike, *, compress: bool = True) -> None:
        """Send a text (``str``) or binary message (bytes, or any bytes-like object).

        With permessage-deflate agreed it is compressed unless ``compress`` is
        false.

        Raises:
            ConnectionClosed: the server closed the connection (its code and reason).
            InvalidState: :meth:`close` was called.
        """
        await self.send_fragments([message], compress=compress)

    async def send_fragments(
        self,
        fragments: Iterable[str | BytesLike],
        *,
        compress: bool = True,
    ) -> None:
        """Send one message in several frames, one per fragment (all ``str``, or
        all bytes-like)."""
        pieces = list(fragments)
        if not pieces:
            raise ValueError("a message needs at least one fragment")
        text = isinstance(pieces[0], str)
        if any(isinstance(piece, str) != text for piece in pieces):
            raise TypeError("the fragments of one message are all str or all bytes")
        self._check_open()
        # Every piece encoded before the first frame goes: one that cannot be
        # (a lone surrogate) must not leave half a message on the wire.
        # A bytes-like object other than bytes as its bytes: a memoryview's
        # len() counts items (4 bytes each for an array of ints), which
        # would be the frame's length.
        payloads = [_payload(piece) for piece in pieces]
        deflate = self._deflate if compress else None
        if deflate is not None:
            deflate.start_deflate(len(payloads[0]))
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            opcode = (_TEXT if text else _BINARY) if i == 0 else _CONTINUATION
            if deflate is not None:
                payload = deflate.deflate(payload, i == last)
            self._write_frame(opcode, payload, i == last, deflate is not None and i == 0)
        await self._drain()

    async def send_json(self, data: Any, mode: JsonMode = "text") -> None:
        """Send ``data`` as JSON: a text message (``mode="binary"``: a binary
        one, its UTF-8), as Starlette's test client does: compact, and
        non-ASCII characters as they are, so a handler reads the same text."""
        text = jsonlib.dumps(data, separators=(",", ":"), ensure_ascii=False)
        await self.send(text.encode() if _json_mode(mode) == "binary" else text)

    async def send_text(self, data: str) -> None:
        """Send a text message (Starlette's test client's name; :meth:`send` takes both).

        Raises:
            TypeError: ``data`` is not a str.
        """
        if not isinstance(data, str):
            raise TypeError(f"send_text() takes a str, not {type(data).__name__}")
        await self.send(data)

    async def send_bytes(self, data: BytesLike) -> None:
        """Send a binary message (Starlette's test client's name; :meth:`send` takes both).

        Raises:
            TypeError: ``data`` is not bytes-like.
        """
        if isinstance(data, str):
            raise TypeError(f"send_bytes() takes bytes, not {type(data).__name__}")
        await self.send(data)

    async def _drain(self) -> None:
        async with _within(self.timeout, "the server took none of what was sent"):
            await self._pipe.drain()

    async def ping(
        self,
        data: str | BytesLike | None = None,
        *,
        timeout: float | None = None,
    ) -> float:
        """Send a ping and wait for its pong; return the round trip, in seconds.

        ``data`` is the payload (a str goes as UTF-8); without it, a random one.

        Raises:
            TypeError: ``data`` is neither str nor bytes-like.
            ValueError: ``data`` is longer than a control frame may carry (125 bytes).
            ConcurrencyError: a ping with the same ``data`` is still waiting for its pong.
            ConnectionClosed: the connection closed before the pong came (with
                TestClient's ``raise_server_exceptions``, what the application
                raised on this connection comes instead).
        """
        payload = os.urandom(4) if data is None else control_payload(data, "ping")
        self._check_open()
        if payload in self._pong_waiters:
            raise ConcurrencyError("a ping with this payload is already waiting for its pong")
        waiter: asyncio.Future[float] = self.loop.create_future()
        self._pong_waiters[payload] = (waiter, self.loop.time())
        try:
            self._write_frame(Opcode.PING, payload)
            async with _within(self.timeout if timeout is None else timeout, "no pong came"):
                try:
                    return await waiter
                except ConnectionClosed:
                    self._raise_failure()  # (what the application raised, instead)
                    raise
        finally:
            if self._pong_waiters.get(payload, (None,))[0] is waiter:
                del self._pong_waiters[payload]  # timed out or cancelled: the payload is free

    async def close(
        self, code: int = 1000, reason: str | None = "", *, timeout: float | None = None
    ) -> None:
        """The closing handshake: send a close frame, wait for the server's and for TCP's end.

        ``code`` and ``reason`` are sent as given (a test may send invalid
        ones on purpose; a ``reason`` of None, Starlette's test client's
        default, is none). Does nothing more once the connection is closed. If
        the server does not close within ``timeout``, the connection is aborted
        (:attr:`close_code` is then 1006 unless a close frame came).
        """
        pipe = self._pipe
        if not pipe.lost and not self._close_sent:
            if not 0 <= code <= 0xFFFF:
                raise ValueError(f"a close code is two bytes: 0 to 65535, not {code}")
            payload = serialize_close(code, reason or "")  # (a lone surrogate raises here)
            self._close_sent = True
            self._sent = Close(code, reason or "")
            self._write_frame(Opcode.CLOSE, payload)
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                await asyncio.shield(pipe.closed)
        except TimeoutError:
            pipe.abort()
            await pipe.closed

    async def wait_closed(self, timeout: float | None = None) -> None:
        """Wait until the server has closed the connection (e.g. after closing it with 1008)."""
        async with _within(
            self.timeout if timeout is None else timeout, "the server did not close the connection"
        ):
            await asyncio.shield(self._pipe.closed)

    # -------------------------------------------------------- receiving

    async def receive(self, timeout: float | None = None) -> str | bytes:
        """The next message (``str`` or ``bytes``).

        Messages that arrived before a close are still returned.

        Raises:
            TimeoutError: none came within ``timeout`` (the connection stays usable).
            ConnectionClosed: the connection is closed and every message was
                received: :class:`~wsserver.ConnectionClosedOK` for 1000, 1001
                or 1005, :class:`~wsserver.ConnectionClosedError` otherwise.
                (With TestClient's ``raise_server_exceptions``, what the
                application raised on this connection comes instead.)
        """
        message = await self._next(timeout)
        if message is None:
            raise self._closed()
        return message

    async def _next(self, timeout: float | None) -> str | bytes | None:
        """The next message; None once the connection is closed and every
        message was received (the application's failure raised first)."""
        if self._waiter is not None:
            raise ConcurrencyError("receive() is already waiting for a message")
        async with _within(self.timeout if timeout is None else timeout, "no message came"):
            while not self._messages:
                if self._close_received or self._pipe.lost:
                    self._raise_failure()
                    return None
                self._waiter = self.loop.create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
        return self._messages.popleft()

    def _closed(self) -> ConnectionClosed:
        """The ConnectionClosed of the connection's close (1006: lost without a
        frame), with the close frames received and sent, as the websockets
        library's."""
        rcvd, sent = self._rcvd, self._sent
        return closed_error(
            1006 if self.close_code is None else self.close_code,
            self.close_reason or "",
            rcvd,
            sent,
            None if rcvd is None or sent is None else self._rcvd_first,
        )

    async def receive_text(self, timeout: float | None = None) -> str:
        """The next message, which must be text."""
        message = await self.receive(timeout)
        if not isinstance(message, str):
            raise TypeError(f"expected a text message, got binary: {message[:80]!r}")
        return message

    async def receive_bytes(self, timeout: float | None = None) -> bytes:
        """The next message, which must be binary."""
        message = await self.receive(timeout)
        if not isinstance(message, bytes):
            raise TypeError(f"expected a binary message, got text: {message[:80]!r}")
        return message

    async def receive_json(
        self, timeout: float | None = None, *, mode: JsonMode | None = None
    ) -> Any:
        """The next message, parsed as JSON; with ``mode`` (``"text"`` or
        ``"binary"``, as Starlette's test client takes it), one of that kind
        (else ``TypeError``).

        Raises:
            ValueError: ``mode`` is neither (before any message is taken).
            TypeError: ``timeout`` is a str: Starlette's ``receive_json("binary")``,
                whose first argument is the mode, is ``receive_json(mode="binary")``.
        """
        if isinstance(timeout, str):
            raise TypeError(
                f"receive_json()'s first argument is its timeout: receive_json(mode={timeout!r})"
            )
        if mode is not None:
            mode = _json_mode(mode)  # (before a message is taken)
        message = await self.receive(timeout)
        if mode is not None and isinstance(message, str) != (mode == "text"):
            kind = "text" if isinstance(message, str) else "binary"
            raise TypeError(f"expected a {mode} message, received a {kind} one: {message!r:.80}")
        return jsonlib.loads(message)

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self

    async def __anext__(self) -> str | bytes:
        """The next message; iteration ends on a normal close (1000, 1001, 1005).

        Raises:
            ConnectionClosedError: the server closed with another code.
        """
        # (Not by catching receive()'s ConnectionClosedOK: the application's
        # own, another connection's escaping a handler, is raised there too.)
        message = await self._next(None)
        if message is not None:
            return message
        closed = self._closed()
        if isinstance(closed, ConnectionClosedOK):
            raise StopAsyncIteration
        raise closed

    # ------------------------------------------------- the server's frames

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _data_received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        if self._close_received:
            return  # nothing counts after a close frame
        parser = self._parser
        parser.feed(data)
        while True:
            try:
                piece = parser.next_piece()
                if piece is None:
                    return
                opcode, fin, rsv1, payload, length, offset = piece
                if offset + len(payload) < length:
                    self._frame_parts.append(payload)  # more of this frame to come
                    continue
                if self._frame_parts:
                    self._frame_parts.append(payload)
                    payload = b"".join(self._frame_parts)
                    self._frame_parts.clear()
                self._frame_received(opcode, fin, rsv1, payload)
            except ProtocolError as exc:
                self._fail(exc.close_code, exc.reason)
                return
            if self._close_received:
                return

    def _frame_received(self, opcode: Opcode, fin: bool, rsv1: bool, payload: bytes) -> None:
        if opcode is Opcode.CLOSE:
            code, reason = parse_close(payload)
            self._close_received = True
            self.close_code, self.close_reason = code, reason
            self._rcvd = Close(code, reason)
            if not self._close_sent:
                self._close_sent = True
                self._sent, self._rcvd_first = self._rcvd, True
                self._write_frame(Opcode.CLOSE, payload)  # the echo
            self._wake()
            return  # the server closes TCP next
        if opcode is Opcode.PING:
            self.pings_received += 1
            if not self._close_sent:
                self._write_frame(Opcode.PONG, payload)
            return
        if opcode is Opcode.PONG:
            found = self._pong_waiters.pop(payload, None)
            if found is not None and not found[0].done():
                found[0].set_result(self.loop.time() - found[1])
            return
        if opcode is _CONTINUATION:
            if self._message_opcode is None:
                raise ProtocolError("continuation frame without a message to continue")
            if rsv1:
                raise ProtocolError("RSV1 set on a continuation frame")
            self._message_parts.append(payload)
        else:
            if self._message_opcode is not None:
                raise ProtocolError("a new message inside a fragmented one")
            self._message_opcode = opcode
            self._message_compressed = rsv1
            self._message_parts = [payload]
        if not fin:
            return
        data = b"".join(self._message_parts)
        kind = self._message_opcode
        self._message_opcode = None
        self._message_parts = []
        if self._message_compressed:
            assert self._deflate is not None  # the parser refuses RSV1 otherwise
            self._deflate.start_inflate()
            data = self._deflate.inflate(data, True, 0)
        if kind is _TEXT:
            try:
                self._messages.append(data.decode("utf-8"))
            except UnicodeDecodeError:
                raise ProtocolError("invalid UTF-8 in a text message", 1007) from None
        else:
            self._messages.append(data)
        self._wake()

    def _fail(self, code: int, reason: str) -> None:
        """The server broke the protocol: close with ``code`` and drop the connection.

        :meth:`receive` then raises ``ConnectionClosedError(code, reason)``.
        """
        if not self._close_sent:
            self._close_sent = True
            self._sent = Close(code, reason)
            self._write_frame(Opcode.CLOSE, serialize_close(code, reason))
        self._close_received = True
        self.close_code, self.close_reason = code, reason
        if not self._pipe.lost:
            self._pipe.transport.close()
        self._wake()

    def _connection_lost(self) -> None:
        if self.close_code is None:
            self.close_code, self.close_reason = 1006, ""
        self._wake()
        for waiter, _ in self._pong_waiters.values():
            if not waiter.done():
                waiter.set_exception(self._closed())
        self._pong_waiters.clear()

    def __repr__(self) -> str:
        state = "open" if self.open else f"closed {self.close_code}"
        return f"<ClientWebSocket {self.path} {state}>"


def _client_deflate(values: list[str], offered: bool) -> PerMessageDeflate | None:
    """The permessage-deflate agreement the 101's extension header states, from our side.

    :class:`PerMessageDeflate` is written for the server: its ``server_*``
    parameters are for the side that uses the object, ``client_*`` for the
    peer. The client's object therefore swaps the agreement's two sides.

    Raises:
        InvalidHandshake: an extension the client did not offer, or parameters
            that are not RFC 7692's.
    """
    try:
        extensions = parse_extensions(values)
    except ValueError as exc:
        raise InvalidHandshake(f"malformed Sec-WebSocket-Extensions: {exc}") from None
    if not extensions:
        return None
    if not offered or len(extensions) != 1 or extensions[0][0] != "permessage-deflate":
        raise InvalidHandshake(f"extensions the client did not offer: {values}")
    ours = {"no_context_takeover": False, "bits": 15}
    theirs = {"no_context_takeover": False, "bits": 15}
    for name, value in extensions[0][1]:
        side = theirs if name.startswith("server_") else ours
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            side["no_context_takeover"] = True
        elif name in ("server_max_window_bits", "client_max_window_bits"):
            if value is None or not value.isdigit() or not 8 <= int(value) <= 15:
                raise InvalidHandshake(f"invalid {name} in {values}")
            side["bits"] = int(value)
        else:
            raise InvalidHandshake(f"unknown permessage-deflate parameter {name!r}")
    return PerMessageDeflate(
        server_no_context_takeover=bool(ours["no_context_takeover"]),
        client_no_context_takeover=bool(theirs["no_context_takeover"]),
        server_window_bits=int(ours["bits"]),
        client_window_bits=int(theirs["bits"]),
        settings=DeflateSettings(min_size=0),
    )


def _payload(piece: object) -> bytes | bytearray:
    """A message fragment's payload: a str's UTF-8, bytes or a bytearray as it
    is, another bytes-like object's bytes; TypeError for anything else."""
    if isinstance(piece, str):
        return piece.encode("utf-8")
    if isinstance(piece, bytes | bytearray):
        return piece
    try:
        return bytes(memoryview(piece))  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"send str (text) or bytes-like (binary), not {type(piece).__name__}"
        ) from None


def _json_mode(mode: object) -> JsonMode:
    if mode == "text":
        return "text"
    if mode == "binary":
        return "binary"
    raise ValueError(f'mode is "text" or "binary", not {mode!r}')


class _Connecting:
    """What :meth:`TestClient.websocket` returns: await it, or ``async with`` it."""

    def __init__(self, open: Callable[[], Any], close_timeout: float) -> None:
        self._open = open
        #: How long leaving the block waits for the closing handshake when the
        #: client's timeout is None (a server that stopped reading never answers).
        self._close_timeout = close_timeout
        self._ws: ClientWebSocket | None = None

    def __await__(self) -> Generator[Any, None, ClientWebSocket]:
        return cast(Generator[Any, None, ClientWebSocket], self._open().__await__())

    async def __aenter__(self) -> ClientWebSocket:
        self._ws = await self._open()
        return self._ws

    def __enter__(self) -> NoReturn:
        raise TypeError(
            "a TestClient's WebSocket is async: async with client.websocket(path) as ws; "
            "in a plain test function, the websocket() of a "
            "wsserver.testing_sync.SyncTestClient takes a with block"
        )

    def __exit__(self, *exc_info: object) -> None:
        """(Never reached: :meth:`__enter__` raises.)"""

    async def __aexit__(self, exc_type: object, *exc_info: object) -> None:
        # A block that failed gets its error at once: the connection is
        # aborted rather than closed with a handshake.
        ws = self._ws
        if ws is not None:
            limit = self._close_timeout if ws.timeout is None else ws.timeout
            await ws.close(timeout=0 if exc_type is not None else limit)
            if exc_type is None:
                await ws._handler_done(limit)
                ws._raise_failure()


# ---------------------------------------------------------------- the client


async def _write_request(
    h: h11.Connection,
    pipe: _Pipe,
    method: str,
    target: bytes,
    items: list[tuple[str, str]],
    whole: bytes | None,
    pieces: Iterable[bytes] | AsyncIterable[bytes] | None,
) -> None:
    """Send a request (made by :func:`_prepared`) on ``pipe``: a body of pieces
    as the server takes them, stopped if the server ended its side first."""
    out = h.send(h11.Request(method=method, target=target, headers=_encode_headers(items)))
    if whole:
        out = (out or b"") + (h.send(h11.Data(data=whole)) or b"")
    if pieces is not None:
        pipe.write(out or b"")
        out = b""
        async for piece in _pieces(pieces):
            if pipe.ended or pipe.transport.is_closing():
                # The server answered and ended its side before the body's
                # end: its answer is read next.
                return
            if piece:
                pipe.write(h.send(h11.Data(data=piece)) or b"")
                await pipe.drain()  # (as the server takes them)
    pipe.write((out or b"") + (h.send(h11.EndOfMessage()) or b""))


def _prepared(
    method: str,
    path: str,
    body: Body,
    content: Body,
    json: Any,
    data: FormArg,
    files: FilesArg,
    headers: HeadersArg,
    params: ParamsArg,
    auth: tuple[str | bytes, str | bytes] | None,
) -> tuple[
    str,
    bytes,
    list[tuple[str, str]],
    set[str],
    bytes | None,
    Iterable[bytes] | AsyncIterable[bytes] | None,
]:
    """A request as :meth:`TestClient.request` takes it, made ready to send: its
    method, target, headers (and their names, lowercase), and its body, whole
    or in pieces."""
    items = _header_list(headers)
    path = _split_url(path, items, ("http",))
    names = {name.lower() for name, _ in items}
    if content is not None:
        if body is not None:
            raise ValueError("give body or content (httpx's name for it), not both")
        body = content
    if auth is not None:
        if not (isinstance(auth, tuple) and len(auth) == 2):
            raise TypeError("auth= is a (user, password) pair, of str or bytes")
        user, password = (p.encode() if isinstance(p, str) else bytes(p) for p in auth)
        credentials = base64.b64encode(user + b":" + password).decode("ascii")
        # (As httpx does: it replaces an Authorization the headers give.)
        items = [(n, v) for n, v in items if n.lower() != "authorization"]
        items.append(("Authorization", f"Basic {credentials}"))
        names.add("authorization")
    if json is not None and body is not None:
        raise ValueError("give body or json, not both")
    if (data is not None or files is not None) and (json is not None or body is not None):
        raise ValueError("give data and files, or body, or json: not both")
    fields = _form_fields(data) if data is not None else []
    parts = _form_files(files)
    if fields or parts:  # (none: no body, nor its type, as httpx sends it)
        # (httpx's (None, value) alone is multipart too, as files= makes it.)
        multipart = bool(parts)
        boundary = None
        if "content-type" in names and files:
            # A multipart/form-data type with a boundary: its parts have that
            # boundary, as httpx writes them; any other is the test's mistake.
            given = next(value for name, value in items if name.lower() == "content-type")
            kind, params = media_type(given) if isinstance(given, str) else ("", {})
            boundary = params.get("boundary") if kind == "multipart/form-data" else None
            if boundary is None or not is_boundary(boundary):
                raise ValueError(
                    "files= makes its own Content-Type (with its boundary), unless "
                    f"headers give multipart/form-data with a valid boundary: {given!r}"
                )
        content_type, body = encode_form(fields, parts, multipart=multipart, boundary=boundary)
        if "content-type" not in names:
            items.append(("Content-Type", content_type))
    pieces: Iterable[bytes] | AsyncIterable[bytes] | None = None
    if isinstance(body, Mapping):
        raise TypeError("body= is bytes, text or pieces of bytes: a mapping goes as json=")
    if body is not None and not isinstance(body, (str, bytes, bytearray, memoryview)):
        pieces, body = body, None
        if "content-length" not in names and "transfer-encoding" not in names:
            items.append(("Transfer-Encoding", "chunked"))
    if json is not None:
        # (As httpx sends it: compact, non-ASCII as it is, no NaN.)
        body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        if "content-type" not in names:
            items.append(("Content-Type", "application/json"))
    whole = body.encode("utf-8") if isinstance(body, str) else body
    if whole is not None:
        whole = bytes(whole)
    if "host" not in names:
        items.insert(0, ("Host", DEFAULT_HOST))
    if "accept" not in names:
        items.append(("Accept", "*/*"))  # (httpx's)
    if "accept-encoding" not in names:
        items.append(("Accept-Encoding", ACCEPT_ENCODING))  # (httpx's; undone as it)
    if "user-agent" not in names:
        items.append(("User-Agent", USER_AGENT))
    if "content-length" not in names and "transfer-encoding" not in names and pieces is None:
        if whole is not None:
            items.append(("Content-Length", str(len(whole))))
        elif method.upper() in _LENGTH_ALWAYS:
            # (RFC 9110 8.6: even when it is 0, as httpx sends it.)
            items.append(("Content-Length", "0"))
    return method.upper(), _target(path, params), items, names, whole, pieces


class TestClient:
    """A real server for ``app`` (a :class:`~wsserver.Router` or an ASGI app), and clients.

    ``async with TestClient(app, **settings) as client:`` starts
    ``serve(app, listen=False, **settings)`` (any setting of
    :func:`~wsserver.serve`: ``compression="deflate"``, ``max_size=...``,
    ``ping_interval=...``, ``config=...``, ``broker=...``) and closes it on exit,
    gracefully, as a deployment would; an ASGI app's lifespan runs. The server
    is ``client.server``, for inspecting it from the test.

    Cookies are kept as a browser keeps them for one site: ``client.cookies``
    (name -> value) takes what responses set (``Set-Cookie``; one that
    ``Max-Age`` or ``Expires`` ends is dropped when it ends, one of over 4096
    characters ignored, as browsers ignore it) and goes with every
    next request and WebSocket upgrade as its ``Cookie`` header, unless the
    request's ``headers`` have one. ``Path``, ``Domain`` and ``Secure`` are
    not checked: there is one site, and every cookie goes to all of it.

    What the application raises is raised in the test, as Starlette's client
    does (``raise_server_exceptions``, on unless turned off): a request whose
    handler raised raises that exception rather than returning the 500; a
    WebSocket whose handler raised raises it where the 1011 would show
    (``receive()``, ``send()``, the end of its ``async with`` block), and an
    upgrade refused because the application failed raises it rather than
    :class:`HandshakeDenied`. A failure without an exception (an ASGI app that
    returned without a response) is a RuntimeError saying so. A failure seen
    by none of those (the connection was over) is raised by :meth:`close`, on
    the way out of the ``async with`` block, unless the block failed. With
    ``raise_server_exceptions=False`` the client sees what a real client
    would: the 500, the 1011 (the server logs the error either way).

    Args:
        timeout: seconds any one wait may take before raising TimeoutError (the
            start's too: an ASGI lifespan startup, a Router's on_startup hooks).
        cookies: the cookies to start with.
        raise_server_exceptions: raise the application's failures in the test.
        follow_redirects: whether requests follow redirects unless they say
            (False, as httpx's; Starlette's client says True).
    """

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(
        self,
        app: Any,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        cookies: Mapping[str, str] | None = None,
        raise_server_exceptions: bool = True,
        follow_redirects: bool = False,
        **settings: Any,
    ) -> None:
        if isinstance(settings.get("headers"), Mapping):
            # (Starlette's client takes a mapping there: the requests' headers.)
            raise TypeError(
                "headers= is the server's setting: headers added to every response, a list "
                "of (name, value) pairs; a request's own go with it: client.get(path, headers=...)"
            )
        if "config" not in settings:
            # The test's settings alone: not the WEBSOCKET_* variables of the
            # shell running the tests (a WEBSOCKET_SSL_CERTFILE there failed
            # every test), as Starlette's client reads no environment.
            given = {n: settings.pop(n) for n in list(settings) if n in _CONFIG_FIELDS}
            defaults = None if isinstance(app, Router) else ASGI_DEFAULTS
            settings["config"] = Config.from_sources({}, defaults=defaults, **given)
        # (A context is refused by start(), as the TLS settings are: not by
        # serve()'s check first, whose refusal of a context no server can use
        # would send the test's author to make one this client refuses too.)
        self._ssl_given = settings.pop("ssl", None) is not None
        self._app = app
        self.server: Server = serve(app, listen=False, **settings)
        self.timeout = timeout
        #: Whether a request follows redirects when it does not say (its ``follow_redirects``).
        self.follow_redirects = follow_redirects
        self._cookies = Cookies(cookies or {})
        self._headers = DefaultHeaders()
        self._pipes: set[_Pipe] = set()
        self._websockets: set[ClientWebSocket] = set()
        self._started = False
        #: The server's transport of each connection -> our pipe (the server
        #: names the transport when it reports a failure, closed or not).
        #: (Weak values: a pipe names its transport, which would keep a weak key alive.)
        self._server_ends: weakref.WeakValueDictionary[asyncio.BaseTransport, _Pipe] = (
            weakref.WeakValueDictionary()
        )
        #: The application's failures not raised yet, each with its connection
        #: (None: one the client no longer has, or never had).
        self._failures: list[tuple[_Pipe | None, BaseException]] = []
        if raise_server_exceptions:
            self.server.app_failure_listeners.append(self._app_failed)

    @property
    def app(self) -> Any:
        """The application given, as Starlette's client has it (FastAPI's
        ``client.app.dependency_overrides``)."""
        return self._app

    @property
    def cookies(self) -> Cookies:
        """The cookies sent with every request and upgrade (those responses set
        are kept, as a browser keeps them): a dict, with httpx's ``set()`` and
        ``delete()``; one assigned (a mapping) is taken as such."""
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: Mapping[str, str]) -> None:
        self._cookies = Cookies(cookies)

    @property
    def headers(self) -> DefaultHeaders:
        """Headers sent with every request, upgrade and stream, under their own
        ``headers`` (Starlette's and httpx's ``client.headers``: ``update()``,
        ``[name] = value``, ``del``; names in any case); one assigned (a
        mapping or pairs) is taken as such. Not the server's ``headers``
        setting, which the constructor's keyword gives."""
        return self._headers

    @headers.setter
    def headers(self, headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
        self._headers = DefaultHeaders(headers)

    async def start(self) -> TestClient:
        """Start the server (an ASGI app's lifespan startup included).

        Raises:
            RuntimeError: this client was closed (a server is started once:
                make a new TestClient).
        """
        if self.server.ssl is not None or self._ssl_given:
            raise ValueError("TestClient speaks plain text: leave the TLS settings out")
        if self.server.closing:
            raise RuntimeError("this TestClient was closed: make a new one")
        # (Bounded as every wait is: a startup waiting on what never comes,
        # a database, would hang the test; cancelled, the start is undone.)
        async with _within(self.timeout, "the application's startup did not complete"):
            await self.server.start()
        self._started = True
        return self

    async def close(self, timeout: float | None = None, *, raise_failures: bool = True) -> None:
        """Close the WebSockets still open (1000), then the server, gracefully.

        The server's handlers and ASGI tasks get ``timeout`` seconds to end
        (by default the client's timeout, or ``shutdown_timeout`` if shorter);
        those still running are then cancelled. The WebSockets' closing
        handshakes, all at once, get as long (a server that stopped reading
        never answers one): those not done are aborted.

        Then raises the first of the application's failures not raised yet
        (``raise_server_exceptions``), unless ``raise_failures`` is False (a
        test that failed: its own error is the one to see).
        """
        config = self.server.config
        if timeout is None:
            timeout = config.shutdown_timeout
            if self.timeout is not None:
                timeout = min(self.timeout, timeout)
        if self.timeout is not None:
            # The on_shutdown hooks and the lifespan shutdown too, each as a
            # handler and its closing handshake (rather than the server's 20 s).
            bound = min(self.timeout, config.shutdown_timeout)
            self.server.services_limit = bound + min(bound, config.close_timeout)
        closing = [ws.close(timeout=timeout) for ws in list(self._websockets)]
        await asyncio.gather(*closing, return_exceptions=True)
        await self.server.close(timeout)
        for pipe in list(self._pipes):
            pipe.abort()
        if raise_failures:
            self._raise_failure(None)

    async def __aenter__(self) -> TestClient:
        return await self.start()

    # (Starlette's client is entered with a plain ``with``: a test ported by
    # its import alone is told what to write, not that there is no protocol.)
    def __enter__(self) -> NoReturn:
        raise TypeError(
            "TestClient is async: async with TestClient(app) as client, in an async test; "
            "in a plain test function, wsserver.testing_sync.SyncTestClient(app) takes "
            "a with block, as Starlette's TestClient does"
        )

    def __exit__(self, *exc_info: object) -> None:
        """(Never reached: :meth:`__enter__` raises.)"""

    async def __aexit__(self, exc_type: object, *exc_info: object) -> None:
        # A test that failed gets its error at once: what is still running on
        # the server's side is cancelled rather than waited for, and its own
        # error is the one to see.
        failed = exc_type is not None
        await self.close(0 if failed else None, raise_failures=not failed)

    def _app_failed(
        self, problem: str, exc: BaseException | None, transport: asyncio.BaseTransport | None
    ) -> None:
        """The server's report of an application's failure: kept for the test to raise."""
        # (Not a CancelledError of the app's in the test, which is not cancelled,
        # nor a StopIteration, which would end the test's iteration.)
        if not isinstance(exc, Exception) or isinstance(exc, (StopIteration, StopAsyncIteration)):
            failure: BaseException = RuntimeError(problem if exc is None else f"{problem}: {exc!r}")
            failure.__cause__ = exc
        else:
            failure = exc
        pipe = self._server_ends.get(transport) if transport is not None else None
        self._failures.append((pipe, failure))

    def _raise_failure(self, pipe: _Pipe | None) -> None:
        """Raise the application's first failure on ``pipe`` not raised yet (None: any).

        The others on ``pipe`` (None: all) are dropped: the first is the one
        to see, and the server logged each.
        """
        for where, failure in self._failures:
            if pipe is None or where is pipe:
                kept = [f for f in self._failures if f[0] is not pipe] if pipe is not None else []
                self._failures = kept
                raise failure

    async def _open_pipe(self) -> _Pipe:
        """A new connection to the server: one end of a socket pair each.

        Raises:
            ConnectionRefusedError: the server is closed (as a port would be).
        """
        if self.server.closing:
            raise ConnectionRefusedError("the server is closed")
        if not self._started:
            raise RuntimeError(
                "the TestClient is not started: async with TestClient(app) as client "
                "(or await client.start())"
            )
        if asyncio.get_running_loop() is not self.server.loop:
            # (Else asyncio's "attached to a different loop", from deep in
            # create_connection(), the server half-way through taking it.)
            raise RuntimeError(
                "this TestClient runs in another event loop than this call's: its server "
                "started in one loop and is called from another (a fixture of a wider "
                "scope than its test's loop: give the test the fixture's loop, "
                "pytest-asyncio's loop_scope=, or start the client in the test's)"
            )
        ours, theirs = socket.socketpair()
        try:
            server_end = await self.server.accept_socket(theirs)
        except BaseException:
            ours.close()
            theirs.close()
            raise
        try:
            _, pipe = await asyncio.get_running_loop().create_connection(_Pipe, sock=ours)
        except BaseException:
            ours.close()
            raise
        self._pipes.add(pipe)
        self._server_ends[server_end] = pipe
        pipe.server_end = server_end
        pipe.server_protocol = server_end.get_protocol()
        pipe.closed.add_done_callback(lambda _: self._pipes.discard(pipe))
        if self.server.config.proxy_protocol:
            # (As a balancer's connection would start: one naming no client.)
            pipe.write(b"PROXY UNKNOWN\r\n")
        return pipe

    # ------------------------------------------------------------ HTTP

    def _send_cookies(
        self, items: list[tuple[str, str]], names: set[str], cookies: CookiesArg = None
    ) -> None:
        """Add the ``Cookie`` header of ``client.cookies`` (those that ended
        dropped first) and the request's ``cookies``, which win on a name (as
        httpx merges them, not kept in ``client.cookies``), unless ``names``
        has one."""
        self.cookies._drop_ended()
        sent = dict(self.cookies)
        if cookies is not None:
            sent.update(cookies.items() if isinstance(cookies, Mapping) else cookies)
        if sent and "cookie" not in names:
            items.append(("Cookie", "; ".join(f"{n}={v}" for n, v in sent.items())))

    def _keep_cookies(self, headers: Headers) -> None:
        """Take the cookies a response sets (RFC 6265 5.2), and drop those it expires."""
        for header in headers.getall("set-cookie"):
            cookie = _set_cookie(header)
            if cookie is not None:
                self.cookies._keep(*cookie)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Body = None,
        content: Body = None,
        json: Any = None,
        data: FormArg = None,
        files: FilesArg = None,
        headers: HeadersArg = None,
        cookies: CookiesArg = None,
        params: ParamsArg = None,
        auth: tuple[str | bytes, str | bytes] | None = None,
        timeout: float | None = None,
        follow_redirects: bool | None = None,
    ) -> ClientResponse:
        """Send one HTTP/1.1 request on a new connection; return the response.

        ``path`` may hold a query string; ``params`` are added to it. A full
        URL (``http://testserver/items``) is its path, its host the
        ``Host`` header unless ``headers`` have one. ``json``
        sends that value as a JSON body (with ``Content-Type:
        application/json`` unless ``headers`` has one). ``data`` sends form
        fields (a mapping or pairs of str; a list value repeats its name)
        URL-encoded, and with ``files`` (a mapping or pairs: a name and the
        file's content, or ``(filename, content[, content type])``; content
        alone named after its open file, else ``upload``, as httpx names it;
        the type guessed from the name when not given) as ``multipart/form-data``, as a
        browser's form does (with the boundary of a ``multipart/form-data``
        ``Content-Type`` in ``headers``, as httpx; another: ValueError)
        (``request.form``, ``request.files``). ``body``
        may also be an iterable or async iterable of bytes: sent chunked
        (unless ``headers`` give a ``Content-Length``), a piece at a time as
        the server takes them, for a ``stream=True`` route (``request.stream``).
        ``content`` is ``body`` under httpx's name. ``auth``, a user and a
        password (str, UTF-8, or bytes), sends them as HTTP Basic credentials
        (``Authorization``, replacing one ``headers`` give, as httpx does).
        ``cookies`` (a mapping or pairs) go with this request and those of
        ``client.cookies``, winning on a name, as httpx merges them (not kept
        in ``client.cookies``, nor sent with a redirect's next request; a
        ``Cookie`` in ``headers`` goes instead of both, and a redirect's next
        request, as httpx's, sends ``client.cookies`` instead of it).

        With ``follow_redirects`` (None: the client's, False unless it was
        made with ``follow_redirects=True``), a 301, 302, 303, 307 or 308 with a
        ``Location`` on this site (a path, or a URL naming ``http://`` and the
        request's host and port) is followed, on a new connection, as browsers
        do: a 303 (and a 301 or 302 of a POST) becomes a GET without the body,
        any other is sent again as it was (not a body of pieces, which is sent
        once: ValueError). The response is the last one, with the redirects in
        its ``history``; one that leads off the site is the response,
        unfollowed. More than :data:`MAX_REDIRECTS` raise :class:`TooManyRedirects`.
        """
        headers = self._headers.under(headers)  # (the client's, under the request's)
        method, target, items, names, whole, pieces = _prepared(
            method, path, body, content, json, data, files, headers, params, auth
        )
        if follow_redirects is None:
            follow_redirects = self.follow_redirects
        history: list[ClientResponse] = []
        while True:
            sent = list(items)
            # (Each time: a redirect may set one. The request's own go with
            # it alone, not with a redirect's next request, as with httpx.)
            self._send_cookies(sent, names, None if history else cookies)
            response = await self._send(method, target, sent, whole, pieces, timeout)
            response.url = _url(items, target)
            response.request = ClientRequest(
                method, response.url, Headers(sent), (whole or b"") if pieces is None else None
            )
            response.history = history
            location = response.headers.get("location")
            if not follow_redirects or response.status not in _REDIRECTS or location is None:
                return response
            next_target = _on_site(items, target, location)
            if next_target is None:
                return response  # (another site: not this client's to reach)
            if len(history) == MAX_REDIRECTS:
                raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects", response)
            history = [*history, response]
            target = next_target
            if "cookie" in names:  # (the client's go instead, those set on the way too, as httpx)
                items = [(n, v) for n, v in items if n.lower() != "cookie"]
                names = names - {"cookie"}
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method = "GET" if method != "HEAD" else method
                whole = pieces = None
                items = [(n, v) for n, v in items if n.lower() not in _BODY_HEADERS]
            elif pieces is not None:
                raise ValueError(
                    f"a {response.status} asks for the body again, and a body of pieces "
                    "is sent once: give it as bytes to follow this redirect"
                )

    async def _send(
        self,
        method: str,
        target: bytes,
        items: list[tuple[str, str]],
        whole: bytes | None,
        pieces: Iterable[bytes] | AsyncIterable[bytes] | None,
        timeout: float | None,
    ) -> ClientResponse:
        """One request on a new connection (its headers made by :meth:`request`)."""
        started = time.perf_counter()
        h = h11.Connection(h11.CLIENT)
        pipe = await self._open_pipe()
        seconds = self.timeout if timeout is None else timeout
        after_response = False
        body_of: ClientResponse | None = None  # (a response whose body is being read)
        try:
            async with _within(seconds, "no response came"):
                await _write_request(h, pipe, method, target, items, whole, pieces)
                broken: Exception | None = None
                try:
                    response = await _read_head(h, pipe)
                    if response.status != 101:
                        body_of = response
                        await _read_body(h, pipe, response)
                        body_of = None
                except Exception as exc:
                    body_of = None
                    broken = exc
                else:
                    response._ended(started)
                    after_response = True
                    await self._application_done(pipe)
                    after_response = False
                # (Outside the except: the app's exception keeps its own context.)
                self._raise_failure(pipe)  # (rather than its 500, or what broke the response)
                if broken is not None:
                    raise broken
                self._keep_cookies(response.headers)
                if response.status == 101:
                    raise ConnectionError("the server switched protocols: use websocket()")
                return response
        except TimeoutError:
            if after_response:  # (its own words, rather than "no response came")
                raise TimeoutError(
                    "the response came, but the application's run did not end within the "
                    "timeout (its work after the response: background tasks?)"
                ) from None
            if body_of is not None:  # (its own words too: the head came)
                raise _late(
                    f"the response's head came ({body_of.status} {body_of.reason}), "
                    "but its body did not end",
                    seconds,
                ) from None
            raise
        finally:
            pipe.transport.close()

    @staticmethod
    async def _application_done(pipe: _Pipe) -> None:
        """Wait for the application's run on ``pipe``'s connection to end: an
        ASGI app's background work after its response (FastAPI's
        ``BackgroundTasks``) is done when the request returns, as with
        Starlette's client (within the request's timeout)."""
        protocol = pipe.server_protocol
        if isinstance(protocol, HttpProtocol):
            running = [task for task in protocol.tasks() if not task.done()]
            if running:
                await asyncio.wait(running)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        body: Body = None,
        content: Body = None,
        json: Any = None,
        data: FormArg = None,
        files: FilesArg = None,
        headers: HeadersArg = None,
        cookies: CookiesArg = None,
        params: ParamsArg = None,
        auth: tuple[str | bytes, str | bytes] | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        """``async with client.stream("GET", "/events") as response:`` sends the
        request as :meth:`request` does (its arguments, no redirects followed),
        and gives the response once its head came: its body is read as it
        comes (:class:`StreamedResponse`: ``aiter_lines()``, ``aiter_bytes()``,
        ...), a server-sent events stream, say.

        The block's end closes the connection (the application hears the
        client leave). A body read to its end first waits for the
        application's run, as :meth:`request` does; then what the application
        raised is raised (``raise_server_exceptions``).
        """
        headers = self._headers.under(headers)  # (the client's, under the request's)
        method, target, items, names, whole, pieces = _prepared(
            method, path, body, content, json, data, files, headers, params, auth
        )
        self._send_cookies(items, names, cookies)
        seconds = self.timeout if timeout is None else timeout
        started = time.perf_counter()
        h = h11.Connection(h11.CLIENT)
        pipe = await self._open_pipe()
        try:
            broken: ConnectionError | None = None
            async with _within(seconds, "no response came"):
                await _write_request(h, pipe, method, target, items, whole, pieces)
                try:
                    head = await _read_head(h, pipe)
                except ConnectionError as exc:
                    broken = exc
            if broken is not None:
                self._raise_failure(pipe)  # (what the application raised, instead)
                raise broken
            if head.status == 101:
                raise ConnectionError("the server switched protocols: use websocket()")
            self._keep_cookies(head.headers)
            head.url = _url(items, target)
            head.request = ClientRequest(
                method, head.url, Headers(items), (whole or b"") if pieces is None else None
            )
            response = StreamedResponse(head, self, h, pipe, seconds, started)
            try:
                yield response
            finally:
                response.left = True
                if response._elapsed is None:  # (not read to its end)
                    response._ended(started)
            if response.consumed:
                async with _within(seconds, "the application's run did not end"):
                    await self._application_done(pipe)
            self._raise_failure(pipe)
        finally:
            pipe.transport.close()

    async def get(self, path: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """``GET path``: :meth:`request`'s keyword arguments."""
        return await self.request("GET", path, **options)

    async def head(self, path: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """``HEAD path``: :meth:`request`'s keyword arguments."""
        return await self.request("HEAD", path, **options)

    async def options(self, path: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """``OPTIONS path``: :meth:`request`'s keyword arguments."""
        return await self.request("OPTIONS", path, **options)

    async def post(self, path: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """``POST path``: :meth:`request`'s keyword arguments."""
        return await self.request("POST", path, **options)

    async def put(self, path: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """``PUT path``: :meth:`request`'s keyword arguments."""
        return await self.request("PUT", path, **options)

    async def patch(self, path: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """``PATCH path``: :meth:`request`'s keyword arguments."""
        return await self.request("PATCH", path, **options)

    async def delete(self, path: str, **options: Unpack[RequestOptions]) -> ClientResponse:
        """``DELETE path``: :meth:`request`'s keyword arguments."""
        return await self.request("DELETE", path, **options)

    # ------------------------------------------------------ WebSockets

    def websocket(
        self,
        path: str,
        *,
        headers: HeadersArg = None,
        subprotocols: Iterable[str] | None = None,
        compression: Literal["deflate"] | None = "deflate",
        params: ParamsArg = None,
        timeout: float | None = None,
        cookies: CookiesArg = None,
    ) -> _Connecting:
        """Open a WebSocket to ``path`` (``params`` added to its query string; a
        ``ws://host/path`` URL gives its host as the ``Host`` header):
        ``async with client.websocket(path) as ws:``
        (closed with 1000 at the end if still open), or ``ws = await client.websocket(path)``.

        The upgrade request is a real one: ``headers`` are added to it (an
        ``Origin``, an ``Authorization``, a ``Host`` instead of ``testserver``),
        ``cookies`` go with those of ``client.cookies`` (as :meth:`request`'s),
        ``subprotocols`` are offered in order, and permessage-deflate is offered
        unless ``compression`` is None, as browsers do (the server agrees only
        when it runs with ``compression="deflate"``, the default for ASGI apps).
        A handshake header of ``headers`` (``Sec-WebSocket-Version``, ``-Key``,
        ``-Extensions``, ``Upgrade``, ``Connection``) goes instead of the
        client's own, as Starlette's client sends them: an extension offer
        there is the offer, whatever ``compression`` says.

        Raises:
            HandshakeDenied: the server answered with an HTTP response instead
                of the 101 (its status, headers and body).
            InvalidHandshake: the server's 101 is not valid.
            TypeError: ``subprotocols`` is one str, not a list of them.
        """
        if compression not in ("deflate", None):
            raise ValueError(f"compression must be 'deflate' or None, not {compression!r}")
        offered = _subprotocol_list(subprotocols)
        items = _header_list(self._headers.under(headers))
        path = _split_url(path, items, ("ws", "http"))

        async def open() -> ClientWebSocket:
            return await self._handshake(
                path,
                params,
                list(items),
                offered,
                compression is not None,
                self.timeout if timeout is None else timeout,
                cookies,
            )

        return _Connecting(open, self.server.config.close_timeout)

    async def _handshake(
        self,
        path: str,
        params: ParamsArg,
        items: list[tuple[str, str]],
        subprotocols: list[str],
        deflate: bool,
        timeout: float | None,
        cookies: CookiesArg = None,
    ) -> ClientWebSocket:
        names = {name.lower() for name, _ in items}
        # A handshake header of ``headers`` goes instead of ours, as Starlette's
        # client sets its own only when missing: a test may send another
        # version, a key of its own, or an offer of its own (which is then the
        # offer, whatever ``deflate`` says).
        keys = [value for name, value in items if name.lower() == "sec-websocket-key"]
        key = keys[0] if keys else base64.b64encode(os.urandom(16)).decode("ascii")
        ours = [] if "host" in names else [("Host", DEFAULT_HOST)]
        ours += [
            (name, value)
            for name, value in [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", key),
                ("Sec-WebSocket-Version", "13"),
            ]
            if name.lower() not in names
        ]
        if "sec-websocket-extensions" in names:
            deflate = True  # (the test's offer)
        elif deflate:
            ours.append(("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"))
        if subprotocols:
            ours.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
        if "user-agent" not in names:
            ours.append(("User-Agent", USER_AGENT))
        self._send_cookies(ours, names, cookies)
        # What was offered is what the request says, ``headers`` included.
        offered = subprotocols + [
            token.strip(" \t")
            for name, value in items
            if name.lower() == "sec-websocket-protocol"
            for token in value.split(",")
        ]
        started = time.perf_counter()
        h = h11.Connection(h11.CLIENT)
        pipe = await self._open_pipe()
        try:
            async with _within(timeout, "no answer to the upgrade came"):
                target = _target(path, params)
                request = h11.Request(
                    method="GET", target=target, headers=_encode_headers(ours + items)
                )
                pipe.write((h.send(request) or b"") + (h.send(h11.EndOfMessage()) or b""))
                try:
                    switch = await _read_response(h, pipe)
                except ConnectionError as exc:
                    raise InvalidHandshake(str(exc)) from None
                switch._ended(started)
                url = URL(f"ws://{_host(ours + items)}{target.decode('ascii')}")
                switch.request = ClientRequest("GET", url, Headers(ours + items), b"")
            self._keep_cookies(switch.headers)
            if switch.status != 101:
                # As a request's response: the application's run (an ASGI
                # app's work after its denial) ends first, so that what it
                # did is done, and what it raised raised instead.
                async with _within(
                    timeout,
                    f"the upgrade was denied ({switch.status}), "
                    "but the application's run did not end",
                ):
                    await self._application_done(pipe)
                raise HandshakeDenied(switch)
            _check_accept(switch.headers, key)
            subprotocol = switch.headers.get("sec-websocket-protocol")
            if subprotocol is not None and subprotocol not in offered:
                raise InvalidHandshake(
                    f"the server chose a subprotocol not offered: {subprotocol!r}"
                )
            agreed = _client_deflate(switch.headers.getall("sec-websocket-extensions"), deflate)
        except Exception as exc:
            pipe.abort()
            failed: Exception | None = exc
        except BaseException:
            pipe.abort()
            raise
        else:
            failed = None
        if failed is not None:
            # (Outside the except: the app's exception keeps its own context.)
            self._raise_failure(pipe)  # (rather than the denial it made)
            raise failed
        received, _ = h.trailing_data
        server_end = pipe.server_end
        ws = ClientWebSocket(
            pipe,
            path,
            switch,
            subprotocol=subprotocol,
            deflate=agreed,
            timeout=timeout,
            received=bytes(received) + pipe.take(),
            raise_failure=lambda: self._raise_failure(pipe),
            # (The WebSocket's protocol: the server handed the transport to it
            # before its 101 went out, and cannot close it before our echo.)
            server_protocol=server_end.get_protocol() if server_end is not None else None,
        )
        if not ws.closed:
            self._websockets.add(ws)
            pipe.closed.add_done_callback(lambda _: self._websockets.discard(ws))
        return ws


#: What opens a WebSocket in Starlette's test client (and pytest-aiohttp's),
#: and what here: the name, and what differs.
_CLIENT_INSTEAD = {
    "websocket_connect": (
        "Starlette's",
        "client.websocket(path), which takes the same headers and subprotocols (async with "
        "it; with it from a SyncTestClient); its receive() returns the message (str or "
        "bytes), not an ASGI event, and a close raises ConnectionClosedOK or "
        "ConnectionClosedError (.code, .reason), not WebSocketDisconnect",
    ),
    "ws_connect": (
        "aiohttp's",
        "client.websocket(path) (async with it; with it from a SyncTestClient); its "
        "receive() returns the message (str or bytes), not a WSMessage, and a close raises "
        "ConnectionClosedOK or ConnectionClosedError (.code, .reason) rather than "
        "returning a CLOSE message",
    ),
}
#: Their WebSockets' names that a ClientWebSocket has under another.
_WEBSOCKET_INSTEAD = {
    "accepted_subprotocol": ("Starlette's", "ws.subprotocol"),
    "extra_headers": ("Starlette's", "ws.response.headers (the whole 101's)"),
    "send_str": ("aiohttp's", "ws.send_text() (or ws.send(), which takes str and bytes)"),
    "receive_str": ("aiohttp's", "ws.receive_text()"),
}


def _say_ported_names(client: type, websocket: type) -> None:
    """Give a test client's class and its WebSocket's the names a test ported
    from Starlette's client or pytest-aiohttp reads: each an AttributeError
    saying what gives the same here."""
    for cls, names, what in (
        (client, _CLIENT_INSTEAD, "client"),
        (websocket, _WEBSOCKET_INSTEAD, "ws"),
    ):
        say_instead(
            cls,
            {
                name: f"{what}.{name}: a {cls.__name__} has no {name} ({whose}): {instead}"
                for name, (whose, instead) in names.items()
            },
        )


_say_ported_names(TestClient, ClientWebSocket)


def _subprotocol_list(subprotocols: Iterable[str] | None) -> list[str]:
    """``subprotocols`` (any iterable of str) as a list.

    Raises:
        TypeError: one str (it would be offered as its characters, "c, h, a,
            t"), or anything else than str in it.
    """
    if isinstance(subprotocols, str | bytes):
        kind = type(subprotocols).__name__
        raise TypeError(f"subprotocols takes a list of str, not one {kind}: [{subprotocols!r}]")
    try:
        offered = list(subprotocols or [])
    except TypeError:
        kind = type(subprotocols).__name__
        raise TypeError(f"subprotocols takes a list of str, not {kind}") from None
    for item in offered:
        if not isinstance(item, str):
            kind = type(item).__name__
            raise TypeError(f"subprotocols takes a list of str: {item!r} is a {kind}")
    return offered


def _check_accept(headers: Headers, key: str) -> None:
    """Check the 101's ``Upgrade``, ``Connection`` and ``Sec-WebSocket-Accept``."""
    if headers.get("upgrade", "").lower() != "websocket":
        raise InvalidHandshake(f"101 without 'Upgrade: websocket': {headers!r}")
    connection = [
        t.strip(" \t").lower() for v in headers.getall("connection") for t in v.split(",")
    ]
    if "upgrade" not in connection:
        raise InvalidHandshake(f"101 without 'Connection: upgrade': {headers!r}")
    if headers.getall("sec-websocket-accept") != [accept_key(key)]:
        raise InvalidHandshake(f"wrong Sec-WebSocket-Accept: {headers!r}")


@contextlib.asynccontextmanager
async def connect(
    app: Any,
    path: str = "/",
    *,
    headers: HeadersArg = None,
    subprotocols: Iterable[str] | None = None,
    compression: Literal["deflate"] | None = _SERVERS_DEFAULT,
    timeout: float | None = DEFAULT_TIMEOUT,
    **settings: Any,
) -> AsyncIterator[ClientWebSocket]:
    """One WebSocket to a server of its own: ``async with connect(routes, "/ws") as ws:``.

    Short for a :class:`TestClient` with ``settings`` and one
    :meth:`TestClient.websocket`; both are closed at the end. ``headers`` and
    ``subprotocols`` are the upgrade request's (the server's own ``headers``
    setting is a :class:`TestClient`'s); ``compression`` is both sides': the
    server's setting (``"deflate"`` or None) and whether the client offers
    permessage-deflate. Left out, the server has its default (off for a
    Router, on for an ASGI app) and the client offers it.
    """
    if compression is _SERVERS_DEFAULT:
        compression = "deflate"
    else:
        settings["compression"] = compression
    async with (
        TestClient(app, timeout=timeout, **settings) as client,
        client.websocket(
            path, headers=headers, subprotocols=subprotocols, compression=compression
        ) as ws,
    ):
        yield ws
