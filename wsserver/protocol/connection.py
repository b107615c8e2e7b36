"""The server side of a WebSocket connection, as a sans-I/O state machine.

Theory of operation
-------------------
:class:`Connection` takes received bytes and gives back events; the calls that
send something append bytes to an outgoing list that the I/O layer collects
with :meth:`Connection.data_to_send`. It never touches a socket, a loop or a
clock.

What :meth:`Connection.data_to_send` returns is a list of chunks to write in
order; a large payload is a chunk of its own behind its frame header (no
copy: transports that write a list with one ``writev`` send it as it is).

Events returned by :meth:`Connection.receive_data`, in the order they arrived:

* ``str`` / ``bytes``: a complete text / binary message.
* :class:`Ping` - already answered with a pong by this object.
* :class:`Pong`.
* :class:`CloseReceived` - the peer's close frame; the reply (same code) is
  already queued, and the state is then ``CLOSED``: the server closes TCP.
* :class:`ProtocolFailure` - the peer broke the protocol (state ``FAILING``).
  Nothing is sent yet: the I/O layer first lets the application take the
  messages that arrived before the violation, then calls
  :meth:`Connection.fail`. From the violation on, received frames are skipped,
  except close frames.

The states and every transition between them are in :mod:`.state`; this class
moves :attr:`Connection.state` only through :func:`.state.transition`.
"""

from __future__ import annotations

import codecs
from typing import Any

from ..errors import InvalidState, ProtocolError
from .deflate import FLUSH_BYTES, PerMessageDeflate, max_deflated_size
from .frames import (
    BINARY,
    CLOSE,
    COLLECT_MIN,
    CONTINUATION,
    MAX_CLOSE_REASON,
    MAX_CONTROL_PAYLOAD,
    PING,
    PONG,
    TEXT,
    CloseCode,
    FrameParser,
    Opcode,
    build_frame,
    clip_close_reason,
    frame_header,
    is_valid_close_code,
    parse_close,
    serialize_close,
    serialize_frame,
)
from .state import ConnectionState, Trigger, transition

__all__ = [
    "Connection",
    "Ping",
    "Pong",
    "CloseReceived",
    "ProtocolFailure",
    "Event",
    "check_close",
]

_utf8_decoder = codecs.getincrementaldecoder("utf-8")

#: Payloads of at least this size leave :meth:`Connection.data_to_send` as a
#: chunk of their own, after their frame header, rather than copied behind it.
SEPARATE_PAYLOAD = 16 * 1024

_OPEN = ConnectionState.OPEN
_FAILING = ConnectionState.FAILING
_REMOTE_CLOSING = ConnectionState.REMOTE_CLOSING
_CLOSED = ConnectionState.CLOSED


class Ping:
    """A ping frame was received (and answered)."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __repr__(self) -> str:
        return f"Ping({self.payload!r})"


class Pong:
    """A pong frame was received."""

    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __repr__(self) -> str:
        return f"Pong({self.payload!r})"


class CloseReceived:
    """The peer's close frame was received (code 1005 when it had none)."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"CloseReceived({self.code}, {self.reason!r})"


