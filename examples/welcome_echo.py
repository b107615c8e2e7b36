"""The Sanic-style document's echo server: a welcome, then ``Echo: <message>`` for each message.

Run it with ``python -m wsserver examples.welcome_echo:routes`` and connect to
``ws://127.0.0.1:8000/ws``, or open http://127.0.0.1:8000/ in a browser.

The seed document is not in this repository; its strings here are the project's texts:

- on connecting, the server sends ``WELCOME``, ``"Welcome to the WebSocket echo server!"``;
- then every text message ``m`` is answered ``f"Echo: {m}"`` and every binary message
  ``b"Echo: " + m``.

A plain GET (or HEAD) of ``/`` serves the page of :mod:`examples.echo` (it talks to ``/ws``
on the same host, over ``wss://`` when the page came over HTTPS), under its own title: the
welcome and the echoes show in its list. :mod:`examples.echo` stays the pure echo.
"""

from wsserver import Request, Router, WebSocket
from wsserver.response import Response, html

from . import echo

routes = Router()

#: The first message of every connection.
WELCOME = "Welcome to the WebSocket echo server!"
#: What goes before each echoed message.
PREFIX = "Echo: "

#: The echo page, titled for this server.
TITLE = "wsserver welcome echo"
PAGE = echo.PAGE.replace("<title>wsserver echo</title>", f"<title>{TITLE}</title>", 1)


@routes.websocket("/ws")
async def welcome_echo(request: Request, ws: WebSocket) -> None:
    """Send the welcome, then answer every message with ``Echo: `` and the message."""
    await ws.send(WELCOME)
    async for message in ws:
        if isinstance(message, bytes):
            await ws.send(PREFIX.encode() + message)
        else:
            await ws.send(PREFIX + message)


@routes.get("/")
async def page(request: Request) -> Response:
    """The HTML client: an input, a send button and the list of what the server sent."""
    return html(PAGE)
