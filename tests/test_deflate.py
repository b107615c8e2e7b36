"""permessage-deflate: negotiation, compression both ways, limits."""

from __future__ import annotations

import itertools
import os
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsserver.errors import ConfigError, ProtocolError
from wsserver.protocol import deflate
from wsserver.protocol.connection import Connection, ProtocolFailure
from wsserver.protocol.deflate import (
    DeflateSettings,
    PerMessageDeflate,
    max_deflated_size,
    negotiate,
    parse_extensions,
)
from wsserver.protocol.frames import FrameParser, Opcode, serialize_frame

from .helpers import wait_for
from .inflate import inflate_messages

MASK = b"\x0a\x0b\x0c\x0d"
DEFAULT = DeflateSettings()


def agreed(header: str, settings: DeflateSettings = DEFAULT) -> tuple[PerMessageDeflate, str]:
    result = negotiate([header], settings)
    assert result is not None, header
    return result


class TestParse:
    def test_several_extensions_and_params(self) -> None:
        assert parse_extensions(
            [
                "foo; a=1; b, permessage-deflate ;client_max_window_bits "
                '; server_max_window_bits="10"'
            ]
        ) == [
            ("foo", [("a", "1"), ("b", None)]),
            (
                "permessage-deflate",
                [("client_max_window_bits", None), ("server_max_window_bits", "10")],
            ),
        ]

    def test_several_header_lines(self) -> None:
        assert [n for n, _ in parse_extensions(["a", "b, c"])] == ["a", "b", "c"]

    @pytest.mark.parametrize(
        "bad",
        [
            "permessage-deflate; ",
            "permessage-deflate; =1",
            "a b",
            'x; y="unterminated',
            'x; y="a b"',
            ";",
        ],
    )
    def test_malformed(self, bad: str) -> None:
        with pytest.raises(ValueError):
            parse_extensions([bad])

    def test_malformed_header_declines(self) -> None:
        assert negotiate(["permessage-deflate; ="], DEFAULT) is None


class TestNegotiate:
    def test_plain_offer(self) -> None:
        pmd, header = agreed("permessage-deflate")
        assert header == "permessage-deflate"
        assert not pmd.server_no_context_takeover and not pmd.client_no_context_takeover
        assert pmd.server_window_bits == DEFAULT.server_max_window_bits
        assert pmd.client_window_bits == 15

    def test_chromium_offer(self) -> None:
        pmd, header = agreed("permessage-deflate; client_max_window_bits")
        assert header == "permessage-deflate; client_max_window_bits=12"
        assert pmd.client_window_bits == 12

    def test_client_window_value_is_an_upper_bound(self) -> None:
        assert agreed("permessage-deflate; client_max_window_bits=9")[0].client_window_bits == 9
        pmd, header = agreed("permessage-deflate; client_max_window_bits=15")
        assert pmd.client_window_bits == 12
        assert header.endswith("client_max_window_bits=12")

    def test_a_client_offering_8_bits_is_answered_8(self) -> None:
        # RFC 7692 7.1.2.2: the answer may not exceed the offer; our 9-bit
        # decompressor inflates 8-bit streams. (Only the setting stops at 9.)
        pmd, header = agreed("permessage-deflate; client_max_window_bits=8")
        assert pmd.client_window_bits == 8
        assert header.endswith("client_max_window_bits=8")

    def test_server_window(self) -> None:
        pmd, header = agreed("permessage-deflate; server_max_window_bits=10")
        assert pmd.server_window_bits == 10
        assert header == "permessage-deflate; server_max_window_bits=10"
        pmd, header = agreed("permessage-deflate; server_max_window_bits=15")
        assert pmd.server_window_bits == 12  # never more than offered, ours is smaller
        assert header == "permessage-deflate; server_max_window_bits=12"
        assert agreed("permessage-deflate; server_max_window_bits=8")[0].server_window_bits == 8

    def test_no_context_takeover_both_ways(self) -> None:
        pmd, header = agreed(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        )
        assert pmd.server_no_context_takeover and pmd.client_no_context_takeover
        assert header == (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        )

    def test_server_may_require_no_context_takeover(self) -> None:
        settings = DeflateSettings(server_no_context_takeover=True)
        pmd, header = agreed("permessage-deflate", settings)
        assert pmd.server_no_context_takeover
        assert header == "permessage-deflate; server_no_context_takeover"

    def test_server_may_ask_clients_for_no_context_takeover(self) -> None:
        # RFC 7692 7.1.1.2: the response may have client_no_context_takeover
        # though the offer had not.
        settings = DeflateSettings(client_no_context_takeover=True)
        for offer in ("permessage-deflate", "permessage-deflate; client_no_context_takeover"):
            pmd, header = agreed(offer, settings)
            assert pmd.client_no_context_takeover and not pmd.server_no_context_takeover
            assert header == "permessage-deflate; client_no_context_takeover"

    @pytest.mark.parametrize(
        "offer",
        [
            "permessage-deflate; unknown",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=yes",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; client_max_window_bits; client_max_window_bits",
            "x-webkit-deflate-frame",
        ],
    )
    def test_invalid_offers_are_declined(self, offer: str) -> None:
        assert negotiate([offer], DEFAULT) is None

    def test_next_offer_is_considered(self) -> None:
        pmd, header = agreed(
            "permessage-deflate; bogus, permessage-deflate; server_max_window_bits=9"
        )
        assert pmd.server_window_bits == 9
        assert header == "permessage-deflate; server_max_window_bits=9"

    def test_quoted_value(self) -> None:
        assert agreed('permessage-deflate; server_max_window_bits="11"')[0].server_window_bits == 11

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"server_max_window_bits": 8},
            {"server_max_window_bits": 16},
            {"client_max_window_bits": 7},
            {"client_max_window_bits": 8},
            {"mem_level": 0},
            {"level": 10},
            {"min_size": -1},
        ],
    )
    def test_settings_validation(self, kwargs: dict[str, int]) -> None:
        with pytest.raises(ConfigError):
            DeflateSettings(**kwargs)


