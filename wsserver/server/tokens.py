"""The token that guards the server's own endpoints (``status_token``, ``metrics_token``).

A request shows it as ``?token=TOKEN`` or ``Authorization: Bearer TOKEN``
(what Prometheus's ``authorization`` scrape setting sends); it is compared
in constant time.
"""

from __future__ import annotations

import hmac

from ..app.request import Request
from ..protocol.http import Response, error_response

__all__ = ["has_token", "unauthorized"]


def has_token(request: Request, token: str | None) -> bool:
    """Whether ``request`` shows ``token`` (any request, when ``token`` is None)."""
    if token is None:
        return True
    given = (request.args.get("token") or "").encode()  # (decoded from UTF-8)
    bearer = request.headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        # (A header's bytes are its characters: latin-1. The token's, UTF-8.)
        given = given or bearer[7:].strip(" \t").encode("latin-1")
    return hmac.compare_digest(given, token.encode())


def unauthorized() -> Response:
    """The answer to a request without the token: 401."""
    return error_response(401, "A token is needed: ?token=", [("WWW-Authenticate", "Bearer")])
