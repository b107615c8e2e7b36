"""permessage-deflate (RFC 7692): negotiation and per-message (de)compression.

Sans-I/O. :func:`negotiate` reads the client's ``Sec-WebSocket-Extensions``
offers and returns the agreed :class:`PerMessageDeflate` with the response
header value. That object compresses outgoing and inflates incoming messages
for one connection.

Memory: zlib objects are created on first use, not at the handshake, and are
dropped after every message in a direction without context takeover. With
context takeover a compressor costs about ``2**(wbits+2) + 2**(mem_level+9)``
bytes plus ~6 KiB, and a decompressor about ``2**wbits`` bytes plus ~7 KiB
(see :class:`DeflateSettings`). A client that ends its deflate stream in a
message (RFC 7692 7.2.3.3) costs a copy of the decompressor's window besides,
from then on: the next stream refers back into it.

Faster deflate: with the ``speedups`` extra installed (``zlib-ng``), zlib-ng's
implementation of zlib's API does the work by default (``library="auto"``),
unless ``WSSERVER_NO_SPEEDUPS`` is set; :data:`ZLIB` names what "auto" picks,
and ``library="zlib"`` keeps zlib's smaller memory. Its streams are ordinary deflate
streams, and its compressor keeps zlib's lookahead (what the window-bits-8
note below relies on). Its level 1 is a coarser algorithm than zlib's, so a
configured level 1 asks it for level 2, which compresses about as well as
zlib's level 1 in about half the time. It takes more memory: about 160 KiB per
compressor at the default settings (zlib: ~38 KiB) and ~41 KiB per
decompressor (zlib: ~11 KiB at 12 window bits), whatever the window.

Under "auto" with zlib-ng, the compressor follows the messages' sizes: zlib's
compresses until a message of :data:`LARGE_MESSAGE` bytes or more is sent,
zlib-ng's from then on: on small messages zlib-ng gains little (about 0.8 µs
on 256 bytes of JSON, 1.8 µs on 512), a third and more from 1 KiB on, and
zlib's compressor takes a quarter of the memory. The switch happens between
two messages, the way a release does (below): the new compressor is primed
with the last window of what the old one took, so the client sees one stream.
To allow it, that window is kept while zlib's compressor is in use.

Releasing an idle compressor: with context takeover the compressor is kept
between messages, which is most of a compressing connection's memory. The
glue may call :meth:`PerMessageDeflate.release` once a connection has sent
nothing for a while: the compressor is freed, and only the last window of
what it compressed (``2**wbits`` bytes) is kept. The next message gets a new
compressor primed with those bytes as its preset dictionary, so it refers
back exactly as far as the kept one could; the client's decompressor holds
the same bytes as its own window, and sees one continuous stream.

Window bits 8: zlib refuses a raw deflate stream with a 256-byte window. When
a client asks for ``server_max_window_bits=8`` we compress with a 512-byte
window instead: zlib's compressor never refers further back than the window
size minus 262 bytes (its minimum lookahead), that is 250 bytes here, so every
stream it makes is valid for a 256-byte window, and the agreement holds.
"""

from __future__ import annotations

import dataclasses
import os
import re
import zlib
from typing import Any

from ..errors import ConfigError, ProtocolError
from .syntax import QUOTED, TOKEN_RE, unquote

#: The deflate implementations that are importable, by name (see the module docstring).
LIBRARIES: dict[str, Any] = {"zlib": zlib}
try:
    from zlib_ng import zlib_ng
except ImportError:  # the speedups extra is not installed
    pass
else:
    LIBRARIES["zlib-ng"] = zlib_ng
#: What ``library="auto"`` picks: zlib-ng when installed, unless WSSERVER_NO_SPEEDUPS is set.
ZLIB = (
    "zlib-ng" if "zlib-ng" in LIBRARIES and not os.environ.get("WSSERVER_NO_SPEEDUPS") else "zlib"
)

__all__ = [
    "DeflateSettings",
    "FLUSH_BYTES",
    "PerMessageDeflate",
    "LARGE_MESSAGE",
    "ZLIB",
    "max_deflated_size",
    "negotiate",
    "parse_extensions",
]

