"""Echo server: every message comes back as it came (text as text, binary as binary).

Run it with ``python -m wsserver examples.echo:routes`` and connect to
``ws://127.0.0.1:8000/ws`` (or ``/``).
"""

from wsserver import Request, Router, WebSocket

routes = Router()


@routes.websocket("/")
@routes.websocket("/ws")
async def echo(request: Request, ws: WebSocket) -> None:
    """Send every message back."""
    async for message in ws:
        await ws.send(message)
