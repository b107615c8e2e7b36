"""RFC 6455 framing: opcodes, close codes, masking, serialization and parsing.

Sans-I/O: nothing here touches sockets, the event loop or time.

:class:`FrameParser` reads frames from one growing receive buffer. It reports
*frame pieces* (:class:`FramePiece`): ``payload`` is an unmasked chunk of the
frame's payload that starts at ``offset`` in a payload of ``length`` bytes. A
frame that is wholly in the buffer comes out as one piece (``offset == 0`` and
``len(payload) == length``); a data frame whose payload is still arriving comes
out as several pieces, the first one as soon as its header is complete, so that
limits and UTF-8 are checked before the rest of the payload is buffered (from
:data:`COLLECT_MIN` bytes on, that first piece is the header alone, and the
caller may have the rest collected into one piece: :meth:`FrameParser.collect_payload`).
Control frames always come out whole.

Whole small messages have a faster way out: :meth:`FrameParser.read_messages`.
The hot paths (masking, reading whole messages, building frames, collecting a
payload) have twins in the optional C accelerator (``_speedups.c``); the
functions here are their reference.
"""

from __future__ import annotations

import enum
import os
import struct
from collections.abc import Callable
from typing import NamedTuple, Protocol

from ..errors import ProtocolError

__all__ = [
    "Opcode",
    "CloseCode",
    "FrameParser",
    "FramePiece",
    "OPCODES",
    "apply_mask",
    "build_frame",
    "read_messages",
    "serialize_frame",
    "frame_header",
    "serialize_close",
    "clip_close_reason",
    "parse_close",
    "is_valid_close_code",
]


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 section 5.2)."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA

    @property
    def is_control(self) -> bool:
        """Whether this is a control frame's opcode (close, ping, pong)."""
        return self >= 0x8


class CloseCode(enum.IntEnum):
    """Close codes (RFC 6455 section 7.4.1 and the IANA registry)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


#: The Opcode for each value of a header's 4 opcode bits; None where unassigned.
OPCODES: tuple[Opcode | None, ...] = tuple(
    Opcode(bits) if bits in {op.value for op in Opcode} else None for bits in range(16)
)

# The members again, as module globals: on Python 3.11 ``Opcode.TEXT`` is an
# attribute lookup through the enum's metaclass (~100 ns), a global is ~20 ns,
# and the parser and the connection compare opcodes for every frame.
CONTINUATION = Opcode.CONTINUATION
TEXT = Opcode.TEXT
BINARY = Opcode.BINARY
CLOSE = Opcode.CLOSE
PING = Opcode.PING
PONG = Opcode.PONG


class FramePiece(NamedTuple):
    """A piece of a received frame: all of it, or a part of a payload still arriving."""

    opcode: Opcode
    fin: bool
    rsv1: bool
    #: The unmasked bytes of this piece.
    payload: bytes
    #: The frame's whole payload length.
    length: int
    #: Where this piece starts in the frame's payload.
    offset: int


# Builds a FramePiece from a tuple without the NamedTuple's Python-level
# __new__ (half its cost: one piece is made for every frame received).
_piece = tuple.__new__

_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
_HEAD16 = struct.Struct("!BBH")
_HEAD64 = struct.Struct("!BBQ")


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame on the wire (RFC 6455 7.4)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


Buffer = bytes | bytearray | memoryview


def _apply_mask_python(data: Buffer, mask: Buffer) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated, using whole-buffer integer XOR."""
    n = len(data)
    if n == 0:
        return b""
    key = (bytes(mask) * ((n + 3) >> 2))[:n]
    value = int.from_bytes(data, "little") ^ int.from_bytes(key, "little")
    return value.to_bytes(n, "little")


