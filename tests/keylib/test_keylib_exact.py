"""``exact_json``/``exact_msgpack``/``exact_pickle``: both twins, same answers.

``True`` is a promise the write path relies on (it then indexes the record
as given, without decoding what it encoded), so the property tests check it
against the real encoders: whatever a twin calls exact comes back from the
encoder equal and of the same types all the way down.
"""

from __future__ import annotations

import enum
import json
import math
import pickle
import sys
import uuid
import zoneinfo
from collections import OrderedDict
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from types import ModuleType
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acid import _keylib_py, encoders

KINDS = ["exact_json", "exact_msgpack", "exact_pickle"]
DEPTH = _keylib_py.MAX_DEPTH


class Color(enum.IntEnum):
    RED = 1


class Name(str):
    pass


class Real(float):
    pass


class Items(list[int]):
    pass


def nest(depth: int, kind: str) -> Any:
    """``depth`` containers of ``kind`` around an int."""
    value: Any = 1
    for _ in range(depth):
        value = {"k": value} if kind == "dict" else [value]
        if kind == "tuple":
            value = tuple(value)
    return value


NAN = float("nan")
#: (value, (json, msgpack, pickle))
CASES: list[tuple[Any, tuple[bool, bool, bool]]] = [
    (None, (True, True, True)),
    (True, (True, True, True)),
    (False, (True, True, True)),
    (0, (True, True, True)),
    (-(2**70), (True, True, True)),  # types only: msgpack refuses it itself
    (10**5000, (True, True, True)),
    (1.5, (True, True, True)),
    (NAN, (True, True, True)),
    (-0.0, (True, True, True)),
    (math.inf, (True, True, True)),
    ("", (True, True, True)),
    ("\udc80", (True, True, True)),  # the encoders refuse it, not the check
    (b"x", (False, True, True)),
    (bytearray(b"x"), (False, False, False)),
    (memoryview(b"x"), (False, False, False)),
    ((), (False, False, True)),
    ((1, "a"), (False, False, True)),
    ([1, (2,)], (False, False, True)),
    ({"a": [1, {"b": None}]}, (True, True, True)),
    ({"a": (1,)}, (False, False, True)),
    ({1: "x"}, (False, True, True)),
    ({True: "x"}, (False, True, True)),
    ({None: "x"}, (False, True, True)),
    ({b"k": "x"}, (False, True, True)),
    ({1.5: "x"}, (False, False, False)),  # a float key: NaN keys differ
    ({(1, "a"): "x"}, (False, False, True)),
    ({(1, (2, None, b"")): "x"}, (False, False, True)),
    ({(1.0,): "x"}, (False, False, False)),
    ({Color.RED: "x"}, (False, False, False)),
    ({Name("a"): "x"}, (False, False, False)),
    (Color.RED, (False, False, False)),
    (Name("a"), (False, False, False)),
    (Real(1.5), (False, False, False)),
    (Items([1]), (False, False, False)),
    (OrderedDict(a=1), (False, False, False)),
    (frozenset(), (False, False, True)),
    (1j, (False, False, True)),
    (uuid.UUID(int=7), (False, False, True)),
    (Decimal(1), (False, False, False)),
    (date(2024, 2, 29), (False, False, True)),
    (timedelta(seconds=-1), (False, False, True)),
    (datetime(2024, 1, 1), (False, False, True)),
    (datetime(2024, 1, 1, tzinfo=UTC), (False, False, True)),
    (datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=-3))), (False, False, True)),
    (datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("UTC")), (False, False, False)),
    (time(1, 2, tzinfo=UTC), (False, False, True)),
    (time(1, 2, tzinfo=zoneinfo.ZoneInfo("UTC")), (False, False, False)),
    ({1, "a", (2, b"")}, (False, False, True)),
    (frozenset({None, True}), (False, False, True)),
    ({1.5}, (False, False, False)),
    ({frozenset()}, (False, False, False)),
    (set(), (False, False, True)),
    ([{nest(DEPTH - 2, "tuple")}], (False, False, True)),
    ([{nest(DEPTH - 1, "tuple")}], (False, False, False)),
    (object(), (False, False, False)),
    (type, (False, False, False)),
    ([[], {}, [[]]], (True, True, True)),
    (nest(DEPTH, "list"), (True, True, True)),
    (nest(DEPTH + 1, "list"), (False, False, False)),
    (nest(DEPTH, "dict"), (True, True, True)),
    (nest(DEPTH + 1, "dict"), (False, False, False)),
    (nest(DEPTH, "tuple"), (False, False, True)),
    (nest(DEPTH + 1, "tuple"), (False, False, False)),
    ({nest(DEPTH - 1, "tuple"): 1}, (False, False, True)),
    ({nest(DEPTH, "tuple"): 1}, (False, False, False)),
]


