"""HTTP messages, sans-I/O: request headers, responses, and the one writer of responses.

:class:`Headers` holds a request's headers (:func:`request_field` checks and
decodes each as it is received, and shares the pairs that repeat from one
connection to the next, so that idle connections hold one copy of their
``Host``, ``Upgrade``, ``User-Agent`` ...); :class:`Response` is an HTTP
response an application returns (an HTTP route's answer, or the denial of an
upgrade); :func:`render_response` turns one into bytes through the
connection's h11 state machine, which tracks whether the connection can be
kept alive. Every HTTP response wsserver sends is rendered there: route
answers, denials and errors alike. (The ``101 Switching Protocols`` of an
accepted upgrade is built by :mod:`.handshake`.) The headers a server adds to
every response it sends (``Date``, ``Server``) are given to it by the caller,
which knows the time: :func:`http_date` formats it, :func:`with_defaults` adds
them to a response's own.
"""

from __future__ import annotations

import email.utils
import html
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import Any, Literal, Self, TypeVar, overload

import h11

from .cookies import CookieSetting
from .syntax import TOKEN_RE

__all__ = [
    "ERROR_FORMATS",
    "ErrorFormat",
    "bad_request_message",
    "bad_request_status",
    "Headers",
    "HeadersLike",
    "Response",
    "error_response",
    "header_pairs",
    "http_date",
    "raw_field",
    "raw_fields",
    "reason_phrase",
    "render_response",
    "request_field",
    "response_head_headers",
    "header_text",
    "saying_close",
    "shared_request_field",
    "split_absolute_form",
    "valid_header",
    "valid_host",
    "with_defaults",
]

HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]]

#: A header value: visible characters, spaces and tabs, obs-text; no CR, LF, NUL or
#: other control character, and no space or tab at either end (RFC 9110 5.5; h11
#: refuses those).
_FIELD_VALUE = re.compile(
    r"(?:[\x21-\x7e\x80-\xff](?:[\t\x20-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?"
)


#: What no received header value may hold (RFC 9110 5.5; a tab may), which h11 lets through.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

#: Request headers whose values repeat from one connection to the next and
#: are no secret: their (name, value) pairs are shared between requests, so
#: that the requests of idle connections hold one copy of each. (Not
#: ``Sec-WebSocket-Protocol``: browsers, which cannot set other headers,
#: are often made to carry a token in it.)
_REPEATING = frozenset(
    (
        "host",
        "upgrade",
        "connection",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "origin",
        "user-agent",
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "pragma",
    )
)
_REPEATING_BYTES = frozenset(name.encode() for name in _REPEATING)
#: Shared names and values are at most this long (a request is refused for
#: its size only after its headers were decoded), and each cache holds at
#: most _CACHE_SIZE entries (it starts again when full): bounded, whatever comes.
_SHARED_NAME_SIZE = 64
_SHARED_VALUE_SIZE = 256
_CACHE_SIZE = 1024
_NAMES: dict[bytes, str] = {}
_FIELDS: dict[tuple[bytes, bytes], tuple[str, str]] = {}
_RAW_FIELDS: dict[tuple[str, str], tuple[bytes, bytes]] = {}


def _keep(cache: dict[Any, Any], key: Any, value: Any) -> None:
    """Keep ``value`` under ``key`` in one of the caches above, starting it again when full."""
    if len(cache) >= _CACHE_SIZE:
        cache.clear()
    cache[key] = value


def request_field(name: bytes, value: bytes) -> tuple[str, str] | None:
    """A received header (lowercase ``name``, as h11 gives it) as text; None if invalid.

    Invalid: a control character in the value. Names, and the whole pair for
    the headers that repeat between connections (``Host``, ``Upgrade``,
    ``User-Agent``, ...), are shared between requests.
    """
    key = None
    if name in _REPEATING_BYTES and len(value) <= _SHARED_VALUE_SIZE:
        key = (name, value)
        pair = _FIELDS.get(key)
        if pair is not None:
            return pair
    if _CONTROL.search(value) is not None:
        return None
    text = _NAMES.get(name)
    if text is None:
        text = name.decode("latin-1")
        if len(name) <= _SHARED_NAME_SIZE:
            _keep(_NAMES, name, text)
    pair = (text, value.decode("latin-1"))
    if key is not None:
        _keep(_FIELDS, key, pair)
    return pair


