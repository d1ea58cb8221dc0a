"""No lost updates with concurrent writers: processes each increment one
counter and one record field in retried write transactions; afterwards both
hold exactly the number of increments and the indexes check out.

Every increment reads and writes the same two keys, so the writers conflict
all the time: this is the worst case for the retry loop, and the conflict
count it prints says how bad. Run the full size with ``-m stress -s``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import acid
from tests.conftest import postgres_table_url

WORKER = """
import json, random, sys, time
import acid
from acid.errors import ConflictError

store = acid.open(sys.argv[1])
coll = store.add_collection("c")
coll.add_index("n", lambda r: r["n"])
conflicts = 0

def bump():
    store.count("hits", 1, init=0)
    rec = coll.get("r")
    rec["n"] += 1
    coll.put(rec, key="r")

for _ in range(int(sys.argv[2])):
    # TODO(issue 10): store.transact(bump), once it exists.
    for attempt in range(1, 10_000):
        try:
            with store.begin(write=True):
                bump()
            break
        except ConflictError:
            conflicts += 1
            time.sleep(random.uniform(0, min(0.02, 0.0005 * 2 ** min(attempt, 10))))
store.close()
print(json.dumps({"conflicts": conflicts}))
"""


def run_lost_updates(url: str, processes: int, each: int) -> int:
    """Run the workers; return the number of conflicts they retried."""
    with acid.open(url) as store:
        coll = store.add_collection("c")
        coll.add_index("n", lambda r: r["n"])
        coll.put({"n": 0}, key="r")
        store.count("hits", 0, init=0)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(each)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * processes, outputs
    conflicts = sum(json.loads(out)["conflicts"] for out in outputs)
    with acid.open(url) as store:
        coll = store.add_collection("c")
        idx = coll.add_index("n", lambda r: r["n"])
        total = processes * each
        assert store.count("hits", 0) == total
        assert coll.get("r") == {"n": total}
        assert idx.count(total) == 1 and idx.count(total - 1) == 0
        assert store.check().ok
        where = store.engine.url
    print(
        f"\nlost updates on {where}: {processes} processes x {each} "
        f"= {processes * each} transactions, {conflicts} conflicts retried "
        f"({conflicts / (processes * each):.2f} per transaction)"
    )
    return conflicts


def test_no_lost_updates_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    run_lost_updates(postgres_table_url(postgres_url, str(tmp_path)), 4, 60)


@pytest.mark.stress
def test_no_lost_updates_on_postgresql_full(postgres_url: str, tmp_path: Path) -> None:
    run_lost_updates(postgres_table_url(postgres_url, str(tmp_path)), 4, 500)