def _read_messages_python(
    buf: Buffer, pos: int, max_size: int | None
) -> tuple[list[str | bytes], int]:
    """The whole small messages at ``buf[pos:]``, and where they end.

    Reads frames while each is wholly in ``buf``, final, masked, text or
    binary without RSV bits, its length in the fewest bytes, and has at most
    ``max_size`` payload bytes (None: any): their payloads, unmasked, text
    decoded from UTF-8. Stops at the
    first frame that is not such a frame, and before a text frame that is not
    valid UTF-8: the general path reads (and fails) those. Returns the
    messages and the position of the first byte not consumed.

    The reference for the C accelerator's ``read_messages``.

    Raises:
        ValueError: ``pos`` is not within ``buf`` (its end included).
    """
    messages: list[str | bytes] = []
    end = len(buf)
    if not 0 <= pos <= end:
        raise ValueError("pos out of range")
    while end - pos >= 2:
        b0 = buf[pos]
        b1 = buf[pos + 1]
        if (b0 != 0x81 and b0 != 0x82) or b1 < 0x80:
            break
        n = b1 & 0x7F
        hlen = 6
        if n == 126:
            if end - pos < 4:
                break
            n = _U16.unpack_from(buf, pos + 2)[0]
            if n < 126:
                break
            hlen = 8
        elif n == 127:
            if end - pos < 10:
                break
            n = _U64.unpack_from(buf, pos + 2)[0]
            if n >> 63 or n < 0x10000:
                break
            hlen = 14
        if (max_size is not None and n > max_size) or end - pos - hlen < n:
            break
        start = pos + hlen
        payload = apply_mask(buf[start : start + n], buf[start - 4 : start])
        if b0 == 0x81:
            try:
                messages.append(payload.decode("utf-8"))
            except UnicodeDecodeError:
                break
        else:
            messages.append(payload)
        pos = start + n
    return messages, pos


def _build_frame_python(opcode: int, payload: str | Buffer, fin: bool, rsv1: bool) -> bytes:
    """An unmasked frame: its header, then ``payload`` (a str: its UTF-8).

    The reference for the C accelerator's ``build_frame``.
    """
    if isinstance(payload, str):
        data = payload.encode("utf-8")
    elif type(payload) is bytes:
        data = payload
    else:
        data = bytes(payload)
    return frame_header(opcode, len(data), fin, rsv1) + data


def _read_close_python(buf: Buffer, pos: int) -> tuple[int, str, int] | None:
    """A whole, valid, masked close frame at ``buf[pos:]``: its ``(code, reason)``
    as :func:`parse_close` gives them, and where it ends.

    None when the frame there is anything else, is incomplete, or is an
    invalid close frame: :meth:`FrameParser.next_piece` reads that one, and
    fails it as it fails any other (the C ``read_close`` does the same).

    Raises:
        ValueError: ``pos`` is not within ``buf`` (its end included).
    """
    if not 0 <= pos <= len(buf):
        raise ValueError("pos out of range")
    if len(buf) - pos < 6 or buf[pos] != 0x88:
        return None  # not a final close frame without RSV bits
    b1 = buf[pos + 1]
    length = b1 & 0x7F
    start = pos + 6
    if b1 < 0x80 or length > 125 or len(buf) - start < length:
        return None  # unmasked, its length not in one byte, or incomplete
    payload = _apply_mask_python(buf[start : start + length], buf[pos + 2 : start])
    try:
        code, reason = parse_close(payload)
    except ProtocolError:
        return None
    return code, reason, start + length


class Payload(Protocol):
    """What :data:`PayloadBuffer` makes (the C type, or the pure-Python reference)."""

    @property
    def allocated(self) -> int: ...
    @property
    def filled(self) -> int: ...
    def add(self, masked: Buffer, mask: Buffer, /) -> None: ...
    def take(self) -> bytes: ...


class _PayloadBufferPython:
    """One large frame's payload, unmasked as it arrives, given whole by :meth:`take`.

    The reference for the C accelerator's ``PayloadBuffer``, which unmasks
    into the final bytes object (no pieces to join). Both allocate as the
    payload arrives: all of ``size`` once a quarter of it was added, before
    that twice what was added (at least 64 KiB): a peer that announces a
    large frame gets at most four times what it sent allocated.
    """

    __slots__ = ("_data", "_size", "_filled")

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError("size must be >= 0")
        self._data = bytearray()
        self._size = size
        self._filled = 0

    @property
    def filled(self) -> int:
        """Bytes of the payload added so far."""
        return self._filled

    @property
    def allocated(self) -> int:
        """Bytes allocated for the payload so far (the C version's policy, stated)."""
        return len(self._data)

    def add(self, masked: Buffer, mask: Buffer, /) -> None:
        """Unmask the next bytes of the payload (``mask``: the frame's) into place."""
        if len(mask) != 4:
            raise ValueError("mask must be 4 bytes")
        n = len(masked)
        if n > self._size - self._filled:
            raise ValueError("more bytes than the payload's size")
        need = self._filled + n
        if need > len(self._data):
            grow = self._size if need >= self._size // 4 else 2 * need
            grow = max(grow, min(_PAYLOAD_MIN_ALLOC, self._size))
            self._data.extend(bytes(grow - len(self._data)))
        r = self._filled & 3
        turned = bytes(mask[r:]) + bytes(mask[:r])
        self._data[self._filled : need] = apply_mask(masked, turned)
        self._filled = need

    def take(self) -> bytes:
        """The whole payload, once every byte was added."""
        if self._filled != self._size:
            raise ValueError("the payload is not complete")
        data = bytes(memoryview(self._data)[: self._size])
        self._data = bytearray()
        self._size = self._filled = 0
        return data


