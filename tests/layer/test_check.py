"""store.check(), acid.check() and Collection.check(): every index entry
re-derived from its record and compared, keys and values."""

from __future__ import annotations

import pytest

import acid


def test_check_reports_drift(store: acid.Store) -> None:
    coll = store.add_collection("c")
    idx = coll.add_index("v", lambda r: r["v"])
    coll.put({"v": 1}, key=1)
    coll.put({"v": 2}, key=2)
    assert store.check().ok and store.check().checked_entries == 2
    # Corrupt the index behind the layer's back: drop one entry, add a bogus one.
    with store.begin(write=True) as txn:
        entry = acid.keylib.packs([(idx.id, 1), (1,)], store.prefix)
        assert txn.delete(entry)
        txn.put(acid.keylib.packs([(idx.id, 9), (2,)], store.prefix), b"")
    report = acid.check(store)
    assert not report.ok
    assert report.missing == [("c", "v", (1,), (1,))]
    assert report.stale == [("c", "v", (9,), (2,))]


def test_check_reports_entry_pointing_elsewhere(store: acid.Store) -> None:
    coll = store.add_collection("c")
    idx = coll.add_index("v", lambda r: r["v"])
    coll.put({"v": 1}, key=1)
    coll.put({"v": 2}, key=2)
    with store.begin(write=True) as txn:  # entry of record 1 now names record 2
        txn.put(
            acid.keylib.packs([(idx.id, 1), (1,)], store.prefix), acid.keylib.pack((2,))
        )
    assert list(idx.values()) == [{"v": 2}, {"v": 2}]
    report = store.check()
    assert report.stale == [("c", "v", (1,), (1,))] and not report.missing


def test_unchecked_lists_stored_indexes_without_a_function(
    open_store: object, engine_name: str
) -> None:
    store = open_store()  # type: ignore[operator]
    coll = store.add_collection("c")
    coll.add_index("v", lambda r: r["v"])
    coll.add_index("w", lambda r: r["v"])
    coll.put({"v": 1})
    other = acid.Store(store.engine)  # knows the indexes, declares none
    report = other.check()
    assert report.ok and report.unchecked == [("c", "v"), ("c", "w")]
    assert report.checked_entries == 0


def test_collection_check_covers_one_collection(store: acid.Store) -> None:
    a = store.add_collection("a")
    a.add_index("v", lambda r: r["v"])
    b = store.add_collection("b")
    idx = b.add_index("v", lambda r: r["v"])
    a.put({"v": 1})
    b.put({"v": 1})
    with store.begin(write=True) as txn:
        txn.delete(acid.keylib.packs([(idx.id, 1), (1,)], store.prefix))
    assert a.check().ok
    assert b.check().missing == [("b", "v", (1,), (1,))]
    assert not store.check().ok


def test_check_after_reopen_sees_the_same(open_store: object, engine_name: str) -> None:
    if engine_name not in ("lmdb", "leveldb"):
        pytest.skip("needs a persistent engine")
    store = open_store()  # type: ignore[operator]
    coll = store.add_collection("c")
    coll.add_index("v", lambda r: r["v"])
    for i in range(20):
        coll.put({"v": i % 3})
    assert store.check().checked_entries == 20
    store.close()
    store = open_store()  # type: ignore[operator]
    store.add_collection("c").add_index("v", lambda r: r["v"])
    report = store.check()
    assert report.ok and report.checked_entries == 20 and not report.unchecked
