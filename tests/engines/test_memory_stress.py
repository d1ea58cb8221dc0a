"""A reader pinned while 1e5 small transactions commit on the memory engine:
its snapshot stays exact, memory stays bounded, and the old versions are
freed once it goes (run with ``pytest -m stress``)."""

from __future__ import annotations

import gc
import hashlib
import os
import random
import weakref

import pytest

from acid.engines import _btree
from acid.engines.memory import MemoryEngine

N = 100_000
COMMITS = 100_000


def rss() -> int:
    """The resident set size now, in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def digest(pairs: object) -> str:
    h = hashlib.sha256()
    for k, v in pairs:  # type: ignore[attr-defined]
        h.update(k)
        h.update(v)
    return h.hexdigest()


def tree_nodes(node: _btree.Node) -> set[int]:
    """The ids of every node of a tree."""
    found = {id(node)}
    for kid in node.kids or ():
        found |= tree_nodes(kid)
    return found


def all_nodes(node: _btree.Node) -> list[weakref.ref[_btree.Node]]:
    refs = [weakref.ref(node)]
    for kid in node.kids or ():
        refs += all_nodes(kid)
    return refs


def leftover(refs: list[weakref.ref[_btree.Node]], current: _btree.Node) -> int:
    """How many of ``refs`` are alive but not part of ``current``."""
    gc.collect()
    keep = tree_nodes(current)
    return sum(1 for ref in refs if ref() is not None and id(ref()) not in keep)


def commit_many(engine: MemoryEngine, rng: random.Random, tag: bytes) -> None:
    for i in range(COMMITS):
        with engine.begin(write=True) as txn:
            if i % 10 == 9:
                txn.delete(b"%08d" % rng.randrange(N))
            else:
                txn.put(b"%08d" % rng.randrange(N + N // 10), tag + b"%090d" % i)


@pytest.mark.stress
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux")
def test_a_pinned_reader_while_1e5_transactions_commit() -> None:
    rng = random.Random(8)
    before = rss()
    engine = MemoryEngine()
    with engine.begin(write=True) as txn:
        for i in range(N):
            txn.put(b"%08d" % i, b"%0100d" % i)
    loaded = rss()
    data = loaded - before
    reader = engine.begin()
    pinned_nodes = all_nodes(engine._root)
    expected = digest(reader.iter(b""))
    probes = {b"%08d" % i: b"%0100d" % i for i in range(0, N, 997)}

    commit_many(engine, rng, b"a")
    assert digest(reader.iter(b"")) == expected  # the snapshot is exact
    assert all(reader.get(k) == v for k, v in probes.items())
    assert reader.get(b"%08d" % (N + 5)) is None
    pinned = rss()
    # The pinned version and the current one share what did not change; at
    # worst both are whole, plus the new values.
    assert pinned - loaded < 3 * data, (pinned - loaded, data)

    assert leftover(pinned_nodes, engine._root) > len(pinned_nodes) // 2
    reader.abort()
    del reader
    assert leftover(pinned_nodes, engine._root) == 0  # the old version is freed
    middle = all_nodes(engine._root)

    commit_many(engine, rng, b"b")  # without a reader: freed versions reused
    assert rss() - pinned < data, (rss() - pinned, data)
    assert leftover(middle, engine._root) == 0
    with engine.begin() as txn:
        values = [v for _, v in txn.iter(b"")]
    assert len(values) > N // 2 and any(v.startswith(b"b") for v in values)
