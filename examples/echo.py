"""Echo server: every message comes back as it came (text as text, binary as binary).

Run it with ``python -m wsserver examples.echo:routes`` and connect to
``ws://127.0.0.1:8000/ws`` (or ``/``). A plain GET of ``/`` serves a small page
that talks to ``/ws``.
"""

from wsserver import Request, Router, WebSocket
from wsserver.response import Response, html

routes = Router()

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wsserver echo</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 40rem; }
  form { display: flex; gap: .5rem; }
  #message { flex: 1; }
  #log { list-style: none; padding: .5rem; border: 1px solid #ccc; min-height: 10rem; }
  #log li { font-family: monospace; white-space: pre-wrap; word-break: break-all; }
  .sent { color: #036; } .received { color: #060; } .info { color: #666; }
</style>
</head>
<body>
<h1>Echo</h1>
<p>Status: <span id="status">connecting</span></p>
<form id="form">
  <input id="message" autocomplete="off" placeholder="Type a message" autofocus>
  <button id="send" type="submit">Send</button>
</form>
<ul id="log"></ul>
<script>
(function () {
  "use strict";
  const log = document.getElementById("log");
  const status = document.getElementById("status");
  const input = document.getElementById("message");
  // Relative to the page, which works behind a proxy's path prefix too.
  const url = new URL("ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url);
  window.echoSocket = socket;

  function append(kind, text) {
    const item = document.createElement("li");
    item.className = kind;
    item.textContent = text;
    log.appendChild(item);
  }

  socket.onopen = () => { status.textContent = "connected"; };
  socket.onclose = (event) => {
    status.textContent = "closed";
    append("info", "closed (" + event.code + ")");
  };
  socket.onerror = () => append("info", "connection error");
  socket.onmessage = (event) => append("received", "< " + event.data);

  document.getElementById("form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (socket.readyState !== WebSocket.OPEN || input.value === "") return;
    socket.send(input.value);
    append("sent", "> " + input.value);
    input.value = "";
  });
})();
</script>
</body>
</html>
"""


@routes.websocket("/")
@routes.websocket("/ws")
async def echo(request: Request, ws: WebSocket) -> None:
    """Send every message back."""
    async for message in ws:
        await ws.send(message)


@routes.get("/")
async def page(request: Request) -> Response:
    """The HTML client: an input, a send button and a log, connected to ``/ws``."""
    return html(PAGE)
