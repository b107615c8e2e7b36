"""The sans-I/O core: RFC 6455 frames, the connection state machine, permessage-deflate
(RFC 7692), HTTP messages and the opening handshake.

Bytes or requests in, events and bytes out: nothing here touches a socket, an
event loop or a clock. The asyncio layer (:mod:`wsserver.server`) drives it.
"""
