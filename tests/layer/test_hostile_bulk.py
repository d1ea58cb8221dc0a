"""put_many / get_many / delete_many against hostile input and failures.

Each test reproduces a way the bulk API (or the write path under it) lost
data, left index entries stale, or broke atomicity; they run on every
engine unless they need one.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hooked_engine import HookedEngine, HookedTxn

import acid
from acid import keylib
from acid.engines import Txn
from acid.errors import EngineError, MapFullError, TxnError

BAD = "refused"  # a value the breaking engine below refuses to store


class _BreakingTxn(HookedTxn):
    """Refuses any value containing ``BAD``; while ``engine.armed``, also
    refuses every delete, so that a failed batch cannot be undone."""

    def put(self, key: bytes, value: bytes) -> None:
        if BAD.encode() in value:
            raise EngineError("injected: value refused")
        self._txn.put(key, value)

    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        for key, value in items:
            self.put(key, value)

    def replace(self, key: bytes, value: bytes) -> bytes | None:
        old = self._txn.get(key)
        self.put(key, value)
        return old

    def delete(self, key: bytes) -> bool:
        if self._engine.armed:  # type: ignore[attr-defined]
            raise EngineError("injected: delete refused")
        return self._txn.delete(key)

    def pop(self, key: bytes) -> bytes | None:
        old = self._txn.get(key)
        if old is not None:
            self.delete(key)
        return old

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return [self._txn.get(k) for k in keys]

    def iter(self, key: bytes, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        return self._txn.iter(key, reverse)


class _BreakingEngine(HookedEngine):
    armed = False

    def begin(self, write: bool = False, timeout: float | None = None) -> Txn:
        return _BreakingTxn(self, self.inner.begin(write, timeout))


def _keys(coll: acid.Collection) -> list[tuple[Any, ...]]:
    return list(coll.keys())


# -- a batch that fails and cannot be undone must not let later writes escape


def test_map_full_mid_put_many_spoils_the_block(tmp_path: Path) -> None:
    """LMDB fills up inside put_many: the block's earlier and later writes
    must not land, and later calls in the block must say why."""
    store = acid.open(f"lmdb:{tmp_path}/db?map_size=1MiB")
    coll = store.add_collection("c", key_func=lambda r: r["k"])
    coll.add_index("v", lambda r: r["v"])
    coll.put({"k": "kept", "v": 0})
    with pytest.raises((MapFullError, TxnError)):
        with store.begin(write=True):
            coll.put({"k": "before", "v": 1})
            with pytest.raises(MapFullError):
                coll.put_many([{"k": i, "v": "x" * 50} for i in range(100_000)])
            # The transaction is dead: a write here must not commit alone.
            with pytest.raises((MapFullError, TxnError)):
                coll.put({"k": "after", "v": 2})
            with pytest.raises((MapFullError, TxnError)):
                coll.get("before")
    assert _keys(coll) == [("kept",)]
    assert coll.put({"k": "later", "v": 3}) == ("later",)  # the store is usable
    assert _keys(coll) == [("kept",), ("later",)]
    assert store.check().ok
    store.close()


def test_undo_that_fails_spoils_the_block() -> None:
    """A batch the engine refuses half-way, whose undo fails too: the
    block ends aborted, and writes after the failure do not autocommit."""
    engine = _BreakingEngine(acid.engines.from_url("skiplist:/"))
    store = acid.Store(engine)
    coll = store.add_collection("c", key_func=lambda r: r["k"])
    coll.add_index("v", lambda r: [r["v"], BAD] if r["v"] == "bad" else r["v"])
    coll.put_many([{"k": i, "v": i} for i in range(3)])
    engine.armed = True
    with pytest.raises(TxnError, match="undone"):
        with store.begin(write=True):
            coll.put({"k": "before", "v": 1})
            with pytest.raises(EngineError, match="injected"):
                coll.put_many([{"k": 0, "v": 5}, {"k": 9, "v": "bad"}])
            with pytest.raises(TxnError, match="undone"):
                coll.put({"k": "after", "v": 2})
            with pytest.raises(TxnError, match="undone"):
                coll.put_many([{"k": "after2", "v": 2}])
            with pytest.raises(TxnError, match="undone"):
                coll.get_many([0])
    engine.armed = False
    assert _keys(coll) == [(0,), (1,), (2,)]
    assert coll.get(0) == {"k": 0, "v": 0}
    assert store.check().ok


def test_delete_many_refused_half_way_is_undone_in_the_block() -> None:
    """The engine refuses a delete of delete_many: the undo only writes,
    so it succeeds, and the block goes on with its earlier writes."""
    engine = _BreakingEngine(acid.engines.from_url("skiplist:/"))
    store = acid.Store(engine)
    coll = store.add_collection("c", key_func=lambda r: r["k"])
    coll.add_index("v", lambda r: r["v"])
    coll.put_many([{"k": i, "v": i} for i in range(3)])
    with store.begin(write=True):
        coll.put({"k": "before", "v": 1})
        engine.armed = True
        with pytest.raises(EngineError, match="injected"):
            coll.delete_many([0, 1])
        engine.armed = False
        coll.put({"k": "after", "v": 2})
    assert _keys(coll) == [(0,), (1,), (2,), ("after",), ("before",)]
    assert store.check().ok


def test_failed_deadline_spoils_the_block() -> None:
    """An expiring put_many whose deadlines cannot be written: the records
    are written without them, so the block must not commit, nor let the
    writes after it commit alone."""
    engine = _BreakingEngine(acid.engines.from_url("skiplist:/"))
    clock = [1000.0]
    store = acid.Store(engine, clock=lambda: clock[0])
    coll = store.add_collection("c", key_func=lambda r: r["k"], ttl=60)
    coll.put({"k": "kept"})
    real = type(coll.expiry).set_deadline  # type: ignore[union-attr]

    def failing(self: Any, txn: Any, rkey: bytes, when: Any) -> None:
        if rkey == keylib.pack(("boom",)):
            raise EngineError("injected: deadline refused")
        real(self, txn, rkey, when)

    mp = pytest.MonkeyPatch()
    mp.setattr(type(coll.expiry), "set_deadline", failing)
    try:
        with pytest.raises(TxnError, match="deadline"):
            with store.begin(write=True):
                with pytest.raises(EngineError, match="injected"):
                    coll.put_many([{"k": "a"}, {"k": "boom"}])
                coll.put({"k": "after"})
    finally:
        mp.undo()
    assert _keys(coll) == [("kept",)]
    assert store.check().ok


# -- key and index functions that change the record they are given


def _raw(store: acid.Store) -> list[tuple[bytes, bytes]]:
    with store.engine.begin() as txn:
        return list(txn.iter(b""))


def _popping_store(open_store: Any) -> tuple[acid.Store, acid.Collection]:
    store = open_store()
    coll = store.add_collection("c", key_func=lambda r: r.pop("id"))
    coll.add_index("id", lambda r: r.get("id"))
    coll.add_index("v", lambda r: r["v"])
    return store, coll


def test_key_function_that_pops_the_key(open_store: Any, tmp_path: Path) -> None:
    """``key_func=lambda r: r.pop("id")``: put_many stored the record with
    its id but indexed it without (check() found missing entries), where
    put indexed it with; now both store and index the same record."""
    store, coll = _popping_store(open_store)
    recs = [{"id": i, "v": i % 3} for i in range(20)]
    keys = coll.put_many([dict(r) for r in recs])
    assert keys == [(i,) for i in range(20)]
    assert store.check().ok
    bulk = _raw(store)
    coll.delete_many(keys)
    for r in recs:
        coll.put(dict(r))
    assert _raw(store) == bulk
    coll.put_many([dict(r, v=9) for r in recs[:5]])  # over stored records
    assert store.check().ok
    assert sorted(coll.indices["v"].keys(9)) == [(i,) for i in range(5)]


def test_index_function_that_changes_the_record(open_store: Any) -> None:
    """An index function that changes its record: put_many writes what
    successive puts write (the record as encoded before the functions ran)."""
    store = open_store()
    coll = store.add_collection("c", key_func=lambda r: r["k"])

    def bump(r: dict) -> int:
        r["v"] = r["v"] + 1
        return int(r["v"])

    coll.add_index("bump", bump)
    recs = [{"k": i, "v": i} for i in range(10)]
    coll.put_many([dict(r) for r in recs])
    bulk = _raw(store)
    coll.delete_many(range(10))
    for r in recs:
        coll.put(dict(r))
    assert _raw(store) == bulk
    assert store.check().ok


# -- asyncio: a task created in a block runs after the block ended


def test_map_full_mid_blob_put_spoils_the_block(tmp_path: Path) -> None:
    """The same for a blob too large for the LMDB map: a later write in the
    block committed on its own."""
    store = acid.open(f"lmdb:{tmp_path}/db?map_size=1MiB")
    coll = store.add_collection("c", key_func=lambda r: r["k"])
    blobs = store.blobs("b")
    with pytest.raises(MapFullError):
        with store.begin(write=True):
            coll.put({"k": "before"})
            with pytest.raises(MapFullError):
                blobs.put("big", os.urandom(3 * 2**20))
            with pytest.raises(MapFullError):
                coll.put({"k": "after"})
    assert _keys(coll) == []
    coll.put({"k": "later"})
    assert _keys(coll) == [("later",)]
    store.close()


@pytest.mark.parametrize("ttl", [None, 60])
def test_task_inheriting_an_ended_block(open_store: Any, ttl: Any) -> None:
    """A task created inside a block that calls put_many / delete_many after
    the block committed: each call must run on its own (as put does), not
    fail with "transaction already committed" because the Collection had
    already checked that (ended) transaction."""
    store = open_store()
    coll = store.add_collection("c", key_func=lambda r: r["k"], ttl=ttl)
    coll.add_index("v", lambda r: r["v"])

    async def worker(base: int) -> list[Any]:
        await asyncio.sleep(0)  # the block ends meanwhile
        coll.put_many([{"k": base + i, "v": i} for i in range(5)])
        coll.delete_many([base])
        return coll.get_many(range(base, base + 5))

    async def main() -> list[list[Any]]:
        with store.begin(write=True):
            coll.put({"k": -1, "v": 0})  # the block's txn passed the checks
            tasks = [asyncio.create_task(worker(b)) for b in (100, 200)]
        return await asyncio.gather(*tasks)

    got = asyncio.run(main())
    assert got == [
        [None] + [{"k": b + i, "v": i} for i in range(1, 5)] for b in (100, 200)
    ]
    assert len(list(coll.keys())) == 9
    assert store.check().ok


# -- one key or one record where many were meant


@pytest.mark.parametrize("ttl", [None, 60])
def test_a_single_key_is_not_taken_for_many(open_store: Any, ttl: Any) -> None:
    """``delete_many("ab")`` deleted the records under "a" and "b";
    ``put_many(record)`` on a counter collection stored its field names as
    records. Both are refused now, before anything changes."""
    store = open_store()
    coll = store.add_collection("c", key_func=lambda r: r["k"], ttl=ttl)
    coll.put_many([{"k": k} for k in ("a", "b", "ab")])
    auto = store.add_collection("auto", ttl=ttl)
    before = _raw(store)
    for call, arg in [
        (coll.delete_many, "ab"),
        (coll.delete_many, b"ab"),
        (coll.get_many, "ab"),
        (auto.put_many, {"name": "Ann", "age": 3}),
        (auto.put_many, "ab"),
    ]:
        with pytest.raises(TypeError, match="single"):
            call(arg)
    for call in (coll.delete_many, coll.get_many, auto.put_many):
        with pytest.raises(TypeError, match="iterable"):
            call(7)
    assert _raw(store) == before
    assert coll.delete_many(["ab"]) == 1
    assert coll.get_many(iter(["a", "ab"])) == [{"k": "a"}, None]


def test_a_generator_failing_half_way_changes_nothing(open_store: Any) -> None:
    store = open_store()
    coll = store.add_collection("c", key_func=lambda r: r["k"])
    coll.add_index("v", lambda r: r["v"])
    coll.put_many([{"k": i, "v": i} for i in range(3)])
    before = _raw(store)

    def records() -> Iterator[dict]:
        yield {"k": 0, "v": 9}
        yield {"k": 7, "v": 7}
        raise TypeError("the source failed")

    def keys() -> Iterator[int]:
        yield 0
        raise TypeError("the source failed")

    with store.begin(write=True):
        coll.put({"k": "kept", "v": 0})
        for call, arg in [
            (coll.put_many, records()),
            (coll.delete_many, keys()),
            (coll.get_many, keys()),
        ]:
            with pytest.raises(TypeError, match="source failed"):
                call(arg)
    assert coll.get_many([0, 7, "kept"]) == [
        {"k": 0, "v": 0},
        None,
        {"k": "kept", "v": 0},
    ]
    assert store.check().ok
    assert len(_raw(store)) == len(before) + 2  # the record and its entry


# -- acid.aio had no bulk calls


def test_aio_bulk_calls(store: acid.Store) -> None:
    """acid.aio.Collection had no put_many / get_many / delete_many; they
    run on the transaction's thread, all or nothing, from many tasks."""
    import acid.aio

    async def main() -> None:
        astore = acid.aio.Store(store)
        coll = await astore.add_collection("c", key_func=lambda r: r["k"])
        await coll.add_index("v", lambda r: r["v"])

        async def load(base: int) -> list[tuple[Any, ...]]:
            return await coll.put_many({"k": base + i, "v": i} for i in range(50))

        bases = range(0, 500, 100)
        if getattr(store.engine, "concurrent_writers", False):
            # Writers that do not wait may lose a conflict (ConflictError,
            # to be retried by transact): load one batch at a time there.
            keys = [await load(b) for b in bases]
        else:
            keys = await asyncio.gather(*(load(b) for b in bases))
        assert [len(k) for k in keys] == [50] * 5
        with pytest.raises(KeyError):
            async with astore.begin(write=True):
                await coll.put_many([{"k": "in block", "v": 0}])
                assert await coll.delete_many(range(0, 500, 2)) == 125
                await coll.put_many([{"k": "bad"}])  # no "v": the index raises
        assert await coll.get_many([0, 1, "in block"]) == [
            {"k": 0, "v": 0},
            {"k": 1, "v": 1},
            None,
        ]
        async with astore.begin(write=True):
            assert await coll.delete_many(range(0, 500, 2)) == 125
        assert len([k async for k in coll.keys()]) == 125
        with pytest.raises(TypeError, match="single"):
            await coll.delete_many("ab")
        assert (await astore.check()).ok
        await astore.close()

    asyncio.run(main())


