"""Collection behaviour on every engine: keys, ranges, falsy arguments."""

from __future__ import annotations

from typing import Any

import pytest

import acid
from acid import encoders
from acid.errors import ConfigError, NameInUse


@pytest.fixture
def nums(store: acid.Store) -> acid.Collection:
    """Records 0..9 keyed by (i,), with neighbours on both sides."""
    before = store.add_collection("a_before")
    coll = store.add_collection("nums")
    after = store.add_collection("z_after")
    with store.begin(write=True):
        for side in (before, after):
            for i in range(-3, 13):
                side.put(f"neighbour {i}", key=i)
        for i in range(10):
            coll.put({"i": i}, key=i)
    return coll


def keys(it: object) -> list[int]:
    return [k[0] for k in it]  # type: ignore[attr-defined]


def test_put_get_delete(store: acid.Store) -> None:
    coll = store.add_collection("c", key_func=lambda r: r["id"])
    assert coll.put({"id": 5, "v": "x"}) == (5,)
    assert coll.get(5) == {"id": 5, "v": "x"}
    assert coll.get((5,)) == {"id": 5, "v": "x"}
    assert coll.get(acid.Key(5)) == {"id": 5, "v": "x"}
    assert coll.get(6) is None
    assert coll.get(6, default="d") == "d"
    assert coll.put({"id": 5, "v": "y"}) == (5,)
    assert coll.get(5)["v"] == "y"
    assert coll.delete(5) is True
    assert coll.delete(5) is False
    assert coll.get(5) is None


def test_tuple_keys_and_explicit_key(store: acid.Store) -> None:
    coll = store.add_collection("c", key_func=lambda r: (r["a"], r["b"]))
    assert coll.put({"a": "x", "b": 2}) == ("x", 2)
    assert coll.put("other", key=("y", 1)) == ("y", 1)
    assert coll.put("scalar", key="k") == ("k",)
    assert list(coll.keys()) == [("k",), ("x", 2), ("y", 1)]


def test_auto_increment_keys(store: acid.Store) -> None:
    coll = store.add_collection("c")
    assert [coll.put(i) for i in "abc"] == [(1,), (2,), (3,)]
    with store.begin(write=True):
        coll.put("d")
        acid.abort()
    assert coll.put("e") == (4,)  # the counter rolled back with the record
    custom = store.add_collection("d", counter_name="shared")
    assert custom.put("x") == (1,)
    assert store.count("shared", 0) == 2


def test_falsy_arguments_are_honoured(nums: acid.Collection) -> None:
    assert nums.get(0) == {"i": 0}
    assert keys(nums.keys(key=0)) == [0]
    assert keys(nums.keys(lo=0)) == list(range(10))
    assert keys(nums.keys(hi=0)) == []
    assert keys(nums.keys(hi=0, include=True)) == [0]
    assert list(nums.keys(max=0)) == []
    assert keys(nums.keys(max=1)) == [0]
    assert nums.find(key=0) == {"i": 0}
    assert nums.findkey(lo=0, hi=1) == (0,)


def test_range_arguments_with_sentinels(nums: acid.Collection) -> None:
    assert keys(nums.keys()) == list(range(10))
    assert keys(nums.keys(lo=3, hi=6)) == [3, 4, 5]
    assert keys(nums.keys(lo=3, hi=6, include=True)) == [3, 4, 5, 6]
    assert keys(nums.keys(lo=3, hi=6, reverse=True)) == [5, 4, 3]
    assert keys(nums.keys(reverse=True)) == list(range(9, -1, -1))
    assert keys(nums.keys(reverse=True, max=2)) == [9, 8]
    assert keys(nums.keys(lo=-100, hi=100)) == list(range(10))
    assert keys(nums.keys(lo=20)) == []
    assert keys(nums.keys(hi=-5, reverse=True)) == []
    assert keys(nums.keys(lo=6, hi=3)) == []
    assert keys(nums.keys(key=42)) == []
    assert nums.find(lo=20) is None
    assert nums.find(lo=20, default="none") == "none"
    assert nums.find(reverse=True) == {"i": 9}
    assert [v["i"] for v in nums.values(lo=7)] == [7, 8, 9]
    assert list(nums.items(lo=8)) == [((8,), {"i": 8}), ((9,), {"i": 9})]


def test_prefix_is_element_wise(store: acid.Store) -> None:
    coll = store.add_collection("c")
    for key in [("P", 1), ("P", 2), ("PP", 0), ("P",), ("O", 9), ("Q", 0), (("P",), 1)]:
        coll.put("v", key=key)
    assert list(coll.keys(prefix="P")) == [("P",), ("P", 1), ("P", 2)]
    assert list(coll.keys(prefix=("P", 1))) == [("P", 1)]
    assert list(coll.keys(prefix=("P",), reverse=True)) == [("P", 2), ("P", 1), ("P",)]
    assert list(coll.keys(prefix=("P",), lo=("P", 2))) == [("P", 2)]
    assert list(coll.keys(prefix="Z")) == []


