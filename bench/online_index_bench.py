"""Online index build over N records: throughput, and foreground latency.

Run: ``python bench/online_index_bench.py [--records N] [--batch B]``

Fills an LMDB store with N records, then adds an index with
``build="online"`` while a foreground thread keeps writing (one record per
transaction). Prints the build's throughput (records per second of wall
time and of the process's CPU time) and the foreground write latency
(median, p99, max) during the build, next to the same writer's latency with
no build running (measured first, for the same number of writes).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import threading
import time
from itertools import islice
from pathlib import Path

import acid


def city(rec: dict) -> str:
    return rec["city"]


def fill(store: acid.Store, n: int) -> acid.Collection:
    coll = store.add_collection("people")
    it = iter(range(n))
    while chunk := list(islice(it, 50_000)):
        with store.begin(write=True):
            for i in chunk:
                coll.put({"name": f"p{i}", "city": f"c{i % 997}", "age": i % 90})
    return coll


def writer(
    store: acid.Store, coll: acid.Collection, stop: threading.Event, n: int
) -> list[float]:
    rng = random.Random(1)
    lat = []
    while not stop.is_set():
        key = rng.randrange(n)
        start = time.perf_counter()
        with store.begin(write=True):
            coll.put({"name": "w", "city": f"c{rng.randrange(997)}", "age": 1}, key=key)
        lat.append(time.perf_counter() - start)
        time.sleep(0.001)  # an application, not a flood
    return lat


def summary(lat: list[float]) -> str:
    lat = sorted(lat)
    p99 = lat[int(len(lat) * 0.99) - 1] if len(lat) >= 100 else lat[-1]
    return (
        f"{len(lat)} writes, median {statistics.median(lat) * 1e3:.2f} ms, "
        f"p99 {p99 * 1e3:.2f} ms, max {lat[-1] * 1e3:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="acid-online-"))
    store = acid.open(f"lmdb:{root / 'db'}?map_size=8GiB&sync=false")
    coll = fill(store, args.records)

    stop = threading.Event()
    base: list[float] = []
    t = threading.Thread(
        target=lambda: base.extend(writer(store, coll, stop, args.records))
    )
    t.start()
    time.sleep(3)
    stop.set()
    t.join()

    stop = threading.Event()
    during: list[float] = []
    t = threading.Thread(
        target=lambda: during.extend(writer(store, coll, stop, args.records))
    )
    t.start()
    wall, cpu = time.perf_counter(), time.process_time()
    coll.add_index("city", city, build="online", batch=args.batch)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stop.set()
    t.join()
    report = store.check()
    assert report.ok and not report.unchecked
    print(f"online build of {args.records:,} records, batch {args.batch}:")
    print(
        f"  {wall:.1f} s wall ({args.records / wall:,.0f} records/s), "
        f"{cpu:.1f} s CPU for the process ({args.records / cpu:,.0f} records/s)"
    )
    print(f"  foreground writes, no build:     {summary(base)}")
    print(f"  foreground writes, during build: {summary(during)}")
    print("  check() after the build: ok")
    store.close()
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
