"""put_many / get_many / delete_many: the same results as single calls, all
or nothing, on every engine."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import acid
from acid.errors import EngineError, TxnError

LONG = "y" * 600  # longer than LMDB's 511-byte keys once packed
_names = itertools.count()


def raw_state(store: acid.Store) -> list[tuple[bytes, bytes]]:
    """Every key and value of the engine, in the active or a new txn."""
    txn = store.txn
    if txn is not None:
        return list(txn.iter(b""))
    with store.engine.begin() as own:
        return list(own.iter(b""))


class Fails:
    """An index function that raises on the record whose ``n`` is ``at``."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func
        self.at: int | None = None
        self.calls = 0

    def __call__(self, rec: Any) -> Any:
        self.calls += 1
        if rec.get("n") == self.at:
            raise ValueError("index function failed")
        return self.func(rec)


def keyed(store: acid.Store, **kwargs: Any) -> tuple[acid.Collection, Fails]:
    coll = store.add_collection(
        f"c{next(_names)}", key_func=lambda r: r["id"], **kwargs
    )
    coll.add_index("v", lambda r: r["v"])
    coll.add_index("tags", lambda r: r.get("tags", []))
    fails = Fails(lambda r: (r["v"], r["n"]))
    coll.add_index("pair", fails)  # last: the one that fails
    return coll, fails


def model_pairs(model: dict[int, dict]) -> dict[str, list[tuple]]:
    """The index pairs the model's records must produce, in index order."""
    v = sorted(((r["v"],), (k,)) for k, r in model.items())
    tags = sorted({((t,), (k,)) for k, r in model.items() for t in r.get("tags", [])})
    pair = sorted(((r["v"], r["n"]), (k,)) for k, r in model.items())
    return {"v": v, "tags": tags, "pair": pair}


def assert_matches(coll: acid.Collection, model: dict[int, dict]) -> None:
    assert dict((k[0], r) for k, r in coll.items()) == model
    expected = model_pairs(model)
    for name, pairs in expected.items():
        assert list(coll.indices[name].pairs()) == pairs, name
    assert coll.store.check().ok


# -- happy paths ---------------------------------------------------------------


def test_put_many_returns_keys_and_indexes(store: acid.Store) -> None:
    coll, _ = keyed(store)
    recs = [{"id": i, "v": i % 3, "n": i, "tags": ["a", f"t{i}"]} for i in range(20)]
    assert coll.put_many(recs) == [(i,) for i in range(20)]
    assert_matches(coll, {r["id"]: r for r in recs})
    assert coll.get_many([3, 99, (5,)], default="-") == [recs[3], "-", recs[5]]


def test_put_many_counter_keys_continue_the_counter(store: acid.Store) -> None:
    coll = store.add_collection("auto")
    by_v = coll.add_index("v", lambda r: r["v"])
    assert coll.put({"v": 1}) == (1,)
    assert coll.put_many([{"v": 2}, {"v": 3}]) == [(2,), (3,)]
    assert coll.put({"v": 4}) == (4,)
    assert coll.put_many(iter([{"v": 5}])) == [(5,)]  # any iterable
    assert [k for k in by_v.keys()] == [(1,), (2,), (3,), (4,), (5,)]
    assert coll.put_many([]) == []
    assert coll.put({"v": 6}) == (6,)


def test_counter_keys_landing_on_an_explicit_key(store: acid.Store) -> None:
    # A counter key is not always new: an explicit key may already be there.
    coll = store.add_collection("auto")
    by_v = coll.add_index("v", lambda r: r["v"])
    coll.put({"v": "explicit"}, key=3)
    assert coll.put_many([{"v": "a"}, {"v": "b"}, {"v": "c"}]) == [(1,), (2,), (3,)]
    assert list(by_v.pairs()) == [(("a",), (1,)), (("b",), (2,)), (("c",), (3,))]
    assert store.check().ok


def test_put_many_over_existing_records_replaces_entries(store: acid.Store) -> None:
    coll, _ = keyed(store)
    model = {i: {"id": i, "v": i, "n": i, "tags": ["x", "y"]} for i in range(10)}
    coll.put_many(list(model.values()))
    new = [{"id": i, "v": -i, "n": i, "tags": ["y", "z"]} for i in range(5, 15)]
    coll.put_many(new)
    model.update({r["id"]: r for r in new})
    assert_matches(coll, model)


