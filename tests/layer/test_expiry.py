"""Expiring records on every engine, with a fake clock (no sleeping)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import acid
from acid.errors import SchemaError
from acid.testing import FakeClock as Clock
from tests.conftest import PERSISTENT


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tstore(open_store: Callable[..., acid.Store], clock: Clock) -> acid.Store:
    return open_store(clock=clock)


def make(store: acid.Store, **kw: Any) -> acid.Collection:
    coll = store.add_collection("c", key_func=lambda r: r["id"], **kw)
    coll.add_index("tag", lambda r: r["tag"])
    coll.add_index("words", acid.tokens("text"))
    coll.add_index("grams", acid.qgrams("text", q=3))
    return coll


def rec(i: int, tag: str = "t") -> dict[str, Any]:
    return {"id": i, "tag": tag, "text": f"word{i} common"}


def visible(coll: acid.Collection) -> dict[str, Any]:
    """Every read path's view of the collection."""
    tag, words, grams = (coll.indices[n] for n in ("tag", "words", "grams"))
    return {
        "keys": [k[0] for k in coll.keys()],
        "items": [k[0] for k, _ in coll.items()],
        "values": [r["id"] for r in coll.values()],
        "reverse": [k[0] for k in coll.keys(reverse=True)][::-1],
        "tag keys": [k[0] for k in tag.keys("t")],
        "tag values": [r["id"] for r in tag.values("t")],
        "tag items": [k[0] for k, _ in tag.items("t")],
        "tag pairs": [k[0] for _, k in tag.pairs("t")],
        "tag count": tag.count("t"),
        "search": [k[0] for k, _ in words.search("common")],
        "contains": [k[0] for k, _ in grams.contains("common")],
        "short contains": [k[0] for k, _ in grams.contains("co")],
    }


def assert_only(coll: acid.Collection, ids: list[int]) -> None:
    view = visible(coll)
    for name, got in view.items():
        want = len(ids) if name == "tag count" else ids
        assert got == want, name
    for i in range(10):
        assert (coll.get(i) is not None) == (i in ids), i
    tag = coll.indices["tag"]
    assert tag.has("t") == bool(ids)
    assert (tag.get("t") is not None) == bool(ids)
    assert coll.find() == (coll.get(ids[0]) if ids else None)


def test_ttl_hides_at_once_on_every_read_path(tstore: acid.Store, clock: Clock) -> None:
    coll = make(tstore)
    with tstore.begin(write=True):
        for i in range(6):
            coll.put(rec(i), ttl=10 * i if i % 2 else None)
    assert_only(coll, [0, 1, 2, 3, 4, 5])
    clock.now += 10
    assert_only(coll, [0, 2, 3, 4, 5])
    clock.now += 30
    assert_only(coll, [0, 2, 4, 5])
    clock.now += 1000
    assert_only(coll, [0, 2, 4])
    assert tstore.check().ok
    assert tstore.expire() == 3
    assert_only(coll, [0, 2, 4])
    with tstore.begin():  # removed for good: records, entries and deadlines
        assert len(list(tstore.iter_space(coll.id))) == 3
        assert list(tstore.iter_space(coll.expiry.space_id)) == []  # type: ignore[union-attr]
    assert tstore.check().ok


def test_collection_default_and_forever(
    open_store: Callable[..., acid.Store], clock: Clock, engine_name: str
) -> None:
    store = open_store(clock=clock)
    coll = make(store, ttl=60)
    coll.put(rec(1))  # the default
    coll.put(rec(2), ttl=acid.FOREVER)
    coll.put(rec(3), ttl=5)
    clock.now += 5
    assert [k[0] for k in coll.keys()] == [1, 2]
    clock.now += 55
    assert [k[0] for k in coll.keys()] == [2]
    if engine_name in PERSISTENT:  # the default is stored
        store.close()
        store = open_store(clock=clock)
        coll = make(store)
        assert coll.expiry is not None and coll.expiry.default == 60
        coll.put(rec(4))
        clock.now += 60
        assert [k[0] for k in coll.keys()] == [2]


