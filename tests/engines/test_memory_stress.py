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


def tree_nodes(node: list[object]) -> set[int]:
    """The ids of every node of a tree."""
    found = {id(node)}
    for kid in node[2] or ():  # type: ignore[attr-defined]
        found |= tree_nodes(kid)
    return found


def live_nodes() -> set[int]:
    """The ids of every tree node alive (``[keys, vals, kids, owner]``)."""
    gc.collect()
    return {
        id(o)
        for o in gc.get_objects()
        if type(o) is list and len(o) == 4 and type(o[3]) is object
    }


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
    pinned = weakref.ref(engine._current)
    expected = digest(reader.iter(b""))
    probes = {b"%08d" % i: b"%0100d" % i for i in range(0, N, 997)}

    commit_many(engine, rng, b"a")
    assert digest(reader.iter(b"")) == expected  # the snapshot is exact
    assert all(reader.get(k) == v for k, v in probes.items())
    assert reader.get(b"%08d" % (N + 5)) is None
    pinned_rss = rss()
    # The pinned version and the current one share what did not change; at
    # worst both are whole, plus the new values.
    assert pinned_rss - loaded < 3 * data, (pinned_rss - loaded, data)

    current = tree_nodes(engine._current.root)
    assert len(live_nodes() - current) > len(current) // 2  # the pinned version
    reader.abort()
    del reader
    assert pinned() is None  # the old version is freed
    assert live_nodes() <= tree_nodes(engine._current.root)

    commit_many(engine, rng, b"b")  # without a reader: in place, memory reused
    assert rss() - pinned_rss < data, (rss() - pinned_rss, data)
    assert live_nodes() <= tree_nodes(engine._current.root)
    with engine.begin() as txn:
        values = [v for _, v in txn.iter(b"")]
    assert len(values) > N // 2 and any(v.startswith(b"b") for v in values)