def test_duplicate_keys_behave_like_successive_puts(store: acid.Store) -> None:
    coll, _ = keyed(store)
    other, _ = keyed(store)
    coll.put({"id": 1, "v": 0, "n": 0, "tags": ["old"]})
    other.put({"id": 1, "v": 0, "n": 0, "tags": ["old"]})
    batch = [
        {"id": 1, "v": 1, "n": 1, "tags": ["a"]},
        {"id": 2, "v": 2, "n": 2},
        {"id": 1, "v": 3, "n": 3, "tags": ["b", "c"]},
        {"id": 2, "v": 4, "n": 4, "tags": ["d"]},
    ]
    assert coll.put_many(batch) == [(1,), (2,), (1,), (2,)]
    for rec in batch:
        other.put(rec)
    assert list(coll.items()) == list(other.items())
    for name in ("v", "tags", "pair"):
        assert list(coll.indices[name].pairs()) == list(other.indices[name].pairs())
    assert store.check().ok


def test_get_many_sees_the_transactions_own_writes(store: acid.Store) -> None:
    coll, _ = keyed(store)
    coll.put_many([{"id": i, "v": i, "n": i} for i in range(3)])
    with store.begin(write=True):
        coll.put({"id": 7, "v": 7, "n": 7})
        coll.delete(0)
        assert coll.get_many([0, 1, 7]) == [
            None,
            {"id": 1, "v": 1, "n": 1},
            coll.get(7),
        ]
        assert coll.get_many([]) == []
    with store.begin():
        assert coll.get_many([7, 0]) == [{"id": 7, "v": 7, "n": 7}, None]


def test_delete_many_counts_and_cleans_indexes(store: acid.Store) -> None:
    coll, _ = keyed(store)
    model = {i: {"id": i, "v": i % 2, "n": i, "tags": ["t"]} for i in range(10)}
    coll.put_many(list(model.values()))
    assert coll.delete_many([1, 3, 3, 42, (5,)]) == 3
    for k in (1, 3, 5):
        del model[k]
    assert_matches(coll, model)
    assert coll.delete_many([]) == 0


def test_bulk_writes_in_a_read_transaction_raise(store: acid.Store) -> None:
    coll, _ = keyed(store)
    coll.put({"id": 1, "v": 1, "n": 1})
    with store.begin():
        with pytest.raises(TxnError):
            coll.put_many([{"id": 2, "v": 2, "n": 2}])
        with pytest.raises(TxnError):
            coll.delete_many([1])
        assert coll.get_many([1, 2]) == [{"id": 1, "v": 1, "n": 1}, None]
    assert coll.get(2) is None and coll.get(1) is not None


# -- failures: nothing written -------------------------------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "over-existing"])
def test_index_function_failing_on_the_50th_record(
    store: acid.Store, existing: bool
) -> None:
    coll, fails = keyed(store)
    model: dict[int, dict] = {}
    if existing:  # the batch replaces records: the update path
        model = {i: {"id": i, "v": 1, "n": 1000 + i, "tags": ["o"]} for i in range(60)}
        coll.put_many(list(model.values()))
    before = raw_state(store)
    batch = [{"id": i, "v": i % 7, "n": i, "tags": ["a", "b"]} for i in range(100)]
    fails.at = 49  # the 50th record
    with pytest.raises(ValueError, match="index function failed"):
        coll.put_many(batch)
    assert raw_state(store) == before
    assert_matches(coll, model)
    # Inside a block: the block's earlier writes stay, the batch leaves nothing.
    with store.begin(write=True):
        coll.put({"id": 500, "v": 5, "n": 500})
        inside = raw_state(store)
        with pytest.raises(ValueError):
            coll.put_many(batch)
        assert raw_state(store) == inside
        coll.put({"id": 501, "v": 5, "n": 501})
    model[500] = {"id": 500, "v": 5, "n": 500}
    model[501] = {"id": 501, "v": 5, "n": 501}
    assert_matches(coll, model)


