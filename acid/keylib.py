"""Order-preserving keys: tuples to bytes and back.

This facade picks the C twin (``acid._keylib``) when it was built and the
pure-Python reference (``acid._keylib_py``) otherwise; setting the environment
variable ``ACID_PURE_PYTHON=1`` before the first import forces the pure one.
``IMPLEMENTATION`` says which was taken. Both produce the bytes described in
``docs/format.md``.

>>> unpack(pack(("user", 42)))
('user', 42)
>>> pack((1,)) < pack((1.5,)) < pack((2,))
True
>>> start, stop = prefix_range((1,))
>>> start <= pack((1, "a")) < stop, start <= pack((1.5,)) < stop
(True, False)
>>> Key("user", 42)
Key('user', 42)
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from acid import _keylib_py as _py
from acid.errors import KeyEncodingError

_c: ModuleType | None
try:
    _c = importlib.import_module("acid._keylib")
except ImportError:  # not built: the pure twin serves
    _c = None

__all__ = [
    "IMPLEMENTATION",
    "Desc",
    "Key",
    "exact_json",
    "exact_msgpack",
    "exact_pickle",
    "implementations",
    "pack",
    "packs",
    "prefix_bound",
    "prefix_range",
    "unpack",
    "unpacks",
]

_FORCE_PURE = os.environ.get("ACID_PURE_PYTHON", "") not in ("", "0")
_impl: ModuleType = _py if _c is None or _FORCE_PURE else _c

#: ``"c"`` or ``"python"``: the twin this process uses.
IMPLEMENTATION = "c" if _impl is _c else "python"

pack = _impl.pack
unpack = _impl.unpack
packs = _impl.packs
unpacks = _impl.unpacks
prefix_bound = _impl.prefix_bound
# Whether a built-in record encoder surely gives a record back as it is
# (acid.encoders uses them; see acid._keylib_exact).
exact_json = _impl.exact_json
exact_msgpack = _impl.exact_msgpack
exact_pickle = _impl.exact_pickle
Desc = _py.Desc  # one class, shared by both twins


def prefix_range(prefix: tuple, base: bytes = b"") -> tuple[bytes, bytes]:
    """``(start, stop)``: the keys under ``base`` that begin with ``prefix``.

    ``start <= pack(t, base) < stop`` exactly when ``t`` has at least
    ``len(prefix)`` elements and each of the first is the same key element
    as the one in ``prefix`` (same encoding: ``1``, ``1.0`` and ``True``
    differ; a nested tuple must match whole). A byte-prefix scan
    (``prefix_bound(pack(prefix))``) is not that: ``pack((1,))`` is a byte
    prefix of ``pack((1.5,))``.

    ``start`` is ``pack(prefix, base)`` and ``stop`` is ``start + b"\\xfe"``
    (docs/format.md, "Prefix ranges"). For ``prefix=()``, ``stop`` is
    ``prefix_bound(base)``, or ``base + b"\\xff"`` when ``base`` has no
    bound (it is empty or all ``0xff``).

    >>> start, stop = prefix_range((1,), b"p")
    >>> [start <= pack(t, b"p") < stop for t in [(1,), (1, "a"), (1.0,), (1.5,)]]
    [True, True, False, False]
    >>> prefix_range((), b"p")
    (b'p', b'q')
    """
    start = _impl.pack(prefix, base)
    if prefix:
        # After a whole element comes SEP, a type byte (<= 0x7f) or the end
        # of the key; 0xfe only as the FRAC of a float whose floor is the
        # integer just before, which is a different element.
        return start, start + b"\xfe"
    return start, _impl.prefix_bound(start) or start + b"\xff"


def implementations() -> dict[str, ModuleType]:
    """Every twin available in this process, by name (``"python"``, ``"c"``).

    >>> sorted(implementations())[-1]
    'python'
    """
    found = {"python": _py}
    if _c is not None:
        found["c"] = _c
    return found


class Key:
    """An immutable, tuple-like key that keeps its encoded bytes.

    Keys compare by their bytes (so in key order); a plain tuple is packed
    first. Elements are decoded on first access only. ``Key(key)`` copies
    ``key``.

    >>> k = Key(1, "a")
    >>> len(k), k[1], k == (1, "a"), k < Key(2), k.to_hex()
    (2, 'a', True, True, '1b0140b0c000')
    >>> Key.from_raw(b"p" + k.to_raw(), prefix=b"p") == k
    True
    """

    __slots__ = ("_raw", "_items")

    _raw: bytes
    _items: tuple | None

    def __init__(self, *args: Any) -> None:
        if len(args) == 1 and isinstance(args[0], Key):
            self._raw = args[0]._raw
            self._items = args[0]._items
            return
        self._raw = pack(args)
        self._items = args

    @classmethod
    def _wrap(cls, raw: bytes) -> Key:
        key = cls.__new__(cls)
        key._raw = raw
        key._items = None
        return key

    @classmethod
    def from_raw(
        cls, packed: Any, prefix: bytes | None = None, source: Any = None
    ) -> Key | None:
        """Wrap encoded bytes, skipping ``prefix``; None if the prefix differs.

        ``source`` is accepted for compatibility and ignored: the bytes are
        copied. The bytes are checked only when an element is first read.
        """
        raw = packed if type(packed) is bytes else bytes(memoryview(packed))
        if prefix:
            if not raw.startswith(prefix):
                return None
            raw = raw[len(prefix) :]
        return cls._wrap(raw)

    @classmethod
    def from_str(cls, s: str) -> Key | None:
        """Decode a key from :meth:`to_hex` output; None if that fails.

        >>> Key.from_str("1b01"), Key.from_str("zz"), Key.from_str("01")
        (Key(1,), None, None)
        """
        try:
            raw = bytes.fromhex(s)
            items = unpack(raw)
        except (ValueError, TypeError):
            return None
        key = cls._wrap(raw)
        key._items = items
        return key

    def to_raw(self, prefix: bytes = b"") -> bytes:
        """The encoded key, after ``prefix``."""
        return prefix + self._raw if prefix else self._raw

    def to_hex(self) -> str:
        """``to_raw()`` as lowercase hex."""
        return self._raw.hex()

    def prefix_bound(self) -> Key | None:
        """A key above every key that starts with this one and below the rest.

        "Starts with" is element by element, as for :func:`prefix_range`:
        ``Key(1.5)`` does not start with ``Key(1)``, so it is not below
        ``Key(1).prefix_bound()``. None for the empty key, which every key
        starts with. The result is only good for comparing; it does not
        decode.

        >>> Key(1) < Key(1, "z") < Key(1).prefix_bound() < Key(1.5)
        True
        """
        if not self._raw:
            return None
        return Key._wrap(self._raw + b"\xfe")  # see prefix_range()

    def _tuple(self) -> tuple:
        items = self._items
        if items is None:
            items = self._items = unpack(self._raw)
        return items

    def __len__(self) -> int:
        return len(self._tuple())

    def __bool__(self) -> bool:
        return bool(self._raw)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return Key(*self._tuple()[index])
        return self._tuple()[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._tuple())

    def __contains__(self, value: object) -> bool:
        return value in self._tuple()

    def index(self, value: Any, *args: Any) -> int:
        return self._tuple().index(value, *args)

    def count(self, value: Any) -> int:
        return self._tuple().count(value)

    def __hash__(self) -> int:
        return hash(self._tuple())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Key):
            return self._raw == other._raw
        if isinstance(other, tuple):
            try:
                return self._raw == pack(other)
            except (TypeError, ValueError):  # unpackable: equal to no key
                return False
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    def _other(self, other: object) -> bytes | None:
        if isinstance(other, Key):
            return other._raw
        if isinstance(other, tuple):
            return pack(other)
        return None

    def __lt__(self, other: object) -> bool:
        raw = self._other(other)
        return NotImplemented if raw is None else self._raw < raw

    def __le__(self, other: object) -> bool:
        raw = self._other(other)
        return NotImplemented if raw is None else self._raw <= raw

    def __gt__(self, other: object) -> bool:
        raw = self._other(other)
        return NotImplemented if raw is None else self._raw > raw

    def __ge__(self, other: object) -> bool:
        raw = self._other(other)
        return NotImplemented if raw is None else self._raw >= raw

    def __add__(self, other: object) -> Key:
        # pack(t + u) == pack(t) + pack(u): concatenation needs no decoding.
        raw = self._other(other)
        return NotImplemented if raw is None else Key._wrap(self._raw + raw)

    def __radd__(self, other: object) -> Key:
        if isinstance(other, tuple):
            return Key._wrap(pack(other) + self._raw)
        return NotImplemented

    def __repr__(self) -> str:
        try:
            items = self._tuple()
        except KeyEncodingError:
            return f"Key.from_raw({self._raw!r})"
        if len(items) == 1:
            return f"Key({items[0]!r},)"
        return f"Key({', '.join(map(repr, items))})"

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (Key.from_raw, (self._raw,))
