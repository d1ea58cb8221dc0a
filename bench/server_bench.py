"""The PostgreSQL engine against psycopg doing the same work by hand.

Run: ``python bench/server_bench.py [--url URL] [--repeats R]``

Without ``--url`` (or ``ACID_BENCH_POSTGRES_URL``) a throwaway server is
started from the installed binaries (``apt-get install postgresql``), as
the tests do. Everything runs over loopback, in one run, so that the ratios
compare like with like on a noisy shared machine:

- single gets, single-record inserts (each its own transaction) and
  100-row range scans: the engine (``acid.engines``) and the collection
  layer (``acid.Store``), against psycopg running the statements by hand
  (one autocommit statement each; the collection reference also packs and
  unpacks the value with msgpack). Client CPU time (``time.process_time``),
  the median of rotated repetitions, and the ratio acid / psycopg;
- 1,000 gets in one transaction (``get_many``: one statement) against 1,000
  single gets, in CPU and in wall time;
- write throughput of 1 and 2 processes on disjoint keys (wall time);
- contention: processes incrementing one counter, with the conflict rate.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgpack
import psycopg

import acid
from acid.engines import Engine, from_url

ROOT = Path(__file__).resolve().parent.parent
N = 2000  # records in the table
SCAN = 100  # rows per range scan
OPS = 300  # operations per timed run


def clocks(fn: Callable[[], object]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def rotated(
    cases: dict[str, Callable[[], object]], repeats: int
) -> dict[str, tuple[float, float]]:
    """Median (CPU, wall) per case over ``repeats`` rounds, the order of the
    cases rotating from round to round."""
    names = list(cases)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            runs[name].append(clocks(cases[name]))
    return {
        name: (
            statistics.median(c for c, _ in got),
            statistics.median(w for _, w in got),
        )
        for name, got in runs.items()
    }


def us(seconds: float, ops: int) -> str:
    return f"{seconds / ops * 1e6:8.1f} us"


# -- references: psycopg by hand ------------------------------------------------


class ByHand:
    """psycopg connections as an application would use them by hand: one in
    autocommit mode (a statement is its own transaction), one for
    ``SERIALIZABLE`` write transactions and one for ``REPEATABLE READ READ
    ONLY`` read transactions (psycopg sends the ``BEGIN``)."""

    def __init__(self, url: str) -> None:
        options = {"prepare_threshold": None}
        self.auto = psycopg.connect(url, autocommit=True, **options)
        self.write = psycopg.connect(url, **options)
        self.write.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        self.read = psycopg.connect(url, **options)
        self.read.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        self.read.read_only = True

    def close(self) -> None:
        for conn in (self.auto, self.write, self.read):
            conn.close()


def statements(table: str) -> dict[str, bytes]:
    t = f'"{table}"'
    return {
        "get": f"SELECT value FROM {t} WHERE key = %s".encode(),
        "scan": f"SELECT key, value FROM {t} WHERE key >= %s ORDER BY key LIMIT %s".encode(),  # noqa: E501
        "put": (
            f"INSERT INTO {t} (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        ).encode(),
    }


# -- engine level ---------------------------------------------------------------


def engine_cases(
    engine: Engine, hand: ByHand, table: str, keys: list[bytes]
) -> dict[str, Callable[[], object]]:
    rng = random.Random(2)
    probes = [rng.choice(keys) for _ in range(OPS)]
    starts = [rng.choice(keys[: -SCAN - 1]) for _ in range(OPS // 10)]
    q = statements(table)
    counter = iter(range(10**9))
    auto, write, read = hand.auto, hand.write, hand.read

    def acid_get() -> None:
        for key in probes:
            engine.get(key)

    def raw_get() -> None:  # the same statement: one autocommit SELECT
        for key in probes:
            auto.execute(q["get"], (key,), binary=True).fetchone()

    def acid_put() -> None:
        for _ in range(OPS):
            with engine.begin(write=True) as txn:
                txn.put(b"ins%09d" % next(counter), b"v" * 100)

    def raw_put() -> None:  # BEGIN SERIALIZABLE, INSERT, COMMIT
        for _ in range(OPS):
            write.execute(q["put"], (b"ins%09d" % next(counter), b"v" * 100))
            write.commit()

    def raw_put_one() -> None:  # one autocommit INSERT
        for _ in range(OPS):
            auto.execute(q["put"], (b"ins%09d" % next(counter), b"v" * 100))

    def acid_scan() -> None:
        for start in starts:
            with engine.begin() as txn:
                it = txn.iter(start)
                for _ in range(SCAN):
                    next(it)

    # The references step through the rows as the engine's caller does.
    def raw_scan() -> None:  # BEGIN REPEATABLE READ READ ONLY, SELECT, ROLLBACK
        for start in starts:
            rows = read.execute(q["scan"], (start, SCAN), binary=True).fetchall()
            it = iter(rows)
            for _ in range(SCAN):
                next(it)
            read.rollback()

    def raw_scan_one() -> None:  # one autocommit SELECT
        for start in starts:
            rows = auto.execute(q["scan"], (start, SCAN), binary=True).fetchall()
            it = iter(rows)
            for _ in range(SCAN):
                next(it)

    return {
        "get acid": acid_get,
        "get same": raw_get,
        "get one": raw_get,
        "insert acid": acid_put,
        "insert same": raw_put,
        "insert one": raw_put_one,
        "scan acid": acid_scan,
        "scan same": raw_scan,
        "scan one": raw_scan_one,
    }


def batch_cases(engine: Engine, keys: list[bytes]) -> dict[str, Callable[[], object]]:
    rng = random.Random(3)
    probes = [rng.choice(keys) for _ in range(1000)]

    def singles() -> None:
        for key in probes:
            engine.get(key)

    def in_one_txn() -> None:
        with engine.begin() as txn:
            for key in probes:
                txn.get(key)

    def get_many() -> None:
        with engine.begin() as txn:
            txn.get_many(probes)  # type: ignore[attr-defined]

    return {
        "1000 single gets": singles,
        "1000 gets, one txn": in_one_txn,
        "get_many(1000)": get_many,
    }


# -- collection level -------------------------------------------------------------


def layer_cases(
    store: acid.Store, hand: ByHand, table: str
) -> dict[str, Callable[[], object]]:
    """The collection against psycopg + msgpack doing what it does: a get
    is one SELECT; an insert reads the old record then writes the new one
    in a SERIALIZABLE transaction; a range read is a REPEATABLE READ READ
    ONLY transaction with one SELECT."""
    coll = store.add_collection("people")
    rng = random.Random(4)
    probes = [rng.randrange(N) for _ in range(OPS)]
    starts = [rng.randrange(N - SCAN - 1) for _ in range(OPS // 10)]
    raw_keys = [b"p%08d" % i for i in range(N)]
    q = statements(table)
    with hand.auto.transaction():
        hand.auto.cursor().executemany(
            q["put"],
            [
                (k, msgpack.packb({"name": f"p{i}", "n": i}))
                for i, k in enumerate(raw_keys)
            ],
        )
    counter = iter(range(N, 10**9))
    auto, write, read = hand.auto, hand.write, hand.read

    def acid_get() -> None:
        for i in probes:
            coll.get(i)

    def raw_get() -> None:
        for i in probes:
            row = auto.execute(q["get"], (raw_keys[i],), binary=True).fetchone()
            msgpack.unpackb(row[0])  # type: ignore[index]

    def acid_put() -> None:
        for _ in range(OPS):
            i = next(counter)
            coll.put({"name": f"p{i}", "n": i}, key=i)

    def raw_put() -> None:
        for _ in range(OPS):
            i = next(counter)
            key = b"q%09d" % i
            write.execute(q["get"], (key,), binary=True).fetchone()
            write.execute(q["put"], (key, msgpack.packb({"name": f"p{i}", "n": i})))
            write.commit()

    def raw_put_one() -> None:
        for _ in range(OPS):
            i = next(counter)
            rec = msgpack.packb({"name": f"p{i}", "n": i})
            auto.execute(q["put"], (b"q%09d" % i, rec))

    def acid_scan() -> None:
        for lo in starts:
            list(coll.values(lo=lo, hi=lo + SCAN - 1))

    def raw_scan() -> None:
        for lo in starts:
            rows = read.execute(q["scan"], (raw_keys[lo], SCAN), binary=True)
            [msgpack.unpackb(v) for _, v in rows.fetchall()]
            read.rollback()

    def raw_scan_one() -> None:
        for lo in starts:
            rows = auto.execute(q["scan"], (raw_keys[lo], SCAN), binary=True)
            [msgpack.unpackb(v) for _, v in rows.fetchall()]

    return {
        "get acid": acid_get,
        "get same": raw_get,
        "get one": raw_get,
        "insert acid": acid_put,
        "insert same": raw_put,
        "insert one": raw_put_one,
        "scan acid": acid_scan,
        "scan same": raw_scan,
        "scan one": raw_scan_one,
    }


# -- processes --------------------------------------------------------------------

WRITER = """
import json, sys, time
from acid.engines import from_url
engine = from_url(sys.argv[1])
prefix, txns, start_at = sys.argv[2].encode(), int(sys.argv[3]), float(sys.argv[4])
while time.time() < start_at:
    time.sleep(0.001)
