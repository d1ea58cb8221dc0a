"""Examples of the key encoding, on both twins."""

from __future__ import annotations

import math
import os
import time
import uuid
from collections import namedtuple
from datetime import UTC, date, datetime, timedelta, timezone
from enum import IntEnum
from types import ModuleType

import pytest
from keylib_strategies import same
from reference_order import sort_key

from acid import keylib
from acid.errors import KeyEncodingError
from acid.keylib import Desc

EXPORTS = [
    "IMPLEMENTATION",
    "Desc",
    "Key",
    "exact_json",
    "exact_msgpack",
    "exact_pickle",
    "implementations",
    "pack",
    "packs",
    "prefix_bound",
    "prefix_range",
    "unpack",
    "unpacks",
]


def boundary_ints() -> list[int]:
    out = {0}
    for k in range(0, 256):
        for d in (-1, 0, 1):
            out |= {2 ** (8 * k) + d, -(2 ** (8 * k) + d)}
    return sorted(i for i in out if abs(i) < 2**2040)


def test_exports_are_pinned() -> None:
    assert keylib.__all__ == EXPORTS
    for name in EXPORTS:
        assert hasattr(keylib, name)
    assert keylib.IMPLEMENTATION in ("c", "python")


def test_ci_builds_the_c_twin() -> None:
    if not os.environ.get("CI") or os.environ.get("ACID_PURE_PYTHON"):
        pytest.skip("only in CI without ACID_PURE_PYTHON")
    assert keylib.IMPLEMENTATION == "c"


def test_both_twins_share_desc(impl: ModuleType) -> None:
    assert impl.Desc is keylib.Desc


def test_integer_boundaries(impl: ModuleType) -> None:
    ints = boundary_ints()
    for i in ints:
        assert impl.unpack(impl.pack((i,))) == (i,)
        assert type(impl.unpack(impl.pack((i,)))[0]) is int
    packed = [impl.pack((i,)) for i in ints]
    assert packed == sorted(packed)
    assert len(set(packed)) == len(packed)


@pytest.mark.parametrize("k", range(1, 9))
def test_integer_lengths(impl: ModuleType, k: int) -> None:
    top = 2 ** (8 * k) - 1
    assert len(impl.pack((top,))) == k + 1
    assert len(impl.pack((-top,))) == k + 1
    assert len(impl.pack((top + 1,))) == k + 2 + (k == 8)
    assert len(impl.pack((-top - 1,))) == k + 2 + (k == 8)


def test_integer_limits(impl: ModuleType) -> None:
    for n in (2**2040 - 1, -(2**2040 - 1), 2**2039):
        assert impl.unpack(impl.pack((n,))) == (n,)
    for n in (2**2040, -(2**2040), 2**5000):
        with pytest.raises(KeyEncodingError):
            impl.pack((n,))


def test_floats_mixed_with_ints(impl: ModuleType) -> None:
    values: list[int | float] = []
    for i in boundary_ints():
        if abs(i) < 2**1000:
            values += [i, float(i)]
    values += [0.5, -0.5, 1.5, -1.5, 5e-324, -5e-324, -1e-300, 1e-300, 0.1, -0.1]
    values += [-0.0, 0.0, math.inf, -math.inf, 2.0**53 + 2, 1e300, -1e300]
    for v in values:
        assert same(impl.unpack(impl.pack((v,))), (v,))
    by_bytes = sorted(values, key=lambda v: impl.pack((v,)))
    by_value = sorted(values, key=lambda v: sort_key((v,)))
    assert [impl.pack((v,)) for v in by_bytes] == [impl.pack((v,)) for v in by_value]


def test_int_float_ties(impl: ModuleType) -> None:
    p = impl.pack
    assert p((0,)) < p((-0.0,)) < p((0.0,)) < p((5e-324,))
    assert p((1,)) < p((1.0,)) < p((1.5,)) < p((2,))
    assert p((1, "z")) < p((1.0, "a"))
    assert p((-2,)) < p((-2.0,)) < p((-1.5,)) < p((-1,)) < p((-1e-300,)) < p((0,))
    assert p((True,)) < p((0,)) and p((-math.inf,)) < p((-(2**2039),))
    assert p((2**2039,)) < p((math.inf,)) < p((b"",))


