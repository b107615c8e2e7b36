"""Token authentication at the handshake, and a per-user rate limit.

Run it with ``python -m wsserver examples.secure:routes`` and connect to
``ws://127.0.0.1:8000/ws/secure?token=valid_token`` (or send
``Authorization: Bearer valid_token``, or the document's ``Authorization: valid_token``).

- No token: the upgrade is refused with ``401 Unauthorized`` (and a
  ``WWW-Authenticate: Bearer`` header); an unknown token: ``403 Forbidden``. Both
  are plain HTTP responses with a short text body, sent instead of the 101.
- Accepted clients get ``{"type": "authenticated", "user", "message"}``, then each of
  their messages back as ``{"type": "message", "user", "message", "timestamp"}`` (ISO 8601).
- At most ``RATE_LIMIT`` messages per ``RATE_WINDOW`` seconds per user (a sliding
  window shared by all of the user's connections); beyond that a message gets
  ``{"type": "error", "message": "Rate limit exceeded...", "retry_after": s}`` and
  the connection stays open.
"""

from __future__ import annotations

import collections
import hmac
import time
from datetime import UTC, datetime

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


@routes.websocket("/ws/secure", on_connect=authenticate)
async def secure(request: Request, ws: WebSocket) -> None:
    """Echo an authenticated user's messages, within the rate limit."""
    user: str = request.ctx.user
    await ws.send({"type": "authenticated", "user": user, "message": f"Authenticated as {user}"})
    async for message in ws:
        wait = allow(user)
        if wait:
            await ws.send(
                {
                    "type": "error",
                    "message": (
                        f"Rate limit exceeded: at most {RATE_LIMIT} messages "
                        f"per {RATE_WINDOW:g} seconds"
                    ),
                    "retry_after": round(wait, 3),
                }
            )
            continue
        if isinstance(message, bytes):
            await ws.send({"type": "error", "message": "Binary messages are not supported"})
            continue
        await ws.send(
            {
                "type": "message",
                "user": user,
                "message": message,
                "timestamp": datetime.now(UTC).isoformat(),
            }
        )