t0 = time.perf_counter()
for t in range(txns):
    with engine.begin(write=True) as txn:
        for i in range(10):
            txn.put(prefix + b"%06d-%02d" % (t, i), b"v" * 100)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""

BUMPER = """
import json, sys, time
import acid
store = acid.open(sys.argv[1])
txns, start_at = int(sys.argv[2]), float(sys.argv[3])
conflicts = 0

def counted(exc, attempt):
    global conflicts
    conflicts += 1

policy = acid.Backoff(base=0.0005, cap=0.02, on_retry=counted)
while time.time() < start_at:
    time.sleep(0.001)
t0 = time.perf_counter()
for _ in range(txns):
    store.transact(store.count, "hot", retries=10_000, backoff=policy)
print(json.dumps({"seconds": time.perf_counter() - t0, "conflicts": conflicts}))
"""


def spawn(script: str, args: list[str]) -> list[dict[str, float]]:
    """Run one process per argument list, started together; their reports."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start_at = str(time.time() + 1.0)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, *a, start_at],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for a in args
    ]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed: {outs}")
    return [json.loads(out) for out in outs]


def writers(url: str, txns: int, repeats: int) -> tuple[float, float]:
    """Median committed transactions per second of 1 and of 2 processes."""
    one, two = [], []
    for r in range(repeats):
        for n in (1, 2) if r % 2 == 0 else (2, 1):
            reports = spawn(
                WRITER, [[url, f"w{r}-{n}-{p}/", str(txns)] for p in range(n)]
            )
            rate = n * txns / max(rep["seconds"] for rep in reports)
            (one if n == 1 else two).append(rate)
    return statistics.median(one), statistics.median(two)


def contention(url: str, procs: int, txns: int) -> tuple[float, float]:
    """(commits per second, conflicts per attempt) of ``procs`` processes
    incrementing one key."""
    reports = spawn(BUMPER, [[url, str(txns)] for _ in range(procs)])
    conflicts = sum(rep["conflicts"] for rep in reports)
    seconds = max(rep["seconds"] for rep in reports)
    return procs * txns / seconds, conflicts / (conflicts + procs * txns)


# -- main ---------------------------------------------------------------------------


def table_url(server: str, table: str) -> str:
    return f"{server}{'&' if '?' in server else '?'}table={table}"


def report(title: str, got: dict[str, tuple[float, float]], ops: int) -> None:
    print(f"\n{title}")
    print(
        "  per operation, client CPU / wall. 'same': psycopg sending the same "
        "statements by hand;\n  'one': a single autocommit statement (no "
        "transaction). Ratios: acid / psycopg, in CPU (wall)."
    )
    for kind in ("get", "insert", "scan"):
        n = ops if kind != "scan" else ops // 10
        a_cpu, a_wall = got[f"{kind} acid"]
        s_cpu, s_wall = got[f"{kind} same"]
        o_cpu, o_wall = got[f"{kind} one"]
        print(
            f"  {kind:6} acid {us(a_cpu, n)} / {us(a_wall, n)} | same "
            f"{us(s_cpu, n)} / {us(s_wall, n)}  {a_cpu / s_cpu:4.2f}x "
            f"({a_wall / s_wall:4.2f}x) | one {us(o_cpu, n)}  "
            f"{a_cpu / o_cpu:4.2f}x ({a_wall / o_wall:4.2f}x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("ACID_BENCH_POSTGRES_URL"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--writer-txns", type=int, default=300)
    parser.add_argument("--contention-txns", type=int, default=200)
    args = parser.parse_args()
    server = None
    url = args.url
    if not url:
        sys.path.insert(0, str(ROOT))
        from tests import pgserver

        why = pgserver.missing()
        if why:
            raise SystemExit(f"no server: {why}; or pass --url")
        server = pgserver.launch()
        url = server.url
    try:
        run(url, args)
    finally:
        if server is not None:
            server.stop()
            server.remove()


def run(url: str, args: argparse.Namespace) -> None:
    tag = f"b{os.getpid()}"
    hand = ByHand(url)
    conn = hand.auto
    version = conn.info.server_version
    print(f"server: PostgreSQL {version}, psycopg {psycopg.__version__}, loopback")
    keys = [b"k%08d" % i for i in range(N)]

    engine = from_url(table_url(url, f"{tag}_engine"))
    with engine.begin(write=True) as txn:
        for key in keys:
            txn.put(key, b"v" * 100)
    report(
        "engine: acid.engines vs psycopg, same table",
        rotated(engine_cases(engine, hand, f"{tag}_engine", keys), args.repeats),
        OPS,
    )

    batch = rotated(batch_cases(engine, keys), args.repeats)
    print("\n1,000 gets (client CPU / wall)")
    base_cpu, base_wall = batch["1000 single gets"]
    for name, (cpu, wall) in batch.items():
        print(
            f"  {name:20} {cpu * 1e3:8.2f} ms / {wall * 1e3:8.2f} ms   "
            f"{base_cpu / cpu:6.1f}x / {base_wall / wall:6.1f}x faster than singles"
        )
    engine.close()

    with acid.open(table_url(url, f"{tag}_layer")) as store:
        coll = store.add_collection("people")
        with store.begin(write=True):
            for i in range(N):
                coll.put({"name": f"p{i}", "n": i}, key=i)
        conn.execute(
            f'CREATE TABLE "{tag}_raw" (key bytea PRIMARY KEY, value bytea)'.encode()
        )
        report(
            "collection: acid.Store/Collection vs psycopg + msgpack",
            rotated(layer_cases(store, hand, f"{tag}_raw"), args.repeats),
            OPS,
        )

    w_url = table_url(url, f"{tag}_writers")
    from_url(w_url).close()  # create the table once
    one, two = writers(w_url, args.writer_txns, max(3, args.repeats // 2))
    print("\nwriters on disjoint keys (10 puts per transaction, wall time)")
    print(f"  1 process  {one:8.0f} txn/s")
    print(f"  2 processes {two:7.0f} txn/s   {two / one:4.2f}x one")

    c_url = table_url(url, f"{tag}_hot")
    from_url(c_url).close()
    print("\ncontention: processes incrementing one counter (store.transact)")
    for procs in (1, 2, 4):
        rate, conflict_rate = contention(c_url, procs, args.contention_txns)
        print(
            f"  {procs} process{'es' if procs > 1 else '  '} {rate:8.0f} commits/s   "
            f"{conflict_rate:6.1%} of attempts conflicted"
        )
    with acid.open(c_url) as store:
        total = store.count("hot", 0)
    expected = 1 + 7 * args.contention_txns  # a counter starts at 1
    print(f"  final counter {total}, expected {expected}")
    hand.close()


if __name__ == "__main__":
    main()
