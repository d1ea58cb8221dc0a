"""A Store's own schema change must not hide a schema change made elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import acid
from acid.errors import ConstraintError

ROOT = Path(__file__).resolve().parents[2]


def test_own_schema_change_does_not_hide_another_stores_index(
    store: acid.Store,
) -> None:
    other = acid.Store(store.engine)
    mine = store.add_collection("c", key_func=lambda r: r["k"])
    mine.put({"k": 0, "n": 0})
    other.add_collection("c", key_func=lambda r: r["k"]).add_index(
        "n", lambda r: r["n"]
    )
    store.add_collection("unrelated")  # a schema change of our own
    with pytest.raises(ConstraintError, match="n"):
        mine.put({"k": 1, "n": 1})
    assert other.check().ok


def test_own_schema_change_does_not_hide_another_process_index(tmp_path: Path) -> None:
    url = f"lmdb:{tmp_path}/db"
    store = acid.open(url)
    mine = store.add_collection("c", key_func=lambda r: r["k"])
    mine.put({"k": 0, "n": 0})
    script = (
        "import sys, acid\n"
        "s = acid.open(sys.argv[1])\n"
        "c = s.add_collection('c', key_func=lambda r: r['k'])\n"
        "c.add_index('n', lambda r: r['n'])\n"
        "s.close()\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, url],
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    with store.begin(write=True):
        store.add_collection("unrelated")  # a schema change of our own first
        with pytest.raises(ConstraintError, match="n"):
            mine.put({"k": 1, "n": 1})
    store.close()
