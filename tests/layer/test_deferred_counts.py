"""``len(coll)`` when the record counts of a transaction are written once,
at its commit: reads inside the transaction see the pending additions, an
abort drops them, a commit applies them exactly once, and a failure while
writing them aborts the whole transaction."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

import acid
from acid import store as store_module
from acid._layout import Space
from acid.errors import CorruptionError, TxnError


def users(store: acid.Store) -> acid.Collection:
    coll = store.add_collection("users", key_func=lambda r: r["id"])
    coll.add_index("age", lambda r: r["age"])
    return coll


def rec(i: int) -> dict[str, int]:
    return {"id": i, "age": 20 + i % 7}


def count_stored(coll: acid.Collection) -> int:
    return sum(1 for _ in coll.keys())


def test_len_inside_the_transaction_sees_pending_counts(store: acid.Store) -> None:
    coll = users(store)
    coll.put(rec(0))  # autocommit: written at once
    with store.begin(write=True):
        for i in range(1, 6):
            coll.put(rec(i))
            assert len(coll) == i + 1
        coll.put(rec(3))  # a replace: no count change
        assert len(coll) == 6
        assert coll.delete(2)
        assert not coll.delete(2)
        assert len(coll) == 5
        coll.put(rec(7))  # additions after a read are pending again
        coll.put_many([rec(8), rec(9), rec(1)])
        assert coll.delete_many([8, 100]) == 1
        assert len(coll) == count_stored(coll) == 7
    assert len(coll) == count_stored(coll) == 7
    assert acid.check(store).ok


def test_abort_drops_pending_counts(store: acid.Store) -> None:
    coll = users(store)
    coll.put_many([rec(i) for i in range(3)])
    with store.begin(write=True):
        for i in range(3, 10):
            coll.put(rec(i))
        coll.delete(0)
        acid.abort()
    assert len(coll) == 3
    with pytest.raises(RuntimeError), store.begin(write=True):
        coll.put(rec(50))
        assert len(coll) == 4
        coll.put(rec(51))
        raise RuntimeError("rolled back")
    assert len(coll) == count_stored(coll) == 3
    # The next transaction starts from nothing pending.
    with store.begin(write=True):
        coll.put(rec(60))
    assert len(coll) == count_stored(coll) == 4
    assert acid.check(store).ok


def test_commit_applies_counts_once(
    open_store: Callable[..., acid.Store], engine_name: str
) -> None:
    store = open_store()
    coll = users(store)
    for round_ in range(4):
        with store.begin(write=True):
            for i in range(round_ * 10, round_ * 10 + 10):
                coll.put(rec(i))
            coll.delete(round_ * 10)
    assert len(coll) == 36
    if engine_name in ("lmdb", "leveldb", "memfile"):
        store.close()
        store = open_store()
        coll = users(store)
        assert len(coll) == count_stored(coll) == 36
    assert acid.check(store).ok


def test_failure_while_writing_counts_aborts_everything(
    store: acid.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    coll = users(store)
    coll.put(rec(0))

    def broken(self: object, key: bytes, n: int, init: int) -> None:
        raise OSError("disk gone while writing a counter")

    monkeypatch.setattr(store_module._Counts, "_write", broken)
    with pytest.raises(OSError, match="disk gone"), store.begin(write=True):
        coll.put(rec(1))
        coll.put(rec(2))
    monkeypatch.undo()
    assert coll.get(1) is None and coll.get(2) is None
    assert len(coll) == count_stored(coll) == 1
    assert acid.check(store).ok
    coll.put(rec(3))  # the store is usable afterwards
    assert len(coll) == 2


def test_two_stores_on_one_engine_both_count(store: acid.Store) -> None:
    coll = users(store)
    other = acid.Store(store.engine)
    coll2 = users(other)
    with store.begin(write=True):
        coll.put(rec(1))
        coll2.put(rec(2))
        coll2.put(rec(3))
        assert len(coll) == len(coll2) == 3
        coll.delete(3)
    assert len(coll) == len(coll2) == count_stored(coll) == 2
    assert acid.check(store).ok


def test_drop_collection_after_writes_in_the_same_transaction(
    store: acid.Store,
) -> None:
    coll = users(store)
    with store.begin(write=True):
        coll.put_many([rec(i) for i in range(5)])
        store.drop_collection("users")
    again = users(store)
    assert len(again) == count_stored(again) == 0
    again.put(rec(1))
    assert len(again) == 1
    assert acid.check(store).ok


def test_ended_block_transaction_with_pending_counts(store: acid.Store) -> None:
    """A transaction ended under the block (the engine aborted it) does not
    run its counter writes: the block's commit raises, nothing lands."""
    coll = users(store)
    with pytest.raises(TxnError), store.begin(write=True) as txn:
        coll.put(rec(1))
        txn.abort()
    assert len(coll) == count_stored(coll) == 0
    coll.put(rec(2))
    assert len(coll) == 1