def client_compress(
    messages: list[bytes], bits: int = 15, no_context_takeover: bool = False
) -> list[bytes]:
    """Compress like a client would: one raw deflate stream, tail stripped per message."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -bits)
    out = []
    for msg in messages:
        if no_context_takeover:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -bits)
        data = compressor.compress(msg) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        out.append(data[:-4])
    return out


def client_decompress(frames: list[bytes], bits: int, no_context_takeover: bool) -> list[bytes]:
    decompressor = zlib.decompressobj(-bits)
    out = []
    for data in frames:
        if no_context_takeover:
            decompressor = zlib.decompressobj(-bits)
        out.append(decompressor.decompress(data + b"\x00\x00\xff\xff"))
    return out


def server_sent(conn: Connection) -> list[tuple[int, bool, bool, bytes]]:
    parser = FrameParser(masked=False, allow_rsv1=True)
    parser.feed(b"".join(conn.data_to_send()))
    frames = []
    while (piece := parser.next_piece()) is not None:
        frames.append((piece[0], piece[1], piece[2], piece[3]))
    return frames


PARAMS = list(itertools.product([False, True], [False, True], [8, 9, 12, 15], [9, 12, 15]))


class TestRoundTrips:
    @pytest.mark.parametrize(("server_nct", "client_nct", "server_bits", "client_bits"), PARAMS)
    def test_both_directions(
        self, server_nct: bool, client_nct: bool, server_bits: int, client_bits: int
    ) -> None:
        pmd = PerMessageDeflate(
            server_no_context_takeover=server_nct,
            client_no_context_takeover=client_nct,
            server_window_bits=server_bits,
            client_window_bits=client_bits,
            settings=DeflateSettings(min_size=0),
        )
        conn = Connection(deflate=pmd)
        messages = [b"hello " * 100, os.urandom(3000), b"hello " * 100 + b"!", b""]
        # Client -> server.
        wire = b"".join(
            serialize_frame(Opcode.BINARY, data, rsv1=True, mask=MASK)
            for data in client_compress(messages, client_bits, client_nct)
        )
        assert conn.receive_data(wire) == messages
        # Server -> client, checked with a decompressor of exactly the agreed window.
        for msg in messages:
            conn.send(msg)
        frames = server_sent(conn)
        assert all(rsv1 for _, _, rsv1, _ in frames)
        assert client_decompress([f[3] for f in frames], server_bits, server_nct) == messages

    @pytest.mark.parametrize("bits", [8, 9, 10])
    def test_stream_never_reaches_back_beyond_the_agreed_window(self, bits: int) -> None:
        pmd = PerMessageDeflate(server_window_bits=bits, settings=DeflateSettings(min_size=0))
        conn = Connection(deflate=pmd)
        # Each message repeats the previous one: a compressor with a larger window
        # than agreed refers back across the boundary, and a decompressor with
        # exactly the agreed window rejects that ("invalid distance too far back").
        messages = [os.urandom(n) for n in (200, 250, 300, 600, 1500)]
        messages = [m for m in messages for _ in range(2)]
        for msg in messages:
            conn.send(msg)
        frames = [f[3] for f in server_sent(conn)]
        assert client_decompress(frames, bits, False) == messages

    def test_fragmented_compressed_message_in(self) -> None:
        pmd = PerMessageDeflate(settings=DeflateSettings(min_size=0))
        conn = Connection(deflate=pmd)
        (data,) = client_compress([b"fragmented message " * 50])
        third = len(data) // 3
        wire = (
            serialize_frame(Opcode.TEXT, data[:third], fin=False, rsv1=True, mask=MASK)
            + serialize_frame(Opcode.PING, b"", mask=MASK)
            + serialize_frame(Opcode.CONTINUATION, data[third : 2 * third], fin=False, mask=MASK)
            + serialize_frame(Opcode.CONTINUATION, data[2 * third :], mask=MASK)
        )
        events = conn.receive_data(wire)
        assert events[-1] == "fragmented message " * 50

    def test_fragmented_compressed_message_out(self) -> None:
        pmd = PerMessageDeflate(settings=DeflateSettings(min_size=0))
        conn = Connection(deflate=pmd)
        conn.send("part one, ", fin=False)
        conn.send("part two, ", fin=False)
        conn.send("end")
        frames = server_sent(conn)
        assert [(op, fin, rsv1) for op, fin, rsv1, _ in frames] == [
            (Opcode.TEXT, False, True),
            (Opcode.CONTINUATION, False, False),
            (Opcode.CONTINUATION, True, False),
        ]
        decompressor = zlib.decompressobj(-15)
        data = b"".join(f[3] for f in frames) + b"\x00\x00\xff\xff"
        assert decompressor.decompress(data) == b"part one, part two, end"

    def test_rsv1_on_continuation_is_an_error(self) -> None:
        conn = Connection(deflate=PerMessageDeflate())
        (data,) = client_compress([b"abc"])
        wire = serialize_frame(Opcode.TEXT, data, fin=False, rsv1=True, mask=MASK)
        wire += serialize_frame(Opcode.CONTINUATION, b"", rsv1=True, mask=MASK)
        (failure,) = conn.receive_data(wire)
        assert isinstance(failure, ProtocolFailure) and failure.code == 1002

    def test_small_messages_go_uncompressed(self) -> None:
        conn = Connection(deflate=PerMessageDeflate(settings=DeflateSettings(min_size=32)))
        conn.send(b"x" * 31)
        conn.send(b"x" * 32)
        conn.send(b"x" * 100, compress=False)
        rsv1s = [rsv1 for _, _, rsv1, _ in server_sent(conn)]
        assert rsv1s == [False, True, False]

    def test_uncompressed_message_from_client_accepted(self) -> None:
        conn = Connection(deflate=PerMessageDeflate())
        assert conn.receive_data(serialize_frame(Opcode.TEXT, b"plain", mask=MASK)) == ["plain"]

    def test_no_context_takeover_frees_zlib_state(self) -> None:
        pmd = PerMessageDeflate(
            server_no_context_takeover=True,
            client_no_context_takeover=True,
            settings=DeflateSettings(min_size=0),
        )
        conn = Connection(deflate=pmd)
        conn.send(b"abc" * 100)
        (data,) = client_compress([b"abc" * 100])
        conn.receive_data(serialize_frame(Opcode.BINARY, data, rsv1=True, mask=MASK))
        assert pmd._compressor is None and pmd._decompressor is None


class TestFinalBlocks:
    """Messages whose deflate stream ends (a block with BFINAL set, RFC 7692 7.2.3.3).

    After one, every later message inflated to nothing (zlib keeps what
    follows the end of a stream aside): silent data loss.
    """

    @staticmethod
    def ended(data: bytes, zdict: bytes = b"", bits: int = 15) -> bytes:
        compressor = zlib.compressobj(
            9, zlib.DEFLATED, -bits, **({"zdict": zdict} if zdict else {})
        )
        return compressor.compress(data) + compressor.flush(zlib.Z_FINISH)

    def receive(self, conn: Connection, payload: bytes) -> list[object]:
        return conn.receive_data(serialize_frame(Opcode.BINARY, payload, rsv1=True, mask=MASK))

    @pytest.mark.parametrize("library", deflate.LIBRARIES)
    def test_messages_each_ending_their_stream_are_all_inflated(self, library: str) -> None:
        conn = Connection(deflate=PerMessageDeflate(settings=DeflateSettings(library=library)))
        for message in (b"first message", b"second message", b"third message"):
            assert self.receive(conn, self.ended(message)) == [message]
        # Then one that does not end its stream, as usual.
        (usual,) = client_compress([b"fourth message"])
        assert self.receive(conn, usual) == [b"fourth message"]

    def test_a_message_referring_back_to_the_one_that_ended_its_stream(self) -> None:
        # Context takeover: the next message may refer to what the last one held.
        conn = Connection(deflate=PerMessageDeflate())
        first = b"the quick brown fox jumps over the lazy dog. " * 3
        assert self.receive(conn, self.ended(first)) == [first]
        second = b"the lazy dog jumps over the quick brown fox"
        assert self.receive(conn, self.ended(second, zdict=first)) == [second]

    @pytest.mark.parametrize("library", deflate.LIBRARIES)
    @pytest.mark.parametrize("split", [False, True])
    def test_a_stream_ended_by_an_empty_final_block_keeps_its_window(
        self, library: str, split: bool
    ) -> None:
        # zlib at level 0, flushed then finished, ends its stream with an empty
        # final stored block, 01 00 00 ff ff; the sender removes 00 00 ff ff
        # (7.2.1), so the stream ends only in the tail the receiver puts back.
        first = b"the quick brown fox jumps over the lazy dog; " * 4
        compressor = zlib.compressobj(0, zlib.DEFLATED, -15)
        payload = compressor.compress(first) + compressor.flush(zlib.Z_SYNC_FLUSH)
        payload += compressor.flush(zlib.Z_FINISH)
        assert payload.endswith(b"\x00\x00\xff\xff\x01\x00\x00\xff\xff")
        payload = payload[:-4]
        conn = Connection(deflate=PerMessageDeflate(settings=DeflateSettings(library=library)))
        if split:  # the final 01 alone in the last frame
            events = conn.receive_data(
                serialize_frame(Opcode.BINARY, payload[:-1], fin=False, rsv1=True, mask=MASK)
                + serialize_frame(Opcode.CONTINUATION, payload[-1:], mask=MASK)
            )
        else:
            events = self.receive(conn, payload)
        assert events == [first]
        # 7.2.2: the next message is inflated with the window of what came before.
        second = b"the lazy dog jumps over the quick brown fox"
        assert self.receive(conn, self.ended(second, zdict=first)) == [second]
        (usual,) = client_compress([b"and a usual one"])
        assert self.receive(conn, usual) == [b"and a usual one"]

    def test_referring_back_beyond_what_is_known_fails_rather_than_inflating_wrong(
        self,
    ) -> None:
        # What a stream that ended left is this message's output only: an
        # earlier message's is not known any more. 1007, never wrong bytes.
        conn = Connection(deflate=PerMessageDeflate())
        older = os.urandom(2000)
        (kept,) = client_compress([older])
        assert self.receive(conn, kept) == [older]
        assert self.receive(conn, self.ended(b"short")) == [b"short"]
        events = self.receive(conn, self.ended(older[:500], zdict=older + b"short"))
        assert len(events) == 1 and isinstance(events[0], ProtocolFailure)
        assert events[0].code == 1007

    @pytest.mark.parametrize("library", deflate.LIBRARIES)
    @pytest.mark.parametrize("bits", [9, 12, 15])
    def test_each_stream_refers_back_to_the_last_window_of_all_messages(
        self, bits: int, library: str
    ) -> None:
        # A client whose every message is a stream of its own (BFINAL), primed
        # with the last window of all it sent: the later messages refer back
        # across the short ones into the earlier (zlib's compressor reaches
        # back at most the window less 262 bytes).
        window = 1 << bits
        chunks = [os.urandom(window // 8) for _ in range(3)]
        messages = [chunks[0], b"ok", chunks[1], b"ok", chunks[2] + chunks[0], b"ok"]
        messages += [chunks[1] + chunks[2], b"ok", b"".join(chunks)]
        conn = Connection(
            deflate=PerMessageDeflate(
                client_window_bits=bits, settings=DeflateSettings(library=library)
            )
        )
        sent = b""
        for n, message in enumerate(messages):
            payload = self.ended(message, sent[-window:], bits)
            assert self.receive(conn, payload) == [message], n
            sent += message

    @pytest.mark.parametrize("library", deflate.LIBRARIES)
    @pytest.mark.parametrize("frames", [1, 3])
    def test_once_a_stream_ended_both_kinds_of_message_refer_back_across_each_other(
        self, frames: int, library: str
    ) -> None:
        # A client that ends its stream in some messages (a new compressor,
        # primed with the last window of all it sent, for the next) and
        # flushes others: each refers back into the ones before, of either kind.
        window = 1 << 12
        chunks = [os.urandom(300) for _ in range(4)]
        conn = Connection(
            deflate=PerMessageDeflate(
                client_window_bits=12, settings=DeflateSettings(library=library)
            )
        )
        sent = b""
        compressor: Any = None
        ends = [True, False, False, True, False, True, True, False, True, False]
        for n, end in enumerate(ends):
            message = chunks[n % 4] + chunks[(n * 3 + 1) % 4] + b"#%d" % n
            if compressor is None:
                zdict = sent[-window:]
                compressor = zlib.compressobj(
                    9, zlib.DEFLATED, -12, **({"zdict": zdict} if zdict else {})
                )
            if end:
                payload = compressor.compress(message) + compressor.flush(zlib.Z_FINISH)
                compressor = None
            else:
                payload = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
                payload = payload[:-4]
            cuts = [len(payload) * i // frames for i in range(frames + 1)]
            parts = [payload[a:b] for a, b in itertools.pairwise(cuts)]
            assert conn.receive_data(compressed_message(parts)) == [message], n
            sent += message

    def test_the_rfc_example_inflates_however_it_is_framed(self) -> None:
        # RFC 7692 7.2.3.3: a final block, then an empty stored block whose
        # 00 00 ff ff the sender removed (one 00 byte left).
        rfc = bytes.fromhex("f348cdc9c9070000")
        for pieces in ([rfc], [rfc, b""], [rfc[:-1], rfc[-1:]]):
            conn = Connection(deflate=PerMessageDeflate())
            events: list[object] = []
            for n, piece in enumerate(pieces):
                last = n == len(pieces) - 1
                opcode = Opcode.TEXT if n == 0 else Opcode.CONTINUATION
                events += conn.receive_data(
                    serialize_frame(opcode, piece, fin=last, rsv1=n == 0, mask=MASK)
                )
            assert events == ["Hello"], pieces

    @pytest.mark.parametrize("reads", [1, 2, 7])
    def test_what_the_next_message_refers_back_to_does_not_depend_on_the_reads(
        self, reads: int
    ) -> None:
        first = os.urandom(1500) + b"the quick brown fox jumps over the lazy dog " * 20
        second = first[:1400]  # refers back further than the last read of the first
        wire = serialize_frame(Opcode.BINARY, self.ended(first), rsv1=True, mask=MASK)
        conn = Connection(deflate=PerMessageDeflate())
        cuts = [len(wire) * n // reads for n in range(reads + 1)]
        events = [e for a, b in itertools.pairwise(cuts) for e in conn.receive_data(wire[a:b])]
        events += self.receive(conn, self.ended(second, zdict=first))
        assert events == [first, second]

    def test_bytes_after_the_end_of_the_stream_fail_with_1007(self) -> None:
        conn = Connection(deflate=PerMessageDeflate())
        (failure,) = self.receive(conn, self.ended(b"ok") + b"\x01garbage")
        assert isinstance(failure, ProtocolFailure) and failure.code == 1007

    def test_what_follows_the_end_of_the_stream_is_checked_with_the_tail(self) -> None:
        # 00 00 starts an empty stored block, but 00 00 + 00 00 ff ff is not one.
        conn = Connection(deflate=PerMessageDeflate())
        (failure,) = self.receive(conn, self.ended(b"ok") + b"\x00\x00")
        assert isinstance(failure, ProtocolFailure) and failure.code == 1007


def compressed_message(parts: list[bytes], opcode: Opcode = Opcode.BINARY) -> bytes:
    """A compressed message in frames, one per part."""
    return b"".join(
        serialize_frame(
            opcode if i == 0 else Opcode.CONTINUATION,
            part,
            fin=i == len(parts) - 1,
            rsv1=i == 0,
            mask=MASK,
        )
        for i, part in enumerate(parts)
    )


class TestEmptyCompressedMessage:
    """RFC 7692 7.2.1: a sender's empty message is at least an empty stored
    block's first byte, 00; an empty payload is no block at all."""

    @pytest.mark.parametrize("parts", [[b""], [b"", b""], [b"", b"", b""]])
    @pytest.mark.parametrize("library", deflate.LIBRARIES)
    def test_a_message_of_no_compressed_bytes_fails_with_1007(
        self, library: str, parts: list[bytes]
    ) -> None:
        conn = Connection(deflate=PerMessageDeflate(settings=DeflateSettings(library=library)))
        first, after = client_compress([b"before " * 20, b"before, and after " * 20])
        assert conn.receive_data(compressed_message([first])) == [b"before " * 20]
        # Not delivered as b"" (00 00 ff ff left zlib inside a stored block
        # header, and the next message was inflated wrong or failed).
        events = conn.receive_data(compressed_message(parts) + compressed_message([after]))
        assert len(events) == 1 and isinstance(events[0], ProtocolFailure), events
        assert events[0].code == 1007

    @pytest.mark.parametrize(
        "parts", [[b"\x00"], [b"", b"\x00"], [b"\x00", b""], [b"", b"\x00", b""]]
    )
    @pytest.mark.parametrize("opcode", [Opcode.TEXT, Opcode.BINARY])
    def test_an_empty_message_however_framed_and_the_next_one(
        self, opcode: Opcode, parts: list[bytes]
    ) -> None:
        conn = Connection(deflate=PerMessageDeflate())
        first, empty, after = client_compress([b"before " * 20, b"", b"before, and after " * 20])
        assert empty == b"\x00"
        wire = compressed_message([first]) + compressed_message(parts, opcode)
        wire += compressed_message([after])
        nothing = "" if opcode is Opcode.TEXT else b""
        assert conn.receive_data(wire) == [b"before " * 20, nothing, b"before, and after " * 20]