def test_raw_values(store: acid.Store) -> None:
    coll = store.add_collection("c", encoder=encoders.MSGPACK)
    coll.put({"a": 1}, key=1)
    raw = coll.get(1, raw=True)
    assert isinstance(raw, bytes)
    assert encoders.MSGPACK.unpack(raw) == {"a": 1}
    assert list(coll.values(raw=True)) == [raw]
    assert list(coll.items(raw=True)) == [((1,), raw)]


def test_empty_encoded_value_reads_back(store: acid.Store) -> None:
    store.add_encoder(acid.encoders.Encoder("bytes", bytes, bytes))
    coll = store.add_collection("c", encoder="bytes")
    coll.put(b"", key=1)
    assert coll.get(1) == b""
    assert coll.get(1, default="missing") == b""
    assert list(coll.values()) == [b""]


def test_iterators_keep_their_transaction(store: acid.Store) -> None:
    coll = store.add_collection("c")
    for i in range(5):
        coll.put(i, key=i)
    it = coll.values()
    assert next(it) == 0
    coll.put(99, key=100)  # a write committed while the reader is open
    rest = list(it)
    if store.engine.snapshots:
        assert rest == [1, 2, 3, 4]
    assert rest[:4] == [1, 2, 3, 4]


def test_bad_arguments(store: acid.Store) -> None:
    coll = store.add_collection("c")
    with pytest.raises(TypeError):
        coll.put({"a": 1}, key=object())
    with pytest.raises(TypeError):
        coll.put({1, 2}, key=1)  # JSON cannot encode a set
    with pytest.raises(TypeError):
        list(coll.keys(max="3"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max"):
        coll.keys(max=-1)
    with pytest.raises(TypeError, match="acid.open"):
        acid.Store("lmdb:/tmp/x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.add_collection("")
    with pytest.raises(TypeError):
        acid.Collection(store, "x", key_func=5)  # type: ignore[arg-type]
    with pytest.raises(NameInUse):
        idx = coll.add_index("i", lambda r: r)
        coll.add_index(idx.name, lambda r: r)


def test_reopen_with_other_encoder_fails(open_store: object) -> None:
    store = open_store()  # type: ignore[operator]
    store.add_collection("c", encoder=encoders.MSGPACK).put({"a": 1}, key=1)
    with pytest.raises(ConfigError, match="msgpack"):
        store.add_collection("c", encoder=encoders.JSON)
    again = store.add_collection("c")  # no encoder given: the stored one
    assert again.encoder is encoders.MSGPACK
    assert again.get(1) == {"a": 1}


def test_unregistered_encoder(store: acid.Store) -> None:
    def make() -> acid.encoders.Encoder:
        return acid.encoders.Encoder(
            "mine", lambda o: repr(o).encode(), lambda b: int(bytes(b))
        )

    store.add_encoder(make())
    store.add_collection("c", encoder="mine").put(41, key=1)
    fresh = acid.Store(store.engine, prefix=store.prefix)
    with pytest.raises(ConfigError, match="add_encoder"):
        fresh.add_collection("c")
    with pytest.raises(acid.errors.NotFound):
        fresh.add_collection("d", encoder="nope")
    fresh.add_encoder(make())  # registered: the stored name resolves again
    assert fresh.add_collection("c").get(1) == 41
    with pytest.raises(NameInUse):
        store.add_encoder(acid.encoders.Encoder("mine", bytes, bytes))


def test_persistence_across_reopen(open_store: object, engine_name: str) -> None:
    store = open_store()  # type: ignore[operator]
    if not store.engine.persistent:
        pytest.skip("engine is not persistent")
    coll = store.add_collection("c", encoder="msgpack", compressor="zlib")
    idx = coll.add_index("v", lambda r: r["v"])
    with store.begin(write=True):
        for i in range(50):
            coll.put({"v": i % 7, "pad": "x" * 40}, key=i)
    store.count("n", 10)
    store.close()
    store = open_store()  # type: ignore[operator]
    coll = store.add_collection("c")
    assert coll.encoder.name == "msgpack" and coll.compressor.name == "zlib"
    idx2 = coll.add_index("v", lambda r: r["v"])
    assert idx2.id == idx.id
    assert coll.get(10) == {"v": 3, "pad": "x" * 40}
    assert idx2.count(3) == len([i for i in range(50) if i % 7 == 3])
    assert store.count("n", 0) == 11
    assert store.check().ok


@pytest.mark.parametrize(
    "make",
    [
        lambda s: s.add_collection(""),
        lambda s: s.add_collection(3),
        lambda s: s.add_collection("c", key_func=3),
        lambda s: s.add_collection("c", counter_name=""),
        lambda s: s.add_collection("c").add_index("", len),
        lambda s: s.add_collection("c").add_index("i", 3),
        lambda s: s.rename_collection("c", ""),
        lambda s: acid.encoders.Encoder("", bytes, bytes),
        lambda s: acid.encoders.Compressor("z", 3, bytes),
    ],
)
def test_bad_names_and_functions_raise_type_error(store: acid.Store, make: Any) -> None:
    with pytest.raises(TypeError):
        make(store)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(acid.errors.ConfigError, ValueError)
