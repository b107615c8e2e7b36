"""Small HTTP responses: for plain HTTP routes and for denying a WebSocket upgrade.

The helpers below build a :class:`~wsserver.protocol.http.Response` (importable
from here too) with the right ``Content-Type``; :func:`stream` a
:class:`StreamingResponse`, whose body an HTTP route's handler produces as it
is sent; :func:`accept` is an ``on_connect`` hook's yes with conditions.

Example::

    from wsserver.response import json, text

    @routes.get("/health")
    async def health(request):
        return json({"status": "ok"})
"""

from __future__ import annotations

import inspect
import json as json_module
import re
import string
import urllib.parse
from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any, Protocol

from ..protocol.cookies import CookieSetting
from ..protocol.handshake import Acceptance
from ..protocol.http import (
    HeadersLike,
    Response,
    header_pairs,
    response_head_headers,
    utf8_text_type,
)
from .ported import say_instead

__all__ = [
    "Response",
    "StreamingResponse",
    "Chunks",
    "Acceptance",
    "accept",
    "stream",
    "text",
    "html",
    "json",
    "raw",
    "empty",
    "redirect",
    "json_response",
    "text_response",
    "html_response",
]


def text(
    body: str,
    status: int = 200,
    headers: HeadersLike | None = None,
    content_type: str = "text/plain; charset=utf-8",
) -> Response:
    """A ``text/plain`` response (or of ``content_type``: a ``text/*`` one
    without a charset says ``charset=utf-8``), as Sanic's ``text()``."""
    return Response(body, status, headers, content_type)


class HasHTML(Protocol):
    """What has an HTML form of its own: a template engine's markup (``__html__``)."""

    def __html__(self) -> str: ...


class ReprsHTML(Protocol):
    """What a notebook shows as HTML (``_repr_html_``): a DataFrame's table."""

    def _repr_html_(self) -> str: ...


def html(
    body: str | bytes | HasHTML | ReprsHTML,
    status: int = 200,
    headers: HeadersLike | None = None,
) -> Response:
    """A ``text/html`` response: of a str (or bytes), or, as Sanic's, of an
    object's ``__html__()`` (else its ``_repr_html_()``)."""
    page: Any = body
    if not isinstance(body, (str, bytes)):
        form = getattr(body, "__html__", None) or getattr(body, "_repr_html_", None)
        if form is not None:
            page = form()
    return Response(page, status, headers, "text/html; charset=utf-8")


#: The encoder of every JSON text the server writes for an application.
_STRICT_JSON = json_module.JSONEncoder(allow_nan=False)


def json_text(body: Any) -> str:
    """``body`` as JSON text (a :func:`json` response's, a dict or list sent on
    a WebSocket); NaN and the infinities, which JSON has not (RFC 8259 6),
    raise ``ValueError`` rather than go out as ``NaN``, which JSON parsers
    (a browser's ``JSON.parse``) refuse."""
    return _STRICT_JSON.encode(body)


def json(
    body: Any,
    status: int = 200,
    headers: HeadersLike | None = None,
    dumps: Callable[..., str] = json_text,
    *,
    content_type: str = "application/json",
    **kwargs: Any,
) -> Response:
    """An ``application/json`` response (or of ``content_type``:
    ``application/problem+json``) of ``dumps(body, **kwargs)``: as Sanic's,
    ``kwargs`` go to ``dumps`` (``indent=2``, ``ensure_ascii=False``; to
    Python's ``json.dumps()`` for the default, NaN still refused unless
    ``allow_nan=True``).

    Raises:
        ValueError: a float that JSON has no way to say (NaN, an infinity),
            with the default ``dumps``.
        TypeError: ``dumps`` is a str: Sanic's fourth argument, its
            content type, goes as ``content_type=`` here.
    """
    if isinstance(dumps, str):
        raise TypeError(
            f"json()'s fourth argument is dumps, not a content type ({dumps!r}): "
            "write content_type= (Sanic's json() takes it fourth)"
        )
    if not kwargs:
        return Response(dumps(body), status, headers, content_type)
    if dumps is json_text:
        kwargs.setdefault("allow_nan", False)
        return Response(json_module.dumps(body, **kwargs), status, headers, content_type)
    return Response(dumps(body, **kwargs), status, headers, content_type)


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


#: The statuses of a redirect: for good (301, 308), for now (302, 307), or to
#: see another resource (303).
REDIRECTS = frozenset((301, 302, 303, 307, 308))