#: :func:`request_field`'s shared pairs, looked up by ``(name, value)`` without
#: calling it (most of a handshake's headers are there; a call costs more than
#: the lookup): ``shared_request_field((name, value)) or request_field(name, value)``.
#: What it holds passed request_field()'s check, so the two always agree.
shared_request_field: Callable[[tuple[bytes, bytes]], tuple[str, str] | None] = _FIELDS.get


def raw_fields(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Request headers back as bytes (an ASGI scope's), those that repeat from
    one request to the next shared, as :func:`request_field` shares them."""
    fields = []
    for name, value in pairs:
        if name in _REPEATING and len(value) <= _SHARED_VALUE_SIZE:
            key = (name, value)
            pair = _RAW_FIELDS.get(key)
            if pair is None:
                pair = (name.encode("latin-1"), value.encode("latin-1"))
                _keep(_RAW_FIELDS, key, pair)
        else:
            pair = (name.encode("latin-1"), value.encode("latin-1"))
        fields.append(pair)
    return fields


def raw_field(name: str, value: str) -> tuple[bytes, bytes]:
    """One request header back as bytes: see :func:`raw_fields`."""
    return raw_fields([(name, value)])[0]


def header_pairs(headers: HeadersLike | None) -> list[tuple[str, str]]:
    """``headers`` as ``(name, value)`` pairs: a mapping's items, but every value of
    a :class:`Headers` (a repeated ``Set-Cookie`` stays repeated), or the pairs given."""
    if isinstance(headers, Headers):
        return headers.raw_items()
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers or ())


def valid_header(name: str, value: str) -> bool:
    """Whether a response header may be sent as it is (no response splitting)."""
    return TOKEN_RE.fullmatch(name) is not None and _FIELD_VALUE.fullmatch(value) is not None


#: No default given (getone()).
_MISSING: Any = object()
_T = TypeVar("_T")


class Headers(Mapping[str, str]):
    """Case-insensitive, multi-valued HTTP headers.

    ``headers["X"]`` and ``headers.get("x")`` give the first value;
    :meth:`getall` gives every value, in order.
    """

    __slots__ = ("_items", "_raw")

    def __init__(self, items: Iterable[tuple[str, str]] | Mapping[str, str] | None = None) -> None:
        """``items``: name and value pairs, a mapping of them (a dict, as
        Starlette's take), or another Headers (all its pairs)."""
        # (lowercase name, value) pairs: a plain list is smaller than an index,
        # and a scan over a request's dozen or two headers is quick.
        self._items: list[tuple[str, str]] = []
        # The pairs as received, kept only once a name was not lowercase.
        self._raw: list[tuple[str, str]] | None = None
        if isinstance(items, Headers):
            items = items.raw_items()
        elif isinstance(items, Mapping):
            items = items.items()
        for name, value in items or ():
            self.add(name, value)

    @classmethod
    def from_lowercase(cls, items: list[tuple[str, str]]) -> Self:
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

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str | _T) -> str | _T: ...
    def get(self, name: str, default: Any = None) -> Any:
        """The first value of header ``name``, or ``default``. (Mapping's
        own goes through ``__getitem__`` and its KeyError: a call more.)"""
        key = name.lower()
        for item_name, value in self._items:
            if item_name == key:
                return value
        return default

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return any(item_name == key for item_name, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._items))

    def __len__(self) -> int:
        return len({name for name, _ in self._items})

    @overload
    def getall(self, name: str) -> list[str]: ...
    @overload
    def getall(self, name: str, default: _T) -> list[str] | _T: ...
    def getall(self, name: str, default: Any = None) -> Any:
        """Every value of header ``name``; when absent, ``default`` if given
        (as multidict's ``getall(name, [])``), else an empty list."""
        key = name.lower()
        # A loop, not a comprehension, which is a call more (Python 3.11).
        values = []
        for item_name, value in self._items:
            if item_name == key:
                values.append(value)
        return default if not values and default is not None else values

    def grouped(self, names: Collection[str]) -> dict[str, list[str]]:
        """Every value of each of ``names`` (lowercase) in one pass, by name; a
        name without any is left out. For the handshake's checks, which read
        five headers: a :meth:`getall` each was a call and a scan each."""
        found: dict[str, list[str]] = {}
        for name, value in self._items:
            if name in names:
                values = found.get(name)
                if values is None:
                    found[name] = [value]
                else:
                    values.append(value)
        return found

    @overload
    def getone(self, name: str) -> str: ...
    @overload
    def getone(self, name: str, default: _T) -> str | _T: ...
    def getone(self, name: str, default: Any = _MISSING) -> Any:
        """The first value of header ``name`` (multidict's name for it); when
        absent, ``default`` if given, else KeyError."""
        key = name.lower()
        for item_name, value in self._items:
            if item_name == key:
                return value
        if default is _MISSING:
            raise KeyError(name)
        return default

    def raw_items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair as received, repeated names included."""
        return list(self._items if self._raw is None else self._raw)

    def __repr__(self) -> str:
        return f"Headers({self.raw_items()!r})"


def response_head_headers(
    headers: HeadersLike | None, content_type: str | None
) -> list[tuple[str, str]]:
    """A response's headers as pairs, ``content_type`` added unless they have
    a ``Content-Type``.

    A value given as an int is sent as its digits, as Sanic writes one
    (``{"Retry-After": 120}``).

    Raises:
        ValueError: a header name or value that cannot be sent as it is.
        TypeError: a name that is no str, or a value neither str nor int.
    """
    items = header_pairs(headers)
    if content_type is not None and not any(n.lower() == "content-type" for n, _ in items):
        items.append(("Content-Type", content_type))
    # The check in place, not a call more per response (Python 3.11): the
    # helper, which says what is wrong, only once a header fails it.
    try:
        for name, value in items:
            if not valid_header(name, value):
                break
        else:
            return items
    except TypeError:  # (a value not a str: the regex's)
        items = [(name, header_text(name, value)) for name, value in items]
    _check_response_headers(items)
    return items


def _check_response_headers(items: list[tuple[str, str]]) -> None:
    """Raise ``ValueError`` for the first of ``items`` that cannot be sent as it is."""
    for name, value in items:
        if not valid_header(name, value):
            raise ValueError(
                f"invalid response header {name!r}: {value!r} (a token, then latin-1 "
                "characters but no CR, LF or NUL; RFC 8187 encodes other text)"
            )


def header_text(name: object, value: object) -> str:
    """A response header's value as a str: an int's digits (not a bool's)."""
    if not isinstance(name, str):
        raise TypeError(f"a response header's name is a str, not {name!r}")
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(int(value))  # (int's own digits, not a subclass's str())
    raise TypeError(
        f"response header {name!r}: its value is a str (or an int), not "
        f"{type(value).__name__} ({value!r})"
    )


def utf8_text_type(content_type: str | None) -> str | None:
    """``content_type`` for a body the server encodes as UTF-8 (a str): a
    ``text/*`` type without a charset says ``charset=utf-8``, else a browser
    reads it as windows-1252 (Starlette's responses say it too)."""
    if (
        content_type is not None
        and content_type[:5].lower() == "text/"
        and "charset=" not in content_type.lower()
    ):
        return f"{content_type}; charset=utf-8"
    return content_type


class Response(CookieSetting):
    """An HTTP response: status, headers and a body (``set_cookie()`` and
    ``delete_cookie()`` add to the headers).

    Args:
        body: the body: bytes-like, or a str (encoded as UTF-8).
        status: the status code.
        headers: extra headers, as a mapping or ``(name, value)`` pairs.
        content_type: the ``Content-Type`` header, if any (unless ``headers``
            has one; a ``text/*`` type for a str body says ``charset=utf-8``
            unless it gives a charset).

    Raises:
        TypeError: the body is neither str nor bytes-like, or the status no int.
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
        if isinstance(status, bool) or not isinstance(status, int):
            raise TypeError(f"HTTP status is an int, not {status!r}")
        if not 200 <= status <= 599:
            raise ValueError(f"HTTP status must be between 200 and 599, not {status}")
        self.status = status
        if isinstance(body, str):
            self.body = body.encode("utf-8")
            content_type = utf8_text_type(content_type)
        elif isinstance(body, (bytes, bytearray, memoryview)):
            self.body = bytes(body)
        else:  # (bytes() would take anything: an int as that many NUL bytes, a list of ints)
            try:
                self.body = memoryview(body).tobytes()  # (bytes-like: an array, an mmap)
            except TypeError:
                raise TypeError(
                    f"a response body is str or bytes, not {type(body).__name__}"
                ) from None
        if self.body and status in _NO_CONTENT:
            raise ValueError(f"a {status} response has no body")
        self.headers: list[tuple[str, str]] = response_head_headers(headers, content_type)

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.body)} bytes>"


#: Statuses whose responses have no body (RFC 9110 15.3.5, 15.4.5): no
#: ``Content-Length`` is added to them either.
_BODILESS = frozenset((204, 304))
#: Statuses a server MUST NOT send content with (RFC 9110 15.3.5, 15.3.6,
#: 15.4.5): a 205's end is said with a Content-Length of 0.
_NO_CONTENT = _BODILESS | {205}


#: The headers that say how a body is framed, which a 204 or a 1xx has not.
_FRAMING = frozenset(("content-length", "transfer-encoding"))


def h11_response(
    status: int, headers: list[tuple[str, str]]
) -> h11.Response | h11.InformationalResponse:
    """h11's event for a response head whose ``headers`` are checked (:func:`valid_header`):
    a final one, or an informational one for a ``status`` under 200.

    h11 encodes ``str`` values as ASCII: a value with latin-1 characters
    (obs-text, as an ASGI application's header bytes may hold) goes as bytes.
    A ``Content-Length`` or ``Transfer-Encoding`` given to a 204 or a 1xx is
    left out (RFC 9110 8.6, RFC 9112 6.1: it has none; a 304 may say either).
    """
    if status == 204 or status < 200:
        headers = [pair for pair in headers if pair[0].lower() not in _FRAMING]
    reason = reason_phrase(status)
    kind = h11.Response if status >= 200 else h11.InformationalResponse
    try:
        return kind(status_code=status, headers=headers, reason=reason)
    except UnicodeEncodeError:
        latin = [(name.encode(), value.encode("latin-1")) for name, value in headers]
        return kind(status_code=status, headers=latin, reason=reason)


#: Each status's reason phrase: RFC 9110's names where Python's ``HTTPStatus``
#: (before 3.13) has RFC 7231's.
_PHRASES = {status.value: status.phrase for status in HTTPStatus} | {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}


def reason_phrase(status: int) -> str:
    """The reason phrase of ``status`` ("Unknown" for codes HTTP does not name)."""
    return _PHRASES.get(status, "Unknown")


#: The body formats of error responses (a route's ``error_format``).
ErrorFormat = Literal["text", "json", "html"]
ERROR_FORMATS: tuple[ErrorFormat, ...] = ("text", "json", "html")


def error_response(
    status: int,
    message: str | None = None,
    headers: HeadersLike | None = None,
    format: ErrorFormat = "text",
) -> Response:
    """An error response saying ``message`` (by default the reason phrase).

    ``format`` is its body's: ``"text"`` (the message and a newline),
    ``"json"`` (``{"error": phrase, "status": status, "message": message}``)
    or ``"html"`` (a small page; the message is escaped). A 204, 205 or 304
    has none (RFC 9110 15.3.5, 15.3.6, 15.4.5): its status and headers alone.
    """
    if status in _NO_CONTENT:
        # (A handler's own raise HandshakeError(304, ...), its ETag in headers.)
        return Response(b"", status, headers)
    phrase = reason_phrase(status)
    text = phrase if message is None else message
    if format == "json":
        body = json.dumps({"error": phrase, "status": status, "message": text})
        return Response(body, status, headers, "application/json")
    if format == "html":
        title = f"{status} {html.escape(phrase)}"
        page = (
            f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>'
            f"<body><h1>{title}</h1><p>{html.escape(text)}</p></body></html>\n"
        )
        return Response(page, status, headers, "text/html; charset=utf-8")
    return Response(text + "\n", status, headers, "text/plain; charset=utf-8")


#: The start of an absolute-form request target (RFC 9112 3.2.2); schemes are case-insensitive.
_ABSOLUTE_FORM = re.compile(rb"https?://", re.IGNORECASE)


#: How h11 shows the bytes it could not read: ``: bytearray(b'...')``, to the end.
_QUOTED_BYTES = re.compile(r": (?:bytearray\()?b['\"].*\Z", re.S)


def bad_request_status(error: h11.RemoteProtocolError) -> int:
    """The status for a request h11 could not read: its hint, but a 400 for its
    501 of a ``Transfer-Encoding`` other than ``chunked``.

    RFC 9112 6.3: chunked not the final coding (``chunked, gzip``, ``gzip``;
    or applied twice) leaves the body's length unknown, a 400 the server MUST
    send. Only a coding before a final chunked (``gzip, chunked``) would be a
    501 (a SHOULD), and h11 does not say which it refused.
    """
    return 400 if error.error_status_hint == 501 else error.error_status_hint


def bad_request_message(error: h11.RemoteProtocolError) -> str:
    """The body of the 4xx for a request h11 could not read: what was wrong,
    without the repr of the client's own bytes (``illegal request line:
    bytearray(b'\\x16\\x03...')``, a TLS client on a plain port, says it)."""
    return f"Bad request: {_QUOTED_BYTES.sub('', str(error)).rstrip('.')}."


def is_tls_handshake(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data``, the first bytes of a connection, begin a TLS handshake
    (a record of type handshake, 22, of version 3.x: what every TLS client
    sends first) rather than an HTTP request."""
    return len(data) >= 2 and data[0] == 0x16 and data[1] == 0x03


def split_absolute_form(target: bytes) -> tuple[bytes, bytes] | None:
    """An absolute-form request target as its authority and its origin-form target.

    ``http://host:8080/a?b=1`` gives ``(b"host:8080", b"/a?b=1")``; an empty
    path is ``/``. RFC 9112 3.2.2 asks a server to accept this form, and to
    take the host from it rather than from the ``Host`` header. None for the
    other forms (origin-form, ``*``), which are used as they are.

    Raises:
        ValueError: the authority is empty, or has userinfo (``user@``),
            which RFC 9110 4.2.4 says to treat as an error.
    """
    start = _ABSOLUTE_FORM.match(target)
    if start is None:
        return None
    rest = target[start.end() :]
    end = len(rest)
    for separator in (b"/", b"?"):
        found = rest.find(separator, 0, end)
        if found != -1:
            end = found
    authority, path = rest[:end], rest[end:]
    if not authority:
        raise ValueError("Absolute-form request target without a host.")
    if b"@" in authority:
        raise ValueError("Userinfo in the request target.")
    if b"#" in target:
        raise ValueError("Fragment in the request target.")
    return authority, path if path.startswith(b"/") else b"/" + path


#: A Host header's value, or an absolute-form target's authority (RFC 9110
#: 7.2, RFC 3986 3.2.2): an IP literal or a registered name (or IPv4
#: address), and an optional port; no userinfo. Empty, or a host that is
#: not: an http URI with an empty host is invalid (RFC 9110 4.2.1), while an
#: empty Host says the target has no authority (RFC 9112 3.2).
_HOST = re.compile(
    rb"(?:(?:\[(?:[0-9A-Fa-f:.]+|v[0-9A-Fa-f]+\.[-A-Za-z0-9._~!$&'()*+,;=:]+)\]"
    rb"|[-A-Za-z0-9._~!$&'()*+,;=%]+)(?::[0-9]*)?)?"
)


def valid_host(value: bytes) -> bool:
    """Whether ``value`` is a valid ``Host`` (RFC 9112 3.2 asks 400 for one that is not)."""
    return _HOST.fullmatch(value) is not None


def http_date(seconds: float) -> str:
    """The ``Date`` value of a time in seconds since the epoch: ``Sun, 06 Nov 1994 08:49:37 GMT``.

    RFC 9110 5.6.7's IMF-fixdate, always in GMT and with English names.
    """
    return email.utils.formatdate(seconds, usegmt=True)


def with_defaults(
    headers: list[tuple[str, str]], defaults: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """``defaults`` whose name ``headers`` lacks (case-insensitively), then ``headers``.

    ``defaults`` are the headers a server adds to every response (``Date``,
    ``Server``, headers configured for all responses): a response that has
    its own keeps it, and none is sent twice. A ``Set-Cookie`` is a cookie of
    its own: a configured one is left out only when the response sets a cookie
    of that name. ``headers`` itself is not changed.
    """
    if not defaults:
        return headers
    if not headers:
        return list(defaults)
    names = {name.lower() for name, _ in headers}
    if "set-cookie" not in names:
        return [*(d for d in defaults if d[0].lower() not in names), *headers]
    cookies = {_cookie_name(value) for name, value in headers if name.lower() == "set-cookie"}
    kept = [
        (name, value)
        for name, value in defaults
        if (
            _cookie_name(value) not in cookies
            if name.lower() == "set-cookie"
            else name.lower() not in names
        )
    ]
    return [*kept, *headers]


def _cookie_name(set_cookie: str) -> str:
    """The name of the cookie a ``Set-Cookie`` value sets (RFC 6265 5.2:
    trimmed; case-sensitive, as browsers keep names)."""
    return set_cookie.split(";", 1)[0].partition("=")[0].strip(" \t")


def saying_close(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` of a response that closes its connection: the
    ``keep-alive`` and ``close`` options of their ``Connection`` left out,
    its other options kept, and ``Connection: close`` added (said once,
    whatever the application gave)."""
    kept = []
    for name, value in headers:
        if name.lower() == "connection":
            options = [o.strip() for o in value.split(",")]
            value = ", ".join(o for o in options if o and o.lower() not in ("keep-alive", "close"))
            if not value:
                continue
        kept.append((name, value))
    kept.append(("Connection", "close"))
    return kept


def render_response(
    conn: h11.Connection,
    response: Response,
    *,
    close: bool = False,
    head: bool = False,
    defaults: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The bytes of ``response``, sent through ``conn`` (h11's state machine).

    The status line carries the reason phrase; ``defaults`` (the server's
    ``Date``, ``Server`` ...) are added unless the response has its own
    (:func:`with_defaults`); ``Content-Length`` is added unless the response
    has one (or is a 204 or 304); ``close`` says ``Connection: close``
    (:func:`saying_close`); ``head`` leaves out the body (the answer to a
    HEAD request). Afterwards
    ``conn`` tells whether the connection can serve another request (both
    sides ``DONE``) or must close.

    Raises:
        h11.LocalProtocolError: h11 refused the response: its headers are
            malformed, its ``Content-Length`` does not match its body, or
            ``conn`` cannot send a response in its state. ``conn`` may then
            be in its ERROR state and unable to send anything more.
    """
    headers = with_defaults(response.headers, defaults)
    if response.status not in _BODILESS and not any(
        name.lower() == "content-length" for name, _ in headers
    ):
        headers = [*headers, ("Content-Length", str(len(response.body)))]
    if close:
        headers = saying_close(headers)
    events: list[h11.Response | h11.InformationalResponse | h11.Data | h11.EndOfMessage] = [
        h11_response(response.status, headers)
    ]
    if response.body and not head:
        events.append(h11.Data(data=response.body))
    events.append(h11.EndOfMessage())
    return b"".join(conn.send(event) or b"" for event in events)
