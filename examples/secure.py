"""Token authentication and a per-user rate limit, two ways: the document's, and ours.

Run it with ``python -m wsserver examples.secure:routes``. A client authenticates with
``?token=valid_token``, ``Authorization: Bearer valid_token``, or the document's
``Authorization: valid_token``.

``/ws/secure`` is the Sanic-style document's pattern, at the document's path so a client
written against the document works unchanged: the connection is accepted (101), then the
handler checks the token and closes it with 1008 when it must. The seed document is not in
this repository; the close reasons are the project's texts:

- no token: ``close(1008, "Authentication required")``;
- an unknown token: ``close(1008, "Invalid token")``;
- over the rate limit: ``close(1008, "Rate limit exceeded")``.

``/ws/secure/handshake`` is the better pattern: the ``authenticate`` hook decides before the
101, so a client that will be refused never gets a WebSocket at all, and the refusal is a real
HTTP status that a browser, a proxy or a log can see: ``401 Unauthorized`` without a token
(with ``WWW-Authenticate: Bearer``), ``403 Forbidden`` with an unknown one, each with a short
text body. Over the rate limit, a message is answered ``{"type": "error", "message": "Rate
limit exceeded...", "retry_after": s}`` and the connection stays open.

On both paths an accepted client gets ``{"type": "authenticated", "user", "message"}``, then
each of its text messages back as ``{"type": "message", "user", "message", "timestamp"}``
(ISO 8601); a binary message gets ``{"type": "error", "message": "Binary messages are not
supported"}``. At most ``RATE_LIMIT`` messages per ``RATE_WINDOW`` seconds per user (a
sliding window shared by all of the user's connections, on both paths).
"""

from __future__ import annotations

import collections
import hmac
import time
from datetime import UTC, datetime
from typing import Any

from wsserver import Request, Router, WebSocket
from wsserver.response import Response, text

routes = Router()

#: token -> user name. A real server would look tokens up in a store.
TOKENS: dict[str, str] = {"valid_token": "demo_user"}

#: Messages allowed per user in any RATE_WINDOW seconds.
RATE_LIMIT = 10
RATE_WINDOW = 60.0
#: The clock of the rate limiter (tests may replace it).
clock = time.monotonic

#: user -> times of their accepted messages within the window, oldest first.
message_times: dict[str, collections.deque[float]] = {}

#: The reasons of /ws/secure's 1008 closes (the project's texts for the document's).
AUTHENTICATION_REQUIRED = "Authentication required"
INVALID_TOKEN = "Invalid token"
RATE_LIMIT_EXCEEDED = "Rate limit exceeded"


def token_of(request: Request) -> str | None:
    """The token from ``?token=``, or the ``Authorization`` header: ``Bearer <token>``, or the
    raw value alone (the Sanic-style document's form)."""
    token = request.args.get("token")
    if token:
        return str(token)
    value = request.headers.get("authorization", "").strip(" \t")
    scheme, space, credentials = value.partition(" ")
    if not space:
        # The raw token; "Bearer" alone (its OWS trimmed away) carries none.
        return value if value and value.lower() != "bearer" else None
    if scheme.lower() == "bearer":
        return credentials.strip(" \t") or None
    return None  # another scheme (Basic, ...): no token of ours


def user_for(token: str) -> str | None:
    """The user a token belongs to, compared in constant time."""
    found = None
    for known, user in TOKENS.items():
        if hmac.compare_digest(known.encode(), token.encode()):
            found = user
    return found


def authenticate(request: Request) -> Response | None:
    """Handshake hook: 401 without a token, 403 with an unknown one."""
    token = token_of(request)
    if token is None:
        return text(
            "Unauthorized: a token is required (?token= or Authorization: Bearer)",
            401,
            [("WWW-Authenticate", 'Bearer realm="wsserver"')],
        )
    user = user_for(token)
    if user is None:
        return text("Forbidden: invalid token", 403)
    request.ctx.user = user
    return None


def allow(user: str) -> float:
    """Count a message of ``user``: 0 if allowed, else seconds until one is."""
    now = clock()
    times = message_times.setdefault(user, collections.deque())
    while times and times[0] <= now - RATE_WINDOW:
        times.popleft()
    if len(times) >= RATE_LIMIT:
        return max(times[0] + RATE_WINDOW - now, 0.001)
    times.append(now)
    return 0.0


def authenticated(user: str) -> dict[str, Any]:
    """The first message of an accepted connection."""
    return {"type": "authenticated", "user": user, "message": f"Authenticated as {user}"}


def reply(user: str, message: str | bytes) -> dict[str, Any]:
    """The answer to one of ``user``'s messages (within the rate limit)."""
    if isinstance(message, bytes):
        return {"type": "error", "message": "Binary messages are not supported"}
    return {
        "type": "message",
        "user": user,
        "message": message,
        "timestamp": datetime.now(UTC).isoformat(),
    }


@routes.websocket("/ws/secure")
async def secure(request: Request, ws: WebSocket) -> None:
    """The document's pattern: accept, then check the token, and close with 1008 to refuse."""
    token = token_of(request)
    if token is None:
        await ws.close(1008, AUTHENTICATION_REQUIRED)
        return
    user = user_for(token)
    if user is None:
        await ws.close(1008, INVALID_TOKEN)
        return
    await ws.send(authenticated(user))
    async for message in ws:
        if allow(user):
            await ws.close(1008, RATE_LIMIT_EXCEEDED)
            return
        await ws.send(reply(user, message))


@routes.websocket("/ws/secure/handshake", on_connect=authenticate)
async def secure_handshake(request: Request, ws: WebSocket) -> None:
    """Ours: refused clients got 401/403 at the handshake; over the limit, an error message."""
    user: str = request.ctx.user
    await ws.send(authenticated(user))
    async for message in ws:
        wait = allow(user)
        if wait:
            await ws.send(
                {
                    "type": "error",
                    "message": (
                        f"{RATE_LIMIT_EXCEEDED}: at most {RATE_LIMIT} messages "
                        f"per {RATE_WINDOW:g} seconds"
                    ),
                    "retry_after": round(wait, 3),
                }
            )
            continue
        await ws.send(reply(user, message))
