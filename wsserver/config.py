"""Server settings: each declared once, with its default, its checks, its variable and flag.

Every field of :class:`Config` is declared with :func:`setting`, which says
what kind of value it takes (:class:`Kind`: the check, and how text from the
environment or the command line is read), its ``WEBSOCKET_*`` environment
variable and its command-line flag, if any, and one line of help. Validation,
the environment, the CLI (:func:`add_flags`) and the README's configuration
table (:func:`markdown_table`) all come from these declarations, so adding a
setting is adding one field.

Precedence, highest first: keyword arguments to :func:`wsserver.serve` (and
the CLI flags, which become those arguments), then ``WEBSOCKET_*``
environment variables, then the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import ipaddress
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import unquote

from .app.forms import MAX_PARTS as MAX_FORM_PARTS
from .broker.base import MIN_PRESENCE_TTL, PREFIX_RULE, valid_prefix
from .broker.url import REDIS_SCHEMES, redacted
from .errors import ConfigError
from .protocol.deflate import RANGES as DEFLATE_RANGES
from .protocol.deflate import DeflateSettings
from .protocol.handshake import ORIGIN_FORM, bad_origin
from .protocol.http import valid_header
from .protocol.syntax import OWS

__all__ = [
    "Config",
    "ENV_VARS",
    "Kind",
    "Setting",
    "Text",
    "add_flags",
    "markdown_table",
    "setting",
    "settings",
]

#: What stands for "none" (no limit, off) in the environment and on the command line.
NONE_WORDS = frozenset({"", "none", "null", "off", "false"})


# ------------------------------------------------------------------- kinds


class Kind:
    """What a setting accepts: a check of its value, and a reader of its text form.

    Args:
        none_ok: None is a valid value (no limit, or off).
    """

    #: The value is a list; its flag is given once per element.
    repeatable = False
    #: Whether an empty text stands for None too (a path, a word: not set). A
    #: limit's or a timeout's does not: an unset variable in a template would
    #: lift the limit; no limit is asked for by name.
    empty_is_none = True
    #: The words that stand for None (when ``none_ok``), in any case.
    none_words = NONE_WORDS
    #: A password or a token: a :class:`Config`'s repr writes it ``'***'``.
    secret = False
    #: What is dropped around a text: None, any blank (a template's stray
    #: space); a password's, only line breaks (it may begin or end with a
    #: blank, but a line break ends the line it came on: ``echo``'s).
    strip: str | None = None

    def __init__(self, *, none_ok: bool = False) -> None:
        self.none_ok = none_ok

    def check(self, name: str, value: Any) -> None:
        """Raise :class:`ConfigError` naming ``name`` unless ``value`` is acceptable."""
        if value is None and self.none_ok:
            return
        problem = self._problem(value)
        if problem is not None:
            raise ConfigError(f"{name} must be {problem}, not {self.shown(value)}")

    def shown(self, value: Any) -> str:
        """How an error message shows ``value`` (an integer beyond what any
        setting takes by its order of magnitude: its hundreds of digits say
        nothing more, and past 4300 digits Python refuses to write them)."""
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
            return f"about {'-' if value < 0 else ''}10**{math.floor(math.log10(abs(value)))}"
        return repr(value)

    def masked(self, value: Any) -> str:
        """How a :class:`Config`'s repr shows ``value``: as an error message
        does, but a secret (set) as ``'***'``."""
        return "'***'" if self.secret and value is not None else self.shown(value)

    def parse(self, text: str) -> Any:
        """The value that ``text`` (an environment variable, a flag) stands for.

        The value is not checked here (:meth:`check` does, when the
        :class:`Config` is made): this only reads it.

        Raises:
            ValueError: ``text`` cannot be read; the message says what can.
        """
        word = text.strip()
        if self.none_ok and word.lower() in self.none_words and (word or self.empty_is_none):
            return None
        return self._parse(text.strip(self.strip))

    def accepted(self) -> str:
        """What the text form accepts, in words."""
        return self.describe() + (" or 'none'" if self.none_ok else "")

    def why(self, value: Any) -> str | None:
        """What is wrong with ``value`` (read from a flag), when more than what is accepted."""
        return None

    def describe(self) -> str:
        raise NotImplementedError

    def _problem(self, value: Any) -> str | None:
        """Why ``value`` is not acceptable (what it must be), or None."""
        raise NotImplementedError

    def _parse(self, text: str) -> Any:
        raise NotImplementedError


#: The largest count or size a setting takes: beyond, no machine has it, and
#: C code (zlib's limits, socket options) would overflow on it.
MOST = 2**62


#: The largest that uvloop's transports take for their write buffer's limits (a C int).
MOST_C_INT = 2**31 - 1
_MOST_SAID = {MOST: "2**62", MOST_C_INT: "2**31 - 1"}


class Count(Kind):
    """A positive integer (a size, a number of things), up to ``most``
    (:data:`MOST`, or :data:`MOST_C_INT`); ``zero_ok``: 0 too."""

    empty_is_none = False

    def __init__(self, *, none_ok: bool = False, zero_ok: bool = False, most: int = MOST) -> None:
        super().__init__(none_ok=none_ok)
        self.zero_ok = zero_ok
        self.most = most

    def describe(self) -> str:
        most = _MOST_SAID.get(self.most, str(self.most))
        return ("a non-negative" if self.zero_ok else "a positive") + f" integer (up to {most})"

    def _problem(self, value: Any) -> str | None:
        low = 0 if self.zero_ok else 1
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= self.most:
            return self.describe() + (" or None" if self.none_ok else "")
        return None

    def _parse(self, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected {self.accepted()}") from None


class IntRange(Kind):
    """An integer from ``low`` to ``high``."""

    def __init__(self, low: int, high: int) -> None:
        super().__init__()
        self.low = low
        self.high = high

    def describe(self) -> str:
        return f"an integer from {self.low} to {self.high}"

    def _problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return self.describe()
        return None if self.low <= value <= self.high else self.describe()

    def _parse(self, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"expected {self.accepted()}") from None


class Seconds(Kind):
    """A duration in seconds: a finite number above 0 (or at least 0 with
    ``zero_ok``; at least ``least``, when given)."""

    empty_is_none = False

    def __init__(
        self, *, none_ok: bool = False, zero_ok: bool = False, least: float | None = None
    ) -> None:
        super().__init__(none_ok=none_ok)
        self.zero_ok = zero_ok
        self.least = least

    def describe(self) -> str:
        if self.least is not None:
            return f"a number of seconds >= {self.least:g}"
        return "a number of seconds " + (">= 0" if self.zero_ok else "> 0")

    def _problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "a finite number"
        try:
            finite = math.isfinite(value)
        except OverflowError:  # (an int beyond ~1e308: no float holds it, nor a timer)
            return "a finite number (up to about 1e308, what a float holds)"
        if not finite:
            return "a finite number"
        if self.least is not None and value < self.least:
            return f"at least {self.least:g} seconds"
        if value < 0 or (value == 0 and not self.zero_ok):
            return ">= 0" if self.zero_ok else "> 0"
        return None

    def _parse(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected {self.accepted()}") from None


class Choice(Kind):
    """One of a few words (and None, for off, with ``none_ok``)."""

    def __init__(self, *choices: str, none_ok: bool = False) -> None:
        super().__init__(none_ok=none_ok)
        self.choices = choices

    def describe(self) -> str:
        return " or ".join(repr(c) for c in self.choices)

    def _problem(self, value: Any) -> str | None:
        if value in self.choices and isinstance(value, str):
            return None
        return self.describe() + (" or None" if self.none_ok else "")

    def parse(self, text: str) -> Any:
        # "0" turns a feature off too (WEBSOCKET_COMPRESSION=0).
        if self.none_ok and text.strip() == "0":
            return None
        return super().parse(text)

    def _parse(self, text: str) -> str:
        return text.lower()


class Flag(Kind):
    """True or False."""

    def describe(self) -> str:
        return "true or false"

    def _problem(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else "True or False"

    def _parse(self, text: str) -> bool:
        word = text.lower()
        # (click's words, as uvicorn's boolean flags take them.)
        if word in ("true", "t", "yes", "y", "on", "1"):
            return True
        if word in ("false", "f", "no", "n", "off", "0"):
            return False
        raise ValueError(f"expected {self.accepted()}")


class Text(Kind):
    """A string; ``valid(value)`` says whether it is acceptable, ``description`` what is."""

    def __init__(
        self,
        description: str,
        valid: Any = None,
        *,
        none_ok: bool = False,
        metavar: str = "TEXT",
        redact: Any = None,
    ) -> None:
        super().__init__(none_ok=none_ok)
        self.description = description
        self.valid = valid
        self.metavar = metavar
        self.redact = redact

    def shown(self, value: Any) -> str:
        if self.redact is not None and isinstance(value, str):
            return repr(self.redact(value))
        return super().shown(value)

    def describe(self) -> str:
        return self.description

    def _problem(self, value: Any) -> str | None:
        if not isinstance(value, str) or (self.valid is not None and not self.valid(value)):
            return self.describe()
        return None

    def _parse(self, text: str) -> str:
        return text


#: What a path the server serves itself (metrics, status page) may be (:func:`_root_path`'s rule).
_SERVED_PATH = (
    "a path like /metrics (starting with '/', not ending with one; printable ASCII "
    "without spaces, '?', '#', '<' and '>': percent-encode the rest, but for those two)"
)


def served_path(path: str) -> str:
    """A served path (``metrics_path``, ``status_path``) as requests are routed:
    percent-decoded, as a request's path is (what is not printable ASCII is
    given percent-encoded)."""
    return unquote(path)


def _is_served_path(value: str) -> bool:
    """:data:`_SERVED_PATH`'s rule: a root path (:func:`_root_path`), not empty, whose
    decoded form has no ``<`` nor ``>`` (it would be a route with a parameter)."""
    return (
        value.startswith("/")
        and _root_path(value)
        and not any(c in served_path(value) for c in "<>")
    )


def _root_path(value: str) -> bool:
    """Empty, or ``/a/b``: printable ASCII (percent-encode the rest), no space, ``?`` or ``#``."""
    if value == "":
        return True
    return (
        value.startswith("/")
        and not value.endswith("/")
        and value.isascii()
        and value.isprintable()
        and not any(c in value for c in " ?#")
    )


