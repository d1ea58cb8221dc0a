"""The memory engine: versions pinned by readers, its file (snapshot, log,
lock) under damage and failures, and optimistic concurrent writers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import pytest

import acid
from acid.engines import from_url
from acid.engines import memory as memory_module
from acid.engines.memory import MemoryEngine
from acid.engines.skiplist import SkipListEngine
from acid.errors import ConfigError, ConflictError, CorruptionError, EngineError

ROOT = Path(__file__).resolve().parents[2]


def put(engine: MemoryEngine, key: bytes, value: bytes) -> None:
    with engine.begin(write=True) as txn:
        txn.put(key, value)


def everything(engine: MemoryEngine) -> list[tuple[bytes, bytes]]:
    with engine.begin() as txn:
        return list(txn.iter(b""))


# -- versions ---------------------------------------------------------------------


def test_skiplist_is_the_memory_engine() -> None:
    assert SkipListEngine is MemoryEngine
    with from_url("skiplist:/") as engine:
        assert isinstance(engine, MemoryEngine) and not engine.persistent


def test_an_old_version_is_freed_when_its_last_reader_goes() -> None:
    engine = MemoryEngine()
    put(engine, b"a", b"1")
    reader = engine.begin()
    scan = reader.iter(b"")  # pins the version by itself too
    old = weakref.ref(engine._current)
    put(engine, b"b", b"2")
    assert old() is not None and old() is not engine._current  # copied
    reader.abort()
    assert old() is not None  # the scan still holds it
    del scan
    assert old() is None
    dropped = engine.begin()  # dropped without ending
    old = weakref.ref(engine._current)
    put(engine, b"c", b"3")
    del dropped
    assert old() is None


def test_unpinned_versions_change_in_place() -> None:
    engine = MemoryEngine()
    put(engine, b"a", b"1")
    # ids, not the objects: holding the version would pin it.
    version, root = id(engine._current), id(engine._current.root)
    put(engine, b"b", b"2")
    assert (id(engine._current), id(engine._current.root)) == (version, root)
    reader = engine.begin()
    put(engine, b"c", b"3")
    assert id(engine._current) != version  # pinned: copied
    assert list(reader.iter(b"")) == [(b"a", b"1"), (b"b", b"2")]
    reader.abort()
    version, root = id(engine._current), id(engine._current.root)
    put(engine, b"d", b"4")  # the reader ended: unpinned again
    assert (id(engine._current), id(engine._current.root)) == (version, root)
    with engine.begin(write=True) as txn:  # too big for in place
        for i in range(memory_module.INPLACE_MAX + 1):
            txn.put(b"k%06d" % i, b"v")
    assert id(engine._current) != version
    assert len(everything(engine)) == memory_module.INPLACE_MAX + 5


def test_a_scan_started_before_a_commit_keeps_its_snapshot() -> None:
    engine = MemoryEngine()
    for key in (b"a", b"b", b"c"):
        put(engine, key, b"1")
    reader = engine.begin()
    scan = reader.iter(b"")
    assert next(scan) == (b"a", b"1")
    with engine.begin(write=True) as txn:
        txn.delete(b"b")
        txn.put(b"bb", b"2")
    assert list(scan) == [(b"b", b"1"), (b"c", b"1")]
    reader.abort()


def test_a_big_commit_while_a_reader_is_pinned() -> None:
    engine = MemoryEngine()
    with engine.begin(write=True) as txn:
        for i in range(20_000):
            txn.put(b"%06d" % i, b"old")
    reader = engine.begin()
    with engine.begin(write=True) as txn:
        for i in range(0, 20_000, 2):
            txn.delete(b"%06d" % i)
        for i in range(20_000, 30_000):
            txn.put(b"%06d" % i, b"new")
    assert reader.get(b"000000") == b"old" and reader.get(b"020000") is None
    assert sum(1 for _ in reader.iter(b"")) == 20_000
    assert len(everything(engine)) == 20_000


# -- the file ---------------------------------------------------------------------


def test_manual_sync_saves_at_sync_and_close(tmp_path: Path) -> None:
    path = tmp_path / "data.acid"
    engine = from_url(f"memory:{path}")
    assert engine.persistent and not path.exists()
    put(engine, b"a", b"1")
    engine.flush()
    assert path.exists()
    put(engine, b"b", b"2")
    engine.close()
    with from_url(f"memory:{path}") as again:
        assert everything(again) == [(b"a", b"1"), (b"b", b"2")]  # type: ignore[arg-type]


def test_store_sync_is_a_no_op_where_nothing_is_needed(tmp_path: Path) -> None:
    for url in ("memory:/", f"lmdb:{tmp_path}/lmdb"):
        with acid.open(url) as store:
            store.add_collection("c").put({"x": 1}, key=1)
            store.sync()


def test_manual_crash_loses_only_what_followed_the_last_sync(tmp_path: Path) -> None:
    path = tmp_path / "data.acid"
    script = f"""
