"""Range arguments to raw key bounds, and the one scan loop.

Shared by :mod:`acid.collection` and :mod:`acid.index`; knows nothing of
either. A range is ``[start, stop)`` in raw bytes under a ``base`` prefix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from itertools import dropwhile, islice
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from acid import keylib
from acid._txn import active

if TYPE_CHECKING:
    from acid.store import Store

T = TypeVar("T")


#: Exact types that are always wrapped into a 1-tuple, checked first because
#: ``isinstance(value, Key)`` costs more than the rest of a put.
SCALARS = frozenset({int, str, bytes, float, bool, type(None), UUID, datetime})


def as_tuple(value: Any) -> tuple[Any, ...]:
    """A key argument as a tuple: tuples and Keys as they are, scalars wrapped."""
    kind = type(value)
    if kind is tuple:
        return value
    if kind in SCALARS or not isinstance(value, keylib.Key):
        return (value,)
    return tuple(value)


#: What a bulk call refuses in place of many keys: one key, whose
#: characters or bytes would each be taken for a key.
_ONE_KEY = (str, bytes, bytearray, memoryview)


def many(items: Any, what: str, call: str) -> list[Any]:
    """``items`` (an iterable of ``what``) as a list, for the bulk calls.

    A ``str`` or ``bytes`` (and, for records, a mapping: one record) is
    refused with ``TypeError``: iterating it would take each character, or
    each field name, for a key or a record.
    """
    if type(items) is list:
        return items
    if isinstance(items, _ONE_KEY) or (
        what == "records" and isinstance(items, Mapping)
    ):
        one = "record" if what == "records" else "key"
        raise TypeError(
            f"{call} takes an iterable of {what}, not a single {one} "
            f"({type(items).__name__}); wrap it in a list"
        )
    try:
        it = iter(items)
    except TypeError:
        raise TypeError(
            f"{call} takes an iterable of {what}, not {type(items).__name__}"
        ) from None
    return list(it)


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
    if key is not None:
        exact = keylib.pack(as_tuple(key), base)
        return exact, exact + b"\x00"
    start, stop = keylib.prefix_range((), base)
    if prefix is not None:
        p_start, p_stop = keylib.prefix_range(as_tuple(prefix), base)
        start = max(start, p_start)
        stop = min(stop, p_stop)
    if lo is not None:
        start = max(start, keylib.pack(as_tuple(lo), base))
    if hi is not None:
        if include:
            h = keylib.prefix_range(as_tuple(hi), base)[1]
        else:
            h = keylib.pack(as_tuple(hi), base)
        stop = min(stop, h)
    return start, stop


def check_max(max: int | None) -> None:
    if max is not None and type(max) is not int:
        raise TypeError(f"max must be an int or None, not {type(max).__name__}")
    if max is not None and max < 0:
        raise ValueError(f"max must be >= 0 (0 yields nothing), got {max}")


def scan(
    store: Store,
    start: bytes,
    stop: bytes,
    reverse: bool | None,
    max: int | None,
    fn: Callable[[Any, bytes, bytes], T] | None = None,
    *,
    key_prefix: bytes | None = None,
    decode: Callable[[bytes], Any] | None = None,
    plain: Callable[[bytes], Any] | None = None,
) -> Iterator[Any]:
    """Rows of the raw key range ``[start, stop)``, in order or reversed.

    Each row is ``fn(txn, key, value)`` when ``fn`` is given; otherwise the
    key unpacked after ``key_prefix``, the value decoded by ``decode``, or
    ``(key, value)`` when both are given. ``plain`` decodes a value whose
    first byte is 0 (uncompressed) after that byte, saving a call per row.

    Runs in the active transaction, or in a read transaction of its own that
    lives as long as the iterator. Arguments are checked now, not at the
    first ``next()``.
    """
    check_max(max)
    if start >= stop or (max is not None and max <= 0):
        return iter(())
    txn = active(store.context)
    own = txn is None
    if txn is None:
        txn = store.engine.begin()
    rows: Iterator[tuple[bytes, bytes]]
    if reverse:
        # The engine starts at the last key <= stop; stop itself is excluded.
        rows = dropwhile(lambda kv: kv[0] >= stop, txn.iter(stop, reverse=True))
        out = start.__gt__
    else:
        rows = txn.iter(start)
        out = stop.__le__
    gen: Iterator[Any]
    if fn is not None:
        gen = _call(txn, own, rows, out, fn)
    elif decode is None:
        gen = _keys(txn, own, rows, out, key_prefix or b"")
    elif plain is None:
        raise TypeError("scan() with decode needs plain too")
    elif key_prefix is None:
        gen = _values(txn, own, rows, out, decode, plain)
    else:
        gen = _items(txn, own, rows, out, key_prefix, decode, plain)
    return gen if max is None else islice(gen, max)


# One generator per row shape, so the per-row path has no extra call: these
# loops are the scan hot path (bench/layer_bench.py).


def _call(txn: Any, own: bool, rows: Iterator, out: Callable, fn: Callable) -> Iterator:
    try:
        for k, v in rows:
            if out(k):
                return
            yield fn(txn, k, v)
    finally:
        if own:
            txn.abort()


def _keys(txn: Any, own: bool, rows: Iterator, out: Callable, kp: bytes) -> Iterator:
    unpack = keylib.unpack
    try:
        for k, _ in rows:
            if out(k):
                return
            yield unpack(k, kp)
    finally:
        if own:
            txn.abort()


def _values(
    txn: Any,
    own: bool,
    rows: Iterator,
    out: Callable,
    decode: Callable,
    plain: Callable,
) -> Iterator:
    try:
        for k, v in rows:
            if out(k):
                return
            if v and v[0] == 0:
                try:
                    rec = plain(v[1:])
                except Exception:  # decode() raises the CorruptionError
                    rec = decode(v)
                yield rec
            else:
                yield decode(v)
    finally:
        if own:
            txn.abort()


def _items(
    txn: Any,
    own: bool,
    rows: Iterator,
    out: Callable,
    kp: bytes,
    decode: Callable,
    plain: Callable,
) -> Iterator:
    unpack = keylib.unpack
    try:
        for k, v in rows:
            if out(k):
                return
            if v and v[0] == 0:
                try:
                    rec = plain(v[1:])
                except Exception:  # decode() raises the CorruptionError
                    rec = decode(v)
            else:
                rec = decode(v)
            yield unpack(k, kp), rec
    finally:
        if own:
            txn.abort()


# -- key matching (kt's match_prefix, match_regex, match_similar) -----------


def match_str(
    tuples: Iterator[tuple],
    test: Callable[[str], bool],
    max: int | None,
    *,
    stop_on_miss: bool = False,
) -> list[tuple]:
    """The tuples whose first element is a str passing ``test``, in order,
    without repeats, at most ``max``; ``stop_on_miss`` ends at the first
    tuple that fails (for a prefix scan, they are contiguous)."""
    check_max(max)
    out: list[tuple] = []
    if max == 0:
        return out
    for t in tuples:
        if t and type(t[0]) is str and test(t[0]):
            if out and out[-1] == t:
                continue
            out.append(t)
            if max is not None and len(out) >= max:
                break
        elif stop_on_miss:
            break
    return out


def levenshtein(a: str, b: str, limit: int) -> int:
    """The edit distance of ``a`` and ``b``, or ``limit + 1`` once it is
    certain to exceed ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        if min(cur) > limit:
            return limit + 1
        prev = cur
    return prev[-1]


