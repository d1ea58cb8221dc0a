"""Queries after another process changed the schema: an index it dropped
must not serve a plan here (its entries are gone, so the answer would be
empty), a collection it dropped must refuse, and an index dropped, added or
rolled back in this process must leave plans exact."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import acid
from acid.errors import SchemaError

ELSEWHERE = """
import sys, acid
store = acid.open(sys.argv[1])
coll = store.add_collection("c")
coll.add_index("a", acid.field("a"))
if sys.argv[2] == "drop index":
    coll.drop_index("a")
    coll.put({"a": 100})
else:
    store.drop_collection("c")
store.close()
"""


def elsewhere(url: str, what: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    subprocess.run([sys.executable, "-c", ELSEWHERE, url, what], env=env, check=True)


def fill(store: acid.Store) -> tuple[acid.Collection, acid.Query]:
    coll = store.add_collection("c")
    coll.add_index("a", acid.field("a"))
    for i in range(10):
        coll.put({"a": i})
    q = coll.query({"a": {"$gte": 5}})
    assert q.count() == 5 and "USING INDEX a" in q.explain()
    return coll, q


def test_an_index_dropped_by_another_process_no_longer_serves(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db"
    with acid.open(url) as store:
        coll, q = fill(store)
        elsewhere(url, "drop index")
        # The cached plan, a new query, a block, a write block: before, each
        # read the dropped index's (deleted) entries and found nothing.
        assert sorted(r["a"] for r in q) == [5, 6, 7, 8, 9, 100]
        assert coll.query({"a": {"$gte": 5}}).count() == 6
        with store.begin():
            assert q.count() == 6
        with store.begin(write=True):
            assert q.count() == 6
        assert q.explain().startswith("SCAN c")
        assert q.delete() == 6
        assert sorted(r["a"] for _, r in coll) == [0, 1, 2, 3, 4]


def test_a_collection_dropped_by_another_process_refuses_queries(
    tmp_path: Path,
) -> None:
    url = f"lmdb:{tmp_path}/db"
    with acid.open(url) as store:
        coll, q = fill(store)
        elsewhere(url, "drop collection")
        with pytest.raises(SchemaError):
            list(q)
        with pytest.raises(SchemaError):
            coll.query({"a": 1}).first()
        with store.begin(), pytest.raises(SchemaError):
            q.count()


def test_index_dropped_added_or_rolled_back_here(
    open_store: Callable[..., acid.Store],
) -> None:
    store = open_store()
    coll, q = fill(store)
    it = iter(q)
    assert next(it) == {"a": 5}
    coll.drop_index("a")  # between the plan and the rest of the iteration
    assert [r["a"] for r in it] == [6, 7, 8, 9]  # the snapshot of its start
    assert q.count() == 5 and q.explain().startswith("SCAN c")
    coll.add_index("a", acid.field("a"))  # again: a new index, a new plan
    assert q.count() == 5 and "USING INDEX a" in q.explain()
    with pytest.raises(RuntimeError), store.begin(write=True):
        coll.add_index("b", acid.field("a"))
        coll.drop_index("a")
        assert coll.query({"a": 7}).explain().startswith("SEARCH c USING INDEX b")
        assert coll.query({"a": 7}).count() == 1
        raise RuntimeError
    assert "b" not in coll.indices
    assert coll.query({"a": 7}).explain().startswith("SEARCH c USING INDEX a")
    assert coll.query({"a": 7}).count() == 1 and q.count() == 5
    assert store.check().ok


def test_len_of_a_collection_dropped_by_another_process(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db"
    with acid.open(url) as store:
        coll, q = fill(store)
        assert len(coll) == 10
        elsewhere(url, "drop collection")
        # len() read the count of the dropped collection: 10.
        with pytest.raises(SchemaError):
            len(coll)
        with pytest.raises(SchemaError):
            q.count()
        with pytest.raises(SchemaError):
            coll.query().count()  # the shortcut through len()
        fresh = store.add_collection("c")
        assert len(fresh) == 0


@pytest.mark.xfail(
    strict=True,
    reason="drop_collection deletes the key counter but not the record-count "
    "counter (acid/store.py; its name is made in acid/collection.py)",
)
def test_drop_collection_leaves_no_key_behind(
    open_store: Callable[..., acid.Store],
) -> None:
    store = open_store()
    store.add_collection("keep").put({"x": 1})

    def raw_keys() -> list[bytes]:
        txn = store.engine.begin()
        try:
            return [k for k, _ in txn.iter(b"")]
        finally:
            txn.abort()

    before = raw_keys()
    coll = store.add_collection("gone")
    for i in range(3):
        coll.put({"i": i})
    assert len(coll) == 3
    store.drop_collection("gone")
    leftover = set(raw_keys()) - set(before)
    assert leftover == set(), leftover  # the schema token existed before


def test_redeclared_differently_names_both_declarations(
    open_store: Callable[..., acid.Store],
) -> None:
    store = open_store()
    coll = store.add_collection("c")
    coll.add_index("ab", acid.fields("a", "b"))
    coll.add_index("g", acid.qgrams("a", q=3))
    coll.add_index("w", acid.tokens("a"))
    coll.put({"a": "x", "b": 1})
    again = store.add_collection("c")
    cases = [
        ("ab", acid.fields("b", "a"), "acid.fields('a', 'b')", "acid.fields('b', 'a')"),
        ("ab", lambda r: [], "acid.fields('a', 'b')", "a plain function"),
        ("g", acid.qgrams("a", q=4), "acid.qgrams('a', q=3)", "acid.qgrams('a', q=4)"),
        ("w", acid.field("a"), "acid.tokens('a')", "acid.field('a')"),
    ]
    for name, func, was, now in cases:
        with pytest.raises(acid.errors.ConfigError) as err:
            again.add_index(name, func)
        assert f"created with {was}, but is declared with {now}" in str(err.value)


def test_queries_after_the_store_closes(
    open_store: Callable[..., acid.Store], engine_name: str
) -> None:
    store = open_store()
    coll, q = fill(store)
    started = iter(q)
    assert next(started) == {"a": 5}
    sliced = iter(coll[:])
    assert next(sliced)[1] == {"a": 0}
    store.close()
    for use in (lambda: list(q), lambda: len(coll), lambda: list(coll[:])):
        with pytest.raises(acid.errors.EngineError, match="closed"):
            use()
    if engine_name in ("lmdb", "leveldb", "postgresql"):  # snapshots end with it
        with pytest.raises(acid.errors.TxnError):
            list(started)
        with pytest.raises(acid.errors.TxnError):
            list(sliced)
    else:  # the memory engine's snapshot outlives it: the rest, unchanged
        assert [r["a"] for r in started] == [6, 7, 8, 9]
