"""What an application is made of: the route table, the request, and responses.

Plain Python, no I/O: the asyncio layer (:mod:`wsserver.server`) resolves
requests with the :class:`~wsserver.app.routing.Router` and runs its handlers.
"""
