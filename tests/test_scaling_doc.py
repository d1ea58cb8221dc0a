"""The copy script of docs/scaling.md moves a whole store from LMDB to
PostgreSQL, and refuses a target that is not empty."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import acid
from tests.conftest import postgres_table_url

ROOT = Path(__file__).resolve().parent.parent


def test_copy_script_moves_a_store(postgres_url: str, tmp_path: Path) -> None:
    text = (ROOT / "docs" / "scaling.md").read_text()
    script = tmp_path / "copy_store.py"
    script.write_text(re.findall(r"```python\n(.+?)\n```", text, re.S)[0])
    source = f"lmdb:{tmp_path}/app"
    target = postgres_table_url(postgres_url, str(tmp_path))
    n = 6_000  # with its index entries, more than one batch of 10,000 keys
    with acid.open(source) as store, store.begin(write=True):
        people = store.add_collection("people")
        people.add_index("age", lambda r: r["age"])
        for i in range(n):
            people.put({"name": f"p{i}", "age": i % 90})
        store.count("visits", 41)

    def copy() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), source, target],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
        )

    done = copy()
    assert done.returncode == 0, done.stderr
    assert "copied" in done.stdout and "check: ok" in done.stdout
    with acid.open(target) as store:
        people = store.add_collection("people")
        age = people.add_index("age", lambda r: r["age"])
        assert len(list(people.keys())) == n
        assert age.count(7) == len([i for i in range(n) if i % 90 == 7])
        assert store.count("visits", 0) == 42
        assert store.check().ok
    again = copy()
    assert again.returncode != 0 and "not empty" in again.stderr