import os
from acid.engines import from_url
engine = from_url("memory:{path}")
for key in (b"a", b"b"):
    with engine.begin(write=True) as txn:
        txn.put(key, b"1")
engine.flush()
with engine.begin(write=True) as txn:
    txn.put(b"lost", b"1")
    txn.delete(b"a")
os._exit(0)  # no close: as if killed
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
    with from_url(f"memory:{path}") as again:
        assert everything(again) == [(b"a", b"1"), (b"b", b"1")]  # type: ignore[arg-type]


def crashed_log(tmp_path: Path, commits: int) -> Path:
    """A store of ``commits`` logged commits whose process died (no close)."""
    path = tmp_path / "data.acid"
    script = f"""
import os
from acid.engines import from_url
engine = from_url("memory:{path}?sync=commit")
for i in range({commits}):
    with engine.begin(write=True) as txn:
        txn.put(b"k%d" % i, b"v%d" % i)
os._exit(0)
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
    return path


def test_sync_commit_survives_a_crash(tmp_path: Path) -> None:
    path = crashed_log(tmp_path, 5)
    assert not path.exists()  # nothing but the log
    with from_url(f"memory:{path}?sync=commit") as engine:
        assert len(everything(engine)) == 5  # type: ignore[arg-type]
    with from_url(f"memory:{path}") as engine:  # compacted at close
        assert len(everything(engine)) == 5  # type: ignore[arg-type]
    assert os.path.getsize(str(path) + ".log") == 24  # an empty log


@pytest.mark.parametrize("cut", [1, 5, 9, 20])
def test_a_torn_log_tail_is_ignored(tmp_path: Path, cut: int) -> None:
    path = crashed_log(tmp_path, 3)
    log = Path(str(path) + ".log")
    size = log.stat().st_size
    with open(log, "r+b") as f:
        f.truncate(size - cut)  # the last record was being written
    for mode in ("commit", "manual"):
        with from_url(f"memory:{path}?sync={mode}") as engine:
            assert [k for k, _ in everything(engine)] == [b"k0", b"k1"]  # type: ignore[arg-type]
            if mode == "commit":
                put(engine, b"k9", b"after")  # type: ignore[arg-type]
                break
    with from_url(f"memory:{path}") as engine:
        assert [k for k, _ in everything(engine)] == [b"k0", b"k1", b"k9"]  # type: ignore[arg-type]


def test_a_damaged_record_in_the_middle_of_the_log_raises(tmp_path: Path) -> None:
    path = crashed_log(tmp_path, 3)
    log = Path(str(path) + ".log")
    data = bytearray(log.read_bytes())
    data[24 + 8 + 6] ^= 0xFF  # inside the first record's payload
    log.write_bytes(bytes(data))
    with pytest.raises(CorruptionError, match="data.acid.log"):
        from_url(f"memory:{path}?sync=commit")
    assert log.read_bytes() == bytes(data)  # left as it was, not emptied


def test_a_damaged_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    path = crashed_log(tmp_path, 3)
    log = Path(str(path) + ".log")
    data = bytearray(log.read_bytes())
    data[-1] ^= 0xFF
    log.write_bytes(bytes(data))
    with from_url(f"memory:{path}?sync=commit") as engine:
        assert len(everything(engine)) == 2  # type: ignore[arg-type]


def saved(tmp_path: Path) -> Path:
    path = tmp_path / "data.acid"
    with from_url(f"memory:{path}") as engine:
        for i in range(100):
            put(engine, b"k%03d" % i, b"v" * i)  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize("where", [12, 40, 300, -2])
def test_a_damaged_snapshot_raises(tmp_path: Path, where: int) -> None:
    path = saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[where] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptionError, match="data.acid"):
        from_url(f"memory:{path}")
    assert path.read_bytes() == bytes(data)


def test_a_truncated_snapshot_raises(tmp_path: Path) -> None:
    path = saved(tmp_path)
    data = path.read_bytes()
    for size in (0, 5, 30, len(data) - 1):
        path.write_bytes(data[:size])
        with pytest.raises(CorruptionError, match="data.acid"):
            from_url(f"memory:{path}")


def test_a_file_that_is_not_ours(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("dear diary, " * 10)
    with pytest.raises(CorruptionError, match="not an acid memory-engine snapshot"):
        from_url(f"memory:{path}")
    assert path.read_text() == "dear diary, " * 10
    with pytest.raises(ConfigError, match="directory"):
        from_url(f"memory:{tmp_path}")


def test_a_newer_format_version_is_refused(tmp_path: Path) -> None:
    path = saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[8] = 9  # the format version
    path.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="format version 9"):
        from_url(f"memory:{path}")


def test_a_stale_log_is_ignored_and_a_newer_one_refused(tmp_path: Path) -> None:
    path = crashed_log(tmp_path, 3)
    log = Path(str(path) + ".log")
    old_log = log.read_bytes()
    with from_url(f"memory:{path}?sync=commit") as engine:
        put(engine, b"k1", b"changed")  # type: ignore[arg-type]
    log.write_bytes(old_log)  # generation 0: compacted into snapshot 1 already
    with from_url(f"memory:{path}?sync=commit") as engine:
        assert dict(everything(engine))[b"k1"] == b"changed"  # type: ignore[arg-type]
    snapshot = path.read_bytes()
    with from_url(f"memory:{path}?sync=commit") as engine:
        put(engine, b"x", b"1")  # type: ignore[arg-type]
    with from_url(f"memory:{path}?sync=commit") as engine:  # the next generation
        put(engine, b"y", b"1")  # type: ignore[arg-type]
        shutil.copy(str(path) + ".log", tmp_path / "newer.log")
    path.write_bytes(snapshot)  # an older snapshot beside a newer log
    shutil.copy(tmp_path / "newer.log", str(path) + ".log")
    with pytest.raises(CorruptionError, match="newer"):
        from_url(f"memory:{path}?sync=commit")


def test_the_file_is_locked_in_this_process_and_others(tmp_path: Path) -> None:
    path = tmp_path / "data.acid"
    engine = from_url(f"memory:{path}?sync=commit")
    put(engine, b"a", b"1")  # type: ignore[arg-type]
    with pytest.raises(EngineError, match="already open"):
        from_url(f"memory:{path}")
    script = f"""