class TestTailLeftOn:
    """RFC 7692 7.2.1: a sender removes the 00 00 ff ff that ends its flush, so a
    message's payload ends in an empty stored block's header, never in ff. With
    the tail left on, the 00 00 ff ff we append starts another stored block,
    whose lengths the next message's first bytes became."""

    @pytest.mark.parametrize(
        "split",
        [lambda data: [data], lambda data: [data, b""], lambda data: [data[:-2], data[-2:]]],
    )
    @pytest.mark.parametrize("no_context_takeover", [False, True])
    @pytest.mark.parametrize("library", deflate.LIBRARIES)
    def test_a_message_that_still_ends_with_the_tail_fails_with_1007(
        self, library: str, no_context_takeover: bool, split: Any
    ) -> None:
        pmd = PerMessageDeflate(
            client_no_context_takeover=no_context_takeover,
            settings=DeflateSettings(library=library),
        )
        conn = Connection(deflate=pmd)
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        first = compressor.compress(b"hello " * 10) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert first.endswith(b"\x00\x00\xff\xff")  # (left on)
        # Random bytes go in a stored block: 00, then the lengths, then the bytes.
        after = os.urandom(100)
        if no_context_takeover:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        second = (compressor.compress(after) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        assert second[0] == 0
        # The next message was inflated to its own compressed bytes (and the
        # 00 00 ff ff appended), not to `after`.
        events = conn.receive_data(compressed_message(split(first)) + compressed_message([second]))
        assert len(events) == 1 and isinstance(events[0], ProtocolFailure), events
        assert events[0].code == 1007


class TestPendingMessage:
    @pytest.mark.parametrize("library", deflate.LIBRARIES)
    def test_a_pending_text_message_is_held_once(self, library: str) -> None:
        # What a stream that ends may refer back to is the last window of the
        # output, not the whole piece: a text message is held decoded, and
        # the piece's bytes besides made a stalled message cost twice its size.
        import tracemalloc

        from wsserver.protocol import connection

        text = b"0123456789abcdef" * 60_000  # 960,000 bytes of ASCII
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        start = compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)
        end = compressor.compress(b"!") + compressor.flush(zlib.Z_FINISH)
        conn = Connection(deflate=PerMessageDeflate(settings=DeflateSettings(library=library)))
        # (Only these files: other threads, pytest-xdist's, allocate meanwhile.)
        files = [tracemalloc.Filter(True, m.__file__) for m in (deflate, connection)]
        files.append(tracemalloc.Filter(True, "<frozen codecs>"))  # the decoded text
        tracemalloc.start()
        try:
            events = conn.receive_data(
                serialize_frame(Opcode.TEXT, start, fin=False, rsv1=True, mask=MASK)
            )
            snapshot = tracemalloc.take_snapshot().filter_traces(files)
        finally:
            tracemalloc.stop()
        held = sum(stat.size for stat in snapshot.statistics("filename"))
        assert events == []
        # The text, the window kept (32 KiB) and the decompressor (~40 KiB).
        assert held < len(text) + 128 * 1024, held
        # The stream ends in the last frame: the next message refers back
        # into the last window of the large piece.
        events = conn.receive_data(serialize_frame(Opcode.CONTINUATION, end, mask=MASK))
        assert events == [(text + b"!").decode()]
        after = text[-20_000:-10_000]
        assert conn.receive_data(
            serialize_frame(
                Opcode.BINARY, TestFinalBlocks.ended(after, text + b"!"), rsv1=True, mask=MASK
            )
        ) == [after]


