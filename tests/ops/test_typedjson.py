"""The typed JSON mapping round-trips every value it claims, exactly."""

from __future__ import annotations

import datetime
import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acid.cli import typedjson

offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda m: datetime.timezone(datetime.timedelta(minutes=m))
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**53 - 3, max_value=2**80),
    st.integers(min_value=-(2**80), max_value=-(2**53) + 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(),
    st.datetimes(),
    st.datetimes(timezones=offsets),
    st.dates(),
    st.uuids(),
)
hashables = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(), st.binary()),
    lambda inner: st.tuples(inner, inner),
    max_leaves=4,
)
dict_keys = st.one_of(st.text(), st.text().map(lambda s: "$" + s), hashables)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(dict_keys, inner, max_size=4),
        st.dictionaries(st.text(), inner, max_size=4),
    ),
    max_leaves=12,
)


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (nan equals nan)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, datetime.datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    return bool(a == b)


@given(values)
def test_round_trip_is_exact(value: Any) -> None:
    text = typedjson.dumps(value)
    assert "\n" not in text
    json.loads(text)  # plain JSON, no NaN literals
    assert same(typedjson.loads(text), value)


@given(values)
def test_encoded_form_is_plain_json_data(value: Any) -> None:
    data = typedjson.encode(value)
    assert same(typedjson.decode(json.loads(json.dumps(data))), value)


def test_documented_forms() -> None:
    u = uuid.UUID(int=5)
    when = datetime.datetime(2024, 5, 1, 12, 0, 0, 1, datetime.UTC)
    assert typedjson.encode(b"\x00\x01") == {"$bytes": "AAE="}
    assert typedjson.encode(u) == {"$uuid": str(u)}
    assert typedjson.encode(when) == {"$datetime": "2024-05-01T12:00:00.000001+00:00"}
    assert typedjson.encode((1, [2])) == {"$tuple": [1, [2]]}
    assert typedjson.encode(2**53) == {"$int": str(2**53)}
    assert typedjson.encode(2**53 - 1) == 2**53 - 1
    assert typedjson.encode(-math.inf) == {"$float": "-inf"}
    assert typedjson.encode({"$x": 1}) == {"$dict": [["$x", 1]]}
    assert typedjson.encode({1: 2}) == {"$dict": [[1, 2]]}
    assert typedjson.encode({"a": 1}) == {"a": 1}


@pytest.mark.parametrize(
    "text",
    [
        '{"$bytes": "not base64!"}',
        '{"$bytes": 5}',
        '{"$uuid": "nope"}',
        '{"$datetime": "yesterday"}',
        '{"$int": "12x"}',
        '{"$float": "huge"}',
        '{"$tuple": "ab"}',
        '{"$dict": [[1]]}',
        '{"$dict": [[[1], 2]]}',
        '{"$what": 1}',
        '{"$bytes": "AA==", "other": 1}',
        "NaN",
        "[Infinity]",
        "{",
    ],
)
def test_malformed_input_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        typedjson.loads(text)


@pytest.mark.parametrize("value", [{1, 2}, bytearray(b"x"), object(), 1j])
def test_unknown_types_are_refused_by_name(value: Any) -> None:
    with pytest.raises(TypeError, match=type(value).__name__):
        typedjson.dumps(value)
