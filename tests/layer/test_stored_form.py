"""Index entries agree with the record as stored, on every engine.

JSON and msgpack do not give every record back as it was put: a tuple
comes back a list, and JSON turns an int, float, bool or None dict key into
a str. Every write path indexes the record as a later ``get`` returns it,
and refuses (``ValueError``, nothing written) a record that would not come
back whole: a tuple dict key under msgpack, two JSON keys that become one.
"""

from __future__ import annotations

import asyncio
import itertools
import pickle
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import acid
import acid.aio
from acid import encoders, keylib
from acid.testing import FakeClock

ENCODERS = ["json", "msgpack"]
names = (f"c{i}" for i in itertools.count())


def kinds(value: Any) -> str:
    """The types of a value, all the way down: tuples and lists differ."""
    if isinstance(value, dict):
        inner = ",".join(f"{type(k).__name__}:{kinds(v)}" for k, v in value.items())
        return f"{type(value).__name__}{{{inner}}}"
    if isinstance(value, list | tuple):
        return f"{type(value).__name__}[{','.join(map(kinds, value))}]"
    return type(value).__name__


#: Index functions that see the differences between a record and its stored
#: form (the types of values and of dict keys), and a field the query
#: planner uses.
FUNCS: dict[str, Callable[[Any], Any]] = {
    "shape": lambda r: kinds(r.get("a")),
    "keys": lambda r: kinds(r.get("m")),
    "a": acid.field("a"),
}

ODD: list[dict[str, Any]] = [
    {"a": (1, 2), "m": {"s": 1}},
    {"a": 1, "m": {1: "x"}},
    {"a": [(1,), ((2, 3), [4])], "m": {True: "t", None: "n", 2.5: "f", -3: "i"}},
    {"a": {"b": (None, "x")}, "m": {"1": {"k": (1,)}, 7: [(), {}]}},
    {"a": (), "m": {}},
]


def stored_form(encoder: str, rec: Any) -> Any:
    enc = encoders.BUILTIN_ENCODERS[encoder]
    return enc.unpack(enc.pack(rec))


def make(store: acid.Store, encoder: str, **kw: Any) -> acid.Collection:
    coll = store.add_collection(next(names), encoder=encoder, **kw)
    for name, func in FUNCS.items():
        coll.add_index(name, func)
    return coll


def assert_agrees(store: acid.Store, coll: acid.Collection) -> None:
    """Every index finds each stored record under what the function says of
    the record as stored, and nothing else; ``check()`` agrees."""
    report = store.check()
    assert report.ok, (report.missing, report.stale, report.miscounted)
    stored = dict(coll.items())
    for name, func in FUNCS.items():
        idx = coll.indices[name]
        if name == "a":  # a field: one entry per list element
            continue
        assert idx.count() == len(stored)
        for key, rec in stored.items():
            assert key in list(idx.keys(func(rec))), (name, rec)
    # The planner's index and a full scan give the same answer.
    for value in (1, 4, -3, None, True, "x"):
        spec = {"a": value}
        want = [r for r in stored.values() if _field_matches(r.get("a"), value)]
        assert sorted(map(repr, coll.query(spec))) == sorted(map(repr, want)), spec


def _field_matches(field: Any, value: Any) -> bool:
    if field == value and kinds(field) == kinds(value):
        return True
    return isinstance(field, list) and any(
        f == value and kinds(f) == kinds(value) for f in field
    )


# -- every write path ----------------------------------------------------


