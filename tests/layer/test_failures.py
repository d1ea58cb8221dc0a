"""A put or delete that fails half-way changes nothing in its transaction, so
the caller may catch the error and commit the rest of the batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import acid
from acid.errors import EngineError

LONG = "y" * 600  # longer than LMDB's 511-byte keys once packed


class Flaky:
    """An index function that raises while ``fail`` is set."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func
        self.fail = False

    def __call__(self, rec: Any) -> Any:
        if self.fail:
            raise ValueError("index function failed")
        return self.func(rec)


def snapshot(store: acid.Store) -> list[tuple[bytes, bytes]]:
    txn = store.txn
    return list((txn or store.engine.begin()).iter(b""))


@pytest.fixture
def people(store: acid.Store) -> acid.Collection:
    coll = store.add_collection("people")
    coll.add_index("age", lambda r: r["age"])
    coll.add_index("tags", lambda r: r.get("tags", []))
    coll.add_index("name", lambda r: r["name"])  # last: the one that fails
    return coll


def test_oversized_index_value_on_insert(
    store: acid.Store, people: acid.Collection, engine_name: str
) -> None:
    if engine_name != "lmdb":
        pytest.skip("only LMDB limits key sizes")
    with store.begin(write=True):
        people.put({"age": 1, "tags": ["a"], "name": "ok"}, key=1)
        before = snapshot(store)
        with pytest.raises(EngineError, match="511"):
            people.put({"age": 2, "tags": ["b", "c"], "name": LONG}, key=2)
        assert snapshot(store) == before
        people.put({"age": 3, "tags": [], "name": "fine"}, key=3)
    assert [k for k in people.keys()] == [(1,), (3,)]
    assert store.check().ok


def test_oversized_index_value_on_update(
    store: acid.Store, people: acid.Collection, engine_name: str
) -> None:
    if engine_name != "lmdb":
        pytest.skip("only LMDB limits key sizes")
    people.put({"age": 1, "tags": ["a", "b"], "name": "old"}, key=1)
    with store.begin(write=True):
        before = snapshot(store)
        with pytest.raises(EngineError):
            people.put({"age": 2, "tags": ["c"], "name": LONG}, key=1)
        assert snapshot(store) == before
    assert people.get(1) == {"age": 1, "tags": ["a", "b"], "name": "old"}
    assert list(people.indices["tags"].tups()) == [("a",), ("b",)]
    assert store.check().ok


def test_index_function_raising_on_the_old_record(store: acid.Store) -> None:
    coll = store.add_collection("c")
    flaky = Flaky(lambda r: r["n"])
    coll.add_index("first", lambda r: r["n"])
    coll.add_index("n", flaky)
    coll.put({"n": 1}, key=1)
    flaky.fail = True
    with store.begin(write=True):
        before = snapshot(store)
        with pytest.raises(ValueError, match="index function"):
            coll.put({"n": 2}, key=1)
        with pytest.raises(ValueError, match="index function"):
            coll.delete(1)
        assert snapshot(store) == before
    flaky.fail = False
    assert coll.get(1) == {"n": 1}
    assert store.check().ok


def test_delete_failing_half_way_restores_entries(
    store: acid.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    coll = store.add_collection("c")
    coll.add_index("a", lambda r: r["n"])
    second = coll.add_index("b", lambda r: [r["n"], r["n"] + 1])
    coll.put({"n": 1}, key=1)

    def broken(txn: Any, rkey: bytes, old: Any, new: Any) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(second, "update", broken)
    with store.begin(write=True):
        before = snapshot(store)
        with pytest.raises(OSError):
            coll.delete(1)
        assert snapshot(store) == before
    monkeypatch.undo()
    assert store.check().ok


def test_encoder_raising_writes_nothing(store: acid.Store) -> None:
    coll = store.add_collection("c")  # JSON: a set does not encode
    coll.add_index("x", lambda r: 1)
    with store.begin(write=True):
        before = snapshot(store)
        with pytest.raises(TypeError):
            coll.put({1, 2})
        assert snapshot(store) == before
        assert coll.put({"ok": True}) == (1,)  # the counter did not move


def test_auto_key_counter_rolls_back_with_a_failed_put(
    store: acid.Store, engine_name: str
) -> None:
    coll = store.add_collection("c")
    flaky = Flaky(lambda r: r["n"])
    coll.add_index("n", flaky)
    with store.begin(write=True):
        assert coll.put({"n": 1}) == (1,)
        flaky.fail = True
        with pytest.raises(ValueError):
            coll.put({"n": 2})
        flaky.fail = False
        assert coll.put({"n": 3}) == (2,)
    assert list(coll.keys()) == [(1,), (2,)]


def test_key_func_raising_writes_nothing(store: acid.Store) -> None:
    coll = store.add_collection("c", key_func=lambda r: r["id"])
    with store.begin(write=True):
        before = snapshot(store)
        with pytest.raises(KeyError):
            coll.put({"no id": 1})
        with pytest.raises(acid.errors.KeyEncodingError):
            coll.put({"id": float("nan")})
        assert snapshot(store) == before