#: Under library "auto" with zlib-ng installed, zlib-ng compresses a connection's
#: messages from its first message of this many bytes on (see the module docstring).
LARGE_MESSAGE = 1024

EXTENSION_NAME = "permessage-deflate"
_TAIL = b"\x00\x00\xff\xff"
#: An empty stored block: a non-final block header (and its padding), then _TAIL.
_EMPTY_STORED = b"\x00" + _TAIL

#: The size under which a piece of a message's output is joined to the last
#: one kept (see PerMessageDeflate._keep_inflated()), not kept as an object.
_SMALL = 1024
_BITS_RE = re.compile(r"(?:[89]|1[0-5])\Z")
_QUOTED_RE = re.compile(QUOTED)
_OWS_RE = re.compile(r"[ \t]*")

Params = list[tuple[str, "str | None"]]

#: The accepted range of each integer setting of :class:`DeflateSettings`.
RANGES: dict[str, tuple[int, int]] = {
    "server_max_window_bits": (9, 15),
    # Not 8: zlib has no 8-bit window, so clients built on it (websockets)
    # refuse the answer, and our decompressor uses 9 bits anyway.
    "client_max_window_bits": (9, 15),
    "mem_level": (1, 9),
    "level": (-1, 9),
    "min_size": (0, 2**63),
}


@dataclasses.dataclass(frozen=True)
class DeflateSettings:
    """What the server accepts and how it compresses.

    Args:
        server_max_window_bits: window of our compressor, 9-15 (a client's
            smaller ``server_max_window_bits`` is honoured). 12 costs ~38 KiB
            per connection with context takeover, 15 costs ~260 KiB at
            ``mem_level`` 8.
        client_max_window_bits: the window we ask clients to compress with,
            9-15, when they offer ``client_max_window_bits`` (a smaller value
            in the offer is honoured); our decompressor then needs only
            ``2**bits`` bytes of window.
        mem_level: zlib memory level of our compressor, 1-9.
        level: zlib compression level, 0-9 (or -1 for zlib's default).
        min_size: messages shorter than this (in bytes) are sent uncompressed.
        server_no_context_takeover: always reset our compressor after each
            message (caps memory, costs ratio).
        client_no_context_takeover: always ask clients to reset their
            compressor after each message (RFC 7692 7.1.1.2 lets a server ask
            it of any offer): our decompressor is then dropped after each
            message, so an idle connection holds none (costs ratio).
        library: ``"zlib"``, ``"zlib-ng"`` (the speedups extra: faster, more
            memory) or ``"auto"`` (zlib-ng when installed).
        releasable: keep the last window of what the compressor took, so that
            :meth:`PerMessageDeflate.release` may free an idle compressor
            (off: nothing is kept, and release() refuses).
    """

    server_max_window_bits: int = 12
    client_max_window_bits: int = 12
    mem_level: int = 5
    level: int = 1
    min_size: int = 32
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    library: str = "auto"
    releasable: bool = False

    def __post_init__(self) -> None:
        for name, (low, high) in RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"{name} must be an integer from {low} to {high}, not {value!r}")
        if self.library not in ("auto", "zlib", "zlib-ng"):
            raise ConfigError(f"library must be 'auto', 'zlib' or 'zlib-ng', not {self.library!r}")
        if self.library not in LIBRARIES and self.library != "auto":
            raise ConfigError(
                f"compression library {self.library} is not installed "
                "(pip install 'wsserver[speedups]')"
            )

    @property
    def library_in_use(self) -> str:
        """The implementation that compresses: ``library``, "auto" resolved.

        Under "auto" with zlib-ng this is zlib-ng, which inflates every message
        and compresses the large ones (see :attr:`by_size`).
        """
        return ZLIB if self.library == "auto" else self.library

    @property
    def by_size(self) -> bool:
        """Whether zlib compresses messages until one of :data:`LARGE_MESSAGE` bytes."""
        return self.library == "auto" and ZLIB != "zlib"


#: What a sender's flush at the end of a frame may add on the wire: an empty
#: stored block (5 bytes), the header of the stored block it cut (5), and the
#: bits that pad to a byte (RFC 7692 7.2.1 lets a sender flush every frame).
FLUSH_BYTES = 16


