"""Indexes on every engine: shapes of index values, queries, atomicity."""

from __future__ import annotations

import pytest

import acid


@pytest.fixture
def people(store: acid.Store) -> acid.Collection:
    coll = store.add_collection("people", key_func=lambda p: p["id"])
    coll.add_index("age", lambda p: (p["age"], p["id"]))
    coll.add_index("tags", lambda p: p.get("tags"))
    coll.add_index("pairs", lambda p: [(t, p["age"]) for t in p.get("tags") or []])
    with store.begin(write=True):
        for i, age in enumerate([30, 25, 35, 30, 40, 29, 36]):
            tags = ["even" if i % 2 == 0 else "odd"] + (["three"] if i % 3 == 0 else [])
            coll.put({"id": i, "age": age, "tags": tags})
    return coll


def test_index_queries(people: acid.Collection) -> None:
    age = people.indices["age"]
    assert [t[0] for t in age.tups()] == [25, 29, 30, 30, 35, 36, 40]
    assert [k[0] for k in age.keys(lo=30, hi=35)] == [0, 3]
    assert [k[0] for k in age.keys(lo=30, hi=35, include=True)] == [0, 3, 2]
    assert [r["age"] for r in age.values(lo=30, hi=36, reverse=True)] == [35, 30, 30]
    assert [k for k, _ in age.items(30)] == [(0,), (3,)]
    assert age.count() == 7
    assert age.count(30) == 2
    assert age.count(max=3) == 3
    assert age.count(lo=0, hi=0) == 0
    assert age.get(40)["id"] == 4
    assert age.get(41) is None
    assert age.get(41, default=1) == 1
    assert age.find(lo=31)["age"] == 35
    assert age.find(reverse=True)["age"] == 40
    assert age.has((30, 3)) and not age.has((30,)) and not age.has((31, 3))
    assert list(age.pairs(max=0)) == []
    assert list(age.pairs(prefix=(25,))) == [((25, 1), (1,))]
    assert list(age.pairs(args=(25,))) == list(age.pairs((25,)))
    with pytest.raises(TypeError):
        age.count(args=(1,), prefix=(1,))


def test_multi_valued_indexes(people: acid.Collection) -> None:
    tags = people.indices["tags"]
    assert [k[0] for k in tags.keys("even")] == [0, 2, 4, 6]
    assert [k[0] for k in tags.keys("three")] == [0, 3, 6]
    pairs = people.indices["pairs"]
    assert list(pairs.pairs("three")) == [
        (("three", 30), (0,)),
        (("three", 30), (3,)),
        (("three", 36), (6,)),
    ]
    people.put({"id": 0, "age": 31, "tags": ["odd"]})
    assert [k[0] for k in tags.keys("three")] == [3, 6]
    assert [k[0] for k in tags.keys("odd")] == [0, 1, 3, 5]
    assert ("three", 30) in [t for t in pairs.tups()]
    people.delete(3)
    assert [k[0] for k in tags.keys("three")] == [6]
    assert not pairs.has(("three", 30))
    assert people.store.check().ok


def test_none_and_empty_give_no_entries(store: acid.Store) -> None:
    coll = store.add_collection("c")
    idx = coll.add_index("x", lambda r: r.get("x"))
    coll.put({"x": None})
    coll.put({"x": []})
    coll.put({})
    coll.put({"x": [None]})  # a list holding None indexes the value None
    coll.put({"x": 0})
    assert list(idx.pairs()) == [((None,), (4,)), ((0,), (5,))]
    assert store.check().ok


def test_duplicate_entries_collapse(store: acid.Store) -> None:
    coll = store.add_collection("c")
    idx = coll.add_index(
        "x", lambda r: [tuple(x) if isinstance(x, list) else x for x in r]
    )
    coll.put([1, 1, (1,), 2], key="k")
    assert list(idx.tups()) == [(1,), (2,)]
    coll.put([2], key="k")
    assert list(idx.tups()) == [(2,)]
    assert store.check().ok


