"""The C accelerator against its pure-Python reference: same input, same output, same errors.

frames.py defines each function in Python; ``_speedups.c`` has a twin of each.
These tests feed both the same arbitrary input, function by function and then
through a whole :class:`Connection` (arbitrary frames, arbitrarily chunked),
and compare everything that comes out. CI also runs the whole suite with
``WSSERVER_NO_SPEEDUPS=1`` (the pure-Python path only).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
import sys
import zlib
from collections.abc import Iterator
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wsserver.protocol import connection, frames
from wsserver.protocol.connection import Connection
from wsserver.protocol.deflate import DeflateSettings, PerMessageDeflate

try:
    from wsserver.protocol import _speedups
except ImportError:  # pragma: no cover - not built here
    _speedups = None  # type: ignore[assignment]

from .helpers import long_form_head

pytestmark = pytest.mark.skipif(
    _speedups is None or not frames.SPEEDUPS,
    reason="the C accelerator is not built or is disabled (WSSERVER_NO_SPEEDUPS)",
)


def outcome(function: Any, *args: Any) -> tuple[str, Any]:
    """What a call gives: ("ok", result) or ("error", exception type)."""
    try:
        return "ok", function(*args)
    except Exception as exc:
        return "error", type(exc)


@contextlib.contextmanager
def python_path() -> Iterator[None]:
    """Run the frame layer on the pure-Python references, as without the accelerator."""
    with (
        patch.object(frames, "apply_mask", frames._apply_mask_python),
        patch.object(frames, "read_messages", frames._read_messages_python),
        patch.object(frames, "read_close", frames._read_close_python),
        patch.object(frames, "build_frame", frames._build_frame_python),
        patch.object(frames, "PayloadBuffer", frames._PayloadBufferPython),
        patch.object(connection, "build_frame", frames._build_frame_python),
    ):
        yield


def test_the_accelerator_is_what_the_frame_layer_uses() -> None:
    assert frames.apply_mask is _speedups.apply_mask
    assert frames.read_messages is _speedups.read_messages
    assert frames.read_close is _speedups.read_close
    assert frames.build_frame is _speedups.build_frame
    assert connection.build_frame is _speedups.build_frame
    assert frames.PayloadBuffer is _speedups.PayloadBuffer


# ----------------------------------------------------------------- frames


@st.composite
def client_frame(
    draw: st.DrawFn, opcodes: tuple[int, ...] = (0, 1, 1, 2, 2, 3, 8, 9, 10, 11)
) -> bytes:
    """One frame as a client might send it, valid or not, of any length class."""
    opcode = draw(st.sampled_from(opcodes))
    fin = draw(st.booleans()) if opcode < 8 else draw(st.sampled_from([True, True, False]))
    rsv = draw(st.sampled_from([0, 0, 0, 0x40, 0x20, 0x10]))
    masked = draw(st.sampled_from([True, True, True, False]))
    kind = draw(st.sampled_from(["text", "bytes", "bad-utf8", "close"]))
    if kind == "text":
        payload = draw(st.text(max_size=60)).encode("utf-8", "surrogatepass")
    elif kind == "bad-utf8":
        text = draw(st.text(max_size=20)).encode("utf-8", "surrogatepass")
        payload = text + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe2\x82"]))
    elif kind == "close":
        payload = struct.pack("!H", draw(st.integers(0, 5000))) + draw(st.binary(max_size=10))
    else:
        payload = draw(st.binary(max_size=40))
    if draw(st.integers(0, 9)) == 0:
        payload *= draw(st.integers(2, 2000))  # 16-bit and 64-bit lengths
    n = len(payload)
    mbit = 0x80 if masked else 0
    if n < 126 and draw(st.integers(0, 5)):
        head = bytes([(0x80 if fin else 0) | rsv | opcode, mbit | n])
    elif n < 0x10000 and draw(st.integers(0, 3)):
        head = bytes([(0x80 if fin else 0) | rsv | opcode, mbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([(0x80 if fin else 0) | rsv | opcode, mbit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    mask = draw(st.binary(min_size=4, max_size=4))
    return head + mask + frames._apply_mask_python(payload, mask)


wires = st.lists(client_frame(), max_size=6).map(b"".join) | st.binary(max_size=200)
max_sizes = st.none() | st.integers(0, 300)


@settings(max_examples=600, deadline=None)
@given(
    wire=wires,
    pos=st.integers(0, 40),
    max_size=max_sizes,
    kind=st.sampled_from([bytes, bytearray, memoryview]),
)
def test_read_messages(wire: bytes, pos: int, max_size: int | None, kind: type) -> None:
    pos = min(pos, len(wire))
    data = kind(wire)
    # Limits at every message's own size and one below it, where a limit bites.
    unlimited = frames._read_messages_python(data, pos, None)[0]
    sizes = {len(m.encode() if isinstance(m, str) else m) for m in unlimited}
    for limit in {max_size} | sizes | {size - 1 for size in sizes if size}:
        assert outcome(_speedups.read_messages, data, pos, limit) == outcome(
            frames._read_messages_python, data, pos, limit
        )


#: Mostly close frames (valid or not: codes, reasons, lengths, masks, RSV
#: bits, fragmented), among others.
close_wires = st.lists(client_frame(opcodes=(8, 8, 8, 0, 1, 9)), max_size=3).map(b"".join)


@settings(max_examples=600, deadline=None)
@given(
    wire=close_wires | wires,
    pos=st.integers(0, 40),
    kind=st.sampled_from([bytes, bytearray, memoryview]),
)
def test_read_close(wire: bytes, pos: int, kind: type) -> None:
    pos = min(pos, len(wire))
    data = kind(wire)
    assert outcome(_speedups.read_close, data, pos) == outcome(frames._read_close_python, data, pos)


@given(wire=close_wires | wires, past=st.integers(1, 3))
def test_a_position_outside_the_buffer_is_refused_by_both_twins(wire: bytes, past: int) -> None:
    # (From a review.) The C functions raised ValueError where their Python
    # references read from the buffer's end (a negative position) or gave
    # nothing (one past it).
    for pos in (-past, len(wire) + past):
        for function, args in (
            (_speedups.read_close, ()),
            (frames._read_close_python, ()),
            (_speedups.read_messages, (None,)),
            (frames._read_messages_python, (None,)),
        ):
            assert outcome(function, wire, pos, *args) == ("error", ValueError), function


@pytest.mark.parametrize("read_close", [frames._read_close_python, "accelerator"])
def test_read_close_reads_only_what_parse_close_takes(read_close: Any) -> None:
    if read_close == "accelerator":
        read_close = _speedups.read_close
    mask = b"\x01\x02\x03\x04"

    def close(payload: bytes, b0: int = 0x88) -> bytes:
        return bytes([b0, 0x80 | len(payload)]) + mask + frames._apply_mask_python(payload, mask)

    assert read_close(close(b""), 0) == (1005, "", 6)
    assert read_close(close(b"\x03\xe8bye"), 0) == (1000, "bye", 11)
    assert read_close(b"xx" + close(b"\x0f\xa0\xc3\xa9") + b"more", 2) == (4000, "\xe9", 12)
    for invalid in (b"\x03", b"\x03\xed", b"\x03\xe8\xff", b"\x03\xe8" + b"x" * 124):
        assert read_close(close(invalid), 0) is None  # 1-byte, 1005, bad UTF-8, 126 bytes
    assert read_close(close(b"\x03\xe8", b0=0x08), 0) is None  # not final
    assert read_close(close(b"\x03\xe8", b0=0xC8), 0) is None  # RSV1
    assert read_close(b"\x88\x02\x03\xe8", 0) is None  # unmasked
    assert read_close(close(b"\x03\xe8bye")[:-1], 0) is None  # incomplete
    long_form = b"\x88\xfe\x00\x02" + mask + frames._apply_mask_python(b"\x03\xe8", mask)
    assert read_close(long_form, 0) is None  # its length not in the fewest bytes


@pytest.mark.parametrize("read_messages", [frames._read_messages_python, "accelerator"])
@pytest.mark.parametrize(("indicator", "length"), [(126, 125), (127, 0xFFFF)])
def test_read_messages_leaves_a_length_not_in_its_fewest_bytes(
    read_messages: Any, indicator: int, length: int
) -> None:
    # The general path fails it (1002); the fast one must not read it.
    if read_messages == "accelerator":
        read_messages = _speedups.read_messages
    before = frames.serialize_frame(2, b"x", mask=b"abcd")
    longer = long_form_head(0x82, indicator, length) + b"abcd" + bytes(length)
    assert read_messages(before + longer, 0, None) == ([b"x"], len(before))
    fine = long_form_head(0x82, indicator, length + 1) + b"abcd" + bytes(length + 1)
    unmasked = frames._apply_mask_python(bytes(length + 1), b"abcd")
    assert read_messages(fine, 0, None) == ([unmasked], len(fine))


def test_read_messages_refuses_what_it_cannot_read() -> None:
    for args in [(b"ab", 3, None), (b"ab", -1, None), (b"", 0, -1)]:
        with pytest.raises(ValueError):
            _speedups.read_messages(*args)
    with pytest.raises(TypeError):
        _speedups.read_messages("text", 0, None)  # type: ignore[arg-type]
    huge = 2**80  # a limit no frame can pass
    frame = frames.serialize_frame(2, b"x", mask=b"abcd")
    assert _speedups.read_messages(frame, 0, huge) == ([b"x"], len(frame))


payloads = (
    st.text(max_size=300)
    | st.binary(max_size=300)
    | st.binary(min_size=125, max_size=127)
    | st.sampled_from([b"x" * 65535, b"x" * 65536, "é" * 40000, "\ud800"])
    | st.binary(max_size=40).map(bytearray)
    | st.binary(max_size=40).map(memoryview)
)


@settings(max_examples=400, deadline=None)
@given(opcode=st.integers(0, 15), payload=payloads, fin=st.booleans(), rsv1=st.booleans())
def test_build_frame(opcode: int, payload: Any, fin: bool, rsv1: bool) -> None:
    assert outcome(_speedups.build_frame, opcode, payload, fin, rsv1) == outcome(
        frames._build_frame_python, opcode, payload, fin, rsv1
    )


def test_build_frame_refuses_what_is_no_frame() -> None:
    for opcode in (-1, 16):
        with pytest.raises(ValueError):
            _speedups.build_frame(opcode, b"", True, False)
    with pytest.raises(TypeError):
        _speedups.build_frame(1, 5, True, False)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=100), mask=st.binary(min_size=4, max_size=4))
def test_apply_mask(data: bytes, mask: bytes) -> None:
    assert _speedups.apply_mask(data, mask) == frames._apply_mask_python(data, mask)


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(0, 300_000),
    cuts=st.lists(st.floats(0, 1), max_size=8),
    mask=st.binary(min_size=4, max_size=4),
    extra=st.integers(0, 3),
)
def test_payload_buffer(size: int, cuts: list[float], mask: bytes, extra: int) -> None:
    payload = os.urandom(min(size, 1000)) * (size // 1000 + 1)
    payload = payload[:size]
    masked = frames._apply_mask_python(payload, mask)
    points = sorted({int(c * size) for c in cuts} | {0, size})
    log: dict[str, list[Any]] = {}
    for name, kind in (("c", _speedups.PayloadBuffer), ("py", frames._PayloadBufferPython)):
        buffer = kind(size)
        steps: list[Any] = [outcome(buffer.take)] if size else []  # not complete yet
        for start, end in itertools.pairwise(points):
            steps.append(outcome(buffer.add, masked[start:end], mask))
            steps.append((buffer.filled, buffer.allocated))
        steps.append(outcome(buffer.add, b"x" * extra, mask))  # past the end: refused
        steps.append(outcome(buffer.add, b"", b"abc"))  # a bad mask: refused
        steps.append(outcome(buffer.take))
        log[name] = steps
        assert steps[-1] == ("ok", payload) or (extra and steps[-1][0] == "ok")
    assert log["c"] == log["py"]


# ------------------------------------------------------- whole connections


def compressed_frame(text: str, mask: bytes) -> bytes:
    """A compressed text frame that a permessage-deflate client would send."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = compressor.compress(text.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
    payload = body[:-4]
    head = frames.frame_header(1, len(payload), True, True, True)
    return head + mask + frames._apply_mask_python(payload, mask)


