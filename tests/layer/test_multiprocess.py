"""Several processes writing one LMDB store: auto-increment keys stay unique
and every index entry matches its record."""

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
coll.add_index("who", lambda r: r["who"])
for i in range(150):
    with store.begin(write=True):
        coll.put({"who": sys.argv[2], "i": i})
"""


def test_processes_share_one_lmdb_store(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db"
    with acid.open(url) as store:  # create it first: collection ids are fixed here
        store.add_collection("c").add_index("who", lambda r: r["who"])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, name], env=env)
        for name in ("a", "b", "c")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    with acid.open(url) as store:
        coll = store.add_collection("c")
        idx = coll.add_index("who", lambda r: r["who"])
        keys = [k[0] for k in coll.keys()]
        assert keys == list(range(1, 451))  # unique, gap-free auto-increment
        assert [idx.count(who) for who in "abc"] == [150, 150, 150]
        assert store.check().ok
