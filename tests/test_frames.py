"""Frame serialization, masking and the incremental parser."""

from __future__ import annotations

import os
import shutil
import struct
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsserver.errors import ProtocolError
from wsserver.protocol.connection import Connection
from wsserver.protocol.frames import (
    COLLECT_MIN,
    SPEEDUPS,
    CloseCode,
    FrameParser,
    Opcode,
    _apply_mask_python,
    apply_mask,
    is_valid_close_code,
    parse_close,
    serialize_close,
    serialize_frame,
)

from .helpers import long_form_head

MASK = b"\x37\xfa\x21\x3d"


def naive_mask(data: bytes, mask: bytes) -> bytes:
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def parse_all(
    data: bytes, chunks: list[int] | None = None, kind: str = "bytes", **kwargs: bool
) -> list[tuple]:
    """Feed ``data`` in the given chunk sizes; return whole frames (pieces joined).

    ``kind`` "buffer" reads every chunk into one reused bytearray and feeds a
    memoryview of it, scribbling over it once the parser has returned None
    (as the server's shared receive buffer is used); "bytearray" feeds a new
    bytearray per chunk.
    """
    parser = FrameParser(**kwargs)
    frames = []
    current: list[bytes] = []
    pos = 0
    sizes = [*(chunks or []), len(data)]
    shared = bytearray(max(sizes) if sizes else 0)
    for size in sizes:
        chunk = data[pos : pos + size]
        if kind == "buffer":
            shared[: len(chunk)] = chunk
            parser.feed(memoryview(shared)[: len(chunk)])
        elif kind == "bytearray":
            parser.feed(bytearray(chunk))
        else:
            parser.feed(chunk)
        pos += size
        while (piece := parser.next_piece()) is not None:
            opcode, fin, rsv1, payload, length, offset = piece
            assert offset == sum(map(len, current))
            current.append(payload)
            if offset + len(payload) == length:
                frames.append((opcode, fin, rsv1, b"".join(current)))
                current = []
        if kind == "buffer":
            shared[:] = b"\xff" * len(shared)  # the next read overwrites it
        if pos >= len(data):
            break
    return frames


try:
    from wsserver.protocol import _speedups
except ImportError:  # not built
    _speedups = None  # type: ignore[assignment]

IMPLEMENTATIONS = [_apply_mask_python] + ([_speedups.apply_mask] if _speedups else [])


def test_accelerator_in_use_unless_disabled() -> None:
    if os.environ.get("WSSERVER_NO_SPEEDUPS"):
        assert not SPEEDUPS and apply_mask is _apply_mask_python
    elif shutil.which("cc"):
        # With a compiler the build must have produced the accelerator.
        assert SPEEDUPS and _speedups is not None and apply_mask is _speedups.apply_mask


class TestMask:
    @pytest.mark.parametrize("impl", IMPLEMENTATIONS)
    @pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 7, 8, 9, 125, 126, 1000, 65536, 65537])
    def test_matches_naive_xor(self, impl: Callable[[bytes, bytes], bytes], n: int) -> None:
        data = os.urandom(n)
        assert impl(data, MASK) == naive_mask(data, MASK)

    @pytest.mark.parametrize("impl", IMPLEMENTATIONS)
    def test_accepts_any_buffer(self, impl: Callable[[Any, bytes], bytes]) -> None:
        data = os.urandom(77)
        expected = naive_mask(data, MASK)
        assert impl(bytearray(data), MASK) == expected
        assert impl(memoryview(data), MASK) == expected
        assert impl(memoryview(b"xx" + data)[2:], MASK) == expected

    def test_accelerator_rejects_bad_mask(self) -> None:
        if _speedups is None:
            pytest.skip("accelerator not built")
        with pytest.raises(ValueError):
            _speedups.apply_mask(b"abc", b"\x01\x02")
        with pytest.raises(TypeError):
            _speedups.apply_mask(b"abc")  # type: ignore[call-arg]

    def test_involution_on_memoryview(self) -> None:
        data = os.urandom(777)
        masked = apply_mask(memoryview(data), MASK)
        assert apply_mask(masked, MASK) == data

    def test_rfc_example(self) -> None:
        # RFC 6455 5.7: a masked "Hello".
        frame = bytes.fromhex("818537fa213d7f9f4d5158")
        assert parse_all(frame) == [(Opcode.TEXT, True, False, b"Hello")]


