"""LMDB files stay close to a hand-written layout of the same data.

The floor stores each record under an 8-byte big-endian id and each index
entry as a 10-byte key with an empty value, in one LMDB B-tree (what
``bench/layer_bench.py`` calls ``raw``). Page counts are deterministic, so
these are size assertions, not timings: the target is at most 1.25x the
floor's pages.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path
from typing import Any

import lmdb
import msgpack
import pytest

import acid

TARGET = 1.25
TAGS = ["red", "green", "blue", "admin", "staff"]


def records(n: int, seed: int = 42) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "id": i,
            "name": f"user{i}",
            "email": f"user{i}@example.com",
            "age": rng.randint(18, 90),
            "tags": rng.sample(TAGS, 2),
        }
        for i in range(n)
    ]


def pages(path: Path) -> tuple[int, int]:
    """(pages in use, entries) of the main database at ``path``."""
    env = lmdb.open(str(path), readonly=True, lock=False)
    try:
        st = env.stat()
    finally:
        env.close()
    used = st["leaf_pages"] + st["branch_pages"] + st["overflow_pages"]
    return used, st["entries"]


def interleave(groups: list[list[dict]]) -> list[tuple[int, dict]]:
    """``(group, record)``: the groups' records taken in turn."""
    longest = max(map(len, groups))
    return [
        (g, recs[i])
        for i in range(longest)
        for g, recs in enumerate(groups)
        if i < len(recs)
    ]


def floor(path: Path, groups: list[list[dict]], batch: int) -> int:
    """Hand-written layout of ``groups`` (one key space each); its pages."""
    env = lmdb.open(str(path), map_size=1 << 30, sync=False)
    q, iq = struct.Struct(">BQ").pack, struct.Struct(">BBQ").pack
    rows = interleave(groups)
    for start in range(0, len(rows), batch):
        with env.begin(write=True) as txn:
            for g, r in rows[start : start + batch]:
                txn.put(q(2 * g, r["id"]), msgpack.packb(r))
                txn.put(iq(2 * g + 1, r["age"], r["id"]), b"")
    env.close()
    return pages(path)[0]


def load_acid(path: Path, groups: list[list[dict]], batch: int) -> int:
    store = acid.open(f"lmdb:{path}?map_size=1GiB&sync=false")
    colls = []
    for g in range(len(groups)):
        coll = store.add_collection(
            f"c{g}", key_func=lambda r: r["id"], encoder="msgpack"
        )
        coll.add_index("age", lambda r: r["age"])
        colls.append(coll)
    rows = [(colls[g], r) for g, r in interleave(groups)]
    for start in range(0, len(rows), batch):
        with store.begin(write=True):
            for coll, r in rows[start : start + batch]:
                coll.put(r)
    assert store.check().ok
    store.close()
    used, entries = pages(path)
    assert entries >= 2 * len(rows)
    return used


@pytest.mark.parametrize(
    ("groups", "batch"),
    [(1, 12_000), (1, 500), (3, 12_000), (3, 7)],
    ids=["one-txn", "500-per-txn", "3-collections", "3-collections-7-per-txn"],
)
def test_lmdb_pages_stay_near_the_floor(
    tmp_path: Path, groups: int, batch: int
) -> None:
    data = [records(12_000 // groups, seed=g) for g in range(groups)]
    mine = load_acid(tmp_path / "acid", data, batch)
    base = floor(tmp_path / "floor", data, batch)
    assert mine <= TARGET * base, (mine, base)


def test_shuffled_inserts_stay_near_the_floor(tmp_path: Path) -> None:
    data = records(12_000)
    random.Random(3).shuffle(data)
    mine = load_acid(tmp_path / "acid", [data], 1000)
    base = floor(tmp_path / "floor", [data], 1000)
    assert mine <= TARGET * base, (mine, base)


def space_sizes(path: Path) -> dict[int, int]:
    """Keys per first element (key space) in the environment at ``path``."""
    env = lmdb.open(str(path), readonly=True, lock=False)
    sizes: dict[int, int] = {}
    try:
        with env.begin() as txn:
            for k in txn.cursor().iternext(values=False):
                space = acid.keylib.unpacks(k)[0][0]
                sizes[space] = sizes.get(space, 0) + 1
    finally:
        env.close()
    return sizes


def test_many_collections_and_indexes_need_no_sub_databases(tmp_path: Path) -> None:
    # Every key space lives in LMDB's main database: max_dbs=0 (the default)
    # serves any number of collections and indexes, and dropping one (or
    # rolling the drop back) leaves exactly the keys it should.
    url = f"lmdb:{tmp_path}/db?map_size=1GiB&sync=false"
    store = acid.open(url)
    ids: dict[str, int] = {}
    for i in range(150):
        coll = store.add_collection(f"c{i}")
        ids[f"c{i}"] = coll.id
        ids[f"c{i}.x"] = coll.add_index("x", lambda r: r["x"]).id
        ids[f"c{i}.y"] = coll.add_index("y", lambda r: -r["x"]).id
        coll.put({"x": i})
        coll.put({"x": i + 1000})
    store.drop_collection("c7")
    with pytest.raises(RuntimeError):
        with store.begin(write=True):
            store.drop_collection("c8")
            store["c9"].drop_index("y")
            raise RuntimeError("abort the drops")
    store["c10"].drop_index("x")
    assert store.check().ok
    store.close()
    again = acid.open(url)
    assert len(again.collections()) == 149 and "c7" not in again.collections()
    c8 = again.add_collection("c8")
    x = c8.add_index("x", lambda r: r["x"])
    assert [r["x"] for r in x.values()] == [8, 1008]
    c9 = again.add_collection("c9")
    c9.add_index("x", lambda r: r["x"])
    y = c9.add_index("y", lambda r: -r["x"])
    assert [r["x"] for r in y.values()] == [1009, 9]
    again.close()
    sizes = space_sizes(tmp_path / "db")
    gone = {ids["c7"], ids["c7.x"], ids["c7.y"], ids["c10.x"]}
    for name, space in ids.items():
        assert sizes.get(space, 0) == (0 if space in gone else 2), name