def redirect(location: str, status: int = 302, headers: HeadersLike | None = None) -> Response:
    """A redirect to ``location``: a path (as :meth:`Router.url_for` gives) or a URL.

    302 unless told otherwise. A 303 sends a browser on with a GET (the
    answer to a form's POST); 307 and 308 have it send the same method and
    body again; browsers keep 301 and 308 as permanent. Spaces, controls,
    backslashes (which browsers read as ``/``: ``/\\evil.example`` would be
    another site) and non-ASCII characters in ``location`` are
    percent-encoded (as UTF-8), so that no header can be made of it; what is
    percent-encoded already stays. A host name with non-ASCII characters
    goes in its IDNA form (``xn--bcher-kva.example``), which every client
    can look up (RFC 3986 3.2.2).

    Raises:
        TypeError: ``status`` is no int (Sanic's ``redirect(to, headers,
            status)``, called in its order).
        ValueError: ``status`` is not a redirect's, or ``headers`` have a
            ``Location`` of their own.
    """
    if isinstance(status, bool) or not isinstance(status, int):
        raise TypeError(
            f"redirect(location, status=302, headers=None): status is an int, not "
            f"{type(status).__name__}; Sanic's redirect takes (to, headers, status): "
            "write headers= and status= by name"
        )
    if status not in REDIRECTS:
        raise ValueError(f"a redirect's status is 301, 302, 303, 307 or 308, not {status}")
    more = header_pairs(headers)
    if any(name.lower() == "location" for name, _ in more):
        raise ValueError("redirect() writes the Location: headers cannot have another")
    target = urllib.parse.quote(_ascii_host(location), safe=_LOCATION_SAFE)
    return Response(b"", status, [("Location", target), *more])


#: A URL's authority, after its scheme (if any) and "//": ``userinfo@`` (to
#: the last "@", as browsers read it), the host, ``:port``.
_AUTHORITY = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.-]*:)?//(?:[^/?#\\]*@)?([^/?#\\:\[@]*)")
#: IDNA 2008's deviation characters (sharp s, final sigma, ZWJ, ZWNJ): Python's
#: IDNA 2003 codec maps them away (``faß.de`` to ``fass.de``, another name),
#: browsers keep them (``xn--fa-hia.de``).
_DEVIATIONS = frozenset("\u00df\u03c2\u200c\u200d")


def _ascii_host(location: str) -> str:
    """``location`` with its host name, if it has non-ASCII characters, in
    IDNA's form; as it is when it has none, or no host, or one IDNA cannot
    write, or one Python's IDNA 2003 would write as another name (it is
    percent-encoded then, as the rest)."""
    if location.isascii():
        return location
    found = _AUTHORITY.match(location)
    if found is None or found[1].isascii() or not _DEVIATIONS.isdisjoint(found[1]):
        return location  # (percent-encoded: browsers look up what it names)
    try:
        host = found[1].encode("idna").decode("ascii")
    except UnicodeError:
        return location
    return location[: found.start(1)] + host + location[found.end(1) :]


#: What redirect() leaves as it is in a Location: ASCII punctuation, but the
#: backslash.
_LOCATION_SAFE = string.punctuation.replace("\\", "")


#: What a streamed body is made of: str pieces (sent as UTF-8) or bytes-like ones.
Piece = str | bytes | bytearray | memoryview
Chunks = AsyncIterable[Piece] | Iterable[Piece]


class StreamingResponse(CookieSetting):
    """An HTTP response whose body is sent piece by piece, as ``chunks`` yields it
    (``set_cookie()`` and ``delete_cookie()`` add to its headers).

    Only an HTTP route's handler may return one. The head goes first; each
    piece is written as it comes (chunked transfer coding, unless the headers
    give a ``Content-Length``), and the next is asked for once the client has
    taken enough of the last (``write_limit``): a slow reader slows the
    producer instead of filling memory. A client that leaves ends it: the
    handler's task is cancelled where it waits, and ``chunks`` is closed
    (an async generator's ``finally`` runs). A piece that fails once the head
    is out cannot become an error response: the connection closes, the
    body cut short (the connection reset, for an HTTP/1.0 client whose body
    its close would end; the error is logged and counted as a handler's). A
    ``HEAD`` request gets the head only; ``chunks`` is closed unread.

    Args:
        chunks: an async iterable (an async generator, say) or an iterable
            of str (sent as UTF-8) or bytes-like pieces. A plain iterable's
            next piece is taken in a thread (the default executor), since
            making it may block (reading a file).
        status: the status code (not 204 or 304, which have no body).
        headers: more headers, as a mapping or ``(name, value)`` pairs.
        content_type: the ``Content-Type``, unless ``headers`` has one; a
            ``text/*`` type without a charset says ``charset=utf-8`` (as str
            pieces are sent).

    Raises:
        TypeError: ``chunks`` is not iterable, or is a single str or bytes.
        ValueError: the status, or a header, cannot be sent (a
            ``Transfer-Encoding``, which is the server's to choose, among them).
    """

    __slots__ = ("chunks", "status", "headers")

    def __init__(
        self,
        chunks: Chunks,
        status: int = 200,
        headers: HeadersLike | None = None,
        content_type: str | None = "application/octet-stream",
    ) -> None:
        if isinstance(chunks, (str, bytes, bytearray, memoryview)) or not (
            hasattr(chunks, "__aiter__") or hasattr(chunks, "__iter__")
        ):
            raise TypeError(
                "a streamed body is an iterable or async iterable of str or bytes pieces, "
                f"not {type(chunks).__name__}{_called_for(chunks)}"
            )
        if not 200 <= status <= 599 or status in (204, 205, 304):
            raise ValueError(f"a streamed response's status is 200-599 with a body, not {status}")
        # (A text/* type says charset=utf-8: str pieces are sent so.)
        items = response_head_headers(headers, utf8_text_type(content_type))
        if any(name.lower() == "transfer-encoding" for name, _ in items):
            raise ValueError("Transfer-Encoding is the server's to choose for a streamed body")
        self.chunks = chunks
        self.status = status
        self.headers = items

    def __repr__(self) -> str:
        return f"<StreamingResponse {self.status}>"