from acid.engines import from_url
from acid.errors import EngineError
try:
    from_url("memory:{path}")
except EngineError as exc:
    print("refused:", exc)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT
    )
    assert "refused:" in out.stdout and "already open" in out.stdout
    engine.close()
    with from_url(f"memory:{path}") as again:
        assert everything(again) == [(b"a", b"1")]  # type: ignore[arg-type]


def test_a_failed_log_write_lands_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data.acid"
    engine = from_url(f"memory:{path}?sync=commit")
    put(engine, b"a", b"1")  # type: ignore[arg-type]

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", full)
    txn = engine.begin(write=True)
    txn.put(b"b", b"2")
    with pytest.raises(EngineError, match="No space left"):
        txn.commit()
    assert txn.closed and everything(engine) == [(b"a", b"1")]  # type: ignore[arg-type]
    monkeypatch.undo()
    put(engine, b"c", b"3")  # type: ignore[arg-type]
    crash_copy = tmp_path / "copy"
    crash_copy.mkdir()
    for name in ("data.acid.log",):
        shutil.copy(tmp_path / name, crash_copy / name)
    engine.close()
    with from_url(f"memory:{crash_copy}/data.acid") as copy:  # the log alone
        assert everything(copy) == [(b"a", b"1"), (b"c", b"3")]  # type: ignore[arg-type]


