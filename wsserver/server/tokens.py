"""The token that guards the server's own endpoints (``status_token``, ``metrics_token``).

A request shows it as ``?token=TOKEN`` or ``Authorization: Bearer TOKEN``
(what Prometheus's ``authorization`` scrape setting sends); it is compared
in constant time.
"""

from __future__ import annotations

import hmac
from urllib.parse import unquote

from ..app.request import Request
from ..protocol.http import Response, error_response

__all__ = ["has_token", "unauthorized", "NOT_STORED"]

#: What the server's own endpoints (the metrics, the status page) and their
#: 401 say to caches: live figures, kept to whoever has the token, that a cache
#: in front (nginx's proxy_cache keys by URL, not by ``Authorization``) must
#: not keep; in place of a ``Cache-Control`` that ``headers`` gives every response.
NOT_STORED = ("Cache-Control", "no-store")


def has_token(request: Request, token: str | None) -> bool:
    """Whether ``request`` shows ``token`` (any request, when ``token`` is None).

    A ``?token=`` is read both ways a ``+`` is: a space (form decoding) and a
    ``+`` as written, a base64 token's (``openssl rand -base64``) pasted into
    a URL.
    """
    if token is None:
        return True
    expected = token.encode()
    given = (request.args.get("token") or "").encode()  # (decoded from UTF-8)
    as_written = _query_token(request.query_string).encode()
    header = request.headers.get("authorization", "")
    bearer = b""
    if header.lower().startswith("bearer "):
        # (A header's bytes are its characters: latin-1. The token's, UTF-8.)
        bearer = header[7:].strip(" \t").encode("latin-1")
    # (Each compared, whatever the others give: the time says nothing of the
    # token; and a right one in the header is not hidden by an old ?token=.)
    return (
        hmac.compare_digest(given, expected)
        | hmac.compare_digest(as_written, expected)
        | hmac.compare_digest(bearer, expected)
    )


def _query_token(query: str) -> str:
    """The first ``token`` of a query string, percent-decoded, its ``+`` kept."""
    for field in query.split("&"):
        name, _, value = field.partition("=")
        if unquote(name.replace("+", " ")) == "token":
            return unquote(value)
    return ""


def unauthorized() -> Response:
    """The answer to a request without the token: 401."""
    return error_response(
        401, "A token is needed: ?token=", [("WWW-Authenticate", "Bearer"), NOT_STORED]
    )
