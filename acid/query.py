"""Queries: say which records you want; the planner picks an index.

>>> import acid
>>> store = acid.open("skiplist:/")
>>> people = store.add_collection("people")
>>> _ = people.add_index("city_age", acid.fields("city", "age"))
>>> for i, city in enumerate(["Oslo", "Rome", "Oslo", "Oslo"]):
...     _ = people.put({"city": city, "age": 28 + 3 * i})
>>> q = people.query({"city": "Oslo", "age": {"$gte": 30, "$lt": 40}})
>>> [p["age"] for p in q.order_by("-age")]
[37, 34]
>>> print(q.explain())
SEARCH people USING INDEX city_age (city = 'Oslo' AND age >= 30 AND age < 40)
  ranges: 1
  filter: nothing
  order: none requested

A :class:`Query` is lazy and re-iterable: each iteration runs it again, in
the active transaction or in a read transaction of its own that lives as
long as the iterator. Without ``order_by`` the order of the results is the
plan's (record key order for a full scan, index order otherwise).

Inside a write transaction the matching keys are collected first; a record
is then read again when it is reached, and yielded only if it still exists
and still matches. So a loop that deletes or changes records of the same
collection sees each matching record at most once, with its current value.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from itertools import islice
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from acid import keylib
from acid._fields import candidates, packed, parse_path, resolve
from acid._plan import IndexInfo, Plan, plan
from acid._spec import FieldCond, Node, compile_spec, element_filter, words
from acid._txn import active
from acid.errors import QueryError, SchemaError

if TYPE_CHECKING:
    from acid.collection import Collection
    from acid.engines import Txn

__all__ = ["Query"]

#: Entries counted at most per candidate index when the planner must choose.
ESTIMATE_CAP = 1000
#: Snapshots a query takes at most to find one that its objects' schema
#: matches, while other writers keep changing the schema.
_SCHEMA_TRIES = 8
_INVERT = bytes(range(255, -1, -1))
Row = tuple[bytes, Any]  # (packed record key, record)


class Query:
    """A lazy, re-iterable query over one collection (see ``coll.query``)."""

    def __init__(
        self,
        coll: Collection,
        spec: dict[str, Any] | None = None,
        *,
        order: tuple[tuple[str, bool], ...] = (),
        limit: int | None = None,
        offset: int = 0,
    ) -> None:
        self.coll = coll
        self.node: Node = compile_spec(spec)
        self.spec = {} if spec is None else dict(spec)
        self._order = order
        self._limit = limit
        self._offset = offset
        self._cached: tuple[Any, Plan] | None = None

    def _copy(self, **changes: Any) -> Query:
        args: dict[str, Any] = {
            "order": self._order,
            "limit": self._limit,
            "offset": self._offset,
        }
        args.update(changes)
        new = Query.__new__(Query)
        new.coll, new.spec, new.node = self.coll, self.spec, self.node
        new._cached = None
        new._order, new._limit, new._offset = (
            args["order"],
            args["limit"],
            args["offset"],
        )
        return new

    def __repr__(self) -> str:
        return f"<acid.Query {self.coll.name} {words(self.spec)}>"

    # -- chaining ---------------------------------------------------------

    def order_by(self, *paths: str) -> Query:
        """Sort by these fields; ``"-age"`` sorts descending.

        Values sort in key order; a record without the field comes first
        (last when descending). A list sorts by its smallest element
        (largest when descending) among those that pass the element
        operators of the spec's first top-level condition on that field, or
        among all when there is none. Ties go in record key order, reversed
        when the last field is descending.
        """
        order = []
        for p in paths:
            if not isinstance(p, str):
                raise QueryError(f"order_by takes field paths (str), not {p!r}")
            desc = p.startswith("-")
            name = p[1:] if desc else p
            parse_path(name, "order_by")
            order.append((name, desc))
        return self._copy(order=tuple(order))

    def limit(self, n: int | None) -> Query:
        """At most ``n`` results (``None``: no limit)."""
        if n is not None and (type(n) is not int or n < 0):
            raise QueryError(f"limit takes an int >= 0 or None, not {n!r}")
        return self._copy(limit=n)

    def offset(self, n: int) -> Query:
        """Skip the first ``n`` results."""
        if type(n) is not int or n < 0:
            raise QueryError(f"offset takes an int >= 0, not {n!r}")
        return self._copy(offset=n)

    # -- results ----------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        return map(itemgetter(1), self._run())

    def items(self) -> Iterator[tuple[tuple[Any, ...], Any]]:
        """``(key, record)`` pairs."""
        unpack = keylib.unpack
        return ((unpack(k), rec) for k, rec in self._run())

    def keys(self) -> Iterator[tuple[Any, ...]]:
        """The keys of the matching records."""
        return map(keylib.unpack, map(itemgetter(0), self._run()))

    def first(self, default: Any = None) -> Any:
        """The first matching record (after ``offset``, within ``limit``),
        or ``default``."""
        one = 1 if self._limit is None else min(self._limit, 1)
        return next(iter(self._copy(limit=one)), default)

    def count(self) -> int:
        """How many records match (after ``offset`` and ``limit``)."""
        if not self.spec and self._limit is None and not self._offset:
            return len(self.coll)
        return sum(1 for _ in self._run())

    def delete(self) -> int:
        """Delete the matching records (indexes kept exact) in one transaction.

        Returns how many were deleted.
        """
        coll = self.coll

        def run() -> int:
            txn = coll.store.active()
            self._current(txn)
            keys = [keylib.unpack(k) for k, _ in self._rows(txn)]
            return sum(1 for key in keys if coll.delete(key))

        return coll.store.in_txn(run, write=True)

    def plan(self, txn: Txn | None = None) -> Plan:
        """The plan this query would run now.

        Kept while the collection's indexes stay the same, unless it was
        chosen on estimates (entry counts), which the data may change.
        """
        infos = index_infos(self.coll)
        key = (tuple(infos), tuple(i.id for i in self.coll.indices.values()))
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        p = coll_plan(self.coll, self.node, self._order, txn, infos)
        if p.estimate is None:
            self._cached = (key, p)
        return p

    def explain(self) -> str:
        """The plan in plain words: the index and ranges, or a full scan;
        what is filtered afterwards; how the order is obtained."""
        self.coll.store.schema.refresh()  # indexes dropped elsewhere
        p = self.plan()
        name = self.coll.name
        if p.index is None:
            lines = [f"SCAN {name} (every record)"]
        else:
            lines = [
                f"SEARCH {name} USING INDEX {p.index} ({p.describe_used()})",
                f"  ranges: {len(p.ranges)}",
            ]
        rest = p.residual.describe() if p.residual is not None else "everything"
        lines.append(f"  filter: {'nothing' if rest == 'everything' else rest}")
        if not self._order:
            lines.append("  order: none requested")
        elif p.ordered:
            lines.append(f"  order: by index {p.index} (no sort)")
        else:
            how = "bounded heap" if self._limit is not None else "sort"
            lines.append(f"  order: {how} on {_order_words(self._order)}")
        if self._offset or self._limit is not None:
            lines.append(f"  offset {self._offset}, limit {self._limit}")
        return "\n".join(lines)

    # -- execution --------------------------------------------------------

    def _run(self) -> Iterator[Row]:
        coll = self.coll
        txn = active(coll.store.context)
        if txn is not None:
            self._current(txn)
            if txn.write:
                return self._rerun(txn, list(self._rows(txn)))
            return self._rows(txn)
        return self._own(self._begin())

    def _current(self, txn: Txn) -> None:
        """Bring the collection's indexes up to date with ``txn``'s stored
        schema (another Store object or process may have dropped or added
        one): the plan must not read the entries of an index that is gone."""
        coll = self.coll
        store = coll.store
        schema = store.schema
        if txn.write:
            if txn is not schema.verified_txn:
                schema.verify(txn)
        elif txn.get(store.schema_key) != schema.token:
            schema.refresh()  # runs in txn: it is the active one
        if not coll.attached:
            raise SchemaError(f"collection {coll.name!r} is detached; open it again")

    def _begin(self) -> Txn:
        """A read transaction whose stored schema the live objects match."""
        store = self.coll.store
        schema = store.schema
        for _ in range(_SCHEMA_TRIES):
            txn = store.engine.begin()
            if txn.get(store.schema_key) == schema.token:
                break
            txn.abort()  # the schema moved: catch up, then take a new snapshot
            schema.refresh()
        else:
            txn = store.engine.begin()
        if not self.coll.attached:
            txn.abort()
            raise SchemaError(
                f"collection {self.coll.name!r} is detached; open it again"
            )
        return txn

    def _own(self, txn: Txn) -> Iterator[Row]:
        try:
            yield from self._rows(txn)
        finally:
            txn.abort()

    def _rerun(self, txn: Txn, rows: list[Row]) -> Iterator[Row]:
        # The caller may write between two next(): read each record again.
        get, kp, decode = txn.get, self.coll.key_prefix, self.coll.codec.decode
        pred = self.node.pred
        for k, _ in rows:
            value = get(kp + k)
            if value is not None:
                rec = decode(value)
                if pred(rec):
                    yield k, rec

    def _rows(self, txn: Txn) -> Iterator[Row]:
        p = self.plan(txn)
        stop = None if self._limit is None else self._offset + self._limit
        if self._order and p.ordered:
            return islice(self._alive(txn, self._ordered(txn, p)), self._offset, stop)
        rows = self._alive(txn, self._fetch(txn, p))
        if self._order:
            key = _sort_key(self._order, self.node)
            if stop is not None:
                return iter(heapq.nsmallest(stop, rows, key=key)[self._offset :])
            return iter(sorted(rows, key=key)[self._offset :])
        return islice(rows, self._offset, stop)

    def _alive(self, txn: Txn, rows: Iterator[Row]) -> Iterator[Row]:
        """``rows`` without the records that have expired (acid/_expiry.py)."""
        expiry = self.coll.expiry
        if expiry is None:
            return rows
        now = self.coll.store.clock()
        return (row for row in rows if expiry.alive(txn, row[0], now))

    def _fetch(self, txn: Txn, p: Plan, reverse: bool = False) -> Iterator[Row]:
        pred = _residual(p, self.node)
        if p.index is None:
            return _scan_records(txn, self.coll, pred or self.node.pred)
        return _index_rows(txn, self.coll, p, pred, reverse, True)

    def _ordered(self, txn: Txn, p: Plan) -> Iterator[Row]:
        """Rows in index order. A record is yielded at the entry of its sort
        value (see :meth:`order_by`); its other entries are passed over."""
        (path, desc) = self._order[0]
        parts = parse_path(path)
        keep = element_filter(_first_cond(self.node, path))
        pred = _residual(p, self.node)
        done: set[bytes] = set()
        rows = _index_rows(txn, self.coll, p, pred, desc, False)
        for k, rec, element in rows:
            if k not in done and _sort_value(rec, parts, desc, keep) == element:
                done.add(k)
                yield k, rec


def _residual(p: Plan, node: Node) -> Callable[[Any], bool] | None:
    """What to test on each fetched record (``None``: nothing)."""
    rest = node if p.residual is None else p.residual
    if not rest.fields and not rest.children:
        return None
    return rest.pred


def _order_words(order: tuple[tuple[str, bool], ...]) -> str:
    return ", ".join(f"{p} {'DESC' if d else 'ASC'}" for p, d in order)


def index_infos(coll: Collection) -> list[IndexInfo]:
    """The indexes of ``coll`` that declare their fields and can answer
    (not those still being built online: their entries are partial)."""
    return [
        IndexInfo(name, idx.fields)
        for name, idx in coll.indices.items()
        if idx.fields and idx.attached and not idx.building
    ]


def coll_plan(
    coll: Collection,
    node: Node,
    order: tuple[tuple[str, bool], ...],
    txn: Txn | None = None,
    infos: list[IndexInfo] | None = None,
) -> Plan:
    """Plan ``node`` over the indexes of ``coll``; ``txn`` for estimates."""

    def estimate(p: Plan) -> int:
        def run(t: Txn) -> int:
            assert p.index is not None
            base = coll.indices[p.index].key_prefix
            n = 0
            for lo, hi in p.ranges:
                start, end = base + lo, base + hi
                for key, _ in t.iter(start):
                    if key >= end or n >= ESTIMATE_CAP:
                        break
                    n += 1
            return n

        if txn is not None:
            return run(txn)
        own = active(coll.store.context) or coll.store.engine.begin()
        try:
            return run(own)
        finally:
            if own is not active(coll.store.context):
                own.abort()

    if infos is None:
        infos = index_infos(coll)
    return plan(node, infos, order, estimate)


def _scan_records(txn: Txn, coll: Collection, pred: Callable) -> Iterator[Row]:
    start, stop = keylib.prefix_range((), coll.key_prefix)
    skip = len(coll.key_prefix)
    codec = coll.codec
    decode, plain = codec.decode, codec.unpack
    for k, v in txn.iter(start):
        if k >= stop:
            return
        if v and v[0] == 0:
            try:
                rec = plain(v[1:])
            except Exception:  # decode() raises the CorruptionError
                rec = decode(v)
        else:
            rec = decode(v)
        if pred(rec):
            yield k[skip:], rec


def _index_rows(
    txn: Txn,
    coll: Collection,
    p: Plan,
    pred: Callable | None,
    reverse: bool,
    dedupe: bool,
) -> Iterator[tuple[Any, ...]]:
    """``(packed record key, record)`` for the entries in the plan's ranges,
    each record once with ``dedupe``; else ``(packed record key, record,
    element)`` once per entry, ``element`` the entry's packed order field."""
    assert p.index is not None
    idx = coll.indices[p.index]
    base = idx.key_prefix
    kp = coll.key_prefix
    get, decode, plain = txn.get, coll.codec.decode, coll.codec.unpack
    seen: set[bytes] = set()
    with_element = not dedupe
    ranges = reversed(p.ranges) if reverse else p.ranges
    for lo, hi in ranges:
        start, end = base + lo, base + hi
        if reverse:
            rows: Iterator[tuple[bytes, bytes]] = (
                kv for kv in txn.iter(end, reverse=True) if kv[0] < end
            )
            out = start.__gt__
        else:
            rows = txn.iter(start)
            out = end.__le__
        for k, rkey in rows:
            if out(k):
                break
            if dedupe:
                if rkey in seen:
                    continue
                seen.add(rkey)
            value = get(kp + rkey)
            if value is None:
                raise idx.corrupt(k, "names a record that does not exist")
            if value and value[0] == 0:
                try:
                    rec = plain(value[1:])
                except Exception:  # decode() raises the CorruptionError
                    rec = decode(value)
            else:
                rec = decode(value)
            if pred is None or pred(rec):
                if with_element:
                    yield rkey, rec, packed(keylib.unpacks(k, base)[0][p.order_pos])
                else:
                    yield rkey, rec


def _first_cond(node: Node, path: str) -> FieldCond | None:
    return next((c for c in node.fields if c.path == path), None)


def _sort_value(
    rec: Any, parts: tuple[str, ...], desc: bool, keep: Callable[[Any], bool]
) -> bytes | None:
    vals = [
        q
        for c in candidates(resolve(rec, parts))
        if (q := packed(c)) is not None and keep(c)
    ]
    if not vals:
        return None
    return max(vals) if desc else min(vals)


def _sort_key(
    order: tuple[tuple[str, bool], ...], node: Node
) -> Callable[[Row], tuple]:
    fields = [
        (parse_path(p), d, element_filter(_first_cond(node, p))) for p, d in order
    ]
    last_desc = order[-1][1]

    def key(row: Row) -> tuple:
        k, rec = row
        out = []
        for parts, desc, keep in fields:
            v = _sort_value(rec, parts, desc, keep)
            b = b"\x00" if v is None else b"\x01" + v
            out.append(b.translate(_INVERT) + b"\xff" if desc else b)
        out.append(k.translate(_INVERT) + b"\xff" if last_desc else k)
        return tuple(out)

    return key
