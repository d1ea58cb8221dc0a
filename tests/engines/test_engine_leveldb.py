"""LevelDB engine specifics: the directory lock, parameters, snapshots."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("plyvel")

from acid.engines import from_url
from acid.errors import ConfigError, EngineError, TxnError


def test_second_opener_in_this_process(tmp_path: Path) -> None:
    url = f"leveldb:{tmp_path}/db?sync=false"
    with from_url(url):
        with pytest.raises(EngineError, match="single-process") as info:
            from_url(url)
        assert "IO error" not in str(info.value)
    with from_url(url):  # the lock goes with close()
        pass


def test_second_opener_in_another_process(tmp_path: Path) -> None:
    url = f"leveldb:{tmp_path}/db?sync=false"
    script = (
        "import sys\n"
        "from acid.engines import from_url\n"
        "from acid.errors import EngineError\n"
        "try:\n"
        f"    from_url({url!r})\n"
        "except EngineError as exc:\n"
        "    print(exc)\n"
        "    sys.exit(3)\n"
    )
    with from_url(url):
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 3, done.stderr
    assert "locked" in done.stdout and "single-process" in done.stdout


def test_parameters_reach_leveldb(tmp_path: Path) -> None:
    url = (
        f"leveldb:{tmp_path}/db?block_cache=8MiB&write_buffer=1MiB&bloom_bits=0"
        "&compression=none&max_open_files=100&sync=true&lock_timeout=1"
    )
    with from_url(url) as engine:
        with engine.begin(write=True) as txn:
            txn.put(b"k", b"v")
        assert engine.begin().get(b"k") == b"v"
    assert (tmp_path / "db" / "CURRENT").exists()


def test_put_requires_bytes(tmp_path: Path) -> None:
    with from_url(f"leveldb:{tmp_path}/db?sync=false") as engine:
        with engine.begin(write=True) as txn:
            with pytest.raises(TypeError):
                txn.put("k", b"v")  # type: ignore[arg-type]


@pytest.mark.parametrize("write", [False, True])
@pytest.mark.parametrize("end", ["commit", "abort", "with"])
def test_an_ended_txn_drops_its_snapshot(tmp_path: Path, write: bool, end: str) -> None:
    with from_url(f"leveldb:{tmp_path}/db?sync=false") as engine:
        txn = engine.begin(write=write)
        snapshot = txn._snapshot  # type: ignore[attr-defined]
        assert snapshot is not None
        held = sys.getrefcount(snapshot)
        if end == "with":
            with txn:
                txn.get(b"k")
        else:
            txn.get(b"k")
            getattr(txn, end)()
        # Only this test's own name (and getrefcount's argument) remain: the
        # finished transaction, still referenced here, holds no reference, so
        # the snapshot is released as soon as nothing else holds it. (It is
        # not closed explicitly: another thread might be inside a call on it.)
        # A writer reads the database itself, which the engine holds too.
        assert sys.getrefcount(snapshot) == (held - 1 if write else 2) < held
        assert (snapshot is engine._db) is write  # type: ignore[attr-defined]
        assert txn._snapshot is not snapshot  # type: ignore[attr-defined]


def test_close_ends_readers_clearly(tmp_path: Path) -> None:
    engine = from_url(f"leveldb:{tmp_path}/db?sync=false")
    with engine.begin(write=True) as txn:
        txn.put(b"k", b"v")
    reader = engine.begin()
    engine.close()
    # Ended by close(), as a writer is (and as LMDB's readers are).
    with pytest.raises(TxnError, match="closed"):
        reader.get(b"k")
    with pytest.raises(TxnError, match="closed"):
        list(reader.iter(b""))
    reader.abort()


def test_path_under_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(ConfigError) as info:
        from_url(f"leveldb:{tmp_path}/file/db")
    message = str(info.value)
    assert "not a directory" in message and str(tmp_path / "file") in message
    assert ": 17" not in message


def _filled(url: str) -> None:
    with from_url(url) as engine, engine.begin(write=True) as txn:
        for i in range(100):
            txn.put(b"k%03d" % i, b"v")


def test_reopen_right_after_close_with_everything_left_open(tmp_path: Path) -> None:
    # Open readers and writers and suspended scans of both: close() ends
    # them all and drops what they hold, so with no call in flight the
    # directory is unlocked at once.
    url = f"leveldb:{tmp_path}/db?sync=false"
    _filled(url)
    engine = from_url(url)
    reader, writer = engine.begin(), engine.begin(write=True)
    writer.put(b"k000", b"changed")
    scans = [reader.iter(b""), reader.iter(b"\xff", reverse=True), writer.iter(b"")]
    assert [next(scan)[0] for scan in scans] == [b"k000", b"k099", b"k000"]
    unstarted = reader.iter(b"k050")
    engine.close()
    with from_url(url) as again:
        assert again.get(b"k000") == b"v"  # the writer was aborted
    for call in (
        lambda: reader.get(b"k001"),
        lambda: writer.get(b"k001"),
        writer.commit,
        *(lambda scan=scan: next(scan) for scan in [*scans, unstarted]),
    ):
        with pytest.raises(TxnError, match="closed|ended"):
            call()


def test_close_leaves_the_database_to_a_reference_still_held(tmp_path: Path) -> None:
    # A native object another thread is using (here: one the test took
    # from a transaction) must not be freed under it: close() returns at
    # once, and the database closes, unlocking the directory, when the last
    # reference goes.
    url = f"leveldb:{tmp_path}/db?sync=false"
    _filled(url)
    engine = from_url(url)
    txn = engine.begin()
    in_use = txn._snapshot  # type: ignore[attr-defined]
    start = time.monotonic()
    engine.close()
    assert time.monotonic() - start < 1
    assert in_use.get(b"k001") == b"v"  # still valid for its holder
    with pytest.raises(EngineError, match="locked"):
        from_url(url)
    del in_use
    with from_url(url) as again:
        assert again.get(b"k001") == b"v"


def test_a_reader_keeps_no_finished_scans(tmp_path: Path) -> None:
    url = f"leveldb:{tmp_path}/db?sync=false"
    _filled(url)
    with from_url(url) as engine, engine.begin() as txn:
        for i in range(50):
            assert len(list(txn.iter(b"k090"))) == 10  # exhausted
            it = txn.iter(b"k%03d" % i)
            assert next(it)[0] == b"k%03d" % i
            del it  # dropped half-way
        assert not any(txn._boxes)  # type: ignore[attr-defined]
        assert len(txn._boxes) <= 17  # type: ignore[attr-defined]


def test_dropped_readers_are_forgotten(tmp_path: Path) -> None:
    with from_url(f"leveldb:{tmp_path}/db?sync=false") as engine:
        for _ in range(10):
            engine.begin().get(b"k")  # never ended
        kept = engine.begin()
        assert len(engine._readers) == 1  # type: ignore[attr-defined]
        kept.abort()
        assert not engine._readers  # type: ignore[attr-defined]