class TestInflateLimit:
    def test_bomb_stops_at_max_size(self) -> None:
        max_size = 100_000
        conn = Connection(max_size=max_size, deflate=PerMessageDeflate())
        (bomb,) = client_compress([b"\x00" * 50_000_000])
        assert len(bomb) < 60_000
        events = conn.receive_data(serialize_frame(Opcode.BINARY, bomb, rsv1=True, mask=MASK))
        (failure,) = events
        assert isinstance(failure, ProtocolFailure)
        assert failure.code == 1009
        assert failure.reason == f"message exceeds max_size {max_size}"

    def test_one_read_of_small_bombs_is_inflated_a_little_at_a_time(self) -> None:
        # Messages of exactly max_size that compress a thousandfold: a few KiB
        # must not become hundreds of max_size messages in one call.
        max_size = 100_000
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        wire = b""
        for _ in range(300):
            data = compressor.compress(b"a" * max_size) + compressor.flush(zlib.Z_SYNC_FLUSH)
            wire += serialize_frame(Opcode.TEXT, data[:-4], rsv1=True, mask=MASK)
        assert len(wire) < 300 * 200
        conn = Connection(max_size=max_size, deflate=PerMessageDeflate())
        events = conn.receive_data(memoryview(bytearray(wire)))  # borrowed, as the server's
        calls = 1
        assert events == ["a" * max_size] and conn.input_waiting  # one message's worth
        while conn.input_waiting:
            more = conn.receive_data(b"")
            assert 1 <= len(more) <= 2 and all(m == "a" * max_size for m in more)
            events += more
            calls += 1
        assert len(events) == 300 and calls >= 150
        assert conn.receive_data(serialize_frame(Opcode.TEXT, b"hi", mask=MASK)) == ["hi"]
        assert not conn.input_waiting

    def test_stopping_between_reads_keeps_a_frame_cut_in_two(self) -> None:
        max_size = 50_000
        (big,) = client_compress([b"b" * max_size])
        (small,) = client_compress([b"tail " * 40])
        first = serialize_frame(Opcode.BINARY, big, rsv1=True, mask=MASK)
        second = serialize_frame(Opcode.TEXT, small, rsv1=True, mask=MASK)
        conn = Connection(max_size=max_size, deflate=PerMessageDeflate())
        read = bytearray(first + second[:5])  # the next frame's header, cut
        events = conn.receive_data(memoryview(read))
        read[:] = b"\xff" * len(read)  # the read buffer is reused by the next read
        assert events == [b"b" * max_size] and conn.input_waiting
        assert conn.receive_data(b"") == [] and not conn.input_waiting
        assert conn.receive_data(second[5:]) == ["tail " * 40]

    def test_inflate_never_returns_more_than_the_limit(self) -> None:
        pmd = PerMessageDeflate()
        pmd.start_inflate()
        (bomb,) = client_compress([b"\x00" * 10_000_000])
        out = pmd.inflate(bomb, True, 1001)
        assert len(out) == 1001

    def test_exactly_max_size_passes(self) -> None:
        conn = Connection(max_size=1000, deflate=PerMessageDeflate())
        (data,) = client_compress([b"y" * 1000])
        events = conn.receive_data(serialize_frame(Opcode.BINARY, data, rsv1=True, mask=MASK))
        assert events == [b"y" * 1000]

    @pytest.mark.parametrize("fragments", [1, 3, 5000])
    def test_incompressible_max_size_passes_though_larger_on_the_wire(self, fragments: int) -> None:
        # Random data grows when deflated: the wire length is above max_size,
        # the message is not. Each flushed fragment adds some 11 bytes more
        # (5000 of 2 bytes each: four times max_size on the wire).
        max_size = 10_000
        payload = os.urandom(max_size)
        conn = Connection(max_size=max_size, deflate=PerMessageDeflate())
        step = -(-max_size // fragments)
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        parts = [
            compressor.compress(payload[i : i + step]) + compressor.flush(zlib.Z_SYNC_FLUSH)
            for i in range(0, max_size, step)
        ]
        parts[-1] = parts[-1][:-4]  # the message's last frame drops the empty block's tail
        assert sum(len(p) for p in parts) > max_size
        wire = b"".join(
            serialize_frame(
                Opcode.BINARY if i == 0 else Opcode.CONTINUATION,
                part,
                fin=i == len(parts) - 1,
                rsv1=i == 0,
                mask=MASK,
            )
            for i, part in enumerate(parts)
        )
        assert conn.receive_data(wire) == [payload]
        conn = Connection(max_size=max_size - 1, deflate=PerMessageDeflate())
        (failure,) = conn.receive_data(wire)
        assert isinstance(failure, ProtocolFailure) and failure.code == 1009

    @pytest.mark.parametrize(
        ("library", "level", "mem_level", "bits", "high_bytes"),
        [
            ("zlib", 1, 1, 15, False),  # stored blocks of 128 bytes: +3.9 %
            ("zlib", 6, 5, 9, False),  # the websockets client's memLevel, a 9-bit window
            ("zlib-ng", 1, 8, 15, False),  # aiohttp on zlib-ng: fixed Huffman codes
            ("zlib-ng", 1, 8, 15, True),  # ... 9 bits for each byte of 144-255: +12.5 %
        ],
    )
    def test_max_size_passes_from_a_compressor_with_other_settings(
        self, library: str, level: int, mem_level: int, bits: int, high_bytes: bool
    ) -> None:
        # max_deflated_size() held for zlib at its default memory level and
        # window only: real clients' streams of max_size bytes were larger
        # and got 1009 before inflating (aiohttp with zlib-ng, the websockets
        # client answered a 9-bit window).
        if library == "zlib-ng":
            pytest.importorskip("zlib_ng")
        compressobj = deflate.LIBRARIES[library].compressobj
        max_size = 2**20
        payload = os.urandom(max_size)
        if high_bytes:
            payload = bytes(byte | 0x90 for byte in payload)
        compressor = compressobj(level, zlib.DEFLATED, -bits, mem_level)
        data = (compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        wire = serialize_frame(Opcode.BINARY, data, rsv1=True, mask=MASK)
        conn = Connection(max_size=max_size, deflate=PerMessageDeflate())
        assert conn.receive_data(wire) == [payload]
        conn = Connection(max_size=max_size - 1, deflate=PerMessageDeflate())
        (failure,) = conn.receive_data(wire)
        assert isinstance(failure, ProtocolFailure) and failure.code == 1009

    def test_compressed_frame_too_long_for_any_message_is_refused_by_its_header(self) -> None:
        max_size = 10_000
        conn = Connection(max_size=max_size, deflate=PerMessageDeflate())
        length = max_deflated_size(max_size) + 1
        header = serialize_frame(Opcode.BINARY, b"\x00" * length, rsv1=True, mask=MASK)[:14]
        (failure,) = conn.receive_data(header)  # nothing of the payload sent yet
        assert isinstance(failure, ProtocolFailure) and failure.code == 1009

    def test_corrupt_stream(self) -> None:
        conn = Connection(deflate=PerMessageDeflate())
        events = conn.receive_data(
            serialize_frame(Opcode.BINARY, b"\xff\xff\xff", rsv1=True, mask=MASK)
        )
        (failure,) = events
        assert isinstance(failure, ProtocolFailure) and failure.code == 1007


@settings(max_examples=60, deadline=None)
@given(
    messages=st.lists(
        st.binary(max_size=2000) | st.binary(max_size=20).map(lambda b: b * 50),
        min_size=1,
        max_size=6,
    ),
    params=st.sampled_from(PARAMS),
)
def test_any_messages_round_trip(
    messages: list[bytes], params: tuple[bool, bool, int, int]
) -> None:
    server_nct, client_nct, server_bits, client_bits = params
    pmd = PerMessageDeflate(
        server_no_context_takeover=server_nct,
        client_no_context_takeover=client_nct,
        server_window_bits=server_bits,
        client_window_bits=client_bits,
        settings=DeflateSettings(min_size=0),
    )
    # Ours -> a decompressor with exactly the agreed window.
    sent = []
    for msg in messages:
        pmd.start_deflate()
        sent.append(pmd.deflate(msg, True))
    assert client_decompress(sent, server_bits, server_nct) == messages
    # A compressor with the agreed client window -> ours.
    received = []
    for data in client_compress(messages, max(client_bits, 9), client_nct):
        pmd.start_inflate()
        received.append(pmd.inflate(data, True, 0))
    assert received == messages


def json_like(records: int) -> bytes:
    """A JSON list of records like an API's (names, timestamps, prices, tags)."""
    rows = [
        f'{{"id": {i}, "name": "user-{i * 7919 % 1000}", '
        f'"ts": "2026-11-30T12:{i % 60:02d}:00Z", "price": {i * 3.17:.2f}, '
        f'"tags": ["t{i % 7}", "t{i % 11}"], "ok": {str(i % 3 == 0).lower()}}}'
        for i in range(records)
    ]
    return ("[" + ", ".join(rows) + "]").encode()


def test_the_faster_deflate_is_used_when_installed() -> None:
    pytest.importorskip("zlib_ng")
    expected = "zlib" if os.environ.get("WSSERVER_NO_SPEEDUPS") else "zlib-ng"
    assert expected == deflate.ZLIB


def test_level_1_compresses_about_as_well_whatever_the_implementation() -> None:
    # zlib-ng's own level 1 makes messages ~30% larger than zlib's: the
    # configured level 1 must not cost that much bandwidth.
    messages = [json_like(150)[i:] for i in range(0, 800, 100)]
    pmd = PerMessageDeflate(server_window_bits=12, settings=DeflateSettings(min_size=0))
    ours = 0
    for message in messages:
        pmd.start_deflate()
        ours += len(pmd.deflate(message, True))
    reference = zlib.compressobj(1, zlib.DEFLATED, -12, 5)
    theirs = sum(
        len(reference.compress(m) + reference.flush(zlib.Z_SYNC_FLUSH)) - 4 for m in messages
    )
    assert ours <= theirs * 1.1, (deflate.ZLIB, ours, theirs)


def test_library_zlib_compresses_exactly_as_zlib_does() -> None:
    message = json_like(100)
    pmd = PerMessageDeflate(server_window_bits=12, settings=DeflateSettings(library="zlib"))
    assert pmd.settings.library_in_use == "zlib"
    pmd.start_deflate()
    ours = pmd.deflate(message, True)
    reference = zlib.compressobj(1, zlib.DEFLATED, -12, 5)
    assert ours == (reference.compress(message) + reference.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_library_zlib_ng_is_another_compressor_with_the_same_stream_format() -> None:
    pytest.importorskip("zlib_ng")
    messages = [json_like(100), os.urandom(500), b""]
    pmd = PerMessageDeflate(server_window_bits=12, settings=DeflateSettings(library="zlib-ng"))
    assert pmd.settings.library_in_use == "zlib-ng"
    sent = []
    for message in messages:
        pmd.start_deflate()
        sent.append(pmd.deflate(message, True))
    reference = zlib.compressobj(1, zlib.DEFLATED, -12, 5)
    assert sent[0] != (reference.compress(messages[0]) + reference.flush(zlib.Z_SYNC_FLUSH))[:-4]
    assert client_decompress(sent, 12, False) == messages  # zlib inflates what zlib-ng made
    # ... and zlib-ng inflates what zlib made, an invalid stream failing as ever.
    for data in client_compress(messages, 12, False):
        pmd.start_inflate()
        assert pmd.inflate(data, True, 0) in messages
    pmd.start_inflate()
    with pytest.raises(ProtocolError) as failed:
        pmd.inflate(b"\xff\xff\xff", True, 0)
    assert failed.value.close_code == 1007


@pytest.mark.parametrize("library", ["zlib", "zlib-ng", "auto"])
async def test_a_real_client_talks_to_either_library(library: str, run_server: Any) -> None:
    if library == "zlib-ng":
        pytest.importorskip("zlib_ng")
    import websockets

    from wsserver import Request, Router, WebSocket

    routes = Router()

    @routes.websocket("/")
    async def echo(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    server = await run_server(
        routes, compression="deflate", compression_library=library, compression_min_size=0
    )
    assert server.deflate_settings.library_in_use == (
        deflate.ZLIB if library == "auto" else library
    )
    # Small and large: under "auto", zlib then zlib-ng compress, in one stream.
    messages = ["hello", json_like(200).decode(), "hi", os.urandom(3000), "é" * 5000, "bye"]
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/", compression="deflate") as ws:
        assert ws.protocol.extensions  # permessage-deflate agreed
        for message in messages:
            await ws.send(message)
            assert await ws.recv() == message


@pytest.mark.parametrize("bits", range(deflate.RANGES["client_max_window_bits"][0], 16))
async def test_every_client_window_the_settings_accept_works_with_a_real_client(
    bits: int, run_server: Any
) -> None:
    # The websockets client offers client_max_window_bits and refuses 8 in
    # the answer (zlib has no 8-bit window): a setting of 8 failed every
    # handshake with it, and saved nothing (our decompressor uses 9 bits).
    import websockets

    from wsserver import Request, Router, WebSocket

    routes = Router()

    @routes.websocket("/")
    async def echo(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    server = await run_server(routes, compression="deflate", compression_client_window_bits=bits)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/", compression="deflate") as ws:
        assert f"client_max_window_bits={bits}" in ws.response.headers["Sec-WebSocket-Extensions"]
        for message in ["hello " * 20, json_like(50).decode()]:
            await ws.send(message)
            assert await ws.recv() == message


@pytest.mark.parametrize("client", ["websockets", "aiohttp"])
async def test_clients_asked_for_no_context_takeover_keep_to_it(
    client: str, run_server: Any
) -> None:
    # With compression_client_no_context_takeover the server asks clients to
    # start each message afresh, and holds no decompressor between messages
    # (a client that went on referring back would get a 1007: repeated
    # messages, which it would otherwise compress as references, show it).
    import aiohttp
    import websockets

    from wsserver import Request, Router, WebSocket

    routes = Router()
    held: list[bool] = []

    @routes.websocket("/")
    async def echo(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            held.append(ws._protocol.conn.deflate.holds_decompressor)  # type: ignore[union-attr]
            await ws.send(message)

    server = await run_server(
        routes, compression="deflate", compression_client_no_context_takeover=True
    )
    messages = [json_like(40).decode()] * 3 + ["é" * 3000] * 2
    url = f"ws://127.0.0.1:{server.port}/"
    if client == "websockets":
        async with websockets.connect(url, compression="deflate") as ws:
            agreed = ws.response.headers["Sec-WebSocket-Extensions"]
            echoed = []
            for message in messages:
                await ws.send(message)
                echoed.append(await ws.recv())
    else:
        async with aiohttp.ClientSession() as session, session.ws_connect(url, compress=15) as ws:
            agreed = ws._response.headers["Sec-WebSocket-Extensions"]
            echoed = []
            for message in messages:
                await ws.send_str(message)
                echoed.append(await ws.receive_str())
    assert "client_no_context_takeover" in agreed
    assert echoed == messages
    assert held == [False] * len(messages)


async def test_node_ws_keeps_to_client_no_context_takeover_unless_created_refusing_it(
    run_server: Any,
) -> None:
    # Node's ws client takes the server's client_no_context_takeover, unasked
    # (RFC 7692 7.1.1.2), with its default options: each message afresh, the
    # server holding no decompressor between them. Created with
    # perMessageDeflate {clientNoContextTakeover: false}, it refuses the 101
    # that asks it (the README says so): the setting costs such clients.
    import asyncio
    import json

    from wsserver import Request, Router, WebSocket

    from .test_compressed_size_limit import node_ws

    directory = node_ws()
    routes = Router()
    held: list[bool] = []

    @routes.websocket("/")
    async def echo(request: Request, ws: WebSocket) -> None:
        async for message in ws:
            held.append(ws._protocol.conn.deflate.holds_decompressor)  # type: ignore[union-attr]
            await ws.send(message)

    server = await run_server(
        routes, compression="deflate", compression_client_no_context_takeover=True
    )
    messages = [json_like(40).decode()] * 3 + ["é" * 3000] * 2

    async def node(options: dict[str, Any]) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            "node",
            "echo_each.mjs",
            f"ws://127.0.0.1:{server.port}/",
            json.dumps({"threshold": 0, **options}),
            *messages,
            cwd=directory,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return result

    kept = await node({})
    assert "client_no_context_takeover" in kept["extensions"], kept
    assert kept["echoed"] == messages and kept["code"] == 1000, kept["error"]
    assert held == [False] * len(messages)
    refused = await node({"clientNoContextTakeover": False})
    assert refused["echoed"] == [] and refused["code"] == 1006
    assert "Sec-WebSocket-Extensions" in refused["error"], refused


def test_asking_for_zlib_ng_without_it_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from wsserver.config import Config

    monkeypatch.delitem(deflate.LIBRARIES, "zlib-ng", raising=False)
    with pytest.raises(ConfigError, match="speedups"):
        Config(compression_library="zlib-ng")
    with pytest.raises(ConfigError, match="speedups"):
        DeflateSettings(library="zlib-ng")


def test_the_library_is_chosen_by_environment_and_flag() -> None:
    from wsserver.__main__ import build_parser
    from wsserver.config import Config

    config = Config.from_sources(env={"WEBSOCKET_COMPRESSION_LIBRARY": "zlib"})
    assert config.deflate_settings().library_in_use == "zlib"
    args = build_parser().parse_args(["app:routes", "--compression-library", "zlib"])
    assert args.compression_library == "zlib"
    with pytest.raises(ConfigError):
        Config.from_sources(env={"WEBSOCKET_COMPRESSION_LIBRARY": "brotli"})


# ------------------------------------------------- releasing an idle compressor

LIBRARY_NAMES = ["zlib", *(["zlib-ng"] if "zlib-ng" in deflate.LIBRARIES else [])]


#: Messages made of a few random chunks: later messages repeat what earlier ones
#: sent, at every distance, so the compressor refers back across messages.
CHUNKS = [os.urandom(n) for n in (40, 300, 1100, 2500)]
REPEATING = st.lists(st.sampled_from(CHUNKS), max_size=4).map(b"".join)


@settings(max_examples=100, deadline=None)
@given(
    steps=st.lists(
        st.tuples(REPEATING | st.binary(max_size=300), st.booleans()), min_size=1, max_size=8
    ),
    bits=st.sampled_from([8, 9, 10, 12, 15]),
    library=st.sampled_from(LIBRARY_NAMES),
)
def test_releasing_the_compressor_between_messages_keeps_one_valid_stream(
    steps: list[tuple[bytes, bool]], bits: int, library: str
) -> None:
    # The client's decompressor (exactly the agreed window, context takeover)
    # sees one stream, whatever messages were sent after a release.
    pmd = PerMessageDeflate(
        server_window_bits=bits,
        settings=DeflateSettings(min_size=0, library=library, releasable=True),
    )
    sent = []
    for message, release in steps:
        pmd.start_deflate()
        sent.append(pmd.deflate(message, True))
        if release:
            assert pmd.release()
            assert not pmd.holds_compressor
    assert client_decompress(sent, bits, False) == [m for m, _ in steps]


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(REPEATING | st.binary(max_size=300), st.booleans()),
        min_size=1,
        max_size=6,
    ),
    bits=st.sampled_from([8, 9, 12]),
    library=st.sampled_from(["auto", *LIBRARY_NAMES]),
)
def test_no_match_reaches_further_back_than_the_agreed_window(
    steps: list[tuple[bytes, bool]], bits: int, library: str
) -> None:
    # Checked match by match, by an inflater that measures distances: for
    # 8 bits (compressed with a 512-byte window, see deflate's docstring),
    # through releases, and through the switch from zlib to zlib-ng.
    pmd = PerMessageDeflate(
        server_window_bits=bits,
        settings=DeflateSettings(min_size=0, library=library, releasable=True),
    )
    frames = []
    for message, release in steps:
        pmd.start_deflate(len(message))
        frames.append(pmd.deflate(message, True))
        if release:
            pmd.release()
    messages, longest = inflate_messages(frames)
    assert messages == [m for m, _ in steps]
    assert longest <= 1 << bits


@pytest.mark.parametrize("library", LIBRARY_NAMES)
@pytest.mark.parametrize("bits", [9, 12, 15])
def test_after_a_release_the_next_message_still_refers_back(library: str, bits: int) -> None:
    # Context takeover survives: what repeats the end of the stream so far
    # compresses to a few bytes, as it does when the compressor is kept; what
    # repeats the beginning, long out of the window, goes out as it is.
    window = 1 << bits
    sent = os.urandom(window * 3)
    pmd = PerMessageDeflate(
        server_window_bits=bits,
        settings=DeflateSettings(min_size=0, library=library, releasable=True),
    )
    pmd.start_deflate()
    frames = [pmd.deflate(sent[:window], True), pmd.deflate(sent[window:], True)]
    assert pmd.release()
    recent, old = sent[-window // 3 :], sent[: window // 3]
    for message in (recent, old):
        pmd.start_deflate()
        frames.append(pmd.deflate(message, True))
        assert pmd.release()
    assert len(frames[2]) < len(recent) // 10 < len(old) < len(frames[3]), [len(f) for f in frames]
    assert client_decompress(frames, bits, False) == [sent[:window], sent[window:], recent, old]


def test_a_fragmented_message_keeps_its_compressor_until_it_ends() -> None:
    pmd = PerMessageDeflate(settings=DeflateSettings(min_size=0, releasable=True))
    pmd.start_deflate()
    parts = [pmd.deflate(b"first part " * 20, False)]
    assert not pmd.release() and pmd.holds_compressor
    parts.append(pmd.deflate(b"last part " * 20, True))
    assert pmd.release() and not pmd.holds_compressor
    decompressor = zlib.decompressobj(-12)
    assert decompressor.decompress(b"".join(parts) + b"\x00\x00\xff\xff") == (
        b"first part " * 20 + b"last part " * 20
    )


@pytest.mark.parametrize("library", LIBRARY_NAMES)
def test_a_released_compressor_leaves_only_its_window_behind(library: str) -> None:
    import tracemalloc

    def held() -> int:
        # Only what deflate.py allocated: other threads (pytest-xdist's) allocate meanwhile.
        snapshot = tracemalloc.take_snapshot()
        mine = snapshot.filter_traces([tracemalloc.Filter(True, deflate.__file__)])
        return sum(stat.size for stat in mine.statistics("filename"))

    pmd = PerMessageDeflate(
        server_window_bits=12,
        settings=DeflateSettings(min_size=0, library=library, releasable=True),
    )
    tracemalloc.start()
    try:
        before = held()
        pmd.start_deflate()
        pmd.deflate(json_like(100), True)
        holding = held() - before
        pmd.release()
        released = held() - before
    finally:
        tracemalloc.stop()
    assert holding > 30_000, holding  # zlib ~38 KiB, zlib-ng ~160 KiB
    assert released <= 4096 + 1024, released  # the 4 KiB window and little else


@pytest.mark.parametrize("library", LIBRARY_NAMES)
def test_a_compressor_released_after_many_messages_leaves_only_its_window(library: str) -> None:
    # What the compressor took is trimmed to one window only once it reaches
    # two (del keeps the bytearray's memory): release() keeps one window.
    import tracemalloc

    pmd = PerMessageDeflate(
        server_window_bits=12,
        settings=DeflateSettings(min_size=0, library=library, releasable=True),
    )
    tracemalloc.start()
    try:
        mine = [tracemalloc.Filter(True, deflate.__file__)]  # not other threads' allocations
        before = tracemalloc.take_snapshot().filter_traces(mine)
        for _ in range(40):  # 200-byte messages: 8,000 bytes, just short of two windows
            pmd.start_deflate(200)
            pmd.deflate(os.urandom(100).hex().encode(), True)
        assert pmd.release()
        after = tracemalloc.take_snapshot().filter_traces(mine)
    finally:
        tracemalloc.stop()
    released = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert released <= 4096 + 512, released  # the 4 KiB window and little else
    assert len(pmd._history or b"") == 4096


async def compressing_echo(run_server: Any, release_after: float) -> tuple[Any, list[Any]]:
    """A server echoing at ``/`` with compression on, and the list its WebSockets go to."""
    from wsserver import Request, Router, WebSocket

    routes = Router()
    sockets: list[WebSocket] = []

    @routes.websocket("/")
    async def echo(request: Request, ws: WebSocket) -> None:
        sockets.append(ws)
        async for message in ws:
            await ws.send(message)

    server = await run_server(
        routes,
        compression="deflate",
        compression_min_size=0,
        compression_release_after=release_after,
    )
    return server, sockets


async def test_an_idle_connection_releases_its_compressor_and_goes_on(run_server: Any) -> None:
    import asyncio

    import websockets

    server, sockets = await compressing_echo(run_server, 0.4)
    message = json_like(40).decode()
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/", compression="deflate") as ws:
        assert ws.protocol.extensions  # permessage-deflate agreed, with context takeover
        deflate_state = sockets[0]._protocol.conn.deflate
        assert deflate_state is not None
        for i in range(3):
            await ws.send(message + str(i))
            assert await ws.recv() == message + str(i)
            assert deflate_state.holds_compressor
            await asyncio.sleep(0.8)
            assert not deflate_state.holds_compressor  # released while idle
        # Busy: kept from one message to the next.
        for _ in range(20):
            await ws.send(message)
            assert await ws.recv() == message
            assert deflate_state.holds_compressor


async def test_broadcasts_keep_the_compressor_and_their_end_lets_it_go(run_server: Any) -> None:
    # broadcast() sends with send_nowait(), not send(): it must restart the
    # idle delay as send() does, or the compressor it builds is never freed.
    import asyncio

    import websockets

    from wsserver import broadcast

    server, sockets = await compressing_echo(run_server, 0.5)  # the client sends nothing
    message = json_like(10).decode()
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/", compression="deflate") as ws:
        await wait_for(lambda: bool(sockets), what="the handler")
        deflate_state = sockets[0]._protocol.conn.deflate
        assert deflate_state is not None and not deflate_state.holds_compressor
        assert broadcast(sockets, message) == []
        assert await ws.recv() == message
        compressor = deflate_state._compressor
        for i in range(15):  # one every 0.1 s: never idle for 0.5 s
            await asyncio.sleep(0.1)
            assert deflate_state._compressor is compressor  # the same one, never released
            assert broadcast(sockets, message + str(i)) == []
            assert await ws.recv() == message + str(i)
        await wait_for(lambda: not deflate_state.holds_compressor, what="the release")
        assert broadcast(sockets, message) == []
        assert await ws.recv() == message


def test_without_releasable_settings_nothing_is_kept_and_nothing_released() -> None:
    from wsserver.config import Config

    assert Config().deflate_settings().releasable
    assert not Config(compression_release_after=None).deflate_settings().releasable
    for pmd in (
        *(
            PerMessageDeflate(settings=DeflateSettings(min_size=0, library=name))
            for name in LIBRARY_NAMES
        ),
        PerMessageDeflate(
            server_no_context_takeover=True,
            settings=DeflateSettings(min_size=0, releasable=True),
        ),
    ):
        pmd.start_deflate()
        pmd.deflate(b"some text " * 50, False)
        pmd.deflate(b"and more", True)
        assert pmd._history is None
        assert not pmd.release()


# ----------------------------------- under "auto", the compressor follows the sizes

BY_SIZE = DeflateSettings().by_size  # zlib-ng installed, and WSSERVER_NO_SPEEDUPS not set
needs_by_size = pytest.mark.skipif(not BY_SIZE, reason="zlib-ng is not in use")


def compressor_library(pmd: PerMessageDeflate) -> str:
    return {"zlib": "zlib", "zlib_ng": "zlib-ng"}[type(pmd._compressor).__module__]


@settings(max_examples=100, deadline=None)
@given(
    steps=st.lists(
        st.tuples(REPEATING | st.binary(max_size=300), st.booleans()), min_size=1, max_size=8
    ),
    bits=st.sampled_from([8, 9, 10, 12, 15]),
    releasable=st.booleans(),
    fragment=st.booleans(),
)
def test_switching_compressors_by_size_keeps_one_valid_stream(
    steps: list[tuple[bytes, bool]], bits: int, releasable: bool, fragment: bool
) -> None:
    # Small and large messages in any order, released or not: the client's
    # decompressor (exactly the agreed window) sees one stream.
    pmd = PerMessageDeflate(
        server_window_bits=bits, settings=DeflateSettings(min_size=0, releasable=releasable)
    )
    sent = []
    for message, release in steps:
        pmd.start_deflate(len(message) // 2 if fragment else len(message))
        if fragment:
            half = len(message) // 2
            sent.append(pmd.deflate(message[:half], False) + pmd.deflate(message[half:], True))
        else:
            sent.append(pmd.deflate(message, True))
        if BY_SIZE and not fragment:
            expected = "zlib-ng" if len(message) >= deflate.LARGE_MESSAGE else "zlib"
            if compressor_library(pmd) != expected:
                assert expected == "zlib"  # no way back but a release
        if release:
            assert pmd.release() is releasable
    assert client_decompress(sent, bits, False) == [m for m, _ in steps]


@needs_by_size
def test_small_messages_use_zlib_until_a_large_one_and_after_a_release() -> None:
    pmd = PerMessageDeflate(
        server_window_bits=12, settings=DeflateSettings(min_size=0, releasable=True)
    )
    small, large = json_like(5), json_like(40)
    assert len(small) < deflate.LARGE_MESSAGE <= len(large)
    seen = []
    for message in (small, small, large, small, large):
        pmd.start_deflate(len(message))
        pmd.deflate(message, True)
        seen.append(compressor_library(pmd))
    assert pmd.release()
    pmd.start_deflate(len(small))
    seen.append(compressor_library(pmd))
    assert seen == ["zlib", "zlib", "zlib-ng", "zlib-ng", "zlib-ng", "zlib"]
    # Without releases, the window is kept only until zlib-ng takes over.
    pmd = PerMessageDeflate(server_window_bits=12, settings=DeflateSettings(min_size=0))
    pmd.start_deflate(len(small))
    pmd.deflate(small, True)
    assert pmd._history == small
    assert not pmd.release() and pmd.holds_compressor  # kept for the switch, not for releases
    pmd.start_deflate(len(large))
    pmd.deflate(large, True)
    assert compressor_library(pmd) == "zlib-ng" and pmd._history is None


@needs_by_size
def test_a_large_message_refers_back_into_the_small_ones_before_it() -> None:
    # zlib-ng's new compressor is primed with what zlib's took: a large message
    # repeating the recent small ones compresses as if one compressor had
    # done it all.
    smalls = [os.urandom(300) for _ in range(10)]
    pmd = PerMessageDeflate(server_window_bits=12, settings=DeflateSettings(min_size=0))
    frames = []
    for message in smalls:
        pmd.start_deflate(len(message))
        frames.append(pmd.deflate(message, True))
    large = b"".join(smalls[-8:])
    pmd.start_deflate(len(large))
    frames.append(pmd.deflate(large, True))
    assert compressor_library(pmd) == "zlib-ng"
    assert len(frames[-1]) < len(large) // 20, len(frames[-1])
    assert client_decompress(frames, 12, False) == [*smalls, large]


@needs_by_size
def test_a_connection_that_sends_small_messages_holds_zlibs_compressor() -> None:
    import tracemalloc

    def held(message: bytes) -> int:
        pmd = PerMessageDeflate(
            server_window_bits=12, settings=DeflateSettings(min_size=0, releasable=True)
        )
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            pmd.start_deflate(len(message))
            pmd.deflate(message, True)
            return tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()

    assert held(json_like(5)) < 48_000  # zlib's ~38 KiB, and the message kept
    assert held(json_like(40)) > 130_000  # zlib-ng's ~160 KiB


def test_the_release_delay_is_a_setting() -> None:
    from wsserver.__main__ import build_parser
    from wsserver.config import Config

    assert Config().compression_release_after == 1.0
    config = Config.from_sources(env={"WEBSOCKET_COMPRESSION_RELEASE_AFTER": "none"})
    assert config.compression_release_after is None
    args = build_parser().parse_args(["app:routes", "--compression-release-after", "2.5"])
    assert args.compression_release_after == 2.5
    with pytest.raises(ConfigError):
        Config(compression_release_after=0)


def test_a_message_in_frames_of_a_byte_holds_about_its_window() -> None:
    # With context takeover, the last window of a message's output is kept
    # as it comes (its stream may end, the next refer back into it): a piece
    # an object, each frame of a byte or two a piece, some 13,800 objects for
    # one window of 32 KiB: 713 KB held for a message of 40 kB in progress.
    import random
    import tracemalloc

    letters = random.Random(0)
    text = bytes(letters.randrange(97, 123) for _ in range(40_000))  # (37,900 bytes deflated)
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15, 9, zlib.Z_FIXED)
    body = compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)
    cut = len(body) - 100  # (the message never ends)
    wire = serialize_frame(Opcode.BINARY, body[:1], fin=False, rsv1=True, mask=MASK) + b"".join(
        serialize_frame(Opcode.CONTINUATION, body[i : i + 1], fin=False, mask=MASK)
        for i in range(1, cut)
    )
    conn = Connection(
        max_size=65536, deflate=PerMessageDeflate(settings=DeflateSettings(library="zlib"))
    )
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert conn.receive_data(wire) == []
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 3 * 65536, held  # the message so far, and the window