def test_index_function_failing_on_a_stored_record(store: acid.Store) -> None:
    # The old record's entries are computed before anything is written.
    coll, fails = keyed(store)
    model = {i: {"id": i, "v": i, "n": i} for i in range(10)}
    coll.put_many(list(model.values()))
    before = raw_state(store)
    fails.at = 4  # record 4 as stored
    with pytest.raises(ValueError):
        coll.put_many([{"id": i, "v": 0, "n": 100 + i} for i in range(10)])
    with pytest.raises(ValueError):
        coll.delete_many([1, 2, 4, 6])
    assert raw_state(store) == before
    fails.at = None
    assert_matches(coll, model)


def test_key_function_and_encoder_failures(store: acid.Store) -> None:
    def key(rec: dict) -> Any:
        if rec["n"] == 3:
            raise KeyError("no key")
        return rec["id"]

    coll = store.add_collection("k", key_func=key)
    coll.add_index("n", lambda r: r["n"])
    coll.put({"id": 0, "n": 0})
    before = raw_state(store)
    with pytest.raises(KeyError):
        coll.put_many([{"id": i, "n": i} for i in range(1, 6)])
    with pytest.raises(TypeError):  # JSON cannot encode an object()
        coll.put_many([{"id": 1, "n": 1}, {"id": 2, "n": 2, "bad": object()}])
    with pytest.raises((TypeError, ValueError)):  # a key that cannot be packed
        coll.put_many([{"id": 1, "n": 1}, {"id": object(), "n": 2}])
    assert raw_state(store) == before
    assert store.check().ok


def test_counter_is_not_advanced_by_a_failed_batch(store: acid.Store) -> None:
    coll = store.add_collection("auto")
    fails = Fails(lambda r: r["n"])
    coll.add_index("n", fails)
    assert coll.put_many([{"n": 0}, {"n": 1}]) == [(1,), (2,)]
    fails.at = 5
    with pytest.raises(ValueError):
        coll.put_many([{"n": i} for i in range(2, 8)])
    fails.at = None
    assert coll.put_many([{"n": 9}]) == [(3,)]
    assert store.check().ok


def test_engine_refusing_an_index_key_mid_batch(
    store: acid.Store, engine_name: str
) -> None:
    if engine_name != "lmdb":
        pytest.skip("only LMDB limits key sizes")
    coll = store.add_collection("people")
    coll.add_index("name", lambda r: r["name"])
    coll.add_index("tags", lambda r: r["tags"])
    coll.put_many([{"name": "a", "tags": ["x"]}, {"name": "b", "tags": ["y"]}])
    before = raw_state(store)
    batch = [{"name": f"n{i}", "tags": ["t"]} for i in range(60)]
    batch[50] = {"name": LONG, "tags": ["t"]}
    with pytest.raises(EngineError, match="511"):
        coll.put_many(batch)
    assert raw_state(store) == before
    with store.begin(write=True):  # over existing records, inside a block
        with pytest.raises(EngineError):
            coll.put_many([{"name": "c", "tags": ["z"]}, {"name": LONG, "tags": []}])
        assert raw_state(store) == before
        coll.put({"name": "d", "tags": []})
    assert coll.put({"name": "e", "tags": []}) == (4,)  # the counter went back
    assert store.check().ok


def test_aborted_block_leaves_nothing(store: acid.Store) -> None:
    coll, _ = keyed(store)
    coll.put_many([{"id": i, "v": i, "n": i} for i in range(5)])
    before = raw_state(store)
    with store.begin(write=True):
        coll.put_many([{"id": i, "v": -i, "n": i, "tags": ["q"]} for i in range(3, 9)])
        assert coll.delete_many([0, 1]) == 2
        acid.abort()
    assert raw_state(store) == before
    with pytest.raises(RuntimeError):
        with store.begin(write=True):
            coll.put_many([{"id": 20, "v": 0, "n": 0}])
            raise RuntimeError("boom")
    assert raw_state(store) == before
    assert store.check().ok


# -- a property against a dict model -------------------------------------------

