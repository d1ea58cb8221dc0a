"""Schema changes seen through two Store objects over one engine (one path)."""

from __future__ import annotations

import pytest

import acid
from acid.errors import ConstraintError, SchemaError


def test_aborted_collection_object_is_not_revived_by_another_stores_id(
    store: acid.Store,
) -> None:
    other = acid.Store(store.engine)
    with store.begin(write=True):
        ghost = store.add_collection("ghost", key_func=lambda r: r["k"])
        acid.abort()
    assert not ghost.attached
    real = other.add_collection("real")
    # `other` may hand out the rolled-back id again (docs: only "that Store"
    # remembers it), but the ghost object must not come back to life as `real`.
    with pytest.raises(SchemaError):
        ghost.put({"k": 1})
    assert ghost.name == "ghost"
    assert list(real.items()) == []


def test_index_added_through_another_store_in_the_same_txn_blocks_writes(
    store: acid.Store,
) -> None:
    other = acid.Store(store.engine)
    mine = store.add_collection("p", key_func=lambda r: r["k"])
    theirs = other.add_collection("p", key_func=lambda r: r["k"])
    with store.begin(write=True):
        mine.put({"k": 1, "age": 1})  # this txn is now "verified" for `store`
        theirs.add_index("age", lambda r: r["age"])
        with pytest.raises(ConstraintError, match="age"):
            mine.put({"k": 2, "age": 2})
    assert other.check().ok


def test_aborted_rename_is_undone_on_the_other_stores_objects(
    store: acid.Store,
) -> None:
    other = acid.Store(store.engine)
    store.add_collection("x")
    theirs = other.add_collection("x")
    with store.begin(write=True):
        store.rename_collection("x", "y")
        theirs.put({"v": 1})  # `other` notices the rename inside the txn
        acid.abort()
    assert other.collections() == ["x"]
    assert theirs.name == "x"
    assert other["x"] is theirs


def test_aborted_drop_leaves_the_other_stores_objects_usable(
    store: acid.Store,
) -> None:
    other = acid.Store(store.engine)
    mine = store.add_collection("x")
    theirs = other.add_collection("x")
    mine.put({"v": 1}, key=1)
    with store.begin(write=True):
        store.drop_collection("x")
        with pytest.raises(SchemaError):
            theirs.put({"v": 2}, key=2)
        acid.abort()
    assert other.collections() == ["x"]
    assert theirs.get(1) == {"v": 1}


def test_check_is_not_fooled_by_an_index_dropped_through_another_store(
    store: acid.Store,
) -> None:
    other = acid.Store(store.engine)
    mine = store.add_collection("x")
    mine.add_index("n", lambda r: r["n"])
    mine.put({"n": 1})
    other.add_collection("x").drop_index("n")
    report = store.check()
    assert report.ok, report
