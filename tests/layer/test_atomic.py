"""Atomic record operations: semantics, bad input, indexes, concurrency."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import acid
from acid.errors import ConstraintError, NotFound


@pytest.fixture
def coll(store: acid.Store) -> acid.Collection:
    c = store.add_collection("c")
    c.add_index("tag", lambda r: r.get("tag") if isinstance(r, dict) else None)
    c.add_index("items", lambda r: r.get("log") if isinstance(r, dict) else None)
    return c


def tags(coll: acid.Collection, tag: Any) -> list[tuple]:
    return list(coll.indices["tag"].keys(tag))


def test_add_and_replace(store: acid.Store, coll: acid.Collection) -> None:
    assert coll.add({"tag": "a"}, key=1) is True
    assert coll.add({"tag": "b"}, key=1) is False
    assert coll.get(1) == {"tag": "a"}
    assert coll.replace({"tag": "c"}, key=2) is False
    assert coll.get(2) is None
    assert coll.replace({"tag": "c"}, key=1) is True
    assert coll.get(1) == {"tag": "c"}
    assert tags(coll, "a") == [] and tags(coll, "c") == [(1,)]
    assert coll.add({"tag": "auto"}) is True  # a counter key is always new
    with pytest.raises(TypeError, match="key="):
        coll.replace({"tag": "x"})
    assert store.check().ok


def test_add_with_key_func(store: acid.Store) -> None:
    users = store.add_collection("users", key_func=lambda u: u["id"])
    assert users.add({"id": 1, "v": 1}) is True
    assert users.add({"id": 1, "v": 2}) is False
    assert users.replace({"id": 1, "v": 3}) is True
    assert users.replace({"id": 2, "v": 3}) is False
    assert users.get(1) == {"id": 1, "v": 3} and users.get(2) is None
    # A stored null record is present, not absent.
    assert users.add(None, key=5) is True
    assert users.add({"id": 5}) is False


def test_cas(store: acid.Store, coll: acid.Collection) -> None:
    assert coll.cas(1, {"tag": "x"}, {"tag": "y"}) is False  # absent
    assert coll.get(1) is None
    assert coll.cas(1, None, {"tag": "a"}) is True  # None: expect absent
    assert coll.cas(1, None, {"tag": "b"}) is False
    assert coll.cas(1, {"tag": "b"}, {"tag": "c"}) is False
    assert coll.cas(1, {"tag": "a"}, {"tag": "c"}) is True
    assert tags(coll, "c") == [(1,)] and tags(coll, "a") == []
    assert coll.cas(1, {"tag": "c"}, None) is True  # None: delete
    assert coll.get(1) is None and tags(coll, "c") == []
    assert store.check().ok


def test_seize(store: acid.Store, coll: acid.Collection) -> None:
    coll.put({"tag": "t"}, key=1)
    assert coll.seize(1) == {"tag": "t"}
    assert coll.seize(1) is None
    assert coll.seize(1, default="none") == "none"
    assert tags(coll, "t") == []
    assert store.check().ok


def test_incr(store: acid.Store, coll: acid.Collection) -> None:
    coll.put({"tag": "t"}, key=1)
    assert coll.incr(1, "n") == 1
    assert coll.incr(1, "n", 5) == 6
    assert coll.incr(1, "n", -10) == -4
    assert coll.incr(1, "f", 0.5, init=1) == 1.5
    assert coll.incr(1, "n", 0.25) == -3.75
    assert coll.get(1) == {"tag": "t", "n": -3.75, "f": 1.5}
    big = coll.incr(1, "big", 2**70)
    assert big == 2**70 and coll.get(1)["big"] == 2**70


def test_append(store: acid.Store, coll: acid.Collection) -> None:
    coll.put({"tag": "t"}, key=1)
    assert coll.append(1, "log", "a") == 1
    assert coll.append(1, "log", "b", "c") == 3
    assert coll.append(1, "log") == 3
    assert coll.get(1)["log"] == ["a", "b", "c"]
    assert [k for k in coll.indices["items"].keys("b")] == [(1,)]
    assert store.check().ok


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.incr(1, "s"),  # a string
        lambda c: c.incr(1, "flag"),  # a bool is no number here
        lambda c: c.incr(1, "log"),  # a list
        lambda c: c.incr(1, "n", "1"),
        lambda c: c.incr(1, "n", True),
        lambda c: c.incr(1, "missing", 1, init="0"),
        lambda c: c.append(1, "s", "x"),  # a string is no list here
        lambda c: c.append(1, "n", "x"),
        lambda c: c.append(1, "obj", "x"),
        lambda c: c.incr(2, "n"),  # a record that is no dict
        lambda c: c.append(2, "log", 1),
    ],
)
def test_bad_input_changes_nothing(
    store: acid.Store, coll: acid.Collection, call: Any
) -> None:
    rec = {"tag": "t", "s": "x", "flag": True, "log": ["a"], "n": 1, "obj": {}}
    coll.put(rec, key=1)
    coll.put([1, 2], key=2)
    with pytest.raises(TypeError):
        call(coll)
    assert coll.get(1) == rec and coll.get(2) == [1, 2]
    # In a block the error leaves the block usable, and the rest commits.
    with store.begin(write=True):
        with pytest.raises(TypeError):
            call(coll)
        coll.put({"tag": "after"}, key=3)
    assert coll.get(1) == rec and coll.get(3) == {"tag": "after"}
    assert store.check().ok


def test_missing_record(coll: acid.Collection) -> None:
    with pytest.raises(NotFound):
        coll.incr(9, "n")
    with pytest.raises(KeyError):
        coll.append(9, "log", 1)
    assert coll.get(9) is None


def test_key_func_must_keep_the_key(store: acid.Store) -> None:
    users = store.add_collection("u", key_func=lambda u: u["id"])
    users.put({"id": 1, "n": 0})
    with pytest.raises(ConstraintError, match="key"):
        users.incr(1, "id")
    with pytest.raises(ConstraintError):
        users.cas(1, {"id": 1, "n": 0}, {"id": 2, "n": 0})
    assert list(users.items()) == [((1,), {"id": 1, "n": 0})]


def test_operations_roll_back_with_their_block(
    store: acid.Store, coll: acid.Collection
) -> None:
    coll.put({"tag": "t", "n": 1}, key=1)
    with store.begin(write=True):
        assert coll.incr(1, "n") == 2
        assert coll.append(1, "log", "x") == 1
        assert coll.add({"tag": "new"}, key=2)
        assert coll.seize(1)["n"] == 2
        assert coll.get(1) is None
        acid.abort()
    assert coll.get(1) == {"tag": "t", "n": 1}
    assert coll.get(2) is None
    assert store.check().ok


def test_refused_in_a_read_transaction(
    store: acid.Store, coll: acid.Collection
) -> None:
    coll.put({"n": 1}, key=1)
    with store.begin():
        with pytest.raises(acid.errors.TxnError):
            coll.incr(1, "n")
    assert coll.get(1) == {"n": 1}


@pytest.mark.writers_take_turns
def test_threads_against_a_model(store: acid.Store, coll: acid.Collection) -> None:
    threads, rounds = 4, 30
    coll.put({"n": 0, "v": 0}, key="counter")
    pool = [("pool", i) for i in range(threads * rounds)]
    with store.begin(write=True):
        for k in pool:
            coll.put({"tag": "pool"}, key=k)
    won: dict[int, list[int]] = {t: [] for t in range(threads)}
    seized: dict[int, list[tuple]] = {t: [] for t in range(threads)}
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(rounds):
                coll.incr("counter", "n")
                coll.append("counter", "log", f"{t}:{i}")
                if coll.add({"owner": t, "tag": "slot"}, key=("slot", i)):
                    won[t].append(i)
                while True:  # an increment made of get + cas
                    cur = coll.get("counter")
                    if coll.cas("counter", cur, {**cur, "v": cur["v"] + 1}):
                        break
                for k in pool[t::threads][i : i + 2]:
                    if coll.seize(k) is not None:
                        seized[t].append(k)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    final = coll.get("counter")
    assert final["n"] == final["v"] == threads * rounds
    log = [tuple(int(p) for p in x.split(":")) for x in final["log"]]
    assert sorted(log) == [(t, i) for t in range(threads) for i in range(rounds)]
    for t in range(threads):  # each thread's appends in its order
        assert [i for tt, i in log if tt == t] == list(range(rounds))
    owners = {i: coll.get(("slot", i))["owner"] for i in range(rounds)}
    assert sorted(i for t in won for i in won[t]) == list(range(rounds))
    assert all(owners[i] == t for t in won for i in won[t])
    all_seized = [k for t in seized for k in seized[t]]
    assert sorted(all_seized) == sorted(pool)  # each exactly once
    assert list(coll.indices["tag"].keys("pool")) == []
    assert store.check().ok


PROC = """
import sys, acid
store = acid.open(sys.argv[1])
coll = store.add_collection("c")
who = sys.argv[2]
for i in range(60):
    coll.incr("counter", "n")
    coll.append("counter", "log", who)
    coll.add({"owner": who}, key=("slot", i))
    coll.seize(("pool", who, i))