@pytest.mark.parametrize(
    "value, want",
    CASES,
    ids=[f"{i}-{type(v).__name__}" for i, (v, _) in enumerate(CASES)],
)
def test_cases(impl: ModuleType, value: Any, want: tuple[bool, bool, bool]) -> None:
    got = tuple(getattr(impl, name)(value) for name in KINDS)
    assert got == want


def test_a_false_after_true_values_is_false(impl: ModuleType) -> None:
    # The walk goes on past exact values and stops at the first other one.
    assert not impl.exact_json([1, "a", {"b": [2]}, (3,)])
    assert not impl.exact_json({"a": 1, "b": [1, 2, b"x"]})
    assert not impl.exact_msgpack({"a": 1, "b": {"c": [1, set()]}})
    assert not impl.exact_pickle({(1, 2): 1, (1, [2].__class__): 2})


@pytest.mark.parametrize("name", KINDS)
def test_self_reference_is_not_exact(impl: ModuleType, name: str) -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    ring: dict[str, Any] = {}
    ring["self"] = ring
    pair: list[Any] = [ring, loop]
    check = getattr(impl, name)
    assert check(loop) is False
    assert check(ring) is False
    assert check(pair) is False


@pytest.mark.parametrize("name", KINDS)
def test_deep_nesting_never_exhausts_the_stack(impl: ModuleType, name: str) -> None:
    check = getattr(impl, name)
    for kind in ("list", "dict", "tuple"):
        assert check(nest(200_000, kind)) is False
    key: Any = 1
    for _ in range(5_000):  # hashing a deeper tuple overflows CPython's stack
        key = (key,)
    assert check({key: 1}) is False


def test_recursion_limit_near_the_top_of_the_stack(impl: ModuleType) -> None:
    # Called with little stack left: a RecursionError (or an answer), never a
    # crash; the interpreter is usable afterwards.
    def dive(n: int) -> Any:
        if n == 0:
            return impl.exact_json(nest(DEPTH, "list"))
        return dive(n - 1)

    here = 0
    frame = sys._getframe()
    while frame.f_back is not None:
        here, frame = here + 1, frame.f_back
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(here + 400)
    answered = failed = 0
    try:
        for n in range(0, 400, 7):
            try:
                assert dive(n) is True
                answered += 1
            except RecursionError:
                failed += 1
    finally:
        sys.setrecursionlimit(old)
    assert answered and failed  # both sides of the limit were reached
    assert impl.exact_json(nest(DEPTH, "list")) is True


@pytest.mark.parametrize("name", KINDS)
def test_big_records(impl: ModuleType, name: str) -> None:
    check = getattr(impl, name)
    big: dict[str, list[Any]] = {
        f"k{i}": [i, float(i), str(i), None, True] for i in range(20_000)
    }
    assert check(big) is True
    big["k19999"].append(object())
    assert check(big) is False
    assert check(list(range(1_000_000))) is True


@pytest.mark.parametrize("name", KINDS)
def test_reference_counts_stay_put(impl: ModuleType, name: str) -> None:
    check = getattr(impl, name)
    inner = [1.5, "s", None]
    key = "key"
    rec = {key: inner, "t": (inner,), "b": b"x", "o": object()}
    counts = [sys.getrefcount(x) for x in (rec, inner, key, True, False)]
    for _ in range(1000):
        check(rec)
        check(inner)
    assert [sys.getrefcount(x) for x in (rec, inner, key, True, False)] == counts


