"""7-bit groups: how ``bytes`` and ``str`` payloads are written in keys.

Part of the pure-Python reference twin (:mod:`acid._keylib_py`), kept apart
because it is the one piece that needs big-integer tricks to be fast;
``docs/format.md`` ("Strings and bytes") is the specification.
"""

from __future__ import annotations

from acid.errors import KeyEncodingError

# 7-bit groups. Bytes are cut into 7-byte chunks (56 bits); each chunk moves
# to its own 64-bit word, where three steps spread it into eight 7-bit groups,
# one per byte (28 -> 32, 14 -> 16, 7 -> 8 bits). Every step moves the bits
# under a mask up by ``shift`` bits: ``x += (x & mask) * ((1 << shift) - 1)``.
# Decoding runs the steps backwards. A plan holds the steps for a number of
# chunks, with the masks repeated over every word.
_WORD_MASKS = (
    (0x00FFFFFFF0000000, 4),
    (0x0FFFC0000FFFC000, 2),
    (0x3F803F803F803F80, 1),
)
_CHUNK = (1 << 56) - 1
_PLANNED = 64  # plans for up to this many chunks are kept; longer ones differ


class _Plan:
    __slots__ = ("encode", "decode", "high")

    def __init__(self, chunks: int) -> None:
        steps = []
        # Chunk k (0 = least significant) starts at bit 56k and must end at
        # 64k; moving by 8 * 2**j the chunks whose index has bit j set, for
        # j from high to low, gets there without any chunk overlapping another.
        for j in reversed(range(max(chunks - 1, 0).bit_length())):
            mask = 0
            for k in range(chunks):
                if k >> j & 1:
                    mask |= _CHUNK << (56 * k + 8 * (k >> (j + 1) << (j + 1)))
            steps.append((mask, 8 << j))
        for mask, shift in _WORD_MASKS:
            steps.append((int.from_bytes(mask.to_bytes(8) * chunks), shift))
        self.encode = tuple((m, (1 << sh) - 1) for m, sh in steps)
        self.decode = tuple((m << sh, sh, (1 << sh) - 1) for m, sh in reversed(steps))
        self.high = int.from_bytes(b"\x80" * (8 * chunks))


_PLANS = [_Plan(c) for c in range(_PLANNED + 1)]
# One chunk (up to 7 bytes, 8 groups), by group count g: the top bits of g
# group bytes, the shift that left-aligns them, the padding mask and width,
# and the byte count.
ONE_CHUNK = [
    (
        int.from_bytes(b"\x80" * g),
        64 - 8 * g,
        (1 << (56 - 8 * (7 * g >> 3))) - 1,
        56 - 8 * (7 * g >> 3),
        7 * g >> 3,
    )
    for g in range(9)
]


def groups(b: bytes) -> bytes:
    """Return ``b`` as 7-bit groups, each in a byte with its top bit set."""
    n = len(b)
    if not n:
        return b""
    chunks = (n + 6) // 7
    g = (8 * n + 6) // 7
    if chunks > _PLANNED:
        return _groups_long(b, chunks)[:g]
    if chunks == 1:  # the common short case, unrolled
        x = int.from_bytes(b) << (56 - 8 * n)
        x += (x & 0x00FFFFFFF0000000) * 15
        x += (x & 0x0FFFC0000FFFC000) * 3
        x += x & 0x3F803F803F803F80
        return ((x | 0x8080808080808080) >> (64 - 8 * g)).to_bytes(g)
    plan = _PLANS[chunks]
    x = int.from_bytes(b) << (8 * (7 * chunks - n))
    for mask, mul in plan.encode:
        x += (x & mask) * mul
    return ((x | plan.high) >> (8 * (8 * chunks - g))).to_bytes(g)


def _groups_long(b: bytes, chunks: int) -> bytes:
    # Too many chunks for a cached plan: place the chunks in their words with
    # strided slices, then run the word steps over all words at once.
    padded = b + bytes(7 * chunks - len(b))
    wide = bytearray(8 * chunks)
    for j in range(7):  # chunk k's 7 bytes go to bytes 8k+1..8k+7
        wide[j + 1 :: 8] = padded[j::7]
    x = int.from_bytes(wide)
    for mask, mul in _PLANS[1].encode:
        x += (x & int.from_bytes(mask.to_bytes(8) * chunks)) * mul
    return (x | int.from_bytes(b"\x80" * (8 * chunks))).to_bytes(8 * chunks)


# -------------------------------------------------------------- unpacking


def ungroup(s: bytes, pos: int, end: int) -> bytes:
    """Decode the 7-bit groups ``s[pos:end]`` back into bytes."""
    g = end - pos
    if g <= 8:
        if g <= 1:
            if g:
                raise KeyEncodingError("impossible 7-bit group count")
            return b""
        # The common short case, unrolled.
        high, shift, pad_mask, pad, n = ONE_CHUNK[g]
        x = int.from_bytes(s[pos:end])
        if x & high != high:
            raise KeyEncodingError("bad 7-bit group")
        x = (x ^ high) << shift
        x -= (x & 0x7F007F007F007F00) >> 1
        x -= ((x & 0x3FFF00003FFF0000) >> 2) * 3
        x -= ((x & 0x0FFFFFFF00000000) >> 4) * 15
        if x & pad_mask:
            raise KeyEncodingError("non-zero padding bits in 7-bit groups")
        return (x >> pad).to_bytes(n)
    if g & 7 == 1:
        raise KeyEncodingError("impossible 7-bit group count")
    n = (7 * g) >> 3
    chunks = (g + 7) >> 3
    if chunks > _PLANNED:
        return _ungroup_long(s[pos:end], chunks, n)
    plan = _PLANS[chunks]
    high = plan.high >> (8 * (8 * chunks - g))
    x = int.from_bytes(s[pos:end])
    if x & high != high:
        raise KeyEncodingError("bad 7-bit group")
    x = (x ^ high) << (8 * (8 * chunks - g))
    for mask, shift, mul in plan.decode:
        x -= ((x & mask) >> shift) * mul
    pad = 8 * (7 * chunks - n)
    if x & ((1 << pad) - 1):
        raise KeyEncodingError("non-zero padding bits in 7-bit groups")
    return (x >> pad).to_bytes(n)


def _ungroup_long(seg: bytes, chunks: int, n: int) -> bytes:
    x = int.from_bytes(seg + b"\x80" * (8 * chunks - len(seg)))
    high = int.from_bytes(b"\x80" * (8 * chunks))
    if x & high != high:
        raise KeyEncodingError("bad 7-bit group")
    x ^= high
    for mask, shift, mul in _PLANS[1].decode:
        x -= ((x & int.from_bytes(mask.to_bytes(8) * chunks)) >> shift) * mul
    wide = x.to_bytes(8 * chunks)
    out = bytearray(7 * chunks)
    for j in range(7):
        out[j::7] = wide[j + 1 :: 8]
    if out.count(0, n) != 7 * chunks - n:
        raise KeyEncodingError("non-zero padding bits in 7-bit groups")
    del out[n:]
    return bytes(out)