def max_deflated_size(size: int, frames: int = 1) -> int:
    """The most bytes a permessage-deflate message of ``size`` bytes in
    ``frames`` frames can take on the wire.

    Incompressible data grows when deflated, by how much depends on the
    sender's compressor: zlib at its default memory level and window adds
    5 bytes per stored block of 16 KiB and more, but at memory level 1 its
    blocks hold 128 bytes (+4%), and zlib-ng's level 1 (aiohttp's level, on
    zlib-ng) writes fixed Huffman codes, 9 bits for each byte of 144-255
    (+12.5%). The bound is zlib's ``deflateBound`` for settings other than
    its default ones (+13%: 9-bit literals in fixed blocks), which holds for
    every level, memory level and window of zlib and zlib-ng, and each frame
    a sender flushed costs up to :data:`FLUSH_BYTES` more, however small.
    """
    return size + (size >> 3) + (size >> 8) + (size >> 9) + 16384 + FLUSH_BYTES * frames


def parse_extensions(values: list[str]) -> list[tuple[str, Params]]:
    """Parse ``Sec-WebSocket-Extensions`` header values (RFC 6455 9.1).

    Returns ``[(extension_name, [(param, value_or_None), ...]), ...]`` in
    offer order; quoted values are unquoted.

    Raises:
        ValueError: the header is not well formed.
    """
    result: list[tuple[str, Params]] = []
    for value in values:
        pos = 0
        n = len(value)
        while True:
            pos = _OWS_RE.match(value, pos).end()  # type: ignore[union-attr]
            if pos < n and value[pos] == ",":  # empty list elements are allowed
                pos += 1
                continue
            if pos >= n:
                break
            name, pos = _token(value, pos)
            params: Params = []
            while True:
                pos = _OWS_RE.match(value, pos).end()  # type: ignore[union-attr]
                if pos >= n or value[pos] == ",":
                    break
                if value[pos] != ";":
                    raise ValueError(f"unexpected {value[pos]!r} in extension header")
                pos = _OWS_RE.match(value, pos + 1).end()  # type: ignore[union-attr]
                param, pos = _token(value, pos)
                pos = _OWS_RE.match(value, pos).end()  # type: ignore[union-attr]
                arg: str | None = None
                if pos < n and value[pos] == "=":
                    pos = _OWS_RE.match(value, pos + 1).end()  # type: ignore[union-attr]
                    if pos < n and value[pos] == '"':
                        m = _QUOTED_RE.match(value, pos)
                        if m is None:
                            raise ValueError("unterminated quoted string")
                        arg = unquote(m.group())
                        if not TOKEN_RE.fullmatch(arg):
                            raise ValueError("quoted parameter value is not a token")
                        pos = m.end()
                    else:
                        arg, pos = _token(value, pos)
                params.append((param.lower(), arg))
            result.append((name.lower(), params))
    return result


def _token(value: str, pos: int) -> tuple[str, int]:
    m = TOKEN_RE.match(value, pos)
    if m is None:
        raise ValueError(f"expected a token at position {pos}")
    return m.group(), m.end()


