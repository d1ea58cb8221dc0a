"""Random schema changes and writes through two Stores over one key space,
in blocks that commit or abort, against a model of what was committed.

Stale objects may refuse (SchemaError, ConstraintError, NotFound...), but
nothing they do may land in the wrong collection, and a fresh Store that
declares every index always finds the records of the model and a clean
check().
"""

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
from acid.errors import Error

NAMES = st.sampled_from(["a", "b", "c"])
INDEXES = st.sampled_from(["i", "j"])


def value_of(rec: Any) -> Any:
    return rec["v"]


def run(open_store: Any, examples: int) -> None:
    runs = iter(range(10**6))

    class Machine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            # Persistent engines keep their files between examples: each
            # example gets a key space of its own.
            self.prefix = f"run{next(runs)}/"
            first = open_store(prefix=self.prefix)
            self.stores = [first, acid.Store(first.engine, prefix=self.prefix)]
            self.objects: list[acid.Collection] = []
            # name -> {"records": {key: rec}, "indexes": set of names}
            self.model: dict[str, dict[str, Any]] = {}
            self.pending: dict[str, dict[str, Any]] | None = None

        def state(self) -> dict[str, dict[str, Any]]:
            return self.model if self.pending is None else self.pending

        def attempt(self, fn: Any) -> bool:
            try:
                fn()
            except Error:
                return False
            return True

        def block(self, ops: list[Any], commit: bool) -> None:
            store = self.stores[0]
            self.pending = {
                n: {"records": dict(c["records"]), "indexes": set(c["indexes"])}
                for n, c in self.model.items()
            }
            with store.begin(write=True):
                for op in ops:
                    op()
                if not commit:
                    acid.abort()
            if commit:
                self.model = self.pending
            self.pending = None

        def op_open(self, which: int, name: str) -> None:
            state = self.state()
            if name in state:
                try:
                    coll = self.stores[which].add_collection(name)
                except Error:
                    return
            else:
                coll = self.stores[which].add_collection(name)
                state[name] = {"records": {}, "indexes": set()}
            for iname in sorted(state[name]["indexes"]):
                coll.add_index(iname, value_of)
            self.objects.append(coll)

        def op_add_index(self, pick: int, iname: str) -> None:
            if not self.objects:
                return
            coll = self.objects[pick % len(self.objects)]
            if self.attempt(lambda: coll.add_index(iname, value_of)):
                self.state()[coll.name]["indexes"].add(iname)

        def op_drop_index(self, pick: int, iname: str) -> None:
            if not self.objects:
                return
            coll = self.objects[pick % len(self.objects)]
            if self.attempt(lambda: coll.drop_index(iname)):
                self.state()[coll.name]["indexes"].discard(iname)

        def op_put(self, pick: int, key: int, v: int) -> None:
            if not self.objects:
                return
            coll = self.objects[pick % len(self.objects)]
            if self.attempt(lambda: coll.put({"v": v}, key=key)):
                self.state()[coll.name]["records"][(key,)] = {"v": v}

        def op_rename(self, which: int, old: str, new: str) -> None:
            state = self.state()
            ok = self.attempt(lambda: self.stores[which].rename_collection(old, new))
            assert ok == (old in state and new not in state)
            if ok:
                state[new] = state.pop(old)

        def op_drop(self, which: int, name: str) -> None:
            state = self.state()
            ok = self.attempt(lambda: self.stores[which].drop_collection(name))
            assert ok == (name in state)
            if ok:
                del state[name]

        ops = st.one_of(
            st.tuples(st.just("open"), st.integers(0, 1), NAMES),
            st.tuples(st.just("add_index"), st.integers(0, 9), INDEXES),
            st.tuples(st.just("drop_index"), st.integers(0, 9), INDEXES),
            st.tuples(
                st.just("put"), st.integers(0, 9), st.integers(0, 3), st.integers(0, 2)
            ),
            st.tuples(st.just("rename"), st.integers(0, 1), NAMES, NAMES),
            st.tuples(st.just("drop"), st.integers(0, 1), NAMES),
        )

        def do(self, op: tuple) -> None:
            getattr(self, f"op_{op[0]}")(*op[1:])

        @rule(op=ops)
        def alone(self, op: tuple) -> None:
            self.do(op)

        @rule(batch=st.lists(ops, max_size=4), commit=st.booleans())
        def in_block(self, batch: list[tuple], commit: bool) -> None:
            self.block([lambda op=op: self.do(op) for op in batch], commit)

        @invariant()
        def stored_state_matches_the_model(self) -> None:
            fresh = acid.Store(self.stores[0].engine, prefix=self.prefix)
            assert sorted(fresh.collections()) == sorted(self.model)
            for name, want in self.model.items():
                coll = fresh.add_collection(name)
                for iname in sorted(want["indexes"]):
                    coll.add_index(iname, value_of)
                assert dict(coll.items()) == want["records"]
                assert set(coll.indices) == want["indexes"]
            report = fresh.check()
            assert report.ok and not report.unchecked, report
            for coll in self.objects:  # live objects never point elsewhere
                if coll.attached:
                    assert coll.name in self.model
                    assert fresh[coll.name].id == coll.id

        def teardown(self) -> None:
            self.stores[0].close()

    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


def test_schema_machine(open_store: Any) -> None:
    run(open_store, examples=60)


@pytest.mark.stress
def test_schema_machine_long(open_store: Any) -> None:
    run(open_store, examples=500)


def test_schema_machine_optimistic_writers(open_optimistic_store: Any) -> None:
    """The same machine on the memory engine with ``writers=optimistic``."""
    run(open_optimistic_store, examples=60)
