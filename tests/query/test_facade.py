"""The dict-style Collection: sophy's documented behaviour, key for key, and
an exact record count through aborts, failures and old stores."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

import acid
from acid import keylib
from acid.errors import NotFound


@pytest.fixture
def db(store: acid.Store) -> acid.Collection:
    coll = store.add_collection("db", key_func=lambda r: r["k"])
    coll.update({f"k{i}": {"k": f"k{i}", "v": f"v{i}"} for i in range(1, 5)})
    return coll


def pairs(items: Any) -> list[tuple[str, str]]:
    return [(k, rec["v"]) for (k,), rec in items]


def test_slices_as_sophy_documents(db: acid.Collection) -> None:
    assert pairs(db["k1":"k3"]) == [("k1", "v1"), ("k2", "v2"), ("k3", "v3")]
    assert pairs(db["k1.x":"k3.x"]) == [("k2", "v2"), ("k3", "v3")]
    assert pairs(db[:"k2"]) == [("k1", "v1"), ("k2", "v2")]
    assert pairs(db["k3":]) == [("k3", "v3"), ("k4", "v4")]
    assert pairs(db["k3":"k1"]) == [("k3", "v3"), ("k2", "v2"), ("k1", "v1")]
    assert pairs(db[:"k2":True]) == [("k2", "v2"), ("k1", "v1")]
    assert pairs(db["k3"::True]) == [("k4", "v4"), ("k3", "v3")]
    assert pairs(db[::True]) == [("k4", "v4"), ("k3", "v3"), ("k2", "v2"), ("k1", "v1")]
    assert pairs(db[("k2",) : ("k2",)]) == [("k2", "v2")]
    assert pairs(db["k5":"k9"]) == []
    with pytest.raises(TypeError, match="step"):
        db["k1":"k2":2]


def test_slice_ends_are_exact_keys(store: acid.Store) -> None:
    coll = store.add_collection("t")
    for key in [(1,), (1, "x"), (1.5,), (2,), (2, 0)]:
        coll[key] = {"key": list(key)}
    assert [k for k, _ in coll[1:2]] == [(1,), (1, "x"), (1.5,), (2,)]
    assert [k for k, _ in coll[2:1]] == [(2,), (1.5,), (1, "x"), (1,)]


def test_dict_operations(db: acid.Collection) -> None:
    assert db["k1"] == {"k": "k1", "v": "v1"}
    assert db[("k1",)] == db["k1"]
    with pytest.raises(KeyError):
        db["nope"]
    with pytest.raises(NotFound):
        del db["nope"]
    db["x"] = {"k": "ignored", "v": "explicit key"}
    assert db["x"]["v"] == "explicit key" and "x" in db and ("x",) in db
    assert len(db) == 5
    del db["x"]
    assert "x" not in db and len(db) == 4
    assert [k for k, _ in db] == [("k1",), ("k2",), ("k3",), ("k4",)]


def test_multi_calls(db: acid.Collection) -> None:
    assert [r and r["v"] for r in db.multi_get("k1", "k3", "kx")] == ["v1", "v3", None]
    got = db.multi_get_dict(["k1", ("k3",), "kx"])
    assert list(got) == ["k1", ("k3",)]  # keyed exactly as passed
    assert db.multi_delete("k1", "k3", "kx") == 2
    assert [k for k, _ in db] == [("k2",), ("k4",)]
    db.update([{"k": "a", "v": 1}, {"k": "b", "v": 2}])
    assert len(db) == 4
    with pytest.raises(TypeError):
        db.update("ab")


def test_update_is_one_transaction(store: acid.Store, db: acid.Collection) -> None:
    def bad() -> Any:
        yield {"k": "new1", "v": 1}
        raise RuntimeError("half-way")

    with pytest.raises(RuntimeError):
        db.update(bad())
    assert "new1" not in db and len(db) == 4


def test_cursor(db: acid.Collection) -> None:
    def keys(**kw: Any) -> list[str]:
        return [k for (k,) in db.cursor(values=False, **kw)]

    assert keys() == ["k1", "k2", "k3", "k4"]
    assert keys(key="k2") == ["k2", "k3", "k4"]
    assert keys(key="k2", order=">") == ["k3", "k4"]
    assert keys(key="k2", order="<=") == ["k2", "k1"]
    assert keys(key="k2", order="<") == ["k1"]
    assert keys(key="k2x", order="<=") == ["k2", "k1"]
    assert keys(order="<") == ["k4", "k3", "k2", "k1"]
    assert [r["v"] for r in db.cursor(key="k4", keys=False)] == ["v4"]
    with pytest.raises(ValueError, match="order"):
        db.cursor(order="=")
    with pytest.raises(ValueError):
        db.cursor(keys=False, values=False)


def test_cursor_prefix(store: acid.Store) -> None:
    ev = store.add_collection("events")
    for day, n in [("2017-06", 1), ("2017-07", 1), ("2017-07", 2), ("2017-08", 1)]:
        ev[(day, n)] = {"n": n}
    got = [k for k, _ in ev.cursor(prefix="2017-07")]
    assert got == [("2017-07", 1), ("2017-07", 2)]
    got = [k for k, _ in ev.cursor(key=("2017-07", 2), order="<=", prefix="2017-07")]
    assert got == [("2017-07", 2), ("2017-07", 1)]


def test_len_rolls_back_with_its_transaction(
    store: acid.Store, db: acid.Collection
) -> None:
    with store.begin(write=True):
        db["a"] = {"v": 1}
        del db["k1"]
        db["b"] = {"v": 2}
        assert len(db) == 5
        acid.abort()
    assert len(db) == 4
    with store.begin(write=True):
        db["k1"] = {"v": "replaced"}  # a replace adds nothing
        assert len(db) == 4


def test_len_exact_when_a_put_fails_half_way(store: acid.Store) -> None:
    coll = store.add_collection("flaky")
    fail = {"on": False}

    def tags(r: dict) -> Any:
        if fail["on"]:
            raise ValueError("index function failed")
        return r.get("tags", [])

    coll.add_index("tags", tags)
    with store.begin(write=True):
        coll.put({"tags": ["a"]}, key=1)
        fail["on"] = True
        with pytest.raises(ValueError):
            coll.put({"tags": ["b"]}, key=2)
        with pytest.raises(ValueError):
            coll.delete(1)
        assert len(coll) == 1
        fail["on"] = False
        coll.put({"tags": ["c"]}, key=3)
    assert len(coll) == 2
    assert store.check().ok


def _drop_count(store: acid.Store) -> None:
    """Delete the record-count counters, as a store written before they
    existed would lack them."""
    txn = store.engine.begin(write=True)
    for k, _ in list(txn.iter(b"")):
        try:
            parts = keylib.unpack(k)
        except (ValueError, TypeError):
            continue
        if any(isinstance(p, str) and p.startswith("\x00len:") for p in parts):
            txn.delete(k)
    txn.commit()


def test_len_of_a_store_without_counts(store: acid.Store, db: acid.Collection) -> None:
    _drop_count(store)
    db["k9"] = {"v": 9}  # a write before anyone asked: count still unknown
    with store.begin():
        assert len(db) == 5  # counted, not stored (read transaction)
    assert len(db) == 5  # counted and stored
    del db["k9"]
    assert len(db) == 4


class FacadeMachine(RuleBasedStateMachine):
    """Random dict operations on a Collection and on a plain dict."""

    def __init__(self, store: acid.Store, name: str) -> None:
        super().__init__()
        self.store = store
        self.coll = store.add_collection(name)
        self.model: dict[tuple, Any] = {}

    keys = st.one_of(st.integers(0, 8), st.sampled_from(["a", "b", ("a", 1)]))

    @rule(key=keys, value=st.integers())
    def setitem(self, key: Any, value: int) -> None:
        self.coll[key] = {"v": value}
        self.model[key if isinstance(key, tuple) else (key,)] = {"v": value}

    @rule(key=keys)
    def delitem(self, key: Any) -> None:
        k = key if isinstance(key, tuple) else (key,)
        if k in self.model:
            del self.coll[key]
            del self.model[k]
        else:
            with pytest.raises(KeyError):
                del self.coll[key]

    @rule(key=keys)
    def getitem(self, key: Any) -> None:
        k = key if isinstance(key, tuple) else (key,)
        if k in self.model:
            assert self.coll[key] == self.model[k]
        else:
            with pytest.raises(KeyError):
                self.coll[key]
        assert (key in self.coll) == (k in self.model)

    @rule(ks=st.lists(keys, max_size=4))
    def multi(self, ks: list[Any]) -> None:
        tk = [k if isinstance(k, tuple) else (k,) for k in ks]
        assert self.coll.multi_get(*ks) == [self.model.get(k) for k in tk]

    @rule(ks=st.lists(keys, max_size=3), abort=st.booleans())
    def multi_delete(self, ks: list[Any], abort: bool) -> None:
        with self.store.begin(write=True):
            self.coll.multi_delete(*ks)
            if abort:
                acid.abort()
        if not abort:
            for k in ks:
                self.model.pop(k if isinstance(k, tuple) else (k,), None)

    @rule(lo=keys, hi=keys, rev=st.booleans())
    def slices(self, lo: Any, hi: Any, rev: bool) -> None:
        tlo = keylib.pack(lo if isinstance(lo, tuple) else (lo,))
        thi = keylib.pack(hi if isinstance(hi, tuple) else (hi,))
        a, b = min(tlo, thi), max(tlo, thi)
        want = sorted(
            (k for k in self.model if a <= keylib.pack(k) <= b), key=keylib.pack
        )
        if tlo > thi or rev:
            want.reverse()
        got = self.coll[lo:hi:True] if rev else self.coll[lo:hi]
        assert [k for k, _ in got] == want

    @invariant()
    def same(self) -> None:
        assert len(self.coll) == len(self.model)
        assert dict(self.coll) == self.model


def test_facade_machine(store: acid.Store) -> None:
    n = iter(range(10**6))
    run_state_machine_as_test(
        lambda: FacadeMachine(store, f"m{next(n)}"),
        settings=settings(
            max_examples=20,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
        ),
    )


def test_check_reports_a_wrong_count(store: acid.Store, db: acid.Collection) -> None:
    assert store.check().ok
    txn = store.engine.begin(write=True)  # a record written behind acid's back
    txn.put(keylib.pack(("zz",), db.key_prefix), b"\x00" + b"{}")
    txn.commit()
    report = store.check()
    assert not report.ok
    assert report.miscounted == [("db", 4, 5)]