def match_prefix(
    scan: Callable[[Any], Iterator[tuple]], prefix: str, max: int | None
) -> list[tuple]:
    """Tuples whose first element is a str starting with ``prefix``;
    ``scan(lo)`` iterates tuples from ``lo`` on."""
    if not isinstance(prefix, str):
        raise TypeError(f"match_prefix takes a str, not {type(prefix).__name__}")
    rows = scan((prefix,))
    return match_str(rows, lambda s: s.startswith(prefix), max, stop_on_miss=True)


def match_regex(
    scan: Callable[[Any], Iterator[tuple]], pattern: Any, max: int | None
) -> list[tuple]:
    """Tuples whose first element is a str where ``pattern`` is found."""
    from acid.errors import QueryError

    try:
        rx = re.compile(pattern)
    except (re.error, TypeError) as exc:
        raise QueryError(f"match_regex: bad pattern {pattern!r}: {exc}") from exc
    if isinstance(rx.pattern, bytes):  # it would fail on the first str key
        raise QueryError(f"match_regex takes a str pattern, not {pattern!r}")
    return match_str(scan(None), lambda s: rx.search(s) is not None, max)


def match_similar(
    scan: Callable[[Any], Iterator[tuple]],
    origin: str,
    distance: int,
    max: int | None,
) -> list[tuple]:
    """Tuples whose first element is a str within ``distance`` edits
    (Levenshtein) of ``origin``."""
    if not isinstance(origin, str):
        raise TypeError(f"match_similar takes a str, not {type(origin).__name__}")
    if type(distance) is not int or distance < 0:
        raise ValueError(f"distance must be an int >= 0, not {distance!r}")
    return match_str(
        scan(None), lambda s: levenshtein(origin, s, distance) <= distance, max
    )
