"""Random puts, updates, deletes and queries against a plain-dict model,
on every engine, each run ending with the index consistency check.

Besides plain writes the machine aborts schema changes (collections, indexes,
renames, compressors made in a block that rolls back) and, inside batches
that commit, puts records whose index function raises or whose index entry
is longer than LMDB's key limit: a failed put must change nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import acid

KEYS = st.integers(min_value=-5, max_value=30)
TAGS = st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=3)
RECORDS = st.fixed_dictionaries(
    {
        "age": st.one_of(st.integers(0, 6), st.floats(0, 6, allow_nan=False)),
        "tags": TAGS,
        "name": st.text("xyz", max_size=3),
    }
)
#: Records that make a put fail half-way: the tag index raises on "boom"; a
#: 600-character name makes a "both" entry longer than LMDB's 511-byte keys.
BAD_RECORDS = st.fixed_dictionaries(
    {
        "age": st.integers(0, 6),
        "tags": st.lists(st.sampled_from(["a", "boom"]), min_size=1, max_size=2),
        "name": st.sampled_from(["x", "y" * 600]),
    }
)


def index_tuples(result: Any) -> list[tuple]:
    """The model of what an index function's result means."""
    if result is None:
        return []
    if isinstance(result, tuple):
        return [result]
    if isinstance(result, list):
        return [x if isinstance(x, tuple) else (x,) for x in result]
    return [(result,)]


def age_index(r: dict[str, Any]) -> Any:
    return r["age"]


def tag_index(r: dict[str, Any]) -> Any:
    if "boom" in r["tags"]:
        raise ValueError("boom")
    return r["tags"]


def both_index(r: dict[str, Any]) -> Any:
    return [(t, r["name"]) for t in r["tags"]] or None


def sort_key(t: tuple) -> bytes:
    return acid.keylib.pack(t)


def run_machine(open_store: Any, examples: int = 30) -> None:
    class Machine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.store = open_store()
            n = len(self.store.collections())
            self.coll = self.store.add_collection(f"c{n}")
            self.idx = {
                "age": self.coll.add_index("age", age_index),
                "tags": self.coll.add_index("tags", tag_index),
                "both": self.coll.add_index("both", both_index),
            }
            self.model: dict[tuple, dict] = {}
            self.name = self.coll.name
            self.n = 0
            self.ids = {self.coll.id, *(i.id for i in self.idx.values())}

        def expected(self, name: str) -> list[tuple[tuple, tuple]]:
            func = {"age": age_index, "tags": tag_index, "both": both_index}[name]
            out = set()
            for k, r in self.model.items():
                for t in index_tuples(func(r)):
                    out.add((sort_key(t), t, k))
            return [
                (t, k) for _, t, k in sorted(out, key=lambda e: (e[0], sort_key(e[2])))
            ]

        @rule(key=KEYS, rec=RECORDS)
        def put(self, key: int, rec: dict) -> None:
            self.coll.put(rec, key=key)
            self.model[(key,)] = rec

        @rule(key=KEYS)
        def delete(self, key: int) -> None:
            assert self.coll.delete(key) == ((key,) in self.model)
            self.model.pop((key,), None)

        @rule(puts=st.lists(st.tuples(KEYS, RECORDS), max_size=4), commit=st.booleans())
        def batch(self, puts: list, commit: bool) -> None:
            with self.store.begin(write=True):
                for key, rec in puts:
                    self.coll.put(rec, key=key)
                if not commit:
                    acid.abort()
            if commit:
                self.model.update({(k,): r for k, r in puts})

        @rule(
            puts=st.lists(st.tuples(KEYS, st.one_of(RECORDS, BAD_RECORDS)), max_size=4)
        )
        def batch_with_failures(self, puts: list) -> None:
            landed = {}
            with self.store.begin(write=True):
                for key, rec in puts:
                    try:
                        self.coll.put(rec, key=key)
                    except (ValueError, acid.errors.EngineError):
                        continue  # the put changed nothing; the batch goes on
                    landed[(key,)] = rec
            self.model.update(landed)

        @rule(what=st.sampled_from(["collection", "index", "rename", "compressor"]))
        def schema_change_aborted(self, what: str) -> None:
            self.n += 1
            name = f"tmp{self.n}"
            made: list[Any] = []
            with self.store.begin(write=True):
                if what == "collection":
                    made.append(self.store.add_collection(name))
                    made[0].put({"age": 1, "tags": [], "name": "lost"}, key=1)
                elif what == "index":
                    made.append(self.coll.add_index(name, age_index))
                elif what == "rename":
                    self.store.rename_collection(self.coll.name, name)
                    assert self.coll.name == name
                else:
                    comp = acid.encoders.Compressor(name, bytes, bytes)
                    made.append(self.store.add_collection(name, compressor=comp))
                acid.abort()
            assert self.coll.name == self.name  # a rename rolls back
            assert set(self.coll.indices) == set(self.idx)
            for obj in made:
                with pytest.raises(acid.errors.SchemaError):
                    list(
                        obj.keys() if isinstance(obj, acid.Collection) else obj.pairs()
                    )
            # A later collection never takes an id that was rolled back.
            fresh = self.store.add_collection(f"fresh{self.n}")
            assert fresh.id not in self.ids
            self.ids.add(fresh.id)
            for obj in made:
                assert obj.id != fresh.id
            assert list(fresh.items()) == []

        @rule(lo=KEYS, hi=KEYS, reverse=st.booleans())
        def scan(self, lo: int, hi: int, reverse: bool) -> None:
            want = sorted(k for k in self.model if lo <= k[0] < hi)
            got = list(self.coll.keys(lo=lo, hi=hi, reverse=reverse))
            assert got == (want[::-1] if reverse else want)

        @precondition(lambda self: self.model)
        @rule(age=st.integers(0, 6))
        def query(self, age: int) -> None:
            got = list(self.idx["age"].keys(lo=age, hi=age + 2))
            want = sorted(
                (
                    k
                    for k, r in self.model.items()
                    if sort_key((age,)) <= sort_key((r["age"],)) < sort_key((age + 2,))
                ),
                key=lambda k: (sort_key((self.model[k]["age"],)), sort_key(k)),
            )
            assert got == want

        @invariant()
        def indexes_match_model(self) -> None:
            for name, idx in self.idx.items():
                assert list(idx.pairs()) == self.expected(name)

        def teardown(self) -> None:
            assert self.store.check().ok
            self.store.close()

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


def test_state_machine(open_store: Any) -> None:
    run_machine(open_store)


@pytest.mark.stress
def test_state_machine_long(open_store: Any) -> None:
    run_machine(open_store, examples=300)


def test_state_machine_optimistic_writers(open_optimistic_store: Any) -> None:
    """The same machine on the memory engine with ``writers=optimistic``."""
    run_machine(open_optimistic_store)
