"""The planner alone: spec and index descriptions in, plan out, no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from acid import keylib
from acid._plan import IndexInfo, Plan, element_range, plan
from acid._spec import compile_spec

CITY = IndexInfo("city", ("city",))
AGE = IndexInfo("age", ("age",))
CITY_AGE = IndexInfo("city_age", ("city", "age"))
WORDS = IndexInfo("words", ("$text:body",))


def run(spec: dict[str, Any], *indexes: IndexInfo, **kw: Any) -> Plan:
    return plan(compile_spec(spec), list(indexes), **kw)


def test_no_usable_index_is_a_full_scan() -> None:
    p = run({"name": "x", "age": {"$ne": 3}}, CITY, AGE)
    assert p.index is None and p.residual is not None
    assert len(p.residual.fields) == 2


def test_compound_equality_beats_a_single_field() -> None:
    p = run({"city": "Oslo", "age": 30}, CITY, AGE, CITY_AGE)
    assert p.index == "city_age" and p.equalities == 2
    assert p.residual is not None and not p.residual.fields
    start = keylib.pack(("Oslo", 30))
    assert p.ranges == [(start, start + b"\xfe")]


def test_compound_range_after_an_equality() -> None:
    p = run({"city": "Oslo", "age": {"$gte": 30, "$lt": 40}}, CITY_AGE)
    assert p.ranges == [(keylib.pack(("Oslo", 30)), keylib.pack(("Oslo", 40)))]


def test_compound_index_needs_every_field() -> None:
    # a record without "age" has no entry in city_age
    assert run({"city": "Oslo"}, CITY_AGE).index is None
    assert run({"city": "Oslo"}, CITY, CITY_AGE).index == "city"


def test_in_becomes_several_ranges_and_expands_prefixes() -> None:
    p = run({"age": {"$in": [40, 30, 30]}}, AGE)
    assert len(p.ranges) == 2 and p.ranges[0][0] == keylib.pack((30,))
    p = run({"city": {"$in": ["A", "B"]}, "age": {"$lt": 5}}, CITY_AGE)
    assert len(p.ranges) == 2 and p.equalities == 1


def test_int_ranges_stop_before_floats() -> None:
    lo, hi = element_range(1)  # type: ignore[misc]
    assert lo <= keylib.pack((1,)) < hi <= keylib.pack((1.0,))
    assert keylib.pack((1.5,)) >= hi
    lo, hi = element_range(1.0)  # type: ignore[misc]
    assert lo == keylib.pack((1.0,)) and hi <= keylib.pack((1.5,))
    assert element_range({"a": 1}) is None


@pytest.mark.parametrize(
    ("spec", "used"),
    [
        ({"age": {"$gt": 3, "$mod": [2, 0]}}, False),  # $mod is filtered
        ({"age": {"$in": [1, {"x": 1}]}}, False),  # an unpackable operand
        ({"age": {"$lte": 3}}, True),
    ],
)
def test_only_rangeable_conditions_use_an_index(spec: dict, used: bool) -> None:
    assert (run(spec, AGE).index == "age") is used


def test_order_by_from_the_index() -> None:
    p = run({"age": {"$gt": 3}}, AGE, order_by=[("age", True)])
    assert p.ordered
    p = run({"city": "Oslo", "age": {"$gt": 3}}, CITY_AGE, order_by=[("age", False)])
    assert p.ordered and p.order_pos == 1
    # two equality prefixes: index order is not age order
    p = run(
        {"city": {"$in": ["A", "B"]}, "age": {"$gt": 3}},
        CITY_AGE,
        order_by=[("age", False)],
    )
    assert not p.ordered
    # the order field is not the first condition on it
    spec = {"$and": [{"age": {"$mod": [2, 0]}}, {"age": {"$gt": 3}}]}
    assert not run(spec, AGE, order_by=[("age", False)]).ordered


def test_estimates_break_ties_only() -> None:
    asked: list[str] = []

    def estimate(p: Plan) -> int:
        asked.append(p.index or "")
        return {"city": 50, "age": 7}[p.index or ""]

    p = run({"city": "Oslo", "age": 3}, CITY, AGE, estimate=estimate)
    assert p.index == "age" and sorted(asked) == ["age", "city"]
    asked.clear()
    assert (
        run({"city": "Oslo", "age": {"$gt": 3}}, CITY, AGE, estimate=estimate).index
        == "city"
    )
    assert asked == []  # an equality beats a range without counting


def test_text_uses_the_longest_word() -> None:
    p = run({"body": {"$text": "a quick fox"}}, WORDS)
    assert p.index == "words" and p.text == "body HAS WORD 'quick'"
    assert p.residual is not None and len(p.residual.fields) == 1
    assert run({"body": {"$text": "  "}}, WORDS).index is None
