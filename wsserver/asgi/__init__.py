"""Running ASGI 3 applications (Starlette, FastAPI, ...): the ASGI side of the server.

The server's protocols own the sockets, h11 and the WebSocket layer; this
package turns what they see into ASGI events and the application's messages
back into what they send. See :class:`~.application.ASGIApplication`.
"""

from .application import ASGIApplication, is_asgi_app

__all__ = ["ASGIApplication", "is_asgi_app"]
