"""The record-and-index layer against its physical floor, sqlite3 and LevelDB.

Workload: N user records (~100 bytes of msgpack), key ``id``, one index on
``age`` (entries ``(age, id)``). The contenders do the same logical work:

- ``raw``: py-lmdb by hand: 8-byte big-endian ids, msgpack values, and a
  second key per index entry -- the floor;
- ``acid``: ``acid.open("lmdb:...")`` with a msgpack collection and an index;
- ``acid-zstd``: the same with values compressed by a zstd dictionary
  trained (untimed) on 1,000 encoded records (``store.train_compressor``);
- ``sqlite``: sqlite3 doing what acid does: the record as a msgpack blob
  plus an indexed ``age`` column; gets and queries unpack the blob, updates
  read, unpack, change and write back the blob (and the column);
- ``ldb-raw``: plyvel by hand with the cache, bloom filter, write buffer and
  compression acid's ``leveldb:`` engine uses by default, the same keys as
  ``raw``: the LevelDB reference;
- ``acid-ldb``: ``acid.open("leveldb:...")`` with its defaults;
- ``acid-mem`` (``--memory``): acid over ``skiplist:/``.

Each contender runs in a subprocess of its own, once per repetition, with
the order of the contenders rotated between repetitions, so that its peak
RSS is its own (the harness's records are in every one of them: the
``records only`` line is that floor). Each operation is timed in CPU time
(``--clock cpu``, the default: the machine may be shared; it counts every
thread of the process, LevelDB's background compactions included) or wall
time, with the cyclic GC off; the median is reported as ops/s (rows/s for queries and
scans) with cost ratios ``acid/raw`` (1.0 = the floor), ``acid/sqlite``,
``zstd/raw``, ``acid-ldb/ldb-raw`` (lower is better). On-disk sizes are
taken after the initial load and after the whole run (LMDB keeps pages
freed by the updates for reuse; SQLite's WAL is checkpointed first).

Run: python bench/layer_bench.py [--n 10000,100000,1000000] [--repeat 3]
[--durability relaxed|durable|both] [--clock cpu|wall] [--only acid,raw]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import struct
import subprocess
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
from acid import encoders
from acid.engines.leveldb import LevelDBEngine

TAGS = ["red", "green", "blue", "admin", "staff", "new", "vip"]
CONTENDERS = ["raw", "acid", "acid-zstd", "sqlite", "ldb-raw", "acid-ldb"]


def make_records(n: int) -> list[dict[str, Any]]:
    rng = random.Random(42)
    return [
        {
            "id": i,
            "name": f"user{i}",
            "email": f"user{i}@example.com",
            "age": rng.randint(18, 90),
            "tags": rng.sample(TAGS, rng.randint(2, 3)),
        }
        for i in range(n)
    ]


def dir_size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs
    )


class Raw:
    """The floor: hand-written py-lmdb with the same physical layout."""

    def __init__(self, path: str, durable: bool) -> None:
        self.path = path
        self.env = lmdb.open(path, map_size=1 << 33, sync=durable, metasync=durable)
        self.q = struct.Struct(">Q").pack
        self.iq = struct.Struct(">BQ").pack

    def rkey(self, i: int) -> bytes:
        return b"r" + self.q(i)

    def put(self, txn: Any, rec: dict, old: dict | None = None) -> None:
        txn.put(self.rkey(rec["id"]), msgpack.packb(rec))
        if old is not None:
            txn.delete(b"i" + self.iq(old["age"], rec["id"]))
        txn.put(b"i" + self.iq(rec["age"], rec["id"]), b"")

    def insert_all(self, recs: list[dict]) -> None:
        with self.env.begin(write=True) as txn:
            for r in recs:
                self.put(txn, r)

    def insert_each(self, recs: list[dict]) -> None:
        for r in recs:
            with self.env.begin(write=True) as txn:
                self.put(txn, r)

    def get_each(self, ids: list[int]) -> None:
        for i in ids:
            with self.env.begin() as txn:
                msgpack.unpackb(txn.get(self.rkey(i)))

    def get_batch(self, ids: list[int]) -> None:
        for start in range(0, len(ids), 1000):
            with self.env.begin() as txn:
                get, rkey = txn.get, self.rkey
                for i in ids[start : start + 1000]:
                    msgpack.unpackb(get(rkey(i)))

    def age_query(self, lo: int, hi: int) -> int:
        n = 0
        with self.env.begin() as txn:
            cur = txn.cursor()
            stop = b"i" + self.iq(hi + 1, 0)
            if cur.set_range(b"i" + self.iq(lo, 0)):
                for k in cur.iternext(values=False):
                    if k >= stop:
                        break
                    msgpack.unpackb(txn.get(b"r" + k[2:]))
                    n += 1
        return n

    def scans(self, starts: list[int], width: int) -> int:
        n = 0
        with self.env.begin() as txn:
            for s in starts:
                cur = txn.cursor()
                stop = self.rkey(s + width)
                if cur.set_range(self.rkey(s)):
                    for k, v in cur:
                        if k >= stop:
                            break
                        struct.unpack(">Q", k[1:])
                        msgpack.unpackb(v)
                        n += 1
        return n

    def update(self, ids: list[int], ages: list[int]) -> None:
        with self.env.begin(write=True) as txn:
            for i, age in zip(ids, ages, strict=True):
                old = msgpack.unpackb(txn.get(self.rkey(i)))
                new = dict(old, age=age)
                self.put(txn, new, old)

    def size(self) -> int:
        return dir_size(self.path)

    def close(self) -> None:
        self.env.close()


class LevelDBRaw(Raw):
    """The LevelDB reference: plyvel by hand, with acid's default options."""

    def __init__(self, path: str, durable: bool) -> None:
        import plyvel

        p = {name: param.default for name, param in LevelDBEngine.PARAMS.items()}
        self.path = path
        self.db = plyvel.DB(
            path,
            create_if_missing=True,
            lru_cache_size=p["block_cache"],
            write_buffer_size=p["write_buffer"],
            bloom_filter_bits=p["bloom_bits"],
            compression=p["compression"],
            max_open_files=p["max_open_files"],
        )
        self.sync = durable
        self.q = struct.Struct(">Q").pack
        self.iq = struct.Struct(">BQ").pack

    def insert_all(self, recs: list[dict]) -> None:
        with self.db.write_batch(sync=self.sync) as wb:
            for r in recs:
                self.put(wb, r)

    def insert_each(self, recs: list[dict]) -> None:
        for r in recs:  # a record and its entry land together, as in acid
            with self.db.write_batch(sync=self.sync) as wb:
                self.put(wb, r)

    def get_each(self, ids: list[int]) -> None:
        get, rkey = self.db.get, self.rkey
        for i in ids:
            msgpack.unpackb(get(rkey(i)))

    def get_batch(self, ids: list[int]) -> None:
        for start in range(0, len(ids), 1000):
            snap = self.db.snapshot()
            get, rkey = snap.get, self.rkey
            for i in ids[start : start + 1000]:
                msgpack.unpackb(get(rkey(i)))
            snap.close()

    def age_query(self, lo: int, hi: int) -> int:
        n = 0
        snap = self.db.snapshot()
        start, stop = b"i" + self.iq(lo, 0), b"i" + self.iq(hi + 1, 0)
        for k in snap.iterator(start=start, stop=stop, include_value=False):
            msgpack.unpackb(snap.get(b"r" + k[2:]))
            n += 1
        snap.close()
        return n

    def scans(self, starts: list[int], width: int) -> int:
        n = 0
        snap = self.db.snapshot()
        for s in starts:
            for k, v in snap.iterator(start=self.rkey(s), stop=self.rkey(s + width)):
                struct.unpack(">Q", k[1:])
                msgpack.unpackb(v)
                n += 1
        snap.close()
        return n

    def update(self, ids: list[int], ages: list[int]) -> None:
        with self.db.write_batch(sync=self.sync) as wb:
            for i, age in zip(ids, ages, strict=True):
                old = msgpack.unpackb(self.db.get(self.rkey(i)))
                self.put(wb, dict(old, age=age), old)

    def close(self) -> None:
        self.db.close()


