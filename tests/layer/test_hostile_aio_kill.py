"""kill -9 of a process in the middle of acid.aio writes: on LMDB and
LevelDB nothing partial is visible afterwards, whether the transaction was
an ``async with`` block of awaited puts (many tasks at once), a plain
function given to ``transact``, or an autocommit put; and every
transaction the writer saw committed survived."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import acid

BATCH = 40

WRITER = """
import asyncio, sys, acid.aio
BATCH = {BATCH}

async def main():
    store = await acid.aio.open(sys.argv[1])
    coll = await store.add_collection("c")
    await coll.add_index("batch", lambda r: r["b"])
    b = 0

    def plain(b):
        for i in range(BATCH):
            coll.blocking.put({"b": b, "i": i, "pad": "x" * 300}, key=(b, i))
        store.blocking.count("batches")

    async def one(b, i):
        await coll.put({"b": b, "i": i, "pad": "x" * 300}, key=(b, i))

    while True:
        if b % 3 == 0:
            await store.transact(plain, b)
        elif b % 3 == 1:
            async with store.begin(write=True):
                await asyncio.gather(*(one(b, i) for i in range(BATCH)))
                await store.count("batches")
        else:  # many tasks, each its own transaction, then the batch marker
            await asyncio.gather(*(coll.put({"b": -1, "i": i}, key=(-b, i))
                                   for i in range(5)))
            async with store.begin(write=True):
                for i in range(BATCH):
                    await coll.put({"b": b, "i": i, "pad": "x" * 300}, key=(b, i))
                await store.count("batches")
        print(b, flush=True)
        b += 1

asyncio.run(main())
""".replace("{BATCH}", str(BATCH))


@pytest.mark.parametrize("engine", ["lmdb", "leveldb"])
def test_killed_aio_writer_leaves_whole_transactions(
    engine: str, tmp_path: Path
) -> None:
    if engine == "leveldb" and importlib.util.find_spec("plyvel") is None:
        pytest.skip("plyvel is not installed")
    url = f"{engine}:{tmp_path}/db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert proc.stdout is not None
    committed = -1
    deadline = time.monotonic() + 60
    try:
        while committed < 15 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            committed = int(line)
        time.sleep(0.002 * (committed % 5))  # land the kill inside a batch
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert committed >= 15, "the writer did not get going"

    with acid.open(url) as store:
        coll = store.add_collection("c")
        idx = coll.add_index("batch", lambda r: r["b"])
        sizes: dict[int, int] = {}
        for b, _i in coll.keys():
            if b >= 0:
                sizes[b] = sizes.get(b, 0) + 1
        assert all(n == BATCH for n in sizes.values()), sizes
        assert set(range(committed + 1)) <= set(sizes)  # nothing committed lost
        assert set(sizes) == set(range(max(sizes) + 1))  # batches land in order
        assert store.count("batches", 0) == len(sizes) + 1  # the counter with them
        assert idx.count(lo=0) == BATCH * len(sizes)
        assert store.check().ok
