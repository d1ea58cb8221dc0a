"""What acid.aio costs over the blocking API, in CPU time.

Run: ``python bench/aio_bench.py [--records N] [--ops K] [--repeats R]``

Each row does the same work twice, through the blocking API and through
``acid.aio`` (every awaited call is one trip to a thread and back), and
prints the median CPU time (``time.process_time``, all threads) per
operation over ``R`` rotated repetitions, and the ratio aio / blocking.
The figures say how much a thread hop costs next to the operation; they
are what to batch against (iterators fetch ``acid.aio.BATCH`` rows a trip,
and a plain function passed to ``store.transact`` runs whole on the
transaction's thread).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import acid
import acid.aio


def cpu(fn: Callable[[], Any]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def cases(astore: acid.aio.Store, k: int) -> dict[str, tuple[Callable, Callable]]:
    store = astore.blocking
    coll = store["c"]
    acoll = astore["c"]
    loop = asyncio.new_event_loop()

    def arun(coro: Any) -> Any:
        return loop.run_until_complete(coro)

    def gets_txn() -> None:
        with store.begin():
            for i in range(k):
                coll.get(i)

    async def agets_txn() -> None:
        async with astore.begin():
            for i in range(k):
                await acoll.get(i)

    def gets_auto() -> None:
        for i in range(k):
            coll.get(i)

    async def agets_auto() -> None:
        for i in range(k):
            await acoll.get(i)

    def scan() -> None:
        for _ in coll.values():
            pass

    async def ascan() -> None:
        async for _ in acoll.values():
            pass

    def puts_txn() -> None:
        with store.begin(write=True):
            for i in range(k):
                coll.put(i, key=i)

    async def aputs_txn() -> None:
        async with astore.begin(write=True):
            for i in range(k):
                await acoll.put(i, key=i)

    def body() -> None:
        for i in range(k):
            coll.put(i, key=i)

    async def atransact() -> None:
        await astore.transact(body)

    return {
        "get, in one read txn": (gets_txn, lambda: arun(agets_txn())),
        "get, autocommit": (gets_auto, lambda: arun(agets_auto())),
        "scan, per record": (scan, lambda: arun(ascan())),
        "put, in one write txn": (puts_txn, lambda: arun(aputs_txn())),
        "put, plain fn in transact": (
            lambda: store.transact(body),
            lambda: arun(atransact()),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--ops", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for url in ("skiplist:/", "lmdb:{tmp}/db?sync=false&map_size=1GiB"):
        with tempfile.TemporaryDirectory() as tmp:
            store = acid.open(url.format(tmp=tmp))
            coll = store.add_collection("c")
            with store.begin(write=True):
                for i in range(args.records):
                    coll.put({"i": i, "pad": "x" * 40}, key=i)
            astore = acid.aio.Store(store)
            table = cases(astore, args.ops)
            times: dict[str, tuple[list[float], list[float]]] = {
                name: ([], []) for name in table
            }
            for rep in range(args.repeats):
                for name, (blocking, aio) in table.items():
                    pair = [(0, blocking), (1, aio)]
                    for side, fn in pair if rep % 2 == 0 else pair[::-1]:
                        times[name][side].append(cpu(fn))
            print(f"\n{url.split('?')[0].format(tmp='')}  ({args.ops} ops per run)")
            print(f"{'case':28} {'blocking us/op':>15} {'aio us/op':>10} {'ratio':>6}")
            for name, (b, a) in times.items():
                per = args.records if name.startswith("scan") else args.ops
                mb, ma = statistics.median(b) / per, statistics.median(a) / per
                print(f"{name:28} {mb * 1e6:15.2f} {ma * 1e6:10.2f} {ma / mb:6.2f}")
            asyncio.run(astore.close())


if __name__ == "__main__":
    main()