RECORD = st.fixed_dictionaries(
    {
        "id": st.integers(0, 12),
        "v": st.integers(-3, 3),
        "n": st.integers(0, 5),
    },
    optional={"tags": st.lists(st.sampled_from("abc"), max_size=3)},
)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put_many"), st.lists(RECORD, max_size=8)),
        st.tuples(st.just("delete_many"), st.lists(st.integers(0, 14), max_size=6)),
        st.tuples(st.just("get_many"), st.lists(st.integers(0, 14), max_size=6)),
        st.tuples(st.just("fail"), st.lists(RECORD, min_size=1, max_size=6)),
    ),
    max_size=8,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=OPS, in_block=st.booleans())
def test_bulk_operations_match_a_dict_model(
    store: acid.Store, ops: list[tuple[str, list]], in_block: bool
) -> None:
    coll, fails = keyed(store)
    model: dict[int, dict] = {}

    def run() -> None:
        for op, arg in ops:
            if op == "put_many":
                fails.at = None
                assert coll.put_many(arg) == [(r["id"],) for r in arg]
                model.update({r["id"]: r for r in arg})
            elif op == "delete_many":
                gone = {k for k in arg if k in model}
                assert coll.delete_many(arg) == len(gone)
                for k in gone:
                    del model[k]
            elif op == "get_many":
                assert coll.get_many(arg, default=0) == [model.get(k, 0) for k in arg]
            else:  # a batch whose last record's index function raises
                batch = [dict(r, n=r["n"]) for r in arg]
                batch[-1]["n"] = -1
                fails.at = -1
                with pytest.raises(ValueError):
                    coll.put_many(batch)
                fails.at = None

    if in_block:
        with store.begin(write=True):
            run()
    else:
        run()
    assert_matches(coll, model)


def shaped(rec: Any) -> Any:
    """An index function giving every kind of result an index function may."""
    if rec is None:
        return None
    kind = rec.get("kind") if isinstance(rec, dict) else None
    x = rec.get("x", 0) if isinstance(rec, dict) else 0
    return {
        "none": None,
        "scalar": x,
        "tuple": (x, "t"),
        "list": [x, x + 1, x],
        "tuples": [(x, 1), (x, 2)],
        "empty": [],
    }.get(kind, "other")


SHAPED = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(
                ["none", "scalar", "tuple", "list", "tuples", "empty"]
            ),
            "x": st.integers(0, 3),
        }
    ),
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, 6), SHAPED), max_size=6), max_size=4
    )
)
def test_put_many_equals_successive_puts(
    store: acid.Store, batches: list[list[tuple[int, Any]]]
) -> None:
    # Every kind of index result (None, scalar, tuple, lists, nothing), None
    # records, keys repeated within and across batches.
    n = next(_names)
    bulk = store.add_collection(f"bulk{n}", key_func=lambda r: r[0])
    one = store.add_collection(f"one{n}", key_func=lambda r: r[0])
    for coll in (bulk, one):
        coll.add_index("shaped", lambda r: shaped(r[1]))
        coll.add_index("id", lambda r: r[0])
    for batch in batches:
        recs = [list(r) for r in batch]
        bulk.put_many(recs)
        for rec in recs:
            one.put(rec)
    assert list(bulk.items()) == list(one.items())
    for name in ("shaped", "id"):
        assert list(bulk.indices[name].pairs()) == list(one.indices[name].pairs())
    assert store.check().ok


def test_none_records(store: acid.Store) -> None:
    # put(None) stores a record that no index function sees: so does put_many.
    def never_none(rec: Any) -> Any:
        assert rec is not None
        return rec["x"]

    bulk, one = store.add_collection("bulk"), store.add_collection("one")
    for coll in (bulk, one):
        coll.add_index("x", never_none)
    bulk.put_many([None, {"x": 1}, None])
    for rec in [None, {"x": 1}, None]:
        one.put(rec)
    assert (
        list(bulk.items())
        == list(one.items())
        == [
            ((1,), None),
            ((2,), {"x": 1}),
            ((3,), None),
        ]
    )
    assert list(bulk.indices["x"].pairs()) == [((1,), (2,))]
    assert bulk.put_many([{"x": 5}, None]) == [(4,), (5,)]
    assert bulk.get_many([1, 2, 4, 5, 6], default="-") == [
        None,
        {"x": 1},
        {"x": 5},
        None,
        "-",
    ]
    assert list(bulk.indices["x"].pairs()) == [((1,), (2,)), ((5,), (4,))]
    assert store.check().ok