class TestSerialize:
    def test_rfc_unmasked_hello(self) -> None:
        assert serialize_frame(Opcode.TEXT, b"Hello") == bytes.fromhex("810548656c6c6f")

    def test_rfc_masked_hello(self) -> None:
        assert serialize_frame(Opcode.TEXT, b"Hello", mask=MASK) == bytes.fromhex(
            "818537fa213d7f9f4d5158"
        )

    @pytest.mark.parametrize(
        ("n", "header"),
        [(125, b"\x82\x7d"), (126, b"\x82\x7e\x00\x7e"), (65535, b"\x82\x7e\xff\xff")],
    )
    def test_length_encodings(self, n: int, header: bytes) -> None:
        frame = serialize_frame(Opcode.BINARY, b"x" * n)
        assert frame[: len(header)] == header
        assert len(frame) == len(header) + n

    def test_64_bit_length(self) -> None:
        frame = serialize_frame(Opcode.BINARY, b"x" * 65536)
        assert frame[:10] == b"\x82\x7f" + struct.pack("!Q", 65536)

    def test_flags(self) -> None:
        assert serialize_frame(Opcode.TEXT, b"", fin=False)[0] == 0x01
        assert serialize_frame(Opcode.TEXT, b"", rsv1=True)[0] == 0xC1


class TestClose:
    def test_round_trip(self) -> None:
        assert parse_close(serialize_close(1001, "bye ✓")) == (1001, "bye ✓")

    def test_empty(self) -> None:
        assert serialize_close(None) == b""
        assert parse_close(b"") == (CloseCode.NO_STATUS_RCVD, "")
        assert type(parse_close(b"")[0]) is int  # what applications get: not an enum

    def test_one_byte_payload(self) -> None:
        with pytest.raises(ProtocolError) as info:
            parse_close(b"\x03")
        assert info.value.close_code == 1002

    @pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
    def test_invalid_codes(self, code: int) -> None:
        assert not is_valid_close_code(code)
        with pytest.raises(ProtocolError) as info:
            parse_close(struct.pack("!H", code))
        assert info.value.close_code == 1002

    @pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1010, 1011, 1014, 3000, 4999])
    def test_valid_codes(self, code: int) -> None:
        assert is_valid_close_code(code)
        assert parse_close(struct.pack("!H", code)) == (code, "")

    def test_reason_not_utf8(self) -> None:
        with pytest.raises(ProtocolError) as info:
            parse_close(b"\x03\xe8\xff\xfe")
        assert info.value.close_code == 1007


