"""The write path and the bulk API against their hand-written floors.

Same workload as ``layer_bench.py`` (N records of ~100 bytes of msgpack, key
``id``, one index on ``age``), relaxed durability, CPU time, the cyclic GC
off while timing, medians of repetitions whose contender order rotates. Each
line prints ``acid/floor`` (time acid / time floor; 1.0 is the floor):

- ``update 10%``: read-modify-write of 10% of the records in one
  transaction (floor: py-lmdb get, unpack, put, index delete + put);
- ``insert, 1 txn each``: autocommit puts of fresh records (floor: one
  py-lmdb write transaction per record);
- ``insert all, 1 txn``: ``put`` in a loop in one transaction;
- ``put_many``: ``coll.put_many(records)`` against the per-record floor
  (``txn.put`` in a loop in one LMDB transaction) and sqlite3
  ``executemany`` of the same msgpack blobs with an indexed ``age`` column;
- ``leveldb get`` / ``leveldb insert``: point gets outside a transaction
  and autocommit inserts, against plyvel with acid's default options.

A second reference, ``same``, is raw py-lmdb (plyvel for LevelDB) doing
exactly the engine work acid does for the same operation, with acid's key
layout: it calls the same key and index functions, reads the schema token
and the old record, writes each index entry with the record key as its
value, and keeps the exact record count (read and written in an autocommit
write, once per transaction otherwise). ``same/floor`` is the part of acid's
cost that is work, not Python: a target below it cannot be met by any
implementation of acid's contract. ``acid/same`` is acid's own overhead.

Run: python bench/write_bench.py [--n 10000 100000] [--repeat 5]
[--encoder json]
"""

from __future__ import annotations

import argparse
import gc
import random
import shutil
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import msgpack
import plyvel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import acid

TAGS = ["red", "green", "blue", "admin", "staff", "new", "vip"]
_Q = struct.Struct(">Q").pack
_IQ = struct.Struct(">BQ").pack
#: The encoder of acid's collection (``--encoder``); the floors use msgpack.
ENCODER = "msgpack"


def make_records(n: int, seed: int = 42) -> list[dict[str, Any]]:
    rng = random.Random(seed)
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


def timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    gc.disable()
    try:
        t = time.process_time()
        fn()
        return time.process_time() - t
    finally:
        gc.enable()


# -- floors -------------------------------------------------------------------


def raw_put(txn: Any, rec: dict, old: dict | None = None) -> None:
    i = rec["id"]
    txn.put(b"r" + _Q(i), msgpack.packb(rec))
    if old is not None:
        txn.delete(b"i" + _IQ(old["age"], i))
    txn.put(b"i" + _IQ(rec["age"], i), b"")


def raw_env(tmp: str) -> lmdb.Environment:
    return lmdb.open(tmp + "/raw", map_size=1 << 33, sync=False, metasync=False)


def raw_insert_all(env: Any, recs: list[dict]) -> None:
    with env.begin(write=True) as txn:
        for r in recs:
            raw_put(txn, r)


def raw_insert_each(env: Any, recs: list[dict]) -> None:
    for r in recs:
        with env.begin(write=True) as txn:
            raw_put(txn, r)


def raw_update(env: Any, ids: list[int], ages: list[int]) -> None:
    with env.begin(write=True) as txn:
        for i, age in zip(ids, ages, strict=True):
            old = msgpack.unpackb(txn.get(b"r" + _Q(i)))
            raw_put(txn, dict(old, age=age), old)


def sqlite_put_many(path: str, recs: list[dict]) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, age INTEGER, rec BLOB)")
    db.execute("CREATE INDEX users_age ON users (age)")
    packb = msgpack.packb
    db.execute("BEGIN")
    db.executemany(
        "INSERT OR REPLACE INTO users VALUES (?, ?, ?)",
        [(r["id"], r["age"], packb(r)) for r in recs],
    )
    db.execute("COMMIT")
    db.close()


def level_options() -> dict[str, Any]:
    # acid's LevelDB defaults (acid/engines/leveldb.py)
    return dict(
        create_if_missing=True,
        lru_cache_size=64 * 2**20,
        write_buffer_size=16 * 2**20,
        bloom_filter_bits=10,
        compression="snappy",
        max_open_files=1000,
    )