def _path(description: str, metavar: str = "PATH", *, empty_is_none: bool = True) -> Text:
    """A string not empty nor blank (a name of blanks alone is a template's
    slip, not a file), or None (also for an empty text, unless not ``empty_is_none``)."""
    kind = Text(description, lambda value: bool(value.strip()), none_ok=True, metavar=metavar)
    kind.empty_is_none = empty_is_none
    return kind


def _password() -> Text:
    """A password: as :func:`_path`, but only ``none`` (or an empty text) is
    None; ``off``, ``null``, ``false`` are taken as they are, and so are
    blanks around it (not a line break at either end: a Kubernetes Secret
    made with ``echo``, as OpenSSL's ``-passin file:`` drops it)."""
    kind = _path("a password", "PASSWORD")
    kind.valid = lambda value: bool(value)  # (blanks are a password's own)
    kind.none_words = frozenset({"none", ""})
    kind.secret = True
    kind.strip = "\r\n"
    return kind


def _token() -> Text:
    """A token, or ``none``; not empty, nor ``off``, ``null`` or ``false``
    (what a template may render for a missing value: taken for none, it lifted
    the token; taken as it is, it is a token anyone guesses)."""
    kind = Text(
        "a token (not empty, 'null', 'off' or 'false': 'none' says no token; no control "
        "character, such as a file's last line break, nor a blank at either end, which "
        "an Authorization header cannot carry)",
        _is_token,
        none_ok=True,
        metavar="TOKEN",
        # (Its own words shown, a token's never: an error is logged.)
        redact=lambda value: value if value.strip().lower() in NONE_WORDS else "***",
    )
    kind.empty_is_none = False
    kind.none_words = frozenset({"none"})
    kind.secret = True
    return kind


