"""``acid copy`` LMDB -> LevelDB against a hand-written copy loop.

Run: ``python bench/cli_bench.py [--records N] [--repeats R]``

Builds an LMDB store of N records (a JSON collection with counter keys and
one index), then copies it to a fresh LevelDB store R times each way, the
two ways rotated: (a) ``acid copy`` run in this process (the real command:
one snapshot, bounded transactions, the verification at the end), (b) the
loop a user would write with the public API: read ``items()`` in one read
transaction, ``put(rec, key=k)`` in write transactions of 10,000 records
with the index declared on the target. CPU time (``time.process_time``),
medians; the ratio is loop time / copy time (>= 0.5 is the goal).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from itertools import islice
from pathlib import Path

import acid
from acid.cli import main as acid_main


def by_city(rec: dict) -> str:
    return rec["city"]


def build(url: str, n: int) -> None:
    store = acid.open(url)
    people = store.add_collection("people")
    people.add_index("city", by_city)
    it = iter(range(n))
    while True:
        chunk = list(islice(it, 50_000))
        if not chunk:
            break
        with store.begin(write=True):
            for i in chunk:
                people.put({"name": f"person {i}", "age": i % 90, "city": f"c{i % 97}"})
    store.close()


def hand_loop(src_url: str, dst_url: str) -> None:
    src, dst = acid.open(src_url), acid.open(dst_url)
    s = src.add_collection("people")
    s.add_index("city", by_city)
    d = dst.add_collection("people")
    d.add_index("city", by_city)
    with src.begin():
        it = iter(s.items())
        while True:
            chunk = list(islice(it, 10_000))
            if not chunk:
                break
            with dst.begin(write=True):
                for k, v in chunk:
                    d.put(v, key=k)
    src.close()
    dst.close()


def cli_copy(src_url: str, dst_url: str, module: str) -> None:
    code = acid_main(["copy", "--no-progress", "-m", module, src_url, dst_url])
    assert code == 0, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="acid-cli-bench-"))
    module = root / "declare_people.py"
    module.write_text(
        "def declare(store):\n"
        "    people = store.add_collection('people')\n"
        "    people.add_index('city', lambda r: r['city'])\n"
    )
    src = f"lmdb:{root / 'src'}?map_size=8GiB&sync=false"
    t0 = time.perf_counter()
    build(src, args.records)
    print(f"built {args.records:,} records in {time.perf_counter() - t0:.1f}s")
    runs: dict[str, list[float]] = {"acid copy": [], "hand loop": []}
    for rep in range(args.repeats):
        order = ["acid copy", "hand loop"]
        if rep % 2:
            order.reverse()
        for name in order:
            dst_path = root / f"dst-{rep}-{name.replace(' ', '-')}"
            dst = f"leveldb:{dst_path}?sync=false"
            start = time.process_time()
            if name == "acid copy":
                cli_copy(src, dst, str(module))
            else:
                hand_loop(src, dst)
            runs[name].append(time.process_time() - start)
            shutil.rmtree(dst_path)
    copy_t = statistics.median(runs["acid copy"])
    loop_t = statistics.median(runs["hand loop"])
    for name, times in runs.items():
        med = statistics.median(times)
        print(
            f"{name:10s} median {med:7.2f}s CPU  {args.records / med:10,.0f} "
            f"records/s  runs {[round(t, 2) for t in times]}"
        )
    print(f"acid copy speed / hand loop speed = {loop_t / copy_t:.2f} (goal >= 0.50)")
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
