"""The opening handshake (RFC 6455 section 4.2), sans-I/O.

:func:`check_request` validates an upgrade request and raises
:class:`~wsserver.errors.HandshakeError` with the HTTP status to answer;
:func:`accept_response` builds the ``101 Switching Protocols``
response; :func:`error_response` builds a complete HTTP error response.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Sequence
from http import HTTPStatus

from .errors import HandshakeError
from .request import Headers

__all__ = [
    "GUID",
    "accept_key",
    "check_request",
    "select_subprotocol",
    "accept_headers",
    "accept_response",
    "error_response",
    "comma_tokens",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


_GUID = GUID.encode("ascii")


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1(key.encode("ascii") + _GUID).digest()
    return binascii.b2a_base64(digest, newline=False).decode("ascii")


def comma_tokens(headers: Headers, name: str) -> list[str]:
    """The comma-separated elements of every ``name`` header, stripped, empty ones dropped."""
    tokens = []
    for value in headers.getall(name):
        for item in value.split(","):
            item = item.strip()
            if item:
                tokens.append(item)
    return tokens


def _has_token(headers: Headers, name: str, token: str) -> bool:
    """Whether the comma-separated ``name`` headers hold ``token`` (lowercase; case-insensitive)."""
    for value in headers.getall(name):
        # Most requests send exactly the token: no split needed.
        if value.lower() == token:
            return True
        for item in value.split(","):
            if item.strip().lower() == token:
                return True
    return False


def is_upgrade_request(headers: Headers) -> bool:
    """Whether the request asks to upgrade to WebSocket."""
    return _has_token(headers, "upgrade", "websocket")


def check_request(method: str, http_version: str, headers: Headers) -> str:
    """Validate a WebSocket upgrade request; return its ``Sec-WebSocket-Key``.

    Raises:
        HandshakeError: 426 for a request that is not a WebSocket upgrade or
            asks for another version than 13; 405 for a method other than GET;
            400 for anything else that is wrong.
    """
    if not is_upgrade_request(headers):
        raise HandshakeError(
            426,
            "This is a WebSocket endpoint: send a WebSocket upgrade request.",
            [("Upgrade", "websocket"), ("Connection", "Upgrade")],
        )
    if method != "GET":
        raise HandshakeError(405, "WebSocket upgrade requires GET.", [("Allow", "GET")])
    if http_version != "1.1":
        raise HandshakeError(400, "WebSocket upgrade requires HTTP/1.1.")
    if not _has_token(headers, "connection", "upgrade"):
        raise HandshakeError(400, "The Connection header must contain 'upgrade'.")
    versions = headers.getall("sec-websocket-version")
    if len(versions) != 1 or versions[0].strip() != "13":
        raise HandshakeError(
            426,
            "Unsupported Sec-WebSocket-Version: this server speaks version 13.",
            [("Sec-WebSocket-Version", "13")],
        )
    keys = headers.getall("sec-websocket-key")
    if len(keys) != 1:
        raise HandshakeError(400, "Exactly one Sec-WebSocket-Key header is required.")
    key = keys[0].strip()
    try:
        # strict_mode: only the base64 alphabet, padding only at the end.
        raw = binascii.a2b_base64(key.encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(400, "Sec-WebSocket-Key must be base64 of 16 bytes.")
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


def check_origin(headers: Headers, allowed: frozenset[str | None] | None) -> None:
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
    key: str, subprotocol: str | None = None, extensions: str | None = None
) -> bytes:
    """The bytes of the ``101 Switching Protocols`` response (:func:`accept_headers`)."""
    # Built directly rather than from accept_headers(): this runs once per
    # connection, and a test checks that both agree.
    head = _HEAD_101 + accept_key(key)
    if subprotocol is not None:
        head += "\r\nSec-WebSocket-Protocol: " + subprotocol
    if extensions is not None:
        head += "\r\nSec-WebSocket-Extensions: " + extensions
    return (head + "\r\n\r\n").encode("latin-1")


_HEAD_101 = (
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: "
)


def error_response(
    status: int,
    body: str | bytes | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The bytes of a complete HTTP/1.1 response that closes the connection.

    ``body`` defaults to the status phrase; a str body is sent as
    ``text/plain; charset=utf-8``.
    """
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    if body is None:
        body = phrase
    for name, value in headers:
        if any(c in name or c in value for c in "\r\n\0"):
            raise ValueError(f"invalid character in response header {name!r}")
    names = {name.lower() for name, _ in headers}
    out = list(headers)
    if isinstance(body, str):
        body = (body + "\n").encode("utf-8")
        if "content-type" not in names:
            out.append(("Content-Type", "text/plain; charset=utf-8"))
    out.append(("Content-Length", str(len(body))))
    out.append(("Connection", "close"))
    head = f"HTTP/1.1 {status} {phrase}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in out)
    return head.encode("latin-1") + b"\r\n" + body
