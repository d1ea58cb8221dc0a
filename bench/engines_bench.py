"""Engine overhead against the raw bindings and plain Python structures.

Run: ``python bench/engines_bench.py [--keys N] [--repeats R]``

For each engine: bulk put (all keys in one transaction, committed), random
point gets in one read transaction and 1,000-key range scans, next to the
same work done with raw py-lmdb and raw plyvel (on a snapshot, as the engine
reads), and for the memory engine a dict plus sorted list and
``sortedcontainers.SortedDict``. Every figure is the median of ``R`` runs;
the ratio column is engine time / baseline time (1.00 = no overhead).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from bisect import bisect_left
from collections.abc import Callable
from itertools import islice

import lmdb
import plyvel
from sortedcontainers import SortedDict

from acid.engines import Engine, from_url

SCAN = 1000


def timed(
    fn: Callable[[], object], repeats: int, setup: Callable[[], object] | None = None
) -> float:
    runs = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


class Data:
    def __init__(self, n: int, seed: int = 1) -> None:
        rng = random.Random(seed)
        self.keys = [rng.randbytes(16) for _ in range(n)]
        self.values = [rng.randbytes(100) for _ in range(n)]
        self.items = list(zip(self.keys, self.values, strict=True))
        self.probes = rng.sample(self.keys, min(n, 100_000))
        self.starts = rng.sample(sorted(self.keys)[: max(1, n - SCAN)], 50)


# -- engine workloads ---------------------------------------------------------


def engine_put(engine: Engine, data: Data) -> None:
    with engine.begin(write=True) as txn:
        put = txn.put
        for k, v in data.items:
            put(k, v)


def engine_get(engine: Engine, data: Data) -> None:
    with engine.begin() as txn:
        get = txn.get
        for k in data.probes:
            get(k)


def engine_scan(engine: Engine, data: Data) -> None:
    with engine.begin() as txn:
        for start in data.starts:
            for _ in islice(txn.iter(start), SCAN):
                pass


def clear(engine: Engine) -> None:
    with engine.begin(write=True) as txn:
        for k, _ in list(txn.iter(b"")):
            txn.delete(k)


# -- raw workloads -------------------------------------------------------------


def lmdb_raw(env: lmdb.Environment, data: Data) -> dict[str, Callable[[], None]]:
    def put() -> None:
        with env.begin(write=True) as txn:
            p = txn.put
            for k, v in data.items:
                p(k, v)

    def get() -> None:
        with env.begin(buffers=False) as txn:
            g = txn.get
            for k in data.probes:
                g(k)

    def scan() -> None:
        with env.begin(buffers=False) as txn:
            for start in data.starts:
                cur = txn.cursor()
                cur.set_range(start)
                for _ in islice(cur.iternext(), SCAN):
                    pass

    def clear() -> None:
        with env.begin(write=True) as txn:
            txn.drop(env.open_db(), delete=False)

    return {"put": put, "get": get, "scan": scan, "clear": clear}


def plyvel_raw(db: plyvel.DB, data: Data) -> dict[str, Callable[[], None]]:
    def put() -> None:
        batch = db.write_batch(sync=False)
        for k, v in data.items:
            batch.put(k, v)
        batch.write()

    def get() -> None:
        snap = db.snapshot()
        g = snap.get
        for k in data.probes:
            g(k)
        snap.close()

    def scan() -> None:
        snap = db.snapshot()
        for start in data.starts:
            for _ in islice(snap.iterator(start=start), SCAN):
                pass
        snap.close()

    def clear() -> None:
        batch = db.write_batch()
        for k in db.iterator(include_value=False):
            batch.delete(k)
        batch.write()

    return {"put": put, "get": get, "scan": scan, "clear": clear}


def dict_sorted(data: Data) -> dict[str, Callable[[], None]]:
    state: dict[str, object] = {}

    def put() -> None:
        d = dict(data.items)
        state["d"], state["keys"] = d, sorted(d)

    def get() -> None:
        g = state["d"].get  # type: ignore[attr-defined]
        for k in data.probes:
            g(k)

    def scan() -> None:
        d, keys = state["d"], state["keys"]
        for start in data.starts:
            i = bisect_left(keys, start)  # type: ignore[arg-type]
            for k in keys[i : i + SCAN]:  # type: ignore[index]
                d[k]  # type: ignore[index]

    put()
    return {"put": put, "get": get, "scan": scan}


def sorted_dict(data: Data) -> dict[str, Callable[[], None]]:
    state: dict[str, SortedDict] = {}

    def put() -> None:
        sd = SortedDict()
        for k, v in data.items:
            sd[k] = v
        state["sd"] = sd

    def get() -> None:
        g = state["sd"].get
        for k in data.probes:
            g(k)

    def scan() -> None:
        sd = state["sd"]
        for start in data.starts:
            for k in islice(sd.irange(start), SCAN):
                sd[k]

    put()
    return {"put": put, "get": get, "scan": scan}


# -- main ------------------------------------------------------------------------


def rate(ops: int, seconds: float) -> str:
    return f"{ops / seconds:>12,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = Data(args.keys)
    reps = args.repeats
    counts = {
        "put": len(data.items),
        "get": len(data.probes),
        "scan": len(data.starts) * SCAN,
    }
    tmp = tempfile.mkdtemp(prefix="acid-bench-")
    env = lmdb.open(f"{tmp}/raw-lmdb", map_size=2**34, sync=False, metasync=False)
    db = plyvel.DB(
        f"{tmp}/raw-leveldb",
        create_if_missing=True,
        lru_cache_size=64 * 2**20,
        write_buffer_size=16 * 2**20,
        bloom_filter_bits=10,
    )
    engines = {
        "skiplist": from_url("skiplist:/"),
        "lmdb": from_url(f"lmdb:{tmp}/lmdb?sync=false"),
        "leveldb": from_url(f"leveldb:{tmp}/leveldb?sync=false"),
    }
    baselines = {
        "skiplist": [
            ("SortedDict", sorted_dict(data)),
            ("dict+sorted list", dict_sorted(data)),
        ],
        "lmdb": [("raw py-lmdb", lmdb_raw(env, data))],
        "leveldb": [("raw plyvel", plyvel_raw(db, data))],
    }
    print(
        f"{args.keys:,} keys of 16 bytes, 100-byte values; scans of {SCAN} keys; "
        f"median of {reps} runs (ops/s; ratio = engine time / baseline time)\n"
    )
    print(
        f"{'op':<5} {'engine':<9} {'engine ops/s':>12}  {'baseline':<17} "
        f"{'ops/s':>12}  ratio"
    )
    results: dict[tuple[str, str], float] = {}
    work = {"put": engine_put, "get": engine_get, "scan": engine_scan}
    for name, engine in engines.items():
        for op in ("put", "get", "scan"):
            setup = (lambda e=engine: clear(e)) if op == "put" else None
            t_engine = timed(lambda e=engine, w=work[op]: w(e, data), reps, setup)
            results[(name, op)] = t_engine
            for label, fns in baselines[name]:
                t_base = timed(fns[op], reps, fns.get("clear") if op == "put" else None)
                print(
                    f"{op:<5} {name:<9} {rate(counts[op], t_engine)}  {label:<17} "
                    f"{rate(counts[op], t_base)}  {t_engine / t_base:5.2f}x"
                )
    print()
    ratio = results[("skiplist", "get")] / results[("lmdb", "get")]
    print(
        f"skiplist get time / lmdb engine get time: {ratio:.2f}x "
        f"({'faster' if ratio < 1 else 'SLOWER'} than LMDB)"
    )
    for engine in engines.values():
        engine.close()
    env.close()
    db.close()


if __name__ == "__main__":
    main()
