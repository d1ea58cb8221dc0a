"""Expiry of records: deadlines, the expiry queue, and live-record filters.

A collection with expiry enabled (its ``"table"`` metadata names an
``expiry`` space id ``E``) keeps, for each record that has a deadline:

- ``P + pack((E, 0)) + rkey`` -> ``pack((deadline,))``: found by record key,
  so every read can tell whether the record it found is still alive;
- ``P + pack((E, 1, deadline)) + SEP + rkey`` -> ``rkey``: the expiry queue,
  in deadline order, so sweeping costs O(expired), not O(records).

A record is expired when ``deadline <= clock()``. Expired records are
invisible to every read path of the collection and of its indexes at once,
and removed by :meth:`acid.Store.expire` or when a write touches them.
Collections without expiry never reach this module.

>>> import acid
>>> now = [1000.0]
>>> store = acid.open("skiplist:/", clock=lambda: now[0])
>>> sessions = store.add_collection("sessions", ttl=60)
>>> sessions.put({"user": "ada"}, key="s1")
('s1',)
>>> sessions.put({"user": "alan"}, key="s2", ttl=acid.FOREVER)
('s2',)
>>> now[0] += 60
>>> sessions.get("s1"), [k for k in sessions.keys()]
(None, [('s2',)])
>>> store.expire()
1
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

from acid import _query, _ttl, keylib
from acid._layout import KIND_TABLE, SEP
from acid._txn import active, spoil
from acid.errors import CorruptionError, SchemaError

if TYPE_CHECKING:
    from acid._layout import ValueCodec
    from acid.engines import Txn
    from acid.store import CheckReport, Store

__all__ = ["Expiry", "ExpiryOps"]

_DEAD: Any = object()

#: The methods an expiring collection replaces on its instance.
_EXPIRING = ("put", "delete", "get", "_scan", "put_many", "get_many", "delete_many")


class Expiry:
    """The expiry state of one collection (``coll.expiry``)."""

    def __init__(
        self, store: Store, space_id: int, default: float | None, coll_name: str
    ) -> None:
        self.store = store
        self.space_id = space_id
        #: Seconds a record put with ``ttl=None`` lives, or None (forever).
        self.default = default
        self.coll_name = coll_name
        self._by_key = keylib.pack((space_id, 0), store.prefix)
        self._queue = keylib.pack((space_id, 1), store.prefix)
        self._queue_start, self._queue_stop = keylib.prefix_range(
            (space_id, 1), store.prefix
        )

    # -- one record -------------------------------------------------------

    def deadline(self, txn: Txn, rkey: bytes) -> float | None:
        """The deadline of the record ``rkey`` (packed key), or None."""
        raw = txn.get(self._by_key + rkey)
        if raw is None:
            return None
        try:
            (when,) = keylib.unpack(raw)
            return float(when)
        except (ValueError, TypeError) as exc:
            raise CorruptionError(
                f"collection {self.coll_name!r}: an expiry deadline is unreadable"
            ) from exc

    def alive(self, txn: Txn, rkey: bytes, now: float | None = None) -> bool:
        """Whether the record ``rkey`` has not expired (at ``now``)."""
        when = self.deadline(txn, rkey)
        if when is None:
            return True
        return when > (self.store.clock() if now is None else now)

    def set_deadline(self, txn: Txn, rkey: bytes, when: float | None) -> None:
        """Give the record ``rkey`` the deadline ``when`` (None: none).

        Either both spaces change or neither does: the new entries are
        written first, then the old queue entry is deleted; if any of that
        fails (a key too long for the engine, say), what was written is
        undone.
        """
        old = self.deadline(txn, rkey)
        if old == when:
            return
        by_key = self._by_key + rkey
        before = None if old is None else keylib.pack((old,))
        queue = None if when is None else self._queue_key(when, rkey)

        def undo() -> None:
            if before is None:
                txn.delete(by_key)
            else:
                txn.put(by_key, before)
            if queue is not None:
                txn.delete(queue)

        try:
            if queue is not None:
                txn.put(by_key, keylib.pack((when,)))
                txn.put(queue, rkey)
            else:
                txn.delete(by_key)
            if old is not None:  # last: if it fails, the new entries go too
                txn.delete(self._queue_key(old, rkey))
        except BaseException:
            _undo(txn, undo)
            raise

    def _queue_key(self, when: float, rkey: bytes) -> bytes:
        return keylib.pack((when,), self._queue) + SEP + rkey

    def due(self, txn: Txn, now: float, limit: int) -> list[bytes]:
        """Packed keys of up to ``limit`` records whose deadline is <= now."""
        stop = keylib.prefix_range((now,), self._queue)[1]
        out: list[bytes] = []
        for k, v in txn.iter(self._queue_start):
            if k >= stop or len(out) >= limit:
                break
            out.append(v)
        return out

    # -- reads ------------------------------------------------------------

    def scan(
        self,
        start: bytes,
        stop: bytes,
        reverse: Any,
        max: int | None,
        fn: Callable[[Any, bytes, bytes], Any],
        rkey_of: Callable[[bytes, bytes], bytes],
    ) -> Iterator[Any]:
        """``_query.scan`` of ``fn`` rows, skipping expired records.

        ``rkey_of(key, value)`` gives the packed record key of a row.
        """
        _query.check_max(max)
        now = self.store.clock()
        alive = self.alive

        def row(txn: Any, k: bytes, v: bytes) -> Any:
            return fn(txn, k, v) if alive(txn, rkey_of(k, v), now) else _DEAD

        rows = _query.scan(self.store, start, stop, reverse, None, row)
        live = (r for r in rows if r is not _DEAD)
        return live if max is None else islice(live, max)

    # -- consistency ------------------------------------------------------

    def check(self, records: set[bytes], report: CheckReport) -> None:
        """Compare the two expiry spaces with each other and the records.

        ``records`` are the packed keys of the collection's records.
        Differences are reported as entries of the index ``"(expiry)"``.
        """
        skip_key = len(self._by_key)
        by_key: dict[bytes, float] = {}
        queued: set[tuple[float, bytes]] = set()
        txn = self.store.active()
        for k, v in txn.iter(self._by_key):
            if not k.startswith(self._by_key):
                break
            rkey = k[skip_key:]
            by_key[rkey] = keylib.unpack(v)[0]
        for k, _ in txn.iter(self._queue_start):
            if k >= self._queue_stop:
                break
            (when,), rkey = keylib.unpacks(k, self._queue)
            queued.add((when, keylib.pack(rkey)))
        report.checked_entries += len(by_key) + len(queued)
        expected = {(when, rkey) for rkey, when in by_key.items()}
        name = "(expiry)"
        for when, rkey in sorted(expected - queued):
            report.missing.append((self.coll_name, name, (when,), keylib.unpack(rkey)))
        for when, rkey in sorted(queued - expected):
            report.stale.append((self.coll_name, name, (when,), keylib.unpack(rkey)))
        for rkey in sorted(by_key.keys() - records):
            report.stale.append(
                (self.coll_name, name, (by_key[rkey],), keylib.unpack(rkey))
            )


_SPOILED = (
    "a record was written but its deadline could not be; the transaction "
    "can only be aborted (leave its block)"
)


def _set_deadlines(txn: Txn, exp: Expiry, rkeys: Any, when: float | None) -> None:
    """Set the deadline of each record written just before; if that fails
    the records are written without it, so the transaction is spoiled (it
    can only abort: see ``acid._txn.spoil``) rather than left half done."""
    try:
        for rkey in rkeys:
            exp.set_deadline(txn, rkey, when)
    except BaseException:
        spoil(txn, _SPOILED)
        raise


class ExpiryOps:
    """Expiry for a Collection (mixed in).

    A collection gets an expiry space the first time it is declared with a
    ttl or a record is put with one (a schema change). From then on this
    object's ``put``, ``delete``, ``get`` and ``_scan`` are the ``_expiring_``
    versions below, set as instance attributes (they call the class's own
    methods for the plain work), so collections without expiry pay nothing.
    """

    if TYPE_CHECKING:  # what they use of Collection
        store: Store
        name: str
        uid: bytes | None
        key_func: Callable[[Any], Any] | None
        counter_name: str
        expiry: Expiry | None
        key_prefix: bytes
        codec: ValueCodec

        @property
        def attached(self) -> bool: ...

        def get(self, key: Any, default: Any = None, raw: bool = False) -> Any: ...
        def put(
            self, rec: Any, key: Any = None, *, ttl: Any = None
        ) -> tuple[Any, ...]: ...
        def delete(self, key: Any) -> bool: ...
        def put_many(self, records: Any) -> list[tuple[Any, ...]]: ...
        def delete_many(self, keys: Any) -> int: ...

    def _gone(self) -> None:
        raise SchemaError(
            f"collection {self.name!r} cannot be used: it was dropped, or "
            "created in a transaction that rolled back. Open it again with "
            "store.add_collection()."
        )

    def sync_expiry(self, info: dict[str, Any]) -> None:
        """Match the expiry state to the collection's stored metadata."""
        space, default = info.get("expiry"), info.get("ttl")
        if space is None:
            if self.expiry is not None:  # rolled back, or another store's
                self.expiry = None
                for name in _EXPIRING:
                    delattr(self, name)
            # Otherwise __dict__ is left alone: reading it would turn the
            # object's inline attributes into a dict, and every attribute
            # read on the get path would get slower (CPython 3.11+).
            return
        exp = self.expiry
        if (
            exp is None
            or exp.space_id != space
            or exp.default != default
            or exp.coll_name != self.name  # renamed
        ):
            self.expiry = Expiry(self.store, space, default, self.name)
        self.__dict__.update(
            put=self.put_with_ttl,
            delete=self._expiring_delete,
            get=self._expiring_get,
            _scan=self._expiring_scan,
            put_many=self._expiring_put_many,
            get_many=self._expiring_get_many,
            delete_many=self._expiring_delete_many,
        )

    def declare_ttl(self, ttl: Any) -> None:
        """Make ``ttl`` the default of records put without one (stored)."""
        secs = _ttl.check_ttl(ttl)
        default = None if secs == _ttl.FOREVER else secs
        exp = self.expiry
        if exp is None or exp.default != default:
            self.store.in_txn(lambda: self._enable_expiry(default, True), write=True)

    def _enable_expiry(self, default: float | None, set_default: bool) -> None:
        store = self.store
        meta = store.get_meta(KIND_TABLE, self.name)
        if meta is None or meta.get("uid") != self.uid:
            self._gone()
        assert meta is not None
        if meta.get("expiry") is not None and (
            not set_default or meta.get("ttl") == default
        ):
            self.sync_expiry(meta)
            return
        store.schema.changed()
        if meta.get("expiry") is None:
            meta["expiry"] = store.schema.allocate_id()
        if set_default:
            meta["ttl"] = default
        store.set_meta(KIND_TABLE, self.name, meta)
        store.schema.reconcile_peers()
        self.sync_expiry(meta)

    def put_with_ttl(
        self, rec: Any, key: Any = None, ttl: Any = None
    ) -> tuple[Any, ...]:
        """``put(rec, key, ttl=ttl)`` (which it is, once expiry is enabled).

        Like ``put``, a put that fails changes nothing: the deadline (which
        reads the clock) is computed first, and the deadline entries are
        written before the record when its key is known, undone if the
        record's put then fails.
        """
        _ttl.check_ttl(ttl)

        def run() -> tuple[Any, ...]:
            if self.expiry is None:
                self._enable_expiry(None, False)
            exp = self.expiry
            assert exp is not None
            if ttl is _ttl.KEEP:
                return type(self).put(self, rec, key)
            when = _ttl.deadline(ttl, exp.default, self.store.clock)
            txn = self.store.active()
            k = key
            if k is None and self.key_func is not None:
                k = self.key_func(rec)
            if k is None:  # a counter key: a new record, written first
                k = type(self).put(self, rec, k)
                try:
                    exp.set_deadline(txn, keylib.pack(k), when)
                except BaseException:

                    def undo() -> None:
                        type(self).delete(self, k)
                        self.store.bump(self.counter_name, -1, 1)

                    _undo(txn, undo)
                    raise
                return k
            rkey = keylib.pack(k if type(k) is tuple else _query.as_tuple(k))
            before = exp.deadline(txn, rkey)
            exp.set_deadline(txn, rkey, when)  # changes nothing if it fails
            try:
                return type(self).put(self, rec, k)
            except BaseException:
                _undo(txn, lambda: exp.set_deadline(txn, rkey, before))
                raise

        return self.store.in_txn(run, write=True)

    def _expiring_put_many(self, records: Any) -> list[tuple[Any, ...]]:
        """``put_many``: the plain batch (all or nothing), then each record
        gets the collection's default deadline, as ``put`` without a ttl."""
        exp = self.expiry
        assert exp is not None

        recs = _query.many(records, "records", "put_many")

        def run() -> list[tuple[Any, ...]]:
            when = _ttl.deadline(None, exp.default, self.store.clock)  # first:
            keys = type(self).put_many(self, recs)  # a clock may raise
            _set_deadlines(self.store.active(), exp, map(keylib.pack, keys), when)
            return keys

        return self.store.in_txn(run, write=True)

    def _expiring_get_many(self, keys: Any, default: Any = None) -> list[Any]:
        """``get_many`` from one snapshot, expired records as ``default``."""
        keys = _query.many(keys, "keys", "get_many")
        return self.store.in_txn(lambda: [self.get(k, default) for k in keys])

    def _expiring_delete_many(self, keys: Any) -> int:
        """``delete_many``: the plain batch; only records still alive count."""
        exp = self.expiry
        assert exp is not None
        keys = _query.many(keys, "keys", "delete_many")
        rkeys = list(dict.fromkeys(keylib.pack(_query.as_tuple(k)) for k in keys))

        def run() -> int:
            txn = self.store.active()
            now = self.store.clock()
            prefix = self.key_prefix
            alive = sum(
                1
                for r in rkeys
                if txn.get(prefix + r) is not None and exp.alive(txn, r, now)
            )
            type(self).delete_many(self, [keylib.unpack(r) for r in rkeys])
            _set_deadlines(txn, exp, rkeys, None)
            return alive

        return self.store.in_txn(run, write=True)

    def _expiring_delete(self, key: Any) -> bool:
        exp = self.expiry
        assert exp is not None

        def run() -> bool:
            rkey = keylib.pack(_query.as_tuple(key))
            alive = exp.alive(self.store.active(), rkey)
            existed = type(self).delete(self, key)
            exp.set_deadline(self.store.active(), rkey, None)
            return existed and alive

        return self.store.in_txn(run, write=True)

    def _expiring_get(self, key: Any, default: Any = None, raw: bool = False) -> Any:
        exp = self.expiry
        assert exp is not None
        if not self.attached:
            self._gone()
        rkey = keylib.pack(key if type(key) is tuple else _query.as_tuple(key))
        txn = active(self.store.context)
        own = txn is None
        if own:  # one snapshot for the record and its deadline
            txn = self.store.engine.begin()
        assert txn is not None
        try:
            value = txn.get(self.key_prefix + rkey)
            if value is None or not exp.alive(txn, rkey):
                return default
        finally:
            if own:
                txn.abort()
        return self.codec.decompress(value) if raw else self.codec.decode(value)

    def _expiring_scan(
        self,
        what: str,
        key: Any,
        lo: Any,
        hi: Any,
        prefix: Any,
        reverse: Any,
        max: int | None,
        include: bool,
        raw: bool = False,
    ) -> Iterator[Any]:
        if not self.attached:
            self._gone()
        exp = self.expiry
        assert exp is not None
        start, stop = _query.bounds(
            self.key_prefix, key=key, lo=lo, hi=hi, prefix=prefix, include=include
        )
        skip = len(self.key_prefix)
        decode = self.codec.decompress if raw else self.codec.decode
        unpack = keylib.unpack
        fn: Callable[[Any, bytes, bytes], Any]
        if what == "keys":
            fn = lambda txn, k, v: unpack(k[skip:])  # noqa: E731
        elif what == "values":
            fn = lambda txn, k, v: decode(v)  # noqa: E731
        else:
            fn = lambda txn, k, v: (unpack(k[skip:]), decode(v))  # noqa: E731
        return exp.scan(start, stop, reverse, max, fn, lambda k, v: k[skip:])

    def expire(self, batch: int = 1000) -> int:
        """Delete this collection's expired records; return how many.

        Inside a write block everything happens there; otherwise in
        transactions of at most ``batch`` records each. Costs O(expired):
        the expiry queue is read in deadline order.
        """
        if type(batch) is not int or batch < 1:
            raise ValueError(f"batch must be a positive int, not {batch!r}")
        exp = self.expiry
        if exp is None:
            return 0

        def run(limit: int) -> int:
            txn = self.store.active()
            due = exp.due(txn, self.store.clock(), limit)
            for rkey in due:
                type(self).delete(self, keylib.unpack(rkey))
                exp.set_deadline(txn, rkey, None)
            return len(due)

        total = 0
        while True:
            n = self.store.in_txn(lambda: run(batch), write=True)
            total += n
            if n < batch:
                return total


def _undo(txn: Txn, undo: Callable[[], Any]) -> None:
    """Run ``undo`` after a failed write; if even that fails, abort ``txn``."""
    if txn.ended:
        return
    try:
        undo()
    except BaseException:  # the transaction is unusable: end it whole
        try:
            txn.abort()
        except Exception:  # already ended by the engine
            pass