def _is_token(value: str) -> bool:
    """Whether ``value`` is a token (see :func:`_token`): one that ``Authorization:
    Bearer`` can carry as it is. A token read from a file with its last line break
    (``serve(metrics_token=path.read_text())``) was taken, and no header (nor
    Prometheus, which trims its ``credentials_file``) could show it: every
    request a 401, without a word at start."""
    return (
        bool(value)
        and value.strip().lower() not in NONE_WORDS
        and value == value.strip(" \t")
        and not any(ch < " " or ch == "\x7f" for ch in value)
    )


def _networks(value: str) -> bool:
    """Whether ``value`` is ``*`` or a comma-separated list of addresses, networks, ``unix``."""
    if value.strip() == "*":
        return True
    try:
        for item in value.split(","):
            if item.strip() != "unix":
                ipaddress.ip_network(item.strip(), strict=False)
    except ValueError:
        return False
    return True


class Origins(Kind):
    """A list of ``Origin`` values; None in it admits requests without one. None: any."""

    repeatable = True

    def __init__(self) -> None:
        super().__init__(none_ok=True)

    def describe(self) -> str:
        return "an origin (scheme://host[:port]), or 'none' for requests without one"

    def accepted(self) -> str:
        return self.describe()  # ('none' said already)

    def why(self, value: Any) -> str | None:
        bad = bad_origin(value) if isinstance(value, list) else None
        return None if bad is None else f"{bad[0]!r}: {bad[1]} (an origin is {ORIGIN_FORM})"

    def _problem(self, value: Any) -> str | None:
        # (A tuple too, as a route's origins= takes it; kept as a list.)
        if not (
            isinstance(value, (list, tuple)) and all(o is None or isinstance(o, str) for o in value)
        ):
            return "a list of strings (or None entries)"
        bad = bad_origin(value)
        return None if bad is None else f"a list of origins ({ORIGIN_FORM}); {bad[0]!r}: {bad[1]}"

    def parse(self, text: str) -> str | None:
        """One origin of the list (the flag is repeated for more)."""
        text = text.strip()
        return None if text.lower() == "none" else text


#: Headers that wsserver writes itself, which configured ones may not be.
_OWN_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "upgrade", "keep-alive", "te", "date"}
)


class HeaderList(Kind):
    """``(name, value)`` pairs for every response; ``Name: value`` on the command line."""

    repeatable = True

    def describe(self) -> str:
        return (
            "'Name: value', a header name, a colon and a value in ASCII without control characters"
        )

    def why(self, value: Any) -> str | None:
        for item in value if isinstance(value, list) else ():
            name = item[0].lower() if isinstance(item, tuple) and len(item) == 2 else ""
            if name in _OWN_HEADERS or name.startswith("sec-websocket-"):
                hint = " (--no-date-header leaves it out)" if name == "date" else ""
                return f"{item[0]!r}: wsserver writes that header itself{hint}"
        return None

    def _problem(self, value: Any) -> str | None:
        if not isinstance(value, (list, tuple)):
            return "a list of (name, value) pairs"
        for item in value:
            if not (
                isinstance(item, (list, tuple))
                and len(item) == 2
                and all(isinstance(part, str) and part.isascii() for part in item)
                and valid_header(*item)
                and item[1] == item[1].strip(OWS)
            ):
                return (
                    "a list of (name, value) pairs of header names and values in ASCII, "
                    "without control characters or whitespace around the value"
                )
            name = item[0].lower()
            if name in _OWN_HEADERS or name.startswith("sec-websocket-"):
                return (
                    "headers other than Date, Content-Length, Transfer-Encoding, Connection, "
                    "Upgrade, Keep-Alive, TE and Sec-WebSocket-* (wsserver writes those)"
                )
        return None

    def _parse(self, text: str) -> tuple[str, str]:
        name, colon, value = text.partition(":")
        if not colon:
            raise ValueError(f"expected {self.accepted()}")
        return (name.strip(OWS), value.strip(OWS))


# ---------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True)
class Setting:
    """The declaration of one setting (see :func:`setting`)."""

    kind: Kind
    help: str
    env: str | None = None
    flag: str | None = None
    aliases: tuple[str, ...] = ()
    env_aliases: tuple[str, ...] = ()

    def where(self) -> str:
        """Where it is set besides a keyword: its flag and its variable
        (``--ssl-certfile or WEBSOCKET_SSL_CERTFILE``), for a message."""
        return " or ".join(name for name in (self.flag, self.env) if name is not None)

    def from_environment(self, env: Mapping[str, str]) -> tuple[str, str] | None:
        """The variable of ``env`` that sets it, and its value: ``env``, else
        the first of ``env_aliases`` that is set; None when none is."""
        for name in (self.env, *self.env_aliases) if self.env is not None else ():
            if name in env:
                return name, env[name]
        return None


def setting(
    default: Any,
    kind: Kind,
    help: str,
    *,
    env: str | None = None,
    flag: str | None = None,
    aliases: tuple[str, ...] = (),
    env_aliases: tuple[str, ...] = (),
) -> Any:
    """Declare a :class:`Config` field: its default, kind, help, and where it can be set.

    Args:
        default: the safe default.
        kind: what it accepts.
        help: one line for ``--help`` and the README's table.
        env: its ``WEBSOCKET_*`` environment variable, if any.
        flag: its command-line flag, if any.
        aliases: other names of the flag (uvicorn's, for people who know those).
        env_aliases: other variables read when ``env`` is unset (uvicorn's).
    """
    spec = Setting(kind, help, env=env, flag=flag, aliases=aliases, env_aliases=env_aliases)
    return dataclasses.field(default=default, metadata={"setting": spec})