class TestParserRules:
    def check_error(self, frame: bytes, fragment: str, **kwargs: bool) -> None:
        parser = FrameParser(**kwargs)
        parser.feed(frame)
        with pytest.raises(ProtocolError, match=fragment) as info:
            parser.next_piece()
        assert info.value.close_code == 1002

    def test_unmasked_client_frame(self) -> None:
        self.check_error(serialize_frame(Opcode.TEXT, b"hi"), "not masked")

    def test_a_client_reads_unmasked_server_frames(self) -> None:
        frame = serialize_frame(Opcode.TEXT, b"hi")
        assert parse_all(frame, masked=False) == [(1, True, False, b"hi")]

    @pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.PING])
    def test_a_client_refuses_masked_server_frames(self, opcode: Opcode) -> None:
        # RFC 6455 section 5.1: a client fails the connection on a masked frame.
        frame = serialize_frame(opcode, b"hi", mask=MASK)
        self.check_error(frame, "server frame is masked", masked=False)

    @pytest.mark.parametrize("bits", [0x10, 0x20, 0x30])
    def test_rsv2_rsv3(self, bits: int) -> None:
        frame = bytearray(serialize_frame(Opcode.TEXT, b"hi", mask=MASK))
        frame[0] |= bits
        self.check_error(bytes(frame), "RSV2/RSV3")

    def test_rsv1_without_extension(self) -> None:
        frame = serialize_frame(Opcode.TEXT, b"hi", rsv1=True, mask=MASK)
        self.check_error(frame, "RSV1")
        assert parse_all(frame, allow_rsv1=True) == [(1, True, True, b"hi")]

    def test_rsv1_on_control_frame(self) -> None:
        frame = serialize_frame(Opcode.PING, b"", rsv1=True, mask=MASK)
        self.check_error(frame, "control frame with RSV1", allow_rsv1=True)

    @pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
    def test_unknown_opcodes(self, opcode: int) -> None:
        self.check_error(serialize_frame(opcode, b"x", mask=MASK), "unknown opcode")

    def test_fragmented_control_frame(self) -> None:
        frame = serialize_frame(Opcode.PING, b"x", fin=False, mask=MASK)
        self.check_error(frame, "fragmented control")

    def test_long_control_frame(self) -> None:
        frame = serialize_frame(Opcode.PING, b"x" * 126, mask=MASK)
        self.check_error(frame, "longer than 125")

    def test_64_bit_length_high_bit(self) -> None:
        frame = b"\x82\xff" + struct.pack("!Q", 1 << 63) + MASK
        self.check_error(frame, "most significant bit")

    # RFC 6455 5.2: "the minimal number of bytes MUST be used to encode the length".
    @pytest.mark.parametrize(
        ("opcode", "indicator", "length"),
        [
            (Opcode.BINARY, 126, 0),
            (Opcode.TEXT, 126, 125),
            (Opcode.PING, 126, 5),
            (Opcode.CONTINUATION, 127, 0),
            (Opcode.BINARY, 127, 125),
            (Opcode.BINARY, 127, 0xFFFF),
        ],
    )
    def test_a_length_not_in_its_fewest_bytes(
        self, opcode: Opcode, indicator: int, length: int
    ) -> None:
        head = long_form_head(0x80 | opcode, indicator, length)
        frame = head + MASK + bytes(length)
        self.check_error(frame, "fewest bytes")
        if opcode < 8:  # (control frames are read whole; a data frame's header is enough)
            self.check_error(head + MASK, "fewest bytes")

    @pytest.mark.parametrize(("indicator", "length"), [(126, 126), (126, 0xFFFF), (127, 0x10000)])
    def test_the_smallest_lengths_of_each_size_are_read(self, indicator: int, length: int) -> None:
        frame = long_form_head(0x82, indicator, length) + MASK + bytes(length)
        assert parse_all(frame) == [(2, True, False, apply_mask(bytes(length), MASK))]

    def test_error_on_header_before_payload_arrives(self) -> None:
        # A header alone is enough to reject the frame: nothing waits for payload.
        self.check_error(b"\x83\x80" + MASK, "unknown opcode")

    def test_discarding_skips_all_but_close(self) -> None:
        parser = FrameParser()
        parser.feed(serialize_frame(7, b"junk", mask=MASK))
        with pytest.raises(ProtocolError):
            parser.next_piece()
        parser.discarding = True
        parser.feed(serialize_frame(Opcode.TEXT, b"ignored", mask=MASK))
        parser.feed(serialize_frame(Opcode.PING, b"ignored", mask=MASK))
        parser.feed(serialize_frame(Opcode.CLOSE, serialize_close(1000), mask=MASK))
        piece = parser.next_piece()
        assert piece is not None and piece[0] == Opcode.CLOSE
        assert piece[3] == serialize_close(1000)
        assert parser.next_piece() is None


class TestStreaming:
    def test_header_piece_comes_before_payload(self) -> None:
        frame = serialize_frame(Opcode.BINARY, b"a" * 1000, mask=MASK)
        parser = FrameParser()
        parser.feed(frame[:8])
        piece = parser.next_piece()
        # 8 bytes = 4-byte header + mask: the frame is announced with its length.
        assert piece == (Opcode.BINARY, True, False, b"", 1000, 0)
        assert parser.next_piece() is None
        parser.feed(frame[8:108])
        assert parser.next_piece() == (Opcode.BINARY, True, False, b"a" * 100, 1000, 0)
        parser.feed(frame[108:])
        assert parser.next_piece() == (Opcode.BINARY, True, False, b"a" * 900, 1000, 100)
        assert parser.next_piece() is None
        assert parser.buffered == 0

    def test_control_frames_wait_until_whole(self) -> None:
        frame = serialize_frame(Opcode.PING, b"0123456789", mask=MASK)
        parser = FrameParser()
        parser.feed(frame[:-1])
        assert parser.next_piece() is None
        parser.feed(frame[-1:])
        assert parser.next_piece() == (Opcode.PING, True, False, b"0123456789", 10, 0)

    @pytest.mark.parametrize("n", [1001, 70001])
    def test_mask_rotation_across_odd_chunks(self, n: int) -> None:
        payload = os.urandom(n)
        frame = serialize_frame(Opcode.BINARY, payload, mask=MASK)
        assert parse_all(frame, [3, 7, 1, 2, 5, 333, 1, 2]) == [(2, True, False, payload)]


