"""The Store: transactions across threads and stores, prefixes, two Store
objects on one path, timeouts."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import acid
from tests.conftest import PERSISTENT


def test_threads_each_have_their_own_transaction(store: acid.Store) -> None:
    coll = store.add_collection("c")
    coll.add_index("t", lambda r: r["t"])
    errors: list[BaseException] = []

    def put(t: int, i: int) -> None:
        coll.put({"t": t, "i": i}, key=(t, i))
        assert store.txn is not None and store.txn.write

    def worker(t: int) -> None:
        try:
            for i in range(20):
                # Concurrent writers (PostgreSQL) may lose a conflict and
                # run again; writers that take turns run once.
                store.transact(put, t, i, retries=1000)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert store.txn is None
    assert len(list(coll.keys())) == 80
    assert coll.indices["t"].count(2) == 20
    assert store.check().ok


def test_prefixes_isolate_stores(open_store: object) -> None:
    base = open_store()  # type: ignore[operator]
    a = acid.Store(base.engine, prefix=b"A")
    b = acid.Store(base.engine, prefix="B")
    ca, cb = a.add_collection("c"), b.add_collection("c")
    ca.add_index("v", lambda r: r)
    cb.add_index("v", lambda r: r)
    ca.put("a1")
    cb.put("b1")
    cb.put("b2")
    assert list(ca.values()) == ["a1"]
    assert list(cb.values()) == ["b1", "b2"]
    assert a.count("key:c", 0) == 2 and b.count("key:c", 0) == 3
    assert base.collections() == []
    with a.begin(write=True):  # one engine, one transaction for both stores
        ca.put("a2")
        cb.put("b3")
        acid.abort()
    assert list(cb.values()) == ["b1", "b2"]
    assert a.check().ok and b.check().ok


def test_two_opens_of_one_path_share_the_transaction(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db?map_size=64MiB&lock_timeout=2"
    with acid.open(url) as a, acid.open(url) as b:
        ca, cb = a.add_collection("a"), b.add_collection("b")
        with a.begin(write=True):
            ca.put("x", key=1)
            cb.put("y", key=1)  # joins a's transaction: no wait on itself
            assert b.txn is a.txn
            acid.abort()
        assert ca.get(1) is None and cb.get(1) is None
        with b.begin(write=True):
            ca.put("x", key=1)
            cb.put("y", key=1)
        assert ca.get(1) == "x" and cb.get(1) == "y"


@pytest.mark.parametrize("bad", [float("nan"), -1, -0.5, "1", True])
def test_begin_rejects_bad_timeouts(store: acid.Store, bad: object) -> None:
    with pytest.raises((acid.errors.ConfigError, TypeError)):
        store.begin(write=True, timeout=bad)  # type: ignore[arg-type]


def test_begin_accepts_infinite_timeout(store: acid.Store) -> None:
    with store.begin(write=True, timeout=float("inf")):
        store.count("n")
    assert store.count("n", 0) == 2


def test_a_traced_and_a_plain_store_on_one_path_share_the_transaction(
    tmp_path: Path,
) -> None:
    url = f"lmdb:{tmp_path}/db?map_size=64MiB&lock_timeout=2"
    trace = tmp_path / "trace.log"
    with acid.open(url, trace_path=trace) as traced, acid.open(url) as plain:
        ct, cp = traced.add_collection("t"), plain.add_collection("p")
        with traced.begin(write=True):
            ct.put("x", key=1)
            cp.put("y", key=1)  # joins the traced transaction
        assert plain.txn is None
        assert cp.get(1) == "y" and ct.get(1) == "x"
    assert "put" in trace.read_text()


def test_sync_makes_commits_durable(engine_name: str, open_store: Any) -> None:
    store = open_store()
    coll = store.add_collection("c")
    coll.put({"n": 1}, key=1)
    store.sync()  # a no-op where commits are durable already
    store.sync()
    if engine_name in PERSISTENT:
        store.close()
        again = open_store()
        assert list(again.add_collection("c").items()) == [((1,), {"n": 1})]


def test_optimistic_writers_in_threads_conflict_cleanly(
    open_optimistic_store: Any,
) -> None:
    store = open_optimistic_store()
    assert store.engine.concurrent_writers
    coll = store.add_collection("c")
    coll.add_index("n", lambda r: r["n"])
    coll.put({"n": 0}, key=1)
    inside = threading.Barrier(2)
    errors: list[BaseException] = []

    def bump(n: int) -> None:
        try:
            with store.begin(write=True):
                coll.put({"n": coll.get(1)["n"] + n}, key=1)
                inside.wait(timeout=10)  # both blocks are open at once
        except acid.errors.ConflictError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=bump, args=(n,)) for n in (1, 10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 1  # one landed whole, the other not at all
    assert coll.get(1)["n"] in (1, 10)
    assert store.check().ok