def level_insert_each(db: Any, recs: list[dict]) -> None:
    for r in recs:
        i = r["id"]
        with db.write_batch(sync=False) as b:
            b.put(b"r" + _Q(i), msgpack.packb(r))
            b.put(b"i" + _IQ(r["age"], i), b"")


def level_get_each(db: Any, ids: list[int]) -> None:
    get, unpackb = db.get, msgpack.unpackb
    for i in ids:
        unpackb(get(b"r" + _Q(i)))


# -- the same work as acid, by hand ----------------------------------------------
# acid's layout: a record at space + pack(key) holding b"\x00" + msgpack; an
# index entry at index space + pack((value,)) + SEP + pack(key) holding
# pack(key); counters at their own keys, packed ints. Keys are packed by
# acid.keylib (the C encoder), as acid does.

_kpack = acid.keylib.pack
_kunpack = acid.keylib.unpack
S_REC = _kpack((5,), b"")
S_IDX = _kpack((6,), b"")
SCHEMA = _kpack((3, "schema"))
COUNT = _kpack((2, "len"))
SEP = b"\x00"


def key_of(r: dict) -> Any:
    return r["id"]


def age_of(r: dict) -> Any:
    return r["age"]


def same_put(txn: Any, r: dict, count: bool) -> bool:
    """One put as acid does it in py-lmdb calls; True if the record is new."""
    rkey = _kpack((key_of(r),))
    value = b"\x00" + msgpack.packb(r)
    entry = _kpack((age_of(r),), S_IDX)
    old = txn.replace(S_REC + rkey, value)
    tail = SEP + rkey
    if old is None:
        txn.put(entry + tail, rkey)
        if count:
            raw = txn.get(COUNT)
            n = 0 if raw is None else _kunpack(raw)[0]
            txn.put(COUNT, _kpack((n + 1,)))
        return True
    prev = _kpack((age_of(msgpack.unpackb(old[1:])),), S_IDX)
    if prev != entry:
        txn.delete(prev + tail)
        txn.put(entry + tail, rkey)
    return False


def same_count(txn: Any, added: int) -> None:
    raw = txn.get(COUNT)
    n = 0 if raw is None else _kunpack(raw)[0]
    txn.put(COUNT, _kpack((n + added,)))


def same_insert_each(env: Any, recs: list[dict]) -> None:
    for r in recs:
        with env.begin(write=True) as txn:
            txn.get(SCHEMA)
            same_put(txn, r, True)


def same_insert_all(env: Any, recs: list[dict]) -> None:
    with env.begin(write=True) as txn:
        txn.get(SCHEMA)
        same_count(txn, sum(same_put(txn, r, False) for r in recs))


def same_load(env: Any, recs: list[dict]) -> None:
    with env.begin(write=True) as txn:
        same_insert_all_txn(txn, recs)


def same_insert_all_txn(txn: Any, recs: list[dict]) -> None:
    txn.get(SCHEMA)
    same_count(txn, sum(same_put(txn, r, False) for r in recs))


def same_update(env: Any, ids: list[int], ages: list[int]) -> None:
    with env.begin(write=True) as txn:
        txn.get(SCHEMA)
        for i, age in zip(ids, ages, strict=True):
            rec = msgpack.unpackb(txn.get(S_REC + _kpack((i,)))[1:])
            rec["age"] = age
            same_put(txn, rec, False)


def same_put_many(env: Any, recs: list[dict]) -> None:
    packb = msgpack.packb
    with env.begin(write=True) as txn:
        txn.get(SCHEMA)
        rkeys = [_kpack((key_of(r),)) for r in recs]
        pairs = [
            (S_REC + k, b"\x00" + packb(r)) for k, r in zip(rkeys, recs, strict=True)
        ]
        pairs += [
            (_kpack((age_of(r),), S_IDX) + SEP + k, k)
            for k, r in zip(rkeys, recs, strict=True)
        ]
        txn.cursor().putmulti(pairs)
        same_count(txn, len(recs))


def same_level_insert_each(db: Any, recs: list[dict]) -> None:
    get = db.get
    for r in recs:
        get(SCHEMA)
        rkey = _kpack((key_of(r),))
        full = S_REC + rkey
        old = get(full)
        raw = get(COUNT)
        n = 0 if raw is None else _kunpack(raw)[0]
        with db.write_batch(sync=False) as b:
            b.put(full, b"\x00" + msgpack.packb(r))
            if old is None:
                b.put(_kpack((age_of(r),), S_IDX) + SEP + rkey, rkey)
                b.put(COUNT, _kpack((n + 1,)))