@pytest.mark.parametrize("name", KINDS)
def test_arity(impl: ModuleType, name: str) -> None:
    check = getattr(impl, name)
    with pytest.raises(TypeError):
        check()
    with pytest.raises(TypeError):
        check(1, 2)


# -- properties: twins agree, and True is a true promise --------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=5)
    | st.binary(max_size=5)
    | st.sampled_from([Color.RED, Name("n"), Real(2.5), bytearray(b"b")])
    | st.datetimes(timezones=st.none() | st.timezones() | st.just(UTC))
    | st.dates()
    | st.times()
    | st.timedeltas()
    | st.uuids()
    | st.complex_numbers(allow_nan=False)
    | st.decimals(allow_nan=False)
)
keys = (
    st.text(max_size=3)
    | st.integers(-3, 3)
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=False, width=16)
    | st.binary(max_size=2)
    | st.tuples(st.integers(0, 2), st.text(max_size=2))
    | st.tuples(st.tuples(st.none()), st.floats(0, 1, width=16))
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(keys, inner, max_size=4)
    ),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """``a == b`` with the same types all the way down (a NaN equals a NaN)."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return (
            len(a) == len(b)
            and all(type(x) is type(y) for x, y in zip(a, b, strict=True))
            and all(same(a[k], b[k]) for k in a)
        )
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(map(same, a, b))
    if type(a) in (set, frozenset):
        return {(type(x), x) for x in a} == {(type(x), x) for x in b}
    if type(a) in (datetime, time):
        return a == b and a.tzinfo == b.tzinfo
    if type(a) is float and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def round_trip(name: str, value: Any) -> Any:
    enc = {
        "exact_json": encoders.JSON,
        "exact_msgpack": encoders.MSGPACK,
        "exact_pickle": encoders.PICKLE,
    }[name]
    return enc.unpack(enc.pack(value))


@settings(max_examples=400, deadline=None)
@given(values)
def test_twins_agree(c_twin: ModuleType, value: Any) -> None:
    for name in KINDS:
        assert getattr(c_twin, name)(value) == getattr(_keylib_py, name)(value)


@settings(max_examples=400, deadline=None)
@given(values)
def test_exact_means_the_encoder_gives_it_back(impl: ModuleType, value: Any) -> None:
    for name in KINDS:
        if not getattr(impl, name)(value):
            continue
        try:
            back = round_trip(name, value)
        except (OverflowError, ValueError, TypeError):
            # The encoder refuses it (an int msgpack cannot hold, a str
            # with a lone surrogate): the write fails before indexing.
            continue
        assert same(back, value), (name, value, back)


@settings(max_examples=200, deadline=None)
@given(values)
def test_what_comes_back_exactly_is_exact(impl: ModuleType, value: Any) -> None:
    # The converse for JSON and msgpack, without float keys (and nesting
    # far below MAX_DEPTH): a value the encoder gives back with the same
    # types is called exact, so the fast path serves every ordinary record.
    for name, dumps in (
        ("exact_json", lambda v: json.loads(json.dumps(v))),
        ("exact_msgpack", lambda v: round_trip("exact_msgpack", v)),
    ):
        try:
            back = dumps(value)
        except (OverflowError, ValueError, TypeError):
            continue
        if same(back, value) and not has_float_key(value):
            assert getattr(impl, name)(value), (name, value)


def has_float_key(value: Any) -> bool:
    if type(value) is dict:
        return any(type(k) is float or has_float_key(v) for k, v in value.items())
    if type(value) in (list, tuple):
        return any(map(has_float_key, value))
    return False


def test_pickle_promise_on_tuples_and_keys(impl: ModuleType) -> None:
    rec = {(1, ("a", None)): [(b"x", 2.5)], None: {True: ()}}
    assert impl.exact_pickle(rec)
    assert same(pickle.loads(pickle.dumps(rec)), rec)
    assert same(
        msgpack.unpackb(msgpack.packb({1: [1]}), strict_map_key=False), {1: [1]}
    )