def test_types_are_preserved(impl: ModuleType) -> None:
    t = (1, 1.0, True, 0, False, -0.0, b"1", "1")
    assert [type(v) for v in impl.unpack(impl.pack(t))] == [type(v) for v in t]


def test_nan_is_rejected(impl: ModuleType) -> None:
    with pytest.raises(KeyEncodingError):
        impl.pack((math.nan,))
    with pytest.raises(KeyEncodingError):
        impl.pack((1, (Desc(math.nan),)))


@pytest.mark.parametrize(
    "value", [[1], {1: 2}, {1}, 1j, bytearray(b"x"), date(2020, 1, 1), object()]
)
def test_unsupported_types(impl: ModuleType, value: object) -> None:
    with pytest.raises(TypeError, match=type(value).__name__):
        impl.pack((value,))
    with pytest.raises(TypeError, match=type(value).__name__):
        impl.pack(((1, value),))


def test_pack_needs_tuples(impl: ModuleType) -> None:
    with pytest.raises(TypeError):
        impl.pack([1])
    with pytest.raises(TypeError):
        impl.packs([(1,), [2]])
    with pytest.raises(TypeError):
        impl.unpack("1a")
    with pytest.raises(TypeError):
        impl.unpack(memoryview(b"\x1a\x1a\x1a\x1a")[::2])


def test_desc_in_desc_is_rejected(impl: ModuleType) -> None:
    for bad in (Desc(Desc(1)), Desc((1, Desc(2))), Desc(((Desc(2),),))):
        with pytest.raises(KeyEncodingError):
            impl.pack((bad,))


def test_nesting_depth(impl: ModuleType) -> None:
    t: tuple = ()
    for _ in range(64):
        t = (t,)
    assert impl.unpack(impl.pack(t)) == t
    with pytest.raises(KeyEncodingError):
        impl.pack((t,))
    with pytest.raises(KeyEncodingError):
        impl.unpack(b"\x70" * 65 + b"\x00" * 65)
    assert impl.unpack(b"\x70" * 64 + b"\x00" * 64) == t
    with pytest.raises(KeyEncodingError):
        impl.unpack(b"\x70" * 100000)


def test_subclasses_pack_as_their_base(impl: ModuleType) -> None:
    class Color(IntEnum):
        RED = 3

    Point = namedtuple("Point", "x y")

    class Text(str):
        pass

    t = (Color.RED, Point(1, 2), Text("a"))
    assert impl.pack(t) == impl.pack((3, (1, 2), "a"))
    assert impl.unpack(impl.pack(t)) == (3, (1, 2), "a")


def test_sizes_promised_by_the_seed(impl: ModuleType) -> None:
    for i in range(240):
        assert len(impl.pack((i,))) <= 2
    assert len(impl.pack((613, 15122, 5124324, 13))) <= 14
    assert len(impl.pack((613, 15122, 5124324, 13))) == 12
    for n in (0, 1, 6, 7, 8, 100, 1000):
        for s in ("a" * n, "\xff" * n, "\x00" * n):
            size = len(s.encode())
            assert len(impl.pack((s,))) <= math.ceil(8 * size / 7) + 2


def test_strings(impl: ModuleType) -> None:
    p = impl.pack
    assert p(("a",)) < p(("a\x00",)) < p(("ab",)) < p(("b",))
    assert p(("",)) == b"\x40\x00"
    for s in ("\ud800", "a\udfffb", "\U0001f600", "\x00" * 20, "\u65e5" * 9):
        assert impl.unpack(p((s,))) == (s,)
    assert p(("\uffff",)) < p(("\U00010000",))  # code point order


def test_uuids(impl: ModuleType) -> None:
    us = sorted(uuid.UUID(int=i * 7919**9 % 2**128) for i in range(50))
    packed = [impl.pack((u,)) for u in us]
    assert packed == sorted(packed)
    assert [impl.unpack(b)[0] for b in packed] == us


