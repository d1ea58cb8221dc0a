"""The memory engine under hostile use: damaged logs, failed compactions,
optimistic writers racing the bookkeeping of open transactions."""

from __future__ import annotations

import os
import shutil
import struct
import sys
import threading
import time
from pathlib import Path

import pytest

from acid.engines import _memfile
from acid.engines import memory as memory_module
from acid.engines.memory import MemoryEngine
from acid.errors import ConflictError, CorruptionError, EngineError


def put(engine: MemoryEngine, key: bytes, value: bytes) -> None:
    with engine.begin(write=True) as txn:
        txn.put(key, value)


def everything(engine: MemoryEngine) -> list[tuple[bytes, bytes]]:
    with engine.begin() as txn:
        return list(txn.iter(b""))


def crashed_copy(tmp_path: Path, engine: MemoryEngine) -> Path:
    """The files of ``engine`` as a crash would leave them (no close)."""
    copy = tmp_path / "crashed"
    copy.mkdir()
    for name in os.listdir(tmp_path):
        if name.startswith("data.acid") and name.endswith((".acid", ".log")):
            shutil.copy(tmp_path / name, copy / name)
    return copy / "data.acid"


def logged(tmp_path: Path, commits: int = 5, sync_first: bool = False) -> Path:
    """A crashed ``sync=commit`` store whose log holds ``commits`` commits."""
    engine = MemoryEngine(tmp_path / "data.acid", sync="commit")
    if sync_first:
        put(engine, b"base", b"0")
        engine.flush()
    for i in range(commits):
        put(engine, b"k%d" % i, b"v%d" % i)
    path = crashed_copy(tmp_path, engine)
    engine.close()
    return path


# -- the log --


@pytest.mark.parametrize("zeros", [4, 8, 12, 16, 100, 5000])
def test_a_zero_filled_log_tail_is_a_torn_tail(tmp_path: Path, zeros: int) -> None:
    # A crash can leave the end of an appended file allocated but never
    # written (zeros). It used to raise struct.error at open.
    path = logged(tmp_path)
    with open(f"{path}.log", "ab") as f:
        f.write(b"\0" * zeros)
    with MemoryEngine(path, sync="commit") as engine:
        assert len(everything(engine)) == 5
        put(engine, b"later", b"1")
    with MemoryEngine(path) as engine:
        assert len(everything(engine)) == 6


@pytest.mark.parametrize("byte", [0, 1, 2, 3])
def test_a_damaged_record_length_is_not_a_torn_tail(tmp_path: Path, byte: int) -> None:
    # A bit flipped in the length of the first record made the reader take
    # every later commit for a torn tail: they were dropped and the log cut.
    path = logged(tmp_path)
    log = Path(f"{path}.log")
    data = bytearray(log.read_bytes())
    data[_memfile.LOG_HEADER_SIZE + byte] ^= 0x40
    log.write_bytes(bytes(data))
    for sync in ("commit", "manual"):
        with pytest.raises(CorruptionError, match="damaged at byte"):
            MemoryEngine(path, sync=sync)
    assert log.read_bytes() == bytes(data)  # left as it was


@pytest.mark.parametrize("offset", range(8, _memfile.LOG_HEADER_SIZE))
def test_a_damaged_log_header_raises(tmp_path: Path, offset: int) -> None:
    # The generation is in the header: a bit flip that made it older than
    # the snapshot's silently dropped every commit of the log.
    path = logged(tmp_path, sync_first=True)
    log = Path(f"{path}.log")
    data = bytearray(log.read_bytes())
    data[offset] ^= 0x01
    log.write_bytes(bytes(data))
    with pytest.raises((CorruptionError, memory_module.ConfigError)):
        MemoryEngine(path, sync="commit")
    assert log.read_bytes() == bytes(data)


def test_a_log_of_the_first_layout_is_read_and_appended(tmp_path: Path) -> None:
    path = tmp_path / "data.acid"
    header = struct.pack("<8sHHIQ", _memfile.LOG_MAGIC, 1, 0, 0, 0)
    records = [
        _memfile.encode_commit([b"a", b"b"], [b"1", b"2"], checked=False),
        _memfile.encode_commit([b"a"], [memory_module.DELETED], checked=False),
    ]
    Path(f"{path}.log").write_bytes(header + b"".join(records) + b"\0" * 8)
    with MemoryEngine(path, sync="commit") as engine:
        assert everything(engine) == [(b"b", b"2")]
        put(engine, b"c", b"3")
        crashed = crashed_copy(tmp_path, engine)
    with MemoryEngine(crashed, sync="commit") as engine:
        assert everything(engine) == [(b"b", b"2"), (b"c", b"3")]