def test_counter_keys_from_tasks_of_an_ended_block(open_store: Any) -> None:
    """Tasks created in a block that put counter-keyed records after it
    ended: put took a key, gave it back to the counter and then wrote
    under it anyway, so the next put took the same key and overwrote the
    record (two tasks got (2,); one record was lost)."""
    store = open_store()
    coll = store.add_collection("auto")
    coll.add_index("n", lambda r: r["n"])

    async def worker(i: int) -> tuple[Any, ...]:
        await asyncio.sleep(0)
        return coll.put({"n": i})

    async def main() -> list[tuple[Any, ...]]:
        with store.begin(write=True):
            coll.put({"n": -1})
            tasks = [asyncio.create_task(worker(i)) for i in range(4)]
        return await asyncio.gather(*tasks)

    keys = asyncio.run(main())
    later = coll.put({"n": 99})
    assert len(set(keys) | {later}) == 5
    assert sorted(r["n"] for r in coll.values()) == [-1, 0, 1, 2, 3, 99]
    assert store.check().ok


# -- what held up, kept as regression tests


class _NthTxn(HookedTxn):
    """Refuses the ``engine.fail_at``-th write (put or delete)."""

    def _tick(self) -> None:
        engine: Any = self._engine
        if engine.fail_at is not None:
            engine.count += 1
            if engine.count == engine.fail_at:
                engine.fired = True
                raise EngineError("injected: write refused")

    def put(self, key: bytes, value: bytes) -> None:
        self._tick()
        self._txn.put(key, value)

    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        for key, value in items:
            self.put(key, value)

    def delete(self, key: bytes) -> bool:
        self._tick()
        return self._txn.delete(key)

    def replace(self, key: bytes, value: bytes) -> bytes | None:
        old = self._txn.get(key)
        self.put(key, value)
        return old

    def pop(self, key: bytes) -> bytes | None:
        old = self._txn.get(key)
        if old is not None:
            self.delete(key)
        return old

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return [self._txn.get(k) for k in keys]


