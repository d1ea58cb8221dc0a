"""put_many across processes: killed with SIGKILL mid-batch, and two
writers on one LMDB file at once. Batches land whole or not at all."""

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

BATCH = 2000
ROOT = str(Path(__file__).resolve().parents[2])

WRITER = """
import sys, acid
store = acid.open(sys.argv[1])
coll = store.add_collection("c", key_func=lambda r: (r["w"], r["b"], r["i"]))
coll.add_index("batch", lambda r: (r["w"], r["b"]))
coll.add_index("tags", lambda r: [r["i"] % 3, r["i"] % 5])
w, limit = int(sys.argv[2]), int(sys.argv[3])
b = 0
while b < limit:
    recs = [{"w": w, "b": b, "i": i, "pad": "x" * 60} for i in range(BATCH)]
    coll.put_many(recs)  # autocommit: one transaction per batch
    if b % 2:  # and replace half of the previous batch in a block
        with store.begin(write=True):
            coll.put_many([dict(r, pad="y") for r in recs[: BATCH // 2]])
            coll.delete_many([(w, b, i) for i in range(BATCH // 2, BATCH // 2 + 10)])
    print(b, flush=True)
    b += 1
""".replace("BATCH", str(BATCH))


def _url(engine: str, tmp_path: Path) -> str:
    if engine == "leveldb" and importlib.util.find_spec("plyvel") is None:
        pytest.skip("plyvel is not installed")
    if engine == "lmdb":
        return f"lmdb:{tmp_path}/db?map_size=1GiB"
    if engine == "memory":  # the memory engine, every commit in its log
        return f"memory:{tmp_path}/db.acid?sync=commit"
    return f"leveldb:{tmp_path}/db"


def _writer(url: str, who: int, limit: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(who), str(limit)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": ROOT},
    )


def _batches(url: str) -> dict[tuple[int, int], list[int]]:
    """``(writer, batch) -> sorted record numbers``, after checking indexes."""
    with acid.open(url) as store:
        coll = store.add_collection("c", key_func=lambda r: (r["w"], r["b"], r["i"]))
        coll.add_index("batch", lambda r: (r["w"], r["b"]))
        coll.add_index("tags", lambda r: [r["i"] % 3, r["i"] % 5])
        assert store.check().ok
        found: dict[tuple[int, int], list[int]] = {}
        for w, b, i in coll.keys():
            found.setdefault((w, b), []).append(i)
        return found


@pytest.mark.parametrize("engine", ["lmdb", "leveldb", "memory"])
def test_killed_mid_put_many_leaves_whole_batches(engine: str, tmp_path: Path) -> None:
    url = _url(engine, tmp_path)
    proc = _writer(url, 0, 10**6)
    assert proc.stdout is not None
    committed = -1
    deadline = time.monotonic() + 60
    while committed < 6 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        committed = int(line)
    time.sleep(0.01 * (committed % 5))  # somewhere inside a batch
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert committed >= 6, "the writer did not get going"
    found = _batches(url)
    batches = sorted(b for _, b in found)
    assert batches == list(range(len(batches)))  # in order, none lost
    assert len(batches) >= committed + 1
    full = list(range(BATCH))
    cut = [i for i in full if not BATCH // 2 <= i < BATCH // 2 + 10]
    for b in batches:
        # An odd batch is followed by a block that deletes ten of its
        # records: the last batch's block may not have landed.
        want = [cut] if b % 2 == 0 or b < batches[-1] else [full, cut]
        if b % 2 == 0:
            want = [full]
        assert found[(0, b)] in want, b


def test_two_processes_put_many_on_one_lmdb_file(tmp_path: Path) -> None:
    url = _url("lmdb", tmp_path)
    with acid.open(url) as store:  # create the schema once, before the race
        coll = store.add_collection("c", key_func=lambda r: (r["w"], r["b"], r["i"]))
        coll.add_index("batch", lambda r: (r["w"], r["b"]))
        coll.add_index("tags", lambda r: [r["i"] % 3, r["i"] % 5])
    procs = [_writer(url, w, 6) for w in (0, 1)]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        assert out.split() == [str(b) for b in range(6)]
    found = _batches(url)
    full = list(range(BATCH))
    cut = [i for i in full if not BATCH // 2 <= i < BATCH // 2 + 10]
    assert found == {(w, b): cut if b % 2 else full for w in (0, 1) for b in range(6)}
