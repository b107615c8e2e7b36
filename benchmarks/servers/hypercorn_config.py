"""hypercorn's settings that its command line has no flag for.

``python -m hypercorn --config python:benchmarks.servers.hypercorn_config.Settings
...``: hypercorn reads every attribute of ``Settings``; its command-line flags
(``--bind``, ``--workers``, ``--backlog``...) come on top.
"""

from benchmarks.servers.common import MAX_SIZE


class Settings:
    #: 64 MiB, like every server (hypercorn's default is 16 MiB).
    websocket_max_message_size = MAX_SIZE
    #: No keepalive pings (hypercorn's default too).
    websocket_ping_interval = None
