"""Schema operations through Collection objects that no longer match the store,
and schema changes that fail half-way."""

from __future__ import annotations

import pytest

import acid
from acid.errors import SchemaError


def test_drop_index_through_a_rolled_back_collection_object(store: acid.Store) -> None:
    with store.begin(write=True):
        ghost = store.add_collection("x")
        acid.abort()
    real = store.add_collection("x")
    real.add_index("age", lambda r: r["age"])
    real.put({"age": 3})
    with pytest.raises(SchemaError):
        ghost.drop_index("age")
    assert store.get_meta("index", ("x", "age")) is not None


def test_drop_index_through_an_object_renamed_elsewhere(store: acid.Store) -> None:
    other = acid.Store(store.engine)
    stale = store.add_collection("x")
    stale.add_index("n", lambda r: r["n"])
    stale.put({"n": 1})
    other.rename_collection("x", "old")
    fresh = other.add_collection("x")
    fresh.add_index("n", lambda r: r["n"] * 10)
    fresh.put({"n": 5})
    stale.drop_index("n")  # `stale` is collection "old" now
    assert other.get_meta("index", ("x", "n")) is not None, "dropped the wrong index"
    assert other.get_meta("index", ("old", "n")) is None


def test_add_index_through_an_object_renamed_elsewhere(store: acid.Store) -> None:
    other = acid.Store(store.engine)
    stale = store.add_collection("x")
    stale.put({"n": 1}, key=1)
    other.rename_collection("x", "old")
    fresh = other.add_collection("x")
    fresh.put({"n": 5}, key=1)
    stale.add_index("n", lambda r: r["n"])  # `stale` is collection "old" now
    info = other.get_meta("index", ("old", "n"))
    assert info is not None and info["collection"] == "old"
    assert other.get_meta("index", ("x", "n")) is None


def test_add_index_failing_on_an_old_record_inside_a_block(store: acid.Store) -> None:
    coll = store.add_collection("c")
    for i in range(5):
        coll.put({"n": i})

    def bad(r: dict) -> int:
        if r["n"] == 3:
            raise ValueError("boom")
        return r["n"]

    with store.begin(write=True):
        with pytest.raises(ValueError):
            coll.add_index("n", bad)
        # the caller caught the error and commits the rest of the block
    idx = coll.add_index("n", lambda r: r["n"])
    assert sorted(idx.tups()) == [(i,) for i in range(5)]
    assert store.check().ok


def test_aborted_drop_and_redeclare_of_an_index_restores_the_old_one(
    store: acid.Store,
) -> None:
    coll = store.add_collection("x", key_func=lambda r: r["k"])
    idx = coll.add_index("a", lambda r: r["a"])
    coll.put({"k": 1, "a": 1})
    with store.begin(write=True):
        coll.drop_index("a")
        coll.add_index("a", lambda r: -r["a"])
        acid.abort()
    assert idx.attached
    assert coll.indices == {"a": idx}
    coll.put({"k": 2, "a": 2})
    assert list(idx.tups()) == [(1,), (2,)]
    assert store.check().ok
