"""Blob stores, q-gram search and expiry against their references.

- ``blobs``: ``put_file`` and ``get_file`` of one large blob (1 GiB by
  default) on LMDB against raw py-lmdb writing and reading the same 256 KiB
  chunks in the same transactions (16 chunks per write transaction, as a
  put outside a block commits). Reported as throughput (MiB/s of CPU time)
  and acid's share of the raw throughput (the target is at least 50%).
- ``qgram``: ``index.contains(needle)`` on a q-gram index (q=3) over N
  titles against a full scan of the collection testing ``needle in title``,
  for 5-character needles (the target is 20x faster).
- ``expire``: ``store.expire()`` over N records that all have a deadline, of
  which 0.1% or 1% have passed: the cost per expired record should not grow
  with N (the sweep reads the deadline queue, not the records).

Each measurement is CPU time (``time.process_time``; the machine is shared),
repeated ``--repeat`` times with the order of the contenders rotated; the
median is reported.

Run: python bench/kt_bench.py [--blob-mib 1024] [--titles 100000] [--repeat 3]
[--expire-n 100000 1000000] [--only blobs qgram expire]
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import acid
from acid.blobs import CHUNK_SIZE, STAGE_CHUNKS

MiB = 1 << 20


def timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    gc.disable()
    try:
        t = time.process_time()
        fn()
        return time.process_time() - t
    finally:
        gc.enable()


class Source:
    """``size`` bytes of a repeated random block, read in any size."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = random.Random(7).randbytes(CHUNK_SIZE)

    def read(self, n: int) -> bytes:
        n = min(n, self.left, CHUNK_SIZE)
        self.left -= n
        return self.block[:n]


class Sink:
    def __init__(self) -> None:
        self.seen = 0

    def write(self, b: bytes) -> None:
        self.seen += len(b)


def raw_put(env: lmdb.Environment, size: int) -> None:
    src = Source(size)
    i = 0
    while src.left:
        with env.begin(write=True) as txn:
            for _ in range(STAGE_CHUNKS):
                chunk = src.read(CHUNK_SIZE)
                if not chunk:
                    break
                txn.put(b"chunk" + i.to_bytes(8, "big"), chunk)
                i += 1
            txn.put(b"head", i.to_bytes(8, "big"))


def raw_get(env: lmdb.Environment) -> int:
    sink = Sink()
    with env.begin() as txn:
        n = int.from_bytes(txn.get(b"head"), "big")
        for i in range(n):
            sink.write(txn.get(b"chunk" + i.to_bytes(8, "big")))
    return sink.seen


def blob_round(who: str, size: int) -> tuple[float, float]:
    """CPU seconds of one put and one get of ``size`` bytes by ``who``."""
    tmp = tempfile.mkdtemp(prefix="kt_bench_")
    map_size = 2 * size + 64 * MiB
    try:
        if who == "raw":
            env = lmdb.open(tmp, map_size=map_size, sync=False)
            put = timed(lambda: raw_put(env, size))
            get = timed(lambda: raw_get(env))
            env.close()
            return put, get
        store = acid.open(f"lmdb:{tmp}?map_size={map_size}&sync=false")
        blobs = store.blobs("big")
        put = timed(lambda: blobs.put_file("big", Source(size)))
        sink = Sink()
        get = timed(lambda: blobs.get_file("big", sink))
        assert sink.seen == size
        store.close()
        return put, get
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_blobs(mib: int, repeat: int) -> None:
    size = mib * MiB
    times: dict[str, list[float]] = {}
    for r in range(repeat):
        order = ["raw", "acid"] if r % 2 == 0 else ["acid", "raw"]
        for who in order:
            put, get = blob_round(who, size)
            times.setdefault(f"{who} put", []).append(put)
            times.setdefault(f"{who} get", []).append(get)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"blob of {mib} MiB on LMDB (sync=false), {repeat} repetitions, CPU time")
    print(f"{'':8}{'raw MiB/s':>12}{'acid MiB/s':>12}{'acid/raw':>10}")
    for op in ("put", "get"):
        raw, mine = mib / med[f"raw {op}"], mib / med[f"acid {op}"]
        print(f"{op:8}{raw:12.0f}{mine:12.0f}{mine / raw:9.0%}")