def same_level_get_each(db: Any, ids: list[int]) -> None:
    get, unpackb = db.get, msgpack.unpackb
    for i in ids:
        unpackb(get(S_REC + _kpack((i,)))[1:])


# -- acid ---------------------------------------------------------------------


def acid_open(url: str) -> tuple[acid.Store, acid.Collection]:
    store = acid.open(url)
    coll = store.add_collection("users", key_func=lambda r: r["id"], encoder=ENCODER)
    coll.add_index("age", lambda r: r["age"])
    return store, coll


def acid_insert_all(store: acid.Store, coll: acid.Collection, recs: list) -> None:
    with store.begin(write=True):
        put = coll.put
        for r in recs:
            put(r)


def acid_update(
    store: acid.Store, coll: acid.Collection, ids: list, ages: list
) -> None:
    with store.begin(write=True):
        get, put = coll.get, coll.put
        for i, age in zip(ids, ages, strict=True):
            rec = get(i)
            rec["age"] = age
            put(rec)


def acid_get_each(coll: acid.Collection, ids: list[int]) -> None:
    get = coll.get
    for i in ids:
        get(i)


# -- runs ---------------------------------------------------------------------

Case = Callable[[str], float]


def cases(n: int) -> dict[str, dict[str, Case]]:
    recs = make_records(n)
    rng = random.Random(1)
    upd = rng.sample(range(n), n // 10)
    ages = [rng.randint(18, 90) for _ in upd]
    each = make_records(min(n, 20_000), seed=7)
    gets = [rng.randrange(n) for _ in range(min(n, 100_000))]
    lurl = "lmdb:{}/acid?map_size=8GiB&sync=false"

    def lmdb_loaded(tmp: str) -> tuple[acid.Store, acid.Collection]:
        store, coll = acid_open(lurl.format(tmp))
        acid_insert_all(store, coll, recs)
        return store, coll

    def raw_loaded(tmp: str) -> Any:
        env = raw_env(tmp)
        raw_insert_all(env, recs)
        return env

    def with_same(fn: Callable[[Any], Any], load: bool = True) -> Case:
        def case(tmp: str) -> float:
            env = raw_env(tmp)
            try:
                if load:
                    same_load(env, recs)
                return timed(lambda: fn(env))
            finally:
                env.close()

        return case

    def with_env(fn: Callable[[Any], Any], load: bool = True) -> Case:
        def case(tmp: str) -> float:
            env = raw_loaded(tmp) if load else raw_env(tmp)
            try:
                return timed(lambda: fn(env))
            finally:
                env.close()

        return case

    def with_acid(fn: Callable[[Any, Any], Any], load: bool = True) -> Case:
        def case(tmp: str) -> float:
            if load:
                store, coll = lmdb_loaded(tmp)
            else:
                store, coll = acid_open(lurl.format(tmp))
            try:
                return timed(lambda: fn(store, coll))
            finally:
                store.close()

        return case

    def put_many_floor(env: Any) -> None:
        packb = msgpack.packb
        with env.begin(write=True) as txn:
            put = txn.put
            for r in recs:
                i = r["id"]
                put(b"r" + _Q(i), packb(r))
                put(b"i" + _IQ(r["age"], i), b"")

    def level_raw(fn: Callable[[Any], Any], load: bool) -> Case:
        def case(tmp: str) -> float:
            db = plyvel.DB(tmp + "/level", **level_options())
            try:
                if load:
                    with db.write_batch() as b:
                        for r in recs:
                            b.put(b"r" + _Q(r["id"]), msgpack.packb(r))
                            b.put(b"i" + _IQ(r["age"], r["id"]), b"")
                return timed(lambda: fn(db))
            finally:
                db.close()

        return case

    def level_same(fn: Callable[[Any], Any], load: bool) -> Case:
        def case(tmp: str) -> float:
            db = plyvel.DB(tmp + "/slevel", **level_options())
            try:
                if load:
                    with db.write_batch() as b:
                        for r in recs:
                            rkey = _kpack((key_of(r),))
                            b.put(S_REC + rkey, b"\x00" + msgpack.packb(r))
                            b.put(_kpack((age_of(r),), S_IDX) + SEP + rkey, rkey)
                return timed(lambda: fn(db))
            finally:
                db.close()

        return case

    def level_acid(fn: Callable[[Any, Any], Any], load: bool) -> Case:
        def case(tmp: str) -> float:
            store, coll = acid_open(f"leveldb:{tmp}/alevel?sync=false")
            try:
                if load:
                    coll.put_many(recs) if hasattr(coll, "put_many") else (
                        acid_insert_all(store, coll, recs)
                    )
                return timed(lambda: fn(store, coll))
            finally:
                store.close()

        return case

    out: dict[str, dict[str, Case]] = {
        "update 10%": {
            "floor": with_env(lambda e: raw_update(e, upd, ages)),
            "acid": with_acid(lambda s, c: acid_update(s, c, upd, ages)),
            "same": with_same(lambda e: same_update(e, upd, ages)),
        },
        "insert, 1 txn each": {
            "floor": with_env(lambda e: raw_insert_each(e, each), load=False),
            "acid": with_acid(lambda s, c: [c.put(r) for r in each], load=False),
            "same": with_same(lambda e: same_insert_each(e, each), load=False),
        },
        "insert all, 1 txn": {
            "floor": with_env(lambda e: raw_insert_all(e, recs), load=False),
            "acid": with_acid(lambda s, c: acid_insert_all(s, c, recs), load=False),
            "same": with_same(lambda e: same_insert_all(e, recs), load=False),
        },
        "put_many": {
            "floor": with_env(put_many_floor, load=False),
            "acid": with_acid(lambda s, c: c.put_many(recs), load=False),
            "same": with_same(lambda e: same_put_many(e, recs), load=False),
            "sqlite": lambda tmp: timed(lambda: sqlite_put_many(tmp + "/s.db", recs)),
        },
        "leveldb get": {
            "floor": level_raw(lambda db: level_get_each(db, gets), True),
            "acid": level_acid(lambda s, c: acid_get_each(c, gets), True),
            "same": level_same(lambda db: same_level_get_each(db, gets), True),
        },
        "leveldb insert": {
            "floor": level_raw(lambda db: level_insert_each(db, each), False),
            "acid": level_acid(lambda s, c: [c.put(r) for r in each], False),
            "same": level_same(lambda db: same_level_insert_each(db, each), False),
        },
    }
    return out


def run(n: int, repeat: int, only: list[str] | None) -> None:
    table = cases(n)
    print(f"\n== n={n}, median of {repeat}, CPU time ==")
    print(
        f"{'operation':22} {'floor s':>9} {'acid s':>9} {'acid/floor':>10} "
        f"{'same/floor':>10} {'acid/same':>9}  other"
    )
    for label, contenders in table.items():
        if only and not any(o in label for o in only):
            continue
        if label == "put_many" and not hasattr(acid.Collection, "put_many"):
            continue
        names = list(contenders)
        times: dict[str, list[float]] = {k: [] for k in names}
        for rep in range(repeat):
            shift = rep % len(names)
            for name in names[shift:] + names[:shift]:
                tmp = tempfile.mkdtemp(prefix="acid-wbench-")
                try:
                    times[name].append(contenders[name](tmp))
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        extra = ""
        if "sqlite" in med:
            extra = f"sqlite/acid {med['sqlite'] / med['acid']:.2f}x"
        same = (
            f"{med['same'] / med['floor']:9.2f}x {med['acid'] / med['same']:8.2f}x"
            if "same" in med
            else f"{'':10} {'':9}"
        )
        print(
            f"{label:22} {med['floor']:9.4f} {med['acid']:9.4f} "
            f"{med['acid'] / med['floor']:9.2f}x {same}  {extra}",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", nargs="*", help="substrings of operation names")
    ap.add_argument(
        "--encoder",
        default="msgpack",
        choices=["msgpack", "json"],
        help="the encoder of acid's collection (the floors use msgpack)",
    )
    args = ap.parse_args()
    global ENCODER
    ENCODER = args.encoder
    print(
        f"acid.keylib implementation: {acid.keylib.IMPLEMENTATION}, encoder {ENCODER}"
    )
    for n in args.n:
        run(n, args.repeat, args.only)


if __name__ == "__main__":
    main()