class PerMessageDeflate:
    """The agreed permessage-deflate parameters of one connection, and its zlib state.

    Args:
        server_no_context_takeover: reset our compressor after each message.
        client_no_context_takeover: the client resets its compressor after
            each message, so our decompressor is dropped after each message.
        server_window_bits: the window our compressor may use (8-15).
        client_window_bits: the window the client may use (8-15).
        settings: compression level, memory level and minimum size.
    """

    __slots__ = (
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_window_bits",
        "client_window_bits",
        "settings",
        "_zlib",
        "_compressor",
        "_upgradable",
        "_decompressor",
        "_inflated",
        "_inflated_size",
        "_inflated_all",
        "_fed",
        "_window",
        "_history",
        "_mid_message",
    )

    def __init__(
        self,
        *,
        server_no_context_takeover: bool = False,
        client_no_context_takeover: bool = False,
        server_window_bits: int = 15,
        client_window_bits: int = 15,
        settings: DeflateSettings | None = None,
    ) -> None:
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_window_bits = server_window_bits
        self.client_window_bits = client_window_bits
        self.settings = settings or DeflateSettings()
        self._zlib: Any = LIBRARIES[self.settings.library_in_use]
        self._compressor: zlib._Compress | None = None  # or zlib-ng's twins
        # The compressor is zlib's, to be replaced by zlib-ng's for a large message.
        self._upgradable = False
        self._decompressor: zlib._Decompress | None = None
        # This message's latest outputs (their last window at most), for
        # _stream_ended(): references to objects the message holds anyway, or
        # the last window of a larger one.
        self._inflated: list[bytes] = []
        self._inflated_size = 0
        # From the first time the peer's stream ended on: the last window of
        # all output (up to a quarter more, trimmed as it grows), what the
        # next decompressor starts from when it ends again; None until then
        # (see _stream_ended()).
        self._inflated_all: bytearray | None = None
        # The last compressed byte of this message's earlier pieces; b"" when
        # they had none (see inflate()).
        self._fed = b""
        # With context takeover, when settings are releasable or by_size: the
        # last _window bytes (or up to twice that, trimmed as it grows) our
        # compressor took, what primes the next one after a release() or for a
        # large message (see start_deflate()); None when not kept.
        self._window = 1 << max(server_window_bits, 9)
        self._history: bytearray | None = (
            bytearray()
            if (self.settings.releasable or self.settings.by_size)
            and not server_no_context_takeover
            else None
        )
        # A message is being compressed (its last frame not yet).
        self._mid_message = False

    def __repr__(self) -> str:
        return f"PerMessageDeflate({self.response_header()!r})"

    def response_header(self, offered: Params | None = None) -> str:
        """The ``Sec-WebSocket-Extensions`` value that states what was agreed.

        ``server_max_window_bits`` and ``client_max_window_bits`` are stated
        only when the offer had them (some clients fail on unsolicited ones).
        """
        names = {name for name, _ in offered or []}
        parts = [EXTENSION_NAME]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if "server_max_window_bits" in names:
            parts.append(f"server_max_window_bits={self.server_window_bits}")
        if "client_max_window_bits" in names:
            parts.append(f"client_max_window_bits={self.client_window_bits}")
        return "; ".join(parts)

    # ---------------------------------------------------------- compressing

    def should_compress(self, size: int, fin: bool) -> bool:
        """Whether to compress a message whose first frame has ``size`` bytes."""
        return size >= self.settings.min_size or not fin

    def start_deflate(self, size: int = 0) -> None:
        """Prepare the compressor for a new message whose first frame has ``size`` bytes."""
        if self._compressor is None or (self._upgradable and size >= LARGE_MESSAGE):
            self._new_compressor(size)

    def _new_compressor(self, size: int) -> None:
        settings = self.settings
        library = self._zlib
        history = self._history
        self._upgradable = settings.by_size and size < LARGE_MESSAGE
        if self._upgradable:
            library = zlib
        elif not settings.releasable:
            self._history = None  # no compressor will need it again
        # 9 bits for 8: distances stay <= 250 (see the module docstring).
        bits = max(self.server_window_bits, 9)
        level = settings.level
        if level == 1 and library is not zlib:
            level = 2  # zlib-ng's level 1 is coarser than zlib's (module docstring)
        if history:
            # What the compressor before could refer to (released, or zlib's).
            del history[: -self._window]
            self._compressor = library.compressobj(
                level, zlib.DEFLATED, -bits, settings.mem_level,
                zlib.Z_DEFAULT_STRATEGY, bytes(history),
            )  # fmt: skip
        else:
            self._compressor = library.compressobj(level, zlib.DEFLATED, -bits, settings.mem_level)

    def deflate(self, data: bytes | bytearray | memoryview, fin: bool) -> bytes:
        """Compress one frame's worth of a message; ``fin`` marks its last frame."""
        compressor = self._compressor
        assert compressor is not None, "start_deflate() first"
        out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        self._mid_message = not fin
        if fin and self.server_no_context_takeover:
            self._compressor = None
        history = self._history
        if history is not None:
            window = self._window
            if len(data) >= window:
                history[:] = data[-window:]
            else:
                history += data
                if len(history) >= 2 * window:
                    del history[:-window]  # amortised: a copy every window bytes or so
        if fin and out.endswith(_TAIL):
            out = out[:-4]
        return out

    @property
    def holds_compressor(self) -> bool:
        """Whether a compressor is kept between messages (what :meth:`release` frees)."""
        return self._compressor is not None

    def release(self) -> bool:
        """Free the compressor between messages, keeping only its last window of data.

        Compression goes on as before with the next message (see the module
        docstring). Returns False, and keeps the compressor, in the middle of
        a fragmented message, or when the settings are not ``releasable``
        (or without context takeover, where no compressor is kept anyway).
        """
        history = self._history
        if self._mid_message or history is None or not self.settings.releasable:
            return False
        self._compressor = None
        # One window, in a bytearray of its own: between two trims it holds up
        # to twice that, and del keeps the memory of what it deleted.
        self._history = history[-self._window :]
        return True

    # -------------------------------------------------------- decompressing

    @property
    def holds_decompressor(self) -> bool:
        """Whether a decompressor is kept (between messages: with the client's
        context takeover, or a message under way)."""
        return self._decompressor is not None

    def start_inflate(self) -> None:
        """Prepare the decompressor for a new compressed message."""
        if self._decompressor is None:
            # A window of 9 bits decodes streams made for 8 bits as well; zlib's
            # own compressor never emits a raw 8-bit stream.
            bits = -max(self.client_window_bits, 9)
            history = self._inflated_all
            if history:  # the peer's stream ended: the new one may refer back
                zdict = bytes(history[-(1 << -bits) :])
                self._decompressor = self._zlib.decompressobj(bits, zdict=zdict)
            else:
                self._decompressor = self._zlib.decompressobj(bits)

    def inflate(self, data: bytes, final: bool, limit: int) -> bytes:
        """Decompress a piece of a message.

        Args:
            data: compressed bytes of the message.
            final: whether ``data`` ends the message (the ``00 00 ff ff`` tail
                is then added).
            limit: return at most this many bytes (0: no limit). The caller
                passes one more than it accepts, so that getting ``limit``
                bytes tells it the message is too big, without ever inflating
                much more than it accepts.

        Raises:
            ProtocolError: 1007 when ``data`` is not a valid deflate stream.
        """
        decompressor = self._decompressor
        assert decompressor is not None, "start_inflate() first"
        try:
            if data:
                out = decompressor.decompress(data, limit)
                if limit and len(out) >= limit:
                    return out
            elif final and not self._fed:
                # 00 00 ff ff alone would leave zlib inside a stored block's
                # header, and inflate the next message wrong (RFC 7692 7.2.1:
                # an empty message is at least an empty block's 00).
                raise ProtocolError("invalid compressed data: an empty payload", 1007)
            else:
                out = b""
            if final:
                rest = decompressor.decompress(_TAIL, limit - len(out) if limit else 0)
                if rest:
                    out += rest
                history = self._inflated_all
                if history is not None:  # (a peer that ended its stream before)
                    self._keep_all(history, out)
                # The stream may end in the tail: an empty final stored block
                # (01 00 00 ff ff) whose 00 00 ff ff the sender removed.
                if decompressor.eof:
                    self._stream_ended(decompressor, out)
                    self._decompressor = None
                elif (data or self._fed)[-1:] == b"\xff":
                    # A payload ends in the header of an empty stored block,
                    # its BTYPE bits 0 (RFC 7692 7.2.1), so never in ff: this
                    # one kept the 00 00 ff ff its sender should have removed.
                    # The tail we appended began another stored block, whose
                    # lengths the next message's first bytes would become.
                    raise ProtocolError(
                        "invalid compressed data: the payload ends in ff (00 00 ff ff left on?)",
                        1007,
                    )
                elif self.client_no_context_takeover:
                    self._decompressor = None
                if self._fed:  # (a message in one piece needs no reset)
                    self._fed = b""
                    self._inflated = []
                    self._inflated_size = 0
                return out
            if data:
                self._fed = data[-1:]
            history = self._inflated_all
            if history is not None:
                self._keep_all(history, out)
            if decompressor.eof:
                self._stream_ended(decompressor, out)
            elif out and history is None and not self.client_no_context_takeover:
                self._keep_inflated(out)
        except self._zlib.error as exc:
            raise ProtocolError(f"invalid compressed data: {exc}", 1007) from None
        return out

    def _keep_inflated(self, out: bytes) -> None:
        """Keep the last window of this message's output: references to the
        pieces, or of a piece of a window or more, a copy of its last window
        (a text message is held decoded: its bytes would be held twice)."""
        window = 1 << max(self.client_window_bits, 9)
        if len(out) >= window:
            self._inflated = [out[-window:]]
            self._inflated_size = window
            return
        kept = self._inflated
        if kept and len(out) < _SMALL and len(kept[-1]) < _SMALL:
            # A small piece joins the last: an object each, a message in
            # frames of a byte or two held some fifty times its window.
            kept[-1] += out
        else:
            kept.append(out)
        self._inflated_size += len(out)
        while self._inflated_size - len(kept[0]) >= window:
            self._inflated_size -= len(kept.pop(0))

    def _keep_all(self, history: bytearray, out: bytes) -> None:
        """Add to the last window of all output (a copy: a text message is held decoded)."""
        window = 1 << max(self.client_window_bits, 9)
        if len(out) < window:
            history += out
            if len(history) > window + (window >> 2):
                del history[:-window]
        else:
            history[:] = memoryview(out)[-window:]

    def _stream_ended(self, decompressor: Any, out: bytes) -> None:
        """The peer ended its deflate stream (a block with BFINAL set, RFC 7692 7.2.3.3).

        Nothing may follow in the message but an empty stored block (what is
        left of the one the sender appended before removing ``00 00 ff ff``).
        The next message is a new stream, which with context takeover may
        refer back to what came before (7.2.2): its decompressor starts from
        the last window of all output. That is kept from the first time the
        peer's stream ends on, not to cost every message of the others a copy:
        the first time, only this message's output is known, and a reference
        further back fails with 1007 (zlib's "invalid distance too far back"),
        never inflating wrong.

        Raises:
            ProtocolError: 1007 when other bytes follow the end of the stream.
        """
        unused = decompressor.unused_data
        if unused and not (_EMPTY_STORED.startswith(unused) or _TAIL.startswith(unused)):
            raise ProtocolError("invalid compressed data: bytes after the end of the stream", 1007)
        if self.client_no_context_takeover or self._inflated_all is not None:
            return  # (kept already, this message's output included)
        window = 1 << max(self.client_window_bits, 9)
        self._inflated_all = bytearray(b"".join([*self._inflated, out])[-window:])