def _called_for(chunks: object) -> str:
    """What to write instead of a function given to :func:`stream` (empty if
    it is none): the generator it makes, or for Sanic's ``streaming_fn``,
    which awaits ``response.write()``, a generator that yields."""
    if not callable(chunks):
        return ""
    name = getattr(chunks, "__name__", "pieces")
    if inspect.isasyncgenfunction(chunks) or inspect.isgeneratorfunction(chunks):
        return f": call it, stream({name}())"
    return (
        f": stream() takes the pieces a generator makes; Sanic's streaming_fn(response) is "
        "written here as an async generator that yields each piece it gave to "
        f"response.write(piece), then called: stream({name}())"
    )


def stream(
    chunks: Chunks,
    status: int = 200,
    headers: HeadersLike | None = None,
    content_type: str = "application/octet-stream",
) -> StreamingResponse:
    """A response whose body is sent as ``chunks`` yields it (:class:`StreamingResponse`).

    Example (server-sent events)::

        @routes.get("/events")
        async def events(request):
            async def ticks():
                for n in range(10):
                    yield f"data: {n}\n\n"
                    await asyncio.sleep(1)
            return stream(ticks(), content_type="text/event-stream",
                          headers={"Cache-Control": "no-cache"})
    """
    return StreamingResponse(chunks, status, headers, content_type)


def accept(subprotocol: str | None = None, headers: HeadersLike | None = None) -> Acceptance:
    """What an ``on_connect`` hook returns to accept the upgrade with a say in the ``101``.

    Args:
        subprotocol: the subprotocol to speak, one of ``request.subprotocols``
            (those the client offered), whether or not the route lists it;
            None keeps the route's choice.
        headers: more headers for the 101, as a mapping or ``(name, value)``
            pairs (``Set-Cookie`` several times, say).

    Raises:
        ValueError: a header is malformed, or one the handshake writes itself
            (``Upgrade``, ``Connection``, ``Sec-WebSocket-*``) or a 101 may not
            carry (``Content-Length``, ``Transfer-Encoding``).

    Example::

        def pick(request):
            if "chat.v2" in request.subprotocols:
                return accept("chat.v2", {"Set-Cookie": "seen=1; Path=/"})
            return text("Upgrade your client", 400)
    """
    return Acceptance(subprotocol, headers)


#: The same helpers under names that do not shadow the standard library's
#: ``json`` (nor anything else) when imported: ``from wsserver.response
#: import json_response``.
json_response = json
text_response = text
html_response = html


_COOKIES = (
    "call response.set_cookie(name, value, max_age=..., path=..., secure=..., httponly=..., "
    "samesite=...) and response.delete_cookie(name)"
)
#: Sanic's response attributes that a response has not, and what does the same.
_SANIC_INSTEAD = {
    "add_cookie": _COOKIES
    + "; its secure is False by default here (Sanic's add_cookie: True): say secure=True",
    "cookies": _COOKIES + " (Sanic's cookie jar, response.cookies[name] = value)",
}
# (A handler ported from Sanic is told what does the same here.)
_SAID = {
    name: f"response.{name}: a response has no {name} (Sanic's): {instead}"
    for name, instead in _SANIC_INSTEAD.items()
}
say_instead(Response, _SAID)
say_instead(StreamingResponse, _SAID)