def run(
    wire: bytes, cuts: list[float], max_size: int | None, deflate: bool, sends: list[Any]
) -> Any:
    """Everything a connection gives for this input: events, bytes out, state, errors."""
    conn = Connection(
        max_size=max_size,
        deflate=PerMessageDeflate(settings=DeflateSettings(min_size=10)) if deflate else None,
    )
    log: list[Any] = []
    start = 0
    for cut in [*sorted(int(c * len(wire)) for c in cuts), len(wire)]:
        chunk = wire[start:cut]
        start = max(start, cut)
        log.append([repr(event) for event in conn.receive_data(memoryview(bytearray(chunk)))])
        for message in sends:
            log.append(outcome(conn.send, message))
        log.append(b"".join(conn.data_to_send()))
    log.append((conn.state, conn.close_code, conn.close_reason, repr(conn.failure)))
    return log


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frames_=st.lists(client_frame(), max_size=6),
    compressed=st.lists(st.text(max_size=80), max_size=2),
    cuts=st.lists(st.floats(0, 1), max_size=5),
    max_size=max_sizes | st.sampled_from([None, 2**20]),
    deflate=st.booleans(),
    sends=st.lists(payloads, max_size=2),
)
def test_a_connection_gives_the_same_with_and_without_the_accelerator(
    frames_: list[bytes],
    compressed: list[str],
    cuts: list[float],
    max_size: int | None,
    deflate: bool,
    sends: list[Any],
) -> None:
    mask = os.urandom(4)
    wire = b"".join(frames_ + [compressed_frame(text, mask) for text in compressed])
    accelerated = run(wire, cuts, max_size, deflate, sends)
    with python_path():
        reference = run(wire, cuts, max_size, deflate, sends)
    assert accelerated == reference