class _NthEngine(HookedEngine):
    fail_at: int | None = None
    count = 0
    fired = False

    def begin(self, write: bool = False, timeout: float | None = None) -> Txn:
        return _NthTxn(self, self.inner.begin(write, timeout))


@pytest.mark.parametrize("auto", [False, True])
@pytest.mark.parametrize("op", ["put_many", "delete_many"])
def test_a_write_refused_at_any_point_of_a_batch(op: str, auto: bool) -> None:
    """Whichever write of a batch the engine refuses, the batch changes
    nothing and the block goes on (over new and stored records, counter
    keys included)."""
    engine = _NthEngine(acid.engines.from_url("skiplist:/"))
    store = acid.Store(engine)
    coll = (
        store.add_collection("c")
        if auto
        else store.add_collection("c", key_func=lambda r: r["k"])
    )
    coll.add_index("v", lambda r: r["v"])
    coll.add_index("t", lambda r: r["t"])
    coll.put_many([{"k": i, "v": i % 3, "t": [i % 2, 5]} for i in range(1, 7)])
    batch = [{"k": k, "v": k % 4, "t": [k % 3, 5, 6]} for k in (2, 5, 9, 2, 11)]
    fired_at = []
    for n in range(1, 60):
        before = _raw(store)
        with store.begin(write=True):
            engine.count, engine.fail_at, engine.fired = 0, n, False
            try:
                if op == "put_many":
                    coll.put_many(batch)
                else:
                    coll.delete_many([r["k"] for r in batch])
            except EngineError:
                assert engine.fired
                assert _raw_in_block(store) == before
                fired_at.append(n)
            engine.fail_at = None
            acid.abort()
        assert _raw(store) == before
    assert len(fired_at) >= 5  # the batch did fail at many points
    assert store.check().ok