frame_strategy = st.tuples(
    st.sampled_from([Opcode.CONTINUATION, Opcode.TEXT, Opcode.BINARY]),
    st.booleans(),
    st.binary(max_size=70000),
    st.binary(min_size=4, max_size=4),
) | st.tuples(
    st.sampled_from([Opcode.PING, Opcode.PONG, Opcode.CLOSE]),
    st.just(True),
    st.binary(max_size=125),
    st.binary(min_size=4, max_size=4),
)


@settings(max_examples=150, deadline=None)
@given(
    frames=st.lists(frame_strategy, min_size=1, max_size=6),
    chunking=st.lists(st.integers(min_value=1, max_value=40000), max_size=12),
    kind=st.sampled_from(["bytes", "bytearray", "buffer"]),
)
def test_round_trip_under_any_chunking(
    frames: list[tuple[int, bool, bytes, bytes]], chunking: list[int], kind: str
) -> None:
    wire = b"".join(
        serialize_frame(op, payload, fin=fin, mask=mask) for op, fin, payload, mask in frames
    )
    expected = [(op, fin, False, payload) for op, fin, payload, _ in frames]
    assert parse_all(wire) == expected
    assert parse_all(wire, chunking, kind) == expected
    assert parse_all(wire, [1] * min(len(wire), 300), kind) == expected


def test_parsed_bytes_are_let_go() -> None:
    # The parser reads received bytes in place; once they are all parsed it
    # keeps no reference to them (an idle connection holds no read buffer).
    data = serialize_frame(Opcode.BINARY, bytes(range(200)) * 300, mask=MASK)
    baseline = sys.getrefcount(data)
    parser = FrameParser()
    parser.feed(data)
    piece = parser.next_piece()
    assert piece is not None and piece[3] == bytes(range(200)) * 300
    assert parser.next_piece() is None
    assert sys.getrefcount(data) == baseline
    # Half a frame: only the unparsed rest (its header) is kept, as a copy.
    parser.feed(data[:1000])
    assert parser.next_piece() is not None  # the payload's first bytes
    parser.feed(data[1000:])
    assert parser.next_piece() is not None
    assert parser.next_piece() is None and parser.buffered == 0


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), chunking=st.lists(st.integers(1, 50), max_size=8))
def test_arbitrary_bytes_give_pieces_or_protocol_error(data: bytes, chunking: list[int]) -> None:
    parser = FrameParser(allow_rsv1=True)
    pos = 0
    for size in [*chunking, len(data)]:
        parser.feed(data[pos : pos + size])
        pos += size
        try:
            while (piece := parser.next_piece()) is not None:
                payload, length, offset = piece[3:]
                assert offset + len(payload) <= length
        except ProtocolError as exc:
            assert exc.close_code == 1002
            return