class Acid:
    def __init__(self, url: str, path: str | None, zstd_dict: bool = False) -> None:
        self.store = acid.open(url)
        self.path = path
        comp: Any = None
        if zstd_dict:
            samples = [encoders.MSGPACK.pack(r) for r in make_records(1000)]
            comp = self.store.train_compressor("users-dict", samples)
        self.coll = self.store.add_collection(
            "users", key_func=lambda r: r["id"], encoder="msgpack", compressor=comp
        )
        self.age = self.coll.add_index("age", lambda r: r["age"])

    def insert_all(self, recs: list[dict]) -> None:
        with self.store.begin(write=True):
            put = self.coll.put
            for r in recs:
                put(r)

    def insert_each(self, recs: list[dict]) -> None:
        put = self.coll.put
        for r in recs:
            put(r)

    def get_each(self, ids: list[int]) -> None:
        get = self.coll.get
        for i in ids:
            get(i)

    def get_batch(self, ids: list[int]) -> None:
        get = self.coll.get
        for start in range(0, len(ids), 1000):
            with self.store.begin():
                for i in ids[start : start + 1000]:
                    get(i)

    def age_query(self, lo: int, hi: int) -> int:
        return sum(1 for _ in self.age.values(lo=lo, hi=hi, include=True))

    def scans(self, starts: list[int], width: int) -> int:
        n = 0
        with self.store.begin():
            for s in starts:
                for _ in self.coll.items(lo=s, hi=s + width):
                    n += 1
        return n

    def update(self, ids: list[int], ages: list[int]) -> None:
        with self.store.begin(write=True):
            get, put = self.coll.get, self.coll.put
            for i, age in zip(ids, ages, strict=True):
                rec = get(i)
                rec["age"] = age
                put(rec)

    def size(self) -> int:
        return 0 if self.path is None else dir_size(self.path)

    def close(self) -> None:
        self.store.close()