def test_the_log_is_compacted_when_it_outgrows_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory_module, "COMPACT_MIN", 10_000)
    path = tmp_path / "data.acid"
    with from_url(f"memory:{path}?sync=commit") as engine:
        for i in range(300):
            put(engine, b"k%03d" % (i % 50), b"v" * 100)  # type: ignore[arg-type]
            assert os.path.getsize(str(path) + ".log") < 10_000 + 200
        assert path.exists()  # compacted while running, not only at close
        shutil.copy(path, tmp_path / "mid.acid")
        shutil.copy(str(path) + ".log", tmp_path / "mid.acid.log")
    with from_url(f"memory:{tmp_path}/mid.acid") as mid:  # as after a crash
        assert len(everything(mid)) == 50  # type: ignore[arg-type]


# -- optimistic writers -------------------------------------------------------------


@pytest.fixture
def optimistic() -> MemoryEngine:
    engine = from_url("memory:/?writers=optimistic")
    assert isinstance(engine, MemoryEngine) and engine.concurrent_writers
    put(engine, b"a", b"0")
    put(engine, b"m", b"0")
    return engine


def test_a_read_key_changed_meanwhile_conflicts(optimistic: MemoryEngine) -> None:
    first, second = optimistic.begin(write=True), optimistic.begin(write=True)
    assert second.get(b"a") == b"0"
    second.put(b"b", b"derived from a")
    first.put(b"a", b"1")
    first.commit()
    with pytest.raises(ConflictError):
        second.commit()
    assert optimistic.get(b"b") is None


def test_blind_writes_to_one_key_conflict(optimistic: MemoryEngine) -> None:
    first, second = optimistic.begin(write=True), optimistic.begin(write=True)
    first.put(b"a", b"1")
    second.put(b"a", b"2")
    second.put(b"other", b"2")
    first.commit()
    with pytest.raises(ConflictError) as info:
        second.commit()
    assert info.value.retryable and second.closed
    assert optimistic.get(b"a") == b"1" and optimistic.get(b"other") is None


def test_a_scanned_range_changed_meanwhile_conflicts(optimistic: MemoryEngine) -> None:
    first, second, third = (optimistic.begin(write=True) for _ in range(3))
    assert [k for k, _ in second.iter(b"a")][:1] == [b"a"]  # scanned a.. to the end
    second.put(b"count", b"2")
    scan = third.iter(b"a")
    assert next(scan)[0] == b"a"  # scanned only [a, a]
    third.put(b"z", b"3")
    first.put(b"c", b"1")  # a phantom inside second's range, outside third's
    first.commit()
    with pytest.raises(ConflictError):
        second.commit()
    third.commit()
    assert optimistic.get(b"count") is None and optimistic.get(b"z") == b"3"


def test_unrelated_writers_land_and_old_commits_are_forgotten(
    optimistic: MemoryEngine,
) -> None:
    lingering = optimistic.begin(write=True)
    for i in range(10):
        put(optimistic, b"k%d" % i, b"1")
    assert len(optimistic._recent) == 10  # the open writer may still conflict
    lingering.put(b"other", b"1")
    lingering.commit()
    put(optimistic, b"last", b"1")
    assert optimistic._recent == []
    abandoned = optimistic.begin(write=True)
    abandoned.put(b"x", b"1")
    del abandoned  # dropped without ending
    put(optimistic, b"after", b"1")
    assert optimistic._recent == [] and optimistic.get(b"x") is None


def test_close_aborts_every_open_optimistic_writer(optimistic: MemoryEngine) -> None:
    writers = [optimistic.begin(write=True) for _ in range(3)]
    for txn in writers:
        txn.put(b"k", b"v")
    optimistic.close()
    for txn in writers:
        assert txn.closed
        with pytest.raises(acid.errors.TxnError, match="closed"):
            txn.commit()