def test_a_failed_compaction_does_not_fail_a_landed_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Compaction ran after the commit landed, and its error (a full disk,
    # here a directory in the way of the temporary file) reached the
    # committer, who would retry a commit that had landed.
    monkeypatch.setattr(memory_module, "COMPACT_MIN", 0)
    path = tmp_path / "data.acid"
    engine = MemoryEngine(path, sync="commit")
    put(engine, b"a", b"1")
    os.mkdir(f"{path}.tmp")
    for i in range(20):
        put(engine, b"b%02d" % i, b"x" * 100)  # each one landed: no error
    assert len(everything(engine)) == 21
    with pytest.raises(EngineError, match="cannot write"):
        engine.flush()  # asked for explicitly: reported
    crashed = crashed_copy(tmp_path, engine)
    os.rmdir(f"{path}.tmp")
    engine.flush()
    engine.close()
    for where in (path, crashed):
        with MemoryEngine(where) as again:
            assert len(everything(again)) == 21


# -- optimistic writers --


def test_a_commit_between_pinning_and_registering_a_writer_conflicts() -> None:
    # begin() pinned the snapshot, then registered the writer: a commit in
    # between was forgotten, and the writer's lost update landed.
    engine = MemoryEngine(writers="optimistic")
    put(engine, b"n", b"0")
    original = engine._pin
    fired: list[bool] = []
    outcome: list[str] = []

    def other() -> None:
        try:
            with engine.begin(write=True) as txn:
                txn.put(b"n", b"%d" % (int(txn.get(b"n") or b"0") + 1))
            outcome.append("landed")
        except ConflictError:
            outcome.append("conflict")

    thread = threading.Thread(target=other)

    def pin() -> tuple[int, object]:
        pinned = original()
        if not fired:
            fired.append(True)
            thread.start()
            thread.join(0.3)  # blocks behind begin() once fixed
        return pinned

    engine._pin = pin  # type: ignore[method-assign]
    landed = 0
    try:
        with engine.begin(write=True) as txn:
            engine._pin = original  # type: ignore[method-assign]
            txn.put(b"n", b"%d" % (int(txn.get(b"n") or b"0") + 1))
        landed += 1
    except ConflictError:
        pass
    thread.join()
    landed += outcome.count("landed")
    assert engine.get(b"n") == b"%d" % landed


def churn_open_writers(seconds: float) -> list[str]:
    engine = MemoryEngine(writers="optimistic")
    held = [engine.begin(write=True) for _ in range(100)]
    errors: list[str] = []
    stop = time.monotonic() + seconds
    landed: list[bytes] = []

    def churn() -> None:
        while time.monotonic() < stop:
            engine.begin(write=True).abort()

    def commit(i: int) -> None:
        n = 0
        while time.monotonic() < stop:
            key = b"k%d-%d" % (i, n)
            try:
                put(engine, key, b"v")
                landed.append(key)
            except Exception as exc:  # reported below
                errors.append(repr(exc))
            n += 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=churn) for _ in range(3)]
        threads += [threading.Thread(target=commit, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert sorted(k for k, _ in everything(engine)) == sorted(landed)
    for txn in held:
        txn.abort()
    engine.close()
    return errors


def test_writers_beginning_and_ending_never_fail_a_commit() -> None:
    # Commits iterated the set of open writers while other threads added
    # to it and removed from it: RuntimeError after the commit had landed.
    assert churn_open_writers(1.5) == []


@pytest.mark.stress
def test_writers_beginning_and_ending_never_fail_a_commit_long() -> None:
    assert churn_open_writers(20.0) == []


def test_a_new_log_that_failed_to_start_is_started_by_the_next_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A snapshot saved, then its empty log could not be written (disk
    # full): every later commit raised "was closed" until the engine was
    # opened again.
    path = tmp_path / "data.acid"
    engine = MemoryEngine(path, sync="commit")
    put(engine, b"a", b"1")
    real = _memfile.replace_file

    def no_log(target: str, parts: list[bytes]) -> None:
        if target.endswith(".log"):
            raise EngineError("memory: cannot write: No space left on device")
        real(target, parts)

    monkeypatch.setattr(_memfile, "replace_file", no_log)
    with pytest.raises(EngineError, match="No space left"):
        engine.flush()
    with pytest.raises(EngineError, match="No space left"):
        put(engine, b"b", b"2")  # still no room: nothing lands
    assert everything(engine) == [(b"a", b"1")]
    monkeypatch.undo()
    put(engine, b"c", b"3")
    crashed = crashed_copy(tmp_path, engine)
    engine.close()
    for where in (path, crashed):
        with MemoryEngine(where) as again:
            assert everything(again) == [(b"a", b"1"), (b"c", b"3")]


def test_a_symlinked_file_is_written_through_and_locked_once(tmp_path: Path) -> None:
    # The snapshot was renamed over the symlink (the target kept the old
    # data), and the two names had two locks: two engines on one file.
    real = tmp_path / "real.acid"
    link = tmp_path / "link.acid"
    with MemoryEngine(real) as engine:
        put(engine, b"a", b"1")
    link.symlink_to(real)
    engine = MemoryEngine(link)
    with pytest.raises(EngineError, match="already open"):
        MemoryEngine(real)
    put(engine, b"b", b"2")
    engine.close()
    assert link.is_symlink()
    with MemoryEngine(real) as again:
        assert everything(again) == [(b"a", b"1"), (b"b", b"2")]
    dangling = tmp_path / "new.acid"
    dangling.symlink_to(tmp_path / "target.acid")
    with MemoryEngine(dangling, sync="commit") as engine:
        put(engine, b"c", b"3")
    assert dangling.is_symlink() and (tmp_path / "target.acid").is_file()


@pytest.mark.parametrize("sync", ["commit", "manual"])
def test_a_failed_directory_sync_after_the_rename_loses_no_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync: str
) -> None:
    # The snapshot of generation g + 1 took the file's name, then fsync of
    # the directory failed: the engine kept appending to the log of
    # generation g, which the next open ignores as stale.
    path = tmp_path / "data.acid"
    engine = MemoryEngine(path, sync=sync)
    put(engine, b"a", b"1")

    def broken(where: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(_memfile, "sync_dir", broken)
    with pytest.raises(EngineError, match="Input/output error"):
        engine.flush()
    monkeypatch.undo()
    put(engine, b"b", b"2")
    if sync == "manual":
        engine.flush()
    crashed = crashed_copy(tmp_path, engine)
    engine.close()
    for where in (path, crashed):
        with MemoryEngine(where) as again:
            assert everything(again) == [(b"a", b"1"), (b"b", b"2")]


def test_close_that_cannot_save_can_be_called_again(tmp_path: Path) -> None:
    # close() marked the engine closed before saving: when the save failed
    # (a full disk; here a directory in the way) a second close() returned
    # at once and everything since the last sync was lost.
    path = tmp_path / "data.acid"
    engine = MemoryEngine(path)
    put(engine, b"a", b"1")
    os.mkdir(f"{path}.tmp")
    with pytest.raises(EngineError, match="call close\\(\\) again"):
        engine.close()
    with pytest.raises(EngineError, match="already open"):
        MemoryEngine(path)  # still locked: the data are only in memory
    os.rmdir(f"{path}.tmp")
    engine.close()
    engine.close()
    with MemoryEngine(path) as again:
        assert everything(again) == [(b"a", b"1")]


# -- kill -9 ------------------------------------------------------------------------

CHILD = r"""
import os, sys
from acid.engines import memory
from acid.engines.memory import MemoryEngine
path, sync, compact = sys.argv[1], sys.argv[2], int(sys.argv[3])
memory.COMPACT_MIN = compact
engine = MemoryEngine(path, sync=sync)
with engine.begin() as txn:
    i = int(txn.get(b"count") or b"0")
while True:
    i += 1
    with engine.begin(write=True) as txn:
        txn.put(b"count", b"%d" % i)
        txn.put(b"k%08d" % i, os.urandom(i * 7919 % 3000))
        if i % 5 == 0:
            txn.delete(b"k%08d" % (i - 3))
    if sync == "manual" and i % 7 == 0:
        engine.flush()
        print("synced", i, flush=True)
    else:
        print("committed", i, flush=True)
"""


def expected_keys(n: int) -> set[bytes]:
    gone = {b"k%08d" % (i - 3) for i in range(5, n + 1, 5)}
    return {b"k%08d" % i for i in range(1, n + 1)} - gone


def kill_trials(tmp_path: Path, sync: str, compact: int, trials: int) -> None:
    """Kill a committing process after a random number of commits; after
    each restart the data must be whole transactions, a prefix of those
    committed, holding every acknowledged (sync=commit) or synced one."""
    import random
    import signal
    import subprocess

    path = tmp_path / "data.acid"
    rng = random.Random(trials * 31 + compact)
    for _ in range(trials):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), sync, str(compact)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        acked = synced = 0
        target = rng.randrange(3, 120)
        for line in child.stdout:
            kind, number = line.split()
            acked = int(number)
            if kind == "synced":
                synced = acked
            if acked >= target:
                break
        for _ in range(rng.randrange(0, 4000)):  # a random point of the next
            pass
        child.send_signal(signal.SIGKILL)
        for line in child.stdout:  # printed before the kill landed
            if not line.endswith("\n"):
                break  # cut by the kill
            kind, number = line.split()
            acked = int(number)
            if kind == "synced":
                synced = acked
        child.wait()
        with MemoryEngine(path) as engine:
            state = dict(everything(engine))
        count = int(state.pop(b"count", b"0"))
        assert set(state) == expected_keys(count)
        assert all(len(v) == int(k[1:]) * 7919 % 3000 for k, v in state.items())
        assert count >= (acked if sync == "commit" else synced)


@pytest.mark.parametrize("compact", [1 << 22, 1 << 12])
@pytest.mark.parametrize("sync", ["commit", "manual"])
def test_kill_9_at_random_points_of_commits(
    tmp_path: Path, sync: str, compact: int
) -> None:
    kill_trials(tmp_path, sync, compact, 3)


@pytest.mark.stress
@pytest.mark.parametrize("compact", [1 << 22, 1 << 12])
@pytest.mark.parametrize("sync", ["commit", "manual"])
def test_kill_9_at_random_points_of_commits_many(
    tmp_path: Path, sync: str, compact: int
) -> None:
    kill_trials(tmp_path, sync, compact, 40)


def test_a_directory_where_the_log_goes_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "data.acid"
    os.mkdir(f"{path}.log")
    for sync in ("manual", "commit"):
        with pytest.raises(memory_module.ConfigError, match="the store's log"):
            MemoryEngine(path, sync=sync)
    with pytest.raises(memory_module.ConfigError, match="is a directory"):
        MemoryEngine(tmp_path)


class Huge(bytes):
    """A value that says it is 4 GiB - 1 bytes long (memory is short)."""

    def __len__(self) -> int:
        return 0xFFFFFFFF


def test_a_value_of_4_gib_less_one_is_not_logged_as_a_delete() -> None:
    # Its length is the log's "deleted" marker: replayed as a delete.
    with pytest.raises(EngineError, match="4 GiB"):
        _memfile.encode_commit([b"k"], [Huge(b"x")])
    assert _memfile.encode_commit([b"k"], [memory_module.DELETED])


@pytest.mark.parametrize("sync", ["manual", "commit"])
def test_a_value_no_file_can_hold_does_not_land(tmp_path: Path, sync: str) -> None:
    # With sync=manual it landed, and every later save failed: the store
    # could not be saved or closed any more.
    engine = MemoryEngine(tmp_path / "data.acid", sync=sync)
    put(engine, b"a", b"1")
    with pytest.raises(EngineError, match="4 GiB"):  # put() takes exact bytes
        engine._land([b"a", b"b"], [memory_module.DELETED, Huge(b"x")])
    assert everything(engine) == [(b"a", b"1")]
    engine.close()
    with MemoryEngine(tmp_path / "data.acid") as again:
        assert everything(again) == [(b"a", b"1")]


# -- memory --


@pytest.mark.parametrize("writers", ["serial", "optimistic"])
def test_a_long_reader_pins_one_version_while_10k_commits_run(writers: str) -> None:
    import weakref

    engine = MemoryEngine(writers=writers)
    with engine.begin(write=True) as txn:
        for i in range(5000):
            txn.put(b"%06d" % i, b"0")
    reader = engine.begin()
    before = dict(reader.iter(b""))
    versions = []
    for j in range(10_000):
        with engine.begin(write=True) as txn:
            txn.put(b"%06d" % (j * 7919 % 7000), b"%d" % j)
            if j % 3 == 0:
                txn.delete(b"%06d" % (j * 104729 % 7000))
        versions.append(weakref.ref(engine._current))
    alive = {id(v()) for v in versions if v() not in (None, engine._current)}
    assert alive == set()  # no version between the pinned one and the current
    assert dict(reader.iter(b"")) == before
    assert [reader.get(k) for k in sorted(before)[::97]] == [
        before[k] for k in sorted(before)[::97]
    ]
    assert list(reader.iter(b"\xff", reverse=True)) == sorted(before.items())[::-1]
    reader.abort()


def test_an_optimistic_transaction_leaves_no_cyclic_garbage() -> None:
    import gc

    engine = MemoryEngine(writers="optimistic")
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        for i in range(1000):
            with engine.begin(write=True) as txn:
                txn.put(b"n", b"%d" % i)
        grown = len(gc.get_objects()) - before
    finally:
        gc.enable()
    assert grown < 100


# -- optimistic anomalies that held --


def on_call_trial() -> int:
    """Six threads each go off call if they see two others on call (a scan
    over a prefix): write skew would leave nobody on call."""
    engine = MemoryEngine(writers="optimistic")
    with engine.begin(write=True) as txn:
        for d in range(6):
            txn.put(b"doc%d" % d, b"on")
        txn.put(b"zzz", b"x")

    def off(d: int) -> None:
        while True:
            txn = engine.begin(write=True)
            on = [k for k, v in txn.iter(b"doc") if k.startswith(b"doc") and v == b"on"]
            time.sleep(0)
            if len(on) >= 2 and b"doc%d" % d in on:
                txn.put(b"doc%d" % d, b"off")
            try:
                txn.commit()
                return
            except ConflictError:
                continue

    threads = [threading.Thread(target=off, args=(d,)) for d in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(v == b"on" for _, v in everything(engine))


def test_write_skew_through_scans_is_caught() -> None:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        assert all(on_call_trial() >= 1 for _ in range(10))
    finally:
        sys.setswitchinterval(interval)


def test_reads_deletes_and_reverse_scans_conflict() -> None:
    def engine() -> MemoryEngine:
        e = MemoryEngine(writers="optimistic")
        with e.begin(write=True) as txn:
            for k in (b"a", b"b", b"m", b"q"):
                txn.put(k, b"1")
        return e

    cases = {
        "read a key another deletes": (
            lambda t: t.get(b"a"),
            lambda t: t.delete(b"a"),
        ),
        "read a missing key another inserts": (
            lambda t: t.get(b"c"),
            lambda t: t.put(b"c", b"1"),
        ),
        "reverse scan, insert inside": (
            lambda t: list(t.iter(b"z", reverse=True)),
            lambda t: t.put(b"c", b"1"),
        ),
        "prefix scan that stopped past the prefix": (
            lambda t: next(k for k, _ in t.iter(b"p") if not k.startswith(b"p")),
            lambda t: t.put(b"p1", b"1"),
        ),
        "delete of a missing key": (
            lambda t: t.delete(b"c"),
            lambda t: t.put(b"c", b"1"),
        ),
    }
    for name, (first, second) in cases.items():
        e = engine()
        mine, other = e.begin(write=True), e.begin(write=True)
        first(mine)
        second(other)
        other.commit()
        mine.put(b"elsewhere", b"1")
        with pytest.raises(ConflictError):
            mine.commit()
        assert e.get(b"elsewhere") is None, name
        assert mine.closed, name
    e = engine()
    mine, other = e.begin(write=True), e.begin(write=True)
    assert mine.get(b"a") == b"1"
    other.put(b"a", b"2")
    other.commit()
    mine.commit()  # read only: its snapshot was consistent, nothing to land


# -- damage at every offset --


def damage_everywhere(tmp_path: Path, bits: tuple[int, ...]) -> None:
    """Flip bits at every offset of the snapshot and of the log, and cut
    both at every length: each open raises CorruptionError or ConfigError,
    or shows the state after a prefix of the logged commits (a damaged or
    cut last record is a torn tail); never another state."""
    from acid.errors import ConfigError

    path = tmp_path / "data.acid"
    engine = MemoryEngine(path, sync="commit")
    put(engine, b"base", b"0")
    engine.flush()
    states = [dict(everything(engine))]
    for i in range(4):
        with engine.begin(write=True) as txn:
            txn.put(b"k%d" % i, b"v" * i)
            if i == 2:
                txn.delete(b"base")
        states.append(dict(everything(engine)))
    snapshot = path.read_bytes()
    log = Path(f"{path}.log").read_bytes()
    engine.close()
    trial = tmp_path / "trial"

    def outcome(snap: bytes, logged: bytes, sync: str) -> str:
        shutil.rmtree(trial, ignore_errors=True)
        trial.mkdir()
        (trial / "data.acid").write_bytes(snap)
        (trial / "data.acid.log").write_bytes(logged)
        try:
            with MemoryEngine(trial / "data.acid", sync=sync) as opened:
                state = dict(everything(opened))
        except (CorruptionError, ConfigError) as exc:
            return type(exc).__name__
        assert state in states, "a state that was never committed"
        return f"prefix {states.index(state)}"

    for at in range(len(snapshot)):
        for bit in bits:
            damaged = bytearray(snapshot)
            damaged[at] ^= bit
            assert outcome(bytes(damaged), log, "manual").endswith("Error")
    for cut in range(len(snapshot)):
        assert outcome(snapshot[:cut], log, "manual") == "CorruptionError"
    for at in range(len(log)):
        for bit in bits:
            damaged = bytearray(log)
            damaged[at] ^= bit
            for sync in ("manual", "commit"):
                result = outcome(snapshot, bytes(damaged), sync)
                assert result.endswith("Error") or result == "prefix 3", (at, result)
    for cut in range(_memfile.LOG_HEADER_SIZE, len(log) + 1):
        assert outcome(snapshot, log[:cut], "commit").startswith("prefix")


def test_damage_at_every_offset(tmp_path: Path) -> None:
    damage_everywhere(tmp_path, (0x10,))


@pytest.mark.stress
def test_damage_at_every_offset_every_bit(tmp_path: Path) -> None:
    damage_everywhere(tmp_path, (1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80))


# -- threads, close, asyncio --


@pytest.mark.parametrize("writers", ["serial", "optimistic"])
def test_close_while_readers_and_writers_run_in_threads(
    tmp_path: Path, writers: str
) -> None:
    from acid.errors import Error

    path = tmp_path / "data.acid"
    engine = MemoryEngine(path, writers=writers, sync="commit")
    acked: list[bytes] = []
    unexpected: list[str] = []
    started = threading.Barrier(6)

    def writer(i: int) -> None:
        started.wait()
        n = 0
        while True:
            key = b"w%d-%06d" % (i, n)
            try:
                put(engine, key, b"v")
            except ConflictError:
                continue
            except Error:
                return  # closed: a clear error
            except Exception as exc:
                unexpected.append(repr(exc))
                return
            acked.append(key)
            n += 1

    def reader() -> None:
        started.wait()
        while True:
            try:
                everything(engine)
            except Error:
                return
            except Exception as exc:
                unexpected.append(repr(exc))
                return

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    started.wait()
    while len(acked) < 5:
        time.sleep(0.001)
    engine.close()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert unexpected == []
    with MemoryEngine(path) as again:
        have = {k for k, _ in everything(again)}
    assert set(acked) <= have


def test_asyncio_tasks_over_optimistic_writers_lose_no_update(tmp_path: Path) -> None:
    import asyncio

    import acid
    import acid.aio

    async def main(url: str) -> int:
        store = await acid.aio.open(url)
        coll = await store.add_collection("c")
        await coll.put({"n": 0}, key="x")

        async def bump() -> None:
            rec = await coll.get("x")
            await asyncio.sleep(0)
            rec["n"] += 1
            await coll.put(rec, key="x")

        async def task() -> None:
            for _ in range(10):
                await store.transact(
                    bump, retries=1000, backoff=acid.Backoff(base=0.0005, cap=0.01)
                )

        await asyncio.wait_for(asyncio.gather(*[task() for _ in range(12)]), 120)
        n: int = (await coll.get("x"))["n"]
        report = await store.check()
        assert report.ok
        await store.close()
        return n

    url = f"memory:{tmp_path}/a.acid?writers=optimistic&sync=commit"
    assert asyncio.run(main(url)) == 120
    assert asyncio.run(main("memory:/?writers=optimistic")) == 120


@pytest.mark.parametrize("sync", ["manual", "commit"])
def test_empty_values_beside_deletes_round_trip(tmp_path: Path, sync: str) -> None:
    path = tmp_path / "data.acid"
    with MemoryEngine(path, sync=sync) as engine:
        put(engine, b"gone", b"x")
        with engine.begin(write=True) as txn:
            txn.put(b"\x00", b"")
            txn.put(b"empty", b"")
            txn.delete(b"gone")
            txn.put(bytes(range(256)), bytes(range(256)))
        crashed = crashed_copy(tmp_path, engine)
        want = everything(engine)
    assert want == [
        (b"\x00", b""),
        (bytes(range(256)), bytes(range(256))),
        (b"empty", b""),
    ]
    with MemoryEngine(path) as again:
        assert everything(again) == want
    if sync == "commit":
        with MemoryEngine(crashed) as again:
            assert everything(again) == want
