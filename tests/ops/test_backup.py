"""Online backup: a copy taken while writers commit is one instant's state."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import acid
from acid.errors import ConfigError
from tests.ops.conftest import Run, disk_url

PREFILL = 3000


def prefill(store: acid.Store) -> acid.Collection:
    log = store.add_collection("log")
    with store.begin(write=True):
        for _ in range(PREFILL):
            log.put({"pad": "x" * 200})
            store.count("n")
    return log


def assert_one_instant(store: acid.Store) -> int:
    """Writers keep counter ``n`` one ahead of the records: check it."""
    log = store.add_collection("log")
    keys = [k[0] for k in log.keys()]
    assert keys == list(range(1, len(keys) + 1))  # no hole, nothing torn
    assert store.counters()["n"] == len(keys) + 1
    return len(keys)


@pytest.mark.parametrize("engine", ["lmdb", "leveldb", "skiplist"])
def test_backup_while_a_writer_thread_commits(engine: str, tmp_path: Path) -> None:
    url = "skiplist:/" if engine == "skiplist" else disk_url(engine, tmp_path / "db")
    store = acid.open(url)
    log = prefill(store)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            while not stop.is_set():
                with store.begin(write=True):
                    log.put({"pad": "y" * 200})
                    store.count("n")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while store.counters()["n"] < PREFILL + 20:  # the writer is going
            time.sleep(0.001)
        dest = str(tmp_path / "bk")
        if engine == "skiplist":
            with pytest.raises(ConfigError, match="give a URL"):
                store.backup(dest)
            dest = f"lmdb:{dest}"
        result = store.backup(dest, batch=500)
    finally:
        stop.set()
        thread.join()
    assert not errors
    expect = "lmdb native copy" if engine == "lmdb" else "snapshot copy"
    assert result["method"] == expect
    final = assert_one_instant(store)
    copy = acid.open(result["dest"])
    seen = assert_one_instant(copy)
    assert PREFILL + 19 <= seen <= final
    assert result["keys"] > seen
    copy.close()
    # The destination exists now: a second backup there is refused.
    with pytest.raises(ConfigError, match="not empty"):
        store.backup(result["dest"])
    store.close()


WRITER = textwrap.dedent(
    """
    import os, sys, acid
    store = acid.open(sys.argv[1])
    log = store.add_collection("log")
    while not os.path.exists(sys.argv[2]):
        with store.begin(write=True):
            log.put({"pad": "z" * 200})
            store.count("n")
    store.close()
    """
)


def test_cli_backup_and_restore_while_a_writer_process_commits(
    acid_cmd: Run, tmp_path: Path
) -> None:
    url = f"lmdb:{tmp_path / 'db'}"
    store = acid.open(url)
    prefill(store)
    stop = tmp_path / "stop"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(stop)],
    )
    try:
        while store.counters()["n"] < PREFILL + 20:
            time.sleep(0.005)
        done = acid_cmd("backup", url, str(tmp_path / "bk"))
        assert done.returncode == 0, done.stderr
        assert "lmdb native copy" in done.stderr
        also = acid_cmd("backup", url, f"leveldb:{tmp_path / 'bk2'}")
        assert also.returncode == 0, also.stderr
        assert "snapshot copy" in also.stderr
    finally:
        stop.write_text("")
        proc.wait(timeout=60)
    assert proc.returncode == 0
    final = assert_one_instant(store)
    store.close()
    for backup, target in [
        ("bk", f"leveldb:{tmp_path / 'r1'}"),
        ("bk2", f"lmdb:{tmp_path / 'r2'}"),
    ]:
        done = acid_cmd("restore", str(tmp_path / backup), target)
        assert done.returncode == 0, done.stderr
        restored = acid.open(target)
        assert PREFILL + 19 <= assert_one_instant(restored) <= final
        restored.close()
    done = acid_cmd("restore", str(tmp_path / "bk"), f"leveldb:{tmp_path / 'r1'}")
    assert done.returncode == 2 and "not empty" in done.stderr
    done = acid_cmd("restore", str(tmp_path / "nothing"), f"lmdb:{tmp_path / 'r3'}")
    assert done.returncode == 1 and "no backup" in done.stderr
    assert not (tmp_path / "r3").exists()
    done = acid_cmd("backup", url, str(tmp_path / "bk"))
    assert done.returncode == 2 and "not empty" in done.stderr
