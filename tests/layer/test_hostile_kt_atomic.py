"""Hostile use of the atomic record operations: types, overflow, key changes."""

from __future__ import annotations

import math
from typing import Any

import pytest

import acid
from acid.errors import ConstraintError, NotFound, TxnError


@pytest.fixture
def coll(store: acid.Store) -> acid.Collection:
    c = store.add_collection("c")
    c.add_index("n", lambda r: [(r["n"],)] if type(r.get("n")) in (int, str) else [])
    return c


# -- bugs found ---------------------------------------------------------------


@pytest.mark.parametrize(
    "stored, expected",
    [
        (1, True),
        (True, 1),
        (1, 1.0),
        (1.0, 1),
        (0, False),
        ([1], [True]),
        ({"a": 1}, {"a": 1.0}),
    ],
)
def test_cas_tells_equal_values_of_other_types_apart(
    store: acid.Store, coll: acid.Collection, stored: Any, expected: Any
) -> None:
    """cas compared with ==, so a record another writer changed from 1 to
    True (or 1.0) still matched what the caller read, and was overwritten:
    a lost update. Keys already tell 1, 1.0 and True apart."""
    coll.put({"n": stored}, key="a")
    assert coll.cas("a", {"n": expected}, {"n": "new"}) is False
    assert coll.get("a") == {"n": stored} and type(coll.get("a")["n"]) is type(stored)
    assert coll.cas("a", {"n": stored}, {"n": "new"}) is True
    assert coll.get("a") == {"n": "new"}
    assert store.check().ok


def test_cas_matches_a_nan_it_read(store: acid.Store, coll: acid.Collection) -> None:
    """A field made NaN (incr by nan) made the record impossible to cas."""
    coll.put({"n": 1.0}, key="a")
    assert math.isnan(coll.incr("a", "n", math.nan))
    cur = coll.get("a")
    assert coll.cas("a", cur, {"n": 2}) is True
    assert coll.get("a") == {"n": 2}


def test_cas_with_dict_keys_of_other_types(store: acid.Store) -> None:
    coll = store.add_collection("p", encoder="pickle")
    coll.put({1: "x"}, key="a")
    assert coll.cas("a", {True: "x"}, {2: "y"}) is False
    assert coll.cas("a", {1.0: "x"}, {2: "y"}) is False
    assert coll.cas("a", {1: "x"}, {2: "y"}) is True


# -- what held up -------------------------------------------------------------


def test_incr_refuses_bools_and_keeps_the_record(coll: acid.Collection) -> None:
    coll.put({"n": True}, key="a")
    with pytest.raises(TypeError):
        coll.incr("a", "n")
    for bad in (True, "1", None, 1j):
        with pytest.raises(TypeError):
            coll.incr("a", "m", bad)
        with pytest.raises(TypeError):
            coll.incr("a", "m", 1, bad)
    assert coll.get("a") == {"n": True}


def test_incr_beyond_the_encoders_range_changes_nothing(store: acid.Store) -> None:
    packed = store.add_collection("m", encoder="msgpack")
    packed.add_index("n", lambda r: [(r["n"],)])
    packed.put({"n": 2**64 - 1}, key="a")
    packed.put({"n": -(2**63)}, key="b")
    with pytest.raises(OverflowError):
        packed.incr("a", "n")
    with pytest.raises(OverflowError):
        packed.incr("b", "n", -1)
    assert packed.get("a") == {"n": 2**64 - 1} and packed.get("b") == {"n": -(2**63)}
    as_json = store.add_collection("j")
    as_json.put({"n": 2**64 - 1, "f": 1.7e308}, key="a")
    assert as_json.incr("a", "n", 2**64) == 2**65 - 1
    assert as_json.incr("a", "f", 1.7e308) == math.inf  # float arithmetic
    assert as_json.get("a") == {"n": 2**65 - 1, "f": math.inf}
    assert store.check().ok


def test_append_to_a_tuple_or_a_string_is_a_type_error(store: acid.Store) -> None:
    coll = store.add_collection("p", encoder="pickle")
    coll.put({"t": (1, 2), "s": "ab"}, key="a")
    for field in ("t", "s"):
        with pytest.raises(TypeError):
            coll.append("a", field, 3)
    assert coll.append("a", "new") == 0
    assert coll.get("a") == {"t": (1, 2), "s": "ab", "new": []}


def test_atomic_writes_in_a_read_transaction_raise(
    store: acid.Store, coll: acid.Collection
) -> None:
    coll.put({"n": 1}, key="a")
    with store.begin():
        for call in (
            lambda: coll.seize("a"),
            lambda: coll.incr("a", "n"),
            lambda: coll.append("a", "l", 1),
            lambda: coll.add({"n": 2}, key="b"),
            lambda: coll.replace({"n": 2}, key="a"),
            lambda: coll.cas("a", {"n": 1}, {"n": 2}),
        ):
            with pytest.raises(TxnError):
                call()
    assert coll.get("a") == {"n": 1} and coll.get("b") is None


def test_key_func_changes_are_refused_and_change_nothing(store: acid.Store) -> None:
    users = store.add_collection("u", key_func=lambda r: r["id"])
    users.add_index("name", lambda r: [(r.get("name"),)])
    users.put({"id": 1, "name": "ada"})
    with pytest.raises(ConstraintError):
        users.cas(1, {"id": 1, "name": "ada"}, {"id": 2, "name": "ada"})
    with pytest.raises(ConstraintError):
        users.incr(1, "id")
    assert list(users.items()) == [((1,), {"id": 1, "name": "ada"})]
    assert users.replace({"id": 2, "name": "x"}) is False  # key 2 is absent
    assert users.add({"id": 1, "name": "x"}) is False
    with pytest.raises(NotFound):
        users.incr(2, "n")
    assert list(users.items()) == [((1,), {"id": 1, "name": "ada"})]
    assert store.check().ok


def test_expired_records_are_absent_to_every_operation(
    open_store: Any,
) -> None:
    now = [1000.0]
    store = open_store(clock=lambda: now[0])
    coll = store.add_collection("c")
    coll.put({"n": 1}, key="a", ttl=5)
    now[0] += 10
    assert coll.replace({"n": 2}, key="a") is False
    assert coll.cas("a", {"n": 1}, {"n": 2}) is False
    assert coll.seize("a", "gone") == "gone"
    with pytest.raises(NotFound):
        coll.incr("a", "n")
    assert coll.add({"n": 3}, key="a") is True
    now[0] += 100
    assert coll.get("a") == {"n": 3}  # add wrote the default: no deadline
    assert store.check().ok