#: Data frames of at least this many bytes whose payload is still arriving come out
#: header first, on its own, so that the payload may be collected (FrameParser.collect_payload).
COLLECT_MIN = 16 * 1024
#: Allocate at least this much at once for a payload (PayloadBuffer).
_PAYLOAD_MIN_ALLOC = 65536


apply_mask: Callable[[Buffer, Buffer], bytes] = _apply_mask_python
read_messages: Callable[[Buffer, int, int | None], tuple[list[str | bytes], int]] = (
    _read_messages_python
)
build_frame: Callable[[int, str | Buffer, bool, bool], bytes] = _build_frame_python
read_close: Callable[[Buffer, int], tuple[int, str, int] | None] = _read_close_python
PayloadBuffer: Callable[[int], Payload] = _PayloadBufferPython
#: Whether the C accelerator is in use (masking, reading small messages and close
#: frames, building frames, assembling large payloads).
SPEEDUPS = False
if not os.environ.get("WSSERVER_NO_SPEEDUPS"):
    try:
        from ._speedups import PayloadBuffer, apply_mask, build_frame, read_close, read_messages
    except ImportError:  # not built: no compiler, or an unusual platform
        pass
    else:
        SPEEDUPS = True


def serialize_frame(
    opcode: int,
    payload: bytes | bytearray | memoryview = b"",
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask: bytes | None = None,
) -> bytes:
    """Return the bytes of one frame.

    Servers send unmasked frames; ``mask`` (4 bytes) is for building client
    frames, e.g. in tests.
    """
    header = frame_header(opcode, len(payload), fin, rsv1, mask is not None)
    if mask is not None:
        return header + mask + apply_mask(payload, mask)
    return header + payload