def test_int_and_float_entries_are_distinct(store: acid.Store) -> None:
    coll = store.add_collection("c")
    idx = coll.add_index("x", lambda r: r)
    coll.put(1, key="k")
    coll.put(1.0, key="k")  # equal in Python, different keys on disk
    assert [type(t[0]) for t in idx.tups()] == [float]
    assert store.check().ok


def test_new_index_on_existing_records_is_filled(store: acid.Store) -> None:
    coll = store.add_collection("c")
    neighbour = store.add_collection("d")
    with store.begin(write=True):
        for i in range(300):
            coll.put({"v": i % 3}, key=i)
            neighbour.put({"v": 0}, key=i)
    idx = coll.add_index("v", lambda r: r["v"])
    assert idx.count(0) == 100 and idx.count() == 300
    assert store.check().ok


def test_failing_index_function_writes_nothing(store: acid.Store) -> None:
    coll = store.add_collection("c")
    coll.add_index("v", lambda r: r["v"])
    coll.put({"v": 1}, key=1)
    with pytest.raises(KeyError):
        coll.put({"nope": 2}, key=2)
    assert coll.get(2) is None
    with store.begin(write=True):
        with pytest.raises(KeyError):
            coll.put({"nope": 2}, key=1)  # caught inside the block
    assert coll.get(1) == {"v": 1}
    assert store.check().ok


def test_old_record_unindexable_restores_it(store: acid.Store) -> None:
    coll = store.add_collection("c")
    strict = {"on": False}

    def func(r: dict) -> object:
        if strict["on"] and "v" not in r:
            raise KeyError("v")
        return r.get("v")

    coll.add_index("v", func)
    coll.put({}, key=1)
    strict["on"] = True
    with store.begin(write=True):
        with pytest.raises(KeyError):
            coll.put({"v": 5}, key=1)
        with pytest.raises(KeyError):
            coll.delete(1)
    assert coll.get(1) == {}
    strict["on"] = False
    assert store.check().ok


def test_exception_rolls_back_record_index_and_counter(store: acid.Store) -> None:
    coll = store.add_collection("c")
    idx = coll.add_index("v", lambda r: r["v"])
    coll.put({"v": "keep"})
    with pytest.raises(RuntimeError), store.begin(write=True):
        coll.put({"v": "new"})
        coll.put({"v": "changed"}, key=1)
        raise RuntimeError
    assert list(idx.tups()) == [("keep",)]
    assert coll.put({"v": "next"}) == (2,)
    assert store.check().ok


def test_write_while_iterating_in_one_transaction(store: acid.Store) -> None:
    coll = store.add_collection("c")
    idx = coll.add_index("odd", lambda r: r % 2)
    with store.begin(write=True):
        for i in range(30):
            coll.put(i, key=i)
    with store.begin(write=True):
        seen = []
        for key, rec in coll.items():
            assert rec == key[0] or rec == 100
            seen.append(key[0])
            coll.delete(key)  # the current record
            coll.delete(key[0] + 1)  # the next one: must not be yielded
            if key[0] == 10:
                coll.put(100, key=100)  # ahead of the iterator: must be seen
        assert seen == [*range(0, 30, 2), 100]
        assert list(coll.keys()) == []
        assert idx.count() == 0
    assert store.check().ok


def test_writes_refused_until_stored_indexes_are_declared(store: acid.Store) -> None:
    first = store.add_collection("c")
    first.add_index("v", lambda r: r["v"])
    first.put({"v": 1}, key=1)
    second = store.add_collection("c")  # forgot to declare "v"
    assert second.get(1) == {"v": 1}  # reading is fine
    with pytest.raises(acid.errors.ConstraintError, match="'v'|v\\)"):
        second.put({"v": 2}, key=2)
    with pytest.raises(acid.errors.ConstraintError):
        second.delete(1)
    second.add_index("v", lambda r: r["v"])
    second.put({"v": 2}, key=2)
    # A new index declared through one object binds the others at once.
    first.add_index("w", lambda r: -r["v"])
    with pytest.raises(acid.errors.ConstraintError, match="w"):
        second.put({"v": 3}, key=3)
    assert list(first.indices["w"].tups()) == [(-2,), (-1,)]
    assert store.check().ok
