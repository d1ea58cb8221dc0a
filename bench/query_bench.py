"""Planned queries against their references, at several collection sizes.

Workload: N records ``{"id", "serial", "name", "city", "age", "tags"}`` in
msgpack (``city`` one of 500 names, ``age`` 18..90, ``serial`` unique).
acid runs on LMDB with indexes ``serial`` and ``(city, age)``.

Measured in CPU time, median of ``--repeat`` rotated repetitions, each
query run ``--loops`` times:

- ``selective``: ``serial`` in ``[x, x + 50)`` through its index (50
  records whatever N): its time should barely change from 1e5 to 1e6;
- ``compound``: ``city == X and 30 <= age < 40`` through the ``(city, age)``
  index, against sqlite3 on the same msgpack blobs with columns ``city``
  and ``age``, without a matching index (``sqlite_scan``) and with one on
  ``(city, age)`` (``sqlite_idx``); both return decoded records;
- ``fullscan``: ``name`` ending in ``"77"`` (no index), against a
  hand-written py-lmdb scan of the same values with a Python filter;
- ``len``: ``len(coll)`` against the same at the other size.

Run: python bench/query_bench.py [--n 100000 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import acid

CITIES = [f"city{i:03d}" for i in range(500)]
TAGS = ["red", "green", "blue", "admin", "staff", "new", "vip"]


def make_records(n: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    serials = list(range(n))
    rng.shuffle(serials)
    return [
        {
            "id": i,
            "serial": serials[i],
            "name": f"user{i}",
            "city": rng.choice(CITIES),
            "age": rng.randint(18, 90),
            "tags": rng.sample(TAGS, 2),
        }
        for i in range(n)
    ]


def cpu(fn: Callable[[], Any], loops: int) -> float:
    start = time.process_time()
    for _ in range(loops):
        fn()
    return (time.process_time() - start) / loops


def load_acid(path: str, records: list[dict]) -> tuple[acid.Store, acid.Collection]:
    store = acid.open(f"lmdb:{path}/acid?map_size=8GiB")
    coll = store.add_collection(
        "people", key_func=lambda r: r["id"], encoder=acid.encoders.MSGPACK
    )
    coll.add_index("serial", acid.field("serial"))
    coll.add_index("city_age", acid.fields("city", "age"))
    for i in range(0, len(records), 10000):
        with store.begin(write=True):
            for rec in records[i : i + 10000]:
                coll.put(rec)
    return store, coll


def load_sqlite(path: str, records: list[dict], index: bool) -> sqlite3.Connection:
    db = sqlite3.connect(f"{path}/sqlite{int(index)}.db")
    db.execute(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, city TEXT, age INT, data BLOB)"
    )
    if index:
        db.execute("CREATE INDEX city_age ON people (city, age)")
    db.executemany(
        "INSERT INTO people VALUES (?, ?, ?, ?)",
        ((r["id"], r["city"], r["age"], msgpack.packb(r)) for r in records),
    )
    db.commit()
    return db


def load_raw(path: str, records: list[dict]) -> lmdb.Environment:
    env = lmdb.open(f"{path}/raw", map_size=1 << 33)
    with env.begin(write=True) as txn:
        for r in records:
            txn.put(r["id"].to_bytes(8, "big"), msgpack.packb(r))
    return env


def bench_size(n: int, repeat: int, loops: int) -> dict[str, float]:
    records = make_records(n)
    tmp = tempfile.mkdtemp(prefix="acid-qbench-")
    try:
        store, coll = load_acid(tmp, records)
        sq_scan = load_sqlite(tmp, records, False)
        sq_idx = load_sqlite(tmp, records, True)
        raw = load_raw(tmp, records)
        city = CITIES[17]
        compound = coll.query({"city": city, "age": {"$gte": 30, "$lt": 40}})
        selective = coll.query({"serial": {"$gte": n // 2, "$lt": n // 2 + 50}})
        fullscan = coll.query({"name": {"$endswith": "77"}})
        sql = "SELECT data FROM people WHERE city = ? AND age >= 30 AND age < 40"
        unpackb = msgpack.unpackb

        def sqlite(db: sqlite3.Connection) -> Callable[[], list]:
            return lambda: [unpackb(d) for (d,) in db.execute(sql, (city,))]

        def raw_scan() -> list:
            out = []
            with raw.begin() as txn:
                for _, v in txn.cursor():
                    rec = unpackb(v)
                    if rec["name"].endswith("77"):
                        out.append(rec)
            return out

        want = sorted(
            r["id"] for r in records if r["city"] == city and 30 <= r["age"] < 40
        )
        assert sorted(r["id"] for r in compound) == want
        assert sorted(r["id"] for r in sqlite(sq_scan)()) == want
        assert len(list(selective)) == 50
        assert len(list(fullscan)) == len(raw_scan())
        assert len(coll) == n
        scan_loops = max(1, loops // 50)
        cases: dict[str, tuple[Callable[[], Any], int]] = {
            "selective": (lambda: list(selective), loops),
            "compound": (lambda: list(compound), loops),
            "sqlite_scan": (sqlite(sq_scan), scan_loops),
            "sqlite_idx": (sqlite(sq_idx), loops),
            "fullscan": (lambda: list(fullscan), scan_loops),
            "raw_scan": (raw_scan, scan_loops),
            "len": (lambda: len(coll), loops * 10),
        }
        names = list(cases)
        times: dict[str, list[float]] = {k: [] for k in names}
        for rep in range(repeat):
            for name in names[rep % len(names) :] + names[: rep % len(names)]:
                fn, lp = cases[name]
                times[name].append(cpu(fn, lp))
        store.close()
        sq_scan.close()
        sq_idx.close()
        raw.close()
        return {k: statistics.median(v) for k, v in times.items()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--loops", type=int, default=200)
    args = parser.parse_args()
    results = {}
    for n in args.n:
        r = bench_size(n, args.repeat, args.loops)
        results[n] = r
        print(f"\nN = {n:,} (CPU time, median of {args.repeat})")
        for name, t in r.items():
            print(f"  {name:12s} {t * 1e6:12.1f} us")
        print(
            f"  compound: sqlite_scan/acid = {r['sqlite_scan'] / r['compound']:.1f}x "
            f"(goal >= 10), acid/sqlite_idx = {r['compound'] / r['sqlite_idx']:.2f}x "
            f"(goal <= 1.5)"
        )
        print(
            f"  fullscan: acid/raw = {r['fullscan'] / r['raw_scan']:.2f}x (goal <= 1.3)"
        )
    if len(results) > 1:
        small, big = min(results), max(results)
        for name in ("selective", "len"):
            ratio = results[big][name] / results[small][name]
            print(f"{name}: time at {big:,} / time at {small:,} = {ratio:.2f}x")


if __name__ == "__main__":
    main()
