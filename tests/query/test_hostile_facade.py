"""The dict facade under hostile use: keys Python calls equal, steps that
mean different things to sophy and to Python, dropped collections and
expired records."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

import acid
from acid.errors import NotFound, QueryError, SchemaError


@pytest.fixture
def db(store: acid.Store) -> acid.Collection:
    coll = store.add_collection("db", key_func=lambda r: r["k"])
    coll.update({f"k{i}": {"k": f"k{i}"} for i in range(1, 5)})
    return coll


def keys_of(items: Any) -> list[Any]:
    return [k for (k,), _ in items]


# -- multi_get_dict ---------------------------------------------------------


@pytest.mark.parametrize("spellings", [(1, 1.0), (1.0, 1), (1, True), (0, -0.0)])
def test_multi_get_dict_refuses_keys_one_dict_entry_would_merge(
    store: acid.Store, spellings: tuple[Any, Any]
) -> None:
    # 1, 1.0 and True are three records in acid but one key of a dict: the
    # answer would file one record under the other's key.
    coll = store.add_collection("t")
    for k in spellings:
        coll[k] = {"under": repr(k)}
    with pytest.raises(ValueError, match="different records"):
        coll.multi_get_dict(list(spellings))
    # Each alone is still fine, and multi_get keeps them apart.
    for k in spellings:
        assert coll.multi_get_dict([k]) == {k: {"under": repr(k)}}
    assert coll.multi_get(*spellings) == [{"under": repr(k)} for k in spellings]


def test_multi_get_dict_keeps_the_spellings_of_one_key(db: acid.Collection) -> None:
    got = db.multi_get_dict(["k1", ("k1",), "k1", "kx"])
    assert got == {"k1": {"k": "k1"}, ("k1",): {"k": "k1"}}


@pytest.mark.parametrize("keys", ["k1", b"k1", None, 5])
def test_multi_get_dict_wants_an_iterable_of_keys(
    db: acid.Collection, keys: Any
) -> None:
    # A str would be read as its characters and silently find nothing.
    with pytest.raises(TypeError, match="iterable of keys"):
        db.multi_get_dict(keys)


# -- slice steps ------------------------------------------------------------


@pytest.mark.parametrize("step", [0, 1, -1, 2, 1.0, "x"])
def test_slice_step_is_a_bool_or_nothing(db: acid.Collection, step: Any) -> None:
    # sophy reverses on any true step, Python goes forward on 1: refuse both
    # readings rather than pick one silently.
    with pytest.raises(TypeError, match="step"):
        db["k1":"k3":step]


def test_slice_steps_true_and_false(db: acid.Collection) -> None:
    assert keys_of(db["k1":"k3":True]) == ["k3", "k2", "k1"]
    assert keys_of(db["k3":"k1":True]) == ["k3", "k2", "k1"]
    assert keys_of(db["k1":"k3":False]) == ["k1", "k2", "k3"]
    assert keys_of(db["k3":"k1":False]) == ["k3", "k2", "k1"]  # lo > hi reverses
    assert keys_of(db["k2":"k2":True]) == ["k2"]
    assert keys_of(db[1:"k2"]) == ["k1", "k2"]  # a bound of another type
    assert keys_of(db["k2":1]) == ["k2", "k1"]


# -- dropped collections ----------------------------------------------------


USES: dict[str, Callable[[acid.Collection], Any]] = {
    "len": len,
    "slice": lambda c: list(c[:]),
    "reverse slice": lambda c: list(c[::True]),
    "cursor": lambda c: list(c.cursor()),
    "cursor keys": lambda c: list(c.cursor(values=False)),
    "query count": lambda c: c.query().count(),
    "query": lambda c: list(c.query({"a": {"$gte": 0}})),
}


@pytest.mark.parametrize("use", sorted(USES))
def test_a_dropped_collection_refuses_the_facade(
    open_store: Callable[..., acid.Store], use: str
) -> None:
    store = open_store()
    coll = store.add_collection("gone")
    for i in range(5):
        coll.put({"a": i})
    store.drop_collection("gone")
    # len() used to give the stale count (and query().count() with it),
    # slices and cursors an empty range, where every other read refuses.
    with pytest.raises(SchemaError, match="gone"):
        USES[use](coll)
    again = store.add_collection("gone")
    assert len(again) == 0 and list(again[:]) == []


def test_a_peer_store_object_sees_the_drop(
    open_store: Callable[..., acid.Store], engine_name: str
) -> None:
    if engine_name not in ("lmdb", "leveldb"):
        pytest.skip("two Store objects on one path need a persistent engine")
    if engine_name == "leveldb":
        pytest.skip("LevelDB locks its directory: one Store object per path")
    one = open_store()
    two = open_store()
    a = one.add_collection("c")
    for i in range(3):
        a.put({"i": i})
    b = two.add_collection("c")
    assert len(b) == 3
    one.drop_collection("c")
    with pytest.raises(SchemaError):
        len(b)
    with pytest.raises(SchemaError):
        b.query().count()


# -- expiring collections ---------------------------------------------------


def test_slices_and_cursors_leave_out_expired_records(
    open_store: Callable[..., acid.Store],
) -> None:
    now = [1000.0]
    store = open_store(clock=lambda: now[0])
    coll = store.add_collection("s", ttl=10)
    for i in range(4):
        coll[i] = {"i": i}
    now[0] += 5
    coll[10] = {"i": 10}
    now[0] += 6  # 0..3 expired, 10 alive
    alive = [(10,)]
    assert [k for k, _ in coll] == alive
    assert len(coll) == 1
    assert [k for k, _ in coll[:]] == alive
    assert [k for k, _ in coll[0:10]] == alive
    assert [k for k, _ in coll[10:0]] == alive
    assert [k for k, _ in coll[::True]] == alive
    assert list(coll.cursor(values=False)) == alive
    assert list(coll.cursor(key=20, order="<=", values=False)) == alive
    assert list(coll.cursor(keys=False)) == [{"i": 10}]
    with pytest.raises(NotFound):
        coll[1]
    assert 1 not in coll
    assert coll.multi_get(1, 10) == [None, {"i": 10}]
    assert coll.multi_get_dict([1, 10]) == {10: {"i": 10}}
    with store.begin():  # the same inside a block
        assert [k for k, _ in coll[:]] == alive


# -- key matching -----------------------------------------------------------


@pytest.mark.parametrize("pattern", [b"an", re.compile(b"an"), None, 5])
def test_match_regex_refuses_what_cannot_search_a_str(
    db: acid.Collection, pattern: Any
) -> None:
    # A bytes pattern compiled, then failed with a bare TypeError at the
    # first key, naming neither the call nor the pattern.
    with pytest.raises(QueryError, match="match_regex"):
        db.match_regex(pattern)
    idx = db.add_index("k", acid.field("k"))
    with pytest.raises(QueryError, match="match_regex"):
        idx.match_regex(pattern)


def test_match_regex_keeps_the_flags_of_a_compiled_pattern(
    db: acid.Collection,
) -> None:
    assert db.match_regex(re.compile("^K[13]$", re.I)) == [("k1",), ("k3",)]
    idx = db.add_index("k", acid.field("k"))
    assert idx.match_regex(re.compile("K4", re.I)) == [("k4",)]


# -- None as a key ----------------------------------------------------------


def test_none_is_a_key_like_any_other(store: acid.Store) -> None:
    coll = store.add_collection("n")
    # coll[None] = rec went to put(rec, key=None), "no key given": the record
    # landed under a generated key, where coll[None] never found it.
    coll[None] = {"v": 1}
    assert list(coll) == [((None,), {"v": 1})]
    assert None in coll and coll[None] == {"v": 1}
    coll.update({None: {"v": 2}, "x": {"v": 3}})
    assert list(coll) == [((None,), {"v": 2}), (("x",), {"v": 3})]
    assert len(coll) == 2
    assert coll.multi_get_dict([None, "x"]) == {None: {"v": 2}, "x": {"v": 3}}
    del coll[None]
    assert None not in coll and len(coll) == 1


def test_none_key_on_an_expiring_collection(
    open_store: Callable[..., acid.Store],
) -> None:
    now = [0.0]
    store = open_store(clock=lambda: now[0])
    coll = store.add_collection("e", ttl=5)
    coll[None] = {"v": 1}
    assert coll[None] == {"v": 1} and len(coll) == 1
    now[0] = 6.0
    assert None not in coll and len(coll) == 0