def _raw_in_block(store: acid.Store) -> list[tuple[bytes, bytes]]:
    txn = store.txn
    assert txn is not None
    return list(txn.iter(b""))


@pytest.mark.parametrize("engine_name", ["skiplist", "lmdb", "leveldb"])
def test_readers_see_whole_batches(open_store: Any) -> None:
    """A reader (a snapshot; on LevelDB the writer reads the database
    itself) never sees part of a put_many or delete_many that another
    thread is committing."""
    store = open_store()
    coll = store.add_collection("c", key_func=lambda r: r["k"])
    idx = coll.add_index("g", lambda r: r["g"])
    stop = threading.Event()
    seen: list[tuple[int, int]] = []

    def reader() -> None:
        while not stop.is_set():
            with store.begin():
                n, m = len(list(coll.keys())), idx.count()
                seen.append((n, m))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for g in range(12):
            coll.put_many([{"k": (g, i), "g": g} for i in range(300)])
        for g in range(0, 12, 2):
            coll.delete_many([(g, i) for i in range(300)])
    finally:
        stop.set()
        thread.join()
    assert seen and all(n % 300 == 0 and n == m for n, m in seen)
    assert store.check().ok


@pytest.mark.parametrize("seed", range(3))
def test_index_entries_in_any_order_and_repeated(open_store: Any, seed: int) -> None:
    """Index functions that give the same entries as a list in another
    order, with repeats, as 1-tuples or as a scalar: updates through
    put_many, put and delete_many keep every entry exact."""
    store = open_store()
    rng = random.Random(seed)
    coll = store.add_collection("c", key_func=lambda r: r["k"])
    calls = itertools.count()

    def tags(r: dict) -> Any:
        t = list(r["t"])
        rng.shuffle(t)
        form = next(calls) % 4
        if form == 0:
            return t + t
        if form == 1 and len(t) == 1:
            return t[0]
        if form == 2:
            return [(x,) for x in t]
        return t

    coll.add_index("t", tags)
    for _ in range(25):
        recs = [
            {"k": rng.randrange(15), "t": rng.sample(range(5), rng.randrange(4))}
            for _ in range(rng.randrange(1, 12))
        ]
        if rng.random() < 0.5:
            coll.put_many(recs)
        else:
            for r in recs:
                coll.put(r)
        if rng.random() < 0.3:
            coll.delete_many(rng.sample(range(15), 4))
        assert store.check().ok