def make_titles(n: int) -> list[str]:
    """Titles of 3 to 8 words from a vocabulary of 5000 made-up words."""
    rng = random.Random(11)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = [
        "".join(rng.choice(letters) for _ in range(rng.randint(3, 9)))
        for _ in range(5000)
    ]
    return [
        " ".join(rng.choice(vocab) for _ in range(rng.randint(3, 8))).capitalize()
        for _ in range(n)
    ]


def bench_qgram(n: int, repeat: int) -> None:
    titles = make_titles(n)
    rng = random.Random(3)
    needles = []
    for t in rng.sample(titles, 20):  # needles that occur...
        i = rng.randrange(len(t) - 5)
        needles.append(t[i : i + 5])
    needles += ["".join(rng.choice("etaoin") for _ in range(5)) for _ in range(5)]
    tmp = tempfile.mkdtemp(prefix="kt_bench_")
    try:
        store = acid.open(f"lmdb:{tmp}?map_size=8GiB&sync=false")
        coll = store.add_collection("titles", encoder="msgpack")
        grams = coll.add_index("grams", acid.qgrams("title", q=3))
        t0 = time.process_time()
        with store.begin(write=True):
            for i, title in enumerate(titles):
                coll.put({"title": title}, key=i)
        fill = time.process_time() - t0

        def scan() -> int:
            found = 0
            with store.begin():
                for needle in needles:
                    found += sum(1 for r in coll.values() if needle in r["title"])
            return found

        def search() -> int:
            with store.begin():
                return sum(len(grams.contains(needle)) for needle in needles)

        assert scan() == search()
        times: dict[str, list[float]] = {"scan": [], "contains": []}
        for r in range(repeat):
            for who in ["scan", "contains"][:: 1 if r % 2 == 0 else -1]:
                times[who].append(timed(scan if who == "scan" else search))
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = {k: statistics.median(v) / len(needles) for k, v in times.items()}
    print(f"q-gram index (q=3) over {n} titles on LMDB, 5-character needles")
    print(f"  filling: {fill:.1f} s CPU ({n / fill:.0f} titles/s with the index)")
    print(f"  full scan: {med['scan'] * 1e3:.2f} ms per needle")
    print(f"  contains:  {med['contains'] * 1e3:.2f} ms per needle")
    print(f"  speed-up:  {med['scan'] / med['contains']:.0f}x")


def expire_round(n: int, frac: float) -> tuple[int, float]:
    """Expired records and CPU seconds of one ``store.expire()``."""
    tmp = tempfile.mkdtemp(prefix="kt_bench_")
    now = [1000.0]
    try:
        store = acid.open(f"lmdb:{tmp}?map_size=16GiB&sync=false", clock=lambda: now[0])
        coll = store.add_collection("c", encoder="msgpack")
        coll.add_index("g", lambda r: r["g"])
        step = int(1 / frac)
        for lo in range(0, n, 50_000):
            with store.begin(write=True):
                for i in range(lo, min(n, lo + 50_000)):
                    # 1 record in `step` expires after 10 s, the rest after
                    # an hour: every one has a deadline.
                    ttl = 10 if i % step == 0 else 3600
                    coll.put({"g": i % 100}, key=i, ttl=ttl)
        now[0] += 60
        spent = timed(lambda: store.expire(batch=1000))
        gone = len(range(0, n, step))
        assert sum(1 for _ in coll.keys()) == n - gone
        store.close()
        return gone, spent
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_expire(sizes: list[int], fractions: list[float]) -> None:
    """``store.expire()`` cost against the number of expired records."""
    print("store.expire() on LMDB (sync=false), records with one index")
    print(f"{'records':>10}{'expired':>10}{'CPU s':>8}{'us per expired':>16}")
    for n in sizes:
        for frac in fractions:
            gone, spent = expire_round(n, frac)
            print(f"{n:>10}{gone:>10}{spent:>8.3f}{spent / gone * 1e6:>16.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blob-mib", type=int, default=1024)
    ap.add_argument("--titles", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--expire-n", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--only", nargs="+", default=["blobs", "qgram", "expire"])
    args = ap.parse_args()
    if "blobs" in args.only:
        bench_blobs(args.blob_mib, args.repeat)
    if "qgram" in args.only:
        bench_qgram(args.titles, args.repeat)
    if "expire" in args.only:
        bench_expire(args.expire_n, [0.001, 0.01])


if __name__ == "__main__":
    main()