@pytest.mark.parametrize(
    "bad", [0, -1, -0.001, "10", None.__class__, True, float("nan"), [5]]
)
def test_bad_ttl_raises_value_error(tstore: acid.Store, bad: Any) -> None:
    coll = make(tstore)
    with pytest.raises(ValueError):
        coll.put(rec(1), ttl=bad)
    assert coll.get(1) is None
    with pytest.raises(ValueError):
        tstore.add_collection("d", ttl=bad)
    assert "d" not in tstore.collections()
    assert tstore.check().ok


def test_put_without_ttl_clears_the_deadline(tstore: acid.Store, clock: Clock) -> None:
    coll = make(tstore)
    coll.put(rec(1), ttl=10)
    coll.put(rec(1, "u"))  # no default: never expires now
    clock.now += 100
    assert coll.get(1) == rec(1, "u")
    assert tstore.expire() == 0
    assert tstore.check().ok


def test_writes_remove_expired_records_lazily(tstore: acid.Store, clock: Clock) -> None:
    coll = make(tstore)
    coll.put(rec(1, "old"), ttl=10)
    coll.put(rec(2), ttl=10)
    coll.put(rec(3), ttl=10)
    clock.now += 10
    assert coll.delete(2) is False  # it had expired: nothing visible was deleted
    coll.put(rec(1, "new"))  # over an expired record: its entries go
    assert list(coll.indices["tag"].keys("old")) == []
    assert coll.add(rec(3, "added")) is True  # expired counts as absent
    assert coll.get(3)["tag"] == "added"
    assert coll.seize(2) is None
    assert coll.cas(2, None, rec(2, "cas")) is True
    with tstore.begin():
        assert list(tstore.iter_space(coll.expiry.space_id)) == []  # type: ignore[union-attr]
    assert tstore.check().ok


def test_atomic_ops_and_expiry(tstore: acid.Store, clock: Clock) -> None:
    coll = make(tstore)
    coll.put({**rec(1), "n": 5}, ttl=10)
    assert coll.incr(1, "n") == 6  # incr and append keep the deadline
    assert coll.append(1, "log", "x") == 1
    clock.now += 10
    assert coll.get(1) is None
    with pytest.raises(KeyError):
        coll.incr(1, "n")
    with pytest.raises(KeyError):
        coll.append(1, "log", "y")
    assert coll.replace(rec(1)) is False
    coll.put({**rec(2), "n": 5}, ttl=10)
    assert coll.cas(2, {**rec(2), "n": 5}, rec(2, "swapped")) is True
    clock.now += 100  # cas writes as put does: the default (none here)
    assert coll.get(2) == rec(2, "swapped")
    assert tstore.check().ok


def test_expire_in_bounded_batches(tstore: acid.Store, clock: Clock) -> None:
    coll = make(tstore)
    with tstore.begin(write=True):
        for i in range(250):
            coll.put(rec(i), ttl=1 + i % 5 if i % 2 else None)
    clock.now += 3
    due = [i for i in range(250) if i % 2 and 1 + i % 5 <= 3]
    assert coll.expire(batch=7) == len(due)
    assert len(list(coll.keys())) == 250 - len(due)
    clock.now += 100
    assert tstore.expire(batch=10) == 125 - len(due)
    assert sorted(k[0] for k in coll.keys()) == list(range(0, 250, 2))
    assert tstore.check().ok
    with pytest.raises(ValueError):
        coll.expire(batch=0)


def test_expire_rolls_back_with_its_block(tstore: acid.Store, clock: Clock) -> None:
    coll = make(tstore)
    coll.put(rec(1), ttl=1)
    clock.now += 5
    with tstore.begin(write=True):
        assert tstore.expire() == 1
        acid.abort()
    with tstore.begin():
        assert len(list(tstore.iter_space(coll.id))) == 1
    assert tstore.expire() == 1
    assert tstore.check().ok