class TestReadMessages:
    """The fast path for whole small messages, and where it must stand aside."""

    @pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
    @pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536])
    def test_one_whole_data_frame(self, opcode: Opcode, size: int) -> None:
        payload = b"a" * size if opcode is Opcode.TEXT else os.urandom(size)
        frame = serialize_frame(opcode, payload, mask=MASK)
        message = payload.decode() if opcode is Opcode.TEXT else payload
        for kind in (bytes, bytearray, memoryview):
            parser = FrameParser()
            parser.feed(kind(frame))
            assert parser.read_messages(None) == [message]
            assert parser.buffered == 0 and parser.next_piece() is None

    def test_reads_whole_messages_in_one_call(self) -> None:
        frames = [(Opcode.TEXT, "a" * 125), (Opcode.BINARY, b""), (Opcode.TEXT, "xyzé€")]
        parser = FrameParser()
        wire = b"".join(
            serialize_frame(op, p.encode() if isinstance(p, str) else p, mask=MASK)
            for op, p in frames
        )
        parser.feed(wire)
        assert parser.read_messages(None) == [p for _, p in frames]
        assert parser.buffered == 0 and parser.read_messages(None) == []

    @pytest.mark.parametrize(
        "frame",
        [
            serialize_frame(Opcode.TEXT, b"hello"),  # not masked
            serialize_frame(Opcode.TEXT, b"hello", fin=False, mask=MASK),
            serialize_frame(Opcode.CONTINUATION, b"hello", mask=MASK),
            serialize_frame(Opcode.TEXT, b"hello", rsv1=True, mask=MASK),
            bytes([0xA1]) + serialize_frame(Opcode.TEXT, b"hello", mask=MASK)[1:],  # RSV2
            serialize_frame(Opcode.PING, b"hello", mask=MASK),
            serialize_frame(Opcode.CLOSE, b"\x03\xe8", mask=MASK),
            serialize_frame(Opcode.TEXT, b"hello", mask=MASK)[:-1],  # incomplete
            serialize_frame(Opcode.BINARY, b"x" * 300, mask=MASK)[:7],  # incomplete length
            serialize_frame(Opcode.TEXT, b"\xff", mask=MASK),  # not UTF-8
            serialize_frame(Opcode.TEXT, b"\xed\xa0\x80", mask=MASK),  # a surrogate
            bytes([0x82, 0xFF]) + b"\x80" + bytes(7) + MASK,  # length with the top bit set
            serialize_frame(Opcode.TEXT, b"", mask=MASK)[:5],
            b"",
        ],
    )
    def test_anything_else_is_left_to_the_parser(self, frame: bytes) -> None:
        ahead = serialize_frame(Opcode.BINARY, b"ok", mask=MASK)
        parser = FrameParser(allow_rsv1=True)
        parser.feed(ahead + frame)
        assert parser.read_messages(None) == [b"ok"]
        assert parser.buffered == len(frame)  # nothing of it consumed

    def test_max_size_leaves_the_frame_to_the_general_path(self) -> None:
        parser = FrameParser()
        frame = serialize_frame(Opcode.BINARY, b"x" * 10, mask=MASK)
        parser.feed(frame)
        assert parser.read_messages(9) == [] and parser.buffered == len(frame)
        assert parser.read_messages(10) == [b"x" * 10]

    def test_not_while_streaming_or_discarding(self) -> None:
        parser = FrameParser()
        parser.feed(serialize_frame(Opcode.BINARY, b"x" * 1000, mask=MASK)[:100])
        assert parser.next_piece() is not None  # streaming the big payload
        parser.feed(serialize_frame(Opcode.TEXT, b"hi", mask=MASK))
        assert parser.read_messages(None) == []
        parser = FrameParser()
        parser.discarding = True
        parser.feed(serialize_frame(Opcode.TEXT, b"hi", mask=MASK))
        assert parser.read_messages(None) == []


@st.composite
def one_frame_give_or_take(draw: st.DrawFn) -> bytes:
    """A frame header of any bits, a payload of about the right size, maybe cut or extended."""
    b0 = draw(st.integers(0, 255))
    masked = draw(st.booleans())
    payload = draw(st.binary(max_size=130))
    if len(payload) < 126:
        head = bytes([b0, (0x80 if masked else 0) | len(payload)])
    else:
        head = bytes([b0, (0x80 if masked else 0) | 126]) + struct.pack("!H", len(payload))
    data = head + (draw(st.binary(min_size=4, max_size=4)) if masked else b"") + payload
    cut = draw(st.integers(-3, 3))
    return (
        data[: len(data) + cut] if cut < 0 else data + draw(st.binary(min_size=cut, max_size=cut))
    )