@pytest.mark.parametrize("encoder", ENCODERS)
def test_put(store: acid.Store, encoder: str) -> None:
    coll = make(store, encoder)
    keys = [coll.put(rec) for rec in ODD]
    for key, rec in zip(keys, ODD, strict=True):
        assert coll.get(key) == stored_form(encoder, rec)
    assert_agrees(store, coll)
    # Replacing: the old entries come from the stored record, the new from
    # the new record as stored.
    for key, rec in zip(keys, reversed(ODD), strict=True):
        coll.put(rec, key=key)
    assert_agrees(store, coll)
    for key in keys[:2]:
        coll.delete(key)
    assert_agrees(store, coll)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_put_in_one_transaction_and_abort(store: acid.Store, encoder: str) -> None:
    coll = make(store, encoder)
    with store.begin(write=True):
        for rec in ODD:
            coll.put(rec)
    assert_agrees(store, coll)
    with store.begin(write=True):
        coll.put({"a": (9,), "m": {9: 9}}, key=1)
        acid.abort()
    assert coll.get(1) == stored_form(encoder, ODD[0])
    assert_agrees(store, coll)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_put_many(store: acid.Store, encoder: str) -> None:
    coll = make(store, encoder)
    keys = coll.put_many(ODD)  # a first load: the pairs-only path
    assert [coll.get(k) for k in keys] == [stored_form(encoder, r) for r in ODD]
    assert_agrees(store, coll)
    keyed = make(store, encoder, key_func=lambda r: r["id"])
    recs = [{**r, "id": i % 3} for i, r in enumerate(ODD)]  # keys twice
    keyed.put_many(recs[:2])
    keyed.put_many(recs)  # replaces and new keys, a key written twice
    for i in range(3):
        last = [r for r in recs if r["id"] == i][-1]
        assert keyed.get(i) == stored_form(encoder, last)
    assert len(keyed) == 3
    assert_agrees(store, keyed)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_put_many_mixes_exact_and_odd_records(store: acid.Store, encoder: str) -> None:
    coll = make(store, encoder)
    recs = [
        {"a": i, "m": {"x": i}} if i % 2 else {"a": (i,), "m": {i: i}}
        for i in range(10)
    ]
    keys = coll.put_many(recs)
    assert [coll.get(k) for k in keys] == [stored_form(encoder, r) for r in recs]
    assert_agrees(store, coll)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_dict_facade_and_update(store: acid.Store, encoder: str) -> None:
    coll = make(store, encoder)
    coll["x"] = ODD[0]
    coll[("y", 1)] = ODD[1]
    coll.update({"z": ODD[2], "w": ODD[3]})
    coll.update([ODD[4], ODD[0]])
    assert coll["x"] == stored_form(encoder, ODD[0])
    assert coll["z"] == stored_form(encoder, ODD[2])
    assert len(coll) == 6
    assert_agrees(store, coll)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_atomic_operations(store: acid.Store, encoder: str) -> None:
    coll = make(store, encoder)
    assert coll.add({"a": (1,), "m": {1: "x"}}, key=1)
    assert not coll.add({"a": (2,)}, key=1)
    assert coll.replace({"a": (3, 4), "m": {None: 1}}, key=1)
    assert_agrees(store, coll)
    current = coll.get(1)
    assert coll.cas(1, current, {"a": ((5,),), "m": {2.5: [()]}})
    # The stored record holds lists, not the tuples that were put.
    assert not coll.cas(1, {"a": ((5,),), "m": {2.5: [()]}}, {"a": 0})
    assert coll.cas(1, coll.get(1), {"a": (6,), "m": {False: 0}, "n": 0, "l": [(1,)]})
    assert coll.incr(1, "n", 2) == 2
    assert coll.append(1, "l", (2, 3), {4: 5}) == 3
    assert coll.get(1)["l"] == stored_form(encoder, [(1,), (2, 3), {4: 5}])
    assert_agrees(store, coll)
    assert coll.cas(2, None, {"a": (7,), "m": {8: 9}})
    assert_agrees(store, coll)
    assert coll.seize(2) == stored_form(encoder, {"a": (7,), "m": {8: 9}})
    assert_agrees(store, coll)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_expiring_puts(open_store: Callable[..., acid.Store], encoder: str) -> None:
    clock = FakeClock()
    store = open_store(clock=clock)
    coll = make(store, encoder, ttl=60)
    key = coll.put(ODD[1])
    coll.put(ODD[2], key="f", ttl=acid.FOREVER)
    keys = coll.put_many([ODD[0], ODD[3]])
    coll.put(ODD[4], key="k", ttl=10)
    coll.incr("k", "n")  # keeps the deadline
    assert coll.get(key) == stored_form(encoder, ODD[1])
    assert_agrees(store, coll)
    clock.now += 30
    assert coll.expire() == 1
    assert_agrees(store, coll)
    clock.now += 100
    coll.expire()
    assert list(coll.keys()) == [("f",)]
    assert not any(coll.get(k) for k in keys)
    assert_agrees(store, coll)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_compressed_collection(store: acid.Store, encoder: str) -> None:
    coll = make(store, encoder, compressor="zlib")
    rec = {"a": (1, 2), "m": {3: "x" * 1000}}  # it compresses
    key = coll.put(rec)
    value = store.engine.get(keylib.pack(key, coll.key_prefix))
    assert value is not None and value[0] == encoders.ZLIB.id
    coll.put_many([rec, ODD[1]])
    assert coll.get(key) == stored_form(encoder, rec)
    assert_agrees(store, coll)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_asyncio_writes(store: acid.Store, encoder: str) -> None:
    async def main() -> acid.aio.Store:
        astore = acid.aio.Store(store)
        coll = await astore.add_collection(next(names), encoder=encoder)
        for name, func in FUNCS.items():
            await coll.add_index(name, func)
        await coll.put(ODD[0], key="x")
        await coll.put_many(ODD[1:])
        bad = {"json": {1: 1, "1": 2}, "msgpack": {(1,): 1}}[encoder]
        with pytest.raises(ValueError):
            await coll.put({"a": 1, "m": bad}, key="y")
        assert await coll.get("x") == stored_form(encoder, ODD[0])
        assert await coll.get("y") is None
        return astore

    astore = asyncio.run(main())
    assert_agrees(store, store[store.collections()[-1]])
    asyncio.run(astore.close())


