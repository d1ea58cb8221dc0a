"""The dict-style face of a Collection (sophy's idiom), over its public API.

``coll[key]``, ``coll[key] = rec``, ``del coll[key]``, ``key in coll``,
``len(coll)``, iteration as ``(key, record)``, slices, cursors and the
``multi_*`` calls. Scalar keys are 1-tuples, as everywhere in acid.

>>> import acid
>>> store = acid.open("skiplist:/")
>>> kv = store.add_collection("kv", key_func=lambda r: r["k"])
>>> kv.update({"k1": {"k": "k1"}, "k2": {"k": "k2"}, "k3": {"k": "k3"}})
>>> [k for k, _ in kv["k3":"k1"]]
[('k3',), ('k2',), ('k1',)]
>>> kv.multi_get("k1", "kx")
[{'k': 'k1'}, None]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from acid import _query, keylib
from acid.errors import NotFound, SchemaError

if TYPE_CHECKING:
    from acid.collection import Collection

__all__ = ["COUNT_UNKNOWN", "ORDERS"]

#: A record count below 0 means "not known yet" (a store written before
#: counts existed): adding to it keeps it negative until it is recounted.
COUNT_UNKNOWN = -(2**62)
ORDERS = (">=", ">", "<=", "<")
_ABSENT = object()


def _attached(coll: Collection) -> None:
    """Refuse a collection object that was dropped (or rolled back)."""
    if not coll.attached:
        raise SchemaError(
            f"collection {coll.name!r} (id {coll.id}) cannot be used: it was "
            "dropped, or created in a transaction that rolled back. Open it "
            "again with store.add_collection()."
        )


def getitem(coll: Collection, key: Any) -> Any:
    if isinstance(key, slice):
        return slice_items(coll, key)
    rec = coll.get(key, _ABSENT)
    if rec is _ABSENT:
        raise NotFound(f"collection {coll.name!r} has no record under {key!r}")
    return rec


def setitem(coll: Collection, key: Any, rec: Any) -> None:
    # As a 1-tuple: put(key=None) would mean "no key given" (the key function).
    coll.put(rec, key=_query.as_tuple(key))


def delitem(coll: Collection, key: Any) -> None:
    if not coll.delete(key):
        raise NotFound(f"collection {coll.name!r} has no record under {key!r}")


def contains(coll: Collection, key: Any) -> bool:
    return coll.get(key, _ABSENT, raw=True) is not _ABSENT


def length(coll: Collection, name: str) -> int:
    """The record count kept in counter ``name``; recounted (and stored,
    unless in a read transaction) when it is not known yet. The counter
    counts stored records; expired ones not swept yet are taken off (found
    in the expiry queue: O(expired))."""
    _attached(coll)
    store = coll.store

    def current() -> None:
        # Dropped by another Store object or process? Its counter may be
        # left behind: refuse rather than return a count of nothing.
        if store.active().get(store.schema_key) != store.schema.token:
            store.schema.refresh()
            _attached(coll)

    def usual() -> int:
        current()
        return store.bump(name, 0, COUNT_UNKNOWN)

    def count() -> int:
        current()
        n = stored = store.bump(name, 0, COUNT_UNKNOWN)
        if stored < 0:  # not known yet (a store older than the counter)
            n = sum(1 for _ in store.iter_space(coll.id))
            if store.active().write:
                store.bump(name, n - stored, COUNT_UNKNOWN)
        expiry = coll.expiry
        if expiry is not None:
            n -= len(expiry.due(store.active(), store.clock(), n))
        return n

    txn = store.txn
    if coll.expiry is None and (txn is None or not txn.write):
        n = store.in_txn(usual)  # the usual case: two reads
        if n >= 0:
            return n
    return store.in_txn(count, write=txn is None or txn.write)


def _packed_key(key: Any, base: bytes) -> bytes:
    return keylib.pack(_query.as_tuple(key), base)


def slice_items(coll: Collection, s: slice) -> Iterator[tuple[tuple, Any]]:
    """``coll[lo:hi]``: both ends included, reversed when ``lo > hi`` or
    the step is ``True``; open on an omitted side."""
    # Only the bools: sophy reads any true step as "reverse", Python reads
    # 1 as "forward"; an int or float step would mean one thing to each.
    if not (s.step is None or s.step is True or s.step is False):
        raise TypeError(
            f"a slice step must be True (reverse) or omitted, not {s.step!r}"
        )
    _attached(coll)
    base = coll.key_prefix
    lo = None if s.start is None else _packed_key(s.start, base)
    hi = None if s.stop is None else _packed_key(s.stop, base)
    reverse = s.step is True
    if lo is not None and hi is not None and lo > hi:
        lo, hi, reverse = hi, lo, True
    start, stop = keylib.prefix_range((), base)
    if lo is not None:
        start = lo
    if hi is not None:
        stop = hi + b"\x00"  # inclusive of exactly ``hi``
    return _items(coll, start, stop, reverse)


def _items(
    coll: Collection, start: bytes, stop: bytes, reverse: bool
) -> Iterator[tuple[tuple, Any]]:
    codec = coll.codec
    expiry = coll.expiry
    if expiry is not None:  # leave out the expired records, as items() does
        skip = len(coll.key_prefix)
        unpack, decode = keylib.unpack, codec.decode

        def row(txn: Any, k: bytes, v: bytes) -> tuple[tuple, Any]:
            return unpack(k[skip:]), decode(v)

        return expiry.scan(start, stop, reverse, None, row, lambda k, v: k[skip:])
    return _query.scan(
        coll.store,
        start,
        stop,
        reverse,
        None,
        key_prefix=coll.key_prefix,
        decode=codec.decode,
        plain=codec.unpack,
    )


def cursor(
    coll: Collection,
    key: Any = None,
    order: str = ">=",
    prefix: Any = None,
    keys: bool = True,
    values: bool = True,
) -> Iterator[Any]:
    """Iterate from ``key`` in the direction ``order`` says (see Collection)."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    if not keys and not values:
        raise ValueError("a cursor needs keys=True or values=True")
    _attached(coll)
    base = coll.key_prefix
    start, stop = keylib.prefix_range((), base)
    if prefix is not None:
        start, stop = keylib.prefix_range(_query.as_tuple(prefix), base)
    reverse = order in ("<=", "<")
    if key is not None:
        k = _packed_key(key, base)
        bound = k + b"\x00" if order in (">", "<=") else k
        if reverse:
            stop = min(stop, bound)
        else:
            start = max(start, bound)
    rows = _items(coll, start, stop, reverse)
    if keys and values:
        return rows
    if keys:
        return (k for k, _ in rows)
    return (v for _, v in rows)


