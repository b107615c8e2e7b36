"""The asyncio layer: listening, the two protocols of a connection's life, and what handlers use.

A connection starts with :class:`~wsserver.server.http_protocol.HttpProtocol`
and, once upgraded, continues with
:class:`~wsserver.server.websocket_protocol.WebSocketProtocol`. It moves bytes
between the transport and the sans-I/O core (:mod:`wsserver.protocol`), runs
the timers and flow control, and runs the application (:mod:`wsserver.app`).
"""
