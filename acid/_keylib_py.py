"""The key encoding, in pure Python: the readable reference.

Tuples become bytes whose ``memcmp`` order is the tuples' order, and back.
``docs/format.md`` is the specification; ``acid/_keylib.c`` is a faster twin
that must produce the same bytes and raise the same exception types. Use the
facade :mod:`acid.keylib`, which picks one of the two.

>>> pack((1, "a"))
b'\\x1b\\x01@\\xb0\\xc0\\x00'
>>> unpack(pack((1, "a", None, (2.5,))))
(1, 'a', None, (2.5,))
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from acid._keylib_exact import exact_json, exact_msgpack, exact_pickle
from acid._keylib_groups import ONE_CHUNK, groups, ungroup
from acid.errors import KeyEncodingError

__all__ = [
    "Desc",
    "exact_json",
    "exact_msgpack",
    "exact_pickle",
    "pack",
    "packs",
    "prefix_bound",
    "unpack",
    "unpacks",
]

# Type bytes (docs/format.md, "Elements").
END = 0x00
SEP = 0x01
NONE = 0x02
FALSE = 0x03
TRUE = 0x04
NEG_INF = 0x10
NEG_BIG = 0x11
INT_ZERO = 0x1A
POS_BIG = 0x23
POS_INF = 0x24
BYTES = 0x30
STR = 0x40
UUID_ = 0x50
NAIVE = 0x60
AWARE = 0x61
TUPLE = 0x70
DESC = 0x7F
FRAC = 0xFE

#: Tuples and ``Desc`` wrappers nested deeper than this are rejected, on both
#: sides, so that hostile bytes cannot exhaust the stack.
MAX_DEPTH = 64
#: Integer magnitudes are at most this many bytes long (|n| < 2**2040).
MAX_INT_BYTES = 255

_ONES = [(1 << (8 * n)) - 1 for n in range(9)]
_DOUBLE = struct.Struct(">d")
_ONE_BITS = 0x3FF0000000000000  # bits(1.0): every fraction's bits are below it
_NOT = bytes(255 - i for i in range(256))
_UNIX_ORDINAL = 719163  # date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1)
_MIN_US = (datetime.min - _EPOCH) // timedelta(microseconds=1)
_MAX_US = (datetime.max - _EPOCH) // timedelta(microseconds=1)
_DAY_US = 86400 * 1000000
_BIAS = 1 << 63


class Desc:
    """One value sorted in descending order.

    Inside a key, ``Desc(x)`` sorts after every plain value and ``Desc(x) <
    Desc(y)`` exactly when ``y < x``. It unpacks as a ``Desc`` again.

    >>> Desc(1) < Desc(0), Desc("a") == Desc("a"), Desc(2)
    (True, True, Desc(2))
    """

    __slots__ = ("_value",)

    _value: Any

    def __init__(self, value: Any) -> None:
        object.__setattr__(self, "_value", value)

    @property
    def value(self) -> Any:
        """The wrapped value."""
        return self._value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Desc is immutable")

    def __repr__(self) -> str:
        return f"Desc({self._value!r})"

    def __hash__(self) -> int:
        return hash((Desc, self._value))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Desc):
            return bool(self._value == other._value)
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if isinstance(other, Desc):
            return bool(self._value != other._value)
        return NotImplemented

    def __lt__(self, other: object) -> bool:
        if isinstance(other, Desc):
            return bool(other._value < self._value)
        return NotImplemented

    def __le__(self, other: object) -> bool:
        if isinstance(other, Desc):
            return bool(other._value <= self._value)
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if isinstance(other, Desc):
            return bool(other._value > self._value)
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        if isinstance(other, Desc):
            return bool(other._value >= self._value)
        return NotImplemented

    def __reduce__(self) -> tuple[type[Desc], tuple[Any]]:
        return (Desc, (self._value,))


# ---------------------------------------------------------------- packing


def pack(tup: tuple, prefix: bytes = b"") -> bytes:
    """Return ``prefix`` followed by the encoding of every element of ``tup``.

    >>> pack(()), pack((None, True)), pack((0,), prefix=b"p")
    (b'', b'\\x02\\x04', b'p\\x1a')
    """
    if not isinstance(tup, tuple):
        raise TypeError(f"pack() needs a tuple, not {type(tup).__name__!r}")
    out = bytearray(prefix if type(prefix) is bytes else _as_bytes(prefix))
    _pack_items(out, tup, 0, False)
    return bytes(out)


def packs(tups: Iterable[tuple], prefix: bytes = b"") -> bytes:
    """Pack several tuples into one key, joined by SEP (``0x01``).

    An empty iterable packs like ``[()]``: to ``prefix`` alone.

    >>> packs([("a",), (1,)])
    b'@\\xb0\\xc0\\x00\\x01\\x1b\\x01'
    """
    out = bytearray(prefix if type(prefix) is bytes else _as_bytes(prefix))
    first = True
    for tup in tups:
        if not isinstance(tup, tuple):
            raise TypeError(f"packs() needs tuples, not {type(tup).__name__!r}")
        if not first:
            out.append(SEP)
        first = False
        _pack_items(out, tup, 0, False)
    return bytes(out)


def _pack_items(out: bytearray, tup: tuple, depth: int, in_desc: bool) -> None:
    for v in tup:
        t = type(v)
        if t is int:
            _pack_int(out, v)
        elif t is str:
            out.append(STR)
            out += groups(v.encode("utf-8", "surrogatepass"))
            out.append(END)
        else:
            _pack_other(out, v, depth, in_desc)


def _pack_other(out: bytearray, v: Any, depth: int, in_desc: bool) -> None:
    # Exact types were tried by the caller; subclasses land here, in the same
    # order as in the C twin (bool before int: bool is a subclass of int).
    if v is None:
        out.append(NONE)
    elif v is True:
        out.append(TRUE)
    elif v is False:
        out.append(FALSE)
    elif isinstance(v, int):
        _pack_int(out, int(v))
    elif isinstance(v, float):
        _pack_float(out, float(v))
    elif isinstance(v, str):
        out.append(STR)
        out += groups(str.encode(v, "utf-8", "surrogatepass"))
        out.append(END)
    elif isinstance(v, bytes):
        out.append(BYTES)
        out += groups(v)
        out.append(END)
    elif isinstance(v, tuple):
        if depth >= MAX_DEPTH:
            raise KeyEncodingError(f"key nests deeper than {MAX_DEPTH} levels")
        out.append(TUPLE)
        _pack_items(out, v, depth + 1, in_desc)
        out.append(END)
    elif isinstance(v, UUID):
        out.append(UUID_)
        out += v.bytes
    elif isinstance(v, datetime):
        _pack_datetime(out, v)
    elif isinstance(v, Desc):
        if in_desc:
            raise KeyEncodingError("a Desc cannot be packed inside a Desc")
        if depth >= MAX_DEPTH:
            raise KeyEncodingError(f"key nests deeper than {MAX_DEPTH} levels")
        inner = bytearray()
        _pack_items(inner, (v.value,), depth + 1, True)
        inner.append(END)
        out.append(DESC)
        out += inner.translate(_NOT)
    else:
        raise TypeError(f"cannot pack a value of type {type(v).__name__!r}")


def _pack_int(out: bytearray, v: int) -> None:
    if v > 0:
        n = (v.bit_length() + 7) >> 3
        if n <= 8:
            out += (((INT_ZERO + n) << (n << 3)) | v).to_bytes(n + 1)
        elif n <= MAX_INT_BYTES:
            out += ((((POS_BIG << 8) | n) << (n << 3)) | v).to_bytes(n + 2)
        else:
            raise KeyEncodingError("integer too large for a key (|n| >= 2**2040)")
    elif v == 0:
        out.append(INT_ZERO)
    else:
        m = -v
        n = (m.bit_length() + 7) >> 3
        if n <= 8:
            out += (((INT_ZERO - n) << (n << 3)) | (_ONES[n] - m)).to_bytes(n + 1)
        elif n <= MAX_INT_BYTES:
            ones = (1 << (n << 3)) - 1
            head = (NEG_BIG << 8) | (0xFF - n)
            out += ((head << (n << 3)) | (ones - m)).to_bytes(n + 2)
        else:
            raise KeyEncodingError("integer too large for a key (|n| >= 2**2040)")


def _pack_float(out: bytearray, f: float) -> None:
    if f != f:
        raise KeyEncodingError("nan cannot be packed into a key")
    if f == math.inf:
        out.append(POS_INF)
        return
    if f == -math.inf:
        out.append(NEG_INF)
        return
    n = math.floor(f)
    _pack_int(out, n)
    out.append(FRAC)
    if f < 0.0:
        # f - n need not be exact here (-1e-300 + 1 rounds), so a negative
        # number is coded by the fraction r of |f|, which is exact, reversed.
        r = -f - math.floor(-f)
        field = _ONE_BITS + 1 - int.from_bytes(_DOUBLE.pack(r)) if r else 1
    elif f == 0.0 and math.copysign(1.0, f) < 0.0:
        field = 0
    else:
        # The fraction of a non-negative binary64 is exact.
        field = int.from_bytes(_DOUBLE.pack(f - n)) + 1
    out += field.to_bytes(8)


def _pack_datetime(out: bytearray, v: datetime) -> None:
    us = (
        (v.toordinal() - _UNIX_ORDINAL) * 86400
        + v.hour * 3600
        + v.minute * 60
        + v.second
    ) * 1000000 + v.microsecond
    offset = None if v.tzinfo is None else v.utcoffset()
    if offset is None:
        out.append(NAIVE)
        out += (us + _BIAS).to_bytes(8)
    else:
        off_us = (offset.days * 86400 + offset.seconds) * 1000000 + offset.microseconds
        out.append(AWARE)
        out += (us - off_us + _BIAS).to_bytes(8)
        _pack_int(out, off_us)


def unpack(raw: bytes, prefix: bytes = b"") -> tuple:
    """Decode a key made by :func:`pack`, after checking and skipping ``prefix``.

    ``raw`` may be any contiguous bytes-like object. Malformed bytes raise
    :class:`~acid.errors.KeyEncodingError`.

    >>> unpack(b"p\\x1a", prefix=b"p")
    (0,)
    """
    raw, pos = _start(raw, prefix)
    ctx = [raw, None]
    items, pos, stop = _unpack_items(ctx, raw, pos, 0, False)
    if stop == SEP:
        raise KeyEncodingError("SEP in a single-tuple key (use unpacks())")
    if stop == END:
        raise KeyEncodingError(f"stray END at offset {pos}")
    return tuple(items)


def unpacks(raw: bytes, prefix: bytes = b"") -> list[tuple]:
    """Decode a key made by :func:`packs` into its list of tuples.

    The result always holds at least one tuple.

    >>> unpacks(packs([("a",), (1,)]))
    [('a',), (1,)]
    """
    raw, pos = _start(raw, prefix)
    ctx = [raw, None]
    result = []
    while True:
        items, pos, stop = _unpack_items(ctx, raw, pos, 0, False)
        result.append(tuple(items))
        if stop == SEP:
            pos += 1
        elif stop == END:
            raise KeyEncodingError(f"stray END at offset {pos}")
        else:
            return result


def _as_bytes(raw: Any) -> bytes:
    view = memoryview(raw)  # TypeError for objects without the buffer protocol
    if not view.c_contiguous:
        raise TypeError("a contiguous bytes-like object is required")
    return view.tobytes()


def _start(raw: Any, prefix: Any) -> tuple[bytes, int]:
    if type(raw) is not bytes:
        raw = _as_bytes(raw)
    if type(prefix) is not bytes:
        prefix = _as_bytes(prefix)
    if prefix and not raw.startswith(prefix):
        raise KeyEncodingError("key does not start with the expected prefix")
    return raw, len(prefix)


def _unpack_items(
    ctx: list, s: bytes, pos: int, depth: int, in_desc: bool
) -> tuple[list, int, int]:
    """Decode elements of ``s`` from ``pos`` up to END, SEP or the end.

    Returns the values, the position of the stop byte and the stop byte
    itself (END, SEP, or -1 at the end of the input). ``ctx`` holds the input
    and, once a ``Desc`` was seen, its bitwise NOT (``s`` is one of the two).
    """
    items: list[Any] = []
    append = items.append
    n = len(s)
    v: Any
    while pos < n:
        t = s[pos]
        pos += 1
        if 0x1B <= t <= 0x22:  # positive int of 1..8 bytes
            end = pos + t - INT_ZERO
            if end > n or not s[pos]:
                raise KeyEncodingError(f"bad integer at offset {pos - 1}")
            v = int.from_bytes(s[pos:end])
            pos = end
            if pos < n and s[pos] == FRAC:
                v, pos = _unpack_frac(s, pos, v, t)
            append(v)
        elif t == STR:
            end = s.find(0, pos)
            g = end - pos
            if 1 < g <= 8:  # up to 7 bytes: ungroup's short case, inlined
                high, shift, pad_mask, pad, size = ONE_CHUNK[g]
                x = int.from_bytes(s[pos:end])
                if x & high != high:
                    raise KeyEncodingError("bad 7-bit group")
                x = (x ^ high) << shift
                x -= (x & 0x7F007F007F007F00) >> 1
                x -= ((x & 0x3FFF00003FFF0000) >> 2) * 3
                x -= ((x & 0x0FFFFFFF00000000) >> 4) * 15
                if x & pad_mask:
                    raise KeyEncodingError("non-zero padding bits in 7-bit groups")
                try:
                    append((x >> pad).to_bytes(size).decode("utf-8", "surrogatepass"))
                except UnicodeDecodeError:
                    raise KeyEncodingError("string is not valid UTF-8") from None
                pos = end + 1
            else:
                v, pos = _unpack_str(s, pos)
                append(v)
        elif t <= SEP:
            return items, pos - 1, t
        else:
            v, pos = _unpack_other(ctx, s, pos, t, depth, in_desc)
            append(v)
    return items, pos, -1


def _unpack_other(
    ctx: list, s: bytes, pos: int, t: int, depth: int, in_desc: bool
) -> tuple[Any, int]:
    if NEG_BIG <= t <= POS_BIG:
        v, pos = _unpack_int(s, pos, t)
        if pos < len(s) and s[pos] == FRAC:
            return _unpack_frac(s, pos, v, t)
        return v, pos
    if t == STR:
        return _unpack_str(s, pos)
    if t == NONE:
        return None, pos
    if t == TRUE:
        return True, pos
    if t == FALSE:
        return False, pos
    if t == BYTES:
        end = s.find(0, pos)
        if end < 0:
            raise KeyEncodingError("unterminated bytes")
        return ungroup(s, pos, end), end + 1
    if t == TUPLE:
        if depth >= MAX_DEPTH:
            raise KeyEncodingError(f"key nests deeper than {MAX_DEPTH} levels")
        items, pos, stop = _unpack_items(ctx, s, pos, depth + 1, in_desc)
        if stop != END:
            raise KeyEncodingError("nested tuple without END")
        return tuple(items), pos + 1
    if t == UUID_:
        end = pos + 16
        if end > len(s):
            raise KeyEncodingError("truncated UUID")
        return UUID(bytes=s[pos:end]), end
    if t in (NAIVE, AWARE):
        return _unpack_datetime(s, pos, t)
    if t == NEG_INF:
        return -math.inf, pos
    if t == POS_INF:
        return math.inf, pos
    if t == DESC:
        if in_desc:
            raise KeyEncodingError("Desc inside a Desc")
        if depth >= MAX_DEPTH:
            raise KeyEncodingError(f"key nests deeper than {MAX_DEPTH} levels")
        inv = ctx[1]
        if inv is None:
            inv = ctx[1] = ctx[0].translate(_NOT)
        if pos >= len(inv) or inv[pos] <= SEP:
            raise KeyEncodingError("empty Desc")
        v, pos = _unpack_other(ctx, inv, pos + 1, inv[pos], depth + 1, True)
        if pos >= len(inv) or inv[pos] != END:
            raise KeyEncodingError("Desc without END")
        return Desc(v), pos + 1
    raise KeyEncodingError(f"unknown type byte 0x{t:02x} at offset {pos - 1}")


def _unpack_str(s: bytes, pos: int) -> tuple[str, int]:
    end = s.find(0, pos)
    if end < 0:
        raise KeyEncodingError("unterminated string")
    try:
        return ungroup(s, pos, end).decode("utf-8", "surrogatepass"), end + 1
    except UnicodeDecodeError:
        raise KeyEncodingError("string is not valid UTF-8") from None


def _unpack_int(s: bytes, pos: int, t: int) -> tuple[int, int]:
    """Decode the integer whose type byte ``t`` was just read."""
    n = len(s)
    if t == INT_ZERO:
        return 0, pos
    if t > INT_ZERO:
        if t == POS_BIG:
            if pos >= n:
                raise KeyEncodingError("truncated integer")
            size = s[pos]
            pos += 1
            if size <= 8:
                raise KeyEncodingError("non-canonical big integer length")
        else:
            size = t - INT_ZERO
        end = pos + size
        if end > n or not s[pos]:
            raise KeyEncodingError(f"bad integer at offset {pos}")
        return int.from_bytes(s[pos:end]), end
    if t == NEG_BIG:
        if pos >= n:
            raise KeyEncodingError("truncated integer")
        size = 0xFF - s[pos]
        pos += 1
        if size <= 8:
            raise KeyEncodingError("non-canonical big integer length")
    else:
        size = INT_ZERO - t
    end = pos + size
    if end > n or s[pos] == 0xFF:
        raise KeyEncodingError(f"bad integer at offset {pos}")
    return int.from_bytes(s[pos:end]) - (1 << (size << 3)) + 1, end


def _unpack_frac(s: bytes, pos: int, n: int, t: int) -> tuple[float, int]:
    """Decode the float whose integer part ``n`` (type byte ``t``) was read."""
    end = pos + 9
    if end > len(s):
        raise KeyEncodingError("truncated float")
    field = int.from_bytes(s[pos + 1 : end])
    if field == 0:
        if t != INT_ZERO:
            raise KeyEncodingError("non-canonical float")
        return -0.0, end
    code = field - 1
    if code >= _ONE_BITS:
        raise KeyEncodingError("float fraction out of range")
    if code == 0:
        try:
            f = float(n)
        except OverflowError:
            raise KeyEncodingError("integer part too large for a float") from None
        if f != n:
            raise KeyEncodingError("integer part not exact in a float")
        return f, end
    if n >= 0:
        m = n
        r = _DOUBLE.unpack(code.to_bytes(8))[0]
    else:
        m = -1 - n
        r = _DOUBLE.unpack((_ONE_BITS - code).to_bytes(8))[0]
    if m >= 1 << 53:
        raise KeyEncodingError("non-canonical float")
    a = m + r
    if math.floor(a) != m or a - m != r:
        raise KeyEncodingError("non-canonical float")
    return (a if n >= 0 else -a), end


def _unpack_datetime(s: bytes, pos: int, t: int) -> tuple[datetime, int]:
    end = pos + 8
    if end > len(s):
        raise KeyEncodingError("truncated datetime")
    us = int.from_bytes(s[pos:end]) - _BIAS
    if t == NAIVE:
        if not _MIN_US <= us <= _MAX_US:
            raise KeyEncodingError("datetime out of range")
        return _EPOCH + timedelta(microseconds=us), end
    if end >= len(s) or not NEG_BIG <= s[end] <= POS_BIG:
        raise KeyEncodingError("aware datetime without its UTC offset")
    off_us, end = _unpack_int(s, end + 1, s[end])
    local = us + off_us
    if not -_DAY_US < off_us < _DAY_US or not _MIN_US <= local <= _MAX_US:
        raise KeyEncodingError("datetime or UTC offset out of range")
    tz = timezone(timedelta(microseconds=off_us))
    return (_EPOCH + timedelta(microseconds=local)).replace(tzinfo=tz), end


def prefix_bound(raw: bytes) -> bytes | None:
    """Shortest byte string greater than every string that starts with ``raw``.

    Trailing ``0xff`` bytes are dropped and the last byte left is incremented;
    ``None`` when nothing is left (``raw`` is empty or all ``0xff``).

    >>> prefix_bound(b"a\\xff"), prefix_bound(b"\\xff"), prefix_bound(b"")
    (b'b', None, None)
    """
    if type(raw) is not bytes:
        raw = _as_bytes(raw)
    stripped = raw.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))