def test_threads_incrementing_one_counter_lose_no_update(tmp_path: Path) -> None:
    engine = from_url(f"memory:{tmp_path}/c.acid?sync=commit&writers=optimistic")
    put(engine, b"n", b"0")  # type: ignore[arg-type]
    conflicts = []

    def work() -> None:
        for _ in range(200):
            while True:
                txn = engine.begin(write=True)
                value = int(txn.get(b"n") or b"0")
                txn.put(b"n", b"%d" % (value + 1))
                try:
                    txn.commit()
                    break
                except ConflictError:
                    conflicts.append(1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert engine.get(b"n") == b"800"
    engine.close()
    with from_url(f"memory:{tmp_path}/c.acid") as again:
        assert again.get(b"n") == b"800"


def test_a_pinned_readers_gets_keep_its_snapshot_across_commits() -> None:
    engine = MemoryEngine()
    with engine.begin(write=True) as txn:
        for i in range(2000):
            txn.put(b"%04d" % i, b"old")
    reader = engine.begin()
    for n in range(3):
        with engine.begin(write=True) as txn:
            txn.put(b"0001", b"new%d" % n)
            txn.delete(b"0002")
            txn.put(b"9999", b"added")
    assert reader.get(b"0001") == b"old" and reader.get(b"0002") == b"old"
    assert reader.get(b"9999") is None and reader.get(b"0003") == b"old"
    fresh = engine.begin()
    assert fresh.get(b"0001") == b"new2" and fresh.get(b"0002") is None
    assert fresh.get(b"9999") == b"added" and engine.get(b"0001") == b"new2"


def test_readers_in_threads_never_see_half_a_commit() -> None:
    # Each commit moves a, b and a far-away key z together; a reader must
    # always find them equal, whichever path its gets take.
    engine = MemoryEngine()
    with engine.begin(write=True) as txn:
        for i in range(5000):
            txn.put(b"m%05d" % i, b"x")
        for key in (b"a", b"b", b"z"):
            txn.put(key, b"0")
    stop = threading.Event()
    torn: list[tuple[bytes | None, ...]] = []

    def read() -> None:
        while not stop.is_set():
            with engine.begin() as txn:
                seen = (txn.get(b"a"), txn.get(b"m02500"), txn.get(b"b"), txn.get(b"z"))
                if not seen[0] == seen[2] == seen[3]:
                    torn.append(seen)
            pinned = engine.begin()  # keeps commits on the copying path too
            first = pinned.get(b"a")
            if pinned.get(b"z") != first:
                torn.append((first,))
            pinned.abort()

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        for n in range(1, 1500):
            with engine.begin(write=True) as txn:
                for key in (b"a", b"b", b"z"):
                    txn.put(key, b"%d" % n)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert torn == []
    assert engine.get(b"a") == engine.get(b"z") == b"1499"


COMPACTING_WRITER = """
import sys
import acid.engines.memory as memory
from acid.engines import from_url
memory.COMPACT_MIN = 20_000  # compact every few commits: kills land inside too
engine = from_url(sys.argv[1])
b = 0
while True:
    with engine.begin(write=True) as txn:
        for i in range(20):
            txn.put(b"%06d-%02d" % (b, i), b"x" * 100)
    print(b, flush=True)
    b += 1
"""


@pytest.mark.parametrize("delay", [0.0, 0.004, 0.011])
def test_kill_9_while_compacting_loses_nothing_committed(
    tmp_path: Path, delay: float
) -> None:
    url = f"memory:{tmp_path}/db.acid?sync=commit"
    proc = subprocess.Popen(
        [sys.executable, "-c", COMPACTING_WRITER, url],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    committed = -1
    while committed < 60:
        line = proc.stdout.readline()
        if not line:
            break
        committed = int(line)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert committed >= 60, "the writer did not get going"
    with from_url(url) as engine:
        sizes: dict[int, int] = {}
        for key, _ in everything(engine):  # type: ignore[arg-type]
            batch = int(key.split(b"-")[0])
            sizes[batch] = sizes.get(batch, 0) + 1
    assert all(n == 20 for n in sizes.values())  # whole transactions only
    assert set(range(committed + 1)) <= set(sizes)  # nothing committed lost
    assert set(sizes) == set(range(max(sizes) + 1))
