"""A process killed mid-write leaves whole transactions only: every batch of
records and index entries is there in full or not at all, and every batch
the writer saw committed survived."""

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

BATCH = 50

WRITER = """
import sys, acid
store = acid.open(sys.argv[1])
coll = store.add_collection("c")
coll.add_index("batch", lambda r: r["b"])
manual = "sync=manual" in sys.argv[1]  # durable at store.sync(), not at commit
b = 0
while True:
    with store.begin(write=True):
        for i in range(BATCH):
            coll.put({"b": b, "i": i, "pad": "x" * 200}, key=(b, i))
    if manual and b % 3 == 2:
        store.sync()
    if not manual or b % 3 == 2:
        print(b, flush=True)  # durable now
    b += 1
""".replace("BATCH", str(BATCH))


def url_for(engine: str, tmp_path: Path) -> str:
    if engine == "leveldb" and importlib.util.find_spec("plyvel") is None:
        pytest.skip("plyvel is not installed")
    if engine.startswith("memory"):  # the memory engine saved to a file
        mode = engine.partition("-")[2]
        return f"memory:{tmp_path}/db.acid?sync={mode}"
    return f"{engine}:{tmp_path}/db"


ENGINES = ["lmdb", "leveldb", "memory-commit", "memory-manual"]


@pytest.mark.parametrize("engine", ENGINES)
def test_killed_writer_leaves_whole_transactions(engine: str, tmp_path: Path) -> None:
    url = url_for(engine, tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert proc.stdout is not None
    committed = -1
    deadline = time.monotonic() + 60
    while committed < 20 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        committed = int(line)
    time.sleep(0.003 * (committed % 7))  # land the kill somewhere inside a batch
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert committed >= 20, "the writer did not get going"

    with acid.open(url) as store:
        coll = store.add_collection("c")
        idx = coll.add_index("batch", lambda r: r["b"])
        sizes: dict[int, int] = {}
        for b, _i in coll.keys():
            sizes[b] = sizes.get(b, 0) + 1
        assert all(n == BATCH for n in sizes.values()), sizes
        assert set(range(committed + 1)) <= set(sizes)  # nothing committed lost
        assert set(sizes) == set(range(max(sizes) + 1))  # batches land in order
        assert idx.count() == BATCH * len(sizes)
        assert store.check().ok