@st.composite
def client_session(draw: st.DrawFn) -> tuple[bytes, list[str | bytes], int, bool]:
    """Messages as a permessage-deflate client sends them: one compressor across
    messages (context takeover, unless it resets), fragmented anywhere, some
    compressed and some not, pings between fragments, now and then a stream
    ended with BFINAL (RFC 7692 7.2.3.3); and the messages themselves."""
    bits = draw(st.sampled_from([9, 12, 15]))
    level = draw(st.sampled_from([0, 1, 6, 9]))
    reset = draw(st.booleans())  # client_no_context_takeover

    def compressor() -> Any:
        return zlib.compressobj(level, zlib.DEFLATED, -bits, draw(st.sampled_from([1, 8])))

    deflater = compressor()
    wire: list[bytes] = []
    messages: list[str | bytes] = []
    for _ in range(draw(st.integers(1, 6))):
        text = draw(st.booleans())
        repeat = draw(st.sampled_from([1, 1, 3, 200]))
        message: str | bytes
        if messages and draw(st.booleans()):
            # One sent before (as text or bytes): what context takeover refers back to.
            message = draw(st.sampled_from(messages))
            text = isinstance(message, str)
            data = message.encode() if isinstance(message, str) else message
        elif text:
            message = draw(st.text(st.characters(exclude_categories=["Cs"]), max_size=100)) * repeat
            data = message.encode()
        else:
            message = data = draw(st.binary(max_size=100)) * repeat
        messages.append(message)
        compressed = draw(st.booleans())
        ended = compressed and draw(st.integers(0, 5)) == 0
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        mask = draw(st.binary(min_size=4, max_size=4))
        for i, piece in enumerate(pieces):
            fin = i == len(pieces) - 1
            payload = piece
            if compressed:
                if fin and ended:
                    payload = deflater.compress(piece) + deflater.flush(zlib.Z_FINISH)
                    deflater = compressor()
                else:
                    payload = deflater.compress(piece) + deflater.flush(zlib.Z_SYNC_FLUSH)
                    if fin:
                        payload = payload[:-4]
            opcode = (1 if text else 2) if i == 0 else 0
            rsv1 = compressed and i == 0
            wire.append(frames.serialize_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=mask))
            if not fin and draw(st.integers(0, 4)) == 0:
                wire.append(frames.serialize_frame(9, b"p", mask=mask))
        if compressed and reset:
            deflater = compressor()
    return b"".join(wire), messages, bits, reset