@settings(max_examples=500, deadline=None)
@given(
    data=st.lists(one_frame_give_or_take() | st.binary(max_size=20), max_size=4),
    max_size=st.none() | st.integers(0, 130),
)
def test_read_messages_agrees_with_the_parser(data: list[bytes], max_size: int | None) -> None:
    # Whatever is buffered, reading whole messages first and then pieces gives
    # the same frames (or the same error) as reading pieces only.
    wire = b"".join(data)

    def pieces_only() -> list[tuple[int, bytes]] | None:
        parser = FrameParser()
        parser.feed(wire)
        out = []
        try:
            while (piece := parser.next_piece()) is not None:
                out.append((piece.opcode, piece.payload, piece.fin, piece.length, piece.offset))
        except ProtocolError:
            return None
        return out  # type: ignore[return-value]

    def fast_first() -> list[tuple[int, bytes]] | None:
        parser = FrameParser()
        parser.feed(wire)
        out: list[Any] = []
        try:
            while True:
                for message in parser.read_messages(max_size):
                    assert max_size is None or len(message) <= max_size
                    if isinstance(message, str):
                        payload, opcode = message.encode(), Opcode.TEXT
                    else:
                        payload, opcode = message, Opcode.BINARY
                    out.append((opcode, payload, True, len(payload), 0))
                piece = parser.next_piece()
                if piece is None:
                    break
                out.append((piece.opcode, piece.payload, piece.fin, piece.length, piece.offset))
        except ProtocolError:
            return None
        return out

    assert fast_first() == pieces_only()


@st.composite
def close_frame_give_or_take(draw: st.DrawFn) -> bytes:
    """A close frame, valid or not (its code, reason, length, bits, mask), maybe cut or extended."""
    code = draw(st.sampled_from([1000, 1001, 1005, 1006, 1015, 2999, 3000, 4999, 5000, 0]))
    reason = draw(st.text(max_size=10)).encode("utf-8", "surrogatepass")
    payload = draw(
        st.sampled_from([b"", b"\x03"])
        | st.just(struct.pack("!H", code) + reason)
        | st.just(struct.pack("!H", code) + reason + b"\xff")
        | st.just(struct.pack("!H", code) + b"x" * 124)
    )
    b0 = draw(st.sampled_from([0x88, 0x88, 0x88, 0x08, 0xC8, 0x98, 0x89]))
    masked = draw(st.sampled_from([True, True, True, False]))
    head = bytes([b0, (0x80 if masked else 0) | min(len(payload), 126)])
    if len(payload) > 125:
        head += struct.pack("!H", len(payload))
    mask = draw(st.binary(min_size=4, max_size=4))
    data = head + (mask + _apply_mask_python(payload, mask) if masked else payload)
    cut = draw(st.integers(-3, 3))
    return (
        data[: len(data) + cut] if cut < 0 else data + draw(st.binary(min_size=cut, max_size=cut))
    )


@settings(max_examples=500, deadline=None)
@given(data=st.lists(close_frame_give_or_take() | one_frame_give_or_take(), max_size=4))
def test_read_close_agrees_with_the_parser(data: list[bytes]) -> None:
    # A close frame read by read_close() is the one next_piece() and
    # parse_close() give; an invalid one is left to them, which fail it.
    wire = b"".join(data)

    def read(fast: bool) -> list[Any] | None:
        parser = FrameParser()
        parser.feed(wire)
        out: list[Any] = []
        try:
            while True:
                close = parser.read_close() if fast else None
                if close is not None:
                    out.append(("close", close))
                    continue
                piece = parser.next_piece()
                if piece is None:
                    break
                if piece.opcode is Opcode.CLOSE:
                    out.append(("close", parse_close(piece.payload)))
                else:
                    out.append((piece.opcode, piece.payload, piece.fin, piece.length))
        except ProtocolError as exc:
            out.append(("error", exc.close_code))
            return out
        return [*out, parser.buffered]

    assert read(fast=True) == read(fast=False)