def frame_header(
    opcode: int, length: int, fin: bool = True, rsv1: bool = False, masked: bool = False
) -> bytes:
    """Return a frame's header up to its masking key, for a ``length``-byte payload."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    mbit = 0x80 if masked else 0
    if length < 126:
        return bytes((b0, mbit | length))
    if length < 0x10000:
        return _HEAD16.pack(b0, mbit | 126, length)
    return _HEAD64.pack(b0, mbit | 127, length)


def serialize_close(code: int | None, reason: str = "") -> bytes:
    """Return the payload of a close frame (empty when ``code`` is None)."""
    if code is None:
        return b""
    return _U16.pack(code) + reason.encode("utf-8")


#: The most a control frame (ping, pong, close) carries: RFC 6455 5.5.
MAX_CONTROL_PAYLOAD = 125

#: The longest close reason, in UTF-8 bytes: a control frame's 125 less the code's 2.
MAX_CLOSE_REASON = MAX_CONTROL_PAYLOAD - 2


def clip_close_reason(reason: str) -> str:
    """``reason``, cut to the :data:`MAX_CLOSE_REASON` bytes a close frame holds
    (at a character's boundary)."""
    if len(reason) * 4 <= MAX_CLOSE_REASON:  # (short enough however it encodes)
        return reason
    return reason.encode("utf-8")[:MAX_CLOSE_REASON].decode("utf-8", "ignore")


def parse_close(payload: bytes) -> tuple[int, str]:
    """Return ``(code, reason)`` from a close frame's payload.

    An empty payload gives ``(1005, "")``.

    Raises:
        ProtocolError: 1002 for a 1-byte payload or an invalid code, 1007 for
            a reason that is not UTF-8.
    """
    n = len(payload)
    if n == 0:
        return CloseCode.NO_STATUS_RCVD.value, ""  # (plain ints for applications)
    if n == 1:
        raise ProtocolError("close frame with a 1-byte payload")
    code = _U16.unpack_from(payload)[0]
    if not is_valid_close_code(code):
        raise ProtocolError(f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("close reason is not valid UTF-8", 1007) from None
    return code, reason


class FrameParser:
    """Incremental parser of the frames a client sends to a server.

    Call :meth:`feed` with received bytes, then :meth:`next_piece` until it
    returns None. Any chunking of the input gives the same frames.

    Fed bytes are parsed where they are, without a copy: a bytearray or
    memoryview that is fed (such as a reused receive buffer) must not change
    until :meth:`next_piece` has returned None; by then the parser has copied
    what it still needs.

    Args:
        allow_rsv1: whether RSV1 may be set on data frames (an extension such
            as permessage-deflate negotiated it).
        masked: whether frames must be masked (true: a server reading a
            client's frames) or must not be (false: a client reading a
            server's), RFC 6455 section 5.1.
    """

    __slots__ = (
        "_buf",
        "_pos",
        "_owned",
        "allow_rsv1",
        "masked",
        "_mask_bit",
        "discarding",
        "_need",
        "_offset",
        "_length",
        "_opcode",
        "_fin",
        "_rsv1",
        "_mask",
        "_collect",
    )

    def __init__(self, *, allow_rsv1: bool = False, masked: bool = True) -> None:
        # The bytes being parsed from _pos on: what was fed, when nothing was
        # left over (no copy), else a bytearray of the parser's own.
        self._buf: bytes | bytearray | memoryview = b""
        self._pos = 0
        # Whether _buf may be kept once next_piece returns None (bytes, or
        # the parser's own bytearray) rather than borrowed from the caller.
        self._owned = True
        self.allow_rsv1 = allow_rsv1
        self.masked = masked
        self._mask_bit = 0x80 if masked else 0  # the MASK bit every frame must have
        #: After a protocol failure: skip every frame except close frames,
        #: without validating anything.
        self.discarding = False
        # State of a data frame whose payload is partly consumed.
        self._need = 0
        self._offset = 0
        self._length = 0
        self._opcode = CONTINUATION
        self._fin = False
        self._rsv1 = False
        self._mask = bytes(4)
        # Where the payload of the frame being read is assembled (collect_payload()).
        self._collect: Payload | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes (see the class's note on bytearray and memoryview)."""
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            # Nothing left over: parse the received bytes where they are.
            self._buf = data
            self._owned = type(data) is bytes
        elif type(buf) is bytearray and self._owned:
            if pos:
                del buf[:pos]
            buf += data
        else:
            rest = bytearray(memoryview(buf)[pos:])
            rest += data
            self._buf = rest
            self._owned = True
        self._pos = 0

    def read_messages(self, max_size: int | None) -> list[str | bytes]:
        """The fast path: consume the whole small messages next in the buffer.

        What :func:`read_messages` reads (whole, final, masked, unfragmented
        text and binary frames of at most ``max_size`` payload bytes, text
        checked and decoded), in one call; the frame after them, if any, is
        left for :meth:`next_piece`. Nothing is read while a payload is
        streaming or while discarding.
        """
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < 6 or self._need or self.discarding:
            return []
        messages, end = read_messages(buf, pos, max_size)
        if end == len(buf):
            self._drop_input()  # all of it read: let go of the bytes now
        else:
            self._pos = end
        return messages

    def feed_messages(
        self, data: bytes | bytearray | memoryview, max_size: int | None
    ) -> tuple[list[str | bytes], int]:
        """:meth:`feed`, then :meth:`read_messages`, in one call (the hot path of every read).

        Returns:
            The whole small messages read, and how many bytes are left to
            parse (0: the parser holds none).
        """
        buf = self._buf
        pos = self._pos
        if pos >= len(buf) and not self._need and not self.discarding:
            # Nothing left over (most reads): read the received bytes where they are.
            messages, end = read_messages(data, 0, max_size)
            left = len(data) - end
            if left:
                self._buf = data
                self._owned = type(data) is bytes
                self._pos = end
            elif pos:
                self._drop_input()
            return messages, left
        self.feed(data)
        return self.read_messages(max_size), len(self._buf) - self._pos

    def read_close(self) -> tuple[int, str] | None:
        """The closing handshake's fast path: a whole, valid close frame next in
        the buffer, consumed, as ``(code, reason)`` (:func:`parse_close`'s).

        None, with nothing consumed, when the next frame is anything else, or
        while a payload is streaming or while discarding: :meth:`next_piece`
        reads it (and fails an invalid close frame). One call where the
        general path takes a dozen.
        """
        if self._need or self.discarding or not self.masked:
            return None
        buf = self._buf
        found = read_close(buf, self._pos)
        if found is None:
            return None
        code, reason, end = found
        if end == len(buf):
            self._drop_input()  # all of it read: let go of the bytes now
        else:
            self._pos = end
        return code, reason

    @property
    def buffered(self) -> int:
        """Bytes received but not yet parsed."""
        return len(self._buf) - self._pos

    def keep_input(self) -> None:
        """The caller stops before :meth:`next_piece` returned None: keep what
        is not parsed yet (copied, if it was borrowed) for the next call."""
        self._keep_rest()

    def next_piece(self) -> FramePiece | None:
        """Return the next frame piece, or None when more bytes are needed.

        Raises:
            ProtocolError: the frame breaks RFC 6455. The frame's header is
                consumed; set :attr:`discarding` to go on skipping frames.
        """
        if not self.discarding:
            return self._continue_payload() if self._need else self._start_frame()
        while True:
            piece = self._continue_payload() if self._need else self._start_frame()
            if piece is None or piece.opcode is CLOSE:
                return piece
            # Discarding: drop this piece and go on.

    def _continue_payload(self) -> FramePiece | None:
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail <= 0:
            self._drop_input()
            return None
        n = self._need if self._need < avail else avail
        offset = self._offset
        self._need -= n
        self._offset = offset + n
        if n == avail:
            self._drop_input()  # all consumed: let go of the bytes now
        else:
            self._pos = pos + n
        if self.discarding:
            self._collect = None
            piece = (self._opcode, self._fin, self._rsv1, b"", self._length, offset)
            return _piece(FramePiece, piece)
        collect = self._collect
        if collect is not None:
            with memoryview(buf) as view:
                collect.add(view[pos : pos + n], self._mask)
            if self._need:
                return None  # the rest is still to come
            self._collect = None
            piece = (self._opcode, self._fin, self._rsv1, collect.take(), self._length, 0)
            return _piece(FramePiece, piece)
        mask = self._mask
        if offset & 3:
            r = offset & 3
            mask = mask[r:] + mask[:r]
        with memoryview(buf) as view:
            chunk = apply_mask(view[pos : pos + n], mask)
        piece = (self._opcode, self._fin, self._rsv1, chunk, self._length, offset)
        return _piece(FramePiece, piece)

    def _start_frame(self) -> FramePiece | None:
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail < 2:
            self._keep_rest()
            return None
        b0 = buf[pos]
        b1 = buf[pos + 1]
        length = b1 & 0x7F
        hlen = 2
        longer = False  # the length in more bytes than it needs
        if length == 126:
            if avail < 4:
                self._keep_rest()
                return None
            length = _U16.unpack_from(buf, pos + 2)[0]
            hlen = 4
            longer = length < 126
        elif length == 127:
            if avail < 10:
                self._keep_rest()
                return None
            length = _U64.unpack_from(buf, pos + 2)[0]
            hlen = 10
            longer = length < 0x10000
        masked = b1 & 0x80
        if masked:
            if avail < hlen + 4:
                self._keep_rest()
                return None
            mask = buf[pos + hlen : pos + hlen + 4]
            hlen += 4
        else:
            mask = bytearray(4)
        bits = b0 & 0x0F
        fin = b0 >= 0x80
        rsv1 = (b0 & 0x40) != 0
        if bits & 0x8 and length <= 125 and avail < hlen + length:
            self._keep_rest()
            return None  # control frames come out whole
        # Unassigned opcode bits get past the check only while discarding, and
        # a discarded frame's opcode is never looked at.
        opcode = OPCODES[bits] or CONTINUATION
        # Plain data frames masked as they must be skip the full check: it is
        # only for the rest.
        if b0 & 0x70 or bits > 2 or masked != self._mask_bit or length >> 63 or longer:
            if not self.discarding:
                error = self._check_header(b0, bits, fin, rsv1, bool(masked), length, longer)
                if error is not None:
                    # Skipped (as a continuation: an invalid close frame is no close).
                    self._begin_payload(pos + hlen, CONTINUATION, fin, rsv1, length, mask)
                    raise ProtocolError(error)
            elif (
                opcode is CLOSE
                and self._check_header(b0, bits, fin, rsv1, bool(masked), length, longer)
                is not None
            ):
                opcode = CONTINUATION  # discarding: only a valid close frame counts
        start = pos + hlen
        if avail - hlen >= length:
            end = start + length
            if end == len(buf):
                self._drop_input()  # the last frame received: let go of the bytes now
            else:
                self._pos = end
            if self.discarding and opcode is not CLOSE:
                return _piece(FramePiece, (opcode, fin, rsv1, b"", length, 0))
            if length <= 4096:
                # A slice copy is cheaper than a memoryview for small payloads.
                payload = apply_mask(buf[start : start + length], mask)
            else:
                with memoryview(buf) as view:
                    payload = apply_mask(view[start : start + length], mask)
            return _piece(FramePiece, (opcode, fin, rsv1, payload, length, 0))
        # A data frame whose payload is still arriving: stream it.
        self._begin_payload(start, opcode, fin, rsv1, length, mask)
        if length >= COLLECT_MIN and not self.discarding:
            # The header alone first: the caller may collect_payload().
            if start == len(buf):
                self._drop_input()
            return _piece(FramePiece, (opcode, fin, rsv1, b"", length, 0))
        piece = self._continue_payload()
        if piece is None:
            return _piece(FramePiece, (opcode, fin, rsv1, b"", length, 0))
        return piece

    def collect_payload(self) -> None:
        """Assemble the rest of this frame's payload in one place, rather than in pieces.

        Call it on the header piece of a data frame of at least
        :data:`COLLECT_MIN` bytes (``payload`` empty, ``offset`` 0), once its
        length is known to be acceptable. :meth:`next_piece` then returns
        None until the whole payload is there, and then one piece with all of
        it (``offset`` 0): no pieces to join, and with the C accelerator no
        copy but the unmasking. Memory grows with what arrives (see
        :data:`PayloadBuffer`).
        """
        if not self._need or self._need != self._length or self._offset or self.discarding:
            raise ValueError("collect_payload() is for a frame whose payload has not started")
        self._collect = PayloadBuffer(self._length)

    def _drop_input(self) -> None:
        """Everything was parsed: let go of the received bytes (idle connections hold none)."""
        self._buf = b""
        self._pos = 0
        self._owned = True

    def _keep_rest(self) -> None:
        """More bytes are needed: keep what is not parsed yet (a copy, if borrowed)."""
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            self._drop_input()
        elif not self._owned:
            self._buf = bytearray(buf[pos:])
            self._pos = 0
            self._owned = True

    def _begin_payload(
        self, start: int, opcode: Opcode, fin: bool, rsv1: bool, length: int, mask: Buffer
    ) -> None:
        """Consume a header; its payload is then read in pieces by _continue_payload()."""
        self._pos = start
        self._need = length
        self._offset = 0
        self._length = length
        self._opcode = opcode
        self._fin = fin
        self._rsv1 = rsv1
        self._mask = bytes(mask)  # not a view of a buffer that may be reused

    def _check_header(
        self, b0: int, bits: int, fin: bool, rsv1: bool, masked: bool, length: int, longer: bool
    ) -> str | None:
        """Return why a frame header is invalid, or None when it is valid
        (``longer``: its length was written in more bytes than it needs)."""
        if b0 & 0x30:
            return "reserved bits RSV2/RSV3 must be 0"
        if OPCODES[bits] is None:
            return f"unknown opcode {bits:#x}"
        if bits & 0x8:
            if rsv1:
                return "control frame with RSV1 set"
            if not fin:
                return "fragmented control frame"
            if length > 125:
                return "control frame payload longer than 125 bytes"
        elif rsv1 and not self.allow_rsv1:
            return "reserved bit RSV1 set without a negotiated extension"
        if length >> 63:
            return "payload length with the most significant bit set"
        if longer:  # (RFC 6455 5.2: "the minimal number of bytes MUST be used")
            return f"payload length {length} not written in the fewest bytes"
        if masked != self.masked:
            return "client frame is not masked" if self.masked else "server frame is masked"
        return None