def received(wire: bytes, cuts: list[float], bits: int, reset: bool) -> list[Any]:
    """The messages a connection gives for ``wire`` cut at ``cuts`` (pings left out)."""
    conn = Connection(
        max_size=2**20,
        deflate=PerMessageDeflate(
            client_no_context_takeover=reset,
            client_window_bits=bits,
            settings=DeflateSettings(library="zlib"),
        ),
    )
    events: list[Any] = []
    start = 0
    for cut in [*sorted(int(c * len(wire)) for c in cuts), len(wire)]:
        events += conn.receive_data(memoryview(bytearray(wire[start:cut])))
        start = max(start, cut)
        while conn.input_waiting:
            events += conn.receive_data(b"")
    return [event for event in events if isinstance(event, (str, bytes))]


def takeover_session() -> tuple[bytes, list[str | bytes], int, bool]:
    """Two messages alike, the second compressed as a back-reference to the
    first (context takeover): a connection that dropped its decompressor
    after the first cannot read it. (Hypothesis finds such a session most
    runs, not all: this one is always tried.)"""
    deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
    message = "context takeover " * 4
    wire = b""
    for _ in range(2):
        payload = deflater.compress(message.encode()) + deflater.flush(zlib.Z_SYNC_FLUSH)
        wire += frames.serialize_frame(1, payload[:-4], rsv1=True, mask=b"abcd")
    return wire, [message, message], 15, False


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(session=client_session(), cuts=st.lists(st.floats(0, 1), max_size=6))
@example(session=takeover_session(), cuts=[])
def test_a_compressing_clients_messages_arrive_whole_with_and_without_the_accelerator(
    session: tuple[bytes, list[str | bytes], int, bool], cuts: list[float]
) -> None:
    wire, messages, bits, reset = session
    assert received(wire, cuts, bits, reset) == messages
    with python_path():
        assert received(wire, cuts, bits, reset) == messages