def _deflate(field: str) -> IntRange:
    return IntRange(*DEFLATE_RANGES[field])


@dataclasses.dataclass
class Config:
    """Every server setting, with its safe default (see :func:`markdown_table` for all)."""

    max_size: int | None = setting(
        2**20,
        Count(none_ok=True),
        "largest incoming message in bytes, after decompression (`none`: no limit). "
        "Larger: close 1009, checked on the frame header before the payload is buffered.",
        env="WEBSOCKET_MAX_SIZE",
        flag="--max-size",
        aliases=("--ws-max-size",),
    )
    max_queue: int = setting(
        32,
        Count(),
        "messages left waiting for `recv()` once the handler had its turn after a read, "
        "at which the server stops reading the socket (at twice it, at once); "
        "it resumes at a quarter of it.",
        env="WEBSOCKET_MAX_QUEUE",
        flag="--max-queue",
        aliases=("--ws-max-queue",),
    )
    ping_interval: float | None = setting(
        20.0,
        Seconds(none_ok=True),
        "seconds between keepalive pings (`none`: off).",
        env="WEBSOCKET_PING_INTERVAL",
        flag="--ping-interval",
        aliases=("--ws-ping-interval",),
    )
    ping_timeout: float | None = setting(
        20.0,
        Seconds(none_ok=True),
        "seconds to wait for the pong before closing with 1011 (`none`: no pong awaited, "
        "a ping still sent every `ping_interval`).",
        env="WEBSOCKET_PING_TIMEOUT",
        flag="--ping-timeout",
        aliases=("--ws-ping-timeout",),
    )
    open_timeout: float | None = setting(
        10.0,
        Seconds(none_ok=True),
        "seconds for a client to send a complete request head (an upgrade's whole request; "
        "one begun and not ended gets a 408), and then each next piece of its body (a body "
        "that stops coming that long gets a 408; "
        "an ASGI app's, while the app waits for it); an upgrade's answer too, from the request's "
        "end (an `on_connect` hook or an ASGI app deciding longer gets its client a 503) "
        "(`none`: no limit, but for a TLS handshake, which the event loop gives 60 s).",
        env="WEBSOCKET_TIMEOUT",
        flag="--open-timeout",
    )
    close_timeout: float = setting(
        10.0,
        Seconds(),
        "seconds for the closing handshake and TCP close before the connection is aborted "
        "(a client still taking an HTTP answer that ends its connection gets as long again, "
        "each time it took some).",
        env="WEBSOCKET_CLOSE_TIMEOUT",
        flag="--close-timeout",
    )
    compression: str | None = setting(
        None,
        Choice("deflate", none_ok=True),
        "`deflate` accepts permessage-deflate offers; off by default for Router apps (a "
        "connection that compresses holds ~9x the memory, see Compression and memory), "
        "on for ASGI apps as in uvicorn (`--ws-per-message-deflate false` turns it off).",
        env="WEBSOCKET_COMPRESSION",
        flag="--compression",
    )
    compression_level: int = setting(
        1,
        _deflate("level"),
        "zlib level for outgoing messages (1: fastest; 6-9 compress ~25% smaller at 2-3x the CPU).",
        env="WEBSOCKET_COMPRESSION_LEVEL",
        flag="--compression-level",
    )
    compression_window_bits: int = setting(
        12,
        _deflate("server_max_window_bits"),
        "our compressor's window (9-15); a client's smaller `server_max_window_bits` is honoured.",
        env="WEBSOCKET_COMPRESSION_WINDOW_BITS",
        flag="--compression-window-bits",
    )
    compression_client_window_bits: int = setting(
        12,
        _deflate("client_max_window_bits"),
        "window asked of clients that offer `client_max_window_bits` (9-15); a smaller value "
        "in the offer is honoured.",
        env="WEBSOCKET_COMPRESSION_CLIENT_WINDOW_BITS",
        flag="--compression-client-window-bits",
    )
    compression_mem_level: int = setting(
        5,
        _deflate("mem_level"),
        "zlib memory level of our compressor.",
        env="WEBSOCKET_COMPRESSION_MEM_LEVEL",
        flag="--compression-mem-level",
    )
    compression_min_size: int = setting(
        32,
        _deflate("min_size"),
        "messages shorter than this are sent uncompressed (RSV1 clear).",
        env="WEBSOCKET_COMPRESSION_MIN_SIZE",
        flag="--compression-min-size",
    )
    compression_no_context_takeover: bool = setting(
        False,
        Flag(),
        "always reset our compressor after each message (caps memory).",
        env="WEBSOCKET_COMPRESSION_NO_CONTEXT_TAKEOVER",
        flag="--compression-no-context-takeover",
    )
    compression_client_no_context_takeover: bool = setting(
        False,
        Flag(),
        "always ask clients to reset their compressor after each message: no decompressor is "
        "kept between messages (caps memory).",
        env="WEBSOCKET_COMPRESSION_CLIENT_NO_CONTEXT_TAKEOVER",
        flag="--compression-client-no-context-takeover",
    )
    compression_release_after: float | None = setting(
        1.0,
        Seconds(none_ok=True),
        "seconds without sending after which a connection's compressor is freed, keeping only "
        "its last window of data: an idle connection holds ~30 KiB (zlib) to ~150 KiB (zlib-ng) "
        "less, and its next message costs ~10 µs more at 12 window bits, 40-75 µs at 15 (`none`: "
        "keep it; no copy of the window is kept then, but while zlib compresses under `auto`).",
        env="WEBSOCKET_COMPRESSION_RELEASE_AFTER",
        flag="--compression-release-after",
    )
    compression_library: str = setting(
        "auto",
        Choice("auto", "zlib", "zlib-ng"),
        "what compresses: `zlib-ng` (the `speedups` extra) is ~2x faster on large messages but "
        "takes ~160 KiB per compressing connection instead of zlib's ~38 KiB; `auto`: zlib-ng "
        "when installed, for inflating and for a connection's messages from its first of 1 KiB "
        "or more on (zlib's compressor before that, and again after a release).",
        env="WEBSOCKET_COMPRESSION_LIBRARY",
        flag="--compression-library",
    )
    max_header_size: int = setting(
        16384,
        Count(),
        "request line + headers, in bytes (431 beyond, 414 when the request line alone is); "
        "also the most body read only to be dropped: an upgrade request's (413 beyond), or "
        "one that gets a Router's error answer (404, 405...: beyond, that answer at once, and "
        "the connection closes).",
        env="WEBSOCKET_MAX_HEADER_SIZE",
        flag="--max-header-size",
        aliases=("--h11-max-incomplete-event-size",),
    )
    max_headers: int = setting(100, Count(), "header lines (431 beyond).")
    max_connections: int | None = setting(
        None,
        Count(none_ok=True),
        "open WebSockets beyond which handshakes get 503 (the status page's feeds, the server's "
        "own, are not among them: as many again of those may be open). A limit of each worker "
        "process (`--workers`): four workers take four times as many.",
        env="WEBSOCKET_MAX_CONNECTIONS",
        flag="--max-connections",
    )
    limit_concurrency: int | None = setting(
        None,
        Count(none_ok=True),
        "connections (HTTP and WebSocket, in any phase) or running ASGI application tasks "
        "beyond which a request or upgrade gets 503 with `Retry-After` and the connection "
        "closes (`none`: no limit). As uvicorn's; the server's own endpoints (metrics, status) "
        "are still served. `max_connections` bounds open WebSockets only. A limit of each "
        "worker process (`--workers`), as in uvicorn: four workers take four times as many.",
        env="WEBSOCKET_LIMIT_CONCURRENCY",
        flag="--limit-concurrency",
    )
    backlog: int = setting(1024, IntRange(1, 2**31 - 1), "listen backlog.", flag="--backlog")
    write_limit: int = setting(
        65536,
        Count(most=MOST_C_INT),
        "write-buffer high-water mark; `send()` waits above it until a quarter drains.",
    )
    shutdown_timeout: float = setting(
        10.0,
        Seconds(zero_ok=True),
        "seconds handlers get to finish on shutdown.",
        env="WEBSOCKET_SHUTDOWN_TIMEOUT",
        flag="--shutdown-timeout",
        aliases=("--timeout-graceful-shutdown",),
    )
    limit_max_requests: int | None = setting(
        None,
        Count(none_ok=True),
        "requests (HTTP requests and WebSocket upgrades) after which the process is replaced, "
        "to bound what a leaking application holds: another is started and, once it accepts, "
        "this one stops accepting, closes its WebSockets with 1012 (service restart) and exits "
        "once its handlers are done (`none`: never); from the limit on, an HTTP response closes "
        "its connection. As in uvicorn; it runs the server under a supervisor.",
        env="WEBSOCKET_LIMIT_MAX_REQUESTS",
        flag="--limit-max-requests",
    )
    limit_max_requests_jitter: int = setting(
        0,
        Count(zero_ok=True),
        "at most this many requests more for `limit_max_requests`, a number each process "
        "draws when it starts, so that workers started together are not replaced together "
        "(as gunicorn's `--max-requests-jitter`, uvicorn's `--limit-max-requests-jitter`).",
        env="WEBSOCKET_LIMIT_MAX_REQUESTS_JITTER",
        flag="--limit-max-requests-jitter",
    )
    max_body_size: int | None = setting(
        2**20,
        Count(none_ok=True),
        "largest HTTP request body, in bytes, that an ASGI app receives or a Router's HTTP "
        "route reads (413 beyond; `none`: no limit); a route's own `max_body_size=` replaces it.",
        env="WEBSOCKET_MAX_BODY_SIZE",
        flag="--max-body-size",
    )
    max_form_parts: int = setting(
        MAX_FORM_PARTS,
        Count(),
        "fields and files a Router's HTTP route may find in a form body (`request.form`, "
        "`request.files`: 400 beyond); an ASGI app parses its own (a warning says so).",
        env="WEBSOCKET_MAX_FORM_PARTS",
        flag="--max-form-parts",
    )
    lifespan: str = setting(
        "auto",
        Choice("auto", "on", "off"),
        "ASGI lifespan events: `auto` runs without them if the app raises on them; `on` "
        "stops the server (exit code 3) when startup fails. A Router's hooks run whatever it "
        "says (a warning says so for `off`).",
        env="WEBSOCKET_LIFESPAN",
        flag="--lifespan",
    )
    root_path: str = setting(
        "",
        Text(
            "empty, or a path starting with '/' and not ending with one, in printable ASCII "
            "without spaces, '?' or '#'",
            _root_path,
        ),
        "where an ASGI app is mounted behind a proxy (its scope's `root_path`); a Router "
        "does not use it (a warning says so).",
        env="WEBSOCKET_ROOT_PATH",
        flag="--root-path",
    )
    timeout_keep_alive: float = setting(
        5.0,
        Seconds(),
        "seconds an idle kept-alive HTTP connection waits for its next request before it "
        "is closed. One whose client is still taking its answers is not idle: it is closed "
        "only once the client took nothing for that long. The same bounds an ASGI "
        "application's streamed response waiting for a client that takes nothing of it "
        "(the application then hears that the client is gone).",
        env="WEBSOCKET_TIMEOUT_KEEP_ALIVE",
        flag="--timeout-keep-alive",
    )
    ssl_certfile: str | None = setting(
        None,
        _path("a file path"),
        "TLS certificate chain (PEM); with `ssl_keyfile`, serves wss:// and https://.",
        env="WEBSOCKET_SSL_CERTFILE",
        flag="--ssl-certfile",
    )
    ssl_keyfile: str | None = setting(
        None,
        _path("a file path"),
        "TLS private key (PEM).",
        env="WEBSOCKET_SSL_KEYFILE",
        flag="--ssl-keyfile",
    )
    ssl_keyfile_password: str | None = setting(
        None,
        _password(),
        "password of an encrypted `ssl_keyfile`.",
        env="WEBSOCKET_SSL_KEYFILE_PASSWORD",
        flag="--ssl-keyfile-password",
    )
    ssl_ca_certs: str | None = setting(
        None,
        _path("a file path"),
        "CA certificates (PEM) that client certificates are checked against.",
        env="WEBSOCKET_SSL_CA_CERTS",
        flag="--ssl-ca-certs",
    )
    ssl_cert_reqs: int = setting(
        0,
        IntRange(0, 2),
        "client certificates: 0 not asked for, 1 optional, 2 required (Python's `ssl.CERT_*`).",
        env="WEBSOCKET_SSL_CERT_REQS",
        flag="--ssl-cert-reqs",
    )
    ssl_ciphers: str | None = setting(
        None,
        _path("an OpenSSL cipher list", "CIPHERS"),
        "OpenSSL cipher list (`none`: OpenSSL's own choice).",
        env="WEBSOCKET_SSL_CIPHERS",
        flag="--ssl-ciphers",
    )
    proxy_headers: bool = setting(
        False,
        Flag(),
        "take the client's address and scheme from `Forwarded` / `X-Forwarded-For` / "
        "`X-Forwarded-Proto`, from trusted peers only (`forwarded_allow_ips`).",
        env="WEBSOCKET_PROXY_HEADERS",
        flag="--proxy-headers",
    )
    proxy_protocol: bool = setting(
        False,
        Flag(),
        "every connection starts with a PROXY protocol header (version 1 or 2: HAProxy's "
        "`send-proxy`, AWS's Network Load Balancer), else it is closed; the client's address "
        "it names is taken from trusted peers only (`forwarded_allow_ips`). With TLS, the "
        "header comes first and the handshake after it (a balancer passing TLS through).",
        env="WEBSOCKET_PROXY_PROTOCOL",
        flag="--proxy-protocol",
    )
    forwarded_allow_ips: str = setting(
        "127.0.0.1,::1",
        Text(
            "'*' or comma-separated addresses, networks and 'unix'", _networks, metavar="ADDRESSES"
        ),
        "the proxies trusted with those headers (and PROXY protocol headers): addresses, "
        "networks and `unix` (peers on a "
        "Unix socket), comma-separated; `*`: any peer, believing only the last hop.",
        env="WEBSOCKET_FORWARDED_ALLOW_IPS",
        flag="--forwarded-allow-ips",
        env_aliases=("FORWARDED_ALLOW_IPS",),
    )
    server_header: bool = setting(
        True,
        Flag(),
        "send `Server: wsserver` in every response and `101` (unless it has its own).",
        env="WEBSOCKET_SERVER_HEADER",
        flag="--server-header",
    )
    date_header: bool = setting(
        True,
        Flag(),
        "send `Date` in every response and `101`, as RFC 9110 6.6.1 asks of an origin server "
        "(unless it has its own).",
        env="WEBSOCKET_DATE_HEADER",
        flag="--date-header",
    )
    headers: Sequence[tuple[str, str]] = setting(
        (),
        HeaderList(),
        "more headers for every response and `101` (unless it has its own; a "
        "`Set-Cookie`, unless it sets a cookie of that name), e.g. "
        "`--header 'X-Frame-Options: DENY'`.",
        flag="--header",
    )
    access_log: bool = setting(
        True,
        Flag(),
        "one INFO line per HTTP response, and per WebSocket connection when it ends, on the "
        "`wsserver.access` logger (`--no-access-log`: off).",
        env="WEBSOCKET_ACCESS_LOG",
        flag="--access-log",
    )
    broker: str | None = setting(
        None,
        Text(
            "'memory' or a redis://, rediss:// or unix:// URL",
            lambda value: value == "memory" or value.startswith(REDIS_SCHEMES),
            none_ok=True,
            metavar="URL",
            redact=redacted,  # (a mistyped URL may hold a password)
        ),
        "joins the topics of every process that shares it: `redis://host:port/db`, "
        "`rediss://` (TLS) or `unix:///path/redis.sock` (`pip install wsserver[redis]`); "
        "`none` or `memory`: this process only.",
        env="WEBSOCKET_BROKER",
        flag="--broker",
    )
    broker_prefix: str = setting(
        "wsserver:",
        Text(PREFIX_RULE, valid_prefix, metavar="PREFIX"),
        "what every Redis key and channel of the broker begins with: applications sharing one "
        "Redis database keep their topics and presence apart by theirs.",
        env="WEBSOCKET_BROKER_PREFIX",
        flag="--broker-prefix",
    )
    broker_presence_ttl: float = setting(
        15.0,
        Seconds(least=MIN_PRESENCE_TTL),
        "seconds after which a process that died stops being counted in presence "
        "(at least 0.5: refreshed every third of it).",
        env="WEBSOCKET_BROKER_PRESENCE_TTL",
    )
    broker_timeout: float = setting(
        5.0,
        Seconds(),
        "seconds Redis gets to answer before it is taken for unreachable (an outage: "
        "see the broker).",
        env="WEBSOCKET_BROKER_TIMEOUT",
    )
    broker_queue_bytes: int = setting(
        16 * 2**20,
        Count(),
        "bytes of published messages waiting to be sent to Redis (each counted with its "
        "channel's name and the 128 bytes it takes queued) beyond which more are "
        "dropped for the other processes (counted, and said in a warning at most once a "
        "minute), when Redis is slower than the publishing; a larger message never goes.",
        env="WEBSOCKET_BROKER_QUEUE_BYTES",
    )
    max_topic_size: int = setting(
        1024,
        Count(),
        "bytes of UTF-8 a topic's name may take: `subscribe()` and `publish()` raise "
        "ValueError beyond (a topic often comes from a client).",
        env="WEBSOCKET_MAX_TOPIC_SIZE",
        flag="--max-topic-size",
    )
    max_topics: int = setting(
        1000,
        Count(),
        "topics one connection may subscribe to: `subscribe()` raises ValueError beyond.",
        env="WEBSOCKET_MAX_TOPICS",
        flag="--max-topics",
    )
    broker_presence_queries: int = setting(
        8,
        IntRange(1, 64),
        "presence queries a process sends to Redis at once (1-64); more wait their turn "
        "(within `broker_timeout`), so that a burst of them never takes the connections "
        "publishing needs.",
        env="WEBSOCKET_BROKER_PRESENCE_QUERIES",
    )
    metrics_path: str | None = setting(
        None,
        Text(
            _SERVED_PATH,
            lambda value: _is_served_path(value),
            none_ok=True,
            metavar="PATH",
        ),
        "serve Prometheus metrics at this path, e.g. `/metrics` (`pip install "
        "wsserver[metrics]`); off by default.",
        env="WEBSOCKET_METRICS_PATH",
        flag="--metrics-path",
    )
    metrics_token: str | None = setting(
        None,
        _token(),
        "the metrics then want `Authorization: Bearer` (Prometheus's `authorization` "
        "scrape setting) or `?token=`.",
        env="WEBSOCKET_METRICS_TOKEN",
        flag="--metrics-token",
    )
    status_path: str | None = setting(
        None,
        Text(
            _SERVED_PATH,
            lambda value: _is_served_path(value),
            none_ok=True,
            metavar="PATH",
        ),
        "serve a live status page at this path (e.g. `/_status`) and its feed at "
        "`PATH/ws`; off by default.",
        env="WEBSOCKET_STATUS_PATH",
        flag="--status-path",
    )
    status_token: str | None = setting(
        None,
        _token(),
        "the status page and its feed then want `?token=` (or `Authorization: Bearer`).",
        env="WEBSOCKET_STATUS_TOKEN",
        flag="--status-token",
    )
    # (RUF009 takes setting() for a mutable default: it is field(default=None).)
    origins: list[str | None] | None = setting(  # noqa: RUF009
        None,
        Origins(),
        "accepted `Origin` values for WebSocket routes that set none (`none` admits "
        "requests without an Origin header).",
        flag="--origin",
    )

    def __post_init__(self) -> None:
        self.validate()
        # Kept as checked: a list the caller changes afterwards is not ours.
        self.headers = tuple((name, value) for name, value in self.headers)
        if self.origins is not None:
            self.origins = list(self.origins)

    def __repr__(self) -> str:
        # Not the dataclass's: it wrote out the key's password, the tokens and
        # a broker URL's password, wherever a config is shown (a handler
        # logging request.server.config, a traceback with its locals).
        shown = (f"{name}={spec.kind.masked(getattr(self, name))}" for name, spec in settings())
        return f"{type(self).__name__}({', '.join(shown)})"

    @classmethod
    def from_sources(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        defaults: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> Config:
        """Build a config from ``overrides``, then ``WEBSOCKET_*`` variables in ``env``.

        The variable of a setting in ``overrides`` is not read.

        ``defaults`` replace the declared defaults of some settings (the ones
        for a kind of application, e.g. compression on for ASGI apps); the
        environment and ``overrides`` win over them.

        Raises:
            ConfigError: a setting is unknown or has an invalid value.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = dict(defaults or {})
        _check_names(values)
        for name, spec in settings():
            if name in overrides:
                continue  # given: its variable is not read (a bad one fails nothing)
            found = spec.from_environment(env)
            if found is not None:
                variable, text = found
                try:
                    values[name] = spec.kind.parse(text)
                except ValueError as exc:
                    raise ConfigError(f"{variable}={text!r}: {exc}") from None
                try:
                    spec.kind.check(name, values[name])
                except ConfigError as exc:
                    # (Not the text again: the check shows the value, redacted where it must be.)
                    raise ConfigError(f"{variable}: {exc}") from None
        _check_names(overrides)
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied (and validated).

        Raises:
            ConfigError: a setting is unknown or has an invalid value.
        """
        _check_names(changes)
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Check every setting.

        Raises:
            ConfigError: naming the setting and what is wrong.
        """
        for name, spec in settings():
            spec.kind.check(name, getattr(self, name))
        if self.metrics_path is not None and self.status_path is not None:
            # The status page is <status_path> and its feed <status_path>/ws.
            status = served_path(self.status_path).rstrip("/")
            if served_path(self.metrics_path).rstrip("/") in (status, status + "/ws"):
                raise ConfigError(
                    f"metrics_path {self.metrics_path!r} is a path of the status page's "
                    f"(status_path {self.status_path!r}: it and its /ws): give it another"
                )
        self.deflate_settings()  # what only the deflate layer knows: is zlib-ng installed?

    def deflate_settings(self) -> DeflateSettings:
        """The permessage-deflate settings these options describe."""
        return DeflateSettings(
            server_max_window_bits=self.compression_window_bits,
            client_max_window_bits=self.compression_client_window_bits,
            mem_level=self.compression_mem_level,
            level=self.compression_level,
            min_size=self.compression_min_size,
            server_no_context_takeover=self.compression_no_context_takeover,
            client_no_context_takeover=self.compression_client_no_context_takeover,
            library=self.compression_library,
            releasable=self.compression_release_after is not None,
        )


def settings() -> Iterator[tuple[str, Setting]]:
    """Every setting's name and declaration, in the order of :class:`Config`."""
    for field in dataclasses.fields(Config):
        yield field.name, field.metadata["setting"]


def declared(name: str) -> Setting:
    """The declaration of the setting ``name``."""
    setting: Setting = Config.__dataclass_fields__[name].metadata["setting"]
    return setting


def _check_names(values: Mapping[str, Any]) -> None:
    names = {name for name, _ in settings()}
    for name in values:
        if name not in names:
            raise ConfigError(f"unknown setting {name!r}{_meant(name)}")


def _meant(name: str) -> str:
    """What an unknown setting's error adds: the setting a flag's other name
    (uvicorn's: ``ws_max_size``) or a near miss (``max_sise``) stands for."""
    if name == "ws_per_message_deflate":
        return ": compression here ('deflate', or None for off)"
    for setting, spec in settings():
        if f"--{name.replace('_', '-')}" in spec.aliases:
            return f": {setting} here (uvicorn's name, which --{name.replace('_', '-')} takes)"
    # (Not too loose: workers is no broker, timeout no ping_timeout.)
    names = [setting for setting, _ in settings()]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return f": {close[0]}?" if close else ""


#: Environment variable -> setting name.
ENV_VARS: dict[str, str] = {spec.env: name for name, spec in settings() if spec.env is not None}


# -------------------------------------------------------- the command line


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every setting that has one.

    A flag's default is :data:`argparse.SUPPRESS`: only the flags given reach
    the parsed namespace, so the environment and the defaults apply to the
    others. Each flag's value lands under the setting's name.
    """
    for name, spec in settings():
        if spec.flag is None:
            continue
        kind = spec.kind
        if isinstance(kind, Flag):
            # --proxy-headers / --no-proxy-headers, as uvicorn has them.
            parser.add_argument(
                spec.flag,
                *spec.aliases,
                dest=name,
                default=argparse.SUPPRESS,
                action=argparse.BooleanOptionalAction,
                help=flag_help(name, spec),
            )
            continue
        parser.add_argument(
            spec.flag,
            *spec.aliases,
            dest=name,
            default=argparse.SUPPRESS,
            type=_reader(kind),
            action="append" if kind.repeatable else "store",
            metavar=_metavar(kind),
            help=flag_help(name, spec),
        )


def flag_help(name: str, spec: Setting) -> str:
    """A setting's ``--help`` text: its help, its default (unless the help says
    it), whether it repeats, and its variable, as the other flags have them."""
    text = spec.help.replace("`", "").rstrip(".")
    if "default" not in text:
        shown = _shown(Config.__dataclass_fields__[name].default, spec.kind)
        text += f" (default {shown.replace('`', '')})"
    if spec.kind.repeatable:
        text += "; repeatable"
    if spec.env is not None:
        text += f" [{' or '.join((spec.env, *spec.env_aliases))}]"
    return text.replace("%", "%%")


def _reader(kind: Kind) -> Any:
    """The argparse type of a flag: read and check the text, or say what the flag takes."""

    def read(text: str) -> Any:
        expected = f"expected {kind.accepted()}, not {kind.shown(text)}"
        try:
            value = kind.parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(expected) from None
        if value is None and not text.strip():
            # A flag given empty (--ssl-certfile "$CERT", the variable unset):
            # not none, as an empty variable is (TLS off without a word; an
            # ASGI application's compression off, for --compression).
            raise argparse.ArgumentTypeError(expected)
        checked = [value] if kind.repeatable else value
        try:
            kind.check("value", checked)
        except ConfigError:
            raise argparse.ArgumentTypeError(kind.why(checked) or expected) from None
        return value

    read.__name__ = type(kind).__name__.lower()
    return read


def _metavar(kind: Kind) -> str:
    if isinstance(kind, Flag):
        return ""
    if isinstance(kind, Choice):
        return "|".join([*kind.choices, *(["none"] if kind.none_ok else [])])
    if isinstance(kind, Seconds):
        return "SECONDS" + ("|none" if kind.none_ok else "")
    if isinstance(kind, Origins):
        return "ORIGIN"
    if isinstance(kind, HeaderList):
        return "NAME:VALUE"
    if isinstance(kind, Text):
        return kind.metavar + ("|none" if kind.none_ok else "")
    return "N" + ("|none" if kind.none_ok else "")


def flag_settings(namespace: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags in a parsed namespace (see :func:`add_flags`)."""
    given = vars(namespace)
    return {name: given[name] for name, spec in settings() if spec.flag and name in given}


# ------------------------------------------------------------- the README


def markdown_table() -> str:
    """The README's configuration table, made from the declarations."""
    rows = [
        "| setting | default | CLI flag | environment | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, spec in settings():
        field = Config.__dataclass_fields__[name]
        flag = ""
        if isinstance(spec.kind, Flag) and spec.flag is not None:
            flag = f"`{spec.flag}` / `--no-{spec.flag[2:]}`"
        elif spec.flag is not None:
            flag = f"`{spec.flag} {_metavar(spec.kind)}`".replace("|", "\\|")
            flag += "".join(f" (or `{alias}`)" for alias in spec.aliases)
            if spec.kind.repeatable:
                flag += " (repeatable)"
        env = f"`{spec.env}`" if spec.env else ""
        env += "".join(f" (or `{alias}`)" for alias in spec.env_aliases)
        rows.append(
            f"| `{name}` | {_shown(field.default, spec.kind)} | {flag} | {env} | {spec.help} |"
        )
    return "\n".join(rows)


def _shown(default: Any, kind: Kind) -> str:
    if default is None or default == ():
        return "any" if isinstance(kind, Origins) else "none"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, str):
        return f'`"{default}"`'
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)