def multi_get(coll: Collection, keys: tuple[Any, ...]) -> list[Any]:
    return coll.store.in_txn(lambda: [coll.get(k) for k in keys])


def multi_get_dict(coll: Collection, keys: Iterable[Any]) -> dict[Any, Any]:
    if isinstance(keys, str | bytes) or not isinstance(keys, Iterable):
        raise TypeError(
            f"multi_get_dict() takes an iterable of keys, not {type(keys).__name__}"
        )
    keys = list(keys)
    # Keys Python calls equal but acid does not (1, 1.0, True) would share
    # one dict entry holding one of their records: refuse them.
    spelled: dict[Any, bytes] = {}
    for k in keys:
        packed = keylib.pack(_query.as_tuple(k))
        other = spelled.setdefault(k, packed)
        if other != packed:
            raise ValueError(
                f"multi_get_dict() got keys that are equal as dict keys but "
                f"name different records: {k!r} and {keylib.unpack(other)!r}"
            )

    def run() -> dict[Any, Any]:
        out = {}
        for k in keys:
            rec = coll.get(k, _ABSENT)
            if rec is not _ABSENT:
                out[k] = rec
        return out

    return coll.store.in_txn(run)


def multi_delete(coll: Collection, keys: tuple[Any, ...]) -> int:
    return coll.store.in_txn(lambda: sum(1 for k in keys if coll.delete(k)), write=True)


def update(coll: Collection, items: Mapping[Any, Any] | Iterable[Any]) -> None:
    def run() -> None:
        if isinstance(items, Mapping):
            for k, rec in items.items():
                coll.put(rec, key=_query.as_tuple(k))
        else:
            for rec in items:
                coll.put(rec)

    if isinstance(items, str | bytes):
        raise TypeError("update() takes a mapping of key to record, or records")
    coll.store.in_txn(run, write=True)
