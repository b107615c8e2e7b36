"""The opening handshake (RFC 6455 section 4.2), sans-I/O: accept or deny an upgrade.

:func:`decide` takes what is known of an upgrade request when it arrives (its
method, version and headers, the route's options, the server's settings and
capacity) and returns either an :class:`Accept`, which holds everything the
``101 Switching Protocols`` says and the permessage-deflate agreement, or the
:class:`~wsserver.protocol.http.Response` that denies the upgrade. An
``on_connect`` hook, which the I/O layer runs after an accept, has the last
word through :meth:`Accept.answered`: None, a :class:`Response`, or an
:class:`Acceptance` (a subprotocol and more headers for the 101). Nothing here
does I/O.

The checks, each raising :class:`~wsserver.errors.HandshakeError` with the
status to answer, are also usable alone: :func:`check_request`,
:func:`check_origin`, :func:`select_subprotocol`.
"""

from __future__ import annotations

import binascii
import hashlib
import ipaddress
import re
from collections.abc import Collection, Iterable, Sequence
from urllib.parse import urlsplit

from ..errors import HandshakeError
from .cookies import CookieSetting
from .deflate import DeflateSettings, PerMessageDeflate, negotiate
from .http import (
    ErrorFormat,
    Headers,
    HeadersLike,
    Response,
    error_response,
    header_pairs,
    header_text,
    valid_header,
    with_defaults,
)
from .syntax import OWS, TOKEN_RE