# -- records that would not come back whole are refused ------------------


BAD = [
    ("msgpack", {"a": 1, "m": {(1, 2): "x"}}, "cannot give this record back"),
    ("msgpack", {"a": [{"deep": {("t",): 1}}]}, "cannot give this record back"),
    ("json", {"a": 1, "m": {1: "x", "1": "y"}}, "keys 1 and '1'"),
    ("json", {"a": [{True: 1, "true": 2}]}, "both stored as 'true'"),
    ("json", {"m": {None: 1, "null": 2}}, "both stored as 'null'"),
    ("json", {"m": {1.5: 1, "1.5": 2}}, "both stored as '1.5'"),
]


@pytest.mark.parametrize("encoder, rec, message", BAD)
@pytest.mark.parametrize("indexed", [True, False], ids=["indexed", "plain"])
def test_refused_records_change_nothing(
    store: acid.Store, encoder: str, rec: Any, message: str, indexed: bool
) -> None:
    coll = (
        make(store, encoder)
        if indexed
        else store.add_collection(next(names), encoder=encoder)
    )
    coll.put({"a": 0, "m": {}}, key=1)
    with pytest.raises(ValueError, match=message):
        coll.put(rec, key=1)
    with pytest.raises(ValueError, match=message):
        coll.put(rec)
    with pytest.raises(ValueError, match=message):
        coll[2] = rec
    with pytest.raises(ValueError, match=message):
        coll.put_many([{"a": 5}, rec])
    with pytest.raises(ValueError, match=message):
        coll.update({3: {"a": 3}, 4: rec})
    with pytest.raises(ValueError, match=message):
        coll.cas(1, {"a": 0, "m": {}}, rec)
    with pytest.raises(ValueError, match=message):
        coll.add(rec, key=9)
    # The transaction may go on after a refused write, and commit the rest.
    with store.begin(write=True):
        coll.put({"a": 7}, key=7)
        with pytest.raises(ValueError, match=message):
            coll.put(rec, key=8)
        coll.put({"a": 8}, key=8)
    assert dict(coll.items()) == {
        (1,): {"a": 0, "m": {}},
        (7,): {"a": 7},
        (8,): {"a": 8},
    }
    assert len(coll) == 3
    assert store.check().ok


