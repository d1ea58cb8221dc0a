"""Online index builds under hostile use: declared-field indexes built
online, and every query path on an index that is still building."""

from __future__ import annotations

from typing import Any

import pytest

import acid
from acid.errors import IndexNotReady


class _Stop(Exception):
    pass


def _stop(done: int, total: int | None) -> None:
    raise _Stop


def _half_built(func: Any, name: str = "ix") -> tuple[acid.Store, acid.Collection]:
    """A store whose index ``name`` stopped after its first batch (3 of 10)."""
    store = acid.open("skiplist:/")
    coll = store.add_collection("p")
    for i in range(10):
        coll.put({"city": f"c{i % 3}", "text": f"hello world {i}", "n": i})
    with pytest.raises(_Stop):
        coll.add_index(name, func, build="online", batch=3, progress=_stop)
    assert coll.indices[name].building
    return store, coll


@pytest.mark.parametrize("spec", ["city", ("city", "n")])
def test_a_declared_field_index_builds_online(spec: Any) -> None:
    """``acid.field`` / ``acid.fields`` indexes built online: they were
    refused with ConfigError after the building metadata was stored, which
    left an index nobody could declare (and the collection's writers refused)."""
    store = acid.open("skiplist:/")
    coll = store.add_collection("p")
    for i in range(10):
        coll.put({"city": f"c{i % 3}", "n": i})
    func = acid.field(spec) if isinstance(spec, str) else acid.fields(*spec)
    idx = coll.add_index("ix", func, build="online", batch=3)
    assert not idx.building
    assert store.check().ok
    q = coll.query({"city": "c1"})
    assert [r["n"] for r in q] == [1, 4, 7]
    if isinstance(spec, str):
        assert "ix" in q.explain()
    assert [r["n"] for r in idx.values(lo=("c1",), hi=("c2",))] == [1, 4, 7]
    coll.put({"city": "c1", "n": 10})  # writers are not refused
    assert len(list(coll.query({"city": "c1"}))) == 4


def test_a_declared_field_index_resumes_after_an_interrupted_build() -> None:
    store, coll = _half_built(acid.field("city"))
    idx = coll.build_index("ix")
    assert not idx.building and store.check().ok
    assert [r["n"] for r in coll.query({"city": "c2"})] == [2, 5, 8]


@pytest.mark.parametrize(
    "call",
    ["values", "items", "keys", "pairs", "tups", "count", "find", "get", "has"],
)
def test_index_paths_on_a_building_index_raise(call: str) -> None:
    store, coll = _half_built(acid.field("city"))
    idx = coll.indices["ix"]
    args = ("c1",) if call in ("get", "has") else ()
    with pytest.raises(IndexNotReady):
        result = getattr(idx, call)(*args)
        list(result) if hasattr(result, "__iter__") else result


@pytest.mark.parametrize(
    "spec,want",
    [({"city": "c1"}, [1, 4, 7]), ({"n": {"$gte": 5}}, [5, 6, 7, 8, 9])],
)
def test_a_planned_query_never_answers_from_a_building_index(
    spec: dict[str, Any], want: list[int]
) -> None:
    """A query that does not name the index must not fail either: it runs
    as if the index did not exist yet (full scan), with the right answer."""
    store = acid.open("skiplist:/")
    coll = store.add_collection("p")
    for i in range(10):
        coll.put({"city": f"c{i % 3}", "n": i})
    for name, func in [("city", acid.field("city")), ("n", acid.field("n"))]:
        with pytest.raises(_Stop):
            coll.add_index(name, func, build="online", batch=3, progress=_stop)
    assert sorted(r["n"] for r in coll.query(spec)) == want


@pytest.mark.parametrize(
    "kind,call,arg",
    [
        ("tokens", "search", "hello"),
        ("tokens", "search_any", "hello world"),
        ("tokens", "search_phrase", "hello world"),
        ("qgrams", "contains", "llo"),
    ],
)
def test_text_search_on_a_building_index_raises(kind: str, call: str, arg: str) -> None:
    func = acid.tokens("text") if kind == "tokens" else acid.qgrams("text")
    store, coll = _half_built(func)
    with pytest.raises(IndexNotReady):
        getattr(coll.indices["ix"], call)(arg)