class GeneralPathOnly(FrameParser):
    """A parser whose fast path for close frames never takes one."""

    __slots__ = ()

    def read_close(self) -> tuple[int, str] | None:
        return None


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(close_frame_give_or_take() | one_frame_give_or_take(), max_size=5),
    cuts=st.lists(st.integers(1, 40), max_size=8),
    max_size=st.sampled_from([None, 64]),
)
def test_a_connection_reads_the_same_with_and_without_the_close_frame_fast_path(
    frames: list[bytes], cuts: list[int], max_size: int | None
) -> None:
    # (From a review: the test above feeds a parser once.) A Connection tries
    # read_close() at each frame, and whole small messages after each one:
    # fed in any chunks, it gives what the general path alone gives, call by
    # call, and ends in the same state with the same bytes to send.
    wire = b"".join(frames)

    def run(fast: bool) -> list[Any]:
        conn = Connection(max_size=max_size)
        if not fast:
            conn._parser = GeneralPathOnly(allow_rsv1=False)
        calls = []
        pos = 0
        for cut in [*cuts, len(wire)]:
            events = conn.receive_data(wire[pos : pos + cut])
            pos += cut
            calls.append([repr(event) for event in events])
            if pos >= len(wire):
                break
        sent = b"".join(conn.data_to_send())
        return [calls, conn.state, conn.close_received, conn.close_sent, repr(conn.failure), sent]

    assert run(fast=True) == run(fast=False)


class TestCollectPayload:
    """A large data frame's payload assembled in one buffer (FrameParser.collect_payload)."""

    @pytest.mark.parametrize("chunk", [1, 7, 1000, 65536, 300_000])
    def test_one_piece_when_whole_and_none_before(self, chunk: int) -> None:
        payload = os.urandom(200_000)
        frame = serialize_frame(Opcode.BINARY, payload, mask=MASK)
        parser = FrameParser()
        pieces = []
        collecting = False
        for start in range(0, len(frame), chunk):
            parser.feed(bytearray(frame[start : start + chunk]))  # borrowed, reused buffers
            while (piece := parser.next_piece()) is not None:
                pieces.append(piece)
                if not collecting and piece.length >= COLLECT_MIN and not piece.payload:
                    parser.collect_payload()
                    collecting = True
        if chunk >= len(frame):
            assert pieces == [(Opcode.BINARY, True, False, payload, len(payload), 0)]
        else:
            assert pieces == [
                (Opcode.BINARY, True, False, b"", len(payload), 0),  # the header, alone
                (Opcode.BINARY, True, False, payload, len(payload), 0),  # then all of it
            ]
        assert parser.buffered == 0

    def test_memory_grows_with_what_arrived_not_with_what_was_announced(self) -> None:
        size = 16 * 2**20
        frame = serialize_frame(Opcode.BINARY, bytes(size), mask=MASK)
        parser = FrameParser()
        parser.feed(frame[:14])  # the header of a 16 MiB frame
        assert parser.next_piece() == (Opcode.BINARY, True, False, b"", size, 0)
        parser.collect_payload()
        assert parser._collect is not None and parser._collect.allocated == 0
        sent = 14
        for step in (10, 100_000, 1_000_000, 3_000_000):
            parser.feed(frame[sent : sent + step])
            sent += step
            assert parser.next_piece() is None
            arrived = sent - 14
            assert arrived == parser._collect.filled
            assert parser._collect.allocated <= max(4 * arrived, 65536)
        parser.feed(frame[sent:])
        piece = parser.next_piece()
        assert piece is not None and piece.payload == bytes(size)

    def test_only_on_a_header_piece(self) -> None:
        parser = FrameParser()
        with pytest.raises(ValueError):
            parser.collect_payload()  # no frame
        frame = serialize_frame(Opcode.BINARY, b"x" * 50_000, mask=MASK)
        parser.feed(frame[:20_000])
        assert parser.next_piece() is not None  # the header
        assert parser.next_piece() is not None  # streamed: a first piece of the payload
        with pytest.raises(ValueError):
            parser.collect_payload()

    def test_discarding_drops_what_was_collected(self) -> None:
        frame = serialize_frame(Opcode.BINARY, b"x" * 50_000, mask=MASK)
        close = serialize_frame(Opcode.CLOSE, serialize_close(1000), mask=MASK)
        parser = FrameParser()
        parser.feed(frame[:20_000])
        assert parser.next_piece() is not None
        parser.collect_payload()
        assert parser.next_piece() is None
        parser.discarding = True
        parser.feed(frame[20_000:] + close)
        pieces = []
        while (piece := parser.next_piece()) is not None:
            pieces.append(piece)
        assert pieces[-1].opcode is Opcode.CLOSE and parser._collect is None
