"""Schema changes are transactional: what a rolled-back block declared is gone,
live objects follow, ids are never shared, and changes made by another Store
object or process are noticed before a write."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import acid
from acid.errors import ConfigError, ConstraintError, NotFound, SchemaError
from tests.conftest import PERSISTENT

ROOT = Path(__file__).resolve().parents[2]


def by_age(r: dict) -> object:
    return r["age"]


def test_aborted_collection_never_shares_its_id(
    open_store: Callable[..., acid.Store], engine_name: str
) -> None:
    store = open_store()
    with store.begin(write=True):
        ghost = store.add_collection("ghost")
        ghost.put({"age": 1}, key=1)
        acid.abort()
    with pytest.raises(SchemaError, match="rolled back"):
        ghost.put({"age": 2}, key=2)
    with pytest.raises(SchemaError):
        ghost.get(1)
    real = store.add_collection("real")
    assert real.id != ghost.id
    real.put({"age": 3}, key=1)
    assert store.collections() == ["real"]
    assert list(real.items()) == [((1,), {"age": 3})]
    assert store.check().ok
    if engine_name in PERSISTENT:
        store.close()
        store = open_store()
        again = store.add_collection("real")
        assert list(again.items()) == [((1,), {"age": 3})]
        assert store.collections() == ["real"]
        assert store.check().ok


def test_exception_rolls_back_a_collection_like_abort(store: acid.Store) -> None:
    with pytest.raises(RuntimeError), store.begin(write=True):
        ghost = store.add_collection("ghost")
        raise RuntimeError("boom")
    assert not ghost.attached
    with pytest.raises(SchemaError):
        ghost.put({}, key=1)


def test_aborted_index_is_undeclared_again(store: acid.Store) -> None:
    coll = store.add_collection("c")
    coll.put({"age": 5}, key=1)
    with store.begin(write=True):
        idx = coll.add_index("age", by_age)
        assert idx.count() == 1
        acid.abort()
    assert "age" not in coll.indices
    with pytest.raises(SchemaError):
        idx.count()
    coll.put({"age": 6}, key=2)  # writes go on without the rolled-back index
    again = coll.add_index("age", by_age)
    assert again.id != idx.id
    assert [t for t in again.tups()] == [(5,), (6,)]
    assert store.check().ok


def test_aborted_rename_restores_live_names(store: acid.Store) -> None:
    coll = store.add_collection("old")
    coll.add_index("age", by_age)
    coll.put({"age": 1}, key=1)
    with store.begin(write=True):
        store.rename_collection("old", "new")
        assert coll.name == "new"
        acid.abort()
    assert coll.name == "old"
    assert store.collections() == ["old"]
    coll.put({"age": 2}, key=2)
    assert coll.indices["age"].count() == 2
    assert store["old"] is coll
    assert store.check().ok


def test_aborted_compressor_registration_is_undone(
    open_store: Callable[..., acid.Store], engine_name: str
) -> None:
    store = open_store()
    comp = acid.encoders.Compressor("rev", lambda b: b[::-1], lambda b: bytes(b)[::-1])
    with store.begin(write=True):
        store.add_encoder(comp)
        acid.abort()
    assert store.registry.compressor("rev") is None
    coll = store.add_collection("c", compressor=comp)  # registers it for real
    coll.put("x" * 50, key=1)
    assert store.get_meta(acid.KIND_ENCODER, "rev") is not None
    if engine_name in PERSISTENT:
        store.close()
        store = open_store()
        store.add_encoder(
            acid.encoders.Compressor("rev", lambda b: b[::-1], lambda b: bytes(b)[::-1])
        )
        assert store.add_collection("c").get(1) == "x" * 50


def test_aborted_encoder_registration_is_undone(store: acid.Store) -> None:
    enc = acid.encoders.Encoder("upper", lambda s: s.upper().encode(), bytes.decode)
    with store.begin(write=True):
        store.add_encoder(enc)
        acid.abort()
    with pytest.raises(NotFound):
        store.get_encoder("upper")


def test_aborted_drop_restores_live_objects(store: acid.Store) -> None:
    coll = store.add_collection("c")
    idx = coll.add_index("age", by_age)
    coll.put({"age": 1}, key=1)
    with store.begin(write=True):
        store.drop_collection("c")
        assert not coll.attached
        acid.abort()
    assert coll.attached and idx.attached
    assert coll.get(1) == {"age": 1}
    coll.put({"age": 2}, key=2)
    assert idx.count() == 2


# -- persisted properties are checked on reopen (issue item 2) ---------------


def test_reopen_with_other_counter_fails(store: acid.Store) -> None:
    store.add_collection("c", counter_name="mine").put({"a": 1})
    with pytest.raises(ConfigError, match="'mine'.*'theirs'"):
        store.add_collection("c", counter_name="theirs")
    coll = store.add_collection("c")  # no counter given: the stored one
    assert coll.counter_name == "mine"
    assert coll.put({"a": 2}) == (2,)  # keys go on, nothing is overwritten


def test_reopen_with_other_key_kind_fails(store: acid.Store) -> None:
    store.add_collection("auto").put({"a": 1})
    with pytest.raises(ConfigError, match="counter keys.*key_func"):
        store.add_collection("auto", key_func=lambda r: r["a"])
    store.add_collection("func", key_func=lambda r: r["a"])
    with pytest.raises(ConfigError, match="key_func.*counter keys"):
        store.add_collection("func")


def test_reopen_with_other_encoder_names_both(store: acid.Store) -> None:
    store.add_collection("c", encoder="msgpack")
    with pytest.raises(ConfigError, match="'msgpack'.*'json'"):
        store.add_collection("c", encoder="json")


def test_compressor_field_follows_the_last_one_used(
    open_store: Callable[..., acid.Store],
) -> None:
    store = open_store()
    store.add_collection("c")
    store.add_collection("c", compressor="zlib")
    assert store.get_meta(acid.KIND_TABLE, "c")["compressor"] == "zlib"  # type: ignore[index]
    assert store.add_collection("c").compressor is acid.encoders.ZLIB


# -- indexes declared elsewhere (issue item 4) -------------------------------


def test_index_added_by_another_store_object_blocks_writes(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db?map_size=64MiB"
    with acid.open(url) as a, acid.open(url) as b:
        stale = a.add_collection("c")
        stale.put({"age": 1}, key=1)
        b.add_collection("c").add_index("age", by_age)
        with pytest.raises(ConstraintError, match="age"):
            stale.put({"age": 2}, key=2)
        with pytest.raises(ConstraintError, match="age"):
            stale.delete(1)
        stale.add_index("age", by_age)
        stale.put({"age": 2}, key=2)
        assert stale.indices["age"].count() == 2
        assert a.check().ok


def test_index_added_by_another_process_blocks_writes(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db?map_size=64MiB"
    with acid.open(url) as store:
        stale = store.add_collection("c")
        stale.put({"age": 1}, key=1)
        code = (
            "import sys, acid\n"
            "s = acid.open(sys.argv[1])\n"
            "s.add_collection('c').add_index('age', lambda r: r['age'])\n"
            "s.close()\n"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run([sys.executable, "-c", code, url], env=env, check=True)
        with pytest.raises(ConstraintError, match="'c'.*age"):
            stale.put({"age": 2}, key=2)
        stale.add_index("age", by_age)
        stale.put({"age": 2}, key=2)
        assert store.check().ok


def test_collection_dropped_by_another_store_object(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db?map_size=64MiB"
    with acid.open(url) as a, acid.open(url) as b:
        stale = a.add_collection("c")
        stale.put({"age": 1}, key=1)
        b.drop_collection("c")
        fresh = b.add_collection("c")
        with pytest.raises(SchemaError, match="dropped"):
            stale.put({"age": 2}, key=2)
        assert fresh.id != stale.id
        assert list(fresh.items()) == []


def test_rename_by_another_store_object_is_followed(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db?map_size=64MiB"
    with acid.open(url) as a, acid.open(url) as b:
        coll = a.add_collection("old")
        b.rename_collection("old", "new")
        coll.put({"age": 1}, key=1)  # the write reconciles first
        assert coll.name == "new"
        assert b.add_collection("new").get(1) == {"age": 1}


# -- drop, collections(), store[name] ----------------------------------------


def test_drop_collection_removes_everything(
    open_store: Callable[..., acid.Store],
) -> None:
    store = open_store()
    coll = store.add_collection("c")
    idx = coll.add_index("age", by_age)
    keep = store.add_collection("keep")
    keep.add_index("age", by_age)
    for i in range(50):
        coll.put({"age": i})
        keep.put({"age": i})
    store.drop_collection("c")
    assert store.collections() == ["keep"]
    assert store.index_metas("c") == []
    with pytest.raises(SchemaError):
        coll.put({"age": 1})
    with pytest.raises(SchemaError):
        idx.count()
    with pytest.raises(KeyError):
        store["c"]
    raw = list(store.engine.begin().iter(b""))
    ids = {coll.id, idx.id}
    assert not [k for k, _ in raw if acid.keylib.unpacks(k)[0][0] in ids]
    again = store.add_collection("c")
    assert again.put({"age": 1}) == (1,)  # the counter went with it
    assert keep.indices["age"].count() == 50
    assert store.check().ok
    with pytest.raises(NotFound):
        store.drop_collection("nope")


def test_drop_index(store: acid.Store) -> None:
    coll = store.add_collection("c")
    idx = coll.add_index("age", by_age)
    other = coll.add_index("twice", lambda r: r["age"] * 2)
    for i in range(10):
        coll.put({"age": i})
    coll.drop_index("age")
    assert list(coll.indices) == ["twice"]
    with pytest.raises(SchemaError):
        idx.count()
    assert other.count() == 10
    space = store.space(idx.id)
    assert not [k for k, _ in store.engine.begin().iter(b"") if k.startswith(space)]
    coll.put({"age": 10})  # no longer blocked
    with pytest.raises(NotFound):
        coll.drop_index("age")
    assert store.check().ok


def test_store_getitem_returns_the_live_collection(store: acid.Store) -> None:
    coll = store.add_collection("c")
    assert store["c"] is coll
    assert "c" in store and "d" not in store
    with pytest.raises(KeyError):
        store["d"]
    newer = store.add_collection("c")
    assert store["c"] is newer


def test_collections_lists_stored_names(store: acid.Store) -> None:
    for name in ["b", "a", "c"]:
        store.add_collection(name)
    assert store.collections() == ["a", "b", "c"]


def test_a_newer_layout_is_refused(store: acid.Store) -> None:
    coll = store.add_collection("c")
    store.set_meta(acid.KIND_STRUCT, "\x00acid", {"format": 99})
    other = acid.Store(store.engine)
    with pytest.raises(ConfigError, match="newer"):
        other.add_collection("d")
    with pytest.raises(ConfigError, match="newer"):
        acid.Store(store.engine).add_collection("c").put({"a": 1})
    assert coll.get(1) is None  # reads of what this object knows still work