def test_writers_in_threads_count_exactly(store: acid.Store) -> None:
    coll = users(store)
    errors: list[BaseException] = []

    def block(lo: int) -> None:
        for i in range(lo, lo + 10):
            coll.put(rec(i))
        coll.delete(lo)

    def work(base: int) -> None:
        # transact: engines with concurrent writers (PostgreSQL) make one
        # lose a conflict and run it again, with nothing pending from the
        # lost attempt.
        try:
            for j in range(5):
                store.transact(block, base + j * 10, retries=200)
                store.transact(coll.put, rec(base + 900), retries=200)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k * 1000,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(coll) == count_stored(coll) == 3 * (5 * 9 + 1)
    assert acid.check(store).ok


@pytest.mark.parametrize("garbage", [b"\xff\xfe\x00", acid.keylib.pack(("x",))])
def test_garbled_count_is_corruption_and_nothing_lands(
    store: acid.Store, garbage: bytes
) -> None:
    coll = users(store)
    coll.put(rec(0))
    prefix = acid.keylib.pack((Space.COUNTER.value,), store.prefix)
    with store.engine.begin(write=True) as txn:
        (key,) = [
            k
            for k, _ in txn.iter(prefix)
            if k.startswith(prefix)
            and str(acid.keylib.unpack(k[len(prefix) :])[0]).startswith("\x00len:")
        ]
        txn.put(key, garbage)
    with pytest.raises(CorruptionError, match="counter"):
        coll.put(rec(1))  # autocommit: counted at once
    with pytest.raises(CorruptionError, match="counter"), store.begin(write=True):
        coll.put(rec(2))  # counted at commit
    with pytest.raises(CorruptionError, match="counter"), store.begin(write=True):
        coll.put(rec(3))
        len(coll)  # a read inside the transaction writes the pending count
    assert [coll.get(i) for i in (1, 2, 3)] == [None, None, None]
    assert coll.get(0) == rec(0)


def ages(coll: acid.Collection) -> list[tuple[int, int]]:
    """(age, id) of every index entry, from the index itself."""
    return sorted((t[0], k[0]) for t, k in coll.indices["age"].pairs())


def test_put_many_into_a_collection_empty_only_at_its_start(
    store: acid.Store,
) -> None:
    """put_many skips looking for old records only when the count, pending
    additions included, says there are none."""
    coll = users(store)
    with store.begin(write=True):
        coll.put(rec(1))  # pending: the stored count is still 0
        coll.put_many([{"id": 1, "age": 99}, rec(2), {"id": 2, "age": 98}])
        assert len(coll) == 2
        assert ages(coll) == [(98, 2), (99, 1)]
    assert len(coll) == count_stored(coll) == 2
    assert ages(coll) == [(98, 2), (99, 1)]
    assert acid.check(store).ok


def test_put_many_after_everything_was_deleted(store: acid.Store) -> None:
    coll = users(store)
    coll.put_many([rec(i) for i in range(5)])
    with store.begin(write=True):
        coll.delete_many(range(5))
        assert len(coll) == 0
        coll.put_many([{"id": i, "age": 50 + i} for i in (3, 4, 5, 5)])
    assert len(coll) == count_stored(coll) == 3
    assert ages(coll) == [(53, 3), (54, 4), (55, 5)]
    assert acid.check(store).ok
    with store.begin(write=True):  # put and delete in one block: count 0
        coll.delete_many([3, 4, 5])
        coll.put(rec(7))
        coll.delete(7)
        coll.put_many([rec(7), rec(8)])
    assert len(coll) == count_stored(coll) == 2
    assert acid.check(store).ok
