"""Key packing speed: acid's C and pure twins against fdb.tuple and msgpack.

Run: ``python bench/keylib_bench.py [--n 20000] [--repeat 7]``. Each cell is
the median over ``repeat`` runs of packing (or unpacking) ``n`` distinct
tuples of one shape, in one process. Targets: C pack >= 5x fdb.tuple and no
slower than msgpack; C unpack >= 5x fdb.tuple and within 1.5x of msgpack;
the pure twin within 2x of fdb.tuple.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import fdb.tuple  # the tuple layer needs no fdb.api_version() or server
import msgpack

from acid import keylib

SHAPES: dict[str, Callable[[int], tuple]] = {
    "(i,)": lambda i: (i,),
    '("user", i)': lambda i: ("user", i),
    '("user", i, "name%d" % i, True)': lambda i: ("user", i, f"name{i}", True),
}


def ops_per_second(func: Callable[[Any], Any], items: list, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        deque(map(func, items), maxlen=0)  # the loop itself costs next to nothing
        runs.append(time.perf_counter() - start)
    return len(items) / statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    twins = keylib.implementations()
    coders: dict[str, tuple[Callable, Callable]] = {}
    if "c" in twins:
        coders["acid-c"] = (twins["c"].pack, twins["c"].unpack)
    coders["acid-py"] = (twins["python"].pack, twins["python"].unpack)
    coders["fdb.tuple"] = (fdb.tuple.pack, fdb.tuple.unpack)
    coders["msgpack"] = (msgpack.packb, msgpack.unpackb)

    print(
        f"keylib.IMPLEMENTATION = {keylib.IMPLEMENTATION!r}; n={args.n}, "
        f"median of {args.repeat}; ops/s"
    )
    header = f"{'shape':34} {'op':6}" + "".join(f"{name:>12}" for name in coders)
    ratios = "  c/fdb  c/msgpack  py/fdb"
    print(header + ratios)
    for shape, make in SHAPES.items():
        tuples = [make(i) for i in range(args.n)]
        for op in ("pack", "unpack"):
            rates = {}
            for name, (pack, unpack) in coders.items():
                if op == "pack":
                    rates[name] = ops_per_second(pack, tuples, args.repeat)
                else:
                    packed = [pack(t) for t in tuples]
                    rates[name] = ops_per_second(unpack, packed, args.repeat)
            row = f"{shape:34} {op:6}" + "".join(f"{r:12,.0f}" for r in rates.values())
            c = rates.get("acid-c", float("nan"))
            row += (
                f"  {c / rates['fdb.tuple']:5.1f}x"
                f"  {c / rates['msgpack']:8.2f}x"
                f"  {rates['acid-py'] / rates['fdb.tuple']:5.2f}x"
            )
            print(row)


if __name__ == "__main__":
    main()