def test_msgpack_reads_int_keys_back(store: acid.Store) -> None:
    coll = make(store, "msgpack")
    rec = {"a": 1, "m": {1: "x", -2: "y", False: None, None: b"z", b"k": 2}}
    key = coll.put(rec)
    assert coll.get(key) == rec  # it raised CorruptionError before
    assert [type(k) for k in coll.get(key)["m"]] == [int, int, bool, type(None), bytes]
    assert_agrees(store, coll)


def test_msgpack_int_keys_written_before_read_back(store: acid.Store) -> None:
    # An older acid packed int keys (msgpack packs them) but could not read
    # them back: such a stored record reads now, and plain ones as before.
    coll = store.add_collection(next(names), encoder="msgpack")
    with store.begin(write=True):
        txn = store.active()
        for i, rec in enumerate([{"m": {1: "x"}}, {"s": [b"b", 1.5]}]):
            full = keylib.pack((i,), coll.key_prefix)
            txn.put(full, b"\x00" + msgpack.packb(rec, use_bin_type=True))
    assert coll.get(0) == {"m": {1: "x"}}
    assert coll.get(1) == {"s": [b"b", 1.5]}


@pytest.mark.parametrize(
    "raw",
    [b"\xc1", msgpack.packb({1: "x"}) + b"\x00", msgpack.packb({1: 2})[:-1], b""],
    ids=["bad-byte", "extra-data", "cut", "empty"],
)
def test_msgpack_damaged_values_still_raise(store: acid.Store, raw: bytes) -> None:
    coll = store.add_collection(next(names), encoder="msgpack")
    with store.begin(write=True):
        store.active().put(keylib.pack((1,), coll.key_prefix), b"\x00" + raw)
    with pytest.raises(acid.errors.CorruptionError):
        coll.get(1)


def test_json_turns_keys_into_str(store: acid.Store) -> None:
    coll = make(store, "json")
    key = coll.put({"a": 1, "m": {1: "i", 2.5: "f", False: "t", None: "n"}})
    assert coll.get(key)["m"] == {"1": "i", "2.5": "f", "false": "t", "null": "n"}
    assert list(coll.indices["keys"].keys("dict{str:str,str:str,str:str,str:str}")) == [
        key
    ]
    assert_agrees(store, coll)


# -- pickle and custom encoders -------------------------------------------