def test_enabling_expiry_in_an_aborted_block_leaves_no_trace(
    tstore: acid.Store, clock: Clock
) -> None:
    coll = make(tstore)
    coll.put(rec(1))
    with tstore.begin(write=True):
        coll.put(rec(2), ttl=5)
        assert coll.expiry is not None
        acid.abort()
    assert coll.expiry is None
    assert "expiry" not in tstore.get_meta(acid.KIND_TABLE, "c")  # type: ignore[operator]
    coll.put(rec(3))
    clock.now += 100
    assert [k[0] for k in coll.keys()] == [1, 3]
    coll.put(rec(4), ttl=5)
    assert coll.expiry is not None
    clock.now += 5
    assert [k[0] for k in coll.keys()] == [1, 3]
    assert tstore.check().ok


def test_other_objects_follow(tstore: acid.Store, clock: Clock) -> None:
    a = make(tstore)
    b = tstore.add_collection("c", key_func=lambda r: r["id"])
    a.put(rec(1), ttl=5)  # enables expiry: b is matched at once
    assert b.expiry is not None
    clock.now += 5
    assert b.get(1) is None and list(b.keys()) == []


def test_check_reports_damaged_expiry_spaces(tstore: acid.Store, clock: Clock) -> None:
    coll = make(tstore)
    coll.put(rec(1), ttl=5)
    coll.put(rec(2), ttl=5)
    exp = coll.expiry
    assert exp is not None
    with tstore.begin(write=True):
        txn = tstore.txn
        assert txn is not None
        # Drop one queue entry, and leave a deadline whose record is gone.
        queue = list(tstore.iter_space(exp.space_id))
        queue_keys = [k for k, v in queue if v and k.endswith(v) and len(v) < len(k)]
        txn.delete(queue_keys[-1])
        txn.delete(coll.key_prefix + acid.keylib.pack((1,)))
    tstore.add_collection("c", key_func=lambda r: r["id"])  # a second object
    report = tstore.check()
    assert not report.ok
    assert [m[1] for m in report.missing] == ["(expiry)"]  # reported once
    stale = [(s[1], s[3]) for s in report.stale if s[1] == "(expiry)"]
    assert stale == [("(expiry)", (1,))]


def test_drop_collection_drops_deadlines(tstore: acid.Store) -> None:
    coll = make(tstore)
    coll.put(rec(1), ttl=5)
    space = coll.expiry.space_id  # type: ignore[union-attr]
    tstore.drop_collection("c")
    with tstore.begin():
        assert list(tstore.iter_space(space)) == []
    with pytest.raises(SchemaError):
        coll.get(1)


def test_clock_must_be_callable() -> None:
    with pytest.raises(TypeError):
        acid.open("skiplist:/", clock=5)


