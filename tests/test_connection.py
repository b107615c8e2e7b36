"""The sans-I/O connection: bytes in, events and bytes out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsserver.errors import InvalidState
from wsserver.protocol.connection import (
    SEPARATE_PAYLOAD,
    CloseReceived,
    Connection,
    Ping,
    Pong,
    ProtocolFailure,
)
from wsserver.protocol.frames import (
    CloseCode,
    FrameParser,
    Opcode,
    serialize_close,
    serialize_frame,
)
from wsserver.protocol.state import ConnectionState

MASK = b"\x01\x02\x03\x04"


def cf(opcode: int, payload: bytes = b"", fin: bool = True, rsv1: bool = False) -> bytes:
    """A client (masked) frame."""
    return serialize_frame(opcode, payload, fin=fin, rsv1=rsv1, mask=MASK)


def close_frame(code: int | None = 1000, reason: str = "") -> bytes:
    return cf(Opcode.CLOSE, serialize_close(code, reason))


def sent_frames(conn: Connection) -> list[tuple[int, bool, bytes]]:
    """Parse what the server wrote: (opcode, fin, payload) per frame."""
    parser = FrameParser(masked=False, allow_rsv1=True)
    parser.feed(b"".join(conn.data_to_send()))
    frames = []
    while (piece := parser.next_piece()) is not None:
        assert piece[5] == 0 and len(piece[3]) == piece[4], "server frames come whole"
        frames.append((piece[0], piece[1], piece[3]))
    return frames


def failure_of(events: list[object]) -> ProtocolFailure:
    failures = [e for e in events if isinstance(e, ProtocolFailure)]
    assert len(failures) == 1, events
    return failures[0]


class TestMessages:
    def test_text_and_binary(self) -> None:
        conn = Connection()
        events = conn.receive_data(cf(Opcode.TEXT, "héllo".encode()) + cf(Opcode.BINARY, b"\x00"))
        assert events == ["héllo", b"\x00"]
        assert conn.data_to_send() == []

    def test_fragmented_with_interleaved_ping(self) -> None:
        conn = Connection()
        events = conn.receive_data(
            cf(Opcode.TEXT, b"he", fin=False)
            + cf(Opcode.PING, b"p1")
            + cf(Opcode.CONTINUATION, b"ll", fin=False)
            + cf(Opcode.CONTINUATION, b"o")
        )
        assert len(events) == 2
        assert isinstance(events[0], Ping) and events[0].payload == b"p1"
        assert events[1] == "hello"
        assert sent_frames(conn) == [(Opcode.PONG, True, b"p1")]

    def test_pong_event(self) -> None:
        conn = Connection()
        (event,) = conn.receive_data(cf(Opcode.PONG, b"x"))
        assert isinstance(event, Pong) and event.payload == b"x"

    def test_any_chunking_gives_same_events(self) -> None:
        wire = (
            cf(Opcode.TEXT, "ünïcödé".encode() * 50, fin=False)
            + cf(Opcode.PING, b"ping")
            + cf(Opcode.CONTINUATION, b"!" * 70000)
            + cf(Opcode.BINARY, bytes(range(256)) * 300)
        )
        whole = Connection(max_size=None).receive_data(wire)
        conn = Connection(max_size=None)
        events = []
        for i in range(0, len(wire), 7):
            events += conn.receive_data(wire[i : i + 7])
        assert [repr(e) if isinstance(e, Ping) else e for e in events] == [
            repr(e) if isinstance(e, Ping) else e for e in whole
        ]
        assert len(whole) == 3

    @given(
        st.lists(st.binary(max_size=200), min_size=1, max_size=12),
        st.lists(st.integers(1, 300), min_size=1, max_size=40),
    )
    @settings(max_examples=200, deadline=None)
    def test_whole_messages_read_from_one_reused_buffer(
        self, payloads: list[bytes], sizes: list[int]
    ) -> None:
        # The server hands each read over as a view of one buffer that the
        # next read overwrites: a frame cut by a read must have been kept as
        # a copy, whether the read also held whole messages or not.
        wire = b"".join(
            cf(Opcode.TEXT if n % 2 else Opcode.BINARY, p.hex().encode() if n % 2 else p)
            for n, p in enumerate(payloads)
        )
        expected = [p.hex() if n % 2 else p for n, p in enumerate(payloads)]
        conn = Connection(max_size=None)
        buffer = bytearray(300)
        events: list[object] = []
        start = 0
        for size in sizes * (len(wire) // sum(sizes) + 1):
            chunk = wire[start : start + size]
            if not chunk:
                break
            buffer[: len(chunk)] = chunk
            events += conn.receive_data(memoryview(buffer)[: len(chunk)])
            buffer[:] = b"\xee" * len(buffer)  # the next read's bytes
            start += size
        assert events == expected


@pytest.mark.parametrize("opcode", [Opcode.BINARY, Opcode.TEXT])
def test_a_message_in_tiny_fragments_takes_about_its_own_size(opcode: Opcode) -> None:
    # One object per fragment: a 1 MiB message in 2-byte fragments held 22
    # MiB (30 as text) until it ended, per connection.
    import sys

    size = 128 * 1024
    wire = b"".join(
        cf(opcode if n == 0 else Opcode.CONTINUATION, b"ab", fin=False) for n in range(size // 2)
    )
    conn = Connection(max_size=2 * size)
    for start in range(0, len(wire), 65536):
        assert conn.receive_data(wire[start : start + 65536]) == []
    parts = conn._msg_parts
    held = sys.getsizeof(parts) + sum(map(sys.getsizeof, parts))
    assert held < 2 * size, held
    (message,) = conn.receive_data(cf(Opcode.CONTINUATION, b"!"))
    expected = b"ab" * (size // 2) + b"!"
    assert message == (expected.decode() if opcode == Opcode.TEXT else expected)


class TestHeldPongs:
    def test_while_held_only_the_latest_ping_is_answered_once_released(self) -> None:
        conn = Connection()
        conn.receive_data(cf(Opcode.PING, b"before"))
        assert sent_frames(conn) == [(Opcode.PONG, True, b"before")]
        conn.hold_pongs(True)
        events = conn.receive_data(b"".join(cf(Opcode.PING, b"%d" % n) for n in range(1000)))
        assert [e.payload for e in events] == [b"%d" % n for n in range(1000)]  # still told
        assert all(isinstance(e, Ping) for e in events)
        assert conn.data_to_send() == []
        conn.hold_pongs(False)
        assert sent_frames(conn) == [(Opcode.PONG, True, b"999")]
        conn.hold_pongs(False)
        assert conn.data_to_send() == []  # once
        conn.receive_data(cf(Opcode.PING, b"after"))
        assert sent_frames(conn) == [(Opcode.PONG, True, b"after")]

    def test_a_held_pong_is_not_sent_after_the_close_frame(self) -> None:
        conn = Connection()
        conn.hold_pongs(True)
        conn.receive_data(cf(Opcode.PING, b"x"))
        conn.send_close(1001)
        conn.hold_pongs(False)
        assert [frame[0] for frame in sent_frames(conn)] == [Opcode.CLOSE]


class TestViolations:
    def check(self, wire: bytes, code: int, fragment: str = "") -> list[object]:
        conn = Connection()
        events = conn.receive_data(wire)
        failure = failure_of(events)
        assert failure.code == code
        assert fragment in failure.reason
        # Nothing is sent until the I/O layer decides to fail.
        assert conn.data_to_send() == []
        assert conn.state is ConnectionState.FAILING
        conn.fail(failure.code, failure.reason)
        frames = sent_frames(conn)
        assert frames[0][0] == Opcode.CLOSE
        assert frames[0][2][:2] == code.to_bytes(2, "big")
        assert conn.state is ConnectionState.LOCAL_CLOSING
        return events

    @pytest.mark.parametrize(
        "bad_close",
        [
            serialize_frame(Opcode.CLOSE, serialize_close(1000)),  # not masked
            cf(Opcode.CLOSE, serialize_close(1000), fin=False),  # fragmented
            cf(Opcode.CLOSE, serialize_close(1000), rsv1=True),  # RSV1 on a control frame
            cf(Opcode.CLOSE, serialize_close(1000, "x" * 200)),  # longer than 125 bytes
        ],
    )
    def test_an_invalid_close_frame_is_no_close_frame(self, bad_close: bytes) -> None:
        # It fails the connection (1002); it was also taken for the peer's
        # close, with no code (1005): a normal close as far as anyone could tell.
        conn = Connection()
        events = conn.receive_data(bad_close)
        assert failure_of(events).code == 1002
        assert not [e for e in events if isinstance(e, CloseReceived)]
        conn.fail(1002, "bad close")
        # After the failure, another invalid close frame is dropped too, split or whole ...
        whole, split = Connection(), Connection()
        for c in (whole, split):
            c.receive_data(cf(7, b""))
            c.fail(1002)
        late = cf(Opcode.CLOSE, serialize_close(1000, "y" * 200))
        assert whole.receive_data(late) == []
        assert [e for n in range(len(late)) for e in split.receive_data(late[n : n + 1])] == []
        # ... and the peer's valid one ends the closing handshake.
        (closed,) = conn.receive_data(close_frame(1002))
        assert isinstance(closed, CloseReceived) and closed.code == 1002
        assert conn.close_code == 1002

    def test_continuation_without_start(self) -> None:
        self.check(cf(Opcode.CONTINUATION, b"x"), 1002, "continuation")

    def test_new_message_inside_fragmented_one(self) -> None:
        self.check(cf(Opcode.TEXT, b"a", fin=False) + cf(Opcode.TEXT, b"b"), 1002, "inside")

    def test_messages_before_violation_are_delivered_first(self) -> None:
        events = self.check(
            cf(Opcode.TEXT, b"first") + cf(7, b"bad") + cf(Opcode.TEXT, b"after"), 1002
        )
        assert events[0] == "first"
        assert isinstance(events[1], ProtocolFailure)
        assert len(events) == 2

    def test_invalid_utf8_in_single_frame(self) -> None:
        self.check(
            cf(Opcode.TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"), 1007
        )

    def test_invalid_utf8_fails_before_message_ends(self) -> None:
        conn = Connection()
        events = conn.receive_data(cf(Opcode.TEXT, b"valid \xf4\x90", fin=False))
        assert failure_of(events).code == 1007

    @pytest.mark.parametrize("start", [b"\xed\xa0", b"\xed\xbf"])
    def test_the_start_of_a_surrogate_fails_before_its_last_byte(self, start: bytes) -> None:
        # (Python's incremental decoder alone waits for a third byte.)
        conn = Connection()
        events = conn.receive_data(cf(Opcode.TEXT, b"ok" + start, fin=False))
        assert failure_of(events).code == 1007
        # The last character before the surrogates, U+D7FF, is ED 9F BF.
        conn = Connection()
        assert conn.receive_data(cf(Opcode.TEXT, b"ok\xed\x9f", fin=False)) == []
        assert conn.receive_data(cf(Opcode.CONTINUATION, b"\xbf")) == ["ok\ud7ff"]

    def test_invalid_utf8_fails_mid_frame(self) -> None:
        # The frame announces 100 bytes; the bad byte comes in the first chunk.
        frame = cf(Opcode.TEXT, b"ok\xff" + b"a" * 97)
        conn = Connection()
        assert conn.receive_data(frame[:6]) == []
        events = conn.receive_data(frame[6:12])
        assert failure_of(events).code == 1007

    def test_utf8_split_across_frames_is_fine(self) -> None:
        conn = Connection()
        text = "κόσμε"
        raw = text.encode()
        events = conn.receive_data(
            cf(Opcode.TEXT, raw[:1], fin=False) + cf(Opcode.CONTINUATION, raw[1:])
        )
        assert events == [text]

    def test_truncated_utf8_at_end(self) -> None:
        conn = Connection()
        events = conn.receive_data(
            cf(Opcode.TEXT, b"abc", fin=False) + cf(Opcode.CONTINUATION, b"\xe2\x82")
        )
        assert failure_of(events).code == 1007

    def test_too_big_checked_on_header(self) -> None:
        conn = Connection(max_size=1000)
        header_only = cf(Opcode.BINARY, b"x" * 1001)[:8]
        events = conn.receive_data(header_only)
        failure = failure_of(events)
        assert failure.code == 1009
        assert "max_size 1000" in failure.reason

    def test_too_big_across_fragments(self) -> None:
        conn = Connection(max_size=1000)
        events = conn.receive_data(
            cf(Opcode.BINARY, b"x" * 600, fin=False) + cf(Opcode.CONTINUATION, b"x" * 401)[:8]
        )
        assert failure_of(events).code == 1009

    def test_exactly_max_size_is_accepted(self) -> None:
        conn = Connection(max_size=1000)
        events = conn.receive_data(
            cf(Opcode.BINARY, b"x" * 600, fin=False) + cf(Opcode.CONTINUATION, b"x" * 400)
        )
        assert events == [b"x" * 1000]

    def test_invalid_close_code(self) -> None:
        self.check(cf(Opcode.CLOSE, b"\x03\xed"), 1002, "close code")

    def test_close_reason_not_utf8(self) -> None:
        self.check(cf(Opcode.CLOSE, b"\x03\xe8\xff"), 1007)

    def test_after_violation_only_close_frames_count(self) -> None:
        conn = Connection()
        events = conn.receive_data(cf(7) + cf(Opcode.TEXT, b"x") + cf(Opcode.PING, b"y"))
        assert [type(e) for e in events] == [ProtocolFailure]
        assert conn.data_to_send() == []  # no pong after the violation
        conn.fail(1002)
        sent_frames(conn)
        events = conn.receive_data(close_frame(1002))
        assert [type(e) for e in events] == [CloseReceived]
        assert conn.state is ConnectionState.CLOSED

    def test_close_arriving_while_failure_pending(self) -> None:
        conn = Connection()
        conn.receive_data(cf(7) + close_frame(1000))
        # No reply yet: the server still owes the 1002.
        assert conn.data_to_send() == []
        assert conn.state is ConnectionState.REMOTE_CLOSING
        conn.fail(1002, "bad opcode")
        assert sent_frames(conn)[0][2][:2] == b"\x03\xea"
        assert conn.state is ConnectionState.CLOSED


class TestClosingHandshake:
    def test_client_initiated(self) -> None:
        conn = Connection()
        events = conn.receive_data(cf(Opcode.TEXT, b"last") + close_frame(1001, "bye"))
        assert events[0] == "last"
        assert isinstance(events[1], CloseReceived)
        assert (events[1].code, events[1].reason) == (1001, "bye")
        assert sent_frames(conn) == [(Opcode.CLOSE, True, serialize_close(1001))]
        assert conn.state is ConnectionState.CLOSED
        assert (conn.close_code, conn.close_reason) == (1001, "bye")

    def test_client_close_without_code_gets_empty_reply(self) -> None:
        conn = Connection()
        conn.receive_data(cf(Opcode.CLOSE))
        assert sent_frames(conn) == [(Opcode.CLOSE, True, b"")]
        assert conn.close_code == 1005

    def test_data_after_close_is_ignored(self) -> None:
        conn = Connection()
        conn.receive_data(close_frame())
        sent_frames(conn)
        assert conn.receive_data(cf(Opcode.TEXT, b"late") + cf(Opcode.PING)) == []
        assert conn.data_to_send() == []

    def test_server_initiated(self) -> None:
        conn = Connection()
        conn.send_close(1000, "done")
        assert sent_frames(conn) == [(Opcode.CLOSE, True, serialize_close(1000, "done"))]
        assert conn.state is ConnectionState.LOCAL_CLOSING
        # Data frames may still arrive before the reply.
        events = conn.receive_data(cf(Opcode.TEXT, b"in flight") + close_frame(1000))
        assert events[0] == "in flight"
        assert conn.state is ConnectionState.CLOSED
        assert conn.data_to_send() == []  # no second close

    def test_send_close_twice_sends_once(self) -> None:
        conn = Connection()
        conn.send_close(1000)
        conn.send_close(1001)
        assert len(sent_frames(conn)) == 1

    def test_no_pong_after_close_sent(self) -> None:
        conn = Connection()
        conn.send_close()
        sent_frames(conn)
        conn.receive_data(cf(Opcode.PING, b"x"))
        assert conn.data_to_send() == []

    @pytest.mark.parametrize("fail", [False, True])
    def test_an_enum_code_of_ours_is_reported_as_an_int(self, fail: bool) -> None:
        conn = Connection()
        if fail:
            conn.fail(CloseCode.INTERNAL_ERROR, "x")
        else:
            conn.send_close(CloseCode.GOING_AWAY, "x")
        # (No close frame back yet: ours is the one reported.)
        assert conn.close_code == (1011 if fail else 1001)
        assert type(conn.close_code) is int
        conn.receive_eof()  # (and for good, where ours failed the connection)
        assert conn.close_code == (1011 if fail else 1006)
        assert type(conn.close_code) is int

    @pytest.mark.parametrize("fail", [False, True])
    def test_a_close_of_ours_never_answered_is_1006_a_failure_keeps_its_code(
        self, fail: bool
    ) -> None:
        # RFC 6455 7.1.5: no close frame received, the code is 1006: our
        # close(1000) that the peer never answered (it vanished) was no clean
        # close. Where ours failed the connection (a violation, a keepalive
        # timeout), its code says why, and stays.
        conn = Connection()
        if fail:
            conn.fail(1002, "unmasked frame")
        else:
            conn.send_close(1000, "done")
        sent_frames(conn)
        assert (conn.close_code, conn.close_reason) == (
            (1002, "unmasked frame") if fail else (1000, "done")
        )
        conn.receive_eof()
        assert conn.state is ConnectionState.CLOSED
        assert (conn.close_code, conn.close_reason) == (
            (1002, "unmasked frame") if fail else (1006, "")
        )

    def test_eof(self) -> None:
        conn = Connection()
        conn.receive_eof()
        assert conn.state is ConnectionState.CLOSED
        assert conn.close_code == 1006 and type(conn.close_code) is int  # (not an enum)

    @pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000])
    def test_invalid_codes_cannot_be_sent(self, code: int) -> None:
        with pytest.raises(ValueError, match="invalid close code"):
            Connection().send_close(code)

    def test_reason_too_long(self) -> None:
        with pytest.raises(ValueError, match="123 bytes"):
            Connection().send_close(1000, "é" * 62)
        Connection().send_close(1000, "e" * 123)

    @pytest.mark.parametrize(
        ("code", "reason", "message"),
        [
            ("1000", "", "close code must be an int"),
            (1000.0, "", "close code must be an int"),
            (True, "", "close code must be an int"),
            (1000, b"bye", "close reason must be str"),
            (1000, None, "close reason must be str"),
        ],
    )
    def test_wrong_types_are_refused_before_anything_is_sent(
        self, code: object, reason: object, message: str
    ) -> None:
        conn = Connection()
        with pytest.raises(TypeError, match=message):
            conn.send_close(code, reason)  # type: ignore[arg-type]
        assert conn.close_sent is None
        assert conn.data_to_send() == []
        assert conn.state is ConnectionState.OPEN


class TestSending:
    def test_text_and_binary(self) -> None:
        conn = Connection()
        conn.send("hé")
        conn.send(b"\x01")
        conn.send(bytearray(b"\x02"))
        conn.send(memoryview(b"\x03"))
        assert sent_frames(conn) == [
            (Opcode.TEXT, True, "hé".encode()),
            (Opcode.BINARY, True, b"\x01"),
            (Opcode.BINARY, True, b"\x02"),
            (Opcode.BINARY, True, b"\x03"),
        ]

    def test_large_payloads_leave_as_their_own_chunk(self) -> None:
        conn = Connection(max_size=None)
        big = bytes(range(256)) * 256  # 64 KiB
        conn.send(big)
        out = conn.data_to_send()
        assert out == [serialize_frame(Opcode.BINARY, big)[: -len(big)], big]
        assert out[1] is big  # not copied
        # A mutable payload is copied: changing it afterwards changes nothing sent.
        mutable = bytearray(SEPARATE_PAYLOAD)
        conn.send(mutable, fin=False)
        conn.send(memoryview(mutable))
        conn.send("é" * SEPARATE_PAYLOAD)
        mutable[:] = b"\xff" * len(mutable)
        assert sent_frames(conn) == [
            (Opcode.BINARY, False, bytes(SEPARATE_PAYLOAD)),
            (Opcode.CONTINUATION, True, bytes(SEPARATE_PAYLOAD)),
            (Opcode.TEXT, True, ("é" * SEPARATE_PAYLOAD).encode()),
        ]
        conn.send(b"x" * (SEPARATE_PAYLOAD - 1))
        assert len(conn.data_to_send()) == 1  # smaller ones in one piece with the header

    def test_fragments(self) -> None:
        conn = Connection()
        conn.send("a", fin=False)
        assert conn.sending_fragments
        conn.send("b", fin=False)
        conn.send("c")
        assert not conn.sending_fragments
        assert sent_frames(conn) == [
            (Opcode.TEXT, False, b"a"),
            (Opcode.CONTINUATION, False, b"b"),
            (Opcode.CONTINUATION, True, b"c"),
        ]

    def test_fragment_type_mismatch(self) -> None:
        conn = Connection()
        conn.send("a", fin=False)
        with pytest.raises(InvalidState):
            conn.send(b"b")

    def test_send_after_close(self) -> None:
        conn = Connection()
        conn.send_close()
        with pytest.raises(InvalidState):
            conn.send("x")
        with pytest.raises(InvalidState):
            conn.send_ping()

    def test_control_payload_limit(self) -> None:
        conn = Connection()
        conn.send_ping(b"x" * 125)
        with pytest.raises(ValueError):
            conn.send_ping(b"x" * 126)
        with pytest.raises(ValueError):
            conn.send_pong(b"x" * 126)


messages = st.lists(
    st.one_of(st.text(max_size=300), st.binary(max_size=300)), min_size=1, max_size=8
)


@settings(max_examples=100, deadline=None)
@given(msgs=messages, frag=st.integers(1, 50), chunk=st.integers(1, 64))
def test_messages_survive_fragmentation_and_chunking(
    msgs: list[str | bytes], frag: int, chunk: int
) -> None:
    wire = b""
    for msg in msgs:
        raw = msg.encode() if isinstance(msg, str) else msg
        opcode = Opcode.TEXT if isinstance(msg, str) else Opcode.BINARY
        parts = [raw[i : i + frag] for i in range(0, len(raw), frag)] or [b""]
        for i, part in enumerate(parts):
            wire += cf(opcode if i == 0 else Opcode.CONTINUATION, part, fin=i == len(parts) - 1)
    conn = Connection()
    events: list[object] = []
    for i in range(0, len(wire), chunk):
        events += conn.receive_data(wire[i : i + chunk])
    assert events == msgs


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    conn = Connection(max_size=100)
    events = conn.receive_data(data)
    for event in events:
        assert isinstance(event, (str, bytes, Ping, Pong, CloseReceived, ProtocolFailure))


small_frames = st.lists(
    st.tuples(
        st.sampled_from([Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION, Opcode.PING]),
        st.booleans(),
        st.one_of(st.binary(max_size=40), st.text(max_size=20).map(str.encode)),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(frames=small_frames, max_size=st.integers(0, 50))
def test_one_whole_frame_per_read_gives_the_events_of_any_other_split(
    frames: list[tuple[Opcode, bool, bytes]], max_size: int
) -> None:
    # One whole small frame per read takes the fast path; byte by byte and all
    # at once take the parser's. Valid or not, the events must be the same.
    def described(events: list[object]) -> list[object]:
        return [
            e
            if isinstance(e, (str, bytes))
            else (type(e).__name__, *(getattr(e, a) for a in type(e).__slots__))  # type: ignore[attr-defined]
            for e in events
        ]

    wire = [cf(op, payload, fin=fin or op == Opcode.PING) for op, fin, payload in frames]
    per_frame = Connection(max_size=max_size)
    by_byte = Connection(max_size=max_size)
    at_once = Connection(max_size=max_size)
    expected = described(at_once.receive_data(b"".join(wire)))
    events: list[object] = []
    for frame in wire:
        events += per_frame.receive_data(frame)
    assert described(events) == expected
    events = []
    for byte in b"".join(wire):
        events += by_byte.receive_data(bytes([byte]))
    assert described(events) == expected
    assert per_frame.data_to_send() == at_once.data_to_send()


@pytest.mark.parametrize("size", [10, 20_000])  # the short path and the long one
@pytest.mark.parametrize("fin", [True, False])
@pytest.mark.parametrize("view", [True, False])
def test_a_buffer_of_wider_items_is_sent_as_its_bytes(size: int, fin: bool, view: bool) -> None:
    # (An array itself, past the short path: its header said its count of
    # items, the payload was its bytes: the peer's frames broken.)
    import array

    items = array.array("I", range(size))
    conn = Connection()
    conn.send(memoryview(items) if view else items, fin=fin)  # type: ignore[arg-type]
    parser = FrameParser(masked=False)
    parser.feed(b"".join(conn.data_to_send()))
    payload = b""
    while (piece := parser.next_piece()) is not None:
        payload += piece.payload
        assert piece.length == len(items.tobytes())
    assert payload == items.tobytes()


@pytest.mark.parametrize("size", [10, 20_000])
@pytest.mark.parametrize("fin", [True, False])
def test_a_view_of_rows_is_sent_as_its_bytes(size: int, fin: bool) -> None:
    # (A review's.) A 2-D view of bytes: its len() counts rows.
    data = bytes(i % 256 for i in range(2 * size))
    conn = Connection()
    conn.send(memoryview(data).cast("B", (2, len(data) // 2)), fin=fin)
    parser = FrameParser(masked=False)
    parser.feed(b"".join(conn.data_to_send()))
    piece = parser.next_piece()
    assert piece is not None and (piece.length, piece.payload) == (len(data), data)