class Forgetful:
    """Pickles without its cache: the stored object differs from the put one."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.cache = value * 10

    def __getstate__(self) -> dict[str, Any]:
        return {"value": self.value}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.value = state["value"]
        self.cache = -1


def test_pickle_indexes_what_it_gives_back(store: acid.Store) -> None:
    coll = store.add_collection(next(names), encoder="pickle")
    coll.add_index("cache", lambda r: r["obj"].cache)
    coll.add_index("t", lambda r: kinds(r["t"]))
    k1 = coll.put({"obj": Forgetful(1), "t": (1, (2,)), "k": {(1, "a"): 1}})
    k2 = coll.put_many([{"obj": Forgetful(2), "t": [1]}])[0]
    assert list(coll.indices["cache"].keys(-1)) == [k1, k2]
    assert list(coll.indices["t"].keys("tuple[int,tuple[int]]")) == [k1]
    assert coll.get(k1)["k"] == {(1, "a"): 1}
    assert store.check().ok


def counting(
    name: str, exact: Callable[[Any], bool] | None
) -> tuple[encoders.Encoder, list[int]]:
    calls = [0]

    def unpack(data: Any) -> Any:
        calls[0] += 1
        return pickle.loads(data)

    return encoders.Encoder(name, pickle.dumps, unpack, exact=exact), calls


def test_custom_encoder_without_exact_decodes_when_indexed(store: acid.Store) -> None:
    enc, calls = counting("counted", None)
    store.add_encoder(enc)
    coll = store.add_collection(next(names), encoder=enc)
    coll.put({"a": 1})
    coll.put_many([{"a": 2}, {"a": 3}])
    assert calls[0] == 0  # no index: nothing to compute from the record
    coll.add_index("a", acid.field("a"))
    calls[0] = 0
    coll.put({"a": 4}, key=10)
    assert calls[0] == 1
    coll.put_many([{"a": 5}, {"a": 6}])
    assert calls[0] == 3
    assert store.check().ok


def test_custom_encoder_exact_skips_the_decode(store: acid.Store) -> None:
    enc, calls = counting("trusted", lambda rec: type(rec) is dict)
    store.add_encoder(enc)
    coll = store.add_collection(next(names), encoder=enc)
    coll.add_index("a", acid.field("a"))
    coll.put({"a": 1})
    coll.put_many([{"a": 2}, {"a": 3}])
    assert calls[0] == 0
    coll.put([1])  # exact says False: decoded
    assert calls[0] == 1
    assert store.check().ok


def test_custom_encoder_that_changes_records(store: acid.Store) -> None:
    upper = encoders.Encoder("upper", lambda s: s.upper().encode(), bytes.decode)
    store.add_encoder(upper)
    coll = store.add_collection(next(names), encoder=upper)
    coll.add_index("self", lambda s: s)
    key = coll.put("abc")
    assert list(coll.indices["self"].keys("ABC")) == [key]
    assert list(coll.indices["self"].keys("abc")) == []
    assert store.check().ok


def test_custom_encoder_that_cannot_read_back(store: acid.Store) -> None:
    def broken(data: Any) -> Any:
        raise RuntimeError("no way back")

    enc = encoders.Encoder("one-way", pickle.dumps, broken)
    store.add_encoder(enc)
    coll = store.add_collection(next(names), encoder=enc)
    coll.add_index("a", lambda r: r["a"])
    with pytest.raises(ValueError, match="one-way.*RuntimeError: no way back"):
        coll.put({"a": 1})
    with pytest.raises(ValueError, match="no way back"):
        coll.put_many([{"a": 1}])
    assert len(coll) == 0 and list(coll.indices["a"].keys()) == []


def test_exact_must_be_callable() -> None:
    with pytest.raises(TypeError, match="exact must be callable"):
        encoders.Encoder("x", bytes, bytes, exact=True)  # type: ignore[arg-type]


# -- property: any record, every write path, index == full scan -----------

odd_keys = (
    st.text(max_size=2)
    | st.integers(-2, 2)
    | st.booleans()
    | st.none()
    | st.sampled_from([0.5, -1.5])
    | st.tuples(st.integers(0, 1))
)
leaves = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=2)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(odd_keys, inner, max_size=3)
    ),
    max_leaves=8,
)
records = st.fixed_dictionaries(
    {"a": values, "m": st.dictionaries(odd_keys, values, max_size=3)}
)
writes = st.lists(
    st.tuples(
        st.sampled_from(["put", "put_many", "setitem", "cas"]),
        st.integers(0, 3),
        records,
    ),
    min_size=1,
    max_size=6,
)


@pytest.mark.parametrize("encoder", ENCODERS)
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=writes)
def test_property_indexes_agree_with_a_full_scan(
    store: acid.Store, encoder: str, ops: list[tuple[str, int, dict[str, Any]]]
) -> None:
    coll = make(store, encoder)
    model: dict[tuple, Any] = {}
    try:
        for op, key, rec in ops:
            try:
                if op == "put":
                    coll.put(rec, key=key)
                elif op == "put_many":
                    k1, k2 = coll.put_many([rec, {"a": key}])  # counter keys
                elif op == "setitem":
                    coll[key] = rec
                else:
                    coll.cas(key, coll.get(key), rec)
            except (ValueError, TypeError):  # refused (TypeError: json.dumps)
                assert dict(coll.items()) == model  # nothing changed
                continue
            if op == "put_many":
                model[k1] = stored_form(encoder, rec)
                model[k2] = {"a": key}
            else:
                model[(key,)] = stored_form(encoder, rec)
            assert dict(coll.items()) == model
            assert_agrees(store, coll)
        assert dict(coll.items()) == model
        assert_agrees(store, coll)
    finally:
        store.drop_collection(coll.name)