STEPS = st.lists(
    st.tuples(
        st.sampled_from(["put", "put", "delete", "tick", "expire", "incr"]),
        st.integers(0, 4),
        st.sampled_from([None, 1, 2, 3.5, acid.FOREVER]),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(STEPS, st.sampled_from([None, 2]))
def test_random_steps_match_a_model(
    steps: list[tuple[str, int, Any]], default: Any
) -> None:
    clock = Clock()
    store = acid.open("skiplist:/", clock=clock)
    coll = store.add_collection("c", ttl=default) if default else make(store)
    if default:
        coll.add_index("tag", lambda r: r["tag"])
    model: dict[int, tuple[dict, float | None]] = {}

    def live() -> dict[int, dict]:
        return {k: r for k, (r, d) in model.items() if d is None or d > clock.now}

    for i, (op, k, ttl) in enumerate(steps):
        if op == "put":
            r = {"id": k, "tag": f"t{i % 2}", "n": 0, "text": "x"}
            coll.put(r, key=k, ttl=ttl)
            secs = default if ttl is None else ttl
            when = None if secs in (None, acid.FOREVER) else clock.now + secs
            model[k] = (r, when)
        elif op == "delete":
            assert coll.delete(k) is (k in live())
            model.pop(k, None)
        elif op == "tick":
            clock.now += k
        elif op == "expire":
            gone = len(model) - len(live())
            assert store.expire(batch=2) == gone
            model = {k: model[k] for k in live()}
        elif k in live():
            r, when = model[k]
            assert coll.incr(k, "n") == r["n"] + 1
            model[k] = ({**r, "n": r["n"] + 1}, when)
        else:
            with pytest.raises(KeyError):
                coll.incr(k, "n")
        now = live()
        assert dict((key[0], r) for key, r in coll.items()) == now
        for t in ("t0", "t1"):
            want = sorted(k for k, r in now.items() if r["tag"] == t)
            assert [key[0] for key in coll.indices["tag"].keys(t)] == want
    assert store.check().ok


@pytest.mark.writers_take_turns
def test_threads_put_while_another_expires(tstore: acid.Store, clock: Clock) -> None:
    coll = make(tstore)
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(t: int) -> None:
        try:
            for i in range(40):
                coll.put(rec(t * 100 + i % 10), ttl=1 + i % 3)
                coll.delete(t * 100 + (i + 5) % 10)
        except BaseException as exc:  # reported below
            errors.append(exc)

    def sweeper() -> None:
        try:
            while not stop.is_set():
                clock.now += 0.5
                tstore.expire(batch=3)
        except BaseException as exc:
            errors.append(exc)

    sweep = threading.Thread(target=sweeper)
    sweep.start()
    writers = [threading.Thread(target=writer, args=(t,)) for t in range(3)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    sweep.join()
    assert errors == []
    assert tstore.check().ok
    clock.now += 10
    tstore.expire()
    assert list(coll.keys()) == []
    with tstore.begin():
        assert list(tstore.iter_space(coll.id)) == []
    assert tstore.check().ok


def test_failure_mid_sweep_loses_nothing(tstore: acid.Store, clock: Clock) -> None:
    coll = tstore.add_collection("c")
    poisoned = {"armed": False}

    def tag(r: dict) -> Any:
        if poisoned["armed"] and r["i"] == 7:
            raise RuntimeError("index function fails on record 7")
        return r["i"] % 3

    idx = coll.add_index("tag", tag)
    with tstore.begin(write=True):
        for i in range(20):
            coll.put({"i": i}, key=i, ttl=5)
    clock.now += 5
    poisoned["armed"] = True
    with pytest.raises(RuntimeError):
        coll.expire(batch=4)  # the batch holding record 7 rolls back whole
    with tstore.begin():
        skip = len(coll.key_prefix)
        left = [acid.keylib.unpack(k[skip:])[0] for k, _ in tstore.iter_space(coll.id)]
    assert left == list(range(4, 20))  # the first batch (0-3) committed
    assert list(coll.keys()) == [] and idx.count() == 0  # still invisible
    poisoned["armed"] = False
    assert tstore.check().ok
    assert coll.expire() == len(left)
    assert tstore.check().ok


AGED = """
import sys, acid
store = acid.open(sys.argv[1])
coll = store.add_collection("c", ttl=5)
coll.put({"who": "child"}, key=1)
coll.put({"who": "child"}, key=2, ttl=acid.FOREVER)
"""


def test_deadlines_cross_processes(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    subprocess.run([sys.executable, "-c", AGED, url], env=env, check=True)
    later = acid.open(url, clock=lambda: time.time() + 10)
    coll = later.add_collection("c")  # the stored default and deadlines apply
    assert coll.expiry is not None and coll.expiry.default == 5
    assert coll.get(1) is None and coll.get(2) == {"who": "child"}
    assert later.expire() == 1
    assert later.check().ok
    later.close()
