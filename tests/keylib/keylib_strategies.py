"""Hypothesis strategies for packable values and tuples."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from acid.keylib import Desc

# Integers near every varint length boundary, both signs.
_EDGES = [0]
for _k in range(0, 256):
    for _d in (-1, 0, 1):
        _EDGES += [2 ** (8 * _k) + _d, -(2 ** (8 * _k) + _d)]
_EDGES = sorted({i for i in _EDGES if abs(i) < 2**2040})

ints = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from(_EDGES),
    st.integers(-(2**2040) + 1, 2**2040 - 1),
)
floats = st.one_of(
    st.floats(allow_nan=False),
    st.sampled_from([0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 5e-324, -5e-324, 2.0**53]),
    st.integers(-(2**60), 2**60).map(float),
    st.integers(-(2**20), 2**20).map(lambda i: i / 8),
)
texts = st.text(st.characters(exclude_categories=()), max_size=40)
offsets = st.builds(
    lambda us: timezone(timedelta(microseconds=us)),
    st.integers(-(86400 * 10**6) + 1, 86400 * 10**6 - 1),
) | st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=45))])
naive = st.datetimes()
aware = st.datetimes(timezones=offsets)

scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    floats,
    st.just(math.inf) | st.just(-math.inf),
    st.binary(max_size=40),
    texts,
    st.uuids(),
    naive,
    aware,
)

plain = st.recursive(
    scalars, lambda inner: st.tuples(inner) | st.lists(inner, max_size=4).map(tuple)
)
values = plain | plain.map(Desc)
nested = st.recursive(
    values, lambda inner: st.lists(inner, max_size=4).map(tuple), max_leaves=12
)
keys = st.lists(nested, max_size=5).map(tuple)


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types (1 vs 1.0 vs True), zero signs and offsets."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, Desc):
        return same(a.value, b.value)
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, datetime):
        return (
            a == b
            and a.utcoffset() == b.utcoffset()
            and a.replace(tzinfo=None) == b.replace(tzinfo=None)
        )
    return bool(a == b)
