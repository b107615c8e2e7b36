"""Multi-room chat, on one process or many (``--workers``, machines) sharing a broker.

Run it with ``python -m wsserver examples.chat:routes`` (or ``make run``) and open
http://127.0.0.1:8000/ in a browser or two. On several processes, give them a
broker: ``python -m wsserver examples.chat:routes --workers 3 --broker
redis://127.0.0.1:6379/0`` (and other servers, on other ports or machines, with
the same ``--broker``): a room then spans them all.

Protocol, at ``ws://HOST/ws/chat/<room_id>?user=NAME`` (``user`` is optional):

- on join the client gets ``{"type": "system", "message", "room", "user", "clients"}``
  and the others in the room ``{"type": "user_joined", "room", "user", "clients"}``
  (the client is in the room from the start, so what the room says while its
  welcome is made, another's join say, can come before the welcome);
- a client sends ``{"type": "chat", "message": "...", "user": "..."}`` (``user``
  defaults to its join name); everyone in the room, sender included, gets
  ``{"type": "chat", "message", "user", "room"}``;
- anything else (invalid JSON, not an object, unknown type, a binary message) is
  answered ``{"type": "error", "message": "..."}`` and the connection stays open;
- on leave the others get ``{"type": "user_left", "room", "user", "clients"}``;
  a room with nobody left disappears.

``clients`` counts the room's clients in every process. ``GET /api/rooms``
answers ``{"rooms": [names of non-empty rooms], "total_clients": N}``, for every
process too. ``POST /api/rooms/<room_id>/messages`` with a JSON body
``{"message": "...", "user": "..."}`` (``user`` defaults to ``server``) says it
in the room from outside (a backend, a cron job): every client there gets the
same ``{"type": "chat", ...}`` as from a client; the answer is ``202`` with
``{"room", "delivered"}`` (this process's clients that got it). A body that is
not such an object gets ``400`` with ``{"error", "status", "message"}``. A room name too
long for a topic (``room:<room_id>`` over ``max_topic_size``, 1024 bytes by default) gets
``400``, at the handshake and over HTTP (the page, served with the server's limit, says so
without connecting).

A room is the topic ``room:<room_id>``: each client subscribes to it (and is
welcomed once the broker has confirmed that, so that what another process says
in the room next, a POST the client makes say, reaches it), and
messages are published to it (``ws.server.publish``): framed once for this
process's clients, carried by the broker to the others'. A client too slow to
take a message (its write buffer over ``write_limit``) is skipped for that
message rather than buffered without bound.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
from typing import Any

from wsserver import BadRequest, Request, Router, WebSocket
from wsserver.response import Response, html, json, text

logger = logging.getLogger("examples.chat")

routes = Router()

#: room name -> {connection: user name}, for this process's clients. Only
#: non-empty rooms are kept.
rooms: dict[str, dict[WebSocket, str]] = {}

#: Longest user name kept; longer ones are cut.
MAX_USER_LENGTH = 64
#: The topics of rooms start with this.
ROOM = "room:"


async def publish(
    ws: WebSocket, room: str, message: dict[str, Any], exclude: WebSocket | None = None
) -> None:
    """Send ``message`` to everyone in ``room`` (but ``exclude``), in every process."""
    await ws.server.publish(ROOM + room, jsonlib.dumps(message), exclude=exclude)


def _clean_user(value: Any, default: str) -> str:
    if not isinstance(value, str) or not value.strip():
        return default
    return value.strip()[:MAX_USER_LENGTH].rstrip()  # (no blank left at the cut)


def _parse(message: str | bytes) -> tuple[dict[str, Any] | None, str]:
    """The chat message in ``message``, or None and why it is not one."""
    if isinstance(message, bytes):
        return None, "Binary messages are not supported: send JSON text"
    try:
        data = jsonlib.loads(message)
    except (ValueError, RecursionError):  # (RecursionError: nested too deep)
        return None, "Invalid JSON"
    if not isinstance(data, dict):
        return None, "Expected a JSON object"
    kind = data.get("type")
    if kind != "chat":
        return None, f"Unknown message type: {kind!r}"
    if not isinstance(data.get("message"), str):
        return None, "'message' must be a string"
    return data, ""


def room_error(request: Request, room_id: str) -> str | None:
    """Why ``room_id`` cannot be a room, or None: its topic must fit the server's
    ``max_topic_size`` (a room name comes from the client)."""
    limit = request.server.config.max_topic_size
    if len((ROOM + room_id).encode()) > limit:
        return f"The room name is too long: its topic is at most {limit} bytes of UTF-8"
    return None


def check_room(request: Request) -> Response | None:
    """Handshake hook: a room name too long is answered 400 instead of 101."""
    error = room_error(request, request.match_info["room_id"])
    return None if error is None else text(error, 400)


@routes.websocket("/ws/chat/<room_id>", on_connect=check_room)
async def chat(request: Request, ws: WebSocket, room_id: str) -> None:
    """One chat client in room ``room_id``."""
    user = _clean_user(request.args.get("user"), "anonymous")
    topic = ROOM + room_id
    subscribed = ws.subscribe(topic)  # (first: for a client closing already, it raises)
    rooms.setdefault(room_id, {})[ws] = user
    try:
        # Welcomed once the broker (Redis) confirmed the subscription, so that
        # what another process says in the room next (after a POST the client
        # makes, say) reaches it; the count is asked meanwhile (a Redis that
        # froze makes each wait its broker_timeout: the two at once, not one
        # after the other).
        _, clients = await asyncio.gather(subscribed, ws.server.presence(topic))
        await ws.send(
            {
                "type": "system",
                "message": f"Welcome to room {room_id}, {user}",
                "room": room_id,
                "user": user,
                "clients": clients,
            }
        )
        await publish(
            ws,
            room_id,
            {"type": "user_joined", "room": room_id, "user": user, "clients": clients},
            exclude=ws,
        )
        async for message in ws:
            data, error = _parse(message)
            if data is None:
                await ws.send({"type": "error", "message": error})
                continue
            await publish(
                ws,
                room_id,
                {
                    "type": "chat",
                    "message": data["message"],
                    "user": _clean_user(data.get("user"), user),
                    "room": room_id,
                },
            )
    finally:
        ws.unsubscribe(topic)
        members = rooms.get(room_id, {})
        members.pop(ws, None)
        if not members:
            rooms.pop(room_id, None)  # empty rooms disappear
        clients = await ws.server.presence(topic)
        if clients:
            await publish(
                ws,
                room_id,
                {"type": "user_left", "room": room_id, "user": user, "clients": clients},
            )


@routes.get("/api/rooms")
async def list_rooms(request: Request) -> Response:
    """The non-empty rooms and how many clients are connected in all, in every process."""
    counts = await request.server.presence_by_topic()
    names = {topic[len(ROOM) :]: n for topic, n in counts.items() if topic.startswith(ROOM)}
    return json({"rooms": sorted(names), "total_clients": sum(names.values())})


@routes.post("/api/rooms/<room_id>/messages", error_format="json")
async def post_message(request: Request, room_id: str) -> Response:
    """Say ``message`` in ``room_id`` from outside the chat (400 for a bad body)."""
    data = request.json  # BadRequest (400) when the body is not JSON
    if not isinstance(data, dict) or not isinstance(data.get("message"), str):
        raise BadRequest('Expected a JSON object with a string "message"')
    error = room_error(request, room_id)
    if error is not None:
        raise BadRequest(error)
    message = {
        "type": "chat",
        "message": data["message"],
        "user": _clean_user(data.get("user"), "server"),
        "room": room_id,
    }
    delivered = await request.server.publish(ROOM + room_id, jsonlib.dumps(message))
    return json({"room": room_id, "delivered": delivered}, status=202)


@routes.get("/")
async def page(request: Request) -> Response:
    """The chat page, which refuses a room name too long for this server's topics."""
    longest = request.server.config.max_topic_size - len(ROOM.encode())
    return html(PAGE.replace("{max_room_bytes}", str(longest), 1))


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wsserver chat</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 44rem; }
  form { display: flex; gap: .5rem; margin-bottom: .75rem; }
  #message { flex: 1; }
  #log { list-style: none; padding: .5rem; border: 1px solid #ccc; min-height: 12rem; }
  #log li { margin: .15rem 0; white-space: pre-wrap; word-break: break-word; }
  #log .user { font-weight: bold; margin-right: .4rem; }
  #log li[data-type=system], #log li[data-type=user_joined],
  #log li[data-type=user_left] { color: #666; font-style: italic; }
  #log li[data-type=error] { color: #b00; }
