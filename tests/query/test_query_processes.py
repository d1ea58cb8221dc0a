"""Two processes on one LMDB store: the record count stays exact and a
query's snapshot is not disturbed by the other process's commits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import acid

WRITER = """
import sys, acid
store = acid.open(sys.argv[1])
coll = store.add_collection("c")
coll.add_index("who", acid.field("who"))
for i in range(100):
    with store.begin(write=True):
        coll.put({"who": sys.argv[2], "i": i})
        if i % 10 == 0:
            coll.query({"who": sys.argv[2], "i": {"$lt": i}}).delete()
"""


def test_two_processes_keep_the_count_exact(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db"
    with acid.open(url) as store:
        store.add_collection("c").add_index("who", acid.field("who"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with acid.open(url) as store:
        coll = store.add_collection("c")
        coll.add_index("who", acid.field("who"))
        q = coll.query({"who": {"$in": ["a", "b"]}})
        before = iter(q)  # a read transaction of its own, taken now
        procs = [
            subprocess.Popen([sys.executable, "-c", WRITER, url, name], env=env)
            for name in ("a", "b")
        ]
        assert [p.wait(timeout=120) for p in procs] == [0, 0]
        assert list(before) == []
        # each writer keeps its records from i = 90 on
        assert len(coll) == 20 == q.count() == sum(1 for _ in coll.keys())
        assert sorted(r["i"] for r in coll.query({"who": "a"})) == list(range(90, 100))
        assert store.check().ok
