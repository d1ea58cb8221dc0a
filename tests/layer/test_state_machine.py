"""Random puts, updates, deletes and queries against a plain-dict model,
on every engine, each run ending with the index consistency check."""

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


def age_index(r: dict[str, Any]) -> Any:
    return r["age"]


def tag_index(r: dict[str, Any]) -> Any:
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

        def expected(self, name: str) -> list[tuple[tuple, tuple]]:
            func = {"age": age_index, "tags": tag_index, "both": both_index}[name]
            out = set()
            for k, r in self.model.items():
                for t in acid.index.index_tuples(func(r)):
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