__all__ = [
    "GUID",
    "Accept",
    "Acceptance",
    "decide",
    "accept_key",
    "check_request",
    "check_origin",
    "is_same_origin",
    "select_subprotocol",
    "accept_headers",
    "accept_response",
    "comma_tokens",
    "is_upgrade_request",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


_GUID = GUID.encode("ascii")


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1(key.encode("ascii") + _GUID).digest()
    return binascii.b2a_base64(digest, newline=False).decode("ascii")


def comma_tokens(headers: Headers, name: str) -> list[str]:
    """The comma-separated elements of every ``name`` header, trimmed, empty ones dropped.

    Only spaces and tabs are trimmed (HTTP's OWS, RFC 9110 5.6.3), never other
    whitespace.
    """
    return _tokens(headers.getall(name))


def _tokens(values: list[str]) -> list[str]:
    """:func:`comma_tokens` of a header's ``values``."""
    tokens = []
    for value in values:
        for item in value.split(","):
            item = item.strip(OWS)
            if item:
                tokens.append(item)
    return tokens


def _has_token(values: list[str], token: str) -> bool:
    """Whether comma-separated header ``values`` hold ``token`` (lowercase; case-insensitive)."""
    for value in values:
        # Most requests send exactly the token: no split needed.
        if value.lower() == token:
            return True
        for item in value.split(","):
            if item.strip(OWS).lower() == token:
                return True
    return False


def _names_websocket(upgrade_values: list[str]) -> bool:
    # Joined, not a generator, which would cost more than the test.
    return bool(upgrade_values) and "websocket" in ",".join(upgrade_values).lower()


def is_upgrade_request(headers: Headers) -> bool:
    """Whether the request asks to upgrade to WebSocket (well formed or not).

    A request whose ``Upgrade`` header names WebSocket at all goes to the
    handshake, which answers a malformed one with 400 (:func:`check_request`).
    """
    return _names_websocket(headers.getall("upgrade"))


#: The headers :func:`check_request` reads, gathered in one pass.
_CHECKED = frozenset(
    (
        "upgrade",
        "connection",
        "sec-websocket-version",
        "sec-websocket-key",
        "sec-websocket-protocol",
    )
)


#: What a 426 says (RFC 9110 15.5.22: it MUST send Upgrade; 7.8: with the
#: "upgrade" connection option).
_UPGRADE_TO = (("Upgrade", "websocket"), ("Connection", "Upgrade"))


def check_request(method: str, http_version: str, headers: Headers) -> str:
    """Validate a WebSocket upgrade request; return its ``Sec-WebSocket-Key``.

    Raises:
        HandshakeError: 426 for a request that is not a WebSocket upgrade or
            asks for another version than 13; 405 for a method other than GET;
            400 for anything else that is wrong.
    """
    found = headers.grouped(_CHECKED)
    upgrades = found.get("upgrade", [])
    if not _names_websocket(upgrades):
        raise HandshakeError(
            426, "This is a WebSocket endpoint: send a WebSocket upgrade request.", [*_UPGRADE_TO]
        )
    if method != "GET":
        raise HandshakeError(405, "WebSocket upgrade requires GET.", [("Allow", "GET")])
    if http_version != "1.1":
        raise HandshakeError(400, "WebSocket upgrade requires HTTP/1.1.")
    if not _has_token(upgrades, "websocket"):
        raise HandshakeError(400, "The Upgrade header must be 'websocket'.")
    if not _has_token(found.get("connection", []), "upgrade"):
        raise HandshakeError(400, "The Connection header must contain 'upgrade'.")
    versions = found.get("sec-websocket-version", [])
    version = versions[0].strip(OWS) if len(versions) == 1 else ""
    if version != "13":
        elements = [v.strip(OWS) for value in versions for v in value.split(",")]
        if not all(v.isascii() and v.isdigit() for v in elements):
            raise HandshakeError(400, "Malformed Sec-WebSocket-Version.")
        if len(elements) > 1:  # (RFC 6455 11.3.5: once in a request; a 426 would say "send 13")
            raise HandshakeError(400, "Sec-WebSocket-Version must be one version, sent once.")
        said = "Unsupported" if versions else "Missing"
        raise HandshakeError(
            426,
            f"{said} Sec-WebSocket-Version: this server speaks version 13.",
            [*_UPGRADE_TO, ("Sec-WebSocket-Version", "13")],
        )
    keys = found.get("sec-websocket-key", [])
    if len(keys) != 1:
        raise HandshakeError(400, "Exactly one Sec-WebSocket-Key header is required.")
    key = keys[0].strip(OWS)
    try:
        # strict_mode: only the base64 alphabet, padding only at the end.
        raw = binascii.a2b_base64(key.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(400, "Sec-WebSocket-Key must be base64 of 16 bytes.")
    if "sec-websocket-protocol" in found:
        # RFC 6455 4.1, 11.3.4: each subprotocol offered is a token.
        for offered in _tokens(found["sec-websocket-protocol"]):
            if TOKEN_RE.fullmatch(offered) is None:
                raise HandshakeError(400, "Malformed Sec-WebSocket-Protocol: not a token.")
    return key


def select_subprotocol(
    headers: Headers, supported: Sequence[str], required: bool = False
) -> str | None:
    """The first subprotocol of the client's offer that ``supported`` contains.

    Raises:
        HandshakeError: 400 when ``required`` and there is none.
    """
    if supported:
        for offered in comma_tokens(headers, "sec-websocket-protocol"):
            if offered in supported:
                return offered
    if required:
        raise HandshakeError(
            400,
            "This endpoint requires one of the subprotocols: " + ", ".join(supported),
            [("Sec-WebSocket-Protocol", ", ".join(supported))],
        )
    return None


def check_origin(headers: Headers, allowed: Collection[str | None] | None) -> None:
    """Check the ``Origin`` header against ``allowed`` (None: anything goes).

    ``allowed`` holds exact origins; None in it admits requests without an
    Origin header (non-browser clients).

    Raises:
        HandshakeError: 403 when the origin is not allowed.
    """
    if allowed is None:
        return
    origins = headers.getall("origin")
    if len(origins) > 1:
        raise HandshakeError(403, "More than one Origin header.")
    origin = origins[0] if origins else None
    if origin not in allowed:
        raise HandshakeError(403, f"Origin not allowed: {origin or '(none)'}")


_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}

_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*")
#: What a URL's host never holds (WHATWG's forbidden host code points, ASCII ones).
_NOT_IN_HOST = re.compile(r"[\x00-\x20\[\]\\<>^|%\"'`{}]")

#: What an allowed origin looks like, said when one cannot be.
ORIGIN_FORM = (
    "scheme://host[:port] as browsers send it (lowercase, no path, no default port), "
    "'null' or 'file://'"
)


def origin_problem(origin: str) -> str | None:
    """Why ``origin`` can never equal an ``Origin`` header, or None when it can.

    :func:`check_origin` compares exactly, and a browser sends an origin's
    serialisation (RFC 6454 6.2): a lowercase scheme, the host (for http(s)
    and ws(s): lowercase, in punycode) and the port only when it is not the
    scheme's default; nothing else. ``null`` (sandboxed pages) and ``file://``
    (pages opened from disk in Chromium-based shells) are what they send
    instead. A configured origin of another form admits no browser at all.
    """
    if origin in ("null", "file://"):
        return None
    if any(c.isspace() for c in origin):
        return "it has whitespace"
    scheme, sep, rest = origin.partition("://")
    if scheme != scheme.lower():
        return "browsers send the scheme in lowercase"
    if not sep or _SCHEME.fullmatch(scheme) is None or not rest:
        return "it is no scheme://host"
    if any(c in rest for c in "/?#"):
        return "an Origin header has no path, query or fragment (not even '/')"
    if "@" in rest:
        return "an Origin header has no user name"
    if "*" in rest:
        return "no wildcard: each origin is compared exactly"
    if not rest.isascii():
        return "browsers send an international host name in punycode (xn--...)"
    if rest.startswith("["):  # an IPv6 address
        end = rest.find("]")
        host, port = rest[: end + 1], rest[end + 1 :]
        if end < 0 or (port and not port.startswith(":")):
            return "it is no scheme://[IPv6 address][:port]"
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{host} is no IPv6 address"
        if "%" in host:
            return "browsers send no IPv6 zone"
        written = _ipv6_as_browsers_write_it(address)
        if host[1:-1] != written:
            return f"browsers write this IPv6 address [{written}]"
        port_text = port[1:] if port else None
    else:
        host, colon, port_text = rest.partition(":")
        if not colon:
            port_text = None
        if _NOT_IN_HOST.search(host) is not None:
            return "it is no scheme://host"
        if scheme in _DEFAULT_PORTS and _ends_in_a_number(host):
            # (A browser takes such a host for an IPv4 address: 127.1 is 127.0.0.1.)
            try:
                canonical = str(ipaddress.IPv4Address(host)) == host
            except ValueError:  # (leading zeros, a fifth number, a name ending in one)
                canonical = False
            if not canonical:
                return (
                    "browsers write an IPv4 address as four decimal numbers (127.0.0.1), "
                    "and a host name never ends in a number"
                )
    if not host:
        return "it is no scheme://host"
    if port_text is not None:
        if not port_text.isdigit() or port_text != str(int(port_text)):
            return "its port is not written as browsers do (digits, no leading zero)"
        if not 0 < int(port_text) <= 65535:
            return "its port is not from 1 to 65535"
        if int(port_text) == _DEFAULT_PORTS.get(scheme):
            return f"browsers leave the default port {port_text} out"
    if scheme in _DEFAULT_PORTS and host != host.lower():
        return "browsers send the host in lowercase"
    return None


def _ends_in_a_number(host: str) -> bool:
    """Whether a URL parser takes ``host`` for an IPv4 address (WHATWG URL,
    "ends in a number"): its last label (a final dot aside) is decimal
    digits, or ``0x`` and hexadecimal ones."""
    labels = host.split(".")
    if len(labels) > 1 and not labels[-1]:
        labels.pop()
    last = labels[-1]
    return (last.isascii() and last.isdigit()) or re.fullmatch(
        r"0[xX][0-9a-fA-F]*", last
    ) is not None


def _ipv6_as_browsers_write_it(address: ipaddress.IPv6Address) -> str:
    """``address`` as a URL holds it (WHATWG URL, IPv6 serializer): eight
    lowercase hexadecimal pieces, the first longest run of two or more zero
    pieces written ``::``, never a dotted IPv4 tail."""
    packed = address.packed
    pieces = [f"{int.from_bytes(packed[i : i + 2], 'big'):x}" for i in range(0, 16, 2)]
    start, length, i = -1, 1, 0
    while i < 8:
        j = i
        while j < 8 and pieces[j] == "0":
            j += 1
        if j - i > length:
            start, length = i, j - i
        i = max(j, i + 1)
    if start < 0:
        return ":".join(pieces)
    return ":".join(pieces[:start]) + "::" + ":".join(pieces[start + length :])


def bad_origin(origins: Iterable[str | None]) -> tuple[str, str] | None:
    """The first of ``origins`` that no browser sends, and why (see :func:`origin_problem`)."""
    for origin in origins:
        problem = None if origin is None else origin_problem(origin)
        if origin is not None and problem is not None:
            return origin, problem
    return None


def is_same_origin(origin: str, host: str, scheme: str) -> bool:
    """Whether ``origin`` (an ``Origin`` header) names the server at ``host``
    (``Host``) reached over ``scheme`` (``"http"`` or ``"https"``).

    Schemes and hosts compare case-insensitively, and a port left out is the
    scheme's default. ``null`` and anything unparsable are not the same.
    """
    try:
        theirs = urlsplit(origin)
        ours = urlsplit("//" + host)
        default = _DEFAULT_PORTS.get(theirs.scheme.lower())
        if theirs.scheme.lower() != scheme.lower():
            return False
        if default is None or not theirs.hostname or theirs.path or theirs.query:
            return False
        return (theirs.hostname, theirs.port or default) == (
            ours.hostname,
            ours.port or default,
        ) and ours.path == ""
    except ValueError:  # a port out of range or not a number
        return False


def accept_headers(
    key: str, subprotocol: str | None = None, extensions: str | None = None
) -> list[tuple[str, str]]:
    """Headers of the ``101 Switching Protocols`` response."""
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
    ]
    if subprotocol is not None:
        headers.append(("Sec-WebSocket-Protocol", subprotocol))
    if extensions is not None:
        headers.append(("Sec-WebSocket-Extensions", extensions))
    return headers


