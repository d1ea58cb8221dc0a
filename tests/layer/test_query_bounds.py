"""Range arguments are element-wise for every type: ``prefix=(1,)`` never
matches ``(1.5,)``, on records and on index entries, on every engine."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import acid
from acid import _query
from tests.reference_order import starts_with

KEYS = [
    (-2,),
    (-1.5,),
    (-1.5, "b"),
    (0,),
    (1,),
    (1, "a"),
    (1.0,),
    (1.5,),
    (1.5, "b"),
    (2,),
    ((1,), "n"),
    ((1.5,), "n"),
    (3,),
    (3.25,),
]


@pytest.fixture
def nums(store: acid.Store) -> acid.Collection:
    coll = store.add_collection("nums", encoder="pickle")  # keeps tuples
    coll.add_index("first", lambda r: (r["k"][0],))
    coll.add_index("whole", lambda r: r["k"])
    with store.begin(write=True):
        for i, k in enumerate(KEYS):
            coll.put({"k": k, "i": i}, key=k)
    return coll


def test_collection_prefix_is_element_wise(nums: acid.Collection) -> None:
    assert list(nums.keys(prefix=(1,))) == [(1,), (1, "a")]
    assert list(nums.keys(prefix=(-2,))) == [(-2,)]
    assert list(nums.keys(prefix=(1.5,))) == [(1.5,), (1.5, "b")]
    assert list(nums.keys(prefix=((1,),))) == [((1,), "n")]
    assert list(nums.keys(prefix=3)) == [(3,)]


def test_include_hi_is_element_wise(nums: acid.Collection) -> None:
    got = list(nums.keys(lo=0, hi=1, include=True))
    assert got == [(0,), (1,), (1, "a")]
    got = list(nums.keys(lo=0, hi=1, include=True, reverse=True))
    assert got == [(1, "a"), (1,), (0,)]


def test_index_lookups_are_element_wise(nums: acid.Collection) -> None:
    first = nums.indices["first"]
    assert [r["k"] for r in first.values(1)] == [(1,), (1, "a")]
    assert first.get(3)["k"] == (3,)  # not 3.25
    assert first.count(1) == 2 and first.count(-2) == 1
    assert first.has(1) and not first.has(4)
    whole = nums.indices["whole"]
    assert list(whole.tups(prefix=(1,))) == [(1,), (1, "a")]
    assert list(whole.tups(hi=(1,), lo=(0,), include=True)) == [(0,), (1,), (1, "a")]
    assert whole.get((1.5,))["k"] == (1.5,)


def test_int_and_float_of_one_value_are_distinct(nums: acid.Collection) -> None:
    assert list(nums.keys(prefix=(1.0,))) == [(1.0,)]
    assert nums.get(1.0)["k"] == (1.0,)
    assert nums.get(1)["k"] == (1,)


ELEMENTS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([-1.5, -0.5, 0.5, 1.5, 2.0, -0.0, 0.0, 1.0]),
    st.sampled_from(["a", "b"]),
)
TUPLES = st.lists(st.one_of(ELEMENTS, st.tuples(ELEMENTS)), min_size=1, max_size=3).map(
    tuple
)


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(TUPLES, max_size=12), prefix=TUPLES.map(lambda t: t[:2]))
def test_bounds_match_the_reference(keys: list[tuple], prefix: tuple) -> None:
    base = b"\x05"
    start, stop = _query.bounds(base, prefix=prefix)
    for k in keys:
        packed = acid.keylib.pack(k, base)
        assert (start <= packed < stop) == starts_with(k, prefix), (k, prefix)
    start, stop = _query.bounds(base, hi=prefix, include=True)
    for k in keys:
        packed = acid.keylib.pack(k, base)
        below = packed < acid.keylib.pack(prefix, base)
        assert (start <= packed < stop) == (below or starts_with(k, prefix))
