"""Online drops: metadata goes at once, keys in bounded transactions."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import acid
from acid.errors import NotFound, SchemaError, TxnError


def raw_keys(store: acid.Store, space: int) -> int:
    with store.begin():
        return sum(1 for _ in store.iter_space(space))


def fill(store: acid.Store, n: int = 100) -> tuple[acid.Collection, acid.Index]:
    coll = store.add_collection("big")
    idx = coll.add_index("sq", lambda r: r["i"] % 10)
    with store.begin(write=True):
        for i in range(n):
            coll.put({"i": i})
    return coll, idx


def test_drop_collection_online(store: acid.Store) -> None:
    coll, idx = fill(store)
    other = store.add_collection("other")
    other.put({"keep": 1})
    store.drop_collection("big", online=True, batch=7)
    assert store.collections() == ["other"]
    assert raw_keys(store, coll.id) == raw_keys(store, idx.id) == 0
    assert store.get_meta(acid.KIND_STRUCT, "\x00drops") is None
    with pytest.raises(SchemaError):
        coll.put({"i": 1})
    assert list(other.values()) == [{"keep": 1}]
    with pytest.raises(NotFound):
        store.drop_collection("big", online=True)


def test_interrupted_online_drop_is_finished_later(
    store: acid.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    coll, idx = fill(store)

    def crash(batch: int = 0) -> int:
        raise KeyboardInterrupt  # as a kill between the two phases would

    monkeypatch.setattr(store, "finish_drops", crash)
    with pytest.raises(KeyboardInterrupt):
        store.drop_collection("big", online=True, batch=10)
    monkeypatch.undo()
    assert store.collections() == []  # gone for everyone at once
    assert raw_keys(store, coll.id) == 100  # the keys wait for the purge
    assert store.stats()["records"] == 0
    # A new collection of the same name gets a new id: the purge spares it.
    new, _ = fill(store, 5)
    assert new.id not in (coll.id, idx.id)
    assert store.finish_drops(batch=9) == 100 + 100
    assert raw_keys(store, coll.id) == raw_keys(store, idx.id) == 0
    assert [r["i"] for r in new.values()] == [0, 1, 2, 3, 4]
    assert store.check().ok
    assert store.finish_drops() == 0


def test_drop_index_online(open_store: Callable[..., acid.Store]) -> None:
    store = open_store()
    coll, idx = fill(store)
    coll.drop_index("sq", online=True, batch=3)
    assert store.index_metas("big") == []
    assert raw_keys(store, idx.id) == 0
    coll.put({"i": 500})  # no undeclared index left to refuse it
    with pytest.raises(SchemaError):
        list(idx.keys())


def test_online_drops_refuse_a_transaction(store: acid.Store) -> None:
    coll, _ = fill(store, 3)
    with store.begin(write=True):
        with pytest.raises(TxnError, match="outside a transaction"):
            store.drop_collection("big", online=True)
        with pytest.raises(TxnError, match="outside a transaction"):
            coll.drop_index("sq", online=True)
    assert store.collections() == ["big"]
    with pytest.raises(ValueError):
        store.finish_drops(batch=0)