def negotiate(
    header_values: list[str], settings: DeflateSettings
) -> tuple[PerMessageDeflate, str] | None:
    """Accept the first acceptable permessage-deflate offer.

    An offer with an unknown or repeated parameter, a value where none is
    allowed, or a window size outside 8-15 is declined and the next one is
    considered. A malformed header declines them all.

    Returns:
        ``(agreed parameters, response header value)``, or None when no offer
        was acceptable.
    """
    try:
        offers = parse_extensions(header_values)
    except ValueError:
        return None
    for name, params in offers:
        if name != EXTENSION_NAME:
            continue
        agreed = _accept(params, settings)
        if agreed is not None:
            return agreed, agreed.response_header(params)
    return None


def _accept(params: Params, settings: DeflateSettings) -> PerMessageDeflate | None:
    seen: set[str] = set()
    server_nct = settings.server_no_context_takeover
    client_nct = settings.client_no_context_takeover
    server_bits = settings.server_max_window_bits
    client_bits = 15
    for param, value in params:
        if param in seen:
            return None
        seen.add(param)
        if param == "server_no_context_takeover":
            if value is not None:
                return None
            server_nct = True
        elif param == "client_no_context_takeover":
            if value is not None:
                return None
            client_nct = True
        elif param == "server_max_window_bits":
            if value is None or not _BITS_RE.match(value):
                return None
            server_bits = min(server_bits, int(value))
        elif param == "client_max_window_bits":
            if value is None:
                client_bits = settings.client_max_window_bits
            elif _BITS_RE.match(value):
                client_bits = min(int(value), settings.client_max_window_bits)
            else:
                return None
        else:
            return None
    return PerMessageDeflate(
        server_no_context_takeover=server_nct,
        client_no_context_takeover=client_nct,
        server_window_bits=server_bits,
        client_window_bits=client_bits,
        settings=settings,
    )
