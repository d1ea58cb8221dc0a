"""The memory engine against a hand-written floor and the engine it replaced.

Run: ``python bench/memory_bench.py [--n 10000,100000,1000000] [--repeats R]``

Contenders, each in a fresh subprocess per run (so that peak RSS is its own):

``floor``
    a ``dict`` plus ``sortedcontainers.SortedList`` written by hand: no
    transactions, no snapshots.
``old``
    the previous memory engine (``bench/old_skiplist.py``: a dict and sorted
    chunks per version, copied when a reader pins it).
``memory``
    ``memory:/``, the persistent B+tree.

Workloads, on ``n`` records of 16-byte random keys and 100-byte values:

``load``
    all records in transactions of 10,000 (the floor: dict and list inserts).
``commit``
    one 1-record write transaction while a reader pins the version before it
    (a reader is begun before each commit and ended after it); the floor
    does the same insert.
``get``
    100,000 random point gets in one read transaction.
``scan``
    1,000-key range scans from random starts in one read transaction.
``rss``
    the subprocess's peak RSS (``ru_maxrss``) after loading and all of the
    above, data generation included (the same for every contender).
``rss-data``
    the same above the RSS after the imports, which every contender makes
    alike (so that it does not hide the difference at small ``n``).

Times are CPU time (``time.process_time``; the machine is shared), medians of
``R`` runs with the contenders' order rotated between runs; the ratio is the
contender's median over the floor's from the same run set.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONTENDERS = ["floor", "old", "memory"]
BATCH = 10_000
GETS = 100_000
SCANS = 50
SCAN = 1000
COMMITS = 101


def make_data(n: int) -> tuple[list[bytes], list[bytes], random.Random]:
    rng = random.Random(n)
    keys = list({rng.randbytes(16): None for _ in range(n)})
    values = [rng.randbytes(100) for _ in keys]
    return keys, values, rng


class Floor:
    """dict + SortedList by hand."""

    def __init__(self) -> None:
        from sortedcontainers import SortedList

        self.data: dict[bytes, bytes] = {}
        self.order = SortedList()

    def load(self, keys: list[bytes], values: list[bytes]) -> None:
        data, add = self.data, self.order.add
        for i in range(0, len(keys), BATCH):
            for k, v in zip(keys[i : i + BATCH], values[i : i + BATCH], strict=True):
                if k not in data:
                    add(k)
                data[k] = v

    def commit_one(self, key: bytes, value: bytes) -> None:
        if key not in self.data:
            self.order.add(key)
        self.data[key] = value

    def gets(self, probes: list[bytes]) -> None:
        get = self.data.get
        for k in probes:
            get(k)

    def scan(self, start: bytes) -> None:
        data = self.data
        for k in islice(self.order.irange(start), SCAN):
            data[k]


class EngineContender:
    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def load(self, keys: list[bytes], values: list[bytes]) -> None:
        begin = self.engine.begin
        for i in range(0, len(keys), BATCH):
            with begin(write=True) as txn:
                put = txn.put
                chunk = zip(keys[i : i + BATCH], values[i : i + BATCH], strict=True)
                for k, v in chunk:
                    put(k, v)

    def commit_one(self, key: bytes, value: bytes) -> None:
        with self.engine.begin(write=True) as txn:
            txn.put(key, value)

    def pin(self) -> Any:
        return self.engine.begin()

    def gets(self, probes: list[bytes]) -> None:
        with self.engine.begin() as txn:
            get = txn.get
            for k in probes:
                get(k)

    def scan(self, start: bytes) -> None:
        with self.engine.begin() as txn:
            for _ in islice(txn.iter(start), SCAN):
                pass


def contender(name: str) -> Any:
    if name == "floor":
        return Floor()
    if name == "old":
        sys.path.insert(0, str(HERE))
        from old_skiplist import SkipListEngine  # type: ignore[import-not-found]

        return EngineContender(SkipListEngine())
    from acid.engines import from_url

    return EngineContender(from_url("memory:/"))


def cpu(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def child(name: str, n: int) -> dict[str, float]:
    # Every contender imports the same modules first, so that the RSS above
    # this baseline is the data's and the structure's.
    sys.path.insert(0, str(HERE))
    import old_skiplist  # noqa: F401
    import sortedcontainers  # noqa: F401

    import acid.engines.memory  # noqa: F401

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0
    keys, values, rng = make_data(n)
    c = contender(name)
    out = {"load": cpu(lambda: c.load(keys, values))}
    commits = []
    for i in range(COMMITS):
        key, value = rng.randbytes(16), b"%0100d" % i
        reader = c.pin() if hasattr(c, "pin") else None
        commits.append(cpu(lambda k=key, v=value: c.commit_one(k, v)))  # type: ignore[misc]
        if reader is not None:
            reader.abort()
    out["commit"] = statistics.median(commits)
    probes = [rng.choice(keys) for _ in range(GETS)]
    out["get"] = cpu(lambda: c.gets(probes)) / GETS
    starts = [rng.choice(keys) for _ in range(SCANS)]
    out["scan"] = statistics.median(cpu(lambda s=s: c.scan(s)) for s in starts)  # type: ignore[misc]
    out["rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0
    out["rss-data"] = out["rss"] - base
    return out


def run_child(name: str, n: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", name, "--n", str(n)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


UNITS = {"load": ("s", 1), "commit": ("µs", 1e6), "get": ("µs", 1e6)}
UNITS.update({"scan": ("ms", 1e3), "rss": ("MiB", 1 / 2**20)})
UNITS["rss-data"] = ("MiB", 1 / 2**20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, int(args.n))))
        return
    for n in (int(x) for x in args.n.split(",")):
        runs: dict[str, list[dict[str, float]]] = {c: [] for c in CONTENDERS}
        for r in range(args.repeats):
            order = CONTENDERS[r % 3 :] + CONTENDERS[: r % 3]
            for name in order:
                runs[name].append(run_child(name, n))
        med = {
            name: {m: statistics.median(x[m] for x in results) for m in UNITS}
            for name, results in runs.items()
        }
        print(f"\nn = {n:,} ({args.repeats} runs, CPU time medians)")
        print(f"{'measure':<9}" + "".join(f"{c:>22}" for c in CONTENDERS))
        for m, (unit, scale) in UNITS.items():
            row = f"{m:<9}"
            for name in CONTENDERS:
                value = med[name][m]
                ratio = value / med["floor"][m] if med["floor"][m] else float("nan")
                row += f"{value * scale:>12.3f} {unit:<3} {ratio:>5.2f}x"
            print(row)


if __name__ == "__main__":
    main()