@pytest.mark.parametrize("target", ["skiplist", "lmdb", "leveldb"])
def test_a_trace_of_bulk_calls_replays(tmp_path: Path, target: str) -> None:
    """A traced session of bulk calls (a live iterator across put_many, a
    failed batch, a batch refused for a spoiled transaction) replays with
    the recorded results on every engine."""
    from acid.tools.replay import replay

    if target == "leveldb":
        pytest.importorskip("plyvel")
    trace = tmp_path / "trace.log"
    store = acid.open("skiplist:/", trace_path=trace)
    coll = store.add_collection("c", key_func=lambda r: r["k"])
    coll.add_index("v", lambda r: r["v"])
    coll.put_many([{"k": i, "v": i} for i in range(30)])
    with store.begin(write=True):
        it = coll.keys()
        next(it)
        coll.put_many([{"k": i, "v": -i} for i in range(15, 45)])
        assert len(list(it)) == 44
        coll.delete_many(range(0, 45, 3))
        assert coll.get_many([1, 3]) == [{"k": 1, "v": 1}, None]
        with pytest.raises(KeyError):
            coll.put_many([{"k": 100, "v": 0}, {"k": 101}])
    store.close()
    assert len(trace.read_text().splitlines()) > 300  # every call is there
    url = {
        "skiplist": "skiplist:/",
        "lmdb": f"lmdb:{tmp_path}/lmdb",
        "leveldb": f"leveldb:{tmp_path}/leveldb",
    }[target]
    engine = acid.engines.from_url(url)
    try:
        with open(trace, encoding="ascii") as lines:
            assert replay(lines, engine) == []
    finally:
        engine.close()