def accept_response(
    key: str,
    subprotocol: str | None = None,
    extensions: str | None = None,
    extra_headers: Sequence[tuple[str, str]] = (),
    defaults: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The bytes of the ``101 Switching Protocols`` response (:func:`accept_headers`).

    ``defaults`` (the server's ``Date``, ``Server`` ..., see
    :func:`.http.with_defaults`) follow the WebSocket headers, but for those
    ``extra_headers`` has too; ``extra_headers`` (already checked, see
    :meth:`Accept.with_answer`) come last.
    """
    # Built directly rather than from accept_headers(): this runs once per
    # connection, and a test checks that both agree.
    head = _HEAD_101 + accept_key(key)
    if subprotocol is not None:
        head += "\r\nSec-WebSocket-Protocol: " + subprotocol
    if extensions is not None:
        head += "\r\nSec-WebSocket-Extensions: " + extensions
    for name, value in with_defaults(list(extra_headers), defaults):
        head += f"\r\n{name}: {value}"
    return (head + "\r\n\r\n").encode("latin-1")


#: Headers a 1xx response may not have (RFC 9110 8.6, RFC 9112 6.1).
_NOT_IN_1XX = frozenset({"content-length", "transfer-encoding"})

#: Headers of the 101 that the handshake itself writes (and every other
#: ``Sec-WebSocket-*``: RFC 6455's, no application's to add).
_OWN_101_HEADERS = frozenset({"upgrade", "connection"})


_HEAD_101 = (
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: "
)


class Accept:
    """An accepted upgrade: what the ``101 Switching Protocols`` says, and what was agreed.

    Attributes:
        key: the client's ``Sec-WebSocket-Key``.
        subprotocol: the subprotocol chosen, or None.
        deflate: the permessage-deflate agreement, or None.
        extensions: the ``Sec-WebSocket-Extensions`` value of the 101, or None.
        extra_headers: more headers for the 101 (an ASGI application's).
    """

    __slots__ = ("key", "subprotocol", "deflate", "extensions", "extra_headers")

    def __init__(
        self,
        key: str,
        subprotocol: str | None = None,
        deflate: PerMessageDeflate | None = None,
        extensions: str | None = None,
        extra_headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.key = key
        self.subprotocol = subprotocol
        self.deflate = deflate
        self.extensions = extensions
        self.extra_headers = extra_headers

    def __repr__(self) -> str:
        return f"<Accept subprotocol={self.subprotocol!r} extensions={self.extensions!r}>"

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The headers of the 101 response."""
        return [
            *accept_headers(self.key, self.subprotocol, self.extensions),
            *self.extra_headers,
        ]

    def response(self, defaults: Sequence[tuple[str, str]] = ()) -> bytes:
        """The bytes of the 101, with the server's ``defaults`` (see :func:`accept_response`)."""
        return accept_response(
            self.key, self.subprotocol, self.extensions, self.extra_headers, defaults
        )

    def with_answer(
        self,
        offered: Sequence[str],
        subprotocol: str | None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Accept:
        """This accept with the subprotocol and extra 101 headers an application chose.

        Args:
            offered: the subprotocols the client offered (``Sec-WebSocket-Protocol``).
            subprotocol: the one chosen, or None.
            headers: more headers for the 101.

        Raises:
            ValueError: the subprotocol was not offered (RFC 6455 4.2.2 allows
                only one of the client's), a header is malformed (a name that
                is not a token; CR, LF or NUL in a value), or it is one the
                handshake writes itself (``Sec-WebSocket-Protocol``: use the
                subprotocol).
        """
        if subprotocol is not None and subprotocol not in offered:
            raise ValueError(
                f"subprotocol {subprotocol!r} was not offered by the client "
                f"(it offered: {', '.join(offered) or 'none'})"
            )
        extra = checked_101_headers(headers)
        return Accept(self.key, subprotocol, self.deflate, self.extensions, extra)

    def answered(self, answer: object, offered: Sequence[str] = ()) -> Accept | Response:
        """The final verdict once an ``on_connect`` hook answered ``answer``.

        None keeps the accept; a :class:`~wsserver.protocol.http.Response`
        denies the upgrade with exactly that response; an :class:`Acceptance`
        keeps it with its subprotocol (when it names one; else the route's
        choice stays) and its headers in the 101 (see :meth:`with_answer`).

        Args:
            answer: what the hook returned.
            offered: the subprotocols the client offered.

        Raises:
            TypeError: ``answer`` is none of those.
            ValueError: the acceptance names a subprotocol the client did not offer.
        """
        if answer is None:
            return self
        if isinstance(answer, Response):
            return answer
        if isinstance(answer, Acceptance):
            subprotocol = self.subprotocol if answer.subprotocol is None else answer.subprotocol
            return self.with_answer(offered, subprotocol, answer.headers)
        raise TypeError(
            f"on_connect hook returned {type(answer).__name__}, not None, a Response or an accept()"
        )


class Acceptance(CookieSetting):
    """An ``on_connect`` hook's yes, with what the ``101`` should say (see
    :func:`wsserver.response.accept`, which makes one; ``set_cookie()`` and
    ``delete_cookie()`` add to its headers).

    Attributes:
        subprotocol: the subprotocol to speak (one the client offered), or
            None to keep the route's choice.
        headers: more headers for the 101 (``Set-Cookie``, say).

    Raises:
        TypeError: ``subprotocol`` is not a str (or None).
        ValueError: a header is malformed or one the 101 may not carry (see
            :func:`checked_101_headers`).
    """

    __slots__ = ("subprotocol", "headers")

    def __init__(self, subprotocol: str | None = None, headers: HeadersLike | None = None) -> None:
        if subprotocol is not None and not isinstance(subprotocol, str):
            raise TypeError(f"subprotocol must be a str or None, not {type(subprotocol).__name__}")
        self.subprotocol = subprotocol
        self.headers = checked_101_headers(header_pairs(headers))

    def __repr__(self) -> str:
        return f"<Acceptance subprotocol={self.subprotocol!r} headers={len(self.headers)}>"


def checked_101_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` as a list, once each is checked to be fit for a 101 response.

    Raises:
        ValueError: a header is malformed (a name that is not a token; CR, LF
            or NUL in a value), one the handshake writes itself (``Upgrade``,
            ``Connection``, ``Sec-WebSocket-*``: the subprotocol is chosen
            apart), or one a 1xx response may not have (``Content-Length``,
            ``Transfer-Encoding``).
    """
    checked = []
    for name, given in headers:
        value = header_text(name, given)  # (an int's digits, as a response's)
        if not valid_header(name, value):
            raise ValueError(f"invalid header in the 101 response: {name!r}: {value!r}")
        lowered = name.lower()
        if lowered in _OWN_101_HEADERS or lowered.startswith("sec-websocket-"):
            raise ValueError(f"the handshake writes the {name} header itself")
        if lowered in _NOT_IN_1XX:
            raise ValueError(f"a 101 response has no body: no {name} header")
        checked.append((name, value))
    return checked


def over_capacity(
    open_connections: int, max_connections: int | None, error_format: ErrorFormat = "text"
) -> Response | None:
    """The 503 for one more WebSocket when ``open_connections`` reached
    ``max_connections`` (None: no limit), or None if there is room.

    :func:`decide` asks when a handshake begins; a handshake whose answer
    takes time (an ``on_connect`` hook, an ASGI application) asks again
    before its 101, as others may have opened meanwhile.
    """
    if max_connections is not None and open_connections >= max_connections:
        return error_response(503, "Too many connections.", [("Retry-After", "1")], error_format)
    return None


def decide(
    method: str,
    http_version: str,
    headers: Headers,
    *,
    subprotocols: Sequence[str] = (),
    require_subprotocol: bool = False,
    origins: Collection[str | None] | None = None,
    deflate: DeflateSettings | None = None,
    shutting_down: bool = False,
    open_connections: int = 0,
    max_connections: int | None = None,
    error_format: ErrorFormat = "text",
) -> Accept | Response:
    """Accept an upgrade request to a WebSocket route, or deny it.

    The checks, in order: the request itself (:func:`check_request`: 426,
    405 or 400), its ``Origin`` (403), the subprotocol (400 when one is
    required and none offered), then the server's capacity (503 while it
    shuts down or once ``open_connections`` reached ``max_connections``).
    permessage-deflate is agreed when ``deflate`` is given and the client
    offers it acceptably.

    Args:
        method, http_version, headers: the request's.
        subprotocols: the route's subprotocols, see :func:`select_subprotocol`.
        require_subprotocol: deny clients that offer none of them.
        origins: the ``Origin`` values accepted (None: any), see :func:`check_origin`.
        deflate: the server's permessage-deflate settings; None when it is off.
        shutting_down: whether the server is shutting down.
        open_connections: the WebSocket connections open now.
        max_connections: how many may be open at once (None: no limit).
        error_format: the body format of a denial (see :func:`.http.error_response`).

    Returns:
        An :class:`Accept`, or the :class:`~wsserver.protocol.http.Response`
        to deny the upgrade with (it closes the connection).
    """
    try:
        key = check_request(method, http_version, headers)
        check_origin(headers, origins)
        subprotocol = select_subprotocol(headers, subprotocols, require_subprotocol)
    except HandshakeError as exc:
        return error_response(exc.status, exc.message, exc.headers, error_format)
    if shutting_down:
        return error_response(503, "Server is shutting down.", [("Retry-After", "1")], error_format)
    full = over_capacity(open_connections, max_connections, error_format)
    if full is not None:
        return full
    if deflate is not None:
        agreed = negotiate(headers.getall("sec-websocket-extensions"), deflate)
        if agreed is not None:
            return Accept(key, subprotocol, *agreed)
    return Accept(key, subprotocol)
