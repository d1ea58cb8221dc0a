"""Collections: records under tuple keys, with their indexes kept in step.

A record lives at ``prefix + pack((collection_id,) + key)``; its value is one
byte naming the compressor, then the compressed encoder output.

>>> import acid
>>> store = acid.open("skiplist:/")
>>> users = store.add_collection("users", key_func=lambda u: u["id"])
>>> by_age = users.add_index("age", lambda u: u["age"])
>>> users.put({"id": 7, "age": 30})
(7,)
>>> users.get(7)
{'id': 7, 'age': 30}
>>> list(by_age.keys(lo=18))
[(7,)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from acid import _query, encoders, keylib
from acid.errors import ConfigError, ConstraintError, NameInUse, NotFound, TxnError
from acid.index import SEP, Index
from acid.store import KIND_INDEX, KIND_TABLE

if TYPE_CHECKING:
    from acid.store import Store

__all__ = ["CheckReport", "Collection", "add_index", "check"]

_NONE: tuple[bytes, ...] = ()
# Module globals for the put path: one dict lookup instead of two.
_SCALARS = _query.SCALARS
_pack = keylib.pack


def _as_encoder(store: Store, value: encoders.Encoder | str) -> encoders.Encoder:
    if isinstance(value, str):
        found = store._encoders.get(value)
        if found is None:
            raise NotFound(
                f"no encoder named {value!r}; register it with store.add_encoder()"
            )
        return found
    if not isinstance(value, encoders.Encoder):
        raise TypeError("encoder must be an acid.encoders.Encoder or its name")
    return value


def _as_compressor(
    store: Store, value: encoders.Compressor | str
) -> encoders.Compressor:
    if isinstance(value, str):
        found = store._compressors.get(value) or store._load_compressor(value)
        if found is None:
            raise NotFound(
                f"no compressor named {value!r}; register it with store.add_encoder()"
            )
        return found
    if not isinstance(value, encoders.Compressor):
        raise TypeError("compressor must be an acid.encoders.Compressor or its name")
    store.add_encoder(value)
    return value


class Collection:
    """Records of one kind in a :class:`~acid.Store`, with their indexes.

    ``info`` is the collection's name. ``key_func(rec)`` makes a record's
    key (a tuple, or a value wrapped into a 1-tuple); without it keys come
    from the counter ``counter_name`` (default ``"key:<name>"``), 1, 2, 3...
    ``encoder`` defaults to :data:`acid.encoders.JSON` (or to the encoder the
    collection was created with); ``compressor`` to the one it last used, else
    :data:`acid.encoders.PLAIN`.
    """

    def __init__(
        self,
        store: Store,
        info: str,
        key_func: Callable[[Any], Any] | None = None,
        encoder: encoders.Encoder | str | None = None,
        compressor: encoders.Compressor | str | None = None,
        counter_name: str | None = None,
    ) -> None:
        name = info
        if not isinstance(name, str) or not name:
            raise TypeError("a collection name must be a non-empty str")
        if key_func is not None and not callable(key_func):
            raise TypeError("key_func must be callable")
        self.store = store
        self.name = name
        self.key_func = key_func
        self.indices: dict[str, Index] = {}
        self._indexes: tuple[Index, ...] = ()
        enc = None if encoder is None else _as_encoder(store, encoder)
        comp = None if compressor is None else _as_compressor(store, compressor)
        meta = store.get_meta(KIND_TABLE, name)
        if meta is None:
            meta = store.in_txn(
                lambda: self._create(enc, comp, counter_name), write=True
            )
        stored = meta["encoder"]
        if enc is None:
            enc = self._stored_encoder(stored)
        elif enc.name != stored:
            raise ConfigError(
                f"collection {name!r} was created with encoder {stored!r}, "
                f"not {enc.name!r}; open it with encoder={stored!r}"
            )
        if comp is None:
            comp = _as_compressor(store, meta["compressor"])
        assert comp.id is not None  # registered compressors have their id
        self.id: int = meta["id"]
        self.encoder: encoders.Encoder = enc
        self.compressor: encoders.Compressor = comp
        self.counter_name: str = counter_name or meta["counter"]
        self._kprefix = keylib.pack((self.id,), store.prefix)
        self._ctx = store._ctx
        self._engine_get = store.engine.get
        self._pack = enc.pack
        self._unpack = enc.unpack
        self._cid: int = comp.id
        self._cbyte = bytes([self._cid])
        # Indexes stored for this collection that this object has not declared:
        # writing through it would let them drift, so writes refuse (see put).
        self._undeclared: set[str] = {n[1] for n, _ in store._index_metas(name)}
        store._register_live(self)

    def _create(self, enc: Any, comp: Any, counter: str | None) -> dict[str, Any]:
        store = self.store
        meta = store.get_meta(KIND_TABLE, self.name)  # another writer may have won
        if meta is None:
            meta = {
                "name": self.name,
                "id": store._new_id(),
                "encoder": (enc or encoders.JSON).name,
                "compressor": (comp or encoders.PLAIN).name,
                "counter": counter or f"key:{self.name}",
            }
            store.set_meta(KIND_TABLE, self.name, meta)
        return meta

    def _stored_encoder(self, name: str) -> encoders.Encoder:
        found = self.store._encoders.get(name)
        if found is None:
            raise ConfigError(
                f"collection {self.name!r} uses encoder {name!r}, which is not "
                "registered; call store.add_encoder() before opening it"
            )
        return found

    def __repr__(self) -> str:
        return f"<acid.Collection {self.name!r} id={self.id}>"

    # -- values -----------------------------------------------------------

    def _encode(self, rec: Any) -> bytes:
        # b"..." + any buffer gives bytes, so encoders may return bytearray.
        data = self._pack(rec)
        if self._cid:
            packed = self.compressor.compress(bytes(data))
            if len(packed) < len(data):
                return self._cbyte + packed
        return b"\x00" + data

    def _decompress(self, value: bytes) -> bytes:
        if not value:
            raise ConfigError("a stored value is empty; it was not written by acid")
        cid = value[0]
        if cid == 0:
            return value[1:]
        comp = (
            self.compressor if cid == self._cid else self.store._compressor_by_id(cid)
        )
        return comp.decompress(value[1:])

    def _decode(self, value: bytes) -> Any:
        if value and value[0] == 0:
            return self._unpack(value[1:])
        return self._unpack(self._decompress(value))

    # -- indexes ----------------------------------------------------------

    def add_index(self, name: str, func: Callable[[Any], Any]) -> Index:
        """Declare the index ``name`` computed by ``func(record)``.

        The index's metadata persists; the function does not, so declare it
        again each time the collection is opened. A new index on a collection
        that already has records is filled in the same transaction.
        """
        if not isinstance(name, str) or not name:
            raise TypeError("an index name must be a non-empty str")
        if name in self.indices:
            raise NameInUse(f"collection {self.name!r} already has an index {name!r}")
        if not callable(func):
            raise TypeError("the index function must be callable")
        store = self.store
        info = store.get_meta(KIND_INDEX, (self.name, name))
        if info is None:
            info = store.in_txn(lambda: self._create_index(name, func), write=True)
        idx = Index(self, info, func)
        self.indices[name] = idx
        self._indexes = tuple(self.indices.values())
        self._undeclared.discard(name)
        for other in self.store._live_collections(self.name):
            if name not in other.indices:  # they must declare it before writing
                other._undeclared.add(name)
        return idx

    def _refuse_write(self) -> None:
        names = ", ".join(sorted(self._undeclared))
        raise ConstraintError(
            f"collection {self.name!r} has stored indexes this Collection object "
            f"has not declared ({names}); writing through it would leave them "
            "stale. Call add_index() for each (index functions are not stored) "
            "before writing."
        )

    def _create_index(self, name: str, func: Callable[[Any], Any]) -> dict[str, Any]:
        store = self.store
        info = store.get_meta(KIND_INDEX, (self.name, name))
        if info is not None:
            return info
        info = {"name": name, "id": store._new_id(), "collection": self.name}
        store.set_meta(KIND_INDEX, (self.name, name), info)
        idx = Index(self, info, func)
        txn = self._ctx.get()
        start, stop = _query.bounds(self._kprefix)
        # The iterator stays valid while the entries are written (the engine
        # contract), so the records are streamed, not loaded into a list.
        for k, v in txn.iter(start):  # type: ignore[union-attr]
            if k >= stop:
                break
            idx.update(
                txn, k[len(self._kprefix) :], _NONE, idx.entries(self._decode(v))
            )
        return info

    # -- writes -----------------------------------------------------------

    def put(self, rec: Any, key: Any = None) -> tuple[Any, ...]:
        """Create or replace a record; return its key.

        ``key`` overrides the key function (a scalar becomes a 1-tuple).
        Index entries change in the same transaction as the record.
        """
        if self._undeclared:
            self._refuse_write()
        txn = self._ctx.get()
        if txn is None:
            return self.store.in_txn(lambda: self.put(rec, key), write=True)
        if not txn.write:
            raise TxnError(
                "cannot put inside a read transaction; use begin(write=True)"
            )
        if key is None:
            if self.key_func is None:
                key = (self.store._count(self.counter_name, 1, 1),)
            else:
                key = self.key_func(rec)
        if type(key) is not tuple:
            key = (key,) if type(key) in _SCALARS else _query.as_tuple(key)
        rkey = _pack(key)
        # _encode inlined for the plain compressor: the insert hot path.
        value = self._encode(rec) if self._cid else b"\x00" + self._pack(rec)
        full = self._kprefix + rkey
        indexes = self._indexes
        if not indexes:
            txn.put(full, value)
            return key
        if len(indexes) == 1:  # no list comprehension frame for the usual case
            new = [indexes[0].entries(rec)]
        else:
            new = [idx.entries(rec) for idx in indexes]
        old_value = txn.replace(full, value)
        if old_value is None:
            tail = SEP + rkey
            put = txn.put
            for entries in new:
                for p in entries:
                    put(p + tail, rkey)
            return key
        try:
            old_rec = self._decode(old_value)
            old = [idx.entries(old_rec) for idx in self._indexes]
        except BaseException:
            txn.put(full, old_value)  # leave the transaction as it was
            raise
        for idx, o, n in zip(self._indexes, old, new, strict=True):
            idx.update(txn, rkey, o, n)
        return key

    def delete(self, key: Any) -> bool:
        """Delete the record under ``key`` and its index entries.

        Returns whether there was one.
        """
        if self._undeclared:
            self._refuse_write()
        txn = self._ctx.get()
        if txn is None:
            return self.store.in_txn(lambda: self.delete(key), write=True)
        if not txn.write:
            raise TxnError(
                "cannot delete inside a read transaction; use begin(write=True)"
            )
        rkey = keylib.pack(_query.as_tuple(key))
        full = self._kprefix + rkey
        if not self._indexes:
            return txn.delete(full)
        old_value = txn.pop(full)
        if old_value is None:
            return False
        try:
            old_rec = self._decode(old_value)
            old = [idx.entries(old_rec) for idx in self._indexes]
        except BaseException:
            txn.put(full, old_value)
            raise
        for idx, entries in zip(self._indexes, old, strict=True):
            idx.update(txn, rkey, entries, _NONE)
        return True

    # -- reads ------------------------------------------------------------

    def get(self, key: Any, default: Any = None, raw: bool = False) -> Any:
        """The record under ``key`` (a scalar is a 1-tuple), or ``default``.

        With ``raw=True``, the encoded bytes instead of the decoded record.
        """
        full = keylib.pack(
            key if type(key) is tuple else _query.as_tuple(key), self._kprefix
        )
        txn = self._ctx.get()
        value = self._engine_get(full) if txn is None else txn.get(full)
        if value is None:
            return default
        if raw:
            return self._decompress(value)
        # _decode inlined: this is the hottest read path (bench/layer_bench.py).
        if value and value[0] == 0:
            return self._unpack(value[1:])
        return self._unpack(self._decompress(value))

    def _scan(
        self,
        what: str,
        key: Any,
        lo: Any,
        hi: Any,
        prefix: Any,
        reverse: Any,
        max: int | None,  # noqa: A002
        include: bool,
        raw: bool = False,
    ) -> Iterator[Any]:
        start, stop = _query.bounds(
            self._kprefix, key=key, lo=lo, hi=hi, prefix=prefix, include=include
        )
        decode = plain = None
        if what != "keys":
            decode = self._decompress if raw else self._decode
            plain = bytes if raw else self._unpack
        return _query.scan(
            self.store,
            start,
            stop,
            reverse,
            max,
            key_prefix=None if what == "values" else self._kprefix,
            decode=decode,
            plain=plain,
        )

    def items(
        self,
        key: Any = None,
        lo: Any = None,
        hi: Any = None,
        prefix: Any = None,
        reverse: Any = False,
        max: int | None = None,  # noqa: A002
        include: bool = False,
        raw: bool = False,
    ) -> Iterator[tuple[tuple[Any, ...], Any]]:
        """Yield ``(key, record)`` in key order.

        ``key`` matches exactly; ``prefix`` is an element-wise tuple prefix;
        ``lo`` is inclusive and ``hi`` exclusive (``include=True`` also takes
        every key starting with ``hi``); ``max`` caps the count (``0`` yields
        nothing); ``raw`` yields encoded bytes instead of records.
        """
        return self._scan("items", key, lo, hi, prefix, reverse, max, include, raw)

    def keys(
        self,
        key: Any = None,
        lo: Any = None,
        hi: Any = None,
        prefix: Any = None,
        reverse: Any = None,
        max: int | None = None,  # noqa: A002
        include: bool = False,
    ) -> Iterator[tuple[Any, ...]]:
        """Yield keys in key order; arguments as for :meth:`items`."""
        return self._scan("keys", key, lo, hi, prefix, reverse, max, include)

    def values(
        self,
        key: Any = None,
        lo: Any = None,
        hi: Any = None,
        prefix: Any = None,
        reverse: Any = None,
        max: int | None = None,  # noqa: A002
        include: bool = False,
        raw: bool = False,
    ) -> Iterator[Any]:
        """Yield records in key order; arguments as for :meth:`items`."""
        return self._scan("values", key, lo, hi, prefix, reverse, max, include, raw)

    def find(
        self,
        key: Any = None,
        lo: Any = None,
        hi: Any = None,
        prefix: Any = None,
        reverse: Any = None,
        include: bool = False,
        raw: bool = False,
        default: Any = None,
    ) -> Any:
        """The first record in the range, or ``default``."""
        return next(self.values(key, lo, hi, prefix, reverse, 1, include, raw), default)

    def findkey(
        self,
        key: Any = None,
        lo: Any = None,
        hi: Any = None,
        prefix: Any = None,
        reverse: Any = None,
        include: bool = False,
        raw: bool = False,
        default: Any = None,
    ) -> Any:
        """The first key in the range, or ``default``.

        With ``raw=True`` the key comes as a :class:`acid.Key` over its
        stored bytes, decoded only when an element is read.
        """
        found = next(self.keys(key, lo, hi, prefix, reverse, 1, include), default)
        if raw and found is not default:
            return keylib.Key(*found)
        return found


def add_index(coll: Collection, name: str, func: Callable[[Any], Any]) -> Index:
    """Same as ``coll.add_index(name, func)``."""
    return coll.add_index(name, func)


@dataclass
class CheckReport:
    """What :func:`check` found. ``ok`` is true when nothing is wrong."""

    #: (collection, index, index tuple, record key) entries that should exist.
    missing: list[tuple[str, str, tuple, tuple]] = field(default_factory=list)
    #: (collection, index, index tuple, record key) entries that should not.
    stale: list[tuple[str, str, tuple, tuple]] = field(default_factory=list)
    #: (collection, index) stored indexes with no live function to check.
    unchecked: list[tuple[str, str]] = field(default_factory=list)
    checked_entries: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.stale)


def check(store: Store) -> CheckReport:
    """Re-derive every index entry from the records and compare.

    Runs in one read transaction (or the active one). Indexes whose function
    is not declared on a live Collection object are listed as ``unchecked``.
    """
    return store.in_txn(lambda: _check(store))


def _check(store: Store) -> CheckReport:
    report = CheckReport()
    live: dict[int, Index] = {}
    with store._lock:
        for group in store._live.values():
            for coll in group:
                for idx in coll.indices.values():
                    live[idx.id] = idx
    for (cname, iname), info in store.iter_meta(KIND_INDEX):
        if info["id"] not in live:
            report.unchecked.append((cname, iname))
    txn = store._ctx.get()
    for idx in live.values():
        _check_index(txn, idx, report)
    return report


def _check_index(txn: Any, idx: Index, report: CheckReport) -> None:
    coll = idx.coll
    expected: dict[bytes, bytes] = {}
    start, stop = _query.bounds(coll._kprefix)
    for k, v in txn.iter(start):
        if k >= stop:
            break
        rkey = k[len(coll._kprefix) :]
        tail = SEP + rkey
        expected.update((p + tail, rkey) for p in idx.entries(coll._decode(v)))
    actual: dict[bytes, bytes] = {}
    start, stop = _query.bounds(idx._prefix)
    for k, v in txn.iter(start):
        if k >= stop:
            break
        actual[k] = v
    report.checked_entries += len(actual)
    missing = expected.keys() - actual.keys()
    # An entry whose value is not its record key would fetch the wrong record.
    stale = {k for k, v in actual.items() if expected.get(k) != v}
    for bucket, keys in ((report.missing, missing), (report.stale, stale)):
        for k in sorted(keys):
            tup, rkey = keylib.unpacks(k, idx._prefix)
            bucket.append((coll.name, idx.name, tup, rkey))
