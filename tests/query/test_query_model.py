"""Every query returns exactly what a brute-force evaluation of its spec
returns, in the requested order, with limit and offset: on every engine,
with and without indexes on the queried fields."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from query_model import reference

import acid

PATHS = ["a", "b", "c", "n.x", "n.y"]
SCALARS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([1.0, 1.5, -0.0, 0.0, 2.5, float("inf")]),
    st.text("abAB ", max_size=4),
    st.sampled_from([None, True, False, b"ab"]),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.sampled_from(["x", "z"]), SCALARS, max_size=2),
)
NESTED = st.dictionaries(st.sampled_from(["x", "y"]), VALUES, max_size=2)
RECORDS = st.dictionaries(
    st.sampled_from(["a", "b", "c", "n"]),
    st.one_of(VALUES, NESTED),
    max_size=4,
)
STRINGS = st.text("abAB ", max_size=3)
OPS: dict[str, st.SearchStrategy[Any]] = {
    "$eq": VALUES,
    "$ne": VALUES,
    "$gt": SCALARS,
    "$gte": SCALARS,
    "$lt": SCALARS,
    "$lte": SCALARS,
    "$in": st.lists(VALUES, max_size=3),
    "$nin": st.lists(VALUES, max_size=3),
    "$exists": st.booleans(),
    "$mod": st.tuples(st.sampled_from([2, 3, -2]), st.integers(-1, 2)).map(list),
    "$all": st.lists(SCALARS, max_size=2),
    "$startswith": STRINGS,
    "$endswith": STRINGS,
    "$contains": STRINGS,
    "$regex": st.sampled_from(["^a", "b$", "A.", "[ab]{2}", ""]),
    "$text": st.sampled_from(["a", "ab", "AB a", "b B"]),
}


@st.composite
def operator_dicts(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(sorted(OPS)), min_size=1, max_size=2))
    ops = {n: draw(OPS[n]) for n in names}
    if draw(st.integers(0, 5)) == 0:
        return {"$not": ops}
    return ops


@st.composite
def specs(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for path in draw(st.lists(st.sampled_from(PATHS), max_size=2, unique=True)):
        if draw(st.booleans()):
            spec[path] = draw(SCALARS)
        else:
            spec[path] = draw(operator_dicts())
    if depth < 2 and draw(st.integers(0, 3)) == 0:
        logic = draw(st.sampled_from(["$and", "$or", "$nor"]))
        spec[logic] = draw(st.lists(specs(depth + 1), min_size=1, max_size=3))
    return spec


ORDERS = st.lists(
    st.tuples(st.sampled_from(PATHS), st.booleans()),
    max_size=2,
    unique_by=lambda t: t[0],
)
INDEXES = [
    ("a", acid.field("a")),
    ("nx", acid.field("n.x")),
    ("ab", acid.fields("a", "b")),
    ("bc", acid.fields("b", "c")),
    ("c", acid.field("c")),
    ("words", acid.tokens("a")),
    ("grams", acid.qgrams("a", q=2)),
]
counter = itertools.count()


@pytest.fixture(params=["skiplist", "lmdb", "leveldb"])
def shared_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[acid.Store]:
    path = tmp_path_factory.mktemp(request.param)
    if request.param == "leveldb":
        pytest.importorskip("plyvel")
    url = {
        "skiplist": "skiplist:/",
        "lmdb": f"lmdb:{path}/lmdb?map_size=256MiB",
        "leveldb": f"leveldb:{path}/leveldb",
    }[request.param]
    store = acid.open(url)
    yield store
    store.close()


def load(store: acid.Store, records: list[Any], indexed: bool) -> acid.Collection:
    coll = store.add_collection(f"c{next(counter)}", encoder=acid.encoders.MSGPACK)
    if indexed:
        for name, func in INDEXES:
            coll.add_index(name, func)
    with store.begin(write=True):
        for rec in records:
            coll.put(rec)
    return coll


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    records=st.lists(RECORDS, max_size=12),
    spec=specs(),
    order=ORDERS,
    limit=st.one_of(st.none(), st.integers(0, 5)),
    offset=st.integers(0, 3),
    indexed=st.booleans(),
)
def test_query_matches_brute_force(
    shared_store: acid.Store,
    records: list[Any],
    spec: dict[str, Any],
    order: list[tuple[str, bool]],
    limit: int | None,
    offset: int,
    indexed: bool,
) -> None:
    coll = load(shared_store, records, indexed)
    stored = dict(coll.items())
    want = reference(stored, spec, order)
    q = coll.query(spec)
    if order:
        q = q.order_by(*[("-" if d else "") + p for p, d in order])
    got = list(q.keys())
    if order:
        assert got == want, q.explain()
    else:
        assert sorted(got) == sorted(want), q.explain()
    assert len(got) == len(set(got))
    assert q.count() == len(want)
    window = list(q.offset(offset).limit(limit).keys())
    end = None if limit is None else offset + limit
    assert window == got[offset:end]
    first = q.first()
    assert first == (stored[got[0]] if got else None)
    assert [r for r in q] == [stored[k] for k in got]
    shared_store.drop_collection(coll.name)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(records=st.lists(RECORDS, max_size=10), spec=specs())
def test_delete_removes_exactly_the_matches(
    shared_store: acid.Store, records: list[Any], spec: dict[str, Any]
) -> None:
    coll = load(shared_store, records, True)
    before = dict(coll.items())
    doomed = set(reference(before, spec, []))
    assert coll.query(spec).delete() == len(doomed)
    assert dict(coll.items()) == {k: r for k, r in before.items() if k not in doomed}
    assert len(coll) == len(before) - len(doomed)
    assert shared_store.check().ok
    shared_store.drop_collection(coll.name)
