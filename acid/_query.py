"""Range arguments to raw key bounds, and the one scan loop.

Shared by :mod:`acid.collection` and :mod:`acid.index`; knows nothing of
either. A range is ``[start, stop)`` in raw bytes under a ``base`` prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from acid import keylib

if TYPE_CHECKING:
    from acid.store import Store

T = TypeVar("T")


def as_tuple(value: Any) -> tuple[Any, ...]:
    """A key argument as a tuple: tuples and Keys as they are, scalars wrapped."""
    if type(value) is tuple:
        return value
    if isinstance(value, keylib.Key):
        return tuple(value)
    return (value,)


def bounds(
    base: bytes,
    *,
    key: Any = None,
    lo: Any = None,
    hi: Any = None,
    prefix: Any = None,
    include: bool = False,
) -> tuple[bytes, bytes]:
    """``(start, stop)`` for the range arguments, clamped to ``base``.

    ``key`` is an exact match; ``prefix`` an element-wise tuple prefix; ``lo``
    is inclusive; ``hi`` exclusive, or with ``include=True`` inclusive of every
    key that starts with ``hi``. ``None`` means "not given" (``0`` is a value).
    """
    stop = keylib.prefix_bound(base)
    if stop is None:  # only if base is all 0xff, which no store prefix yields
        raise ValueError("key space prefix has no upper bound")
    start = base
    if key is not None:
        exact = keylib.pack(as_tuple(key), base)
        return exact, exact + b"\x00"
    if prefix is not None:
        p = keylib.pack(as_tuple(prefix), base)
        start = max(start, p)
        stop = min(stop, keylib.prefix_bound(p) or stop)
    if lo is not None:
        start = max(start, keylib.pack(as_tuple(lo), base))
    if hi is not None:
        h = keylib.pack(as_tuple(hi), base)
        if include:
            h = keylib.prefix_bound(h) or stop
        stop = min(stop, h)
    return start, stop


def check_max(max: int | None) -> None:  # noqa: A002 - the seed's name
    if max is not None and type(max) is not int:
        raise TypeError(f"max must be an int or None, not {type(max).__name__}")


def scan(
    store: Store,
    start: bytes,
    stop: bytes,
    reverse: bool | None,
    max: int | None,  # noqa: A002
    fn: Callable[[Any, bytes, bytes], T],
) -> Iterator[T]:
    """Yield ``fn(txn, key, value)`` for raw keys in ``[start, stop)``.

    Runs in the active transaction, or in a read transaction of its own that
    lives as long as the iterator. Arguments are checked now, not at the
    first ``next()``.
    """
    check_max(max)
    txn = store._ctx.get()
    own = txn is None
    if own:
        txn = store.engine.begin(write=False)
    return _scan(txn, own, start, stop, bool(reverse), max, fn)


def _scan(
    txn: Any,
    own: bool,
    start: bytes,
    stop: bytes,
    reverse: bool,
    limit: int | None,
    fn: Callable[[Any, bytes, bytes], T],
) -> Iterator[T]:
    try:
        if start >= stop or (limit is not None and limit <= 0):
            return
        left = -1 if limit is None else limit
        if reverse:
            for k, v in txn.iter(stop, reverse=True):
                if k >= stop:
                    continue
                if k < start:
                    break
                yield fn(txn, k, v)
                left -= 1
                if not left:
                    break
        else:
            for k, v in txn.iter(start):
                if k >= stop:
                    break
                yield fn(txn, k, v)
                left -= 1
                if not left:
                    break
    finally:
        if own:
            txn.abort()
