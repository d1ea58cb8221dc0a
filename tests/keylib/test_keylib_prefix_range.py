"""keylib.prefix_range: element-wise tuple prefixes as byte ranges.

A packed int is a byte prefix of every float with that floor (``pack((1,))``
starts ``pack((1.5,))``), so a byte-prefix scan over-matches; ``prefix_range``
must select exactly the tuples whose first elements are the prefix's.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keylib_strategies import nested, values
from reference_order import starts_with

from acid import keylib
from acid.keylib import Desc, prefix_range


def inside(impl: ModuleType, t: tuple, prefix: tuple, base: bytes = b"") -> bool:
    start, stop = prefix_range(prefix, base)
    return start <= impl.pack(t, base) < stop


def boundary_ints() -> list[int]:
    out = {0}
    for k in range(0, 130):
        for d in (-1, 0, 1):
            out |= {2 ** (8 * k) + d, -(2 ** (8 * k) + d)}
    return sorted(out)


def _floats_near(n: int) -> list[float]:
    """Floats around ``n`` (those with floor ``n`` start with its bytes)."""
    if abs(n) >= 2**1023:
        return []
    return [float(n), n + 0.5, n - 0.5, n + 0.25]


# ---------------------------------------------------------------- examples


def test_int_prefix_excludes_floats_with_that_floor(impl: ModuleType) -> None:
    # The reported cases: (1,) matched (1.5,) and (1.5, "b") as bytes.
    assert impl.pack((1.5,)).startswith(impl.pack((1,)))
    for t in [(1,), (1, "b"), (1, None), (1, 1.5), (1, (2,)), (1, Desc(0))]:
        assert inside(impl, t, (1,)), t
    # Sentinels just below and just above, and the floats in between.
    for t in [(0,), (0.5,), (1.0,), (1.5,), (1.5, "b"), (1.0, "a"), (2,), (True,)]:
        assert not inside(impl, t, (1,)), t


def test_negative_int_prefix(impl: ModuleType) -> None:
    assert impl.pack((-1.5,)).startswith(impl.pack((-2,)))  # floor(-1.5) == -2
    assert inside(impl, (-2,), (-2,)) and inside(impl, (-2, "x"), (-2,))
    for t in [(-1.5,), (-2.0,), (-1.5, "x"), (-2.5,), (-3,), (-1,)]:
        assert not inside(impl, t, (-2,)), t


def test_inclusive_upper_bound(impl: ModuleType) -> None:
    # "hi=1, inclusive" means below prefix_range((1,))[1]: every (1, ...) is
    # in, (1.0,) and (1.5,) are not.
    stop = prefix_range((1,))[1]
    assert impl.pack((1, "zzz", Desc(None))) < stop
    assert impl.pack((1.0,)) >= stop and impl.pack((1.5,)) >= stop
    assert impl.pack((1.0,)) < keylib.prefix_bound(impl.pack((1,)))  # bytes


def test_the_stop_rule() -> None:
    for prefix in [(1,), (1.5,), ("a",), (Desc(1),), ((1,),), (None, -(2**80))]:
        start, stop = prefix_range(prefix, b"p")
        assert start == keylib.pack(prefix, b"p")
        assert stop == start + b"\xfe"
    assert prefix_range((), b"p") == (b"p", b"q")
    assert prefix_range((), b"p\xff") == (b"p\xff", b"q")
    # No byte-prefix bound exists: base + 0xff is above every packed key.
    assert prefix_range(()) == (b"", b"\xff")
    assert prefix_range((), b"\xff") == (b"\xff", b"\xff\xff")
    assert prefix_range((), bytearray(b"p")) == (b"p", b"q")


def test_empty_prefix_is_everything_under_base(impl: ModuleType) -> None:
    for base in [b"", b"p", b"\xff", b"p\xff"]:
        start, stop = prefix_range((), base)
        for t in [(), (None,), (Desc(None),), (1.5,)]:
            assert start <= impl.pack(t, base) < stop
        assert start <= impl.packs([(Desc("z"),), (Desc(1),)], base) < stop


def test_base_is_respected(impl: ModuleType) -> None:
    start, stop = prefix_range((1,), b"p")
    assert start == b"p" + impl.pack((1,))
    assert start <= impl.pack((1, "x"), b"p") < stop
    assert not start <= impl.pack((1, "x"), b"q") < stop
    assert not start <= impl.pack((1, "x")) < stop
    assert not start <= impl.pack((1.5,), b"p") < stop


def test_index_entries_match_their_first_tuple(impl: ModuleType) -> None:
    # Index entries are packs([value, record key]); SEP follows the value.
    start, stop = prefix_range((1,), b"i")
    assert start <= impl.packs([(1,), ("k",)], b"i") < stop
    assert start <= impl.packs([(1, 2), ("k",)], b"i") < stop
    assert not start <= impl.packs([(1.5,), ("k",)], b"i") < stop
    assert not start <= impl.packs([(1.0,), ("k",)], b"i") < stop


def test_ints_and_floats_are_distinct_elements(impl: ModuleType) -> None:
    assert impl.pack((1,)) < impl.pack((1.0,))  # 1 < 1.0, as docs/format.md says
    assert not inside(impl, (1,), (1.0,)) and not inside(impl, (1.5,), (1.0,))
    assert inside(impl, (1.0, "a"), (1.0,)) and inside(impl, (1.0,), (1.0,))
    assert not inside(impl, (1,), (True,)) and not inside(impl, (True,), (1,))
    # Zeros: 0, -0.0 and 0.0 are three elements.
    assert not inside(impl, (-0.0,), (0,)) and not inside(impl, (0.0,), (0,))
    assert inside(impl, (-0.0, 1), (-0.0,)) and not inside(impl, (0.0,), (-0.0,))
    assert not inside(impl, (-0.0,), (0.0,)) and not inside(impl, (5e-324,), (0,))


def test_every_varint_length_both_signs(impl: ModuleType) -> None:
    checked = 0
    for n in boundary_ints():
        assert inside(impl, (n,), (n,)) and inside(impl, (n, n), (n,))
        assert not inside(impl, (n + 1,), (n,)) and not inside(impl, (n - 1,), (n,))
        for f in _floats_near(n):
            if math.floor(f) == n:
                assert impl.pack((f,)).startswith(impl.pack((n,)))
                assert not inside(impl, (f,), (n,)), (n, f)
                assert not inside(impl, (f, "x"), (n,)), (n, f)
                assert inside(impl, (n, f), (n,))
                checked += 1
    assert checked > 200


def test_nested_tuples_compare_element_wise(impl: ModuleType) -> None:
    prefix = ((1,),)
    assert inside(impl, ((1,),), prefix) and inside(impl, ((1,), "x"), prefix)
    for t in [((1.5,),), ((1.0,),), ((1, 2),), ((),), (1,), (((1,),),)]:
        assert not inside(impl, t, prefix), t
    assert not inside(impl, ((1, 2.5),), ((1, 2),))
    assert inside(impl, ((1, (2,)), 3), ((1, (2,)),))


def test_desc_elements(impl: ModuleType) -> None:
    assert inside(impl, (Desc(1),), (Desc(1),))
    assert inside(impl, (Desc(1), 1.5), (Desc(1),))
    for t in [(Desc(1.5),), (Desc(1.0),), (Desc(0.5),), (Desc(2),), (1,)]:
        assert not inside(impl, t, (Desc(1),)), t
    assert not inside(impl, (Desc(-1.5),), (Desc(-2),))
    assert not inside(impl, (Desc((1, 2)),), (Desc((1,)),))
    assert inside(impl, (1, Desc("a"), 2), (1, Desc("a")))
    assert not inside(impl, (1, Desc("ab")), (1, Desc("a")))


def test_other_trailing_elements(impl: ModuleType) -> None:
    u = uuid.UUID(int=7)
    dt = datetime(2020, 1, 2, 3, 4, 5, 6)
    aware = dt.replace(tzinfo=timezone(timedelta(hours=2)))
    same_instant = aware.astimezone(UTC)
    cases: list[tuple[Any, list[Any], list[Any]]] = [
        ("a", ["a"], ["ab", "a\x00", b"a"]),
        (b"a", [b"a"], [b"ab", b"a\x00", "a"]),
        (None, [None], [False]),
        (False, [False], [True, 0]),
        (u, [u], [uuid.UUID(int=8)]),
        (dt, [dt], [dt + timedelta(microseconds=1), aware]),
        (aware, [aware], [same_instant, dt]),
        (math.inf, [math.inf], [1e308]),
        (-math.inf, [-math.inf], [-1e308]),
    ]
    for element, same_ones, others in cases:
        for v in same_ones:
            assert inside(impl, (v, 1), (element,)), (element, v)
        for v in others:
            assert not inside(impl, (v,), (element,)), (element, v)
            assert not inside(impl, (v, 1), (element,)), (element, v)


def test_prefix_must_be_a_tuple() -> None:
    with pytest.raises(TypeError):
        prefix_range([1])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        prefix_range((1,), "p")  # type: ignore[arg-type]


# ---------------------------------------------------------------- properties

_ints = st.integers(-3, 3) | st.sampled_from(boundary_ints())
_floats = _ints.filter(lambda n: abs(n) < 2**1023).flatmap(
    lambda n: st.sampled_from(_floats_near(n))
) | st.sampled_from([-0.0, 0.0, 5e-324, -5e-324, -1e-300, 2.0**1000, -(2.0**53)])
_atoms = (
    _ints
    | _floats
    | st.booleans()
    | st.none()
    | st.sampled_from(["a", "ab", "a\x00", b"a", b""])
)
_plain = st.recursive(
    _atoms, lambda inner: st.lists(inner, max_size=3).map(tuple), max_leaves=6
)
# Mostly numbers (an int last in the prefix is where bytes over-match), and
# any other value too.
_elements = st.one_of(_ints, _floats, _atoms, _plain, _plain.map(Desc), values)


def _variants(x: Any, in_desc: bool = False) -> st.SearchStrategy[Any]:
    """Elements that share bytes with ``x`` or are equal to it in Python."""
    out: list[Any] = [x, (x,)]
    if not in_desc:
        out.append(Desc(x))
    if isinstance(x, bool):
        out += [int(x), float(x)]
    elif isinstance(x, int):
        out += [x + 1, -x, True]
        if _floats_near(x):  # the floats that start with x's bytes, often
            return st.sampled_from(out) | st.sampled_from(_floats_near(x))
    elif isinstance(x, float):
        out += [math.floor(x), -x, x + 0.5, x - 0.5] if math.isfinite(x) else []
    elif isinstance(x, tuple):
        out += [x[:-1], x + (1,), x + (1.5,)]
        if x:
            return st.sampled_from(out) | _variants(x[-1], in_desc).map(
                lambda v: x[:-1] + (v,)
            )
    elif isinstance(x, Desc):
        return st.sampled_from([x, x.value]) | _variants(x.value, True).map(Desc)
    elif isinstance(x, str):
        out += [x + "b", x + "\x00", x.encode()]
    elif isinstance(x, bytes):
        out += [x + b"b", x + b"\x00", x.decode("latin-1")]
    return st.sampled_from(out)


@st.composite
def prefix_and_key(draw: st.DrawFn) -> tuple[tuple, tuple]:
    """A prefix and a tuple that shares its first elements, or some of them."""
    prefix = tuple(draw(st.lists(_elements, max_size=3)))
    prefix += tuple(draw(st.lists(_ints, max_size=1)))  # often last: see above
    # Keep the first ``keep`` elements; the next one, if any, is a variant
    # (most often of the last element, where bytes over-match).
    keep = draw(
        st.sampled_from([len(prefix), max(len(prefix) - 1, 0)])
        | st.integers(0, len(prefix))
    )
    t = list(prefix[:keep])
    if keep < len(prefix):
        t.append(draw(_variants(prefix[keep])))
    t += draw(st.lists(_elements | nested, max_size=3))
    return prefix, tuple(t)


@settings(max_examples=500)
@given(prefix_and_key(), st.sampled_from([b"", b"p", b"\xff", b"p\xff"]))
def test_range_is_the_element_wise_prefix(
    impl: ModuleType, pt: tuple[tuple, tuple], base: bytes
) -> None:
    prefix, t = pt
    start, stop = prefix_range(prefix, base)
    assert start == impl.pack(prefix, base)
    key = impl.pack(t, base)
    assert (start <= key < stop) == starts_with(t, prefix), (prefix, t)


@given(prefix_and_key(), st.lists(nested, max_size=2).map(tuple))
def test_index_entries_follow_their_first_tuple(
    impl: ModuleType, pt: tuple[tuple, tuple], rkey: tuple
) -> None:
    prefix, t = pt
    start, stop = prefix_range(prefix, b"i")
    key = impl.packs([t, rkey], b"i")
    assert (start <= key < stop) == starts_with(t, prefix), (prefix, t)
