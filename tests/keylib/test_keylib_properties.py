"""Hypothesis properties of the key encoding, on both twins."""

from __future__ import annotations

from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st
from keylib_strategies import keys, nested, same
from reference_order import sort_key

from acid import _keylib_py


@given(keys)
def test_round_trip(impl: ModuleType, t: tuple) -> None:
    assert same(impl.unpack(impl.pack(t)), t)


@given(keys, st.binary(max_size=4))
def test_round_trip_with_prefix(impl: ModuleType, t: tuple, prefix: bytes) -> None:
    raw = impl.pack(t, prefix=prefix)
    assert raw.startswith(prefix)
    assert same(impl.unpack(raw, prefix=prefix), t)
    assert same(impl.unpack(memoryview(bytearray(raw)), prefix=prefix), t)


@given(st.lists(keys, max_size=4))
def test_packs_round_trip(impl: ModuleType, ts: list[tuple]) -> None:
    got = impl.unpacks(impl.packs(ts))
    assert same(tuple(got), tuple(ts) or ((),))


@settings(max_examples=300)
@given(keys)
def test_twins_give_the_same_bytes(c_twin: ModuleType, t: tuple) -> None:
    raw = _keylib_py.pack(t)
    assert c_twin.pack(t) == raw
    assert same(c_twin.unpack(raw), _keylib_py.unpack(raw))


@given(st.lists(keys, min_size=2, max_size=8))
def test_byte_order_is_reference_order(impl: ModuleType, ts: list[tuple]) -> None:
    by_bytes = sorted(ts, key=impl.pack)
    by_value = sorted(ts, key=sort_key)
    assert [impl.pack(t) for t in by_bytes] == [impl.pack(t) for t in by_value]


@given(nested, nested)
def test_pairwise_order(impl: ModuleType, a: object, b: object) -> None:
    ka, kb = sort_key((a,)), sort_key((b,))
    pa, pb = impl.pack((a,)), impl.pack((b,))
    assert (pa < pb) == (ka < kb)
    assert (pa == pb) == (not ka < kb and not kb < ka)


@given(keys, keys)
def test_prefix_property(impl: ModuleType, t: tuple, u: tuple) -> None:
    whole = impl.pack(t + u)
    assert whole.startswith(impl.pack(t))
    assert whole == impl.pack(t) + impl.pack(u)
    bound = impl.prefix_bound(impl.pack(t))
    if bound is not None:
        assert impl.pack(t) <= whole < bound


@given(st.binary(max_size=8))
def test_prefix_bound(impl: ModuleType, raw: bytes) -> None:
    bound = impl.prefix_bound(raw)
    stripped = raw.rstrip(b"\xff")
    if not stripped:
        assert bound is None
        return
    assert bound > raw and len(bound) <= len(raw)
    # Nothing between: every string starting with raw is below, the bound is
    # the shortest such string.
    assert raw + b"\xff" * 4 < bound
    assert bound[:-1] == stripped[:-1] and bound[-1] == stripped[-1] + 1
