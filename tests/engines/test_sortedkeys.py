"""The in-memory engine's ordered structure against a sorted-list model."""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from hypothesis import example, given, settings
from hypothesis import strategies as st

from acid.engines import _sortedkeys
from acid.engines._sortedkeys import SortedKeys

small_keys = st.binary(max_size=3)


def expected_range(
    model: list[bytes], key: bytes, reverse: bool, inclusive: bool
) -> list[bytes]:
    if not reverse:
        start = (bisect_left if inclusive else bisect_right)(model, key)
        return model[start:]
    stop = (bisect_right if inclusive else bisect_left)(model, key)
    return model[:stop][::-1]


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(st.tuples(st.booleans(), small_keys), max_size=400),
    probes=st.lists(small_keys, max_size=10),
)
@example(
    ops=[(True, bytes([i])) for i in range(100)] + [(False, b"\x05")], probes=[b"\x07"]
)
def test_matches_a_sorted_list(
    ops: list[tuple[bool, bytes]], probes: list[bytes]
) -> None:
    saved, _sortedkeys.LOAD = _sortedkeys.LOAD, 16  # tiny chunks: many splits
    try:
        check_against_model(ops, probes)
    finally:
        _sortedkeys.LOAD = saved


def check_against_model(ops: list[tuple[bool, bytes]], probes: list[bytes]) -> None:
    keys = SortedKeys()
    model: set[bytes] = set()
    for add, key in ops:
        if add:
            assert keys.add(key) == (key not in model)
            model.add(key)
        else:
            assert keys.discard(key) == (key in model)
            model.discard(key)
    ordered = sorted(model)
    assert list(keys) == ordered
    assert len(keys) == len(ordered)
    for key in probes:
        assert (key in keys) == (key in model)
        for reverse in (False, True):
            for inclusive in (False, True):
                got = list(keys.irange(key, reverse, inclusive))
                assert got == expected_range(ordered, key, reverse, inclusive)


def test_chunks_split_and_merge(monkeypatch) -> None:
    monkeypatch.setattr(_sortedkeys, "LOAD", 16)
    keys = SortedKeys()
    model = [i.to_bytes(2, "big") for i in range(500)]
    for key in reversed(model):
        keys.add(key)
    assert len(keys._chunks) > 10
    assert all(len(c) <= 32 for c in keys._chunks)
    assert list(keys) == model
    for key in model[::2]:
        keys.discard(key)
    assert list(keys) == model[1::2]
    assert keys._maxes == [c[-1] for c in keys._chunks]
    assert list(keys.irange(model[100], reverse=True))[:2] == [model[99], model[97]]
    for key in model:
        keys.discard(key)
    assert list(keys) == [] and keys._chunks == []


def test_copy_is_independent() -> None:
    keys = SortedKeys([b"a", b"b"])
    other = keys.copy()
    other.add(b"c")
    keys.discard(b"a")
    assert list(keys) == [b"b"]
    assert list(other) == [b"a", b"b", b"c"]


def test_from_sorted_and_empty_ranges() -> None:
    keys = SortedKeys.from_sorted([b"a", b"b"])
    assert list(keys.irange(b"")) == [b"a", b"b"]
    assert list(SortedKeys().irange(b"x", reverse=True)) == []
    assert list(keys.irange(b"", reverse=True)) == []
