"""The persistent B+tree under the memory engine: every version is a model
dict's state, old versions never change, and the tree keeps its shape."""

from __future__ import annotations

import sys
from bisect import bisect_right

from hypothesis import given, settings
from hypothesis import strategies as st

from acid.engines import _btree
from acid.engines._btree import DELETED, EMPTY, Node, build, lookup, scan

OWNER = object()


def apply(root: Node, keys: list[bytes], vals: list[bytes]) -> Node:
    """A commit that copies (as when a reader pins every version)."""
    return _btree.apply(root, keys, vals, object())


keys = st.binary(min_size=1, max_size=3)
change = st.tuples(keys, st.one_of(st.just(None), st.binary(max_size=3)))
batch = st.lists(change, max_size=700)


def check_shape(root: Node) -> int:
    """Assert the invariants; return the number of keys."""
    depths: set[int] = set()

    def walk(node: Node, low: bytes | None, high: bytes | None, depth: int) -> int:
        keys, vals, kids, _ = node
        assert list(keys) == sorted(set(keys))
        if keys:
            assert low is None or keys[0] >= low
            assert high is None or keys[-1] < high
        if kids is None:
            depths.add(depth)
            assert vals is not None and len(vals) == len(keys)
            assert len(keys) <= _btree.LEAF_MAX
            return len(keys)
        assert vals is None and len(kids) == len(keys) + 1
        assert len(kids) <= _btree.BRANCH_MAX
        bounds = [low, *keys, high]
        return sum(
            walk(kid, bounds[i], bounds[i + 1], depth + 1) for i, kid in enumerate(kids)
        )

    total = walk(root, None, None, 0)
    assert len(depths) <= 1, depths  # every leaf at the same depth
    return total


def commit(
    root: Node, changes: list[tuple[bytes, bytes | None]], owner: object
) -> Node:
    last = {k: (DELETED if v is None else v) for k, v in changes}
    ordered = sorted(last)
    return _btree.apply(root, ordered, [last[k] for k in ordered], owner)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(batch, st.booleans()), min_size=1, max_size=8),
    st.binary(max_size=3),
)
def test_versions_match_a_model_and_never_change(
    batches: list[tuple[list[tuple[bytes, bytes | None]], bool]], probe: bytes
) -> None:
    model: dict[bytes, bytes] = {}
    versions: list[tuple[Node, list[tuple[bytes, bytes]]]] = []
    root = EMPTY
    owner = object()
    for changes, pin in batches:
        if pin:  # a reader keeps this version: later commits must copy
            versions.append((root, sorted(model.items())))
            owner = object()
        root = commit(root, changes, owner)
        for k, v in changes:
            if v is None:
                model.pop(k, None)
            else:
                model[k] = v
        expected = sorted(model.items())
        assert check_shape(root) == len(model)
        assert list(scan(root, b"")) == expected
        assert list(scan(root, probe)) == [kv for kv in expected if kv[0] >= probe]
        assert list(scan(root, probe, reverse=True)) == [
            kv for kv in reversed(expected) if kv[0] <= probe
        ]
        assert list(scan(root, probe, inclusive=False)) == [
            kv for kv in expected if kv[0] > probe
        ]
        assert list(scan(root, probe, True, False)) == [
            kv for kv in reversed(expected) if kv[0] < probe
        ]
        assert lookup(root, probe) == model.get(probe)
        for k, _ in changes:
            assert lookup(root, k) == model.get(k)
    for old, expected in versions:  # every pinned version is intact
        assert list(scan(old, b"")) == expected


def test_a_commit_by_the_owner_changes_nodes_in_place() -> None:
    owner = object()
    ks = [b"%06d" % i for i in range(10_000)]
    root = _btree.apply(EMPTY, ks, ks, owner)
    leaves = list(_btree._leaves(root))
    same = _btree.apply(root, [b"000100", b"000100x"], [b"new", b"x"], owner)
    assert same is root and list(_btree._leaves(root)) == leaves  # no copy
    assert lookup(root, b"000100") == b"new" and check_shape(root) == 10_001


def test_bulk_sequential_and_random_loads_keep_the_shape() -> None:
    root = EMPTY
    for start in range(0, 60_000, 10_000):  # appends, as a sequential load
        ks = [b"%08d" % i for i in range(start, start + 10_000)]
        root = apply(root, ks, ks)
    assert check_shape(root) == 60_000
    evens = [b"%08d" % i for i in range(0, 60_000, 2)]
    root = apply(root, evens, [DELETED] * len(evens))  # half of every leaf
    assert check_shape(root) == 30_000
    root = apply(root, evens[:-1000], [DELETED] * (len(evens) - 1000))
    assert check_shape(root) == 30_000  # deleting absent keys changes nothing
    odds = [b"%08d" % i for i in range(1, 60_000, 2)]
    root = apply(root, odds[5:], [DELETED] * (len(odds) - 5))
    assert check_shape(root) == 5 and list(scan(root, b""))[0][0] == b"00000001"
    root = apply(root, odds[:5], [DELETED] * 5)
    assert root is EMPTY or check_shape(root) == 0


def test_build_equals_apply() -> None:
    ks = [b"%06d" % i for i in range(5000)]
    built = build(ks, ks, OWNER)
    assert check_shape(built) == 5000
    assert list(scan(built, b"")) == list(scan(apply(EMPTY, ks, ks), b""))
    assert _btree.items(built) == (ks, ks)


def test_a_commit_shares_untouched_nodes_and_frees_the_old_path() -> None:
    ks = [b"%06d" % i for i in range(100_000)]
    old = build(ks, ks, OWNER)
    new = apply(old, [b"000500"], [b"x"])
    assert old[2] is not None and new[2] is not None
    shared = sum(a is b for a, b in zip(old[2], new[2], strict=True))
    assert shared == len(old[2]) - 1  # only the path to the key was copied
    path = old
    while path[2] is not None:  # the old leaf of the key, copied by the commit
        path = path[2][bisect_right(path[0], b"000500")]
    del old
    assert sys.getrefcount(path) == 2  # ``path`` and the argument: freed with it
    assert lookup(new, b"000500") == b"x" and lookup(new, b"000501") == b"000501"