"""


def test_processes_on_lmdb(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db"
    names = ["a", "b", "c"]
    with acid.open(url) as store:
        coll = store.add_collection("c")
        coll.put({"n": 0}, key="counter")
        with store.begin(write=True):
            for who in names:
                for i in range(60):
                    coll.put(i, key=("pool", who, i))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [
        subprocess.Popen([sys.executable, "-c", PROC, url, who], env=env)
        for who in names
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    with acid.open(url) as store:
        coll = store.add_collection("c")
        final = coll.get("counter")
        assert final["n"] == 180
        assert sorted(final["log"]) == sorted(names * 60)
        slots = [coll.get(("slot", i))["owner"] for i in range(60)]
        assert all(s in names for s in slots)
        assert list(coll.keys(prefix="pool")) == []


OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "replace", "cas", "seize", "incr", "append"]),
        st.integers(0, 3),
        st.integers(-3, 3),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_random_operations_match_a_model(ops: list[tuple[str, int, int]]) -> None:
    store = acid.open("skiplist:/")
    coll = store.add_collection("c")
    coll.add_index("n", lambda r: r.get("n"))
    coll.add_index("log", lambda r: r.get("log"))
    model: dict[int, dict] = {}
    for op, k, x in ops:
        rec = {"n": x}
        if op == "add":
            assert coll.add(rec, key=k) is (k not in model)
            model.setdefault(k, rec)
        elif op == "replace":
            assert coll.replace(rec, key=k) is (k in model)
            if k in model:
                model[k] = rec
        elif op == "cas":
            expected = None if x < 0 else {"n": x}
            ok = (k not in model) if expected is None else model.get(k) == expected
            assert coll.cas(k, expected, {"n": x + 1}) is ok
            if ok:
                model[k] = {"n": x + 1}
        elif op == "seize":
            assert coll.seize(k) == model.pop(k, None)
        elif op == "incr":
            if k not in model:
                with pytest.raises(NotFound):
                    coll.incr(k, "n", x)
            else:
                model[k] = {**model[k], "n": model[k].get("n", 0) + x}
                assert coll.incr(k, "n", x) == model[k]["n"]
        else:
            if k not in model:
                with pytest.raises(NotFound):
                    coll.append(k, "log", x)
            else:
                model[k] = {**model[k], "log": [*model[k].get("log", []), x]}
                assert coll.append(k, "log", x) == len(model[k]["log"])
    assert dict((key[0], rec) for key, rec in coll.items()) == model
    for v in range(-3, 5):
        expect = sorted(k for k, r in model.items() if r.get("n") == v)
        assert [key[0] for key in coll.indices["n"].keys(v)] == expect
    assert store.check().ok
