"""A small, slow inflater (RFC 1951) that reports how far back the stream's matches reach.

zlib's own decompressor does not check a stream against an agreed window: it
refuses a match only when it reaches before what it holds, its window and the
output of the current call, so a match within one long message may reach
further back than the window and still decode.
:func:`inflate_messages` decodes a permessage-deflate stream message by
message (each with its ``00 00 ff ff`` tail put back) and returns the messages
with the longest distance any match used.
"""

from __future__ import annotations

__all__ = ["inflate_messages"]

#: Lengths 257-285: (base, extra bits).
_LENGTHS = [
    (3, 0), (4, 0), (5, 0), (6, 0), (7, 0), (8, 0), (9, 0), (10, 0), (11, 1), (13, 1),
    (15, 1), (17, 1), (19, 2), (23, 2), (27, 2), (31, 2), (35, 3), (43, 3), (51, 3),
    (59, 3), (67, 4), (83, 4), (99, 4), (115, 4), (131, 5), (163, 5), (195, 5), (227, 5),
    (258, 0),
]  # fmt: skip
#: Distance codes 0-29: (base, extra bits).
_DISTANCES = [
    (1, 0), (2, 0), (3, 0), (4, 0), (5, 1), (7, 1), (9, 2), (13, 2), (17, 3), (25, 3),
    (33, 4), (49, 4), (65, 5), (97, 5), (129, 6), (193, 6), (257, 7), (385, 7), (513, 8),
    (769, 8), (1025, 9), (1537, 9), (2049, 10), (3073, 10), (4097, 11), (6145, 11),
    (8193, 12), (12289, 12), (16385, 13), (24577, 13),
]  # fmt: skip
#: The order of the code length code lengths in a dynamic block's header.
_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0  # in bits

    def read(self, n: int) -> int:
        value = 0
        for i in range(n):
            byte = self.data[self.pos >> 3]  # IndexError: the stream ended early
            value |= ((byte >> (self.pos & 7)) & 1) << i
            self.pos += 1
        return value

    def align(self) -> None:
        self.pos = (self.pos + 7) & ~7

    @property
    def done(self) -> bool:
        return self.pos >= 8 * len(self.data)


def _code(lengths: list[int]) -> dict[tuple[int, int], int]:
    """Canonical Huffman codes: {(length, code read MSB first): symbol}."""
    counts = [0] * 16
    for n in lengths:
        counts[n] += 1
    counts[0] = 0
    code, next_code = 0, [0] * 16
    for bits in range(1, 16):
        code = (code + counts[bits - 1]) << 1
        next_code[bits] = code
    table = {}
    for symbol, n in enumerate(lengths):
        if n:
            table[(n, next_code[n])] = symbol
            next_code[n] += 1
    return table


def _decode(bits: _Bits, table: dict[tuple[int, int], int]) -> int:
    code = 0
    for length in range(1, 16):
        code = (code << 1) | bits.read(1)
        symbol = table.get((length, code))
        if symbol is not None:
            return symbol
    raise ValueError("invalid Huffman code")


_FIXED = (
    _code([8] * 144 + [9] * 112 + [7] * 24 + [8] * 8),
    _code([5] * 30),
)


def _dynamic(bits: _Bits) -> tuple[dict[tuple[int, int], int], dict[tuple[int, int], int]]:
    hlit, hdist, hclen = bits.read(5) + 257, bits.read(5) + 1, bits.read(4) + 4
    code_lengths = [0] * 19
    for i in range(hclen):
        code_lengths[_ORDER[i]] = bits.read(3)
    table = _code(code_lengths)
    lengths: list[int] = []
    while len(lengths) < hlit + hdist:
        symbol = _decode(bits, table)
        if symbol < 16:
            lengths.append(symbol)
        elif symbol == 16:
            lengths += [lengths[-1]] * (3 + bits.read(2))
        elif symbol == 17:
            lengths += [0] * (3 + bits.read(3))
        else:
            lengths += [0] * (11 + bits.read(7))
    return _code(lengths[:hlit]), _code(lengths[hlit:])


def _inflate(data: bytes, out: bytearray) -> int:
    """Decode ``data`` (whole blocks) onto ``out``; the longest distance used."""
    bits = _Bits(data)
    longest = 0
    while not bits.done:
        final, kind = bits.read(1), bits.read(2)
        if kind == 0:
            bits.align()
            start = bits.pos >> 3
            size = int.from_bytes(data[start : start + 2], "little")
            out += data[start + 4 : start + 4 + size]
            bits.pos = (start + 4 + size) * 8
        elif kind in (1, 2):
            literals, distances = _FIXED if kind == 1 else _dynamic(bits)
            while (symbol := _decode(bits, literals)) != 256:
                if symbol < 256:
                    out.append(symbol)
                    continue
                base, extra = _LENGTHS[symbol - 257]
                length = base + bits.read(extra)
                base, extra = _DISTANCES[_decode(bits, distances)]
                distance = base + bits.read(extra)
                if distance > len(out):
                    raise ValueError("a match reaches before the stream's start")
                longest = max(longest, distance)
                for _ in range(length):
                    out.append(out[-distance])
        else:
            raise ValueError("invalid block type")
        if final:
            break
    return longest


def inflate_messages(frames: list[bytes]) -> tuple[list[bytes], int]:
    """The messages of one context-takeover stream, and the longest match distance in it."""
    out = bytearray()
    messages, longest = [], 0
    for frame in frames:
        start = len(out)
        longest = max(longest, _inflate(frame + b"\x00\x00\xff\xff", out))
        messages.append(bytes(out[start:]))
    return messages, longest