class Sqlite:
    """sqlite3 doing acid's work: a msgpack blob and an indexed age column."""

    def __init__(self, path: str, durable: bool) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        self.db.execute(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, age INTEGER, data BLOB)"
        )
        self.db.execute("CREATE INDEX users_age ON users (age)")
        self.sql = "INSERT OR REPLACE INTO users VALUES (?, ?, ?)"

    @staticmethod
    def row(r: dict) -> tuple:
        return (r["id"], r["age"], msgpack.packb(r))

    def insert_all(self, recs: list[dict]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany(self.sql, map(self.row, recs))
        self.db.execute("COMMIT")

    def insert_each(self, recs: list[dict]) -> None:
        for r in recs:
            self.db.execute(self.sql, self.row(r))

    def get_each(self, ids: list[int]) -> None:
        q, unpack = "SELECT data FROM users WHERE id = ?", msgpack.unpackb
        for i in ids:
            unpack(self.db.execute(q, (i,)).fetchone()[0])

    def get_batch(self, ids: list[int]) -> None:
        q, unpack = "SELECT data FROM users WHERE id = ?", msgpack.unpackb
        for start in range(0, len(ids), 1000):
            self.db.execute("BEGIN")
            for i in ids[start : start + 1000]:
                unpack(self.db.execute(q, (i,)).fetchone()[0])
            self.db.execute("COMMIT")

    def age_query(self, lo: int, hi: int) -> int:
        q = "SELECT data FROM users WHERE age BETWEEN ? AND ? ORDER BY age, id"
        unpack = msgpack.unpackb
        return sum(1 for (d,) in self.db.execute(q, (lo, hi)) if unpack(d))

    def scans(self, starts: list[int], width: int) -> int:
        q = "SELECT id, data FROM users WHERE id >= ? AND id < ? ORDER BY id"
        unpack = msgpack.unpackb
        self.db.execute("BEGIN")
        n = 0
        for s in starts:
            for _i, d in self.db.execute(q, (s, s + width)):
                unpack(d)
                n += 1
        self.db.execute("COMMIT")
        return n

    def update(self, ids: list[int], ages: list[int]) -> None:
        sel = "SELECT data FROM users WHERE id = ?"
        upd = "UPDATE users SET age = ?, data = ? WHERE id = ?"
        ex = self.db.execute
        ex("BEGIN")
        for i, age in zip(ids, ages, strict=True):
            rec = msgpack.unpackb(ex(sel, (i,)).fetchone()[0])
            rec["age"] = age
            ex(upd, (age, msgpack.packb(rec), i))
        ex("COMMIT")

    def size(self) -> int:
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(
            os.path.getsize(self.path + ext)
            for ext in ("", "-wal", "-shm")
            if os.path.exists(self.path + ext)
        )

    def close(self) -> None:
        self.db.close()


def make(name: str, tmp: str, durable: bool) -> Any:
    Path(tmp).mkdir(parents=True, exist_ok=True)
    sync = str(durable).lower()
    if name == "raw":
        return Raw(tmp + "/raw", durable)
    if name == "acid":
        return Acid(f"lmdb:{tmp}/acid?map_size=8GiB&sync={sync}", tmp + "/acid")
    if name == "acid-zstd":
        url = f"lmdb:{tmp}/acid?map_size=8GiB&sync={sync}"
        return Acid(url, tmp + "/acid", zstd_dict=True)
    if name == "acid-ldb":
        return Acid(f"leveldb:{tmp}/acid-ldb?sync={sync}", tmp + "/acid-ldb")
    if name == "ldb-raw":
        return LevelDBRaw(tmp + "/ldb", durable)
    if name == "acid-mem":
        return Acid("skiplist:/", None)
    if name == "sqlite":
        return Sqlite(tmp + "/sqlite.db", durable)
    raise ValueError(name)


def operations(n: int, durable: bool) -> list[tuple[str, int, Any]]:
    """``(label, count, fn(store) or None)``: the workloads, in run order."""
    recs = make_records(n)
    rng = random.Random(1)
    ids = [rng.randrange(n) for _ in range(min(n, 100_000))]
    each_ids = ids[:20_000]
    upd = rng.sample(range(n), n // 10)
    ages = [rng.randint(18, 90) for _ in upd]
    starts = [rng.randrange(max(1, n - 1000)) for _ in range(200)]
    qrows = sum(1 for r in recs if 30 <= r["age"] <= 35)
    each = min(n, 2_000 if durable else 20_000)
    return [
        ("insert all, 1 txn", n, lambda s: s.insert_all(recs)),
        ("insert, 1 txn each", each, None),  # a fresh store, see worker()
        ("get, 1 txn each", len(each_ids), lambda s: s.get_each(each_ids)),
        ("get, 1000 per txn", len(ids), lambda s: s.get_batch(ids)),
        ("age 30..35 query (rows)", qrows, lambda s: s.age_query(30, 35)),
        ("200 scans x 1000 ids (rows)", 200 * 1000, lambda s: s.scans(starts, 1000)),
        ("update 10% ages", len(upd), lambda s: s.update(upd, ages)),
    ]


def timed(fn: Callable[[], Any], clock: Callable[[], float]) -> float:
    # The cyclic GC off while timing, as timeit does: otherwise whichever
    # contender happens to trigger a full collection over the records held
    # by the harness pays for it, and ratios swing by 1.5x run to run.
    gc.collect()
    gc.disable()
    try:
        t = clock()
        fn()
        return clock() - t
    finally:
        gc.enable()


def peak_rss() -> int:
    """This process's peak resident set, in bytes.

    Linux keeps ``ru_maxrss`` across ``exec``, so a worker would report its
    parent's peak if that were larger: the high-water mark of the process's
    own memory map (``VmHWM``), which starts afresh at ``exec``, comes first.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def worker(name: str, n: int, durable: bool, clock_name: str) -> dict[str, Any]:
    """Run every operation on one contender in this process."""
    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    ops = operations(n, durable)
    out: dict[str, Any] = {"times": {}}
    if name == "none":  # the harness alone: its records are in every worker
        out["rss"] = peak_rss()
        return out
    each_recs = make_records(ops[1][1])
    tmp = tempfile.mkdtemp(prefix="acid-bench-")
    try:
        store = make(name, tmp, durable)
        for label, _count, fn in ops:
            if fn is None:
                fresh = make(name, tmp + "-each", durable)
                out["times"][label] = timed(
                    lambda f=fresh: f.insert_each(each_recs), clock
                )
                fresh.close()
                shutil.rmtree(tmp + "-each", ignore_errors=True)
            else:
                out["times"][label] = timed(lambda f=fn, s=store: f(s), clock)
            if label.startswith("insert all"):
                out["size_loaded"] = store.size()
        out["size_end"] = store.size()
        store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["rss"] = peak_rss()
    return out


def spawn(name: str, n: int, durable: bool, clock: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", name, "--n", str(n), "--clock", clock]
    cmd += ["--durability", "durable" if durable else "relaxed"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{name} failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def ratio(med: dict[str, float], a: str, b: str) -> str:
    if a in med and b in med and med[b] > 0:
        return f"{med[a] / med[b]:>16.2f}x"
    return f"{'-':>17}"


def run(n: int, repeat: int, durable: bool, engines: list[str], clock: str) -> None:
    ops = operations(n, durable)
    results: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
    base = spawn("none", n, durable, clock)["rss"]
    for rep in range(repeat):
        shift = rep % len(engines)  # rotate who runs first
        for name in engines[shift:] + engines[:shift]:
            results[name].append(spawn(name, n, durable, clock))
    mode = "durable" if durable else "relaxed"
    print(f"\n== {mode} durability, n={n:,}, {clock} time, median of {repeat} ==")
    pairs = [("acid", "raw"), ("acid", "sqlite"), ("acid-zstd", "raw")]
    pairs += [("acid-ldb", "ldb-raw")]
    pairs = [(a, b) for a, b in pairs if a in engines and b in engines]
    head = f"{'operation':28} " + " ".join(f"{e:>10}" for e in engines)
    print(head + " " + " ".join(f"{a + '/' + b:>17}" for a, b in pairs))
    print(f"{'':28} " + " ".join(f"{'ops/s':>10}" for _ in engines))
    for label, count, _ in ops:
        med = {
            e: statistics.median(r["times"][label] for r in results[e]) for e in engines
        }
        cols = " ".join(f"{count / max(med[e], 1e-9):>10,.0f}" for e in engines)
        print(f"{label:28} {cols} " + " ".join(ratio(med, a, b) for a, b in pairs))
    for key, label in (
        ("size_loaded", "MiB on disk, loaded"),
        ("size_end", "MiB on disk, at end"),
    ):
        med = {e: statistics.median(r[key] for r in results[e]) for e in engines}
        cols = " ".join(f"{med[e] / 2**20:>10,.1f}" for e in engines)
        print(f"{label:28} {cols} " + " ".join(ratio(med, a, b) for a, b in pairs))
    med = {e: statistics.median(r["rss"] for r in results[e]) for e in engines}
    cols = " ".join(f"{med[e] / 2**20:>10,.1f}" for e in engines)
    print(f"{'peak RSS MiB':28} {cols} " + " ".join(ratio(med, a, b) for a, b in pairs))
    own = {e: max(med[e] - base, 1) for e in engines}
    cols = " ".join(f"{own[e] / 2**20:>10,.1f}" for e in engines)
    print(
        f"{'peak RSS - records, MiB':28} {cols} "
        + " ".join(ratio(own, a, b) for a, b in pairs)
    )
    print(f"(records only: {base / 2**20:,.1f} MiB peak RSS)")


def counts(text: str) -> list[int]:
    return [int(float(x)) for x in text.replace(",", " ").split()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--n", nargs="+", default=["100000"], help="record counts, e.g. 1e4,1e5"
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--durability", choices=["durable", "relaxed", "both"], default="both"
    )
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    ap.add_argument("--memory", action="store_true", help="also run acid on skiplist:/")
    ap.add_argument("--only", help="comma-separated contenders (default: all)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    ns = [n for text in args.n for n in counts(text)]
    if args.worker:
        out = worker(args.worker, ns[0], args.durability == "durable", args.clock)
        print(json.dumps(out))
        return
    engines = CONTENDERS + (["acid-mem"] if args.memory else [])
    if args.only:
        engines = [e for e in engines if e in args.only.split(",")]
    print(f"acid.keylib implementation: {acid.keylib.IMPLEMENTATION}")
    for durable in {"durable": [True], "relaxed": [False], "both": [False, True]}[
        args.durability
    ]:
        for n in ns:
            run(n, args.repeat, durable, engines, args.clock)


if __name__ == "__main__":
    main()
