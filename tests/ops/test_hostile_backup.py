"""Backups to places that cannot hold them."""

from __future__ import annotations

from pathlib import Path

import pytest

import acid
from acid.errors import ConfigError
from tests.ops.conftest import Run


@pytest.mark.parametrize("dest", ["skiplist:/", "memory:/", "memory:"])
def test_a_backup_into_a_store_that_keeps_nothing_is_refused(
    tmp_path: Path, dest: str
) -> None:
    """It reported "N keys copied" and the copy vanished with the engine."""
    store = acid.open(f"lmdb:{tmp_path / 'db'}")
    store.add_collection("t").put({"x": 1})
    with pytest.raises(ConfigError, match="keeps nothing"):
        store.backup(dest)
    mem = acid.open("skiplist:/")
    mem.add_collection("t").put({"x": 1})
    with pytest.raises(ConfigError, match="keeps nothing"):
        mem.backup(dest)


def test_a_memory_backup_to_a_file_is_kept(tmp_path: Path) -> None:
    store = acid.open("skiplist:/")
    store.add_collection("t").put({"x": 1})
    dest = f"memory:{tmp_path / 'b.acid'}"
    assert store.backup(dest)["keys"] > 0
    back = acid.open(dest)
    assert list(back.add_collection("t").values()) == [{"x": 1}]
    assert back.check().ok


def test_cli_backup_into_memory_fails_with_one_line(
    tmp_path: Path, acid_cmd: Run
) -> None:
    url = f"lmdb:{tmp_path / 'db'}"
    assert acid_cmd("put", url, "t", input='{"x": 1}').returncode == 0
    proc = acid_cmd("backup", url, "skiplist:/")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("acid: error: skiplist:/ keeps nothing")
    assert len(proc.stderr.splitlines()) == 1 and proc.stdout == ""


@pytest.mark.parametrize("dest", ["file", "dir"])
def test_a_backup_onto_an_existing_file_or_store_is_refused(
    tmp_path: Path, dest: str
) -> None:
    store = acid.open(f"lmdb:{tmp_path / 'db'}")
    store.add_collection("t").put({"x": 1})
    target = tmp_path / "taken"
    if dest == "file":
        target.write_text("precious")
    else:
        other = acid.open(f"lmdb:{target}")
        other.add_collection("o").put({"y": 2})
        other.close()
    with pytest.raises(ConfigError, match="exists"):
        store.backup(str(target))
    if dest == "file":
        assert target.read_text() == "precious"
    else:
        kept = acid.open(f"lmdb:{target}")
        assert list(kept.add_collection("o").values()) == [{"y": 2}]
    with pytest.raises(ConfigError):
        store.backup(str(tmp_path / "db"))  # onto itself