@pytest.fixture
def odd_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kathmandu")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_datetimes_under_an_odd_tz(impl: ModuleType, odd_tz: None) -> None:
    naive = [
        datetime(1, 1, 1),
        datetime(1900, 1, 1),
        datetime(1969, 12, 31, 23, 59, 59, 999999),
        datetime(1970, 1, 1),
        datetime(1986, 1, 1, 0, 15),  # Kathmandu moved to +05:45 then
        datetime(2024, 3, 31, 2, 30),
        datetime(9999, 12, 31, 23, 59, 59, 999999),
    ]
    assert impl.pack((datetime(1970, 1, 1),)) == b"\x60\x80" + bytes(7)
    offsets = [timedelta(0), timedelta(hours=5, minutes=45), -timedelta(hours=23)]
    offsets += [timedelta(hours=5, minutes=30, seconds=7, microseconds=3)]
    aware = [
        d.replace(tzinfo=timezone(o))
        for d in naive[1:-1] + [datetime(2, 1, 1), datetime(9999, 12, 30)]
        for o in offsets
    ]
    aware.append(datetime.now(UTC).astimezone())  # local: +05:45
    for d in naive + aware:
        (back,) = impl.unpack(impl.pack((d,)))
        assert same(back, d)
    values = naive + aware
    by_bytes = sorted(values, key=lambda v: impl.pack((v,)))
    by_value = sorted(values, key=lambda v: sort_key((v,)))
    assert by_bytes == by_value
    assert impl.pack((naive[-1],)) < impl.pack((aware[0],))


def test_zoneinfo_keeps_the_offset(impl: ModuleType) -> None:
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        zone = zoneinfo.ZoneInfo("Asia/Kathmandu")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no tz database")
    d = datetime(2024, 6, 1, 12, tzinfo=zone)
    (back,) = impl.unpack(impl.pack((d,)))
    assert back == d and back.utcoffset() == timedelta(hours=5, minutes=45)
    assert isinstance(back.tzinfo, timezone)


def test_same_instant_sorts_by_offset(impl: ModuleType) -> None:
    utc = datetime(2020, 1, 1, 12, tzinfo=UTC)
    east = utc.astimezone(timezone(timedelta(hours=1)))
    assert utc == east
    assert impl.pack((utc,)) < impl.pack((east,))


def test_desc(impl: ModuleType) -> None:
    p = impl.pack
    assert p((Desc(2),)) < p((Desc(1),)) < p((Desc(0),))
    assert p((Desc(1.5),)) < p((Desc(1),))
    assert p((Desc((1, 2)),)) < p((Desc((1,)),))
    assert p(((9, 9),)) < p((Desc(None),))
    for v in (1, 1.5, "a", b"", None, (1, "x"), -(2**100), math.inf, -0.0):
        (back,) = impl.unpack(p((Desc(v),)))
        assert isinstance(back, Desc) and same(back.value, v)


def test_desc_value_object() -> None:
    d = Desc(1)
    assert d.value == 1 and repr(d) == "Desc(1)"
    assert Desc(1) == Desc(1) and hash(Desc(1)) == hash(Desc(1))
    assert Desc(2) < Desc(1) and Desc(1) > Desc(2) and Desc(1) <= Desc(1)
    assert Desc(1) != 1
    with pytest.raises(AttributeError):
        d.value = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        d.other = 2  # type: ignore[attr-defined]


def test_packs_and_sep(impl: ModuleType) -> None:
    assert impl.packs([("a",), (1,)]) == impl.pack(("a",)) + b"\x01" + impl.pack((1,))
    assert impl.packs([], prefix=b"p") == b"p"
    assert impl.unpacks(b"p", prefix=b"p") == [()]
    assert impl.unpacks(b"\x01") == [(), ()]
    assert impl.packs([("a",), (9,)]) < impl.packs([("a", 1), (0,)])
    assert impl.packs(iter([(1,), (2,)])) == impl.packs([(1,), (2,)])
    with pytest.raises(KeyEncodingError, match="SEP"):
        impl.unpack(b"\x02\x01\x02")


def test_prefix_mismatch(impl: ModuleType) -> None:
    with pytest.raises(KeyEncodingError):
        impl.unpack(b"q\x1a", prefix=b"p")
    with pytest.raises(KeyEncodingError):
        impl.unpacks(b"", prefix=b"p")
    assert impl.unpack(bytearray(b"pp\x1a"), prefix=memoryview(b"pp")) == (0,)
    assert impl.pack((), prefix=bytearray(b"ab")) == b"ab"


def test_keyword_arguments(impl: ModuleType) -> None:
    assert impl.pack(tup=(1,), prefix=b"x") == b"x\x1b\x01"
    assert impl.unpack(raw=b"x\x1b\x01", prefix=b"x") == (1,)
    with pytest.raises(TypeError):
        impl.pack((1,), prefx=b"")
    with pytest.raises(TypeError):
        impl.pack()
