"""Autocommit writes on engines whose writers run at once: a write that
loses a conflict runs again by itself (it is a whole transaction), so
threads writing without ``store.transact`` lose no update."""

from __future__ import annotations

import threading

import pytest

import acid
from acid import _txn
from acid.errors import ConflictError


def hammer(store: acid.Store, threads: int = 4, rounds: int = 150) -> None:
    coll = store.add_collection("c")
    coll.put({"n": 0, "seen": []}, key="k")
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(rounds):
                coll.incr("k", "n")
                store.count("hits")
                if i % 10 == 0:
                    coll.append("k", "seen", (t, i))
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    assert errors == []
    rec = coll.get("k")
    assert rec["n"] == threads * rounds
    assert store.count("hits", 0) == threads * rounds + 1  # starts at 1
    assert sorted(map(tuple, rec["seen"])) == sorted(
        (t, i) for t in range(threads) for i in range(0, rounds, 10)
    )
    assert store.check().ok


def test_optimistic_memory_engine_loses_no_autocommit_update() -> None:
    store = acid.open("memory:/?writers=optimistic")
    assert store.engine.concurrent_writers
    hammer(store)
    store.close()


def test_a_write_that_keeps_losing_gives_up_with_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = acid.open("memory:/?writers=optimistic")
    coll = store.add_collection("c")
    monkeypatch.setattr(_txn, "AUTOCOMMIT_RETRIES", 2)
    calls = []

    def always_loses(rec: object) -> list[object]:
        calls.append(rec)
        raise ConflictError("injected")

    coll.add_index("bad", always_loses)
    with pytest.raises(ConflictError) as info:
        coll.put({"x": 1}, key=1)
    assert info.value.attempts == 3 and len(calls) == 3
    assert coll.get(1) is None
    with store.begin(write=True), pytest.raises(ConflictError):
        coll.put({"x": 2}, key=2)  # inside a block: never retried here
    assert len(calls) == 4
    store.close()