# ------------------------------------------------- found in review, each failed first


def test_a_payload_buffer_that_lost_its_memory_never_hands_out_a_wrong_payload() -> None:
    _testcapi = pytest.importorskip("_testcapi")
    data = os.urandom(200_000)
    mask = b"abcd"
    masked = frames._apply_mask_python(data, mask)
    buffer = _speedups.PayloadBuffer(len(data))
    buffer.add(masked[:10_000], mask)
    buffer.add(masked[10_000:40_000], mask)
    piece = masked[40_000:70_000]  # past the 64 KiB allocated: it must grow
    add = buffer.add
    failed = None
    _testcapi.set_nomemory(0, 1)  # the next allocation fails: growing the payload
    try:
        add(piece, mask)
    except MemoryError as exc:
        failed = exc
    finally:
        _testcapi.remove_mem_hooks()
    assert isinstance(failed, MemoryError)
    with pytest.raises(ValueError):
        buffer.add(masked[70_000:], mask)
    with pytest.raises(ValueError):
        buffer.take()


def test_build_frame_keeps_the_callers_exception() -> None:
    class Bad:
        def __bool__(self) -> bool:
            raise KeyError("fin")

    for build in (_speedups.build_frame, frames._build_frame_python):
        with pytest.raises(KeyError):
            build(1, b"x", Bad(), Bad())  # type: ignore[arg-type]


def test_empty_adds_are_harmless() -> None:
    for kind in (_speedups.PayloadBuffer, frames._PayloadBufferPython):
        buffer = kind(0)
        buffer.add(b"", b"abcd")
        assert buffer.take() == b""
        buffer.add(b"", b"abcd")  # after take()
        buffer = kind(3)
        buffer.add(b"", b"abcd")
        buffer.add(b"\x00\x00\x00", b"abcd")
        assert buffer.take() == b"abc"


def test_sending_a_non_ascii_str_does_not_grow_it() -> None:
    text = "é" * 10_000
    before = sys.getsizeof(text)
    conn = Connection()
    conn.send(text)
    assert sys.getsizeof(text) == before
    assert conn.data_to_send()[0][4:] == text.encode()
