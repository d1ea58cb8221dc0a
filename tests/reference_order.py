"""The key order of docs/format.md, written directly on Python values.

``sort_key(t)`` maps a packable tuple to a value whose Python order is the
order the packed bytes must have; the keylib property tests check
``sorted(ts, key=sort_key)`` against sorting by ``pack``. ``starts_with(t,
prefix)`` is the element-wise prefix relation that ``keylib.prefix_range``
must select. Neither looks at the encoding.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import total_ordering
from typing import Any
from uuid import UUID

from acid.keylib import Desc

__all__ = ["element_key", "sort_key", "starts_with"]

_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)

# Ranks across types: None < bool < numbers < bytes < str < UUID < naive
# datetime < aware datetime < tuple < Desc.
_NONE, _BOOL, _NUMBER, _BYTES, _STR, _UUID, _NAIVE, _AWARE, _TUPLE, _DESC = range(10)


@total_ordering
class _Reversed:
    """Wraps a sort key and reverses its order (for Desc)."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.key == other.key

    def __lt__(self, other: _Reversed) -> bool:
        return other.key < self.key


def element_key(v: Any) -> tuple:
    """The sort key of one element."""
    if v is None:
        return (_NONE,)
    if isinstance(v, bool):
        return (_BOOL, v)
    if isinstance(v, int):
        # Equal values: the int first, then -0.0, then every other float.
        return (_NUMBER, v, 0)
    if isinstance(v, float):
        if v == 0.0 and str(v).startswith("-"):
            return (_NUMBER, v, 1)
        return (_NUMBER, v, 2)
    if isinstance(v, bytes):
        return (_BYTES, v)
    if isinstance(v, str):
        return (_STR, v)  # code point order
    if isinstance(v, UUID):
        return (_UUID, v.int)
    if isinstance(v, datetime):
        offset = v.utcoffset()
        if offset is None:
            return (_NAIVE, v)
        # By UTC instant, then by offset.
        return (_AWARE, v - _EPOCH_UTC, offset)
    if isinstance(v, tuple):
        return (_TUPLE, sort_key(v))
    if isinstance(v, Desc):
        return (_DESC, _Reversed(element_key(v.value)))
    raise TypeError(f"no key order for {type(v).__name__}")


def sort_key(t: tuple) -> tuple:
    """The sort key of a whole tuple: its elements' keys, in order."""
    return tuple(element_key(v) for v in t)


def starts_with(t: tuple, prefix: tuple) -> bool:
    """Whether ``t`` begins with the elements of ``prefix``, one by one.

    Two elements are the same when neither sorts before the other: ``1`` and
    ``1.0``, ``0.0`` and ``-0.0``, ``1`` and ``True``, ``(1,)`` and ``(1, 2)``
    all differ, as their encodings do.
    """
    if len(t) < len(prefix):
        return False
    head = t[: len(prefix)]
    return all(
        element_key(a) == element_key(b) for a, b in zip(prefix, head, strict=True)
    )