</style>
</head>
<body>
<h1>Chat</h1>
<form id="join-form" data-max-room-bytes="{max_room_bytes}">
  <input id="room" value="lobby" placeholder="Room" required>
  <input id="user" placeholder="Your name" required>
  <button id="join" type="submit">Join</button>
</form>
<p>Status: <span id="status">not connected</span>
  &middot; Compression: <span id="compression">-</span></p>
<form id="send-form">
  <input id="message" autocomplete="off" placeholder="Message" disabled>
  <button id="send" type="submit" disabled>Send</button>
</form>
<ul id="log"></ul>
<script>
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const log = $("log");
  let socket = null;

  function setConnected(connected) {
    $("message").disabled = !connected;
    $("send").disabled = !connected;
  }

  function append(type, user, text) {
    const item = document.createElement("li");
    item.dataset.type = type;
    if (user) {
      const name = document.createElement("span");
      name.className = "user";
      name.textContent = user + ":";
      item.appendChild(name);
    }
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = text;
    item.appendChild(body);
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
  }

  function show(data) {
    switch (data.type) {
      case "chat": append("chat", data.user, data.message); break;
      case "system": append("system", "", data.message + " (" + data.clients + " here)"); break;
      case "user_joined":
        append("user_joined", "", data.user + " joined (" + data.clients + " here)"); break;
      case "user_left":
        append("user_left", "", data.user + " left (" + data.clients + " here)"); break;
      case "error": append("error", "", "Error: " + data.message); break;
      default: append("other", "", JSON.stringify(data));
    }
  }

  function join(room, user) {
    if (socket !== null) {
      socket.onclose = null;
      socket.close();
    }
    // Relative to the page, which works behind a proxy's path prefix too.
    const url = new URL("ws/chat/" + encodeURIComponent(room) +
      "?user=" + encodeURIComponent(user), location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(url);
    socket = ws;
    window.chatSocket = ws;
    $("status").textContent = "connecting to " + room;
    ws.onopen = () => {
      $("status").textContent = "connected to " + room + " as " + user;
      // Off unless the server runs with --compression deflate.
      $("compression").textContent = ws.extensions || "off";
      setConnected(true);
    };
    ws.onmessage = (event) => {
      try {
        show(JSON.parse(event.data));
      } catch (error) {
        append("error", "", "Unreadable message from the server");
      }
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      $("status").textContent = "disconnected (" + event.code + ")";
      setConnected(false);
    };
  }

  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const room = $("room").value.trim();
    const user = $("user").value.trim();
    if (room === "" || user === "") return;
    if (room.includes("/")) {
      append("error", "", "Error: a room name cannot contain '/'");
      return;
    }
    if (room === "." || room === "..") {  // (a URL's dot segments, even percent-encoded)
      append("error", "", "Error: a room cannot be named '.' or '..'");
      return;
    }
    // The server refuses a longer one at the handshake (400), which the page cannot see.
    const maxRoomBytes = Number($("join-form").dataset.maxRoomBytes);
    if (new TextEncoder().encode(room).length > maxRoomBytes) {
      append("error", "", "Error: a room name is at most " + maxRoomBytes + " bytes of UTF-8");
      return;
    }
    join(room, user);
  });

  $("send-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("message").value;
    if (socket === null || socket.readyState !== WebSocket.OPEN || text === "") return;
    socket.send(JSON.stringify({type: "chat", message: text, user: $("user").value.trim()}));
    $("message").value = "";
    $("message").focus();
  });
})();
</script>
</body>
</html>
"""
