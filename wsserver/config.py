"""Server settings: defaults, validation, and reading them from the environment.

Precedence, highest first: keyword arguments to :func:`wsserver.serve` (and
the CLI flags, which become those arguments), then ``WEBSOCKET_*``
environment variables, then the defaults below.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError
from .protocol.deflate import RANGES as DEFLATE_RANGES
from .protocol.deflate import DeflateSettings

__all__ = ["Config", "ENV_VARS"]

#: Environment variable -> setting name.
ENV_VARS: dict[str, str] = {
    "WEBSOCKET_MAX_SIZE": "max_size",
    "WEBSOCKET_MAX_QUEUE": "max_queue",
    "WEBSOCKET_PING_INTERVAL": "ping_interval",
    "WEBSOCKET_PING_TIMEOUT": "ping_timeout",
    "WEBSOCKET_TIMEOUT": "open_timeout",
    "WEBSOCKET_CLOSE_TIMEOUT": "close_timeout",
    "WEBSOCKET_COMPRESSION": "compression",
    "WEBSOCKET_MAX_CONNECTIONS": "max_connections",
    "WEBSOCKET_SHUTDOWN_TIMEOUT": "shutdown_timeout",
}

#: Config setting -> the DeflateSettings field it sets (ranges live in deflate.RANGES).
_DEFLATE_FIELDS = {
    "compression_level": "level",
    "compression_window_bits": "server_max_window_bits",
    "compression_client_window_bits": "client_max_window_bits",
    "compression_mem_level": "mem_level",
    "compression_min_size": "min_size",
}

_NONE_WORDS = frozenset({"", "none", "null", "off", "false", "0"})


@dataclasses.dataclass
class Config:
    """Every server setting, with its safe default.

    Attributes:
        max_size: largest incoming message in bytes (None: no limit); larger
            ones close the connection with 1009.
        max_queue: received messages kept waiting for ``recv()`` before the
            server stops reading from the socket.
        ping_interval: seconds between keepalive pings (None: no pings).
        ping_timeout: seconds to wait for the pong before closing with 1011
            (None: wait forever).
        open_timeout: seconds for a client to complete the opening handshake
            (None: no limit).
        close_timeout: seconds to wait for the closing handshake and for the
            TCP connection to close, before it is aborted.
        compression: ``"deflate"`` to accept permessage-deflate, None for none.
        compression_level: zlib level for outgoing messages (-1 to 9).
        compression_window_bits: our compressor's window, 9-15.
        compression_client_window_bits: window asked of clients that offer
            ``client_max_window_bits``, 8-15.
        compression_mem_level: zlib memory level of our compressor, 1-9.
        compression_min_size: messages shorter than this go uncompressed.
        compression_no_context_takeover: reset our compressor after every
            message (caps memory per connection).
        max_header_size: largest request line plus headers, in bytes (431).
        max_headers: most request header lines (431).
        max_connections: open connections beyond which handshakes get 503
            (None: no limit).
        backlog: the listen backlog.
        write_limit: high-water mark of the write buffer in bytes; ``send()``
            waits above it until the buffer drains to a quarter of it.
        shutdown_timeout: seconds handlers get to finish on shutdown.
        origins: ``Origin`` values accepted on WebSocket routes that do not set
            their own (exact strings; None in the list admits requests without
            an Origin header); None accepts any.
    """

    max_size: int | None = 2**20
    max_queue: int = 32
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    open_timeout: float | None = 10.0
    close_timeout: float = 10.0
    compression: str | None = "deflate"
    compression_level: int = 1
    compression_window_bits: int = 12
    compression_client_window_bits: int = 12
    compression_mem_level: int = 5
    compression_min_size: int = 32
    compression_no_context_takeover: bool = False
    max_header_size: int = 16384
    max_headers: int = 100
    max_connections: int | None = None
    backlog: int = 1024
    write_limit: int = 65536
    shutdown_timeout: float = 10.0
    origins: list[str | None] | None = None

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_sources(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Build a config from ``WEBSOCKET_*`` variables in ``env``, then ``overrides``.

        Raises:
            ConfigError: a setting is unknown or has an invalid value.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for var, name in ENV_VARS.items():
            if var in env:
                values[name] = _parse(name, env[var], var)
        fields = {f.name for f in dataclasses.fields(cls)}
        for name, value in overrides.items():
            if name not in fields:
                raise ConfigError(f"unknown setting {name!r}")
            values[name] = value
        return cls(**values)

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied (and validated).

        Raises:
            ConfigError: a setting is unknown or has an invalid value.
        """
        fields = {f.name for f in dataclasses.fields(self)}
        for name in changes:
            if name not in fields:
                raise ConfigError(f"unknown setting {name!r}")
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Check every setting.

        Raises:
            ConfigError: naming the setting and what is wrong.
        """
        _positive_int(self, "max_size", allow_none=True)
        _positive_int(self, "max_queue")
        _positive_number(self, "ping_interval", allow_none=True)
        _positive_number(self, "ping_timeout", allow_none=True)
        _positive_number(self, "open_timeout", allow_none=True)
        _positive_number(self, "close_timeout")
        _positive_number(self, "shutdown_timeout", zero_ok=True)
        _positive_int(self, "max_header_size")
        _positive_int(self, "max_headers")
        _positive_int(self, "max_connections", allow_none=True)
        _positive_int(self, "backlog")
        _positive_int(self, "write_limit")
        if self.origins is not None and not all(
            o is None or isinstance(o, str) for o in self.origins
        ):
            raise ConfigError("origins must be a list of strings (or None entries)")
        if self.compression not in ("deflate", None):
            raise ConfigError(f"compression must be 'deflate' or None, not {self.compression!r}")
        for name, field in _DEFLATE_FIELDS.items():
            _int_in_range(self, name, *DEFLATE_RANGES[field])
        if not isinstance(self.compression_no_context_takeover, bool):
            raise ConfigError("compression_no_context_takeover must be True or False")

    def deflate_settings(self) -> DeflateSettings:
        """The permessage-deflate settings these options describe."""
        return DeflateSettings(
            server_max_window_bits=self.compression_window_bits,
            client_max_window_bits=self.compression_client_window_bits,
            mem_level=self.compression_mem_level,
            level=self.compression_level,
            min_size=self.compression_min_size,
            server_no_context_takeover=self.compression_no_context_takeover,
        )


def _parse(name: str, text: str, var: str) -> Any:
    """Convert the text of environment variable ``var`` for setting ``name``."""
    text = text.strip()
    if name == "compression":
        return None if text.lower() in _NONE_WORDS else text.lower()
    nullable = name in {
        "max_size",
        "ping_interval",
        "ping_timeout",
        "open_timeout",
        "max_connections",
    }
    if nullable and text.lower() in _NONE_WORDS - {"0"}:
        return None
    try:
        if name in {"max_size", "max_queue", "max_connections"}:
            return int(text)
        return float(text)
    except ValueError:
        raise ConfigError(f"{var}={text!r} is not a number") from None


def _positive_int(config: Config, name: str, allow_none: bool = False) -> None:
    value = getattr(config, name)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(
            f"{name} must be a positive integer{' or None' if allow_none else ''}, not {value!r}"
        )


def _int_in_range(config: Config, name: str, low: int, high: int) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer from {low} to {high}, not {value!r}")


def _positive_number(
    config: Config, name: str, allow_none: bool = False, zero_ok: bool = False
) -> None:
    value = getattr(config, name)
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, not {value!r}")
    if value < 0 or (value == 0 and not zero_ok):
        raise ConfigError(f"{name} must be {'>= 0' if zero_ok else '> 0'}, not {value!r}")