class ProtocolFailure:
    """The peer broke the protocol; fail the connection with ``code``."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"ProtocolFailure({self.code}, {self.reason!r})"


#: A message's pieces are joined once this many came, if they are smaller than
#: JOIN_SMALLER_THAN bytes on average (see Connection._join_pieces()).
JOIN_PIECES = 128
JOIN_SMALLER_THAN = 1024

#: What :meth:`Connection.receive_data` returns, event by event.
Event = str | bytes | Ping | Pong | CloseReceived | ProtocolFailure
Data = str | bytes | bytearray | memoryview


def check_close(code: int, reason: str) -> None:
    """Whether a close frame may say ``code`` and ``reason`` (RFC 6455 5.5.1, 7.4).

    Raises:
        TypeError: ``code`` is not an int, or ``reason`` not a str.
        ValueError: ``code`` may not be sent, or ``reason`` is longer than
            123 bytes in UTF-8.
    """
    if not isinstance(code, int) or isinstance(code, bool):
        raise TypeError(f"close code must be an int, not {type(code).__name__}")
    if not isinstance(reason, str):
        raise TypeError(f"close reason must be str, not {type(reason).__name__}")
    if not is_valid_close_code(code):
        raise ValueError(f"invalid close code {code}")
    if len(reason.encode("utf-8")) > MAX_CLOSE_REASON:
        raise ValueError(f"close reason must be at most {MAX_CLOSE_REASON} bytes in UTF-8")


class Connection:
    """Server side of one WebSocket connection (sans-I/O).

    Args:
        max_size: the largest message accepted, in bytes (after
            decompression); None for no limit. Larger messages fail the
            connection with 1009. It also bounds what one call of
            :meth:`receive_data` inflates (see there).
        deflate: the permessage-deflate parameters agreed in the handshake,
            or None.
    """

    __slots__ = (
        "state",
        "max_size",
        "deflate",
        "_parser",
        "out",
        "close_sent",
        "close_received",
        "_answered_ours",
        "failure",
        "_failed",
        "_msg_opcode",
        "_msg_parts",
        "_msg_joined",
        "_msg_joined_size",
        "_msg_size",
        "_msg_wire",
        "_msg_compressed",
        "_decoder",
        "_in_frame",
        "_send_opcode",
        "_send_compressed",
        "_pongs_held",
        "_held_pong",
        "_inflated",
        "input_waiting",
    )

    def __init__(
        self, *, max_size: int | None = 2**20, deflate: PerMessageDeflate | None = None
    ) -> None:
        #: Where the connection is in its life (see :mod:`.state`).
        self.state = _OPEN
        self.max_size = max_size
        self.deflate = deflate
        self._parser = FrameParser(allow_rsv1=deflate is not None)
        #: The frames waiting to be written, in order (:meth:`data_to_send`
        #: takes them): look, don't touch.
        self.out: list[bytes] = []
        #: (code, reason) of the close frame sent, once sent (1005: no code).
        self.close_sent: tuple[int, str] | None = None
        #: Our close frame failed the connection (fail()), rather than closed it.
        self._failed = False
        #: (code, reason) of the close frame received, once received.
        self.close_received: tuple[int, str] | None = None
        #: That frame answered ours (we began the closing handshake).
        self._answered_ours = False
        #: The violation that failed (or is failing) the connection.
        self.failure: ProtocolError | None = None
        # The message being received (CONTINUATION: none).
        self._msg_opcode = CONTINUATION
        self._msg_parts: list[bytes] | list[str] = []
        # How many of _msg_parts are pieces joined already (see _join_pieces()),
        # and the message's size then.
        self._msg_joined = 0
        self._msg_joined_size = 0
        self._msg_joined_size = 0
        self._msg_size = 0
        # The compressed message's bytes on the wire so far.
        self._msg_wire = 0
        self._msg_compressed = False
        self._decoder: codecs.IncrementalDecoder | None = None
        # Whether pieces of a data frame's payload are still to come.
        self._in_frame = False
        # The fragmented message being sent (CONTINUATION: none).
        self._send_opcode = CONTINUATION
        self._send_compressed = False
        # While the peer does not take what is written (see hold_pongs()).
        self._pongs_held = False
        self._held_pong: bytes | None = None
        # Bytes inflated by the current receive_data() call.
        self._inflated = 0
        #: Whether receive_data() stopped with received bytes left to parse
        #: (see there): call it again, with b"", for the rest.
        self.input_waiting = False

    def _move(self, trigger: Trigger) -> None:
        self.state = transition(self.state, trigger)

    # ----------------------------------------------------------- receiving

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed received bytes; return the events they complete.

        Compressed messages are inflated up to about ``max_size`` bytes per
        call: a few KiB of well-compressed messages would otherwise become
        hundreds of messages of ``max_size`` each, at once, before the I/O
        layer could stop reading. When the call stops there, the rest of the
        bytes is kept and :attr:`input_waiting` is true: the caller lets the
        application take what came, then calls ``receive_data(b"")`` again.
        """
        state = self.state
        self.input_waiting = False
        if state is _CLOSED or state is _REMOTE_CLOSING:
            return []
        parser = self._parser
        max_size = self.max_size
        self._inflated = 0
        events: list[Event]
        if self.close_received is None and not self._msg_opcode and self.failure is None:
            # Fast path: whole small messages, which most reads hold and nothing else.
            events, left = parser.feed_messages(data, max_size)  # type: ignore[assignment]
            if not left:
                return events
        else:
            events = []
            parser.feed(data)
        # (Whole small messages were read above, when they could be: the loop
        # starts with the frame after them.)
        while self.close_received is None:
            try:
                if self.failure is None and (close := parser.read_close()) is not None:
                    # Fast path: a whole, valid close frame (the closing handshake).
                    self._close_received(close[0], close[1], events)
                    break
                piece = parser.next_piece()
                if piece is None:
                    break
                opcode, fin, rsv1, payload, length, offset = piece
                if self.failure is not None:
                    self._handle_close_while_failing(payload, events)
                elif (
                    fin
                    and (opcode is TEXT or opcode is BINARY)
                    and not rsv1
                    and not self._msg_opcode
                    and len(payload) == length
                    and (max_size is None or length <= max_size)
                ):
                    # Fast path: a whole, unfragmented, uncompressed message.
                    self._add_whole_message(opcode, payload, events)
                else:
                    self._handle_piece(opcode, fin, rsv1, payload, length, offset, events)
                    inflated = self._inflated
                    if (
                        inflated
                        and max_size is not None
                        and inflated >= max_size
                        and parser.buffered
                    ):
                        parser.keep_input()  # the rest, for the next call
                        self.input_waiting = True
                        break
                if not parser.buffered:
                    break
                if self.close_received is None and not self._msg_opcode and self.failure is None:
                    # Fast path: whole small messages after that frame (none
                    # after a close frame: what follows it is not read).
                    messages = parser.read_messages(max_size)
                    if messages:
                        events += messages
                        if not parser.buffered:
                            break
            except ProtocolError as exc:
                self._violation(exc, events)
        return events

    @staticmethod
    def _add_whole_message(opcode: Opcode, payload: bytes, events: list[Event]) -> None:
        """Deliver an unfragmented, uncompressed message: text is checked as UTF-8."""
        if opcode is TEXT:
            try:
                events.append(payload.decode("utf-8"))
            except UnicodeDecodeError:
                raise ProtocolError("invalid UTF-8 in text message", 1007) from None
        else:
            events.append(payload)

    @property
    def receiving_frame(self) -> bool:
        """Whether a data frame has begun and more of its payload is to come.

        The peer can send nothing else meanwhile, a pong neither: no frame
        goes inside another (RFC 6455 5.4).
        """
        return self._in_frame

    def receive_eof(self) -> None:
        """The peer closed its side of TCP, or the connection was lost."""
        self._move(Trigger.EOF)

    def _handle_piece(
        self,
        opcode: Opcode,
        fin: bool,
        rsv1: bool,
        payload: bytes,
        length: int,
        offset: int,
        events: list[Event],
    ) -> None:
        if opcode >= 0x8:  # a control frame
            self._handle_control(opcode, payload, events)
            return
        max_size = self.max_size
        end = offset + len(payload) == length
        if not self._in_frame:
            # The first piece of a frame (possibly only its header).
            if opcode is CONTINUATION:
                if not self._msg_opcode:
                    raise ProtocolError("continuation frame without a message to continue")
                if rsv1:
                    raise ProtocolError("RSV1 set on a continuation frame")
            else:
                if self._msg_opcode:
                    raise ProtocolError("new data frame inside a fragmented message")
                self._msg_opcode = opcode
                self._msg_parts = []
                self._msg_joined = self._msg_joined_size = 0
                self._msg_size = 0
                self._msg_wire = 0
                self._msg_compressed = rsv1
                self._decoder = _utf8_decoder() if opcode is TEXT else None
                if rsv1:
                    assert self.deflate is not None
                    self.deflate.start_inflate()
            if max_size is not None:
                if not self._msg_compressed:
                    if self._msg_size + length > max_size:
                        raise ProtocolError(f"message exceeds max_size {max_size}", 1009)
                else:
                    # max_size bounds the message once inflated (checked as it
                    # inflates); on the wire, a compressed message may be a
                    # little larger than that (incompressible data), but not
                    # more than deflate can make of max_size bytes.
                    # (Less what one frame's flush may add: see max_deflated_size().)
                    self._msg_wire += length - FLUSH_BYTES
                    if self._msg_wire > max_deflated_size(max_size, 0):
                        raise ProtocolError(f"message exceeds max_size {max_size}", 1009)
            if (
                opcode is BINARY
                and fin
                and not rsv1
                and not payload
                and not offset
                and length >= COLLECT_MIN
            ):
                # A large one-frame binary message: its payload in one buffer, not in pieces.
                self._parser.collect_payload()
        self._in_frame = not end
        if payload or (fin and end):
            self._add_payload(payload, fin and end)
        if fin and end:
            self._finish_message(events)

    def _add_payload(self, payload: bytes, final: bool) -> None:
        """Add a piece of the current message, decompressing and validating it."""
        if self._msg_compressed:
            assert self.deflate is not None
            max_size = self.max_size
            limit = 0 if max_size is None else max_size - self._msg_size + 1
            payload = self.deflate.inflate(payload, final, limit)
            self._msg_size += len(payload)
            self._inflated += len(payload)
        else:
            self._msg_size += len(payload)
        if self.max_size is not None and self._msg_size > self.max_size:
            raise ProtocolError(f"message exceeds max_size {self.max_size}", 1009)
        decoder = self._decoder
        if decoder is not None:
            try:
                text = decoder.decode(payload, final)
            except UnicodeDecodeError:
                raise ProtocolError("invalid UTF-8 in text message", 1007) from None
            if not final:
                # CPython's decoder waits for the third byte of ED A0-ED BF
                # (a surrogate), which no byte can make valid: fail now.
                pending = decoder.getstate()[0]
                if len(pending) > 1 and pending[0] == 0xED and pending[1] >= 0xA0:
                    raise ProtocolError("invalid UTF-8 in text message", 1007)
            if text:
                self._msg_parts.append(text)  # type: ignore[arg-type]
                if len(self._msg_parts) - self._msg_joined >= JOIN_PIECES:
                    self._join_pieces("")
        elif payload:
            self._msg_parts.append(payload)  # type: ignore[arg-type]
            if len(self._msg_parts) - self._msg_joined >= JOIN_PIECES:
                self._join_pieces(b"")

    def _join_pieces(self, empty: str | bytes) -> None:
        """Join the pieces added since the last join into one.

        A message in many small fragments would otherwise hold an object per
        fragment (some 40 bytes each besides the payload: 2-byte fragments
        made a message take 20 times its size). Each piece is copied once
        here and each joined one once at the end: linear in the message.
        """
        parts: list[Any] = self._msg_parts
        joined = self._msg_joined
        if self._msg_size - self._msg_joined_size < JOIN_PIECES * JOIN_SMALLER_THAN:
            parts[joined:] = [empty.join(parts[joined:])]
            self._msg_joined = joined + 1
        else:
            # Large pieces on average: their objects cost little, and joining
            # them would copy the message once more. Left as they are.
            self._msg_joined = len(parts)
        self._msg_joined_size = self._msg_size

    def _finish_message(self, events: list[Event]) -> None:
        parts = self._msg_parts
        if self._decoder is not None:
            events.append("".join(parts))  # type: ignore[arg-type]
        else:
            events.append(b"".join(parts))  # type: ignore[arg-type]
        self._msg_opcode = CONTINUATION
        self._msg_parts = []
        self._msg_joined = 0
        self._msg_joined_size = 0
        self._msg_size = 0
        self._decoder = None
        self._msg_compressed = False

    def _handle_control(self, opcode: Opcode, payload: bytes, events: list[Event]) -> None:
        if opcode is PING:
            if self.close_sent is None:
                if self._pongs_held:
                    self._held_pong = payload  # only the latest is answered
                else:
                    self.out.append(serialize_frame(PONG, payload))
            events.append(Ping(payload))
        elif opcode is PONG:
            events.append(Pong(payload))
        else:
            assert opcode is CLOSE
            code, reason = parse_close(payload)
            self._close_received(code, reason, events)

    def _close_received(self, code: int, reason: str, events: list[Event]) -> None:
        self.close_received = (code, reason)
        self._answered_ours = self.close_sent is not None
        self._move(Trigger.RECEIVE_CLOSE)
        if self.state is _REMOTE_CLOSING and self.failure is None:
            # Echo the peer's code (RFC 6455 5.5.1); no code gets no code.
            self._send_close(None if code == CloseCode.NO_STATUS_RCVD else code, "")
        events.append(CloseReceived(code, reason))

    def _handle_close_while_failing(self, payload: bytes, events: list[Event]) -> None:
        try:
            code, reason = parse_close(payload)
        except ProtocolError:
            code, reason = CloseCode.PROTOCOL_ERROR.value, ""
        self._close_received(code, reason, events)

    def _violation(self, exc: ProtocolError, events: list[Event]) -> None:
        self._parser.discarding = True
        self._in_frame = False
        self._msg_opcode = CONTINUATION
        self._msg_parts = []
        self._msg_joined = 0
        self._msg_joined_size = 0
        self._decoder = None
        if self.failure is None:
            # Kept without its traceback (nor the error it was raised from,
            # and that one's): their frames hold this connection, a reference
            # cycle that only the garbage collector would free.
            exc.__cause__ = exc.__context__ = None
            self.failure = exc.with_traceback(None)
            self._move(Trigger.VIOLATION)
            events.append(ProtocolFailure(exc.close_code, exc.reason))

    # ------------------------------------------------------------- sending

    def hold_pongs(self, held: bool) -> None:
        """Hold the pongs answering pings while the peer does not read (``held``).

        The caller says so when its write buffer is full: a peer that sends
        pings and reads nothing would otherwise make it keep every pong. While
        held, pings are answered by one pong, for the latest of them, once
        released (RFC 6455 5.5.3 allows answering only the most recent ping).
        """
        self._pongs_held = held
        if not held and self._held_pong is not None:
            payload, self._held_pong = self._held_pong, None
            if self.close_sent is None:
                self.out.append(serialize_frame(PONG, payload))

    def data_to_send(self) -> list[bytes]:
        """Return (and forget) the bytes waiting to be written, in order."""
        out = self.out
        if out:
            self.out = []
        return out

    def send(self, data: Data, fin: bool = True, *, compress: bool = True) -> None:
        """Send a message, or one fragment of a message when ``fin`` is false.

        A str is sent as text, anything else as binary. The fragments of one
        message must all be of the same type.

        Raises:
            InvalidState: a close frame was already sent, or the fragment's type
                does not match the message being sent.
        """
        if self.close_sent is not None:
            raise InvalidState("cannot send after the close frame was sent")
        kind = type(data)
        if kind is not str and kind is not bytes and not isinstance(data, (str, bytes, bytearray)):
            view = memoryview(data)  # (an array, a view: len() counts their items)
            if view.itemsize != 1 or view.ndim != 1 or not view.c_contiguous:
                data = view.tobytes()
        is_text = isinstance(data, str)
        if (
            fin
            and not self._send_opcode
            and (self.deflate is None or not compress)
            and len(data) < SEPARATE_PAYLOAD
        ):
            # The common case, in short: a whole uncompressed message, one copy.
            self.out.append(build_frame(TEXT if is_text else BINARY, data, True, False))
            return
        if is_text:
            opcode = TEXT
            payload: bytes | bytearray | memoryview = data.encode("utf-8")  # type: ignore[union-attr]
        else:
            opcode = BINARY
            payload = data  # type: ignore[assignment]
        rsv1 = False
        if self._send_opcode:
            if opcode is not self._send_opcode:
                raise InvalidState("fragments of one message must be of the same type")
            wire_opcode = CONTINUATION
            if self._send_compressed:
                assert self.deflate is not None
                payload = self.deflate.deflate(payload, fin)
        else:
            wire_opcode = opcode
            deflate = self.deflate
            if compress and deflate is not None and deflate.should_compress(len(payload), fin):
                rsv1 = True
                deflate.start_deflate(len(payload))
                payload = deflate.deflate(payload, fin)
            if not fin:
                self._send_opcode = opcode
                self._send_compressed = rsv1
        if fin:
            self._send_opcode = CONTINUATION
            self._send_compressed = False
        if len(payload) >= SEPARATE_PAYLOAD:
            # Header and payload as two chunks: a transport that writes a
            # list of buffers with one writev (uvloop; asyncio from 3.12)
            # sends the payload without copying it once more.
            out = self.out
            out.append(frame_header(wire_opcode, len(payload), fin, rsv1))
            out.append(payload if type(payload) is bytes else bytes(payload))
        else:
            self.out.append(serialize_frame(wire_opcode, payload, fin=fin, rsv1=rsv1))

    @property
    def sending_fragments(self) -> bool:
        """Whether a fragmented message is being sent."""
        return self._send_opcode is not CONTINUATION

    def send_ping(self, payload: bytes = b"") -> None:
        """Send a ping frame (at most 125 bytes of payload)."""
        self._send_control(PING, payload)

    def send_pong(self, payload: bytes = b"") -> None:
        """Send an unsolicited pong frame (at most 125 bytes of payload)."""
        self._send_control(PONG, payload)

    def _send_control(self, opcode: Opcode, payload: bytes) -> None:
        if self.close_sent is not None:
            raise InvalidState("cannot send after the close frame was sent")
        if len(payload) > MAX_CONTROL_PAYLOAD:
            raise ValueError(f"control frame payload must be at most {MAX_CONTROL_PAYLOAD} bytes")
        self.out.append(serialize_frame(opcode, payload))

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; does nothing once a close was sent.

        Raises:
            TypeError: ``code`` is not an int, or ``reason`` not a str.
            ValueError: ``code`` may not be sent, or ``reason`` is longer than
                123 bytes in UTF-8.
        """
        check_close(code, reason)
        if self.close_sent is None and self.state is not _CLOSED:
            self._send_close(code, reason)

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection: send a close frame with ``code`` if none was sent."""
        if self.close_sent is None and self.state is not _CLOSED:
            reason = clip_close_reason(reason)
            self._failed = True
            self._send_close(code, reason)

    def _send_close(self, code: int | None, reason: str) -> None:
        self.out.append(serialize_frame(CLOSE, serialize_close(code, reason)))
        # (int(): an IntEnum of the application is reported as a plain int.)
        self.close_sent = (CloseCode.NO_STATUS_RCVD.value if code is None else int(code), reason)
        self._move(Trigger.SEND_CLOSE)

    # --------------------------------------------------------------- state

    @property
    def close_code(self) -> int:
        """The code to report: the peer's close code (RFC 6455 7.1.5); else
        ours, while the peer may still answer it, or for good where ours
        failed the connection (its code says why: 1002, 1009, a keepalive's
        1011); else 1006 (TCP went without the peer's close frame: a close of
        ours it never answered was no clean close)."""
        ours = self._ours()
        if ours is not None:
            return ours[0]
        return CloseCode.ABNORMAL_CLOSURE.value

    @property
    def close_reason(self) -> str:
        """The reason that goes with :attr:`close_code`."""
        ours = self._ours()
        return "" if ours is None else ours[1]

    @property
    def why_closed(self) -> tuple[int, str]:
        """(code, reason) that says why the connection ended, for a log: that
        of the close frame that began a closing handshake the peer completed
        (ours, when we began it, whatever code the peer answered with:
        aiohttp's client answers 1000 to any, others an empty close frame);
        else :attr:`close_code` and :attr:`close_reason`."""
        if self._answered_ours and self.close_sent is not None:
            return self.close_sent
        return self.close_code, self.close_reason

    @property
    def close_received_first(self) -> bool:
        """Whether the peer's close frame came before ours went (ours answered
        it); False if ours went first, or either is missing."""
        return (
            self.close_received is not None
            and self.close_sent is not None
            and not self._answered_ours
        )

    def _ours(self) -> tuple[int, str] | None:
        """The close frame :attr:`close_code` reports, if any (see there)."""
        if self.close_received is not None:
            return self.close_received
        if self.close_sent is not None and (self.state is not _CLOSED or self._failed):
            return self.close_sent
        return None
